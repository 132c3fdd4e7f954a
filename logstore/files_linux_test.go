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

// Many partitions of several segments each, under a budget far below what
// they would all hold open: the descriptors on the data dir never pass the
// budget, and every record reads back (closed segments reopen on their own),
// before and after a restart.
func TestFileBudgetBoundsOpenFiles(t *testing.T) {
	dir := t.TempDir()
	const budget, logs, batches = 30, 60, 12
	cfg := utBudgetConfig(t)
	m, err := OpenManager(dir, ManagerOptions{Config: cfg, MaxOpenFiles: budget})
	if err != nil {
		t.Fatal(err)
	}
	checkBound := func(when string) {
		t.Helper()
		if n := utOpenFilesUnder(t, dir); n > budget || m.Files().Open() > budget {
			t.Fatalf("%s: %d descriptors on the data dir (%d counted), budget %d", when, n, m.Files().Open(), budget)
		}
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
	defer m.Close()
	checkBound("after reopening")
	readAll()
}

// A segment in use is never closed under its user, and one holding data not
// yet fsynced is not closed at all; once synced and idle, it is.
func TestFileBudgetSparesPinnedAndUnsyncedSegments(t *testing.T) {
	budget := NewFileBudget(6) // two segments' files
	cfg := utSmallSegments(t)  // fsync never: data waits for Sync
	a := utOpen(t, t.TempDir(), cfg, Options{Files: budget})
	b := utOpen(t, t.TempDir(), cfg, Options{Files: budget})
	for range 8 {
		utAppend(t, b, 3, 0)
	}
	if err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	utAppend(t, a, 3, 0) // a's active segment: unsynced
	aSeg := (*a.segs.Load())[0]
	pressure := func() { // read every segment of b twice: two turns of the clock
		t.Helper()
		for range 2 {
			utCheckContiguous(t, utReadRecords(t, b, 0, 1), 0, 24)
		}
	}
	pressure()
	if aSeg.files.Load() == nil {
		t.Fatal("a segment with unsynced data was closed")
	}
	if err := a.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A reader holds b's first segment while the budget is under pressure.
	bSeg := (*b.segs.Load())[0]
	f, err := bSeg.pin()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		pressure()
		utCheckContiguous(t, utReadRecords(t, a, 0, 1), 0, 3)
	}
	if bSeg.files.Load() != f {
		t.Fatal("a pinned segment's files were taken out of it")
	}
	var hdr [BatchHeaderSize]byte
	if _, err := f.log.ReadAt(hdr[:], 0); err != nil || Batch(hdr[:]).BaseOffset() != 0 {
		t.Fatalf("reading through a pinned segment's files: %v (base %d)", err, Batch(hdr[:]).BaseOffset())
	}
	f.release()
	pressure()
	if aSeg.files.Load() != nil {
		t.Fatal("a's synced, idle segment is still open under pressure")
	}

	// Appending to a segment closed under the budget reopens it.
	utAppend(t, a, 3, 0)
	if err := a.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	utCheckContiguous(t, utReadRecords(t, a, 0, 1<<20), 0, 6)
	if n := budget.Open(); n > 6 {
		t.Fatalf("%d files open, budget 6", n)
	}
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
	defer m.Close()
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
