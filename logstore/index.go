package logstore

import (
	"encoding/binary"
	"sync/atomic"
)

// chunkLen is the number of entries per index chunk. Entries live in fixed
// chunks so the single writer can append while readers binary-search without
// locks: a chunk never moves, and readers only look below the published count.
const chunkLen = 1024

type chunkedList[T any] struct {
	chunks atomic.Pointer[[]*[chunkLen]T]
	n      atomic.Int64
}

func (c *chunkedList[T]) len() int { return int(c.n.Load()) }

func (c *chunkedList[T]) at(i int) T { return (*c.chunks.Load())[i/chunkLen][i%chunkLen] }

// push appends v; only the segment's writer calls it.
func (c *chunkedList[T]) push(v T) {
	n := int(c.n.Load())
	var cs []*[chunkLen]T
	if p := c.chunks.Load(); p != nil {
		cs = *p
	}
	if n/chunkLen >= len(cs) {
		grown := make([]*[chunkLen]T, len(cs), len(cs)+1)
		copy(grown, cs)
		grown = append(grown, new([chunkLen]T))
		c.chunks.Store(&grown)
		cs = grown
	}
	cs[n/chunkLen][n%chunkLen] = v
	c.n.Store(int64(n + 1)) // publishes the entry to readers
}

// search returns the largest i with less(i) true, or -1; less must be monotone (true then false).
func (c *chunkedList[T]) search(less func(T) bool) int {
	lo, hi := 0, c.len() // invariant: entries < lo satisfy less, entries >= hi do not
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if less(c.at(mid)) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo - 1
}

// offsetEntry maps a batch's base offset (relative to the segment) to its file position.
type offsetEntry struct {
	rel uint32
	pos uint32
}

// timeEntry says: every record before the batch at rel has a timestamp < ts... up to ts.
// More exactly, ts is the largest timestamp of all batches written before the batch at rel.
type timeEntry struct {
	ts  int64
	rel uint32
}

const (
	offsetEntrySize = 8
	timeEntrySize   = 12
)

func encodeOffsetEntry(e offsetEntry) []byte {
	var b [offsetEntrySize]byte
	return putOffsetEntry(b[:], e)
}

// putOffsetEntry encodes e into dst (at least offsetEntrySize long) and returns those bytes.
func putOffsetEntry(dst []byte, e offsetEntry) []byte {
	binary.BigEndian.PutUint32(dst[0:], e.rel)
	binary.BigEndian.PutUint32(dst[4:], e.pos)
	return dst[:offsetEntrySize]
}

func encodeTimeEntry(e timeEntry) []byte {
	var b [timeEntrySize]byte
	return putTimeEntry(b[:], e)
}

// putTimeEntry encodes e into dst (at least timeEntrySize long) and returns those bytes.
func putTimeEntry(dst []byte, e timeEntry) []byte {
	binary.BigEndian.PutUint64(dst[0:], uint64(e.ts))
	binary.BigEndian.PutUint32(dst[8:], e.rel)
	return dst[:timeEntrySize]
}

// parseOffsetIndex decodes an .index file, returning ok=false if it is not a
// strictly increasing list of positions inside a log of logSize bytes.
func parseOffsetIndex(data []byte, logSize int64) (*chunkedList[offsetEntry], bool) {
	idx := &chunkedList[offsetEntry]{}
	if len(data)%offsetEntrySize != 0 {
		return idx, false
	}
	var prev offsetEntry
	for i := 0; i < len(data); i += offsetEntrySize {
		e := offsetEntry{rel: binary.BigEndian.Uint32(data[i:]), pos: binary.BigEndian.Uint32(data[i+4:])}
		if int64(e.pos) >= logSize || (i > 0 && (e.rel <= prev.rel || e.pos <= prev.pos)) || e.pos == 0 {
			return idx, false
		}
		idx.push(e)
		prev = e
	}
	return idx, true
}

// parseTimeIndex decodes a .timeindex file; ok=false unless timestamps and
// offsets strictly increase and every offset is one the offset index knows.
func parseTimeIndex(data []byte, offsets *chunkedList[offsetEntry]) (*chunkedList[timeEntry], bool) {
	idx := &chunkedList[timeEntry]{}
	if len(data)%timeEntrySize != 0 {
		return idx, false
	}
	var prev timeEntry
	for i := 0; i < len(data); i += timeEntrySize {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(data[i:])), rel: binary.BigEndian.Uint32(data[i+8:])}
		if i > 0 && (e.ts <= prev.ts || e.rel <= prev.rel) {
			return idx, false
		}
		j := offsets.search(func(o offsetEntry) bool { return o.rel < e.rel }) + 1
		if j >= offsets.len() || offsets.at(j).rel != e.rel {
			return idx, false
		}
		idx.push(e)
		prev = e
	}
	return idx, true
}
