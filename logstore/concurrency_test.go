package logstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// utVerifyRead checks what Read returned for offset: whole valid batches, the
// first holding offset, records carrying exactly the values of their offsets,
// contiguous offsets, and NextOffset after the last batch.
func utVerifyRead(l *Log, offset int64, res ReadResult) error {
	if len(res.Data) == 0 {
		return fmt.Errorf("Read(%d) returned nothing below the log end", offset)
	}
	next := int64(-1)
	first := true
	err := Batches(res.Data, func(b Batch) error {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("Read(%d): batch at %d: %w", offset, b.BaseOffset(), err)
		}
		if first && (b.BaseOffset() > offset || b.LastOffset() < offset) {
			return fmt.Errorf("Read(%d): first batch holds %d..%d", offset, b.BaseOffset(), b.LastOffset())
		}
		if !first && b.BaseOffset() != next {
			return fmt.Errorf("Read(%d): batch at %d after one ending at %d", offset, b.BaseOffset(), next)
		}
		first = false
		recs, err := l.Codecs().Records(b)
		if err != nil {
			return fmt.Errorf("Read(%d): batch at %d: %w", offset, b.BaseOffset(), err)
		}
		for i, r := range recs {
			if r.Offset != b.BaseOffset()+int64(i) || !bytes.Equal(r.Value, utValue(r.Offset)) || !bytes.Equal(r.Key, utKey(r.Offset)) {
				return fmt.Errorf("Read(%d): record %d of batch %d: offset %d key %q value %q",
					offset, i, b.BaseOffset(), r.Offset, r.Key, r.Value)
			}
		}
		next = b.NextOffset()
		return nil
	})
	if err != nil {
		return err
	}
	var consumed int
	_ = Batches(res.Data, func(b Batch) error { consumed += len(b); return nil })
	if consumed != len(res.Data) {
		return fmt.Errorf("Read(%d): %d trailing bytes are not a whole batch", offset, len(res.Data)-consumed)
	}
	if res.NextOffset != next {
		return fmt.Errorf("Read(%d): NextOffset %d, last batch ends at %d", offset, res.NextOffset, next)
	}
	return nil
}

// One writer appends (rolling segments, moving the log start, syncing) while
// readers fetch from random offsets: no reader ever sees a partial or foreign
// batch.
func TestConcurrentReadersSeeWholeBatches(t *testing.T) {
	t.Run("no file budget", func(t *testing.T) { utConcurrentReaders(t, nil) })
	// One segment's files at most: segments close and reopen under the
	// readers all the time, and none may be closed while it is read.
	t.Run("budget of 3 files", func(t *testing.T) {
		budget := NewFileBudget(3)
		utRunSweeper(t, budget)
		utConcurrentReaders(t, budget)
		if budget.Closed() == 0 {
			t.Fatal("no segment was closed under the budget")
		}
		t.Logf("%d files closed under the budget", budget.Closed())
	})
}

func utConcurrentReaders(t *testing.T, budget *FileBudget) {
	cfg := utCfg()
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 256
	l := utOpen(t, t.TempDir(), cfg, Options{Files: budget})
	batches := 600
	if testing.Short() {
		batches = 200
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	var reads, emptyAtEnd atomic.Int64
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 99))
			for ; !stop.Load(); runtime.Gosched() { // leave the writer its share of the CPUs
				start, leo := l.LogStartOffset(), l.LogEndOffset()
				if leo == start {
					continue
				}
				off := start + rng.Int64N(leo-start+1) // up to and including the log end
				res, err := l.Read(off, rng.IntN(6000), math.MaxInt64)
				if err != nil {
					if errors.Is(err, ErrOffsetOutOfRange) && off < l.LogStartOffset() {
						continue // retention moved the start past it meanwhile
					}
					errs <- fmt.Errorf("Read(%d) with log [%d, %d]: %w", off, start, leo, err)
					return
				}
				if res.LogEndOffset < leo || res.LogStartOffset < start {
					errs <- fmt.Errorf("Read(%d): bounds [%d, %d] went back from [%d, %d]", off, res.LogStartOffset, res.LogEndOffset, start, leo)
					return
				}
				if off == leo && len(res.Data) == 0 {
					emptyAtEnd.Add(1)
					continue
				}
				if off == leo && res.LogEndOffset == leo {
					errs <- fmt.Errorf("Read at the log end %d returned data", leo)
					return
				}
				if err := utVerifyRead(l, off, res); err != nil {
					errs <- err
					return
				}
				reads.Add(1)
			}
		}()
	}
	// A time lookup reader: timestamps grow with offsets.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(5, 5))
		for ; !stop.Load(); runtime.Gosched() {
			leo := l.LogEndOffset()
			if leo == 0 {
				continue
			}
			want := rng.Int64N(leo)
			off, ts, found, err := l.OffsetForTimestamp(utTS(want))
			if err != nil || !found || off < want || ts != utTS(off) {
				errs <- fmt.Errorf("OffsetForTimestamp(ts of %d) = %d, %d, %v, %v", want, off, ts, found, err)
				return
			}
		}
	}()
	// A syncer: the durable offset only grows and never passes the log end.
	wg.Add(1)
	go func() {
		defer wg.Done()
		var last int64
		for ; !stop.Load(); runtime.Gosched() {
			if err := l.Sync(context.Background()); err != nil {
				errs <- err
				return
			}
			d := l.DurableOffset()
			if d < last || d > l.LogEndOffset() {
				errs <- fmt.Errorf("durable offset %d after %d, leo %d", d, last, l.LogEndOffset())
				return
			}
			last = d
		}
	}()

	func() {
		defer func() { stop.Store(true); wg.Wait() }()
		rng := rand.New(rand.NewPCG(42, 42))
		ctx := context.Background()
		for i := 0; i < batches; i++ {
			base := l.LogEndOffset()
			codec := utAllCodecs[rng.IntN(len(utAllCodecs))]
			batch := utLeaderBatch(t, 1+rng.IntN(8), base, utTS, codec)
			if _, err := l.AppendAsLeader(ctx, batch, int32(i/100)); err != nil {
				t.Errorf("append %d: %v", i, err)
				return
			}
			if i%100 == 99 {
				if err := l.DeleteRecordsBefore(l.LogEndOffset() - 200); err != nil {
					t.Errorf("DeleteRecordsBefore: %v", err)
					return
				}
			}
			if len(errs) > 0 {
				return
			}
		}
		// Let the readers see the final state for a moment: wait (bounded) for more reads.
		target := reads.Load() + 200
		deadline := time.Now().Add(10 * time.Second)
		for reads.Load() < target && len(errs) == 0 && time.Now().Before(deadline) {
			runtime.Gosched()
		}
	}()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if reads.Load() == 0 {
		t.Fatal("the readers verified nothing")
	}
	t.Logf("%d verified reads, %d empty reads at the log end, %d segments", reads.Load(), emptyAtEnd.Load(), l.SegmentCount())
	start := l.LogStartOffset()
	utCheckContiguous(t, utReadRecords(t, l, start, 1<<20), start, l.LogEndOffset())
}

// Leader appends from many goroutines with fsync always: every append
// succeeds, offsets are unique and contiguous, and all of it is durable.
func TestConcurrentLeaderAppendsFsyncAlways(t *testing.T) {
	cfg := utCfg()
	cfg.Fsync = FsyncAlways
	cfg.SegmentBytes = 8192
	dir := t.TempDir()
	l := utOpen(t, dir, cfg, Options{})
	const writers = 8
	perWriter := 40
	if testing.Short() {
		perWriter = 10
	}
	type appended struct {
		res    AppendResult
		values [][]byte
	}
	results := make([][]appended, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := NewCodecs(0)
			for i := 0; i < perWriter; i++ {
				n := 1 + (w+i)%3
				recs := make([]Record, n)
				var values [][]byte
				for j := range recs {
					v := []byte(fmt.Sprintf("w%d-i%d-r%d", w, i, j))
					recs[j] = Record{Timestamp: utT0, Value: v}
					values = append(values, v)
				}
				b, err := c.EncodeBatch(nil, recs, BatchOptions{Compression: utAllCodecs[i%len(utAllCodecs)]})
				if err != nil {
					errs <- err
					return
				}
				res, err := l.AppendAsLeader(context.Background(), b, 3)
				if err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
				// With fsync always the append is durable when it returns.
				if d := l.DurableOffset(); d <= res.LastOffset {
					errs <- fmt.Errorf("writer %d: append [%d,%d] returned with durable offset %d", w, res.BaseOffset, res.LastOffset, d)
					return
				}
				results[w] = append(results[w], appended{res, values})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var all []appended
	for _, r := range results {
		all = append(all, r...)
	}
	if len(all) != writers*perWriter {
		t.Fatalf("%d appends succeeded, want %d", len(all), writers*perWriter)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].res.BaseOffset < all[j].res.BaseOffset })
	want := map[int64][]byte{}
	next := int64(0)
	for _, a := range all {
		if a.res.BaseOffset != next || a.res.LastOffset != next+int64(len(a.values))-1 {
			t.Fatalf("append at [%d,%d] after offset %d: offsets not unique and contiguous", a.res.BaseOffset, a.res.LastOffset, next)
		}
		for j, v := range a.values {
			want[next+int64(j)] = v
		}
		next = a.res.LastOffset + 1
	}
	if l.LogEndOffset() != next || l.DurableOffset() != l.LogEndOffset() {
		t.Fatalf("leo %d durable %d, want both %d", l.LogEndOffset(), l.DurableOffset(), next)
	}
	recs := utReadRecordsAny(t, l)
	if int64(len(recs)) != next {
		t.Fatalf("read %d records, want %d", len(recs), next)
	}
	for _, r := range recs {
		if !bytes.Equal(r.Value, want[r.Offset]) {
			t.Fatalf("offset %d holds %q, the append that got it wrote %q", r.Offset, r.Value, want[r.Offset])
		}
	}
	if got := l.Epochs(); len(got) != 1 || got[0] != (EpochEntry{3, 0}) {
		t.Fatalf("epochs %v", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := utOpen(t, dir, cfg, Options{})
	if l2.LogEndOffset() != next || l2.Recovery().Reason != "" {
		t.Fatalf("after recovery: leo %d, report %+v", l2.LogEndOffset(), l2.Recovery())
	}
}

// utReadRecordsAny decodes every record of the log without checking values.
func utReadRecordsAny(t *testing.T, l *Log) []Record {
	t.Helper()
	var out []Record
	if err := Batches(utReadRaw(t, l, l.LogStartOffset(), 1<<20), func(b Batch) error {
		recs, err := l.Codecs().Records(b)
		out = append(out, recs...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestConcurrentWaitDurableHonoursContext(t *testing.T) {
	l := utOpen(t, t.TempDir(), utCfg(), Options{}) // fsync never: appends stay undurable
	utAppend(t, l, 3, 0)
	leo := l.LogEndOffset()
	if l.DurableOffset() >= leo {
		t.Fatalf("durable %d already at the log end", l.DurableOffset())
	}

	// An fsync is in flight (we hold the flusher's slot): waiters queue.
	l.syncSem <- struct{}{}
	released := false
	release := func() {
		if !released {
			released = true
			<-l.syncSem
		}
	}
	defer release()

	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := l.WaitDurable(ctx, leo); !errors.Is(err, context.Canceled) {
			t.Fatalf("WaitDurable = %v, want context.Canceled", err)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.WaitDurable(ctx, leo) }()
		select {
		case err := <-done:
			t.Fatalf("WaitDurable returned %v while the flush was still in flight", err)
		default:
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("WaitDurable = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("WaitDurable ignored the cancellation")
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := l.WaitDurable(ctx, leo); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitDurable = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("append with fsync always returns the context error", func(t *testing.T) {
		cfg := l.Config()
		cfg.Fsync = FsyncAlways
		if err := l.SetConfig(cfg); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		base := l.LogEndOffset()
		_, err := l.AppendAsLeader(ctx, utLeaderBatch(t, 2, base, utTS, CompressionNone), 0)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("append = %v, want context.Canceled", err)
		}
		// The batch is in the log, just not known durable.
		if l.LogEndOffset() != base+2 || l.DurableOffset() >= base+2 {
			t.Fatalf("leo %d durable %d", l.LogEndOffset(), l.DurableOffset())
		}
	})
	// Below the durable offset nothing waits, whatever the context.
	t.Run("nothing to wait for", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := l.WaitDurable(ctx, l.DurableOffset()); err != nil {
			t.Fatalf("WaitDurable at the durable offset = %v", err)
		}
	})

	release()
	if err := l.WaitDurable(context.Background(), l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if l.DurableOffset() != l.LogEndOffset() {
		t.Fatalf("durable %d, leo %d", l.DurableOffset(), l.LogEndOffset())
	}
	utCheckContiguous(t, utReadRecords(t, l, 0, 1<<20), 0, l.LogEndOffset())
}

// Many goroutines waiting on one log all get through once the flush runs.
func TestConcurrentWaitersShareFlushes(t *testing.T) {
	l := utOpen(t, t.TempDir(), utCfg(), Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for j := 0; j < 5; j++ {
				end := l.LogEndOffset()
				if err := l.WaitDurable(ctx, end); err != nil {
					errs <- err
					return
				}
				if d := l.DurableOffset(); d < end {
					errs <- fmt.Errorf("WaitDurable(%d) returned at durable %d", end, d)
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		utAppend(t, l, 2, 0)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
