package logstore

import "fmt"

// BatchBuilder encodes records into one uncompressed record batch v2 as they
// come, so a writer holds each record's bytes once, in the batch, instead of
// a list of decoded records first (a produce of many small records).
// The zero value is ready to use; Reset reuses its memory for the next batch.
type BatchBuilder struct {
	buf           []byte // header space, then the records
	n             int32
	baseTS, maxTS int64
}

// Reset empties the builder, keeping its memory.
func (b *BatchBuilder) Reset() {
	b.buf, b.n = b.buf[:0], 0
}

// Add appends one record (its Offset is ignored: records get deltas 0..n-1).
func (b *BatchBuilder) Add(r *Record) {
	if b.n == 0 {
		if cap(b.buf) < BatchHeaderSize {
			b.buf = make([]byte, 0, 512)
		}
		b.buf = append(b.buf[:0], make([]byte, BatchHeaderSize)...)
		b.baseTS, b.maxTS = r.Timestamp, r.Timestamp
	}
	b.maxTS = max(b.maxTS, r.Timestamp)
	b.buf = appendRecord(b.buf, r, b.n, r.Timestamp-b.baseTS)
	b.n++
}

// Len is the number of records added.
func (b *BatchBuilder) Len() int { return int(b.n) }

// Size is the batch's size so far, header included.
func (b *BatchBuilder) Size() int { return len(b.buf) }

// Cap is the memory the builder holds.
func (b *BatchBuilder) Cap() int { return cap(b.buf) }

// Finish writes the header and returns the batch, which shares the builder's
// memory until the next Reset or Add. Compression is not supported here.
func (b *BatchBuilder) Finish(opts BatchOptions) (Batch, error) {
	switch {
	case b.n == 0:
		return nil, ErrEmptyBatch
	case opts.Compression != CompressionNone:
		return nil, fmt.Errorf("batch builder: compression %d is not supported", opts.Compression)
	case len(b.buf) > 1<<31-1:
		return nil, fmt.Errorf("batch of %d bytes exceeds the format's limit", len(b.buf))
	}
	batch := Batch(b.buf)
	writeBatchHeader(batch, opts, b.n, b.baseTS, b.maxTS)
	return batch, nil
}
