package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// forwarder passes requests to their owner over pooled keep-alive connections.
type forwarder struct {
	client *http.Client
}

// newForwarder's requests carry the cluster credential (when there is one):
// the owner then believes their forwarding headers.
func newForwarder(timeout time.Duration, keys *nodeauth.Keys) *forwarder {
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
	return &forwarder{client: &http.Client{Transport: tr, Timeout: timeout}}
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
	out.Header.Set(ForwardedHeader, s.servedBy)
	out.Header.Set(ClientAddrHeader, clientAddr(c))
	resp, err := s.fwd.client.Do(out)
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
