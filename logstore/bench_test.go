package logstore

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Benchmarks of the hot paths. scripts/bench-logstore.sh runs them next to a
// dd baseline of the same disk and prints the ratios against the targets.
//
//	go test -run XXX -bench . -benchtime 2s -count 3 ./logstore/
//
// Every benchmark writes under b.TempDir (so $TMPDIR picks the disk). The
// large logs (256 MiB for reads, 1 GiB for recovery) are built once per
// top-level run by the parent benchmark and shared by its sub-benchmarks.

const (
	benchRecordSize  = 1 << 10 // 1 KiB values
	benchBatchRecs   = 500     // records per batch: ~513 KiB batches
	benchReadLogSize = 256 << 20
	benchRecoverSize = 1 << 30
)

// benchRecords returns n records with size-byte values of lowercase text from
// a small vocabulary: compressible about as much as JSON-ish payloads are.
func benchRecords(n, size int, seed uint64) []Record {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	words := []string{"offset", "partition", "leader", "epoch", "batch", "segment",
		"index", "fsync", "replica", "consumer", "topic", "record", "key", "value", "{", "}", ":", ","}
	ts := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	recs := make([]Record, n)
	for i := range recs {
		v := make([]byte, 0, size+16)
		for len(v) < size {
			v = append(v, words[rng.IntN(len(words))]...)
			v = append(v, ' ')
			if rng.IntN(4) == 0 {
				v = fmt.Appendf(v, "%d ", rng.Uint32())
			}
		}
		recs[i] = Record{Timestamp: ts + int64(i), Key: fmt.Appendf(nil, "key-%06d", i), Value: v[:size]}
	}
	return recs
}

// benchBatch encodes one uncompressed batch of n records of size bytes.
func benchBatch(tb testing.TB, n, size int) []byte {
	tb.Helper()
	b, err := NewCodecs(0).EncodeBatch(nil, benchRecords(n, size, 1), BatchOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func benchConfig(fsync FsyncPolicy) Config {
	cfg := DefaultConfig()
	cfg.Fsync = fsync
	return cfg
}

func benchOpen(tb testing.TB, dir string, cfg Config, opts Options) *Log {
	tb.Helper()
	l, err := Open(dir, cfg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// benchFill appends copies of batch with fsync never until the log holds at
// least size bytes, then makes it durable and closes it (a clean shutdown).
func benchFill(tb testing.TB, dir string, cfg Config, batch []byte, size int64) {
	tb.Helper()
	cfg.Fsync = FsyncNever
	l := benchOpen(tb, dir, cfg, Options{})
	buf := make([]byte, len(batch))
	ctx := context.Background()
	for l.Size() < size {
		copy(buf, batch)
		if _, err := l.AppendAsLeader(ctx, buf, 0); err != nil {
			tb.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
}

// closeUntimed closes l inside a b.Loop body without timing it (Close fsyncs).
func closeUntimed(b *testing.B, l *Log) {
	b.StopTimer()
	benchClose(b, l)
	b.StartTimer()
}

func benchClose(tb testing.TB, l *Log) {
	tb.Helper()
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkAppend is a single writer appending 500 x 1 KiB batches.
//
//	fsync=*          : the batch is encoded once; each op copies it into the
//	                   append buffer (AppendAsLeader stamps offsets in place),
//	                   as a broker does with a request buffer.
//	raw/fsync=*      : no log: pwrite of the same batch at the end of a plain
//	                   file (and fdatasync): the file system's floor.
//	reencode/fsync=* : each op encodes the batch from records (producer side included).
func BenchmarkAppend(b *testing.B) {
	for _, fsync := range []FsyncPolicy{FsyncAlways, FsyncNever} {
		b.Run("fsync="+string(fsync), func(b *testing.B) {
			batch := benchBatch(b, benchBatchRecs, benchRecordSize)
			l := benchOpen(b, b.TempDir(), benchConfig(fsync), Options{})
			buf := make([]byte, len(batch))
			ctx := context.Background()
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				copy(buf, batch)
				if _, err := l.AppendAsLeader(ctx, buf, 0); err != nil {
					b.Fatal(err)
				}
			}
			benchClose(b, l)
		})
	}
	// The floor: what the file system gives the same writes without the log,
	// pwrite of the batch at the end of a file (and fdatasync each).
	for _, fsync := range []FsyncPolicy{FsyncAlways, FsyncNever} {
		b.Run("raw/fsync="+string(fsync), func(b *testing.B) {
			batch := benchBatch(b, benchBatchRecs, benchRecordSize)
			f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			var pos int64
			for b.Loop() {
				if _, err := f.WriteAt(batch, pos); err != nil {
					b.Fatal(err)
				}
				pos += int64(len(batch))
				if fsync == FsyncAlways {
					if err := datasync(f); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
	for _, fsync := range []FsyncPolicy{FsyncAlways, FsyncNever} {
		b.Run("reencode/fsync="+string(fsync), func(b *testing.B) {
			recs := benchRecords(benchBatchRecs, benchRecordSize, 1)
			codecs := NewCodecs(0)
			l := benchOpen(b, b.TempDir(), benchConfig(fsync), Options{Codecs: codecs})
			buf, err := codecs.EncodeBatch(nil, recs, BatchOptions{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if buf, err = codecs.EncodeBatch(buf[:0], recs, BatchOptions{}); err != nil {
					b.Fatal(err)
				}
				if _, err := l.AppendAsLeader(ctx, buf, 0); err != nil {
					b.Fatal(err)
				}
			}
			benchClose(b, l)
		})
	}
}

// BenchmarkAppendParallel has several writers appending to one log at once.
// With fsync=always the writers that wait while an fsync runs share the next
// one (group commit): batches/fsync says how many one fsync covered.
func BenchmarkAppendParallel(b *testing.B) {
	for _, fsync := range []FsyncPolicy{FsyncAlways, FsyncNever} {
		for _, writers := range []int{4, 8} {
			b.Run(fmt.Sprintf("fsync=%s/writers=%d", fsync, writers), func(b *testing.B) {
				batch := benchBatch(b, benchBatchRecs, benchRecordSize)
				l := benchOpen(b, b.TempDir(), benchConfig(fsync), Options{})
				ctx := context.Background()
				flushes0 := l.flushes.Load()
				// RunParallel starts p*GOMAXPROCS goroutines.
				b.SetParallelism(max(1, (writers+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					buf := make([]byte, len(batch))
					for pb.Next() {
						copy(buf, batch)
						if _, err := l.AppendAsLeader(ctx, buf, 0); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer() // RunParallel leaves it running
				if fsync == FsyncAlways {
					if n := l.flushes.Load() - flushes0; n > 0 {
						b.ReportMetric(float64(b.N)/float64(n), "batches/fsync")
					}
				}
				benchClose(b, l)
			})
		}
	}
}

// BenchmarkEncodeBatch encodes 500 x 1 KiB records into one batch (MB/s of record values).
func BenchmarkEncodeBatch(b *testing.B) {
	recs := benchRecords(benchBatchRecs, benchRecordSize, 1)
	for _, codec := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd, CompressionSnappy} {
		b.Run("codec="+codec.String(), func(b *testing.B) {
			codecs := NewCodecs(0)
			dst, err := codecs.EncodeBatch(nil, recs, BatchOptions{Compression: codec})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchBatchRecs * benchRecordSize)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if dst, err = codecs.EncodeBatch(dst[:0], recs, BatchOptions{Compression: codec}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchBatchRecs*benchRecordSize)/float64(len(dst)), "ratio")
		})
	}
}

// BenchmarkRead reads a 256 MiB log (page cache) front to back in 1 MiB
// fetches, starting over at the end, as a catching-up consumer does.
//
//	Read/maxBytes=1MiB     : Read, a new buffer per fetch
//	ReadInto/maxBytes=1MiB : ReadInto, the reader reusing one buffer
func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	cfg := benchConfig(FsyncNever)
	cfg.SegmentBytes = 64 << 20 // a few segment boundaries on the way
	benchFill(b, dir, cfg, benchBatch(b, benchBatchRecs, benchRecordSize), benchReadLogSize)
	const maxBytes = 1 << 20
	for _, reuse := range []bool{false, true} {
		name := "Read/maxBytes=1MiB"
		var buf []byte
		if reuse {
			name = "ReadInto/maxBytes=1MiB"
			buf = make([]byte, maxBytes)
		}
		b.Run(name, func(b *testing.B) {
			l := benchOpen(b, dir, cfg, Options{Clean: true})
			// One untimed pass: warms the page cache and gives bytes per fetch.
			var total, fetches int64
			for off := int64(0); ; fetches++ {
				res, err := l.ReadInto(buf, off, maxBytes, math.MaxInt64)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Data) == 0 {
					break
				}
				total += int64(len(res.Data))
				off = res.NextOffset
			}
			if total < benchReadLogSize {
				b.Fatalf("read %d bytes in a pass, want %d", total, benchReadLogSize)
			}
			b.SetBytes(total / fetches)
			b.ReportAllocs()
			var off, read int64
			for b.Loop() {
				res, err := l.ReadInto(buf, off, maxBytes, math.MaxInt64)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Data) == 0 { // the end: start over
					off = 0
					continue
				}
				read += int64(len(res.Data))
				off = res.NextOffset
			}
			b.ReportMetric(float64(read)/b.Elapsed().Seconds()/1e9, "GB/s")
			benchClose(b, l)
		})
	}
}

// BenchmarkOffsetLookup reads the one batch holding a random offset from a
// 256 MiB log of 16 segments with small (1-record, ~1 KiB) batches: segment
// search, index search, the header walk from the index entry, and the read.
func BenchmarkOffsetLookup(b *testing.B) {
	dir := b.TempDir()
	cfg := benchConfig(FsyncNever)
	cfg.SegmentBytes = 16 << 20
	benchFill(b, dir, cfg, benchBatch(b, 1, benchRecordSize), benchReadLogSize)
	b.Run("segments=16", func(b *testing.B) {
		l := benchOpen(b, dir, cfg, Options{Clean: true})
		if l.SegmentCount() < 16 {
			b.Fatalf("%d segments, want 16+", l.SegmentCount())
		}
		leo := l.LogEndOffset()
		rng := rand.New(rand.NewPCG(7, 11))
		offsets := make([]int64, 1<<16)
		for i := range offsets {
			offsets[i] = rng.Int64N(leo)
		}
		for _, off := range offsets[:4096] { // warm
			if _, err := l.Read(off, 1, math.MaxInt64); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		i := 0
		for b.Loop() {
			off := offsets[i&(len(offsets)-1)]
			i++
			res, err := l.Read(off, 1, math.MaxInt64)
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Data) == 0 || res.NextOffset <= off {
				b.Fatalf("read at %d: %d bytes, next %d", off, len(res.Data), res.NextOffset)
			}
		}
		benchClose(b, l)
	})
}

// BenchmarkRecovery opens a 1 GiB log after an unclean shutdown (recovery
// point 0): every batch is read and CRC-checked and the indexes are rebuilt.
func BenchmarkRecovery(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 1 GiB log")
	}
	dir := b.TempDir()
	cfg := benchConfig(FsyncNever)
	benchFill(b, dir, cfg, benchBatch(b, benchBatchRecs, benchRecordSize), benchRecoverSize)
	b.Run("size=1GiB", func(b *testing.B) {
		var size int64
		var once sync.Once
		b.ReportAllocs()
		for b.Loop() {
			l := benchOpen(b, dir, cfg, Options{})
			if rep := l.Recovery(); !rep.Recovered || rep.Reason != "" || rep.SegmentsScanned != l.SegmentCount() {
				b.Fatalf("recovery report %+v, %d segments", rep, l.SegmentCount())
			}
			once.Do(func() { size = l.Size() })
			closeUntimed(b, l)
		}
		gib := float64(size) / (1 << 30)
		perOp := b.Elapsed().Seconds() / float64(b.N)
		b.SetBytes(size)
		b.ReportMetric(perOp/gib, "s/GiB")
		b.ReportMetric(gib/perOp, "GiB/s")
	})
}
