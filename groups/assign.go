package groups

import (
	"cmp"
	"fmt"
	"slices"
)

// TopicPartition names one partition of one topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func compareTP(a, b TopicPartition) int {
	if c := cmp.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// SortTopicPartitions sorts by topic, then partition.
func SortTopicPartitions(tps []TopicPartition) { slices.SortFunc(tps, compareTP) }

// MemberSubscription is an assignor's view of one member.
type MemberSubscription struct {
	ID     string
	Topics []string
	// Current is the member's assignment in the previous generation. Only the
	// sticky assignor uses it; range and round-robin are stateless by design.
	Current []TopicPartition
}

// Assignment maps member id to its partitions (sorted). Every member passed
// to an assignor has an entry, possibly empty.
type Assignment map[string][]TopicPartition

// Assignor names an assignment strategy, using the names of the API.
type Assignor string

const (
	AssignorRange      Assignor = "range"
	AssignorRoundRobin Assignor = "roundrobin"
	AssignorSticky     Assignor = "sticky"
)

// DefaultAssignor is used when a member names none (Kafka's default too).
const DefaultAssignor = AssignorRange

// ParseAssignor validates an assignor name; "" means DefaultAssignor.
func ParseAssignor(s string) (Assignor, error) {
	switch a := Assignor(s); a {
	case "":
		return DefaultAssignor, nil
	case AssignorRange, AssignorRoundRobin, AssignorSticky:
		return a, nil
	}
	return "", fmt.Errorf("%w: unknown assignor %q (want range, roundrobin or sticky)", ErrInvalidRequest, s)
}

// Assign runs the strategy. partitions maps topic to partition count; topics
// that are subscribed but absent (or with count <= 0) get no partitions, so a
// subscription may name a topic before it exists and pick it up later.
func (a Assignor) Assign(members []MemberSubscription, partitions map[string]int32) (Assignment, error) {
	switch a {
	case AssignorRange, "":
		return RangeAssign(members, partitions), nil
	case AssignorRoundRobin:
		return RoundRobinAssign(members, partitions), nil
	case AssignorSticky:
		return StickyAssign(members, partitions), nil
	}
	return nil, fmt.Errorf("%w: unknown assignor %q", ErrInvalidRequest, string(a))
}

// newAssignment gives every member an empty, non-nil slot so that callers can
// tell "assigned nothing" from "not a member".
func newAssignment(members []MemberSubscription) Assignment {
	out := make(Assignment, len(members))
	for _, m := range members {
		out[m.ID] = []TopicPartition{}
	}
	return out
}

func sortedMembers(members []MemberSubscription) []MemberSubscription {
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b MemberSubscription) int { return cmp.Compare(a.ID, b.ID) })
	return ms
}

// subscribers returns, per topic that exists, the sorted ids of members
// subscribed to it.
func subscribers(members []MemberSubscription, partitions map[string]int32) map[string][]string {
	subs := make(map[string][]string)
	for _, m := range sortedMembers(members) {
		seen := make(map[string]bool, len(m.Topics))
		for _, t := range m.Topics {
			if seen[t] || partitions[t] <= 0 {
				continue
			}
			seen[t] = true
			subs[t] = append(subs[t], m.ID)
		}
	}
	return subs
}

func sortAssignment(a Assignment) {
	for _, tps := range a {
		SortTopicPartitions(tps)
	}
}

// RangeAssign is Kafka's RangeAssignor: per topic, the subscribed members in
// id order each take a contiguous range of partitions; with n partitions and c
// members the first n%c members take one extra.
func RangeAssign(members []MemberSubscription, partitions map[string]int32) Assignment {
	out := newAssignment(members)
	for topic, ids := range subscribers(members, partitions) {
		n, c := int(partitions[topic]), len(ids)
		per, extra := n/c, n%c
		for i, id := range ids {
			start := i*per + min(i, extra)
			length := per
			if i < extra {
				length++
			}
			for p := start; p < start+length; p++ {
				out[id] = append(out[id], TopicPartition{topic, int32(p)})
			}
		}
	}
	sortAssignment(out)
	return out
}

// RoundRobinAssign is Kafka's RoundRobinAssignor: all partitions of all
// subscribed topics, sorted by topic then partition, are dealt to members in
// id order, skipping members not subscribed to the partition's topic.
func RoundRobinAssign(members []MemberSubscription, partitions map[string]int32) Assignment {
	out := newAssignment(members)
	ms := sortedMembers(members)
	subs := subscribers(members, partitions)
	subscribed := make([]map[string]bool, len(ms))
	for i, m := range ms {
		subscribed[i] = make(map[string]bool, len(m.Topics))
		for _, t := range m.Topics {
			subscribed[i][t] = true
		}
	}
	topics := make([]string, 0, len(subs))
	for t := range subs {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	next := 0 // the circular iterator's position
	for _, t := range topics {
		for p := int32(0); p < partitions[t]; p++ {
			// Terminates: the topic is in subs, so some member subscribes.
			for !subscribed[next%len(ms)][t] {
				next++
			}
			id := ms[next%len(ms)].ID
			out[id] = append(out[id], TopicPartition{t, p})
			next++
		}
	}
	return out
}

// StickyAssign keeps every member's still-valid current partitions, gives
// orphaned and new partitions to the least-loaded eligible members, then
// moves single partitions from the most- to the least-loaded eligible member
// until no move reduces imbalance. Each move strictly lowers the sum of
// squared loads, so it terminates; for members with identical subscriptions
// it ends balanced to within one partition, and because it only moves a
// partition off a member that exceeds another by two or more, a join or leave
// moves only the partitions that balance requires.
func StickyAssign(members []MemberSubscription, partitions map[string]int32) Assignment {
	out := newAssignment(members)
	if len(members) == 0 {
		return out
	}
	subs := subscribers(members, partitions)
	ms := sortedMembers(members)
	subscribed := make(map[string]map[string]bool, len(ms))
	for _, m := range ms {
		subscribed[m.ID] = make(map[string]bool, len(m.Topics))
		for _, t := range m.Topics {
			subscribed[m.ID][t] = true
		}
	}
	owner := make(map[TopicPartition]string)
	// Keep current partitions that still exist and are still subscribed. If
	// two members claim one partition (it cannot happen within a generation,
	// but inputs are not trusted) the first in id order keeps it.
	for _, m := range ms {
		for _, tp := range m.Current {
			if tp.Partition < 0 || tp.Partition >= partitions[tp.Topic] || !subscribed[m.ID][tp.Topic] {
				continue
			}
			if _, taken := owner[tp]; taken {
				continue
			}
			owner[tp] = m.ID
			out[m.ID] = append(out[m.ID], tp)
		}
	}
	// Unowned partitions, the most constrained topics first so that members
	// with narrow subscriptions are not crowded out by greedy choices.
	topics := make([]string, 0, len(subs))
	for t := range subs {
		topics = append(topics, t)
	}
	slices.SortFunc(topics, func(a, b string) int {
		if c := cmp.Compare(len(subs[a]), len(subs[b])); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	leastLoaded := func(ids []string) string {
		best := ids[0]
		for _, id := range ids[1:] {
			if len(out[id]) < len(out[best]) {
				best = id
			}
		}
		return best
	}
	for _, t := range topics {
		for p := int32(0); p < partitions[t]; p++ {
			tp := TopicPartition{t, p}
			if _, ok := owner[tp]; ok {
				continue
			}
			id := leastLoaded(subs[t])
			owner[tp] = id
			out[id] = append(out[id], tp)
		}
	}
	// Balance by single moves.
	for {
		moved := false
		// Most-loaded first; ties by id for determinism.
		order := slices.Clone(ms)
		slices.SortStableFunc(order, func(a, b MemberSubscription) int {
			return cmp.Compare(len(out[b.ID]), len(out[a.ID]))
		})
		for _, from := range order {
			tps := out[from.ID]
			SortTopicPartitions(tps)
			// Try the member's partitions from the highest down so that the
			// low-numbered ones, usually the longest-held, stay put.
			for i := len(tps) - 1; i >= 0 && !moved; i-- {
				to := leastLoaded(subs[tps[i].Topic])
				if len(out[to])+1 < len(tps) {
					out[to] = append(out[to], tps[i])
					out[from.ID] = slices.Delete(tps, i, i+1)
					moved = true
				}
			}
			if moved {
				break
			}
		}
		if !moved {
			break
		}
	}
	sortAssignment(out)
	return out
}
