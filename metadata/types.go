package metadata

import (
	"slices"
	"sort"
)

// Broker states.
const (
	BrokerAlive  = "alive"
	BrokerFenced = "fenced"
)

// NoLeader is the Partition.Leader value of a partition without a leader.
const NoLeader int32 = -1

// Broker is one registered node.
type Broker struct {
	ID       int32  `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	Rack     string `json:"rack,omitempty"`
	// State is BrokerAlive or BrokerFenced. A new registration starts fenced;
	// the controller unfences it once it has caught up with the metadata.
	State string `json:"state"`
	// Epoch is the Raft index of the broker's registration; it changes when
	// the broker registers as a new incarnation (a restarted process) or with
	// different addresses or rack.
	Epoch int64 `json:"epoch"`
	// Incarnation identifies the broker process that registered (a new one
	// per start), so a restart is told from a repeated registration.
	Incarnation string `json:"incarnation,omitempty"`
	// Voter reports whether the node is a Raft voter (from the last applied
	// Raft configuration).
	Voter bool `json:"voter"`
	// OfflineReplicas are the replicas whose logs this incarnation reported
	// offline (a failed fsync or rename), sorted: they may not lead or join
	// an ISR until the broker registers anew (a restart recovers them).
	OfflineReplicas []TopicPartition `json:"offline_replicas,omitempty"`
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// Alive reports whether the broker is registered and not fenced.
func (b *Broker) Alive() bool { return b != nil && b.State == BrokerAlive }

// ReplicaOffline reports whether the broker reported its replica of the partition offline.
func (b *Broker) ReplicaOffline(topic string, partition int32) bool {
	return b != nil && slices.Contains(b.OfflineReplicas, TopicPartition{topic, partition})
}

// CanServe reports whether the broker may lead or be in the ISR of the
// partition: it is alive and its replica is not offline.
func (b *Broker) CanServe(topic string, partition int32) bool {
	return b.Alive() && !b.ReplicaOffline(topic, partition)
}

// Partition is one partition's replica set and leadership.
type Partition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Replicas in preferred order; the first is the preferred leader.
	Replicas []int32 `json:"replicas"`
	// Leader is a broker id or NoLeader.
	Leader int32 `json:"leader"`
	// LeaderEpoch is bumped on every leader change.
	LeaderEpoch int32 `json:"leader_epoch"`
	// ISR is never empty; it contains the leader when there is one.
	ISR []int32 `json:"isr"`
	// PartitionEpoch is bumped on every change of the partition.
	PartitionEpoch int32 `json:"partition_epoch"`
}

// InISR reports whether broker id is in the partition's ISR.
func (p *Partition) InISR(id int32) bool { return slices.Contains(p.ISR, id) }

// IsReplica reports whether broker id holds a replica of the partition.
func (p *Partition) IsReplica(id int32) bool { return slices.Contains(p.Replicas, id) }

// Topic is a topic and its partitions.
type Topic struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Internal bool   `json:"internal"`
	// Configs holds the explicit overrides only; see EffectiveConfigs.
	Configs    map[string]string `json:"configs"`
	Partitions []Partition       `json:"partitions"`
}

// ReplicationFactor is the number of replicas of the topic's partitions.
func (t *Topic) ReplicationFactor() int {
	if len(t.Partitions) == 0 {
		return 0
	}
	return len(t.Partitions[0].Replicas)
}

// Member is a server of the Raft configuration.
type Member struct {
	ID       int32  `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
}

// Image is the whole metadata state as of one applied Raft entry.
//
// An Image is immutable once published: the FSM never changes a published
// image but builds the next one copy-on-write (unchanged topics and brokers
// are shared between images). Callers must not mutate an Image or anything
// reachable from it (maps, slices, *Topic, *Broker); copy what you need to
// change.
type Image struct {
	ClusterID string            `json:"cluster_id"`
	Brokers   map[int32]*Broker `json:"brokers"`
	Topics    map[string]*Topic `json:"topics"`
	// Members is the Raft configuration as of Version (nil before the first
	// configuration entry was applied).
	Members []Member `json:"members"`
	// Version is the index of the last Raft entry applied (a command or a
	// configuration change).
	Version uint64 `json:"version"`
}

func emptyImage() *Image {
	return &Image{Brokers: map[int32]*Broker{}, Topics: map[string]*Topic{}}
}

// Topic returns the named topic, or nil.
func (img *Image) Topic(name string) *Topic {
	return img.Topics[name]
}

// Partition returns the partition, or nil when the topic or partition does
// not exist.
func (img *Image) Partition(topic string, partition int32) *Partition {
	t := img.Topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return nil
	}
	return &t.Partitions[partition]
}

// Broker returns the broker with that id, or nil.
func (img *Image) Broker(id int32) *Broker {
	return img.Brokers[id]
}

// SortedTopicNames returns the names of all topics in ascending order.
func (img *Image) SortedTopicNames() []string {
	names := make([]string, 0, len(img.Topics))
	for name := range img.Topics {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// SortedBrokerIDs returns the ids of all registered brokers in ascending order.
func (img *Image) SortedBrokerIDs() []int32 {
	ids := make([]int32, 0, len(img.Brokers))
	for id := range img.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// AliveBrokers returns copies of the unfenced brokers, ordered by id.
func (img *Image) AliveBrokers() []Broker {
	var out []Broker
	for _, id := range img.SortedBrokerIDs() {
		if b := img.Brokers[id]; b.Alive() {
			out = append(out, *b)
		}
	}
	return out
}

// LeaderCount returns how many partitions broker id leads.
func (img *Image) LeaderCount(brokerID int32) int {
	n := 0
	for _, t := range img.Topics {
		for i := range t.Partitions {
			if t.Partitions[i].Leader == brokerID {
				n++
			}
		}
	}
	return n
}

// cloneTopic copies t deeply enough to be mutated: the Configs map and the
// Partitions slice are new; the per-partition Replicas/ISR slices are shared
// and must be replaced, never modified in place.
func cloneTopic(t *Topic) *Topic {
	c := *t
	c.Configs = make(map[string]string, len(t.Configs))
	for k, v := range t.Configs {
		c.Configs[k] = v
	}
	c.Partitions = slices.Clone(t.Partitions)
	return &c
}
