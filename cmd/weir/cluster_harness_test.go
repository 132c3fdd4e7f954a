package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weir/client"
	"weir/nodeauth"
)

// A multi-node harness for integration tests of real `weir serve`
// processes: free loopback ports, temp data dirs, the same --voters on every
// node, and every process killed by pid when the test ends. Nodes are named
// by their node id, 1..n. Helpers fail the test (t.Fatal) and so must be
// called from the test's goroutine; conditions for waitFor may call the
// non-failing try* helpers.

// Bounds on the harness's waits.
const (
	clusterReadyTimeout = 60 * time.Second // a node's /readyz after start (see node.start)
	clusterAgreeTimeout = 30 * time.Second // leaderOf, controller: until the live nodes agree
	clusterPoll         = 50 * time.Millisecond
	clusterCallTimeout  = 2 * time.Second // one HTTP call of the harness
)

// cluster is n weir processes that bootstrap one Raft group.
type cluster struct {
	t      testing.TB
	nodes  []*node // nodes[i] has node id i+1
	hc     *http.Client
	secret string // the cluster secret every node is given
}

// startCluster starts n nodes (all of them Raft voters) with extraArgs
// passed to each, and waits until every one is ready.
func startCluster(t testing.TB, n int, extraArgs ...string) *cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("startCluster: %d nodes", n)
	}
	dir := t.TempDir()
	secret, err := nodeauth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, hc: &http.Client{Timeout: clusterCallTimeout}, secret: secret}
	t.Cleanup(c.hc.CloseIdleConnections)
	var voters []string
	for i := 1; i <= n; i++ {
		nd := &node{
			t: t, id: i,
			dataDir:  filepath.Join(dir, fmt.Sprintf("node-%d", i)),
			httpAddr: freePort(t),
			raftAddr: freePort(t),
			logPath:  filepath.Join(dir, fmt.Sprintf("node-%d.log", i)),
		}
		voters = append(voters, fmt.Sprintf("%d@%s", i, nd.raftAddr))
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.args = append([]string{"serve", "--node-id", itoa(nd.id), "--data-dir", nd.dataDir,
			"--http-addr", nd.httpAddr, "--raft-addr", nd.raftAddr, "--voters", strings.Join(voters, ","),
			"--cluster-secret", c.secret}, extraArgs...)
		// Registered before the launch: a failing start still kills every
		// process already running, by pid.
		t.Cleanup(nd.kill)
	}
	// Voters elect a leader only once a quorum runs: launch all, then wait.
	for _, nd := range c.nodes {
		nd.launch()
	}
	for _, nd := range c.nodes {
		nd.waitReady(clusterReadyTimeout)
	}
	return c
}

// node returns the node with node id i.
func (c *cluster) node(i int) *node {
	c.t.Helper()
	if i < 1 || i > len(c.nodes) {
		c.t.Fatalf("no node %d in a cluster of %d", i, len(c.nodes))
	}
	return c.nodes[i-1]
}

// kill9 crashes node i (SIGKILL) and waits for the process to go.
func (c *cluster) kill9(i int) { c.t.Helper(); c.node(i).kill() }

// sigstop freezes node i; sigcont lets it run again.
func (c *cluster) sigstop(i int) { c.t.Helper(); c.node(i).pause() }
func (c *cluster) sigcont(i int) { c.t.Helper(); c.node(i).resume() }

// stop shuts node i down cleanly (SIGTERM) and waits; it fails the test
// unless the node exits 0.
func (c *cluster) stop(i int) { c.t.Helper(); c.node(i).stop() }

// restart starts node i again, with its data, after kill9 or stop, and
// waits until it is ready.
func (c *cluster) restart(i int) {
	c.t.Helper()
	n := c.node(i)
	if n.running() {
		c.t.Fatalf("restart node %d: it is still running", i)
	}
	n.start()
}

// waitReady waits until node i answers /readyz with 200.
func (c *cluster) waitReady(i int) { c.t.Helper(); c.node(i).waitReady(clusterReadyTimeout) }

// live lists the nodes whose process runs and is not SIGSTOPped.
func (c *cluster) live() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.running() && !n.paused {
			out = append(out, n)
		}
	}
	return out
}

// urls are the base URLs of every node, live or not (a client fails over).
func (c *cluster) urls() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.url()
	}
	return out
}

// client is a Go client of every node.
func (c *cluster) client() *client.Client {
	c.t.Helper()
	cl, err := client.New(c.urls(), client.WithDialTimeout(time.Second))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.CloseIdleConnections)
	return cl
}

// getJSON GETs path from node n into out; any status but 200 is an error.
func (c *cluster) getJSON(n *node, path string, out any) error {
	resp, err := c.hc.Get(n.url() + path)
	if err != nil {
		return fmt.Errorf("node %d: %w", n.id, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("node %d: GET %s: %w", n.id, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("node %d: GET %s: %s: %s", n.id, path, resp.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("node %d: GET %s: %w: %s", n.id, path, err, body)
	}
	return nil
}

// agree asks every live node for one number and returns it once they all
// answer the same one.
func (c *cluster) agree(what string, ask func(*node) (int32, error)) (int32, error) {
	live := c.live()
	if len(live) == 0 {
		return 0, errors.New("no live node")
	}
	answers := map[int]int32{}
	for _, n := range live {
		v, err := ask(n)
		if err != nil {
			return 0, err
		}
		answers[n.id] = v
	}
	first := answers[live[0].id]
	for _, v := range answers {
		if v != first {
			return 0, fmt.Errorf("the live nodes disagree on %s: %v (node id -> answer)", what, answers)
		}
	}
	return first, nil
}

// tryLeaderOf is the leader of topic/partition that every live node names
// (-1 when they agree there is none), from GET /v1/topics/{t}.
func (c *cluster) tryLeaderOf(topic string, partition int32) (int32, error) {
	return c.agree(fmt.Sprintf("the leader of %s/%d", topic, partition), func(n *node) (int32, error) {
		var tp client.Topic
		if err := c.getJSON(n, "/v1/topics/"+url.PathEscape(topic), &tp); err != nil {
			return 0, err
		}
		for _, p := range tp.Partitions {
			if p.Partition == partition {
				return p.Leader, nil
			}
		}
		return 0, fmt.Errorf("node %d: topic %s has no partition %d", n.id, topic, partition)
	})
}

// leaderOf waits until every live node names the same live leader of
// topic/partition and returns its node id.
func (c *cluster) leaderOf(topic string, partition int32) int {
	c.t.Helper()
	var leader int32
	c.waitFor(clusterAgreeTimeout, fmt.Sprintf("a leader of %s/%d", topic, partition), func() error {
		l, err := c.tryLeaderOf(topic, partition)
		if err != nil {
			return err
		}
		if err := c.isLive(l); err != nil {
			return fmt.Errorf("leader %d: %w", l, err)
		}
		leader = l
		return nil
	})
	return int(leader)
}

// tryController is the controller every live node names in GET /v1/cluster.
func (c *cluster) tryController() (int32, error) {
	return c.agree("the controller", func(n *node) (int32, error) {
		var cl client.Cluster
		if err := c.getJSON(n, "/v1/cluster", &cl); err != nil {
			return 0, err
		}
		return cl.ControllerID, nil
	})
}

// controller waits until every live node names the same live controller
// and returns its node id.
func (c *cluster) controller() int {
	c.t.Helper()
	var ctrl int32
	c.waitFor(clusterAgreeTimeout, "a controller", func() error {
		id, err := c.tryController()
		if err != nil {
			return err
		}
		if err := c.isLive(id); err != nil {
			return fmt.Errorf("controller %d: %w", id, err)
		}
		ctrl = id
		return nil
	})
	return int(ctrl)
}

// isLive says why node id is not a live node of the cluster, if it is not.
func (c *cluster) isLive(id int32) error {
	if id < 1 || int(id) > len(c.nodes) {
		return fmt.Errorf("no such node (%d nodes)", len(c.nodes))
	}
	if n := c.nodes[id-1]; !n.running() || n.paused {
		return errors.New("not running")
	}
	return nil
}

// waitFor polls cond until it returns nil; the test fails after timeout
// with what was waited for and cond's last error.
func (c *cluster) waitFor(timeout time.Duration, what string, cond func() error) {
	c.t.Helper()
	pollUntil(c.t, timeout, what, cond)
}

// pollUntil polls cond every clusterPoll until it returns nil, failing the
// test after timeout with cond's last error. (topicconfig_test.go has a
// simpler waitFor of a bool condition.)
func pollUntil(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(clusterPoll)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("waited %v for %s: %v", timeout, what, err)
		case <-tick.C:
		}
	}
}

// ackedRecord is a record whose acks=all produce was acknowledged.
type ackedRecord struct {
	Partition int32
	Offset    int64
	Value     string
}

// producerOptions bound a producer; zero fields take the defaults.
type producerOptions struct {
	Workers    int           // concurrent producers (default 2)
	Batch      int           // records per request (default 10)
	MaxRecords int           // records sent at most, over all workers (default 10000)
	MaxTime    time.Duration // the producer stops after this long (default 30s)
	Timeout    time.Duration // one request, waiting for acks=all (default 10s)
}

// producer writes with acks=all to a cluster in the background and records
// every acknowledged record. Values are unique ("w<worker>-<seq>"), so a
// record read back can be matched to its write.
type producer struct {
	t       testing.TB
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	budget  atomic.Int64 // records that may still be sent
	mu      sync.Mutex
	acked   []ackedRecord
	fails   int   // requests that failed or were only partly acknowledged
	lastErr error // the last failure's error
}

// startProducer starts producing to topic through every node of the
// cluster. stop (also called at cleanup) ends it and waits for its workers.
func (c *cluster) startProducer(topic string, opts producerOptions) *producer {
	c.t.Helper()
	opts.Workers = cmpOr(opts.Workers, 2)
	opts.Batch = cmpOr(opts.Batch, 10)
	opts.MaxRecords = cmpOr(opts.MaxRecords, 10000)
	opts.MaxTime = cmpOr(opts.MaxTime, 30*time.Second)
	opts.Timeout = cmpOr(opts.Timeout, 10*time.Second)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), opts.MaxTime)
	p := &producer{t: c.t, cancel: cancel}
	p.budget.Store(int64(opts.MaxRecords))
	for w := range opts.Workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.work(ctx, cl, topic, w, opts)
		}()
	}
	c.t.Cleanup(func() { p.stop() })
	return p
}

func (p *producer) work(ctx context.Context, cl *client.Client, topic string, w int, opts producerOptions) {
	for seq := 0; ctx.Err() == nil; {
		n := min(int64(opts.Batch), p.budget.Add(-int64(opts.Batch))+int64(opts.Batch))
		if n <= 0 {
			return // the count bound is reached
		}
		values := make([]string, n)
		recs := make([]client.ProduceRecord, n)
		for i := range values {
			values[i] = fmt.Sprintf("w%d-%d", w, seq)
			recs[i] = client.StringValue(values[i])
			seq++
		}
		rctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		resp, err := cl.Produce(rctx, topic, nil, recs, client.AcksAll, opts.Timeout)
		cancel()
		acked := 0
		p.mu.Lock()
		if resp != nil {
			for i, o := range resp.Offsets {
				if i < len(values) && o.ErrorCode == "" && o.Offset >= 0 {
					p.acked = append(p.acked, ackedRecord{Partition: o.Partition, Offset: o.Offset, Value: values[i]})
					acked++
				}
			}
		}
		if err != nil || acked < len(values) {
			p.fails++
			p.lastErr = err
		}
		p.mu.Unlock()
		if err != nil {
			// Back off a little while the cluster fails over.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// waitAcked waits until at least n records were acknowledged.
func (p *producer) waitAcked(n int, timeout time.Duration) {
	p.t.Helper()
	pollUntil(p.t, timeout, fmt.Sprintf("%d acknowledged records", n), func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.acked) >= n {
			return nil
		}
		return fmt.Errorf("%d acknowledged, %d failed requests (last error: %v)", len(p.acked), p.fails, p.lastErr)
	})
}

// stop ends the producer, waits for its workers and returns every
// acknowledged record.
func (p *producer) stop() []ackedRecord {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acked)
}

// wait lets the producer run to one of its bounds and returns every
// acknowledged record.
func (p *producer) wait() []ackedRecord {
	p.wg.Wait()
	return p.stop()
}

// verifyAcked reads every partition acked records went to, through a live
// node once the partition has a live leader, and checks that each
// acknowledged record is there, at its offset.
func (c *cluster) verifyAcked(topic string, acked []ackedRecord) {
	c.t.Helper()
	live := c.live()
	if len(live) == 0 {
		c.t.Fatal("verifyAcked: no live node")
	}
	byPartition := map[int32][]ackedRecord{}
	for _, a := range acked {
		byPartition[a.Partition] = append(byPartition[a.Partition], a)
	}
	for p, recs := range byPartition {
		c.leaderOf(topic, p)
		got, hw := readPartition(c.t, live[0].url(), topic, int(p))
		for _, a := range recs {
			if g, ok := got[a.Offset]; !ok || string(g.value) != a.Value {
				c.t.Fatalf("acknowledged record %q at %s/%d offset %d lost or changed: got %q (ok %v), HW %d",
					a.Value, topic, p, a.Offset, g.value, ok, hw)
			}
		}
	}
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// TestClusterForms: three voters form one cluster: every node ready, one
// controller all of them agree on, three alive brokers.
func TestClusterForms(t *testing.T) {
	c := startCluster(t, 3)
	ctrl := c.controller()
	if ctrl < 1 || ctrl > 3 {
		t.Fatalf("controller %d is not one of the nodes", ctrl)
	}
	c.waitFor(clusterAgreeTimeout, "three alive brokers on every node", func() error {
		var clusterID string
		for _, n := range c.nodes {
			var cl client.Cluster
			if err := c.getJSON(n, "/v1/cluster", &cl); err != nil {
				return err
			}
			if clusterID == "" {
				clusterID = cl.ClusterID
			}
			if cl.ClusterID == "" || cl.ClusterID != clusterID {
				return fmt.Errorf("node %d: cluster id %q, node 1 says %q", n.id, cl.ClusterID, clusterID)
			}
			if int(cl.ControllerID) != ctrl {
				return fmt.Errorf("node %d: controller %d, want %d", n.id, cl.ControllerID, ctrl)
			}
			if len(cl.Brokers) != 3 {
				return fmt.Errorf("node %d: %d brokers, want 3: %+v", n.id, len(cl.Brokers), cl.Brokers)
			}
			for _, b := range cl.Brokers {
				if b.ID < 1 || b.ID > 3 {
					return fmt.Errorf("node %d: unknown broker %+v", n.id, b)
				}
				if want := c.node(int(b.ID)).httpAddr; b.State != "alive" || !b.Voter || b.HTTPAddr != want {
					return fmt.Errorf("node %d: broker %+v, want alive, a voter, at %s", n.id, b, want)
				}
			}
		}
		return nil
	})
	for _, n := range c.nodes {
		resp, err := c.hc.Get(n.url() + "/readyz")
		if err != nil {
			t.Fatalf("node %d: %v", n.id, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("node %d: /readyz %s", n.id, resp.Status)
		}
	}
}

// TestClusterHarness exercises the harness on what a single node already
// does: controller, leaderOf, the producer across a kill -9 and a restart,
// SIGSTOP/SIGCONT and a clean stop.
func TestClusterHarness(t *testing.T) {
	c := startCluster(t, 1, "--shutdown-timeout-ms", "10000")
	if got := c.controller(); got != 1 {
		t.Fatalf("controller %d, want 1", got)
	}
	ctx := testCtx(t, 30*time.Second)
	two := 2
	if _, err := c.client().CreateTopic(ctx, client.CreateTopicRequest{Name: "h", Partitions: &two}); err != nil {
		t.Fatal(err)
	}
	if got := c.leaderOf("h", 1); got != 1 {
		t.Fatalf("leader of h/1: %d, want 1", got)
	}

	p := c.startProducer("h", producerOptions{MaxRecords: 5000, MaxTime: 20 * time.Second})
	p.waitAcked(200, 20*time.Second)
	c.kill9(1)
	acked := p.stop()
	if len(acked) < 200 || len(acked) > 5000 {
		t.Fatalf("%d records acknowledged, want 200..5000", len(acked))
	}
	c.restart(1)
	c.verifyAcked("h", acked)

	// A frozen node answers nothing; it is not live meanwhile.
	c.sigstop(1)
	if live := c.live(); len(live) != 0 {
		t.Fatalf("live nodes while node 1 is stopped: %d", len(live))
	}
	hc := &http.Client{Timeout: 300 * time.Millisecond}
	if resp, err := hc.Get(c.node(1).url() + "/livez"); err == nil {
		resp.Body.Close()
		t.Fatalf("a SIGSTOPped node answered: %s", resp.Status)
	}
	c.sigcont(1)
	c.waitReady(1)

	// Bounded by count: the producer stops by itself after MaxRecords.
	p = c.startProducer("h", producerOptions{Workers: 3, Batch: 7, MaxRecords: 100})
	more := p.wait()
	if len(more) != 100 {
		t.Fatalf("%d of 100 records acknowledged by a healthy node", len(more))
	}
	c.verifyAcked("h", append(acked, more...))
	c.stop(1)
}
