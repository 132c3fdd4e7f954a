package groups

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"weir/client"
)

// Offsets: commits, a member's polls (its positions, settled by its acks,
// and auto-commit) and seeks. Commits are checked against the generation
// under the group's lock before anything is written, and applied once
// durable; log bounds are asked of the partitions' leaders with no lock
// held.

// positionsWrite returns the write committing the member's positions that
// differ from the committed offsets, in the current generation. Under the
// group's lock.
func (c *Coordinator) positionsWrite(gs *groupState, member string) (groupWrite, error) {
	var offs []CommitOffset
	for _, tp := range slices.SortedFunc(maps.Keys(gs.positions[member]), compareTP) {
		pos := gs.positions[member][tp]
		if o, ok := gs.g.Committed(tp); ok && o.Offset == pos {
			continue
		}
		offs = append(offs, CommitOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: pos})
	}
	if len(offs) == 0 {
		return groupWrite{}, nil
	}
	return c.commitWrite(gs, member, gs.g.Generation(), offs)
}

// Commit commits offsets for a member in its generation, or standalone
// while the group has no members, and answers once they are durable.
func (c *Coordinator) Commit(ctx context.Context, group string, req client.CommitRequest) (client.CommitResponse, error) {
	if len(req.Offsets) == 0 {
		return client.CommitResponse{}, fmt.Errorf("%w: offsets: at least one offset is required", ErrInvalidRequest)
	}
	if req.MemberID != "" && req.Generation == nil {
		return client.CommitResponse{}, fmt.Errorf("%w: generation: required with member_id", ErrInvalidRequest)
	}
	offs := make([]CommitOffset, len(req.Offsets))
	for i, o := range req.Offsets {
		offs[i] = CommitOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset, Metadata: o.Metadata}
	}
	var gen int32
	if req.Generation != nil {
		gen = *req.Generation
	}
	err := c.inTurn(ctx, group, req.MemberID == "", func(gs *groupState) error {
		var w groupWrite
		err := c.locked(gs, func() (err error) {
			w, err = c.commitWrite(gs, req.MemberID, gen, offs)
			return err
		})
		if err != nil {
			return err
		}
		if err := c.persist(ctx, gs, w); err != nil {
			return err
		}
		if req.MemberID == "" {
			return nil
		}
		gs.mu.Lock()
		defer gs.mu.Unlock()
		// An explicit commit also moves the member's positions, for the
		// partitions it still holds.
		if pos := gs.positions[req.MemberID]; pos != nil {
			a, _ := gs.g.Assignment(req.MemberID)
			for _, o := range offs {
				if tp := (TopicPartition{o.Topic, o.Partition}); slices.Contains(a, tp) && pos[tp] < o.Offset {
					pos[tp] = o.Offset
				}
			}
		}
		return nil
	})
	if req.MemberID != "" {
		err = unknownMemberIfNoGroup(err, group, req.MemberID)
	}
	if err != nil {
		return client.CommitResponse{}, err
	}
	return client.CommitResponse{Offsets: req.Offsets}, nil
}

// Poll is where a member's poll reads from.
type Poll struct {
	MemberID        string
	Generation      int32
	Assignments     []client.TopicPartition
	Positions       []client.GroupPosition
	AutoOffsetReset string
}

// PollStart begins a member's poll: a heartbeat, settling the previous poll,
// the auto-commit of what the member has acknowledged, and the member's
// positions (committed offset, else auto_offset_reset resolved against the
// log). Partitions whose leader does not answer have no position this time.
//
// Settling: ack is the poll_id of the last reply the member received. If it
// is the last poll's, that poll's positions take effect; if it is an older
// one, the last reply was lost on the way and its records are served again.
// Without an ack (-1, e.g. curl), the last reply counts as received.
func (c *Coordinator) PollStart(ctx context.Context, group, member string, ack int64) (Poll, error) {
	var ms MemberState
	err := c.update(ctx, group, func(gs *groupState) (groupWrite, error) {
		var err error
		if ms, err = gs.g.Heartbeat(member, c.opts.Now()); err != nil {
			return groupWrite{}, err
		}
		gs.settle(member, ack, ms) // a second run finds it settled
		pp := gs.polls[member]
		if pp == nil {
			pp = &pendingPoll{}
			gs.polls[member] = pp
		}
		pp.acks = ack >= 0
		w := c.generationWrite(gs)
		if gs.g.AutoCommit(member) {
			cw, err := c.positionsWrite(gs, member)
			if err != nil {
				c.log.Debug("auto-commit refused", "group", group, "member", member, "err", err)
			}
			// A failed auto-commit is retried by the next poll; the poll
			// goes on (at-least-once either way), unless its generation
			// could not be written.
			cw.bestEffort = "auto-commit of member " + member
			w = w.and(cw)
		}
		return w, nil
	})
	if err != nil {
		return Poll{}, unknownMemberIfNoGroup(err, group, member)
	}
	out, err := c.positions(ctx, group, member, ms)
	return out, unknownMemberIfNoGroup(err, group, member)
}

// positions completes a poll: every partition of ms's assignment gets a
// position (its committed offset, else the reset policy against its
// leader's bounds, asked with no lock held) unless its leader did not answer.
func (c *Coordinator) positions(ctx context.Context, group, member string, ms MemberState) (Poll, error) {
	var reset string
	var need []TopicPartition
	err := c.withGroup(group, false, func(gs *groupState) error {
		var err error
		if reset, err = gs.g.AutoOffsetReset(member); err != nil {
			return err
		}
		need = gs.positionsFromCommitted(member, ms.Assignment)
		return nil
	})
	if err != nil {
		return Poll{}, err
	}
	bounds := map[TopicPartition]PartitionOffsets{}
	for _, topic := range topicsOf(need) {
		b, err := c.env.TopicOffsets(ctx, topic, nil)
		if err != nil {
			continue // unknown for now; the next poll asks again
		}
		for p, po := range b {
			bounds[TopicPartition{topic, p}] = po
		}
	}
	out := Poll{MemberID: member, Generation: ms.Generation, Assignments: toTPs(ms.Assignment), AutoOffsetReset: reset}
	err = c.withGroup(group, false, func(gs *groupState) error {
		a, err := gs.g.Assignment(member)
		if err != nil {
			return err
		}
		gs.positionsFromCommitted(member, ms.Assignment) // committed meanwhile
		pos := gs.memberPositions(member)
		for _, tp := range need {
			po, ok := bounds[tp]
			if _, set := pos[tp]; set || !ok || !slices.Contains(a, tp) {
				continue // set meanwhile (a seek), unknown, or no longer the member's
			}
			if reset == OffsetResetEarliest {
				pos[tp] = po.LogStart
			} else {
				pos[tp] = po.HighWatermark
			}
		}
		for _, tp := range ms.Assignment {
			if o, ok := pos[tp]; ok {
				out.Positions = append(out.Positions, client.GroupPosition{Topic: tp.Topic, Partition: tp.Partition, Offset: o})
			}
		}
		return nil
	})
	return out, err
}

// positionsFromCommitted gives the member's partitions (of those assigned
// that it still holds) without a position their committed offset, and
// returns those that have neither. Under the group's lock.
func (gs *groupState) positionsFromCommitted(member string, assigned []TopicPartition) []TopicPartition {
	held, err := gs.g.Assignment(member)
	if err != nil {
		return nil
	}
	pos := gs.memberPositions(member)
	var need []TopicPartition
	for _, tp := range assigned {
		if _, ok := pos[tp]; ok || !slices.Contains(held, tp) {
			continue
		}
		if o, ok := gs.g.Committed(tp); ok {
			pos[tp] = o.Offset
			continue
		}
		need = append(need, tp)
	}
	return need
}

// topicsOf lists the topics of tps, sorted, once each.
func topicsOf(tps []TopicPartition) []string {
	set := map[string]bool{}
	for _, tp := range tps {
		set[tp.Topic] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// settle applies or drops the member's last poll (see PollStart).
func (gs *groupState) settle(member string, ack int64, ms MemberState) {
	pp := gs.polls[member]
	if pp == nil || pp.next == nil {
		return
	}
	next := pp.next
	pp.next = nil
	if (ack >= 0 && ack != pp.id) || pp.generation != ms.Generation {
		return // not received, or read in a generation that is over
	}
	pos := gs.memberPositions(member)
	for tp, off := range next {
		if slices.Contains(ms.Assignment, tp) {
			pos[tp] = off
		}
	}
}

// PollDone records where a member's positions go once it has the poll's
// reply (for the partitions it still holds in that generation) and returns
// the reply's poll id.
func (c *Coordinator) PollDone(ctx context.Context, group, member string, generation int32, next []client.GroupPosition) (int64, error) {
	var id int64
	err := c.withGroup(group, false, func(gs *groupState) error {
		if _, err := gs.g.Heartbeat(member, c.opts.Now()); err != nil {
			return err
		}
		pp := gs.polls[member]
		if pp == nil {
			pp = &pendingPoll{}
			gs.polls[member] = pp
		}
		pp.id++
		id = pp.id
		pp.generation, pp.next = generation, map[TopicPartition]int64{}
		if generation != gs.g.Generation() {
			return nil // a rebalance happened meanwhile: the new owner starts at the committed offset
		}
		a, _ := gs.g.Assignment(member)
		for _, p := range next {
			if tp := (TopicPartition{p.Topic, p.Partition}); slices.Contains(a, tp) && p.Offset >= 0 {
				pp.next[tp] = p.Offset
			}
		}
		return nil
	})
	return id, unknownMemberIfNoGroup(err, group, member)
}

// Seek moves a member's positions: to an offset, the first offset at or
// after a timestamp, or either end of the log. The targets are chosen and
// applied under the group's lock, the offsets they resolve to asked of the
// leaders between, with no lock held.
func (c *Coordinator) Seek(ctx context.Context, group, member string, req client.SeekRequest) (client.SeekResponse, error) {
	set := 0
	for _, b := range []bool{req.Offset != nil, req.Timestamp != nil, req.To != ""} {
		if b {
			set++
		}
	}
	if set != 1 {
		return client.SeekResponse{}, fmt.Errorf("%w: seek needs exactly one of offset, timestamp and to", ErrInvalidRequest)
	}
	if req.To != "" && req.To != OffsetResetEarliest && req.To != OffsetResetLatest {
		return client.SeekResponse{}, fmt.Errorf("%w: to: %q (want earliest or latest)", ErrInvalidRequest, req.To)
	}
	if req.Offset != nil && *req.Offset < 0 {
		return client.SeekResponse{}, fmt.Errorf("%w: offset: %d is negative", ErrInvalidRequest, *req.Offset)
	}
	if req.Partition != nil && req.Topic == "" {
		return client.SeekResponse{}, fmt.Errorf("%w: partition given without topic", ErrInvalidRequest)
	}
	var ms MemberState
	var targets []TopicPartition
	err := c.withGroup(group, false, func(gs *groupState) error {
		var err error
		if ms, err = gs.g.Heartbeat(member, c.opts.Now()); err != nil {
			return err
		}
		targets = seekTargets(ms, req)
		if len(targets) == 0 {
			what := "any partition"
			if req.Topic != "" {
				what = "topic " + req.Topic
				if req.Partition != nil {
					what = fmt.Sprintf("%s-%d", req.Topic, *req.Partition)
				}
			}
			return fmt.Errorf("%w: member %q does not hold %s in generation %d", ErrInvalidRequest, member, what, ms.Generation)
		}
		return nil
	})
	if err != nil {
		return client.SeekResponse{}, unknownMemberIfNoGroup(err, group, member)
	}
	resolved, err := c.seekOffsets(ctx, targets, req)
	if err != nil {
		return client.SeekResponse{}, err
	}
	out := client.SeekResponse{Positions: []client.GroupPosition{}}
	err = c.withGroup(group, false, func(gs *groupState) error {
		a, err := gs.g.Assignment(member)
		if err != nil {
			return err
		}
		for _, tp := range targets {
			if !slices.Contains(a, tp) {
				return fmt.Errorf("%w: group %q rebalanced while the seek of member %q resolved its offsets (generation %d now); heartbeat and seek again",
					ErrRebalanceInProgress, group, member, gs.g.Generation())
			}
		}
		pos := gs.memberPositions(member)
		if pp := gs.polls[member]; pp != nil {
			for _, tp := range targets { // the seek wins over what the last poll read
				delete(pp.next, tp)
			}
		}
		for _, tp := range targets { // all resolved: apply together
			pos[tp] = resolved[tp]
			out.Positions = append(out.Positions, client.GroupPosition{Topic: tp.Topic, Partition: tp.Partition, Offset: resolved[tp]})
		}
		return nil
	})
	if err != nil {
		return client.SeekResponse{}, unknownMemberIfNoGroup(err, group, member)
	}
	return out, nil
}

// seekTargets are the member's partitions a seek names.
func seekTargets(ms MemberState, req client.SeekRequest) []TopicPartition {
	var targets []TopicPartition
	for _, tp := range ms.Assignment {
		if (req.Topic == "" || tp.Topic == req.Topic) && (req.Partition == nil || tp.Partition == *req.Partition) {
			targets = append(targets, tp)
		}
	}
	return targets
}

// seekOffsets resolves a seek's targets: the offset given, or the leaders'
// bounds (every target's, or the seek fails).
func (c *Coordinator) seekOffsets(ctx context.Context, targets []TopicPartition, req client.SeekRequest) (map[TopicPartition]int64, error) {
	resolved := map[TopicPartition]int64{}
	bounds := map[string]map[int32]PartitionOffsets{}
	for _, tp := range targets {
		if req.Offset != nil {
			resolved[tp] = *req.Offset
			continue
		}
		b, ok := bounds[tp.Topic]
		if !ok {
			var err error
			if b, err = c.env.TopicOffsets(ctx, tp.Topic, req.Timestamp); err != nil {
				return nil, err
			}
			bounds[tp.Topic] = b
		}
		po, ok := b[tp.Partition]
		if !ok {
			return nil, fmt.Errorf("%w: the leader of %s-%d did not report its offsets; retry", ErrLeaderNotAvailable, tp.Topic, tp.Partition)
		}
		switch {
		case req.To == OffsetResetEarliest:
			resolved[tp] = po.LogStart
		case req.To == OffsetResetLatest:
			resolved[tp] = po.HighWatermark
		case po.ForTimestamp != nil:
			resolved[tp] = *po.ForTimestamp
		default:
			resolved[tp] = po.HighWatermark // nothing that late yet: the end
		}
	}
	return resolved, nil
}
