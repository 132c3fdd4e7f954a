package groups

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"weir/client"
)

// KV is one record for the offsets topic; a nil Value is a tombstone.
type KV struct {
	Key, Value []byte
}

// PartitionOffsets are a data partition's bounds as its leader reports them.
type PartitionOffsets struct {
	LogStart, HighWatermark int64
	// ForTimestamp is the first offset at or after the asked timestamp, nil
	// when no committed record is that late.
	ForTimestamp *int64
}

// Env is what the coordinator needs of its node: the offsets topic's
// partitions it leads and the data partitions' bounds.
type Env interface {
	// LoadOffsets calls fn with every committed record of offsets
	// partition p, in order, once this node leads p in leader epoch
	// epoch and its high watermark covers everything earlier leaders
	// wrote. It fails if the leadership moves on.
	LoadOffsets(ctx context.Context, p, epoch int32, fn func(key, value []byte)) error
	// AppendOffsets writes records to offsets partition p, acks=all, only
	// while this node still leads p in epoch.
	AppendOffsets(ctx context.Context, p, epoch int32, recs []KV) error
	// PartitionCounts gives the partition count of each topic (absent or 0:
	// the topic does not exist).
	PartitionCounts(topics []string) map[string]int32
	// TopicOffsets asks the leaders of topic's partitions for their bounds
	// (and the offset for timestamp when it is not nil). Partitions whose
	// leader did not answer are missing from the map.
	TopicOffsets(ctx context.Context, topic string, timestamp *int64) (map[int32]PartitionOffsets, error)
}

// CoordinatorOptions configure a Coordinator.
type CoordinatorOptions struct {
	Env Env
	// NodeID is reported as the groups' coordinator.
	NodeID int32
	Logger *slog.Logger
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
	// ObserveCommit, if set, is told how long each durable commit took.
	ObserveCommit func(time.Duration)
	// NewUUID overrides the uuid part of member ids (tests).
	NewUUID func() string
	// ExpiryInterval paces session-timeout checks; default 100ms.
	ExpiryInterval time.Duration
	// LagInterval paces the refresh of log ends for lag metrics; default 5s.
	LagInterval time.Duration
	// MetadataCurrent, if set, reports whether the node's view of the
	// cluster is current (the controller answered it lately). While it is
	// not, the node may have lost an offsets partition's leadership without
	// knowing, and another coordinator may already be taking commits, so
	// calls are refused (NOT_COORDINATOR) rather than answered from memory.
	MetadataCurrent func() bool
}

// Coordinator runs the consumer groups whose offsets partitions this node
// leads: it loads a partition when it becomes leader, serves its groups from
// memory, writes their commits and generations durably before answering,
// and forgets them when the leadership moves on. The node routes each call
// to the group's coordinator first; a call that reaches a node that does
// not (yet) coordinate the group gets ErrNotCoordinator or ErrLoadInProgress.
type Coordinator struct {
	opts CoordinatorOptions
	log  *slog.Logger
	env  Env

	mu         sync.Mutex
	numParts   int32 // partitions of the offsets topic; 0 until it exists
	parts      map[int32]*offsetsPart
	topicsKick chan struct{}

	wg     sync.WaitGroup
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
}

// offsetsPart is one offsets partition this node leads.
type offsetsPart struct {
	p, epoch int32
	ready    chan struct{} // closed once loaded
	cancel   context.CancelFunc
	gone     atomic.Bool // resigned: its groups must not be used any more

	mu     sync.Mutex // guards groups
	groups map[string]*groupState
}

// groupState is a group and what the coordinator keeps beside it.
type groupState struct {
	mu   sync.Mutex // serialises the group's calls, durable writes included
	part *offsetsPart
	g    *Group
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
	return &groupState{part: op, g: g, persistedGen: g.Generation(), positions: map[string]map[TopicPartition]int64{},
		polls: map[string]*pendingPoll{}, logEnd: map[TopicPartition]int64{}}
}

// NewCoordinator returns a coordinator; Run drives its timers.
func NewCoordinator(opts CoordinatorOptions) *Coordinator {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ExpiryInterval <= 0 {
		opts.ExpiryInterval = 100 * time.Millisecond
	}
	if opts.LagInterval <= 0 {
		opts.LagInterval = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Coordinator{opts: opts, log: opts.Logger, env: opts.Env, parts: map[int32]*offsetsPart{},
		topicsKick: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
}

// Close stops the loaders and timers and waits for them.
func (c *Coordinator) Close() {
	c.cancel()
	c.mu.Lock()
	for _, op := range c.parts {
		op.gone.Store(true)
		op.cancel()
	}
	c.parts = map[int32]*offsetsPart{}
	c.mu.Unlock()
	c.wg.Wait()
}

// Run expires silent members, rebalances on topic changes and refreshes lag
// until ctx or Close ends it.
func (c *Coordinator) Run(ctx context.Context) {
	// Lag refreshes ask other nodes and may take seconds: they run apart
	// so that session expiry stays on time.
	done := make(chan struct{})
	go func() {
		defer close(done)
		lag := time.NewTicker(c.opts.LagInterval)
		defer lag.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.ctx.Done():
				return
			case <-lag.C:
				c.refreshLag(ctx)
			}
		}
	}()
	defer func() { <-done }()
	expiry := time.NewTicker(c.opts.ExpiryInterval)
	defer expiry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.ctx.Done():
			return
		case <-expiry.C:
			c.expire()
		case <-c.topicsKick:
			c.updateTopics()
		}
	}
}

// TopicsChanged tells the coordinator that topics or partition counts may
// have changed, so subscriptions pick them up.
func (c *Coordinator) TopicsChanged() {
	select {
	case c.topicsKick <- struct{}{}:
	default:
	}
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
			op.gone.Store(true)
			op.cancel()
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
		op := &offsetsPart{p: p, epoch: e, ready: make(chan struct{}), cancel: cancel, groups: map[string]*groupState{}}
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

// withGroup runs fn with the group locked. create makes a missing group;
// without it a missing group is GROUP_ID_NOT_FOUND.
func (c *Coordinator) withGroup(group string, create bool, fn func(gs *groupState) error) error {
	if err := ValidateGroupName(group); err != nil {
		return err
	}
	op, err := c.part(group)
	if err != nil {
		return err
	}
	op.mu.Lock()
	gs, ok := op.groups[group]
	if !ok {
		if !create {
			op.mu.Unlock()
			return fmt.Errorf("%w: group %q does not exist", ErrDeadGroup, group)
		}
		gs = newGroupState(op, NewGroup(group, Options{NewUUID: c.opts.NewUUID}))
		op.groups[group] = gs
	}
	op.mu.Unlock()
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if op.gone.Load() {
		return fmt.Errorf("%w: this node stopped coordinating group %q", ErrNotCoordinator, group)
	}
	// Checked under the group's lock: a call that waited behind a durable
	// write must not answer from memory another coordinator has outdated.
	if c.opts.MetadataCurrent != nil && !c.opts.MetadataCurrent() {
		return fmt.Errorf("%w: this node has not heard from the controller lately, so it may no longer coordinate group %q", ErrNotCoordinator, group)
	}
	return fn(gs)
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

// append writes records to the group's offsets partition.
func (c *Coordinator) append(ctx context.Context, gs *groupState, recs []KV) error {
	if len(recs) == 0 {
		return nil
	}
	if err := c.env.AppendOffsets(ctx, gs.part.p, gs.part.epoch, recs); err != nil {
		return fmt.Errorf("writing group %q to offsets partition %d: %w", gs.g.Name(), gs.part.p, err)
	}
	return nil
}

// reveal makes the current generation durable before anyone learns it.
func (c *Coordinator) reveal(ctx context.Context, gs *groupState) error {
	gen := gs.g.Generation()
	if gen <= gs.persistedGen {
		return nil
	}
	k, v := EncodeGroupMetadata(gs.g.Name(), gen, string(gs.g.Assignor()), c.opts.Now().UnixMilli())
	if err := c.append(ctx, gs, []KV{{k, v}}); err != nil {
		return err
	}
	gs.persistedGen = gen
	return nil
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
// (and of extra topics a joining member names).
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
	err := c.withGroup(group, true, func(gs *groupState) error {
		c.refreshTopics(gs, req.Topics)
		ms, err := gs.g.Join(jr, c.opts.Now())
		if err != nil {
			return err
		}
		gs.prune()
		if err := c.reveal(ctx, gs); err != nil {
			if req.MemberID == "" {
				// Nobody learned of the new member: take it out again, or
				// it would hold partitions nobody reads until its session
				// expired (and every retry would add another).
				_ = gs.g.Leave(ms.MemberID)
				gs.prune()
			}
			return err
		}
		out = memberAssignment(ms)
		return nil
	})
	return out, err
}

// Heartbeat keeps a member alive and tells it its generation and partitions.
func (c *Coordinator) Heartbeat(ctx context.Context, group, member string) (client.MemberAssignment, error) {
	var out client.MemberAssignment
	err := c.withGroup(group, false, func(gs *groupState) error {
		ms, err := gs.g.Heartbeat(member, c.opts.Now())
		if err != nil {
			return err
		}
		if err := c.reveal(ctx, gs); err != nil {
			return err
		}
		out = memberAssignment(ms)
		return nil
	})
	return out, unknownMemberIfNoGroup(err, group, member)
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
	err := c.withGroup(group, false, func(gs *groupState) error {
		if !gs.g.HasMember(member) {
			return fmt.Errorf("%w: %q in group %q", ErrUnknownMember, member, group)
		}
		if gs.g.AutoCommit(member) {
			if pp := gs.polls[member]; pp != nil && pp.acks {
				pp.next = nil // not acknowledged: maybe never received
			} else {
				gs.settle(member, -1, gs.g.memberState(member)) // leaving: it has what it polled
			}
			if err := c.commitPositions(ctx, gs, member); err != nil {
				c.log.Warn("auto-commit on leave failed", "group", group, "member", member, "err", err)
			}
		}
		if err := gs.g.Leave(member); err != nil {
			return err
		}
		gs.prune()
		return nil
	})
	return unknownMemberIfNoGroup(err, group, member)
}

// commitPositions durably commits the member's positions that differ from
// the committed offsets, in the current generation.
func (c *Coordinator) commitPositions(ctx context.Context, gs *groupState, member string) error {
	var offs []CommitOffset
	for _, tp := range slices.SortedFunc(maps.Keys(gs.positions[member]), compareTP) {
		pos := gs.positions[member][tp]
		if o, ok := gs.g.Committed(tp); ok && o.Offset == pos {
			continue
		}
		offs = append(offs, CommitOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: pos})
	}
	if len(offs) == 0 {
		return nil
	}
	return c.commit(ctx, gs, member, gs.g.Generation(), offs)
}

// commit checks fencing, writes the offsets durably, then applies them.
func (c *Coordinator) commit(ctx context.Context, gs *groupState, member string, gen int32, offs []CommitOffset) error {
	if err := validateOffsets(offs); err != nil {
		return err
	}
	now := c.opts.Now()
	if err := gs.g.CheckCommit(member, gen, now); err != nil {
		return err
	}
	recs := make([]KV, 0, len(offs))
	for _, o := range offs {
		k, v := EncodeOffsetCommit(gs.g.Name(), o.Topic, o.Partition, o.Offset, o.Metadata, now.UnixMilli())
		recs = append(recs, KV{k, v})
	}
	start := time.Now()
	if err := c.append(ctx, gs, recs); err != nil {
		return err
	}
	if c.opts.ObserveCommit != nil {
		c.opts.ObserveCommit(time.Since(start))
	}
	gs.g.ApplyOffsets(offs, now.UnixMilli())
	return nil
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
	var out Poll
	err := c.withGroup(group, false, func(gs *groupState) error {
		ms, err := gs.g.Heartbeat(member, c.opts.Now())
		if err != nil {
			return err
		}
		gs.settle(member, ack, ms)
		pp := gs.polls[member]
		if pp == nil {
			pp = &pendingPoll{}
			gs.polls[member] = pp
		}
		pp.acks = ack >= 0
		if err := c.reveal(ctx, gs); err != nil {
			return err
		}
		reset, _ := gs.g.AutoOffsetReset(member)
		if gs.g.AutoCommit(member) {
			// A failed auto-commit is retried by the next poll; the poll
			// itself goes on (at-least-once either way).
			if err := c.commitPositions(ctx, gs, member); err != nil {
				c.log.Debug("auto-commit failed", "group", group, "member", member, "err", err)
			}
		}
		pos := gs.positions[member]
		if pos == nil {
			pos = map[TopicPartition]int64{}
			gs.positions[member] = pos
		}
		if err := c.resolvePositions(ctx, gs, ms.Assignment, pos, reset); err != nil {
			return err
		}
		out = Poll{MemberID: member, Generation: ms.Generation, Assignments: toTPs(ms.Assignment), AutoOffsetReset: reset}
		for _, tp := range ms.Assignment {
			if o, ok := pos[tp]; ok {
				out.Positions = append(out.Positions, client.GroupPosition{Topic: tp.Topic, Partition: tp.Partition, Offset: o})
			}
		}
		return nil
	})
	return out, unknownMemberIfNoGroup(err, group, member)
}

// resolvePositions gives every assigned partition without a position one:
// its committed offset, else the reset policy against its leader's bounds.
func (c *Coordinator) resolvePositions(ctx context.Context, gs *groupState, assigned []TopicPartition, pos map[TopicPartition]int64, reset string) error {
	bounds := map[string]map[int32]PartitionOffsets{}
	for _, tp := range assigned {
		if _, ok := pos[tp]; ok {
			continue
		}
		if o, ok := gs.g.Committed(tp); ok {
			pos[tp] = o.Offset
			continue
		}
		b, ok := bounds[tp.Topic]
		if !ok {
			var err error
			if b, err = c.env.TopicOffsets(ctx, tp.Topic, nil); err != nil {
				b = nil // unknown for now; the next poll asks again
			}
			bounds[tp.Topic] = b
		}
		po, ok := b[tp.Partition]
		if !ok {
			continue
		}
		if reset == OffsetResetEarliest {
			pos[tp] = po.LogStart
		} else {
			pos[tp] = po.HighWatermark
		}
	}
	return nil
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
	pos := gs.positions[member]
	if pos == nil {
		pos = map[TopicPartition]int64{}
		gs.positions[member] = pos
	}
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
// after a timestamp, or either end of the log.
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
	out := client.SeekResponse{Positions: []client.GroupPosition{}}
	err := c.withGroup(group, false, func(gs *groupState) error {
		ms, err := gs.g.Heartbeat(member, c.opts.Now())
		if err != nil {
			return err
		}
		var targets []TopicPartition
		for _, tp := range ms.Assignment {
			if (req.Topic == "" || tp.Topic == req.Topic) && (req.Partition == nil || tp.Partition == *req.Partition) {
				targets = append(targets, tp)
			}
		}
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
		bounds := map[string]map[int32]PartitionOffsets{}
		pos := gs.positions[member]
		if pos == nil {
			pos = map[TopicPartition]int64{}
			gs.positions[member] = pos
		}
		resolved := map[TopicPartition]int64{}
		for _, tp := range targets {
			if req.Offset != nil {
				resolved[tp] = *req.Offset
				continue
			}
			b, ok := bounds[tp.Topic]
			if !ok {
				if b, err = c.env.TopicOffsets(ctx, tp.Topic, req.Timestamp); err != nil {
					return err
				}
				bounds[tp.Topic] = b
			}
			po, ok := b[tp.Partition]
			if !ok {
				return fmt.Errorf("%w: the leader of %s-%d did not report its offsets; retry", ErrLeaderNotAvailable, tp.Topic, tp.Partition)
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
	return out, unknownMemberIfNoGroup(err, group, member)
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
	err := c.withGroup(group, req.MemberID == "", func(gs *groupState) error {
		if err := c.commit(ctx, gs, req.MemberID, gen, offs); err != nil {
			return err
		}
		if req.MemberID != "" { // an explicit commit also moves the member's positions
			if pos := gs.positions[req.MemberID]; pos != nil {
				a, _ := gs.g.Assignment(req.MemberID)
				for _, o := range offs {
					if tp := (TopicPartition{o.Topic, o.Partition}); slices.Contains(a, tp) && pos[tp] < o.Offset {
						pos[tp] = o.Offset
					}
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

// snapshot is a group's description taken under its lock, completed with
// log ends outside it.
func (c *Coordinator) snapshot(group string) (Description, error) {
	var d Description
	err := c.withGroup(group, false, func(gs *groupState) error {
		d = gs.g.Describe()
		if d.Generation > gs.persistedGen { // shown only once durable (see reveal)
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
	err = c.withGroup(group, !dry, func(gs *groupState) error {
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
		rows, err := gs.g.ResetOffsets(targets, true, c.opts.Now())
		if err != nil {
			return err
		}
		if !dry {
			if err := c.commit(ctx, gs, "", 0, targets); err != nil {
				return err
			}
		}
		for _, r := range rows {
			row := client.ResetOffsetRow{Topic: r.Topic, Partition: r.Partition, NewOffset: r.NewOffset}
			if r.OldOffset >= 0 {
				old := r.OldOffset
				row.OldOffset = &old
			}
			out.Offsets = append(out.Offsets, row)
		}
		return nil
	})
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
	return c.withGroup(group, false, func(gs *groupState) error {
		if n := gs.g.NumMembers(); n > 0 {
			return fmt.Errorf("%w: group %q has %d active members", ErrNonEmptyGroup, group, n)
		}
		var recs []KV
		for _, tp := range slices.SortedFunc(maps.Keys(gs.g.Offsets()), compareTP) {
			recs = append(recs, KV{Key: EncodeOffsetTombstone(group, tp.Topic, tp.Partition)})
		}
		recs = append(recs, KV{Key: EncodeGroupTombstone(group)})
		if err := c.append(ctx, gs, recs); err != nil {
			return err
		}
		if _, err := gs.g.Delete(); err != nil {
			return err
		}
		gs.part.mu.Lock()
		delete(gs.part.groups, group)
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

// expire removes members whose session timed out.
func (c *Coordinator) expire() {
	now := c.opts.Now()
	for _, gs := range c.allGroups() {
		if !gs.mu.TryLock() {
			continue // busy (a durable write under way): the next tick sees it
		}
		if t, ok := gs.g.NextExpiry(); ok && now.After(t) && !gs.part.gone.Load() {
			if gone := gs.g.Expire(now); len(gone) > 0 {
				gs.prune()
				c.log.Info("members expired", "group", gs.g.Name(), "members", gone, "generation", gs.g.Generation())
			}
		}
		gs.mu.Unlock()
	}
}

// updateTopics rebalances groups whose subscribed topics changed.
func (c *Coordinator) updateTopics() {
	for _, gs := range c.allGroups() {
		gs.mu.Lock()
		if !gs.part.gone.Load() {
			c.refreshTopics(gs, nil)
		}
		gs.mu.Unlock()
	}
}

// refreshLag fetches log ends of the topics groups committed offsets for.
func (c *Coordinator) refreshLag(ctx context.Context) {
	byGroup := map[*groupState][]string{}
	topics := map[string]bool{}
	for _, gs := range c.allGroups() {
		gs.mu.Lock()
		set := map[string]bool{}
		for tp := range gs.g.Offsets() {
			set[tp.Topic] = true
			topics[tp.Topic] = true
		}
		gs.mu.Unlock()
		byGroup[gs] = slices.Sorted(maps.Keys(set))
	}
	if len(topics) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ends := c.logEnds(cctx, slices.Sorted(maps.Keys(topics)))
	for gs := range byGroup {
		gs.mu.Lock()
		maps.Copy(gs.logEnd, ends)
		gs.mu.Unlock()
	}
}
