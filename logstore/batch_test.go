package logstore

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var utAllCodecs = []Compression{CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd}

// utCastagnoli is the test's own CRC-32C table, independent of the package's.
var utCastagnoli = crc32.MakeTable(crc32.Castagnoli)

// utRecordCases are record sets that exercise every nullable field.
func utRecordCases() map[string][]Record {
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB, compressible
	return map[string][]Record{
		"single": {{Timestamp: 1_700_000_000_000, Key: []byte("k"), Value: []byte("v")}},
		"null key vs empty key": {
			{Timestamp: 5, Key: nil, Value: []byte("null key")},
			{Timestamp: 6, Key: []byte{}, Value: []byte("empty key")},
		},
		"tombstone and empty value": {
			{Timestamp: 7, Key: []byte("gone"), Value: nil},
			{Timestamp: 8, Key: []byte("empty"), Value: []byte{}},
			{Timestamp: 9, Key: nil, Value: nil},
		},
		"headers": {
			{Timestamp: 10, Key: []byte("h"), Value: []byte("x"), Headers: []Header{
				{Key: "a", Value: []byte("1")},
				{Key: "null", Value: nil},
				{Key: "empty", Value: []byte{}},
				{Key: "", Value: []byte("empty key")},
				{Key: "a", Value: []byte("duplicate keys keep their order")},
			}},
			{Timestamp: 11, Value: []byte("no headers")},
		},
		"timestamps non monotonic": {
			{Timestamp: 1_000_000, Value: []byte("a")},
			{Timestamp: 999_000, Value: []byte("earlier")},
			{Timestamp: 5_000_000_000_000, Value: []byte("far later")},
			{Timestamp: -1, Value: []byte("negative (no timestamp)")},
			{Timestamp: 1_000_001, Value: []byte("b")},
		},
		"large value": {
			{Timestamp: 42, Key: []byte("big"), Value: big},
			{Timestamp: 43, Key: []byte("big2"), Value: big[:1000]},
		},
	}
}

func utMaxTS(recs []Record) int64 {
	m := recs[0].Timestamp
	for _, r := range recs {
		m = max(m, r.Timestamp)
	}
	return m
}

// utSameBytes compares two nullable byte slices, nil being distinct from empty.
func utSameBytes(a, b []byte) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	return bytes.Equal(a, b)
}

func utCheckRecords(t *testing.T, got, want []Record, base int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("decoded %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != base+int64(i) {
			t.Errorf("record %d: offset %d, want %d", i, g.Offset, base+int64(i))
		}
		if g.Timestamp != w.Timestamp {
			t.Errorf("record %d: timestamp %d, want %d", i, g.Timestamp, w.Timestamp)
		}
		if !utSameBytes(g.Key, w.Key) {
			t.Errorf("record %d: key %q (nil=%v), want %q (nil=%v)", i, g.Key, g.Key == nil, w.Key, w.Key == nil)
		}
		if !utSameBytes(g.Value, w.Value) {
			t.Errorf("record %d: value of %d bytes (nil=%v), want %d (nil=%v)", i, len(g.Value), g.Value == nil, len(w.Value), w.Value == nil)
		}
		if len(g.Headers) != len(w.Headers) {
			t.Errorf("record %d: %d headers, want %d", i, len(g.Headers), len(w.Headers))
			continue
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !utSameBytes(g.Headers[j].Value, w.Headers[j].Value) {
				t.Errorf("record %d header %d: %q=%q (nil=%v), want %q=%q (nil=%v)", i, j,
					g.Headers[j].Key, g.Headers[j].Value, g.Headers[j].Value == nil,
					w.Headers[j].Key, w.Headers[j].Value, w.Headers[j].Value == nil)
			}
		}
	}
}

// utDecompress inflates with the upstream libraries directly, not through Codecs.
func utDecompress(t *testing.T, codec Compression, src []byte) []byte {
	t.Helper()
	var out []byte
	var err error
	switch codec {
	case CompressionNone:
		return src
	case CompressionGzip:
		var r *stdgzip.Reader
		if r, err = stdgzip.NewReader(bytes.NewReader(src)); err == nil {
			out, err = io.ReadAll(r)
		}
	case CompressionSnappy:
		out, err = s2.Decode(nil, src)
	case CompressionLZ4:
		out, err = io.ReadAll(lz4.NewReader(bytes.NewReader(src)))
	case CompressionZstd:
		var d *zstd.Decoder
		if d, err = zstd.NewReader(nil); err == nil {
			out, err = d.DecodeAll(src, nil)
			d.Close()
		}
	}
	if err != nil {
		t.Fatalf("independent %v decompression: %v", codec, err)
	}
	return out
}

// utCompress compresses with the upstream libraries directly, not through Codecs.
func utCompress(t *testing.T, codec Compression, src []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch codec {
	case CompressionNone:
		return append([]byte(nil), src...)
	case CompressionGzip:
		w := stdgzip.NewWriter(&buf)
		_, _ = w.Write(src)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case CompressionSnappy:
		return s2.EncodeSnappy(nil, src)
	case CompressionLZ4:
		w := lz4.NewWriter(&buf)
		_, _ = w.Write(src)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case CompressionZstd:
		e, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		return e.EncodeAll(src, nil)
	}
	return buf.Bytes()
}

// utKmsgRecords encodes records with kmsg (lengths measured, not computed by
// the package) into the uncompressed records section of a batch.
func utKmsgRecords(recs []Record) []byte {
	var out []byte
	for i, r := range recs {
		kr := kmsg.Record{
			TimestampDelta64: r.Timestamp - recs[0].Timestamp,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		probe := kr.AppendTo(nil) // Length 0 is a one-byte varint
		kr.Length = int32(len(probe) - 1)
		out = kr.AppendTo(out)
	}
	return out
}

// utKmsgBatch builds a whole batch v2 with kmsg and the upstream compressors.
func utKmsgBatch(t *testing.T, recs []Record, codec Compression, base int64, epoch int32, attrs int16) []byte {
	t.Helper()
	payload := utCompress(t, codec, utKmsgRecords(recs))
	rb := kmsg.RecordBatch{
		FirstOffset:          base,
		Length:               int32(49 + len(payload)),
		PartitionLeaderEpoch: epoch,
		Magic:                2,
		Attributes:           attrs | int16(codec),
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       recs[0].Timestamp,
		MaxTimestamp:         utMaxTS(recs),
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(recs)),
		Records:              payload,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], utCastagnoli))
	return b
}

// utKmsgParseRecords parses an uncompressed records section with kmsg.
func utKmsgParseRecords(t *testing.T, body []byte, n int) []kmsg.Record {
	t.Helper()
	var out []kmsg.Record
	for i := 0; i < n; i++ {
		l, vn := binary.Varint(body)
		if vn <= 0 || l < 0 || int(l) > len(body)-vn {
			t.Fatalf("record %d: bad length varint", i)
		}
		var kr kmsg.Record
		if err := kr.ReadFrom(body[:vn+int(l)]); err != nil {
			t.Fatalf("record %d: kmsg: %v", i, err)
		}
		if int64(kr.Length) != l {
			t.Fatalf("record %d: kmsg length %d, varint %d", i, kr.Length, l)
		}
		// The length must cover exactly the fields kmsg read.
		if again := kr.AppendTo(nil); !bytes.Equal(again, body[:vn+int(l)]) {
			t.Fatalf("record %d: kmsg re-encoding differs: the length does not match the fields", i)
		}
		out = append(out, kr)
		body = body[vn+int(l):]
	}
	if len(body) != 0 {
		t.Fatalf("%d bytes after %d records", len(body), n)
	}
	return out
}

func TestBatchEncodeRoundTripAllCodecs(t *testing.T) {
	c := NewCodecs(0)
	for name, recs := range utRecordCases() {
		for _, codec := range utAllCodecs {
			t.Run(fmt.Sprintf("%s/%v", name, codec), func(t *testing.T) {
				prefix := []byte("prefix that must stay")
				out, err := c.EncodeBatch(append([]byte(nil), prefix...), recs, BatchOptions{Compression: codec, BaseOffset: 1234, LeaderEpoch: 17})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out[:len(prefix)], prefix) {
					t.Fatal("EncodeBatch overwrote dst's existing bytes")
				}
				b := Batch(out[len(prefix):])
				if err := b.Validate(); err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if b.BaseOffset() != 1234 || b.LeaderEpoch() != 17 || b.Compression() != codec ||
					b.RecordCount() != int32(len(recs)) || b.LastOffsetDelta() != int32(len(recs)-1) ||
					b.BaseTimestamp() != recs[0].Timestamp || b.MaxTimestamp() != utMaxTS(recs) || b.LogAppendTime() {
					t.Fatalf("header: base %d epoch %d codec %v count %d delta %d baseTS %d maxTS %d lat %v",
						b.BaseOffset(), b.LeaderEpoch(), b.Compression(), b.RecordCount(), b.LastOffsetDelta(),
						b.BaseTimestamp(), b.MaxTimestamp(), b.LogAppendTime())
				}
				if b.NextOffset() != 1234+int64(len(recs)) {
					t.Fatalf("NextOffset %d", b.NextOffset())
				}
				got, err := c.Records(b)
				if err != nil {
					t.Fatalf("Records: %v", err)
				}
				utCheckRecords(t, got, recs, 1234)

				// Cross-check every field with kmsg and the upstream decompressors.
				var rb kmsg.RecordBatch
				if err := rb.ReadFrom(b); err != nil {
					t.Fatalf("kmsg RecordBatch.ReadFrom: %v", err)
				}
				if rb.FirstOffset != 1234 || rb.PartitionLeaderEpoch != 17 || rb.Magic != 2 ||
					int(rb.Length) != len(b)-12 || rb.Attributes != int16(codec) ||
					rb.LastOffsetDelta != int32(len(recs)-1) || rb.FirstTimestamp != recs[0].Timestamp ||
					rb.MaxTimestamp != utMaxTS(recs) || rb.ProducerID != -1 || rb.ProducerEpoch != -1 ||
					rb.FirstSequence != -1 || rb.NumRecords != int32(len(recs)) {
					t.Fatalf("kmsg sees %+v", rb)
				}
				if uint32(rb.CRC) != crc32.Checksum(b[21:], utCastagnoli) {
					t.Fatalf("stored CRC %08x is not CRC-32C of attributes..end", uint32(rb.CRC))
				}
				krs := utKmsgParseRecords(t, utDecompress(t, codec, rb.Records), len(recs))
				for i, kr := range krs {
					w := recs[i]
					if kr.OffsetDelta != int32(i) || kr.TimestampDelta64 != w.Timestamp-recs[0].Timestamp || kr.Attributes != 0 ||
						!utSameBytes(kr.Key, w.Key) || !utSameBytes(kr.Value, w.Value) || len(kr.Headers) != len(w.Headers) {
						t.Fatalf("kmsg record %d: delta %d tsdelta %d key %q value len %d headers %d",
							i, kr.OffsetDelta, kr.TimestampDelta64, kr.Key, len(kr.Value), len(kr.Headers))
					}
					for j, h := range kr.Headers {
						if h.Key != w.Headers[j].Key || !utSameBytes(h.Value, w.Headers[j].Value) {
							t.Fatalf("kmsg record %d header %d: %q=%q", i, j, h.Key, h.Value)
						}
					}
				}
			})
		}
	}
}

// Batches produced by an independent encoder (kmsg + upstream compressors)
// decode to the same records.
func TestBatchDecodesIndependentEncoding(t *testing.T) {
	c := NewCodecs(0)
	for name, recs := range utRecordCases() {
		for _, codec := range utAllCodecs {
			t.Run(fmt.Sprintf("%s/%v", name, codec), func(t *testing.T) {
				b := Batch(utKmsgBatch(t, recs, codec, 77, 3, 0))
				if err := b.Validate(); err != nil {
					t.Fatal(err)
				}
				got, err := c.Records(b)
				if err != nil {
					t.Fatal(err)
				}
				utCheckRecords(t, got, recs, 77)
			})
		}
	}
}

func TestBatchLogAppendTimeDecodesMaxTimestamp(t *testing.T) {
	c := NewCodecs(0)
	recs := []Record{{Timestamp: 1, Value: []byte("a")}, {Timestamp: 50, Value: []byte("b")}, {Timestamp: 3, Value: []byte("c")}}
	out, err := c.EncodeBatch(nil, recs, BatchOptions{LogAppendTime: true})
	if err != nil {
		t.Fatal(err)
	}
	b := Batch(out)
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if rb.Attributes&0x08 == 0 || !b.LogAppendTime() {
		t.Fatalf("attributes %#x lack the log append time bit", rb.Attributes)
	}
	got, err := c.Records(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if r.Timestamp != 50 {
			t.Fatalf("record %d timestamp %d, want the max timestamp 50", r.Offset, r.Timestamp)
		}
	}
}

func TestBatchEncodeEmpty(t *testing.T) {
	dst := []byte("keep")
	out, err := NewCodecs(0).EncodeBatch(dst, nil, BatchOptions{})
	if !errors.Is(err, ErrEmptyBatch) {
		t.Fatalf("err %v, want ErrEmptyBatch", err)
	}
	if string(out) != "keep" {
		t.Fatalf("dst changed to %q", out)
	}
}

// utXerial frames body the way the Java client's xerial snappy does, one
// independently compressed chunk per piece.
func utXerial(pieces ...[]byte) []byte {
	out := []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}
	out = binary.BigEndian.AppendUint32(out, 1) // version
	out = binary.BigEndian.AppendUint32(out, 1) // compatible version
	for _, p := range pieces {
		block := s2.EncodeSnappy(nil, p)
		out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
		out = append(out, block...)
	}
	return out
}

// utRebody replaces a batch's records section (keeping the header), setting
// the codec and fixing the length and CRC.
func utRebody(header []byte, codec Compression, body []byte) Batch {
	b := append(append([]byte(nil), header[:BatchHeaderSize]...), body...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	attrs := binary.BigEndian.Uint16(b[21:])&^7 | uint16(codec)
	binary.BigEndian.PutUint16(b[21:], attrs)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], utCastagnoli))
	return b
}

func TestBatchSnappyXerialFraming(t *testing.T) {
	c := NewCodecs(0)
	recs := utRecordCases()["headers"]
	recs = append(recs, utRecordCases()["large value"]...)
	for i := range recs {
		recs[i].Timestamp = 100 + int64(i)
	}
	plain := utKmsgBatch(t, recs, CompressionNone, 10, 1, 0)
	body := plain[BatchHeaderSize:]

	cuts := [][]int{
		{},  // one chunk
		{1}, // chunk boundary inside the first record's length
		{len(body) / 3, len(body) / 2, len(body) - 1},
		{0, len(body) / 2}, // an empty chunk
	}
	for _, cut := range cuts {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			var pieces [][]byte
			prev := 0
			for _, p := range cut {
				pieces = append(pieces, body[prev:p])
				prev = p
			}
			pieces = append(pieces, body[prev:])
			b := utRebody(plain, CompressionSnappy, utXerial(pieces...))
			if err := b.Validate(); err != nil {
				t.Fatal(err)
			}
			got, err := c.Records(b)
			if err != nil {
				t.Fatalf("Records: %v", err)
			}
			utCheckRecords(t, got, recs, 10)
		})
	}

	t.Run("damaged", func(t *testing.T) {
		good := utXerial(body[:100], body[100:])
		cases := map[string][]byte{
			"short header":        good[:12],
			"truncated length":    good[:16+2],
			"chunk beyond input":  good[:len(good)-1],
			"garbage chunk":       append(append([]byte(nil), good[:16]...), 0, 0, 0, 3, 0xff, 0xff, 0xff),
			"chunks miss a piece": utXerial(body[:100]),
		}
		for name, payload := range cases {
			b := utRebody(plain, CompressionSnappy, payload)
			if _, err := c.Records(b); !errors.Is(err, ErrCorruptBatch) {
				t.Errorf("%s: err %v, want ErrCorruptBatch", name, err)
			}
		}
	})
}

func TestBatchValidate(t *testing.T) {
	c := NewCodecs(0)
	recs := []Record{{Timestamp: 1, Key: []byte("a"), Value: []byte("b")}, {Timestamp: 2, Value: []byte("c")}}
	good, err := c.EncodeBatch(nil, recs, BatchOptions{Compression: CompressionNone, BaseOffset: 5, LeaderEpoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	clone := func() []byte { return append([]byte(nil), good...) }
	resum := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], utCastagnoli))
		return b
	}
	cases := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"good", clone(), true},
		{"base offset and epoch are outside the crc", func() []byte {
			b := clone()
			binary.BigEndian.PutUint64(b[0:], 999)
			binary.BigEndian.PutUint32(b[12:], 77)
			return b
		}(), true},
		{"bad crc in a record", func() []byte { b := clone(); b[len(b)-1] ^= 0x40; return b }(), false},
		{"bad crc in attributes", func() []byte { b := clone(); b[22] ^= 0x08; return b }(), false},
		{"bad crc field", func() []byte { b := clone(); b[17] ^= 1; return b }(), false},
		{"magic 1", func() []byte { b := clone(); b[16] = 1; return b }(), false},
		{"magic 3", func() []byte { b := clone(); b[16] = 3; return b }(), false},
		{"empty", nil, false},
		{"short buffer", clone()[:BatchHeaderSize-1], false},
		{"truncated body", clone()[:len(good)-1], false},
		{"trailing byte", append(clone(), 0), false},
		{"length field too small", func() []byte {
			b := clone()
			binary.BigEndian.PutUint32(b[8:], uint32(len(b)-13))
			return b
		}(), false},
		{"length field too large", func() []byte {
			b := clone()
			binary.BigEndian.PutUint32(b[8:], uint32(len(b)-11))
			return b
		}(), false},
		{"negative length", func() []byte { b := clone(); binary.BigEndian.PutUint32(b[8:], 0xffffffff); return b }(), false},
		{"negative last offset delta", func() []byte {
			b := clone()
			binary.BigEndian.PutUint32(b[23:], 0xffffffff)
			return resum(b)
		}(), false},
		{"more records than offsets", func() []byte {
			b := clone()
			binary.BigEndian.PutUint32(b[57:], 3)
			return resum(b)
		}(), false},
		{"negative record count", func() []byte {
			b := clone()
			binary.BigEndian.PutUint32(b[57:], 0x80000000)
			return resum(b)
		}(), false},
		{"unknown codec 5", func() []byte {
			b := clone()
			binary.BigEndian.PutUint16(b[21:], 5)
			return resum(b)
		}(), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Batch(tc.b).Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrCorruptBatch) {
				t.Fatalf("Validate = %v, want ErrCorruptBatch", err)
			}
			if !tc.ok {
				if _, err := c.Records(Batch(tc.b)); !errors.Is(err, ErrCorruptBatch) {
					t.Fatalf("Records = %v, want ErrCorruptBatch", err)
				}
			}
		})
	}
}

// A batch whose header and CRC are fine but whose records section is not.
func TestBatchCorruptRecords(t *testing.T) {
	c := NewCodecs(0)
	recs := []Record{{Timestamp: 1, Value: []byte("a")}, {Timestamp: 2, Value: []byte("b")}, {Timestamp: 3, Value: []byte("c")}}
	plain := utKmsgBatch(t, recs, CompressionNone, 0, 0, 0)
	body := plain[BatchHeaderSize:]
	// The three records encode to the same size.
	// Offset deltas 1, 0, 2, encoded by hand.
	var outOfOrder []byte
	for i, d := range []int32{1, 0, 2} {
		kr := kmsg.Record{OffsetDelta: d, Value: recs[i].Value}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		outOfOrder = kr.AppendTo(outOfOrder)
	}
	var tooFar []byte
	for i, d := range []int32{0, 1, 7} {
		kr := kmsg.Record{OffsetDelta: d, Value: recs[i].Value}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		tooFar = kr.AppendTo(tooFar)
	}
	cases := map[string][]byte{
		"fewer records than the count": body[:len(body)/3*2],
		"trailing bytes":               append(append([]byte(nil), body...), 0),
		"truncated record":             body[:len(body)-2],
		"offset deltas out of order":   outOfOrder,
		"offset delta past the last":   tooFar,
		"record length past the end":   append([]byte{0x7e}, body[1:]...),
		"gzip garbage":                 nil, // set below
	}
	for name, rb := range cases {
		codec := CompressionNone
		if name == "gzip garbage" {
			codec, rb = CompressionGzip, []byte("definitely not gzip")
		}
		b := utRebody(plain, codec, rb)
		if err := b.Validate(); err != nil {
			t.Fatalf("%s: the header should validate: %v", name, err)
		}
		if _, err := c.Records(b); !errors.Is(err, ErrCorruptBatch) {
			t.Errorf("%s: Records = %v, want ErrCorruptBatch", name, err)
		}
	}
}

func TestBatchNextBatchPartialTails(t *testing.T) {
	c := NewCodecs(0)
	var buf []byte
	var ends []int
	for i := 0; i < 4; i++ {
		recs := make([]Record, i+1)
		for j := range recs {
			recs[j] = Record{Timestamp: int64(j), Value: bytes.Repeat([]byte{byte(i)}, 10*i+j)}
		}
		var err error
		if buf, err = c.EncodeBatch(buf, recs, BatchOptions{BaseOffset: int64(10 * i), Compression: utAllCodecs[i%len(utAllCodecs)]}); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, len(buf))
	}
	for cut := 0; cut <= len(buf); cut++ {
		part := buf[:cut]
		var got []int64
		if err := Batches(part, func(b Batch) error {
			if err := b.Validate(); err != nil {
				return err
			}
			got = append(got, b.BaseOffset())
			return nil
		}); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		want := 0
		for _, e := range ends {
			if e <= cut {
				want++
			}
		}
		if len(got) != want {
			t.Fatalf("cut %d: %d whole batches, want %d", cut, len(got), want)
		}
		for i, o := range got {
			if o != int64(10*i) {
				t.Fatalf("cut %d: batch %d at %d", cut, i, o)
			}
		}
		// NextBatch on the tail after the whole batches reports a partial one.
		tail := part
		if want > 0 {
			tail = part[ends[want-1]:]
		}
		b, rest, ok, err := NextBatch(tail)
		if ok || err != nil || b != nil || len(rest) != len(tail) {
			t.Fatalf("cut %d: NextBatch on a %d-byte tail = ok %v err %v", cut, len(tail), ok, err)
		}
	}

	b, rest, ok, err := NextBatch(buf)
	if !ok || err != nil || len(b) != ends[0] || len(rest) != len(buf)-ends[0] {
		t.Fatalf("NextBatch on whole data: ok %v err %v len %d", ok, err, len(b))
	}

	// An impossible length is an error, not a partial tail.
	bad := append([]byte(nil), buf[:ends[0]]...)
	binary.BigEndian.PutUint32(bad[8:], 10)
	if _, _, ok, err := NextBatch(bad); ok || !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("length 10: ok %v err %v", ok, err)
	}
	if err := Batches(bad, func(Batch) error { return nil }); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("Batches over a bad length: %v", err)
	}
	binary.BigEndian.PutUint32(bad[8:], 0x80000000)
	if _, _, ok, err := NextBatch(bad); ok || !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("negative length: ok %v err %v", ok, err)
	}
	// Batches stops at the first error fn returns.
	stop := errors.New("stop")
	n := 0
	if err := Batches(buf, func(Batch) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("Batches: err %v after %d calls", err, n)
	}
}

func TestBatchDecompressionBomb(t *testing.T) {
	const limit = 64 << 10
	big := NewCodecs(0)
	small := NewCodecs(limit)
	// 1 MiB of zeros in one record: compresses to almost nothing.
	recs := []Record{{Timestamp: 1, Value: make([]byte, 1<<20)}}
	for _, codec := range utAllCodecs[1:] {
		t.Run(codec.String(), func(t *testing.T) {
			out, err := big.EncodeBatch(nil, recs, BatchOptions{Compression: codec})
			if err != nil {
				t.Fatal(err)
			}
			b := Batch(out)
			if len(b) > limit {
				t.Fatalf("the bomb is %d bytes, not much of a bomb", len(b))
			}
			if _, err := big.Records(b); err != nil {
				t.Fatalf("default limit: %v", err)
			}
			if _, err := small.Decompress(b[BatchHeaderSize:], codec); !errors.Is(err, ErrDecompressedTooLarge) {
				t.Fatalf("Decompress = %v, want ErrDecompressedTooLarge", err)
			}
			_, err = small.Records(b)
			if !errors.Is(err, ErrDecompressedTooLarge) || !errors.Is(err, ErrCorruptBatch) {
				t.Fatalf("Records = %v, want ErrDecompressedTooLarge (and ErrCorruptBatch)", err)
			}
		})
	}
	t.Run("snappy xerial", func(t *testing.T) {
		chunk := make([]byte, limit/2+1) // every chunk fits, together they do not
		payload := utXerial(chunk, chunk)
		if _, err := small.Decompress(payload, CompressionSnappy); !errors.Is(err, ErrDecompressedTooLarge) {
			t.Fatalf("Decompress = %v, want ErrDecompressedTooLarge", err)
		}
		if out, err := small.Decompress(utXerial(chunk), CompressionSnappy); err != nil || len(out) != len(chunk) {
			t.Fatalf("one chunk: %d bytes, %v", len(out), err)
		}
	})
	// Exactly at the limit is allowed; one byte more is not.
	for _, codec := range utAllCodecs[1:] {
		t.Run("boundary/"+codec.String(), func(t *testing.T) {
			src := bytes.Repeat([]byte("abc"), 5000)
			comp, err := big.Compress(nil, src, codec)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := NewCodecs(len(src)).Decompress(comp, codec); err != nil || !bytes.Equal(out, src) {
				t.Fatalf("limit == size: %d bytes, %v", len(out), err)
			}
			if _, err := NewCodecs(len(src)-1).Decompress(comp, codec); !errors.Is(err, ErrDecompressedTooLarge) {
				t.Fatalf("limit == size-1: %v, want ErrDecompressedTooLarge", err)
			}
		})
	}
}

// Every codec works with any positive limit, including tiny ones.
func TestBatchCodecsSmallLimit(t *testing.T) {
	for _, limit := range []int{1, 100, 1023, 1024} {
		c := NewCodecs(limit)
		src := []byte("tiny")
		for _, codec := range utAllCodecs {
			comp, err := c.Compress(nil, src, codec)
			if err != nil {
				t.Errorf("limit %d %v: Compress: %v", limit, codec, err)
				continue
			}
			out, err := c.Decompress(comp, codec)
			if limit < len(src) && codec != CompressionNone {
				if !errors.Is(err, ErrDecompressedTooLarge) {
					t.Errorf("limit %d %v: Decompress = %v, want ErrDecompressedTooLarge", limit, codec, err)
				}
				continue
			}
			if err != nil || !bytes.Equal(out, src) {
				t.Errorf("limit %d %v: Decompress = %q, %v", limit, codec, out, err)
			}
		}
	}
}

func TestBatchCodecsConcurrentUse(t *testing.T) {
	c := NewCodecs(0)
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for i := 0; i < 50; i++ {
				codec := utAllCodecs[r.IntN(len(utAllCodecs))]
				recs := []Record{{Timestamp: int64(i), Key: []byte{byte(g)}, Value: bytes.Repeat([]byte{byte(i)}, r.IntN(5000))}}
				out, err := c.EncodeBatch(nil, recs, BatchOptions{Compression: codec})
				if err != nil {
					done <- err
					return
				}
				got, err := c.Records(out)
				if err != nil {
					done <- err
					return
				}
				if len(got) != 1 || !bytes.Equal(got[0].Value, recs[0].Value) || !bytes.Equal(got[0].Key, recs[0].Key) {
					done <- fmt.Errorf("goroutine %d: %v round trip mismatch", g, codec)
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestBatchCompressionNames(t *testing.T) {
	for _, c := range utAllCodecs {
		got, err := ParseCompression(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCompression(%q) = %v, %v", c.String(), got, err)
		}
	}
	if got, err := ParseCompression("uncompressed"); err != nil || got != CompressionNone {
		t.Errorf("uncompressed: %v %v", got, err)
	}
	if _, err := ParseCompression("brotli"); err == nil {
		t.Error("brotli parsed")
	}
	if s := Compression(6).String(); s != "unknown(6)" {
		t.Errorf("String of 6 = %q", s)
	}
	if _, err := NewCodecs(0).Compress(nil, []byte("x"), Compression(6)); err == nil {
		t.Error("Compress with codec 6 succeeded")
	}
	if _, err := NewCodecs(0).Decompress([]byte("x"), Compression(6)); err == nil {
		t.Error("Decompress with codec 6 succeeded")
	}
}
