package logstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Errors callers tell apart with errors.Is.
var (
	ErrClosed           = errors.New("log is closed")
	ErrOffsetOutOfRange = errors.New("offset out of range")
	ErrBatchTooLarge    = errors.New("batch is larger than segment.bytes")
	ErrOffsetMismatch   = errors.New("batch offsets do not follow the log end")
	ErrStaleEpoch       = errors.New("batch leader epoch is older than the log's")
)

// OutOfRangeError reports the bounds a read missed.
type OutOfRangeError struct {
	Offset, LogStartOffset, LogEndOffset int64
}

func (e *OutOfRangeError) Error() string {
	return fmt.Sprintf("offset %d is outside the log [%d, %d]", e.Offset, e.LogStartOffset, e.LogEndOffset)
}

// Unwrap makes errors.Is(err, ErrOffsetOutOfRange) true.
func (e *OutOfRangeError) Unwrap() error { return ErrOffsetOutOfRange }

// AppendResult describes an appended batch (or run of batches).
type AppendResult struct {
	BaseOffset   int64 // offset of the first record
	LastOffset   int64 // offset of the last record
	MaxTimestamp int64 // largest record timestamp (the append time with LogAppendTime)
	AppendTime   int64 // broker time of the append, ms
}

// ReadResult is what Read returns.
type ReadResult struct {
	// Data holds whole batches exactly as stored. The first may start below
	// the requested offset (batches are atomic); skip records below it.
	Data []byte
	// NextOffset follows the last batch in Data (the requested offset when Data is empty).
	NextOffset     int64
	LogStartOffset int64
	LogEndOffset   int64
}

// RecoveryReport says what opening the log found and cut.
type RecoveryReport struct {
	Recovered        bool  // segments were scanned (the shutdown was not clean)
	SegmentsScanned  int   // segments whose batches were all validated
	IndexesRebuilt   int   // segments whose index files were rebuilt
	TruncatedBytes   int64 // bytes cut from the damaged segment
	SegmentsDeleted  int   // whole segments dropped after the damage
	TruncatedAt      int64 // log end offset after the cut (-1 when nothing was cut)
	Reason           string
	EpochCacheRebult bool
}

// Log is one partition's append-only log: a list of segments, the last one
// active. One writer at a time (the mutex) appends, truncates and rolls;
// readers never take the mutex, they use an atomically published snapshot.
type Log struct {
	dir    string
	codecs *Codecs
	logger *slog.Logger
	now    func() time.Time
	cfg    atomic.Pointer[Config]
	epochs *epochCache
	ops    *fileOps

	offline   atomic.Pointer[error] // set once, by the first fault; see ErrLogOffline
	onOffline func(error)

	mu       sync.Mutex // the writer's lock
	segs     atomic.Pointer[[]*segment]
	leo      atomic.Int64
	logStart atomic.Int64
	durable  atomic.Int64
	unsynced []*segment // rolled segments not yet fsynced; under mu
	dirDirty bool       // a segment file was created since the last dir fsync; under mu
	// epochsStale: a cut of the epoch cache could not be written, so the
	// checkpoint may name epochs past the log end; nothing is appended until
	// it is rewritten. Under mu.
	epochsStale bool
	truncGen    uint64 // bumped by every truncation; under mu
	closed      bool   // under mu

	syncSem chan struct{} // one flusher at a time; waiters queue here (group commit)
	flushes atomic.Int64  // successful flush rounds (fsyncs of the active segment); for tests and benchmarks
	report  RecoveryReport

	compactMu         sync.Mutex // one compaction at a time; guards the two fields below
	cleanedTo         int64      // compaction has cleaned every segment below this offset
	tombstoneDeadline int64      // ms when a kept tombstone may expire (0: none)
}

// Open opens (creating if needed) the log in dir, recovering it if needed.
// A damaged tail is cut and reported, never returned as an error.
func Open(dir string, cfg Config, opts Options) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	l := &Log{dir: dir, codecs: opts.Codecs, logger: opts.Logger, now: opts.Now, syncSem: make(chan struct{}, 1), onOffline: opts.OnOffline}
	if l.codecs == nil {
		l.codecs = NewCodecs(0)
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	l.ops = &fileOps{fs: orOS(opts.FS), logger: l.logger.With("dir", dir), files: opts.Files}
	if l.now == nil {
		l.now = time.Now
	}
	l.cfg.Store(&cfg)
	if err := l.load(opts); err != nil {
		if segs := l.segs.Load(); segs != nil {
			for _, s := range *segs {
				s.release()
			}
		}
		return nil, err
	}
	return l, nil
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// Config returns the log's current configuration.
func (l *Log) Config() Config { return *l.cfg.Load() }

// SetConfig changes the configuration (topic alter); it applies to later appends and cleanups.
func (l *Log) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	l.cfg.Store(&cfg)
	return nil
}

// Codecs returns the log's codecs (to decode what Read returns).
func (l *Log) Codecs() *Codecs { return l.codecs }

// LogStartOffset is the first offset a reader may ask for.
func (l *Log) LogStartOffset() int64 { return l.logStart.Load() }

// LogEndOffset (LEO) is the offset the next record will get.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// DurableOffset is the offset below which every record is on disk (fsynced).
func (l *Log) DurableOffset() int64 { return l.durable.Load() }

// Recovery says what opening the log found.
func (l *Log) Recovery() RecoveryReport { return l.report }

// Offline returns nil while the log takes writes, and the error wrapping
// ErrLogOffline (and its cause) once a fault took it offline.
func (l *Log) Offline() error {
	if p := l.offline.Load(); p != nil {
		return *p
	}
	return nil
}

// goOffline takes the log offline for cause (the first cause wins) and
// returns the error every write answers from now on. Callers may hold mu.
func (l *Log) goOffline(cause error) error {
	err := fmt.Errorf("%w: %w", ErrLogOffline, unfault(cause))
	if !l.offline.CompareAndSwap(nil, &err) {
		return *l.offline.Load()
	}
	l.logger.Error("log offline: a storage operation failed; it refuses writes until a restart recovers it from disk",
		"dir", l.dir, "durable_offset", l.durable.Load(), "log_end_offset", l.leo.Load(), "err", cause)
	if l.onOffline != nil {
		l.onOffline(err)
	}
	return err
}

// goOfflineOnFault takes the log offline if err is a fault, and returns the
// error to answer: the offline error for a fault, err otherwise.
func (l *Log) goOfflineOnFault(err error) error {
	if isFault(err) {
		return l.goOffline(err)
	}
	return err
}

// writableLocked is nil while the log may change: open and not offline.
func (l *Log) writableLocked() error {
	if l.closed {
		return ErrClosed
	}
	if p := l.offline.Load(); p != nil {
		return *p
	}
	return nil
}

// Size is the bytes of all segments.
func (l *Log) Size() int64 {
	var n int64
	for _, s := range *l.segs.Load() {
		n += s.size.Load()
	}
	return n
}

// SegmentCount is the number of segments.
func (l *Log) SegmentCount() int { return len(*l.segs.Load()) }

// LatestEpoch is the newest leader epoch in the log (UndefinedEpoch if none).
func (l *Log) LatestEpoch() int32 {
	e, _ := l.epochs.latest()
	return e.Epoch
}

// Epochs returns the leader epoch cache entries.
func (l *Log) Epochs() []EpochEntry { return l.epochs.snapshot() }

// EndOffsetForEpoch returns the largest epoch <= epoch that the log knows and
// the offset where it ended: what a follower compares to find the diverging point.
func (l *Log) EndOffsetForEpoch(epoch int32) (int32, int64) {
	return l.epochs.endOffsetFor(epoch, l.leo.Load())
}

func (l *Log) active() *segment {
	segs := *l.segs.Load()
	return segs[len(segs)-1]
}

// AppendAsLeader assigns the next offsets to a batch, stamps epoch into it (in
// place) and appends it. With fsync always it returns once the batch is on disk.
// The batch must be a valid v2 batch whose records have offset deltas 0..n-1.
func (l *Log) AppendAsLeader(ctx context.Context, batch []byte, epoch int32) (AppendResult, error) {
	res, err := l.AppendAsLeaderNoWait(batch, epoch)
	if err != nil {
		return res, err
	}
	return res, l.maybeWaitDurable(ctx, l.cfg.Load(), res.LastOffset+1)
}

// writebackMinBytes is the smallest batch worth an early writeback hint.
const writebackMinBytes = 64 << 10

// AppendAsLeaderNoWait is AppendAsLeader without waiting for the fsync: the
// caller decides when (and whether) to WaitDurable, e.g. for acks=0 or 1.
func (l *Log) AppendAsLeaderNoWait(batch []byte, epoch int32) (AppendResult, error) {
	b := Batch(batch)
	if err := b.Validate(); err != nil {
		return AppendResult{}, err
	}
	if b.RecordCount() != b.LastOffsetDelta()+1 {
		return AppendResult{}, corruptf("leader batch has %d records for %d offsets", b.RecordCount(), b.LastOffsetDelta()+1)
	}
	if b.RecordCount() == 0 {
		return AppendResult{}, ErrEmptyBatch
	}
	if epoch < 0 {
		return AppendResult{}, fmt.Errorf("%w: leader epoch %d is negative", ErrStaleEpoch, epoch)
	}
	cfg := l.cfg.Load()
	if int64(len(b)) > cfg.SegmentBytes {
		return AppendResult{}, fmt.Errorf("%w: %d > %d", ErrBatchTooLarge, len(b), cfg.SegmentBytes)
	}
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return AppendResult{}, err
	}
	now := l.now().UnixMilli()
	base := l.leo.Load()
	b.setBaseOffset(base)
	b.setLeaderEpoch(epoch)
	if cfg.MessageTimestampType == LogAppendTime {
		b.setAttributes(b.Attributes() | attrLogAppendTime)
		b.setMaxTimestamp(now)
		b.setCRC()
	}
	res := AppendResult{BaseOffset: base, LastOffset: b.LastOffset(), MaxTimestamp: b.MaxTimestamp(), AppendTime: now}
	if err := l.assignEpochLocked(epoch, base); err != nil {
		l.mu.Unlock()
		return AppendResult{}, err
	}
	if err := l.appendLocked(b, cfg, now); err != nil {
		l.mu.Unlock()
		return AppendResult{}, err
	}
	a := l.active()
	end := a.size.Load()
	l.mu.Unlock()
	if cfg.Fsync == FsyncAlways && len(b) >= writebackMinBytes {
		// The batch is about to be fsynced: start writing it out now, so it is
		// on its way while the fsync in flight (group commit) finishes. With
		// 8 writers this measured ~+20% appended MB/s; one writer is unchanged.
		// Small batches skip it: the syscall then costs more than it saves.
		a.startWriteback(end-int64(len(b)), int64(len(b)))
	}
	return res, nil
}

// AppendAsFollower appends batches that already carry offsets and epochs (a
// follower copying its leader). The first must start at the log end offset and
// each next where the previous ended, in compacted logs too (compaction keeps
// emptied offset ranges as empty batches); anything else is refused whole, as
// is a CRC failure or an older epoch.
func (l *Log) AppendAsFollower(ctx context.Context, batches []byte) (AppendResult, error) {
	cfg := l.cfg.Load()
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return AppendResult{}, err
	}
	expect := l.leo.Load()
	epoch := l.LatestEpoch()
	res := AppendResult{BaseOffset: -1, LastOffset: -1, MaxTimestamp: noTimestamp}
	var list []Batch
	rest := batches
	for len(rest) > 0 {
		b, r, ok, err := NextBatch(rest)
		if err == nil && !ok {
			err = corruptf("%d trailing bytes are not a whole batch", len(rest))
		}
		if err == nil {
			err = b.Validate()
		}
		if err == nil && b.BaseOffset() != expect {
			err = fmt.Errorf("%w: batch at %d, expected %d", ErrOffsetMismatch, b.BaseOffset(), expect)
		}
		if err == nil && b.LeaderEpoch() < epoch {
			err = fmt.Errorf("%w: %d < %d", ErrStaleEpoch, b.LeaderEpoch(), epoch)
		}
		if err == nil && int64(len(b)) > cfg.SegmentBytes {
			err = fmt.Errorf("%w: %d > %d", ErrBatchTooLarge, len(b), cfg.SegmentBytes)
		}
		if err != nil {
			l.mu.Unlock()
			return AppendResult{}, err
		}
		list = append(list, b)
		expect, epoch, rest = b.NextOffset(), b.LeaderEpoch(), r
		if res.BaseOffset < 0 {
			res.BaseOffset = b.BaseOffset()
		}
		res.LastOffset = b.LastOffset()
		res.MaxTimestamp = max(res.MaxTimestamp, b.MaxTimestamp())
	}
	if len(list) == 0 {
		l.mu.Unlock()
		return AppendResult{}, ErrEmptyBatch
	}
	now := l.now().UnixMilli()
	res.AppendTime = now
	for _, b := range list {
		err := l.assignEpochLocked(b.LeaderEpoch(), b.BaseOffset())
		if err == nil {
			err = l.appendLocked(b, cfg, now)
		}
		if err != nil {
			l.mu.Unlock()
			return AppendResult{}, err
		}
	}
	end := l.leo.Load()
	l.mu.Unlock()
	return res, l.maybeWaitDurable(ctx, cfg, end)
}

// assignEpochLocked records a new epoch before any batch of it is written, so
// the checkpoint always knows every epoch present in the log.
func (l *Log) assignEpochLocked(epoch int32, offset int64) error {
	if l.epochsStale {
		if err := l.flushEpochsAfterCutLocked(); err != nil {
			return err
		}
	}
	if epoch < 0 {
		return nil
	}
	if last, ok := l.epochs.latest(); ok && last.Epoch == epoch {
		return nil // the common case, without the copy below
	}
	prev := l.epochs.snapshot()
	changed, err := l.epochs.assign(epoch, offset)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStaleEpoch, err)
	}
	if !changed {
		return nil
	}
	if err := l.epochs.flush(); err != nil {
		if isFault(err) {
			return l.goOffline(err)
		}
		// Nothing was renamed (e.g. the disk is full): the file is as it
		// was. The cache forgets the epoch too, so no batch of it is written
		// before the file knows it, and the next append tries again.
		l.epochs.reset(prev)
		return err
	}
	return nil
}

// flushEpochsAfterCutLocked writes the epoch checkpoint after the cache was
// cut at the end (or reset). A fault takes the log offline. Any other failure
// (nothing was renamed: a full disk) leaves a file that may name epochs past
// the cut, where a recovery would take batches written later for damage: no
// batch is appended until a retry (before the next append) succeeds.
func (l *Log) flushEpochsAfterCutLocked() error {
	if err := l.epochs.flush(); err != nil {
		if isFault(err) {
			return l.goOffline(err)
		}
		l.epochsStale = true
		return err
	}
	l.epochsStale = false
	return nil
}

// appendLocked writes one batch whose offsets are final, rolling first if needed.
func (l *Log) appendLocked(b Batch, cfg *Config, now int64) error {
	a := l.active()
	size := a.size.Load()
	roll := size > 0 && (size+int64(len(b)) > cfg.SegmentBytes ||
		// segment.ms counts from the first batch's timestamp, as in Kafka, but
		// also from when the segment was opened, so old client timestamps
		// cannot make every batch roll a new segment.
		(a.firstTS != noTimestamp && now-a.firstTS > cfg.SegmentMs && now-a.opened > cfg.SegmentMs) ||
		a.indexFull(cfg.maxIndexEntries()) ||
		b.LastOffset()-a.base > math.MaxInt32)
	if roll {
		var err error
		if a, err = l.rollLocked(b.BaseOffset()); err != nil {
			return err
		}
	}
	if err := a.appendBatch(b, cfg.IndexIntervalBytes); err != nil {
		return l.goOfflineOnFault(err)
	}
	l.leo.Store(b.NextOffset())
	return nil
}

// rollLocked starts a new active segment at base.
func (l *Log) rollLocked(base int64) (*segment, error) {
	s, err := createSegment(l.ops, l.dir, base, l.now().UnixMilli())
	if err != nil {
		return nil, err
	}
	old := *l.segs.Load()
	l.unsynced = append(l.unsynced, old[len(old)-1])
	segs := append(append(make([]*segment, 0, len(old)+1), old...), s)
	l.segs.Store(&segs)
	l.dirDirty = true
	return s, nil
}

func (l *Log) maybeWaitDurable(ctx context.Context, cfg *Config, end int64) error {
	if cfg.Fsync != FsyncAlways {
		return nil
	}
	return l.WaitDurable(ctx, end)
}

// Sync makes everything appended so far durable.
func (l *Log) Sync(ctx context.Context) error { return l.WaitDurable(ctx, l.leo.Load()) }

// WaitDurable returns once every offset below end is on disk. Callers that
// arrive while an fsync runs queue for the next one, which covers them all:
// one fsync serves every batch waiting (group commit).
func (l *Log) WaitDurable(ctx context.Context, end int64) error {
	for l.durable.Load() < end {
		select {
		case l.syncSem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("wait for fsync: %w", ctx.Err())
		}
		if l.durable.Load() >= end {
			<-l.syncSem
			return nil
		}
		err := l.flush()
		<-l.syncSem
		if err != nil {
			return err
		}
		if l.leo.Load() < end { // truncated below end meanwhile: nothing more to wait for
			return nil
		}
	}
	return nil
}

// flush fsyncs every segment with unsynced data and publishes the durable offset.
// The caller holds syncSem; appends go on during the fsync.
//
// A failed fsync is never retried: the kernel may have dropped the pages it
// was to write and marked them clean, so a later fsync would succeed without
// writing them. The log goes offline instead; its durable offset stays where
// the last good fsync left it.
func (l *Log) flush() error {
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	end, gen, dirDirty := l.leo.Load(), l.truncGen, l.dirDirty
	pending := append(l.unsynced, l.active())
	l.unsynced, l.dirDirty = nil, false
	for _, s := range pending {
		s.acquire()
	}
	l.mu.Unlock()

	var err error
	for i, s := range pending {
		if err == nil {
			err = s.sync(i < len(pending)-1) // a rolled segment is final: its indexes too
		}
		s.release()
	}
	if dirDirty && err == nil {
		if e := l.ops.fs.SyncDir(l.dir); e != nil {
			err = fmt.Errorf("fsync log dir: %w", e)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		return l.goOffline(err)
	}
	if err := l.writableLocked(); err != nil {
		return err // closed, or offline by another fault meanwhile: publish nothing
	}
	l.flushes.Add(1)
	if gen == l.truncGen && end > l.durable.Load() {
		l.durable.Store(end)
	}
	return nil
}

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
	if pos >= 0 {
		newEnd = hdr.BaseOffset()
		if err := l.cutSegment(last, f, pos); err != nil {
			return 0, l.goOfflineOnFault(err)
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
			return 0, err
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

// cutSegment truncates a segment's file at pos and rebuilds its in-memory state.
func (l *Log) cutSegment(s *segment, f *segFiles, pos int64) error {
	s.size.Store(pos) // readers stop here first
	// Not fsynced: the files must stay open until a flush (see clean).
	s.synced.Store(-1)
	if err := l.ops.fs.Truncate(f.log, pos); err != nil {
		return fault(fmt.Errorf("truncate segment %s: %w", segmentName(s.base), err))
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
	var errs []error
	for _, s := range old {
		if err := s.retire(); err != nil { // frees the names first: the new segment may reuse a base offset
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return l.goOffline(errors.Join(errs...))
	}
	s, err := createSegment(l.ops, l.dir, offset, l.now().UnixMilli())
	if err != nil {
		return err
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

// Close flushes everything to disk and closes the files. Later calls fail
// with ErrClosed. An offline log closes its files and returns its offline
// error, so the caller knows the shutdown was not clean.
func (l *Log) Close() error {
	ctx := context.Background()
	err := l.Sync(ctx)
	if errors.Is(err, ErrClosed) {
		return nil
	}
	l.syncSem <- struct{}{} // no flush in flight while closing
	defer func() { <-l.syncSem }()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	if err == nil {
		for _, s := range *l.segs.Load() {
			if err = s.syncIndexes(); err != nil {
				err = l.goOffline(err)
				break
			}
		}
	}
	l.closed = true
	for _, s := range *l.segs.Load() {
		s.release()
	}
	return err
}

// Delete closes the log and removes its directory.
func (l *Log) Delete() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		for _, s := range *l.segs.Load() {
			s.release()
		}
	}
	l.mu.Unlock()
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("delete log %s: %w", l.dir, err)
	}
	return nil
}
