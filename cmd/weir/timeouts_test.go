package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// readUntilClosed reads conn until the server closes it and returns what
// it read; it fails the test if the connection is still open at the deadline.
func readUntilClosed(t *testing.T, conn net.Conn, deadline time.Time, what string) string {
	t.Helper()
	if err := conn.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the connection was still open at the deadline (read %q)", what, got)
	}
	return string(got)
}

// TestHTTPTimeouts: a client that trickles a request body is cut off by
// http_read_timeout_ms, an idle keep-alive connection is closed after
// http_idle_timeout_ms, and a long poll still outlives http_write_timeout_ms
// (the follow stream's is tested in http's TestLongRequestsOutliveTheWriteTimeout).
// The idle timeout is far shorter than the read timeout because net/http
// falls back to the read timeout for idle connections when none is set: with
// the two equal, the idle check could not tell whether the key was applied.
func TestHTTPTimeouts(t *testing.T) {
	const readTimeout, idleTimeout = 4 * time.Second, 300 * time.Millisecond
	n := startNode(t, "--http-read-timeout-ms", itoa(int(readTimeout.Milliseconds())),
		"--http-idle-timeout-ms", itoa(int(idleTimeout.Milliseconds())),
		"--request-timeout-ms", "1500", "--http-write-timeout-ms", "2000")
	st, body := call(t, "POST", n.url()+"/v1/topics", "application/json", []byte(`{"name":"slow","partitions":1}`))
	if st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, body)
	}

	// Five slow senders, a byte of body every 200 ms: the whole body would
	// take 20 s; each is cut off after the read timeout.
	start := time.Now()
	var conns []net.Conn
	for range 5 {
		conn, err := net.Dial("tcp", n.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "POST /v1/topics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	trickled := make(chan struct{})
	stop := make(chan struct{})
	go func() { // owned by the test: ends on stop, or once every write fails
		defer close(trickled)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			open := 0
			for _, c := range conns {
				if _, err := c.Write([]byte(" ")); err == nil {
					open++
				}
			}
			if open == 0 {
				return
			}
		}
	}()
	for i, c := range conns {
		readUntilClosed(t, c, start.Add(15*time.Second), "slow sender "+itoa(i+1))
	}
	close(stop)
	<-trickled
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the slow senders were held %v", d)
	}

	// An idle keep-alive connection is closed after the idle timeout, well
	// before the read timeout (the fallback) would close it.
	conn, err := net.Dial("tcp", n.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("livez: %s, close %v", resp.Status, resp.Close)
	}
	idleSince := time.Now()
	if err := conn.SetReadDeadline(idleSince.Add(readTimeout / 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadByte(); err == nil || os.IsTimeout(err) {
		t.Fatalf("an idle keep-alive connection with a %v idle timeout: %v after %v, want it closed", idleTimeout, err, time.Since(idleSince))
	}

	// A long poll past the write timeout still gets its reply.
	start = time.Now()
	st, body = call(t, "GET", n.url()+"/v1/topics/slow/partitions/0/records?offset=0&wait_ms=3000", "", nil)
	if st != http.StatusOK || !strings.Contains(string(body), `"records":[]`) || time.Since(start) < 3*time.Second {
		t.Fatalf("a 3 s long poll with a 2 s write timeout: %d %s after %v", st, body, time.Since(start))
	}
}
