package client

// The consumer group part of the REST contract (API.md "Consumer groups").

// DefaultGroup is the group of calls that name none, as Kafka's console consumer does.
const DefaultGroup = "test-consumer-group"

// GroupSummary is one row of GET /v1/groups.
type GroupSummary struct {
	Group       string `json:"group"`
	State       string `json:"state"`
	Members     int    `json:"members"`
	Coordinator int32  `json:"coordinator"`
	// TotalLag sums the lag of the partitions with a committed offset.
	TotalLag int64 `json:"total_lag"`
}

// GroupList is GET /v1/groups.
type GroupList struct {
	Groups []GroupSummary `json:"groups"`
}

// GroupMember is one member of a group.
type GroupMember struct {
	MemberID         string           `json:"member_id"`
	ClientID         string           `json:"client_id"`
	Host             string           `json:"host"`
	Topics           []string         `json:"topics"`
	SessionTimeoutMS int64            `json:"session_timeout_ms"`
	AutoOffsetReset  string           `json:"auto_offset_reset"`
	AutoCommit       bool             `json:"auto_commit"`
	Assignments      []TopicPartition `json:"assignments"`
}

// GroupOffset is one partition of a group: its committed offset (nil when
// none), the partition's log end as consumers see it (the high watermark),
// the lag (nil without a committed offset) and the member holding it ("" if none).
type GroupOffset struct {
	Topic           string `json:"topic"`
	Partition       int32  `json:"partition"`
	CommittedOffset *int64 `json:"committed_offset"`
	LogEndOffset    int64  `json:"log_end_offset"`
	Lag             *int64 `json:"lag"`
	MemberID        string `json:"member_id"`
	Metadata        string `json:"metadata,omitempty"`
}

// Group is GET /v1/groups/{g}.
type Group struct {
	Group       string        `json:"group"`
	State       string        `json:"state"` // Empty | Stable | PreparingRebalance | Dead
	Generation  int32         `json:"generation"`
	Coordinator int32         `json:"coordinator"`
	Assignor    string        `json:"assignor"`
	Members     []GroupMember `json:"members"`
	Offsets     []GroupOffset `json:"offsets"`
}

// JoinGroupRequest is POST /v1/groups/{g}/members. Omitted fields take the
// defaults: session 30 s, auto_offset_reset latest, auto_commit true, range.
// MemberID re-joins as a known member (to change its subscription); a new
// member leaves it empty and gets one.
type JoinGroupRequest struct {
	MemberID         string   `json:"member_id,omitempty"`
	Topics           []string `json:"topics"`
	ClientID         string   `json:"client_id,omitempty"`
	SessionTimeoutMS *int64   `json:"session_timeout_ms,omitempty"`
	AutoOffsetReset  string   `json:"auto_offset_reset,omitempty"`
	AutoCommit       *bool    `json:"auto_commit,omitempty"`
	Assignor         string   `json:"assignor,omitempty"`
}

// MemberAssignment is the reply to a join (201) and to a heartbeat: the
// member's generation and partitions, and the group's state.
type MemberAssignment struct {
	MemberID    string           `json:"member_id"`
	Generation  int32            `json:"generation"`
	State       string           `json:"state"`
	Assignments []TopicPartition `json:"assignments"`
}

// GroupRecords is GET /v1/groups/{g}/members/{m}/records: records of the
// member's partitions (each names its topic and partition), read in the
// generation the reply names.
type GroupRecords struct {
	MemberID   string `json:"member_id"`
	Generation int32  `json:"generation"`
	// PollID names this reply; the member's next poll passes it as ack so
	// that a reply lost on the way is served again instead of skipped.
	PollID      int64            `json:"poll_id"`
	Assignments []TopicPartition `json:"assignments"`
	Records     []ConsumedRecord `json:"records"`
}

// SeekRequest is POST /v1/groups/{g}/members/{m}/seek: exactly one of
// Offset, Timestamp (ms) and To ("earliest" | "latest"). Without Partition
// it moves every partition of Topic the member holds; without Topic, all.
type SeekRequest struct {
	Topic     string `json:"topic,omitempty"`
	Partition *int32 `json:"partition,omitempty"`
	Offset    *int64 `json:"offset,omitempty"`
	Timestamp *int64 `json:"timestamp,omitempty"`
	To        string `json:"to,omitempty"`
}

// GroupPosition is a member's next offset in one partition.
type GroupPosition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// SeekResponse lists the positions a seek set.
type SeekResponse struct {
	Positions []GroupPosition `json:"positions"`
}

// CommitOffset is one partition of a commit.
type CommitOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Metadata  string `json:"metadata,omitempty"`
}

// CommitRequest is POST /v1/groups/{g}/offsets. MemberID and Generation may
// be omitted only while the group has no members (a standalone commit).
type CommitRequest struct {
	Offsets    []CommitOffset `json:"offsets"`
	MemberID   string         `json:"member_id,omitempty"`
	Generation *int32         `json:"generation,omitempty"`
}

// CommitResponse echoes what was committed (durably, acks=all).
type CommitResponse struct {
	Offsets []CommitOffset `json:"offsets"`
}

// GroupOffsets is GET /v1/groups/{g}/offsets.
type GroupOffsets struct {
	Group   string        `json:"group"`
	Offsets []GroupOffset `json:"offsets"`
}

// Reset targets of POST /v1/groups/{g}/offsets/reset.
const (
	ResetToEarliest  = "earliest"
	ResetToLatest    = "latest"
	ResetToOffset    = "offset"
	ResetToTimestamp = "timestamp"
	ResetShift       = "shift"
)

// ResetOffsetsRequest is POST /v1/groups/{g}/offsets/reset. Without
// Partitions, every partition of Topic. Value is the offset, the timestamp
// (ms) or the shift. DryRun defaults to true: nothing changes unless it is
// explicitly false.
type ResetOffsetsRequest struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions,omitempty"`
	To         string  `json:"to"`
	Value      *int64  `json:"value,omitempty"`
	DryRun     *bool   `json:"dry_run,omitempty"`
}

// ResetOffsetRow is one partition of a reset: the committed offset before
// (nil when none) and the one after (or that would be, in a dry run).
type ResetOffsetRow struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	OldOffset *int64 `json:"old_offset"`
	NewOffset int64  `json:"new_offset"`
}

// ResetOffsetsResponse is the reply to a reset.
type ResetOffsetsResponse struct {
	Group   string           `json:"group"`
	DryRun  bool             `json:"dry_run"`
	Offsets []ResetOffsetRow `json:"offsets"`
}
