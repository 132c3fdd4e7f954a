package metadata

import (
	"slices"
	"testing"
)

// A broker that reports a replica offline leaves that partition's ISR and
// leadership (a new leader comes from the remaining ISR; the ISR is never
// emptied, leader -1 when it was the last member), and cannot come back
// until it registers a new incarnation.
func TestOfflineReplicas(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(3)
	tf.createTopic("t", []int32{1, 2, 3}, []int32{2, 1, 3}, []int32{3, 2, 1})
	tf.createTopic("solo", []int32{1})
	img := tf.f.Image()
	epoch := img.Broker(1).Epoch

	tf.mustFail(OfflineReplicasCmd{ID: 1, Partitions: []TopicPartition{{"t", 0}}}, ErrInvalidRequest)
	tf.mustFail(OfflineReplicasCmd{ID: 1, Epoch: epoch + 1, Partitions: []TopicPartition{{"t", 0}}}, ErrStaleEpoch)
	tf.mustFail(OfflineReplicasCmd{ID: 9, Epoch: 1, Partitions: []TopicPartition{{"t", 0}}}, ErrUnknownBroker)

	before := img.Partition("t", 0)
	img = tf.mustApply(OfflineReplicasCmd{ID: 1, Epoch: epoch, Partitions: []TopicPartition{
		{"t", 0}, {"t", 1}, {"solo", 0}, {"t", 0}, // a repeat is harmless
		{"gone", 0}, {"t", 9}, // no such partition: skipped
	}})
	p := img.Partition("t", 0)
	if p.Leader != 2 || !slices.Equal(p.ISR, []int32{2, 3}) || p.LeaderEpoch != before.LeaderEpoch+1 {
		t.Fatalf("t-0 led by the offline replica: %+v, want leader 2 (next in the ISR), isr [2 3], a new leader epoch", p)
	}
	if p := img.Partition("t", 1); p.Leader != 2 || !slices.Equal(p.ISR, []int32{2, 3}) {
		t.Fatalf("t-1 followed by the offline replica: %+v, want leader 2 kept, isr [2 3]", p)
	}
	if p := img.Partition("t", 2); !slices.Equal(p.ISR, []int32{3, 2, 1}) || p.Leader != 3 {
		t.Fatalf("t-2 was not reported and must not change: %+v", p)
	}
	if p := img.Partition("solo", 0); p.Leader != NoLeader || !slices.Equal(p.ISR, []int32{1}) {
		t.Fatalf("solo-0, whose only replica went offline: %+v, want no leader and the ISR kept", p)
	}
	want := []TopicPartition{{"solo", 0}, {"t", 0}, {"t", 1}}
	if b := img.Broker(1); !slices.Equal(b.OfflineReplicas, want) || !b.Alive() {
		t.Fatalf("broker 1: %+v, want alive with offline replicas %v", b, want)
	}
	checkInvariants(t, img)

	// The replica cannot come back while this incarnation lives: not by
	// the leader's ISR expansion, not as leader, not by an unfence.
	p = img.Partition("t", 0)
	tf.mustFail(AlterPartitionCmd{Topic: "t", Partition: 0, Leader: 2, ISR: []int32{2, 3, 1},
		ExpectedLeaderEpoch: p.LeaderEpoch, ExpectedPartitionEpoch: p.PartitionEpoch}, ErrInvalidRequest)
	s := img.Partition("solo", 0)
	tf.mustFail(AlterPartitionCmd{Topic: "solo", Partition: 0, Leader: 1, ISR: []int32{1},
		ExpectedLeaderEpoch: s.LeaderEpoch, ExpectedPartitionEpoch: s.PartitionEpoch}, ErrFencedBroker)
	tf.mustApply(FenceBrokerCmd{ID: 1})
	img = tf.mustApply(UnfenceBrokerCmd{ID: 1})
	if p := img.Partition("solo", 0); p.Leader != NoLeader {
		t.Fatalf("unfencing the same incarnation elected its offline replica: %+v", p)
	}
	// Re-registering the same incarnation (new address) keeps them offline.
	b := img.Broker(1)
	img = tf.mustApply(RegisterBrokerCmd{ID: 1, HTTPAddr: "h1:81", RaftAddr: b.RaftAddr, Incarnation: b.Incarnation})
	if !slices.Equal(img.Broker(1).OfflineReplicas, want) {
		t.Fatalf("the same incarnation re-registered: offline replicas %v, want %v", img.Broker(1).OfflineReplicas, want)
	}

	// A restart registers a new incarnation, which recovered its logs.
	img = tf.mustApply(RegisterBrokerCmd{ID: 1, HTTPAddr: "h1:81", RaftAddr: b.RaftAddr, Incarnation: "restarted"})
	if got := img.Broker(1).OfflineReplicas; got != nil {
		t.Fatalf("new incarnation still has offline replicas %v", got)
	}
	img = tf.mustApply(UnfenceBrokerCmd{ID: 1})
	if p := img.Partition("solo", 0); p.Leader != 1 {
		t.Fatalf("solo-0 after the restart: %+v, want broker 1 leading again", p)
	}
	p = img.Partition("t", 0)
	img = tf.mustApply(AlterPartitionCmd{Topic: "t", Partition: 0, Leader: 2, ISR: []int32{2, 3, 1},
		ExpectedLeaderEpoch: p.LeaderEpoch, ExpectedPartitionEpoch: p.PartitionEpoch})
	checkInvariants(t, img)
}

// Deleting a topic forgets its offline replicas: a topic created under the
// same name later has fresh logs.
func TestOfflineReplicasGoWithTheirTopic(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(2)
	tf.createTopic("t", []int32{1, 2})
	tf.createTopic("u", []int32{1, 2})
	epoch := tf.f.Image().Broker(1).Epoch
	tf.mustApply(OfflineReplicasCmd{ID: 1, Epoch: epoch, Partitions: []TopicPartition{{"t", 0}, {"u", 0}}})
	img := tf.mustApply(DeleteTopicCmd{Name: "t"})
	if got := img.Broker(1).OfflineReplicas; !slices.Equal(got, []TopicPartition{{"u", 0}}) {
		t.Fatalf("offline replicas after deleting t: %v, want only u-0", got)
	}
	img = tf.mustApply(DeleteTopicCmd{Name: "u"})
	if got := img.Broker(1).OfflineReplicas; got != nil {
		t.Fatalf("offline replicas after deleting both: %v", got)
	}
	tf.createTopic("t", []int32{1, 2})
	checkInvariants(t, tf.f.Image())
}
