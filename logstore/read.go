package logstore

import (
	"errors"
	"io"
	"sort"
)

// Reading a log: batches from an offset, and offsets by timestamp.

// Read returns whole batches from the one holding offset on: at most maxBytes
// (the first batch always whole), only batches wholly below maxOffset (the
// caller passes its high watermark), from one segment. Reading at the log end
// or at maxOffset returns no data; below the log start or past the end is
// OutOfRangeError.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64) (ReadResult, error) {
	return l.ReadInto(nil, offset, maxBytes, maxOffset)
}

// ReadInto is Read returning the data in buf when it is big enough (cap of at
// least maxBytes, or the first batch's size if that is larger), so a reader
// that reuses its buffer reads without allocating. Data then aliases buf.
func (l *Log) ReadInto(buf []byte, offset int64, maxBytes int, maxOffset int64) (ReadResult, error) {
	for attempt := 0; ; attempt++ {
		leo, start := l.leo.Load(), l.logStart.Load()
		res := ReadResult{NextOffset: offset, LogStartOffset: start, LogEndOffset: leo}
		if offset < start || offset > leo {
			return res, &OutOfRangeError{Offset: offset, LogStartOffset: start, LogEndOffset: leo}
		}
		if offset == leo || offset >= maxOffset {
			return res, nil
		}
		segs := *l.segs.Load()
		i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
		if i < 0 {
			i = 0
		}
		for ; i < len(segs); i++ {
			s := segs[i]
			f, err := s.pin()
			if errors.Is(err, errSegmentGone) {
				break // removed under us: take a fresh snapshot
			}
			if err != nil {
				return res, err
			}
			data, err := s.read(f, buf, offset, maxBytes, maxOffset)
			f.release()
			if err != nil {
				return res, err
			}
			if len(data) > 0 {
				res.Data = data
				var last Batch
				_ = Batches(data, func(b Batch) error { last = b; return nil })
				res.NextOffset = last.NextOffset()
				return res, nil
			}
			if s.next.Load() > offset && (i == len(segs)-1 || segs[i+1].base > offset) {
				return res, nil // the batch holding offset is at or above maxOffset
			}
		}
		if i == len(segs) || attempt > 3 {
			return res, nil
		}
	}
}

// OffsetForTimestamp returns the first offset whose record timestamp is >= ts,
// and that record's timestamp; found is false when every record is older.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error) {
	start := l.logStart.Load()
	for _, s := range *l.segs.Load() {
		if s.maxTS.Load() < ts {
			continue
		}
		f, err := s.pin()
		if errors.Is(err, errSegmentGone) {
			continue
		}
		if err != nil {
			return -1, -1, false, err
		}
		offset, timestamp, found, err = l.offsetForTimestampIn(s, f, ts, start)
		f.release()
		if err != nil || found {
			return offset, timestamp, found, err
		}
	}
	return -1, -1, false, nil
}

func (l *Log) offsetForTimestampIn(s *segment, f *segFiles, ts, start int64) (int64, int64, bool, error) {
	times := s.times.Load()
	from := s.base
	// Every batch before the entry's batch is older than the entry's ts, so the
	// last entry with ts < target is a safe place to start scanning.
	if i := times.search(func(e timeEntry) bool { return e.ts < ts }); i >= 0 {
		from = s.base + int64(times.at(i).rel)
	}
	from = max(from, start)
	pos := s.position(f, from)
	sc := newScanner(f.log, pos, s.size.Load())
	for {
		b, ok := sc.next()
		if !ok {
			return -1, -1, false, sc.err
		}
		if b.MaxTimestamp() < ts || b.LastOffset() < start {
			continue
		}
		var off, t int64 = -1, -1
		err := l.codecs.EachRecord(b, func(r Record) error {
			if r.Offset >= start && r.Timestamp >= ts {
				off, t = r.Offset, r.Timestamp
				return io.EOF
			}
			return nil
		})
		if err != nil && !errors.Is(err, io.EOF) {
			return -1, -1, false, err
		}
		if off >= 0 {
			return off, t, true, nil
		}
	}
}
