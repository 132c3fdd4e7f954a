package logstore

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	cleanedSuffix   = ".cleaned"
	deletedSuffix   = ".deleted"
	noTimestamp     = math.MinInt64
)

// segmentName is the 20-digit base offset that names a segment's files.
func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// segment is one .log file with its two sparse indexes. One writer (the log,
// under its lock) appends; readers use ReadAt below the published size. The
// files open on first use and may be closed while idle (see FileBudget); the
// in-memory state below stays, so reopening reads nothing back.
type segment struct {
	base int64
	path string   // directory + name, without suffix
	ops  *fileOps // the log's: how files change, where cleanup failures go, the open-files budget

	files  atomic.Pointer[segFiles] // nil while closed
	openMu sync.Mutex               // opening and closing the files; guards gone
	gone   bool                     // retired or released: never reopen
	// tempNames: the files are not (yet) under the names path gives
	// (compaction's output before its swap): never close them.
	tempNames atomic.Bool
	ring      int // position on the budget's ring (-1: off it); under the budget's mu

	size    atomic.Int64 // bytes of whole, written batches
	synced  atomic.Int64 // bytes of the log known to be fsynced through the current files
	next    atomic.Int64 // offset after the segment's last batch (base when empty)
	maxTS   atomic.Int64 // largest batch timestamp, noTimestamp when empty
	offsets atomic.Pointer[chunkedList[offsetEntry]]
	times   atomic.Pointer[chunkedList[timeEntry]]

	refs   atomic.Int32 // the log's own reference plus one per flush or compaction using it
	remove atomic.Bool  // delete the files when the last reference goes

	// Writer-only state.
	bytesSinceIndex int64
	firstTS         int64               // max timestamp of the first batch, for segment.ms; noTimestamp when empty
	opened          int64               // wall clock (ms) when this process created or opened the segment
	entryBuf        [timeEntrySize]byte // an index entry being written: the seam's WriteAt would make a local escape
}

// newSegment is an empty segment with no files open yet, holding the log's reference.
func newSegment(ops *fileOps, base int64, path string, opened int64) *segment {
	s := &segment{base: base, path: path, firstTS: noTimestamp, opened: opened, ops: ops, ring: -1}
	s.refs.Store(1)
	s.next.Store(base)
	s.maxTS.Store(noTimestamp)
	s.offsets.Store(&chunkedList[offsetEntry]{})
	s.times.Store(&chunkedList[timeEntry]{})
	return s
}

// createSegment creates a new, empty segment's files. If that fails, what
// it created goes again (see openSegFiles).
func createSegment(ops *fileOps, dir string, base int64, now int64) (*segment, error) {
	s := newSegment(ops, base, filepath.Join(dir, segmentName(base)), now)
	f, err := openSegFiles(ops, s.path, true)
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", segmentName(base), err)
	}
	if err = ops.fs.Truncate(f.oidx, 0); err != nil {
		err = fmt.Errorf("reset index: %w", err)
	} else if err = ops.fs.Truncate(f.tidx, 0); err != nil {
		err = fmt.Errorf("reset time index: %w", err)
	}
	if err != nil {
		f.closeAll()
		ops.removeSegment(s.path)
		return nil, fmt.Errorf("create segment %s: %w", segmentName(base), err)
	}
	s.install(f)
	return s, nil
}

// acquire takes a reference; false if the segment is already gone.
func (s *segment) acquire() bool { return acquireRef(&s.refs) }

// release drops a reference; the last one closes (and maybe deletes) the
// files. Readers still holding the files finish on them.
func (s *segment) release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	s.closeFiles()
	if s.remove.Load() {
		s.removeFiles()
	}
}

func (s *segment) removeFiles() {
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		s.ops.remove(s.path+suf+deletedSuffix, "a deleted segment file")
	}
}

// retire takes a segment out of the log: its files are renamed at once (so a
// new segment may take the same base offset while readers still use the old
// one) and deleted when the last reference goes. The caller drops the log's
// reference afterwards. Leftover .deleted files are removed on open.
//
// A failed rename leaves the file under its live name, where the next open
// would take it back into the log: the error is a fault, and the log goes
// offline (a restart's recovery then judges the files).
func (s *segment) retire() error {
	s.setGone(true) // the names are about to change: never reopen them
	var errs []error
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := s.ops.fs.Rename(s.path+suf, s.path+suf+deletedSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("retire segment %s: %w", segmentName(s.base), err))
		}
	}
	s.remove.Store(true)
	return fault(errors.Join(errs...))
}

// indexFull reports whether the offset index reached its entry limit.
func (s *segment) indexFull(maxEntries int) bool { return s.offsets.Load().len() >= maxEntries }

// appendBatch writes b at the end of the segment and publishes it to readers.
// On error nothing is published and the file is cut back; a failed cut-back
// is a fault (the file holds bytes the log does not account for).
func (s *segment) appendBatch(b Batch, indexInterval int64) error {
	f, err := s.pin()
	if err != nil {
		return fmt.Errorf("write segment %s: %w", segmentName(s.base), err)
	}
	defer f.release()
	pos := s.size.Load()
	if _, err := s.ops.fs.WriteAt(f.log, b, pos); err != nil {
		return s.cutBack(f, pos, fmt.Errorf("write segment %s: %w", segmentName(s.base), err))
	}
	if err := s.addIndexEntry(f, b, pos, indexInterval); err != nil {
		return s.cutBack(f, pos, err)
	}
	s.noteBatch(b, int64(len(b)))
	s.size.Store(pos + int64(len(b))) // publish last: readers never see a partial batch
	return nil
}

// cutBack truncates the log file to pos after a failed append (err).
func (s *segment) cutBack(f *segFiles, pos int64, err error) error {
	if terr := s.ops.fs.Truncate(f.log, pos); terr != nil {
		return fault(fmt.Errorf("%w; cutting segment %s back to %d failed too: %w", err, segmentName(s.base), pos, terr))
	}
	return err
}

// indexEntries decides the index entries for a batch about to sit at pos: an
// offset entry once index.interval.bytes have passed since the last one, and a
// time entry with it when the largest timestamp grew. Append, recovery and
// compaction all index through here.
func (s *segment) indexEntries(b Batch, pos, interval int64) (oe offsetEntry, te timeEntry, addOffset, addTime bool) {
	if pos == 0 || s.bytesSinceIndex < interval {
		return oe, te, false, false
	}
	rel := uint32(b.BaseOffset() - s.base)
	oe = offsetEntry{rel: rel, pos: uint32(pos)}
	times := s.times.Load()
	maxTS := s.maxTS.Load()
	addTime = maxTS != noTimestamp && (times.len() == 0 || maxTS > times.at(times.len()-1).ts)
	return oe, timeEntry{ts: maxTS, rel: rel}, true, addTime
}

// addIndexEntry writes an offset index entry (and a time index entry when the
// largest timestamp grew) for the batch at pos.
func (s *segment) addIndexEntry(f *segFiles, b Batch, pos, interval int64) error {
	oe, te, addOffset, addTime := s.indexEntries(b, pos, interval)
	if !addOffset {
		return nil
	}
	offs, times := s.offsets.Load(), s.times.Load()
	n := int64(offs.len())
	// The index files are derived data: a failed cut-back only leaves a
	// stray entry past the end, which the next write overwrites and an open
	// checks; it is reported with the write's error.
	fs := s.ops.fs
	if _, err := fs.WriteAt(f.oidx, putOffsetEntry(s.entryBuf[:], oe), n*offsetEntrySize); err != nil {
		return errors.Join(fmt.Errorf("write index %s: %w", segmentName(s.base), err), fs.Truncate(f.oidx, n*offsetEntrySize))
	}
	if addTime {
		tn := int64(times.len())
		if _, err := fs.WriteAt(f.tidx, putTimeEntry(s.entryBuf[:], te), tn*timeEntrySize); err != nil {
			return errors.Join(fmt.Errorf("write time index %s: %w", segmentName(s.base), err),
				fs.Truncate(f.tidx, tn*timeEntrySize), fs.Truncate(f.oidx, n*offsetEntrySize))
		}
		times.push(te)
	}
	offs.push(oe)
	s.bytesSinceIndex = 0
	return nil
}

// noteBatch updates the writer's running state for a batch now in the file.
func (s *segment) noteBatch(b Batch, n int64) {
	s.bytesSinceIndex += n
	ts := b.MaxTimestamp()
	if s.firstTS == noTimestamp {
		s.firstTS = ts
	}
	if ts > s.maxTS.Load() {
		s.maxTS.Store(ts)
	}
	s.next.Store(b.NextOffset())
}

// position returns the file position to start scanning from for offset.
func (s *segment) position(f *segFiles, offset int64) int64 {
	from, base, _ := s.walkSpan(offset)
	if from > 0 {
		var hdr [BatchHeaderSize]byte
		if _, err := f.log.ReadAt(hdr[:], from); err != nil || !s.indexedBatchOK(hdr[:], from, base, s.size.Load()) {
			return 0
		}
	}
	return from
}

// indexedBatchOK checks the header at an offset index entry's position pos:
// it must be a whole v2 batch starting exactly at the entry's base offset. A
// damaged index entry that passed the load checks (a flipped bit keeps the
// entries ordered) fails this, and the caller walks from position 0 instead of
// returning garbage, skipping batches or truncating mid-batch.
func (s *segment) indexedBatchOK(b Batch, pos, base, size int64) bool {
	n := int64(b.Size())
	return n >= BatchHeaderSize && pos+n <= size && b.Magic() == magicV2 && b.BaseOffset() == base
}

// walkSpan returns position(offset), the base offset the batch there must
// have (the index entry's), and the position of the next index entry (-1 if
// none). The first batch whose last offset is >= offset starts at or before
// that entry's batch, whose base offset is above offset.
func (s *segment) walkSpan(offset int64) (from, base, next int64) {
	offs := s.offsets.Load()
	i := -1
	base = s.base
	if rel := offset - s.base; rel > 0 {
		rel = min(rel, math.MaxUint32)
		i = offs.search(func(e offsetEntry) bool { return int64(e.rel) <= rel })
	}
	if i >= 0 {
		from, base = int64(offs.at(i).pos), s.base+int64(offs.at(i).rel)
	}
	next = -1
	if i+1 < offs.len() {
		next = int64(offs.at(i + 1).pos)
	}
	return from, base, next
}

// findBatch returns the position and header of the first batch whose last
// offset is >= offset, or pos == -1 if there is none below size.
func (s *segment) findBatch(f *segFiles, offset, size int64) (int64, Batch, error) {
	var w readWindow
	pos, hdr, err := s.seekBatch(f, offset, size, &w)
	if err != nil || pos < 0 {
		return -1, nil, err
	}
	return pos, append(Batch(nil), hdr...), nil
}

// readWindow holds bytes read ahead of the header walk from an index entry
// (which spans about index.interval.bytes), so the walk costs one read instead
// of one per batch header, and a small fetch none more. Callers keep it on the stack.
type readWindow struct {
	buf [8 << 10]byte
	pos int64 // file position of buf[0]
	n   int   // bytes of buf read
}

// bytes returns the window's bytes for file positions [pos, pos+n), if it holds them.
func (w *readWindow) bytes(pos, n int64) ([]byte, bool) {
	if pos < w.pos || pos+n > w.pos+int64(w.n) {
		return nil, false
	}
	return w.buf[pos-w.pos : pos-w.pos+n], true
}

// seekBatch is findBatch reading through w; hdr aliases w.
func (s *segment) seekBatch(f *segFiles, offset, size int64, w *readWindow) (int64, Batch, error) {
	pos, base, next := s.walkSpan(offset)
	// An index entry is trusted once the header it points at checks out.
	indexed := pos > 0
	walkEnd := size // the walk needs no bytes past the next indexed batch's header
	if next >= pos && next+BatchHeaderSize < size {
		walkEnd = next + BatchHeaderSize
	}
	for pos+BatchHeaderSize <= size {
		hdr, ok := w.bytes(pos, BatchHeaderSize)
		if !ok {
			end := walkEnd
			if end < pos+BatchHeaderSize {
				end = size
			}
			got, err := f.log.ReadAt(w.buf[:min(int64(len(w.buf)), end-pos)], pos)
			w.pos, w.n = pos, got
			if got < BatchHeaderSize {
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				return -1, nil, fmt.Errorf("read segment %s: %w", segmentName(s.base), err)
			}
			hdr, _ = w.bytes(pos, BatchHeaderSize)
		}
		b := Batch(hdr)
		if indexed {
			indexed = false
			if !s.indexedBatchOK(b, pos, base, size) {
				pos, walkEnd = 0, size // a damaged index entry: walk from the start
				continue
			}
		}
		n := int64(b.Size())
		if n < BatchHeaderSize {
			return -1, nil, corruptf("segment %s position %d: batch length %d", segmentName(s.base), pos, n)
		}
		if b.LastOffset() >= offset {
			return pos, b, nil
		}
		pos += n
	}
	return -1, nil, nil
}

// read returns whole batches starting with the one holding offset: at most
// maxBytes (but always the first batch whole, so a reader makes progress),
// and only batches whose last offset is below maxOffset. They are read into
// dst when it is big enough, else into a new buffer. held says whether the
// segment has a batch at or after offset (no data and no error then: it is
// at or above maxOffset).
func (s *segment) read(f *segFiles, dst []byte, offset int64, maxBytes int, maxOffset int64) (data []byte, held bool, err error) {
	size := s.size.Load()
	var w readWindow
	start, first, err := s.seekBatch(f, offset, size, &w)
	if err != nil || start < 0 {
		return nil, false, err
	}
	if first.LastOffset() >= maxOffset {
		return nil, true, nil
	}
	n := min(int64(maxBytes), size-start)
	if fs := int64(first.Size()); n < fs {
		n = fs // the first batch goes whole even past the budget
	}
	buf := dst[:0]
	if int64(cap(buf)) < n {
		buf = make([]byte, 0, n)
	}
	if ahead, ok := w.bytes(start, n); ok {
		buf = append(buf, ahead...)
	} else {
		got, err := f.log.ReadAt(buf[:n], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, true, fmt.Errorf("read segment %s: %w", segmentName(s.base), err)
		}
		buf = buf[:got]
	}
	end := 0
	for {
		b, _, ok, err := NextBatch(buf[end:])
		if err != nil || !ok || b.LastOffset() >= maxOffset {
			break
		}
		end += len(b)
	}
	if end == 0 { // the file ends before the size read: cut under this read
		return nil, true, errCutUnderRead
	}
	return buf[:end:end], true, nil
}

// errCutUnderRead says a segment's file was shorter than the size a read
// started from (a truncation cut it meanwhile): the reader looks again.
var errCutUnderRead = errors.New("segment was cut under the read")

// rebuildIndexFiles rewrites both index files from the in-memory entries.
func (s *segment) rebuildIndexFiles(f *segFiles) error {
	offs, times := s.offsets.Load(), s.times.Load()
	ob := make([]byte, 0, offs.len()*offsetEntrySize)
	for i := 0; i < offs.len(); i++ {
		ob = append(ob, encodeOffsetEntry(offs.at(i))...)
	}
	tb := make([]byte, 0, times.len()*timeEntrySize)
	for i := 0; i < times.len(); i++ {
		tb = append(tb, encodeTimeEntry(times.at(i))...)
	}
	fs := s.ops.fs
	if err := fs.Truncate(f.oidx, 0); err != nil {
		return fmt.Errorf("rebuild index %s: %w", segmentName(s.base), err)
	}
	if _, err := fs.WriteAt(f.oidx, ob, 0); err != nil {
		return fmt.Errorf("rebuild index %s: %w", segmentName(s.base), err)
	}
	if err := fs.Truncate(f.tidx, 0); err != nil {
		return fmt.Errorf("rebuild time index %s: %w", segmentName(s.base), err)
	}
	if _, err := fs.WriteAt(f.tidx, tb, 0); err != nil {
		return fmt.Errorf("rebuild time index %s: %w", segmentName(s.base), err)
	}
	return nil
}

// scanner reads a segment's batches sequentially through a reusable buffer.
type scanner struct {
	f       *os.File
	pos     int64 // file position of buf[0]
	limit   int64 // bytes of the file to consider
	buf     []byte
	off     int // position in buf of the next batch
	err     error
	BatchAt int64 // file position of the batch last returned
}

func newScanner(f *os.File, from, limit int64) *scanner {
	// Up to 1 MiB at a time, but no bigger than what there is to read.
	return &scanner{f: f, pos: from, limit: limit, buf: make([]byte, 0, max(BatchHeaderSize, min(1<<20, limit-from)))}
}

// next returns the next whole batch, or ok=false at the end of the data, at a
// torn tail, or at an impossible header (then err says why).
func (sc *scanner) next() (Batch, bool) {
	for {
		b, _, ok, err := NextBatch(sc.buf[sc.off:])
		if err != nil {
			sc.err = err
			return nil, false
		}
		if ok {
			sc.BatchAt = sc.pos + int64(sc.off)
			sc.off += len(b)
			return b, true
		}
		// Need more bytes: keep the partial batch, refill behind it.
		remain := copy(sc.buf[:cap(sc.buf)], sc.buf[sc.off:])
		sc.pos += int64(sc.off)
		sc.off = 0
		sc.buf = sc.buf[:remain]
		want := int64(BatchHeaderSize)
		if remain >= BatchHeaderSize {
			want = int64(Batch(sc.buf).Size())
		}
		fileLeft := sc.limit - sc.pos - int64(remain)
		if fileLeft <= 0 || want > int64(remain)+fileLeft {
			return nil, false // torn tail: the batch never finished
		}
		if want > int64(cap(sc.buf)) {
			grown := make([]byte, remain, want)
			copy(grown, sc.buf)
			sc.buf = grown
		}
		n := min(int64(cap(sc.buf)-remain), fileLeft)
		got, err := sc.f.ReadAt(sc.buf[remain:remain+int(n)], sc.pos+int64(remain))
		sc.buf = sc.buf[:remain+got]
		if err != nil && !errors.Is(err, io.EOF) {
			sc.err = fmt.Errorf("read: %w", err)
			return nil, false
		}
		if got == 0 {
			return nil, false
		}
	}
}
