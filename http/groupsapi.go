package httpapi

import (
	"context"

	"weir/client"
)

// Groups is the node's consumer group service as the API sees it. Every
// group call may answer *NotHereError (the coordinator is another node: the
// request is forwarded there) or a 503 COORDINATOR_LOAD_IN_PROGRESS.
type Groups interface {
	// ListGroups lists the groups of every coordinator in the cluster.
	ListGroups(ctx context.Context) (client.GroupList, error)
	DescribeGroup(ctx context.Context, group string) (client.Group, error)
	// JoinGroup adds a member; host is the client's address as this node saw it.
	JoinGroup(ctx context.Context, group string, req client.JoinGroupRequest, host string) (client.MemberAssignment, error)
	Heartbeat(ctx context.Context, group, member string) (client.MemberAssignment, error)
	LeaveGroup(ctx context.Context, group, member string) error
	// PollStart begins a member's poll: it counts as a heartbeat, settles
	// the previous poll (ack is the poll_id of the last reply the member
	// received, or -1 when it does not say: then the previous reply counts
	// as received), commits the acknowledged positions when the member
	// auto-commits, and returns the member's positions (committed offset,
	// else its auto_offset_reset resolved against the log) in its current
	// generation.
	PollStart(ctx context.Context, group, member string, ack int64) (GroupPoll, error)
	// PollDone records where the member's positions go once it has the
	// reply, and returns the reply's poll_id. Positions of partitions the
	// member no longer holds in that generation are ignored.
	PollDone(ctx context.Context, group, member string, generation int32, next []client.GroupPosition) (int64, error)
	Seek(ctx context.Context, group, member string, req client.SeekRequest) (client.SeekResponse, error)
	CommitOffsets(ctx context.Context, group string, req client.CommitRequest) (client.CommitResponse, error)
	GroupOffsets(ctx context.Context, group string) (client.GroupOffsets, error)
	ResetOffsets(ctx context.Context, group string, req client.ResetOffsetsRequest) (client.ResetOffsetsResponse, error)
	DeleteGroup(ctx context.Context, group string) error
}

// GroupPoll is where a member's poll reads from.
type GroupPoll struct {
	MemberID    string
	Generation  int32
	Assignments []client.TopicPartition
	Positions   []client.GroupPosition
	// AutoOffsetReset is the member's policy ("earliest" or "latest") for
	// a position that fell out of the log (retention passed it).
	AutoOffsetReset string
}
