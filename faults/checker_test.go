package faults

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Hand-written histories: a clean one the checker must pass, and one
// variant per anomaly kind that it must name.

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// hb builds a history op by op; times are seconds.
type hb struct{ h History }

func newHB() *hb {
	return &hb{h: History{Topics: []TopicSpec{
		{Name: "t", Partitions: 2, RF: 3, MinISR: 2, Acks: "all"},
		{Name: "one", Partitions: 1, RF: 3, MinISR: 2, Acks: "1"},
	}}}
}

func (b *hb) add(op Op) *Op {
	op.ID = len(b.h.Ops)
	if op.Topic == "" && op.Group == "" && op.Kind != KindMeta {
		op.Topic = "t"
	}
	b.h.Ops = append(b.h.Ops, op)
	return &b.h.Ops[op.ID]
}

func (b *hb) produce(proc string, p int32, from, to float64, out Outcome, values []string, offsets ...int64) *Op {
	return b.add(Op{Process: proc, Kind: KindProduce, Partition: p, Invoke: sec(from), Complete: sec(to), Outcome: out,
		Acks: "all", Values: values, Offsets: offsets})
}

func (b *hb) consume(proc string, p int32, from, to float64, offset, hw int64, values ...string) *Op {
	op := Op{Process: proc, Kind: KindConsume, Partition: p, Invoke: sec(from), Complete: sec(to), Outcome: OK,
		Offset: offset, NextOffset: offset + int64(len(values)), HW: hw}
	for i, v := range values {
		op.Records = append(op.Records, ReadRecord{Partition: p, Offset: offset + int64(i), Value: v})
	}
	return b.add(op)
}

func (b *hb) final(p int32, hw int64, values ...string) {
	op := Op{Process: "final", Kind: KindFinalRead, Partition: p, Invoke: sec(100), Complete: sec(101), Outcome: OK,
		NextOffset: int64(len(values)), HW: hw}
	fp := FinalPartition{Topic: "t", Partition: p, HW: hw, Complete: true}
	var batches []BatchDigest
	for i, v := range values {
		op.Records = append(op.Records, ReadRecord{Partition: p, Offset: int64(i), Value: v})
		batches = append(batches, BatchDigest{Base: int64(i), Last: int64(i), SHA256: "sum-" + v})
	}
	b.add(op)
	for n := 1; n <= 3; n++ {
		fp.Replicas = append(fp.Replicas, ReplicaLog{Node: n, Topic: "t", Partition: p, LogEnd: hw,
			Batches: slices.Clone(batches), Records: slices.Clone(op.Records)})
	}
	b.h.Final = append(b.h.Final, fp)
}

func (b *hb) meta(node int, at float64, p, leader, epoch int32, isr ...int32) {
	b.add(Op{Process: "observer-n" + string(rune('0'+node)), Kind: KindMeta, Topic: "t", Invoke: sec(at), Complete: sec(at + 0.01),
		Outcome: OK, ObservedBy: node, Meta: []MetaPartition{{Partition: p, Leader: leader, LeaderEpoch: epoch, ISR: isr, Replicas: []int32{1, 2, 3}}}})
}

func (b *hb) group(kind Kind, member string, gen int32, from, to float64, assigned ...int32) *Op {
	op := Op{Process: member, Kind: kind, Group: "g", MemberID: member, Generation: gen, Invoke: sec(from), Complete: sec(to), Outcome: OK}
	for _, p := range assigned {
		op.Assignments = append(op.Assignments, TP{"t", p})
	}
	return b.add(op)
}

func (b *hb) poll(member string, gen int32, from, to float64, p int32, offset int64, values ...string) *Op {
	op := b.group(KindPoll, member, gen, from, to, p)
	for i, v := range values {
		op.Records = append(op.Records, ReadRecord{Topic: "t", Partition: p, Offset: offset + int64(i), Value: v})
	}
	return op
}

func (b *hb) commit(kind Kind, member string, gen int32, from, to float64, p int32, offset int64) *Op {
	op := b.group(kind, member, gen, from, to)
	op.Commits = []CommitEntry{{Topic: "t", Partition: p, Offset: offset}}
	return op
}

// clean is a history with every kind of operation and no anomaly: writes
// acknowledged, failed and unknown (one of which made it), reads in order
// across a seek, replicas identical, metadata sane, and a group that
// rebalances, rewinds and commits.
func clean() *hb {
	b := newHB()
	b.produce("p1", 0, 0, 1, OK, []string{"a", "b"}, 0, 1)
	b.produce("p2", 0, 0.5, 1.5, OK, []string{"c"}, 2)
	b.produce("p1", 0, 1.2, 2, OK, []string{"d"}, 3)
	b.produce("p2", 0, 2, 3, Fail, []string{"x"})
	b.produce("p2", 0, 3, 4, Unknown, []string{"y"})
	b.produce("p1", 1, 0, 1, OK, []string{"e"}, 0)
	b.add(Op{Process: "p3", Kind: KindProduce, Topic: "one", Acks: "1", Invoke: sec(1), Complete: sec(2), Outcome: OK,
		Values: []string{"lost-acks1"}, Offsets: []int64{0}})
	b.consume("c", 0, 1, 1.1, 0, 2, "a", "b")
	b.consume("c", 0, 1.2, 1.3, 2, 2) // at the HW: nothing yet
	b.consume("c", 0, 2.1, 2.2, 2, 4, "c", "d")
	b.add(Op{Process: "c", Kind: KindSeek, Partition: 0, Invoke: sec(2.3), Complete: sec(2.3), Outcome: OK, Offset: 1})
	b.consume("c", 0, 2.4, 2.5, 1, 4, "b", "c")
	b.add(Op{Process: "c", Kind: KindConsume, Partition: 0, Invoke: sec(2.6), Complete: sec(2.7), Outcome: Fail, Offset: 3,
		Error: "LEADER_NOT_AVAILABLE (HTTP 503)"})
	b.consume("c", 0, 2.8, 2.9, 3, 4, "d")
	b.meta(1, 0, 0, 1, 1, 1, 2, 3)
	b.meta(1, 1, 0, 2, 2, 2, 3)
	b.meta(1, 2, 0, -1, 2, 2) // leaderless, last ISR member kept
	b.meta(2, 0.5, 0, 1, 1, 1, 2, 3)
	// The group: gen 1 with two members, gen 2 after m2 left; m1 rewinds
	// with a seek. A reply to m1 is lost: its next poll acknowledges the
	// last reply received, and continues from there.
	b.h.Groups = []GroupSpec{{Name: "g", Topics: []string{"t", "one"}}}
	b.group(KindJoin, "m1", 1, 0, 0.1, 0)
	b.group(KindJoin, "m2", 1, 0, 0.2, 1)
	b.poll("m1", 1, 1, 1.1, 0, 0, "a", "b").PollID = 1
	b.add(Op{Process: "m1", Kind: KindPoll, Group: "g", MemberID: "m1", Invoke: sec(1.12), Complete: sec(1.18), Outcome: Unknown,
		Ack: 1, Error: "connection reset"})
	lost := b.poll("m1", 1, 1.2, 1.3, 0, 2, "c")
	lost.Ack, lost.PollID = 1, 3
	b.poll("m2", 1, 1, 1.1, 1, 0, "e")
	b.commit(KindCommit, "m1", 1, 1.4, 1.5, 0, 3)
	b.commit(KindFetchCommitted, "m1", 0, 1.6, 1.7, 0, 3)
	b.group(KindLeave, "m2", 1, 2, 2.1)
	b.group(KindHeartbeat, "m1", 2, 2.2, 2.3, 0, 1)
	b.poll("m1", 2, 2.4, 2.5, 0, 3, "d") // positions carried over the rebalance
	b.commit(KindCommit, "m1", 2, 2.6, 2.7, 0, 4)
	b.add(Op{Process: "m1", Kind: KindSeek, Group: "g", MemberID: "m1", Generation: 2, Topic: "t", Partition: 0,
		Invoke: sec(2.8), Complete: sec(2.9), Outcome: OK, Offset: 0})
	b.poll("m1", 2, 3, 3.1, 0, 0, "a")
	b.commit(KindCommit, "m1", 2, 3.2, 3.3, 0, 1) // back, after the seek
	b.final(0, 5, "a", "b", "c", "d", "y")
	b.final(1, 1, "e")
	return b
}

func kinds(as []Anomaly) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Kind)
	}
	return out
}

func TestCheckerCleanHistory(t *testing.T) {
	h := clean().h
	if as := Check(&h); len(as) != 0 {
		for _, a := range as {
			t.Error(a.Describe(&h))
		}
	}
}

func TestCheckerNamesEachAnomaly(t *testing.T) {
	cases := []struct {
		kind   string
		mutate func(b *hb)
	}{
		{AnomalyLostWrite, func(b *hb) {
			// An acknowledged write whose offset holds another value at the end.
			b.produce("p3", 0, 4, 5, OK, []string{"z"}, 4)
		}},
		{AnomalyUnseenWrite, func(b *hb) {
			b.produce("p3", 0, 4, 5, OK, []string{"z"}, 7)
		}},
		{AnomalyAckMismatch, func(b *hb) {
			// The final log has "y" (unknown) at 4; say a write acknowledged it at 5.
			b.produce("p3", 0, 4, 5, OK, []string{"y"}, 5)
			b.h.Final[0].HW = 6
		}},
		{AnomalyDuplicate, func(b *hb) {
			b.consume("c2", 1, 5, 6, 0, 2, "e", "a")
		}},
		{AnomalyOffsetConflict, func(b *hb) {
			b.h.Final[0].Replicas[2].Records[1].Value = "b2"
		}},
		{AnomalyPollSkip, func(b *hb) {
			b.consume("c", 0, 3, 3.1, 4, 5) // the last read ended at 4: fine
			b.consume("c", 0, 3.2, 3.3, 4, 6, "y", "q")
			b.h.Ops[len(b.h.Ops)-1].Records[1].Offset = 6 // 5 skipped
		}},
		{AnomalyPollBackwards, func(b *hb) {
			b.consume("c", 0, 3, 3.1, 2, 5, "c") // the last read ended at 4, no seek
		}},
		{AnomalyPollSkip, func(b *hb) {
			b.poll("m1", 2, 3.4, 3.5, 0, 3, "d") // after the rewind read 0, 3 skips 1 and 2
		}},
		{AnomalyPollBackwards, func(b *hb) {
			b.poll("m1", 1, 1.31, 1.35, 0, 1, "b").Ack = 3 // gen 1 had read up to 2
		}},
		{AnomalyPollSkip, func(b *hb) {
			// A reply lost after m1 had read up to 2: the next poll,
			// acknowledging the reply that reached it, must start at 3.
			b.add(Op{Process: "m1", Kind: KindPoll, Group: "g", MemberID: "m1", Invoke: sec(1.31), Complete: sec(1.33), Outcome: Unknown, Ack: 3})
			b.poll("m1", 1, 1.34, 1.36, 0, 4, "y").Ack = 3
		}},
		{AnomalyPollBackwards, func(b *hb) {
			// The same, served the acknowledged reply's record again.
			b.add(Op{Process: "m1", Kind: KindPoll, Group: "g", MemberID: "m1", Invoke: sec(1.31), Complete: sec(1.33), Outcome: Fail, Ack: 3})
			b.poll("m1", 1, 1.34, 1.36, 0, 2, "c", "d").Ack = 3
		}},
		{AnomalyWriteOrder, func(b *hb) {
			// Sent after offset 3 was acknowledged, yet at 2.
			b.h.Ops[1].Invoke, b.h.Ops[1].Complete = sec(2.5), sec(2.6)
		}},
		{AnomalyReadFailedWrite, func(b *hb) {
			b.consume("c3", 0, 5, 6, 4, 5, "x")
		}},
		{AnomalyReadAboveHW, func(b *hb) {
			b.consume("c3", 0, 5, 6, 3, 4, "d", "y")
		}},
		{AnomalyLostRead, func(b *hb) {
			b.consume("c3", 1, 5, 6, 1, 2, "w") // read at 1, the final HW of t/1 is 1
		}},
		{AnomalyPositionLost, func(b *hb) {
			b.add(Op{Process: "c", Kind: KindConsume, Partition: 0, Invoke: sec(3), Complete: sec(3.1), Outcome: Fail, Offset: 4,
				Error: "consume t-0: OFFSET_OUT_OF_RANGE (HTTP 416): offset 4 is out of range: log start offset 0, high watermark 3"})
		}},
		{AnomalyStaleOutOfRange, func(b *hb) {
			// Node 1 still takes itself for the leader of epoch 1 after
			// node 2 showed epoch 2, and refuses a committed position.
			b.add(Op{Process: "c", Kind: KindConsume, Partition: 0, Invoke: sec(3), Complete: sec(3.1), Outcome: Fail, Offset: 4, Node: 1,
				Error: "consume t-0: OFFSET_OUT_OF_RANGE (HTTP 416): offset 4 is out of range: log start offset 0, high watermark 3"})
			b.meta(2, 2.5, 0, 2, 2, 2, 3)
			b.meta(1, 3.2, 0, 1, 1, 1, 2, 3)
		}},
		{AnomalyEpochRegress, func(b *hb) { b.meta(1, 3, 0, 3, 1, 3) }},
		{AnomalyBadISR, func(b *hb) { b.meta(2, 3, 0, 1, 2, 2, 3) }},
		{AnomalyBadISR, func(b *hb) { b.meta(2, 3, 0, -1, 2) }},
		{AnomalyReplicaDivergence, func(b *hb) { b.h.Final[0].Replicas[1].Batches[2].SHA256 = "other" }},
		{AnomalyReplicaDivergence, func(b *hb) { b.h.Final[1].Replicas[0].LogEnd = 0 }},
		{AnomalyDoubleOwner, func(b *hb) { b.group(KindHeartbeat, "m2", 1, 1, 1.1, 0, 1) }},
		{AnomalyCommitBackwards, func(b *hb) { b.commit(KindCommit, "m1", 1, 1.8, 1.9, 0, 2) }},
		{AnomalyCommitBackwards, func(b *hb) { b.commit(KindFetchCommitted, "admin", 0, 3.4, 3.5, 0, -1) }},
		{AnomalyStaleCommit, func(b *hb) { b.commit(KindCommit, "m2", 1, 3, 3.1, 1, 0) }},
		{AnomalyGroupUnseenAck, func(b *hb) {
			// m2's only poll of e lost its reply: nobody in the group got e.
			for i := range b.h.Ops {
				if op := &b.h.Ops[i]; op.Kind == KindPoll && op.MemberID == "m2" {
					op.Outcome = Unknown
				}
			}
		}},
		{EventGroupNotDrained, func(b *hb) {
			b.h.Events = append(b.h.Events, Event{At: sec(99), Kind: EventGroupNotDrained, Detail: "group g: t/1 short"})
		}},
		{EventNodeCrash, func(b *hb) {
			b.h.Events = append(b.h.Events, Event{At: sec(3), Kind: EventNodeCrash, Node: 2, Detail: "exit 2"})
		}},
	}
	for _, tc := range cases {
		b := clean()
		tc.mutate(b)
		got := Check(&b.h)
		if !slices.Contains(kinds(got), tc.kind) {
			t.Errorf("%s not named; got %v", tc.kind, kinds(got))
			continue
		}
		for _, a := range got {
			if a.Kind == tc.kind {
				d := a.Describe(&b.h)
				if tc.kind != EventNodeCrash && tc.kind != EventGroupNotDrained && !strings.Contains(d, "\n    #") && a.Kind != AnomalyReplicaDivergence && a.Kind != AnomalyOffsetConflict {
					t.Errorf("%s names no operation: %s", tc.kind, d)
				}
				t.Logf("%s", d)
				break
			}
		}
	}
}

// The group rules allow what the protocols allow: a reply the member did
// not acknowledge is served again (its records repeat), a write lost
// before anyone could read it is lost-write's to report, not the group's,
// and a group need not receive writes of topics it did not subscribe to.
func TestCheckerGroupAllowances(t *testing.T) {
	b := clean()
	// m1 says it never got reply 3 (ack 1): c comes again.
	b.poll("m1", 1, 1.31, 1.35, 0, 2, "c").Ack = 1
	// A write of "one" (acks=1, not durable) and none of its reads: fine.
	if as := Check(&b.h); len(as) != 0 {
		t.Fatalf("anomalies: %v", kinds(as))
	}
	b = clean()
	b.produce("p3", 0, 4, 5, OK, []string{"z"}, 4) // the final log has y at 4
	for _, k := range kinds(Check(&b.h)) {
		if k == AnomalyGroupUnseenAck {
			t.Fatalf("a write missing from the final log reported as unseen by the group as well: %v", kinds(Check(&b.h)))
		}
	}
	b = clean()
	b.h.Groups[0].Topics = []string{"one"}
	for i := range b.h.Ops {
		if op := &b.h.Ops[i]; op.Kind == KindPoll {
			op.Records = nil
		}
	}
	if as := Check(&b.h); len(as) != 0 {
		t.Fatalf("anomalies: %v", kinds(as))
	}
}

// TestCheckerNamesFaultsAcrossACommitRegression: a committed offset lower
// than one seen before a coordinator was killed names the kill.
func TestCheckerNamesFaultsAcrossACommitRegression(t *testing.T) {
	b := clean()
	b.h.Faults = append(b.h.Faults, FaultWindow{Kind: "kill-coordinator", Target: "coordinator of group g: n2", Start: sec(1.75), End: sec(1.78)})
	b.commit(KindFetchCommitted, "reader", 0, 1.8, 1.9, 0, 2)
	for _, a := range Check(&b.h) {
		if a.Kind == AnomalyCommitBackwards {
			if !strings.Contains(a.Detail, "across kill-coordinator coordinator of group g: n2 at 1.8s") {
				t.Fatalf("detail does not name the kill: %s", a.Detail)
			}
			return
		}
	}
	t.Fatal("commit-backwards not named")
}

// A lost acks=1 write is allowed (DESIGN §7.1 promises acks=all only) and a
// read of a record whose produce had an unknown outcome is fine.
func TestCheckerAllowsWhatThePromisesAllow(t *testing.T) {
	b := clean()
	// acks=1 write at "one"/0 that the final log does not have.
	b.h.Final = append(b.h.Final, FinalPartition{Topic: "one", Partition: 0, HW: 0, Complete: true})
	// An unknown write read by a consumer and present in the final log.
	b.consume("c4", 0, 5, 6, 4, 5, "y")
	if as := Check(&b.h); len(as) != 0 {
		t.Fatalf("anomalies: %v", kinds(as))
	}
}
