package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/google/uuid"
)

// The methods below run on the controller (the Raft leader): they validate
// against the leader's image, compute what the FSM needs (ids, replica
// placement) and propose. The FSM validates again, so a stale image can make
// a command fail but never apply a wrong one.

func newUUID() string { return uuid.NewString() }

// leastLoadedStart returns the index, in id order, of the alive broker
// leading the fewest partitions (lowest id on ties), so that successive
// topics start their round-robin on different brokers.
func leastLoadedStart(img *Image, alive []Broker) int {
	best, bestCount := 0, -1
	for i, b := range alive {
		if c := img.LeaderCount(b.ID); bestCount == -1 || c < bestCount {
			best, bestCount = i, c
		}
	}
	return best
}

// CreateTopic creates a topic with `partitions` partitions of replication
// factor rf, placed over the alive brokers. configs are explicit overrides
// (validated; nil for none). Returns the topic as committed.
func (s *Store) CreateTopic(ctx context.Context, name string, partitions, rf int, configs map[string]string, internal bool) (*Topic, error) {
	if err := ValidateTopicName(name); err != nil {
		return nil, err
	}
	if err := ValidateTopicConfigs(configs); err != nil {
		return nil, err
	}
	if partitions < 1 || partitions > MaxPartitionsPerTopic {
		return nil, fmt.Errorf("%w: partitions=%d must be between 1 and %d", ErrInvalidPartitions, partitions, MaxPartitionsPerTopic)
	}
	if rf < 1 {
		return nil, fmt.Errorf("%w: replication_factor=%d must be at least 1", ErrInvalidReplicationFactor, rf)
	}
	if !s.IsLeader() {
		return nil, s.notLeader()
	}
	img := s.Image()
	if img.Topic(name) != nil {
		return nil, fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	alive := img.AliveBrokers()
	assignments, err := PlaceReplicas(alive, partitions, rf, leastLoadedStart(img, alive))
	if err != nil {
		return nil, fmt.Errorf("topic %q: %w", name, err)
	}
	res, err := s.Propose(ctx, CreateTopicCmd{
		Name:        name,
		ID:          newUUID(),
		Internal:    internal,
		Configs:     maps.Clone(configs),
		Assignments: assignments,
	})
	if err != nil {
		return nil, err
	}
	return res.Image.Topic(name), nil
}

// DeleteTopic deletes a topic. The command names the topic's id, so a retry
// never deletes a topic re-created under the same name.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	if !s.IsLeader() {
		return s.notLeader()
	}
	t := s.Image().Topic(name)
	if t == nil {
		return fmt.Errorf("%w: topic %q does not exist", ErrUnknownTopic, name)
	}
	_, err := s.Propose(ctx, DeleteTopicCmd{Name: name, ID: t.ID})
	return err
}

// AlterTopicConfigs sets and resets (to the broker default) topic configs.
func (s *Store) AlterTopicConfigs(ctx context.Context, name string, set map[string]string, reset []string) (*Topic, error) {
	if err := ValidateTopicConfigs(set); err != nil {
		return nil, err
	}
	for _, k := range reset {
		if _, ok := lookupConfigSpec(k); !ok {
			return nil, fmt.Errorf("%w: unknown topic config %q", ErrInvalidConfig, k)
		}
	}
	res, err := s.Propose(ctx, AlterTopicConfigsCmd{Name: name, Set: maps.Clone(set), Reset: reset})
	if err != nil {
		return nil, err
	}
	return res.Image.Topic(name), nil
}

// CreatePartitions raises a topic's partition count to newTotal, placing the
// new partitions over the alive brokers with the topic's replication factor.
// The count never goes down (ErrInvalidPartitions); asking for the current
// count is a no-op, so retries are safe.
func (s *Store) CreatePartitions(ctx context.Context, name string, newTotal int) (*Topic, error) {
	if newTotal > MaxPartitionsPerTopic {
		return nil, fmt.Errorf("%w: partitions=%d is above the maximum %d", ErrInvalidPartitions, newTotal, MaxPartitionsPerTopic)
	}
	// A concurrent increase makes the FSM refuse with ErrStaleEpoch; re-read
	// and try again, which also turns a race to the same count into a no-op.
	for attempt := 0; ; attempt++ {
		if !s.IsLeader() {
			return nil, s.notLeader()
		}
		img := s.Image()
		t := img.Topic(name)
		if t == nil {
			return nil, fmt.Errorf("%w: topic %q does not exist", ErrUnknownTopic, name)
		}
		cur := len(t.Partitions)
		switch {
		case newTotal < cur:
			return nil, fmt.Errorf("%w: topic %q has %d partitions; the count can only be raised, not lowered to %d",
				ErrInvalidPartitions, name, cur, newTotal)
		case newTotal == cur:
			return t, nil
		}
		alive := img.AliveBrokers()
		assignments, err := PlaceReplicas(alive, newTotal-cur, t.ReplicationFactor(), leastLoadedStart(img, alive))
		if err != nil {
			return nil, fmt.Errorf("topic %q: %w", name, err)
		}
		res, err := s.Propose(ctx, CreatePartitionsCmd{Topic: name, FirstPartition: int32(cur), Assignments: assignments})
		if errors.Is(err, ErrStaleEpoch) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return res.Image.Topic(name), nil
	}
}

// RegisterBroker registers (or re-registers) a broker and returns it as
// committed; its Epoch is the registration's Raft index. A new broker starts
// fenced: unfence it (UnfenceBroker) once its image has caught up with Epoch.
func (s *Store) RegisterBroker(ctx context.Context, b Broker) (*Broker, error) {
	if err := checkBroker(b.ID, b.HTTPAddr, b.RaftAddr); err != nil {
		return nil, err
	}
	res, err := s.Propose(ctx, RegisterBrokerCmd{ID: b.ID, HTTPAddr: b.HTTPAddr, RaftAddr: b.RaftAddr, Rack: b.Rack, Incarnation: b.Incarnation})
	if err != nil {
		return nil, err
	}
	return res.Image.Broker(b.ID), nil
}

// CheckRegistration says why RegisterBroker would refuse b right now, as far
// as this node's image tells: a join checks it before it changes the Raft
// configuration, so that a refused join changes nothing.
func (s *Store) CheckRegistration(b Broker) error {
	if err := checkBroker(b.ID, b.HTTPAddr, b.RaftAddr); err != nil {
		return err
	}
	return addrConflict(s.Image(), RegisterBrokerCmd{ID: b.ID, HTTPAddr: b.HTTPAddr, RaftAddr: b.RaftAddr})
}

// FenceBroker fences broker id (epoch 0: whatever its epoch), moving
// leadership and ISR membership away from it.
func (s *Store) FenceBroker(ctx context.Context, id int32, epoch int64) error {
	_, err := s.Propose(ctx, FenceBrokerCmd{ID: id, Epoch: epoch})
	return err
}

// UnregisterBroker removes a broker that is gone for good (see
// UnregisterBrokerCmd) and takes it out of the Raft configuration.
func (s *Store) UnregisterBroker(ctx context.Context, id int32) error {
	if _, err := s.Propose(ctx, UnregisterBrokerCmd{ID: id}); err != nil {
		return err
	}
	if err := s.RemoveServer(ctx, id); err != nil {
		return fmt.Errorf("remove broker %d from raft: %w", id, err)
	}
	return nil
}

// UnfenceBroker marks broker id alive (epoch 0: whatever its epoch).
func (s *Store) UnfenceBroker(ctx context.Context, id int32, epoch int64) error {
	_, err := s.Propose(ctx, UnfenceBrokerCmd{ID: id, Epoch: epoch})
	return err
}

// OfflineReplicas records that broker id, in its epoch, lost its replicas of
// partitions (their logs went offline), which moves their leadership and ISR
// membership away until the broker registers anew (see OfflineReplicasCmd).
func (s *Store) OfflineReplicas(ctx context.Context, id int32, epoch int64, partitions []TopicPartition) error {
	_, err := s.Propose(ctx, OfflineReplicasCmd{ID: id, Epoch: epoch, Partitions: partitions})
	return err
}

// AlterPartition applies a leader/ISR change guarded by the expected epochs
// and returns the partition as committed.
func (s *Store) AlterPartition(ctx context.Context, cmd AlterPartitionCmd) (*Partition, error) {
	res, err := s.Propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return res.Image.Partition(cmd.Topic, cmd.Partition), nil
}
