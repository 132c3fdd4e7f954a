package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"weir/client"
	"weir/groups"
	httpapi "weir/http"
	"weir/metadata"
)

// Cluster describes the cluster from the local metadata image.
func (n *Node) Cluster(ctx context.Context) (client.Cluster, error) {
	img := n.meta.Image()
	ctrl, _, ok := n.meta.Leader()
	if !ok {
		ctrl = -1
	}
	out := client.Cluster{ClusterID: img.ClusterID, ControllerID: ctrl, Brokers: []client.Broker{}}
	for _, id := range img.SortedBrokerIDs() {
		b := img.Broker(id)
		out.Brokers = append(out.Brokers, client.Broker{ID: b.ID, HTTPAddr: b.HTTPAddr, RaftAddr: b.RaftAddr, Rack: b.Rack,
			State: b.State, Voter: b.Voter, LeaderCount: img.LeaderCount(b.ID), Epoch: b.Epoch})
	}
	return out, nil
}

// Health reports what keeps the cluster from being fully healthy.
func (n *Node) Health(ctx context.Context) (client.Health, error) {
	img := n.meta.Image()
	h := client.Health{Reasons: []string{}, BrokersDown: []int32{}, LeaderlessPartitions: []client.TopicPartition{},
		UnderReplicatedPartitions: []client.TopicPartition{}, UnderMinISRPartitions: []client.TopicPartition{}}
	ctrl, _, ok := n.meta.Leader()
	h.ControllerID = ctrl
	if !ok {
		h.ControllerID = -1
		h.Reasons = append(h.Reasons, "no controller: the Raft group has no leader")
	}
	for _, id := range img.SortedBrokerIDs() {
		if !img.Broker(id).Alive() {
			h.BrokersDown = append(h.BrokersDown, id)
		}
	}
	for _, name := range img.SortedTopicNames() {
		t := img.Topic(name)
		tc, err := n.topicConfig(t)
		if err != nil {
			return h, err
		}
		for _, p := range t.Partitions {
			tp := client.TopicPartition{Topic: name, Partition: p.Partition}
			if p.Leader == metadata.NoLeader {
				h.LeaderlessPartitions = append(h.LeaderlessPartitions, tp)
			}
			if len(p.ISR) < len(p.Replicas) {
				h.UnderReplicatedPartitions = append(h.UnderReplicatedPartitions, tp)
			}
			if len(p.ISR) < int(tc.MinInsyncReplicas) {
				h.UnderMinISRPartitions = append(h.UnderMinISRPartitions, tp)
			}
		}
	}
	if len(h.BrokersDown) > 0 {
		h.Reasons = append(h.Reasons, fmt.Sprintf("%d broker(s) down", len(h.BrokersDown)))
	}
	if len(h.LeaderlessPartitions) > 0 {
		h.Reasons = append(h.Reasons, fmt.Sprintf("%d partition(s) without a leader", len(h.LeaderlessPartitions)))
	}
	if len(h.UnderReplicatedPartitions) > 0 {
		h.Reasons = append(h.Reasons, fmt.Sprintf("%d under-replicated partition(s)", len(h.UnderReplicatedPartitions)))
	}
	if len(h.UnderMinISRPartitions) > 0 {
		h.Reasons = append(h.Reasons, fmt.Sprintf("%d partition(s) below min.insync.replicas", len(h.UnderMinISRPartitions)))
	}
	if !n.Ready() {
		h.Reasons = append(h.Reasons, "this node is not ready yet")
	}
	h.Healthy = len(h.Reasons) == 0
	return h, nil
}

// DeleteBroker removes a node that is gone for good.
func (n *Node) DeleteBroker(ctx context.Context, id int32) error {
	b := n.meta.Image().Broker(id)
	if b == nil {
		return httpapi.Errorf(client.CodeBrokerNotAvailable, "broker %d is not part of the cluster", id)
	}
	if b.Alive() {
		return httpapi.Errorf(client.CodeInvalidRequest, "broker %d is alive; stop it for good before removing it", id)
	}
	if !n.meta.IsLeader() {
		return n.notController()
	}
	return n.meta.UnregisterBroker(ctx, id)
}

// ListTopics lists the topics (internal ones only when asked).
func (n *Node) ListTopics(ctx context.Context, internal bool) (client.TopicList, error) {
	if err := n.loaded(); err != nil {
		return client.TopicList{}, err
	}
	img := n.meta.Image()
	out := client.TopicList{Topics: []client.TopicSummary{}}
	for _, name := range img.SortedTopicNames() {
		t := img.Topic(name)
		if t.Internal && !internal {
			continue
		}
		out.Topics = append(out.Topics, client.TopicSummary{Name: name, Partitions: len(t.Partitions),
			ReplicationFactor: t.ReplicationFactor(), Internal: t.Internal})
	}
	return out, nil
}

// CreateTopic creates a topic with the broker defaults for what the request omits.
func (n *Node) CreateTopic(ctx context.Context, req client.CreateTopicRequest) (client.Topic, error) {
	if !n.meta.IsLeader() {
		return client.Topic{}, n.notController()
	}
	if err := metadata.ValidateTopicName(req.Name); err != nil {
		return client.Topic{}, err
	}
	if req.Name == groups.OffsetsTopic {
		// Created by the cluster itself, compacted and internal: a client's
		// plain topic of that name would hold the groups' offsets.
		return client.Topic{}, httpapi.Errorf(client.CodeInvalidTopic, "topic name %q is reserved for the cluster's internal topic", req.Name)
	}
	for k, v := range req.Configs {
		if err := metadata.ValidateTopicConfig(k, v); err != nil {
			return client.Topic{}, err
		}
	}
	parts, rf := int(n.cfg.NumPartitions), int(n.cfg.DefaultReplicationFactor)
	if req.Partitions != nil {
		parts = *req.Partitions
	}
	if req.ReplicationFactor != nil {
		rf = *req.ReplicationFactor
	}
	if err := n.checkPartitionsPerRequest(parts); err != nil {
		return client.Topic{}, err
	}
	if _, err := n.meta.CreateTopic(ctx, req.Name, parts, rf, req.Configs, false); err != nil {
		return client.Topic{}, err
	}
	n.waitBrokersApplied(ctx)
	n.syncAfterAdmin("create topic", req.Name)
	return n.Topic(ctx, req.Name)
}

// checkPartitionsPerRequest refuses, before anything is written, a call that
// would add more partitions than max_partitions_per_request.
func (n *Node) checkPartitionsPerRequest(added int) error {
	if limit := int(n.cfg.MaxPartitionsPerRequest); added > limit {
		return httpapi.Errorf(client.CodeInvalidPartitions,
			"partitions: %d new partitions in one request is more than max_partitions_per_request (%d)", added, limit)
	}
	return nil
}

// Topic describes a topic with live offsets of the partitions this node leads.
func (n *Node) Topic(ctx context.Context, name string) (client.Topic, error) {
	if err := n.loaded(); err != nil {
		return client.Topic{}, err
	}
	t := n.meta.Image().Topic(name)
	if t == nil {
		return client.Topic{}, httpapi.Errorf(client.CodeUnknownTopicOrPartition, "topic %q does not exist", name)
	}
	tc := metadata.EffectiveConfigs(n.cfg.TopicDefaults(), t.Configs)
	out := client.Topic{Name: t.Name, ID: t.ID, Internal: t.Internal, ReplicationFactor: t.ReplicationFactor(),
		Configs: tc, Partitions: make([]client.PartitionInfo, 0, len(t.Partitions))}
	live, err := n.partitionOffsets(ctx, t, nil)
	if err != nil {
		return client.Topic{}, err
	}
	for _, p := range t.Partitions {
		pi := client.PartitionInfo{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: append([]int32{}, p.Replicas...), ISR: append([]int32{}, p.ISR...),
			LogStartOffset: -1, HighWatermark: -1, LogEndOffset: -1}
		if o, ok := live[p.Partition]; ok {
			pi.LogStartOffset, pi.HighWatermark, pi.LogEndOffset = o.LogStartOffset, o.HighWatermark, o.LogEndOffset
		}
		out.Partitions = append(out.Partitions, pi)
	}
	return out, nil
}

// AlterTopic raises the partition count and/or changes configs.
func (n *Node) AlterTopic(ctx context.Context, name string, req client.AlterTopicRequest) (client.Topic, error) {
	if !n.meta.IsLeader() {
		return client.Topic{}, n.notController()
	}
	t := n.meta.Image().Topic(name)
	if t == nil {
		return client.Topic{}, httpapi.Errorf(client.CodeUnknownTopicOrPartition, "topic %q does not exist", name)
	}
	if t.Internal {
		// More offsets partitions would move groups to other partitions, away
		// from their committed offsets; its configs are the cluster's.
		return client.Topic{}, httpapi.Errorf(client.CodeInvalidTopic, "topic %q is internal: its partitions and configs cannot be altered", name)
	}
	if req.Partitions != nil && *req.Partitions < len(t.Partitions) {
		return client.Topic{}, httpapi.Errorf(client.CodeInvalidPartitions,
			"partitions: topic %q has %d partitions; the count can only grow, got %d", name, len(t.Partitions), *req.Partitions)
	}
	if req.Partitions != nil {
		if err := n.checkPartitionsPerRequest(*req.Partitions - len(t.Partitions)); err != nil {
			return client.Topic{}, err
		}
	}
	set, reset := map[string]string{}, []string{}
	keys := make([]string, 0, len(req.Configs))
	for k := range req.Configs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := req.Configs[k]
		if v == nil {
			if err := metadata.ValidateTopicConfig(k, metadata.KafkaDefaultTopicConfigs()[k]); err != nil {
				return client.Topic{}, err
			}
			reset = append(reset, k)
			continue
		}
		if err := metadata.ValidateTopicConfig(k, *v); err != nil {
			return client.Topic{}, err
		}
		set[k] = *v
	}
	// Configs first: both are checked above, so a refused count cannot leave configs half-applied.
	if len(set) > 0 || len(reset) > 0 {
		if _, err := n.meta.AlterTopicConfigs(ctx, name, set, reset); err != nil {
			return client.Topic{}, err
		}
	}
	if req.Partitions != nil && *req.Partitions > len(t.Partitions) {
		if _, err := n.meta.CreatePartitions(ctx, name, *req.Partitions); err != nil {
			return client.Topic{}, err
		}
	}
	n.waitBrokersApplied(ctx)
	n.syncAfterAdmin("alter topic", name)
	return n.Topic(ctx, name)
}

// DeleteTopic deletes a topic; its logs go with the next metadata sync.
func (n *Node) DeleteTopic(ctx context.Context, name string) error {
	if !n.meta.IsLeader() {
		return n.notController()
	}
	if n.meta.Image().Topic(name) == nil {
		return httpapi.Errorf(client.CodeUnknownTopicOrPartition, "topic %q does not exist", name)
	}
	if err := n.meta.DeleteTopic(ctx, name); err != nil {
		return err
	}
	n.waitBrokersApplied(ctx)
	n.syncAfterAdmin("delete topic", name)
	return nil
}

// topicInfos caches TopicInfo per metadata image: parsing configs on every
// produce showed up in profiles.
type topicInfos struct {
	version uint64
	infos   map[string]httpapi.TopicInfo
}

// TopicInfo is what produce and consume need of a topic.
func (n *Node) TopicInfo(name string) (httpapi.TopicInfo, error) {
	if err := n.loaded(); err != nil {
		return httpapi.TopicInfo{}, err
	}
	img := n.meta.Image()
	cache := n.infoCache.Load()
	if cache == nil || cache.version != img.Version {
		cache = &topicInfos{version: img.Version, infos: make(map[string]httpapi.TopicInfo, len(img.Topics))}
		for tn, t := range img.Topics {
			tc, err := n.topicConfig(t)
			if err != nil {
				return httpapi.TopicInfo{}, err
			}
			cache.infos[tn] = httpapi.TopicInfo{Name: tn, Partitions: len(t.Partitions), MaxMessageBytes: int(tc.MaxMessageBytes), Internal: t.Internal}
		}
		n.infoCache.Store(cache)
	}
	info, ok := cache.infos[name]
	if !ok {
		return httpapi.TopicInfo{}, httpapi.Errorf(client.CodeUnknownTopicOrPartition, "topic %q does not exist", name)
	}
	return info, nil
}

// Partition returns the local leader replica of a partition.
func (n *Node) Partition(topic string, partition int32) (httpapi.Partition, error) {
	if err := n.loaded(); err != nil {
		return nil, err
	}
	t := n.meta.Image().Topic(topic)
	if t == nil {
		return nil, httpapi.Errorf(client.CodeUnknownTopicOrPartition, "topic %q does not exist", topic)
	}
	if partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, httpapi.Errorf(client.CodeUnknownTopicOrPartition, "topic %q has no partition %d (it has %d)", topic, partition, len(t.Partitions))
	}
	mp := t.Partitions[partition]
	p, ok := n.repl.Partition(topic, partition)
	if err := n.offlineError(p, ok, topic, partition, mp.Leader); err != nil {
		return nil, err
	}
	if mp.Leader == metadata.NoLeader {
		return nil, httpapi.Errorf(client.CodeLeaderNotAvailable, "partition %s-%d has no leader right now", topic, partition)
	}
	if mp.Leader != n.cfg.NodeID {
		addr := ""
		if b := n.meta.Image().Broker(mp.Leader); b != nil {
			addr = b.HTTPAddr
		}
		return nil, &httpapi.NotHereError{NodeID: mp.Leader, Addr: addr, What: fmt.Sprintf("the leader of %s-%d", topic, partition)}
	}
	if !ok {
		return nil, httpapi.Errorf(client.CodeLeaderNotAvailable, "partition %s-%d is still opening on this node", topic, partition)
	}
	if leader, _, _, _ := p.State(); !leader {
		return nil, httpapi.Errorf(client.CodeLeaderNotAvailable, "partition %s-%d is becoming leader on this node", topic, partition)
	}
	return p, nil
}

// TopicOffsets reports every partition's offsets, asking each leader.
func (n *Node) TopicOffsets(ctx context.Context, name string, ts *int64) (client.TopicOffsets, error) {
	if err := n.loaded(); err != nil {
		return client.TopicOffsets{}, err
	}
	t := n.meta.Image().Topic(name)
	if t == nil {
		return client.TopicOffsets{}, httpapi.Errorf(client.CodeUnknownTopicOrPartition, "topic %q does not exist", name)
	}
	live, err := n.partitionOffsets(ctx, t, ts)
	if err != nil {
		return client.TopicOffsets{}, err
	}
	out := client.TopicOffsets{Topic: name, Partitions: make([]client.PartitionOffsets, 0, len(t.Partitions))}
	for _, p := range t.Partitions {
		o, ok := live[p.Partition]
		if !ok {
			return out, httpapi.Errorf(client.CodeLeaderNotAvailable, "the leader of %s-%d did not report its offsets; retry", name, p.Partition)
		}
		out.Partitions = append(out.Partitions, o)
	}
	return out, nil
}

// partitionOffsets collects the offsets of a topic's partitions from their
// leaders (this node for its own, one call per other leader). A leader that
// does not answer leaves its partitions out (callers say which); a local
// failure to read them is returned.
func (n *Node) partitionOffsets(ctx context.Context, t *metadata.Topic, ts *int64) (map[int32]client.PartitionOffsets, error) {
	out := map[int32]client.PartitionOffsets{}
	rows, err := n.LocalPartitionOffsets(ctx, t.Name, ts)
	if err != nil {
		return nil, fmt.Errorf("offsets of %s on this node: %w", t.Name, err)
	}
	for _, r := range rows {
		out[r.Partition] = r
	}
	img := n.meta.Image()
	leaders := map[int32]bool{}
	for _, p := range t.Partitions {
		if _, ok := out[p.Partition]; !ok && p.Leader != metadata.NoLeader && p.Leader != n.cfg.NodeID {
			leaders[p.Leader] = true
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id := range leaders {
		b := img.Broker(id)
		if b == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/internal/v1/topics/" + url.PathEscape(t.Name) + "/offsets"
			if ts != nil {
				path += "?timestamp=" + strconv.FormatInt(*ts, 10)
			}
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			var remote []client.PartitionOffsets
			if err := n.peers.call(cctx, http.MethodGet, b.HTTPAddr, path, nil, &remote); err != nil {
				n.logger.Debug("partition offsets from leader failed", "leader", id, "err", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range remote {
				out[r.Partition] = r
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// LocalPartitionOffsets reports the partitions of topic this node leads.
func (n *Node) LocalPartitionOffsets(ctx context.Context, topic string, ts *int64) ([]client.PartitionOffsets, error) {
	t := n.meta.Image().Topic(topic)
	if t == nil {
		return nil, httpapi.Errorf(client.CodeUnknownTopicOrPartition, "topic %q does not exist", topic)
	}
	var rows []client.PartitionOffsets
	for _, mp := range t.Partitions {
		if mp.Leader != n.cfg.NodeID {
			continue
		}
		part, ok := n.repl.Partition(topic, mp.Partition)
		if !ok {
			continue
		}
		if leader, _, _, _ := part.State(); !leader {
			continue
		}
		l := part.Log()
		row := client.PartitionOffsets{Partition: mp.Partition, LogStartOffset: l.LogStartOffset(),
			HighWatermark: part.HighWatermark(), LogEndOffset: l.LogEndOffset()}
		if ts != nil {
			off, at, found, err := l.OffsetForTimestamp(*ts)
			if err != nil {
				return nil, fmt.Errorf("offset for timestamp: %w", err)
			}
			if found && off < row.HighWatermark {
				row.Offset, row.Timestamp = &off, &at
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}
