package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// The node's http.Server has a write timeout: a request must be answered
// within it from the end of its headers, which cuts off clients that do not
// read their replies. Long polls and streams wait longer by design (consume
// and group polls with wait_ms, produce with timeout_ms, the follow stream,
// follower fetches, other nodes' reads for a poll or a stream): for them the
// deadline moves before every write instead, so each write still gets the
// whole timeout however long the wait before it.

// longRequests gives long polls and streams a write deadline per write.
func (s *Server) longRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.opts.WriteTimeout > 0 && isLong(c) {
			r := c.Response()
			r.Writer = &deadlineWriter{ResponseWriter: r.Writer, rc: http.NewResponseController(r.Writer), timeout: s.opts.WriteTimeout}
		}
		return next(c)
	}
}

// isLong: a request that may wait past the write timeout. A client that
// marks a short request long gains nothing: each write is still bounded.
func isLong(c echo.Context) bool {
	if p := c.Path(); p == "/internal/v1/fetch" || p == "/internal/v1/read" { // long polls, their wait in the body
		return true
	}
	q := c.QueryParams()
	return q.Has("wait_ms") || q.Has("timeout_ms") || q.Has("follow")
}

// deadlineWriter moves the connection's write deadline before each write
// and flush.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	if err := w.rc.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, err
	}
	return w.ResponseWriter.Write(p)
}

// FlushError is what http.ResponseController (and so echo) flushes with.
func (w *deadlineWriter) FlushError() error {
	if err := w.rc.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	return w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
