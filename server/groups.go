package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"weir/client"
	"weir/fetch"
	"weir/groups"
	httpapi "weir/http"
	"weir/logstore"
	"weir/metadata"
	"weir/replication"
)

// The consumer group side of a node: routing group calls to their
// coordinator, the offsets topic, and the coordinator's view of the node.

// groupsAPI serves the API's group calls (httpapi.Groups).
type groupsAPI struct{ n *Node }

// groupsEnv gives the coordinator the node's replicas and metadata.
type groupsEnv struct{ n *Node }

// offsetsReplica returns the local replica of offsets partition p while it
// leads in epoch.
func (e groupsEnv) offsetsReplica(p, epoch int32) (*replication.Partition, error) {
	part, ok := e.n.repl.Partition(groups.OffsetsTopic, p)
	if !ok {
		return nil, fmt.Errorf("%w: offsets partition %d is not open here", groups.ErrNotCoordinator, p)
	}
	if leader, e, _, _ := part.State(); !leader || e != epoch {
		return nil, fmt.Errorf("%w: not the leader of offsets partition %d in epoch %d", groups.ErrNotCoordinator, p, epoch)
	}
	return part, nil
}

// LoadOffsets replays offsets partition p once its HW covers every record
// of earlier leaders (the start of this leader's epoch): what lies below is
// committed, and nothing above it can be from anyone else.
func (e groupsEnv) LoadOffsets(ctx context.Context, p, epoch int32, fn func(key, value []byte)) error {
	var part *replication.Partition
	for {
		var err error
		if part, err = e.offsetsReplica(p, epoch); err != nil {
			return err
		}
		changed := part.Changed()
		if part.HighWatermark() >= part.LeaderEpochStartOffset() {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(time.Second): // re-check the leadership
		}
	}
	hw := part.HighWatermark()
	for off := part.Log().LogStartOffset(); off < hw; {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := fetch.Records(part, off, fetch.Limits{MaxBytes: 1 << 20}, func(r logstore.Record) error {
			if r.Offset < hw {
				fn(r.Key, r.Value)
			}
			return nil
		})
		if err != nil {
			var oor *logstore.OutOfRangeError
			if errors.As(err, &oor) && off < oor.LogStartOffset { // retention or compaction moved the start
				off = oor.LogStartOffset
				continue
			}
			return fmt.Errorf("read offsets partition %d at %d: %w", p, off, err)
		}
		if res.Next <= off {
			break
		}
		off = res.Next
	}
	return nil
}

// AppendOffsets writes records to offsets partition p (acks=all) in epoch.
func (e groupsEnv) AppendOffsets(ctx context.Context, p, epoch int32, recs []groups.KV) error {
	part, err := e.offsetsReplica(p, epoch)
	if err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	lr := make([]logstore.Record, len(recs))
	for i, r := range recs {
		lr[i] = logstore.Record{Timestamp: now, Key: r.Key, Value: r.Value}
	}
	batch, err := part.Log().Codecs().EncodeBatch(nil, lr, logstore.BatchOptions{})
	if err != nil {
		return fmt.Errorf("encode offsets batch: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(e.n.cfg.RequestTimeoutMs)*time.Millisecond)
	defer cancel()
	if _, err := part.AppendInEpoch(ctx, batch, replication.AcksAll, epoch); err != nil {
		if logstore.IsDiskFault(err) {
			return fmt.Errorf("%w: %w", groups.ErrDiskRefused, err)
		}
		return err
	}
	return nil
}

// HandOver asks the controller to make another alive in-sync replica the
// leader of offsets partition p (the first in replica order) and to take
// this node out of its ISR, which it rejoins once it has caught up again.
func (e groupsEnv) HandOver(ctx context.Context, p, epoch int32) (int32, error) {
	n := e.n
	img := n.meta.Image()
	mp := img.Partition(groups.OffsetsTopic, p)
	if mp == nil || mp.Leader != n.cfg.NodeID || mp.LeaderEpoch != epoch {
		return 0, fmt.Errorf("offsets partition %d is no longer led here in epoch %d", p, epoch)
	}
	to := metadata.NoLeader
	for _, id := range mp.Replicas {
		if id != n.cfg.NodeID && mp.InISR(id) && img.Broker(id).CanServe(groups.OffsetsTopic, p) {
			to = id
			break
		}
	}
	if to == metadata.NoLeader {
		return 0, fmt.Errorf("offsets partition %d has no other alive in-sync replica (isr %v)", p, mp.ISR)
	}
	isr := slices.DeleteFunc(slices.Clone(mp.ISR), func(id int32) bool {
		return id == n.cfg.NodeID || !img.Broker(id).CanServe(groups.OffsetsTopic, p)
	})
	cctx, cancel := context.WithTimeout(ctx, time.Duration(n.cfg.RequestTimeoutMs)*time.Millisecond)
	defer cancel()
	_, err := toController(cctx, n, "/alter-partition", n.AlterPartition, httpapi.AlterPartitionRequest{Topic: groups.OffsetsTopic,
		Partition: p, Leader: to, LeaderEpoch: epoch, PartitionEpoch: mp.PartitionEpoch, ISR: isr})
	if err != nil {
		return 0, fmt.Errorf("moving offsets partition %d to broker %d: %w", p, to, err)
	}
	return to, nil
}

// PartitionCounts reads the topics' partition counts from the metadata.
func (e groupsEnv) PartitionCounts(topics []string) map[string]int32 {
	img := e.n.meta.Image()
	out := make(map[string]int32, len(topics))
	for _, name := range topics {
		if t := img.Topic(name); t != nil && !t.Internal {
			out[name] = int32(len(t.Partitions))
		}
	}
	return out
}

// TopicOffsets asks the partitions' leaders for their bounds.
func (e groupsEnv) TopicOffsets(ctx context.Context, topic string, ts *int64) (map[int32]groups.PartitionOffsets, error) {
	t := e.n.meta.Image().Topic(topic)
	if t == nil {
		return nil, fmt.Errorf("%w: topic %q does not exist", groups.ErrUnknownTopicOrPartition, topic)
	}
	live, err := e.n.partitionOffsets(ctx, t, ts)
	if err != nil {
		return nil, err
	}
	out := map[int32]groups.PartitionOffsets{}
	for p, o := range live {
		out[p] = groups.PartitionOffsets{LogStart: o.LogStartOffset, HighWatermark: o.HighWatermark, ForTimestamp: o.Offset}
	}
	return out, nil
}

// syncCoordinator tells the coordinator which offsets partitions this node
// leads, after the replicas took the image.
func (n *Node) syncCoordinator(img *metadata.Image) {
	if n.coord == nil {
		return
	}
	t := img.Topic(groups.OffsetsTopic)
	if t == nil {
		n.coord.Sync(0, nil)
		return
	}
	led := map[int32]int32{}
	for _, p := range t.Partitions {
		if p.Leader == n.cfg.NodeID {
			led[p.Partition] = p.LeaderEpoch
		}
	}
	n.coord.Sync(int32(len(t.Partitions)), led)
	n.coord.TopicsChanged()
}

// CreateOffsetsTopic creates __consumer_offsets: compacted, RF min(3,
// brokers), min.insync.replicas min(2, RF); controller only.
func (n *Node) CreateOffsetsTopic(ctx context.Context, _ httpapi.OffsetsTopicRequest) (httpapi.OffsetsTopicResponse, error) {
	if !n.meta.IsLeader() {
		return httpapi.OffsetsTopicResponse{}, n.notController()
	}
	n.offsetsTopicMu.Lock()
	defer n.offsetsTopicMu.Unlock()
	if t := n.meta.Image().Topic(groups.OffsetsTopic); t != nil {
		return httpapi.OffsetsTopicResponse{Partitions: len(t.Partitions)}, nil
	}
	rf := min(3, len(n.meta.Image().AliveBrokers()))
	if rf < 1 {
		return httpapi.OffsetsTopicResponse{}, httpapi.Errorf(client.CodeCoordinatorNotAvailable, "no broker is alive to hold the offsets topic; retry")
	}
	configs := map[string]string{
		"cleanup.policy":      "compact",
		"min.insync.replicas": strconv.Itoa(min(2, rf)),
		"segment.bytes":       strconv.FormatInt(n.cfg.GroupsOffsetsSegmentBytes, 10), // compaction only cleans closed segments
	}
	t, err := n.meta.CreateTopic(ctx, groups.OffsetsTopic, int(n.cfg.GroupsOffsetsPartitions), rf, configs, true)
	if errors.Is(err, metadata.ErrTopicExists) {
		err = nil
		t = n.meta.Image().Topic(groups.OffsetsTopic)
	}
	if err != nil || t == nil {
		return httpapi.OffsetsTopicResponse{}, err
	}
	n.logger.Info("created the offsets topic", "partitions", len(t.Partitions), "replication_factor", rf)
	return httpapi.OffsetsTopicResponse{Partitions: len(t.Partitions)}, nil
}

// coordinatorOf routes a group call: nil if this node coordinates group,
// a *NotHereError naming the coordinator, or a retriable error. The offsets
// topic is created on first use.
func (n *Node) coordinatorOf(ctx context.Context, group string) error {
	if err := n.loaded(); err != nil {
		return err
	}
	if err := groups.ValidateGroupName(group); err != nil {
		return err
	}
	img := n.meta.Image()
	t := img.Topic(groups.OffsetsTopic)
	if t == nil {
		if _, err := toController(ctx, n, "/offsets-topic", n.CreateOffsetsTopic, httpapi.OffsetsTopicRequest{}); err != nil {
			return httpapi.Errorf(client.CodeCoordinatorNotAvailable, "creating the offsets topic: %v; retry", err)
		}
		// Wait (briefly) for the new topic's leaders to reach this node's metadata.
		deadline := time.Now().Add(5 * time.Second)
		for t == nil || t.Partitions[0].Leader == metadata.NoLeader {
			changed := n.meta.Changed()
			if t = n.meta.Image().Topic(groups.OffsetsTopic); t != nil && t.Partitions[0].Leader != metadata.NoLeader {
				break
			}
			if time.Now().After(deadline) {
				return httpapi.Errorf(client.CodeCoordinatorNotAvailable, "the offsets topic is being created; retry")
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
			case <-time.After(100 * time.Millisecond):
			}
		}
		img = n.meta.Image()
	}
	p := groups.OffsetsPartition(group, len(t.Partitions))
	mp := t.Partitions[p]
	switch {
	case mp.Leader == metadata.NoLeader:
		return httpapi.Errorf(client.CodeCoordinatorNotAvailable, "offsets partition %d of group %q has no leader right now; retry", p, group)
	case mp.Leader != n.cfg.NodeID:
		addr := ""
		if b := img.Broker(mp.Leader); b != nil {
			addr = b.HTTPAddr
		}
		return &httpapi.NotHereError{NodeID: mp.Leader, Addr: addr, What: fmt.Sprintf("the coordinator of group %q", group)}
	}
	return nil
}

// groupCall routes a call to the group's coordinator and runs it here if
// this node is that coordinator. A coordinator that has just taken over
// finishes loading (briefly) before answering rather than bouncing the call.
func groupCall[T any](ctx context.Context, n *Node, group string, fn func() (T, error)) (T, error) {
	var zero T
	if err := n.coordinatorOf(ctx, group); err != nil {
		return zero, err
	}
	if n.coord.Partition(group) < 0 {
		// The offsets topic is new: hand it to the coordinator now.
		if err := n.syncNow(); err != nil {
			n.logger.Debug("applying the metadata before a group call failed", "group", group, "err", err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	n.coord.WaitLoaded(wctx, group)
	cancel()
	v, err := fn()
	return v, err
}

// ListGroups lists the groups of every coordinator (nodes that do not answer are left out).
func (g groupsAPI) ListGroups(ctx context.Context) (client.GroupList, error) {
	n := g.n
	if err := n.loaded(); err != nil {
		return client.GroupList{}, err
	}
	out := client.GroupList{Groups: []client.GroupSummary{}}
	local, err := n.LocalGroups(ctx)
	if err != nil {
		return client.GroupList{}, fmt.Errorf("groups coordinated here: %w", err)
	}
	out.Groups = append(out.Groups, local...)
	img := n.meta.Image()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range img.AliveBrokers() {
		if b.ID == n.cfg.NodeID || b.HTTPAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			var rows []client.GroupSummary
			if err := n.peers.call(cctx, http.MethodGet, b.HTTPAddr, "/internal/v1/groups", nil, &rows); err != nil {
				n.logger.Debug("listing groups of a broker failed", "broker", b.ID, "err", err)
				return
			}
			mu.Lock()
			out.Groups = append(out.Groups, rows...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(out.Groups, func(a, b client.GroupSummary) int {
		switch {
		case a.Group < b.Group:
			return -1
		case a.Group > b.Group:
			return 1
		}
		return int(a.Coordinator - b.Coordinator)
	})
	// A group briefly listed by two nodes during a leadership move: keep one.
	out.Groups = slices.CompactFunc(out.Groups, func(a, b client.GroupSummary) bool { return a.Group == b.Group })
	return out, nil
}

// LocalGroups lists the groups this node coordinates.
func (n *Node) LocalGroups(ctx context.Context) ([]client.GroupSummary, error) {
	if n.coord == nil {
		return []client.GroupSummary{}, nil
	}
	return n.coord.List(ctx), nil
}

// DescribeGroup is GET /v1/groups/{g}.
func (g groupsAPI) DescribeGroup(ctx context.Context, group string) (client.Group, error) {
	n := g.n
	return groupCall(ctx, n, group, func() (client.Group, error) { return n.coord.Describe(ctx, group) })
}

// JoinGroup adds a member.
func (g groupsAPI) JoinGroup(ctx context.Context, group string, req client.JoinGroupRequest, host string) (client.MemberAssignment, error) {
	n := g.n
	return groupCall(ctx, n, group, func() (client.MemberAssignment, error) { return n.coord.Join(ctx, group, req, host) })
}

// Heartbeat keeps a member alive.
func (g groupsAPI) Heartbeat(ctx context.Context, group, member string) (client.MemberAssignment, error) {
	n := g.n
	return groupCall(ctx, n, group, func() (client.MemberAssignment, error) { return n.coord.Heartbeat(ctx, group, member) })
}

// LeaveGroup removes a member.
func (g groupsAPI) LeaveGroup(ctx context.Context, group, member string) error {
	n := g.n
	_, err := groupCall(ctx, n, group, func() (struct{}, error) { return struct{}{}, n.coord.Leave(ctx, group, member) })
	return err
}

// PollStart begins a member's poll.
func (g groupsAPI) PollStart(ctx context.Context, group, member string, ack int64) (httpapi.GroupPoll, error) {
	n := g.n
	return groupCall(ctx, n, group, func() (httpapi.GroupPoll, error) {
		p, err := n.coord.PollStart(ctx, group, member, ack)
		return httpapi.GroupPoll{MemberID: p.MemberID, Generation: p.Generation, Assignments: p.Assignments,
			Positions: p.Positions, AutoOffsetReset: p.AutoOffsetReset}, err
	})
}

// PollDone moves a member's positions past what its poll returned.
func (g groupsAPI) PollDone(ctx context.Context, group, member string, generation int32, next []client.GroupPosition) (int64, error) {
	n := g.n
	return groupCall(ctx, n, group, func() (int64, error) {
		return n.coord.PollDone(ctx, group, member, generation, next)
	})
}

// Seek moves a member's positions.
func (g groupsAPI) Seek(ctx context.Context, group, member string, req client.SeekRequest) (client.SeekResponse, error) {
	n := g.n
	return groupCall(ctx, n, group, func() (client.SeekResponse, error) { return n.coord.Seek(ctx, group, member, req) })
}

// CommitOffsets commits offsets durably.
func (g groupsAPI) CommitOffsets(ctx context.Context, group string, req client.CommitRequest) (client.CommitResponse, error) {
	n := g.n
	return groupCall(ctx, n, group, func() (client.CommitResponse, error) { return n.coord.Commit(ctx, group, req) })
}

// GroupOffsets lists committed offsets with log end and lag.
func (g groupsAPI) GroupOffsets(ctx context.Context, group string) (client.GroupOffsets, error) {
	n := g.n
	return groupCall(ctx, n, group, func() (client.GroupOffsets, error) { return n.coord.Offsets(ctx, group) })
}

// ResetOffsets resets an empty group's offsets.
func (g groupsAPI) ResetOffsets(ctx context.Context, group string, req client.ResetOffsetsRequest) (client.ResetOffsetsResponse, error) {
	n := g.n
	return groupCall(ctx, n, group, func() (client.ResetOffsetsResponse, error) { return n.coord.ResetOffsets(ctx, group, req) })
}

// DeleteGroup deletes an empty group and its offsets.
func (g groupsAPI) DeleteGroup(ctx context.Context, group string) error {
	n := g.n
	_, err := groupCall(ctx, n, group, func() (struct{}, error) { return struct{}{}, n.coord.Delete(ctx, group) })
	return err
}
