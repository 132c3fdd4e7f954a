package logstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Crash tests: build a log with known contents, close it, damage its files
// the way a crash, a power loss or a bad disk would, reopen it and compare
// what survived, record by record, with what was written.
//
// Every test draws its damage from a seed it logs; WEIR_CRASH_SEED=<n> reruns
// it with that seed (each iteration also logs its own seed on failure).

// crashSeed returns the seed for a test: WEIR_CRASH_SEED or the clock.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WEIR_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WEIR_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with WEIR_CRASH_SEED=%d)", seed, seed)
	return seed
}

func crashRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed_c0ffee)) }

// crashIters is the number of random damages per test (fewer with -short).
func crashIters(n int) int {
	if testing.Short() {
		return max(n/10, 5)
	}
	return n
}

// crashBatch is one batch as written: its stored bytes, its records, and where it lives.
type crashBatch struct {
	raw     []byte
	records []Record // Offset and Timestamp as a reader must see them
	seg     int      // index of its segment in crashLog.bases
	pos     int64    // file position in that segment
}

func (b *crashBatch) base() int64  { return Batch(b.raw).BaseOffset() }
func (b *crashBatch) next() int64  { return Batch(b.raw).NextOffset() }
func (b *crashBatch) end() int64   { return b.pos + int64(len(b.raw)) }
func (b *crashBatch) epoch() int32 { return Batch(b.raw).LeaderEpoch() }

// crashLog is a closed (clean) template log and the model of its contents.
type crashLog struct {
	dir     string
	cfg     Config
	batches []crashBatch
	bases   []int64 // segment base offsets, ascending
	sizes   []int64 // segment file sizes
	epochs  []EpochEntry
}

func crashConfig() Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 4 << 10
	cfg.IndexIntervalBytes = 160
	cfg.Fsync = FsyncNever // Close makes it durable; the tests damage files after that
	return cfg
}

func crashRandBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// crashRecords makes 1..6 records: nil and empty keys and values, headers,
// compressible and random values, timestamps that mostly grow but sometimes
// jump far ahead or back (so the largest timestamp sits mid-segment).
func crashRecords(rng *rand.Rand, ts *int64) []Record {
	recs := make([]Record, 1+rng.IntN(6))
	for j := range recs {
		*ts += int64(rng.IntN(1000))
		r := Record{Timestamp: *ts}
		switch rng.IntN(20) {
		case 0:
			r.Timestamp += 10_000_000
		case 1:
			r.Timestamp -= 5_000_000
		}
		switch rng.IntN(6) {
		case 0: // null key
		case 1:
			r.Key = []byte{}
		default:
			r.Key = fmt.Appendf(nil, "key-%d", rng.IntN(40))
		}
		switch rng.IntN(8) {
		case 0: // null value (a tombstone)
		case 1:
			r.Value = []byte{}
		case 2, 3:
			r.Value = bytes.Repeat([]byte("weir "), rng.IntN(40))
		default:
			r.Value = crashRandBytes(rng, rng.IntN(120))
		}
		if rng.IntN(5) == 0 {
			r.Headers = []Header{{Key: "trace", Value: crashRandBytes(rng, rng.IntN(8))}, {Key: "", Value: nil}}
		}
		recs[j] = r
	}
	return recs
}

// crashAppend encodes recs with a random codec and appends them as leader.
func crashAppend(t testing.TB, l *Log, rng *rand.Rand, recs []Record, epoch int32) crashBatch {
	t.Helper()
	codec := Compression(rng.IntN(int(CompressionZstd) + 1))
	raw, err := l.Codecs().EncodeBatch(nil, recs, BatchOptions{Compression: codec})
	if err != nil {
		t.Fatalf("encode %v batch: %v", codec, err)
	}
	res, err := l.AppendAsLeader(context.Background(), raw, epoch)
	if err != nil {
		t.Fatalf("append at epoch %d: %v", epoch, err)
	}
	for j := range recs {
		recs[j].Offset = res.BaseOffset + int64(j)
	}
	return crashBatch{raw: raw, records: recs, seg: -1, pos: -1}
}

// crashBuild writes at least n batches into a new log in dir, and more until
// it has minSegs segments and the last one holds minLast batches, closes it
// cleanly and returns its model, with every batch located in the segment files.
func crashBuild(t testing.TB, dir string, cfg Config, rng *rand.Rand, n, minSegs, minLast int) *crashLog {
	t.Helper()
	l, err := Open(dir, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &crashLog{dir: dir, cfg: cfg}
	epoch := int32(rng.IntN(3))
	ts := int64(1_700_000_000_000)
	segs, inLast := l.SegmentCount(), 0
	for i := 0; i < n || segs < minSegs || inLast < minLast; i++ {
		if rng.IntN(8) == 0 {
			epoch += 1 + int32(rng.IntN(2))
		}
		c.batches = append(c.batches, crashAppend(t, l, rng, crashRecords(rng, &ts), epoch))
		if inLast++; l.SegmentCount() != segs {
			segs, inLast = l.SegmentCount(), 1
		}
	}
	c.epochs = l.Epochs()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	c.locate(t)
	return c
}

// locate finds every batch of the model in the segment files, checking that
// the files hold exactly the model's bytes.
func (c *crashLog) locate(t testing.TB) {
	t.Helper()
	bases := crashSegmentBases(t, c.dir)
	i := 0
	for si, base := range bases {
		data, err := os.ReadFile(crashSegPath(c.dir, base))
		if err != nil {
			t.Fatal(err)
		}
		c.bases = append(c.bases, base)
		c.sizes = append(c.sizes, int64(len(data)))
		pos := int64(0)
		for len(data) > 0 {
			b, rest, ok, err := NextBatch(data)
			if err != nil || !ok {
				t.Fatalf("template segment %d at %d: ok=%v err=%v", base, pos, ok, err)
			}
			if i >= len(c.batches) || !bytes.Equal(b, c.batches[i].raw) {
				t.Fatalf("template segment %d at %d does not hold batch %d as written", base, pos, i)
			}
			crashCheckRecords(t, b, c.batches[i].records)
			c.batches[i].seg, c.batches[i].pos = si, pos
			pos += int64(len(b))
			data = rest
			i++
		}
	}
	if i != len(c.batches) {
		t.Fatalf("segments hold %d batches, wrote %d", i, len(c.batches))
	}
}

// firstBatchOf is the index of the first batch of segment seg.
func (c *crashLog) firstBatchOf(seg int) int {
	return sort.Search(len(c.batches), func(i int) bool { return c.batches[i].seg >= seg })
}

// segOf is the index of the segment holding offset (0 below the first).
func (c *crashLog) segOf(offset int64) int {
	return max(0, sort.Search(len(c.bases), func(i int) bool { return c.bases[i] > offset })-1)
}

// epochsBelow is the template's epoch cache as it must be after a cut at leo.
func (c *crashLog) epochsBelow(leo int64) []EpochEntry {
	var out []EpochEntry
	for _, e := range c.epochs {
		if e.StartOffset < leo {
			out = append(out, e)
		}
	}
	return out
}

func crashSegPath(dir string, base int64) string {
	return filepath.Join(dir, segmentName(base)+logSuffix)
}

func crashSegmentBases(t testing.TB, dir string) []int64 {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+logSuffix))
	if err != nil {
		t.Fatal(err)
	}
	var bases []int64
	for _, n := range names {
		b, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(n), logSuffix), 10, 64)
		if err != nil {
			t.Fatalf("segment file %s: %v", n, err)
		}
		bases = append(bases, b)
	}
	slices.Sort(bases)
	return bases
}

func crashCopyDir(t testing.TB, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func crashOpen(t testing.TB, dir string, cfg Config, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, cfg, opts)
	if err != nil {
		t.Fatalf("open %+v: %v", opts, err)
	}
	return l
}

func crashSameRecord(got, want Record) error {
	switch {
	case got.Offset != want.Offset:
		return fmt.Errorf("offset %d, want %d", got.Offset, want.Offset)
	case got.Timestamp != want.Timestamp:
		return fmt.Errorf("offset %d: timestamp %d, want %d", want.Offset, got.Timestamp, want.Timestamp)
	case !bytes.Equal(got.Key, want.Key) || (got.Key == nil) != (want.Key == nil):
		return fmt.Errorf("offset %d: key %q, want %q", want.Offset, got.Key, want.Key)
	case !bytes.Equal(got.Value, want.Value) || (got.Value == nil) != (want.Value == nil):
		return fmt.Errorf("offset %d: value %q, want %q", want.Offset, got.Value, want.Value)
	case len(got.Headers) != len(want.Headers):
		return fmt.Errorf("offset %d: %d headers, want %d", want.Offset, len(got.Headers), len(want.Headers))
	}
	for i, h := range want.Headers {
		g := got.Headers[i]
		if g.Key != h.Key || !bytes.Equal(g.Value, h.Value) || (g.Value == nil) != (h.Value == nil) {
			return fmt.Errorf("offset %d: header %d is %q=%q, want %q=%q", want.Offset, i, g.Key, g.Value, h.Key, h.Value)
		}
	}
	return nil
}

// crashCheckRecords decodes b and compares it record for record with want.
func crashCheckRecords(t testing.TB, b Batch, want []Record) {
	t.Helper()
	recs, err := NewCodecs(0).Records(b)
	if err != nil {
		t.Fatalf("decode batch at %d: %v", b.BaseOffset(), err)
	}
	if len(recs) != len(want) {
		t.Fatalf("batch at %d: %d records, want %d", b.BaseOffset(), len(recs), len(want))
	}
	for j := range recs {
		if err := crashSameRecord(recs[j], want[j]); err != nil {
			t.Fatalf("batch at %d: %v", b.BaseOffset(), err)
		}
	}
}

// crashVerify checks that l holds exactly want (whole batches, in order):
// sequential reads batch by batch compared byte for byte (the template's
// batches were decoded and compared record for record with what was written
// when it was built, so equal bytes are equal records), and the log end.
// With deep (rng != nil) it also reads at a random offset of every batch and
// checks OffsetForTimestamp against a brute-force scan.
func crashVerify(t *testing.T, l *Log, want []crashBatch, rng *rand.Rand) {
	t.Helper()
	start := l.LogStartOffset()
	wantLEO := start
	if len(want) > 0 {
		wantLEO = want[len(want)-1].next()
	}
	if got := l.LogEndOffset(); got != wantLEO {
		t.Fatalf("log end offset %d, want %d", got, wantLEO)
	}
	off := start
	for i := range want {
		res, err := l.Read(off, 1, math.MaxInt64)
		if err != nil {
			t.Fatalf("read at %d (batch %d): %v", off, i, err)
		}
		b, rest, ok, err := NextBatch(res.Data)
		if err != nil || !ok || len(rest) != 0 {
			t.Fatalf("read at %d (batch %d): %d bytes, not one whole batch (ok=%v err=%v)", off, i, len(res.Data), ok, err)
		}
		if !bytes.Equal(b, want[i].raw) {
			t.Fatalf("read at %d: batch [%d,%d] epoch %d, want batch %d [%d,%d] epoch %d as written",
				off, b.BaseOffset(), b.LastOffset(), b.LeaderEpoch(), i, want[i].base(), want[i].next()-1, want[i].epoch())
		}
		off = res.NextOffset
	}
	if off != wantLEO {
		t.Fatalf("reads ended at %d, want the log end %d", off, wantLEO)
	}
	if res, err := l.Read(wantLEO, 1<<20, math.MaxInt64); err != nil || len(res.Data) != 0 {
		t.Fatalf("read at the log end: %d bytes, %v", len(res.Data), err)
	}
	if _, err := l.Read(wantLEO+1, 1<<20, math.MaxInt64); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past the log end: %v, want out of range", err)
	}
	if rng == nil {
		return
	}
	// Point reads land on the batch holding the offset (through the index).
	for i := range want {
		o := want[i].base() + rng.Int64N(want[i].next()-want[i].base())
		res, err := l.Read(o, 1, math.MaxInt64)
		if err != nil {
			t.Fatalf("read at %d: %v", o, err)
		}
		if b, _, ok, _ := NextBatch(res.Data); !ok || !bytes.Equal(b, want[i].raw) {
			t.Fatalf("read at %d does not return batch %d [%d,%d]", o, i, want[i].base(), want[i].next()-1)
		}
	}
	crashCheckTimestamps(t, l, want, rng, 8)
}

// crashCheckTimestamps compares OffsetForTimestamp with a brute-force scan for
// n targets (every record's timestamp when n < 0).
func crashCheckTimestamps(t *testing.T, l *Log, want []crashBatch, rng *rand.Rand, n int) {
	t.Helper()
	var all []Record
	for i := range want {
		all = append(all, want[i].records...)
	}
	var targets []int64
	if len(all) > 0 {
		lo, hi := all[0].Timestamp, all[0].Timestamp
		for _, r := range all {
			lo, hi = min(lo, r.Timestamp), max(hi, r.Timestamp)
		}
		targets = append(targets, lo-1, lo, hi, hi+1, math.MinInt64, math.MaxInt64)
		if n < 0 {
			for _, r := range all {
				targets = append(targets, r.Timestamp, r.Timestamp+1)
			}
		}
		for range max(n, 0) {
			r := all[rng.IntN(len(all))]
			targets = append(targets, r.Timestamp+int64(rng.IntN(3))-1)
		}
	} else {
		targets = append(targets, 0, math.MinInt64)
	}
	for _, ts := range targets {
		wantOff, wantTS, wantFound := int64(-1), int64(-1), false
		for _, r := range all {
			if r.Timestamp >= ts {
				wantOff, wantTS, wantFound = r.Offset, r.Timestamp, true
				break
			}
		}
		off, got, found, err := l.OffsetForTimestamp(ts)
		if err != nil || found != wantFound || (found && (off != wantOff || got != wantTS)) {
			t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want %d, %d, %v",
				ts, off, got, found, err, wantOff, wantTS, wantFound)
		}
	}
}

// crashAppendMore appends a few batches to a recovered log, checks they go at
// its end, and returns the model extended by them.
func crashAppendMore(t *testing.T, l *Log, rng *rand.Rand, kept []crashBatch) []crashBatch {
	t.Helper()
	out := slices.Clone(kept)
	ts := int64(1_800_000_000_000)
	for range 1 + rng.IntN(3) {
		epoch := max(l.LatestEpoch(), 0) + int32(rng.IntN(2))
		leo := l.LogEndOffset()
		b := crashAppend(t, l, rng, crashRecords(rng, &ts), epoch)
		if b.base() != leo {
			t.Fatalf("append after recovery went to %d, want the log end %d", b.base(), leo)
		}
		out = append(out, b)
	}
	return out
}

// crashDamage is what a test did to a segment file.
type crashDamage struct {
	desc    string
	seg     int   // segment index
	first   int64 // first byte that differs from the template (file size if none)
	newSize int64 // file size after the damage
}

// crashDamageFile applies one random damage to segment seg of dir: a
// truncation, a flipped byte (half the time in a batch header, whose fields
// the CRC does not all cover), a run of garbage, a zeroed tail, or zeros past
// the end (the file grew but the data never reached the disk).
func crashDamageFile(t *testing.T, c *crashLog, dir string, seg int, kind string, rng *rand.Rand) crashDamage {
	t.Helper()
	path := crashSegPath(dir, c.bases[seg])
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	orig := slices.Clone(data)
	size := int64(len(data))
	d := crashDamage{seg: seg}
	switch kind {
	case "truncate":
		cut := rng.Int64N(size)
		if rng.IntN(5) == 0 { // exactly at a batch boundary: nothing is torn
			from := c.firstBatchOf(seg)
			cut = c.batches[from+rng.IntN(c.firstBatchOf(seg+1)-from)].pos
		}
		data = data[:cut]
		d.desc = fmt.Sprintf("truncate at %d of %d", cut, size)
	case "flip":
		p := rng.Int64N(size)
		if rng.IntN(2) == 0 { // a header byte of a random batch
			from := c.firstBatchOf(seg)
			b := c.batches[from+rng.IntN(c.firstBatchOf(seg+1)-from)]
			p = b.pos + rng.Int64N(posAttributes+2)
		}
		x := byte(1 + rng.IntN(255))
		data[p] ^= x
		d.desc = fmt.Sprintf("flip byte %d of %d with %#02x", p, size, x)
	case "flip-noepoch": // without a checkpoint, a raised epoch is a valid-looking batch
		var p int64
		for {
			p = rng.Int64N(size)
			i := sort.Search(len(c.batches), func(i int) bool {
				return c.batches[i].seg > seg || (c.batches[i].seg == seg && c.batches[i].end() > p)
			})
			if rel := p - c.batches[i].pos; rel < posLeaderEpoch || rel >= posMagic {
				break
			}
		}
		x := byte(1 + rng.IntN(255))
		data[p] ^= x
		d.desc = fmt.Sprintf("flip byte %d of %d with %#02x", p, size, x)
	case "garbage":
		p := rng.Int64N(size)
		n := min(int64(2+rng.IntN(100)), size-p)
		copy(data[p:], crashRandBytes(rng, int(n)))
		d.desc = fmt.Sprintf("garbage at [%d,%d) of %d", p, p+n, size)
	case "zerotail":
		p := rng.Int64N(size)
		clear(data[p:])
		d.desc = fmt.Sprintf("zeros from %d to the end %d", p, size)
	case "zeroext":
		n := 1 + rng.IntN(200)
		data = append(data, make([]byte, n)...)
		d.desc = fmt.Sprintf("%d zeros past the end %d", n, size)
	default:
		t.Fatalf("unknown damage %q", kind)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	d.newSize = int64(len(data))
	d.first = min(int64(len(data)), size)
	for i := int64(0); i < min(int64(len(data)), size); i++ {
		if data[i] != orig[i] {
			d.first = i
			break
		}
	}
	return d
}

// crashKept is how many batches recovery must keep after damage d: those
// wholly before the first changed byte of the damaged segment. inSeg says
// whether recovery finds damage in that segment (not when the file was merely
// cut at a batch boundary), and cutBytes is what it cuts from it.
func (c *crashLog) crashKept(d crashDamage) (kept int, inSeg bool, cutBytes int64) {
	if d.first >= c.sizes[d.seg] && d.newSize == c.sizes[d.seg] {
		return len(c.batches), false, 0 // nothing changed
	}
	kept = c.firstBatchOf(d.seg)
	for kept < len(c.batches) && c.batches[kept].seg == d.seg && c.batches[kept].end() <= d.first {
		kept++
	}
	keptEnd := int64(0)
	if kept > 0 && c.batches[kept-1].seg == d.seg {
		keptEnd = c.batches[kept-1].end()
	}
	return kept, d.newSize != keptEnd, d.newSize - keptEnd
}

// crashRecoverCase damages a copy of the template, reopens it unclean from
// rp and checks what recovery kept and reported, then appends and reopens.
func crashRecoverCase(t *testing.T, c *crashLog, dir string, seg int, kind string, rng *rand.Rand) {
	t.Helper()
	crashCopyDir(t, c.dir, dir)
	d := crashDamageFile(t, c, dir, seg, kind, rng)
	kept, inSeg, cutBytes := c.crashKept(d)
	rp := int64(0)
	if rng.IntN(2) == 0 {
		rp = rng.Int64N(c.bases[seg] + 1)
	}
	t.Logf("%s in segment %d (%d of %d segments), recovery point %d: expect %d of %d batches kept",
		d.desc, c.bases[seg], seg+1, len(c.bases), rp, kept, len(c.batches))

	l := crashOpen(t, dir, c.cfg, Options{RecoveryPoint: rp})
	defer func() { l.Delete() }() // no fsyncs: the directory goes anyway
	want := c.batches[:kept]
	crashVerify(t, l, want, rng)
	leo := l.LogEndOffset()

	rep := l.Recovery()
	if !rep.Recovered {
		t.Errorf("report %+v: not recovered", rep)
	}
	laterSegs := len(c.bases) - 1 - seg
	var laterBytes int64
	for _, s := range c.sizes[seg+1:] {
		laterBytes += s
	}
	// A segment cut at a batch boundary looks whole; if segments follow, the
	// next one's first batch does not follow it, and that is the damage found.
	torn := inSeg || laterSegs > 0
	wantScanned := seg + 1 - c.segOf(rp)
	if !inSeg && laterSegs > 0 {
		wantScanned++
	}
	if rep.SegmentsScanned != wantScanned {
		t.Errorf("report %+v: scanned %d segments, want %d", rep, rep.SegmentsScanned, wantScanned)
	}
	if torn {
		dropped := laterSegs
		if inSeg && kept == c.firstBatchOf(seg) && seg > 0 {
			dropped++ // the damaged segment lost every batch
		}
		if rep.Reason == "" || rep.TruncatedAt != leo || rep.SegmentsDeleted != dropped || rep.TruncatedBytes != cutBytes+laterBytes {
			t.Errorf("report %+v: want a reason, truncated at %d, %d segments deleted, %d bytes cut",
				rep, leo, dropped, cutBytes+laterBytes)
		}
		for _, base := range c.bases[seg+1:] {
			if _, err := os.Stat(crashSegPath(dir, base)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("segment %d after the damage still exists: %v", base, err)
			}
		}
	} else if rep.Reason != "" || rep.TruncatedAt != -1 || rep.SegmentsDeleted != 0 || rep.TruncatedBytes != 0 {
		t.Errorf("report %+v: the file was cut at a batch boundary, nothing to report", rep)
	}
	if got, wantE := l.Epochs(), c.epochsBelow(leo); !slices.Equal(got, wantE) {
		t.Errorf("epochs after recovery %v, want %v", got, wantE)
	}
	if t.Failed() {
		t.FailNow()
	}

	// The log goes on: appends land at the end and survive a reopen, clean
	// or validated in full (recovery must find nothing wrong with what it repaired).
	want = crashAppendMore(t, l, rng, want)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	clean := rng.IntN(2) == 0
	l = crashOpen(t, dir, c.cfg, Options{Clean: clean})
	if rep := l.Recovery(); rep.Reason != "" || rep.TruncatedAt != -1 || rep.Recovered == clean {
		t.Fatalf("reopen (clean %v) after repair: %+v", clean, rep)
	}
	crashVerify(t, l, want, nil)
	for _, b := range want[kept:] { // the new batches hold what was appended
		crashCheckRecords(t, b.raw, b.records)
	}
}

func crashTemplate(t *testing.T, rng *rand.Rand, batches, minSegs int) *crashLog {
	t.Helper()
	c := crashBuild(t, filepath.Join(t.TempDir(), "template"), crashConfig(), rng, batches, minSegs, 10)
	t.Logf("template: %d batches, %d records, %d segments %v sizes %v, epochs %v",
		len(c.batches), c.batches[len(c.batches)-1].next(), len(c.bases), c.bases, c.sizes, c.epochs)
	return c
}

// TestCrashTornTail cuts the last segment at random bytes (a crash mid-write).
func TestCrashTornTail(t *testing.T) {
	seed := crashSeed(t)
	c := crashTemplate(t, crashRand(seed), 20, 3)
	root := t.TempDir()
	for it := range crashIters(200) {
		itSeed := seed + uint64(it)*0x9e3779b97f4a7c15
		t.Run(fmt.Sprintf("cut%03d", it), func(t *testing.T) {
			t.Logf("iteration seed %d", itSeed)
			dir := filepath.Join(root, strconv.Itoa(it))
			defer os.RemoveAll(dir)
			crashRecoverCase(t, c, dir, len(c.bases)-1, "truncate", crashRand(itSeed))
		})
	}
}

// TestCrashCorruptTail damages bytes of the last segment: single flipped
// bytes anywhere (including header fields the CRC does not cover), runs of
// garbage, zeroed tails and zeros past the end as after a power loss.
func TestCrashCorruptTail(t *testing.T) {
	seed := crashSeed(t)
	c := crashTemplate(t, crashRand(seed), 20, 3)
	root := t.TempDir()
	kinds := []string{"flip", "flip", "flip", "flip", "flip", "flip", "garbage", "zerotail", "zeroext"}
	for it := range crashIters(200) {
		itSeed := seed + uint64(it)*0x9e3779b97f4a7c15
		kind := kinds[it%len(kinds)]
		t.Run(fmt.Sprintf("%s%03d", kind, it), func(t *testing.T) {
			t.Logf("iteration seed %d", itSeed)
			dir := filepath.Join(root, strconv.Itoa(it))
			defer os.RemoveAll(dir)
			crashRecoverCase(t, c, dir, len(c.bases)-1, kind, crashRand(itSeed))
		})
	}
}

// TestCrashEveryHeaderByte flips each byte of a batch header (of a random
// batch of the last segment), one at a time: not one may go unnoticed.
func TestCrashEveryHeaderByte(t *testing.T) {
	seed := crashSeed(t)
	rng := crashRand(seed)
	c := crashTemplate(t, rng, 30, 2)
	root := t.TempDir()
	last := len(c.bases) - 1
	from := c.firstBatchOf(last)
	for p := int64(0); p < BatchHeaderSize; p++ {
		for _, bi := range []int{from + rng.IntN(len(c.batches)-from), len(c.batches) - 1} {
			dir := filepath.Join(root, fmt.Sprintf("%d-%d", bi, p))
			crashCopyDir(t, c.dir, dir)
			path := crashSegPath(dir, c.bases[last])
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			x := byte(1) << rng.IntN(8)
			data[c.batches[bi].pos+p] ^= x
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			l := crashOpen(t, dir, c.cfg, Options{RecoveryPoint: c.bases[last]})
			if got, want := l.LogEndOffset(), c.batches[bi].base(); got != want || l.Recovery().Reason == "" {
				t.Errorf("batch %d at %d, header byte %d ^ %#02x: log end %d, want %d; report %+v",
					bi, c.batches[bi].pos, p, x, got, want, l.Recovery())
			}
			l.Close()
			os.RemoveAll(dir)
		}
	}
}

// TestCrashMiddleSegment damages a segment before the last one, recovering
// from a recovery point at or before it: the segments after it go.
func TestCrashMiddleSegment(t *testing.T) {
	seed := crashSeed(t)
	c := crashTemplate(t, crashRand(seed), 90, 5)
	root := t.TempDir()
	kinds := []string{"flip", "truncate", "garbage", "zerotail", "flip"}
	for it := range crashIters(40) {
		itSeed := seed + uint64(it)*0x9e3779b97f4a7c15
		kind := kinds[it%len(kinds)]
		t.Run(fmt.Sprintf("%s%03d", kind, it), func(t *testing.T) {
			t.Logf("iteration seed %d", itSeed)
			rng := crashRand(itSeed)
			dir := filepath.Join(root, strconv.Itoa(it))
			defer os.RemoveAll(dir)
			crashRecoverCase(t, c, dir, 1+rng.IntN(len(c.bases)-2), kind, rng)
		})
	}
}

// TestCrashDamagedIndexes damages, deletes or replaces the .index and
// .timeindex files of a cleanly closed log: the log data is whole, so every
// answer must stay right, whether the indexes are rebuilt or merely sparser.
func TestCrashDamagedIndexes(t *testing.T) {
	seed := crashSeed(t)
	rng := crashRand(seed)
	c := crashTemplate(t, rng, 60, 3)
	other := crashBuild(t, filepath.Join(t.TempDir(), "other"), c.cfg, crashRand(seed+1), 60, 3, 0)
	root := t.TempDir()

	type damage func(t *testing.T, rng *rand.Rand, dir string, seg int) string
	idx := func(dir string, c *crashLog, seg int, suf string) string {
		return filepath.Join(dir, segmentName(c.bases[seg])+suf)
	}
	rewrite := func(t *testing.T, path string, fn func([]byte) []byte) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, fn(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	suffixes := []string{indexSuffix, timeIndexSuffix}
	damages := map[string]damage{
		"delete": func(t *testing.T, rng *rand.Rand, dir string, seg int) string {
			suf := suffixes[rng.IntN(2)]
			if err := os.Remove(idx(dir, c, seg, suf)); err != nil {
				t.Fatal(err)
			}
			return suf
		},
		"delete-both": func(t *testing.T, rng *rand.Rand, dir string, seg int) string {
			for _, suf := range suffixes {
				if err := os.Remove(idx(dir, c, seg, suf)); err != nil {
					t.Fatal(err)
				}
			}
			return ""
		},
		"delete-all": func(t *testing.T, rng *rand.Rand, dir string, seg int) string {
			for s := range c.bases {
				for _, suf := range suffixes {
					if err := os.Remove(idx(dir, c, s, suf)); err != nil {
						t.Fatal(err)
					}
				}
			}
			return "every segment"
		},
		"empty": func(t *testing.T, rng *rand.Rand, dir string, seg int) string {
			suf := suffixes[rng.IntN(2)]
			rewrite(t, idx(dir, c, seg, suf), func([]byte) []byte { return nil })
			return suf
		},
		"truncate-odd": func(t *testing.T, rng *rand.Rand, dir string, seg int) string {
			suf, size := indexSuffix, offsetEntrySize
			if rng.IntN(2) == 0 {
				suf, size = timeIndexSuffix, timeEntrySize
			}
			var n int
			rewrite(t, idx(dir, c, seg, suf), func(b []byte) []byte {
				if len(b) < 2 {
					n = len(b) + 1
					return append(b, 7)
				}
				for n = rng.IntN(len(b)); n%size == 0; n = rng.IntN(len(b)) {
				}
				return b[:n]
			})
			return fmt.Sprintf("%s to %d bytes", suf, n)
		},
		"truncate-entries": func(t *testing.T, rng *rand.Rand, dir string, seg int) string {
			// Only the offset index: it merely gets sparser. A time index that
			// lost whole entries at its end looks complete and its last entry
			// understates the segment's largest timestamp; no check short of
			// reading every batch header can tell (Kafka cannot either).
			suf, size := indexSuffix, offsetEntrySize
			var n int
			rewrite(t, idx(dir, c, seg, suf), func(b []byte) []byte {
				n = rng.IntN(len(b)/size+1) * size
				return b[:n]
			})
			return fmt.Sprintf("%s to %d bytes", suf, n)
		},
		"garbage": func(t *testing.T, rng *rand.Rand, dir string, seg int) string {
			suf := suffixes[rng.IntN(2)]
			n := rng.IntN(200)
			if rng.IntN(2) == 0 {
				info, err := os.Stat(idx(dir, c, seg, suf))
				if err != nil {
					t.Fatal(err)
				}
				n = int(info.Size())
			}
			rewrite(t, idx(dir, c, seg, suf), func([]byte) []byte { return crashRandBytes(rng, n) })
			return fmt.Sprintf("%s, %d bytes", suf, n)
		},
		"flip": func(t *testing.T, rng *rand.Rand, dir string, seg int) string {
			// Only the offset index: a flipped bit often keeps the entries in
			// order, and reads check the batch an entry points at. A .timeindex
			// entry's timestamp cannot be checked without reading every batch
			// before it, so a flip there can make OffsetForTimestamp start too
			// late (as in Kafka); it is not tested.
			suf := indexSuffix
			var p int
			var x byte
			rewrite(t, idx(dir, c, seg, suf), func(b []byte) []byte {
				if len(b) == 0 {
					return b
				}
				p, x = rng.IntN(len(b)), byte(1+rng.IntN(255))
				b[p] ^= x
				return b
			})
			return fmt.Sprintf("%s byte %d ^ %#02x", suf, p, x)
		},
		"stale": func(t *testing.T, rng *rand.Rand, dir string, seg int) string {
			// Both indexes of the same-numbered segment of another log.
			o := min(seg, len(other.bases)-1)
			for _, suf := range suffixes {
				data, err := os.ReadFile(idx(other.dir, other, o, suf))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(idx(dir, c, seg, suf), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			return fmt.Sprintf("from segment %d of another log", other.bases[o])
		},
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range damages {
			if !yield(n) {
				return
			}
		}
	})
	it := 0
	for _, name := range names {
		for range crashIters(6) {
			itSeed := seed + uint64(it)*0x9e3779b97f4a7c15
			it++
			t.Run(fmt.Sprintf("%s%03d", name, it), func(t *testing.T) {
				rng := crashRand(itSeed)
				dir := filepath.Join(root, strconv.Itoa(it))
				defer os.RemoveAll(dir)
				crashCopyDir(t, c.dir, dir)
				seg := rng.IntN(len(c.bases))
				desc := damages[name](t, rng, dir, seg)
				t.Logf("iteration seed %d: %s %s of segment %d", itSeed, name, desc, c.bases[seg])

				l := crashOpen(t, dir, c.cfg, Options{Clean: true})
				defer func() { l.Close() }()
				if rep := l.Recovery(); rep.Reason != "" || rep.TruncatedAt != -1 {
					t.Fatalf("damaged indexes over a whole log made recovery cut: %+v", rep)
				}
				crashVerify(t, l, c.batches, rng)
				crashCheckTimestamps(t, l, c.batches, rng, 40)
				// A follower truncation finds its batch through the same index.
				want := c.batches
				if rng.IntN(2) == 0 {
					k := rng.IntN(len(want))
					cut := want[k].base() + rng.Int64N(want[k].next()-want[k].base())
					if end, err := l.Truncate(cut); err != nil || end != want[k].base() {
						t.Fatalf("Truncate(%d) = %d, %v; want %d", cut, end, err, want[k].base())
					}
					want = want[:k]
					crashVerify(t, l, want, rng)
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				// Whatever was rebuilt was written back correctly.
				l = crashOpen(t, dir, c.cfg, Options{Clean: true})
				if rep := l.Recovery(); rep.Recovered {
					t.Errorf("indexes rebuilt on the last open are not trusted on the next: %+v", rep)
				}
				crashVerify(t, l, want, rng)
			})
		}
	}
}

// TestCrashEpochCheckpointLost damages the tail with the leader epoch
// checkpoint missing or unreadable: recovery still cuts at the damage (by
// CRC, framing and offsets; a raised epoch is undetectable without the
// checkpoint) and rebuilds the checkpoint from the batches it kept.
func TestCrashEpochCheckpointLost(t *testing.T) {
	seed := crashSeed(t)
	c := crashTemplate(t, crashRand(seed), 20, 2)
	root := t.TempDir()
	kinds := []string{"truncate", "flip-noepoch", "zerotail", "garbage"}
	for it := range crashIters(24) {
		itSeed := seed + uint64(it)*0x9e3779b97f4a7c15
		kind := kinds[it%len(kinds)]
		t.Run(fmt.Sprintf("%s%03d", kind, it), func(t *testing.T) {
			rng := crashRand(itSeed)
			dir := filepath.Join(root, strconv.Itoa(it))
			defer os.RemoveAll(dir)
			crashCopyDir(t, c.dir, dir)
			ckpt := filepath.Join(dir, EpochFileName)
			lost := "deleted"
			if rng.IntN(2) == 0 {
				lost = "garbled"
				if err := os.WriteFile(ckpt, []byte("0\n2\n5 10\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Remove(ckpt); err != nil {
				t.Fatal(err)
			}
			d := crashDamageFile(t, c, dir, len(c.bases)-1, kind, rng)
			kept, _, _ := c.crashKept(d)
			t.Logf("iteration seed %d: checkpoint %s, %s: expect %d of %d batches kept", itSeed, lost, d.desc, kept, len(c.batches))

			l := crashOpen(t, dir, c.cfg, Options{})
			defer func() { l.Delete() }()
			crashVerify(t, l, c.batches[:kept], rng)
			if rep := l.Recovery(); !rep.EpochCacheRebult {
				t.Errorf("report %+v: the epoch cache was not rebuilt", rep)
			}
			wantEpochs := c.epochsBelow(l.LogEndOffset())
			if got := l.Epochs(); !slices.Equal(got, wantEpochs) {
				t.Fatalf("rebuilt epochs %v, want %v", got, wantEpochs)
			}
			if disk, ok := loadEpochCache(dir); !ok || !slices.Equal(disk.entries, wantEpochs) {
				t.Fatalf("checkpoint on disk %v (ok=%v), want %v", disk.entries, ok, wantEpochs)
			}
		})
	}
}

// TestCrashLeftoverFiles checks that Open removes what interrupted work left
// behind and nothing else.
func TestCrashLeftoverFiles(t *testing.T) {
	seed := crashSeed(t)
	rng := crashRand(seed)
	c := crashTemplate(t, rng, 30, 2)
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprintf("clean=%v", clean), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			crashCopyDir(t, c.dir, dir)
			leftovers := []string{
				segmentName(c.bases[0]) + logSuffix + cleanedSuffix,
				segmentName(c.bases[0]) + indexSuffix + cleanedSuffix,
				segmentName(c.bases[0]) + timeIndexSuffix + cleanedSuffix,
				segmentName(c.bases[0]) + timeIndexSuffix + deletedSuffix, // a retired segment
				segmentName(77777) + logSuffix + deletedSuffix,
				segmentName(77777) + indexSuffix + deletedSuffix,
				EpochFileName + ".tmp-123456",
				"recovery-point-offset-checkpoint.tmp-42",
				segmentName(99999) + indexSuffix, // orphans: no .log of that base
				segmentName(99999) + timeIndexSuffix,
				segmentName(c.bases[len(c.bases)-1]+1) + indexSuffix,
			}
			for _, name := range leftovers {
				if err := os.WriteFile(filepath.Join(dir, name), crashRandBytes(rng, 64), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before, err := os.ReadDir(c.dir)
			if err != nil {
				t.Fatal(err)
			}
			l := crashOpen(t, dir, c.cfg, Options{Clean: clean})
			defer l.Close()
			for _, name := range leftovers {
				if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("leftover %s survived Open: %v", name, err)
				}
			}
			for _, e := range before {
				if _, err := os.Stat(filepath.Join(dir, e.Name())); err != nil {
					t.Errorf("Open removed %s: %v", e.Name(), err)
				}
			}
			if rep := l.Recovery(); rep.Reason != "" {
				t.Errorf("leftovers made recovery cut: %+v", rep)
			}
			crashVerify(t, l, c.batches, rng)
		})
	}
}

// TestCrashEpochCheckpointAhead: a leader epoch checkpoint that names epochs
// starting at or after the log end (their batches never reached the disk) is
// cut back to the log, in memory and on disk.
func TestCrashEpochCheckpointAhead(t *testing.T) {
	seed := crashSeed(t)
	rng := crashRand(seed)
	c := crashTemplate(t, rng, 30, 2)
	leo := c.batches[len(c.batches)-1].next()
	last := c.epochs[len(c.epochs)-1]
	ahead := append(slices.Clone(c.epochs),
		EpochEntry{Epoch: last.Epoch + 1, StartOffset: leo},
		EpochEntry{Epoch: last.Epoch + 3, StartOffset: leo + 10},
		EpochEntry{Epoch: last.Epoch + 4, StartOffset: leo + 1000})
	for _, opts := range []Options{{Clean: true}, {}, {RecoveryPoint: c.bases[len(c.bases)-1]}} {
		t.Run(fmt.Sprintf("clean=%v,rp=%d", opts.Clean, opts.RecoveryPoint), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			crashCopyDir(t, c.dir, dir)
			ec := &epochCache{path: filepath.Join(dir, EpochFileName), entries: ahead}
			if err := ec.flush(); err != nil {
				t.Fatal(err)
			}
			l := crashOpen(t, dir, c.cfg, opts)
			if rep := l.Recovery(); rep.Reason != "" || rep.EpochCacheRebult {
				t.Errorf("report %+v: the log is whole and the checkpoint readable", rep)
			}
			if got := l.Epochs(); !slices.Equal(got, c.epochs) {
				t.Errorf("epochs %v, want %v", got, c.epochs)
			}
			if e, end := l.EndOffsetForEpoch(last.Epoch); e != last.Epoch || end != leo {
				t.Errorf("EndOffsetForEpoch(%d) = %d, %d; want %d, %d", last.Epoch, e, end, last.Epoch, leo)
			}
			if e, end := l.EndOffsetForEpoch(last.Epoch + 3); e != UndefinedEpoch || end != UndefinedOffset {
				t.Errorf("EndOffsetForEpoch(%d) = %d, %d for an epoch the log never had", last.Epoch+3, e, end)
			}
			crashVerify(t, l, c.batches, rng)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			disk, ok := loadEpochCache(dir)
			if !ok || !slices.Equal(disk.entries, c.epochs) {
				t.Errorf("checkpoint on disk %v (ok=%v), want %v", disk.entries, ok, c.epochs)
			}
		})
	}
}
