package logstore

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// load opens the segments in l.dir, recovering what the last run may have left torn.
func (l *Log) load(opts Options) error {
	cfg := l.cfg.Load()
	bases, err := l.listSegments()
	if err != nil {
		return err
	}
	epochsOK := false
	l.epochs, epochsOK = loadEpochCache(l.dir)
	l.epochs.fs = l.ops.fs

	var segs []*segment
	defer func() {
		if l.segs.Load() == nil {
			for _, s := range segs {
				s.release()
			}
		}
	}()
	for _, base := range bases {
		// Files open when first used (and may close again under the budget):
		// a data dir may hold more segments than the process may open files.
		s := newSegment(l.ops, base, filepath.Join(l.dir, segmentName(base)), l.now().UnixMilli())
		segs = append(segs, s)
		fi, err := os.Stat(s.path + logSuffix)
		if err != nil {
			return fmt.Errorf("stat segment %s: %w", segmentName(base), err)
		}
		s.size.Store(fi.Size())
		// What an earlier run wrote is no descriptor's of ours to report an
		// fsync error on: the files may close (recovery fsyncs what it scans).
		s.synced.Store(fi.Size())
	}

	recoverFrom := len(segs)
	if !opts.Clean {
		recoverFrom = max(0, sort.Search(len(segs), func(i int) bool { return segs[i].base > opts.RecoveryPoint })-1)
	}
	rep := RecoveryReport{TruncatedAt: -1}
	for i := 0; i < recoverFrom; i++ {
		ok, err := segs[i].loadTrusted(cfg.IndexIntervalBytes)
		if err != nil {
			return err
		}
		if !ok {
			rep.IndexesRebuilt++
			recoverFrom = i // damaged where we trusted it: validate from here on
			break
		}
	}
	expect := int64(-1)
	if recoverFrom > 0 {
		expect = segs[recoverFrom-1].next.Load()
	}
	prevEpoch := int32(math.MinInt32)
	for i := recoverFrom; i < len(segs); i++ {
		rep.Recovered = true
		rep.SegmentsScanned++
		s := segs[i]
		sizeBefore := s.size.Load()
		next, reason, err := l.recoverSegment(s, expect, &prevEpoch, epochsOK, cfg)
		if err != nil {
			return err
		}
		if reason == "" {
			expect = next
			continue
		}
		// Damage: keep what came before it, drop the rest.
		rep.Reason = reason
		rep.TruncatedBytes = sizeBefore - s.size.Load()
		later := segs[i+1:]
		segs = segs[:i+1]
		if s.size.Load() == 0 && i > 0 {
			segs = segs[:i]
			later = append([]*segment{s}, later...)
		}
		var retireErr error
		for _, d := range later {
			rep.TruncatedBytes += d.size.Load()
			retireErr = errors.Join(retireErr, d.retire())
			d.release()
		}
		if retireErr != nil {
			return fmt.Errorf("drop the segments after the damage: %w", unfault(retireErr))
		}
		rep.SegmentsDeleted = len(later)
		break
	}

	if len(segs) == 0 {
		s, err := createSegment(l.ops, l.dir, max(opts.LogStartOffset, 0), l.now().UnixMilli())
		if err != nil {
			return err
		}
		segs = append(segs, s)
		if err := l.ops.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("fsync log dir: %w", err)
		}
	}
	for _, s := range segs {
		// segment.ms counts from the first batch, not from this process's
		// start, or a node restarted often would never roll a quiet segment.
		if s.firstTS != noTimestamp && s.firstTS < s.opened {
			s.opened = s.firstTS
		}
	}
	leo := segs[len(segs)-1].next.Load()
	if rep.Reason != "" {
		rep.TruncatedAt = leo
	}
	l.leo.Store(leo)
	l.logStart.Store(min(max(opts.LogStartOffset, segs[0].base), leo))

	if rep.Recovered { // what we read back may only be in the page cache
		for _, s := range segs[min(recoverFrom, len(segs)-1):] {
			if err := s.sync(false); err != nil {
				return fmt.Errorf("recovery: %w", unfault(err))
			}
		}
		if err := l.ops.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("fsync log dir: %w", err)
		}
	}
	l.durable.Store(leo)
	l.segs.Store(&segs)

	if !epochsOK {
		if err := l.rebuildEpochs(segs); err != nil {
			return err
		}
		rep.EpochCacheRebult = true
	} else {
		changed := l.epochs.truncateFromEnd(leo)
		changed = l.epochs.truncateFromStart(l.logStart.Load()) || changed
		if changed {
			if err := l.epochs.flush(); err != nil {
				return err
			}
		}
	}
	l.report = rep
	if rep.Reason != "" {
		l.logger.Warn("log recovery cut a damaged tail", "dir", l.dir, "reason", rep.Reason,
			"log_end_offset", leo, "bytes_cut", rep.TruncatedBytes, "segments_deleted", rep.SegmentsDeleted)
	} else if rep.Recovered {
		l.logger.Info("log recovered", "dir", l.dir, "segments_scanned", rep.SegmentsScanned, "log_end_offset", leo)
	}
	return nil
}

// listSegments returns the base offsets of the .log files, removing leftovers
// of interrupted work (temp files, unfinished compaction output, orphan indexes).
func (l *Log) listSegments() ([]int64, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("list log dir: %w", err)
	}
	logs := map[string]bool{}
	var bases []int64
	for _, e := range entries {
		name := e.Name()
		if stem, ok := strings.CutSuffix(name, logSuffix); ok && len(stem) == 20 {
			if base, err := strconv.ParseInt(stem, 10, 64); err == nil && base >= 0 {
				bases = append(bases, base)
				logs[stem] = true
			}
		}
	}
	for _, e := range entries {
		name := e.Name()
		stem := name
		if i := strings.IndexByte(name, '.'); i >= 0 {
			stem = name[:i]
		}
		stray := strings.HasSuffix(name, cleanedSuffix) || strings.HasSuffix(name, deletedSuffix) || strings.Contains(name, ".tmp-") ||
			((strings.HasSuffix(name, indexSuffix) || strings.HasSuffix(name, timeIndexSuffix)) && !logs[stem])
		if stray {
			if err := l.ops.fs.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("remove leftover %s: %w", name, err)
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// loadTrusted loads a segment trusted to be whole (below the recovery point):
// its indexes and the state past the last index entry. false: they do not fit
// the log file, the segment needs a scan.
func (s *segment) loadTrusted(interval int64) (bool, error) {
	f, err := s.pin()
	if err != nil {
		return false, err
	}
	defer f.release()
	return s.loadIndexes(f, interval) && s.loadTail(f) == nil, nil
}

// loadIndexes reads the index files of a segment trusted to be whole; false if
// they are missing or do not fit the log file. interval is index.interval.bytes.
func (s *segment) loadIndexes(f *segFiles, interval int64) bool {
	size := s.size.Load()
	od, err1 := os.ReadFile(s.path + indexSuffix)
	td, err2 := os.ReadFile(s.path + timeIndexSuffix)
	if err1 != nil || err2 != nil {
		return false
	}
	offs, ok := parseOffsetIndex(od, size)
	if !ok {
		return false
	}
	times, ok := parseTimeIndex(td, offs)
	if !ok {
		return false
	}
	if len(od) == 0 {
		// An empty index is only believable if no batch starts
		// index.interval.bytes or more into the segment (appends index the
		// first batch that does), so walk the headers up to there.
		var hdr [BatchHeaderSize]byte
		for pos := int64(0); pos < size; pos += int64(Batch(hdr[:]).Size()) {
			if pos > 0 && pos >= interval {
				return false
			}
			if _, err := f.log.ReadAt(hdr[:], pos); err != nil || Batch(hdr[:]).Size() < BatchHeaderSize {
				return false
			}
		}
	}
	if offs.len() > 0 && (times.len() == 0 || times.at(0).rel != offs.at(0).rel) {
		// The first offset entry always comes with a time entry once the
		// segment holds a timestamp, and batch 0 does unless it has none: a
		// time index without it was deleted or cut, and the largest
		// timestamp (retention, OffsetForTimestamp) would come out too small.
		var hdr [BatchHeaderSize]byte
		if _, err := f.log.ReadAt(hdr[:], 0); err != nil || Batch(hdr[:]).MaxTimestamp() != noTimestamp {
			return false
		}
	}
	if n := offs.len(); n > 0 { // the last entry must point at the batch it names
		var hdr [BatchHeaderSize]byte
		e := offs.at(n - 1)
		if _, err := f.log.ReadAt(hdr[:], int64(e.pos)); err != nil || Batch(hdr[:]).BaseOffset() != s.base+int64(e.rel) {
			return false
		}
	}
	s.offsets.Store(offs)
	s.times.Store(times)
	return true
}

// recoverSegment validates every batch of s, rebuilds its indexes and cuts it
// at the first bad batch. reason is non-empty when it cut.
func (l *Log) recoverSegment(s *segment, expect int64, prevEpoch *int32, epochsOK bool, cfg *Config) (next int64, reason string, err error) {
	f, err := s.pin()
	if err != nil {
		return 0, "", err
	}
	defer f.release()
	// What the scan read back may be only in the page cache: load fsyncs it
	// before the files may close (see segment.clean).
	s.synced.Store(-1)
	size := s.size.Load()
	firstStart, firstEpoch := int64(math.MaxInt64), UndefinedEpoch
	if ents := l.epochs.snapshot(); len(ents) > 0 {
		firstStart, firstEpoch = ents[0].StartOffset, ents[0].Epoch
	}
	valid, reason := s.reindex(f, cfg, func(b Batch) string {
		r := checkBatch(b, s, expect, *prevEpoch)
		if r == "" && epochsOK {
			r = checkEpoch(b, l.epochs, firstStart, firstEpoch)
		}
		if r == "" {
			expect, *prevEpoch = b.NextOffset(), b.LeaderEpoch()
		}
		return r
	})
	if valid != size {
		if err := l.ops.fs.Truncate(f.log, valid); err != nil {
			return 0, "", fmt.Errorf("truncate damaged segment %s: %w", segmentName(s.base), err)
		}
		s.size.Store(valid)
	}
	if err := s.rebuildIndexFiles(f); err != nil {
		return 0, "", err
	}
	if err := s.loadTail(f); err != nil {
		return 0, "", err
	}
	return s.next.Load(), reason, nil
}

// reindex rebuilds a segment's indexes in memory from its batches, as
// appends would have built them. check, when set, vets each batch; the scan
// stops at the first it refuses (or at a torn or impossible one) and returns
// how many bytes were valid and why it stopped. The caller writes the files.
func (s *segment) reindex(f *segFiles, cfg *Config, check func(Batch) string) (valid int64, reason string) {
	size := s.size.Load()
	offs, times := &chunkedList[offsetEntry]{}, &chunkedList[timeEntry]{}
	s.offsets.Store(offs)
	s.times.Store(times)
	s.bytesSinceIndex = 0
	s.maxTS.Store(noTimestamp)
	sc := newScanner(f.log, 0, size)
	for {
		b, ok := sc.next()
		if !ok {
			if sc.err != nil {
				reason = fmt.Sprintf("segment %s position %d: %v", segmentName(s.base), valid, sc.err)
			} else if valid != size {
				reason = fmt.Sprintf("segment %s position %d: torn batch (%d bytes)", segmentName(s.base), valid, size-valid)
			}
			return valid, reason
		}
		if check != nil {
			if r := check(b); r != "" {
				return valid, fmt.Sprintf("segment %s position %d: %s", segmentName(s.base), sc.BatchAt, r)
			}
		}
		pos := sc.BatchAt
		if oe, te, addOffset, addTime := s.indexEntries(b, pos, cfg.IndexIntervalBytes); addOffset && offs.len() < cfg.maxIndexEntries() {
			offs.push(oe)
			if addTime {
				times.push(te)
			}
			s.bytesSinceIndex = 0
		}
		s.noteBatch(b, int64(len(b)))
		valid = pos + int64(len(b))
	}
}

// checkBatch validates one batch in its place in the log.
func checkBatch(b Batch, s *segment, expect int64, prevEpoch int32) string {
	if err := b.Validate(); err != nil {
		return err.Error()
	}
	base := b.BaseOffset()
	if expect < 0 {
		expect = s.base // the first batch of the first scanned segment names the segment
	}
	// Offsets are contiguous in every log (compaction keeps emptied ranges as
	// empty batches), so a jump means a damaged base offset.
	if base != expect {
		return fmt.Sprintf("batch starts at offset %d, expected %d", base, expect)
	}
	if b.LastOffset()-s.base > math.MaxInt32 {
		return fmt.Sprintf("offset %d does not fit segment %d", b.LastOffset(), s.base)
	}
	if e := b.LeaderEpoch(); e < prevEpoch {
		return fmt.Sprintf("leader epoch %d after %d", e, prevEpoch)
	}
	return ""
}

// checkEpoch compares a batch's epoch with the checkpoint, which is written
// before any batch of a new epoch: a batch whose epoch the cache does not place
// at its offset was damaged.
func checkEpoch(b Batch, c *epochCache, firstStart int64, firstEpoch int32) string {
	base := b.BaseOffset()
	if base < firstStart {
		if b.LeaderEpoch() > firstEpoch {
			return fmt.Sprintf("leader epoch %d before the first known epoch %d", b.LeaderEpoch(), firstEpoch)
		}
		return ""
	}
	if want := c.epochAt(base); b.LeaderEpoch() != want {
		return fmt.Sprintf("leader epoch %d, the checkpoint says %d", b.LeaderEpoch(), want)
	}
	return ""
}

// rebuildEpochs derives the epoch cache from the batches when the checkpoint is lost.
func (l *Log) rebuildEpochs(segs []*segment) error {
	var entries []EpochEntry
	for _, s := range segs {
		f, err := s.pin()
		if err != nil {
			return fmt.Errorf("rebuild leader epochs: %w", err)
		}
		sc := newScanner(f.log, 0, s.size.Load())
		for {
			b, ok := sc.next()
			if !ok {
				break
			}
			e := b.LeaderEpoch()
			if e >= 0 && (len(entries) == 0 || e > entries[len(entries)-1].Epoch) {
				entries = append(entries, EpochEntry{Epoch: e, StartOffset: max(b.BaseOffset(), l.logStart.Load())})
			}
		}
		f.release()
		if sc.err != nil && !errors.Is(sc.err, ErrCorruptBatch) {
			return fmt.Errorf("rebuild leader epochs: %w", sc.err)
		}
	}
	// Epochs wholly before the log start collapse onto it.
	for len(entries) > 1 && entries[1].StartOffset <= l.logStart.Load() {
		entries = entries[1:]
	}
	l.epochs.reset(entries)
	return l.epochs.flush()
}
