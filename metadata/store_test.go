package metadata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"weir/internal/testport"
	"weir/nodeauth"
)

// lockedBuffer collects a test's logs; they are printed only if it fails, so
// raft's chatter never hits the output of a passing run.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t *testing.T) *slog.Logger {
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("WEIR_TEST_LOGS") != "" {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testKeys are the cluster credentials of every store in a test.
func testKeys(t *testing.T) *nodeauth.Keys {
	t.Helper()
	k, err := nodeauth.NewKeys("metadata-test-cluster-secret")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func freeAddr(t *testing.T) string { return testport.Addr(t) }

func openStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open node %d: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitImage waits, using the Changed signal, until cond holds on s's image.
func waitImage(ctx context.Context, t *testing.T, s *Store, what string, cond func(*Image) bool) *Image {
	t.Helper()
	for {
		ch := s.Changed()
		if img := s.Image(); cond(img) {
			return img
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("node %d: waiting for %s: %v", s.NodeID(), what, ctx.Err())
		}
	}
}

// eventually polls cond until it holds or the deadline passes; for
// conditions spanning several stores.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// waitSingleLeader waits until exactly one of stores leads and all of them
// agree on it.
func waitSingleLeader(t *testing.T, stores []*Store) *Store {
	t.Helper()
	var leader *Store
	eventually(t, 15*time.Second, "a single agreed leader", func() bool {
		leader = nil
		for _, s := range stores {
			if s.IsLeader() {
				if leader != nil {
					return false
				}
				leader = s
			}
		}
		if leader == nil {
			return false
		}
		for _, s := range stores {
			if id, _, ok := s.Leader(); !ok || id != leader.NodeID() {
				return false
			}
		}
		return true
	})
	return leader
}

// Timing for multi-node tests: twice the production defaults, so that a
// loaded CI machine (-race, parallel packages) does not depose leaders.
const (
	testHeartbeat = time.Second
	testElection  = time.Second
	testLease     = 500 * time.Millisecond
)

// onLeader runs fn on the current leader, retrying with the new leader when
// leadership moves underneath it (ErrNotLeader: nothing written;
// ErrUnknownOutcome: fn must then be idempotent, which ours are).
func onLeader(t *testing.T, stores []*Store, what string, fn func(l *Store) error) *Store {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := waitSingleLeader(t, stores)
		err := fn(l)
		if err == nil {
			return l
		}
		if !(errors.Is(err, ErrNotLeader) || errors.Is(err, ErrUnknownOutcome)) || time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: retrying after leadership change: %v", what, err)
	}
}

func registerAlive(ctx context.Context, t *testing.T, s *Store, id int32, raftAddr string) {
	t.Helper()
	if err := registerAliveErr(ctx, s, id, raftAddr); err != nil {
		t.Fatal(err)
	}
}

// registerAliveErr registers and unfences a broker; repeating it is harmless.
func registerAliveErr(ctx context.Context, s *Store, id int32, raftAddr string) error {
	b, err := s.RegisterBroker(ctx, Broker{ID: id, HTTPAddr: fmt.Sprintf("127.0.0.1:%d", 8000+id), RaftAddr: raftAddr})
	if err != nil {
		return fmt.Errorf("register broker %d: %w", id, err)
	}
	if b.Epoch <= 0 {
		return fmt.Errorf("broker %d registered with epoch %d", id, b.Epoch)
	}
	if err := s.UnfenceBroker(ctx, id, b.Epoch); err != nil {
		return fmt.Errorf("unfence broker %d: %w", id, err)
	}
	return nil
}

// createTopicIdempotent creates a topic, accepting that an earlier attempt
// whose outcome was unknown already did.
func createTopicIdempotent(ctx context.Context, s *Store, name string, partitions, rf int) error {
	_, err := s.CreateTopic(ctx, name, partitions, rf, nil, false)
	if errors.Is(err, ErrTopicExists) {
		return nil
	}
	return err
}

func TestSingleNodeStoreSurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr := freeAddr(t)
	dir := t.TempDir()
	cfg := Config{
		NodeID: 1, RaftAddr: addr, HTTPAddr: "127.0.0.1:8001", Dir: dir,
		Voters: []Voter{{ID: 1, RaftAddr: addr}}, Keys: testKeys(t), Logger: testLogger(t),
		// Snapshot often so the restart restores a snapshot and replays the
		// log after it.
		SnapshotThreshold: 4, SnapshotInterval: 20 * time.Millisecond, TrailingLogs: 2,
	}
	s := openStore(t, cfg)
	if _, err := s.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	img := waitImage(ctx, t, s, "cluster id", func(img *Image) bool { return img.ClusterID != "" })
	clusterID := img.ClusterID
	if !s.IsLeader() {
		t.Fatal("single voter is not leader")
	}

	if _, err := s.CreateTopic(ctx, "orders", 3, 1, nil, false); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Fatalf("create topic without alive brokers: %v", err)
	}
	registerAlive(ctx, t, s, 1, addr)
	tp, err := s.CreateTopic(ctx, "orders", 3, 1, map[string]string{"retention.ms": "1000"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(tp.Partitions) != 3 || tp.Partitions[0].Leader != 1 || tp.Configs["retention.ms"] != "1000" {
		t.Fatalf("created %+v", tp)
	}
	if _, err := s.CreateTopic(ctx, "orders", 1, 1, nil, false); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := s.CreateTopic(ctx, "bad/name", 1, 1, nil, false); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := s.CreateTopic(ctx, "x", 1, 1, map[string]string{"segment.bytes": "1"}, false); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad config: %v", err)
	}
	if tp, err = s.CreatePartitions(ctx, "orders", 5); err != nil || len(tp.Partitions) != 5 {
		t.Fatalf("create partitions: %v", err)
	}
	if tp, err = s.CreatePartitions(ctx, "orders", 5); err != nil || len(tp.Partitions) != 5 {
		t.Fatalf("create partitions again: %v", err)
	}
	if _, err := s.CreatePartitions(ctx, "orders", 2); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("lowering partitions: %v", err)
	}
	if tp, err = s.AlterTopicConfigs(ctx, "orders", map[string]string{"cleanup.policy": "compact"}, []string{"retention.ms"}); err != nil ||
		tp.Configs["cleanup.policy"] != "compact" || tp.Configs["retention.ms"] != "" {
		t.Fatalf("alter configs: %v %+v", err, tp)
	}
	if _, err := s.CreateTopic(ctx, "gone", 1, 1, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "gone"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("delete missing: %v", err)
	}
	if err := s.Join(ctx, 1, addr, true); err != nil {
		t.Fatalf("re-join self: %v", err)
	}
	if err := s.Join(ctx, 9, addr, false); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("join with a used address: %v", err)
	}
	if err := s.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.State != "Leader" || st.NumPeers != 0 || st.LeaderID != 1 || st.CommitIndex == 0 || st.ImageVersion == 0 {
		t.Fatalf("stats %+v", st)
	}
	img = s.Image()
	if b := img.Broker(1); b == nil || !b.Voter || b.State != BrokerAlive {
		t.Fatalf("broker 1 %+v", b)
	}
	eventually(t, 10*time.Second, "a snapshot on disk", func() bool {
		snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
		return len(snaps) > 0
	})

	lastVersion := s.Image().Version
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Propose(ctx, InitClusterCmd{ClusterID: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("propose after close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, cfg)
	if _, err := s2.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	img2 := waitImage(ctx, t, s2, "the state from before the restart", func(img *Image) bool {
		return img.Version >= lastVersion
	})
	if o := img2.Topic("orders"); o == nil || len(o.Partitions) != 5 || o.Configs["cleanup.policy"] != "compact" {
		t.Fatalf("after restart: orders is %+v", o)
	}
	if img2.ClusterID != clusterID || img2.Topic("gone") != nil || img2.Broker(1) == nil {
		t.Fatalf("after restart: cluster %q (want %q), topics %v", img2.ClusterID, clusterID, img2.SortedTopicNames())
	}
	eventually(t, 10*time.Second, "leadership after restart", s2.IsLeader)
	if _, err := s2.CreateTopic(ctx, "after-restart", 1, 1, nil, false); err != nil {
		t.Fatalf("create after restart: %v", err)
	}
}

func TestThreeNodeStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	logger := testLogger(t)
	var voters []Voter
	for id := int32(1); id <= 3; id++ {
		voters = append(voters, Voter{ID: id, RaftAddr: freeAddr(t)})
	}
	config := func(id int32, raftAddr string) Config {
		return Config{
			NodeID: id, RaftAddr: raftAddr, HTTPAddr: fmt.Sprintf("127.0.0.1:%d", 8000+id),
			Dir: t.TempDir(), Voters: voters, Keys: testKeys(t), Logger: logger.With("node", id),
			HeartbeatTimeout: testHeartbeat, ElectionTimeout: testElection, LeaderLeaseTimeout: testLease,
		}
	}
	stores := make([]*Store, 3)
	for i, v := range voters {
		stores[i] = openStore(t, config(v.ID, v.RaftAddr))
	}
	for _, s := range stores {
		waitImage(ctx, t, s, "cluster id", func(img *Image) bool { return img.ClusterID != "" })
	}
	if a, b := stores[0].Image().ClusterID, stores[2].Image().ClusterID; a != b {
		t.Fatalf("cluster ids differ: %s %s", a, b)
	}
	onLeader(t, stores, "register brokers", func(l *Store) error {
		for _, v := range voters {
			if err := registerAliveErr(ctx, l, v.ID, v.RaftAddr); err != nil {
				return err
			}
		}
		return nil
	})
	leader := onLeader(t, stores, "create topic", func(l *Store) error {
		return createTopicIdempotent(ctx, l, "orders", 6, 3)
	})
	tp := leader.Image().Topic("orders")
	for _, s := range stores {
		img := waitImage(ctx, t, s, "topic orders", func(img *Image) bool { return img.Topic("orders") != nil })
		if got := img.Topic("orders"); got.ID != tp.ID || len(got.Partitions) != 6 {
			t.Fatalf("node %d sees %+v", s.NodeID(), got)
		}
		for _, v := range voters {
			if b := img.Broker(v.ID); b == nil || !b.Voter || !b.Alive() {
				t.Fatalf("node %d: broker %d is %+v", s.NodeID(), v.ID, b)
			}
		}
	}
	for _, v := range voters {
		if n := leader.Image().LeaderCount(v.ID); n != 2 {
			t.Fatalf("broker %d leads %d of 6 partitions", v.ID, n)
		}
	}

	// Followers refuse writes; nothing is written.
	leader = waitSingleLeader(t, stores)
	var followers []*Store
	for _, s := range stores {
		if s != leader {
			followers = append(followers, s)
		}
	}
	versionBefore := leader.Image().Version
	if _, err := followers[0].CreateTopic(ctx, "nope", 1, 1, nil, false); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("create on follower: %v", err)
	}
	if _, err := followers[1].Propose(ctx, DeleteTopicCmd{Name: "orders"}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("propose on follower: %v", err)
	}
	if err := followers[0].Barrier(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("barrier on follower: %v", err)
	}
	if err := followers[0].Join(ctx, 9, "127.0.0.1:1", false); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("join on follower: %v", err)
	}
	for _, s := range stores {
		img := waitImage(ctx, t, s, "the leader's version", func(img *Image) bool { return img.Version >= versionBefore })
		if img.Topic("nope") != nil || img.Topic("orders") == nil || img.Version != versionBefore {
			t.Fatalf("node %d: a refused write changed the image (version %d -> %d)", s.NodeID(), versionBefore, img.Version)
		}
	}

	// A fourth node, not among the voters, waits and joins as a non-voter.
	addr4 := freeAddr(t)
	s4 := openStore(t, config(4, addr4))
	onLeader(t, stores, "join node 4", func(l *Store) error { return l.Join(ctx, 4, addr4, false) })
	onLeader(t, stores, "join node 4 again", func(l *Store) error { return l.Join(ctx, 4, addr4, false) })
	waitImage(ctx, t, s4, "the topic on the non-voter", func(img *Image) bool { return img.Topic("orders") != nil })
	img := waitImage(ctx, t, s4, "member 4", func(img *Image) bool { return len(img.Members) == 4 })
	if m := img.Members[3]; m.ID != 4 || m.Voter || m.RaftAddr != addr4 {
		t.Fatalf("member 4: %+v", m)
	}

	// Closing the leader elects another voter, which has the data and takes writes.
	leader = waitSingleLeader(t, stores)
	clusterID := leader.Image().ClusterID
	if err := leader.Close(); err != nil {
		t.Fatalf("close leader: %v", err)
	}
	var rest []*Store
	for _, s := range stores {
		if s != leader {
			rest = append(rest, s)
		}
	}
	rest = append(rest, s4)
	newLeader := onLeader(t, rest, "create topic after failover", func(l *Store) error {
		if l == s4 {
			t.Fatal("the non-voter became leader")
		}
		if l.Image().Topic("orders") == nil || l.Image().ClusterID != clusterID {
			t.Fatal("new leader lacks the data")
		}
		return createTopicIdempotent(ctx, l, "after-failover", 2, 2)
	})
	if newLeader.NodeID() == leader.NodeID() {
		t.Fatal("closed node still leads")
	}
	for _, s := range rest {
		waitImage(ctx, t, s, "topic after-failover", func(img *Image) bool { return img.Topic("after-failover") != nil })
	}
}

func TestOpenValidatesConfig(t *testing.T) {
	ctx := context.Background()
	addr := freeAddr(t)
	keys := testKeys(t)
	for _, cfg := range []Config{
		{NodeID: 1, Dir: t.TempDir(), Keys: keys},
		{NodeID: 1, RaftAddr: addr, Keys: keys},
		{NodeID: -1, RaftAddr: addr, Dir: t.TempDir(), Keys: keys},
		{NodeID: 1, RaftAddr: addr, Dir: t.TempDir(), Keys: keys, Voters: []Voter{{1, "127.0.0.1:1"}}},
		{NodeID: 1, RaftAddr: addr, Dir: t.TempDir(), Keys: keys, Voters: []Voter{{1, addr}, {1, "127.0.0.1:2"}}},
		{NodeID: 1, RaftAddr: addr, Dir: t.TempDir(), Keys: keys, Voters: []Voter{{1, addr}, {2, addr}}},
		{NodeID: 1, RaftAddr: addr, Dir: t.TempDir(), Voters: []Voter{{1, addr}}}, // no credentials
	} {
		if s, err := Open(ctx, cfg); err == nil {
			s.Close()
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

// TestStoreCloseStopsGoroutines checks that Close leaves nothing running.
func TestStoreCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := freeAddr(t)
	s, err := Open(ctx, Config{NodeID: 1, RaftAddr: addr, Dir: t.TempDir(), Voters: []Voter{{1, addr}}, Keys: testKeys(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	waitImage(ctx, t, s, "cluster id", func(img *Image) bool { return img.ClusterID != "" })
	registerAlive(ctx, t, s, 1, addr)
	if self := s.Self(); self.ID != 1 || self.RaftAddr != addr {
		t.Fatalf("self %+v", self)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "goroutines to stop", func() bool { return runtime.NumGoroutine() <= before })
}

// TestStoreDoesNotPipelineReplication: the Raft transport sends one
// AppendEntries at a time. hashicorp/raft's pipelined replication can
// deadlock once a follower refuses an append, leaving that follower without
// new entries and Close hanging (seen in the fault harness as a node that
// did not shut down).
func TestStoreDoesNotPipelineReplication(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := freeAddr(t)
	s, err := Open(ctx, Config{NodeID: 1, RaftAddr: addr, Dir: t.TempDir(), Voters: []Voter{{1, addr}}, Keys: testKeys(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.transport.AppendEntriesPipeline("2", raft.ServerAddress(freeAddr(t))); !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline: %v, want %v", err, raft.ErrPipelineReplicationNotSupported)
	}
}
