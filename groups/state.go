package groups

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// A group's state, its lock and its durable writes.
//
// A call decides under the group's lock (gs.mu) and never does I/O while
// holding it. A call that must write to the offsets topic first takes the
// group's write turn (gs.turn), so that a group has one durable write in
// flight and its records reach the log in the order they were decided;
// then it decides under the lock, appends with no lock held, and re-takes
// the lock to apply what the write made durable (persist). Calls that need
// no write (describe, a heartbeat of a generation already written, expiry,
// stats) take only the lock, so a slow write delays none of them.

// groupState is a group and what the coordinator keeps beside it.
type groupState struct {
	part *offsetsPart
	// turn holds a token while a call of the group has a durable write to
	// make (or in flight). Taken before mu, never while holding it.
	turn chan struct{}

	mu sync.Mutex // guards what follows; never held across I/O
	g  *Group
	// removed: deleted and dropped from part.groups; look the group up again.
	removed bool
	// persistedGen is the generation durably recorded; a generation is
	// written before any member learns it, so a later coordinator never
	// hands out the same generation with another assignment.
	persistedGen int32
	// positions: member -> partition -> next offset to read, as far as
	// the member acknowledged (or did not say otherwise).
	positions map[string]map[TopicPartition]int64
	// polls: member -> its last poll, whose positions wait for the
	// member to acknowledge the reply (see PollStart).
	polls map[string]*pendingPoll
	// logEnd: the last high watermark seen per partition (for lag).
	logEnd map[TopicPartition]int64
}

// pendingPoll is a poll whose reply the member may or may not have received.
type pendingPoll struct {
	id         int64
	generation int32
	next       map[TopicPartition]int64 // nil once settled
	// acks: the member's last poll carried an ack, so it says which
	// replies it received (see Leave).
	acks bool
}

func newGroupState(op *offsetsPart, g *Group) *groupState {
	return &groupState{part: op, turn: make(chan struct{}, 1), g: g, persistedGen: g.Generation(),
		positions: map[string]map[TopicPartition]int64{}, polls: map[string]*pendingPoll{}, logEnd: map[TopicPartition]int64{}}
}

// ValidateGroupName refuses names that cannot be a group id.
func ValidateGroupName(group string) error {
	switch {
	case group == "":
		return fmt.Errorf("%w: group: empty name", ErrInvalidRequest)
	case len(group) > 255:
		return fmt.Errorf("%w: group: name longer than 255 bytes", ErrInvalidRequest)
	}
	for _, r := range group {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: group: control character in %q", ErrInvalidRequest, group)
		}
	}
	return nil
}

// errRemoved: the group was deleted after it was looked up.
var errRemoved = errors.New("group removed")

// lookup returns a group's state, unlocked. create makes a missing group;
// without it a missing group is GROUP_ID_NOT_FOUND.
func (c *Coordinator) lookup(group string, create bool) (*groupState, error) {
	if err := ValidateGroupName(group); err != nil {
		return nil, err
	}
	op, err := c.part(group)
	if err != nil {
		return nil, err
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	gs, ok := op.groups[group]
	if !ok {
		if !create {
			return nil, fmt.Errorf("%w: group %q does not exist", ErrDeadGroup, group)
		}
		gs = newGroupState(op, NewGroup(group, Options{NewUUID: c.opts.NewUUID}))
		op.groups[group] = gs
	}
	return gs, nil
}

// servable checks, under the group's lock, that the group may be served
// from memory.
func (c *Coordinator) servable(gs *groupState) error {
	name := gs.g.Name()
	switch {
	case gs.part.gone.Load():
		return fmt.Errorf("%w: this node stopped coordinating group %q", ErrNotCoordinator, name)
	case c.opts.MetadataCurrent != nil && !c.opts.MetadataCurrent():
		// Checked under the group's lock: a call that waited for its turn
		// must not answer from memory another coordinator has outdated.
		return fmt.Errorf("%w: this node has not heard from the controller lately, so it may no longer coordinate group %q", ErrNotCoordinator, name)
	case gs.removed:
		return errRemoved
	}
	return nil
}

// locked runs fn with gs locked, if the group may be served.
func (c *Coordinator) locked(gs *groupState, fn func() error) error {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if err := c.servable(gs); err != nil {
		return err
	}
	return fn()
}

// withGroup runs fn with the group locked. fn must not do I/O.
func (c *Coordinator) withGroup(group string, create bool, fn func(gs *groupState) error) error {
	for {
		gs, err := c.lookup(group, create)
		if err != nil {
			return err
		}
		err = c.locked(gs, func() error { return fn(gs) })
		if errors.Is(err, errRemoved) {
			if create {
				continue // deleted meanwhile: a new group of that name
			}
			return fmt.Errorf("%w: group %q does not exist", ErrDeadGroup, group)
		}
		return err
	}
}

// inTurn runs fn in the group's write turn: no other call of the group
// writes until fn returns. fn takes the group's lock itself (locked) for
// its decisions and writes with persist, holding no lock.
func (c *Coordinator) inTurn(ctx context.Context, group string, create bool, fn func(gs *groupState) error) error {
	for {
		gs, err := c.lookup(group, create)
		if err != nil {
			return err
		}
		select {
		case gs.turn <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("waiting for an earlier write of group %q: %w", group, ctx.Err())
		case <-gs.part.ctx.Done():
			return fmt.Errorf("%w: this node stopped coordinating group %q", ErrNotCoordinator, group)
		}
		err = fn(gs)
		<-gs.turn
		if errors.Is(err, errRemoved) {
			if create {
				continue
			}
			return fmt.Errorf("%w: group %q does not exist", ErrDeadGroup, group)
		}
		return err
	}
}

// groupWrite is a durable write decided under the group's lock: its
// records, and what they make true once durable.
type groupWrite struct {
	recs []KV
	gen  int32          // the generation the records persist (0: none)
	offs []CommitOffset // offsets they commit
	at   int64          // the commit time of offs (ms since the epoch)
	// bestEffort, when set, names a write whose failure the call survives
	// (an auto-commit: retried later, or its records served again): it is
	// logged under that name instead of failing the call.
	bestEffort string
}

func (w groupWrite) empty() bool { return len(w.recs) == 0 }

// and appends o's records after w's, for one append.
func (w groupWrite) and(o groupWrite) groupWrite {
	out := groupWrite{recs: append(slices.Clip(w.recs), o.recs...), gen: max(w.gen, o.gen),
		offs: append(slices.Clip(w.offs), o.offs...), at: max(w.at, o.at)}
	switch { // with a part that must not fail, the whole must not
	case o.empty():
		out.bestEffort = w.bestEffort
	case w.empty():
		out.bestEffort = o.bestEffort
	case w.bestEffort != "" && o.bestEffort != "":
		out.bestEffort = w.bestEffort + " and " + o.bestEffort
	}
	return out
}

// update runs decide under the group's lock and, when it returns records
// to write, again in the group's turn (the group may have changed while
// the call waited for it), then makes what it returns then durable. decide
// must therefore be safe to run twice; with nothing to write, the call
// takes only the lock.
func (c *Coordinator) update(ctx context.Context, group string, decide func(gs *groupState) (groupWrite, error)) error {
	var w groupWrite
	err := c.withGroup(group, false, func(gs *groupState) (err error) {
		w, err = decide(gs)
		return err
	})
	if err != nil || w.empty() {
		return err
	}
	return c.inTurn(ctx, group, false, func(gs *groupState) error {
		err := c.locked(gs, func() (err error) {
			w, err = decide(gs)
			return err
		})
		if err != nil {
			return err
		}
		return c.persist(ctx, gs, w)
	})
}

// persist appends w to the group's offsets partition, in the leader epoch
// the partition was loaded in, and applies it once durable. The caller
// holds the group's turn and not its lock. Applying does not depend on
// what changed meanwhile: the records are in the log, and a reload would
// apply them too.
func (c *Coordinator) persist(ctx context.Context, gs *groupState, w groupWrite) error {
	if w.empty() {
		return nil
	}
	start := time.Now()
	if err := c.env.AppendOffsets(ctx, gs.part.p, gs.part.epoch, w.recs); err != nil {
		err = fmt.Errorf("writing group %q to offsets partition %d: %w", gs.g.Name(), gs.part.p, err)
		if errors.Is(err, ErrDiskRefused) {
			err = c.handOver(ctx, gs.part, err)
		}
		if w.bestEffort != "" {
			c.log.Info(w.bestEffort+" failed", "err", err)
			return nil
		}
		return err
	}
	if len(w.offs) > 0 && c.opts.ObserveCommit != nil {
		c.opts.ObserveCommit(time.Since(start))
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.persistedGen = max(gs.persistedGen, w.gen)
	gs.g.ApplyOffsets(w.offs, w.at)
	return nil
}

// handOver moves an offsets partition whose writes this node's disk refuses
// to another in-sync replica, so that its groups are coordinated where
// their generations and commits can be written (Kafka takes a failed log
// directory offline for the same reason): a coordinator that cannot write
// can take no join. The partition's groups are dropped here at once, and
// the call answers NOT_COORDINATOR, which clients retry at the new
// coordinator. Without another in-sync replica the call answers cause.
func (c *Coordinator) handOver(ctx context.Context, op *offsetsPart, cause error) error {
	if !op.handingOver.CompareAndSwap(false, true) {
		return cause // another call of the partition is handing it over
	}
	to, err := c.env.HandOver(ctx, op.p, op.epoch)
	if err != nil {
		op.handingOver.Store(false)
		c.log.Warn("cannot hand over an offsets partition this node's disk refuses to write", "partition", op.p,
			"epoch", op.epoch, "cause", cause, "err", err)
		return cause
	}
	op.resign()
	c.log.Warn("handed over an offsets partition this node's disk refuses to write", "partition", op.p,
		"epoch", op.epoch, "to", to, "cause", cause)
	return fmt.Errorf("%w: offsets partition %d moved to broker %d (%v)", ErrNotCoordinator, op.p, to, cause)
}

// generationWrite returns the write that makes the current generation
// durable, empty if it is already. Under the group's lock.
func (c *Coordinator) generationWrite(gs *groupState) groupWrite {
	gen := gs.g.Generation()
	if gen <= gs.persistedGen {
		return groupWrite{}
	}
	k, v := EncodeGroupMetadata(gs.g.Name(), gen, string(gs.g.Assignor()), c.opts.Now().UnixMilli())
	return groupWrite{recs: []KV{{k, v}}, gen: gen}
}

// commitWrite checks a commit's fencing (stale generations and unknown
// members are refused here, before anything is written) and returns the
// write of its offsets. Under the group's lock.
func (c *Coordinator) commitWrite(gs *groupState, member string, gen int32, offs []CommitOffset) (groupWrite, error) {
	if err := validateOffsets(offs); err != nil {
		return groupWrite{}, err
	}
	now := c.opts.Now()
	if err := gs.g.CheckCommit(member, gen, now); err != nil {
		return groupWrite{}, err
	}
	w := groupWrite{recs: make([]KV, 0, len(offs)), offs: offs, at: now.UnixMilli()}
	for _, o := range offs {
		k, v := EncodeOffsetCommit(gs.g.Name(), o.Topic, o.Partition, o.Offset, o.Metadata, w.at)
		w.recs = append(w.recs, KV{k, v})
	}
	return w, nil
}

// prune drops positions of members that left and of partitions a member no
// longer holds, so a partition that comes back starts at its committed offset.
func (gs *groupState) prune() {
	for id := range gs.polls {
		if !gs.g.HasMember(id) {
			delete(gs.polls, id)
		}
	}
	for id, pos := range gs.positions {
		a, err := gs.g.Assignment(id)
		if err != nil {
			delete(gs.positions, id)
			continue
		}
		for tp := range pos {
			if !slices.Contains(a, tp) {
				delete(pos, tp)
			}
		}
	}
}

// memberPositions returns the member's positions, made if missing.
func (gs *groupState) memberPositions(member string) map[TopicPartition]int64 {
	pos := gs.positions[member]
	if pos == nil {
		pos = map[TopicPartition]int64{}
		gs.positions[member] = pos
	}
	return pos
}
