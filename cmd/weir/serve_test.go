package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"weir/server"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fakeNode struct {
	run func(ctx context.Context) error
}

func (f fakeNode) Run(ctx context.Context) error { return f.run(ctx) }

// harness runs `weir serve` in-process with a fake node, fake signals and a
// recorded exit.
type harness struct {
	app     *app
	stderr  *syncBuffer
	sigs    chan chan<- os.Signal // the channel serve registered for signals
	exits   chan int
	started chan server.Config
}

func newHarness(run func(ctx context.Context) error) *harness {
	h := &harness{
		stderr:  &syncBuffer{},
		sigs:    make(chan chan<- os.Signal, 1),
		exits:   make(chan int, 2),
		started: make(chan server.Config, 1),
	}
	h.app = &app{
		stdout:     &syncBuffer{},
		stderr:     h.stderr,
		lookupEnv:  func(string) (string, bool) { return "", false },
		notify:     func(c chan<- os.Signal, _ ...os.Signal) { h.sigs <- c },
		stopNotify: func(chan<- os.Signal) {},
		exit:       func(code int) { h.exits <- code },
		newNode: func(cfg server.Config, _ *slog.Logger) (runner, error) {
			h.started <- cfg
			return fakeNode{run}, nil
		},
		shutdownGrace: 0,
	}
	return h
}

func (h *harness) start(t *testing.T, args ...string) <-chan int {
	t.Helper()
	code := make(chan int, 1)
	go func() { code <- run(context.Background(), append([]string{"serve"}, args...), h.app) }()
	return code
}

func waitCode(t *testing.T, ch <-chan int) int {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
		return -1
	}
}

func TestFirstSignalShutsDownCleanly(t *testing.T) {
	h := newHarness(func(ctx context.Context) error { <-ctx.Done(); return nil })
	code := h.start(t, "--node-id", "3")
	sigs := <-h.sigs
	if cfg := <-h.started; cfg.NodeID != 3 {
		t.Fatalf("node got node_id %d", cfg.NodeID)
	}
	sigs <- syscall.SIGTERM
	if c := waitCode(t, code); c != 0 {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", c, h.stderr)
	}
	select {
	case c := <-h.exits:
		t.Fatalf("exit(%d) called on a clean shutdown", c)
	default:
	}
	if !strings.Contains(h.stderr.String(), "shutting down") {
		t.Fatalf("stderr:\n%s", h.stderr)
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		want int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			release := make(chan struct{})
			// A node whose shutdown hangs.
			h := newHarness(func(ctx context.Context) error { <-ctx.Done(); <-release; return nil })
			code := h.start(t)
			sigs := <-h.sigs
			<-h.started
			sigs <- tc.sig
			sigs <- tc.sig
			select {
			case c := <-h.exits:
				if c != tc.want {
					t.Fatalf("exit(%d), want %d", c, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("second signal did not exit")
			}
			close(release)
			waitCode(t, code)
		})
	}
}

func TestShutdownBackstop(t *testing.T) {
	release := make(chan struct{})
	h := newHarness(func(ctx context.Context) error { <-ctx.Done(); <-release; return nil })
	code := h.start(t, "--shutdown-timeout-ms", "50")
	sigs := <-h.sigs
	<-h.started
	sigs <- syscall.SIGINT
	select {
	case c := <-h.exits:
		if c != 1 {
			t.Fatalf("exit(%d), want 1", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a hung shutdown was not cut off")
	}
	close(release)
	waitCode(t, code)
}

func TestRunErrorExitsOne(t *testing.T) {
	h := newHarness(func(context.Context) error { return errors.New("disk on fire") })
	code := h.start(t)
	<-h.sigs
	<-h.started
	if c := waitCode(t, code); c != 1 {
		t.Fatalf("exit %d, want 1", c)
	}
	if !strings.Contains(h.stderr.String(), "weir: node 1: disk on fire\n") {
		t.Fatalf("stderr:\n%s", h.stderr)
	}
}

func TestConfigErrorStartsNothing(t *testing.T) {
	h := newHarness(func(context.Context) error { t.Error("node ran"); return nil })
	code := h.start(t, "--fsync", "sometimes")
	if c := waitCode(t, code); c != 2 {
		t.Fatalf("exit %d, want 2", c)
	}
	if got := h.stderr.String(); got != "weir: fsync: \"sometimes\" is not one of always, never (from --fsync)\n" {
		t.Fatalf("stderr %q", got)
	}
	select {
	case <-h.sigs:
		t.Fatal("signals caught before the config was valid")
	default:
	}
}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	cfg := server.DefaultConfig()
	cfg.LogFormat, cfg.LogLevel = "json", "warn"
	l := newLogger(&buf, cfg)
	l.Info("hidden")
	l.Warn("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %q: %v", buf.String(), err)
	}
	if rec["msg"] != "shown" || rec["level"] != "WARN" {
		t.Fatalf("record %v", rec)
	}

	buf.Reset()
	cfg.LogFormat, cfg.LogLevel = "text", "debug"
	newLogger(&buf, cfg).Debug("dbg")
	if !strings.Contains(buf.String(), "level=DEBUG msg=dbg") {
		t.Fatalf("text log %q", buf.String())
	}
}
