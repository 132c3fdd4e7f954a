package logstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// utOpenFilesUnder counts this process's descriptors open on segment files under dir.
func utOpenFilesUnder(t testing.TB, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		seg := strings.HasSuffix(target, logSuffix) || strings.HasSuffix(target, indexSuffix) || strings.HasSuffix(target, timeIndexSuffix)
		if err == nil && seg && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// utBudgetConfig rolls a segment every few small batches and fsyncs every append.
func utBudgetConfig(t testing.TB) Config {
	cfg := utSmallSegments(t)
	cfg.Fsync = FsyncAlways
	return cfg
}

// utRunManager runs m's background work (the budget's sweeper among it)
// until m closes; the test's end closes it.
func utRunManager(t testing.TB, m *Manager) {
	done := make(chan struct{})
	go func() { m.Run(context.Background()); close(done) }()
	t.Cleanup(func() { _ = m.Close(); <-done })
}

// utWithinBudget waits until the descriptors on dir and the budget's count
// are within the budget again (the sweeper closes files in the background).
func utWithinBudget(t testing.TB, m *Manager, dir, when string) {
	t.Helper()
	budget := m.Files().Max()
	n := 0
	deadline := time.Now().Add(10 * time.Second)
	for n = utOpenFilesUnder(t, dir); n > budget || m.Files().Open() > budget; n = utOpenFilesUnder(t, dir) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d descriptors on the data dir (%d counted), budget %d", when, n, m.Files().Open(), budget)
		}
		time.Sleep(time.Millisecond) // polling a condition, bounded by the deadline
	}
}

// Many partitions of several segments each, under a budget far below what
// they would all hold open: the sweeper brings the descriptors on the data
// dir back within the budget, and every record reads back (closed segments
// reopen on their own), before and after a restart.
func TestFileBudgetBoundsOpenFiles(t *testing.T) {
	dir := t.TempDir()
	const budget, logs, batches = 30, 60, 12
	cfg := utBudgetConfig(t)
	m, err := OpenManager(dir, ManagerOptions{Config: cfg, MaxOpenFiles: budget})
	if err != nil {
		t.Fatal(err)
	}
	utRunManager(t, m)
	checkBound := func(when string) {
		t.Helper()
		utWithinBudget(t, m, dir, when)
	}
	for p := range int32(logs) {
		l, err := m.GetOrCreate("orders", p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range batches {
			utAppend(t, l, 3, 0)
		}
		checkBound(fmt.Sprintf("after writing partition %d", p))
	}
	readAll := func() {
		t.Helper()
		for p := range int32(logs) {
			l, ok := m.Get("orders", p)
			if !ok {
				t.Fatalf("partition %d is gone", p)
			}
			if l.SegmentCount() < 4 {
				t.Fatalf("partition %d has %d segments, want several", p, l.SegmentCount())
			}
			utCheckContiguous(t, utReadRecords(t, l, 0, 1<<20), 0, batches*3)
			if off, _, found, err := l.OffsetForTimestamp(utTS(batches * 3 / 2)); err != nil || !found || off != batches*3/2 {
				t.Fatalf("partition %d: OffsetForTimestamp = %d, %v, %v", p, off, found, err)
			}
			checkBound(fmt.Sprintf("after reading partition %d", p))
		}
	}
	readAll()
	if m.Files().Closed() == 0 {
		t.Fatal("nothing was closed under the budget")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if n := utOpenFilesUnder(t, dir); n != 0 {
		t.Fatalf("%d descriptors left on the data dir after Close", n)
	}
	m, err = OpenManager(dir, ManagerOptions{Config: cfg, MaxOpenFiles: budget})
	if err != nil {
		t.Fatal(err)
	}
	utRunManager(t, m)
	checkBound("after reopening")
	readAll()
}

// Going over the budget closes nothing on the way (the opener only wakes the
// sweeper). The sweeper never closes a segment in use under its user, and
// closes one holding data not yet fsynced only after fsyncing it itself.
func TestFileBudgetSparesPinnedAndUnsyncedSegments(t *testing.T) {
	ctx := context.Background()
	// Four segments' files: the five segments below go over it, but not by
	// a quarter (where an opener closes files itself).
	budget := NewFileBudget(12)
	cfg := utSmallSegments(t) // fsync never: data waits for Sync
	a := utOpen(t, t.TempDir(), cfg, Options{Files: budget})
	b := utOpen(t, t.TempDir(), cfg, Options{Files: budget})
	for range 8 {
		utAppend(t, b, 3, 0)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	utAppend(t, a, 3, 0) // a's active segment: unsynced
	aSeg := (*a.segs.Load())[0]
	readB := func() {
		t.Helper()
		utCheckContiguous(t, utReadRecords(t, b, 0, 1), 0, 24)
	}
	readB()
	if budget.Open() <= 12 || budget.Closed() != 0 {
		t.Fatalf("%d files open, %d closed on the request path; want more than the budget (12) open and none closed", budget.Open(), budget.Closed())
	}
	// No closed segment held data not yet fsynced.
	checkClosedAreClean := func() {
		t.Helper()
		for _, l := range []*Log{a, b} {
			for _, s := range *l.segs.Load() {
				if s.files.Load() == nil && !s.clean() {
					t.Fatalf("segment %d was closed holding data not yet fsynced", s.base)
				}
			}
		}
	}

	// A reader holds b's first segment while the sweeper sweeps.
	bSeg := (*b.segs.Load())[0]
	f, err := bSeg.pin()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		readB()
		budget.sweep(ctx)
		checkClosedAreClean()
	}
	if bSeg.files.Load() != f {
		t.Fatal("a pinned segment's files were taken out of it")
	}
	var hdr [BatchHeaderSize]byte
	if _, err := f.log.ReadAt(hdr[:], 0); err != nil || Batch(hdr[:]).BaseOffset() != 0 {
		t.Fatalf("reading through a pinned segment's files: %v (base %d)", err, Batch(hdr[:]).BaseOffset())
	}
	if !aSeg.clean() || budget.Synced() == 0 {
		t.Fatalf("a's idle segment: clean %v, %d segments fsynced by the sweeper; want it fsynced", aSeg.clean(), budget.Synced())
	}
	f.release()
	for i := 0; i < 5 && aSeg.files.Load() != nil; i++ {
		readB()
		budget.sweep(ctx)
	}
	if aSeg.files.Load() != nil {
		t.Fatal("a's fsynced, idle segment is still open under pressure")
	}

	// Appending to a segment closed under the budget reopens it.
	utAppend(t, a, 3, 0)
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	utCheckContiguous(t, utReadRecords(t, a, 0, 1<<20), 0, 6)
	budget.sweep(ctx)
	budget.sweep(ctx)
	if n := budget.Open(); n > 12 {
		t.Fatalf("%d files open after sweeps, budget 12", n)
	}
}

// With fsync never, segments are fsynced only by the flusher (every minute
// by default): the sweeper fsyncs idle ones itself so it can close them.
// Without that, every segment written since the last flush stayed open, and
// every open over the budget paid for a fruitless sweep.
func TestFileBudgetSweeperClosesIdleUnsyncedSegments(t *testing.T) {
	dir := t.TempDir()
	const budget, logs = 30, 20
	cfg := utSmallSegments(t) // fsync never
	m, err := OpenManager(dir, ManagerOptions{Config: cfg, MaxOpenFiles: budget, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	utRunManager(t, m)
	for p := range int32(logs) {
		l, err := m.GetOrCreate("unsynced", p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range 6 {
			utAppend(t, l, 3, 0)
		}
	}
	utWithinBudget(t, m, dir, "after writing without a flush")
	if m.Files().Synced() == 0 {
		t.Fatal("the sweeper fsynced no idle segment")
	}
	for p := range int32(logs) {
		l, _ := m.Get("unsynced", p)
		if l.DurableOffset() != 0 {
			t.Fatalf("partition %d: durable offset %d; only a flush publishes it", p, l.DurableOffset())
		}
		for _, s := range *l.segs.Load() {
			if s.files.Load() == nil && !s.clean() {
				t.Fatalf("partition %d: segment %d was closed holding data not yet fsynced", p, s.base)
			}
		}
		utCheckContiguous(t, utReadRecords(t, l, 0, math.MaxInt32), 0, 18)
	}
	utWithinBudget(t, m, dir, "after reading back")
}

// utChild runs the test named in a child process (go test's binary) with env
// set, and fails if the child does.
func utChild(t *testing.T, env ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

// utLowFileLimit lowers RLIMIT_NOFILE (soft and hard) in a child process.
func utLowFileLimit(t *testing.T, n uint64) {
	t.Helper()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		t.Fatal(err)
	}
}

const utChildEnv = "WEIR_LOGSTORE_TEST_CHILD"

// With an open-files limit of 256, a data dir of 1,000 partitions is created,
// written, read, closed and opened again with the default budget (half the
// limit): nothing runs out of descriptors. Without a budget, every segment
// kept its three files open and the 81st partition could not be created.
func TestManyLogsUnderLowFileLimit(t *testing.T) {
	dir := os.Getenv(utChildEnv)
	if dir == "" {
		dir = t.TempDir()
		utChild(t, utChildEnv+"="+dir)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		logs := 0
		for _, e := range entries {
			if _, _, ok := ParsePartitionDir(e.Name()); ok && e.IsDir() {
				logs++
			}
		}
		if logs != 1000 {
			t.Fatalf("%d partition directories, want 1000", logs)
		}
		return
	}
	utLowFileLimit(t, 256)
	cfg := utBudgetConfig(t)
	open := func() *Manager {
		m, err := OpenManager(dir, ManagerOptions{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		utRunManager(t, m)
		return m
	}
	m := open()
	for p := range int32(1000) {
		l, err := m.GetOrCreate("wide", p, cfg)
		if err != nil {
			t.Fatalf("create partition %d: %v", p, err)
		}
		utAppend(t, l, 3, 0)
		utAppend(t, l, 3, 0)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = open()
	for p := range int32(1000) {
		l, ok := m.Get("wide", p)
		if !ok {
			t.Fatalf("partition %d missing after restart", p)
		}
		utCheckContiguous(t, utReadRecords(t, l, 0, math.MaxInt32), 0, 6)
	}
	t.Logf("budget %d files, %d open, %d closed under it", m.Files().Max(), m.Files().Open(), m.Files().Closed())
}

// A log that cannot be created (no descriptor left) leaves no directory
// behind, and the next try, with descriptors again, creates it.
func TestFailedCreateLeavesNoDirectory(t *testing.T) {
	dir := os.Getenv(utChildEnv)
	if dir == "" {
		dir = t.TempDir()
		utChild(t, utChildEnv+"="+dir)
		return
	}
	utLowFileLimit(t, 128)
	cfg := utBudgetConfig(t)
	m, err := OpenManager(dir, ManagerOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var hogs []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		hogs = append(hogs, f)
	}
	// Leave a few descriptors: the log's directory is made, then its files fail.
	for range 2 {
		hogs[len(hogs)-1].Close()
		hogs = hogs[:len(hogs)-1]
	}
	_, err = m.GetOrCreate("starved", 0, cfg)
	for _, f := range hogs {
		f.Close()
	}
	if err == nil {
		t.Fatal("creating a log without descriptors succeeded")
	}
	t.Logf("create failed as expected: %v", err)
	if _, statErr := os.Stat(filepath.Join(dir, PartitionDir("starved", 0))); !errors.Is(statErr, os.ErrNotExist) {
		t.Fatalf("the failed log left its directory: %v", statErr)
	}
	if _, ok := m.Get("starved", 0); ok {
		t.Fatal("the failed log is listed")
	}
	l, err := m.GetOrCreate("starved", 0, cfg)
	if err != nil {
		t.Fatalf("retry with descriptors: %v", err)
	}
	utAppend(t, l, 3, 0)
}

// utEvict closes a segment's files through the budget's sweep, as if they
// had not been used since its last turn.
func utEvict(t *testing.T, s *segment) {
	t.Helper()
	if f := s.files.Load(); f != nil {
		f.used.Store(false)
	}
	s.ops.files.mu.Lock()
	f := s.ops.files.evict(s)
	s.ops.files.mu.Unlock()
	if f == nil {
		t.Fatal("the segment's files could not be closed")
	}
	f.closeAll()
}

// A segment that compaction swapped out, or that retention retired, is
// never reopened by name (the name now holds another file, or none): a
// reader still holding it in its snapshot is told to take a fresh one.
func TestReplacedSegmentIsNeverReopenedByName(t *testing.T) {
	budget := NewFileBudget(-1)
	cfg := compactConfig()
	l := utOpen(t, t.TempDir(), cfg, Options{Files: budget})
	for i := range 300 {
		appendKV(t, l, time.Now().UnixMilli(), fmt.Sprintf("k%d", i%7), fmt.Sprintf("v%d-padding-padding-padding", i))
	}
	if err := l.Sync(context.Background()); err != nil { // unsynced segments are never closed
		t.Fatal(err)
	}
	old := (*l.segs.Load())[0]
	if !old.acquire() { // as a compaction in progress holds it
		t.Fatal("segment already gone")
	}
	defer old.release()
	if res, err := l.Compact(context.Background(), l.LogEndOffset()); err != nil || res.SegmentsCleaned == 0 {
		t.Fatalf("compaction: %+v, %v", res, err)
	}
	if (*l.segs.Load())[0] == old {
		t.Fatal("the first segment was not swapped")
	}
	utEvict(t, old)
	if f, err := old.pin(); !errors.Is(err, errSegmentGone) {
		if f != nil {
			f.release()
		}
		t.Fatalf("pinning a swapped-out segment: %v, want errSegmentGone", err)
	}
	readAll(t, l)

	retired := (*l.segs.Load())[0]
	retired.acquire()
	defer retired.release()
	if err := l.DeleteRecordsBefore((*l.segs.Load())[1].base); err != nil {
		t.Fatal(err)
	}
	utEvict(t, retired)
	if _, err := retired.pin(); !errors.Is(err, errSegmentGone) {
		t.Fatalf("pinning a retired segment: %v, want errSegmentGone", err)
	}
}
