package groups

import (
	"context"
	"errors"
	"fmt"
	"time"

	"weir/client"
)

// Membership: joins, heartbeats and leaves. A member learns a generation
// only once it is durable (see generationWrite), so a later coordinator
// never hands out the same generation with another assignment.

func toTPs(tps []TopicPartition) []client.TopicPartition {
	out := make([]client.TopicPartition, len(tps))
	for i, tp := range tps {
		out[i] = client.TopicPartition{Topic: tp.Topic, Partition: tp.Partition}
	}
	return out
}

func memberAssignment(ms MemberState) client.MemberAssignment {
	return client.MemberAssignment{MemberID: ms.MemberID, Generation: ms.Generation, State: string(ms.State),
		Assignments: toTPs(ms.Assignment)}
}

// refreshTopics feeds the group fresh partition counts of its subscriptions
// (and of extra topics a joining member names). The counts come from the
// node's metadata in memory, so this may run under the group's lock.
func (c *Coordinator) refreshTopics(gs *groupState, extra []string) {
	topics := append(gs.g.SubscribedTopics(), extra...)
	if len(topics) == 0 {
		return
	}
	counts := c.env.PartitionCounts(topics)
	full := make(map[string]int32, len(topics))
	for _, t := range topics {
		full[t] = counts[t]
	}
	if gs.g.UpdateTopics(full) {
		gs.prune()
	}
}

// Join adds a member (or re-joins a known one) and answers once the new
// generation is durable.
func (c *Coordinator) Join(ctx context.Context, group string, req client.JoinGroupRequest, host string) (client.MemberAssignment, error) {
	jr := JoinRequest{MemberID: req.MemberID, ClientID: req.ClientID, Host: host, Topics: req.Topics,
		AutoOffsetReset: req.AutoOffsetReset, Assignor: req.Assignor, AutoCommit: true}
	if req.AutoCommit != nil {
		jr.AutoCommit = *req.AutoCommit
	}
	if req.SessionTimeoutMS != nil {
		if *req.SessionTimeoutMS <= 0 {
			return client.MemberAssignment{}, fmt.Errorf("%w: session_timeout_ms: %d must be positive", ErrInvalidRequest, *req.SessionTimeoutMS)
		}
		jr.SessionTimeout = time.Duration(*req.SessionTimeoutMS) * time.Millisecond
	}
	var out client.MemberAssignment
	err := c.inTurn(ctx, group, true, func(gs *groupState) error {
		var ms MemberState
		var w groupWrite
		err := c.locked(gs, func() error {
			c.refreshTopics(gs, req.Topics)
			var err error
			if ms, err = gs.g.Join(jr, c.opts.Now()); err != nil {
				return err
			}
			gs.prune()
			w = c.generationWrite(gs)
			return nil
		})
		if err != nil {
			return err
		}
		if err := c.persist(ctx, gs, w); err != nil {
			if req.MemberID == "" {
				// Nobody learned of the new member: take it out again, or
				// it would hold partitions nobody reads until its session
				// expired (and every retry would add another).
				gs.mu.Lock()
				if gs.g.HasMember(ms.MemberID) {
					_ = gs.g.Leave(ms.MemberID) // present: cannot fail
					gs.prune()
				}
				gs.mu.Unlock()
			}
			return err
		}
		out = memberAssignment(ms)
		return nil
	})
	return out, err
}

// Heartbeat keeps a member alive and tells it its generation and
// partitions. A generation not yet durable is written first, in the
// group's turn; otherwise the heartbeat needs only the group's lock.
func (c *Coordinator) Heartbeat(ctx context.Context, group, member string) (client.MemberAssignment, error) {
	var ms MemberState
	err := c.update(ctx, group, func(gs *groupState) (groupWrite, error) {
		var err error
		if ms, err = gs.g.Heartbeat(member, c.opts.Now()); err != nil {
			return groupWrite{}, err
		}
		return c.generationWrite(gs), nil
	})
	if err != nil {
		return client.MemberAssignment{}, unknownMemberIfNoGroup(err, group, member)
	}
	return memberAssignment(ms), nil
}

// unknownMemberIfNoGroup turns "no such group" into "no such member" for
// member calls: after a coordinator failover the member must re-join.
func unknownMemberIfNoGroup(err error, group, member string) error {
	if errors.Is(err, ErrDeadGroup) {
		return fmt.Errorf("%w: %q in group %q (the group is not known here; join again)", ErrUnknownMember, member, group)
	}
	return err
}

// Leave removes a member. A member that auto-commits has its positions
// committed first: it asked to leave, so what it received is processed.
// That includes its last reply only if it does not acknowledge replies
// (no ack, e.g. curl): a member that does has not acknowledged its last
// one, which may have been lost on the way, so those records go to the
// partition's next owner rather than being committed unseen.
func (c *Coordinator) Leave(ctx context.Context, group, member string) error {
	left := false
	err := c.update(ctx, group, func(gs *groupState) (groupWrite, error) {
		if !gs.g.HasMember(member) {
			return groupWrite{}, fmt.Errorf("%w: %q in group %q", ErrUnknownMember, member, group)
		}
		var w groupWrite
		if gs.g.AutoCommit(member) {
			if pp := gs.polls[member]; pp != nil && pp.acks {
				pp.next = nil // not acknowledged: maybe never received
			} else {
				gs.settle(member, -1, gs.g.memberState(member)) // leaving: it has what it polled
			}
			var err error
			if w, err = c.positionsWrite(gs, member); err != nil {
				c.log.Info("auto-commit on leave refused", "group", group, "member", member, "err", err)
			}
			w.bestEffort = "auto-commit on leave of member " + member
		}
		if !w.empty() {
			return w, nil // leaves once its offsets are written
		}
		left = true
		return w, gs.leave(member)
	})
	if err == nil && !left {
		err = c.withGroup(group, false, func(gs *groupState) error {
			if !gs.g.HasMember(member) {
				return nil // expired while its offsets were written: gone either way
			}
			return gs.leave(member)
		})
	}
	return unknownMemberIfNoGroup(err, group, member)
}

// leave takes a member out; the group rebalances. Under the group's lock.
func (gs *groupState) leave(member string) error {
	if err := gs.g.Leave(member); err != nil {
		return err
	}
	gs.prune()
	return nil
}
