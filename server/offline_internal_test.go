package server

import (
	"slices"
	"testing"

	"weir/client"
	"weir/metadata"
)

// The controller commits only what the metadata does not show yet, and
// nothing a report of an earlier incarnation says.
func TestOfflineToCommit(t *testing.T) {
	img := &metadata.Image{
		Brokers: map[int32]*metadata.Broker{
			1: {ID: 1, State: metadata.BrokerAlive, Epoch: 7, OfflineReplicas: []metadata.TopicPartition{{Topic: "t", Partition: 1}, {Topic: "t", Partition: 2}}},
		},
		Topics: map[string]*metadata.Topic{"t": {Name: "t", Partitions: []metadata.Partition{
			{Topic: "t", Partition: 0, Replicas: []int32{1, 2}, Leader: 2, ISR: []int32{1, 2}}, // not recorded yet
			{Topic: "t", Partition: 1, Replicas: []int32{1, 2}, Leader: 2, ISR: []int32{2}},    // done
			{Topic: "t", Partition: 2, Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}}, // recorded, still leading
			{Topic: "t", Partition: 3, Replicas: []int32{2, 3}, Leader: 2, ISR: []int32{2, 3}}, // not a replica
			{Topic: "t", Partition: 4, Replicas: []int32{1}, Leader: -1, ISR: []int32{1}},      // last member, leaderless
		}}},
	}
	img.Brokers[1].OfflineReplicas = append(img.Brokers[1].OfflineReplicas, metadata.TopicPartition{Topic: "t", Partition: 4})
	parts := []client.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}, {Topic: "t", Partition: 2},
		{Topic: "t", Partition: 3}, {Topic: "t", Partition: 4}, {Topic: "gone", Partition: 0}}
	got := offlineToCommit(img, 1, offlineReport{epoch: 7, parts: parts})
	want := []metadata.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 2}}
	if !slices.Equal(got, want) {
		t.Fatalf("to commit: %v, want %v", got, want)
	}
	if got := offlineToCommit(img, 1, offlineReport{epoch: 6, parts: parts}); got != nil {
		t.Fatalf("a report of an earlier incarnation: %v, want nothing", got)
	}
	if got := offlineToCommit(img, 9, offlineReport{epoch: 7, parts: parts}); got != nil {
		t.Fatalf("an unknown broker: %v, want nothing", got)
	}
}
