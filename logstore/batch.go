package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Byte positions of the fields of a record batch v2 header (big-endian).
const (
	posBaseOffset      = 0
	posBatchLength     = 8
	posLeaderEpoch     = 12
	posMagic           = 16
	posCRC             = 17
	posAttributes      = 21
	posLastOffsetDelta = 23
	posBaseTimestamp   = 27
	posMaxTimestamp    = 35
	posProducerID      = 43
	posProducerEpoch   = 51
	posBaseSequence    = 53
	posRecordCount     = 57

	// BatchHeaderSize is the size of a record batch v2 header.
	BatchHeaderSize = 61
	// batchLogOverhead is the part of the header not counted by batchLength.
	batchLogOverhead = 12

	magicV2 = 2

	attrCompressionMask = 0x07
	attrLogAppendTime   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

// crcTable is read-only after init: the Castagnoli table (hardware accelerated).
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Record is one decoded record. A nil Key or Value is Kafka's null.
type Record struct {
	Offset    int64
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Batch is one record batch v2 exactly as stored: header and (maybe compressed) records.
type Batch []byte

// Errors of batch validation. ErrCorruptBatch wraps every structural problem.
var (
	ErrCorruptBatch = errors.New("corrupt record batch")
	ErrEmptyBatch   = errors.New("record batch holds no records")
)

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptBatch, fmt.Sprintf(format, args...))
}

// BaseOffset is the offset of the batch's first record.
func (b Batch) BaseOffset() int64 { return int64(binary.BigEndian.Uint64(b[posBaseOffset:])) }

// Size is the batch's total size in bytes as declared by its length field.
func (b Batch) Size() int {
	return int(int32(binary.BigEndian.Uint32(b[posBatchLength:]))) + batchLogOverhead
}

// LeaderEpoch is the partition leader epoch stamped when the batch was appended.
func (b Batch) LeaderEpoch() int32 { return int32(binary.BigEndian.Uint32(b[posLeaderEpoch:])) }

// Magic is the format version (2).
func (b Batch) Magic() int8 { return int8(b[posMagic]) }

// CRC is the stored CRC-32C of attributes..end.
func (b Batch) CRC() uint32 { return binary.BigEndian.Uint32(b[posCRC:]) }

// Attributes are the batch attribute bits.
func (b Batch) Attributes() int16 { return int16(binary.BigEndian.Uint16(b[posAttributes:])) }

// Compression is the batch's codec.
func (b Batch) Compression() Compression { return Compression(b.Attributes() & attrCompressionMask) }

// LogAppendTime reports whether timestamps were set by the broker.
func (b Batch) LogAppendTime() bool { return b.Attributes()&attrLogAppendTime != 0 }

// LastOffsetDelta is the offset of the last record relative to the base.
func (b Batch) LastOffsetDelta() int32 { return int32(binary.BigEndian.Uint32(b[posLastOffsetDelta:])) }

// LastOffset is the offset of the batch's last record.
func (b Batch) LastOffset() int64 { return b.BaseOffset() + int64(b.LastOffsetDelta()) }

// NextOffset is the offset that follows the batch.
func (b Batch) NextOffset() int64 { return b.LastOffset() + 1 }

// BaseTimestamp is the first record's timestamp.
func (b Batch) BaseTimestamp() int64 { return int64(binary.BigEndian.Uint64(b[posBaseTimestamp:])) }

// MaxTimestamp is the largest record timestamp (the append time with LogAppendTime).
func (b Batch) MaxTimestamp() int64 { return int64(binary.BigEndian.Uint64(b[posMaxTimestamp:])) }

// RecordCount is the number of records in the batch.
func (b Batch) RecordCount() int32 { return int32(binary.BigEndian.Uint32(b[posRecordCount:])) }

func (b Batch) computeCRC() uint32 { return crc32.Checksum(b[posAttributes:], crcTable) }

func (b Batch) setBaseOffset(o int64)   { binary.BigEndian.PutUint64(b[posBaseOffset:], uint64(o)) }
func (b Batch) setLeaderEpoch(e int32)  { binary.BigEndian.PutUint32(b[posLeaderEpoch:], uint32(e)) }
func (b Batch) setCRC()                 { binary.BigEndian.PutUint32(b[posCRC:], b.computeCRC()) }
func (b Batch) setAttributes(a int16)   { binary.BigEndian.PutUint16(b[posAttributes:], uint16(a)) }
func (b Batch) setMaxTimestamp(t int64) { binary.BigEndian.PutUint64(b[posMaxTimestamp:], uint64(t)) }

// Validate checks the header's structure and the CRC. It does not decode records.
func (b Batch) Validate() error {
	if len(b) < BatchHeaderSize {
		return corruptf("%d bytes is shorter than a batch header", len(b))
	}
	if n := b.Size(); n != len(b) {
		return corruptf("length field says %d bytes, have %d", n, len(b))
	}
	if m := b.Magic(); m != magicV2 {
		return corruptf("magic %d, want 2", m)
	}
	if d := b.LastOffsetDelta(); d < 0 {
		return corruptf("negative last offset delta %d", d)
	}
	if n := b.RecordCount(); n < 0 || int64(n) > int64(b.LastOffsetDelta())+1 {
		return corruptf("record count %d does not fit last offset delta %d", n, b.LastOffsetDelta())
	}
	if c := b.Compression(); c > CompressionZstd {
		return corruptf("unknown compression codec %d", c)
	}
	if want, got := b.CRC(), b.computeCRC(); want != got {
		return corruptf("crc mismatch: stored %08x, computed %08x", want, got)
	}
	return nil
}

// NextBatch splits the first whole batch off buf. ok is false when buf does not
// hold a whole batch (a partial tail); err is set when the header is impossible.
// It checks the framing only; call Validate for the CRC.
func NextBatch(buf []byte) (b Batch, rest []byte, ok bool, err error) {
	if len(buf) < BatchHeaderSize {
		return nil, buf, false, nil
	}
	size := int64(int32(binary.BigEndian.Uint32(buf[posBatchLength:]))) + batchLogOverhead
	if size < BatchHeaderSize {
		return nil, buf, false, corruptf("batch length %d is below the header size", size-batchLogOverhead)
	}
	if size > int64(len(buf)) {
		return nil, buf, false, nil
	}
	return Batch(buf[:size]), buf[size:], true, nil
}

// Batches iterates over whole batches in buf (as returned by Log.Read).
func Batches(buf []byte, fn func(Batch) error) error {
	for {
		b, rest, ok, err := NextBatch(buf)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := fn(b); err != nil {
			return err
		}
		buf = rest
	}
}

// BatchOptions say how EncodeBatch builds a batch.
type BatchOptions struct {
	Compression Compression
	// LogAppendTime marks the timestamps as broker time (message.timestamp.type=LogAppendTime).
	LogAppendTime bool
	// BaseOffset is written as the batch's base offset (a leader append overwrites it).
	BaseOffset int64
	// LeaderEpoch is stamped into the header (a leader append overwrites it).
	LeaderEpoch int32
}

// EncodeBatch appends to dst one record batch v2 holding records, with offset
// deltas 0..n-1 and the records' timestamps. Record offsets are ignored.
func (c *Codecs) EncodeBatch(dst []byte, records []Record, opts BatchOptions) ([]byte, error) {
	if len(records) == 0 {
		return dst, ErrEmptyBatch
	}
	if len(records) > 1<<31-1 {
		return dst, fmt.Errorf("%d records do not fit one batch", len(records))
	}
	baseTS := records[0].Timestamp
	maxTS := baseTS
	est := 0
	for i := range records {
		if t := records[i].Timestamp; t > maxTS {
			maxTS = t
		}
		est += 24 + len(records[i].Key) + len(records[i].Value)
		for _, h := range records[i].Headers {
			est += 10 + len(h.Key) + len(h.Value)
		}
	}
	start := len(dst)
	if opts.Compression == CompressionNone && cap(dst)-len(dst) < BatchHeaderSize+est {
		grown := make([]byte, len(dst), len(dst)+BatchHeaderSize+est)
		copy(grown, dst)
		dst = grown
	}
	dst = append(dst, make([]byte, BatchHeaderSize)...)

	var body []byte
	if opts.Compression == CompressionNone {
		body = dst
	} else {
		body = c.bodyBuffer(est)
	}
	for i := range records {
		body = appendRecord(body, &records[i], int32(i), records[i].Timestamp-baseTS)
	}
	if opts.Compression == CompressionNone {
		dst = body
	} else {
		var err error
		dst, err = c.Compress(dst, body, opts.Compression)
		c.putBodyBuffer(body)
		if err != nil {
			return dst[:start], err
		}
	}
	b := Batch(dst[start:])
	if len(b) > 1<<31-1 {
		return dst[:start], fmt.Errorf("batch of %d bytes exceeds the format's limit", len(b))
	}
	writeBatchHeader(b, opts, int32(len(records)), baseTS, maxTS)
	return dst, nil
}

// writeBatchHeader fills in the header of b, whose records follow it, and its CRC.
func writeBatchHeader(b Batch, opts BatchOptions, n int32, baseTS, maxTS int64) {
	attrs := int16(opts.Compression) & attrCompressionMask
	if opts.LogAppendTime {
		attrs |= attrLogAppendTime
	}
	binary.BigEndian.PutUint64(b[posBaseOffset:], uint64(opts.BaseOffset))
	binary.BigEndian.PutUint32(b[posBatchLength:], uint32(len(b)-batchLogOverhead))
	binary.BigEndian.PutUint32(b[posLeaderEpoch:], uint32(opts.LeaderEpoch))
	b[posMagic] = magicV2
	binary.BigEndian.PutUint16(b[posAttributes:], uint16(attrs))
	binary.BigEndian.PutUint32(b[posLastOffsetDelta:], uint32(n-1))
	binary.BigEndian.PutUint64(b[posBaseTimestamp:], uint64(baseTS))
	binary.BigEndian.PutUint64(b[posMaxTimestamp:], uint64(maxTS))
	binary.BigEndian.PutUint64(b[posProducerID:], ^uint64(0)) // -1: no idempotent producer
	binary.BigEndian.PutUint16(b[posProducerEpoch:], ^uint16(0))
	binary.BigEndian.PutUint32(b[posBaseSequence:], ^uint32(0))
	binary.BigEndian.PutUint32(b[posRecordCount:], uint32(n))
	b.setCRC()
}

// appendRecord encodes one record with the given deltas (kmsg does the layout).
func appendRecord(dst []byte, r *Record, offsetDelta int32, tsDelta int64) []byte {
	kr := kmsg.Record{TimestampDelta64: tsDelta, OffsetDelta: offsetDelta, Key: r.Key, Value: r.Value}
	if len(r.Headers) > 0 {
		kr.Headers = make([]kmsg.Header, len(r.Headers))
		for j, h := range r.Headers {
			kr.Headers[j] = kmsg.Header{Key: h.Key, Value: h.Value}
		}
	}
	kr.Length = int32(recordBodySize(&kr))
	return kr.AppendTo(dst)
}

// recordBodySize is the encoded size of r after its length varint.
func recordBodySize(r *kmsg.Record) int {
	n := 1 + varlongSize(r.TimestampDelta64) + varlongSize(int64(r.OffsetDelta))
	n += bytesSize(r.Key) + bytesSize(r.Value)
	n += varlongSize(int64(len(r.Headers)))
	for _, h := range r.Headers {
		n += varlongSize(int64(len(h.Key))) + len(h.Key) + bytesSize(h.Value)
	}
	return n
}

func bytesSize(b []byte) int {
	if b == nil {
		return 1 // varint(-1)
	}
	return varlongSize(int64(len(b))) + len(b)
}

// varlongSize is the size of v as a zig-zag varint.
func varlongSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// Records decodes the batch's records (validating the CRC first). Keys, values
// and header values alias the batch (or its decompressed copy).
func (c *Codecs) Records(b Batch) ([]Record, error) {
	var out []Record
	err := c.EachRecord(b, func(r Record) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// EachRecord validates the batch and calls fn for each record in order.
func (c *Codecs) EachRecord(b Batch, fn func(Record) error) error {
	if err := b.Validate(); err != nil {
		return err
	}
	body := []byte(b[BatchHeaderSize:])
	if codec := b.Compression(); codec != CompressionNone {
		var err error
		if body, err = c.Decompress(body, codec); err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptBatch, err) // keeps ErrDecompressedTooLarge visible
		}
	}
	base, baseTS, count := b.BaseOffset(), b.BaseTimestamp(), b.RecordCount()
	logAppend, maxTS := b.LogAppendTime(), b.MaxTimestamp()
	lastDelta := b.LastOffsetDelta()
	prevDelta := int32(-1)
	var kr kmsg.Record
	for i := int32(0); i < count; i++ {
		length, n := binary.Varint(body)
		if n <= 0 || length < 0 || length > int64(len(body)-n) {
			return corruptf("record %d: bad length", i)
		}
		if err := kr.ReadFrom(body[:n+int(length)]); err != nil {
			return corruptf("record %d: %v", i, err)
		}
		if recordBodySize(&kr) != int(length) {
			return corruptf("record %d: length %d does not match its fields", i, length)
		}
		body = body[n+int(length):]
		if kr.OffsetDelta <= prevDelta || kr.OffsetDelta > lastDelta {
			return corruptf("record %d: offset delta %d out of order", i, kr.OffsetDelta)
		}
		prevDelta = kr.OffsetDelta
		r := Record{
			Offset:    base + int64(kr.OffsetDelta),
			Timestamp: baseTS + kr.TimestampDelta64,
			Key:       kr.Key,
			Value:     kr.Value,
		}
		if logAppend {
			r.Timestamp = maxTS
		}
		if len(kr.Headers) > 0 {
			r.Headers = make([]Header, len(kr.Headers))
			for j, h := range kr.Headers {
				r.Headers[j] = Header{Key: h.Key, Value: h.Value}
			}
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if len(body) != 0 {
		return corruptf("%d trailing bytes after %d records", len(body), count)
	}
	return nil
}
