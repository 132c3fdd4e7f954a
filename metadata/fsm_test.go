package metadata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// testFSM applies commands at increasing indexes.
type testFSM struct {
	t     *testing.T
	f     *FSM
	index uint64
}

func newTestFSM(t *testing.T) *testFSM {
	return &testFSM{t: t, f: NewFSM(nil)}
}

func (tf *testFSM) apply(cmd Command) (*Image, error) {
	tf.t.Helper()
	data, err := EncodeCommand(cmd)
	if err != nil {
		tf.t.Fatalf("encode %T: %v", cmd, err)
	}
	tf.index++
	res := tf.f.Apply(&raft.Log{Index: tf.index, Type: raft.LogCommand, Data: data}).(*ApplyResult)
	if res.Image != tf.f.Image() {
		tf.t.Fatalf("apply returned an image that is not the published one")
	}
	if res.Image.Version != tf.index {
		tf.t.Fatalf("image version %d, want %d", res.Image.Version, tf.index)
	}
	return res.Image, res.Err
}

func (tf *testFSM) mustApply(cmd Command) *Image {
	tf.t.Helper()
	img, err := tf.apply(cmd)
	if err != nil {
		tf.t.Fatalf("apply %s: %v", cmd.CommandType(), err)
	}
	return img
}

func (tf *testFSM) mustFail(cmd Command, want error) {
	tf.t.Helper()
	before := tf.f.Image()
	img, err := tf.apply(cmd)
	if !errors.Is(err, want) {
		tf.t.Fatalf("apply %s %+v: error %v, want %v", cmd.CommandType(), cmd, err, want)
	}
	after := *img
	after.Version = before.Version
	if !reflect.DeepEqual(&after, before) {
		tf.t.Fatalf("refused %s changed the image", cmd.CommandType())
	}
}

// aliveBrokers registers and unfences brokers 1..n (racks optional).
func (tf *testFSM) aliveBrokers(n int) {
	tf.t.Helper()
	for id := int32(1); id <= int32(n); id++ {
		tf.mustApply(RegisterBrokerCmd{ID: id, HTTPAddr: fmt.Sprintf("h%d:80", id), RaftAddr: fmt.Sprintf("h%d:90", id)})
		tf.mustApply(UnfenceBrokerCmd{ID: id})
	}
}

func (tf *testFSM) createTopic(name string, assignments ...[]int32) *Topic {
	tf.t.Helper()
	img := tf.mustApply(CreateTopicCmd{Name: name, ID: uuid.NewString(), Assignments: assignments})
	return img.Topic(name)
}

func TestInitCluster(t *testing.T) {
	tf := newTestFSM(t)
	tf.mustFail(InitClusterCmd{}, ErrInvalidRequest)
	if img := tf.mustApply(InitClusterCmd{ClusterID: "c1"}); img.ClusterID != "c1" {
		t.Fatalf("cluster id %q", img.ClusterID)
	}
	if img := tf.mustApply(InitClusterCmd{ClusterID: "c2"}); img.ClusterID != "c1" {
		t.Fatalf("second init_cluster changed the id to %q", img.ClusterID)
	}
}

func TestRegisterBroker(t *testing.T) {
	tf := newTestFSM(t)
	img := tf.mustApply(RegisterBrokerCmd{ID: 1, HTTPAddr: "a:1", RaftAddr: "a:2", Rack: "r1"})
	b := img.Broker(1)
	want := &Broker{ID: 1, HTTPAddr: "a:1", RaftAddr: "a:2", Rack: "r1", State: BrokerFenced, Epoch: 1}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("broker %+v, want %+v", b, want)
	}
	tf.mustApply(UnfenceBrokerCmd{ID: 1, Epoch: 1})

	// Same addresses: idempotent, epoch and state kept.
	img = tf.mustApply(RegisterBrokerCmd{ID: 1, HTTPAddr: "a:1", RaftAddr: "a:2", Rack: "r1"})
	if b := img.Broker(1); b.Epoch != 1 || b.State != BrokerAlive {
		t.Fatalf("re-registration changed the broker: %+v", b)
	}
	// New address: new epoch, fenced.
	img = tf.mustApply(RegisterBrokerCmd{ID: 1, HTTPAddr: "a:3", RaftAddr: "a:2", Rack: "r1"})
	if b := img.Broker(1); b.Epoch != int64(img.Version) || b.State != BrokerFenced || b.HTTPAddr != "a:3" {
		t.Fatalf("re-registration with a new address: %+v", b)
	}

	tf.mustFail(RegisterBrokerCmd{ID: -1, HTTPAddr: "x:1", RaftAddr: "x:2"}, ErrInvalidRequest)
	tf.mustFail(RegisterBrokerCmd{ID: 2, RaftAddr: "x:2"}, ErrInvalidRequest)
	tf.mustFail(RegisterBrokerCmd{ID: 2, HTTPAddr: "x:1"}, ErrInvalidRequest)

	// An address in use by an alive broker is refused; by a fenced one it is not.
	tf.mustApply(RegisterBrokerCmd{ID: 2, HTTPAddr: "b:1", RaftAddr: "b:2"})
	tf.mustApply(UnfenceBrokerCmd{ID: 2})
	tf.mustFail(RegisterBrokerCmd{ID: 3, HTTPAddr: "b:1", RaftAddr: "c:2"}, ErrInvalidRequest)
	tf.mustFail(RegisterBrokerCmd{ID: 3, HTTPAddr: "c:1", RaftAddr: "b:2"}, ErrInvalidRequest)
	tf.mustApply(RegisterBrokerCmd{ID: 3, HTTPAddr: "a:3", RaftAddr: "a:2"}) // broker 1 is fenced
}

func TestRegisterNewIncarnationLeavesPartitions(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(3)
	tf.createTopic("t", []int32{1, 2, 3})
	img := tf.mustApply(RegisterBrokerCmd{ID: 1, HTTPAddr: "new:80", RaftAddr: "h1:90"})
	p := img.Partition("t", 0)
	if p.Leader != 2 || !slices.Equal(p.ISR, []int32{2, 3}) || p.LeaderEpoch != 1 || p.PartitionEpoch != 1 {
		t.Fatalf("partition after re-registration: %+v", p)
	}
}

// A restarted process (same addresses, new incarnation) may have lost a torn
// or unflushed log tail: it must not stay leader or in an ISR, where its
// shorter log would make followers truncate acknowledged records. The same
// incarnation registering again changes nothing.
func TestRegisterRestartedIncarnationLeavesPartitions(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(3)
	tf.createTopic("t", []int32{2, 1, 3})
	b := tf.f.Image().Broker(2)
	same := RegisterBrokerCmd{ID: 2, HTTPAddr: b.HTTPAddr, RaftAddr: b.RaftAddr, Rack: b.Rack, Incarnation: b.Incarnation}
	if img := tf.mustApply(same); img.Broker(2).Epoch != b.Epoch || img.Partition("t", 0).Leader != 2 {
		t.Fatalf("the same incarnation registering again changed the broker: %+v", img.Broker(2))
	}
	restarted := same
	restarted.Incarnation = "another-process"
	img := tf.mustApply(restarted)
	p := img.Partition("t", 0)
	if img.Broker(2).Epoch == b.Epoch || img.Broker(2).State != BrokerFenced || img.Broker(2).Incarnation != "another-process" {
		t.Fatalf("restarted broker: %+v", img.Broker(2))
	}
	if p.Leader == 2 || slices.Contains(p.ISR, 2) || p.LeaderEpoch != 1 {
		t.Fatalf("partition after a restart of its leader: %+v", p)
	}
}

func TestFenceAndUnfence(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(3)
	tf.createTopic("t", []int32{1, 2, 3}, []int32{2, 3, 1})

	tf.mustFail(FenceBrokerCmd{ID: 9}, ErrUnknownBroker)
	tf.mustFail(FenceBrokerCmd{ID: 1, Epoch: 99}, ErrStaleEpoch)

	img := tf.mustApply(FenceBrokerCmd{ID: 1, Epoch: tf.f.Image().Broker(1).Epoch})
	if img.Broker(1).State != BrokerFenced {
		t.Fatal("broker 1 not fenced")
	}
	p0, p1 := img.Partition("t", 0), img.Partition("t", 1)
	if p0.Leader != 2 || !slices.Equal(p0.ISR, []int32{2, 3}) || p0.LeaderEpoch != 1 || p0.PartitionEpoch != 1 {
		t.Fatalf("p0 after fencing its leader: %+v", p0)
	}
	if p1.Leader != 2 || !slices.Equal(p1.ISR, []int32{2, 3}) || p1.LeaderEpoch != 0 || p1.PartitionEpoch != 1 {
		t.Fatalf("p1 after fencing a follower: %+v", p1)
	}

	// Fencing again changes nothing.
	again := tf.mustApply(FenceBrokerCmd{ID: 1})
	if !reflect.DeepEqual(again.Topics, img.Topics) {
		t.Fatal("fencing a fenced broker changed partitions")
	}

	tf.mustApply(FenceBrokerCmd{ID: 2})
	img = tf.mustApply(FenceBrokerCmd{ID: 3})
	p0 = img.Partition("t", 0)
	// The ISR is never emptied: the last member stays, with no leader.
	if p0.Leader != NoLeader || !slices.Equal(p0.ISR, []int32{3}) {
		t.Fatalf("p0 with all brokers fenced: %+v", p0)
	}
	if img.LeaderCount(3) != 0 {
		t.Fatalf("fenced broker still leads")
	}

	// Broker 1 is not in the ISR: unfencing it elects nobody (clean election).
	img = tf.mustApply(UnfenceBrokerCmd{ID: 1})
	if p := img.Partition("t", 0); p.Leader != NoLeader {
		t.Fatalf("unclean election without the config: %+v", p)
	}
	// The last ISR member comes back and leads again.
	before := img.Partition("t", 0).LeaderEpoch
	img = tf.mustApply(UnfenceBrokerCmd{ID: 3})
	if p := img.Partition("t", 0); p.Leader != 3 || p.LeaderEpoch != before+1 {
		t.Fatalf("after unfencing the last ISR member: %+v", p)
	}
	tf.mustFail(UnfenceBrokerCmd{ID: 7}, ErrUnknownBroker)
	tf.mustFail(UnfenceBrokerCmd{ID: 2, Epoch: 1234}, ErrStaleEpoch)
}

func TestUncleanElection(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(2)
	tf.mustApply(CreateTopicCmd{Name: "u", ID: uuid.NewString(), Assignments: [][]int32{{1, 2}},
		Configs: map[string]string{ConfigUncleanLeaderElectionEnable: "true"}})
	tf.mustApply(AlterPartitionCmd{Topic: "u", Partition: 0, Leader: 1, ISR: []int32{1}})
	tf.mustApply(FenceBrokerCmd{ID: 1})
	p := tf.f.Image().Partition("u", 0)
	if p.Leader != 2 || !slices.Equal(p.ISR, []int32{2}) {
		t.Fatalf("unclean election: %+v", p)
	}
}

func TestCreateTopic(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(3)
	id := uuid.NewString()
	img := tf.mustApply(CreateTopicCmd{Name: "orders", ID: id, Configs: map[string]string{"retention.ms": "1000"},
		Assignments: [][]int32{{1, 2}, {2, 3}, {3, 1}}})
	tp := img.Topic("orders")
	if tp.ID != id || tp.Internal || tp.Configs["retention.ms"] != "1000" || len(tp.Partitions) != 3 || tp.ReplicationFactor() != 2 {
		t.Fatalf("topic %+v", tp)
	}
	for i, p := range tp.Partitions {
		if p.Topic != "orders" || p.Partition != int32(i) || p.Leader != p.Replicas[0] || !slices.Equal(p.ISR, p.Replicas) ||
			p.LeaderEpoch != 0 || p.PartitionEpoch != 0 {
			t.Fatalf("partition %d: %+v", i, p)
		}
	}
	tf.mustApply(RegisterBrokerCmd{ID: 4, HTTPAddr: "h4:80", RaftAddr: "h4:90"}) // fenced

	for _, tc := range []struct {
		cmd  CreateTopicCmd
		want error
	}{
		{CreateTopicCmd{Name: "orders", ID: uuid.NewString(), Assignments: [][]int32{{1}}}, ErrTopicExists},
		{CreateTopicCmd{Name: "bad/name", ID: uuid.NewString(), Assignments: [][]int32{{1}}}, ErrInvalidTopic},
		{CreateTopicCmd{Name: "..", ID: uuid.NewString(), Assignments: [][]int32{{1}}}, ErrInvalidTopic},
		{CreateTopicCmd{Name: "x", ID: "not-a-uuid", Assignments: [][]int32{{1}}}, ErrInvalidRequest},
		{CreateTopicCmd{Name: "x", ID: uuid.NewString(), Assignments: [][]int32{{1}}, Configs: map[string]string{"retention.ms": "-2"}}, ErrInvalidConfig},
		{CreateTopicCmd{Name: "x", ID: uuid.NewString(), Assignments: [][]int32{{1}}, Configs: map[string]string{"nope": "1"}}, ErrInvalidConfig},
		{CreateTopicCmd{Name: "x", ID: uuid.NewString()}, ErrInvalidPartitions},
		{CreateTopicCmd{Name: "x", ID: uuid.NewString(), Assignments: [][]int32{{}}}, ErrInvalidReplicationFactor},
		{CreateTopicCmd{Name: "x", ID: uuid.NewString(), Assignments: [][]int32{{1, 2}, {3}}}, ErrInvalidReplicationFactor},
		{CreateTopicCmd{Name: "x", ID: uuid.NewString(), Assignments: [][]int32{{1, 1}}}, ErrInvalidReplicationFactor},
		{CreateTopicCmd{Name: "x", ID: uuid.NewString(), Assignments: [][]int32{{1, 9}}}, ErrUnknownBroker},
		{CreateTopicCmd{Name: "x", ID: uuid.NewString(), Assignments: [][]int32{{1, 4}}}, ErrFencedBroker},
		{CreateTopicCmd{Name: "x", ID: uuid.NewString(), Assignments: make([][]int32, MaxPartitionsPerTopic+1)}, ErrInvalidPartitions},
	} {
		tf.mustFail(tc.cmd, tc.want)
	}
}

func TestDeleteTopic(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(1)
	tp := tf.createTopic("a", []int32{1})
	tf.mustApply(CreateTopicCmd{Name: "__consumer_offsets", ID: uuid.NewString(), Internal: true, Assignments: [][]int32{{1}}})
	tf.mustFail(DeleteTopicCmd{Name: "missing"}, ErrUnknownTopic)
	tf.mustFail(DeleteTopicCmd{Name: "a", ID: uuid.NewString()}, ErrUnknownTopic)
	tf.mustFail(DeleteTopicCmd{Name: "__consumer_offsets"}, ErrInvalidTopic)
	img := tf.mustApply(DeleteTopicCmd{Name: "a", ID: tp.ID})
	if img.Topic("a") != nil || img.Topic("__consumer_offsets") == nil {
		t.Fatal("wrong topics after delete")
	}
}

func TestAlterTopicConfigs(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(1)
	tf.mustApply(CreateTopicCmd{Name: "a", ID: uuid.NewString(), Assignments: [][]int32{{1}},
		Configs: map[string]string{"retention.ms": "1", "segment.bytes": "1000"}})
	img := tf.mustApply(AlterTopicConfigsCmd{Name: "a", Set: map[string]string{"cleanup.policy": "compact"}, Reset: []string{"retention.ms"}})
	want := map[string]string{"segment.bytes": "1000", "cleanup.policy": "compact"}
	if got := img.Topic("a").Configs; !reflect.DeepEqual(got, want) {
		t.Fatalf("configs %v, want %v", got, want)
	}
	tf.mustFail(AlterTopicConfigsCmd{Name: "b", Set: map[string]string{"retention.ms": "5"}}, ErrUnknownTopic)
	tf.mustFail(AlterTopicConfigsCmd{Name: "a", Set: map[string]string{"retention.ms": "x"}}, ErrInvalidConfig)
	tf.mustFail(AlterTopicConfigsCmd{Name: "a", Reset: []string{"bogus"}}, ErrInvalidConfig)
	tf.mustFail(AlterTopicConfigsCmd{Name: "a", Set: map[string]string{"retention.ms": "5"}, Reset: []string{"retention.ms"}}, ErrInvalidConfig)
}

func TestCreatePartitions(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(3)
	tf.createTopic("a", []int32{1, 2})
	img := tf.mustApply(CreatePartitionsCmd{Topic: "a", FirstPartition: 1, Assignments: [][]int32{{2, 3}, {3, 1}}})
	tp := img.Topic("a")
	if len(tp.Partitions) != 3 {
		t.Fatalf("%d partitions", len(tp.Partitions))
	}
	if p := tp.Partitions[2]; p.Partition != 2 || p.Leader != 3 || !slices.Equal(p.ISR, []int32{3, 1}) {
		t.Fatalf("new partition %+v", p)
	}
	tf.mustFail(CreatePartitionsCmd{Topic: "b", FirstPartition: 0, Assignments: [][]int32{{1, 2}}}, ErrUnknownTopic)
	tf.mustFail(CreatePartitionsCmd{Topic: "a", FirstPartition: 1, Assignments: [][]int32{{1, 2}}}, ErrStaleEpoch)
	tf.mustFail(CreatePartitionsCmd{Topic: "a", FirstPartition: 3}, ErrInvalidPartitions)
	tf.mustFail(CreatePartitionsCmd{Topic: "a", FirstPartition: 3, Assignments: [][]int32{{1}}}, ErrInvalidReplicationFactor)
	tf.mustFail(CreatePartitionsCmd{Topic: "a", FirstPartition: 3, Assignments: [][]int32{{1, 5}}}, ErrUnknownBroker)
}

func TestAlterPartition(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(4)
	tf.createTopic("a", []int32{1, 2, 3})

	// Shrink the ISR: partition epoch bumps, leader epoch does not.
	img := tf.mustApply(AlterPartitionCmd{Topic: "a", Partition: 0, Leader: 1, ISR: []int32{1, 2}})
	p := img.Partition("a", 0)
	if !slices.Equal(p.ISR, []int32{1, 2}) || p.LeaderEpoch != 0 || p.PartitionEpoch != 1 {
		t.Fatalf("after shrink: %+v", p)
	}
	// Stale epochs are refused.
	tf.mustFail(AlterPartitionCmd{Topic: "a", Partition: 0, Leader: 1, ISR: []int32{1, 2, 3}}, ErrStaleEpoch)
	tf.mustFail(AlterPartitionCmd{Topic: "a", Partition: 0, Leader: 1, ISR: []int32{1, 2, 3}, ExpectedLeaderEpoch: 1, ExpectedPartitionEpoch: 1}, ErrStaleEpoch)
	// Leader change bumps both.
	img = tf.mustApply(AlterPartitionCmd{Topic: "a", Partition: 0, Leader: 2, ISR: []int32{1, 2}, ExpectedPartitionEpoch: 1})
	p = img.Partition("a", 0)
	if p.Leader != 2 || p.LeaderEpoch != 1 || p.PartitionEpoch != 2 {
		t.Fatalf("after leader change: %+v", p)
	}
	// No change: nothing bumps.
	img = tf.mustApply(AlterPartitionCmd{Topic: "a", Partition: 0, Leader: 2, ISR: []int32{1, 2}, ExpectedLeaderEpoch: 1, ExpectedPartitionEpoch: 2})
	if p := img.Partition("a", 0); p.PartitionEpoch != 2 {
		t.Fatalf("no-op alter bumped: %+v", p)
	}

	cur := AlterPartitionCmd{Topic: "a", Partition: 0, ExpectedLeaderEpoch: 1, ExpectedPartitionEpoch: 2}
	with := func(leader int32, isr ...int32) AlterPartitionCmd {
		c := cur
		c.Leader, c.ISR = leader, isr
		return c
	}
	tf.mustFail(with(2), ErrInvalidRequest)       // empty ISR
	tf.mustFail(with(2, 2, 2), ErrInvalidRequest) // duplicate
	tf.mustFail(with(2, 2, 4), ErrInvalidRequest) // 4 is no replica
	tf.mustFail(with(3, 1, 2), ErrInvalidRequest) // leader not in ISR
	tf.mustFail(AlterPartitionCmd{Topic: "a", Partition: 1, Leader: 1, ISR: []int32{1}}, ErrUnknownTopic)
	tf.mustFail(AlterPartitionCmd{Topic: "zz", Partition: 0, Leader: 1, ISR: []int32{1}}, ErrUnknownTopic)

	tf.mustApply(FenceBrokerCmd{ID: 3})
	cur.ExpectedPartitionEpoch = tf.f.Image().Partition("a", 0).PartitionEpoch
	tf.mustFail(with(2, 1, 2, 3), ErrFencedBroker) // fenced broker cannot join
	// Leadership can move away, and to -1 with the ISR kept.
	img = tf.mustApply(with(NoLeader, 1, 2))
	if p := img.Partition("a", 0); p.Leader != NoLeader || p.LeaderEpoch != 2 {
		t.Fatalf("after moving to no leader: %+v", p)
	}

	// Once fenced, a member can only stay as the sole, leaderless member.
	tf.mustApply(FenceBrokerCmd{ID: 2})
	p = tf.f.Image().Partition("a", 0)
	if !slices.Equal(p.ISR, []int32{1}) {
		t.Fatalf("ISR after fencing 2: %+v", p)
	}
	tf.mustApply(FenceBrokerCmd{ID: 1})
	p = tf.f.Image().Partition("a", 0)
	if !slices.Equal(p.ISR, []int32{1}) || p.Leader != NoLeader {
		t.Fatalf("ISR after fencing the last member: %+v", p)
	}
	tf.mustApply(UnfenceBrokerCmd{ID: 3})
	p = tf.f.Image().Partition("a", 0)
	cur = AlterPartitionCmd{Topic: "a", Partition: 0, ExpectedLeaderEpoch: p.LeaderEpoch, ExpectedPartitionEpoch: p.PartitionEpoch}
	tf.mustFail(with(3, 1, 3), ErrFencedBroker) // fenced 1 cannot stay next to 3
	tf.mustFail(with(1, 1), ErrFencedBroker)    // nor lead
	img = tf.mustApply(with(3, 3))              // an explicit unclean choice by the controller
	if p := img.Partition("a", 0); p.Leader != 3 || !slices.Equal(p.ISR, []int32{3}) {
		t.Fatalf("after electing 3: %+v", p)
	}
}

func TestStoreConfigurationSetsVoters(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(3)
	tf.f.StoreConfiguration(10, raft.Configuration{Servers: []raft.Server{
		{ID: "2", Address: "h2:90", Suffrage: raft.Voter},
		{ID: "1", Address: "h1:90", Suffrage: raft.Voter},
		{ID: "3", Address: "h3:90", Suffrage: raft.Nonvoter},
		{ID: "x", Address: "hx:90", Suffrage: raft.Voter},
	}})
	img := tf.f.Image()
	if img.Version != 10 {
		t.Fatalf("version %d", img.Version)
	}
	want := []Member{{1, "h1:90", true}, {2, "h2:90", true}, {3, "h3:90", false}}
	if !reflect.DeepEqual(img.Members, want) {
		t.Fatalf("members %+v", img.Members)
	}
	if !img.Broker(1).Voter || !img.Broker(2).Voter || img.Broker(3).Voter {
		t.Fatal("voter flags wrong")
	}
	tf.index = 10
	// A broker registering later learns its flag from the members.
	tf.mustApply(RegisterBrokerCmd{ID: 3, HTTPAddr: "n3:80", RaftAddr: "h3:90"})
	if tf.f.Image().Broker(3).Voter {
		t.Fatal("non-voter marked voter")
	}
}

func TestCommandCodec(t *testing.T) {
	cmds := []Command{
		InitClusterCmd{ClusterID: "x"},
		RegisterBrokerCmd{ID: 1, HTTPAddr: "a", RaftAddr: "b", Rack: "r"},
		FenceBrokerCmd{ID: 1, Epoch: 4},
		UnfenceBrokerCmd{ID: 2},
		CreateTopicCmd{Name: "t", ID: "i", Configs: map[string]string{"a": "b"}, Assignments: [][]int32{{1, 2}}},
		DeleteTopicCmd{Name: "t"},
		AlterTopicConfigsCmd{Name: "t", Set: map[string]string{"a": "b"}, Reset: []string{"c"}},
		CreatePartitionsCmd{Topic: "t", FirstPartition: 1, Assignments: [][]int32{{3}}},
		AlterPartitionCmd{Topic: "t", Partition: 1, Leader: -1, ISR: []int32{1}, ExpectedLeaderEpoch: 2, ExpectedPartitionEpoch: 3},
		OfflineReplicasCmd{ID: 2, Epoch: 7, Partitions: []TopicPartition{{"t", 0}, {"u", 3}}},
	}
	for _, c := range cmds {
		data, err := EncodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		var head map[string]any
		if err := json.Unmarshal(data, &head); err != nil || head["type"] != c.CommandType() {
			t.Fatalf("%s encodes as %s", c.CommandType(), data)
		}
		got, err := DecodeCommand(data)
		if err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: %#v != %#v", got, c)
		}
	}
	for _, bad := range []string{`{}`, `{"type":"bogus"}`, `not json`, `{"type":"create_topic","assignments":"x"}`} {
		if _, err := DecodeCommand([]byte(bad)); !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("decode %s: %v", bad, err)
		}
	}
	// A garbage entry is refused by the FSM, not a crash.
	f := NewFSM(nil)
	res := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte("garbage")}).(*ApplyResult)
	if !errors.Is(res.Err, ErrInvalidRequest) || f.Image().Version != 1 {
		t.Fatalf("garbage entry: %v", res.Err)
	}
}

// randomLog builds a reproducible mix of valid and invalid commands.
func randomLog(seed uint64, n int) []Command {
	r := rand.New(rand.NewPCG(seed, 1))
	names := []string{"a", "b", "c", "d"}
	ids := map[string]string{}
	var log []Command
	for id := int32(1); id <= 5; id++ {
		log = append(log, RegisterBrokerCmd{ID: id, HTTPAddr: fmt.Sprint("h", id), RaftAddr: fmt.Sprint("r", id), Rack: fmt.Sprint("rack", id%2)})
		log = append(log, UnfenceBrokerCmd{ID: id})
	}
	for range n {
		name := names[r.IntN(len(names))]
		broker := int32(1 + r.IntN(6))
		switch r.IntN(9) {
		case 0:
			if ids[name] == "" {
				ids[name] = fmt.Sprintf("00000000-0000-4000-8000-%012d", r.IntN(1e9))
			}
			assign := [][]int32{}
			for p := range 1 + r.IntN(4) {
				assign = append(assign, []int32{int32(1 + p%5), int32(1 + (p+1)%5)})
			}
			log = append(log, CreateTopicCmd{Name: name, ID: ids[name], Assignments: assign,
				Configs: map[string]string{"retention.ms": fmt.Sprint(r.IntN(1000)), "unclean.leader.election.enable": fmt.Sprint(r.IntN(2) == 0)}})
		case 1:
			log = append(log, DeleteTopicCmd{Name: name})
			ids[name] = ""
		case 2:
			log = append(log, FenceBrokerCmd{ID: broker})
		case 3:
			log = append(log, UnfenceBrokerCmd{ID: broker})
		case 4:
			log = append(log, AlterTopicConfigsCmd{Name: name, Set: map[string]string{"segment.ms": fmt.Sprint(r.IntN(50))}, Reset: []string{"retention.ms"}})
		case 5:
			log = append(log, CreatePartitionsCmd{Topic: name, FirstPartition: int32(r.IntN(5)), Assignments: [][]int32{{broker, 1 + broker%5}}})
		case 6:
			log = append(log, AlterPartitionCmd{Topic: name, Partition: int32(r.IntN(3)), Leader: broker, ISR: []int32{broker},
				ExpectedLeaderEpoch: int32(r.IntN(2)), ExpectedPartitionEpoch: int32(r.IntN(3))})
		case 7:
			log = append(log, RegisterBrokerCmd{ID: broker, HTTPAddr: fmt.Sprint("h", broker, "-", r.IntN(2)), RaftAddr: fmt.Sprint("r", broker)})
		case 8: // the epoch of the first registration: refused once the broker registered again
			log = append(log, OfflineReplicasCmd{ID: broker, Epoch: int64(2*broker - 1),
				Partitions: []TopicPartition{{name, int32(r.IntN(3))}, {names[r.IntN(len(names))], int32(r.IntN(3))}}})
		}
	}
	return log
}

func TestDeterminism(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		log := randomLog(seed, 250)
		a, b := newTestFSM(t), newTestFSM(t)
		var accepted int
		for _, cmd := range log {
			_, errA := a.apply(cmd)
			_, errB := b.apply(cmd)
			if fmt.Sprint(errA) != fmt.Sprint(errB) {
				t.Fatalf("seed %d: different results %v / %v", seed, errA, errB)
			}
			if errA == nil {
				accepted++
			}
		}
		if !reflect.DeepEqual(a.f.Image(), b.f.Image()) {
			t.Fatalf("seed %d: images differ", seed)
		}
		ja, _ := json.Marshal(a.f.Image())
		jb, _ := json.Marshal(b.f.Image())
		if !bytes.Equal(ja, jb) {
			t.Fatalf("seed %d: JSON differs", seed)
		}
		if accepted < 50 {
			t.Fatalf("seed %d: only %d commands accepted; the test log is too degenerate", seed, accepted)
		}
		checkInvariants(t, a.f.Image())
	}
}

// checkInvariants asserts DESIGN §7.7 on an image: the ISR is never empty,
// contains the leader, and holds only alive brokers, unless it is the
// leaderless last member.
func checkInvariants(t *testing.T, img *Image) {
	t.Helper()
	for _, name := range img.SortedTopicNames() {
		for _, p := range img.Topics[name].Partitions {
			if len(p.ISR) == 0 {
				t.Fatalf("%s-%d: empty ISR", name, p.Partition)
			}
			for _, id := range p.ISR {
				if img.Broker(id).ReplicaOffline(name, p.Partition) && (len(p.ISR) > 1 || p.Leader != NoLeader) {
					t.Fatalf("%s-%d: offline replica %d in ISR %v (leader %d)", name, p.Partition, id, p.ISR, p.Leader)
				}
			}
			if p.Leader != NoLeader {
				if !p.InISR(p.Leader) || !img.Broker(p.Leader).CanServe(name, p.Partition) {
					t.Fatalf("%s-%d: leader %d not an alive ISR member with a healthy replica: %+v", name, p.Partition, p.Leader, p)
				}
				for _, id := range p.ISR {
					if !img.Broker(id).Alive() {
						t.Fatalf("%s-%d: fenced broker %d in ISR %v", name, p.Partition, id, p.ISR)
					}
				}
			}
		}
	}
}

// TestCopyOnWrite checks that published images never change.
func TestCopyOnWrite(t *testing.T) {
	tf := newTestFSM(t)
	var images []*Image
	var frozen [][]byte
	for _, cmd := range randomLog(7, 200) {
		img, _ := tf.apply(cmd)
		data, _ := json.Marshal(img)
		images = append(images, img)
		frozen = append(frozen, data)
	}
	for i, img := range images {
		data, _ := json.Marshal(img)
		if !bytes.Equal(data, frozen[i]) {
			t.Fatalf("image %d changed after later commands", i)
		}
	}
}

type bufferSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *bufferSink) ID() string    { return "test" }
func (s *bufferSink) Close() error  { s.closed = true; return nil }
func (s *bufferSink) Cancel() error { s.cancelled = true; return nil }

func TestSnapshotRestore(t *testing.T) {
	tf := newTestFSM(t)
	for _, cmd := range randomLog(3, 200) {
		_, _ = tf.apply(cmd)
	}
	tf.mustApply(InitClusterCmd{ClusterID: "cid"})
	tf.f.StoreConfiguration(tf.index+1, raft.Configuration{Servers: []raft.Server{{ID: "1", Address: "r1", Suffrage: raft.Voter}}})
	tf.mustApply(UnfenceBrokerCmd{ID: 1})
	tf.mustApply(CreateTopicCmd{Name: "empty-configs", ID: uuid.NewString(), Assignments: [][]int32{{1}}})
	want := tf.f.Image()
	if len(want.Topics) == 0 || len(want.Brokers) == 0 {
		t.Fatal("nothing to snapshot")
	}

	snap, err := tf.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufferSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v closed=%v", err, sink.closed)
	}
	snap.Release()

	restored := NewFSM(nil)
	changed := restored.Changed()
	if err := restored.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("restore did not signal a change")
	}
	if !reflect.DeepEqual(restored.Image(), want) {
		a, _ := json.Marshal(restored.Image())
		b, _ := json.Marshal(want)
		t.Fatalf("restored image differs:\n%s\n%s", a, b)
	}
	if err := restored.Restore(io.NopCloser(bytes.NewReader([]byte(`{"format":99}`)))); err == nil {
		t.Fatal("restore accepted an unknown format")
	}
}

func TestImageHelpers(t *testing.T) {
	tf := newTestFSM(t)
	tf.aliveBrokers(2)
	tf.createTopic("b", []int32{1, 2}, []int32{2, 1})
	tf.createTopic("a", []int32{1})
	img := tf.f.Image()
	if got := img.SortedTopicNames(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("names %v", got)
	}
	if img.LeaderCount(1) != 2 || img.LeaderCount(2) != 1 || img.LeaderCount(3) != 0 {
		t.Fatal("leader counts")
	}
	if img.Partition("b", 1) == nil || img.Partition("b", 2) != nil || img.Partition("b", -1) != nil || img.Partition("x", 0) != nil {
		t.Fatal("Partition lookup")
	}
	if got := img.AliveBrokers(); len(got) != 2 || got[0].ID != 1 {
		t.Fatalf("alive %v", got)
	}
}

func TestChangedSignalsEachApply(t *testing.T) {
	tf := newTestFSM(t)
	ch := tf.f.Changed()
	tf.mustApply(InitClusterCmd{ClusterID: "x"})
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed after apply")
	}
	if tf.f.Changed() == ch {
		t.Fatal("Changed not renewed")
	}
}

func TestUnregisterBroker(t *testing.T) {
	img := emptyImage()
	var err error
	idx := uint64(1)
	apply := func(c Command) error {
		idx++
		img, err = applyCommand(img, idx, c)
		return err
	}
	for id := int32(1); id <= 3; id++ {
		if err := apply(RegisterBrokerCmd{ID: id, HTTPAddr: fmt.Sprint("h", id), RaftAddr: fmt.Sprint("r", id)}); err != nil {
			t.Fatal(err)
		}
		if err := apply(UnfenceBrokerCmd{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := apply(CreateTopicCmd{Name: "t", ID: "6e9a8a4f-8785-408b-bde4-2523d5abd5eb", Assignments: [][]int32{{1, 2}, {3, 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := apply(UnregisterBrokerCmd{ID: 2}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("unregistering an alive broker: %v", err)
	}
	// Fencing 1 leaves t-0 with ISR [2] and t-1 with [3]; fencing 3 then
	// leaves it the last in-sync copy of t-1.
	if err := apply(FenceBrokerCmd{ID: 1}); err != nil {
		t.Fatal(err)
	}
	if err := apply(FenceBrokerCmd{ID: 3}); err != nil {
		t.Fatal(err)
	}
	if err := apply(UnregisterBrokerCmd{ID: 3}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("unregistering the only in-sync copy of t-1: %v", err)
	}
	if err := apply(UnregisterBrokerCmd{ID: 1}); err != nil {
		t.Fatalf("unregistering a fenced broker that is nobody's sole copy: %v", err)
	}
	if img.Broker(1) != nil || img.Broker(2) == nil {
		t.Fatal("broker 1 still registered, or broker 2 lost")
	}
	if err := apply(UnregisterBrokerCmd{ID: 1}); !errors.Is(err, ErrUnknownBroker) {
		t.Fatalf("unregistering twice: %v", err)
	}
}
