package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

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
	ErrNotLeader         = errors.New("this node is not the partition's leader")
	ErrUnknownPartition  = errors.New("this node holds no replica of the partition")
	ErrNotEnoughReplicas = errors.New("the in-sync replicas are fewer than min.insync.replicas")
)

// Partition is this node's replica of one partition.
type Partition struct {
	Topic string
	Index int32
	log   *logstore.Log

	mu          sync.Mutex
	leader      bool
	leaderEpoch int32
	replicas    []int32
	isr         []int32
	minISR      int
	notify      chan struct{} // closed when the HW moves; guarded by mu

	hw     atomic.Int64
	onHW   func()        // the manager's broadcast, called after the HW moved
	dirty  chan struct{} // wakes the flusher after a write nobody waits to fsync
	cancel context.CancelFunc
	done   chan struct{}
}

func newPartition(topic string, index int32, log *logstore.Log, onHW func()) *Partition {
	p := &Partition{Topic: topic, Index: index, log: log, notify: make(chan struct{}),
		onHW: onHW, dirty: make(chan struct{}, 1), done: make(chan struct{})}
	p.hw.Store(log.DurableOffset())
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.flusher(ctx)
	return p
}

// Log is the partition's log.
func (p *Partition) Log() *logstore.Log { return p.log }

// HighWatermark is the first offset not yet committed.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// State returns the partition's leadership as this node knows it.
func (p *Partition) State() (leader bool, epoch int32, replicas, isr []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leader, p.leaderEpoch, append([]int32(nil), p.replicas...), append([]int32(nil), p.isr...)
}

// setState applies what the metadata says of the partition.
func (p *Partition) setState(leader bool, epoch int32, replicas, isr []int32, minISR int) {
	p.mu.Lock()
	p.leader, p.leaderEpoch, p.replicas, p.isr, p.minISR = leader, epoch, replicas, isr, minISR
	p.mu.Unlock()
	p.updateHW()
}

// Append writes a batch as leader and waits as acks asks. The batch is stamped
// in place with its offsets and the leader epoch.
func (p *Partition) Append(ctx context.Context, batch []byte, acks Acks) (logstore.AppendResult, error) {
	p.mu.Lock()
	leader, epoch, isr, minISR := p.leader, p.leaderEpoch, len(p.isr), p.minISR
	p.mu.Unlock()
	if !leader {
		return logstore.AppendResult{}, ErrNotLeader
	}
	if acks == AcksAll && isr < minISR {
		return logstore.AppendResult{}, fmt.Errorf("%w: %d in sync, min.insync.replicas is %d", ErrNotEnoughReplicas, isr, minISR)
	}
	res, err := p.log.AppendAsLeaderNoWait(batch, epoch)
	if err != nil {
		return res, err
	}
	end := res.LastOffset + 1
	if acks != AcksAll {
		p.markDirty() // nobody waits: the flusher makes it durable and moves the HW
		return res, nil
	}
	if p.log.Config().Fsync == logstore.FsyncAlways {
		if err := p.log.WaitDurable(ctx, end); err != nil {
			return res, err
		}
	}
	p.updateHW()
	return res, p.WaitHW(ctx, end-1)
}

func (p *Partition) markDirty() {
	select {
	case p.dirty <- struct{}{}:
	default:
	}
}

// flusher makes writes that nobody waited on durable (acks 0/1, fsync never)
// and moves the HW after them, so consumers see them promptly.
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
		p.updateHW()
	}
}

// committedEnd is what this replica's own log contributes to the HW: its
// durable end with fsync always, its end otherwise.
func (p *Partition) committedEnd() int64 {
	if p.log.Config().Fsync == logstore.FsyncAlways {
		return p.log.DurableOffset()
	}
	return p.log.LogEndOffset()
}

// updateHW recomputes the HW (one replica in sync: our committed end) and
// wakes waiters if it moved. It never moves backwards.
func (p *Partition) updateHW() {
	p.mu.Lock()
	if !p.leader {
		p.mu.Unlock()
		return
	}
	if len(p.isr) < p.minISR { // frozen below min.insync.replicas
		p.mu.Unlock()
		return
	}
	hw := p.committedEnd()
	if hw <= p.hw.Load() {
		p.mu.Unlock()
		return
	}
	p.hw.Store(hw)
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
	if p.onHW != nil {
		p.onHW()
	}
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
func (p *Partition) Read(offset int64, maxBytes int) (logstore.ReadResult, int64, error) {
	hw := p.hw.Load()
	res, err := p.log.Read(offset, maxBytes, hw)
	if err == nil && offset > hw {
		err = &logstore.OutOfRangeError{Offset: offset, LogStartOffset: res.LogStartOffset, LogEndOffset: hw}
	}
	return res, hw, err
}

// stop ends the flusher; the log stays open (the log manager owns it).
func (p *Partition) stop() {
	p.cancel()
	<-p.done
}
