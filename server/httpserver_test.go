package server

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
)

// TestIdleConnsCap: past the cap, a connection that goes idle is closed;
// one that becomes active again frees its place.
func TestIdleConnsCap(t *testing.T) {
	ic := &idleConns{max: 2, conns: map[net.Conn]struct{}{}}
	pipe := func() (server, client net.Conn) {
		s, c := net.Pipe()
		t.Cleanup(func() { s.Close(); c.Close() })
		return s, c
	}
	closed := func(c net.Conn) bool {
		_, err := c.Read(make([]byte, 1))
		return errors.Is(err, io.EOF)
	}
	s1, _ := pipe()
	s2, _ := pipe()
	s3, c3 := pipe()
	ic.track(s1, http.StateIdle)
	ic.track(s2, http.StateIdle)
	ic.track(s3, http.StateIdle)
	if !closed(c3) {
		t.Fatal("the third idle connection was not closed")
	}
	ic.track(s3, http.StateClosed)
	ic.track(s1, http.StateActive) // a new request on it: no longer idle
	s4, c4 := pipe()
	ic.track(s4, http.StateIdle)
	if len(ic.conns) != 2 {
		t.Fatalf("%d idle connections tracked, want 2", len(ic.conns))
	}
	ic.track(s1, http.StateIdle)
	if _, ok := ic.conns[s1]; ok {
		t.Fatal("a connection past the cap was kept")
	}
	go func() { _, _ = s4.Write([]byte("x")) }() // s4 is still open: it can write
	if _, err := c4.Read(make([]byte, 1)); err != nil {
		t.Fatalf("an idle connection under the cap was closed: %v", err)
	}
}
