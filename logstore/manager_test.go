package logstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func managerConfig() Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 2 << 10
	cfg.IndexIntervalBytes = 128
	cfg.Fsync = FsyncNever
	return cfg
}

func fill(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		appendKV(t, l, time.Now().UnixMilli(), "k", "value-value-value-value-value-value-value-value")
	}
}

// crash abandons a manager as a killed process would: no flush, no marker.
func crash(m *Manager) { m.lock.Close() }

func TestManagerCleanAndUncleanRestart(t *testing.T) {
	dir := t.TempDir()
	m, err := OpenManager(dir, ManagerOptions{Config: managerConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenManager(dir, ManagerOptions{Config: managerConfig()}); err == nil {
		t.Fatal("a second manager on the same data dir must be refused")
	}
	l, err := m.GetOrCreate("orders.v1-x", 3, managerConfig())
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 50)
	leo := l.LogEndOffset()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, CleanShutdownFile)); err != nil {
		t.Fatalf("clean shutdown marker missing: %v", err)
	}

	m, err = OpenManager(dir, ManagerOptions{Config: managerConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if !m.WasClean() {
		t.Fatal("restart after Close should be clean")
	}
	if _, err := os.Stat(filepath.Join(dir, CleanShutdownFile)); !os.IsNotExist(err) {
		t.Fatal("the marker must be gone once the logs are open")
	}
	l, ok := m.Get("orders.v1-x", 3)
	if !ok || l.LogEndOffset() != leo || l.Recovery().Recovered {
		t.Fatalf("clean reopen: ok=%v leo=%d want %d report=%+v", ok, l.LogEndOffset(), leo, l.Recovery())
	}
	if err := m.DeleteRecordsBefore("orders.v1-x", 3, 20); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 10)
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	leo = l.LogEndOffset()
	crash(m)

	m, err = OpenManager(dir, ManagerOptions{Config: managerConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.WasClean() {
		t.Fatal("restart after a crash must not be clean")
	}
	l, _ = m.Get("orders.v1-x", 3)
	if !l.Recovery().Recovered || l.LogEndOffset() != leo || l.LogStartOffset() != 20 {
		t.Fatalf("unclean reopen: leo=%d want %d, start=%d want 20, report=%+v", l.LogEndOffset(), leo, l.LogStartOffset(), l.Recovery())
	}
}

func TestManagerDeleteAndLeftovers(t *testing.T) {
	dir := t.TempDir()
	m, err := OpenManager(dir, ManagerOptions{Config: managerConfig()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.GetOrCreate("t", 0, managerConfig())
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 5)
	if err := m.Delete("t", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "t-0")); !os.IsNotExist(err) {
		t.Fatal("deleted log dir still there")
	}
	if _, ok := m.Get("t", 0); ok {
		t.Fatal("deleted log still listed")
	}
	if _, err := m.GetOrCreate("../evil", 0, managerConfig()); err == nil {
		t.Fatal("a topic name with a path separator must be refused")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// A deletion interrupted by a crash is finished on the next open.
	if err := os.MkdirAll(filepath.Join(dir, "u-1.123"+deletingSuffix), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err = OpenManager(dir, ManagerOptions{Config: managerConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := os.Stat(filepath.Join(dir, "u-1.123"+deletingSuffix)); !os.IsNotExist(err) {
		t.Fatal("half-deleted dir survived the open")
	}
	if names := m.Names(); len(names) != 0 {
		t.Fatalf("no logs expected, have %v", names)
	}
}

func TestManagerRunAppliesRetention(t *testing.T) {
	clock := &fakeClock{}
	clock.ms.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	cfg := managerConfig()
	cfg.RetentionMs = time.Hour.Milliseconds()
	m, err := OpenManager(t.TempDir(), ManagerOptions{Config: cfg, Now: clock.now,
		RetentionCheckInterval: 5 * time.Millisecond, CleanerInterval: time.Hour, FlushInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, err := m.GetOrCreate("r", 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		appendKV(t, l, clock.ms.Load(), "k", "value-value-value-value-value-value-value-value")
	}
	before := l.SegmentCount()
	clock.advance(2 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for l.SegmentCount() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the deadline
	}
	cancel()
	<-done
	if l.SegmentCount() != 1 || before < 3 {
		t.Fatalf("retention did not delete expired segments: %d -> %d", before, l.SegmentCount())
	}
	if l.LogStartOffset() == 0 {
		t.Fatal("log start did not advance")
	}
}
