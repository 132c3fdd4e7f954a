package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
)

// The consumer group calls (API.md "Consumer groups"). Retries: reads and
// the calls whose repeat is harmless (heartbeat, seek, leave, commit, a
// reset that does not shift) are retried on connection failures and
// retriable errors; a join of a new member and a shifting reset only when
// the reply shows the coordinator never applied them, since a repeat would
// add a second member or shift twice.

// GroupPollOptions are the query of a group poll; zero fields take the
// server's defaults (500 records, 1 MiB, no wait, auto encoding).
type GroupPollOptions struct {
	Limit    int    // max records
	MaxBytes int    // max bytes of keys and values
	WaitMS   int    // long-poll: wait up to this long for a first record
	Encoding string // EncodingAuto, EncodingText or EncodingBase64
	// Ack is the PollID of the last reply received (0 before any). With it,
	// a reply lost on the way is served again rather than skipped; nil
	// sends none and the server takes the last reply as received.
	Ack *int64
}

func (o GroupPollOptions) query() url.Values {
	q := ConsumeOptions{Limit: o.Limit, MaxBytes: o.MaxBytes, WaitMS: o.WaitMS, Encoding: o.Encoding}.query()
	if o.Ack != nil {
		q.Set("ack", strconv.FormatInt(*o.Ack, 10))
	}
	return q
}

// notApplied reports whether an error reply shows the coordinator did not
// act on the request: it was not (or not yet) the coordinator, or none was
// reachable.
func notApplied(e *APIError) bool {
	switch e.Code {
	case CodeCoordinatorLoadInProgress, CodeCoordinatorNotAvailable, CodeNotCoordinator,
		CodeLeaderNotAvailable, CodeNotLeaderOrFollower:
		return true
	}
	return false
}

// idempotent runs a call whose repeat is harmless, retried like a read.
func (c *Client) idempotent(ctx context.Context, method, path string, in, out any) error {
	cl := &call{method: method, path: path, read: true}
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		cl.body = bytesSource(ContentTypeJSON, data)
	}
	_, err := c.doJSON(ctx, cl, out)
	return err
}

// sendIfNotApplied is a write retried only after replies that show it was
// not applied.
func (c *Client) sendIfNotApplied(ctx context.Context, method, path string, in, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding the request: %w", err)
	}
	cl := &call{method: method, path: path, body: bytesSource(ContentTypeJSON, data), retryOK: notApplied}
	_, err = c.doJSON(ctx, cl, out)
	return err
}

func checkGroup(group string) error {
	if group == "" {
		return errors.New("weir client: empty group name")
	}
	return nil
}

func checkMember(group, member string) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	if member == "" {
		return errors.New("weir client: empty member id")
	}
	return nil
}

// ListGroups returns GET /v1/groups: every group of the cluster.
func (c *Client) ListGroups(ctx context.Context) ([]GroupSummary, error) {
	var out GroupList
	if err := c.get(ctx, v1("groups"), nil, &out); err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out.Groups, nil
}

// DescribeGroup returns GET /v1/groups/{g}: state, members and offsets.
func (c *Client) DescribeGroup(ctx context.Context, group string) (*Group, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	var out Group
	if err := c.get(ctx, v1("groups", group), nil, &out); err != nil {
		return nil, fmt.Errorf("describe group %q: %w", group, err)
	}
	return &out, nil
}

// JoinGroup adds a member to group (POST /v1/groups/{g}/members) and returns
// its id, generation and partitions. A new member (req.MemberID empty) is
// retried only when the reply shows the coordinator did not add it: after
// an unknown outcome a retry could leave a second member behind.
func (c *Client) JoinGroup(ctx context.Context, group string, req JoinGroupRequest) (*MemberAssignment, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	var out MemberAssignment
	var err error
	if req.MemberID != "" { // a known member's join is the same join again
		err = c.idempotent(ctx, http.MethodPost, v1("groups", group, "members"), req, &out)
	} else {
		err = c.sendIfNotApplied(ctx, http.MethodPost, v1("groups", group, "members"), req, &out)
	}
	if err != nil {
		return nil, fmt.Errorf("join group %q: %w", group, err)
	}
	return &out, nil
}

// Heartbeat keeps a member alive and returns its current generation and
// partitions (POST /v1/groups/{g}/members/{m}/heartbeat). A poll counts as
// a heartbeat too.
func (c *Client) Heartbeat(ctx context.Context, group, member string) (*MemberAssignment, error) {
	if err := checkMember(group, member); err != nil {
		return nil, err
	}
	var out MemberAssignment
	if err := c.idempotent(ctx, http.MethodPost, v1("groups", group, "members", member, "heartbeat"), nil, &out); err != nil {
		return nil, fmt.Errorf("heartbeat of %q in group %q: %w", member, group, err)
	}
	return &out, nil
}

// LeaveGroup removes a member (DELETE /v1/groups/{g}/members/{m}); the group
// rebalances at once. UNKNOWN_MEMBER_ID means it was gone already (also
// when a retry follows a leave whose reply was lost).
func (c *Client) LeaveGroup(ctx context.Context, group, member string) error {
	if err := checkMember(group, member); err != nil {
		return err
	}
	if err := c.idempotent(ctx, http.MethodDelete, v1("groups", group, "members", member), nil, nil); err != nil {
		return fmt.Errorf("leave group %q as %q: %w", group, member, err)
	}
	return nil
}

// PollGroup reads records of the member's partitions from its positions
// (GET /v1/groups/{g}/members/{m}/records) and moves the positions past
// them; each record names its topic and partition. It counts as a heartbeat
// and, for an auto-committing member, commits the previous poll's positions.
func (c *Client) PollGroup(ctx context.Context, group, member string, opts GroupPollOptions) (*GroupRecords, error) {
	if err := checkMember(group, member); err != nil {
		return nil, err
	}
	var out GroupRecords
	if err := c.get(ctx, v1("groups", group, "members", member, "records"), opts.query(), &out); err != nil {
		return nil, fmt.Errorf("poll group %q as %q: %w", group, member, err)
	}
	return &out, nil
}

// Seek moves a member's positions (POST /v1/groups/{g}/members/{m}/seek):
// set exactly one of req.Offset, req.Timestamp and req.To.
func (c *Client) Seek(ctx context.Context, group, member string, req SeekRequest) (*SeekResponse, error) {
	if err := checkMember(group, member); err != nil {
		return nil, err
	}
	var out SeekResponse
	if err := c.idempotent(ctx, http.MethodPost, v1("groups", group, "members", member, "seek"), req, &out); err != nil {
		return nil, fmt.Errorf("seek in group %q as %q: %w", group, member, err)
	}
	return &out, nil
}

// CommitOffsets commits offsets for group (POST /v1/groups/{g}/offsets),
// durably. A member commits with its id and generation; a commit without
// them is accepted only while the group has no members.
func (c *Client) CommitOffsets(ctx context.Context, group string, req CommitRequest) (*CommitResponse, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	var out CommitResponse
	if err := c.idempotent(ctx, http.MethodPost, v1("groups", group, "offsets"), req, &out); err != nil {
		return nil, fmt.Errorf("commit offsets of group %q: %w", group, err)
	}
	return &out, nil
}

// GroupOffsets returns GET /v1/groups/{g}/offsets: committed offsets, log
// ends and lag.
func (c *Client) GroupOffsets(ctx context.Context, group string) (*GroupOffsets, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	var out GroupOffsets
	if err := c.get(ctx, v1("groups", group, "offsets"), nil, &out); err != nil {
		return nil, fmt.Errorf("get offsets of group %q: %w", group, err)
	}
	return &out, nil
}

// ResetOffsets moves the committed offsets of a group without members
// (POST /v1/groups/{g}/offsets/reset). Unless req.DryRun is explicitly
// false it only reports what it would do.
func (c *Client) ResetOffsets(ctx context.Context, group string, req ResetOffsetsRequest) (*ResetOffsetsResponse, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	var out ResetOffsetsResponse
	path := v1("groups", group, "offsets", "reset")
	var err error
	if req.To == ResetShift && req.DryRun != nil && !*req.DryRun {
		err = c.sendIfNotApplied(ctx, http.MethodPost, path, req, &out) // a repeat would shift again
	} else {
		err = c.idempotent(ctx, http.MethodPost, path, req, &out)
	}
	if err != nil {
		return nil, fmt.Errorf("reset offsets of group %q: %w", group, err)
	}
	return &out, nil
}

// DeleteGroup drops a group without members and its offsets (DELETE /v1/groups/{g}).
func (c *Client) DeleteGroup(ctx context.Context, group string) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	if _, err := c.send(ctx, http.MethodDelete, v1("groups", group), nil, nil); err != nil {
		return fmt.Errorf("delete group %q: %w", group, err)
	}
	return nil
}

// GroupConsumer reads as one member of a consumer group. It joins on the
// first Poll, and joins again as a new member when the coordinator no longer
// knows it (its session expired, or a new coordinator took over the group
// after a failover). Poll, Commit and Close are for one goroutine at a time;
// the accessors may be called from any.
type GroupConsumer struct {
	c     *Client
	group string
	join  JoinGroupRequest

	mu          sync.Mutex // guards what follows
	opts        GroupPollOptions
	memberID    string
	generation  int32
	assignments []TopicPartition
	// positions: offset after the last record returned per partition, in
	// generation; a new generation starts them afresh (a partition may have
	// moved away and back in between, so older positions may be stale).
	positions map[TopicPartition]int64
	// lastPoll is the poll id of the last reply received (0: none yet).
	lastPoll int64
}

// NewGroupConsumer returns a consumer of group ("" is DefaultGroup) that
// joins with req. req.MemberID, when set, is used for the first join only.
func NewGroupConsumer(c *Client, group string, req JoinGroupRequest) *GroupConsumer {
	if group == "" {
		group = DefaultGroup
	}
	return &GroupConsumer{c: c, group: group, join: req, positions: map[TopicPartition]int64{}}
}

// Group is the consumer's group.
func (g *GroupConsumer) Group() string { return g.group }

// SetPollOptions sets the limit, max bytes and encoding of later polls
// (the wait is Poll's argument).
func (g *GroupConsumer) SetPollOptions(o GroupPollOptions) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opts = o
}

// MemberID is the member id of the last join ("" before the first).
func (g *GroupConsumer) MemberID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.memberID
}

// Generation is the generation of the last reply.
func (g *GroupConsumer) Generation() int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.generation
}

// Assignments are the member's partitions as of the last reply.
func (g *GroupConsumer) Assignments() []TopicPartition {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.assignments)
}

// Poll returns the next records of the member's partitions, waiting up to
// waitMS for a first one. It joins when needed, and retries retriable errors
// with backoff until ctx ends. Each record names its topic and partition.
func (g *GroupConsumer) Poll(ctx context.Context, waitMS int) ([]ConsumedRecord, error) {
	for attempt := 1; ; attempt++ {
		recs, rejoin, err := g.pollOnce(ctx, waitMS)
		if err == nil {
			return recs, nil
		}
		if rejoin && attempt == 1 {
			continue // rejoin at once; a repeat waits like any retry
		}
		// A rebalance fences the member's call; the next poll is in the new generation.
		fenced := IsCode(err, CodeIllegalGeneration) || IsCode(err, CodeRebalanceInProgress)
		if !rejoin && !fenced && !retriable(err) {
			return nil, err
		}
		if werr := g.c.backoff(ctx, attempt); werr != nil {
			return nil, fmt.Errorf("%w (retry abandoned: %w)", err, werr)
		}
	}
}

// pollOnce joins if needed and polls once. rejoin says the member is gone
// and the next attempt joins as a new one.
func (g *GroupConsumer) pollOnce(ctx context.Context, waitMS int) (recs []ConsumedRecord, rejoin bool, err error) {
	g.mu.Lock()
	member, opts := g.memberID, g.opts
	g.mu.Unlock()
	if member == "" {
		if member, err = g.joinGroup(ctx); err != nil {
			return nil, false, err
		}
	}
	g.mu.Lock()
	ack := g.lastPoll
	g.mu.Unlock()
	opts.WaitMS, opts.Ack = waitMS, &ack
	out, err := g.c.PollGroup(ctx, g.group, member, opts)
	if err != nil {
		if IsCode(err, CodeUnknownMemberID) || IsCode(err, CodeGroupIDNotFound) {
			g.forget(member)
			return nil, true, err
		}
		return nil, false, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.memberID != member { // forgotten meanwhile: the state is no longer this member's
		return out.Records, false, nil
	}
	g.setAssignment(out.Generation, out.Assignments)
	g.lastPoll = out.PollID
	for _, r := range out.Records {
		if r.Partition != nil {
			g.positions[TopicPartition{Topic: r.Topic, Partition: *r.Partition}] = r.Offset + 1
		}
	}
	if out.Records == nil {
		out.Records = []ConsumedRecord{}
	}
	return out.Records, false, nil
}

// joinGroup joins as a new member (or as the configured one, the first time).
func (g *GroupConsumer) joinGroup(ctx context.Context) (string, error) {
	req := g.join
	g.join.MemberID = "" // a later join is of a new member: the old id is gone
	// A join whose outcome is unknown (a timeout) is retried by Poll as a
	// new join; the member it may have left behind expires after its
	// session timeout.
	out, err := g.c.JoinGroup(ctx, g.group, req)
	if err != nil {
		return "", err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.memberID, g.lastPoll = out.MemberID, 0
	clear(g.positions)
	g.setAssignment(out.Generation, out.Assignments)
	return out.MemberID, nil
}

// setAssignment records the generation and partitions of a reply; under g.mu.
func (g *GroupConsumer) setAssignment(generation int32, assignments []TopicPartition) {
	if generation != g.generation {
		clear(g.positions)
	}
	g.generation = generation
	g.assignments = slices.Clone(assignments)
}

// forget drops the member after the coordinator said it is gone.
func (g *GroupConsumer) forget(member string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.memberID == member {
		g.memberID, g.assignments = "", nil
		clear(g.positions)
	}
}

// retriable reports whether another attempt may succeed: a retriable error
// reply, or a failure to reach any server.
func retriable(err error) bool {
	var apiErr *APIError
	var local *localError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.As(err, &local):
		return false
	case errors.As(err, &apiErr):
		return apiErr.Retriable
	}
	return true
}

// Commit commits the member's positions (the offset after the last record
// Poll returned, per partition) in the generation they were read in. It is
// for members that do not auto-commit; without positions it does nothing.
// ILLEGAL_GENERATION means the group rebalanced since: the positions are no
// longer the member's to commit.
func (g *GroupConsumer) Commit(ctx context.Context) error {
	g.mu.Lock()
	member, generation := g.memberID, g.generation
	offsets := make([]CommitOffset, 0, len(g.positions))
	for tp, off := range g.positions {
		offsets = append(offsets, CommitOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: off})
	}
	g.mu.Unlock()
	if member == "" || len(offsets) == 0 {
		return nil
	}
	slices.SortFunc(offsets, func(a, b CommitOffset) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	_, err := g.c.CommitOffsets(ctx, g.group, CommitRequest{Offsets: offsets, MemberID: member, Generation: &generation})
	return err
}

// Close leaves the group, after committing the positions when the member
// auto-commits (the server commits a poll's positions only at the next
// poll). A member the coordinator no longer knows has left already.
func (g *GroupConsumer) Close(ctx context.Context) error {
	member := g.MemberID()
	if member == "" {
		return nil
	}
	var commitErr error
	if g.join.AutoCommit == nil || *g.join.AutoCommit {
		commitErr = g.Commit(ctx)
		if IsCode(commitErr, CodeIllegalGeneration) || IsCode(commitErr, CodeUnknownMemberID) ||
			IsCode(commitErr, CodeRebalanceInProgress) || IsCode(commitErr, CodeGroupIDNotFound) {
			commitErr = nil // the positions are not the member's any more: nothing to keep
		}
	}
	leaveErr := g.c.LeaveGroup(ctx, g.group, member)
	if IsCode(leaveErr, CodeUnknownMemberID) || IsCode(leaveErr, CodeGroupIDNotFound) {
		leaveErr = nil
	}
	g.forget(member)
	return errors.Join(commitErr, leaveErr)
}
