package logstore

import (
	"errors"
	"fmt"
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
//
// Below the log end (and maxOffset) it returns data or an error, never
// neither: a reader whose snapshot went stale under it (a segment retired,
// a truncation) looks again at the new one (see lookAgain).
func (l *Log) ReadInto(buf []byte, offset int64, maxBytes int, maxOffset int64) (ReadResult, error) {
	var looks relook
	for {
		leo, start := l.leo.Load(), l.logStart.Load()
		res := ReadResult{NextOffset: offset, LogStartOffset: start, LogEndOffset: leo}
		if offset < start || offset > leo {
			return res, &OutOfRangeError{Offset: offset, LogStartOffset: start, LogEndOffset: leo}
		}
		if offset == leo || offset >= maxOffset {
			return res, nil
		}
		snap := l.segs.Load()
		data, stale, err := readSegments(*snap, buf, offset, maxBytes, maxOffset)
		if stale {
			err = fmt.Errorf("read offset %d below the log end %d: %w", offset, leo, err)
			if err = l.lookAgain(&looks, snap, leo, err); err == nil {
				continue
			}
		}
		if err != nil || len(data) == 0 {
			return res, err
		}
		res.Data = data
		var last Batch
		_ = Batches(data, func(b Batch) error { last = b; return nil })
		res.NextOffset = last.NextOffset()
		return res, nil
	}
}

// errNoBatch: no segment of a snapshot holds an offset below the log end.
var errNoBatch = errors.New("no batch holds it")

// readSegments reads from the segment of segs holding offset. It returns no
// data and no error when the batch holding offset is at or above maxOffset;
// stale (with the reason in err) when segs cannot answer: a segment is gone
// or was cut under the read, or none holds offset.
func readSegments(segs []*segment, buf []byte, offset int64, maxBytes int, maxOffset int64) (data []byte, stale bool, err error) {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
	for i = max(i, 0); i < len(segs); i++ {
		s := segs[i]
		f, err := s.pin()
		if err != nil {
			return nil, errors.Is(err, errSegmentGone), err
		}
		data, held, err := s.read(f, buf, offset, maxBytes, maxOffset)
		f.release()
		if len(data) > 0 && Batch(data).BaseOffset() > offset {
			// Offsets are contiguous: a first batch past offset means s was
			// cut under us, and the rest of segs is being truncated away.
			return nil, true, errNoBatch
		}
		if err != nil || held {
			return data, errors.Is(err, errCutUnderRead), err
		}
		// Nothing at or after offset in s (offset is at its end): the next segment.
	}
	return nil, true, errNoBatch
}

// relook counts a reader's looks at a log that changed under it.
type relook struct {
	looks  int
	waited bool // for the writer's change in progress
}

// maxLooks bounds the looks of one read: each follows a change of the log,
// so more mean a log changing faster than it can be read, or a fault.
const maxLooks = 64

// lookAgain decides what a reader does whose snapshot (snap, and the log end
// leo it read before it) could not answer, for reason err. If the log changed
// since, it looks again at once (nil). If not, a change may be under way that
// has not published its new segment list yet (a compaction's swap, a restart
// of the log at an offset: the writer holds l.mu across it): it waits for
// the writer once, then looks again. Otherwise the log cannot be read there:
// the error says why (offline, closed, or err).
func (l *Log) lookAgain(r *relook, snap *[]*segment, leo int64, err error) error {
	if r.looks++; r.looks > maxLooks {
		return err
	}
	if l.segs.Load() != snap || l.leo.Load() != leo {
		return nil
	}
	closed := false
	if !r.waited {
		r.waited = true
		l.mu.Lock()
		closed = l.closed
		l.mu.Unlock()
		if !closed {
			return nil
		}
	}
	if off := l.Offline(); off != nil {
		return fmt.Errorf("%w (%w)", err, off)
	}
	if closed {
		return ErrClosed
	}
	return err
}

// OffsetForTimestamp returns the first offset whose record timestamp is >= ts,
// and that record's timestamp; found is false when every record is older.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error) {
	var looks relook
	for {
		leo, start := l.leo.Load(), l.logStart.Load()
		snap := l.segs.Load()
		offset, timestamp, found, err = l.offsetForTimestampFrom(*snap, ts, start)
		if !errors.Is(err, errSegmentGone) {
			return offset, timestamp, found, err
		}
		// A segment left the log under us: skipping it would answer a later offset.
		err = fmt.Errorf("offset for timestamp %d: %w", ts, err)
		if err = l.lookAgain(&looks, snap, leo, err); err != nil {
			return -1, -1, false, err
		}
	}
}

func (l *Log) offsetForTimestampFrom(segs []*segment, ts, start int64) (int64, int64, bool, error) {
	for _, s := range segs {
		if s.maxTS.Load() < ts {
			continue
		}
		f, err := s.pin()
		if err != nil {
			return -1, -1, false, err
		}
		offset, timestamp, found, err := l.offsetForTimestampIn(s, f, ts, start)
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
