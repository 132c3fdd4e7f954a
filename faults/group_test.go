package faults

import (
	"encoding/json"
	"slices"
	"testing"

	"weir/client"
)

// TestGroupRepliesFeedTheChecker: group replies as the REST API shapes
// them, recorded with the helpers, are what the group rules check.
func TestGroupRepliesFeedTheChecker(t *testing.T) {
	rec := NewRecorder()
	add := func(op Op, at float64) {
		op.Invoke, op.Complete, op.Outcome = sec(at), sec(at+0.1), OK
		rec.Add(op)
	}
	tp := func(p int32) client.TopicPartition { return client.TopicPartition{Topic: "t", Partition: p} }
	p0 := int32(0)
	text := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }

	join := groupOp(KindJoin, "m1", "g", "")
	withAssignment(&join, client.MemberAssignment{MemberID: "m1", Generation: 1, State: "Stable", Assignments: []client.TopicPartition{tp(0)}})
	add(join, 0)
	poll := groupOp(KindPoll, "m1", "g", "m1")
	if err := withPoll(&poll, client.GroupRecords{MemberID: "m1", Generation: 1, Assignments: []client.TopicPartition{tp(0)},
		Records: []client.ConsumedRecord{{Topic: "t", Partition: &p0, Offset: 0, Value: text("a")}, {Topic: "t", Partition: &p0, Offset: 1, Value: text("b")}}}); err != nil {
		t.Fatal(err)
	}
	add(poll, 1)
	gen := int32(1)
	commit := groupOp(KindCommit, "m1", "g", "m1")
	withCommit(&commit, client.CommitRequest{MemberID: "m1", Generation: &gen, Offsets: []client.CommitOffset{{Topic: "t", Partition: 0, Offset: 2}}})
	add(commit, 2)
	// Another member told it owns t/0 in generation 1 too, and a read of
	// the committed offsets that lost the commit.
	hb := groupOp(KindHeartbeat, "m2", "g", "m2")
	withAssignment(&hb, client.MemberAssignment{MemberID: "m2", Generation: 1, State: "Stable", Assignments: []client.TopicPartition{tp(0), tp(1)}})
	add(hb, 3)
	fetch := groupOp(KindFetchCommitted, "admin", "g", "")
	withCommitted(&fetch, client.GroupOffsets{Group: "g", Offsets: []client.GroupOffset{{Topic: "t", Partition: 0}}})
	add(fetch, 4)

	h := rec.History()
	if h.Ops[1].Records[1] != (ReadRecord{Topic: "t", Partition: 0, Offset: 1, Value: "b"}) || h.Ops[2].Commits[0].Offset != 2 || h.Ops[4].Commits[0].Offset != -1 {
		t.Fatalf("recorded ops: %+v", h.Ops)
	}
	got := kinds(Check(&h))
	for _, want := range []string{AnomalyDoubleOwner, AnomalyCommitBackwards} {
		if !slices.Contains(got, want) {
			t.Errorf("%s not found in %v", want, got)
		}
	}
	if err := withPoll(&Op{}, client.GroupRecords{Records: []client.ConsumedRecord{{Offset: 3}}}); err == nil {
		t.Error("a poll record without its partition was accepted")
	}
}
