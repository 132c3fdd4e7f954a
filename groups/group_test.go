package groups

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"
)

var t0 = time.UnixMilli(1_700_000_000_000)

// seqUUID is a deterministic id source.
func seqUUID() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("uuid-%d", n) }
}

func newTestGroup(topics map[string]int32) *Group {
	return NewGroup("g", Options{NewUUID: seqUUID(), Topics: topics})
}

func mustJoin(t *testing.T, g *Group, req JoinRequest, now time.Time) MemberState {
	t.Helper()
	if req.Topics == nil {
		req.Topics = []string{"orders"}
	}
	ms, err := g.Join(req, now)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	return ms
}

func TestMemberIDFormat(t *testing.T) {
	g := newTestGroup(map[string]int32{"orders": 6})
	ms := mustJoin(t, g, JoinRequest{Host: "host1"}, t0)
	if want := "g-host1-1700000000000-uuid-1"; ms.MemberID != want {
		t.Fatalf("id %q, want %q", ms.MemberID, want)
	}
	// The default source yields real UUIDs.
	g2 := NewGroup(DefaultGroup, Options{Topics: map[string]int32{"orders": 1}})
	ms2 := mustJoin(t, g2, JoinRequest{Host: "h"}, t0)
	re := regexp.MustCompile(`^test-consumer-group-h-1700000000000-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if !re.MatchString(ms2.MemberID) {
		t.Fatalf("id %q", ms2.MemberID)
	}
}

func TestGroupLifecycle(t *testing.T) {
	g := newTestGroup(map[string]int32{"orders": 6})
	if g.State() != StateEmpty || g.Generation() != 0 {
		t.Fatalf("new group: %s gen %d", g.State(), g.Generation())
	}
	var ids []string
	for i := range 3 {
		ms := mustJoin(t, g, JoinRequest{Host: fmt.Sprint("h", i), SessionTimeout: 10 * time.Second}, t0)
		ids = append(ids, ms.MemberID)
		if ms.Generation != int32(i+1) {
			t.Fatalf("join %d: generation %d", i, ms.Generation)
		}
	}
	// Two earlier members have not seen generation 3 yet.
	if g.State() != StatePreparingRebalance {
		t.Fatalf("state %s", g.State())
	}
	for _, id := range ids {
		ms, err := g.Heartbeat(id, t0.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if len(ms.Assignment) != 2 || ms.Generation != 3 {
			t.Fatalf("member %s: %+v", id, ms)
		}
	}
	if g.State() != StateStable {
		t.Fatalf("state %s after all heartbeats", g.State())
	}

	// A fourth joins: 2,2,1,1.
	m4 := mustJoin(t, g, JoinRequest{Host: "h4", SessionTimeout: 10 * time.Second}, t0.Add(time.Second))
	ids = append(ids, m4.MemberID)
	if g.Generation() != 4 || len(m4.Assignment) != 1 {
		t.Fatalf("after 4th join: gen %d, %v", g.Generation(), m4.Assignment)
	}

	// One leaves: rebalance at once.
	if err := g.Leave(ids[0]); err != nil {
		t.Fatal(err)
	}
	if g.Generation() != 5 || g.NumMembers() != 3 {
		t.Fatalf("after leave: gen %d members %d", g.Generation(), g.NumMembers())
	}
	if err := g.Leave(ids[0]); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("second leave: %v", err)
	}

	// ids[1] keeps heartbeating, the others go silent.
	for s := 3; s <= 12; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		if _, err := g.Heartbeat(ids[1], now); err != nil {
			t.Fatal(err)
		}
		gone := g.Expire(now)
		switch {
		case s < 12 && gone != nil:
			t.Fatalf("expired early at %ds: %v", s, gone)
		case s == 12:
			// ids[2] and m4 were last seen at 1s: at 12s both are silent > 10s.
			want := []string{ids[2], ids[3]}
			slices.Sort(want)
			if !reflect.DeepEqual(gone, want) {
				t.Fatalf("expired %v, want %v", gone, want)
			}
		}
	}
	if g.Generation() != 6 {
		t.Fatalf("one rebalance for simultaneous expiries: gen %d", g.Generation())
	}
	ms, _ := g.Heartbeat(ids[1], t0.Add(13*time.Second))
	if len(ms.Assignment) != 6 || ms.State != StateStable {
		t.Fatalf("survivor: %+v", ms)
	}
	if _, err := g.Heartbeat(ids[2], t0.Add(13*time.Second)); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("expired member heartbeat: %v", err)
	}
	// Rejoining with an expired id is refused: the member must notice.
	if _, err := g.Join(JoinRequest{MemberID: ids[2], Topics: []string{"orders"}}, t0); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("rejoin with expired id: %v", err)
	}
	if next, ok := g.NextExpiry(); !ok || !next.Equal(t0.Add(23*time.Second)) {
		t.Fatalf("next expiry %v %v", next, ok)
	}
	_ = g.Leave(ids[1])
	if g.State() != StateEmpty || g.Generation() != 7 {
		t.Fatalf("empty: %s gen %d", g.State(), g.Generation())
	}
	if _, ok := g.NextExpiry(); ok {
		t.Fatal("expiry without members")
	}
}

func TestJoinValidation(t *testing.T) {
	g := newTestGroup(nil)
	bad := []JoinRequest{
		{Topics: nil},
		{Topics: []string{""}},
		{Topics: []string{"t"}, SessionTimeout: -time.Second},
		{Topics: []string{"t"}, SessionTimeout: time.Hour},
		{Topics: []string{"t"}, AutoOffsetReset: "none"},
		{Topics: []string{"t"}, Assignor: "fancy"},
	}
	for _, req := range bad {
		if _, err := g.Join(req, t0); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%+v: %v", req, err)
		}
	}
	if g.NumMembers() != 0 || g.Generation() != 0 {
		t.Fatal("refused joins changed the group")
	}
	a := mustJoin(t, g, JoinRequest{Topics: []string{"t"}, Assignor: "sticky"}, t0)
	if _, err := g.Join(JoinRequest{Topics: []string{"t"}, Assignor: "range"}, t0); !errors.Is(err, ErrInconsistentAssignor) {
		t.Fatalf("mismatched assignor: %v", err)
	}
	var e *Error
	if _, err := g.Join(JoinRequest{Topics: []string{"t"}, Assignor: "range"}, t0); !errors.As(err, &e) || e.Code != "INCONSISTENT_GROUP_PROTOCOL" {
		t.Fatalf("code: %v", err)
	}
	// Omitting the assignor adopts the group's.
	mustJoin(t, g, JoinRequest{Topics: []string{"t"}}, t0)
	if g.Assignor() != AssignorSticky {
		t.Fatal(g.Assignor())
	}
	// A re-join with the same subscription does not rebalance.
	gen := g.Generation()
	ms := mustJoin(t, g, JoinRequest{MemberID: a.MemberID, Topics: []string{"t", "t"}}, t0)
	if ms.Generation != gen || ms.MemberID != a.MemberID {
		t.Fatalf("idempotent rejoin: %+v (gen was %d)", ms, gen)
	}
	// Changing the subscription does.
	ms = mustJoin(t, g, JoinRequest{MemberID: a.MemberID, Topics: []string{"t", "u"}}, t0)
	if ms.Generation != gen+1 {
		t.Fatalf("subscription change: gen %d", ms.Generation)
	}
	d := g.Describe()
	if d.Members[0].AutoOffsetReset != OffsetResetLatest || d.Members[0].SessionTimeout != DefaultSessionTimeout {
		t.Fatalf("defaults: %+v", d.Members[0])
	}
}

func TestCommitFencing(t *testing.T) {
	g := newTestGroup(map[string]int32{"orders": 2})
	off := []CommitOffset{{Topic: "orders", Partition: 0, Offset: 10, Metadata: "m"}}

	// Standalone commits while empty are fine.
	if err := g.Commit("", -1, off, t0); err != nil {
		t.Fatal(err)
	}
	a := mustJoin(t, g, JoinRequest{}, t0)
	tests := []struct {
		name   string
		member string
		gen    int32
		want   error
	}{
		{"standalone with members", "", -1, ErrRebalanceInProgress},
		{"unknown member", "nobody", a.Generation, ErrUnknownMember},
		{"old generation", a.MemberID, a.Generation - 1, ErrIllegalGeneration},
		{"future generation", a.MemberID, a.Generation + 1, ErrIllegalGeneration},
		{"ok", a.MemberID, a.Generation, nil},
	}
	for _, tt := range tests {
		off := []CommitOffset{{Topic: "orders", Partition: 1, Offset: 5}}
		if err := g.Commit(tt.member, tt.gen, off, t0); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	b := mustJoin(t, g, JoinRequest{}, t0)
	// a's generation is now stale.
	if err := g.Commit(a.MemberID, a.Generation, off, t0); !errors.Is(err, ErrIllegalGeneration) {
		t.Fatalf("stale commit after join: %v", err)
	}
	if err := g.Commit(b.MemberID, b.Generation, []CommitOffset{{Topic: "orders", Partition: 0, Offset: -1}}, t0); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("negative offset: %v", err)
	}
	if err := g.Commit(b.MemberID, b.Generation, []CommitOffset{{Topic: "orders", Partition: 0, Offset: 42, Metadata: "x"}}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if o, ok := g.Committed(TopicPartition{"orders", 0}); !ok || o.Offset != 42 || o.Metadata != "x" || o.CommitTime != t0.Add(time.Second).UnixMilli() {
		t.Fatalf("committed %+v %v", o, ok)
	}
	if o, _ := g.Committed(TopicPartition{"orders", 1}); o.Offset != 5 {
		t.Fatalf("p1 %+v", o)
	}
}

func TestResetAndDelete(t *testing.T) {
	g := newTestGroup(map[string]int32{"orders": 2})
	_ = g.Commit("", -1, []CommitOffset{{Topic: "orders", Partition: 0, Offset: 10}}, t0)
	m := mustJoin(t, g, JoinRequest{}, t0)
	target := []CommitOffset{{Topic: "orders", Partition: 1, Offset: 3}, {Topic: "orders", Partition: 0, Offset: 0}}
	if _, err := g.ResetOffsets(target, false, t0); !errors.Is(err, ErrNonEmptyGroup) {
		t.Fatalf("reset with members: %v", err)
	}
	if _, err := g.Delete(); !errors.Is(err, ErrNonEmptyGroup) {
		t.Fatalf("delete with members: %v", err)
	}
	_ = g.Leave(m.MemberID)

	rows, err := g.ResetOffsets(target, true, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := []ResetResult{{TopicPartition{"orders", 0}, 10, 0}, {TopicPartition{"orders", 1}, -1, 3}}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows %v", rows)
	}
	if o, _ := g.Committed(TopicPartition{"orders", 0}); o.Offset != 10 {
		t.Fatal("dry run changed offsets")
	}
	if _, err := g.ResetOffsets(target, false, t0); err != nil {
		t.Fatal(err)
	}
	if o, _ := g.Committed(TopicPartition{"orders", 0}); o.Offset != 0 {
		t.Fatal("reset did not apply")
	}
	tpsGone, err := g.Delete()
	if err != nil || len(tpsGone) != 2 || g.State() != StateDead {
		t.Fatalf("delete: %v %v %s", tpsGone, err, g.State())
	}
	if _, err := g.Join(JoinRequest{Topics: []string{"orders"}}, t0); !errors.Is(err, ErrDeadGroup) {
		t.Fatalf("join dead: %v", err)
	}
}

func TestShiftOffset(t *testing.T) {
	tests := []struct{ cur, by, lo, hi, want int64 }{
		{10, 5, 0, 100, 15},
		{10, -50, 3, 100, 3},
		{90, 50, 0, 100, 100},
		{10, 1 << 62, 0, 100, 100},
		{10, -(1 << 62), 0, 100, 0},
		{1<<63 - 10, 100, 0, 1<<63 - 1, 1<<63 - 1},
	}
	for _, tt := range tests {
		if got := ShiftOffset(tt.cur, tt.by, tt.lo, tt.hi); got != tt.want {
			t.Errorf("ShiftOffset(%d,%d,%d,%d)=%d want %d", tt.cur, tt.by, tt.lo, tt.hi, got, tt.want)
		}
	}
}

func TestUpdateTopics(t *testing.T) {
	g := newTestGroup(map[string]int32{"orders": 2})
	a := mustJoin(t, g, JoinRequest{Topics: []string{"orders", "later"}}, t0)
	b := mustJoin(t, g, JoinRequest{Topics: []string{"orders", "later"}}, t0)
	gen := g.Generation()
	if g.UpdateTopics(map[string]int32{"orders": 2, "unrelated": 9}) {
		t.Fatal("no-op update rebalanced")
	}
	if !g.UpdateTopics(map[string]int32{"orders": 4}) || g.Generation() != gen+1 {
		t.Fatal("new partitions not picked up")
	}
	if !g.UpdateTopics(map[string]int32{"later": 2}) || g.Generation() != gen+2 {
		t.Fatal("new topic not picked up")
	}
	pa, _ := g.Assignment(a.MemberID)
	pb, _ := g.Assignment(b.MemberID)
	if len(pa)+len(pb) != 6 {
		t.Fatalf("%v %v", pa, pb)
	}
	if got := g.SubscribedTopics(); !reflect.DeepEqual(got, []string{"later", "orders"}) {
		t.Fatal(got)
	}
	if !g.UpdateTopics(map[string]int32{"later": 0}) {
		t.Fatal("deleted topic not dropped")
	}
}

func TestDescribe(t *testing.T) {
	g := newTestGroup(map[string]int32{"orders": 3})
	_ = g.Commit("", -1, []CommitOffset{{Topic: "gone", Partition: 0, Offset: 7, Metadata: "md"}}, t0)
	m := mustJoin(t, g, JoinRequest{ClientID: "cli", Host: "h", AutoCommit: true, AutoOffsetReset: "earliest"}, t0)
	_ = g.Commit(m.MemberID, m.Generation, []CommitOffset{{Topic: "orders", Partition: 1, Offset: 4}}, t0)
	d := g.Describe()
	if d.State != StateStable || d.Generation != 1 || d.Assignor != AssignorRange || len(d.Members) != 1 {
		t.Fatalf("%+v", d)
	}
	md := d.Members[0]
	if md.ClientID != "cli" || md.Host != "h" || !md.AutoCommit || md.AutoOffsetReset != "earliest" || len(md.Assignments) != 3 {
		t.Fatalf("%+v", md)
	}
	if len(d.Offsets) != 4 {
		t.Fatalf("offset rows %+v", d.Offsets)
	}
	if r := d.Offsets[0]; r.Topic != "gone" || !r.Committed || r.Metadata != "md" || r.MemberID != "" {
		t.Fatalf("%+v", r)
	}
	if r := d.Offsets[2]; r.Partition != 1 || !r.Committed || r.Offset != 4 || r.MemberID != m.MemberID {
		t.Fatalf("%+v", r)
	}
	if r := d.Offsets[1]; r.Committed || r.MemberID != m.MemberID {
		t.Fatalf("%+v", r)
	}
	// Snapshot is a copy.
	d.Members[0].Assignments[0].Partition = 99
	if pa, _ := g.Assignment(m.MemberID); pa[0].Partition == 99 {
		t.Fatal("Describe leaked internal state")
	}
}

// TestNoPartitionTwicePerGeneration drives random operations and checks the
// invariant the whole design rests on: within one generation, no partition
// belongs to two members, and each generation has one assignment.
func TestNoPartitionTwicePerGeneration(t *testing.T) {
	for _, assignor := range []string{"range", "roundrobin", "sticky"} {
		r := rand.New(rand.NewPCG(7, uint64(len(assignor))))
		g := NewGroup("g", Options{NewUUID: seqUUID(), Topics: map[string]int32{"a": 5, "b": 3}})
		now := t0
		seen := map[int32]map[TopicPartition]string{} // generation -> owner
		record := func(ms MemberState) {
			own := seen[ms.Generation]
			if own == nil {
				own = map[TopicPartition]string{}
				seen[ms.Generation] = own
			}
			for _, tp := range ms.Assignment {
				if o, ok := own[tp]; ok && o != ms.MemberID {
					t.Fatalf("%s: gen %d: %v held by %s and %s", assignor, ms.Generation, tp, o, ms.MemberID)
				}
				own[tp] = ms.MemberID
			}
		}
		var ids []string
		for range 2000 {
			now = now.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
			switch op := r.IntN(10); {
			case op < 3 && len(ids) < 8:
				topics := [][]string{{"a"}, {"b"}, {"a", "b"}}[r.IntN(3)]
				ms, err := g.Join(JoinRequest{Topics: topics, Assignor: assignor, SessionTimeout: 5 * time.Second}, now)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, ms.MemberID)
				record(ms)
			case op < 4 && len(ids) > 0:
				i := r.IntN(len(ids))
				if err := g.Leave(ids[i]); err != nil && !errors.Is(err, ErrUnknownMember) {
					t.Fatal(err)
				}
				ids = slices.Delete(ids, i, i+1)
			case op < 5:
				g.Expire(now)
			case op < 6:
				g.UpdateTopics(map[string]int32{"a": int32(5 + r.IntN(3)), "c": int32(r.IntN(3))})
			default:
				if len(ids) > 0 {
					if ms, err := g.Heartbeat(ids[r.IntN(len(ids))], now); err == nil {
						record(ms)
					}
				}
			}
			// The group's full current assignment must also be disjoint.
			d := g.Describe()
			own := map[TopicPartition]string{}
			for _, m := range d.Members {
				for _, tp := range m.Assignments {
					if o, ok := own[tp]; ok {
						t.Fatalf("%v held by %s and %s", tp, o, m.MemberID)
					}
					own[tp] = m.MemberID
				}
			}
		}
	}
}
