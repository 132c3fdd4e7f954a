package logstore

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// faultFS is OSFS that fails the operations a rule picks, as a failing disk
// would; every operation it is asked for is recorded.
type faultFS struct {
	OSFS
	mu    sync.Mutex
	rule  func(op, name string) error // nil: every operation goes through
	fired atomic.Int32
}

// failOnce makes the first op on a file whose name ends in suffix fail with EIO.
func (f *faultFS) failOnce(op, suffix string) {
	var done atomic.Bool
	f.set(func(o, name string) error {
		if o == op && strings.HasSuffix(name, suffix) && done.CompareAndSwap(false, true) {
			return syscall.EIO
		}
		return nil
	})
}

func (f *faultFS) set(rule func(op, name string) error) {
	f.mu.Lock()
	f.rule = rule
	f.mu.Unlock()
}

func (f *faultFS) check(op, name string) error {
	f.mu.Lock()
	rule := f.rule
	f.mu.Unlock()
	if rule == nil {
		return nil
	}
	err := rule(op, name)
	if err != nil {
		f.fired.Add(1)
		return &os.PathError{Op: op, Path: name, Err: err}
	}
	return nil
}

func (f *faultFS) Sync(file *os.File) error {
	if err := f.check("sync", file.Name()); err != nil {
		return err
	}
	return f.OSFS.Sync(file)
}

func (f *faultFS) SyncDir(dir string) error {
	if err := f.check("syncdir", dir); err != nil {
		return err
	}
	return f.OSFS.SyncDir(dir)
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err := f.check("rename", oldpath); err != nil {
		return err
	}
	return f.OSFS.Rename(oldpath, newpath)
}

func (f *faultFS) Truncate(file *os.File, size int64) error {
	if err := f.check("truncate", file.Name()); err != nil {
		return err
	}
	return f.OSFS.Truncate(file, size)
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if err := f.check("open", name); err != nil {
		return nil, err
	}
	return f.OSFS.OpenFile(name, flag, perm)
}

func (f *faultFS) MkdirAll(path string, perm os.FileMode) error {
	if err := f.check("mkdir", path); err != nil {
		return err
	}
	return f.OSFS.MkdirAll(path, perm)
}

func (f *faultFS) RemoveAll(path string) error {
	if err := f.check("removeall", path); err != nil {
		return err
	}
	return f.OSFS.RemoveAll(path)
}

func (f *faultFS) CreateTemp(dir, pattern string) (*os.File, error) {
	if err := f.check("createtemp", filepath.Join(dir, pattern)); err != nil {
		return nil, err
	}
	return f.OSFS.CreateTemp(dir, pattern)
}

// utOffline checks that err says the log is offline because of an EIO.
func utOffline(t *testing.T, what string, err error) {
	t.Helper()
	utOfflineBy(t, what, err, syscall.EIO)
}

// utOfflineBy checks that err says the log is offline because of cause.
func utOfflineBy(t *testing.T, what string, err, cause error) {
	t.Helper()
	if !errors.Is(err, ErrLogOffline) || !errors.Is(err, cause) {
		t.Fatalf("%s: got %v, want an error wrapping ErrLogOffline and %v", what, err, cause)
	}
}

// failOp makes every op on a file whose name ends in suffix fail with errno.
func (f *faultFS) failOp(op, suffix string, errno syscall.Errno) {
	f.set(func(o, name string) error {
		if o == op && strings.HasSuffix(name, suffix) {
			return errno
		}
		return nil
	})
}

// utRefusesWrites checks that every write and flush of l answers its offline error (an EIO).
func utRefusesWrites(t *testing.T, l *Log) {
	t.Helper()
	utRefusesWritesBy(t, l, syscall.EIO)
}

// utRefusesWritesBy checks that every write and flush of l answers its offline error, caused by cause.
func utRefusesWritesBy(t *testing.T, l *Log, cause error) {
	t.Helper()
	ctx := context.Background()
	_, err := l.AppendAsLeader(ctx, utLeaderBatch(t, 1, l.LogEndOffset(), utTS, CompressionNone), 0)
	utOfflineBy(t, "AppendAsLeader", err, cause)
	_, err = l.AppendAsFollower(ctx, utFollowerBatch(t, l.LogEndOffset(), 1, l.LatestEpoch()))
	utOfflineBy(t, "AppendAsFollower", err, cause)
	utOfflineBy(t, "Sync", l.Sync(ctx), cause)
	_, err = l.Truncate(0)
	utOfflineBy(t, "Truncate", err, cause)
	utOfflineBy(t, "TruncateFullyAndStartAt", l.TruncateFullyAndStartAt(l.LogEndOffset()), cause)
	utOfflineBy(t, "DeleteRecordsBefore", l.DeleteRecordsBefore(l.LogEndOffset()), cause)
	utOfflineBy(t, "Offline", l.Offline(), cause)
}

// A failed fsync is never retried into "durable": the first fsync fails, a
// later one would succeed, yet the data it should have covered is never
// reported durable and the log refuses writes from then on.
func TestLogFailedFsyncIsNeverRetriedIntoDurable(t *testing.T) {
	for _, tc := range []struct {
		name, op, suffix string
	}{
		{"segment", "sync", logSuffix},
		{"rolled index", "sync", indexSuffix},
		{"rolled time index", "sync", timeIndexSuffix},
		{"directory", "syncdir", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := &faultFS{}
			var calls atomic.Int32
			cfg := utSmallSegments(t)
			cfg.Fsync = FsyncAlways
			l := utOpen(t, t.TempDir(), cfg, Options{FS: fs, OnOffline: func(error) { calls.Add(1) }})
			for range 4 { // past the first roll: a rolled segment and a new file to make durable
				utAppend(t, l, 3, 0)
			}
			durable := l.DurableOffset()
			if durable != l.LogEndOffset() {
				t.Fatalf("durable %d, log end %d before the fault", durable, l.LogEndOffset())
			}
			fs.failOnce(tc.op, tc.suffix)
			var appendErr error
			for fs.fired.Load() == 0 { // roll until the failing kind of fsync comes up
				_, appendErr = l.AppendAsLeader(context.Background(), utLeaderBatch(t, 3, l.LogEndOffset(), utTS, CompressionNone), 0)
				if appendErr == nil {
					durable = l.DurableOffset()
				}
				if l.LogEndOffset() > 200 {
					t.Fatalf("no %s %q fsync failed in 200 offsets", tc.op, tc.suffix)
				}
			}
			// From here on every fsync would succeed: a retry must still not
			// make what the failed one covered durable.
			syncErr := l.Sync(context.Background())
			if got := l.DurableOffset(); got != durable {
				t.Fatalf("durable offset %d after the failed fsync and a retry, want %d (what the last good fsync covered)", got, durable)
			}
			utOffline(t, "the append whose fsync failed", appendErr)
			utOffline(t, "Sync after the failure", syncErr)
			utRefusesWrites(t, l)
			if err := l.WaitDurable(context.Background(), durable+1); !errors.Is(err, ErrLogOffline) {
				t.Fatalf("WaitDurable past the failure: %v", err)
			}
			if err := l.WaitDurable(context.Background(), durable); err != nil {
				t.Fatalf("WaitDurable of what was durable before: %v", err)
			}
			if calls.Load() != 1 {
				t.Fatalf("OnOffline called %d times, want once", calls.Load())
			}
			// Reads below the durable offset still work.
			utCheckContiguous(t, utReadRecords(t, l, 0, math.MaxInt32)[:durable], 0, durable)
			utOffline(t, "Close", l.Close())
		})
	}
}

// With fsync never the background flush finds the failure: the same holds.
func TestLogFailedFlushTakesFsyncNeverLogOffline(t *testing.T) {
	fs := &faultFS{}
	l := utOpen(t, t.TempDir(), utCfg(), Options{FS: fs})
	utAppend(t, l, 5, 0)
	fs.failOnce("sync", logSuffix)
	err := l.Sync(context.Background())
	retry := l.Sync(context.Background())
	if l.DurableOffset() != 0 {
		t.Fatalf("durable offset %d, want 0: no fsync of the data ever succeeded before the failure", l.DurableOffset())
	}
	utOffline(t, "Sync", err)
	utOffline(t, "Sync again", retry)
	utRefusesWrites(t, l)
}

// A segment that retention, truncation or compaction takes out of the log is
// renamed first; a failed rename is reported and takes the log offline (the
// file left under its live name would come back on the next open).
func TestLogRetireRenameFailureTakesLogOffline(t *testing.T) {
	build := func(t *testing.T, cfg Config) (*Log, *faultFS) {
		fs := &faultFS{}
		clock := newUTClock(utT0)
		l := utOpen(t, t.TempDir(), cfg, Options{FS: fs, Now: clock.Now})
		for range 10 {
			utAppend(t, l, 3, 0)
		}
		if l.SegmentCount() < 3 {
			t.Fatalf("%d segments, want at least 3", l.SegmentCount())
		}
		return l, fs
	}
	failRename := func(fs *faultFS, suffix string) {
		fs.set(func(op, name string) error {
			if op == "rename" && strings.HasSuffix(name, suffix) {
				return syscall.EIO
			}
			return nil
		})
	}
	for _, tc := range []struct {
		name, suffix string
		retain       bool // retention.bytes=1: everything but the active segment may go
		op           func(l *Log) error
	}{
		{"retention", logSuffix, true, func(l *Log) error { _, err := l.ApplyRetention(l.LogEndOffset()); return err }},
		{"truncate", indexSuffix, false, func(l *Log) error { _, err := l.Truncate(3); return err }},
		{"restart at an offset", timeIndexSuffix, false, func(l *Log) error { return l.TruncateFullyAndStartAt(100) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := utSmallSegments(t)
			if tc.retain {
				cfg.RetentionBytes = 1
			}
			l, fs := build(t, cfg)
			failRename(fs, tc.suffix)
			utOffline(t, tc.name, tc.op(l))
			fs.set(nil)
			utRefusesWrites(t, l)
		})
	}
	t.Run("compaction swap", func(t *testing.T) {
		cfg := utSmallSegments(t)
		cfg.CleanupPolicy = CleanupCompact
		fs := &faultFS{}
		l := utOpen(t, t.TempDir(), cfg, Options{FS: fs})
		for range 10 { // the same three keys over and over: plenty to compact
			b, err := NewCodecs(0).EncodeBatch(nil, []Record{{Key: []byte("a"), Value: []byte("1")},
				{Key: []byte("b"), Value: []byte("2")}, {Key: []byte("c"), Value: []byte("3")}}, BatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.AppendAsLeader(context.Background(), b, 0); err != nil {
				t.Fatal(err)
			}
		}
		failRename(fs, logSuffix+cleanedSuffix)
		_, err := l.Compact(context.Background(), l.LogEndOffset())
		utOffline(t, "Compact", err)
		fs.set(nil)
		utRefusesWrites(t, l)
	})
}

// An offline log is recovered from disk on restart, never skipped: Close
// reports the failure, the data dir gets no clean-shutdown marker, the
// next open scans (CRC) the log, and every record acknowledged as durable
// before the failure is there, byte for byte; the log takes writes again.
func TestManagerRecoversOfflineLogOnRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := managerConfig()
	cfg.Fsync = FsyncAlways
	fs := &faultFS{}
	var offline atomic.Value
	m, err := OpenManager(dir, ManagerOptions{Config: cfg, FS: fs,
		OnLogOffline: func(name string, err error) { offline.Store(name) }})
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.GetOrCreate("orders", 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	healthy, err := m.GetOrCreate("orders", 1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 40) // several segments, all acknowledged durable
	fill(t, healthy, 5)
	acked := utReadRaw(t, l, 0, math.MaxInt32)
	ackedEnd := l.LogEndOffset()
	fs.failOnce("sync", logSuffix)
	_, err = l.AppendAsLeader(context.Background(), utLeaderBatch(t, 2, ackedEnd, utTS, CompressionNone), 0)
	utOffline(t, "the append whose fsync failed", err)
	fs.set(nil)
	if got, _ := offline.Load().(string); got != "orders-0" {
		t.Fatalf("OnLogOffline named %q, want orders-0", got)
	}
	if err := healthy.Sync(context.Background()); err != nil {
		t.Fatalf("the other log must not be affected: %v", err)
	}
	m.FlushAll(context.Background()) // checkpoints the recovery points
	if err := m.Close(); !errors.Is(err, ErrLogOffline) {
		t.Fatalf("Close: %v, want the offline error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CleanShutdownFile)); !os.IsNotExist(err) {
		t.Fatalf("an offline log must leave no clean-shutdown marker (stat: %v)", err)
	}
	rp, err := ReadOffsetCheckpoint(filepath.Join(dir, RecoveryPointFile))
	if err != nil {
		t.Fatal(err)
	}
	if rp["orders-0"] > ackedEnd {
		t.Fatalf("recovery point %d is past the last durable offset %d", rp["orders-0"], ackedEnd)
	}

	m, err = OpenManager(dir, ManagerOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.WasClean() {
		t.Fatal("the restart after an offline log must not be clean")
	}
	l, _ = m.Get("orders", 0)
	if !l.Recovery().Recovered || l.Recovery().SegmentsScanned == 0 || l.Offline() != nil {
		t.Fatalf("restart: report %+v, offline %v; want a recovery scan and a writable log", l.Recovery(), l.Offline())
	}
	if l.LogEndOffset() < ackedEnd {
		t.Fatalf("log end %d after recovery, %d were acknowledged", l.LogEndOffset(), ackedEnd)
	}
	if got := utReadRaw(t, l, 0, math.MaxInt32)[:len(acked)]; string(got) != string(acked) {
		t.Fatal("the acknowledged batches differ after recovery")
	}
	utAppend(t, l, 2, 0)
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A new leader epoch is checkpointed before any batch of it is written. If
// the checkpoint cannot even be started (a full disk), the append fails and
// the epoch is forgotten, so the next append tries again; if its rename
// fails, the file is in doubt and the log goes offline.
func TestLogEpochCheckpointFailure(t *testing.T) {
	fs := &faultFS{}
	l := utOpen(t, t.TempDir(), utCfg(), Options{FS: fs})
	utAppend(t, l, 2, 1)
	fs.set(func(op, name string) error {
		if op == "createtemp" && strings.Contains(name, EpochFileName) {
			return syscall.ENOSPC
		}
		return nil
	})
	_, err := l.AppendAsLeader(context.Background(), utLeaderBatch(t, 1, 2, utTS, CompressionNone), 2)
	if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrLogOffline) || l.Offline() != nil {
		t.Fatalf("append in a new epoch on a full disk: %v (offline: %v), want ENOSPC and the log still online", err, l.Offline())
	}
	if got := l.LatestEpoch(); got != 1 || l.LogEndOffset() != 2 {
		t.Fatalf("latest epoch %d, log end %d after the failed append, want 1 and 2", got, l.LogEndOffset())
	}
	fs.set(nil)
	utAppend(t, l, 1, 2)
	if disk, ok := loadEpochCache(l.Dir()); !ok || len(disk.entries) != 2 || disk.entries[1] != (EpochEntry{Epoch: 2, StartOffset: 2}) {
		t.Fatalf("epoch checkpoint on disk %+v, want epoch 2 from offset 2", disk.entries)
	}

	fs.set(func(op, name string) error {
		if op == "rename" && strings.Contains(name, EpochFileName) {
			return syscall.EIO
		}
		return nil
	})
	_, err = l.AppendAsLeader(context.Background(), utLeaderBatch(t, 1, 3, utTS, CompressionNone), 3)
	utOffline(t, "append in a new epoch whose checkpoint rename failed", err)
	fs.set(nil)
	utRefusesWrites(t, l)
	if l.LogEndOffset() != 3 {
		t.Fatalf("log end %d: no batch of the epoch the file may lack may be written", l.LogEndOffset())
	}
}

// A truncation whose epoch checkpoint cannot be rewritten (a full disk) is
// reported, the log stays online, and no batch is appended until the
// checkpoint no longer names the epochs cut from it.
func TestLogTruncateWithStaleEpochCheckpoint(t *testing.T) {
	fs := &faultFS{}
	l := utOpen(t, t.TempDir(), utCfg(), Options{FS: fs})
	utAppend(t, l, 2, 1)
	utAppend(t, l, 2, 2) // epoch 2 starts at 2
	fs.set(func(op, name string) error {
		if op == "createtemp" && strings.Contains(name, EpochFileName) {
			return syscall.ENOSPC
		}
		return nil
	})
	end, err := l.Truncate(2)
	if !errors.Is(err, syscall.ENOSPC) || end != 2 || l.Offline() != nil {
		t.Fatalf("truncate on a full disk: end %d, %v (offline %v); want 2, ENOSPC, online", end, err, l.Offline())
	}
	_, err = l.AppendAsLeader(context.Background(), utLeaderBatch(t, 1, 2, utTS, CompressionNone), 1)
	if !errors.Is(err, syscall.ENOSPC) || l.LogEndOffset() != 2 {
		t.Fatalf("append while the checkpoint names a cut epoch: %v, log end %d; want ENOSPC and nothing written", err, l.LogEndOffset())
	}
	fs.set(nil)
	utAppend(t, l, 1, 1)
	if disk, ok := loadEpochCache(l.Dir()); !ok || len(disk.entries) != 1 || disk.entries[0].Epoch != 1 {
		t.Fatalf("epoch checkpoint on disk %+v, want only epoch 1", disk.entries)
	}
}

// A truncation that fails after it changed the files (cut a segment, retired
// segments) leaves the log's memory apart from its files: the log goes
// offline, its end comes down to the cut, nothing more is appended (a
// follower's append went into the retired .deleted file, lost on the next
// start), and a restart recovers the log to the cut.
func TestLogTruncateFailingAfterTheCutTakesLogOffline(t *testing.T) {
	ctx := context.Background()
	build := func(t *testing.T) (string, Config, *faultFS, *Log) { // 30 records in batches of 3, several segments
		dir, cfg, fs := t.TempDir(), utSmallSegments(t), &faultFS{}
		l := utOpen(t, dir, cfg, Options{FS: fs})
		for range 10 {
			utAppend(t, l, 3, 0)
		}
		return dir, cfg, fs, l
	}
	reopen := func(t *testing.T, dir string, cfg Config, wantEnd int64) {
		t.Helper()
		l := utOpen(t, dir, cfg, Options{})
		if l.LogEndOffset() != wantEnd {
			t.Fatalf("reopened: log end %d, want %d", l.LogEndOffset(), wantEnd)
		}
		start := l.LogStartOffset()
		utCheckContiguous(t, utReadRecords(t, l, start, math.MaxInt32), start, wantEnd)
		utAppend(t, l, 1, 0) // continues at the cut, without a gap
		utCheckContiguous(t, utReadRecords(t, l, start, math.MaxInt32), start, wantEnd+1)
	}
	t.Run("index rebuild after the cut", func(t *testing.T) {
		dir, cfg, fs, l := build(t)
		fs.failOp("truncate", indexSuffix, syscall.EIO) // the cut segment's index rebuild
		if got := utSegmentBases(l); !slices.Contains(got, 9) || slices.Contains(got, 12) {
			t.Fatalf("segments %v: want the batch 12-14 inside the segment at 9", got)
		}
		_, err := l.Truncate(13)
		utOffline(t, "Truncate", err)
		if l.LogEndOffset() != 12 || l.DurableOffset() > 12 {
			t.Fatalf("after the failed truncation: log end %d, durable %d; want both at most the cut (12)", l.LogEndOffset(), l.DurableOffset())
		}
		fs.set(nil)
		utRefusesWrites(t, l)
		utOffline(t, "Close", l.Close())
		reopen(t, dir, cfg, 12)
	})
	t.Run("new segment after the cut", func(t *testing.T) {
		dir, cfg, fs, l := build(t)
		if err := l.DeleteRecordsBefore(16); err != nil { // inside the batch 15-17
			t.Fatal(err)
		}
		// The batch holding the log start goes whole (the file is cut at
		// 15), then the log restarts empty at 16: that segment cannot be made.
		fs.failOp("open", segmentName(16)+logSuffix, syscall.EMFILE)
		_, err := l.Truncate(16)
		utOfflineBy(t, "Truncate", err, syscall.EMFILE)
		if l.LogEndOffset() != l.LogStartOffset() {
			t.Fatalf("log [%d, %d] after the failed truncation, want it empty (cut below its start)", l.LogStartOffset(), l.LogEndOffset())
		}
		fs.set(nil)
		utRefusesWritesBy(t, l, syscall.EMFILE)
		utOfflineBy(t, "Close", l.Close(), syscall.EMFILE)
		reopen(t, dir, cfg, 15)
	})
	t.Run("restart at an offset", func(t *testing.T) {
		dir, cfg, fs, l := build(t)
		fs.failOp("open", segmentName(100)+logSuffix, syscall.ENOSPC)
		utOfflineBy(t, "TruncateFullyAndStartAt", l.TruncateFullyAndStartAt(100), syscall.ENOSPC)
		fs.set(nil)
		// The old segments were retired: an append must not go into their
		// .deleted files (the next start removes them).
		_, err := l.AppendAsFollower(ctx, utFollowerBatch(t, l.LogEndOffset(), 1, 0))
		utOfflineBy(t, "AppendAsFollower", err, syscall.ENOSPC)
		utRefusesWritesBy(t, l, syscall.ENOSPC)
		utOfflineBy(t, "Close", l.Close(), syscall.ENOSPC)
		// What the restart was to drop is gone; the log takes appends again.
		l = utOpen(t, dir, cfg, Options{})
		if l.LogEndOffset() != l.LogStartOffset() {
			t.Fatalf("reopened: log [%d, %d], want it empty", l.LogStartOffset(), l.LogEndOffset())
		}
		if _, err := l.AppendAsFollower(ctx, utFollowerBatch(t, l.LogEndOffset(), 1, 0)); err != nil {
			t.Fatal(err)
		}
	})
}

// A segment whose creation fails (no descriptor left for its index) leaves
// no file behind: the log stays online and the next roll at the same base
// succeeds, where a leftover .log made it fail with EEXIST forever.
func TestLogFailedRollLeavesNoFile(t *testing.T) {
	dir, fs := t.TempDir(), &faultFS{}
	l := utOpen(t, dir, utSmallSegments(t), Options{FS: fs})
	utAppend(t, l, 3, 0)
	fs.failOp("open", indexSuffix, syscall.EMFILE)
	var err error
	for fs.fired.Load() == 0 && l.LogEndOffset() < 100 {
		_, err = l.AppendAsLeader(context.Background(), utLeaderBatch(t, 3, l.LogEndOffset(), utTS, CompressionNone), 0)
	}
	if !errors.Is(err, syscall.EMFILE) || l.Offline() != nil {
		t.Fatalf("append whose roll failed: %v (offline %v), want EMFILE and the log online", err, l.Offline())
	}
	leo := l.LogEndOffset()
	fs.set(nil)
	if got := utSegmentFiles(t, dir); len(got) != l.SegmentCount() {
		t.Fatalf("segment files %v, the log has %d segments", got, l.SegmentCount())
	}
	utAppend(t, l, 3, 0)
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	utCheckContiguous(t, utReadRecords(t, l, 0, math.MaxInt32), 0, leo+3)
}

// A truncation that cuts a segment while its fsync runs wins over it: the
// fsync's size (read before the cut) is not recorded as synced, so appends
// that bring the segment back to that size are not taken for fsynced data
// (the budget would close the files, and an fsync error on them be lost).
func TestSegmentSyncRacingACutKeepsLaterDataUnsynced(t *testing.T) {
	fs := &faultFS{}
	l := utOpen(t, t.TempDir(), utCfg(), Options{FS: fs}) // fsync never: one segment, synced by Sync
	for range 10 {
		utAppend(t, l, 1, 0)
	}
	seg := l.active()
	size := seg.size.Load()
	var cutErr error
	var once sync.Once
	fs.set(func(op, name string) error {
		if op == "sync" && strings.HasSuffix(name, logSuffix) {
			once.Do(func() { _, cutErr = l.Truncate(5) }) // while the fsync runs
		}
		return nil
	})
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	fs.set(nil)
	if cutErr != nil || l.LogEndOffset() != 5 {
		t.Fatalf("truncate during the fsync: %v, log end %d", cutErr, l.LogEndOffset())
	}
	for range 5 { // the same batches again: the same size, never fsynced
		utAppend(t, l, 1, 0)
	}
	if seg.size.Load() != size {
		t.Fatalf("segment size %d after appending the cut batches again, want %d", seg.size.Load(), size)
	}
	if seg.clean() {
		t.Fatal("data appended after the cut counts as fsynced")
	}
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !seg.clean() {
		t.Fatal("not clean after a flush")
	}
}

// A log's directory is made, renamed and removed through FS too: a failure
// there is reported, and leaves the directory as it was.
func TestLogDirectoryChangesGoThroughFS(t *testing.T) {
	fs := &faultFS{}
	root := t.TempDir()
	fs.failOp("mkdir", "t-0", syscall.EIO)
	if _, err := Open(filepath.Join(root, "t-0"), utCfg(), Options{FS: fs}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Open whose directory cannot be made: %v, want EIO", err)
	}
	if _, err := os.Stat(filepath.Join(root, "t-0")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the directory was made anyway: %v", err)
	}
	fs.set(nil)

	dir := filepath.Join(root, "t-1")
	l := utOpen(t, dir, utCfg(), Options{FS: fs})
	utAppend(t, l, 3, 0)
	fs.failOp("removeall", "t-1", syscall.EIO)
	if err := l.Delete(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Delete whose directory cannot be removed: %v, want EIO", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the directory went anyway: %v", err)
	}
	fs.set(nil)

	m, err := OpenManager(filepath.Join(root, "data"), ManagerOptions{Config: managerConfig(), FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.GetOrCreate("orders", 0, managerConfig()); err != nil {
		t.Fatal(err)
	}
	fs.failOp("rename", "orders-0", syscall.EIO)
	if err := m.Delete("orders", 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Manager.Delete whose directory cannot be renamed: %v, want EIO", err)
	}
	if _, err := os.Stat(filepath.Join(root, "data", "orders-0")); err != nil {
		t.Fatalf("the log's directory went anyway: %v", err)
	}
}
