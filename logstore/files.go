package logstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// filesPerSegment is what one open segment costs: .log, .index, .timeindex.
const filesPerSegment = 3

// errSegmentGone says a segment left its log (retired or closed) before its
// files could be opened: a reader takes a fresh snapshot of the segment list.
var errSegmentGone = errors.New("segment is no longer part of its log")

// segFiles are the open files of a segment. They are opened on first use and
// closed again when the node is over its open-files budget and nobody uses
// them; a user pins them (acquire) for as long as it reads or writes, so they
// are never closed under it.
type segFiles struct {
	log, oidx, tidx *os.File
	ops             *fileOps // the log's: where a failed close is reported
	// refs is 1 while the files are installed in their segment, plus one per
	// user; the last release closes them. 0 means closed (or being closed).
	refs atomic.Int32
	used atomic.Bool // set on use, cleared by the budget's sweep (a second chance)
}

// openSegFiles opens a segment's files, or creates them (create: the .log
// must not exist yet). A creation that fails removes what it created: a .log
// left behind would be taken for a segment by the next open, and would make
// the next try at the same base fail (EEXIST).
func openSegFiles(ops *fileOps, path string, create bool) (*segFiles, error) {
	f := &segFiles{ops: ops}
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	var err error
	if f.log, err = ops.fs.OpenFile(path+logSuffix, flags, 0o644); err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	fail := func(err error) (*segFiles, error) {
		f.closeAll()
		if create {
			ops.removeSegment(path)
		}
		return nil, err
	}
	// Index files are derived data: (re)create them freely.
	if f.oidx, err = ops.fs.OpenFile(path+indexSuffix, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return fail(fmt.Errorf("open index: %w", err))
	}
	if f.tidx, err = ops.fs.OpenFile(path+timeIndexSuffix, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return fail(fmt.Errorf("open time index: %w", err))
	}
	f.used.Store(true)
	return f, nil
}

func (f *segFiles) acquire() bool { return acquireRef(&f.refs) }

// acquireRef adds a reference unless the count already fell to 0 (gone for good).
func acquireRef(refs *atomic.Int32) bool {
	for {
		r := refs.Load()
		if r <= 0 {
			return false
		}
		if refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// release unpins the files; the last reference closes them.
func (f *segFiles) release() {
	if f.refs.Add(-1) == 0 {
		f.closeAll()
	}
}

// touch marks the files recently used; a load first keeps the cache line
// shared among readers in the common case.
func (f *segFiles) touch() {
	if !f.used.Load() {
		f.used.Store(true)
	}
}

// closeAll closes the files. Nothing is lost: every write went through the
// page cache, and a segment with data not yet fsynced is never evicted.
func (f *segFiles) closeAll() {
	f.ops.close(f.log)
	f.ops.close(f.oidx)
	f.ops.close(f.tidx)
}

// pin returns the segment's files, opening them if they are closed. The
// caller releases them. Fast path: one atomic load and one CAS, no lock.
func (s *segment) pin() (*segFiles, error) {
	if f := s.files.Load(); f != nil && f.acquire() {
		f.touch()
		return f, nil
	}
	return s.pinSlow()
}

func (s *segment) pinSlow() (*segFiles, error) {
	s.openMu.Lock()
	if f := s.files.Load(); f != nil && f.acquire() { // opened (or kept) meanwhile
		s.openMu.Unlock()
		f.touch()
		return f, nil
	}
	if s.gone {
		s.openMu.Unlock()
		return nil, errSegmentGone
	}
	f, err := openSegFiles(s.ops, s.path, false)
	if err != nil {
		s.openMu.Unlock()
		return nil, fmt.Errorf("reopen segment %s: %w", segmentName(s.base), err)
	}
	f.refs.Store(2) // installed, and this caller's
	over := s.installLocked(f)
	s.openMu.Unlock()
	if over != withinBudget {
		s.ops.files.afterOpen(over)
	}
	return f, nil
}

// tryPin pins the files only if they are open: for hints not worth opening them for.
func (s *segment) tryPin() *segFiles {
	if f := s.files.Load(); f != nil && f.acquire() {
		return f
	}
	return nil
}

// install makes freshly created files the segment's (the caller keeps no pin).
func (s *segment) install(f *segFiles) {
	f.refs.Store(1)
	s.openMu.Lock()
	over := s.installLocked(f)
	s.openMu.Unlock()
	if over != withinBudget {
		s.ops.files.afterOpen(over)
	}
}

// installLocked publishes f and reports how the budget stands now.
func (s *segment) installLocked(f *segFiles) budgetLevel {
	s.files.Store(f)
	return s.ops.files.add(s)
}

// closeFiles takes the files out of the segment for good: they close once
// the last user releases them, and they are never reopened.
func (s *segment) closeFiles() {
	s.openMu.Lock()
	s.gone = true
	f := s.files.Swap(nil)
	if f != nil {
		s.ops.files.remove(s)
	}
	s.openMu.Unlock()
	if f != nil {
		f.release()
	}
}

// setGone stops (or, when a rename failed, allows again) reopening the
// files by name: their names are about to change. Users of the open ones
// finish on them.
func (s *segment) setGone(gone bool) {
	s.openMu.Lock()
	s.gone = gone
	s.openMu.Unlock()
}

// clean reports whether everything written to the segment has been fsynced
// through its current files: only then may they be closed, so an fsync error
// is always reported on the descriptor that wrote the data.
func (s *segment) clean() bool { return s.size.Load() == s.synced.Load() }

// sync makes the segment's log file durable, and its indexes too when final
// (a rolled segment's), and records how much of it is on disk. Any failure of
// an fsync is a fault. A clean segment whose files are closed has nothing to
// sync and stays closed.
func (s *segment) sync(final bool) error {
	// What synced was before the fsync: a cut meanwhile (cutSegment sets it
	// to -1) must win over this fsync's size, which appends after the cut
	// could reach again with data this fsync never saw.
	synced := s.synced.Load()
	size := s.size.Load() // published after its bytes were written: the fsync covers them
	var f *segFiles
	if s.clean() {
		if f = s.tryPin(); f == nil {
			return nil
		}
	} else {
		var err error
		if f, err = s.pin(); err != nil {
			return fmt.Errorf("fsync segment %s: %w", segmentName(s.base), err)
		}
	}
	defer f.release()
	if err := s.ops.fs.Sync(f.log); err != nil {
		return fault(fmt.Errorf("fsync segment %s: %w", segmentName(s.base), err))
	}
	if final {
		if err := s.syncIndexFiles(f); err != nil {
			return err
		}
	}
	s.synced.CompareAndSwap(synced, size)
	return nil
}

// syncIdle fsyncs an idle segment's log file for the sweeper, which
// acquired it, so that its files may be closed; it reports whether it did.
// A failed fsync takes the log offline, as any other (see ErrLogOffline).
func (s *segment) syncIdle() bool {
	defer s.release()
	f := s.tryPin()
	if f == nil {
		return false // closed meanwhile (retired, or its log closed)
	}
	defer f.release()
	if err := s.sync(false); err != nil {
		_ = s.ops.fault(err) // the log is offline now; its writers see why
		return false
	}
	s.ops.files.synced.Add(1)
	return true
}

// syncIndexes makes both index files durable if they are open (at close);
// a failure is a fault. Closed ones are not reopened for it: indexes are
// derived data, checked on open.
func (s *segment) syncIndexes() error {
	f := s.tryPin()
	if f == nil {
		return nil
	}
	defer f.release()
	return s.syncIndexFiles(f)
}

func (s *segment) syncIndexFiles(f *segFiles) error {
	if err := s.ops.fs.Sync(f.oidx); err != nil {
		return fault(fmt.Errorf("fsync index %s: %w", segmentName(s.base), err))
	}
	if err := s.ops.fs.Sync(f.tidx); err != nil {
		return fault(fmt.Errorf("fsync time index %s: %w", segmentName(s.base), err))
	}
	return nil
}

// syncAll fsyncs all three files of a segment written whole (compaction's
// output); the caller decides what a failure means.
func (s *segment) syncAll() error {
	f, err := s.pin()
	if err != nil {
		return err
	}
	defer f.release()
	for _, file := range []*os.File{f.log, f.oidx, f.tidx} {
		if err := s.ops.fs.Sync(file); err != nil {
			return fmt.Errorf("fsync %s: %w", file.Name(), err)
		}
	}
	return nil
}

// FileBudget bounds how many segment files the logs sharing it keep open.
// Segments open their files on first use; when more are open than the budget
// allows, a sweeper (Run; Manager.Run runs it) closes the ones not used
// lately (a clock sweep, as page caches do), unless someone is using them.
// An idle segment holding data not yet fsynced is fsynced by the sweeper
// first, so that an fsync error still reaches the descriptor that wrote the
// data. A segment closed this way reopens transparently on its next read or
// write. The budget is soft: files in use stay open above it, and whoever
// opens a file past it only wakes the sweeper, never waits for it.
//
// Lock order: Log.mu, then segment.openMu, then FileBudget.mu. The sweep
// holds FileBudget.mu for a bounded number of segments at a time, only tries
// segments' openMu (TryLock), so it never waits for one, and fsyncs with
// neither held.
type FileBudget struct {
	max     int           // files allowed open; <= 0: no limit
	wakeups chan struct{} // one pending wake-up of the sweeper at most

	mu    sync.Mutex
	open  []*segment // segments with open files: the clock's ring
	hand  int
	files int // files open

	closed atomic.Int64 // files closed to stay within the budget
	synced atomic.Int64 // idle segments the sweeper fsynced to close them
}

// NewFileBudget returns a budget of max open files; max <= 0 means no limit
// (files still open lazily, but are only closed with their log).
func NewFileBudget(max int) *FileBudget {
	return &FileBudget{max: max, wakeups: make(chan struct{}, 1)}
}

// DefaultMaxOpenFiles is half the process's open-files limit
// (RLIMIT_NOFILE, which Go raises to the hard limit at start): the other
// half stays for connections, Raft and checkpoints. At least 64.
func DefaultMaxOpenFiles() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 4096
	}
	return int(max(64, min(rl.Cur/2, 1<<20)))
}

// Max is the budget (<= 0: unlimited).
func (b *FileBudget) Max() int { return b.max }

// Open is the number of segment files open now.
func (b *FileBudget) Open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.files
}

// Closed is how many files were closed to keep within the budget.
func (b *FileBudget) Closed() int64 { return b.closed.Load() }

// Synced is how many idle segments the sweeper fsynced so it could close them.
func (b *FileBudget) Synced() int64 { return b.synced.Load() }

// budgetLevel is how the open files stand against the budget.
type budgetLevel int

const (
	withinBudget  budgetLevel = iota
	overBudget                // the sweeper has work
	farOverBudget             // a quarter over: the sweeper is not keeping up
)

// add puts a segment whose files were just opened on the ring and reports
// how the budget stands; the caller holds s.openMu.
func (b *FileBudget) add(s *segment) budgetLevel {
	if b == nil {
		return withinBudget
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s.ring = len(b.open)
	b.open = append(b.open, s)
	b.files += filesPerSegment
	switch {
	case b.max <= 0 || b.files <= b.max:
		return withinBudget
	case b.files <= b.max+b.max/4:
		return overBudget
	}
	return farOverBudget
}

// afterOpen is what an opener does that went over the budget: it wakes
// the sweeper and goes on. Only far over it, where the sweeper is not
// keeping up (a starved goroutine, a burst of opens), does the opener also
// close idle, fsynced files itself, one bounded pass, so that the process
// does not run out of descriptors; it never fsyncs.
func (b *FileBudget) afterOpen(level budgetLevel) {
	select {
	case b.wakeups <- struct{}{}:
	default: // a wake-up is pending already
	}
	if level == farOverBudget {
		victims, _, _, _, _ := b.pass(false)
		for _, f := range victims {
			f.closeAll()
		}
	}
}

// remove takes a segment off the ring; the caller holds s.openMu.
func (b *FileBudget) remove(s *segment) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.removeLocked(s)
	b.mu.Unlock()
}

func (b *FileBudget) removeLocked(s *segment) {
	i := s.ring
	if i < 0 || i >= len(b.open) || b.open[i] != s {
		return
	}
	last := len(b.open) - 1
	b.open[i] = b.open[last]
	b.open[i].ring = i
	b.open[last] = nil
	b.open = b.open[:last]
	s.ring = -1
	b.files -= filesPerSegment
}

// The sweeper's work per hold of b.mu: how many ring entries it looks at,
// how many segments it closes, and how many idle unsynced ones it picks to
// fsync (with b.mu released).
const (
	sweepSteps   = 512
	sweepVictims = 64
	sweepSyncs   = 16
)

// Run is the sweeper: each time an open goes over the budget it closes
// files not used lately, down to 7/8 of the budget so that the next opens do
// not each wake it, until ctx ends. Without it the budget is not enforced.
func (b *FileBudget) Run(ctx context.Context) {
	if b.max <= 0 {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wakeups:
			b.sweep(ctx)
		}
	}
}

// sweepPending sweeps now if an open went over the budget since the last
// sweep: for opening a data dir, before the sweeper runs.
func (b *FileBudget) sweepPending(ctx context.Context) {
	select {
	case <-b.wakeups:
		b.sweep(ctx)
	default:
	}
}

// sweep runs passes of the clock until the budget is met again, or two
// turns of it found nothing more to close or fsync (everything is in use).
func (b *FileBudget) sweep(ctx context.Context) {
	fruitless := 0 // ring entries looked at since a pass last closed or fsynced something
	for ctx.Err() == nil {
		victims, idle, looked, ring, done := b.pass(true)
		for _, f := range victims {
			f.closeAll()
		}
		synced := 0
		for _, s := range idle {
			if s.syncIdle() {
				synced++
			}
		}
		if done {
			return
		}
		if len(victims) > 0 || synced > 0 {
			fruitless = 0
		} else if fruitless += looked; fruitless >= 2*ring { // two turns: the first may only clear used bits
			return
		}
	}
}

// pass moves the clock hand over at most sweepSteps segments while more
// files are open than the target: it takes the files of idle, fsynced ones
// out (victims, for the caller to close) and, with pick, picks idle ones
// holding data not yet fsynced (idle, acquired, for the caller to fsync and
// release). done: the target is met.
func (b *FileBudget) pass(pick bool) (victims []*segFiles, idle []*segment, looked, ring int, done bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	target := b.max - b.max/8
	for ; looked < sweepSteps && b.files > target && len(b.open) > 0 && len(victims) < sweepVictims; looked++ {
		if b.hand >= len(b.open) {
			b.hand = 0
		}
		s := b.open[b.hand]
		if pick && len(idle) < sweepSyncs && b.idleUnsynced(s) {
			idle = append(idle, s)
		} else if f := b.evict(s); f != nil { // the ring's last segment moved to the hand: look at it next
			victims = append(victims, f)
			continue
		}
		b.hand++
	}
	b.closed.Add(int64(len(victims) * filesPerSegment))
	return victims, idle, looked, len(b.open), b.files <= target
}

// idleUnsynced reports (and then acquires) a segment that nobody used since
// the last turn and nobody uses now, holding data not yet fsynced: the
// sweeper fsyncs it so it may close it. The caller holds b.mu.
func (b *FileBudget) idleUnsynced(s *segment) bool {
	f := s.files.Load()
	return f != nil && !f.used.Load() && f.refs.Load() == 1 && !s.clean() && !s.tempNames.Load() && s.acquire()
}

// evict takes s's files out of it (and s off the ring) if nobody uses them,
// they were not used since the last sweep, and everything written through
// them is fsynced. The caller holds b.mu and closes what it returns.
func (b *FileBudget) evict(s *segment) *segFiles {
	f := s.files.Load()
	if f == nil {
		return nil
	}
	if f.used.Load() {
		f.used.Store(false)
		return nil
	}
	if !s.clean() || s.tempNames.Load() || !s.openMu.TryLock() {
		return nil
	}
	defer s.openMu.Unlock()
	if s.files.Load() != f || !f.refs.CompareAndSwap(1, 0) {
		return nil // in use
	}
	// A writer may have appended between the check and the CAS (it held a
	// pin then, so its size is published now): look again.
	if !s.clean() {
		f.refs.Store(1) // nobody could pin it meanwhile: pinners wait on openMu
		return nil
	}
	s.files.Store(nil)
	b.removeLocked(s)
	return f
}
