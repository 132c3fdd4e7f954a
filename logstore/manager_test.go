package logstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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

// utEventually waits for cond, polling, and fails after timeout.
func utEventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the deadline
	}
}

// Compactions that take long (here: until the test lets them go) hold up
// neither the flusher nor retention, run on at most CleanerThreads logs at a
// time, and are stopped by Close.
func TestManagerBackgroundWorkDoesNotQueueBehindCompaction(t *testing.T) {
	clock := &fakeClock{}
	clock.ms.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	m, err := OpenManager(t.TempDir(), ManagerOptions{Config: managerConfig(), Now: clock.now, CleanerThreads: 2,
		RetentionCheckInterval: 5 * time.Millisecond, CleanerInterval: 5 * time.Millisecond, FlushInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	release := make(chan struct{})
	var mu sync.Mutex
	running, most, started := 0, 0, map[string]bool{}
	m.compact = func(ctx context.Context, l *Log, _ int64) (CompactResult, error) {
		l.compactMu.Lock() // held for the whole pass, as Compact does
		defer l.compactMu.Unlock()
		mu.Lock()
		running++
		most = max(most, running)
		started[l.Dir()] = true
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		mu.Lock()
		gate := release
		mu.Unlock()
		select { // a compaction that takes as long as the test wants
		case <-gate:
		case <-ctx.Done():
		}
		return CompactResult{}, ctx.Err()
	}
	compacted := compactConfig()
	for p := range int32(3) {
		l, err := m.GetOrCreate("compacted", p, compacted)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			appendKV(t, l, clock.ms.Load(), fmt.Sprintf("k%d", i%10), "value-value-value-value-value-value-value-value")
		}
		if err := l.Sync(context.Background()); err != nil { // committed: compaction has work
			t.Fatal(err)
		}
	}
	expiring := managerConfig()
	expiring.RetentionMs = time.Hour.Milliseconds()
	old, err := m.GetOrCreate("expiring", 0, expiring)
	if err != nil {
		t.Fatal(err)
	}
	for range 60 {
		appendKV(t, old, clock.ms.Load(), "k", "value-value-value-value-value-value-value-value")
	}
	if err := old.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	unsynced, err := m.GetOrCreate("unsynced", 0, managerConfig())
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	go func() { m.Run(context.Background()); close(done) }()
	utEventually(t, 10*time.Second, "no compaction started", func() bool { mu.Lock(); defer mu.Unlock(); return running > 0 })
	// While compactions hang, flushing and retention go on.
	fill(t, unsynced, 10)
	utEventually(t, 10*time.Second, "the flusher did not flush while compactions ran", func() bool {
		return unsynced.DurableOffset() == unsynced.LogEndOffset()
	})
	clock.advance(2 * time.Hour)
	utEventually(t, 10*time.Second, "retention did not run while compactions ran", func() bool { return old.LogStartOffset() > 0 })
	utEventually(t, 10*time.Second, "compactions did not run side by side", func() bool { mu.Lock(); defer mu.Unlock(); return running == 2 })
	mu.Lock()
	if most != 2 || len(started) != 2 {
		t.Errorf("%d compactions ran at once on %d logs, want 2 (cleaner threads)", most, len(started))
	}
	mu.Unlock()
	mu.Lock()
	close(release)
	mu.Unlock()
	utEventually(t, 10*time.Second, "the third log was never compacted", func() bool { mu.Lock(); defer mu.Unlock(); return len(started) == 3 })

	mu.Lock()
	release = make(chan struct{}) // new compactions block again, until Close stops them
	mu.Unlock()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Fatal("Close returned while Run's workers were still running")
	}
	mu.Lock()
	defer mu.Unlock()
	if most > 2 {
		t.Fatalf("%d compactions ran at once, want at most 2", most)
	}
}

// A long compaction pass of one log holds up no other: while it runs, the
// queueing goes on (it never waits on the busy log) and a second log that
// comes to need compaction is compacted.
func TestManagerCompactsOtherLogsDuringALongPass(t *testing.T) {
	var (
		slow, other   *Log
		slowStarted   = make(chan struct{})
		release       = make(chan struct{})
		otherReady    atomic.Bool  // other's records count as committed
		otherAsked    atomic.Int32 // how often other's committed offset was asked for since slow's pass began
		otherCleaned  atomic.Int32
		slowIsRunning atomic.Bool
	)
	m, err := OpenManager(t.TempDir(), ManagerOptions{Config: managerConfig(), CleanerThreads: 2,
		CleanerInterval: 5 * time.Millisecond, RetentionCheckInterval: time.Hour, FlushInterval: time.Hour,
		Committed: func(_ string, l *Log) int64 {
			if l == other && !otherReady.Load() {
				if slowIsRunning.Load() {
					otherAsked.Add(1)
				}
				return 0 // nothing committed: nothing to compact yet
			}
			return l.LogEndOffset()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	m.compact = func(ctx context.Context, l *Log, committed int64) (CompactResult, error) {
		if l != slow {
			res, err := l.Compact(ctx, committed)
			if err == nil && res.SegmentsCleaned > 0 {
				otherCleaned.Add(1)
			}
			return res, err
		}
		l.compactMu.Lock() // a pass that takes as long as the test wants, holding the lock as Compact does
		defer l.compactMu.Unlock()
		slowIsRunning.Store(true)
		close(slowStarted)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return CompactResult{}, ctx.Err()
	}
	for i, lp := range []**Log{&slow, &other} {
		l, err := m.GetOrCreate("compacted", int32(i), compactConfig())
		if err != nil {
			t.Fatal(err)
		}
		for j := range 200 {
			appendKV(t, l, time.Now().UnixMilli(), fmt.Sprintf("k%d", j%10), "value-value-value-value-value-value-value-value")
		}
		*lp = l
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-slowStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow compaction never started")
	}
	// Three rounds of queueing pass over the other log while the slow pass
	// runs: a round that waited for the busy log would never come back.
	utEventually(t, 10*time.Second, "queueing stopped while a compaction ran", func() bool { return otherAsked.Load() >= 3 })
	otherReady.Store(true)
	utEventually(t, 10*time.Second, "the other log was not compacted while a compaction ran", func() bool { return otherCleaned.Load() > 0 })
	close(release)
}

// Logs are created concurrently (a wide topic overlaps their fsyncs), and
// callers asking for the same log all get the one log.
func TestManagerCreatesLogsConcurrently(t *testing.T) {
	m, err := OpenManager(t.TempDir(), ManagerOptions{Config: managerConfig()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	const callers, logs = 6, 100
	got := make([][]*Log, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range int32(logs) {
				l, err := m.GetOrCreate("shared", (p+int32(c)*7)%logs, managerConfig())
				if err != nil {
					t.Error(err)
					return
				}
				got[c] = append(got[c], l)
			}
		}()
	}
	wg.Wait()
	for p := range int32(logs) {
		l, ok := m.Get("shared", p)
		if !ok {
			t.Fatalf("partition %d missing", p)
		}
		for c := range callers {
			if got[c][(int(p)-c*7%logs+logs)%logs] != l {
				t.Fatalf("caller %d got another log for partition %d", c, p)
			}
		}
	}
	if n := len(m.Names()); n != logs {
		t.Fatalf("%d logs, want %d", n, logs)
	}
}
