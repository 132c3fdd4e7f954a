package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/nodeauth"
)

// ForwardedHeader marks a request one node passed to another, so a request is
// forwarded at most once (metadata that lags on two nodes cannot loop it).
const ForwardedHeader = "Weir-Forwarded-By"

// NotHereError tells the API that another node owns the request: the
// controller for metadata writes, a partition's leader for its records.
type NotHereError struct {
	NodeID int32
	Addr   string // host:port of the owner's REST API; "" if unknown
	What   string // "the controller", "the leader of orders-2"
	// Path, when set, replaces the request's path (its query is kept): a
	// topic-level produce goes to the partition the records were put in, so
	// the owner does not partition them again.
	Path string
}

func (e *NotHereError) Error() string {
	return fmt.Sprintf("%s is node %d (%s)", e.What, e.NodeID, e.Addr)
}

// ClientAddrHeader carries, on a forwarded request, the address of the client
// that sent it to the first node: the owner records who the client is (a
// group member's host), not which node passed the request on.
const ClientAddrHeader = "Weir-Client-Addr"

// clientAddr is the address of the request's client: the one the forwarding
// node saw, on a forwarded request (nodeHeaders drops both headers from
// anyone but a node).
func clientAddr(c echo.Context) string {
	h := c.Request().Header
	if h.Get(ForwardedHeader) != "" {
		if a := h.Get(ClientAddrHeader); a != "" {
			return a
		}
	}
	return c.RealIP()
}

// Context keys: the request body as read (kept for forwarding) and its pooled buffer.
const (
	bodyKey    = "weir.body"
	bodyBufKey = "weir.bodybuf"
)

// ForwardTimeoutHeader tells the node a request was forwarded to how long,
// in ms, the forwarding node waits for the reply: a long-poll there answers
// in time (with what it has) rather than be cut off.
const ForwardTimeoutHeader = "Weir-Forward-Timeout-Ms"

// forwardMargin is what a forwarded call may take beyond what its request
// waits for: the round trip and the work besides the wait.
const forwardMargin = 5 * time.Second

// forwarder passes requests to their owner over pooled keep-alive
// connections. Each call has a deadline of its own (see forwardTimeout):
// one fixed timeout for all would cut long-polls short.
type forwarder struct {
	client *http.Client
	// requestTimeout is what a call waits for besides a long-poll's wait
	// (an acks=all append, a commit).
	requestTimeout time.Duration
}

// newForwarder's requests carry the cluster credential (when there is one):
// the owner then believes their forwarding headers.
func newForwarder(requestTimeout time.Duration, keys *nodeauth.Keys) *forwarder {
	var tr http.RoundTripper = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	if keys != nil {
		tr = keys.Transport(tr)
	}
	return &forwarder{client: &http.Client{Transport: tr}, requestTimeout: requestTimeout}
}

// forwardTimeout is how long a call to another node may take when its
// request waits for up to wait (a read's wait_ms, a produce's timeout_ms):
// that and the request timeout (the other work of the call), plus a margin.
func (f *forwarder) forwardTimeout(wait time.Duration) time.Duration {
	return f.requestTimeout + max(wait, 0) + forwardMargin
}

// do sends a node-to-node request that may wait up to wait there, with the
// deadline that allows, and says so in ForwardTimeoutHeader. The deadline
// holds until the reply's body is closed.
func (f *forwarder) do(req *http.Request, from string, wait time.Duration) (*http.Response, error) {
	timeout := f.forwardTimeout(wait)
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	req = req.WithContext(ctx)
	req.Header.Set(ForwardedHeader, from)
	req.Header.Set(ForwardTimeoutHeader, strconv.FormatInt(timeout.Milliseconds(), 10))
	resp, err := f.client.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose ends a call's context once its reply has been read.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// requestWait is how long a request may wait at its owner, read from its
// query: wait_ms of a read, timeout_ms of a produce (0 when it names
// neither, or names it wrongly: the owner refuses it then).
func requestWait(q url.Values) time.Duration {
	for _, name := range []string{"wait_ms", "timeout_ms"} {
		if v := q.Get(name); v != "" {
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ms < 0 {
				return 0
			}
			return time.Duration(min(ms, maxForwardWait.Milliseconds())) * time.Millisecond
		}
	}
	return 0
}

// maxForwardWait bounds the wait a forwarded request's deadline allows for
// (the longest produce timeout_ms; reads wait at most maxWait).
const maxForwardWait = time.Hour

// readWait is how long a read (a partition consume, a group poll) may
// wait for records: wait_ms, and on a forwarded request no longer than the
// forwarding node waits for the reply (less the margin for the rest). A
// forwarding node that does not say (an older one) waits the request
// timeout plus the margin.
func (s *Server) readWait(c echo.Context, waitMS int64) time.Duration {
	wait := min(time.Duration(waitMS)*time.Millisecond, maxWait)
	h := c.Request().Header
	if h.Get(ForwardedHeader) == "" {
		return wait
	}
	budget := s.opts.RequestTimeout
	if v, err := strconv.ParseInt(h.Get(ForwardTimeoutHeader), 10, 64); err == nil && v > 0 {
		budget = time.Duration(v)*time.Millisecond - forwardMargin
	}
	return max(min(wait, budget), 0)
}

// forward sends the request to its owner and copies the reply back. A
// request that was already forwarded once is not passed on again.
func (s *Server) forward(c echo.Context, ne *NotHereError) error {
	req := c.Request()
	if req.Header.Get(ForwardedHeader) != "" || ne.Addr == "" {
		return Errorf(client.CodeNotLeaderOrFollower, "%s; this node's metadata may be behind, retry", ne.Error())
	}
	var body []byte
	if b, ok := c.Get(bodyKey).([]byte); ok {
		body = b
	} else if req.Body != nil && req.Method != http.MethodGet {
		var err error
		if body, err = s.readBody(c); err != nil {
			return err
		}
	}
	// The transport may still read a request body after Do returned: this
	// body's buffer goes to the GC, not back to the pool.
	c.Set(bodyBufKey, nil)
	url := "http://" + ne.Addr + req.URL.RequestURI()
	if ne.Path != "" {
		url = "http://" + ne.Addr + ne.Path
		if q := req.URL.RawQuery; q != "" {
			url += "?" + q
		}
	}
	out, err := http.NewRequestWithContext(req.Context(), req.Method, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	for _, h := range []string{echo.HeaderContentType, "Accept"} {
		if v := req.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	out.Header.Set(ClientAddrHeader, clientAddr(c))
	resp, err := s.fwd.do(out, s.servedBy, requestWait(req.URL.Query()))
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return Errorf(client.CodeLeaderNotAvailable, "%s is unreachable: %v", ne.Error(), err)
		}
		if req.Method == http.MethodGet || errors.Is(err, context.Canceled) {
			return Errorf(client.CodeLeaderNotAvailable, "%s did not answer: %v", ne.Error(), err)
		}
		return Errorf(client.CodeRequestTimedOut, "%s did not answer; the outcome is unknown: %v", ne.Error(), err)
	}
	defer resp.Body.Close()
	h := c.Response().Header()
	for _, k := range []string{echo.HeaderContentType, ServedByHeader} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	h.Set("Weir-Forwarded-To", strconv.Itoa(int(ne.NodeID)))
	c.Response().WriteHeader(resp.StatusCode)
	if _, err := io.Copy(flushWriter{c.Response()}, resp.Body); err != nil {
		return nil // the reply is committed; the client sees a short body
	}
	return nil
}

// flushWriter flushes after every write, so forwarded streams (follow) flow.
type flushWriter struct{ r *echo.Response }

func (w flushWriter) Write(p []byte) (int, error) {
	n, err := w.r.Write(p)
	w.r.Flush()
	return n, err
}
