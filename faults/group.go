package faults

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"weir/client"
)

// Recording consumer-group operations: a group workload calls the REST API
// (API.md "Consumer groups") and turns each reply into the fields of its
// Op with these, so that the checker's group rules see exactly what the
// member was told.

// groupOp starts an operation of a group member.
func groupOp(kind Kind, process, group, member string) Op {
	return Op{Process: process, Kind: kind, Group: group, MemberID: member}
}

// withAssignment records a join or heartbeat reply: the member, its
// generation and its partitions.
func withAssignment(op *Op, r client.MemberAssignment) {
	op.MemberID, op.Generation = r.MemberID, r.Generation
	op.Assignments = toTPs(r.Assignments)
}

// withPoll records a poll reply: the generation the records were read in,
// the member's partitions then, the reply's poll_id and each record with
// its partition. (The ack the poll sent is the caller's to set.)
func withPoll(op *Op, r client.GroupRecords) error {
	op.MemberID, op.Generation, op.PollID = r.MemberID, r.Generation, r.PollID
	op.Assignments = toTPs(r.Assignments)
	for _, rec := range r.Records {
		if rec.Topic == "" || rec.Partition == nil {
			return fmt.Errorf("record at offset %d names no topic and partition", rec.Offset)
		}
		v, err := recordValue(rec)
		if err != nil {
			return err
		}
		op.Records = append(op.Records, ReadRecord{Topic: rec.Topic, Partition: *rec.Partition, Offset: rec.Offset, Value: v})
	}
	return nil
}

// withCommit records a commit request (what was asked is what an ok reply
// committed).
func withCommit(op *Op, req client.CommitRequest) {
	op.MemberID = req.MemberID
	if req.Generation != nil {
		op.Generation = *req.Generation
	}
	for _, c := range req.Offsets {
		op.Commits = append(op.Commits, CommitEntry{Topic: c.Topic, Partition: c.Partition, Offset: c.Offset})
	}
}

// withCommitted records the committed offsets a read of them returned
// (-1 for a partition without one).
func withCommitted(op *Op, r client.GroupOffsets) {
	for _, o := range r.Offsets {
		off := int64(-1)
		if o.CommittedOffset != nil {
			off = *o.CommittedOffset
		}
		op.Commits = append(op.Commits, CommitEntry{Topic: o.Topic, Partition: o.Partition, Offset: off})
	}
}

func toTPs(in []client.TopicPartition) []TP {
	out := make([]TP, 0, len(in))
	for _, tp := range in {
		out = append(out, TP{tp.Topic, tp.Partition})
	}
	return out
}

// recordValue is a consumed record's value as the producer sent it (a
// string value read with encoding=text, or value_b64).
func recordValue(r client.ConsumedRecord) (string, error) {
	switch {
	case r.ValueB64 != nil:
		b, err := base64.StdEncoding.DecodeString(*r.ValueB64)
		if err != nil {
			return "", fmt.Errorf("record at offset %d: value_b64: %w", r.Offset, err)
		}
		return string(b), nil
	case r.Value != nil:
		var v string
		if err := json.Unmarshal(r.Value, &v); err != nil {
			return "", fmt.Errorf("record at offset %d: value %s: %w", r.Offset, r.Value, err)
		}
		return v, nil
	}
	return "", nil
}
