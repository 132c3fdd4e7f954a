package logstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct{ ms atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func compactConfig() Config {
	cfg := DefaultConfig()
	cfg.CleanupPolicy = CleanupCompact
	cfg.SegmentBytes = 4 << 10
	cfg.IndexIntervalBytes = 256
	cfg.DeleteRetentionMs = time.Hour.Milliseconds()
	cfg.Fsync = FsyncNever // durability is not under test here; keep the test fast
	return cfg
}

// appendKV appends one batch of (key, value) pairs; a "" value is a tombstone.
func appendKV(t testing.TB, l *Log, ts int64, kv ...string) AppendResult {
	t.Helper()
	var recs []Record
	for i := 0; i < len(kv); i += 2 {
		r := Record{Timestamp: ts, Key: []byte(kv[i])}
		if kv[i+1] != "" {
			r.Value = []byte(kv[i+1])
		}
		recs = append(recs, r)
	}
	b, err := l.Codecs().EncodeBatch(nil, recs, BatchOptions{Compression: CompressionSnappy})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.AppendAsLeader(context.Background(), b, 0)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// readAll returns every record from offset 0 to the log end and checks that
// batches tile the offsets with no gap.
func readAll(t testing.TB, l *Log) []Record {
	t.Helper()
	var out []Record
	off := l.LogStartOffset()
	for off < l.LogEndOffset() {
		res, err := l.Read(off, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Data) == 0 {
			t.Fatalf("no data at %d below the log end %d", off, l.LogEndOffset())
		}
		err = Batches(res.Data, func(b Batch) error {
			if b.BaseOffset() > off {
				return fmt.Errorf("gap: batch at %d, expected %d", b.BaseOffset(), off)
			}
			recs, err := l.Codecs().Records(b)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Offset >= off {
					out = append(out, r)
				}
			}
			off = b.NextOffset()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestCompactKeepsLatestPerKeyAndOffsets(t *testing.T) {
	clock := &fakeClock{}
	clock.ms.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	dir := t.TempDir()
	l, err := Open(dir, compactConfig(), Options{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	latest := map[string]int64{}
	value := map[int64]string{}
	for i := 0; i < 400; i++ {
		k, v := fmt.Sprintf("k%d", i%13), fmt.Sprintf("v%d-%s", i, "padding-padding-padding")
		if i%41 == 40 {
			v = "" // tombstone
		}
		res := appendKV(t, l, clock.ms.Load(), k, v)
		latest[k] = res.BaseOffset
		value[res.BaseOffset] = v
	}
	before := readAll(t, l)
	if l.SegmentCount() < 5 {
		t.Fatalf("want several segments, have %d", l.SegmentCount())
	}
	committed := l.LogEndOffset()
	if !l.NeedsCompaction(committed) {
		t.Fatal("a dirty compacted log should need compaction")
	}
	res, err := l.Compact(context.Background(), committed)
	if err != nil {
		t.Fatal(err)
	}
	if res.RecordsRemoved == 0 || res.BytesAfter >= res.BytesBefore {
		t.Fatalf("compaction removed nothing: %+v", res)
	}
	if l.NeedsCompaction(committed) {
		t.Fatal("a freshly compacted log should not need compaction")
	}
	activeBase := (*l.segs.Load())[l.SegmentCount()-1].base
	after := readAll(t, l)
	seen := map[string]bool{}
	for _, r := range after {
		if r.Offset < activeBase {
			if latest[string(r.Key)] >= activeBase {
				// A newer value sits in the active segment: the cleaner had no reason to know.
			} else if latest[string(r.Key)] != r.Offset {
				t.Fatalf("offset %d key %s survived but the latest is %d", r.Offset, r.Key, latest[string(r.Key)])
			}
		}
		if want := value[r.Offset]; string(r.Value) != want || (want == "") != (r.Value == nil) {
			t.Fatalf("offset %d holds %q, was written as %q", r.Offset, r.Value, want)
		}
		seen[string(r.Key)] = true
	}
	for k := range latest {
		if !seen[k] {
			t.Fatalf("key %s lost its latest value", k)
		}
	}
	if len(after) >= len(before) {
		t.Fatalf("no records removed: %d -> %d", len(before), len(after))
	}
	// Offsets still tile: reopen uncleanly, strict recovery must cut nothing.
	leo := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, compactConfig(), Options{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if rep := l.Recovery(); rep.Reason != "" || l.LogEndOffset() != leo {
		t.Fatalf("recovery after compaction cut the log: %+v, leo %d want %d", rep, l.LogEndOffset(), leo)
	}
	if again := readAll(t, l); len(again) != len(after) {
		t.Fatalf("reopen changed the records: %d vs %d", len(again), len(after))
	}
}

func TestCompactTombstonesExpire(t *testing.T) {
	clock := &fakeClock{}
	clock.ms.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	l, err := Open(t.TempDir(), compactConfig(), Options{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendKV(t, l, clock.ms.Load(), "a", "1", "b", "2")
	tomb := appendKV(t, l, clock.ms.Load(), "a", "")
	for i := 0; i < 60; i++ { // fill segments so the tombstone is cleanable
		appendKV(t, l, clock.ms.Load(), fmt.Sprintf("x%d", i), "some-value-some-value-some-value-some-value-some-value")
	}
	count := func() (tombstones, as int) {
		for _, r := range readAll(t, l) {
			if string(r.Key) == "a" {
				as++
				if r.Value == nil {
					tombstones++
				}
			}
		}
		return
	}
	if _, err := l.Compact(context.Background(), l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if ts, as := count(); ts != 1 || as != 1 {
		t.Fatalf("within delete.retention.ms the tombstone alone must remain: tombstones=%d records=%d", ts, as)
	}
	clock.advance(2 * time.Hour)
	if !l.NeedsCompaction(l.LogEndOffset()) {
		t.Fatal("an expired tombstone should call for compaction")
	}
	if _, err := l.Compact(context.Background(), l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if ts, as := count(); ts != 0 || as != 0 {
		t.Fatalf("expired tombstone still there: tombstones=%d records=%d", ts, as)
	}
	// Its offset is still covered by an (empty) batch: reading there moves on.
	res, err := l.Read(tomb.BaseOffset, 1<<20, l.LogEndOffset())
	if err != nil || res.NextOffset <= tomb.BaseOffset {
		t.Fatalf("read at a compacted-away offset: %+v %v", res, err)
	}
}

func TestCompactRespectsCommittedOffset(t *testing.T) {
	l, err := Open(t.TempDir(), compactConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 200; i++ {
		appendKV(t, l, time.Now().UnixMilli(), "same", fmt.Sprintf("value-%d-padding-padding-padding", i))
	}
	segs := *l.segs.Load()
	committed := segs[2].base // only the first two segments are committed wholly
	if _, err := l.Compact(context.Background(), committed); err != nil {
		t.Fatal(err)
	}
	// Below committed, one record ("same") survives at most; at or above it,
	// every record is untouched.
	below := 0
	for _, r := range readAll(t, l) {
		if r.Offset < committed {
			below++
		}
	}
	if below > 1 {
		t.Fatalf("%d records of one key survive below the committed offset", below)
	}
	n := 0
	for _, r := range readAll(t, l) {
		if r.Offset >= committed {
			n++
		}
	}
	if want := int(l.LogEndOffset() - committed); n != want {
		t.Fatalf("records at or above committed: %d, want %d", n, want)
	}
}

func TestCompactConcurrentWithAppendsAndReads(t *testing.T) {
	t.Run("no file budget", func(t *testing.T) { utCompactConcurrently(t, nil) })
	// One segment's files: segments close and reopen while compaction swaps
	// them, and a reader never reopens a swapped-out segment by name.
	t.Run("budget of 3 files", func(t *testing.T) {
		budget := NewFileBudget(3)
		utRunSweeper(t, budget)
		utCompactConcurrently(t, budget)
	})
}

func utCompactConcurrently(t *testing.T, budget *FileBudget) {
	l, err := Open(t.TempDir(), compactConfig(), Options{Files: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 300; i++ {
		appendKV(t, l, time.Now().UnixMilli(), fmt.Sprintf("k%d", i%7), fmt.Sprintf("v%d-padding-padding-padding", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	wg.Add(2)
	go func() { // writer
		defer wg.Done()
		for i := 0; i < 3000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b, _ := l.Codecs().EncodeBatch(nil, []Record{{Key: []byte(fmt.Sprintf("k%d", i%7)), Value: []byte("new")}}, BatchOptions{})
			if _, err := l.AppendAsLeader(ctx, b, 0); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() { // reader: every batch it sees validates
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			off := l.LogStartOffset()
			for off < l.LogEndOffset() {
				res, err := l.Read(off, 64<<10, math.MaxInt64)
				if err != nil {
					errs <- err
					return
				}
				if len(res.Data) == 0 { // below the log end there is always a batch
					errs <- fmt.Errorf("read at %d: no data and no error below the log end %d", off, res.LogEndOffset)
					return
				}
				if err := Batches(res.Data, func(b Batch) error { return b.Validate() }); err != nil {
					errs <- err
					return
				}
				off = res.NextOffset
			}
		}
	}()
	for i := 0; i < 5; i++ {
		if _, err := l.Compact(ctx, l.LogEndOffset()); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	readAll(t, l) // still contiguous
}

// A compaction swapping a segment, and a restart of the log at an offset,
// keep the old segment's open files open until the new segment list is out:
// a reader still on the old list, in that window, reads them (the budget
// closing them there made it find no data and no error, and
// OffsetForTimestamp skip the segment: a later offset). Here the window is
// held open by the directory fsync (swap) or the new segment's creation
// (restart), where the budget tries to close the old files and a reader reads.
func TestOldSegmentStaysReadableWhileReplaced(t *testing.T) {
	type got struct {
		data      []byte
		readErr   error
		offset    int64
		offsetErr error
	}
	// during runs a reader of offset 1 (and of timestamp utTS(1)) on another
	// goroutine after trying to close old's files, as the budget would.
	during := func(t *testing.T, l *Log, old *segment) got {
		budget := old.ops.files
		budget.mu.Lock()
		if f := old.files.Load(); f != nil {
			f.used.Store(false)
		}
		if f := budget.evict(old); f != nil {
			f.closeAll()
		}
		budget.mu.Unlock()
		ch := make(chan got, 1)
		go func() {
			var g got
			res, err := l.Read(1, 1<<20, math.MaxInt64)
			g.data, g.readErr = res.Data, err
			g.offset, _, _, g.offsetErr = l.OffsetForTimestamp(utTS(1))
			ch <- g
		}()
		select {
		case g := <-ch:
			return g
		case <-time.After(10 * time.Second):
			return got{readErr: fmt.Errorf("the reader waited for the writer's change (it holds the log's lock)")}
		}
	}
	check := func(t *testing.T, g got) {
		t.Helper()
		if g.readErr != nil || len(g.data) == 0 || Batch(g.data).BaseOffset() > 1 {
			t.Fatalf("read at 1 while the segment was replaced: %d bytes, %v; want its batch", len(g.data), g.readErr)
		}
		if g.offsetErr != nil || g.offset != 1 {
			t.Fatalf("offset for timestamp %d while the segment was replaced: %d, %v; want 1", utTS(1), g.offset, g.offsetErr)
		}
	}
	build := func(t *testing.T) (*Log, *faultFS, *segment) {
		fs := &faultFS{}
		l := utOpen(t, t.TempDir(), compactConfig(), Options{FS: fs, Files: NewFileBudget(-1)})
		for i := range int64(300) {
			appendKV(t, l, utTS(i), fmt.Sprintf("k%d", i%7), fmt.Sprintf("v%d-padding-padding-padding", i))
		}
		if err := l.Sync(context.Background()); err != nil { // unsynced files are never closed
			t.Fatal(err)
		}
		old := (*l.segs.Load())[0]
		utCheckRead(t, l, 1) // old's files are open
		return l, fs, old
	}
	hold := func(fs *faultFS, op, suffix string, fn func()) {
		var once sync.Once
		fs.set(func(o, name string) error {
			if o == op && strings.HasSuffix(name, suffix) {
				once.Do(fn)
			}
			return nil
		})
	}
	t.Run("compaction swap", func(t *testing.T) {
		l, fs, old := build(t)
		var g got
		hold(fs, "syncdir", "", func() { g = during(t, l, old) })
		if res, err := l.Compact(context.Background(), l.LogEndOffset()); err != nil || res.SegmentsCleaned == 0 {
			t.Fatalf("compaction: %+v, %v", res, err)
		}
		fs.set(nil)
		if (*l.segs.Load())[0] == old {
			t.Fatal("the first segment was not swapped")
		}
		check(t, g)
		readAll(t, l)
		// A closed log is an error below its end, never an empty answer.
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Read(l.LogStartOffset(), 1<<20, math.MaxInt64); !errors.Is(err, ErrClosed) {
			t.Fatalf("read of a closed log: %v, want ErrClosed", err)
		}
	})
	t.Run("restart at an offset", func(t *testing.T) {
		l, fs, old := build(t)
		var g got
		hold(fs, "open", segmentName(1000)+logSuffix, func() { g = during(t, l, old) })
		if err := l.TruncateFullyAndStartAt(1000); err != nil {
			t.Fatal(err)
		}
		fs.set(nil)
		check(t, g)
		// Once the new list is out, the old offsets are out of range.
		if _, err := l.Read(1, 1<<20, math.MaxInt64); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read of an old offset after the restart: %v", err)
		}
	})
}

// utCheckRead reads at offset and checks a batch holding it comes back.
func utCheckRead(t *testing.T, l *Log, offset int64) {
	t.Helper()
	res, err := l.Read(offset, 1<<20, math.MaxInt64)
	if err != nil || len(res.Data) == 0 || Batch(res.Data).BaseOffset() > offset {
		t.Fatalf("read at %d: %d bytes, %v", offset, len(res.Data), err)
	}
}

// TestEmptyBatchFrom: the remainder of an empty (merged) batch from an
// offset inside it is an empty batch of its own that a log ending at that
// offset accepts; a batch with records, or an offset outside, is refused.
func TestEmptyBatchFrom(t *testing.T) {
	l, err := Open(t.TempDir(), compactConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	full := appendKV(t, l, 0, "k", "v")
	b, err := l.Read(full.BaseOffset, 1<<20, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EmptyBatchFrom(Batch(b.Data), full.BaseOffset); err == nil {
		t.Fatal("a batch with records was cut")
	}
	merged := emptyBatchLike(Batch(b.Data))
	putInt32(merged[posLastOffsetDelta:], 9) // offsets 0-9, as a merge of ten emptied batches leaves them
	merged.setCRC()
	for _, off := range []int64{0, 10} {
		if _, err := EmptyBatchFrom(merged, off); err == nil {
			t.Fatalf("cut at %d, outside (0, 9]", off)
		}
	}
	e, err := EmptyBatchFrom(merged, 4)
	if err != nil {
		t.Fatal(err)
	}
	if e.BaseOffset() != 4 || e.LastOffset() != 9 || e.RecordCount() != 0 || e.LeaderEpoch() != merged.LeaderEpoch() {
		t.Fatalf("remainder [%d, %d] with %d records, epoch %d", e.BaseOffset(), e.LastOffset(), e.RecordCount(), e.LeaderEpoch())
	}
	f, err := Open(t.TempDir(), compactConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.TruncateFullyAndStartAt(4); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AppendAsFollower(context.Background(), e); err != nil {
		t.Fatalf("a log ending at 4 refused the remainder: %v", err)
	}
	if f.LogEndOffset() != 10 {
		t.Fatalf("log end %d after the remainder, want 10", f.LogEndOffset())
	}
}
