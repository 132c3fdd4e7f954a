package logstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Fuzz targets. Run one at a time, e.g.
//
//	go test -run XXX -fuzz FuzzDecodeBatch -fuzztime 3m ./logstore/
//	go test -run XXX -fuzz FuzzOpenDamagedSegment -fuzztime 3m ./logstore/
//
// Crashers found go to testdata/fuzz/<target>/ and are replayed by plain go test.

// fuzzMaxDecoded bounds what a fuzzed batch may inflate to, so an iteration
// stays fast; the limit itself is under test (Decompress must honour it).
const fuzzMaxDecoded = 1 << 20

// fuzzAllocBound is the most one decode of a fuzzed input may allocate: the
// decompression limit, codec state (lz4 and zstd blocks of up to 4 MiB) and
// per-byte overhead. Far beyond it means a length field drove an allocation.
func fuzzAllocBound(n int) uint64 { return 48<<20 + 64*uint64(n) }

var fuzzCodecs = sync.OnceValue(func() *Codecs { return NewCodecs(fuzzMaxDecoded) })

// fuzzSeedRecords are record sets for seed batches: plain, null and empty
// keys and values, headers, timestamps going back, many small records.
func fuzzSeedRecords() [][]Record {
	many := make([]Record, 40)
	for i := range many {
		many[i] = Record{Timestamp: 1_700_000_000_000 + int64(i%7)*1000 - 3000, Key: []byte{byte(i)}, Value: bytes.Repeat([]byte{'v'}, i)}
	}
	return [][]Record{
		{{Timestamp: 1_700_000_000_000, Key: []byte("k"), Value: []byte("v")}},
		{{Timestamp: 5}, {Timestamp: -7, Key: []byte{}, Value: []byte{}},
			{Timestamp: 9, Value: []byte("x"), Headers: []Header{{Key: "h", Value: []byte("1")}, {Key: "", Value: nil}}}},
		many,
	}
}

// fuzzFixCRC makes data look like one batch as far as the framing and CRC go
// (length field, magic, CRC), so the fuzzer reaches the record decoding.
func fuzzFixCRC(data []byte) Batch {
	b := Batch(bytes.Clone(data))
	binary.BigEndian.PutUint32(b[posBatchLength:], uint32(len(b)-batchLogOverhead))
	b[posMagic] = magicV2
	b.setCRC()
	return b
}

func FuzzDecodeBatch(f *testing.F) {
	codecs := fuzzCodecs()
	var all []byte
	for codec := CompressionNone; codec <= CompressionZstd; codec++ {
		for i, recs := range fuzzSeedRecords() {
			b, err := codecs.EncodeBatch(nil, recs, BatchOptions{Compression: codec, BaseOffset: 100, LeaderEpoch: 3, LogAppendTime: i == 1})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			f.Add(b[:len(b)-1])
			all = append(all, b...)
		}
	}
	f.Add(all) // batches back to back
	f.Add([]byte{})
	f.Add(make([]byte, BatchHeaderSize))
	// xerial-framed snappy, as the Java client writes it.
	xerial := append(bytes.Clone(xerialHeader), 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 2, 4, 'h', 'i')
	b, _ := codecs.EncodeBatch(nil, fuzzSeedRecords()[0], BatchOptions{Compression: CompressionSnappy})
	f.Add(append(b[:BatchHeaderSize:BatchHeaderSize], xerial...))

	f.Fuzz(func(t *testing.T, data []byte) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc

		fuzzDecodeAll(t, codecs, data)
		if len(data) >= BatchHeaderSize {
			fuzzDecodeAll(t, codecs, fuzzFixCRC(data))
		}

		runtime.ReadMemStats(&ms)
		if got := ms.TotalAlloc - before; got > fuzzAllocBound(len(data)) {
			t.Fatalf("decoding %d bytes allocated %d bytes", len(data), got)
		}
	})
}

// fuzzDecodeAll splits data into batches and decodes every valid one, checking
// that the decoders agree with each other and with the header.
func fuzzDecodeAll(t *testing.T, codecs *Codecs, data []byte) {
	var seen []Batch
	rest := data
	for {
		b, r, ok, err := NextBatch(rest)
		if err != nil {
			if !errors.Is(err, ErrCorruptBatch) {
				t.Fatalf("NextBatch error %v is not ErrCorruptBatch", err)
			}
			break
		}
		if !ok {
			if len(r) != len(rest) {
				t.Fatal("NextBatch consumed bytes without a batch")
			}
			break
		}
		if len(b) < BatchHeaderSize || len(b)+len(r) != len(rest) || b.Size() != len(b) {
			t.Fatalf("NextBatch split %d bytes into %d (size field %d) and %d", len(rest), len(b), b.Size(), len(r))
		}
		seen = append(seen, b)
		fuzzDecodeBatch(t, codecs, b)
		rest = r
	}
	i := 0
	err := Batches(data, func(b Batch) error {
		if i >= len(seen) || &b[0] != &seen[i][0] || len(b) != len(seen[i]) {
			t.Fatalf("Batches and NextBatch disagree at batch %d", i)
		}
		i++
		return nil
	})
	if i != len(seen) || (err != nil) != (len(rest) >= BatchHeaderSize && Batch(rest).Size() < BatchHeaderSize) {
		t.Fatalf("Batches saw %d batches (err %v), NextBatch %d", i, err, len(seen))
	}
}

func fuzzDecodeBatch(t *testing.T, codecs *Codecs, b Batch) {
	verr := b.Validate()
	if verr != nil && !errors.Is(verr, ErrCorruptBatch) {
		t.Fatalf("Validate error %v is not ErrCorruptBatch", verr)
	}
	if codec := b.Compression(); verr == nil && codec != CompressionNone {
		out, err := codecs.Decompress(b[BatchHeaderSize:], codec)
		if err == nil && len(out) > fuzzMaxDecoded {
			t.Fatalf("%v inflated %d bytes to %d, past the limit %d", codec, len(b)-BatchHeaderSize, len(out), fuzzMaxDecoded)
		}
	}
	recs, err := codecs.Records(b)
	var each []Record
	err2 := codecs.EachRecord(b, func(r Record) error { each = append(each, r); return nil })
	if (err == nil) != (err2 == nil) || len(recs) != len(each) {
		t.Fatalf("Records (%d, %v) and EachRecord (%d, %v) disagree", len(recs), err, len(each), err2)
	}
	if verr != nil {
		if err == nil {
			t.Fatalf("Records decoded a batch Validate refused: %v", verr)
		}
		return
	}
	if err != nil {
		if !errors.Is(err, ErrCorruptBatch) {
			t.Fatalf("Records error %v is not ErrCorruptBatch", err)
		}
		return
	}
	if len(recs) != int(b.RecordCount()) {
		t.Fatalf("decoded %d records, header says %d", len(recs), b.RecordCount())
	}
	prev := int64(math.MinInt64)
	for _, r := range recs {
		if r.Offset <= prev || r.Offset < b.BaseOffset() || r.Offset > b.LastOffset() {
			t.Fatalf("record offset %d out of order or outside [%d,%d]", r.Offset, b.BaseOffset(), b.LastOffset())
		}
		if b.LogAppendTime() && r.Timestamp != b.MaxTimestamp() {
			t.Fatalf("log append time batch: record timestamp %d, batch %d", r.Timestamp, b.MaxTimestamp())
		}
		prev = r.Offset
	}
	if len(recs) == 0 {
		return
	}
	// What decodes re-encodes to the same records.
	again, err := codecs.EncodeBatch(nil, recs, BatchOptions{Compression: b.Compression()})
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	back, err := codecs.Records(again)
	if err != nil || len(back) != len(recs) {
		t.Fatalf("decode re-encoded batch: %d records, %v", len(back), err)
	}
	for i := range recs {
		want := recs[i]
		want.Offset = int64(i)
		if err := crashSameRecord(back[i], want); err != nil {
			t.Fatalf("re-encoded record %d: %v", i, err)
		}
	}
}

// fuzzTemplate is a small valid log, kept in memory: the fuzz target writes it
// out, damages one segment file and reopens it.
type fuzzTemplate struct {
	log   *crashLog
	files map[string][]byte
	batch []byte // one more batch to append after recovery
}

var fuzzTemplateOnce struct {
	sync.Mutex
	t *fuzzTemplate
}

func fuzzConfig() Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 2 << 10
	cfg.IndexIntervalBytes = 100
	cfg.Fsync = FsyncNever
	return cfg
}

// fuzzGetTemplate builds the template once per process, deterministically (a
// fixed seed), so that every fuzz worker damages the same files and a crasher
// replays.
func fuzzGetTemplate(tb testing.TB) *fuzzTemplate {
	fuzzTemplateOnce.Lock()
	defer fuzzTemplateOnce.Unlock()
	if fuzzTemplateOnce.t != nil {
		return fuzzTemplateOnce.t
	}
	dir, err := os.MkdirTemp("", "weir-fuzz-template-")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(dir)
	c := crashBuild(tb, filepath.Join(dir, "log"), fuzzConfig(), crashRand(20251121), 12, 3, 3)
	ft := &fuzzTemplate{log: c, files: map[string][]byte{}}
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		if ft.files[e.Name()], err = os.ReadFile(filepath.Join(c.dir, e.Name())); err != nil {
			tb.Fatal(err)
		}
	}
	ts := int64(1_900_000_000_000)
	if ft.batch, err = NewCodecs(0).EncodeBatch(nil, crashRecords(crashRand(7), &ts), BatchOptions{Compression: CompressionLZ4}); err != nil {
		tb.Fatal(err)
	}
	c.dir = "" // gone with the temp dir
	fuzzTemplateOnce.t = ft
	return ft
}

func FuzzOpenDamagedSegment(f *testing.F) {
	ft := fuzzGetTemplate(f)
	c := ft.log
	last := uint8(len(c.bases) - 1)
	b := c.batches[c.firstBatchOf(int(last))+1] // second batch of the last segment
	hdr := func(field int) uint16 { return uint16(b.pos) + uint16(field) }
	f.Add(last, hdr(posBaseOffset+7), []byte{0x01}, false)       // base offset
	f.Add(last, hdr(posBatchLength+2), []byte{0x7f}, false)      // length
	f.Add(last, hdr(posBatchLength), []byte{0xff, 0xff}, false)  // negative length
	f.Add(last, hdr(posLeaderEpoch+3), []byte{0x09}, false)      // epoch up
	f.Add(last, hdr(posLeaderEpoch), []byte{0x80}, false)        // epoch negative
	f.Add(last, hdr(posMagic), []byte{0x01}, false)              // magic
	f.Add(last, hdr(posCRC), []byte{0, 0, 0, 0}, false)          // crc
	f.Add(last, hdr(posRecordCount+3), []byte{0x00}, false)      // record count
	f.Add(last, hdr(30), []byte{}, true)                         // torn header
	f.Add(last, uint16(b.end()-3), []byte{}, true)               // torn body
	f.Add(last, uint16(b.pos), make([]byte, 400), true)          // zeroed tail
	f.Add(last, uint16(c.sizes[last]), make([]byte, 100), false) // zeros past the end
	f.Add(last, uint16(c.sizes[last]), []byte{}, true)           // untouched
	f.Add(uint8(0), uint16(c.batches[2].pos+posBaseOffset+7), []byte{0x55}, false)
	f.Add(uint8(1), uint16(c.batches[c.firstBatchOf(1)].end()), []byte{}, true) // middle segment cut at a boundary
	f.Add(uint8(1), uint16(5), []byte("garbage garbage garbage"), false)

	f.Fuzz(func(t *testing.T, seg uint8, off uint16, data []byte, truncate bool) {
		fuzzOpenDamaged(t, ft, int(seg)%len(c.bases), int64(off), data, truncate)
	})
}

func fuzzOpenDamaged(t *testing.T, ft *fuzzTemplate, seg int, off int64, data []byte, truncate bool) {
	c := ft.log
	dir := t.TempDir()
	for name, content := range ft.files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	name := segmentName(c.bases[seg]) + logSuffix
	orig := ft.files[name]
	off = min(off, int64(len(orig)))
	file := bytes.Clone(orig)
	if truncate {
		file = file[:off]
	}
	if end := off + int64(len(data)); end > int64(len(file)) {
		file = append(file, make([]byte, end-int64(len(file)))...)
	}
	copy(file[off:], data)
	if err := os.WriteFile(filepath.Join(dir, name), file, 0o644); err != nil {
		t.Fatal(err)
	}
	d := crashDamage{seg: seg, newSize: int64(len(file)), first: int64(min(len(file), len(orig)))}
	for i := range d.first {
		if file[i] != orig[i] {
			d.first = i
			break
		}
	}
	kept, inSeg, _ := c.crashKept(d)
	// Damage shows in the segment itself, or, when it was cut at a batch
	// boundary, in the next segment, which no longer follows it.
	detected := inSeg || (seg < len(c.bases)-1 && kept < len(c.batches))
	rp := int64(0)
	if off%2 == 1 { // from the damaged segment on
		rp = c.bases[seg]
	}

	l, err := Open(dir, fuzzConfig(), Options{RecoveryPoint: rp})
	if err != nil {
		t.Fatalf("open after damage: %v", err)
	}
	defer func() { l.Delete() }()
	want := c.batches[:kept]
	crashVerify(t, l, want, nil)
	if rep := l.Recovery(); (rep.Reason != "") != detected {
		t.Fatalf("report %+v after damage from byte %d of segment %d (%d of %d batches kept)", rep, d.first, c.bases[seg], kept, len(c.batches))
	}
	// The log takes appends at its end, and they survive a full recovery.
	leo := l.LogEndOffset()
	batch := bytes.Clone(ft.batch)
	res, err := l.AppendAsLeader(context.Background(), batch, max(l.LatestEpoch(), 0))
	if err != nil || res.BaseOffset != leo {
		t.Fatalf("append after recovery: %+v, %v; want it at %d", res, err, leo)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, fuzzConfig(), Options{RecoveryPoint: leo}) // validate the segment appended to
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if rep := l.Recovery(); rep.Reason != "" {
		t.Fatalf("reopen after repair cut again: %+v", rep)
	}
	crashVerify(t, l, append(want[:len(want):len(want)], crashBatch{raw: batch}), nil)
}
