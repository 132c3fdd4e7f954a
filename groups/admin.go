package groups

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"weir/client"
)

// Administration: describing groups and their offsets (from a snapshot taken
// under the group's lock, log ends asked with none held), offset resets,
// deletes, and the figures for metrics and listings.

// snapshot is a group's description taken under its lock, completed with
// log ends outside it.
func (c *Coordinator) snapshot(group string) (Description, error) {
	var d Description
	err := c.withGroup(group, false, func(gs *groupState) error {
		d = gs.g.Describe()
		if d.Generation > gs.persistedGen { // shown only once durable (see generationWrite)
			d.Generation = gs.persistedGen
		}
		return nil
	})
	return d, err
}

// logEnds asks the leaders for the high watermarks of the topics in rows.
func (c *Coordinator) logEnds(ctx context.Context, topics []string) map[TopicPartition]int64 {
	out := map[TopicPartition]int64{}
	for _, t := range topics {
		b, err := c.env.TopicOffsets(ctx, t, nil)
		if err != nil {
			continue
		}
		for p, o := range b {
			out[TopicPartition{t, p}] = o.HighWatermark
		}
	}
	return out
}

func (c *Coordinator) offsetRows(ctx context.Context, group string, d Description) []client.GroupOffset {
	topics := map[string]bool{}
	for _, o := range d.Offsets {
		topics[o.Topic] = true
	}
	ends := c.logEnds(ctx, slices.Sorted(maps.Keys(topics)))
	c.rememberLogEnds(group, ends)
	rows := make([]client.GroupOffset, 0, len(d.Offsets))
	for _, o := range d.Offsets {
		r := client.GroupOffset{Topic: o.Topic, Partition: o.Partition, LogEndOffset: -1, MemberID: o.MemberID, Metadata: o.Metadata}
		end, known := ends[o.TopicPartition]
		if known {
			r.LogEndOffset = end
		}
		if o.Committed {
			off := o.Offset
			r.CommittedOffset = &off
			if known {
				lag := max(end-off, 0)
				r.Lag = &lag
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// rememberLogEnds keeps log ends for the lag metrics.
func (c *Coordinator) rememberLogEnds(group string, ends map[TopicPartition]int64) {
	_ = c.withGroup(group, false, func(gs *groupState) error {
		maps.Copy(gs.logEnd, ends)
		return nil
	})
}

// Describe is GET /v1/groups/{g}.
func (c *Coordinator) Describe(ctx context.Context, group string) (client.Group, error) {
	d, err := c.snapshot(group)
	if err != nil {
		return client.Group{}, err
	}
	out := client.Group{Group: d.Group, State: string(d.State), Generation: d.Generation, Coordinator: c.opts.NodeID,
		Assignor: string(d.Assignor), Members: []client.GroupMember{}, Offsets: c.offsetRows(ctx, group, d)}
	for _, m := range d.Members {
		out.Members = append(out.Members, client.GroupMember{MemberID: m.MemberID, ClientID: m.ClientID, Host: m.Host,
			Topics: m.Topics, SessionTimeoutMS: m.SessionTimeout.Milliseconds(), AutoOffsetReset: m.AutoOffsetReset,
			AutoCommit: m.AutoCommit, Assignments: toTPs(m.Assignments)})
	}
	return out, nil
}

// Offsets is GET /v1/groups/{g}/offsets: committed offsets with log end and lag.
func (c *Coordinator) Offsets(ctx context.Context, group string) (client.GroupOffsets, error) {
	d, err := c.snapshot(group)
	if err != nil {
		return client.GroupOffsets{}, err
	}
	committed := d.Offsets[:0:0]
	for _, o := range d.Offsets {
		if o.Committed {
			committed = append(committed, o)
		}
	}
	d.Offsets = committed
	return client.GroupOffsets{Group: group, Offsets: c.offsetRows(ctx, group, d)}, nil
}

// ResetOffsets resolves and (unless a dry run) durably sets a group's
// committed offsets; only while the group has no members.
func (c *Coordinator) ResetOffsets(ctx context.Context, group string, req client.ResetOffsetsRequest) (client.ResetOffsetsResponse, error) {
	dry := req.DryRun == nil || *req.DryRun
	out := client.ResetOffsetsResponse{Group: group, DryRun: dry, Offsets: []client.ResetOffsetRow{}}
	switch req.To {
	case client.ResetToEarliest, client.ResetToLatest:
	case client.ResetToOffset, client.ResetToTimestamp, client.ResetShift:
		if req.Value == nil {
			return out, fmt.Errorf("%w: value: required with to=%s", ErrInvalidRequest, req.To)
		}
	default:
		return out, fmt.Errorf("%w: to: %q (want earliest, latest, offset, timestamp or shift)", ErrInvalidRequest, req.To)
	}
	if req.Topic == "" {
		return out, fmt.Errorf("%w: topic: required", ErrInvalidRequest)
	}
	n := c.env.PartitionCounts([]string{req.Topic})[req.Topic]
	if n <= 0 {
		return out, fmt.Errorf("%w: topic %q does not exist", ErrUnknownTopicOrPartition, req.Topic)
	}
	parts := req.Partitions
	if len(parts) == 0 {
		for p := range n {
			parts = append(parts, p)
		}
	}
	for _, p := range parts {
		if p < 0 || p >= n {
			return out, fmt.Errorf("%w: topic %q has no partition %d (it has %d)", ErrUnknownTopicOrPartition, req.Topic, p, n)
		}
	}
	var ts *int64
	if req.To == client.ResetToTimestamp {
		ts = req.Value
	}
	// Bounds first, outside the group's lock; the reset below is refused
	// anyway if members joined meanwhile.
	bounds, err := c.env.TopicOffsets(ctx, req.Topic, ts)
	if err != nil {
		return out, err
	}
	var rows []ResetResult
	var w groupWrite
	decide := func(gs *groupState) error {
		if gs.g.NumMembers() > 0 {
			return fmt.Errorf("%w: group %q has %d active members; stop them first", ErrNonEmptyGroup, group, gs.g.NumMembers())
		}
		targets := make([]CommitOffset, 0, len(parts))
		for _, p := range parts {
			po, ok := bounds[p]
			if !ok {
				return fmt.Errorf("%w: the leader of %s-%d did not report its offsets; retry", ErrLeaderNotAvailable, req.Topic, p)
			}
			tp := TopicPartition{req.Topic, p}
			to := resetTarget(req, po)
			if req.To == client.ResetShift {
				cur, ok := gs.g.Committed(tp)
				if !ok {
					return fmt.Errorf("%w: %s-%d has no committed offset to shift", ErrInvalidRequest, req.Topic, p)
				}
				to = ShiftOffset(cur.Offset, *req.Value, po.LogStart, po.HighWatermark)
			}
			targets = append(targets, CommitOffset{Topic: req.Topic, Partition: p, Offset: to})
		}
		var err error
		if rows, err = gs.g.ResetOffsets(targets, true, c.opts.Now()); err != nil || dry {
			return err
		}
		w, err = c.commitWrite(gs, "", 0, targets)
		return err
	}
	if dry {
		err = c.withGroup(group, false, decide)
	} else {
		err = c.inTurn(ctx, group, true, func(gs *groupState) error {
			if err := c.locked(gs, func() error { return decide(gs) }); err != nil {
				return err
			}
			return c.persist(ctx, gs, w)
		})
	}
	if err == nil {
		for _, r := range rows {
			row := client.ResetOffsetRow{Topic: r.Topic, Partition: r.Partition, NewOffset: r.NewOffset}
			if r.OldOffset >= 0 {
				old := r.OldOffset
				row.OldOffset = &old
			}
			out.Offsets = append(out.Offsets, row)
		}
	}
	if dry && errors.Is(err, ErrDeadGroup) {
		// A dry run on a group that does not exist yet shows what a reset would create.
		err = nil
		for _, p := range parts {
			po, ok := bounds[p]
			if !ok {
				return out, fmt.Errorf("%w: the leader of %s-%d did not report its offsets; retry", ErrLeaderNotAvailable, req.Topic, p)
			}
			to := resetTarget(req, po)
			if req.To == client.ResetShift {
				return out, fmt.Errorf("%w: %s-%d has no committed offset to shift", ErrInvalidRequest, req.Topic, p)
			}
			out.Offsets = append(out.Offsets, client.ResetOffsetRow{Topic: req.Topic, Partition: p, NewOffset: to})
		}
	}
	return out, err
}

// resetTarget resolves the non-shift targets of a reset.
func resetTarget(req client.ResetOffsetsRequest, po PartitionOffsets) int64 {
	switch req.To {
	case client.ResetToEarliest:
		return po.LogStart
	case client.ResetToOffset:
		return max(po.LogStart, min(*req.Value, po.HighWatermark))
	case client.ResetToTimestamp:
		if po.ForTimestamp != nil {
			return *po.ForTimestamp
		}
	}
	return po.HighWatermark
}

// Delete removes an empty group and its committed offsets (tombstones first).
func (c *Coordinator) Delete(ctx context.Context, group string) error {
	return c.inTurn(ctx, group, false, func(gs *groupState) error {
		var w groupWrite
		err := c.locked(gs, func() error {
			if n := gs.g.NumMembers(); n > 0 {
				return fmt.Errorf("%w: group %q has %d active members", ErrNonEmptyGroup, group, n)
			}
			for _, tp := range slices.SortedFunc(maps.Keys(gs.g.Offsets()), compareTP) {
				w.recs = append(w.recs, KV{Key: EncodeOffsetTombstone(group, tp.Topic, tp.Partition)})
			}
			w.recs = append(w.recs, KV{Key: EncodeGroupTombstone(group)})
			return nil
		})
		if err != nil {
			return err
		}
		if err := c.persist(ctx, gs, w); err != nil {
			return err
		}
		gs.mu.Lock()
		defer gs.mu.Unlock()
		// Nobody joined meanwhile: a join waits for the group's turn.
		if _, err := gs.g.Delete(); err != nil {
			return err
		}
		gs.removed = true
		gs.part.mu.Lock() // groupState.mu => offsetsPart.mu: a lookup never finds a removed group
		if gs.part.groups[group] == gs {
			delete(gs.part.groups, group)
		}
		gs.part.mu.Unlock()
		return nil
	})
}

// GroupStats is one group's figures for metrics and listings.
type GroupStats struct {
	Group      string
	State      string
	Members    int
	Rebalances int64
	// Lag per partition with a committed offset and a known log end.
	Lag map[TopicPartition]int64
}

// Stats lists the groups this node coordinates (those loaded).
func (c *Coordinator) Stats() []GroupStats {
	var out []GroupStats
	for _, gs := range c.allGroups() {
		gs.mu.Lock()
		st := GroupStats{Group: gs.g.Name(), State: string(gs.g.State()), Members: gs.g.NumMembers(),
			Rebalances: gs.g.Rebalances(), Lag: map[TopicPartition]int64{}}
		for tp, o := range gs.g.Offsets() {
			if end, ok := gs.logEnd[tp]; ok {
				st.Lag[tp] = max(end-o.Offset, 0)
			}
		}
		gs.mu.Unlock()
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b GroupStats) int { return strings.Compare(a.Group, b.Group) })
	return out
}

// List is this node's share of GET /v1/groups, with fresh lag.
func (c *Coordinator) List(ctx context.Context) []client.GroupSummary {
	c.refreshLag(ctx)
	out := []client.GroupSummary{}
	for _, st := range c.Stats() {
		var lag int64
		for _, l := range st.Lag {
			lag += l
		}
		out = append(out, client.GroupSummary{Group: st.Group, State: st.State, Members: st.Members,
			Coordinator: c.opts.NodeID, TotalLag: lag})
	}
	return out
}
