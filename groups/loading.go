package groups

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Loading: the offsets partitions this node leads, each read into memory
// when the node becomes its leader and dropped with its groups when the
// leadership moves on.

// offsetsPart is one offsets partition this node leads.
type offsetsPart struct {
	p, epoch int32
	ready    chan struct{}   // closed once loaded
	ctx      context.Context // ends when the leadership (or the coordinator) does
	cancel   context.CancelFunc
	gone     atomic.Bool // resigned: its groups must not be used any more
	// handingOver: a handover of the partition (see handOver) is under way.
	handingOver atomic.Bool

	mu     sync.Mutex // guards groups
	groups map[string]*groupState
}

// resign marks the partition's groups unusable and stops its loader and
// the calls waiting for a turn to write.
func (op *offsetsPart) resign() {
	op.gone.Store(true)
	op.cancel()
}

// Sync tells the coordinator how many partitions the offsets topic has and
// which of them this node leads, with their leader epochs. Newly led
// partitions start loading; partitions led in another epoch reload;
// partitions no longer led are dropped with their groups.
func (c *Coordinator) Sync(numParts int32, led map[int32]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.numParts = numParts
	for p, op := range c.parts {
		if e, ok := led[p]; !ok || e != op.epoch {
			op.resign()
			delete(c.parts, p)
			c.log.Info("no longer coordinating offsets partition", "partition", p, "epoch", op.epoch)
		}
	}
	if c.ctx.Err() != nil {
		return
	}
	for p, e := range led {
		if _, ok := c.parts[p]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(c.ctx)
		op := &offsetsPart{p: p, epoch: e, ready: make(chan struct{}), ctx: ctx, cancel: cancel, groups: map[string]*groupState{}}
		c.parts[p] = op
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.load(ctx, op)
		}()
	}
}

// load reads an offsets partition into memory, retrying until it succeeds
// or the leadership (ctx) ends.
func (c *Coordinator) load(ctx context.Context, op *offsetsPart) {
	start := c.opts.Now()
	for attempt := 0; ; attempt++ {
		ld := NewLoader()
		err := c.env.LoadOffsets(ctx, op.p, op.epoch, func(k, v []byte) { _ = ld.Apply(k, v) })
		if err == nil {
			groups := map[string]*groupState{}
			for name, lg := range ld.Groups() {
				o := lg.Options()
				o.NewUUID = c.opts.NewUUID
				groups[name] = newGroupState(op, NewGroup(name, o))
			}
			n := len(groups) // groups belongs to the callers once published
			op.mu.Lock()
			op.groups = groups
			op.mu.Unlock()
			close(op.ready)
			c.log.Info("coordinating offsets partition", "partition", op.p, "epoch", op.epoch, "groups", n,
				"records", ld.Records, "malformed", ld.Errors, "took", c.opts.Now().Sub(start))
			if ld.Errors > 0 {
				c.log.Warn("malformed records in the offsets topic were skipped", "partition", op.p, "count", ld.Errors, "last", ld.LastError)
			}
			c.TopicsChanged()
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt%20 == 0 {
			c.log.Debug("loading offsets partition", "partition", op.p, "epoch", op.epoch, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Partition returns the offsets partition of group (-1 before the offsets
// topic exists).
func (c *Coordinator) Partition(group string) int32 {
	c.mu.Lock()
	n := c.numParts
	c.mu.Unlock()
	if n <= 0 {
		return -1
	}
	return OffsetsPartition(group, int(n))
}

// WaitLoaded waits until the offsets partition of group is loaded here, so
// the first call after a leadership change need not bounce to the client.
// It returns early if this node does not lead that partition.
func (c *Coordinator) WaitLoaded(ctx context.Context, group string) {
	c.mu.Lock()
	var ready chan struct{}
	if c.numParts > 0 {
		if op, ok := c.parts[OffsetsPartition(group, int(c.numParts))]; ok {
			ready = op.ready
		}
	}
	c.mu.Unlock()
	if ready == nil {
		return
	}
	select {
	case <-ready:
	case <-ctx.Done():
	}
}

// part returns the loaded offsets partition of group.
func (c *Coordinator) part(group string) (*offsetsPart, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.numParts <= 0 {
		return nil, fmt.Errorf("%w: the offsets topic does not exist yet", ErrNotCoordinator)
	}
	p := OffsetsPartition(group, int(c.numParts))
	op, ok := c.parts[p]
	if !ok {
		return nil, fmt.Errorf("%w: this node does not lead offsets partition %d of group %q", ErrNotCoordinator, p, group)
	}
	select {
	case <-op.ready:
		return op, nil
	default:
		return nil, fmt.Errorf("%w: offsets partition %d of group %q is still loading", ErrLoadInProgress, p, group)
	}
}

// allGroups returns the loaded groups.
func (c *Coordinator) allGroups() []*groupState {
	c.mu.Lock()
	parts := slices.Collect(maps.Values(c.parts))
	c.mu.Unlock()
	var out []*groupState
	for _, op := range parts {
		select {
		case <-op.ready:
		default:
			continue
		}
		op.mu.Lock()
		out = append(out, slices.Collect(maps.Values(op.groups))...)
		op.mu.Unlock()
	}
	return out
}
