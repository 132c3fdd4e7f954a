package groups

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// State is a group's state, named as in Kafka and the API.
type State string

const (
	// StateEmpty: no members; offsets may exist, resets and deletes allowed.
	StateEmpty State = "Empty"
	// StateStable: every member has seen the current generation.
	StateStable State = "Stable"
	// StatePreparingRebalance: the generation changed and some member has
	// not yet learned its new assignment (via Join or Heartbeat). Until it
	// does it may still be reading partitions that moved, which is why its
	// commits are fenced by generation.
	StatePreparingRebalance State = "PreparingRebalance"
	// StateDead: the group was deleted.
	StateDead State = "Dead"
)

// Offset reset policies when a member has no committed offset. The group
// only records the policy; the server resolves it against the log.
const (
	OffsetResetEarliest = "earliest"
	OffsetResetLatest   = "latest"
)

// DefaultSessionTimeout follows the API's example (30s); Kafka's client
// default is 45s since 3.0, but the API is the contract here.
const DefaultSessionTimeout = 30 * time.Second

// MaxSessionTimeout bounds session timeouts like Kafka's
// group.max.session.timeout.ms, so that a typo cannot pin partitions to a
// dead member for days.
const MaxSessionTimeout = 30 * time.Minute

// Options configures a Group. Zero values are sensible defaults.
type Options struct {
	// NewUUID produces the uuid part of generated member ids; tests inject a
	// deterministic source. Default: random v4 UUIDs.
	NewUUID func() string
	// Generation restores the generation after a coordinator failover (from
	// the group's metadata record) so generations never go backwards.
	Generation int32
	// Offsets restores committed offsets (from Loader).
	Offsets map[TopicPartition]OffsetAndMetadata
	// Topics seeds the known partition counts (see UpdateTopics).
	Topics map[string]int32
}

// OffsetAndMetadata is one committed offset.
type OffsetAndMetadata struct {
	Offset   int64
	Metadata string
	// CommitTime is in ms since the epoch, as stored in the record.
	CommitTime int64
}

// CommitOffset is one partition's offset in a commit or reset request.
type CommitOffset struct {
	Topic     string
	Partition int32
	Offset    int64
	Metadata  string
}

// JoinRequest is a member's join; see API.md POST /v1/groups/{g}/members.
type JoinRequest struct {
	// MemberID is "" for a new member; a known id re-joins (updating its
	// subscription) and an unknown one is refused, so that a member removed
	// for silence cannot resurrect itself without noticing.
	MemberID        string
	ClientID        string
	Host            string
	Topics          []string
	SessionTimeout  time.Duration // 0: DefaultSessionTimeout
	Assignor        string        // "": the group's, or DefaultAssignor
	AutoOffsetReset string        // "": latest (Kafka's default)
	AutoCommit      bool
}

// MemberState is what a member learns from Join and Heartbeat.
type MemberState struct {
	MemberID   string
	Generation int32
	Assignment []TopicPartition
	State      State
}

type member struct {
	id, clientID, host string
	topics             []string // sorted, deduplicated
	sessionTimeout     time.Duration
	autoOffsetReset    string
	autoCommit         bool
	lastSeen           time.Time
	joinedAt           time.Time
	// ackedGeneration is the last generation this member was told about;
	// the group is Stable once every member has acked the current one.
	ackedGeneration int32
}

// Group is one consumer group's state machine. Not safe for concurrent use.
type Group struct {
	name       string
	dead       bool
	generation int32
	assignor   Assignor // meaningful while the group has members
	members    map[string]*member
	assignment Assignment
	topics     map[string]int32
	offsets    map[TopicPartition]OffsetAndMetadata
	newUUID    func() string
	rebalances int64
}

// NewGroup returns an empty group.
func NewGroup(name string, opts Options) *Group {
	g := &Group{
		name:       name,
		generation: opts.Generation,
		assignor:   DefaultAssignor,
		members:    make(map[string]*member),
		assignment: Assignment{},
		topics:     make(map[string]int32),
		offsets:    make(map[TopicPartition]OffsetAndMetadata),
		newUUID:    opts.NewUUID,
	}
	if g.newUUID == nil {
		g.newUUID = randomUUID
	}
	maps.Copy(g.offsets, opts.Offsets)
	for t, n := range opts.Topics {
		if n > 0 {
			g.topics[t] = n
		}
	}
	return g
}

// Name returns the group id.
func (g *Group) Name() string { return g.name }

// Generation returns the current generation.
func (g *Group) Generation() int32 { return g.generation }

// Rebalances counts generation bumps since NewGroup (for metrics).
func (g *Group) Rebalances() int64 { return g.rebalances }

// State derives the state from membership and acknowledgements rather than
// storing it, so it can never disagree with them.
func (g *Group) State() State {
	switch {
	case g.dead:
		return StateDead
	case len(g.members) == 0:
		return StateEmpty
	}
	for _, m := range g.members {
		if m.ackedGeneration != g.generation {
			return StatePreparingRebalance
		}
	}
	return StateStable
}

// Assignor returns the group's assignor.
func (g *Group) Assignor() Assignor { return g.assignor }

// NumMembers returns the number of members.
func (g *Group) NumMembers() int { return len(g.members) }

// HasMember reports whether id is a current member.
func (g *Group) HasMember(id string) bool { _, ok := g.members[id]; return ok }

// Assignment returns a copy of a member's current partitions.
func (g *Group) Assignment(memberID string) ([]TopicPartition, error) {
	if _, ok := g.members[memberID]; !ok {
		return nil, fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, g.name)
	}
	return slices.Clone(g.assignment[memberID]), nil
}

// SubscribedTopics returns the sorted union of the members' subscriptions:
// the topics whose partition counts the coordinator should keep feeding to
// UpdateTopics.
func (g *Group) SubscribedTopics() []string {
	set := make(map[string]bool)
	for _, m := range g.members {
		for _, t := range m.topics {
			set[t] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func normaliseTopics(ts []string) []string {
	out := slices.Clone(ts)
	slices.Sort(out)
	return slices.Compact(out)
}

func (g *Group) memberID(host string, now time.Time) string {
	if host == "" {
		host = "unknown"
	}
	return g.name + "-" + host + "-" + strconv.FormatInt(now.UnixMilli(), 10) + "-" + g.newUUID()
}

// Join adds a member (or updates a re-joining one) and, if membership or
// subscriptions changed, recomputes the assignment under a new generation.
// The caller should have fed fresh partition counts for req.Topics to
// UpdateTopics first; topics not yet known are assigned once they are.
func (g *Group) Join(req JoinRequest, now time.Time) (MemberState, error) {
	if g.dead {
		return MemberState{}, fmt.Errorf("%w: group %q was deleted", ErrDeadGroup, g.name)
	}
	if len(req.Topics) == 0 {
		return MemberState{}, fmt.Errorf("%w: topics: at least one topic is required", ErrInvalidRequest)
	}
	for _, t := range req.Topics {
		if t == "" {
			return MemberState{}, fmt.Errorf("%w: topics: empty topic name", ErrInvalidRequest)
		}
	}
	timeout := req.SessionTimeout
	switch {
	case timeout == 0:
		timeout = DefaultSessionTimeout
	case timeout < 0 || timeout > MaxSessionTimeout:
		return MemberState{}, fmt.Errorf("%w: session_timeout_ms: %d out of range (1..%d)",
			ErrInvalidRequest, timeout.Milliseconds(), MaxSessionTimeout.Milliseconds())
	}
	reset := req.AutoOffsetReset
	switch reset {
	case "":
		reset = OffsetResetLatest
	case OffsetResetEarliest, OffsetResetLatest:
	default:
		return MemberState{}, fmt.Errorf("%w: auto_offset_reset: %q (want earliest or latest)", ErrInvalidRequest, reset)
	}
	assignor := g.assignor
	if req.Assignor != "" {
		a, err := ParseAssignor(req.Assignor)
		if err != nil {
			return MemberState{}, err
		}
		// The only member may change the strategy by re-joining; otherwise
		// all members must agree, as with Kafka's group protocol selection.
		sole := len(g.members) == 1 && g.members[req.MemberID] != nil
		if len(g.members) > 0 && !sole && a != g.assignor {
			return MemberState{}, fmt.Errorf("%w: group %q uses %q, join asked for %q",
				ErrInconsistentAssignor, g.name, g.assignor, a)
		}
		assignor = a
	} else if len(g.members) == 0 {
		assignor = DefaultAssignor
	}
	topics := normaliseTopics(req.Topics)

	if req.MemberID != "" {
		m, ok := g.members[req.MemberID]
		if !ok {
			return MemberState{}, fmt.Errorf("%w: %q in group %q; join without a member id", ErrUnknownMember, req.MemberID, g.name)
		}
		changed := !slices.Equal(m.topics, topics) || assignor != g.assignor
		m.clientID, m.host, m.topics = req.ClientID, req.Host, topics
		m.sessionTimeout, m.autoOffsetReset, m.autoCommit = timeout, reset, req.AutoCommit
		m.lastSeen = now
		g.assignor = assignor
		if changed {
			g.rebalance()
		}
		m.ackedGeneration = g.generation
		return g.memberState(m.id), nil
	}

	id := g.memberID(req.Host, now)
	for g.members[id] != nil { // only with a broken injected id source
		id += "-" + g.newUUID()
	}
	m := &member{
		id: id, clientID: req.ClientID, host: req.Host, topics: topics,
		sessionTimeout: timeout, autoOffsetReset: reset, autoCommit: req.AutoCommit,
		lastSeen: now, joinedAt: now,
	}
	g.members[id] = m
	g.assignor = assignor
	g.rebalance()
	m.ackedGeneration = g.generation
	return g.memberState(id), nil
}

func (g *Group) memberState(id string) MemberState {
	return MemberState{
		MemberID:   id,
		Generation: g.generation,
		Assignment: slices.Clone(g.assignment[id]),
		State:      g.State(),
	}
}

// rebalance recomputes the assignment and bumps the generation. The
// assignment is a pure function of the new membership, so each generation
// has exactly one assignment and no partition can belong to two members of
// one generation.
func (g *Group) rebalance() {
	subs := make([]MemberSubscription, 0, len(g.members))
	for _, m := range g.members {
		subs = append(subs, MemberSubscription{ID: m.id, Topics: m.topics, Current: g.assignment[m.id]})
	}
	a, err := g.assignor.Assign(subs, g.topics)
	if err != nil { // unreachable: assignor names are validated on Join
		a = RangeAssign(subs, g.topics)
	}
	g.assignment = a
	g.generation++
	g.rebalances++
}

// Heartbeat records liveness and tells the member its current generation
// and assignment (which acknowledges that generation). Any member call
// (fetch, commit, seek) should count as one.
func (g *Group) Heartbeat(memberID string, now time.Time) (MemberState, error) {
	m, ok := g.members[memberID]
	if !ok {
		return MemberState{}, fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, g.name)
	}
	m.lastSeen = now
	m.ackedGeneration = g.generation
	return g.memberState(memberID), nil
}

// Leave removes a member; the group rebalances at once.
func (g *Group) Leave(memberID string) error {
	if _, ok := g.members[memberID]; !ok {
		return fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, g.name)
	}
	delete(g.members, memberID)
	delete(g.assignment, memberID)
	g.rebalance()
	return nil
}

// Expire removes members silent for longer than their session timeout and
// returns their ids (sorted). All expiries at one instant cause a single
// rebalance.
func (g *Group) Expire(now time.Time) []string {
	var gone []string
	for id, m := range g.members {
		if now.Sub(m.lastSeen) > m.sessionTimeout {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	slices.Sort(gone)
	for _, id := range gone {
		delete(g.members, id)
		delete(g.assignment, id)
	}
	g.rebalance()
	return gone
}

// NextExpiry returns when the next member would expire if silent, so the
// coordinator can arm a single timer. ok is false without members.
func (g *Group) NextExpiry() (t time.Time, ok bool) {
	for _, m := range g.members {
		d := m.lastSeen.Add(m.sessionTimeout)
		if !ok || d.Before(t) {
			t, ok = d, true
		}
	}
	return t, ok
}

// UpdateTopics records partition counts for the listed topics (count <= 0
// means the topic no longer exists) and rebalances if that changes the
// assignment, so new partitions and newly created subscribed topics are
// picked up. It returns whether a rebalance happened; counts for topics no
// member subscribes to are remembered without one.
func (g *Group) UpdateTopics(counts map[string]int32) bool {
	changed := false
	for t, n := range counts {
		if n <= 0 {
			if _, ok := g.topics[t]; ok {
				delete(g.topics, t)
				changed = true
			}
			continue
		}
		if g.topics[t] != n {
			g.topics[t] = n
			changed = true
		}
	}
	if !changed || len(g.members) == 0 || g.dead {
		return false
	}
	subs := make([]MemberSubscription, 0, len(g.members))
	for _, m := range g.members {
		subs = append(subs, MemberSubscription{ID: m.id, Topics: m.topics, Current: g.assignment[m.id]})
	}
	next, err := g.assignor.Assign(subs, g.topics)
	if err != nil || assignmentsEqual(next, g.assignment) {
		return false
	}
	g.rebalance()
	return true
}

func assignmentsEqual(a, b Assignment) bool {
	if len(a) != len(b) {
		return false
	}
	for id, tps := range a {
		if !slices.Equal(tps, b[id]) {
			return false
		}
	}
	return true
}

// CheckCommit applies the fencing rules for a commit without changing
// offsets, so the coordinator can validate, write the records durably, and
// only then ApplyOffsets. A member commit counts as a heartbeat.
//
//   - memberID "" (standalone, e.g. an admin tool): only while the group has
//     no members, otherwise ErrRebalanceInProgress.
//   - unknown member: ErrUnknownMember.
//   - generation other than the current one: ErrIllegalGeneration.
func (g *Group) CheckCommit(memberID string, generation int32, now time.Time) error {
	if g.dead {
		return fmt.Errorf("%w: group %q was deleted", ErrDeadGroup, g.name)
	}
	if memberID == "" {
		if len(g.members) > 0 {
			return fmt.Errorf("%w: group %q has %d members; commits must carry member_id and generation",
				ErrRebalanceInProgress, g.name, len(g.members))
		}
		return nil
	}
	m, ok := g.members[memberID]
	if !ok {
		return fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, g.name)
	}
	if generation != g.generation {
		return fmt.Errorf("%w: generation %d, group %q is at %d", ErrIllegalGeneration, generation, g.name, g.generation)
	}
	m.lastSeen = now
	return nil
}

// ApplyOffsets stores offsets that are already durable (or replayed).
func (g *Group) ApplyOffsets(offsets []CommitOffset, commitTime int64) {
	for _, o := range offsets {
		g.offsets[TopicPartition{o.Topic, o.Partition}] = OffsetAndMetadata{o.Offset, o.Metadata, commitTime}
	}
}

// Commit is CheckCommit followed by ApplyOffsets, for callers whose
// persistence happens elsewhere (and tests).
func (g *Group) Commit(memberID string, generation int32, offsets []CommitOffset, now time.Time) error {
	if err := validateOffsets(offsets); err != nil {
		return err
	}
	if err := g.CheckCommit(memberID, generation, now); err != nil {
		return err
	}
	g.ApplyOffsets(offsets, now.UnixMilli())
	return nil
}

func validateOffsets(offsets []CommitOffset) error {
	for i, o := range offsets {
		switch {
		case o.Topic == "":
			return fmt.Errorf("%w: offsets[%d].topic: empty", ErrInvalidRequest, i)
		case o.Partition < 0:
			return fmt.Errorf("%w: offsets[%d].partition: negative", ErrInvalidRequest, i)
		case o.Offset < 0:
			return fmt.Errorf("%w: offsets[%d].offset: negative", ErrInvalidRequest, i)
		}
	}
	return nil
}

// Committed returns a partition's committed offset, if any. With none, the
// server applies the member's auto_offset_reset against the log.
func (g *Group) Committed(tp TopicPartition) (OffsetAndMetadata, bool) {
	o, ok := g.offsets[tp]
	return o, ok
}

// Offsets returns a copy of all committed offsets.
func (g *Group) Offsets() map[TopicPartition]OffsetAndMetadata { return maps.Clone(g.offsets) }

// AutoOffsetReset returns a member's reset policy.
func (g *Group) AutoOffsetReset(memberID string) (string, error) {
	m, ok := g.members[memberID]
	if !ok {
		return "", fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, g.name)
	}
	return m.autoOffsetReset, nil
}

// AutoCommit reports whether a member auto-commits (false for unknown ids).
func (g *Group) AutoCommit(memberID string) bool {
	m, ok := g.members[memberID]
	return ok && m.autoCommit
}

// ResetResult is one row of an offset reset.
type ResetResult struct {
	TopicPartition
	OldOffset int64 // -1: none was committed
	NewOffset int64
}

// ResetOffsets sets committed offsets to targets the caller resolved against
// the log (earliest, latest, timestamp, shift...). Only an Empty group may
// be reset (ErrNonEmptyGroup), as in kafka-consumer-groups --reset-offsets:
// active members would overwrite the reset with their next commit. With
// dryRun nothing changes; the rows show what would.
func (g *Group) ResetOffsets(targets []CommitOffset, dryRun bool, now time.Time) ([]ResetResult, error) {
	if g.dead {
		return nil, fmt.Errorf("%w: group %q was deleted", ErrDeadGroup, g.name)
	}
	if len(g.members) > 0 {
		return nil, fmt.Errorf("%w: group %q has %d members", ErrNonEmptyGroup, g.name, len(g.members))
	}
	if err := validateOffsets(targets); err != nil {
		return nil, err
	}
	rows := make([]ResetResult, 0, len(targets))
	for _, t := range targets {
		tp := TopicPartition{t.Topic, t.Partition}
		old := int64(-1)
		if o, ok := g.offsets[tp]; ok {
			old = o.Offset
		}
		rows = append(rows, ResetResult{tp, old, t.Offset})
	}
	slices.SortFunc(rows, func(a, b ResetResult) int { return compareTP(a.TopicPartition, b.TopicPartition) })
	if !dryRun {
		g.ApplyOffsets(targets, now.UnixMilli())
	}
	return rows, nil
}

// ShiftOffset is the "shift" reset: current+by clamped into the log's
// [logStart, logEnd], as kafka-consumer-groups --shift-by does.
func ShiftOffset(current, by, logStart, logEnd int64) int64 {
	n := current + by
	if by > 0 && n < current { // overflow
		n = logEnd
	}
	if by < 0 && n > current {
		n = logStart
	}
	return max(logStart, min(n, logEnd))
}

// DeleteOffsets forgets committed offsets (after their tombstones are
// durable), e.g. for a deleted topic.
func (g *Group) DeleteOffsets(tps []TopicPartition) {
	for _, tp := range tps {
		delete(g.offsets, tp)
	}
}

// Delete marks an Empty group Dead and returns the partitions whose offsets
// need tombstones (sorted). Refused with ErrNonEmptyGroup while members are
// present.
func (g *Group) Delete() ([]TopicPartition, error) {
	if g.dead {
		return nil, fmt.Errorf("%w: group %q was deleted", ErrDeadGroup, g.name)
	}
	if len(g.members) > 0 {
		return nil, fmt.Errorf("%w: group %q has %d members", ErrNonEmptyGroup, g.name, len(g.members))
	}
	tps := slices.SortedFunc(maps.Keys(g.offsets), compareTP)
	g.offsets = make(map[TopicPartition]OffsetAndMetadata)
	g.dead = true
	return tps, nil
}

// Description is a snapshot of the group for GET /v1/groups/{g}.
type Description struct {
	Group      string
	State      State
	Generation int32
	Assignor   Assignor
	Members    []MemberDescription
	Offsets    []OffsetDescription
}

// MemberDescription describes one member.
type MemberDescription struct {
	MemberID        string
	ClientID        string
	Host            string
	Topics          []string
	SessionTimeout  time.Duration
	AutoOffsetReset string
	AutoCommit      bool
	JoinedAt        time.Time
	LastSeen        time.Time
	Assignments     []TopicPartition
}

// OffsetDescription is one partition row: committed offset (if any) and the
// member currently assigned the partition (if any). Log end and lag are the
// server's to add.
type OffsetDescription struct {
	TopicPartition
	Committed bool
	OffsetAndMetadata
	MemberID string
}

// Describe returns a deep-copied, sorted snapshot.
func (g *Group) Describe() Description {
	d := Description{Group: g.name, State: g.State(), Generation: g.generation, Assignor: g.assignor}
	if len(g.members) == 0 {
		d.Assignor = ""
	}
	owner := make(map[TopicPartition]string)
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		d.Members = append(d.Members, MemberDescription{
			MemberID: id, ClientID: m.clientID, Host: m.host, Topics: slices.Clone(m.topics),
			SessionTimeout: m.sessionTimeout, AutoOffsetReset: m.autoOffsetReset, AutoCommit: m.autoCommit,
			JoinedAt: m.joinedAt, LastSeen: m.lastSeen, Assignments: slices.Clone(g.assignment[id]),
		})
		for _, tp := range g.assignment[id] {
			owner[tp] = id
		}
	}
	// Rows for every committed or assigned partition, like
	// kafka-consumer-groups --describe (assigned but uncommitted shows "-").
	rows := make(map[TopicPartition]OffsetDescription)
	for tp, o := range g.offsets {
		rows[tp] = OffsetDescription{TopicPartition: tp, Committed: true, OffsetAndMetadata: o}
	}
	for tp, id := range owner {
		r := rows[tp]
		r.TopicPartition, r.MemberID = tp, id
		rows[tp] = r
	}
	for _, tp := range slices.SortedFunc(maps.Keys(rows), compareTP) {
		d.Offsets = append(d.Offsets, rows[tp])
	}
	return d
}
