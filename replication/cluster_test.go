package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"weir/logstore"
)

// fakeClock is the injectable clock of ISR lag tracking.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeController is the metadata: it holds every partition's state, applies
// AlterPartition requests as the real controller does (only at the current
// epochs), and can hold them to let a test look at the pending state.
type fakeController struct {
	mu       sync.Mutex
	state    map[key]Assignment
	hold     chan struct{} // when set, AlterPartition waits until it is closed
	requests chan AlterPartitionRequest
}

func (fc *fakeController) AlterPartition(ctx context.Context, req AlterPartitionRequest) ([]int32, int32, int32, error) {
	fc.requests <- req
	fc.mu.Lock()
	hold := fc.hold
	fc.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, 0, 0, ctx.Err()
		}
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	k := key{req.Topic, req.Partition}
	a := fc.state[k]
	if req.LeaderEpoch != a.LeaderEpoch || req.PartitionEpoch != a.PartitionEpoch {
		return nil, 0, 0, fmt.Errorf("stale epochs %d/%d, current %d/%d", req.LeaderEpoch, req.PartitionEpoch, a.LeaderEpoch, a.PartitionEpoch)
	}
	a.ISR = slices.Clone(req.ISR)
	a.PartitionEpoch++
	fc.state[k] = a
	return slices.Clone(a.ISR), a.LeaderEpoch, a.PartitionEpoch, nil
}

func (fc *fakeController) setHold(on bool) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if on {
		fc.hold = make(chan struct{})
	} else if fc.hold != nil {
		close(fc.hold)
		fc.hold = nil
	}
}

type testNode struct {
	id   int32
	dir  string
	logs *logstore.Manager
	m    *Manager
}

// testCluster is a few managers over real logs, fetching through an
// in-memory transport that goes through the wire encoding.
type testCluster struct {
	t     *testing.T
	cfg   logstore.Config
	clock *fakeClock
	ctrl  *fakeController
	tune  func(*Options)

	mu      sync.Mutex
	nodes   map[int32]*testNode
	blocked map[int32]chan struct{} // follower id -> closed when it may fetch again
	fs      map[int32]logstore.FS   // a node's file operations, when not the real ones
}

func newCluster(t *testing.T, fsync logstore.FsyncPolicy, ids ...int32) *testCluster {
	t.Helper()
	return newClusterWith(t, fsync, nil, ids...)
}

func newClusterWith(t *testing.T, fsync logstore.FsyncPolicy, tune func(*Options), ids ...int32) *testCluster {
	t.Helper()
	cfg := logstore.DefaultConfig()
	cfg.Fsync = fsync
	c := &testCluster{t: t, cfg: cfg, tune: tune, clock: &fakeClock{t: time.Unix(1_700_000_000, 0)},
		ctrl:  &fakeController{state: map[key]Assignment{}, requests: make(chan AlterPartitionRequest, 1000)},
		nodes: map[int32]*testNode{}, blocked: map[int32]chan struct{}{}}
	for _, id := range ids {
		c.start(id, t.TempDir())
	}
	t.Cleanup(func() {
		c.mu.Lock()
		nodes := c.nodes
		c.mu.Unlock()
		for _, n := range nodes {
			if err := n.m.Close(); err != nil {
				t.Errorf("close node %d: %v", n.id, err)
			}
		}
		for _, n := range nodes {
			_ = n.logs.Close()
		}
	})
	return c
}

func (c *testCluster) start(id int32, dir string) *testNode {
	c.t.Helper()
	c.mu.Lock()
	fs := c.fs[id]
	c.mu.Unlock()
	logs, err := logstore.OpenManager(dir, logstore.ManagerOptions{Config: c.cfg, FS: fs})
	if err != nil {
		c.t.Fatal(err)
	}
	opts := Options{Transport: memTransport{c: c, from: id}, ISRChanger: c.ctrl,
		FetchWaitMax: 50 * time.Millisecond, FetchBackoffMax: 20 * time.Millisecond, Now: c.clock.Now}
	if c.tune != nil {
		c.tune(&opts)
	}
	m := New(id, logs, opts)
	n := &testNode{id: id, dir: dir, logs: logs, m: m}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n
}

// restart closes a node and opens it again over the same data dir.
func (c *testCluster) restart(id int32) *testNode {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if err := n.m.Close(); err != nil {
		c.t.Fatal(err)
	}
	if err := n.logs.Close(); err != nil {
		c.t.Fatal(err)
	}
	n = c.start(id, n.dir)
	c.applyAll()
	return n
}

func (c *testCluster) node(id int32) *testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *testCluster) part(id int32) *Partition {
	c.t.Helper()
	p, ok := c.node(id).m.Partition("t", 0)
	if !ok {
		c.t.Fatalf("node %d holds no replica of t-0", id)
	}
	return p
}

// set makes a the metadata of its partition and applies it everywhere.
func (c *testCluster) set(a Assignment) {
	c.t.Helper()
	a.Config = c.cfg
	c.ctrl.mu.Lock()
	c.ctrl.state[key{a.Topic, a.Partition}] = a
	c.ctrl.mu.Unlock()
	c.applyAll()
}

func (c *testCluster) applyAll() {
	c.t.Helper()
	c.ctrl.mu.Lock()
	var as []Assignment
	for _, a := range c.ctrl.state {
		as = append(as, a)
	}
	c.ctrl.mu.Unlock()
	c.mu.Lock()
	nodes := c.nodes
	c.mu.Unlock()
	for _, n := range nodes {
		if err := n.m.Apply(as); err != nil {
			c.t.Fatalf("apply on node %d: %v", n.id, err)
		}
	}
}

// block cuts a follower off its leaders: its fetches wait, and an answer
// arriving while it is blocked is dropped.
func (c *testCluster) block(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocked[id] == nil {
		c.blocked[id] = make(chan struct{})
	}
}

func (c *testCluster) unblock(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.blocked[id]; ch != nil {
		close(ch)
		delete(c.blocked, id)
	}
}

func (c *testCluster) gate(id int32) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked[id]
}

type memTransport struct {
	c    *testCluster
	from int32
}

func (tr memTransport) Fetch(ctx context.Context, leaderID int32, req FetchRequest) (FetchResponse, error) {
	if g := tr.c.gate(tr.from); g != nil {
		select {
		case <-g:
		case <-ctx.Done():
			return FetchResponse{}, ctx.Err()
		}
	}
	leader := tr.c.node(leaderID)
	if leader == nil {
		return FetchResponse{}, fmt.Errorf("node %d is down", leaderID)
	}
	// As over HTTP: the request as JSON, the response in the binary encoding.
	js, err := json.Marshal(req)
	if err != nil {
		return FetchResponse{}, err
	}
	var wireReq FetchRequest
	if err := json.Unmarshal(js, &wireReq); err != nil {
		return FetchResponse{}, err
	}
	resp := leader.m.HandleFetch(ctx, wireReq)
	if tr.c.gate(tr.from) != nil {
		return FetchResponse{}, errors.New("blocked: answer dropped")
	}
	var buf bytes.Buffer
	if err := EncodeFetchResponse(&buf, resp); err != nil {
		return FetchResponse{}, err
	}
	return DecodeFetchResponse(&buf, 64<<20)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitUntil polls cond until it holds (fails the test after 10 s): for
// states no notification announces, like a follower's log end.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// followerLEO is the log end the leader has recorded for a follower.
func followerLEO(p *Partition, id int32) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fs := p.followers[id]; fs != nil {
		return fs.leo
	}
	return -1
}

func isrOf(p *Partition) []int32 {
	_, _, _, isr := p.State()
	slices.Sort(isr)
	return isr
}

// logBytes is the whole log, as stored.
func logBytes(t *testing.T, l *logstore.Log) []byte {
	t.Helper()
	var out []byte
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		rr, err := l.Read(off, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		if len(rr.Data) == 0 {
			t.Fatalf("no data at %d below the log end %d", off, l.LogEndOffset())
		}
		out = append(out, rr.Data...)
		off = rr.NextOffset
	}
	return out
}

func (c *testCluster) produce(id int32, acks Acks, values ...string) (logstore.AppendResult, error) {
	c.t.Helper()
	p := c.part(id)
	return p.Append(testCtx(c.t), batch(c.t, p, values...), acks)
}

func (c *testCluster) mustProduce(id int32, acks Acks, values ...string) int64 {
	c.t.Helper()
	res, err := c.produce(id, acks, values...)
	if err != nil {
		c.t.Fatalf("produce on node %d: %v", id, err)
	}
	return res.LastOffset + 1
}

// requireIdentical waits until every node's log has the same end and HW,
// then compares the logs byte for byte.
func (c *testCluster) requireIdentical(ids ...int32) {
	c.t.Helper()
	lead := c.part(ids[0])
	end := lead.Log().LogEndOffset()
	ctx := testCtx(c.t)
	for _, id := range ids {
		p := c.part(id)
		waitUntil(c.t, fmt.Sprintf("node %d's log reaches %d", id, end), func() bool { return p.Log().LogEndOffset() == end })
		if err := p.WaitHW(ctx, end-1); err != nil {
			c.t.Fatalf("node %d's HW %d never reached %d: %v", id, p.HighWatermark(), end, err)
		}
	}
	want := logBytes(c.t, lead.Log())
	for _, id := range ids[1:] {
		if got := logBytes(c.t, c.part(id).Log()); !bytes.Equal(got, want) {
			c.t.Fatalf("node %d's log differs from node %d's (%d vs %d bytes)", id, ids[0], len(got), len(want))
		}
	}
}

func rf3(leader, epoch int32, isr []int32, minISR int) Assignment {
	return Assignment{Topic: "t", Partition: 0, Replicas: []int32{1, 2, 3}, Leader: leader, LeaderEpoch: epoch,
		PartitionEpoch: 1, ISR: isr, MinISR: minISR, ReplicaLagTimeMax: 10 * time.Second}
}

func TestReplicationAcksAllAndIdenticalLogs(t *testing.T) {
	for _, fsync := range []logstore.FsyncPolicy{logstore.FsyncAlways, logstore.FsyncNever} {
		t.Run(string(fsync), func(t *testing.T) {
			c := newCluster(t, fsync, 1, 2, 3)
			c.set(rf3(1, 1, []int32{1, 2, 3}, 2))
			lp := c.part(1)
			var end int64
			for i := range 30 {
				acks := AcksAll
				if i%3 == 1 {
					acks = AcksLeader
				}
				end = c.mustProduce(1, acks, fmt.Sprintf("v%d", i), "w")
				if acks != AcksAll {
					continue
				}
				// acks=all returned: both followers fetched the batch, and
				// the HW passed it only as the minimum of the ISR's log ends.
				for _, id := range []int32{2, 3} {
					if leo := c.part(id).Log().LogEndOffset(); leo < end {
						t.Fatalf("acks=all returned at %d, follower %d has only %d", end, id, leo)
					}
				}
				lp.mu.Lock()
				hw, bound := lp.hw.Load(), lp.committedEnd()
				for _, id := range []int32{2, 3} {
					bound = min(bound, lp.followers[id].leo)
				}
				lp.mu.Unlock()
				if hw < end || hw > bound {
					t.Fatalf("HW %d: want >= %d and <= min ISR log end %d", hw, end, bound)
				}
			}
			c.requireIdentical(1, 2, 3)
			if hw := lp.HighWatermark(); hw != end {
				t.Fatalf("leader HW %d, want the log end %d", hw, end)
			}
			for _, id := range []int32{2, 3} {
				if leo := followerLEO(lp, id); leo != end {
					t.Fatalf("leader recorded follower %d at %d, want %d", id, leo, end)
				}
			}
			// Consumers read only committed data, from the leader.
			rr, hw, err := lp.Read(0, 1<<20)
			if err != nil || hw != end || len(rr.Data) == 0 {
				t.Fatalf("read: %d bytes, hw %d, err %v", len(rr.Data), hw, err)
			}
		})
	}
}

// TestDivergentTailTruncated: an uncommitted tail of an old leader is cut
// via the diverging epoch, here before the new leader wrote anything in its
// epoch (its history then ends at an older epoch than the followers').
func TestDivergentTailTruncated(t *testing.T) {
	c := newCluster(t, logstore.FsyncAlways, 1, 2, 3)
	c.set(rf3(1, 1, []int32{1, 2, 3}, 1))
	c.mustProduce(1, AcksAll, "a1", "a2")
	endA := c.mustProduce(1, AcksAll, "a3")

	// Node 2 is cut off; node 3 leads epoch 2 and writes B, which node 1
	// copies but cannot commit (node 2 is in the ISR and lacks it).
	c.block(2)
	c.set(rf3(3, 2, []int32{1, 2, 3}, 1))
	endB := c.mustProduce(3, AcksLeader, "b1", "b2")
	endB = c.mustProduce(3, AcksLeader, "b3")
	waitUntil(t, "node 1 copies B", func() bool { return c.part(1).Log().LogEndOffset() == endB })
	if hw := c.part(3).HighWatermark(); hw > endA {
		t.Fatalf("HW %d moved past A (%d) without node 2", hw, endA)
	}

	// Node 2 leads epoch 3: nodes 1 and 3 hold epoch 2 batches that node 2
	// never saw; both must cut them to node 2's log.
	c.set(rf3(2, 3, []int32{1, 2, 3}, 1))
	c.unblock(2)
	for _, id := range []int32{1, 3} {
		waitUntil(t, fmt.Sprintf("node %d truncates B", id), func() bool { return c.part(id).Log().LogEndOffset() == endA })
	}
	for _, id := range []int32{1, 3} {
		if e := c.part(id).Log().LatestEpoch(); e != 1 {
			t.Fatalf("node %d kept epoch %d after truncation", id, e)
		}
	}
	end := c.mustProduce(2, AcksAll, "c1")
	if end != endA+1 {
		t.Fatalf("C at %d, want right after A (%d)", end, endA)
	}
	c.requireIdentical(2, 1, 3)
}

// TestDivergentTailAfterLeaderWrote: the new leader already wrote in its
// epoch; the old leader's tail in the previous epoch is cut at the point the
// new leader's epoch starts.
func TestDivergentTailAfterLeaderWrote(t *testing.T) {
	c := newCluster(t, logstore.FsyncNever, 1, 2, 3)
	c.set(rf3(1, 1, []int32{1, 2, 3}, 1))
	endA := c.mustProduce(1, AcksAll, "a1")
	c.block(2)
	c.block(3)
	c.mustProduce(1, AcksLeader, "b1", "b2")
	c.mustProduce(1, AcksLeader, "b3")
	c.block(1) // node 1 rejoins only after node 2 wrote in epoch 2
	c.set(rf3(2, 2, []int32{2, 3}, 1))
	c.unblock(2)
	c.unblock(3)
	endC := c.mustProduce(2, AcksAll, "c1")
	c.mustProduce(2, AcksAll, "c2", "c3", "c4", "c5")
	if endC != endA+1 {
		t.Fatalf("C at %d, want %d", endC, endA+1)
	}
	c.unblock(1)
	c.requireIdentical(2, 1, 3)
}

func TestFetchRefusals(t *testing.T) {
	m, cfg := newTestManager(t, logstore.FsyncAlways)
	err := m.Apply([]Assignment{
		{Topic: "t", Partition: 0, Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 5, ISR: []int32{1, 2}, MinISR: 1, Config: cfg},
		{Topic: "f", Partition: 0, Replicas: []int32{1, 2}, Leader: 2, LeaderEpoch: 3, ISR: []int32{1, 2}, MinISR: 1, Config: cfg},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := m.Partition("t", 0)
	for range 2 {
		if _, err := p.Append(testCtx(t), batch(t, p, "x"), AcksLeader); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Log().Sync(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	fetch := func(replica int32, epoch int64, fp FetchPartition) FetchPartitionResult {
		t.Helper()
		resp := m.HandleFetch(testCtx(t), FetchRequest{ReplicaID: replica, ReplicaEpoch: epoch, Partitions: []FetchPartition{fp}})
		if len(resp.Partitions) != 1 {
			t.Fatalf("%d results", len(resp.Partitions))
		}
		return resp.Partitions[0]
	}
	ok := FetchPartition{Topic: "t", Partition: 0, FetchOffset: 0, LeaderEpoch: 5, LastFetchedEpoch: -1}
	with := func(change func(*FetchPartition)) FetchPartition { fp := ok; change(&fp); return fp }
	for _, tc := range []struct {
		name    string
		replica int32
		fp      FetchPartition
		want    string
	}{
		{"older epoch", 2, with(func(fp *FetchPartition) { fp.LeaderEpoch = 4 }), ErrCodeFencedLeaderEpoch},
		{"newer epoch", 2, with(func(fp *FetchPartition) { fp.LeaderEpoch = 6 }), ErrCodeUnknownLeaderEpoch},
		{"follower here", 2, FetchPartition{Topic: "f", Partition: 0, LeaderEpoch: 3, LastFetchedEpoch: -1}, ErrCodeNotLeaderOrFollower},
		{"unknown partition", 2, with(func(fp *FetchPartition) { fp.Topic = "nope" }), ErrCodeUnknownTopicOrPartition},
		{"not a replica", 3, ok, ErrCodeNotLeaderOrFollower},
		{"from the leader itself", 1, ok, ErrCodeNotLeaderOrFollower},
		{"past the log end", 2, with(func(fp *FetchPartition) { fp.FetchOffset = 9 }), ErrCodeOffsetOutOfRange},
	} {
		res := fetch(tc.replica, 0, tc.fp)
		if res.Error != tc.want || len(res.Records) != 0 {
			t.Errorf("%s: error %q with %d bytes, want %q", tc.name, res.Error, len(res.Records), tc.want)
		}
	}
	if res := fetch(2, 0, with(func(fp *FetchPartition) { fp.FetchOffset = 9 })); res.LogStartOffset != 0 || res.LogEndOffset != 2 {
		t.Errorf("out of range bounds [%d, %d], want [0, 2]", res.LogStartOffset, res.LogEndOffset)
	}

	res := fetch(2, 7, ok)
	if res.Error != "" || res.DivergingEpoch != nil || len(res.Records) == 0 || res.LeaderEpoch != 5 || res.LogEndOffset != 2 {
		t.Fatalf("good fetch: %+v", res)
	}
	if res := fetch(2, 6, ok); res.Error != ErrCodeStaleBrokerEpoch {
		t.Errorf("fetch of an earlier broker incarnation: %q", res.Error)
	}
	// Divergence: past our end in our latest epoch, and in an epoch older than ours.
	if res := fetch(2, 7, with(func(fp *FetchPartition) { fp.FetchOffset, fp.LastFetchedEpoch = 3, 5 })); res.DivergingEpoch == nil ||
		*res.DivergingEpoch != (EpochEndOffset{Epoch: 5, EndOffset: 2}) || len(res.Records) != 0 {
		t.Errorf("ahead in our epoch: %+v", res)
	}
	if res := fetch(2, 7, with(func(fp *FetchPartition) { fp.FetchOffset, fp.LastFetchedEpoch = 1, 4 })); res.DivergingEpoch == nil ||
		*res.DivergingEpoch != (EpochEndOffset{Epoch: 4, EndOffset: 0}) {
		t.Errorf("an epoch we never had: %+v", res)
	}
	if res := fetch(2, 7, with(func(fp *FetchPartition) { fp.FetchOffset, fp.LastFetchedEpoch = 2, 5 })); res.Error != "" || res.DivergingEpoch != nil {
		t.Errorf("caught up in our epoch: %+v", res)
	}

	// Long poll: parked at the end until an append, then answered with it.
	got := make(chan FetchResponse, 1)
	go func() {
		got <- m.HandleFetch(testCtx(t), FetchRequest{ReplicaID: 2, ReplicaEpoch: 7, MaxWaitMs: 60_000,
			Partitions: []FetchPartition{with(func(fp *FetchPartition) { fp.FetchOffset, fp.LastFetchedEpoch = 2, 5 })}})
	}()
	if _, err := p.Append(testCtx(t), batch(t, p, "y"), AcksLeader); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-got:
		if r := resp.Partitions[0]; r.Error != "" || len(r.Records) == 0 {
			t.Fatalf("long poll answered %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("parked fetch not woken by an append")
	}
	// And it ends with its context.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		got <- m.HandleFetch(ctx, FetchRequest{ReplicaID: 2, ReplicaEpoch: 7, MaxWaitMs: 60_000,
			Partitions: []FetchPartition{with(func(fp *FetchPartition) { fp.FetchOffset, fp.LastFetchedEpoch = 3, 5 })}})
	}()
	cancel()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("parked fetch ignores its context")
	}
}

func TestISRShrinkAfterLagAndExpandWhenCaughtUp(t *testing.T) {
	c := newCluster(t, logstore.FsyncAlways, 1, 2, 3)
	c.set(rf3(1, 1, []int32{1, 2, 3}, 2))
	lp, m1 := c.part(1), c.node(1).m
	end1 := c.mustProduce(1, AcksAll, "a")

	c.block(3)
	end2 := c.mustProduce(1, AcksLeader, "b")
	waitUntil(t, "node 2 fetched b", func() bool { return followerLEO(lp, 2) == end2 })
	m1.CheckISR(c.clock.Now())
	expectNoRequest(t, c.ctrl)

	c.ctrl.setHold(true)
	c.clock.Advance(11 * time.Second)
	m1.CheckISR(c.clock.Now())
	req := expectRequest(t, c.ctrl)
	if !slices.Equal(req.ISR, []int32{1, 2}) || req.Leader != 1 || req.LeaderEpoch != 1 || req.PartitionEpoch != 1 {
		t.Fatalf("shrink request %+v", req)
	}
	// Pending shrink: node 3 still counts, the HW waits at what it has.
	if hw := lp.HighWatermark(); hw != end1 {
		t.Fatalf("HW %d with the shrink pending, want %d", hw, end1)
	}
	m1.CheckISR(c.clock.Now())
	expectNoRequest(t, c.ctrl) // one change in flight at a time
	c.ctrl.setHold(false)
	if err := lp.WaitHW(testCtx(t), end2-1); err != nil {
		t.Fatalf("HW never moved after the shrink committed: %v", err)
	}
	if isr := isrOf(lp); !slices.Equal(isr, []int32{1, 2}) {
		t.Fatalf("ISR %v after the shrink", isr)
	}
	c.applyAll() // the metadata brings the same state

	// Node 3 catches up and is added back.
	c.unblock(3)
	req = expectRequest(t, c.ctrl)
	if !slices.Equal(req.ISR, []int32{1, 2, 3}) || req.PartitionEpoch != 2 {
		t.Fatalf("expand request %+v", req)
	}
	waitUntil(t, "node 3 back in the ISR", func() bool { return len(isrOf(lp)) == 3 })
	c.applyAll()
	end3 := c.mustProduce(1, AcksAll, "c")
	if leo := c.part(3).Log().LogEndOffset(); leo < end3 {
		t.Fatalf("acks=all returned before node 3 (back in the ISR) had it: %d < %d", leo, end3)
	}
	c.requireIdentical(1, 2, 3)
}

func TestHWFrozenBelowMinISR(t *testing.T) {
	c := newCluster(t, logstore.FsyncAlways, 1, 2)
	c.ctrl.setHold(true)
	c.set(Assignment{Topic: "t", Partition: 0, Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1,
		ISR: []int32{1}, MinISR: 2})
	lp := c.part(1)
	if _, err := c.produce(1, AcksAll, "x"); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("acks=all with the ISR below min: %v", err)
	}
	if leo := lp.Log().LogEndOffset(); leo != 0 {
		t.Fatalf("refused write appended: log end %d", leo)
	}
	end := c.mustProduce(1, AcksLeader, "y")
	req := expectRequest(t, c.ctrl)
	if !slices.Equal(req.ISR, []int32{1, 2}) {
		t.Fatalf("expand request %+v", req)
	}
	waitUntil(t, "node 2 fetched y", func() bool { return followerLEO(lp, 2) == end })
	if hw := lp.HighWatermark(); hw != 0 {
		t.Fatalf("HW %d moved with 1 in sync and min.insync.replicas 2", hw)
	}
	c.ctrl.setHold(false)
	if err := lp.WaitHW(testCtx(t), end-1); err != nil {
		t.Fatalf("HW stuck after the ISR reached min.insync.replicas: %v", err)
	}
}

func TestPendingExpansionCountsTowardHW(t *testing.T) {
	c := newCluster(t, logstore.FsyncAlways, 1, 2)
	c.ctrl.setHold(true)
	c.set(Assignment{Topic: "t", Partition: 0, Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1,
		ISR: []int32{1}, MinISR: 1})
	lp := c.part(1)
	req := expectRequest(t, c.ctrl) // node 2's first fetch makes it eligible
	if !slices.Equal(req.ISR, []int32{1, 2}) {
		t.Fatalf("expand request %+v", req)
	}
	c.block(2)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := lp.Append(ctx, batch(t, lp, "x"), AcksAll)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acks=all committed without the replica of a pending expansion: %v", err)
	}
	c.unblock(2)
	if err := lp.WaitHW(testCtx(t), res.LastOffset); err != nil {
		t.Fatalf("HW never passed the write once node 2 fetched it: %v", err)
	}
	if leo := c.part(2).Log().LogEndOffset(); leo <= res.LastOffset {
		t.Fatalf("HW passed %d, node 2 has only %d", res.LastOffset, leo)
	}
	c.ctrl.setHold(false)
	waitUntil(t, "node 2 in the ISR", func() bool { return len(isrOf(lp)) == 2 })
}

func TestAcksAllFailsWhenLeadershipLost(t *testing.T) {
	c := newCluster(t, logstore.FsyncNever, 1, 2)
	a := Assignment{Topic: "t", Partition: 0, Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1,
		ISR: []int32{1, 2}, MinISR: 1}
	c.set(a)
	c.block(2)
	lp := c.part(1)
	b, ctx := batch(t, lp, "x"), testCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := lp.Append(ctx, b, AcksAll)
		done <- err
	}()
	waitUntil(t, "the write is appended", func() bool { return c.part(1).Log().LogEndOffset() == 1 })
	a.Leader, a.LeaderEpoch = 2, 2
	c.set(a)
	if err := <-done; !errors.Is(err, ErrNotLeader) {
		t.Fatalf("acks=all wait after losing the leadership: %v", err)
	}
}

func TestHWCheckpointSurvivesRestart(t *testing.T) {
	c := newCluster(t, logstore.FsyncAlways, 1, 2)
	c.set(Assignment{Topic: "t", Partition: 0, Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1,
		ISR: []int32{1, 2}, MinISR: 1})
	end1 := c.mustProduce(1, AcksAll, "a", "b")
	c.block(2)
	end2 := c.mustProduce(1, AcksLeader, "c")
	if err := c.part(1).Log().Sync(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if hw := c.part(1).HighWatermark(); hw != end1 {
		t.Fatalf("HW %d, want %d", hw, end1)
	}
	c.restart(1)
	lp := c.part(1)
	if leo := lp.Log().LogEndOffset(); leo != end2 {
		t.Fatalf("log end %d after restart, want %d", leo, end2)
	}
	if hw := lp.HighWatermark(); hw != end1 {
		t.Fatalf("HW %d after restart, want the checkpointed %d (not the log end %d)", hw, end1, end2)
	}
	if rr, _, err := lp.Read(0, 1<<20); err != nil || rr.NextOffset != end1 {
		t.Fatalf("read after restart: next %d, err %v; want to stop at %d", rr.NextOffset, err, end1)
	}
	cp, err := logstore.ReadOffsetCheckpoint(c.node(1).logs.Dir() + "/" + HighWatermarkCheckpointFile)
	if err != nil || cp["t-0"] != end1 {
		t.Fatalf("checkpoint %v, %v", cp, err)
	}
	c.unblock(2)
	if err := lp.WaitHW(testCtx(t), end2-1); err != nil {
		t.Fatalf("HW stuck after the follower caught up: %v", err)
	}
	c.requireIdentical(1, 2)
	// A follower keeps its HW across a restart too.
	hw2 := c.part(2).HighWatermark()
	c.restart(2)
	if hw := c.part(2).HighWatermark(); hw != hw2 {
		t.Fatalf("follower HW %d after restart, want %d", hw, hw2)
	}
}

func TestApplyIsIdempotentAndStaleIgnored(t *testing.T) {
	c := newCluster(t, logstore.FsyncNever, 1, 2)
	a := Assignment{Topic: "t", Partition: 0, Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 3, PartitionEpoch: 4,
		ISR: []int32{1, 2}, MinISR: 1}
	c.set(a)
	m2 := c.node(2).m
	m2.applyMu.Lock()
	f := m2.fetchers[1]
	m2.applyMu.Unlock()
	if f == nil {
		t.Fatal("node 2 does not fetch from node 1")
	}
	c.applyAll()
	m2.applyMu.Lock()
	same := m2.fetchers[1] == f
	m2.applyMu.Unlock()
	if !same {
		t.Fatal("re-applying the same metadata replaced the fetcher")
	}
	// An older image (a lagging metadata view) changes nothing.
	old := a
	old.PartitionEpoch, old.ISR, old.Config = 3, []int32{1}, c.cfg
	if err := c.node(1).m.Apply([]Assignment{old}); err != nil {
		t.Fatal(err)
	}
	if isr := isrOf(c.part(1)); !slices.Equal(isr, []int32{1, 2}) {
		t.Fatalf("stale assignment applied: ISR %v", isr)
	}
	c.mustProduce(1, AcksAll, "x")
	c.requireIdentical(1, 2)
}

func expectRequest(t *testing.T, fc *fakeController) AlterPartitionRequest {
	t.Helper()
	select {
	case r := <-fc.requests:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no AlterPartition request")
	}
	return AlterPartitionRequest{}
}

func expectNoRequest(t *testing.T, fc *fakeController) {
	t.Helper()
	select {
	case r := <-fc.requests:
		t.Fatalf("unexpected AlterPartition request %+v", r)
	default:
	}
}

// TestManyPartitionsOneFetcherPerLeader: partitions led by different nodes,
// each follower with one fetcher per leader carrying all of them, and
// responses bounded by a small MaxBytes (so catching up takes many fetches).
func TestManyPartitionsOneFetcherPerLeader(t *testing.T) {
	c := newClusterWith(t, logstore.FsyncNever, func(o *Options) { o.FetchMaxBytes = 300 }, 1, 2, 3)
	leaders := []int32{1, 2, 3, 1, 2, 3}
	c.ctrl.mu.Lock()
	for i, l := range leaders {
		c.ctrl.state[key{"t", int32(i)}] = Assignment{Topic: "t", Partition: int32(i), Replicas: []int32{1, 2, 3},
			Leader: l, LeaderEpoch: 1, PartitionEpoch: 1, ISR: []int32{1, 2, 3}, MinISR: 2, Config: c.cfg}
	}
	c.ctrl.mu.Unlock()
	c.applyAll()
	for id := int32(1); id <= 3; id++ {
		m := c.node(id).m
		m.applyMu.Lock()
		var to []int32
		for l, f := range m.fetchers {
			to = append(to, l)
			f.mu.Lock()
			if n := len(f.parts); n != 2 {
				t.Errorf("node %d's fetcher from %d carries %d partitions, want 2", id, l, n)
			}
			f.mu.Unlock()
		}
		m.applyMu.Unlock()
		slices.Sort(to)
		if want := slices.DeleteFunc([]int32{1, 2, 3}, func(x int32) bool { return x == id }); !slices.Equal(to, want) {
			t.Errorf("node %d fetches from %v, want %v", id, to, want)
		}
	}
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, len(leaders))
	for i, l := range leaders {
		p, _ := c.node(l).m.Partition("t", int32(i))
		batches := make([][]byte, 20)
		for j := range batches {
			batches[j] = batch(t, p, fmt.Sprintf("p%d-%d", i, j), string(bytes.Repeat([]byte{'x'}, 100)))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j, b := range batches {
				acks := AcksAll
				if j%2 == 0 {
					acks = AcksLeader
				}
				if _, err := p.Append(ctx, b, acks); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, l := range leaders {
		lp, _ := c.node(l).m.Partition("t", int32(i))
		want := logBytes(t, lp.Log())
		for id := int32(1); id <= 3; id++ {
			p, _ := c.node(id).m.Partition("t", int32(i))
			waitUntil(t, fmt.Sprintf("node %d holds t-%d", id, i), func() bool { return p.Log().LogEndOffset() == lp.Log().LogEndOffset() })
			if err := p.WaitHW(ctx, lp.Log().LogEndOffset()-1); err != nil {
				t.Fatal(err)
			}
			if got := logBytes(t, p.Log()); !bytes.Equal(got, want) {
				t.Fatalf("node %d's t-%d differs from its leader's", id, i)
			}
		}
	}
}
