package groups

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weir/client"
)

// fakeEnv is an in-memory offsets topic and data topics, for unit tests of
// the coordinator's logic (the integration tests run the real thing).
type fakeEnv struct {
	mu       sync.Mutex
	logs     map[int32][]KV  // offsets partition -> records
	epochs   map[int32]int32 // offsets partition -> current leader epoch here
	counts   map[string]int32
	bounds   map[string]map[int32]PartitionOffsets
	failApp  error
	loadGate chan struct{} // when set, loads wait for it
	// appendGate: appends of a group's records wait for its channel to
	// close, and say so on appending (when set) first.
	appendGate map[string]chan struct{}
	appending  chan string
	// handOverTo is the broker HandOver moves a partition to (0: it fails);
	// handedOver lists the partitions moved.
	handOverTo int32
	handedOver []int32
}

func newFakeEnv() *fakeEnv {
	return &fakeEnv{logs: map[int32][]KV{}, epochs: map[int32]int32{}, counts: map[string]int32{},
		bounds: map[string]map[int32]PartitionOffsets{}}
}

func (e *fakeEnv) LoadOffsets(ctx context.Context, p, epoch int32, fn func(k, v []byte)) error {
	e.mu.Lock()
	gate := e.loadGate
	e.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.epochs[p] != epoch {
		return fmt.Errorf("not leader of %d in epoch %d", p, epoch)
	}
	for _, r := range e.logs[p] {
		fn(r.Key, r.Value)
	}
	return nil
}

func (e *fakeEnv) AppendOffsets(ctx context.Context, p, epoch int32, recs []KV) error {
	if err := e.waitAppendGate(ctx, recs); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failApp != nil {
		return e.failApp
	}
	if e.epochs[p] != epoch {
		return fmt.Errorf("not leader of %d in epoch %d", p, epoch)
	}
	e.logs[p] = append(e.logs[p], recs...)
	return nil
}

func (e *fakeEnv) HandOver(ctx context.Context, p, epoch int32) (int32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.handOverTo == 0 || e.epochs[p] != epoch {
		return 0, fmt.Errorf("no other in-sync replica of %d in epoch %d", p, epoch)
	}
	e.handedOver = append(e.handedOver, p)
	e.epochs[p]++ // another node leads now
	return e.handOverTo, nil
}

// waitAppendGate holds an append of a gated group's records until its gate
// opens, like a disk or a follower that is slow to acknowledge.
func (e *fakeEnv) waitAppendGate(ctx context.Context, recs []KV) error {
	if len(recs) == 0 {
		return nil
	}
	rec, err := DecodeRecord(recs[0].Key, recs[0].Value)
	if err != nil {
		return err
	}
	e.mu.Lock()
	gate, appending := e.appendGate[rec.Group], e.appending
	e.mu.Unlock()
	if gate == nil {
		return nil
	}
	if appending != nil {
		appending <- rec.Group
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gateAppends makes appends of group's records wait until the returned
// function is called; each append reports itself on e.appending.
func (e *fakeEnv) gateAppends(group string) (open func()) {
	gate := make(chan struct{})
	e.mu.Lock()
	if e.appendGate == nil {
		e.appendGate = map[string]chan struct{}{}
	}
	e.appendGate[group] = gate
	e.appending = make(chan string, 16)
	e.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

func (e *fakeEnv) PartitionCounts(topics []string) map[string]int32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int32{}
	for _, t := range topics {
		out[t] = e.counts[t]
	}
	return out
}

func (e *fakeEnv) TopicOffsets(ctx context.Context, topic string, ts *int64) (map[int32]PartitionOffsets, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[int32]PartitionOffsets{}
	for p, b := range e.bounds[topic] {
		if ts != nil {
			off := *ts / 10 // the fake's records: offset n has timestamp 10n
			if off < b.HighWatermark {
				b.ForTimestamp = &off
			}
		}
		out[p] = b
	}
	return out, nil
}

func (e *fakeEnv) setTopic(name string, parts int32, start, hw int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counts[name] = parts
	e.bounds[name] = map[int32]PartitionOffsets{}
	for p := range parts {
		e.bounds[name][p] = PartitionOffsets{LogStart: start, HighWatermark: hw}
	}
}

const testOffsetsParts = 4

type coordFixture struct {
	t   *testing.T
	env *fakeEnv
	c   *Coordinator
	now time.Time
	mu  sync.Mutex
}

func newCoord(t *testing.T) *coordFixture {
	t.Helper()
	return newCoordWith(t, nil)
}

// newCoordWith is newCoord with options changed by set.
func newCoordWith(t *testing.T, set func(*CoordinatorOptions)) *coordFixture {
	t.Helper()
	f := &coordFixture{t: t, env: newFakeEnv(), now: t0}
	opts := CoordinatorOptions{Env: f.env, NodeID: 7, NewUUID: seqUUID(), Now: f.clock}
	if set != nil {
		set(&opts)
	}
	f.c = NewCoordinator(opts)
	t.Cleanup(f.c.Close)
	f.lead(1)
	return f
}

func (f *coordFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *coordFixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// lead makes this node the leader of every offsets partition in epoch and
// waits until they are loaded.
func (f *coordFixture) lead(epoch int32) {
	f.t.Helper()
	led := map[int32]int32{}
	f.env.mu.Lock()
	for p := range int32(testOffsetsParts) {
		f.env.epochs[p] = epoch
		led[p] = epoch
	}
	f.env.mu.Unlock()
	f.c.Sync(testOffsetsParts, led)
	f.waitLoaded("g")
}

func (f *coordFixture) waitLoaded(group string) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := f.c.part(group)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("offsets partition of %q never loaded: %v", group, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func (f *coordFixture) join(topics ...string) client.MemberAssignment {
	f.t.Helper()
	ma, err := f.c.Join(context.Background(), "g", client.JoinGroupRequest{Topics: topics, AutoOffsetReset: "earliest"}, "h")
	if err != nil {
		f.t.Fatalf("join: %v", err)
	}
	return ma
}

func codeOf(err error) string {
	var ge *Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return ""
}

func TestCoordinatorAssignsAndPersistsGenerationsBeforeRevealing(t *testing.T) {
	f := newCoord(t)
	f.env.setTopic("orders", 6, 0, 100)
	var members []client.MemberAssignment
	for range 3 {
		members = append(members, f.join("orders"))
	}
	gen := members[2].Generation
	owned := map[client.TopicPartition]string{}
	for _, m := range members {
		hb, err := f.c.Heartbeat(context.Background(), "g", m.MemberID)
		if err != nil {
			t.Fatal(err)
		}
		if hb.Generation != gen || len(hb.Assignments) != 2 {
			t.Fatalf("member %s: gen %d, %d partitions; want gen %d, 2", m.MemberID, hb.Generation, len(hb.Assignments), gen)
		}
		for _, tp := range hb.Assignments {
			if prev, dup := owned[tp]; dup {
				t.Fatalf("%v given to %s and %s in generation %d", tp, prev, m.MemberID, gen)
			}
			owned[tp] = m.MemberID
		}
	}
	// The generation a member learned is in the offsets topic.
	p := f.c.Partition("g")
	ld := NewLoader()
	f.env.mu.Lock()
	for _, r := range f.env.logs[p] {
		_ = ld.Apply(r.Key, r.Value)
	}
	f.env.mu.Unlock()
	if lg := ld.Groups()["g"]; lg == nil || lg.Generation != gen {
		t.Fatalf("persisted generation %+v, want %d", lg, gen)
	}
	// A refused durable write reveals nothing.
	f.env.mu.Lock()
	f.env.failApp = errors.New("disk on fire")
	f.env.mu.Unlock()
	if _, err := f.c.Join(context.Background(), "g", client.JoinGroupRequest{Topics: []string{"orders"}}, "h"); err == nil {
		t.Fatal("join answered though its generation could not be written")
	}
	if d, _ := f.c.Describe(context.Background(), "g"); d.Generation != gen {
		t.Fatalf("describe shows generation %d that is not durable (durable: %d)", d.Generation, gen)
	}
	// Nor does it leave a member behind: once writes work again the three
	// members share the partitions, none held by the join that failed.
	if d, _ := f.c.Describe(context.Background(), "g"); len(d.Members) != 3 {
		t.Fatalf("%d members after a failed join, want 3: %+v", len(d.Members), d.Members)
	}
	f.env.mu.Lock()
	f.env.failApp = nil
	f.env.mu.Unlock()
	held := 0
	for _, m := range members {
		hb, err := f.c.Heartbeat(context.Background(), "g", m.MemberID)
		if err != nil {
			t.Fatal(err)
		}
		held += len(hb.Assignments)
	}
	if held != 6 {
		t.Fatalf("the members hold %d of 6 partitions after a failed join", held)
	}
}

func TestCoordinatorCommitFencingAndFailover(t *testing.T) {
	f := newCoord(t)
	f.env.setTopic("orders", 2, 0, 50)
	ctx := context.Background()
	a := f.join("orders")
	gen := a.Generation
	commit := func(member string, gen int32, off int64) error {
		_, err := f.c.Commit(ctx, "g", client.CommitRequest{MemberID: member, Generation: &gen,
			Offsets: []client.CommitOffset{{Topic: "orders", Partition: 0, Offset: off, Metadata: "m"}}})
		return err
	}
	if err := commit(a.MemberID, gen, 10); err != nil {
		t.Fatal(err)
	}
	b := f.join("orders") // rebalance: a's generation is now stale
	if err := commit(a.MemberID, gen, 11); codeOf(err) != "ILLEGAL_GENERATION" {
		t.Fatalf("commit with an old generation: %v", err)
	}
	if err := commit("nobody", b.Generation, 11); codeOf(err) != "UNKNOWN_MEMBER_ID" {
		t.Fatalf("commit by an unknown member: %v", err)
	}
	if _, err := f.c.Commit(ctx, "g", client.CommitRequest{Offsets: []client.CommitOffset{{Topic: "orders", Offset: 1}}}); codeOf(err) != "REBALANCE_IN_PROGRESS" {
		t.Fatalf("standalone commit with members: %v", err)
	}
	// Failover: another node leads (epoch 2), then this one again (epoch 3).
	f.c.Sync(testOffsetsParts, nil)
	if _, err := f.c.Heartbeat(ctx, "g", a.MemberID); codeOf(err) != "NOT_COORDINATOR" {
		t.Fatalf("heartbeat after resigning: %v", err)
	}
	gate := make(chan struct{})
	f.env.mu.Lock()
	f.env.loadGate = gate
	for p := range int32(testOffsetsParts) {
		f.env.epochs[p] = 3
	}
	f.env.mu.Unlock()
	led := map[int32]int32{}
	for p := range int32(testOffsetsParts) {
		led[p] = 3
	}
	f.c.Sync(testOffsetsParts, led)
	if _, err := f.c.Heartbeat(ctx, "g", a.MemberID); codeOf(err) != "COORDINATOR_LOAD_IN_PROGRESS" {
		t.Fatalf("heartbeat while loading: %v", err)
	}
	close(gate)
	f.waitLoaded("g")
	offs, err := f.c.Offsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(offs.Offsets) != 1 || *offs.Offsets[0].CommittedOffset != 10 || offs.Offsets[0].Metadata != "m" ||
		*offs.Offsets[0].Lag != 40 || offs.Offsets[0].LogEndOffset != 50 {
		t.Fatalf("offsets after failover: %+v", offs.Offsets)
	}
	// Members are not carried over: they re-join, in a later generation.
	if _, err := f.c.Heartbeat(ctx, "g", a.MemberID); codeOf(err) != "UNKNOWN_MEMBER_ID" {
		t.Fatalf("old member after failover: %v", err)
	}
	if c := f.join("orders"); c.Generation <= b.Generation {
		t.Fatalf("generation went back after failover: %d after %d", c.Generation, b.Generation)
	}
}

func TestCoordinatorPollAutoCommitSeekAndExpiry(t *testing.T) {
	f := newCoord(t)
	f.env.setTopic("orders", 1, 5, 100)
	ctx := context.Background()
	m := f.join("orders")
	p, err := f.c.PollStart(ctx, "g", m.MemberID, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Positions) != 1 || p.Positions[0].Offset != 5 {
		t.Fatalf("earliest position: %+v", p.Positions)
	}
	// A reply the member says it did not get (its ack names an older poll)
	// is served again; one it acknowledges (or does not mention) counts.
	id, err := f.c.PollDone(ctx, "g", m.MemberID, p.Generation, []client.GroupPosition{{Topic: "orders", Partition: 0, Offset: 42}})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = f.c.PollStart(ctx, "g", m.MemberID, id-1); err != nil || p.Positions[0].Offset != 5 {
		t.Fatalf("poll after a lost reply: %+v %v, want the same records again from 5", p, err)
	}
	if id, err = f.c.PollDone(ctx, "g", m.MemberID, p.Generation, []client.GroupPosition{{Topic: "orders", Partition: 0, Offset: 42}}); err != nil {
		t.Fatal(err)
	}
	if p, err = f.c.PollStart(ctx, "g", m.MemberID, id); err != nil || p.Positions[0].Offset != 42 {
		t.Fatalf("poll after an acknowledged reply: %+v %v", p, err)
	}
	if _, err := f.c.PollDone(ctx, "g", m.MemberID, p.Generation, []client.GroupPosition{{Topic: "orders", Partition: 0, Offset: 42}}); err != nil {
		t.Fatal(err)
	}
	// The next poll commits what the previous one returned.
	if p, err = f.c.PollStart(ctx, "g", m.MemberID, -1); err != nil || p.Positions[0].Offset != 42 {
		t.Fatalf("second poll: %+v %v", p, err)
	}
	if offs, _ := f.c.Offsets(ctx, "g"); len(offs.Offsets) != 1 || *offs.Offsets[0].CommittedOffset != 42 {
		t.Fatalf("auto-commit: %+v", offs.Offsets)
	}
	// A stale generation's PollDone moves nothing.
	if _, err := f.c.PollDone(ctx, "g", m.MemberID, p.Generation-1, []client.GroupPosition{{Topic: "orders", Offset: 99}}); err != nil {
		t.Fatal(err)
	}
	ts := int64(300)
	if r, err := f.c.Seek(ctx, "g", m.MemberID, client.SeekRequest{Topic: "orders", Timestamp: &ts}); err != nil || r.Positions[0].Offset != 30 {
		t.Fatalf("seek to a timestamp: %+v %v", r, err)
	}
	if p, _ = f.c.PollStart(ctx, "g", m.MemberID, -1); p.Positions[0].Offset != 30 {
		t.Fatalf("position after seek: %+v", p.Positions)
	}
	if _, err := f.c.Seek(ctx, "g", m.MemberID, client.SeekRequest{To: "latest", Offset: &ts}); codeOf(err) != "INVALID_REQUEST" {
		t.Fatalf("seek with two targets: %v", err)
	}
	// Silence past the session timeout removes the member.
	f.advance(31 * time.Second)
	f.c.expire()
	if _, err := f.c.Heartbeat(ctx, "g", m.MemberID); codeOf(err) != "UNKNOWN_MEMBER_ID" {
		t.Fatalf("expired member: %v", err)
	}
	d, err := f.c.Describe(ctx, "g")
	if err != nil || d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("after expiry: %+v %v", d, err)
	}
}

func TestCoordinatorResetAndDelete(t *testing.T) {
	f := newCoord(t)
	f.env.setTopic("orders", 3, 10, 100)
	ctx := context.Background()
	m := f.join("orders")
	reset := func(to string, v *int64, dry bool) (client.ResetOffsetsResponse, error) {
		return f.c.ResetOffsets(ctx, "g", client.ResetOffsetsRequest{Topic: "orders", To: to, Value: v, DryRun: &dry})
	}
	if _, err := reset("earliest", nil, false); codeOf(err) != "NON_EMPTY_GROUP" {
		t.Fatalf("reset with members: %v", err)
	}
	if err := f.c.Leave(ctx, "g", m.MemberID); err != nil {
		t.Fatal(err)
	}
	v := int64(60)
	r, err := reset("offset", &v, true)
	if err != nil || !r.DryRun || len(r.Offsets) != 3 || r.Offsets[0].NewOffset != 60 || r.Offsets[0].OldOffset != nil {
		t.Fatalf("dry run: %+v %v", r, err)
	}
	if offs, _ := f.c.Offsets(ctx, "g"); len(offs.Offsets) != 0 {
		t.Fatalf("a dry run changed offsets: %+v", offs.Offsets)
	}
	if _, err := reset("offset", &v, false); err != nil {
		t.Fatal(err)
	}
	shift := int64(-100)
	r, err = reset("shift", &shift, false)
	if err != nil || r.Offsets[1].NewOffset != 10 || *r.Offsets[1].OldOffset != 60 {
		t.Fatalf("shift clamps to the log start: %+v %v", r, err)
	}
	// Reset offsets survive a reload.
	f.c.Sync(testOffsetsParts, nil)
	f.lead(2)
	offs, _ := f.c.Offsets(ctx, "g")
	got := []int64{}
	for _, o := range offs.Offsets {
		got = append(got, *o.CommittedOffset)
	}
	if !slices.Equal(got, []int64{10, 10, 10}) {
		t.Fatalf("offsets after reload: %v", got)
	}
	if err := f.c.Delete(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Describe(ctx, "g"); codeOf(err) != "GROUP_ID_NOT_FOUND" {
		t.Fatalf("describe after delete: %v", err)
	}
	f.c.Sync(testOffsetsParts, nil)
	f.lead(3)
	if _, err := f.c.Describe(ctx, "g"); codeOf(err) != "GROUP_ID_NOT_FOUND" {
		t.Fatalf("a deleted group came back after reload: %v", err)
	}
}

func TestCoordinatorPicksUpNewPartitions(t *testing.T) {
	f := newCoord(t)
	f.env.setTopic("orders", 2, 0, 0)
	m := f.join("orders", "later")
	if len(m.Assignments) != 2 {
		t.Fatalf("assignment: %+v", m.Assignments)
	}
	f.env.setTopic("orders", 4, 0, 0)
	f.env.setTopic("later", 1, 0, 0)
	f.c.updateTopics()
	hb, err := f.c.Heartbeat(context.Background(), "g", m.MemberID)
	if err != nil || len(hb.Assignments) != 5 || hb.Generation <= m.Generation {
		t.Fatalf("after new partitions: %+v %v", hb, err)
	}
}

// TestCoordinatorLeaveCommitsOnlyAcknowledgedReplies: an auto-committing
// member that acknowledges its replies and leaves right after a poll whose
// reply it never got (lost on the way) must not have that reply's
// positions committed: the records would be skipped by the whole group.
// A member that never acks (curl) still has its last reply committed.
func TestCoordinatorLeaveCommitsOnlyAcknowledgedReplies(t *testing.T) {
	f := newCoord(t)
	f.env.setTopic("orders", 1, 0, 100)
	ctx := context.Background()
	to := func(off int64) []client.GroupPosition {
		return []client.GroupPosition{{Topic: "orders", Partition: 0, Offset: off}}
	}
	committed := func() int64 {
		t.Helper()
		offs, err := f.c.Offsets(ctx, "g")
		if err != nil || len(offs.Offsets) != 1 {
			t.Fatalf("offsets: %+v %v", offs, err)
		}
		return *offs.Offsets[0].CommittedOffset
	}

	m := f.join("orders")
	p, err := f.c.PollStart(ctx, "g", m.MemberID, 0) // the first poll acks 0
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.c.PollDone(ctx, "g", m.MemberID, p.Generation, to(10)) // received
	if err != nil {
		t.Fatal(err)
	}
	if p, err = f.c.PollStart(ctx, "g", m.MemberID, id); err != nil || p.Positions[0].Offset != 10 {
		t.Fatalf("poll acknowledging the first reply: %+v %v", p, err)
	}
	if _, err := f.c.PollDone(ctx, "g", m.MemberID, p.Generation, to(20)); err != nil { // this reply is lost
		t.Fatal(err)
	}
	if err := f.c.Leave(ctx, "g", m.MemberID); err != nil {
		t.Fatal(err)
	}
	if got := committed(); got != 10 {
		t.Fatalf("committed %d on leave, want 10: records 10-19 were never acknowledged", got)
	}

	// Without acks the last reply counts as received, as for any poll.
	m = f.join("orders")
	if p, err = f.c.PollStart(ctx, "g", m.MemberID, -1); err != nil || p.Positions[0].Offset != 10 {
		t.Fatalf("the next member's position: %+v %v", p, err)
	}
	if _, err := f.c.PollDone(ctx, "g", m.MemberID, p.Generation, to(30)); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Leave(ctx, "g", m.MemberID); err != nil {
		t.Fatal(err)
	}
	if got := committed(); got != 30 {
		t.Fatalf("committed %d on leave without acks, want 30", got)
	}
}

// TestCoordinatorRefusesWhileMetadataStale: a node that has not heard from
// the controller lately may have lost the offsets partition to another
// coordinator without knowing; it must not answer from memory (a read of
// the committed offsets would show them going back), nor take calls.
func TestCoordinatorRefusesWhileMetadataStale(t *testing.T) {
	var current atomic.Bool
	current.Store(true)
	f := newCoordWith(t, func(o *CoordinatorOptions) { o.MetadataCurrent = current.Load })
	f.env.setTopic("orders", 1, 0, 100)
	ctx := context.Background()
	m := f.join("orders")
	gen := m.Generation
	commit := func() error {
		_, err := f.c.Commit(ctx, "g", client.CommitRequest{MemberID: m.MemberID, Generation: &gen,
			Offsets: []client.CommitOffset{{Topic: "orders", Partition: 0, Offset: 10}}})
		return err
	}
	if err := commit(); err != nil {
		t.Fatal(err)
	}
	current.Store(false)
	calls := map[string]func() error{
		"offsets":   func() error { _, err := f.c.Offsets(ctx, "g"); return err },
		"describe":  func() error { _, err := f.c.Describe(ctx, "g"); return err },
		"heartbeat": func() error { _, err := f.c.Heartbeat(ctx, "g", m.MemberID); return err },
		"poll":      func() error { _, err := f.c.PollStart(ctx, "g", m.MemberID, 0); return err },
		"commit":    commit,
		"join": func() error {
			_, err := f.c.Join(ctx, "g", client.JoinGroupRequest{Topics: []string{"orders"}}, "h")
			return err
		},
	}
	for name, call := range calls {
		if err := call(); codeOf(err) != "NOT_COORDINATOR" {
			t.Errorf("%s while the metadata is stale: %v, want NOT_COORDINATOR", name, err)
		}
	}
	current.Store(true)
	offs, err := f.c.Offsets(ctx, "g")
	if err != nil || len(offs.Offsets) != 1 || *offs.Offsets[0].CommittedOffset != 10 {
		t.Fatalf("offsets once current again: %+v %v", offs, err)
	}
	if d, _ := f.c.Describe(ctx, "g"); len(d.Members) != 1 {
		t.Fatalf("a refused join added a member: %+v", d.Members)
	}
}
