package logstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ---- helpers (prefixed ut: other test files share the package) ----

// utClock is a settable clock in milliseconds.
type utClock struct{ ms atomic.Int64 }

func newUTClock(ms int64) *utClock {
	c := &utClock{}
	c.ms.Store(ms)
	return c
}

func (c *utClock) Now() time.Time   { return time.UnixMilli(c.ms.Load()) }
func (c *utClock) Advance(ms int64) { c.ms.Add(ms) }
func (c *utClock) Millis() int64    { return c.ms.Load() }

const utT0 = int64(1_700_000_000_000)

// utCfg is the default config without fsync (tests that need it turn it on).
func utCfg() Config {
	c := DefaultConfig()
	c.Fsync = FsyncNever
	return c
}

func utOpen(t *testing.T, dir string, cfg Config, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, cfg, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// utRunSweeper runs budget's sweeper until the test ends.
func utRunSweeper(t testing.TB, budget *FileBudget) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { budget.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func utKey(off int64) []byte   { return []byte(fmt.Sprintf("key-%d", off)) }
func utValue(off int64) []byte { return []byte(fmt.Sprintf("value-%d", off)) }

// utLeaderBatch encodes n records meant for offsets first..first+n-1. The
// base offset and epoch written are junk: a leader append must replace them.
func utLeaderBatch(t testing.TB, n int, first int64, ts func(off int64) int64, codec Compression) []byte {
	t.Helper()
	recs := make([]Record, n)
	for i := range recs {
		off := first + int64(i)
		recs[i] = Record{Timestamp: ts(off), Key: utKey(off), Value: utValue(off)}
	}
	b, err := NewCodecs(0).EncodeBatch(nil, recs, BatchOptions{Compression: codec, BaseOffset: 987654, LeaderEpoch: 4242})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func utTS(off int64) int64 { return utT0 + off }

// utAppend appends n records as leader, checking the offsets it gets.
func utAppend(t testing.TB, l *Log, n int, epoch int32) AppendResult {
	t.Helper()
	return utAppendTS(t, l, n, epoch, utTS)
}

func utAppendTS(t testing.TB, l *Log, n int, epoch int32, ts func(int64) int64) AppendResult {
	t.Helper()
	base := l.LogEndOffset()
	res, err := l.AppendAsLeader(context.Background(), utLeaderBatch(t, n, base, ts, CompressionNone), epoch)
	if err != nil {
		t.Fatalf("AppendAsLeader: %v", err)
	}
	if res.BaseOffset != base || res.LastOffset != base+int64(n)-1 {
		t.Fatalf("append got offsets [%d,%d], want [%d,%d]", res.BaseOffset, res.LastOffset, base, base+int64(n)-1)
	}
	return res
}

// utFollowerBatch encodes n records at base with epoch, as a leader would have stored them.
func utFollowerBatch(t testing.TB, base int64, n int, epoch int32) []byte {
	t.Helper()
	recs := make([]Record, n)
	for i := range recs {
		off := base + int64(i)
		recs[i] = Record{Timestamp: utTS(off), Key: utKey(off), Value: utValue(off)}
	}
	b, err := NewCodecs(0).EncodeBatch(nil, recs, BatchOptions{BaseOffset: base, LeaderEpoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// utReadRaw reads every batch from from to the log end with the given budget.
func utReadRaw(t testing.TB, l *Log, from int64, maxBytes int) []byte {
	t.Helper()
	var out []byte
	off := from
	for off < l.LogEndOffset() {
		res, err := l.Read(off, maxBytes, math.MaxInt64)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if len(res.Data) == 0 || res.NextOffset <= off {
			t.Fatalf("Read(%d) made no progress: %d bytes, next %d, leo %d", off, len(res.Data), res.NextOffset, l.LogEndOffset())
		}
		out = append(out, res.Data...)
		off = res.NextOffset
	}
	return out
}

// utReadRecords reads and decodes every record at or after from, checking CRCs.
func utReadRecords(t testing.TB, l *Log, from int64, maxBytes int) []Record {
	t.Helper()
	var out []Record
	err := Batches(utReadRaw(t, l, from, maxBytes), func(b Batch) error {
		recs, err := l.Codecs().Records(b)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Offset >= from {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// utCheckContiguous checks records are exactly offsets from..to-1 with the utValue contents.
func utCheckContiguous(t testing.TB, recs []Record, from, to int64) {
	t.Helper()
	if int64(len(recs)) != to-from {
		t.Fatalf("%d records, want %d (offsets %d..%d)", len(recs), to-from, from, to-1)
	}
	for i, r := range recs {
		off := from + int64(i)
		if r.Offset != off || !bytes.Equal(r.Value, utValue(off)) || !bytes.Equal(r.Key, utKey(off)) {
			t.Fatalf("record %d: offset %d key %q value %q, want offset %d", i, r.Offset, r.Key, r.Value, off)
		}
	}
}

func utBatchBases(t testing.TB, data []byte) []int64 {
	t.Helper()
	var out []int64
	if err := Batches(data, func(b Batch) error {
		if err := b.Validate(); err != nil {
			return err
		}
		out = append(out, b.BaseOffset())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// utSegmentFiles lists the base offsets of the .log files in dir.
func utSegmentFiles(t testing.TB, dir string) []int64 {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, m := range matches {
		var base int64
		name := filepath.Base(m)
		if len(name) != 24 {
			t.Fatalf("segment file %q is not named by a 20-digit offset", name)
		}
		if _, err := fmt.Sscanf(name, "%020d.log", &base); err != nil {
			t.Fatalf("segment file %q: %v", name, err)
		}
		out = append(out, base)
	}
	slices.Sort(out)
	return out
}

func utSegmentBases(l *Log) []int64 {
	var out []int64
	for _, s := range *l.segs.Load() {
		out = append(out, s.base)
	}
	return out
}

func utFileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func utOutOfRange(t testing.TB, err error, offset, start, end int64) {
	t.Helper()
	var oor *OutOfRangeError
	if !errors.Is(err, ErrOffsetOutOfRange) || !errors.As(err, &oor) {
		t.Fatalf("err %v, want *OutOfRangeError", err)
	}
	if oor.Offset != offset || oor.LogStartOffset != start || oor.LogEndOffset != end {
		t.Fatalf("out of range %+v, want offset %d in [%d, %d]", *oor, offset, start, end)
	}
}

// ---- tests ----

func TestLogOpenEmptyDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "topic-0") // does not exist yet
	l := utOpen(t, dir, utCfg(), Options{})
	if l.LogEndOffset() != 0 || l.LogStartOffset() != 0 || l.DurableOffset() != 0 || l.SegmentCount() != 1 || l.Size() != 0 {
		t.Fatalf("empty log: leo %d start %d durable %d segments %d size %d",
			l.LogEndOffset(), l.LogStartOffset(), l.DurableOffset(), l.SegmentCount(), l.Size())
	}
	if got := utSegmentFiles(t, dir); !reflect.DeepEqual(got, []int64{0}) {
		t.Fatalf("segment files %v", got)
	}
	for _, suf := range []string{".log", ".index", ".timeindex"} {
		if _, err := os.Stat(filepath.Join(dir, "00000000000000000000"+suf)); err != nil {
			t.Errorf("missing %s: %v", suf, err)
		}
	}
	res, err := l.Read(0, 1<<20, math.MaxInt64)
	if err != nil || len(res.Data) != 0 || res.NextOffset != 0 || res.LogEndOffset != 0 {
		t.Fatalf("Read(0) = %+v, %v", res, err)
	}
	_, err = l.Read(1, 1<<20, math.MaxInt64)
	utOutOfRange(t, err, 1, 0, 0)
	if e := l.LatestEpoch(); e != UndefinedEpoch {
		t.Fatalf("latest epoch %d", e)
	}
	if e, o := l.EndOffsetForEpoch(0); e != UndefinedEpoch || o != UndefinedOffset {
		t.Fatalf("EndOffsetForEpoch(0) = %d, %d", e, o)
	}
	if _, _, found, err := l.OffsetForTimestamp(0); found || err != nil {
		t.Fatalf("OffsetForTimestamp on an empty log: found %v err %v", found, err)
	}
	if l.Recovery().Recovered && l.Recovery().Reason != "" {
		t.Fatalf("recovery of an empty dir cut something: %+v", l.Recovery())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// And it opens again as the same empty log.
	l2 := utOpen(t, dir, utCfg(), Options{})
	if l2.LogEndOffset() != 0 || l2.SegmentCount() != 1 {
		t.Fatalf("reopened empty log: leo %d segments %d", l2.LogEndOffset(), l2.SegmentCount())
	}
}

func TestLogOpenRejectsBadConfig(t *testing.T) {
	bad := map[string]func(*Config){
		"segment.bytes":          func(c *Config) { c.SegmentBytes = 10 },
		"segment.ms":             func(c *Config) { c.SegmentMs = 0 },
		"segment.index.bytes":    func(c *Config) { c.SegmentIndexBytes = 7 },
		"index.interval.bytes":   func(c *Config) { c.IndexIntervalBytes = -1 },
		"retention.ms":           func(c *Config) { c.RetentionMs = -2 },
		"retention.bytes":        func(c *Config) { c.RetentionBytes = -2 },
		"delete.retention.ms":    func(c *Config) { c.DeleteRetentionMs = -1 },
		"cleanup.policy":         func(c *Config) { c.CleanupPolicy = "shred" },
		"message.timestamp.type": func(c *Config) { c.MessageTimestampType = "Now" },
		"fsync":                  func(c *Config) { c.Fsync = "sometimes" },
	}
	for name, mut := range bad {
		cfg := utCfg()
		mut(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, cfg)
		}
		if l, err := Open(t.TempDir(), cfg, Options{}); err == nil {
			l.Close()
			t.Errorf("%s: Open accepted a bad config", name)
		}
	}
	l := utOpen(t, t.TempDir(), utCfg(), Options{})
	cfg := utCfg()
	cfg.SegmentBytes = 5
	if err := l.SetConfig(cfg); err == nil {
		t.Error("SetConfig accepted segment.bytes 5")
	}
	if l.Config().SegmentBytes != utCfg().SegmentBytes {
		t.Error("a refused SetConfig changed the config")
	}
}

func TestLogLeaderAppendAssignsOffsetsAndEpoch(t *testing.T) {
	clock := newUTClock(utT0 + 5000)
	l := utOpen(t, t.TempDir(), utCfg(), Options{Now: clock.Now})
	ctx := context.Background()

	type step struct {
		n     int
		epoch int32
	}
	steps := []step{{1, 3}, {3, 3}, {5, 5}, {2, 5}, {1, 9}}
	var wantBases []int64
	var wantEpochs []int32
	for _, s := range steps {
		base := l.LogEndOffset()
		ts := func(off int64) int64 { return utT0 + 1000 - off } // decreasing: max is the first
		batch := utLeaderBatch(t, s.n, base, ts, CompressionLZ4)
		res, err := l.AppendAsLeader(ctx, batch, s.epoch)
		if err != nil {
			t.Fatal(err)
		}
		want := AppendResult{BaseOffset: base, LastOffset: base + int64(s.n) - 1, MaxTimestamp: ts(base), AppendTime: clock.Millis()}
		if res != want {
			t.Fatalf("append result %+v, want %+v", res, want)
		}
		if Batch(batch).BaseOffset() != base || Batch(batch).LeaderEpoch() != s.epoch {
			t.Fatalf("the batch was not stamped in place: base %d epoch %d", Batch(batch).BaseOffset(), Batch(batch).LeaderEpoch())
		}
		if l.LogEndOffset() != base+int64(s.n) {
			t.Fatalf("leo %d", l.LogEndOffset())
		}
		wantBases = append(wantBases, base)
		wantEpochs = append(wantEpochs, s.epoch)
	}
	leo := l.LogEndOffset()
	if leo != 12 {
		t.Fatalf("leo %d, want 12", leo)
	}
	wantCache := []EpochEntry{{3, 0}, {5, 4}, {9, 11}}
	if got := l.Epochs(); !reflect.DeepEqual(got, wantCache) {
		t.Fatalf("epochs %v, want %v", got, wantCache)
	}
	if l.LatestEpoch() != 9 {
		t.Fatalf("latest epoch %d", l.LatestEpoch())
	}
	data := utReadRaw(t, l, 0, 1<<20)
	var i int
	if err := Batches(data, func(b Batch) error {
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			return err
		}
		if rb.FirstOffset != wantBases[i] || rb.PartitionLeaderEpoch != wantEpochs[i] || int(rb.NumRecords) != steps[i].n {
			return fmt.Errorf("stored batch %d: %+v", i, rb)
		}
		if uint32(rb.CRC) != crc32.Checksum(b[21:], utCastagnoli) {
			return fmt.Errorf("stored batch %d: bad CRC", i)
		}
		i++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if i != len(steps) {
		t.Fatalf("read %d batches, want %d", i, len(steps))
	}
	utCheckContiguous(t, utReadRecords(t, l, 0, 1<<20), 0, leo)

	// Refused appends change nothing.
	good := func() []byte { return utLeaderBatch(t, 2, leo, utTS, CompressionNone) }
	resum := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], utCastagnoli))
		return b
	}
	cases := []struct {
		name  string
		batch []byte
		epoch int32
		cfg   func(*Config)
		want  error
	}{
		{"older epoch", good(), 8, nil, ErrStaleEpoch},
		{"negative epoch", good(), -1, nil, ErrStaleEpoch},
		{"bad crc", func() []byte { b := good(); b[len(b)-1] ^= 1; return b }(), 9, nil, ErrCorruptBatch},
		{"truncated", good()[:70], 9, nil, ErrCorruptBatch},
		{"garbage", []byte("not a batch at all"), 9, nil, ErrCorruptBatch},
		{"count below offsets", func() []byte {
			b := good()
			binary.BigEndian.PutUint32(b[57:], 1)
			return resum(b)
		}(), 9, nil, ErrCorruptBatch},
		{"too large", good(), 9, func(c *Config) { c.SegmentBytes = 100 }, ErrBatchTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg != nil {
				cfg := l.Config()
				tc.cfg(&cfg)
				if err := l.SetConfig(cfg); err != nil {
					t.Fatal(err)
				}
				defer func() { _ = l.SetConfig(utCfg()) }()
			}
			_, err := l.AppendAsLeader(ctx, tc.batch, tc.epoch)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if l.LogEndOffset() != leo || !reflect.DeepEqual(l.Epochs(), wantCache) {
				t.Fatalf("a refused append changed the log: leo %d epochs %v", l.LogEndOffset(), l.Epochs())
			}
		})
	}
	utCheckContiguous(t, utReadRecords(t, l, 0, 1<<20), 0, leo)

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendAsLeader(ctx, good(), 9); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := l.AppendAsFollower(ctx, utFollowerBatch(t, leo, 1, 9)); !errors.Is(err, ErrClosed) {
		t.Fatalf("follower append after close: %v", err)
	}
	if _, err := l.Truncate(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("truncate after close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestLogLogAppendTime(t *testing.T) {
	clock := newUTClock(utT0 + 50_000)
	cfg := utCfg()
	cfg.MessageTimestampType = LogAppendTime
	l := utOpen(t, t.TempDir(), cfg, Options{Now: clock.Now})
	ctx := context.Background()
	var appendTimes []int64
	for i, codec := range utAllCodecs {
		base := l.LogEndOffset()
		batch := utLeaderBatch(t, 3, base, func(off int64) int64 { return 1000 + off }, codec) // old CreateTimes
		res, err := l.AppendAsLeader(ctx, batch, 1)
		if err != nil {
			t.Fatal(err)
		}
		if res.MaxTimestamp != clock.Millis() || res.AppendTime != clock.Millis() {
			t.Fatalf("batch %d: result %+v, want max timestamp = append time %d", i, res, clock.Millis())
		}
		appendTimes = append(appendTimes, clock.Millis())
		clock.Advance(1000)
	}
	data := utReadRaw(t, l, 0, 1<<20)
	var n int
	if err := Batches(data, func(b Batch) error {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("batch %d: %w", n, err)
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			return err
		}
		if rb.Attributes&0x08 == 0 || rb.MaxTimestamp != appendTimes[n] || rb.Attributes&7 != int16(utAllCodecs[n]) {
			return fmt.Errorf("batch %d: attributes %#x max timestamp %d, want LogAppendTime %d", n, rb.Attributes, rb.MaxTimestamp, appendTimes[n])
		}
		if uint32(rb.CRC) != crc32.Checksum(b[21:], utCastagnoli) {
			return fmt.Errorf("batch %d: CRC not recomputed after stamping the time", n)
		}
		recs, err := l.Codecs().Records(b)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Timestamp != appendTimes[n] {
				return fmt.Errorf("record %d: timestamp %d, want %d", r.Offset, r.Timestamp, appendTimes[n])
			}
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Time lookups use the append times.
	for i, at := range appendTimes {
		off, ts, found, err := l.OffsetForTimestamp(at)
		if err != nil || !found || off != int64(3*i) || ts != at {
			t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want %d", at, off, ts, found, err, 3*i)
		}
	}
	if _, _, found, _ := l.OffsetForTimestamp(appendTimes[len(appendTimes)-1] + 1); found {
		t.Fatal("found a record newer than every append")
	}
}

func TestLogFollowerAppend(t *testing.T) {
	ctx := context.Background()
	// The leader's batches: offsets 0-2 e1, 3-4 e1, 5-8 e2, 9 e2.
	b0 := func() []byte { return utFollowerBatch(t, 0, 3, 1) }
	b3 := func() []byte { return utFollowerBatch(t, 3, 2, 1) }
	b5 := func() []byte { return utFollowerBatch(t, 5, 4, 2) }
	b9 := func() []byte { return utFollowerBatch(t, 9, 1, 2) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	corrupt := func(b []byte) []byte { b[len(b)-2] ^= 0x10; return b }

	t.Run("contiguous multi-batch input", func(t *testing.T) {
		l := utOpen(t, t.TempDir(), utCfg(), Options{})
		in := cat(b0(), b3(), b5(), b9())
		res, err := l.AppendAsFollower(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if res.BaseOffset != 0 || res.LastOffset != 9 || res.MaxTimestamp != utTS(9) || l.LogEndOffset() != 10 {
			t.Fatalf("result %+v leo %d", res, l.LogEndOffset())
		}
		if got := utReadRaw(t, l, 0, 1<<20); !bytes.Equal(got, in) {
			t.Fatal("stored bytes differ from the leader's")
		}
		if got, want := l.Epochs(), []EpochEntry{{1, 0}, {2, 5}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("epochs %v, want %v", got, want)
		}
		utCheckContiguous(t, utReadRecords(t, l, 0, 1<<20), 0, 10)
	})

	t.Run("one call per batch", func(t *testing.T) {
		l := utOpen(t, t.TempDir(), utCfg(), Options{})
		for _, b := range [][]byte{b0(), b3(), b5(), b9()} {
			if _, err := l.AppendAsFollower(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(utReadRaw(t, l, 0, 1<<20), cat(b0(), b3(), b5(), b9())) {
			t.Fatal("stored bytes differ from the leader's")
		}
	})

	refused := []struct {
		name   string
		policy string
		before []byte // appended first (leo 3 after b0)
		in     []byte
		want   error
	}{
		{"gap", CleanupDelete, b0(), b5(), ErrOffsetMismatch},
		{"gap compact,delete", CleanupCompactDelete, b0(), b5(), ErrOffsetMismatch},
		{"overlap: same batch again", CleanupDelete, b0(), b0(), ErrOffsetMismatch},
		{"overlap: starts inside the log", CleanupDelete, b0(), utFollowerBatch(t, 2, 3, 1), ErrOffsetMismatch},
		{"overlap inside the input", CleanupDelete, b0(), cat(b3(), utFollowerBatch(t, 4, 2, 1)), ErrOffsetMismatch},
		{"gap inside the input", CleanupDelete, b0(), cat(b3(), b9()), ErrOffsetMismatch},
		{"bad crc in the last batch", CleanupDelete, b0(), cat(b3(), corrupt(b5())), ErrCorruptBatch},
		{"bad crc in the first batch", CleanupDelete, b0(), cat(corrupt(b3()), b5()), ErrCorruptBatch},
		{"stale epoch", CleanupDelete, utFollowerBatch(t, 0, 3, 4), b3(), ErrStaleEpoch},
		{"epoch goes back inside the input", CleanupDelete, b0(), cat(utFollowerBatch(t, 3, 2, 3), utFollowerBatch(t, 5, 1, 2)), ErrStaleEpoch},
		{"partial trailing batch", CleanupDelete, b0(), cat(b3(), b5()[:40]), ErrCorruptBatch},
		{"partial batch only", CleanupDelete, b0(), b3()[:BatchHeaderSize+1], ErrCorruptBatch},
		{"empty input", CleanupDelete, b0(), nil, ErrEmptyBatch},
		{"too large", CleanupDelete, b0(), utFollowerBatch(t, 3, 400, 1), ErrBatchTooLarge},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			cfg := utCfg()
			cfg.CleanupPolicy = tc.policy
			cfg.SegmentBytes = 4096
			l := utOpen(t, t.TempDir(), cfg, Options{})
			if _, err := l.AppendAsFollower(ctx, tc.before); err != nil {
				t.Fatal(err)
			}
			leo, epochs, size := l.LogEndOffset(), l.Epochs(), l.Size()
			_, err := l.AppendAsFollower(ctx, tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if l.LogEndOffset() != leo || !reflect.DeepEqual(l.Epochs(), epochs) || l.Size() != size {
				t.Fatalf("refused input changed the log: leo %d->%d epochs %v->%v size %d->%d",
					leo, l.LogEndOffset(), epochs, l.Epochs(), size, l.Size())
			}
			if !bytes.Equal(utReadRaw(t, l, 0, 1<<20), tc.before) {
				t.Fatal("log content changed")
			}
		})
	}

	// A compacted leader's batch may hold fewer records than offsets (and none
	// at all): the follower stores it and continues after its last offset.
	t.Run("sparse and empty batches", func(t *testing.T) {
		cfg := utCfg()
		cfg.CleanupPolicy = CleanupCompact
		l := utOpen(t, t.TempDir(), cfg, Options{})
		sparse := utSparseBatch(t, 0, []int32{0, 4}, 10, 1)
		empty := utSparseBatch(t, 11, nil, 14, 1) // offsets 11..25, no records
		in := cat(sparse, empty, utFollowerBatch(t, 26, 2, 2))
		if _, err := l.AppendAsFollower(ctx, in); err != nil {
			t.Fatal(err)
		}
		if l.LogEndOffset() != 28 {
			t.Fatalf("leo %d, want 28", l.LogEndOffset())
		}
		recs := utReadRecords(t, l, 0, 1<<20)
		var offs []int64
		for _, r := range recs {
			offs = append(offs, r.Offset)
		}
		if want := []int64{0, 4, 26, 27}; !reflect.DeepEqual(offs, want) {
			t.Fatalf("offsets %v, want %v", offs, want)
		}
		// A read inside the empty range returns the batch covering it.
		res, err := l.Read(15, 1, math.MaxInt64)
		if err != nil || !reflect.DeepEqual(utBatchBases(t, res.Data), []int64{11}) || res.NextOffset != 26 {
			t.Fatalf("Read(15) = %v next %d, %v", utBatchBases(t, res.Data), res.NextOffset, err)
		}
	})
}

// utSparseBatch builds a batch at base with records at the given offset
// deltas and lastDelta as its last offset delta (what compaction leaves).
func utSparseBatch(t testing.TB, base int64, deltas []int32, lastDelta int32, epoch int32) []byte {
	t.Helper()
	var body []byte
	for _, d := range deltas {
		off := base + int64(d)
		kr := kmsg.Record{TimestampDelta64: int64(d), OffsetDelta: d, Key: utKey(off), Value: utValue(off)}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		body = kr.AppendTo(body)
	}
	rb := kmsg.RecordBatch{
		FirstOffset: base, Length: int32(49 + len(body)), PartitionLeaderEpoch: epoch, Magic: 2,
		LastOffsetDelta: lastDelta, FirstTimestamp: utTS(base), MaxTimestamp: utTS(base + int64(lastDelta)),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(deltas)), Records: body,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], utCastagnoli))
	if err := Batch(b).Validate(); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLogReadSemantics(t *testing.T) {
	l := utOpen(t, t.TempDir(), utCfg(), Options{})
	for i := 0; i < 4; i++ { // batches [0-2] [3-5] [6-8] [9-11]
		utAppend(t, l, 3, 0)
	}
	all := utReadRaw(t, l, 0, 1<<20)
	var batches []Batch
	_ = Batches(all, func(b Batch) error { batches = append(batches, b); return nil })
	if len(batches) != 4 {
		t.Fatalf("%d batches", len(batches))
	}
	two := len(batches[0]) + len(batches[1])
	cases := []struct {
		name      string
		offset    int64
		maxBytes  int
		maxOffset int64
		bases     []int64
		next      int64
	}{
		{"first batch whole past maxBytes", 4, 1, math.MaxInt64, []int64{3}, 6},
		{"maxBytes zero", 0, 0, math.MaxInt64, []int64{0}, 3},
		{"exact budget of two batches", 0, two, math.MaxInt64, []int64{0, 3}, 6},
		{"one byte short of two batches", 0, two - 1, math.MaxInt64, []int64{0}, 3},
		{"everything", 1, 1 << 20, math.MaxInt64, []int64{0, 3, 6, 9}, 12},
		{"maxOffset cuts a batch it falls inside", 0, 1 << 20, 7, []int64{0, 3}, 6},
		{"maxOffset at a batch's last offset excludes it", 0, 1 << 20, 8, []int64{0, 3}, 6},
		{"maxOffset after a batch includes it", 0, 1 << 20, 9, []int64{0, 3, 6}, 9},
		{"offset inside the batch maxOffset cuts", 6, 1 << 20, 7, nil, 6},
		{"offset at maxOffset", 7, 1 << 20, 7, nil, 7},
		{"offset above maxOffset", 8, 1 << 20, 3, nil, 8},
		{"at the log end", 12, 1 << 20, math.MaxInt64, nil, 12},
		{"last record", 11, 1, math.MaxInt64, []int64{9}, 12},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := l.Read(tc.offset, tc.maxBytes, tc.maxOffset)
			if err != nil {
				t.Fatal(err)
			}
			if got := utBatchBases(t, res.Data); !reflect.DeepEqual(got, tc.bases) {
				t.Fatalf("batches at %v, want %v", got, tc.bases)
			}
			if res.NextOffset != tc.next || res.LogStartOffset != 0 || res.LogEndOffset != 12 {
				t.Fatalf("next %d start %d end %d, want next %d", res.NextOffset, res.LogStartOffset, res.LogEndOffset, tc.next)
			}
			var want []byte
			for _, b := range tc.bases {
				want = append(want, batches[b/3]...)
			}
			if !bytes.Equal(res.Data, want) {
				t.Fatal("data differs from what was appended")
			}
		})
	}
	for _, off := range []int64{13, 100, -1, math.MinInt64} {
		res, err := l.Read(off, 1<<20, math.MaxInt64)
		utOutOfRange(t, err, off, 0, 12)
		if len(res.Data) != 0 {
			t.Fatalf("Read(%d) returned data with an error", off)
		}
	}

	// Below the log start is out of range; the start itself reads the batch holding it.
	if err := l.DeleteRecordsBefore(5); err != nil {
		t.Fatal(err)
	}
	_, err := l.Read(4, 1<<20, math.MaxInt64)
	utOutOfRange(t, err, 4, 5, 12)
	res, err := l.Read(5, 1, math.MaxInt64)
	if err != nil || !reflect.DeepEqual(utBatchBases(t, res.Data), []int64{3}) || res.LogStartOffset != 5 {
		t.Fatalf("Read(5) = %v start %d, %v", utBatchBases(t, res.Data), res.LogStartOffset, err)
	}
}

func TestLogReadAcrossManySegments(t *testing.T) {
	cfg := utCfg()
	cfg.SegmentBytes = 1500
	cfg.IndexIntervalBytes = 200
	dir := t.TempDir()
	l := utOpen(t, dir, cfg, Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	var bases []int64
	for i := 0; i < 300; i++ {
		bases = append(bases, l.LogEndOffset())
		utAppend(t, l, 1+rng.IntN(5), int32(i/50))
	}
	leo := l.LogEndOffset()
	if l.SegmentCount() < 20 {
		t.Fatalf("only %d segments", l.SegmentCount())
	}
	if got := utSegmentFiles(t, dir); !reflect.DeepEqual(got, utSegmentBases(l)) {
		t.Fatalf("segment files %v, segments %v", got, utSegmentBases(l))
	}
	for _, b := range utSegmentBases(l) {
		if sz := utFileSize(t, filepath.Join(dir, segmentName(b)+".log")); sz > cfg.SegmentBytes {
			t.Fatalf("segment %d is %d bytes, above segment.bytes", b, sz)
		}
		if !slices.Contains(bases, b) {
			t.Fatalf("segment base %d is not a batch base", b)
		}
	}
	check := func(t *testing.T, l *Log) {
		// Every offset reads the batch holding it first.
		for off := int64(0); off < leo; off++ {
			res, err := l.Read(off, 1, math.MaxInt64)
			if err != nil {
				t.Fatalf("Read(%d): %v", off, err)
			}
			recs, err := l.Codecs().Records(Batch(res.Data))
			if err != nil {
				t.Fatalf("Read(%d): %v", off, err)
			}
			if recs[0].Offset > off || recs[len(recs)-1].Offset < off || res.NextOffset != recs[len(recs)-1].Offset+1 {
				t.Fatalf("Read(%d) returned offsets %d..%d next %d", off, recs[0].Offset, recs[len(recs)-1].Offset, res.NextOffset)
			}
			i := off - recs[0].Offset
			if !bytes.Equal(recs[i].Value, utValue(off)) {
				t.Fatalf("offset %d holds %q", off, recs[i].Value)
			}
		}
		for _, mb := range []int{1, 700, 1 << 20} {
			utCheckContiguous(t, utReadRecords(t, l, 0, mb), 0, leo)
		}
		// maxOffset in the middle.
		for _, hw := range []int64{1, leo / 3, leo / 2, leo - 1} {
			var got int64
			off := int64(0)
			for {
				res, err := l.Read(off, 300, hw)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Data) == 0 {
					break
				}
				if err := Batches(res.Data, func(b Batch) error {
					if b.LastOffset() >= hw {
						return fmt.Errorf("batch ending at %d returned below maxOffset %d", b.LastOffset(), hw)
					}
					got = b.NextOffset()
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				off = res.NextOffset
			}
			// Everything up to the batch holding hw was returned.
			want := int64(0)
			for _, b := range bases {
				if b <= hw {
					want = b
				}
			}
			if got != want {
				t.Fatalf("maxOffset %d: read up to %d, want %d", hw, got, want)
			}
		}
	}
	t.Run("live", func(t *testing.T) { check(t, l) })
	epochs := l.Epochs()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprintf("reopened clean=%v", clean), func(t *testing.T) {
			l := utOpen(t, dir, cfg, Options{Clean: clean})
			if l.LogEndOffset() != leo || !reflect.DeepEqual(l.Epochs(), epochs) {
				t.Fatalf("reopened: leo %d epochs %v", l.LogEndOffset(), l.Epochs())
			}
			if r := l.Recovery(); r.Recovered == clean || r.Reason != "" || r.TruncatedAt != -1 {
				t.Fatalf("recovery report %+v", r)
			}
			check(t, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLogOffsetForTimestamp(t *testing.T) {
	cfg := utCfg()
	cfg.SegmentBytes = 2000
	cfg.IndexIntervalBytes = 150
	dir := t.TempDir()
	l := utOpen(t, dir, cfg, Options{})
	rng := rand.New(rand.NewPCG(7, 7))
	stamps := map[int64]int64{}
	for i := 0; i < 250; i++ {
		// Non-monotonic CreateTimes, drifting upward with noise and occasional outliers.
		ts := func(off int64) int64 {
			t := utT0 + off*10 + int64(rng.IntN(400)) - 200
			if rng.IntN(30) == 0 {
				t += 5000
			}
			if rng.IntN(30) == 0 {
				t -= 5000
			}
			stamps[off] = t
			return t
		}
		utAppendTS(t, l, 1+rng.IntN(4), 0, ts)
	}
	leo := l.LogEndOffset()
	if l.SegmentCount() < 5 {
		t.Fatalf("only %d segments", l.SegmentCount())
	}
	brute := func(target, start int64) (int64, int64, bool) {
		for off := start; off < leo; off++ {
			if stamps[off] >= target {
				return off, stamps[off], true
			}
		}
		return -1, -1, false
	}
	minTS, maxTS := int64(math.MaxInt64), int64(math.MinInt64)
	for _, ts := range stamps {
		minTS, maxTS = min(minTS, ts), max(maxTS, ts)
	}
	check := func(t *testing.T, l *Log) {
		start := l.LogStartOffset()
		targets := []int64{math.MinInt64, 0, minTS - 1, minTS, maxTS, maxTS + 1, math.MaxInt64}
		for ts := minTS - 10; ts <= maxTS+10; ts += 7 {
			targets = append(targets, ts)
		}
		for _, ts := range stamps {
			targets = append(targets, ts, ts+1)
		}
		for _, target := range targets {
			off, ts, found, err := l.OffsetForTimestamp(target)
			if err != nil {
				t.Fatal(err)
			}
			wOff, wTS, wFound := brute(target, start)
			if off != wOff || ts != wTS || found != wFound {
				t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v; brute force says %d, %d, %v (start %d)",
					target, off, ts, found, wOff, wTS, wFound, start)
			}
		}
	}
	t.Run("live", func(t *testing.T) { check(t, l) })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("reopened clean", func(t *testing.T) {
		l := utOpen(t, dir, cfg, Options{Clean: true})
		check(t, l)
		// A log start inside a batch hides the records before it.
		mid := leo/2 + 1
		if err := l.DeleteRecordsBefore(mid); err != nil {
			t.Fatal(err)
		}
		check(t, l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reopened after a crash", func(t *testing.T) {
		l := utOpen(t, dir, cfg, Options{})
		check(t, l)
	})
}

func TestLogRollOnSegmentBytes(t *testing.T) {
	one := len(utLeaderBatch(t, 2, 0, utTS, CompressionNone)) // every batch here has this size (offsets < 10)
	for _, tc := range []struct {
		name     string
		segBytes int64
		perSeg   int
	}{
		{"exact fit", int64(3 * one), 3},
		{"one byte short", int64(3*one - 1), 2},
		{"half a batch spare", int64(3*one + one/2), 3},
		{"one batch per segment", int64(one), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := utCfg()
			cfg.SegmentBytes = tc.segBytes
			dir := t.TempDir()
			l := utOpen(t, dir, cfg, Options{})
			for i := 0; i < 4; i++ { // offsets 0..7, batches at 0,2,4,6
				utAppend(t, l, 2, 0)
			}
			var want []int64
			for i := 0; i < 4; i += tc.perSeg {
				want = append(want, int64(2*i))
			}
			if got := utSegmentBases(l); !reflect.DeepEqual(got, want) {
				t.Fatalf("segments %v, want %v", got, want)
			}
			if got := utSegmentFiles(t, dir); !reflect.DeepEqual(got, want) {
				t.Fatalf("files %v, want %v", got, want)
			}
			utCheckContiguous(t, utReadRecords(t, l, 0, 1<<20), 0, 8)
			if _, err := l.AppendAsLeader(context.Background(), utLeaderBatch(t, 50, 8, utTS, CompressionNone), 0); !errors.Is(err, ErrBatchTooLarge) {
				t.Fatalf("oversized batch: %v", err)
			}
		})
	}
}

func TestLogRollOnSegmentMs(t *testing.T) {
	const segMs = 10_000
	cfg := utCfg()
	cfg.SegmentMs = segMs
	at := func(clock *utClock) func(int64) int64 { return func(int64) int64 { return clock.Millis() } }

	t.Run("first batch and segment both old enough", func(t *testing.T) {
		clock := newUTClock(utT0)
		l := utOpen(t, t.TempDir(), cfg, Options{Now: clock.Now})
		utAppendTS(t, l, 1, 0, at(clock))
		clock.Advance(segMs) // exactly segment.ms: not yet
		utAppendTS(t, l, 1, 0, at(clock))
		if l.SegmentCount() != 1 {
			t.Fatalf("rolled at exactly segment.ms: %v", utSegmentBases(l))
		}
		clock.Advance(1)
		utAppendTS(t, l, 1, 0, at(clock))
		if got := utSegmentBases(l); !reflect.DeepEqual(got, []int64{0, 2}) {
			t.Fatalf("segments %v, want [0 2]", got)
		}
		// The new segment's clock starts now.
		clock.Advance(segMs)
		utAppendTS(t, l, 1, 0, at(clock))
		if l.SegmentCount() != 2 {
			t.Fatalf("rolled too early: %v", utSegmentBases(l))
		}
	})

	t.Run("old client timestamps do not roll a new segment", func(t *testing.T) {
		clock := newUTClock(utT0)
		l := utOpen(t, t.TempDir(), cfg, Options{Now: clock.Now})
		old := func(int64) int64 { return 1000 }
		for i := 0; i < 5; i++ {
			utAppendTS(t, l, 1, 0, old)
			clock.Advance(segMs / 5)
		}
		if l.SegmentCount() != 1 {
			t.Fatalf("rolled within segment.ms of opening the segment: %v", utSegmentBases(l))
		}
		clock.Advance(1) // the segment is now segMs+1 old
		utAppendTS(t, l, 1, 0, old)
		if got := utSegmentBases(l); !reflect.DeepEqual(got, []int64{0, 5}) {
			t.Fatalf("segments %v, want [0 5]", got)
		}
		utAppendTS(t, l, 1, 0, old)
		if l.SegmentCount() != 2 {
			t.Fatalf("a fresh segment rolled at once: %v", utSegmentBases(l))
		}
	})

	t.Run("segment open long ago but first batch recent", func(t *testing.T) {
		clock := newUTClock(utT0)
		l := utOpen(t, t.TempDir(), cfg, Options{Now: clock.Now})
		clock.Advance(10 * segMs)
		utAppendTS(t, l, 1, 0, at(clock)) // first batch, segment created 10*segMs ago
		clock.Advance(segMs)
		utAppendTS(t, l, 1, 0, at(clock))
		if l.SegmentCount() != 1 {
			t.Fatalf("rolled before the first batch was segment.ms old: %v", utSegmentBases(l))
		}
		clock.Advance(1)
		utAppendTS(t, l, 1, 0, at(clock))
		if l.SegmentCount() != 2 {
			t.Fatalf("no roll: %v", utSegmentBases(l))
		}
	})

	t.Run("an empty segment never rolls", func(t *testing.T) {
		clock := newUTClock(utT0)
		l := utOpen(t, t.TempDir(), cfg, Options{Now: clock.Now})
		clock.Advance(100 * segMs)
		utAppendTS(t, l, 1, 0, func(int64) int64 { return 0 })
		if got := utSegmentBases(l); !reflect.DeepEqual(got, []int64{0}) {
			t.Fatalf("segments %v", got)
		}
	})

	t.Run("reopening keeps the segment clock", func(t *testing.T) {
		// segment.ms counts from the first batch even across restarts, or a
		// node restarted more often than segment.ms would never roll.
		clock := newUTClock(utT0)
		dir := t.TempDir()
		l := utOpen(t, dir, cfg, Options{Now: clock.Now})
		utAppendTS(t, l, 1, 0, at(clock))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		clock.Advance(segMs / 2)
		l = utOpen(t, dir, cfg, Options{Clean: true, Now: clock.Now})
		utAppendTS(t, l, 1, 0, at(clock))
		if l.SegmentCount() != 1 {
			t.Fatalf("rolled before segment.ms passed: %v", utSegmentBases(l))
		}
		clock.Advance(segMs/2 + 1)
		utAppendTS(t, l, 1, 0, at(clock))
		if l.SegmentCount() != 2 {
			t.Fatalf("no roll segment.ms after the first batch, across a reopen: %v", utSegmentBases(l))
		}
	})
}

func TestLogRollOnFullIndex(t *testing.T) {
	cfg := utCfg()
	cfg.SegmentIndexBytes = 3 * offsetEntrySize // three entries
	cfg.IndexIntervalBytes = 0                  // an entry for every batch but the first
	cfg.SegmentMs = 1 << 50                     // the fixed test timestamps are old: no time-based roll here
	dir := t.TempDir()
	l := utOpen(t, dir, cfg, Options{})
	for i := 0; i < 14; i++ {
		utAppend(t, l, 1, 0)
	}
	// Four batches per segment: one at position 0 and three indexed.
	want := []int64{0, 4, 8, 12}
	if got := utSegmentBases(l); !reflect.DeepEqual(got, want) {
		t.Fatalf("segments %v, want %v", got, want)
	}
	for _, b := range want[:3] {
		if sz := utFileSize(t, filepath.Join(dir, segmentName(b)+".index")); sz != 3*offsetEntrySize {
			t.Fatalf("index of segment %d is %d bytes", b, sz)
		}
	}
	utCheckContiguous(t, utReadRecords(t, l, 0, 1), 0, 14)
	for off := int64(0); off < 14; off++ {
		res, err := l.Read(off, 1, math.MaxInt64)
		if err != nil || !reflect.DeepEqual(utBatchBases(t, res.Data), []int64{off}) {
			t.Fatalf("Read(%d) = %v, %v", off, utBatchBases(t, res.Data), err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Recovery rebuilds indexes under the same limit and keeps everything.
	l = utOpen(t, dir, cfg, Options{})
	if got := utSegmentBases(l); !reflect.DeepEqual(got, want) || l.LogEndOffset() != 14 {
		t.Fatalf("after recovery: segments %v leo %d", got, l.LogEndOffset())
	}
	for i := 0; i < 3; i++ {
		utAppend(t, l, 1, 0)
	}
	if got := utSegmentBases(l); !reflect.DeepEqual(got, []int64{0, 4, 8, 12, 16}) {
		t.Fatalf("after recovery and appends: segments %v", got)
	}
}

func TestLogRollOnRelativeOffsetOverflow(t *testing.T) {
	cfg := utCfg()
	cfg.CleanupPolicy = CleanupCompact
	dir := t.TempDir()
	l := utOpen(t, dir, cfg, Options{})
	ctx := context.Background()
	// A compacted leader sends 0-2, then an almost empty batch spanning 2^31
	// offsets, then records far ahead of the first segment's base.
	far := int64(3) + math.MaxInt32 + 1
	in := bytes.Join([][]byte{
		utFollowerBatch(t, 0, 3, 1),
		utSparseBatch(t, 3, []int32{0, math.MaxInt32}, math.MaxInt32, 1),
		utFollowerBatch(t, far, 2, 1),
	}, nil)
	if _, err := l.AppendAsFollower(ctx, in); err != nil {
		t.Fatal(err)
	}
	wantSegs := []int64{0, 3, far}
	if got := utSegmentBases(l); !reflect.DeepEqual(got, wantSegs) {
		t.Fatalf("segments %v, want %v", got, wantSegs)
	}
	wantOffs := []int64{0, 1, 2, 3, 3 + math.MaxInt32, far, far + 1}
	readOffsets := func(l *Log) []int64 {
		var out []int64
		for _, r := range utReadRecords(t, l, 0, 1<<20) {
			out = append(out, r.Offset)
			if !bytes.Equal(r.Value, utValue(r.Offset)) {
				t.Fatalf("offset %d holds %q", r.Offset, r.Value)
			}
		}
		return out
	}
	if got := readOffsets(l); !reflect.DeepEqual(got, wantOffs) {
		t.Fatalf("offsets %v, want %v", got, wantOffs)
	}
	for _, off := range []int64{3, 1 << 30, far - 1, far, far + 1} {
		res, err := l.Read(off, 1, math.MaxInt64)
		if err != nil || len(res.Data) == 0 {
			t.Fatalf("Read(%d) = %d bytes, %v", off, len(res.Data), err)
		}
		b := Batch(res.Data)
		if b.BaseOffset() > off || b.LastOffset() < off {
			t.Fatalf("Read(%d) returned batch %d..%d", off, b.BaseOffset(), b.LastOffset())
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, clean := range []bool{false, true} {
		l := utOpen(t, dir, cfg, Options{Clean: clean})
		if l.LogEndOffset() != far+2 || !reflect.DeepEqual(utSegmentBases(l), wantSegs) || l.Recovery().Reason != "" {
			t.Fatalf("clean=%v reopened: leo %d segments %v recovery %+v", clean, l.LogEndOffset(), utSegmentBases(l), l.Recovery())
		}
		if got := readOffsets(l); !reflect.DeepEqual(got, wantOffs) {
			t.Fatalf("clean=%v offsets %v", clean, got)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// utEpochLog builds a log over several small segments with epochs 1@0, 2@12, 4@30
// and batches of three records; it returns the log end (45).
func utEpochLog(t *testing.T, dir string, cfg Config, opts Options) *Log {
	t.Helper()
	l := utOpen(t, dir, cfg, opts)
	for i := 0; i < 15; i++ {
		epoch := int32(1)
		if i >= 4 {
			epoch = 2
		}
		if i >= 10 {
			epoch = 4
		}
		utAppend(t, l, 3, epoch)
	}
	return l
}

func utSmallSegments(t testing.TB) Config {
	cfg := utCfg()
	cfg.SegmentBytes = int64(len(utLeaderBatch(t, 3, 0, utTS, CompressionNone)))*3 + 10 // about three batches
	cfg.IndexIntervalBytes = 1
	return cfg
}

func TestLogTruncate(t *testing.T) {
	type tcase struct {
		name       string
		prep       func(t *testing.T, l *Log)
		to         int64
		wantEnd    int64
		wantStart  int64
		wantEpochs []EpochEntry
	}
	cases := []tcase{
		{name: "mid batch mid segment", to: 19, wantEnd: 18, wantEpochs: []EpochEntry{{1, 0}, {2, 12}}},
		{name: "at a batch boundary", to: 18, wantEnd: 18, wantEpochs: []EpochEntry{{1, 0}, {2, 12}}},
		{name: "at an epoch start", to: 30, wantEnd: 30, wantEpochs: []EpochEntry{{1, 0}, {2, 12}}},
		{name: "inside the first batch of an epoch", to: 13, wantEnd: 12, wantEpochs: []EpochEntry{{1, 0}}},
		{name: "at a segment boundary", to: -1 /* set below */},
		{name: "to zero", to: 0, wantEnd: 0, wantEpochs: nil},
		{name: "last record", to: 44, wantEnd: 42, wantEpochs: []EpochEntry{{1, 0}, {2, 12}, {4, 30}}},
		{name: "at the log end", to: 45, wantEnd: 45, wantEpochs: []EpochEntry{{1, 0}, {2, 12}, {4, 30}}},
		{name: "past the log end", to: 1000, wantEnd: 45, wantEpochs: []EpochEntry{{1, 0}, {2, 12}, {4, 30}}},
		{
			name: "below the first segment",
			prep: func(t *testing.T, l *Log) {
				// Drop the first two segments, log start at a segment base.
				b := utSegmentBases(l)[2]
				if err := l.DeleteRecordsBefore(b); err != nil {
					t.Fatal(err)
				}
			},
			to: 0, wantEnd: -2, /* the log start */
		},
		{
			name: "below a log start inside a segment's first batch",
			prep: func(t *testing.T, l *Log) {
				if err := l.DeleteRecordsBefore(utSegmentBases(l)[2] + 1); err != nil {
					t.Fatal(err)
				}
			},
			to: 0, wantEnd: -2, /* the log start */
		},
		{
			name: "below a log start inside a batch",
			prep: func(t *testing.T, l *Log) {
				if err := l.DeleteRecordsBefore(13); err != nil {
					t.Fatal(err)
				}
			},
			to: 5, wantEnd: 13, wantStart: 13, wantEpochs: nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := utSmallSegments(t)
			dir := t.TempDir()
			l := utEpochLog(t, dir, cfg, Options{})
			if l.SegmentCount() < 4 {
				t.Fatalf("only %d segments", l.SegmentCount())
			}
			if tc.prep != nil {
				tc.prep(t, l)
			}
			if tc.to == -1 { // a segment boundary
				b := utSegmentBases(l)[2]
				tc.to, tc.wantEnd = b, b
				tc.wantEpochs = nil
				for _, e := range l.Epochs() {
					if e.StartOffset < b {
						tc.wantEpochs = append(tc.wantEpochs, e)
					}
				}
			}
			if tc.wantEnd == -2 {
				tc.wantEnd, tc.wantStart = l.LogStartOffset(), l.LogStartOffset()
			}
			segsBefore := utSegmentBases(l)
			if err := l.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
			end, err := l.Truncate(tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if end != tc.wantEnd || l.LogEndOffset() != tc.wantEnd {
				t.Fatalf("Truncate(%d) = %d, leo %d; want %d", tc.to, end, l.LogEndOffset(), tc.wantEnd)
			}
			if l.LogStartOffset() != tc.wantStart || l.LogStartOffset() > l.LogEndOffset() {
				t.Fatalf("log start %d, want %d (leo %d)", l.LogStartOffset(), tc.wantStart, l.LogEndOffset())
			}
			if l.DurableOffset() > end {
				t.Fatalf("durable offset %d above the new end %d", l.DurableOffset(), end)
			}
			if got := l.Epochs(); !reflect.DeepEqual(got, tc.wantEpochs) && !(len(got) == 0 && len(tc.wantEpochs) == 0) {
				t.Fatalf("epochs %v, want %v", got, tc.wantEpochs)
			}
			// Segments above the new end are gone, files included.
			for _, b := range utSegmentBases(l)[1:] {
				if b >= end {
					t.Fatalf("segment %d kept above the new end %d", b, end)
				}
			}
			if got := utSegmentFiles(t, dir); !reflect.DeepEqual(got, utSegmentBases(l)) {
				t.Fatalf("files %v, segments %v (before %v)", got, utSegmentBases(l), segsBefore)
			}
			start := l.LogStartOffset()
			utCheckContiguous(t, utReadRecords(t, l, start, 1<<20), start, end)
			// Time lookups forget the cut records (timestamps grow with offsets).
			if _, _, found, err := l.OffsetForTimestamp(utTS(end)); found || err != nil {
				t.Fatalf("OffsetForTimestamp found a cut record (%v)", err)
			}
			if end > start {
				if off, ts, found, err := l.OffsetForTimestamp(utTS(end - 1)); off != end-1 || ts != utTS(end-1) || !found || err != nil {
					t.Fatalf("OffsetForTimestamp(last kept) = %d, %d, %v, %v", off, ts, found, err)
				}
			}
			res, err := l.Read(end, 1<<20, math.MaxInt64)
			if err != nil || len(res.Data) != 0 {
				t.Fatalf("Read at the new end: %d bytes, %v", len(res.Data), err)
			}
			if _, err := l.Read(end+1, 1<<20, math.MaxInt64); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("Read past the new end: %v", err)
			}
			// Appends continue at the new end, in a new epoch.
			utAppend(t, l, 3, 7)
			utAppend(t, l, 3, 7)
			newEnd := end + 6
			wantEpochs := append(append([]EpochEntry(nil), tc.wantEpochs...), EpochEntry{7, end})
			if got := l.Epochs(); !reflect.DeepEqual(got, wantEpochs) {
				t.Fatalf("epochs after appending %v, want %v", got, wantEpochs)
			}
			utCheckContiguous(t, utReadRecords(t, l, start, 1<<20), start, newEnd)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// Reopening agrees, after a clean shutdown and after a crash.
			for _, clean := range []bool{true, false} {
				l := utOpen(t, dir, cfg, Options{Clean: clean, LogStartOffset: start})
				if l.LogEndOffset() != newEnd || l.LogStartOffset() != start || !reflect.DeepEqual(l.Epochs(), wantEpochs) || l.Recovery().Reason != "" {
					t.Fatalf("reopened clean=%v: leo %d start %d epochs %v recovery %+v; want leo %d start %d epochs %v",
						clean, l.LogEndOffset(), l.LogStartOffset(), l.Epochs(), l.Recovery(), newEnd, start, wantEpochs)
				}
				utCheckContiguous(t, utReadRecords(t, l, start, 1<<20), start, newEnd)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestLogDeleteRecordsBefore(t *testing.T) {
	cfg := utSmallSegments(t)
	dir := t.TempDir()
	l := utEpochLog(t, dir, cfg, Options{})
	segs := utSegmentBases(l)
	if len(segs) < 5 {
		t.Fatalf("only %d segments", len(segs))
	}
	if err := l.DeleteRecordsBefore(0); err != nil || l.LogStartOffset() != 0 || l.SegmentCount() != len(segs) {
		t.Fatalf("DeleteRecordsBefore(0): %v", err)
	}
	// Move the start inside the third segment, inside a batch.
	target := segs[2] + 1
	if err := l.DeleteRecordsBefore(target); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != target {
		t.Fatalf("log start %d, want %d", l.LogStartOffset(), target)
	}
	if got := utSegmentBases(l); !reflect.DeepEqual(got, segs[2:]) {
		t.Fatalf("segments %v, want %v", got, segs[2:])
	}
	if got := utSegmentFiles(t, dir); !reflect.DeepEqual(got, segs[2:]) {
		t.Fatalf("files %v, want %v", got, segs[2:])
	}
	for _, b := range segs[:2] {
		for _, suf := range []string{".log", ".index", ".timeindex"} {
			if _, err := os.Stat(filepath.Join(dir, segmentName(b)+suf)); !os.IsNotExist(err) {
				t.Fatalf("%s%s still exists: %v", segmentName(b), suf, err)
			}
		}
	}
	// Epochs that ended before the start are gone; the one holding it starts there.
	var wantEpochs []EpochEntry
	for _, e := range []EpochEntry{{1, 0}, {2, 12}, {4, 30}} {
		if e.StartOffset <= target {
			wantEpochs = []EpochEntry{{e.Epoch, target}}
		} else {
			wantEpochs = append(wantEpochs, e)
		}
	}
	if got := l.Epochs(); !reflect.DeepEqual(got, wantEpochs) {
		t.Fatalf("epochs %v, want %v", got, wantEpochs)
	}
	_, err := l.Read(target-1, 1<<20, math.MaxInt64)
	utOutOfRange(t, err, target-1, target, 45)
	utCheckContiguous(t, utReadRecords(t, l, target, 1<<20), target, 45)

	// Lower offsets are a no-op, beyond the end is out of range.
	if err := l.DeleteRecordsBefore(1); err != nil || l.LogStartOffset() != target {
		t.Fatalf("moving the start back: %v, start %d", err, l.LogStartOffset())
	}
	utOutOfRange(t, l.DeleteRecordsBefore(46), 46, target, 45)

	// Up to the log end: only the active segment stays, empty of readable records.
	if err := l.DeleteRecordsBefore(45); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 45 || l.SegmentCount() != 1 || l.LogEndOffset() != 45 {
		t.Fatalf("start %d segments %d leo %d", l.LogStartOffset(), l.SegmentCount(), l.LogEndOffset())
	}
	if got, want := l.Epochs(), []EpochEntry{{4, 45}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("epochs %v, want %v", got, want)
	}
	res, err := l.Read(45, 1<<20, math.MaxInt64)
	if err != nil || len(res.Data) != 0 {
		t.Fatalf("Read(45) = %d bytes, %v", len(res.Data), err)
	}
	utAppend(t, l, 2, 4)
	utCheckContiguous(t, utReadRecords(t, l, 45, 1<<20), 45, 47)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = utOpen(t, dir, cfg, Options{LogStartOffset: 45})
	if l.LogStartOffset() != 45 || l.LogEndOffset() != 47 {
		t.Fatalf("reopened: start %d leo %d", l.LogStartOffset(), l.LogEndOffset())
	}
	if _, err := l.Read(44, 1<<20, math.MaxInt64); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Read below the restored start: %v", err)
	}
}

func TestLogApplyRetention(t *testing.T) {
	// 15 batches of 3 records, one every second; about three batches a segment.
	build := func(t *testing.T, cfg Config) (*Log, *utClock, string) {
		clock := newUTClock(utT0)
		dir := t.TempDir()
		l := utOpen(t, dir, cfg, Options{Now: clock.Now})
		for i := 0; i < 15; i++ {
			utAppendTS(t, l, 3, 0, func(int64) int64 { return clock.Millis() })
			clock.Advance(1000)
		}
		return l, clock, dir
	}
	segInfo := func(t *testing.T, l *Log, dir string) (bases []int64, maxTS []int64, sizes []int64) {
		for _, s := range *l.segs.Load() {
			bases = append(bases, s.base)
			maxTS = append(maxTS, s.maxTS.Load())
			sizes = append(sizes, utFileSize(t, filepath.Join(dir, segmentName(s.base)+".log")))
		}
		return
	}
	// expectDrop says how many segments retention should delete.
	expectDrop := func(bases, maxTS, sizes []int64, now, retMs, retBytes, committed int64) int {
		var total int64
		for _, s := range sizes {
			total += s
		}
		drop := 0
		for drop < len(bases)-1 && bases[drop+1] <= committed {
			byTime := retMs >= 0 && now-maxTS[drop] > retMs
			bySize := retBytes >= 0 && total-sizes[drop] >= retBytes
			if !byTime && !bySize {
				break
			}
			total -= sizes[drop]
			drop++
		}
		return drop
	}
	type step struct {
		retMs, retBytes int64
		committed       int64 // -1: the log end
		want            int   // -1: compute
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"by time", []step{{retMs: 7000, retBytes: -1, committed: -1, want: -1}}},
		{"by time, everything expired", []step{{retMs: 0, retBytes: -1, committed: -1, want: -1}}},
		{"by time, nothing expired", []step{{retMs: 1 << 40, retBytes: -1, committed: -1, want: 0}}},
		{"by time, committed holds segments back", []step{
			{retMs: 0, retBytes: -1, committed: 0, want: 0},
			{retMs: 0, retBytes: -1, committed: 10, want: -1},
			{retMs: 0, retBytes: -1, committed: -1, want: -1},
		}},
		{"by bytes", []step{{retMs: -1, retBytes: 1000, committed: -1, want: -1}}},
		{"by bytes, zero", []step{{retMs: -1, retBytes: 0, committed: -1, want: -1}}},
		{"by bytes, committed", []step{{retMs: -1, retBytes: 0, committed: 20, want: -1}}},
		{"forever", []step{{retMs: -1, retBytes: -1, committed: -1, want: 0}}},
		{"time or bytes", []step{{retMs: 9000, retBytes: 800, committed: -1, want: -1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, clock, dir := build(t, utSmallSegments(t))
			if l.SegmentCount() < 5 {
				t.Fatalf("only %d segments", l.SegmentCount())
			}
			dropped := 0
			for _, st := range tc.steps {
				cfg := l.Config()
				cfg.RetentionMs, cfg.RetentionBytes = st.retMs, st.retBytes
				if err := l.SetConfig(cfg); err != nil {
					t.Fatal(err)
				}
				committed := st.committed
				if committed < 0 {
					committed = l.LogEndOffset()
				}
				bases, maxTS, sizes := segInfo(t, l, dir)
				want := st.want
				if want < 0 {
					want = expectDrop(bases, maxTS, sizes, clock.Millis(), st.retMs, st.retBytes, committed)
				}
				n, err := l.ApplyRetention(committed)
				if err != nil {
					t.Fatal(err)
				}
				if n != want {
					t.Fatalf("retention %+v deleted %d segments, want %d (segments %v, maxTS %v, sizes %v, now %d)",
						st, n, want, bases, maxTS, sizes, clock.Millis())
				}
				dropped += n
				if got := utSegmentBases(l); !reflect.DeepEqual(got, bases[n:]) {
					t.Fatalf("segments %v, want %v", got, bases[n:])
				}
				if got := utSegmentFiles(t, dir); !reflect.DeepEqual(got, bases[n:]) {
					t.Fatalf("files %v, want %v", got, bases[n:])
				}
				if l.LogStartOffset() != bases[n] {
					t.Fatalf("log start %d, want %d", l.LogStartOffset(), bases[n])
				}
				if l.SegmentCount() < 1 {
					t.Fatal("the active segment went")
				}
				for _, b := range bases[:n] {
					if b >= committed {
						t.Fatalf("deleted segment %d at or above committed %d", b, committed)
					}
				}
				if n < len(bases) && n > 0 && bases[n] > committed {
					t.Fatalf("deleted offsets at or above committed %d", committed)
				}
			}
			if tc.steps[0].want != 0 && dropped == 0 {
				t.Fatal("the case deleted nothing")
			}
			start := l.LogStartOffset()
			if start > 0 {
				if _, err := l.Read(start-1, 1<<20, math.MaxInt64); !errors.Is(err, ErrOffsetOutOfRange) {
					t.Fatalf("Read below the new start: %v", err)
				}
			}
			utCheckContiguous(t, utReadRecords(t, l, start, 1<<20), start, l.LogEndOffset())
			if l.LogEndOffset() != 45 {
				t.Fatalf("retention moved the log end to %d", l.LogEndOffset())
			}
		})
	}

	t.Run("compact policy keeps everything", func(t *testing.T) {
		cfg := utSmallSegments(t)
		cfg.CleanupPolicy = CleanupCompact
		cfg.RetentionMs, cfg.RetentionBytes = 0, 0
		l, _, _ := build(t, cfg)
		before := l.SegmentCount()
		if n, err := l.ApplyRetention(l.LogEndOffset()); n != 0 || err != nil || l.SegmentCount() != before {
			t.Fatalf("retention on a compacted log: %d, %v", n, err)
		}
	})
	t.Run("compact,delete applies retention", func(t *testing.T) {
		cfg := utSmallSegments(t)
		cfg.CleanupPolicy = CleanupCompactDelete
		cfg.RetentionMs, cfg.RetentionBytes = 0, -1
		l, _, _ := build(t, cfg)
		before := l.SegmentCount()
		if n, err := l.ApplyRetention(l.LogEndOffset()); n != before-1 || err != nil {
			t.Fatalf("retention: %d of %d segments, %v", n, before, err)
		}
	})
	t.Run("the active segment is never deleted", func(t *testing.T) {
		cfg := utCfg()
		cfg.RetentionMs, cfg.RetentionBytes = 0, 0
		l, _, _ := build(t, cfg)
		if l.SegmentCount() != 1 {
			t.Fatalf("%d segments", l.SegmentCount())
		}
		if n, err := l.ApplyRetention(l.LogEndOffset()); n != 0 || err != nil || l.LogStartOffset() != 0 {
			t.Fatalf("retention deleted the active segment: %d, %v", n, err)
		}
	})
}

func TestLogDurableOffset(t *testing.T) {
	ctx := context.Background()
	t.Run("fsync always", func(t *testing.T) {
		cfg := utSmallSegments(t)
		cfg.Fsync = FsyncAlways
		l := utOpen(t, t.TempDir(), cfg, Options{})
		for i := 0; i < 12; i++ {
			utAppend(t, l, 3, 0)
			if l.DurableOffset() != l.LogEndOffset() {
				t.Fatalf("after append %d: durable %d, leo %d", i, l.DurableOffset(), l.LogEndOffset())
			}
		}
		if _, err := l.AppendAsFollower(ctx, utFollowerBatch(t, l.LogEndOffset(), 2, 0)); err != nil {
			t.Fatal(err)
		}
		if l.DurableOffset() != l.LogEndOffset() {
			t.Fatalf("after follower append: durable %d, leo %d", l.DurableOffset(), l.LogEndOffset())
		}
		if _, err := l.Truncate(10); err != nil {
			t.Fatal(err)
		}
		if l.DurableOffset() != 9 || l.LogEndOffset() != 9 {
			t.Fatalf("after truncate: durable %d, leo %d", l.DurableOffset(), l.LogEndOffset())
		}
		utAppend(t, l, 1, 0)
		if l.DurableOffset() != 10 {
			t.Fatalf("after truncate and append: durable %d", l.DurableOffset())
		}
	})
	t.Run("fsync never", func(t *testing.T) {
		cfg := utSmallSegments(t)
		dir := t.TempDir()
		l := utOpen(t, dir, cfg, Options{})
		for i := 0; i < 12; i++ { // rolls several segments
			utAppend(t, l, 3, 0)
		}
		if l.DurableOffset() != 0 {
			t.Fatalf("durable %d without any sync", l.DurableOffset())
		}
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if l.DurableOffset() != 36 {
			t.Fatalf("after Sync: durable %d", l.DurableOffset())
		}
		utAppend(t, l, 3, 0)
		if l.DurableOffset() != 36 {
			t.Fatalf("durable %d moved without a sync", l.DurableOffset())
		}
		if err := l.WaitDurable(ctx, 37); err != nil || l.DurableOffset() < 37 {
			t.Fatalf("WaitDurable(37): %v, durable %d", err, l.DurableOffset())
		}
		if err := l.WaitDurable(ctx, 20); err != nil {
			t.Fatalf("WaitDurable below durable: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = utOpen(t, dir, cfg, Options{Clean: true})
		if l.DurableOffset() != 39 || l.LogEndOffset() != 39 {
			t.Fatalf("reopened: durable %d leo %d", l.DurableOffset(), l.LogEndOffset())
		}
	})
}

func TestLogReopenSameContents(t *testing.T) {
	cfg := utSmallSegments(t)
	dir := t.TempDir()
	l := utEpochLog(t, dir, cfg, Options{})
	if err := l.DeleteRecordsBefore(7); err != nil {
		t.Fatal(err)
	}
	// Mixed codecs too.
	for _, codec := range utAllCodecs {
		base := l.LogEndOffset()
		if _, err := l.AppendAsLeader(context.Background(), utLeaderBatch(t, 4, base, utTS, codec), 5); err != nil {
			t.Fatal(err)
		}
	}
	leo, start, epochs, segs := l.LogEndOffset(), l.LogStartOffset(), l.Epochs(), utSegmentBases(l)
	data := utReadRaw(t, l, start, 1<<20)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{Clean: true, LogStartOffset: start}, {LogStartOffset: start}, {RecoveryPoint: 30, LogStartOffset: start}} {
		t.Run(fmt.Sprintf("clean=%v rp=%d", opts.Clean, opts.RecoveryPoint), func(t *testing.T) {
			l := utOpen(t, dir, cfg, opts)
			if l.LogEndOffset() != leo || l.LogStartOffset() != start || l.DurableOffset() != leo ||
				!reflect.DeepEqual(l.Epochs(), epochs) || !reflect.DeepEqual(utSegmentBases(l), segs) {
				t.Fatalf("reopened: leo %d start %d durable %d epochs %v segments %v; want leo %d start %d epochs %v segments %v",
					l.LogEndOffset(), l.LogStartOffset(), l.DurableOffset(), l.Epochs(), utSegmentBases(l), leo, start, epochs, segs)
			}
			r := l.Recovery()
			if r.Recovered == opts.Clean || r.Reason != "" || r.TruncatedAt != -1 || r.TruncatedBytes != 0 || r.SegmentsDeleted != 0 || r.EpochCacheRebult {
				t.Fatalf("recovery report %+v", r)
			}
			if got := utReadRaw(t, l, start, 1<<20); !bytes.Equal(got, data) {
				t.Fatal("contents differ after reopening")
			}
			utCheckContiguous(t, utReadRecords(t, l, start, 1<<20), start, leo)
			// And the reopened log appends where it left off.
			utAppend(t, l, 1, 5)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		})
		// Undo the extra append for the next variant.
		l := utOpen(t, dir, cfg, Options{Clean: true, LogStartOffset: start})
		if _, err := l.Truncate(leo); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLogEndOffsetForEpoch(t *testing.T) {
	l := utOpen(t, t.TempDir(), utCfg(), Options{})
	if e, o := l.EndOffsetForEpoch(3); e != UndefinedEpoch || o != UndefinedOffset {
		t.Fatalf("empty cache: %d, %d", e, o)
	}
	// Epochs 1@0, 3@10, 6@25; log end 40; then the start moves to 5.
	utAppend(t, l, 10, 1)
	utAppend(t, l, 15, 3)
	utAppend(t, l, 15, 6)
	if err := l.DeleteRecordsBefore(5); err != nil {
		t.Fatal(err)
	}
	if got, want := l.Epochs(), []EpochEntry{{1, 5}, {3, 10}, {6, 25}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("epochs %v, want %v", got, want)
	}
	cases := []struct {
		req   int32
		epoch int32
		end   int64
	}{
		{6, 6, 40},                           // the latest epoch ends at the log end
		{3, 3, 25},                           // a known epoch ends where the next starts
		{4, 3, 25},                           // between epochs: the largest known below, next one's start
		{5, 3, 25},                           //
		{1, 1, 10},                           //
		{2, 1, 10},                           //
		{0, 0, 5},                            // below the first: the request and the first start
		{7, UndefinedEpoch, UndefinedOffset}, // above all
		{math.MaxInt32, UndefinedEpoch, UndefinedOffset},
		{UndefinedEpoch, UndefinedEpoch, UndefinedOffset},
	}
	for _, tc := range cases {
		e, o := l.EndOffsetForEpoch(tc.req)
		if e != tc.epoch || o != tc.end {
			t.Errorf("EndOffsetForEpoch(%d) = %d, %d; want %d, %d", tc.req, e, o, tc.epoch, tc.end)
		}
	}
	// The latest epoch follows the log end.
	utAppend(t, l, 2, 6)
	if e, o := l.EndOffsetForEpoch(6); e != 6 || o != 42 {
		t.Fatalf("after appending: %d, %d", e, o)
	}
	// After truncation the latest epoch is 3, ending at the new end.
	if _, err := l.Truncate(25); err != nil {
		t.Fatal(err)
	}
	if e, o := l.EndOffsetForEpoch(3); e != 3 || o != 25 {
		t.Fatalf("after truncate, epoch 3: %d, %d (leo %d)", e, o, l.LogEndOffset())
	}
	if e, o := l.EndOffsetForEpoch(6); e != UndefinedEpoch || o != UndefinedOffset {
		t.Fatalf("after truncate, epoch 6: %d, %d", e, o)
	}
}

func TestTruncateFullyAndStartAt(t *testing.T) {
	cfg := utCfg()
	cfg.SegmentBytes = 1024
	dir := t.TempDir()
	l := utOpen(t, dir, cfg, Options{})
	for i := 0; i < 20; i++ {
		utAppend(t, l, 2, 1)
	}
	if l.SegmentCount() < 2 {
		t.Fatalf("want several segments, have %d", l.SegmentCount())
	}
	if err := l.TruncateFullyAndStartAt(500); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 500 || l.LogEndOffset() != 500 || l.SegmentCount() != 1 || len(l.Epochs()) != 0 {
		t.Fatalf("after restart at 500: start %d end %d segments %d epochs %v", l.LogStartOffset(), l.LogEndOffset(), l.SegmentCount(), l.Epochs())
	}
	if _, err := l.Read(10, 1<<20, math.MaxInt64); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("old offsets still readable: %v", err)
	}
	// A follower append continues at 500 and survives an unclean reopen.
	b := utLeaderBatch(t, 3, 500, utTS, CompressionNone)
	Batch(b).setBaseOffset(500) // the header fields outside the CRC
	Batch(b).setLeaderEpoch(7)
	if _, err := l.AppendAsFollower(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(dir, cfg, Options{LogStartOffset: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.LogEndOffset() != 503 || l2.LogStartOffset() != 500 || l2.LatestEpoch() != 7 {
		t.Fatalf("reopened: start %d end %d epoch %d", l2.LogStartOffset(), l2.LogEndOffset(), l2.LatestEpoch())
	}
}
