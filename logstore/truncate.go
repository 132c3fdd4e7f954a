package logstore

import (
	"errors"
	"fmt"
	"sort"
)

// Cutting a log: truncation (follower divergence), retention and the log
// start offset, and retiring the segments they drop.

// Truncate removes every batch at or after offset (a follower cutting a
// divergent tail). A batch holding offset is removed whole, so the new log
// end may be below offset; it is returned.
func (l *Log) Truncate(offset int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return 0, err
	}
	if offset >= l.leo.Load() {
		return l.leo.Load(), nil
	}
	offset = max(offset, l.logStart.Load())
	segs := *l.segs.Load()
	keep := sort.Search(len(segs), func(i int) bool { return segs[i].base >= offset })
	if keep == 0 {
		keep = 1 // the first segment stays, emptied
	}
	last := segs[keep-1]
	f, err := last.pin()
	if err != nil {
		return 0, fmt.Errorf("truncate: %w", err)
	}
	defer f.release()
	pos, hdr, err := last.findBatch(f, offset, last.size.Load())
	if err != nil {
		return 0, fmt.Errorf("truncate: %w", err)
	}
	newEnd := last.next.Load()
	cut := pos >= 0
	if cut {
		newEnd = hdr.BaseOffset()
		if err := l.cutSegment(last, f, pos); err != nil {
			return 0, l.failedCutLocked(newEnd, err)
		}
	}
	if keep == 1 && pos == 0 {
		newEnd = max(last.base, l.logStart.Load())
	}
	kept := append([]*segment(nil), segs[:keep]...)
	if start := l.logStart.Load(); newEnd < start || (last.size.Load() == 0 && last.base < start) {
		// Nothing at or above the log start is left (the batch holding it went
		// whole). Start afresh with an empty segment at the log start, as Kafka's
		// truncateFullyAndStartAt does: the end must not fall below the start,
		// and a reopened log must find the same end in the segment files.
		s, err := createSegment(l.ops, l.dir, start, l.now().UnixMilli())
		if err != nil {
			if cut {
				return 0, l.failedCutLocked(newEnd, err)
			}
			return 0, err // nothing changed yet
		}
		kept, keep, newEnd = []*segment{s}, 0, start
		l.dirDirty = true
	}
	l.segs.Store(&kept)
	retired := l.retireLocked(segs[keep:])
	l.unsynced = filterSegments(l.unsynced, kept)
	l.truncGen++
	l.leo.Store(newEnd)
	if l.durable.Load() > newEnd {
		l.durable.Store(newEnd)
	}
	if retired != nil {
		return newEnd, retired
	}
	if l.epochs.truncateFromEnd(newEnd) {
		if err := l.flushEpochsAfterCutLocked(); err != nil {
			return newEnd, err
		}
	}
	return newEnd, nil
}

// failedCutLocked ends a truncation that failed after it had cut a
// segment's file: the log's memory no longer describes its files, so the log
// goes offline (a restart's recovery judges the files). Its end comes down
// to the cut, so that nothing reads or counts what the file no longer holds.
func (l *Log) failedCutLocked(newEnd int64, err error) error {
	if l.leo.Load() > newEnd {
		l.leo.Store(newEnd)
	}
	if l.durable.Load() > newEnd {
		l.durable.Store(newEnd)
	}
	l.truncGen++
	return l.goOffline(fmt.Errorf("truncate: %w", err))
}

// retireLocked retires segments taken out of the list and drops the log's
// reference to each. A failed rename takes the log offline (see retire).
func (l *Log) retireLocked(segs []*segment) error {
	var errs []error
	for _, s := range segs {
		if err := s.retire(); err != nil {
			errs = append(errs, err)
		}
		s.release()
	}
	if len(errs) > 0 {
		return l.goOffline(errors.Join(errs...))
	}
	return nil
}

func filterSegments(list, alive []*segment) []*segment {
	var out []*segment
	for _, s := range list {
		for _, a := range alive {
			if s == a {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// cutSegment truncates a segment's file at pos and rebuilds its in-memory
// state and index files. Any error leaves the file and the memory apart (the
// size is cut first, for readers): the caller takes the log offline.
func (l *Log) cutSegment(s *segment, f *segFiles, pos int64) error {
	s.size.Store(pos) // readers stop here first
	err := l.ops.fs.Truncate(f.log, pos)
	// Not fsynced: the files must stay open until a flush (see clean). Set
	// after the cut, so that an fsync that saw it -1 came after the cut.
	s.synced.Store(-1)
	if err != nil {
		return fmt.Errorf("truncate segment %s: %w", segmentName(s.base), err)
	}
	offs, times := s.offsets.Load(), s.times.Load()
	no := &chunkedList[offsetEntry]{}
	for i := 0; i < offs.len() && int64(offs.at(i).pos) < pos; i++ {
		no.push(offs.at(i))
	}
	nt := &chunkedList[timeEntry]{}
	lastRel := int64(-1)
	if no.len() > 0 {
		lastRel = int64(no.at(no.len() - 1).rel)
	}
	for i := 0; i < times.len() && int64(times.at(i).rel) <= lastRel; i++ {
		nt.push(times.at(i))
	}
	s.offsets.Store(no)
	s.times.Store(nt)
	if n := no.len(); n > 0 { // a damaged entry that slipped through: rebuild the index from the data
		e := no.at(n - 1)
		var hdr [BatchHeaderSize]byte
		if _, err := f.log.ReadAt(hdr[:], int64(e.pos)); err != nil || !s.indexedBatchOK(hdr[:], int64(e.pos), s.base+int64(e.rel), pos) {
			s.reindex(f, l.cfg.Load(), nil)
		}
	}
	if err := s.rebuildIndexFiles(f); err != nil {
		return err
	}
	return s.loadTail(f)
}

// loadTail recomputes next offset, largest timestamp and the writer state by
// walking the headers after the last index entry.
func (s *segment) loadTail(f *segFiles) error {
	size := s.size.Load()
	offs := s.offsets.Load()
	var pos int64
	maxTS := int64(noTimestamp)
	var hdr [BatchHeaderSize]byte
	if n := offs.len(); n > 0 {
		e := offs.at(n - 1)
		pos = int64(e.pos)
		// The walk starts at the last index entry: it must point at the batch
		// it names. If a damaged entry slipped through, drop the (derived)
		// index and walk the whole segment instead.
		if _, err := f.log.ReadAt(hdr[:], pos); err != nil || !s.indexedBatchOK(hdr[:], pos, s.base+int64(e.rel), size) {
			s.offsets.Store(&chunkedList[offsetEntry]{})
			s.times.Store(&chunkedList[timeEntry]{})
			if err := s.rebuildIndexFiles(f); err != nil {
				return err
			}
			pos = 0
		}
	}
	if times := s.times.Load(); times.len() > 0 {
		maxTS = times.at(times.len() - 1).ts
	}
	next := s.base
	first := true
	s.firstTS = noTimestamp
	if pos > 0 { // the first batch sets segment.ms
		if _, err := f.log.ReadAt(hdr[:], 0); err == nil {
			s.firstTS = Batch(hdr[:]).MaxTimestamp()
		}
	}
	tailStart := pos
	for pos+BatchHeaderSize <= size {
		if _, err := f.log.ReadAt(hdr[:], pos); err != nil {
			return fmt.Errorf("read segment %s: %w", segmentName(s.base), err)
		}
		b := Batch(hdr[:])
		n := int64(b.Size())
		if n < BatchHeaderSize || pos+n > size {
			return corruptf("segment %s position %d: bad batch length", segmentName(s.base), pos)
		}
		if first && tailStart == 0 {
			s.firstTS = b.MaxTimestamp()
		}
		first = false
		maxTS = max(maxTS, b.MaxTimestamp())
		next = b.NextOffset()
		pos += n
	}
	if pos != size {
		return corruptf("segment %s: %d stray bytes at the end", segmentName(s.base), size-pos)
	}
	s.next.Store(next)
	s.maxTS.Store(maxTS)
	s.bytesSinceIndex = size - tailStart
	return nil
}

// TruncateFullyAndStartAt empties the log and restarts it at offset (a
// follower that fell behind its leader's log start): every segment goes, one
// empty segment at offset remains, and the epoch cache is cleared.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("restart the log at %d: negative offset", offset)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	old := *l.segs.Load()
	// The files open now stay open until the new list is out, so readers of
	// the old one read on (the budget may not close them while their names
	// change). Closed ones stay closed (opening them all could run out of
	// descriptors): a reader that needs one waits for the new list (see
	// lookAgain), where its offset is out of range.
	var pinned []*segFiles
	for _, s := range old {
		if f := s.tryPin(); f != nil {
			pinned = append(pinned, f)
		}
	}
	defer func() {
		for _, f := range pinned {
			f.release()
		}
	}()
	var errs []error
	for _, s := range old {
		if err := s.retire(); err != nil { // frees the names first: the new segment may reuse a base offset
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return l.goOffline(errors.Join(errs...))
	}
	// From here on the old files are gone from their names while the list
	// still holds them: a failure takes the log offline.
	s, err := createSegment(l.ops, l.dir, offset, l.now().UnixMilli())
	if err != nil {
		return l.goOffline(fmt.Errorf("restart the log at %d: %w", offset, err))
	}
	segs := []*segment{s}
	l.segs.Store(&segs)
	for _, o := range old {
		o.release()
	}
	l.unsynced, l.dirDirty = nil, true
	l.truncGen++
	l.leo.Store(offset)
	l.logStart.Store(offset)
	l.durable.Store(offset)
	l.epochs.reset(nil)
	return l.flushEpochsAfterCutLocked()
}

// DeleteRecordsBefore moves the log start offset up to offset (at most the log
// end) and drops the segments wholly below it.
func (l *Log) DeleteRecordsBefore(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if offset > l.leo.Load() {
		return &OutOfRangeError{Offset: offset, LogStartOffset: l.logStart.Load(), LogEndOffset: l.leo.Load()}
	}
	if offset <= l.logStart.Load() {
		return nil
	}
	return l.advanceStartLocked(offset)
}

// advanceStartLocked sets the log start to offset and deletes segments wholly below it.
func (l *Log) advanceStartLocked(offset int64) error {
	l.logStart.Store(offset)
	segs := *l.segs.Load()
	drop := 0
	for drop < len(segs)-1 && segs[drop+1].base <= offset {
		drop++
	}
	if drop > 0 {
		kept := append([]*segment(nil), segs[drop:]...)
		l.segs.Store(&kept)
		l.unsynced = filterSegments(l.unsynced, kept)
		if err := l.retireLocked(segs[:drop]); err != nil {
			return err
		}
	}
	if l.epochs.truncateFromStart(offset) {
		if err := l.epochs.flush(); err != nil {
			if isFault(err) {
				return l.goOffline(err)
			}
			// The file keeps entries below the new start: recovery places
			// every batch at or above it in the same epoch either way, and
			// the next write of the checkpoint replaces the file.
			l.logger.Warn("leader epoch checkpoint not rewritten after the log start moved; it keeps older entries until the next write",
				"dir", l.dir, "log_start_offset", offset, "err", err)
		}
	}
	return nil
}

// ApplyRetention deletes whole segments, oldest first, that retention.ms or
// retention.bytes no longer keep. A segment is deleted only if every offset in
// it is below committed (the high watermark) and it is not the active one.
// It returns how many segments went.
func (l *Log) ApplyRetention(committed int64) (int, error) {
	cfg := l.cfg.Load()
	if !cfg.Delete() || (cfg.RetentionMs < 0 && cfg.RetentionBytes < 0) {
		return 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return 0, err
	}
	segs := *l.segs.Load()
	now := l.now().UnixMilli()
	total := int64(0)
	for _, s := range segs {
		total += s.size.Load()
	}
	drop := 0
	for drop < len(segs)-1 {
		s, nextBase := segs[drop], segs[drop+1].base
		if nextBase > committed {
			break
		}
		byTime := cfg.RetentionMs >= 0 && s.maxTS.Load() != noTimestamp && now-s.maxTS.Load() > cfg.RetentionMs
		bySize := cfg.RetentionBytes >= 0 && total-s.size.Load() >= cfg.RetentionBytes
		if !byTime && !bySize {
			break
		}
		total -= s.size.Load()
		drop++
	}
	if drop == 0 {
		return 0, nil
	}
	newStart := max(l.logStart.Load(), segs[drop].base)
	l.logger.Info("retention deleted segments", "dir", l.dir, "segments", drop, "log_start_offset", newStart)
	return drop, l.advanceStartLocked(newStart)
}
