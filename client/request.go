package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxErrorBody bounds how much of an error reply is read (a failed produce of
// many records lists one outcome per record).
const maxErrorBody = 4 << 20

// maxDrain bounds how much unread reply is drained to keep a connection.
const maxDrain = 64 << 10

// call is one API call: what to send and how it may be retried. A call is
// used by one goroutine at a time.
type call struct {
	method   string
	path     string // escaped, starting with "/"
	rawQuery string
	accept   string     // Accept header; JSON when empty
	body     *reqSource // nil: no body
	// read marks calls without side effects (GET): retried on any
	// connection failure and any retriable error.
	read bool
	// noRetry: one attempt, though still failing over on connection errors.
	noRetry bool
	// retryOK, when set, must also agree before a write is retried after an
	// error reply (e.g. a produce only when the reply shows nothing written).
	retryOK func(*APIError) bool
}

func (cl *call) mayRetry(e *APIError) bool {
	if cl.noRetry || !e.Retriable {
		return false
	}
	if cl.read {
		return true
	}
	// The two outcomes that are unknown: a retry could duplicate the write.
	if e.Code == CodeRequestTimedOut || e.Code == CodeNotEnoughReplicasAfterAppend ||
		e.Status == http.StatusGatewayTimeout {
		return false
	}
	return cl.retryOK == nil || cl.retryOK(e)
}

// get is a GET decoding the JSON reply into out.
func (c *Client) get(ctx context.Context, path string, query url.Values, out any) error {
	_, err := c.doJSON(ctx, &call{method: http.MethodGet, path: path, rawQuery: query.Encode(), read: true}, out)
	return err
}

// send is a write with an optional JSON body (in) and reply (out). It
// reports whether the reply had a body.
func (c *Client) send(ctx context.Context, method, path string, in, out any) (bool, error) {
	cl := &call{method: method, path: path}
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return false, fmt.Errorf("encoding the request: %w", err)
		}
		cl.body = bytesSource(ContentTypeJSON, data)
	}
	return c.doJSON(ctx, cl, out)
}

// doJSON runs cl and decodes a JSON reply into out (when out is not nil),
// reporting whether the reply had a body.
func (c *Client) doJSON(ctx context.Context, cl *call, out any) (bool, error) {
	resp, err := c.do(ctx, cl)
	if err != nil {
		return false, err
	}
	return decodeBody(resp, out)
}

func decodeBody(resp *http.Response, out any) (bool, error) {
	defer resp.Body.Close()
	present := false
	if out != nil && resp.StatusCode != http.StatusNoContent {
		err := json.NewDecoder(resp.Body).Decode(out)
		switch {
		case err == nil:
			present = true
		case !errors.Is(err, io.EOF):
			return false, fmt.Errorf("decoding the reply: %w", err)
		}
	}
	drain(resp.Body)
	return present, nil
}

// drain reads what is left of a reply so that its connection can be reused.
func drain(body io.Reader) {
	_, _ = io.CopyN(io.Discard, body, maxDrain)
}

// discardBody drains and closes a successful reply whose content is not needed.
func discardBody(resp *http.Response) {
	drain(resp.Body)
	resp.Body.Close()
}

// do runs cl with failover and retries, returning a 2xx reply whose body the
// caller must close, or an error (an *APIError for error replies).
func (c *Client) do(ctx context.Context, cl *call) (*http.Response, error) {
	attempts := c.retry.Attempts
	if cl.noRetry {
		attempts = 1
	}
	for attempt := 1; ; attempt++ {
		resp, retry, err := c.sweep(ctx, cl, attempt)
		if err == nil {
			return resp, nil
		}
		if !retry || attempt >= attempts || (cl.body != nil && !cl.body.reusable()) {
			return nil, err
		}
		if werr := c.backoff(ctx, attempt); werr != nil {
			return nil, fmt.Errorf("%w (retry abandoned: %w)", err, werr)
		}
	}
}

// sweep makes one attempt: the servers in order from the preferred one, until
// one replies. retry tells whether the failure allows another attempt.
func (c *Client) sweep(ctx context.Context, cl *call, attempt int) (resp *http.Response, retry bool, err error) {
	n := len(c.servers)
	first := int(c.preferred.Load())
	var connErrs []error
	for i := range n {
		idx := (first + i) % n
		resp, err := c.roundTrip(ctx, cl, idx)
		if err != nil {
			var local *localError
			if ctx.Err() != nil || errors.As(err, &local) {
				return nil, false, err
			}
			if !cl.read && !isDialError(err) {
				return nil, false, fmt.Errorf("%w (the request may have reached the server, so it is not retried)", err)
			}
			if cl.body != nil && !cl.body.reusable() {
				return nil, false, err
			}
			connErrs = append(connErrs, err)
			continue
		}
		if idx != first {
			c.preferred.CompareAndSwap(int32(first), int32(idx))
		}
		c.report(ctx, cl, idx, resp, attempt)
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, false, nil
		}
		apiErr := readAPIError(resp)
		return nil, cl.mayRetry(apiErr), apiErr
	}
	if n == 1 {
		return nil, true, connErrs[0]
	}
	return nil, true, fmt.Errorf("no server reachable: %w", errors.Join(connErrs...))
}

func (c *Client) roundTrip(ctx context.Context, cl *call, idx int) (*http.Response, error) {
	u := c.servers[idx] + cl.path
	if cl.rawQuery != "" {
		u += "?" + cl.rawQuery
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u, nil)
	if err != nil {
		return nil, &localError{fmt.Errorf("building the request: %w", err)}
	}
	if cl.body != nil {
		if err := cl.body.attach(ctx, req); err != nil {
			return nil, &localError{err}
		}
	}
	accept := cl.accept
	if accept == "" {
		accept = ContentTypeJSON
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.userAgent)
	return c.hc.Do(req)
}

func (c *Client) report(ctx context.Context, cl *call, idx int, resp *http.Response, attempt int) {
	capture, _ := ctx.Value(metaKey{}).(*ResponseMeta)
	if c.onResponse == nil && capture == nil {
		return
	}
	m := ResponseMeta{
		Server: c.servers[idx], Method: cl.method, Path: cl.path, Status: resp.StatusCode,
		ServedBy: resp.Header.Get(HeaderServedBy), Attempt: attempt,
	}
	if capture != nil {
		*capture = m
	}
	if c.onResponse != nil {
		c.onResponse(m)
	}
}

// backoff waits before retry number attempt (1-based), or until ctx ends.
func (c *Client) backoff(ctx context.Context, attempt int) error {
	d := c.retry.Backoff
	for i := 1; i < attempt && d < c.retry.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.retry.MaxBackoff)
	if d > 0 {
		d = d/2 + rand.N(d/2+1)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// localError is a failure before anything was sent: not worth a retry.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// isDialError reports whether err happened while connecting, before any byte
// of the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// readAPIError turns an error reply into an *APIError and closes its body.
func readAPIError(resp *http.Response) *APIError {
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{Status: resp.StatusCode, ServedBy: resp.Header.Get(HeaderServedBy), Body: raw}
	var eb ErrorBody
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &eb) == nil {
		e.Code, e.Message, e.Retriable = eb.ErrorCode, eb.Message, eb.Retriable
	} else {
		// Not the API's JSON (a proxy, a crash page): keep the text, and treat
		// 503 as "not served", which is what it means.
		const maxText = 512
		if len(trimmed) > maxText {
			trimmed = append(trimmed[:maxText:maxText], "..."...)
		}
		e.Message = strings.ToValidUTF8(string(trimmed), "?")
		e.Retriable = resp.StatusCode == http.StatusServiceUnavailable
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if readErr != nil {
		e.Message += " (reading the reply failed: " + readErr.Error() + ")"
	}
	return e
}

// reqSource is a request body that can be sent again when a call is retried
// or fails over: bytes always; a seekable reader by seeking back; a plain
// reader only while the transport has not read from it.
type reqSource struct {
	contentType string
	data        []byte
	seeker      io.ReadSeeker
	start, size int64
	stream      io.Reader
	last        *trackedBody // body of the previous attempt (seeker, stream)
}

func bytesSource(contentType string, data []byte) *reqSource {
	return &reqSource{contentType: contentType, data: data}
}

// readerSource wraps r; a *bytes.Buffer is consumed at once.
func readerSource(contentType string, r io.Reader) (*reqSource, error) {
	switch b := r.(type) {
	case nil:
		return bytesSource(contentType, nil), nil
	case *bytes.Buffer:
		return bytesSource(contentType, b.Next(b.Len())), nil
	case io.ReadSeeker:
		start, err := b.Seek(0, io.SeekCurrent)
		if err != nil {
			break // not seekable after all (a pipe): a stream
		}
		end, err := b.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, fmt.Errorf("measuring the body: %w", err)
		}
		if _, err := b.Seek(start, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewinding the body: %w", err)
		}
		return &reqSource{contentType: contentType, seeker: b, start: start, size: end - start}, nil
	}
	return &reqSource{contentType: contentType, stream: r}, nil
}

// reusable reports whether the body can be sent again.
func (s *reqSource) reusable() bool {
	return s.stream == nil || s.last == nil || !s.last.touched.Load()
}

// attach sets the body of req for one attempt.
func (s *reqSource) attach(ctx context.Context, req *http.Request) error {
	req.Header.Set("Content-Type", s.contentType)
	if s.seeker == nil && s.stream == nil {
		if len(s.data) == 0 {
			req.Body, req.ContentLength = http.NoBody, 0
			return nil
		}
		data := s.data
		req.ContentLength = int64(len(data))
		req.Body = io.NopCloser(bytes.NewReader(data))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		return nil
	}
	if s.last != nil {
		// The transport may close a body after RoundTrip returned: reuse the
		// reader only once it is done with it.
		select {
		case <-s.last.closed:
		case <-ctx.Done():
			return ctx.Err()
		}
		if s.stream != nil && s.last.touched.Load() {
			return errors.New("the request body was already sent and cannot be sent again")
		}
	}
	b := &trackedBody{closed: make(chan struct{})}
	if s.seeker != nil {
		if _, err := s.seeker.Seek(s.start, io.SeekStart); err != nil {
			return fmt.Errorf("rewinding the body: %w", err)
		}
		b.r = io.LimitReader(s.seeker, s.size)
		req.ContentLength = s.size
	} else {
		b.r = s.stream
		req.ContentLength = -1
	}
	req.Body = b
	s.last = b
	return nil
}

// trackedBody is one attempt's body: it records whether it was read and
// when the transport closed it; closing leaves the caller's reader open.
type trackedBody struct {
	r         io.Reader
	touched   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{}
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.touched.Store(true)
	return b.r.Read(p)
}

func (b *trackedBody) Close() error {
	b.closeOnce.Do(func() { close(b.closed) })
	return nil
}

// v1 builds an escaped API path from segments: v1("topics", t) = "/v1/topics/t".
func v1(segs ...string) string {
	var b strings.Builder
	b.WriteString("/v1")
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
