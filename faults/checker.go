package faults

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Anomaly kinds: each is a violation of an invariant of DESIGN.md §7 (the
// number in brackets), or a harness observation that the cluster misbehaved.
const (
	// An acknowledged acks=all write (durable topic) is not in the final log at
	// its offset, which holds another record [1].
	AnomalyLostWrite = "lost-write"
	// The final read after healing does not reach an acknowledged write's
	// offset: the HW stayed below it, or the log lost it [1].
	AnomalyUnseenWrite = "unseen-after-heal"
	// An acknowledged write's value was read at another offset than the one
	// its acknowledgement named [1, 2].
	AnomalyAckMismatch = "ack-offset-mismatch"
	// One value read at two offsets [2].
	AnomalyDuplicate = "duplicate"
	// One offset read with two values, across reads and replicas [2].
	AnomalyOffsetConflict = "offset-conflict"
	// A consumer's read skipped offsets, or went back, within a stable
	// assignment (no seek, same generation) [3].
	AnomalyPollSkip      = "poll-skip"
	AnomalyPollBackwards = "poll-backwards"
	// A write acknowledged later got a smaller offset than one acknowledged
	// before it was sent [3].
	AnomalyWriteOrder = "write-order"
	// A value whose produce failed (the API promised nothing was written) was read.
	AnomalyReadFailedWrite = "read-of-failed-write"
	// A read returned records at or above the HW its reply named [4].
	AnomalyReadAboveHW = "read-above-hw"
	// A record a consumer read (committed, hence below the HW) is not in the
	// final log: it was served before it was committed, or committed and lost [1, 4].
	AnomalyLostRead = "lost-read"
	// A consumer position that was below a HW already served was refused as
	// past the log end by the partition's leader: committed records vanished
	// from it [1, 4].
	AnomalyPositionLost = "position-out-of-range"
	// The same refusal, from a node whose metadata was behind (it still
	// took itself for the leader of an older epoch): no record was lost, but
	// a consumer resetting its position on the reply skips or re-reads, which
	// the API promises a failover never causes.
	AnomalyStaleOutOfRange = "stale-leader-out-of-range"
	// A node's view of a partition's leader epoch went back [5].
	AnomalyEpochRegress = "leader-epoch-regress"
	// An ISR without its leader, empty, or naming a non-replica [7].
	AnomalyBadISR = "bad-isr"
	// Replicas differ below the HW, or one lacks records below it [6].
	AnomalyReplicaDivergence = "replica-divergence"
	// Two members own one partition in one generation of a group [8].
	AnomalyDoubleOwner = "double-owner"
	// A group's committed offset went back without a reset or seek [8].
	AnomalyCommitBackwards = "commit-backwards"
	// A commit of an older generation succeeded after a newer one was seen [8].
	AnomalyStaleCommit = "stale-commit"
	// An acknowledged acks=all write of a durable topic a group subscribed
	// to, present in the final log, that no member of the group received,
	// though the members polled until they had every record after healing
	// (at-least-once delivery) [1, 3, 8].
	AnomalyGroupUnseenAck = "group-unseen-ack"
)

// Anomaly is one violation, with the operations that show it.
type Anomaly struct {
	Kind   string
	TP     TP    // the partition, when it concerns one
	Offset int64 // the offset, when it concerns one (-1 otherwise)
	Detail string
	Ops    []int // ids of the operations involved
}

// String is the anomaly on one line, without its operations.
func (a Anomaly) String() string {
	s := a.Kind
	if a.TP.Topic != "" {
		s += " " + a.TP.String()
		if a.Offset >= 0 {
			s += fmt.Sprintf(" offset %d", a.Offset)
		}
	}
	return s + ": " + a.Detail
}

// Describe is the anomaly with each operation involved, one per line.
func (a Anomaly) Describe(h *History) string {
	var b strings.Builder
	b.WriteString(a.String())
	for i, id := range a.Ops {
		if i == 8 {
			fmt.Fprintf(&b, "\n    ... %d more operations", len(a.Ops)-i)
			break
		}
		if id >= 0 && id < len(h.Ops) {
			b.WriteString("\n    ")
			b.WriteString(h.Ops[id].String())
		}
	}
	return b.String()
}

// tpo is an offset of a partition.
type tpo struct {
	tp  TP
	off int64
}

// sighting is where a record was read: an operation, or a replica's log on disk.
type sighting struct {
	op   int // -1 for a replica
	node int // the replica's node
}

func (s sighting) String() string {
	if s.op < 0 {
		return fmt.Sprintf("replica on node %d", s.node)
	}
	return fmt.Sprintf("op #%d", s.op)
}

// checker holds the indexes Check builds over a history.
type checker struct {
	h        *History
	out      []Anomaly
	atOffset map[tpo]map[string][]sighting // every value read at an offset
	valueAt  map[string]map[tpo][]sighting // every offset a value was read at
	final    map[TP]map[int64]string       // the final read
	finalOf  map[TP]*FinalPartition
}

// Check returns every anomaly in h, sorted by kind; a clean history gives none.
func Check(h *History) []Anomaly {
	c := &checker{
		h:        h,
		atOffset: map[tpo]map[string][]sighting{},
		valueAt:  map[string]map[tpo][]sighting{},
		final:    map[TP]map[int64]string{},
		finalOf:  map[TP]*FinalPartition{},
	}
	c.index()
	c.events()
	c.acknowledged()
	c.duplicatesAndConflicts()
	c.failedWrites()
	c.readsVsHW()
	c.consumerOrder()
	c.groupOrder()
	c.writeOrder()
	c.metadata()
	c.replicas()
	c.owners()
	c.commits()
	c.groupDelivery()
	slices.SortStableFunc(c.out, func(a, b Anomaly) int { return cmp.Compare(a.Kind, b.Kind) })
	return c.out
}

func (c *checker) add(kind string, tp TP, off int64, ops []int, format string, args ...any) {
	c.out = append(c.out, Anomaly{Kind: kind, TP: tp, Offset: off, Detail: fmt.Sprintf(format, args...), Ops: ops})
}

func (c *checker) saw(tp TP, off int64, value string, s sighting) {
	k := tpo{tp, off}
	if c.atOffset[k] == nil {
		c.atOffset[k] = map[string][]sighting{}
	}
	c.atOffset[k][value] = append(c.atOffset[k][value], s)
	if c.valueAt[value] == nil {
		c.valueAt[value] = map[tpo][]sighting{}
	}
	c.valueAt[value][k] = append(c.valueAt[value][k], s)
}

// readsOf returns the records an operation read (ok reads only).
func readsOf(op *Op) []ReadRecord {
	if op.Outcome != OK {
		return nil
	}
	switch op.Kind {
	case KindConsume, KindFinalRead, KindPoll:
		return op.Records
	}
	return nil
}

func recordTP(op *Op, r ReadRecord) TP {
	if r.Topic != "" {
		return TP{r.Topic, r.Partition}
	}
	return TP{op.Topic, op.Partition}
}

func (c *checker) index() {
	for i := range c.h.Final {
		fp := &c.h.Final[i]
		tp := TP{fp.Topic, fp.Partition}
		c.finalOf[tp] = fp
		for _, r := range fp.Replicas {
			for _, rec := range r.Records {
				c.saw(tp, rec.Offset, rec.Value, sighting{op: -1, node: r.Node})
			}
		}
	}
	for i := range c.h.Ops {
		op := &c.h.Ops[i]
		for _, r := range readsOf(op) {
			tp := recordTP(op, r)
			c.saw(tp, r.Offset, r.Value, sighting{op: op.ID})
			if op.Kind == KindFinalRead {
				if c.final[tp] == nil {
					c.final[tp] = map[int64]string{}
				}
				c.final[tp][r.Offset] = r.Value
			}
		}
	}
}

func (c *checker) events() {
	for _, e := range c.h.Events {
		detail := e.Detail
		if e.Node != 0 {
			detail = fmt.Sprintf("node %d: %s", e.Node, e.Detail)
		}
		c.add(e.Kind, TP{}, -1, nil, "at %.1fs: %s", e.At.Seconds(), detail)
	}
}

// acknowledged checks each acknowledged acks=all write of a durable topic
// against the final read.
func (c *checker) acknowledged() {
	for i := range c.h.Ops {
		op := &c.h.Ops[i]
		if op.Kind != KindProduce || op.Outcome != OK || op.Acks != "all" {
			continue
		}
		spec, ok := c.h.topic(op.Topic)
		if !ok || !spec.Durable() {
			continue
		}
		tp := TP{op.Topic, op.Partition}
		fp := c.finalOf[tp]
		var lost, unseen, moved []string
		firstOff := int64(-1)
		involved := []int{op.ID}
		for j, v := range op.Values {
			if j >= len(op.Offsets) || op.Offsets[j] < 0 {
				continue
			}
			off := op.Offsets[j]
			// Read at other offsets and never at its own: the acknowledgement
			// named the wrong offset. (Read at both is a duplicate.)
			elsewhere := false
			if _, here := c.valueAt[v][tpo{tp, off}]; !here {
				for k, ss := range c.valueAt[v] {
					if k != (tpo{tp, off}) {
						elsewhere = true
						involved = appendSightings(involved, ss)
					}
				}
			}
			switch got, has := c.final[tp][off]; {
			case elsewhere:
				moved = append(moved, fmt.Sprintf("%s@%d", v, off))
			case fp == nil || !fp.Complete || off >= fp.HW:
				unseen = append(unseen, fmt.Sprintf("%s@%d", v, off))
			case !has:
				lost = append(lost, fmt.Sprintf("%s@%d (no record there)", v, off))
			case got != v:
				lost = append(lost, fmt.Sprintf("%s@%d (final log has %s)", v, off, got))
				involved = appendSightings(involved, c.atOffset[tpo{tp, off}][got])
			default:
				continue
			}
			if firstOff < 0 {
				firstOff = off
			}
		}
		switch {
		case len(moved) > 0:
			c.add(AnomalyAckMismatch, tp, firstOff, dedupe(involved), "acknowledged values read at other offsets: %s", strings.Join(moved, ", "))
		case len(lost) > 0:
			c.add(AnomalyLostWrite, tp, firstOff, dedupe(involved), "acknowledged values not in the final log: %s", strings.Join(lost, ", "))
		case len(unseen) > 0:
			hw := "no final read"
			if fp != nil {
				hw = fmt.Sprintf("final HW %d, final read complete %v", fp.HW, fp.Complete)
			}
			c.add(AnomalyUnseenWrite, tp, firstOff, involved, "acknowledged values not visible after healing (%s): %s", hw, strings.Join(unseen, ", "))
		}
	}
}

func appendSightings(ids []int, ss []sighting) []int {
	for _, s := range ss {
		if s.op >= 0 {
			ids = append(ids, s.op)
		}
	}
	return ids
}

func dedupe(ids []int) []int {
	slices.Sort(ids)
	return slices.Compact(ids)
}

func describeSightings(ss []sighting) string {
	parts := make([]string, 0, len(ss))
	for i, s := range ss {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("+%d more", len(ss)-i))
			break
		}
		parts = append(parts, s.String())
	}
	return strings.Join(parts, ", ")
}

func (c *checker) duplicatesAndConflicts() {
	for _, k := range sortedTPOKeys(c.atOffset) {
		vals := c.atOffset[k]
		if len(vals) < 2 {
			continue
		}
		var parts []string
		var ids []int
		for _, v := range sortedStrings(vals) {
			parts = append(parts, fmt.Sprintf("%q (%s)", v, describeSightings(vals[v])))
			ids = appendSightings(ids, vals[v])
		}
		c.add(AnomalyOffsetConflict, k.tp, k.off, dedupe(ids), "values %s", strings.Join(parts, " vs "))
	}
	for _, v := range sortedStrings(c.valueAt) {
		locs := c.valueAt[v]
		if len(locs) < 2 {
			continue
		}
		var parts []string
		var ids []int
		keys := make([]tpo, 0, len(locs))
		for k := range locs {
			keys = append(keys, k)
		}
		sortTPOs(keys)
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s@%d (%s)", k.tp, k.off, describeSightings(locs[k])))
			ids = appendSightings(ids, locs[k])
		}
		c.add(AnomalyDuplicate, keys[0].tp, keys[0].off, dedupe(ids), "value %q at %s", v, strings.Join(parts, ", "))
	}
}

func (c *checker) failedWrites() {
	failed := map[string]int{}
	for i := range c.h.Ops {
		op := &c.h.Ops[i]
		if op.Kind == KindProduce && op.Outcome == Fail {
			for _, v := range op.Values {
				failed[v] = op.ID
			}
		}
	}
	for _, v := range sortedStrings(c.valueAt) {
		id, ok := failed[v]
		if !ok {
			continue
		}
		for _, k := range sortedTPOKeys(c.valueAt[v]) {
			ss := c.valueAt[v][k]
			c.add(AnomalyReadFailedWrite, k.tp, k.off, dedupe(appendSightings([]int{id}, ss)),
				"value %q of a failed produce read (%s)", v, describeSightings(ss))
		}
	}
}

// readsVsHW: a read never returns records at or above its reply's HW, and a
// record read by a consumer stays in the log.
func (c *checker) readsVsHW() {
	for i := range c.h.Ops {
		op := &c.h.Ops[i]
		if op.Kind != KindConsume && op.Kind != KindPoll {
			continue
		}
		if op.Kind == KindConsume && op.Outcome == Fail && op.Offset >= 0 && strings.Contains(op.Error, "OFFSET_OUT_OF_RANGE") {
			c.positionRefused(op)
		}
		for _, r := range readsOf(op) {
			tp := recordTP(op, r)
			if op.Kind == KindConsume && r.Offset >= op.HW {
				c.add(AnomalyReadAboveHW, tp, r.Offset, []int{op.ID}, "record %q at offset %d, reply's HW %d", r.Value, r.Offset, op.HW)
				break
			}
		}
		for _, r := range readsOf(op) {
			tp := recordTP(op, r)
			fp := c.finalOf[tp]
			if fp == nil || !fp.Complete || r.Offset < fp.HW {
				continue // below the final HW, the final read's value decides (offset-conflict)
			}
			c.add(AnomalyLostRead, tp, r.Offset, []int{op.ID}, "record %q read at offset %d is not in the final log (final HW %d)", r.Value, r.Offset, fp.HW)
			break
		}
	}
}

// positionRefused: a consumer at a position that an earlier reply had
// already shown to be committed (below its HW) was told the position is out
// of range.
func (c *checker) positionRefused(op *Op) {
	var best *Op
	for i := range c.h.Ops {
		prev := &c.h.Ops[i]
		if prev.Kind != KindConsume || prev.Outcome != OK || prev.Topic != op.Topic || prev.Partition != op.Partition {
			continue
		}
		if prev.Complete < op.Invoke && op.Offset <= prev.HW && op.Offset >= prev.LogStart && (best == nil || prev.HW > best.HW) {
			best = prev
		}
	}
	if best == nil {
		return
	}
	ids := []int{best.ID, op.ID}
	if stale := c.staleView(op); stale != nil {
		c.add(AnomalyStaleOutOfRange, TP{op.Topic, op.Partition}, op.Offset, append(ids, stale.ID),
			"offset %d refused as out of range by node %d, which still saw an older leader epoch (op #%d), after op #%d had shown HW %d",
			op.Offset, op.Node, stale.ID, best.ID, best.HW)
		return
	}
	c.add(AnomalyPositionLost, TP{op.Topic, op.Partition}, op.Offset, ids,
		"offset %d refused as out of range after op #%d had shown HW %d", op.Offset, best.ID, best.HW)
}

// staleView returns the observation showing that the node which served op
// had metadata behind the cluster's at the time: its first view of the
// partition after op names an older leader epoch than some node had shown
// before op was sent. Nil when there is no such evidence.
func (c *checker) staleView(op *Op) *Op {
	if op.Node == 0 {
		return nil
	}
	newest := int32(-1)
	var after *Op
	afterEpoch := int32(-1)
	for i := range c.h.Ops {
		m := &c.h.Ops[i]
		if m.Kind != KindMeta || m.Outcome != OK || m.Topic != op.Topic {
			continue
		}
		for _, p := range m.Meta {
			if p.Partition != op.Partition {
				continue
			}
			if m.Complete < op.Invoke {
				newest = max(newest, p.LeaderEpoch)
			}
			if m.ObservedBy == op.Node && m.Invoke >= op.Complete && (after == nil || m.Invoke < after.Invoke) {
				after, afterEpoch = m, p.LeaderEpoch
			}
		}
	}
	if after != nil && afterEpoch < newest {
		return after
	}
	return nil
}

// consumerOrder: each assigned consumer reads a partition contiguously from
// its position; only its seeks move the position.
func (c *checker) consumerOrder() {
	type key struct {
		process string
		tp      TP
	}
	byKey := map[key][]*Op{}
	var keys []key
	for i := range c.h.Ops {
		op := &c.h.Ops[i]
		if (op.Kind != KindConsume && op.Kind != KindSeek) || op.Group != "" {
			continue
		}
		k := key{op.Process, TP{op.Topic, op.Partition}}
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], op)
	}
	for _, k := range keys {
		ops := byKey[k]
		sort.SliceStable(ops, func(i, j int) bool { return ops[i].Invoke < ops[j].Invoke })
		var prev *Op // the last ok read or seek
		for _, op := range ops {
			if op.Outcome != OK {
				continue
			}
			if op.Kind == KindSeek {
				prev = op
				continue
			}
			if prev != nil {
				want := prev.NextOffset
				if prev.Kind == KindSeek {
					want = prev.Offset
				}
				if op.Offset > want {
					c.add(AnomalyPollSkip, k.tp, want, []int{prev.ID, op.ID}, "read from %d after the previous read ended at %d", op.Offset, want)
				} else if op.Offset < want {
					c.add(AnomalyPollBackwards, k.tp, op.Offset, []int{prev.ID, op.ID}, "read from %d after the previous read ended at %d", op.Offset, want)
				}
			}
			expect := op.Offset
			for _, r := range op.Records {
				if r.Offset != expect {
					kind := AnomalyPollSkip
					if r.Offset < expect {
						kind = AnomalyPollBackwards
					}
					c.add(kind, k.tp, r.Offset, []int{op.ID}, "record at offset %d where %d was next", r.Offset, expect)
					break
				}
				expect = r.Offset + 1
			}
			if op.NextOffset > expect {
				c.add(AnomalyPollSkip, k.tp, expect, []int{op.ID}, "next_offset %d skips past %d", op.NextOffset, expect)
			} else if op.NextOffset < expect {
				c.add(AnomalyPollBackwards, k.tp, op.NextOffset, []int{op.ID}, "next_offset %d is below %d, already read", op.NextOffset, expect)
			}
			prev = op
		}
	}
}

// groupOrder: within one generation, a member's polls continue each of its
// partitions where the last reply it received left it. The ack protocol
// makes this hold across lost replies: a poll acknowledges the last reply
// the member received (its Ack is that reply's PollID), and the coordinator
// moves the positions past a reply's records only once it is acknowledged,
// serving a lost reply's records again. So a poll that failed or whose
// outcome is unknown changes nothing when the next ok poll acknowledges the
// last ok one; without poll ids to show that (PollID 0) such a poll starts
// the checks afresh, as does an ok poll acknowledging another reply than
// the last one received. A seek, a new generation, a lost assignment, a
// join (a new member) and a commit by the member past where its polls had
// come (an explicit commit moves the position) start afresh too.
func (c *checker) groupOrder() {
	type pos struct {
		gen  int32
		last int64
		op   int
	}
	type memberState struct {
		parts  map[TP]pos // partition -> last offset received
		lastOK *Op        // the last ok poll
		doubt  bool       // a poll since lastOK failed or was lost
	}
	members := map[string]*memberState{} // group + member
	ops := c.sortedByInvoke(func(op *Op) bool {
		switch op.Kind {
		case KindPoll, KindSeek, KindJoin, KindCommit:
			return op.Group != ""
		}
		return false
	})
	for _, op := range ops {
		m := op.Group + "\x00" + op.MemberID
		st := members[m]
		switch op.Kind {
		case KindJoin:
			delete(members, m)
			continue
		case KindSeek:
			if op.Outcome == OK && op.Topic != "" && st != nil {
				delete(st.parts, TP{op.Topic, op.Partition})
			} else {
				delete(members, m) // any doubt: start afresh
			}
			continue
		case KindCommit:
			if op.Outcome == Fail || st == nil {
				continue
			}
			for _, e := range op.Commits {
				tp := TP{e.Topic, e.Partition}
				if p, ok := st.parts[tp]; ok && e.Offset > p.last+1 {
					delete(st.parts, tp)
				}
			}
			continue
		}
		if op.Outcome != OK {
			if st != nil {
				st.doubt = true
			}
			continue
		}
		if st == nil {
			st = &memberState{parts: map[TP]pos{}}
			members[m] = st
		}
		if st.lastOK != nil && (op.Ack != st.lastOK.PollID || (st.doubt && st.lastOK.PollID == 0)) {
			clear(st.parts) // the last reply was not acknowledged: it is served again
		}
		st.lastOK, st.doubt = op, false
		for tp, p := range st.parts {
			if p.gen != op.Generation || !slices.Contains(op.Assignments, tp) {
				delete(st.parts, tp)
			}
		}
		for _, r := range op.Records {
			tp := recordTP(op, r)
			p, ok := st.parts[tp]
			if ok {
				switch {
				case r.Offset > p.last+1:
					c.add(AnomalyPollSkip, tp, p.last+1, []int{p.op, op.ID}, "member %s generation %d: record at %d after %d", op.MemberID, op.Generation, r.Offset, p.last)
				case r.Offset <= p.last:
					c.add(AnomalyPollBackwards, tp, r.Offset, []int{p.op, op.ID}, "member %s generation %d: record at %d after %d", op.MemberID, op.Generation, r.Offset, p.last)
				}
			}
			st.parts[tp] = pos{gen: op.Generation, last: r.Offset, op: op.ID}
		}
	}
}

func (c *checker) sortedByInvoke(keep func(*Op) bool) []*Op {
	var ops []*Op
	for i := range c.h.Ops {
		if keep(&c.h.Ops[i]) {
			ops = append(ops, &c.h.Ops[i])
		}
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Invoke < ops[j].Invoke })
	return ops
}

// writeOrder: an acks=all write sent after another was acknowledged lands
// at a larger offset of the same partition.
func (c *checker) writeOrder() {
	byTP := map[TP][]*Op{}
	for i := range c.h.Ops {
		op := &c.h.Ops[i]
		if op.Kind == KindProduce && op.Outcome == OK && op.Acks == "all" && len(op.Offsets) > 0 {
			tp := TP{op.Topic, op.Partition}
			byTP[tp] = append(byTP[tp], op)
		}
	}
	for _, tp := range sortedTPKeys(byTP) {
		ops := byTP[tp]
		byComplete := slices.Clone(ops)
		sort.SliceStable(byComplete, func(i, j int) bool { return byComplete[i].Complete < byComplete[j].Complete })
		sort.SliceStable(ops, func(i, j int) bool { return ops[i].Invoke < ops[j].Invoke })
		var maxOp *Op
		next := 0
		for _, b := range ops {
			for next < len(byComplete) && byComplete[next].Complete < b.Invoke {
				a := byComplete[next]
				if maxOp == nil || slices.Max(a.Offsets) > slices.Max(maxOp.Offsets) {
					maxOp = a
				}
				next++
			}
			if maxOp != nil && slices.Min(b.Offsets) <= slices.Max(maxOp.Offsets) {
				c.add(AnomalyWriteOrder, tp, slices.Min(b.Offsets), []int{maxOp.ID, b.ID},
					"write sent after offset %d was acknowledged got offset %d", slices.Max(maxOp.Offsets), slices.Min(b.Offsets))
			}
		}
	}
}

// metadata: each node's view of a partition never goes back to an older
// leader epoch, and its ISR holds its leader, is never empty and names only
// replicas. One observer process watches one incarnation of one node.
func (c *checker) metadata() {
	type key struct {
		process string
		tp      TP
	}
	last := map[key]*Op{}
	lastEpoch := map[key]int32{}
	for _, op := range c.sortedByInvoke(func(op *Op) bool { return op.Kind == KindMeta && op.Outcome == OK }) {
		for _, p := range op.Meta {
			tp := TP{op.Topic, p.Partition}
			k := key{op.Process, tp}
			if prev, ok := last[k]; ok && p.LeaderEpoch < lastEpoch[k] {
				c.add(AnomalyEpochRegress, tp, -1, []int{prev.ID, op.ID}, "node %d: leader epoch %d after %d", op.ObservedBy, p.LeaderEpoch, lastEpoch[k])
			}
			last[k], lastEpoch[k] = op, p.LeaderEpoch
			switch {
			case len(p.ISR) == 0:
				c.add(AnomalyBadISR, tp, -1, []int{op.ID}, "node %d: empty ISR (leader %d)", op.ObservedBy, p.Leader)
			case p.Leader >= 0 && !slices.Contains(p.ISR, p.Leader):
				c.add(AnomalyBadISR, tp, -1, []int{op.ID}, "node %d: leader %d not in ISR %v", op.ObservedBy, p.Leader, p.ISR)
			default:
				for _, id := range p.ISR {
					if !slices.Contains(p.Replicas, id) {
						c.add(AnomalyBadISR, tp, -1, []int{op.ID}, "node %d: ISR %v names %d, not a replica (%v)", op.ObservedBy, p.ISR, id, p.Replicas)
						break
					}
				}
			}
		}
	}
}

// replicas: every replica holds the same batches, byte for byte, below the HW.
func (c *checker) replicas() {
	for i := range c.h.Final {
		fp := &c.h.Final[i]
		tp := TP{fp.Topic, fp.Partition}
		var ref *ReplicaLog
		for j := range fp.Replicas {
			r := &fp.Replicas[j]
			if r.Error != "" {
				c.add(AnomalyReplicaDivergence, tp, -1, nil, "replica on node %d unreadable: %s", r.Node, r.Error)
				continue
			}
			if r.LogEnd < fp.HW {
				c.add(AnomalyReplicaDivergence, tp, r.LogEnd, nil, "replica on node %d ends at %d, below the HW %d", r.Node, r.LogEnd, fp.HW)
				continue
			}
			if ref == nil {
				ref = r
				continue
			}
			if off, why := firstBatchDifference(ref.Batches, r.Batches); why != "" {
				c.add(AnomalyReplicaDivergence, tp, off, nil, "replicas on nodes %d and %d differ below the HW %d: %s", ref.Node, r.Node, fp.HW, why)
			}
		}
	}
}

func firstBatchDifference(a, b []BatchDigest) (int64, string) {
	for i := 0; i < len(a) || i < len(b); i++ {
		switch {
		case i >= len(a):
			return b[i].Base, fmt.Sprintf("only the second has batch %d-%d", b[i].Base, b[i].Last)
		case i >= len(b):
			return a[i].Base, fmt.Sprintf("only the first has batch %d-%d", a[i].Base, a[i].Last)
		case a[i] != b[i]:
			return min(a[i].Base, b[i].Base), fmt.Sprintf("batch %d-%d (%.12s) vs %d-%d (%.12s)", a[i].Base, a[i].Last, a[i].SHA256, b[i].Base, b[i].Last, b[i].SHA256)
		}
	}
	return -1, ""
}

// owners: in one generation of a group, each partition has at most one
// member, as the members' own replies (join, heartbeat, poll) show it.
func (c *checker) owners() {
	type key struct {
		group string
		gen   int32
		tp    TP
	}
	owners := map[key]map[string]int{} // member -> an op showing it
	var keys []key
	for i := range c.h.Ops {
		op := &c.h.Ops[i]
		if op.Group == "" || op.Outcome != OK || op.Generation <= 0 || op.MemberID == "" {
			continue
		}
		switch op.Kind {
		case KindJoin, KindHeartbeat, KindPoll:
		default:
			continue
		}
		for _, tp := range op.Assignments {
			k := key{op.Group, op.Generation, tp}
			if owners[k] == nil {
				owners[k] = map[string]int{}
				keys = append(keys, k)
			}
			if _, ok := owners[k][op.MemberID]; !ok {
				owners[k][op.MemberID] = op.ID
			}
		}
	}
	for _, k := range keys {
		if len(owners[k]) < 2 {
			continue
		}
		members := sortedStrings(owners[k])
		var ids []int
		for _, m := range members {
			ids = append(ids, owners[k][m])
		}
		c.add(AnomalyDoubleOwner, k.tp, -1, ids, "group %s generation %d: owned by %s", k.group, k.gen, strings.Join(members, " and "))
	}
}

// commits: a group's committed offset of a partition never goes back (a
// later commit or read of it below one completed before) unless a reset or
// a seek came between; and no commit of a generation succeeds once a newer
// generation of the group was seen.
func (c *checker) commits() {
	type key struct {
		group string
		tp    TP
	}
	type point struct {
		op     *Op
		offset int64
	}
	points := map[key][]point{}
	barriers := map[key][]*Op{} // resets and seeks: the offset may go back after them
	var keys []key
	note := func(k key) {
		if points[k] == nil && barriers[k] == nil {
			keys = append(keys, k)
		}
	}
	newestGen := map[string][]*Op{} // group -> ops showing a generation
	for i := range c.h.Ops {
		op := &c.h.Ops[i]
		if op.Group == "" || op.Outcome != OK {
			continue
		}
		if op.Generation > 0 {
			newestGen[op.Group] = append(newestGen[op.Group], op)
		}
		switch op.Kind {
		case KindCommit, KindFetchCommitted, KindResetOffsets:
			for _, e := range op.Commits {
				k := key{op.Group, TP{e.Topic, e.Partition}}
				note(k)
				if op.Kind == KindResetOffsets {
					barriers[k] = append(barriers[k], op)
				} else {
					points[k] = append(points[k], point{op, e.Offset})
				}
			}
		case KindSeek:
			k := key{op.Group, TP{op.Topic, op.Partition}}
			note(k)
			barriers[k] = append(barriers[k], op)
		}
	}
	for _, k := range keys {
		ps := points[k]
		for _, b := range ps {
			lastBarrier := -1.0
			for _, r := range barriers[k] {
				if r.Complete < b.op.Invoke && r.Complete.Seconds() > lastBarrier {
					lastBarrier = r.Complete.Seconds()
				}
			}
			var best *point
			for i := range ps {
				a := &ps[i]
				if a.op.Complete < b.op.Invoke && a.op.Invoke.Seconds() > lastBarrier && (best == nil || a.offset > best.offset) {
					best = a
				}
			}
			if best != nil && b.offset < best.offset {
				c.add(AnomalyCommitBackwards, k.tp, b.offset, []int{best.op.ID, b.op.ID},
					"group %s: committed offset %d (op #%d, %s) after %d (op #%d)%s", k.group, b.offset, b.op.ID, b.op.Kind, best.offset, best.op.ID,
					c.faultsBetween(best.op.Complete, b.op.Invoke))
			}
		}
	}
	for i := range c.h.Ops {
		op := &c.h.Ops[i]
		if op.Kind != KindCommit || op.Outcome != OK || op.Group == "" || op.Generation <= 0 {
			continue
		}
		for _, g := range newestGen[op.Group] {
			if g.Generation > op.Generation && g.Complete < op.Invoke {
				c.add(AnomalyStaleCommit, TP{}, -1, []int{g.ID, op.ID},
					"group %s: commit of generation %d accepted after generation %d was seen", op.Group, op.Generation, g.Generation)
				break
			}
		}
	}
}

// faultsBetween names the faults injected between two times (" across
// kill-coordinator n2 at 31.0s, ..."), "" when none was.
func (c *checker) faultsBetween(from, to time.Duration) string {
	var parts []string
	for _, f := range c.h.Faults {
		if f.Start >= from && f.Start <= to {
			parts = append(parts, fmt.Sprintf("%s %s at %.1fs", f.Kind, f.Target, f.Start.Seconds()))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	if len(parts) > 3 {
		parts = append(parts[:3], fmt.Sprintf("and %d more", len(parts)-3))
	}
	return ", across " + strings.Join(parts, "; ")
}

// groupDelivery: every acknowledged acks=all write of a durable topic a
// group subscribed to, and present in the final log (else lost-write says
// so), was received by some member of the group: the members polled after
// healing until they had every record, and a lost reply is served again,
// so a write no member received was skipped.
func (c *checker) groupDelivery() {
	for _, g := range c.h.Groups {
		received := map[string]bool{}
		for i := range c.h.Ops {
			op := &c.h.Ops[i]
			if op.Kind == KindPoll && op.Group == g.Name && op.Outcome == OK {
				for _, r := range op.Records {
					received[r.Value] = true
				}
			}
		}
		type missing struct {
			values []string
			first  int64
			ops    []int
		}
		byTP := map[TP]*missing{}
		for i := range c.h.Ops {
			op := &c.h.Ops[i]
			if op.Kind != KindProduce || op.Outcome != OK || op.Acks != "all" || !slices.Contains(g.Topics, op.Topic) {
				continue
			}
			if spec, ok := c.h.topic(op.Topic); !ok || !spec.Durable() {
				continue
			}
			tp := TP{op.Topic, op.Partition}
			for j, v := range op.Values {
				if j >= len(op.Offsets) || received[v] {
					continue
				}
				off := op.Offsets[j]
				if got, ok := c.final[tp][off]; !ok || got != v {
					continue // not in the final log: lost-write or unseen-after-heal
				}
				ms := byTP[tp]
				if ms == nil {
					ms = &missing{first: off}
					byTP[tp] = ms
				}
				ms.values = append(ms.values, fmt.Sprintf("%s@%d", v, off))
				ms.first = min(ms.first, off)
				if len(ms.ops) == 0 || ms.ops[len(ms.ops)-1] != op.ID {
					ms.ops = append(ms.ops, op.ID)
				}
			}
		}
		for _, tp := range sortedTPKeys(byTP) {
			ms := byTP[tp]
			c.add(AnomalyGroupUnseenAck, tp, ms.first, ms.ops, "group %s: %d acknowledged values in the final log that no member received: %s",
				g.Name, len(ms.values), abbreviate(ms.values))
		}
	}
}

func sortedStrings[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortTPOs(ks []tpo) {
	slices.SortFunc(ks, func(a, b tpo) int { return cmp.Or(compareTP(a.tp, b.tp), cmp.Compare(a.off, b.off)) })
}

func sortedTPOKeys[V any](m map[tpo]V) []tpo {
	out := make([]tpo, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortTPOs(out)
	return out
}

func sortedTPKeys[V any](m map[TP]V) []TP {
	out := make([]TP, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, compareTP)
	return out
}

func compareTP(a, b TP) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}
