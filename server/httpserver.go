package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// newHTTPServer is the node's http.Server: every request gets its headers
// within 10 s and its body within http_read_timeout_ms, its reply within
// http_write_timeout_ms (the API extends that for long polls and streams),
// and keep-alive connections are closed after http_idle_timeout_ms idle or
// once more than http_max_idle_conns are idle.
func (n *Node) newHTTPServer(h http.Handler, base context.Context) *http.Server {
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	idle := &idleConns{max: int(n.cfg.HTTPMaxIdleConns), conns: map[net.Conn]struct{}{}}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, ms(n.cfg.HTTPReadTimeoutMs)),
		ReadTimeout:       ms(n.cfg.HTTPReadTimeoutMs),
		WriteTimeout:      ms(n.cfg.HTTPWriteTimeoutMs),
		IdleTimeout:       ms(n.cfg.HTTPIdleTimeoutMs),
		ConnState:         idle.track,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn),
	}
}

// idleConns caps the keep-alive connections that sit idle: one that goes
// idle past the cap is closed at once (its client simply dials again), so
// idle connections cannot pile up to the open-files limit.
type idleConns struct {
	max   int
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// track is the server's ConnState hook; net/http calls it from the
// connection's own goroutine.
func (ic *idleConns) track(c net.Conn, state http.ConnState) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if state != http.StateIdle {
		delete(ic.conns, c)
		return
	}
	if len(ic.conns) >= ic.max {
		// Closing makes the server's wait for the next request fail, which
		// ends the connection (and reports StateClosed).
		_ = c.Close()
		return
	}
	ic.conns[c] = struct{}{}
}
