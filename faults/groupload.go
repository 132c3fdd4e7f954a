//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"weir/client"
)

// Timeouts and pacing of the group workload.
const (
	groupOpTimeout   = 8 * time.Second // one call, the client's retries included
	groupPollWaitMS  = 300
	groupDrainWaitMS = 500
	groupPollLimit   = 100
	offsetsReadEvery = 500 * time.Millisecond
	dropReplyOneIn   = 30 // poll replies a member drops, as lost on the way (see pollWait)
	// drainMaxRounds bounds the drain's polls per member, as its deadline
	// bounds it in time.
	drainMaxRounds = 100_000
)

// groupLoad is a consumer group: members that join, poll (acknowledging
// each reply they received), heartbeat, commit (explicitly, unless the
// group auto-commits), leave and re-join, each recording every call with
// the member id, generation, assignments and poll ids its reply named; and
// a reader of the group's committed offsets. Each member talks to the
// nodes in its own order and fails over between them on connection
// errors; it re-joins as a new member when the coordinator no longer knows
// it (a session that expired, a coordinator that failed over).
//
// After the load stops and the cluster heals, Drain polls until the members
// together have received every record of the group's topics up to their
// high watermarks: the checker then wants every acknowledged write among
// the records received (group-unseen-ack).
type groupLoad struct {
	spec     GroupSpec
	assignor string
	members  int
	session  time.Duration
	maxOps   int // per member, and reads of the committed offsets
	worker   int // the client worker of the first member; the reader takes the next after the members
	// leaveLo..leaveHi: a member leaves (and re-joins) after that many ok
	// polls; 0 never. It also leaves, now and then, after a poll whose
	// reply was lost, as a consumer closing on an error would.
	leaveLo, leaveHi int
	pace             time.Duration // a member's pause after an ok poll, as if processing it (not in the drain)

	mu       sync.Mutex // guards what follows, shared by the members
	ms       []*member
	reader   *client.Client
	rec      *Recorder
	received map[TP]*offsetSet // offsets some member received in an ok poll
}

// errDropped stands for a poll reply the member dropped (see pollWait).
var errDropped = errors.New("reply dropped")

// member is one member's client side: who it is to the coordinator and
// what it received. Its calls are sequential (one process).
type member struct {
	g       *groupLoad
	rec     *Recorder
	cl      *client.Client
	process string
	rng     *rand.Rand

	id       string
	lastPoll int64 // poll_id of the last reply received (the next poll's ack), 0 after a join
	// positions: the offset after the last record received per partition,
	// in generation posGen (what an explicit commit commits).
	positions map[TP]int64
	posGen    int32
	dirty     bool // positions moved since the last ok commit
	polls     int  // ok polls since the join
	leaveAt   int  // leave after this many ok polls (0: never)
}

func (g *groupLoad) Name() string {
	mode := "explicit commits"
	if g.spec.AutoCommit {
		mode = "auto-commit"
	}
	return fmt.Sprintf("group %s (%d members, %s, %s)", g.spec.Name, g.members, mode, g.assignor)
}

// setup makes the members' clients once; Run and Drain share the members.
func (g *groupLoad) setup(env *Env) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ms != nil {
		return nil
	}
	g.rec, g.received = env.Rec, map[TP]*offsetSet{}
	var ms []*member
	for i := range g.members {
		cl, err := env.Client(g.worker + i)
		if err != nil {
			return fmt.Errorf("member client: %w", err)
		}
		ms = append(ms, &member{g: g, rec: env.Rec, cl: cl, process: fmt.Sprintf("member-%s-%d", g.spec.Name, i),
			rng: rand.New(rand.NewPCG(uint64(env.Seed), uint64(g.worker+i)<<8)), positions: map[TP]int64{}})
	}
	cl, err := env.Client(g.worker + g.members)
	if err != nil {
		return fmt.Errorf("offsets reader client: %w", err)
	}
	g.ms, g.reader = ms, cl
	return nil
}

func (g *groupLoad) Run(ctx context.Context, env *Env) {
	if err := g.setup(env); err != nil {
		env.Rec.Event(EventHarness, 0, "group %s: %v", g.spec.Name, err)
		return
	}
	var wg sync.WaitGroup
	for _, m := range g.ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range g.maxOps {
				if ctx.Err() != nil {
					return
				}
				m.step(ctx, false)
			}
		}()
	}
	for range g.maxOps {
		g.readOffsets()
		if !sleepCtx(ctx, offsetsReadEvery) {
			break
		}
	}
	wg.Wait()
}

// Drain polls with every member until they together received every record
// of the group's topics below the high watermarks read first (the load has
// stopped, so these are final), or until ctx ends; then each member polls
// once more, so that auto-commit commits what was acknowledged, and the
// committed offsets are read once more. It returns the log ends and the
// partitions the members did not receive in full.
func (g *groupLoad) Drain(ctx context.Context, env *Env) (map[TP]int64, []TP, error) {
	if err := g.setup(env); err != nil {
		return nil, nil, err
	}
	ends, err := g.logEnds(ctx)
	if err != nil {
		return nil, nil, err
	}
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, m := range g.ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range drainMaxRounds {
				if dctx.Err() != nil {
					return
				}
				m.step(dctx, true)
			}
		}()
	}
	for range drainMaxRounds {
		if len(g.short(ends)) == 0 {
			break
		}
		g.readOffsets()
		if !sleepCtx(dctx, offsetsReadEvery) {
			break
		}
	}
	stop()
	wg.Wait()
	for _, m := range g.ms {
		if m.id != "" {
			m.pollWait(ctx, 0, false)
			m.commit(ctx)
		}
	}
	g.readOffsets()
	return ends, g.short(ends), nil
}

// logEnds reads the high watermark of every partition of the group's
// topics, retrying until ctx ends.
func (g *groupLoad) logEnds(ctx context.Context) (map[TP]int64, error) {
	ends := map[TP]int64{}
	for _, topic := range g.spec.Topics {
		for {
			octx, cancel := context.WithTimeout(ctx, groupOpTimeout)
			to, err := g.reader.TopicOffsets(octx, topic, nil)
			cancel()
			if err == nil {
				for _, p := range to.Partitions {
					ends[TP{topic, p.Partition}] = p.HighWatermark
				}
				break
			}
			if !sleepCtx(ctx, failureBackoff) {
				return nil, fmt.Errorf("group %s: the high watermarks of %s: %w", g.spec.Name, topic, err)
			}
		}
	}
	return ends, nil
}

// short lists the partitions whose offsets below their log end the members
// have not all received.
func (g *groupLoad) short(ends map[TP]int64) []TP {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []TP
	for _, tp := range sortedTPKeys(ends) {
		if !g.received[tp].covers(ends[tp]) {
			out = append(out, tp)
		}
	}
	return out
}

// readOffsets records one read of the group's committed offsets.
func (g *groupLoad) readOffsets() {
	op := groupOp(KindFetchCommitted, "offsets-"+g.spec.Name, g.spec.Name, "")
	var meta client.ResponseMeta
	ctx, cancel := context.WithTimeout(client.CaptureMeta(context.Background(), &meta), groupOpTimeout)
	defer cancel()
	op.Invoke = g.rec.Now()
	r, err := g.reader.GroupOffsets(ctx, g.spec.Name)
	op.Complete = g.rec.Now()
	if err == nil {
		withCommitted(&op, *r)
	}
	g.rec.Add(finishGroupOp(op, meta, err))
}

// finishGroupOp sets an operation's node, outcome and error.
func finishGroupOp(op Op, meta client.ResponseMeta, err error) Op {
	op.Node = servedBy(meta.ServedBy, err)
	op.Outcome = groupOutcome(err)
	setError(&op, err)
	return op
}

// groupOutcome classifies a group call like any other (errorOutcome), but
// a call retried over several servers failed for sure only when it
// reached none of them: reads and idempotent writes fail over after a
// connection lost past sending, so a list of connection errors may hide
// one that reached a server.
func groupOutcome(err error) Outcome {
	if err == nil {
		return OK
	}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		return errorOutcome(err)
	}
	if onlyDialErrors(err) {
		return Fail
	}
	return Unknown
}

// onlyDialErrors reports whether every connection error err holds failed
// while connecting (and there is at least one).
func onlyDialErrors(err error) bool {
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		errs := e.Unwrap()
		if len(errs) == 0 {
			return false
		}
		for _, x := range errs {
			if !onlyDialErrors(x) {
				return false
			}
		}
		return true
	case *net.OpError:
		return e.Op == "dial"
	case interface{ Unwrap() error }:
		if inner := e.Unwrap(); inner != nil {
			return onlyDialErrors(inner)
		}
	}
	return false
}

// gone reports whether the coordinator no longer knows the member, which
// then joins again as a new one.
func gone(err error) bool {
	return client.IsCode(err, client.CodeUnknownMemberID) || client.IsCode(err, client.CodeGroupIDNotFound)
}

// step makes one call: a join when the member has no id, else (outside the
// drain) now and then a heartbeat or a leave, else a poll followed by a
// commit of what it received when the group commits explicitly.
func (m *member) step(ctx context.Context, drain bool) {
	switch {
	case m.id == "":
		if !m.join(ctx) {
			sleepCtx(ctx, failureBackoff)
		}
		return
	case !drain && m.leaveAt > 0 && m.polls >= m.leaveAt:
		m.leave(ctx)
		return
	case !drain && m.rng.IntN(10) == 0:
		if !m.heartbeat(ctx) {
			sleepCtx(ctx, failureBackoff)
		}
		return
	}
	wait := groupPollWaitMS
	if drain {
		wait = groupDrainWaitMS
	}
	switch m.pollWait(ctx, wait, !drain) {
	case OK:
		if !m.commit(ctx) {
			sleepCtx(ctx, failureBackoff)
		} else if !drain {
			sleepCtx(ctx, m.g.pace)
		}
	case Unknown:
		if !drain && m.id != "" && m.rng.IntN(4) == 0 {
			m.leave(ctx) // a consumer closing after an error
			return
		}
		sleepCtx(ctx, failureBackoff)
	default:
		sleepCtx(ctx, failureBackoff)
	}
}

// call runs one group call with its own timeout (not ctx's: a call in
// flight when the load stops completes, so its outcome is known) and
// captures the node that served it.
func (m *member) call(ctx context.Context, fn func(context.Context) error) (client.ResponseMeta, error) {
	var meta client.ResponseMeta
	octx, cancel := context.WithTimeout(client.CaptureMeta(context.WithoutCancel(ctx), &meta), groupOpTimeout)
	defer cancel()
	err := fn(octx)
	return meta, err
}

// join joins as a new member; false when it did not.
func (m *member) join(ctx context.Context) bool {
	g := m.g
	session := g.session.Milliseconds()
	auto := g.spec.AutoCommit
	req := client.JoinGroupRequest{Topics: g.spec.Topics, ClientID: m.process, SessionTimeoutMS: &session,
		AutoOffsetReset: client.ResetToEarliest, AutoCommit: &auto, Assignor: g.assignor}
	op := groupOp(KindJoin, m.process, g.spec.Name, "")
	var r *client.MemberAssignment
	op.Invoke = m.rec.Now()
	meta, err := m.call(ctx, func(ctx context.Context) (err error) {
		r, err = m.cl.JoinGroup(ctx, g.spec.Name, req)
		return err
	})
	op.Complete = m.rec.Now()
	if err == nil {
		withAssignment(&op, *r)
		m.id, m.lastPoll, m.polls = r.MemberID, 0, 0
		m.setPositions(r.Generation, toTPs(r.Assignments))
		m.leaveAt = 0
		if g.leaveHi > 0 {
			m.leaveAt = g.leaveLo + m.rng.IntN(g.leaveHi-g.leaveLo+1)
		}
	}
	m.rec.Add(finishGroupOp(op, meta, err))
	return err == nil
}

// heartbeat records the member's generation and partitions as the reply
// names them; false when it failed.
func (m *member) heartbeat(ctx context.Context) bool {
	op := groupOp(KindHeartbeat, m.process, m.g.spec.Name, m.id)
	var r *client.MemberAssignment
	op.Invoke = m.rec.Now()
	meta, err := m.call(ctx, func(ctx context.Context) (err error) {
		r, err = m.cl.Heartbeat(ctx, m.g.spec.Name, m.id)
		return err
	})
	op.Complete = m.rec.Now()
	if err == nil {
		withAssignment(&op, *r)
		m.setPositions(r.Generation, toTPs(r.Assignments))
	}
	m.rec.Add(finishGroupOp(op, meta, err))
	if gone(err) {
		m.forget()
	}
	return err == nil
}

// pollWait polls once, acknowledging the last reply received, and notes
// what it received. With lossy, one reply in dropReplyOneIn is dropped as
// if the connection had been lost while it was on the way: the member does
// not see it (the operation is unknown, its records are not the member's)
// and its next poll acknowledges the reply before, so the coordinator must
// serve the dropped records again.
func (m *member) pollWait(ctx context.Context, waitMS int, lossy bool) Outcome {
	g := m.g
	op := groupOp(KindPoll, m.process, g.spec.Name, m.id)
	ack := m.lastPoll
	op.Ack = ack
	var r *client.GroupRecords
	op.Invoke = m.rec.Now()
	meta, err := m.call(ctx, func(ctx context.Context) (err error) {
		r, err = m.cl.PollGroup(ctx, g.spec.Name, m.id, client.GroupPollOptions{Limit: groupPollLimit, WaitMS: waitMS,
			Encoding: client.EncodingText, Ack: &ack})
		return err
	})
	op.Complete = m.rec.Now()
	if err == nil {
		if perr := withPoll(&op, *r); perr != nil {
			// The reply was received, but not one the API describes.
			m.rec.Event(EventHarness, op.Node, "%s: poll reply: %v", m.process, perr)
			err = fmt.Errorf("%w: %w", errMalformedReply, perr)
		}
	}
	op = finishGroupOp(op, meta, err) // a malformed reply is unknown: neither an error reply nor a failure to connect
	if err == nil && lossy && m.rng.IntN(dropReplyOneIn) == 0 {
		op.Outcome, op.Records = Unknown, nil
		err = fmt.Errorf("%w by the member (poll_id %d, %d records): a lost reply, simulated", errDropped, r.PollID, len(r.Records))
		setError(&op, err)
	}
	m.rec.Add(op)
	switch {
	case err == nil:
		m.lastPoll = r.PollID
		m.polls++
		m.received(r.Generation, op.Assignments, op.Records)
	case gone(err):
		m.forget()
	}
	return op.Outcome
}

// received notes a poll's records: the member's positions for its next
// commit, and the group's coverage.
func (m *member) received(gen int32, assigned []TP, recs []ReadRecord) {
	m.setPositions(gen, assigned)
	g := m.g
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range recs {
		tp := TP{r.Topic, r.Partition}
		if slices.Contains(assigned, tp) {
			m.positions[tp] = r.Offset + 1
			m.dirty = true
		}
		s := g.received[tp]
		if s == nil {
			s = &offsetSet{}
			g.received[tp] = s
		}
		s.add(r.Offset)
	}
}

// setPositions starts the positions afresh in a new generation (a
// partition may have been another member's in between) and drops those of
// partitions the member no longer holds.
func (m *member) setPositions(gen int32, assigned []TP) {
	if gen != m.posGen {
		clear(m.positions)
		m.posGen, m.dirty = gen, false
	}
	for tp := range m.positions {
		if !slices.Contains(assigned, tp) {
			delete(m.positions, tp)
		}
	}
}

// commit commits the member's positions in their generation, when the
// group commits explicitly and they moved; false when it failed.
func (m *member) commit(ctx context.Context) bool {
	g := m.g
	if g.spec.AutoCommit || !m.dirty || m.id == "" || len(m.positions) == 0 {
		return true
	}
	gen := m.posGen
	req := client.CommitRequest{MemberID: m.id, Generation: &gen}
	for _, tp := range sortedTPKeys(m.positions) {
		req.Offsets = append(req.Offsets, client.CommitOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: m.positions[tp]})
	}
	op := groupOp(KindCommit, m.process, g.spec.Name, m.id)
	withCommit(&op, req)
	op.Invoke = m.rec.Now()
	meta, err := m.call(ctx, func(ctx context.Context) error {
		_, err := m.cl.CommitOffsets(ctx, g.spec.Name, req)
		return err
	})
	op.Complete = m.rec.Now()
	m.rec.Add(finishGroupOp(op, meta, err))
	switch {
	case err == nil:
		m.dirty = false
	case gone(err):
		m.forget()
	case client.IsCode(err, client.CodeIllegalGeneration), client.IsCode(err, client.CodeRebalanceInProgress):
		// The group moved on: these positions are no longer the member's
		// to commit; the next poll names the new generation.
		clear(m.positions)
		m.dirty = false
	}
	return err == nil
}

// leave leaves the group; whatever the outcome, the member joins again as
// a new one (one the coordinator may still know expires with its session).
func (m *member) leave(ctx context.Context) {
	op := groupOp(KindLeave, m.process, m.g.spec.Name, m.id)
	op.Invoke = m.rec.Now()
	meta, err := m.call(ctx, func(ctx context.Context) error { return m.cl.LeaveGroup(ctx, m.g.spec.Name, m.id) })
	op.Complete = m.rec.Now()
	m.rec.Add(finishGroupOp(op, meta, err))
	m.forget()
}

// forget drops the member id; the next step joins as a new member.
func (m *member) forget() {
	m.id, m.lastPoll, m.polls, m.posGen, m.dirty = "", 0, 0, 0, false
	clear(m.positions)
}

// offsetSet is a set of offsets of one partition (a bitmap from 0).
type offsetSet struct{ bits []uint64 }

func (s *offsetSet) add(off int64) {
	if off < 0 {
		return
	}
	i := int(off / 64)
	for len(s.bits) <= i {
		s.bits = append(s.bits, 0)
	}
	s.bits[i] |= 1 << uint(off%64)
}

func (s *offsetSet) has(off int64) bool {
	i := int(off / 64)
	return s != nil && off >= 0 && i < len(s.bits) && s.bits[i]&(1<<uint(off%64)) != 0
}

// covers reports whether every offset below end is in the set (an empty
// range always is).
func (s *offsetSet) covers(end int64) bool {
	for off := int64(0); off < end; off++ {
		if !s.has(off) {
			return false
		}
	}
	return true
}
