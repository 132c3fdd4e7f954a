package groups

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func tps(s ...any) []TopicPartition {
	out := []TopicPartition{}
	for i := 0; i < len(s); i += 2 {
		out = append(out, TopicPartition{s[i].(string), int32(s[i+1].(int))})
	}
	return out
}

func TestAssignorsKafkaExamples(t *testing.T) {
	two := []MemberSubscription{{ID: "C0", Topics: []string{"t0", "t1"}}, {ID: "C1", Topics: []string{"t0", "t1"}}}
	counts := map[string]int32{"t0": 3, "t1": 3}
	diff := []MemberSubscription{
		{ID: "C2", Topics: []string{"t0", "t1", "t2"}},
		{ID: "C0", Topics: []string{"t0"}},
		{ID: "C1", Topics: []string{"t0", "t1"}},
	}
	tests := []struct {
		name    string
		a       Assignor
		members []MemberSubscription
		counts  map[string]int32
		want    Assignment
	}{
		{"range javadoc", AssignorRange, two, counts, Assignment{
			"C0": tps("t0", 0, "t0", 1, "t1", 0, "t1", 1),
			"C1": tps("t0", 2, "t1", 2),
		}},
		{"roundrobin javadoc", AssignorRoundRobin, two, counts, Assignment{
			"C0": tps("t0", 0, "t0", 2, "t1", 1),
			"C1": tps("t0", 1, "t1", 0, "t1", 2),
		}},
		{"roundrobin different subscriptions javadoc", AssignorRoundRobin, diff,
			map[string]int32{"t0": 1, "t1": 2, "t2": 3}, Assignment{
				"C0": tps("t0", 0),
				"C1": tps("t1", 0),
				"C2": tps("t1", 1, "t2", 0, "t2", 1, "t2", 2),
			}},
		{"range 7 partitions 3 members", AssignorRange,
			[]MemberSubscription{{ID: "b", Topics: []string{"t"}}, {ID: "a", Topics: []string{"t"}}, {ID: "c", Topics: []string{"t"}}},
			map[string]int32{"t": 7}, Assignment{
				"a": tps("t", 0, "t", 1, "t", 2),
				"b": tps("t", 3, "t", 4),
				"c": tps("t", 5, "t", 6),
			}},
		{"unknown topic gets nothing", AssignorRange,
			[]MemberSubscription{{ID: "a", Topics: []string{"missing"}}}, nil, Assignment{"a": tps()}},
		{"more members than partitions", AssignorSticky,
			[]MemberSubscription{{ID: "a", Topics: []string{"t"}}, {ID: "b", Topics: []string{"t"}}, {ID: "c", Topics: []string{"t"}}},
			map[string]int32{"t": 2}, Assignment{"a": tps("t", 0), "b": tps("t", 1), "c": tps()}},
		{"sticky keeps current", AssignorSticky,
			[]MemberSubscription{{ID: "a", Topics: []string{"t"}, Current: tps("t", 1, "t", 3)}, {ID: "b", Topics: []string{"t"}, Current: tps("t", 0, "t", 2)}},
			map[string]int32{"t": 4}, Assignment{"a": tps("t", 1, "t", 3), "b": tps("t", 0, "t", 2)}},
		{"sticky drops vanished and unsubscribed", AssignorSticky,
			[]MemberSubscription{{ID: "a", Topics: []string{"t"}, Current: tps("t", 0, "t", 9, "u", 0)}, {ID: "b", Topics: []string{"t"}, Current: tps("t", 1)}},
			map[string]int32{"t": 2, "u": 1}, Assignment{"a": tps("t", 0), "b": tps("t", 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.a.Assign(tt.members, tt.counts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestParseAssignor(t *testing.T) {
	for in, want := range map[string]Assignor{"": AssignorRange, "range": AssignorRange, "roundrobin": AssignorRoundRobin, "sticky": AssignorSticky} {
		if got, err := ParseAssignor(in); err != nil || got != want {
			t.Errorf("ParseAssignor(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseAssignor("cooperative-sticky"); err == nil {
		t.Error("unknown assignor accepted")
	}
	if _, err := Assignor("nope").Assign(nil, nil); err == nil {
		t.Error("unknown assignor ran")
	}
}

// randomScenario draws members with random (possibly differing)
// subscriptions over a few topics.
func randomScenario(r *rand.Rand, identical bool) ([]MemberSubscription, map[string]int32) {
	topics := []string{"a", "b", "c", "d"}[:1+r.IntN(4)]
	counts := map[string]int32{}
	for _, t := range topics {
		counts[t] = int32(r.IntN(13)) // 0: topic not created yet
	}
	n := 1 + r.IntN(7)
	members := make([]MemberSubscription, n)
	for i := range members {
		var sub []string
		if identical {
			sub = slices.Clone(topics)
		} else {
			for _, t := range topics {
				if r.IntN(2) == 0 {
					sub = append(sub, t)
				}
			}
			if len(sub) == 0 {
				sub = []string{topics[r.IntN(len(topics))]}
			}
		}
		members[i] = MemberSubscription{ID: fmt.Sprintf("m%02d", r.IntN(100)*10+i), Topics: sub}
	}
	return members, counts
}

// checkValid: every partition of a subscribed topic assigned exactly once,
// only to subscribers, and every member present.
func checkValid(t *testing.T, members []MemberSubscription, counts map[string]int32, a Assignment) {
	t.Helper()
	if len(a) != len(members) {
		t.Fatalf("assignment has %d members, want %d", len(a), len(members))
	}
	owner := map[TopicPartition]string{}
	subscribed := map[string]bool{}
	for _, m := range members {
		got, ok := a[m.ID]
		if !ok {
			t.Fatalf("member %s missing", m.ID)
		}
		for _, tp := range got {
			if !slices.Contains(m.Topics, tp.Topic) {
				t.Fatalf("%v given to %s not subscribed to it", tp, m.ID)
			}
			if tp.Partition < 0 || tp.Partition >= counts[tp.Topic] {
				t.Fatalf("%v does not exist", tp)
			}
			if o, dup := owner[tp]; dup {
				t.Fatalf("%v given to %s and %s", tp, o, m.ID)
			}
			owner[tp] = m.ID
		}
		for _, tp := range m.Topics {
			subscribed[tp] = true
		}
	}
	for topic := range subscribed {
		for p := range counts[topic] {
			if _, ok := owner[TopicPartition{topic, p}]; !ok {
				t.Fatalf("%s-%d unassigned", topic, p)
			}
		}
	}
}

func spread(a Assignment) (lo, hi int) {
	lo = 1 << 30
	for _, tps := range a {
		lo, hi = min(lo, len(tps)), max(hi, len(tps))
	}
	return lo, hi
}

func TestAssignorProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, a := range []Assignor{AssignorRange, AssignorRoundRobin, AssignorSticky} {
		for i := range 400 {
			identical := i%2 == 0
			members, counts := randomScenario(r, identical)
			if a == AssignorSticky { // give some a (possibly stale) history
				for j := range members {
					for range r.IntN(5) {
						members[j].Current = append(members[j].Current, TopicPartition{"abcde"[r.IntN(5):][:1], int32(r.IntN(15))})
					}
				}
			}
			got, err := a.Assign(members, counts)
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, members, counts, got)
			// Deterministic and independent of input order.
			shuffled := slices.Clone(members)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			again, _ := a.Assign(shuffled, counts)
			if !reflect.DeepEqual(got, again) {
				t.Fatalf("%s not deterministic:\n%v\n%v", a, got, again)
			}
			// Balance for identical subscriptions: round-robin and sticky
			// within one overall; range within one per topic (so within the
			// number of topics overall, as in Kafka).
			if identical {
				lo, hi := spread(got)
				limit := 1
				if a == AssignorRange {
					limit = len(counts)
				}
				if hi-lo > limit {
					t.Fatalf("%s unbalanced (%d..%d): %v", a, lo, hi, got)
				}
			}
		}
	}
}

// moved counts partitions whose owner changed between two assignments,
// ignoring partitions whose previous owner left (those must move).
func moved(before, after Assignment) int {
	owner := map[TopicPartition]string{}
	for id, tps := range before {
		for _, tp := range tps {
			owner[tp] = id
		}
	}
	n := 0
	for id, tps := range after {
		for _, tp := range tps {
			if prev, ok := owner[tp]; ok && prev != id {
				if _, stillThere := after[prev]; stillThere {
					n++
				}
			}
		}
	}
	return n
}

func withCurrent(members []MemberSubscription, a Assignment) []MemberSubscription {
	out := slices.Clone(members)
	for i := range out {
		out[i].Current = a[out[i].ID]
	}
	return out
}

func TestStickyMovesMinimum(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		parts := int32(1 + r.IntN(40))
		counts := map[string]int32{"t": parts, "u": int32(r.IntN(5))}
		n := 1 + r.IntN(8)
		var members []MemberSubscription
		for i := range n {
			members = append(members, MemberSubscription{ID: fmt.Sprintf("m%d", i), Topics: []string{"t", "u"}})
		}
		total := int(counts["t"] + counts["u"])
		base := StickyAssign(members, counts)

		// A member joins: exactly the partitions the newcomer must take move,
		// i.e. floor(total/(n+1)) (it may end with the floor share), and
		// nothing moves between old members.
		joined := append(withCurrent(members, base), MemberSubscription{ID: "new", Topics: []string{"t", "u"}})
		after := StickyAssign(joined, counts)
		checkValid(t, joined, counts, after)
		if lo, hi := spread(after); hi-lo > 1 {
			t.Fatalf("join unbalanced: %v", after)
		}
		if got, want := moved(base, after), total/(n+1); got != want {
			t.Fatalf("join of 1 to %d members, %d partitions moved %d, want %d\n%v\n%v", n, total, got, want, base, after)
		}

		// A member leaves: only its partitions move.
		if n > 1 {
			leaver := r.IntN(n)
			rest := slices.Delete(withCurrent(members, base), leaver, leaver+1)
			after := StickyAssign(rest, counts)
			checkValid(t, rest, counts, after)
			if lo, hi := spread(after); hi-lo > 1 {
				t.Fatalf("leave unbalanced: %v", after)
			}
			if got := moved(base, after); got != 0 {
				t.Fatalf("leave moved %d partitions between remaining members\n%v\n%v", got, base, after)
			}
		}

		// Nothing changed: nothing moves.
		same := StickyAssign(withCurrent(members, base), counts)
		if !reflect.DeepEqual(same, base) {
			t.Fatalf("sticky not stable:\n%v\n%v", base, same)
		}
	}
}

func TestStickyDifferentSubscriptions(t *testing.T) {
	// Narrow subscribers must not be starved by greedy choices: b can only
	// take "x", so it gets x's partitions while a takes "y".
	members := []MemberSubscription{{ID: "a", Topics: []string{"x", "y"}}, {ID: "b", Topics: []string{"x"}}}
	counts := map[string]int32{"x": 2, "y": 2}
	got := StickyAssign(members, counts)
	checkValid(t, members, counts, got)
	if len(got["a"]) != 2 || len(got["b"]) != 2 {
		t.Fatalf("want 2/2, got %v", got)
	}
}
