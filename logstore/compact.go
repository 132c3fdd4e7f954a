package logstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
)

// CompactResult says what one compaction pass did.
type CompactResult struct {
	SegmentsCleaned int
	RecordsRemoved  int
	BytesBefore     int64
	BytesAfter      int64
}

// keyHash identifies a key in the offset map; 128 bits keep collisions out of reach
// while bounding the map's memory per key.
type keyHash [16]byte

func hashKey(k []byte) keyHash {
	h := fnv.New128a()
	_, _ = h.Write(k)
	var out keyHash
	h.Sum(out[:0])
	return out
}

// cleanableSegments returns how many leading segments compaction may rewrite:
// never the active one, never one holding an offset at or above committed.
func cleanableSegments(segs []*segment, committed int64) int {
	n := 0
	for n < len(segs)-1 && segs[n+1].base <= committed {
		n++
	}
	return n
}

// NeedsCompaction reports whether Compact has work: the log is compacted and
// it has cleanable segments not cleaned since they were written, or cleaned
// segments whose tombstones may have expired. It takes no lock: a pass in
// progress never holds it up.
func (l *Log) NeedsCompaction(committed int64) bool {
	if !l.cfg.Load().Compact() {
		return false
	}
	segs := *l.segs.Load()
	n := cleanableSegments(segs, committed)
	if n == 0 {
		return false
	}
	if segs[n].base > l.cleanedTo.Load() {
		return true
	}
	deadline := l.tombstoneDeadline.Load()
	return deadline != 0 && l.now().UnixMilli() >= deadline
}

// Compact keeps only the last record per key in the cleanable segments (all but
// the active one, and only offsets below committed). Tombstones (null values)
// stay until their segment is delete.retention.ms old. Offsets never change:
// batches keep their offset range, and a batch left with no record becomes an
// empty batch (consecutive ones merged), so the log stays contiguous. Appends
// and reads go on meanwhile; each rewritten segment replaces the old one by an
// atomic rename.
func (l *Log) Compact(ctx context.Context, committed int64) (CompactResult, error) {
	var res CompactResult
	cfg := l.cfg.Load()
	if !cfg.Compact() {
		return res, nil
	}
	l.compactMu.Lock()
	defer l.compactMu.Unlock()

	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return res, err
	}
	segs := append([]*segment(nil), *l.segs.Load()...)
	n := cleanableSegments(segs, committed)
	gen := l.truncGen
	for _, s := range segs[:n] {
		s.acquire()
	}
	l.mu.Unlock()
	defer func() {
		for _, s := range segs[:n] {
			s.release()
		}
	}()
	if n == 0 {
		return res, nil
	}

	// Pass 1: the latest offset of every key in the cleanable range.
	latest := map[keyHash]int64{}
	for _, s := range segs[:n] {
		if err := l.eachRecordIn(ctx, s, func(_ Batch, r Record) {
			if r.Key != nil {
				latest[hashKey(r.Key)] = r.Offset
			}
		}); err != nil {
			return res, quietIfGone(err)
		}
	}

	// Pass 2: rewrite each segment, swapping it in as soon as it is done.
	now := l.now().UnixMilli()
	deadline := int64(0)
	for _, s := range segs[:n] {
		dropTombstones := s.maxTS.Load() != noTimestamp && now-s.maxTS.Load() > cfg.DeleteRetentionMs
		cleaned, removed, keptTombstones, err := l.cleanSegment(ctx, s, latest, dropTombstones)
		if err != nil {
			return res, l.goOfflineOnFault(quietIfGone(err))
		}
		if keptTombstones {
			d := s.maxTS.Load() + cfg.DeleteRetentionMs + 1
			if deadline == 0 || d < deadline {
				deadline = d
			}
		}
		res.BytesBefore += s.size.Load()
		if cleaned == nil { // nothing to remove: leave the segment as it is
			res.BytesAfter += s.size.Load()
			continue
		}
		res.BytesAfter += cleaned.size.Load()
		ok, err := l.swapSegment(s, cleaned, gen)
		if err != nil || !ok {
			return res, err
		}
		res.SegmentsCleaned++
		res.RecordsRemoved += removed
	}
	l.cleanedTo.Store(segs[n].base)
	l.tombstoneDeadline.Store(deadline)
	if res.SegmentsCleaned > 0 {
		l.logger.Info("compacted log", "dir", l.dir, "segments", res.SegmentsCleaned, "records_removed", res.RecordsRemoved,
			"bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter)
	}
	return res, nil
}

// quietIfGone drops the error of a segment retired under compaction (a
// truncation or retention got there first): the pass just ends, as when
// swapSegment finds the log changed.
func quietIfGone(err error) error {
	if errors.Is(err, errSegmentGone) {
		return nil
	}
	return err
}

// eachRecordIn calls fn for every record of every batch in s.
func (l *Log) eachRecordIn(ctx context.Context, s *segment, fn func(Batch, Record)) error {
	f, err := s.pin()
	if err != nil {
		return fmt.Errorf("compaction: %w", err)
	}
	defer f.release()
	sc := newScanner(f.log, 0, s.size.Load())
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("compaction: %w", err)
		}
		b, ok := sc.next()
		if !ok {
			if sc.err != nil {
				return fmt.Errorf("compaction: read segment %s: %w", segmentName(s.base), sc.err)
			}
			return nil
		}
		if err := l.codecs.EachRecord(b, func(r Record) error { fn(b, r); return nil }); err != nil {
			return fmt.Errorf("compaction: segment %s: %w", segmentName(s.base), err)
		}
	}
}

// cleanSegment writes the retained records of s to <base>.log.cleaned. It
// returns nil when nothing would be removed.
func (l *Log) cleanSegment(ctx context.Context, s *segment, latest map[keyHash]int64, dropTombstones bool) (*segment, int, bool, error) {
	keep := func(r Record) bool {
		if r.Key == nil {
			return true // keyless records cannot be superseded
		}
		if latest[hashKey(r.Key)] != r.Offset {
			return false
		}
		return r.Value != nil || !dropTombstones
	}
	// Dry pass: is there anything to remove at all?
	removed, keptTombstones := 0, false
	if err := l.eachRecordIn(ctx, s, func(_ Batch, r Record) {
		if !keep(r) {
			removed++
		} else if r.Value == nil && r.Key != nil {
			keptTombstones = true
		}
	}); err != nil {
		return nil, 0, false, err
	}
	if removed == 0 {
		return nil, 0, keptTombstones, nil
	}

	src, err := s.pin()
	if err != nil {
		return nil, 0, false, fmt.Errorf("compaction: %w", err)
	}
	defer src.release()
	cleaned, err := createCleanedSegment(s)
	if err != nil {
		return nil, 0, false, err
	}
	fail := func(err error) (*segment, int, bool, error) {
		cleaned.closeFiles()
		cleaned.removeCleanedFiles()
		return nil, 0, false, err
	}
	interval := l.cfg.Load().IndexIntervalBytes
	// A failed write of the copy is not a fault of the log: fail drops the copy.
	write := func(b Batch) error { return unfault(cleaned.appendBatch(b, interval)) }
	var pending Batch // an empty batch still growing over removed batches
	flushPending := func() error {
		if pending == nil {
			return nil
		}
		pending.setCRC()
		err := write(pending)
		pending = nil
		return err
	}
	sc := newScanner(src.log, 0, s.size.Load())
	for {
		b, ok := sc.next()
		if !ok {
			if sc.err != nil {
				return fail(fmt.Errorf("compaction: read segment %s: %w", segmentName(s.base), sc.err))
			}
			break
		}
		var kept []Record
		all := true
		if err := l.codecs.EachRecord(b, func(r Record) error {
			if keep(r) {
				kept = append(kept, r)
			} else {
				all = false
			}
			return nil
		}); err != nil {
			return fail(fmt.Errorf("compaction: segment %s: %w", segmentName(s.base), err))
		}
		switch {
		case len(kept) == 0:
			if pending != nil && pending.LeaderEpoch() == b.LeaderEpoch() && b.LastOffset()-pending.BaseOffset() <= 1<<31-1 {
				extendEmptyBatch(pending, b)
				continue
			}
			if err := flushPending(); err != nil {
				return fail(err)
			}
			pending = emptyBatchLike(b)
			continue
		case all:
			if err := flushPending(); err != nil {
				return fail(err)
			}
			if err := write(b); err != nil {
				return fail(err)
			}
		default:
			if err := flushPending(); err != nil {
				return fail(err)
			}
			nb, err := l.codecs.rebuildBatch(b, kept)
			if err != nil {
				return fail(err)
			}
			if err := write(nb); err != nil {
				return fail(err)
			}
		}
	}
	if err := flushPending(); err != nil {
		return fail(err)
	}
	if err := cleaned.syncAll(); err != nil {
		// Only the cleaned copy is lost, but the log's disk failed an
		// fsync: it is taken as failing for the log too (see ErrLogOffline).
		return fail(fault(fmt.Errorf("compaction: %w", err)))
	}
	return cleaned, removed, keptTombstones, nil
}

// createCleanedSegment opens the three .cleaned files that compaction fills
// for s. They stay open (counted as unsynced) until swapSegment renames them
// to the names a reopen would use.
func createCleanedSegment(s *segment) (*segment, error) {
	c := newSegment(s.ops, s.base, s.path, s.opened)
	c.synced.Store(-1)
	c.tempNames.Store(true)
	f := &segFiles{ops: s.ops}
	var err error
	for _, dst := range []struct {
		file **os.File
		suf  string
	}{{&f.log, logSuffix}, {&f.oidx, indexSuffix}, {&f.tidx, timeIndexSuffix}} {
		if *dst.file, err = s.ops.fs.OpenFile(s.path+dst.suf+cleanedSuffix, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
			f.closeAll()
			c.removeCleanedFiles()
			return nil, fmt.Errorf("compaction: %w", err)
		}
	}
	c.install(f)
	return c, nil
}

func (s *segment) removeCleanedFiles() {
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		s.ops.remove(s.path+suf+cleanedSuffix, "a compaction's output")
	}
}

// emptyBatchLike is a record-less batch spanning b's offsets, epoch and timestamps.
func emptyBatchLike(b Batch) Batch {
	e := append(Batch(nil), b[:BatchHeaderSize]...)
	e[posBatchLength], e[posBatchLength+1], e[posBatchLength+2], e[posBatchLength+3] = 0, 0, 0, BatchHeaderSize-batchLogOverhead
	e.setAttributes(b.Attributes() &^ attrCompressionMask)
	putInt32(e[posRecordCount:], 0)
	return e
}

// EmptyBatchFrom returns the part of the empty batch b from offset on, as an
// empty batch of its own (b's epoch and timestamps). Compaction merges
// consecutive emptied batches, so one replica's merged batch may span where
// another's log ends: that replica continues from its end with this part.
func EmptyBatchFrom(b Batch, offset int64) (Batch, error) {
	switch {
	case b.RecordCount() != 0:
		return nil, fmt.Errorf("batch [%d, %d] holds %d records: only an empty batch can be cut", b.BaseOffset(), b.LastOffset(), b.RecordCount())
	case offset <= b.BaseOffset() || offset > b.LastOffset():
		return nil, fmt.Errorf("offset %d is not inside batch [%d, %d]", offset, b.BaseOffset(), b.LastOffset())
	}
	e := emptyBatchLike(b)
	e.setBaseOffset(offset)
	putInt32(e[posLastOffsetDelta:], int32(b.LastOffset()-offset))
	e.setCRC()
	return e, nil
}

// extendEmptyBatch widens an empty batch to also cover b's offsets.
func extendEmptyBatch(e, b Batch) {
	putInt32(e[posLastOffsetDelta:], int32(b.LastOffset()-e.BaseOffset()))
	if b.MaxTimestamp() > e.MaxTimestamp() {
		e.setMaxTimestamp(b.MaxTimestamp())
	}
}

func putInt32(b []byte, v int32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// rebuildBatch re-encodes orig with only kept records, keeping its base offset,
// offset range, epoch, timestamps and codec.
func (c *Codecs) rebuildBatch(orig Batch, kept []Record) (Batch, error) {
	base, baseTS := orig.BaseOffset(), orig.BaseTimestamp()
	var body []byte
	for i := range kept {
		body = appendRecord(body, &kept[i], int32(kept[i].Offset-base), kept[i].Timestamp-baseTS)
	}
	buf, err := c.appendBody(append([]byte(nil), orig[:BatchHeaderSize]...), body, orig.Compression())
	if err != nil {
		return nil, err
	}
	out := Batch(buf)
	putInt32(out[posBatchLength:], int32(len(out)-batchLogOverhead))
	putInt32(out[posRecordCount:], int32(len(kept)))
	out.setCRC()
	return out, nil
}

// appendBody appends the record body, compressed with codec, to a batch header.
func (c *Codecs) appendBody(dst, body []byte, codec Compression) ([]byte, error) {
	if codec == CompressionNone {
		return append(dst, body...), nil
	}
	return c.Compress(dst, body, codec)
}

// swapSegment replaces old by cleaned in the directory and the segment list,
// unless a truncation or deletion changed the log meanwhile (then it discards
// cleaned and returns false).
func (l *Log) swapSegment(old, cleaned *segment, gen uint64) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	segs := *l.segs.Load()
	at := -1
	for i, s := range segs {
		if s == old {
			at = i
		}
	}
	if err := l.writableLocked(); err != nil || gen != l.truncGen || at < 0 || at == len(segs)-1 {
		cleaned.closeFiles()
		cleaned.removeCleanedFiles()
		return false, err
	}
	// Old's files stay open and pinned until the new list is out: a reader
	// whose snapshot still holds old reads them, where the budget closing
	// them in the window would leave it a segment it may not reopen.
	pinned, err := old.pin()
	if err != nil { // nothing changed yet
		cleaned.closeFiles()
		cleaned.removeCleanedFiles()
		return false, fmt.Errorf("compaction swap: %w", err)
	}
	defer pinned.release() // after the list is stored
	// Drop the old indexes first: if we crash after the log's rename, the
	// missing index files make the next open rebuild them from the new log.
	// From the first removal on the directory no longer matches the segment
	// list: any failure takes the log offline, and a restart sorts it out.
	// Old's files are never reopened by name from here on (the names are
	// about to hold the cleaned files), unless the swap fails before its
	// .log was replaced: it stays readable then (the log goes offline).
	fs := l.ops.fs
	old.setGone(true)
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		if err := fs.Remove(old.path + suf); err != nil && !errors.Is(err, os.ErrNotExist) {
			old.setGone(false)
			cleaned.closeFiles()
			return false, l.goOffline(fmt.Errorf("compaction swap: %w", err))
		}
	}
	if err := fs.SyncDir(l.dir); err != nil {
		old.setGone(false)
		cleaned.closeFiles()
		return false, l.goOffline(fmt.Errorf("compaction swap: %w", err))
	}
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := fs.Rename(old.path+suf+cleanedSuffix, old.path+suf); err != nil {
			if suf == logSuffix {
				old.setGone(false)
			}
			cleaned.closeFiles()
			return false, l.goOffline(fmt.Errorf("compaction swap: %w", err))
		}
	}
	if err := fs.SyncDir(l.dir); err != nil {
		cleaned.closeFiles()
		return false, l.goOffline(fmt.Errorf("compaction swap: %w", err))
	}
	cleaned.synced.Store(cleaned.size.Load()) // fsynced, and under its final names: it may close now
	cleaned.tempNames.Store(false)
	next := append([]*segment(nil), segs...)
	next[at] = cleaned
	l.segs.Store(&next)
	l.unsynced = filterSegments(l.unsynced, next)
	old.release() // readers still on the old file keep its (now unlinked) inode until they finish
	return true, nil
}
