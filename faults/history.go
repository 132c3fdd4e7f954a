package faults

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Outcome is how an operation ended, as the client can know it.
type Outcome string

// Outcomes. Unknown is an operation that may or may not have taken effect:
// a timeout, a connection lost after the request was sent, or one of the
// two error codes whose outcome the API leaves open (REQUEST_TIMED_OUT,
// NOT_ENOUGH_REPLICAS_AFTER_APPEND). Fail promises that nothing happened.
const (
	OK      Outcome = "ok"
	Fail    Outcome = "fail"
	Unknown Outcome = "unknown"
)

// Kind is what an operation did.
type Kind string

// Operation kinds. The group kinds are what a group-consumer workload
// records; the checker already knows their rules.
const (
	KindProduce   Kind = "produce"    // Values to Topic/Partition with Acks; Offsets when acknowledged
	KindConsume   Kind = "consume"    // an assigned consumer's read of one partition from Offset
	KindSeek      Kind = "seek"       // a consumer moved its position (Offset) by itself: order checks restart
	KindMeta      Kind = "meta"       // a node's view of the topic's partitions (Meta)
	KindFinalRead Kind = "final-read" // the read of a partition after healing, from the log start to the HW

	KindJoin           Kind = "join"            // a member joined: MemberID, Generation, Assignments
	KindHeartbeat      Kind = "heartbeat"       // MemberID, Generation, Assignments as the reply says
	KindPoll           Kind = "poll"            // a member's records (each with Topic/Partition) in Generation; Ack sent, PollID received
	KindCommit         Kind = "commit"          // Commits by MemberID in Generation
	KindFetchCommitted Kind = "fetch-committed" // the group's committed offsets as read (Offset -1: none)
	KindLeave          Kind = "leave"
	KindResetOffsets   Kind = "reset-offsets" // an administrative reset: committed offsets may go back
)

// TP names a partition of a topic.
type TP struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// String is "topic/partition".
func (tp TP) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// ReadRecord is one record a read returned.
type ReadRecord struct {
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Value     string `json:"value"`
}

// CommitEntry is one partition of a commit, or of committed offsets as read
// (Offset -1 when the group has none for the partition).
type CommitEntry struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// MetaPartition is one partition as a node described it.
type MetaPartition struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr"`
	Replicas    []int32 `json:"replicas"`
}

// Op is one operation of the history. Fields that do not apply to its Kind
// are zero.
type Op struct {
	ID       int           `json:"id"`
	Process  string        `json:"process"` // who issued it; one process issues one operation at a time
	Kind     Kind          `json:"kind"`
	Invoke   time.Duration `json:"invoke"`   // since the run started
	Complete time.Duration `json:"complete"` // since the run started
	Outcome  Outcome       `json:"outcome"`
	Error    string        `json:"error,omitempty"`
	// ErrorKind is why it failed: the API's error code or the transport
	// error's kind (see errorKind); the summary counts failures by it.
	ErrorKind string `json:"error_kind,omitempty"`
	Node      int    `json:"node,omitempty"` // the node that served it (Weir-Served-By), 0 if unknown

	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition"`

	// Produce.
	Acks    string   `json:"acks,omitempty"`
	Values  []string `json:"values,omitempty"`
	Offsets []int64  `json:"offsets,omitempty"` // per value, when acknowledged

	// Consume, final read and seek: the position asked for, the records
	// returned and what the reply said of the partition.
	Offset     int64        `json:"offset"`
	Records    []ReadRecord `json:"records,omitempty"`
	NextOffset int64        `json:"next_offset"`
	HW         int64        `json:"hw"`
	LogStart   int64        `json:"log_start"`

	// Groups.
	Group       string        `json:"group,omitempty"`
	MemberID    string        `json:"member_id,omitempty"`
	Generation  int32         `json:"generation,omitempty"`
	Assignments []TP          `json:"assignments,omitempty"`
	Commits     []CommitEntry `json:"commits,omitempty"`
	// A poll's ack (the poll_id of the member's last reply received, 0
	// before any) and the poll_id of its reply: positions move past a
	// reply's records only once the next poll acknowledges it.
	Ack    int64 `json:"ack,omitempty"`
	PollID int64 `json:"poll_id,omitempty"`

	// Meta: ObservedBy is the node described.
	ObservedBy int             `json:"observed_by,omitempty"`
	Meta       []MetaPartition `json:"meta,omitempty"`
}

// String is the operation on one line, as anomaly reports list it.
func (o Op) String() string {
	s := fmt.Sprintf("#%d %s %s", o.ID, o.Process, o.Kind)
	switch {
	case o.Kind == KindMeta:
		s += fmt.Sprintf(" %s by node %d", o.Topic, o.ObservedBy)
		for _, p := range o.Meta {
			s += fmt.Sprintf(" [p%d leader %d epoch %d isr %v]", p.Partition, p.Leader, p.LeaderEpoch, p.ISR)
		}
	case o.Topic != "":
		s += fmt.Sprintf(" %s/%d", o.Topic, o.Partition)
	}
	switch o.Kind {
	case KindProduce:
		s += fmt.Sprintf(" acks=%s %v", o.Acks, abbreviate(o.Values))
		if len(o.Offsets) > 0 {
			s += fmt.Sprintf(" -> offsets %d..%d", o.Offsets[0], o.Offsets[len(o.Offsets)-1])
		}
	case KindConsume, KindFinalRead, KindSeek:
		s += fmt.Sprintf(" from %d: %d records, next %d, hw %d", o.Offset, len(o.Records), o.NextOffset, o.HW)
	case KindPoll, KindJoin, KindHeartbeat, KindCommit, KindLeave:
		s += fmt.Sprintf(" group %s member %s gen %d", o.Group, o.MemberID, o.Generation)
		if o.Kind == KindPoll {
			s += fmt.Sprintf(" ack %d poll_id %d: %s", o.Ack, o.PollID, groupRecordsSummary(o.Records))
		}
		if len(o.Commits) > 0 {
			s += fmt.Sprintf(" commits %v", o.Commits)
		}
	}
	s += fmt.Sprintf(" [%s, %.3fs-%.3fs", o.Outcome, o.Invoke.Seconds(), o.Complete.Seconds())
	if o.Node != 0 {
		s += fmt.Sprintf(", node %d", o.Node)
	}
	if o.Error != "" {
		s += ", " + o.Error
	}
	return s + "]"
}

// groupRecordsSummary is a poll's records as "t/0@3..5 t/1@7" (the
// offsets of each partition, first to last, in the order they came).
func groupRecordsSummary(recs []ReadRecord) string {
	if len(recs) == 0 {
		return "no records"
	}
	type span struct{ first, last int64 }
	var order []TP
	spans := map[TP]*span{}
	for _, r := range recs {
		tp := TP{r.Topic, r.Partition}
		if sp, ok := spans[tp]; ok {
			sp.last = r.Offset
			continue
		}
		order = append(order, tp)
		spans[tp] = &span{r.Offset, r.Offset}
	}
	parts := make([]string, 0, len(order))
	for _, tp := range order {
		sp := spans[tp]
		if sp.first == sp.last {
			parts = append(parts, fmt.Sprintf("%s@%d", tp, sp.first))
		} else {
			parts = append(parts, fmt.Sprintf("%s@%d..%d", tp, sp.first, sp.last))
		}
	}
	return strings.Join(parts, " ")
}

func abbreviate(vs []string) string {
	if len(vs) <= 3 {
		return fmt.Sprint(vs)
	}
	return fmt.Sprintf("[%s %s ... %s (%d)]", vs[0], vs[1], vs[len(vs)-1], len(vs))
}

// FaultWindow is one injected fault, from injection to heal.
type FaultWindow struct {
	Kind   string        `json:"kind"`
	Target string        `json:"target"`
	Start  time.Duration `json:"start"`
	End    time.Duration `json:"end"`
}

// Event is something the harness saw happen to the cluster outside the
// client operations: a node exiting by itself, a node not coming back, the
// cluster not settling after healing.
type Event struct {
	At     time.Duration `json:"at"`
	Kind   string        `json:"kind"`
	Node   int           `json:"node,omitempty"`
	Detail string        `json:"detail"`
}

// Event kinds, each reported as the anomaly of the same name (see Check).
const (
	EventNodeCrash   = "node-crash"        // a node exited without being told to
	EventNodeStuck   = "node-not-ready"    // a restarted or resumed node did not become ready
	EventNotSettled  = "not-settled"       // after healing, the cluster did not settle in time
	EventStopFailed  = "stop-failed"       // a clean stop failed (timeout or non-zero exit)
	EventNotFenced   = "not-fenced"        // a killed node was not fenced within a few session timeouts
	EventFinalFailed = "final-read-failed" // the final read could not read a partition up to its HW
	EventHarness     = "harness-error"     // the harness could not do its part (a workload could not start)
	// After healing, a consumer group's members did not receive every
	// record of its topics in time: the group cannot deliver them.
	EventGroupNotDrained = "group-not-drained"
)

// TopicSpec is a topic a run writes to.
type TopicSpec struct {
	Name       string `json:"name"`
	Partitions int    `json:"partitions"`
	RF         int    `json:"replication_factor"`
	MinISR     int    `json:"min_insync_replicas"`
	Acks       string `json:"acks"`
}

// Durable says whether acknowledged acks=all writes to the topic must never
// be lost (DESIGN.md §7.1: RF >= 2, min.insync.replicas >= 2, no unclean
// election, which the harness never enables).
func (t TopicSpec) Durable() bool { return t.RF >= 2 && t.MinISR >= 2 }

// BatchDigest is one stored batch of a replica, by its offsets and the
// SHA-256 of its bytes.
type BatchDigest struct {
	Base   int64  `json:"base"`
	Last   int64  `json:"last"`
	SHA256 string `json:"sha256"`
}

// ReplicaLog is one node's copy of a partition below the final HW, read from
// its data dir after a clean stop.
type ReplicaLog struct {
	Node      int           `json:"node"`
	Topic     string        `json:"topic"`
	Partition int32         `json:"partition"`
	LogStart  int64         `json:"log_start"`
	LogEnd    int64         `json:"log_end"`
	Batches   []BatchDigest `json:"batches"` // those starting below the HW
	Records   []ReadRecord  `json:"records"` // the records below the HW
	Error     string        `json:"error,omitempty"`
}

// FinalPartition is a partition's state after healing: its HW (every
// acknowledged write must be below it) and the replicas read from disk.
type FinalPartition struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	HW        int64        `json:"hw"`
	Complete  bool         `json:"complete"` // the final read reached the HW
	Replicas  []ReplicaLog `json:"replicas,omitempty"`
}

// GroupSpec is a consumer group a run drove: its members subscribed to
// Topics and, once the load stopped and the cluster healed, polled until
// they had received every record of those topics (so every acknowledged
// write must be among the records its members received).
type GroupSpec struct {
	Name       string   `json:"name"`
	Topics     []string `json:"topics"`
	AutoCommit bool     `json:"auto_commit"`
}

// History is everything a run recorded.
type History struct {
	Seed   int64            `json:"seed"`
	Topics []TopicSpec      `json:"topics"`
	Groups []GroupSpec      `json:"groups,omitempty"`
	Ops    []Op             `json:"ops"`
	Faults []FaultWindow    `json:"faults"`
	Events []Event          `json:"events"`
	Final  []FinalPartition `json:"final"`
}

func (h *History) topic(name string) (TopicSpec, bool) {
	for _, t := range h.Topics {
		if t.Name == name {
			return t, true
		}
	}
	return TopicSpec{}, false
}

// WriteFile saves the history as JSON.
func (h *History) WriteFile(path string) error {
	data, err := json.MarshalIndent(h, "", " ")
	if err != nil {
		return fmt.Errorf("encoding the history: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("writing the history: %w", err)
	}
	return nil
}

// Recorder collects a run's history from concurrent workers.
type Recorder struct {
	start time.Time

	mu     sync.Mutex
	ops    []Op
	faults []FaultWindow
	events []Event
}

// NewRecorder starts the clock of a history.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the time since the run started.
func (r *Recorder) Now() time.Duration { return time.Since(r.start) }

// Add records a completed operation and returns its id.
func (r *Recorder) Add(op Op) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.ID = len(r.ops)
	r.ops = append(r.ops, op)
	return op.ID
}

// Fault records a fault window.
func (r *Recorder) Fault(w FaultWindow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, w)
}

// Event records something the harness saw.
func (r *Recorder) Event(kind string, node int, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, Event{At: time.Since(r.start), Kind: kind, Node: node, Detail: fmt.Sprintf(format, args...)})
}

// History returns what was recorded so far.
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	return History{Ops: slices.Clone(r.ops), Faults: slices.Clone(r.faults), Events: slices.Clone(r.events)}
}
