package server

import (
	"slices"
	"testing"
	"time"

	"weir/metadata"
)

func testImage(brokers []metadata.Broker, topics ...*metadata.Topic) *metadata.Image {
	img := &metadata.Image{Brokers: map[int32]*metadata.Broker{}, Topics: map[string]*metadata.Topic{}}
	for i := range brokers {
		img.Brokers[brokers[i].ID] = &brokers[i]
	}
	for _, t := range topics {
		img.Topics[t.Name] = t
	}
	return img
}

func TestFencingDecisions(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	session := 2500 * time.Millisecond
	alive := func(id int32, epoch int64) metadata.Broker {
		return metadata.Broker{ID: id, State: metadata.BrokerAlive, Epoch: epoch}
	}
	fenced := func(id int32, epoch int64) metadata.Broker {
		return metadata.Broker{ID: id, State: metadata.BrokerFenced, Epoch: epoch}
	}
	type want struct {
		id    int32
		fence bool
	}
	cases := []struct {
		name    string
		brokers []metadata.Broker
		view    brokerView
		now     time.Time
		want    []want
	}{
		{name: "all heard within the session: nothing to do",
			brokers: []metadata.Broker{alive(1, 5), alive(2, 6)},
			view:    brokerView{since: t0, lastSeen: map[int32]time.Time{1: t0.Add(time.Second), 2: t0.Add(2 * time.Second)}},
			now:     t0.Add(3 * time.Second)},
		{name: "a silent alive broker is fenced",
			brokers: []metadata.Broker{alive(1, 5), alive(2, 6)},
			view:    brokerView{since: t0, lastSeen: map[int32]time.Time{1: t0.Add(3 * time.Second), 2: t0}},
			now:     t0.Add(3 * time.Second),
			want:    []want{{2, true}}},
		{name: "a new controller gives a never-heard broker a full session from its start",
			brokers: []metadata.Broker{alive(1, 5), alive(2, 6)},
			view:    brokerView{since: t0, lastSeen: map[int32]time.Time{1: t0}},
			now:     t0.Add(session)},
		{name: "and fences it after that",
			brokers: []metadata.Broker{alive(1, 5), alive(2, 6)},
			view:    brokerView{since: t0, lastSeen: map[int32]time.Time{1: t0.Add(3 * time.Second)}},
			now:     t0.Add(session + time.Millisecond),
			want:    []want{{2, true}}},
		{name: "a fenced broker that heartbeats and caught up with its registration is unfenced",
			brokers: []metadata.Broker{alive(1, 5), fenced(3, 40)},
			view: brokerView{since: t0, lastSeen: map[int32]time.Time{1: t0, 3: t0},
				applied: map[int32]uint64{3: 40}},
			now:  t0.Add(time.Second),
			want: []want{{3, false}}},
		{name: "not before it applied its own registration",
			brokers: []metadata.Broker{fenced(3, 40)},
			view: brokerView{since: t0, lastSeen: map[int32]time.Time{3: t0},
				applied: map[int32]uint64{3: 39}},
			now: t0.Add(time.Second)},
		{name: "not while it is stopping",
			brokers: []metadata.Broker{fenced(3, 40)},
			view: brokerView{since: t0, lastSeen: map[int32]time.Time{3: t0},
				applied: map[int32]uint64{3: 41}, stopping: map[int32]bool{3: true}},
			now: t0.Add(time.Second)},
		{name: "not when never heard from this controller",
			brokers: []metadata.Broker{fenced(3, 40)},
			view:    brokerView{since: t0, applied: map[int32]uint64{3: 41}},
			now:     t0.Add(time.Second)},
		{name: "not when silent",
			brokers: []metadata.Broker{fenced(3, 40)},
			view: brokerView{since: t0, lastSeen: map[int32]time.Time{3: t0},
				applied: map[int32]uint64{3: 41}},
			now: t0.Add(session + time.Second)},
		{name: "decisions come in broker id order",
			brokers: []metadata.Broker{alive(3, 1), fenced(1, 2), alive(2, 3)},
			view: brokerView{since: t0, lastSeen: map[int32]time.Time{1: t0.Add(9 * time.Second)},
				applied: map[int32]uint64{1: 2}},
			now:  t0.Add(10 * time.Second),
			want: []want{{1, false}, {2, true}, {3, true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := testImage(c.brokers)
			got := fencingDecisions(img, c.view, c.now, session)
			var ids []want
			for _, a := range got {
				ids = append(ids, want{a.id, a.fence})
				if a.epoch != img.Broker(a.id).Epoch || a.reason == "" {
					t.Errorf("action %+v: wrong epoch or no reason", a)
				}
			}
			if !slices.Equal(ids, c.want) {
				t.Fatalf("decisions %v, want %v", ids, c.want)
			}
		})
	}
}

func TestPreferredLeaderMoves(t *testing.T) {
	brokers := []metadata.Broker{
		{ID: 1, State: metadata.BrokerAlive}, {ID: 2, State: metadata.BrokerAlive},
		{ID: 3, State: metadata.BrokerFenced}, {ID: 4, State: metadata.BrokerAlive},
		{ID: 5, State: metadata.BrokerAlive, OfflineReplicas: []metadata.TopicPartition{{Topic: "t", Partition: 7}}},
	}
	part := func(p int32, replicas []int32, leader int32, isr []int32) metadata.Partition {
		return metadata.Partition{Topic: "t", Partition: p, Replicas: replicas, Leader: leader, LeaderEpoch: 7 + p,
			ISR: isr, PartitionEpoch: 20 + p}
	}
	topic := &metadata.Topic{Name: "t", Partitions: []metadata.Partition{
		part(0, []int32{1, 2}, 1, []int32{1, 2}),    // already led by its preferred replica
		part(1, []int32{1, 2}, 2, []int32{1, 2}),    // moves back to 1
		part(2, []int32{1, 2}, 2, []int32{2}),       // 1 is not in sync
		part(3, []int32{3, 2}, 2, []int32{2, 3}),    // 3 is fenced
		part(4, []int32{4, 2}, 2, []int32{2, 4}),    // 4 is stopping
		part(5, []int32{2, 1}, -1, []int32{2}),      // leaderless; 2 is alive and in sync
		part(6, []int32{1, 2}, 2, []int32{2, 1, 4}), // moves back to 1, ISR kept
		part(7, []int32{5, 2}, 2, []int32{2, 5}),    // 5's replica of t-7 is offline
		part(8, []int32{5, 2}, 2, []int32{2, 5}),    // 5's replica of t-8 is fine: moves back
	}}
	other := &metadata.Topic{Name: "a", Partitions: []metadata.Partition{
		{Topic: "a", Partition: 0, Replicas: []int32{2, 1}, Leader: 1, ISR: []int32{1, 2}}}}
	got := preferredLeaderMoves(testImage(brokers, topic, other), map[int32]bool{4: true})
	type move struct {
		topic     string
		partition int32
		leader    int32
	}
	var moves []move
	for _, m := range got {
		moves = append(moves, move{m.Topic, m.Partition, m.Leader})
		p := testImage(brokers, topic, other).Partition(m.Topic, m.Partition)
		if m.ExpectedLeaderEpoch != p.LeaderEpoch || m.ExpectedPartitionEpoch != p.PartitionEpoch || !slices.Equal(m.ISR, p.ISR) {
			t.Errorf("move %+v does not carry the partition's epochs and ISR", m)
		}
	}
	want := []move{{"a", 0, 2}, {"t", 1, 1}, {"t", 5, 2}, {"t", 6, 1}, {"t", 8, 5}}
	if !slices.Equal(moves, want) {
		t.Fatalf("moves %v, want %v", moves, want)
	}
}
