package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/logstore"
	"weir/nodeauth"
	"weir/replication"
)

// ServedByHeader names the node that answered, on every reply.
const ServedByHeader = "Weir-Served-By"

// Partition is what the API needs of a partition replica led by this node.
type Partition interface {
	Append(ctx context.Context, batch []byte, acks replication.Acks) (logstore.AppendResult, error)
	Read(offset int64, maxBytes int) (logstore.ReadResult, int64, error)
	WaitHW(ctx context.Context, offset int64) error
	Changed() <-chan struct{}
	HighWatermark() int64
	// LeaderEpochStartOffset is where this leader's epoch began (-1 if not leader).
	LeaderEpochStartOffset() int64
	Log() *logstore.Log
}

// TopicInfo is what produce and consume need to know of a topic.
type TopicInfo struct {
	Name            string
	Partitions      int
	MaxMessageBytes int
	// Internal topics (__consumer_offsets) are written by the cluster only.
	Internal bool
}

// Backend is the node's services as the API sees them.
type Backend interface {
	NodeID() int32
	// Ready: joined, metadata caught up and a controller known.
	Ready() bool
	// MetadataCurrent: the controller answered this node lately and the node
	// applied the metadata it reported. A leader that is not current may be a
	// stale one (cut off, or just healed): it must not tell a consumer that an
	// offset is past its log end, since the real leader's log may be longer.
	MetadataCurrent() bool
	Cluster(ctx context.Context) (client.Cluster, error)
	Health(ctx context.Context) (client.Health, error)
	DeleteBroker(ctx context.Context, id int32) error

	ListTopics(ctx context.Context, internal bool) (client.TopicList, error)
	CreateTopic(ctx context.Context, req client.CreateTopicRequest) (client.Topic, error)
	Topic(ctx context.Context, name string) (client.Topic, error)
	AlterTopic(ctx context.Context, name string, req client.AlterTopicRequest) (client.Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	// TopicOffsets reports every partition's log start, HW and LEO (and the
	// offset for a timestamp), from each partition's leader.
	TopicOffsets(ctx context.Context, name string, timestamp *int64) (client.TopicOffsets, error)

	// TopicInfo fails with UNKNOWN_TOPIC_OR_PARTITION for a missing topic.
	TopicInfo(name string) (TopicInfo, error)
	// Partition returns the local leader replica, or an API error (unknown, no leader).
	Partition(topic string, partition int32) (Partition, error)
	// AnyChanged is closed when any partition's HW moves (readers waiting
	// on many partitions: streams, group polls, other nodes' reads).
	AnyChanged() <-chan struct{}
	Codecs() *logstore.Codecs
}

// Options configure the API server.
type Options struct {
	Backend         Backend
	Logger          *slog.Logger
	MaxRequestBytes int64
	// MaxRequestRecords bounds the records of one produce request.
	MaxRequestRecords int
	// RequestTimeout bounds a produce's wait when the request gives no
	// timeout_ms, and what a forwarded call may take besides its own wait.
	RequestTimeout time.Duration
	Metrics        *Metrics
	// Internal serves /internal/v1 (node-to-node); nil leaves it out.
	Internal Internal
	// Groups serves /v1/groups; nil leaves the routes out.
	Groups Groups
	// Cluster is the credential nodes present to each other: /internal/v1
	// and the forwarding headers take only requests that carry it, and this
	// node's forwarded requests carry it. Nil trusts no request.
	Cluster *nodeauth.Keys
	// TrustedProxies may name the client in X-Forwarded-For; none: the
	// client is the connection's peer.
	TrustedProxies []*net.IPNet
	// Hosts are the Host headers the node answers (see HostPolicy); the
	// zero policy answers IP literals and local names only.
	Hosts HostPolicy
	// WriteTimeout is the http.Server's: long polls and streams move their
	// write deadline by it before each write (0: they do not).
	WriteTimeout time.Duration
}

// Server is the REST API of one node.
type Server struct {
	e        *echo.Echo
	b        Backend
	log      *slog.Logger
	opts     Options
	metrics  *Metrics
	servedBy string
	sticky   stickyCounter
	fwd      *forwarder
	refusals *nodeauth.RefusalLog // requests refused for their credential
	bodies   sync.Pool            // *bytes.Buffer: request bodies
	produces sync.Pool            // *produceState: a produce's batches and bookkeeping
	// pollTurn rotates the partition a group poll serves first.
	pollTurn atomic.Uint64
	// replies holds reply buffers for reuse (consume replies).
	replies sync.Pool
	// shapes caches the fields of the types JSON bodies are checked against.
	shapes shapes
}

// New builds the API server.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 16 << 20
	}
	if opts.MaxRequestRecords <= 0 {
		opts.MaxRequestRecords = DefaultMaxRequestRecords
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	s := &Server{e: echo.New(), b: opts.Backend, log: opts.Logger, opts: opts, metrics: opts.Metrics,
		servedBy: strconv.Itoa(int(opts.Backend.NodeID()))}
	s.fwd = newForwarder(opts.RequestTimeout, opts.Cluster)
	s.refusals = nodeauth.NewRefusalLog(opts.Logger, "refused a node-to-node request: no or a wrong cluster credential", 10*time.Second)
	s.e.HideBanner, s.e.HidePort = true, true
	s.e.HTTPErrorHandler = s.handleError
	s.e.IPExtractor = ipExtractor(opts.TrustedProxies)
	s.e.Use(s.middleware, s.hostGuard, s.nodeHeaders, s.longRequests)
	s.routes()
	return s
}

// Handler is the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.e }

func (s *Server) routes() {
	// GET routes answer HEAD too, as net/http servers do (net/http drops a
	// HEAD reply's body). Routes whose GET has side effects or may not end
	// (the group poll, the record stream with or without follow) stay GET
	// only: HEAD there is 405 with Allow.
	getHead := []string{http.MethodGet, http.MethodHead}
	e := s.e
	e.Match(getHead, "/livez", s.livez)
	e.Match(getHead, "/readyz", s.readyz)
	if s.metrics != nil {
		e.Match(getHead, "/metrics", echo.WrapHandler(s.metrics.Handler()))
	}
	v1 := e.Group("/v1")
	v1.Match(getHead, "/cluster", s.getCluster)
	v1.Match(getHead, "/brokers", s.getBrokers)
	v1.Match(getHead, "/brokers/:id", s.getBroker)
	v1.DELETE("/brokers/:id", s.deleteBroker)
	v1.Match(getHead, "/health", s.getHealth)

	v1.Match(getHead, "/topics", s.listTopics)
	v1.POST("/topics", s.createTopic)
	v1.Match(getHead, "/topics/:topic", s.getTopic)
	v1.PATCH("/topics/:topic", s.alterTopic)
	v1.DELETE("/topics/:topic", s.deleteTopic)
	v1.Match(getHead, "/topics/:topic/offsets", s.topicOffsets)

	v1.POST("/topics/:topic/records", s.produce)
	v1.POST("/topics/:topic/partitions/:partition/records", s.produce)
	v1.Match(getHead, "/topics/:topic/partitions/:partition/records", s.consume)
	v1.GET("/topics/:topic/records", s.stream)
	if s.opts.Groups != nil {
		s.groupRoutes(v1)
	}
	s.internalRoutes()
}

// middleware stamps Weir-Served-By, unescapes the path parameters, recovers
// panics into 500s, records metrics and takes the body buffer back.
func (s *Server) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		start := time.Now()
		c.Response().Header().Set(ServedByHeader, s.servedBy)
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("panic in handler", "path", c.Path(), "panic", r)
				err = Errorf(client.CodeUnknownServerError, "internal error")
			}
			if err != nil {
				c.Error(err) // forwards a request another node owns, with its body
			}
			s.releaseBody(c)
			if s.metrics != nil {
				route := c.Path()
				if route == "" {
					route = "unmatched"
				}
				s.metrics.observeRequest(c.Request().Method, route, c.Response().Status, time.Since(start))
			}
		}()
		if err := decodeParams(c); err != nil {
			return err
		}
		if err := checkTopicParam(c); err != nil {
			return err
		}
		return next(c)
	}
}

// handleError renders every error as the API's JSON error body.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ne *NotHereError
	if errors.As(err, &ne) {
		if ferr := s.forward(c, ne); ferr != nil {
			err = ferr
		} else {
			return
		}
	}
	var ae *Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			ae = Errorf(client.CodeNotFound, "no route for %s %s", c.Request().Method, c.Request().URL.Path)
		case http.StatusMethodNotAllowed:
			ae = Errorf(client.CodeMethodNotAllowed, "method %s is not allowed on %s", c.Request().Method, c.Request().URL.Path)
		case http.StatusRequestEntityTooLarge:
			ae = Errorf(client.CodeRecordListTooLarge, "the request body is larger than %d bytes", s.opts.MaxRequestBytes)
		default:
			ae = &Error{Status: he.Code, Code: client.CodeInvalidRequest, Message: http.StatusText(he.Code)}
		}
	default:
		ae = asAPIError(err)
	}
	if ae.Status >= 500 && ae.Code == client.CodeUnknownServerError {
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	writeError(c, ae)
}

func writeError(c echo.Context, ae *Error) {
	_ = writeJSON(c, ae.Status, client.ErrorBody{ErrorCode: ae.Code, Message: clipInput(ae.Message, maxMessageBytes), Retriable: ae.Retriable,
		LogStartOffset: ae.LogStartOffset, HighWatermark: ae.HighWatermark})
}

// writeJSON encodes v without echo's reflection-heavy path and with a trailing newline (nice for curl).
func writeJSON(c echo.Context, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(status)
	body = append(body, '\n')
	_, err = c.Response().Write(body)
	return err
}

func (s *Server) livez(c echo.Context) error {
	return writeJSON(c, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	if !s.b.Ready() {
		return writeJSON(c, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
	}
	return writeJSON(c, http.StatusOK, map[string]string{"status": "ready"})
}
