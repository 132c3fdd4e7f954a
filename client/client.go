package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// HeaderServedBy is the reply header naming the node that served a call.
const HeaderServedBy = "Weir-Served-By"

// Content types of request bodies.
const (
	ContentTypeJSON   = "application/json"
	ContentTypeNDJSON = "application/x-ndjson"
	ContentTypeText   = "text/plain"
	ContentTypeOctet  = "application/octet-stream"
)

// Defaults of a Client.
const (
	DefaultAttempts            = 5
	DefaultBackoff             = 100 * time.Millisecond
	DefaultMaxBackoff          = 2 * time.Second
	DefaultDialTimeout         = 5 * time.Second
	DefaultMaxIdleConnsPerHost = 1024
)

// RetryPolicy bounds the retries of one call. Only calls that cannot be
// duplicated by a retry are retried (see Client).
type RetryPolicy struct {
	// Attempts is the number of tries including the first; 1 never retries.
	Attempts int
	// Backoff is the wait before the first retry; it doubles after each
	// retry up to MaxBackoff (at least Backoff), and each wait is jittered
	// down by up to half.
	Backoff    time.Duration
	MaxBackoff time.Duration
}

// ResponseMeta describes one HTTP reply the client received.
type ResponseMeta struct {
	Server   string // base URL of the server that answered
	Method   string
	Path     string
	Status   int
	ServedBy string // the Weir-Served-By header: the node that served the call
	Attempt  int    // 1 for the first try of the call
}

// Option configures a Client.
type Option func(*config)

type config struct {
	httpClient     *http.Client
	retry          RetryPolicy
	maxIdlePerHost int
	dialTimeout    time.Duration
	onResponse     func(ResponseMeta)
	userAgent      string
}

// WithHTTPClient makes the client send through hc instead of its own tuned
// one; WithMaxIdleConnsPerHost and WithDialTimeout are then ignored.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithRetry sets the retry policy; zero fields keep their defaults.
func WithRetry(p RetryPolicy) Option {
	return func(c *config) {
		if p.Attempts != 0 {
			c.retry.Attempts = p.Attempts
		}
		if p.Backoff != 0 {
			c.retry.Backoff = p.Backoff
		}
		if p.MaxBackoff != 0 {
			c.retry.MaxBackoff = p.MaxBackoff
		}
	}
}

// WithMaxIdleConnsPerHost sets how many keep-alive connections per server the
// pool keeps; a load generator wants at least its concurrency.
func WithMaxIdleConnsPerHost(n int) Option { return func(c *config) { c.maxIdlePerHost = n } }

// WithDialTimeout bounds connecting to one server, so that a server that
// does not answer fails over to the next. Request time is bounded by the
// context of each call.
func WithDialTimeout(d time.Duration) Option { return func(c *config) { c.dialTimeout = d } }

// WithResponseHook calls fn for every HTTP reply the client receives,
// retried ones included. fn runs on the calling goroutine and must be quick.
func WithResponseHook(fn func(ResponseMeta)) Option { return func(c *config) { c.onResponse = fn } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *config) { c.userAgent = ua } }

// Client calls the Weir REST API. It is safe for concurrent use.
//
// Servers are tried in order starting from the last one that answered; a
// connection failure moves on to the next server, an HTTP error reply does
// not. Calls are retried only where a retry cannot duplicate anything: reads
// (GET) on connection failures and retriable error codes; writes on
// retriable error codes other than REQUEST_TIMED_OUT and
// NOT_ENOUGH_REPLICAS_AFTER_APPEND (whose outcome is unknown) when the reply
// shows nothing was written, and on connection failures only when the
// connection was never established (the request provably reached no server).
type Client struct {
	servers    []string // base URLs without a trailing slash
	hc         *http.Client
	retry      RetryPolicy
	onResponse func(ResponseMeta)
	userAgent  string
	preferred  atomic.Int32 // index of the server that answered last
}

// New returns a client of the given servers: "host:port" or base URLs such
// as "http://host:port" or "https://host/prefix".
func New(servers []string, opts ...Option) (*Client, error) {
	cfg := config{
		retry:          RetryPolicy{Attempts: DefaultAttempts, Backoff: DefaultBackoff, MaxBackoff: DefaultMaxBackoff},
		maxIdlePerHost: DefaultMaxIdleConnsPerHost,
		dialTimeout:    DefaultDialTimeout,
		userAgent:      "weir-go-client",
	}
	for _, o := range opts {
		o(&cfg)
	}
	if len(servers) == 0 {
		return nil, errors.New("weir client: no server given")
	}
	if cfg.retry.Attempts < 1 || cfg.retry.Backoff < 0 {
		return nil, fmt.Errorf("weir client: invalid retry policy %+v", cfg.retry)
	}
	cfg.retry.MaxBackoff = max(cfg.retry.MaxBackoff, cfg.retry.Backoff)
	if cfg.maxIdlePerHost < 1 || cfg.dialTimeout <= 0 {
		return nil, fmt.Errorf("weir client: max idle conns per host (%d) and dial timeout (%s) must be positive",
			cfg.maxIdlePerHost, cfg.dialTimeout)
	}
	c := &Client{retry: cfg.retry, onResponse: cfg.onResponse, userAgent: cfg.userAgent, hc: cfg.httpClient}
	for _, s := range servers {
		base, err := normalizeServer(s)
		if err != nil {
			return nil, fmt.Errorf("weir client: %w", err)
		}
		c.servers = append(c.servers, base)
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: newTransport(cfg)}
	}
	return c, nil
}

func newTransport(cfg config) *http.Transport {
	dialer := &net.Dialer{Timeout: cfg.dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          0, // no global cap; the per-host cap below bounds the pool
		MaxIdleConnsPerHost:   cfg.maxIdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        64 << 10,
	}
}

func normalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty server address")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("server %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("server %q: scheme must be http or https", s)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("server %q: want [http[s]://]host:port[/prefix]", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Servers returns the base URLs the client uses, in order.
func (c *Client) Servers() []string { return append([]string(nil), c.servers...) }

// CloseIdleConnections closes the pooled connections that are idle.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// APIError is a non-2xx reply of the API.
type APIError struct {
	Status    int    // HTTP status
	Code      string // error_code; "" when the reply carried none (e.g. not JSON)
	Message   string
	Retriable bool
	ServedBy  string // the Weir-Served-By header of the reply
	Body      []byte // the raw reply body (at most maxErrorBody bytes)
}

func (e *APIError) Error() string {
	var b strings.Builder
	if e.Code != "" {
		fmt.Fprintf(&b, "%s (HTTP %d)", e.Code, e.Status)
	} else {
		fmt.Fprintf(&b, "HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.ServedBy != "" {
		fmt.Fprintf(&b, " [served by %s]", e.ServedBy)
	}
	return b.String()
}

// IsCode reports whether err is, or wraps, an *APIError with the given code.
func IsCode(err error, code string) bool {
	var e *APIError
	return code != "" && errors.As(err, &e) && e.Code == code
}

type metaKey struct{}

// CaptureMeta returns a context that makes the client store the metadata of
// the last reply of calls made with it in *m (e.g. to learn which node served
// a produce). Use the context for one call at a time.
func CaptureMeta(ctx context.Context, m *ResponseMeta) context.Context {
	return context.WithValue(ctx, metaKey{}, m)
}
