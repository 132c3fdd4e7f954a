package replication

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"weir/errcode"
	"weir/logstore"
)

// Acks is how much of a write must be done before a produce is answered.
type Acks int

// The acks levels of Kafka's producers.
const (
	AcksNone   Acks = 0  // answer at once; the write is not waited for
	AcksLeader Acks = 1  // answer once the leader appended
	AcksAll    Acks = -1 // answer once the HW passed the write
)

// ParseAcks reads "0", "1", "all" or "-1".
func ParseAcks(s string) (Acks, error) {
	switch s {
	case "", "all", "-1":
		return AcksAll, nil
	case "1":
		return AcksLeader, nil
	case "0":
		return AcksNone, nil
	}
	return 0, fmt.Errorf("acks must be 0, 1 or all, got %q", s)
}

// Errors of the replica manager.
var (
	ErrNotLeader         = errcode.New(errcode.NotLeaderOrFollower, "this node is not the partition's leader")
	ErrUnknownPartition  = errcode.New(errcode.UnknownTopicOrPartition, "this node holds no replica of the partition")
	ErrNotEnoughReplicas = errcode.New(errcode.NotEnoughReplicas, "the in-sync replicas are fewer than min.insync.replicas")
)

// DefaultReplicaLagTimeMax is Kafka's replica.lag.time.max.ms.
const DefaultReplicaLagTimeMax = 10 * time.Second

// followerState is what the leader knows of one follower replica (Kafka's
// ReplicaState).
type followerState struct {
	leo                int64     // fetch offset of its last fetch: its log end; -1 unknown
	lastCaughtUp       time.Time // last time its fetch offset reached the leader's end
	lastFetch          time.Time
	lastFetchLeaderEnd int64 // the leader's end at its last fetch; -1 unknown
	brokerEpoch        int64 // highest broker epoch seen; kept across leader epochs
}

// isrChange is an AlterPartition request in flight.
type isrChange struct {
	seq uint64
	isr []int32
}

// Partition is this node's replica of one partition.
type Partition struct {
	Topic string
	Index int32
	log   *logstore.Log
	self  int32
	now   func() time.Time

	// roleMu orders leader appends against role changes: Append holds it
	// shared from its leadership check through the log append, a role change
	// holds it exclusively. So once setState made this replica a follower no
	// leader append is still on its way, and the fetcher is the only writer.
	roleMu sync.RWMutex

	mu             sync.Mutex
	known          bool // setState ran: the epochs below are the metadata's
	leader         bool
	leaderID       int32
	leaderEpoch    int32
	partitionEpoch int32
	replicas       []int32
	isr            []int32    // as the controller committed it
	pending        *isrChange // our AlterPartition in flight, if any
	isrSeq         uint64
	isrFailedAt    time.Time // last failed AlterPartition (paces fetch-triggered retries)
	minISR         int
	lagMax         time.Duration
	epochStart     int64 // log end when this replica became leader in its epoch
	followers      map[int32]*followerState
	notify         chan struct{} // closed when the HW moves or the role changes

	wmu     sync.Mutex
	waiters map[chan struct{}]struct{} // parked follower fetches, woken when there may be more to serve

	hw     atomic.Int64
	onHW   func()        // the manager's broadcast, called after the HW moved
	dirty  chan struct{} // wakes the flusher after a write nobody waits to fsync
	cancel context.CancelFunc
	done   chan struct{}
}

func newPartition(topic string, index int32, log *logstore.Log, self int32, hw int64, now func() time.Time, onHW func()) *Partition {
	p := &Partition{Topic: topic, Index: index, log: log, self: self, now: now, leaderID: -1,
		followers: map[int32]*followerState{}, notify: make(chan struct{}), waiters: map[chan struct{}]struct{}{},
		onHW: onHW, dirty: make(chan struct{}, 1), done: make(chan struct{})}
	p.hw.Store(hw)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.flusher(ctx)
	return p
}

// Log is the partition's log.
func (p *Partition) Log() *logstore.Log { return p.log }

// Offline is nil while the replica's log takes writes, and the log's offline
// error (wrapping logstore.ErrLogOffline) once a storage failure took it
// offline: the replica then neither leads (appends and follower fetches are
// refused), nor fetches, nor asks for ISR changes, until the node restarts.
func (p *Partition) Offline() error { return p.log.Offline() }

// HighWatermark is the first offset not yet committed.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// State returns the partition's leadership as this node knows it (the ISR as
// the controller committed it).
func (p *Partition) State() (leader bool, epoch int32, replicas, isr []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leader, p.leaderEpoch, slices.Clone(p.replicas), slices.Clone(p.isr)
}

// LeaderEpochStartOffset is the log end offset at which this replica became
// leader in its current epoch (-1 when it is not the leader). A new leader
// should answer "latest offset" only once its HW has reached it.
func (p *Partition) LeaderEpochStartOffset() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.leader {
		return -1
	}
	return p.epochStart
}

// setState applies what the metadata says of the partition. An assignment
// older than what this replica already knows (a lagging metadata image, or
// one that predates an AlterPartition result applied here) is ignored; it
// reports whether the assignment was applied.
func (p *Partition) setState(a Assignment) bool {
	p.roleMu.Lock()
	p.mu.Lock()
	if p.known && (a.LeaderEpoch < p.leaderEpoch || (a.LeaderEpoch == p.leaderEpoch && a.PartitionEpoch < p.partitionEpoch)) {
		p.mu.Unlock()
		p.roleMu.Unlock()
		return false
	}
	newEpoch := !p.known || a.LeaderEpoch != p.leaderEpoch
	wasLeader := p.leader
	if newEpoch || a.PartitionEpoch != p.partitionEpoch {
		p.pending = nil // the committed state supersedes whatever we asked for
	}
	p.leader = a.Leader == p.self
	p.leaderID, p.leaderEpoch, p.partitionEpoch = a.Leader, a.LeaderEpoch, a.PartitionEpoch
	p.replicas, p.isr, p.minISR = slices.Clone(a.Replicas), slices.Clone(a.ISR), a.MinISR
	p.lagMax = a.ReplicaLagTimeMax
	if p.lagMax <= 0 {
		p.lagMax = DefaultReplicaLagTimeMax
	}
	for r := range p.followers {
		if !slices.Contains(p.replicas, r) {
			delete(p.followers, r)
		}
	}
	if p.leader && (newEpoch || !wasLeader) {
		// As Kafka's makeLeader: follower log ends are unknown until they
		// fetch in this epoch (so the HW waits for every ISR member), and ISR
		// members count as caught up now, so none is dropped for a lag it
		// built up under another leader.
		p.epochStart = p.log.LogEndOffset()
		now := p.now()
		for _, r := range p.replicas {
			if r == p.self {
				continue
			}
			fs := p.followers[r]
			if fs == nil {
				fs = &followerState{}
				p.followers[r] = fs
			}
			fs.leo, fs.lastFetchLeaderEnd, fs.lastFetch = -1, -1, time.Time{}
			if slices.Contains(p.isr, r) {
				fs.lastCaughtUp = now
			} else if !wasLeader {
				fs.lastCaughtUp = time.Time{}
			}
		}
	}
	if newEpoch || wasLeader != p.leader {
		// Wake acks=all waiters: a write of an earlier leadership must not be
		// acknowledged by a HW that now moves for another reason.
		close(p.notify)
		p.notify = make(chan struct{})
	}
	p.known = true
	p.mu.Unlock()
	p.roleMu.Unlock()
	p.signalWaiters()
	p.updateHW()
	return true
}

// Append writes a batch as leader and waits as acks asks. The batch is stamped
// in place with its offsets and the leader epoch.
func (p *Partition) Append(ctx context.Context, batch []byte, acks Acks) (logstore.AppendResult, error) {
	return p.append(ctx, batch, acks, -1)
}

// AppendInEpoch is Append only while this replica leads in leaderEpoch: a
// writer whose state was built in one leadership (a group coordinator) must
// not write into a later one.
func (p *Partition) AppendInEpoch(ctx context.Context, batch []byte, acks Acks, leaderEpoch int32) (logstore.AppendResult, error) {
	return p.append(ctx, batch, acks, leaderEpoch)
}

func (p *Partition) append(ctx context.Context, batch []byte, acks Acks, wantEpoch int32) (logstore.AppendResult, error) {
	p.roleMu.RLock()
	p.mu.Lock()
	leader, epoch, isr, minISR := p.leader, p.leaderEpoch, len(p.isr), p.minISR
	p.mu.Unlock()
	if !leader || (wantEpoch >= 0 && epoch != wantEpoch) {
		p.roleMu.RUnlock()
		return logstore.AppendResult{}, ErrNotLeader
	}
	if acks == AcksAll && isr < minISR {
		p.roleMu.RUnlock()
		return logstore.AppendResult{}, fmt.Errorf("%w: %d in sync, min.insync.replicas is %d", ErrNotEnoughReplicas, isr, minISR)
	}
	res, err := p.log.AppendAsLeaderNoWait(batch, epoch)
	p.roleMu.RUnlock()
	if err != nil {
		return res, fmt.Errorf("append to %s-%d: %w", p.Topic, p.Index, err)
	}
	end := res.LastOffset + 1
	fsyncAlways := p.log.Config().Fsync == logstore.FsyncAlways
	if acks != AcksAll {
		if !fsyncAlways {
			p.signalWaiters() // followers may copy it at once
		}
		p.markDirty() // nobody waits: the flusher makes it durable and moves the HW
		return res, nil
	}
	if fsyncAlways {
		if err := p.log.WaitDurable(ctx, end); err != nil {
			return res, fmt.Errorf("append to %s-%d: %w", p.Topic, p.Index, err)
		}
	}
	p.signalWaiters()
	p.updateHW()
	return res, p.waitCommitted(ctx, epoch, end-1)
}

// waitCommitted waits until the HW passed offset while this replica still
// leads in epoch; losing the leadership fails the wait with ErrNotLeader (the
// new leader may not have the write, and a follower's HW says nothing of it).
func (p *Partition) waitCommitted(ctx context.Context, epoch int32, offset int64) error {
	for {
		p.mu.Lock()
		ch, leads := p.notify, p.leader && p.leaderEpoch == epoch
		hw := p.hw.Load()
		p.mu.Unlock()
		if !leads {
			return fmt.Errorf("%w: leadership of %s-%d changed while waiting for the write to commit", ErrNotLeader, p.Topic, p.Index)
		}
		if hw > offset {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *Partition) markDirty() {
	select {
	case p.dirty <- struct{}{}:
	default:
	}
}

// flusher makes writes that nobody waited on durable (acks 0/1, fsync never)
// and moves the HW after them, so followers and consumers see them promptly.
func (p *Partition) flusher(ctx context.Context) {
	defer close(p.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.dirty:
		}
		if p.log.Config().Fsync == logstore.FsyncAlways {
			if err := p.log.Sync(ctx); err != nil {
				continue // closed or cancelled; the next write or shutdown sorts it out
			}
		}
		p.signalWaiters()
		p.updateHW()
	}
}

// committedEnd is what this replica's own log contributes to the HW and what
// it serves to followers: its durable end with fsync always, its end otherwise.
func (p *Partition) committedEnd() int64 {
	if p.log.Config().Fsync == logstore.FsyncAlways {
		return p.log.DurableOffset()
	}
	return p.log.LogEndOffset()
}

// maximalISRLocked is the set the HW waits for (Kafka's maximal ISR): the
// committed ISR plus a pending expansion. A pending shrink is a subset of the
// committed ISR, so the replicas it drops keep counting until it commits.
func (p *Partition) maximalISRLocked() []int32 {
	if p.pending == nil {
		return p.isr
	}
	out := slices.Clone(p.isr)
	for _, r := range p.pending.isr {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// updateHW recomputes a leader's HW, min over the maximal ISR of the log
// ends (ours: the committed end), and wakes waiters if it moved. It never
// moves backwards and stays put while the ISR is below min.insync.replicas.
func (p *Partition) updateHW() {
	p.mu.Lock()
	moved := p.advanceHWLocked()
	p.mu.Unlock()
	if moved && p.onHW != nil {
		p.onHW()
	}
}

func (p *Partition) advanceHWLocked() bool {
	if !p.leader || len(p.isr) < p.minISR {
		return false
	}
	hw := p.committedEnd()
	for _, r := range p.maximalISRLocked() {
		if r == p.self {
			continue
		}
		fs := p.followers[r]
		if fs == nil || fs.leo < 0 {
			return false // not heard from in this epoch: it may lack anything
		}
		hw = min(hw, fs.leo)
	}
	return p.setHWLocked(hw)
}

// setHWLocked raises the HW to hw (never lowers it) and wakes its waiters.
func (p *Partition) setHWLocked(hw int64) bool {
	if hw <= p.hw.Load() {
		return false
	}
	p.hw.Store(hw)
	close(p.notify)
	p.notify = make(chan struct{})
	return true
}

// WaitHW returns once the HW is above offset, or when ctx ends (then with its error).
func (p *Partition) WaitHW(ctx context.Context, offset int64) error {
	for {
		p.mu.Lock()
		ch := p.notify
		p.mu.Unlock()
		if p.hw.Load() > offset {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Changed returns a channel closed when the HW next moves.
func (p *Partition) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notify
}

// Read returns committed batches (below the HW) from offset on.
//
// An offset between the HW and the log end is not out of range: it answers
// nothing yet. A consumer that read up to the old leader's HW may be ahead of
// a new leader's HW for one fetch round, and must not be told to reset (as in
// Kafka). Past the log end is out of range.
func (p *Partition) Read(offset int64, maxBytes int) (logstore.ReadResult, int64, error) {
	hw := p.hw.Load()
	res, err := p.log.Read(offset, maxBytes, hw)
	return res, hw, err
}

// addWaiter registers a parked fetch; signalWaiters pokes every one.
func (p *Partition) addWaiter(ch chan struct{}) {
	p.wmu.Lock()
	p.waiters[ch] = struct{}{}
	p.wmu.Unlock()
}

func (p *Partition) removeWaiter(ch chan struct{}) {
	p.wmu.Lock()
	delete(p.waiters, ch)
	p.wmu.Unlock()
}

// signalWaiters wakes parked fetches: the committed end or the state moved.
func (p *Partition) signalWaiters() {
	p.wmu.Lock()
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default: // already poked
		}
	}
	p.wmu.Unlock()
}

// stop ends the flusher and wakes parked fetches; the log stays open (the log
// manager owns it).
func (p *Partition) stop() {
	p.cancel()
	<-p.done
	p.signalWaiters()
}

// --- follower side ---

// advanceFollowerHW sets a follower's HW to min(leader's HW, local log end),
// never lowering it (only a truncation may, see clampHW).
func (p *Partition) advanceFollowerHW(leaderHW int64) {
	p.mu.Lock()
	moved := !p.leader && p.setHWLocked(min(leaderHW, p.log.LogEndOffset()))
	p.mu.Unlock()
	if moved && p.onHW != nil {
		p.onHW()
	}
}

// clampHW lowers the HW to a truncated log end. Committed offsets are on
// every ISR member, so this only happens after an unclean election or a
// crash that lost unsynced data (fsync never); it reports whether it did.
func (p *Partition) clampHW(end int64) bool {
	p.mu.Lock()
	lowered := p.hw.Load() > end
	if lowered {
		p.hw.Store(end)
		close(p.notify)
		p.notify = make(chan struct{})
	}
	p.mu.Unlock()
	if lowered && p.onHW != nil {
		p.onHW()
	}
	return lowered
}
