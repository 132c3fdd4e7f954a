package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"weir/client"
	"weir/logstore"
	"weir/nodeauth"
)

// These tests run real nodes in this process (real Raft, real HTTP on
// 127.0.0.1, real files): in-process so that a node's logs can be handed a
// failing disk.

// failingDisk is the real file system until armed; then every fsync of the
// files of one partition directory fails with EIO, as a broken disk's would.
type failingDisk struct {
	logstore.OSFS
	dir atomic.Pointer[string] // the partition dir name ("topic-0") whose fsyncs fail
}

func (d *failingDisk) fail(partitionDir string) { d.dir.Store(&partitionDir) }

func (d *failingDisk) failing(path string) bool {
	p := d.dir.Load()
	return p != nil && (filepath.Base(path) == *p || filepath.Base(filepath.Dir(path)) == *p)
}

func (d *failingDisk) Sync(f *os.File) error {
	if d.failing(f.Name()) {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: syscall.EIO}
	}
	return d.OSFS.Sync(f)
}

func (d *failingDisk) SyncDir(dir string) error {
	if d.failing(dir) {
		return &os.PathError{Op: "fsync", Path: dir, Err: syscall.EIO}
	}
	return d.OSFS.SyncDir(dir)
}

// logBuffer keeps a node's log, shown when the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	return s[max(0, len(s)-n):]
}

// testNode is one in-process node; start and stop may be repeated (a restart).
type testNode struct {
	t      *testing.T
	cfg    Config
	disk   *failingDisk
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error
}

// startNodes starts n voters with their own failing disks and waits until
// every one is ready. Cleanup stops the ones still running.
func startNodes(t *testing.T, n int) []*testNode {
	t.Helper()
	nodes := newTestNodes(t, n)
	for _, nd := range nodes {
		nd.start()
	}
	for _, nd := range nodes {
		nd.waitReady()
	}
	return nodes
}

// newTestNodes configures n voters (a cluster secret, temp data dirs, free
// loopback ports) without starting them; cleanup stops the ones running.
func newTestNodes(t *testing.T, n int) []*testNode {
	t.Helper()
	var voters []Voter
	nodes := make([]*testNode, n)
	secret, err := nodeauth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		cfg := DefaultConfig()
		cfg.ClusterSecret = secret
		cfg.NodeID = int32(i + 1)
		cfg.DataDir = t.TempDir()
		cfg.HTTPAddr, cfg.RaftAddr = freeAddr(t), freeAddr(t)
		cfg.ShutdownTimeoutMs = 10_000
		voters = append(voters, Voter{ID: cfg.NodeID, RaftAddr: cfg.RaftAddr})
		nodes[i] = &testNode{t: t, cfg: cfg, disk: &failingDisk{}, logs: &logBuffer{}}
	}
	for _, nd := range nodes {
		nd.cfg.Voters = voters
		t.Cleanup(func() {
			if nd.cancel != nil {
				_ = nd.stop()
			}
			if t.Failed() {
				t.Logf("node %d log:\n%s", nd.cfg.NodeID, nd.logs.tail(6000))
			}
		})
	}
	return nodes
}

func (nd *testNode) start() {
	nd.t.Helper()
	logger := slog.New(slog.NewTextHandler(nd.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := New(nd.cfg, logger, WithLogFS(nd.disk))
	if err != nil {
		nd.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd.cancel, nd.done = cancel, make(chan error, 1)
	go func() { nd.done <- n.Run(ctx) }()
}

// stop shuts the node down and returns what Run returned.
func (nd *testNode) stop() error {
	nd.cancel()
	nd.cancel = nil
	return <-nd.done
}

func (nd *testNode) url() string { return "http://" + nd.cfg.HTTPAddr }

func (nd *testNode) client(t *testing.T) *client.Client {
	t.Helper()
	cl, err := client.New([]string{nd.url()}, client.WithRetry(client.RetryPolicy{Attempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.CloseIdleConnections)
	return cl
}

func (nd *testNode) waitReady() {
	nd.t.Helper()
	cl := nd.client(nd.t)
	waitFor(nd.t, 60*time.Second, fmt.Sprintf("node %d ready", nd.cfg.NodeID), func() error {
		select {
		case err := <-nd.done:
			nd.cancel = nil
			nd.t.Fatalf("node %d stopped before it was ready: %v", nd.cfg.NodeID, err)
		default:
		}
		ok, err := cl.Readyz(context.Background())
		if err == nil && !ok {
			err = errors.New("not ready")
		}
		return err
	})
}

// waitFor polls cond until it returns nil, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, bounded by the deadline
	}
}
