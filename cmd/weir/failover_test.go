package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weir/client"
	"weir/logstore"
)

// Fault-injection tests of real clusters (DESIGN.md §7): kill -9 and SIGSTOP
// of partition leaders and of the controller, a divergent log tail, rolling
// restarts, consumers racing the high watermark, and brokers joining and
// leaving. Every test ends by checking that no acknowledged record was lost
// and, where the nodes can be stopped cleanly, that the replicas hold
// byte-identical logs up to the HW.
//
// Setting WEIR_TEST_LOGS to a directory keeps every node's log there, under
// the test's name; a failing test logs the tail of each node's log anyway.

// failoverShutdownTimeoutMs bounds a clean stop. The last node of a cluster
// to stop has no Raft quorum left to move its leaderships with and would
// otherwise wait half the default 30 s for it.
const failoverShutdownTimeoutMs = "6000"

// sessionTimeout is broker.session.timeout.ms (the default: the tests do not
// change it).
const sessionTimeout = 2500 * time.Millisecond

// failoverArgs are the serve flags of the clusters of this file, plus extra.
func failoverArgs(extra ...string) []string {
	return append([]string{"--shutdown-timeout-ms", failoverShutdownTimeoutMs}, extra...)
}

// TestFailoverKillLeader kills the leader of a partition with kill -9 five
// times (WEIR_FAILOVER_SAMPLES=n for n times), each time waiting for a new
// leader to take an acks=all write and for the killed node to come back into
// the ISR, while acks=all producers write through every node. Every
// acknowledged record must then be readable exactly once at its offset, the
// offsets below the HW contiguous, and the replicas byte-identical up to the
// HW. It logs the median time from kill -9 to the first acknowledged write.
func TestFailoverKillLeader(t *testing.T) {
	began := time.Now()
	kills := 5
	if v := os.Getenv("WEIR_FAILOVER_SAMPLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 50 {
			t.Fatalf("WEIR_FAILOVER_SAMPLES=%q: want a number of kills between 1 and 50", v)
		}
		kills = n
	}
	// No preferred-leader restore: leadership stays where the failover put
	// it, so each round kills whichever node leads now.
	c := startCluster(t, 3, failoverArgs("--auto-leader-rebalance-enable=false")...)
	c.keepLogs()
	minISR2 := map[string]string{"min.insync.replicas": "2"}
	c.createTopic("fk1", 1, 3, minISR2)
	c.createTopic("fk3", 3, 3, minISR2)
	c.waitSettled(30*time.Second, "fk1", "fk3")

	budget := time.Duration(kills)*15*time.Second + 30*time.Second
	p1 := c.startLoad("fk1", loadOptions{Name: "a", MaxTime: budget})
	p3 := c.startLoad("fk3", loadOptions{Name: "b", MaxTime: budget})
	p1.waitAcked(200, 30*time.Second)
	p3.waitAcked(200, 30*time.Second)

	clients := c.nodeClients()
	var probes []ackedRecord
	var samples []time.Duration
	for round := 1; round <= kills; round++ {
		leader := c.leaderOf("fk1", 0)
		ctrl := c.controller()
		before := c.partitionInfo("fk1", 0)
		ackedBefore := p1.count()
		killedAt := time.Now()
		c.kill9(leader)
		rec, at := c.firstAck(clients, "fk1", 0, fmt.Sprintf("probe-%d", round), 30*time.Second)
		took := at.Sub(killedAt)
		samples = append(samples, took)
		probes = append(probes, rec)
		after := c.partitionInfo("fk1", 0)
		if int(after.Leader) == leader || after.LeaderEpoch <= before.LeaderEpoch {
			t.Errorf("round %d: after kill -9 of leader %d (epoch %d) the leader is %d at epoch %d",
				round, leader, before.LeaderEpoch, after.Leader, after.LeaderEpoch)
		}
		t.Logf("round %d: killed leader %d (epoch %d; the controller was %d); leader %d (epoch %d) acknowledged a write %v later",
			round, leader, before.LeaderEpoch, ctrl, after.Leader, after.LeaderEpoch, took.Round(time.Millisecond))
		c.restart(leader)
		c.waitSettled(45*time.Second, "fk1", "fk3")
		// The producers go on through the failover.
		p1.waitAcked(ackedBefore+50, 30*time.Second)
	}
	t.Logf("failover (kill -9 of the leader to the first acks=all write acknowledged): median %v over %d samples %v",
		median(samples).Round(time.Millisecond), len(samples), roundAll(samples))

	acked1 := append(p1.stop(), probes...)
	acked3 := p3.stop()
	p1.logFailures(t, "fk1")
	p3.logFailures(t, "fk3")
	final := c.verifyFinal(map[string][]ackedRecord{"fk1": acked1, "fk3": acked3}, true)
	c.stopAll()
	c.compareReplicaLogs(final)
	t.Logf("%d + %d acknowledged records verified; took %v", len(acked1), len(acked3), time.Since(began).Round(time.Millisecond))
}

// TestZombieLeaderCannotCommit freezes the leader of a partition with SIGSTOP
// past the session timeout while producers write, lets a new leader take
// over, and sends the frozen leader requests that it reads only when it is
// resumed. Nothing it acknowledges with acks=all may be lost; what it
// appended alone (acks=1) must be truncated when it rejoins as a follower,
// and the replicas end byte-identical up to the HW.
func TestZombieLeaderCannotCommit(t *testing.T) {
	began := time.Now()
	c := startCluster(t, 3, failoverArgs()...)
	c.keepLogs()
	c.createTopic("zb", 1, 3, map[string]string{"min.insync.replicas": "2"})
	c.waitSettled(30*time.Second, "zb")
	load := c.startLoad("zb", loadOptions{Workers: 3, Timeout: 3 * time.Second, MaxTime: 80 * time.Second})
	load.waitAcked(300, 30*time.Second)

	zombie := c.leaderOf("zb", 0)
	before := c.partitionInfo("zb", 0)
	c.sigstop(zombie)
	pausedAt := time.Now()

	// Requests that reach the zombie while it is frozen: it reads them when
	// it runs again, perhaps still believing it leads.
	type zombieCall struct {
		acks   string
		values []string
		status int
		served string
		resp   client.ProduceResponse
		err    error
	}
	calls := make([]*zombieCall, 6)
	var zwg sync.WaitGroup
	for i := range calls {
		zc := &zombieCall{acks: []string{client.AcksOne, client.AcksAll}[i%2]}
		for j := range 3 {
			zc.values = append(zc.values, fmt.Sprintf("zombie-%d-%d", i, j))
		}
		calls[i] = zc
		zwg.Add(1)
		go func() {
			defer zwg.Done()
			zc.status, zc.served, zc.resp, zc.err = rawProduce(c.node(zombie).url(), "zb", 0, zc.acks, zc.values, 40*time.Second)
		}()
	}

	// The cluster moves on without it.
	c.waitFor(30*time.Second, fmt.Sprintf("broker %d fenced and a new leader of zb/0", zombie), func() error {
		if err := c.tryBrokerState(int32(zombie), "fenced"); err != nil {
			return err
		}
		l, err := c.tryLeaderOf("zb", 0)
		if err != nil {
			return err
		}
		if int(l) == zombie || c.isLive(l) != nil {
			return fmt.Errorf("leader %d", l)
		}
		return nil
	})
	probe, at := c.firstAck(c.nodeClients(), "zb", 0, "zombie-probe", 30*time.Second)
	t.Logf("leader %d frozen; a new leader acknowledged a write %v later", zombie, at.Sub(pausedAt).Round(time.Millisecond))
	load.waitAcked(load.count()+100, 30*time.Second)
	after := c.partitionInfo("zb", 0)
	if after.LeaderEpoch <= before.LeaderEpoch {
		t.Errorf("leader epoch %d after the failover, was %d", after.LeaderEpoch, before.LeaderEpoch)
	}

	c.sigcont(zombie)
	waitGroupFor(t, &zwg, 60*time.Second, "the requests sent to the zombie")
	c.waitReady(zombie)
	c.waitSettled(45*time.Second, "zb")

	acked := append(load.stop(), probe)
	load.logFailures(t, "zb")
	var alone []ackedRecord // acks=1 writes the zombie acknowledged
	for i, zc := range calls {
		t.Logf("request %d to the frozen leader (acks=%s): status %d served by %q err %v offsets %+v",
			i, zc.acks, zc.status, zc.served, zc.err, zc.resp.Offsets)
		if zc.status != http.StatusOK {
			continue
		}
		if len(zc.resp.Offsets) != len(zc.values) {
			t.Errorf("request %d: %d outcomes for %d records", i, len(zc.resp.Offsets), len(zc.values))
			continue
		}
		for j, o := range zc.resp.Offsets {
			if o.ErrorCode != "" || o.Offset < 0 {
				continue
			}
			r := ackedRecord{Partition: o.Partition, Offset: o.Offset, Value: zc.values[j]}
			if zc.acks == client.AcksAll {
				acked = append(acked, r)
			} else {
				alone = append(alone, r)
			}
		}
	}
	final := c.verifyFinal(map[string][]ackedRecord{"zb": acked}, true)
	// An acks=1 write the zombie took either made it to the new leader's
	// log at its offset, or it is nowhere.
	where := valueOffsets(final["zb"][0].records)
	survived, truncated := 0, 0
	for _, r := range alone {
		offs := where[r.Value]
		switch {
		case len(offs) == 0:
			truncated++
		case len(offs) == 1 && offs[0] == r.Offset:
			survived++
		default:
			t.Errorf("acks=1 record %q acknowledged by the zombie at offset %d is at offsets %v", r.Value, r.Offset, offs)
		}
	}
	t.Logf("the zombie acknowledged %d acks=1 records: %d survived, %d were truncated", len(alone), survived, truncated)
	c.stopAll()
	c.compareReplicaLogs(final)
	t.Logf("%d acknowledged records verified; took %v", len(acked), time.Since(began).Round(time.Millisecond))
}

// TestDivergentTailTruncated gives the leader a tail no follower has: the
// followers are frozen (with them the Raft quorum, so the ISR cannot shrink
// and a clean election stays possible), the leader takes acks=1 writes alone
// and is killed; a follower becomes leader (min.insync.replicas=1) and takes
// new writes at the same offsets under a new epoch. The old leader, restarted,
// must truncate its tail through the diverging-epoch protocol and end
// byte-identical with the new leader.
func TestDivergentTailTruncated(t *testing.T) {
	began := time.Now()
	c := startCluster(t, 3, failoverArgs()...)
	c.keepLogs()
	c.createTopic("dv", 1, 3, map[string]string{"min.insync.replicas": "1"})
	c.waitSettled(30*time.Second, "dv")
	p0 := int32(0)

	// A committed prefix on all three.
	var acked []ackedRecord
	for i := range 5 {
		acked = append(acked, c.mustProduce("dv", &p0, fmt.Sprintf("prefix-%d", i), 10, client.AcksAll)...)
	}
	c.waitFor(30*time.Second, "the prefix replicated", func() error {
		_, err := c.tryQuiescent("dv")
		return err
	})

	leader := c.leaderOf("dv", 0)
	before := c.partitionInfo("dv", 0)
	var followers []int
	for _, r := range before.Replicas {
		if int(r) != leader {
			followers = append(followers, int(r))
		}
	}
	for _, f := range followers {
		c.sigstop(f)
	}
	// The tail: acks=1 writes that only the leader gets, one request at a
	// time (a follower's fetch that was waiting at the leader may still take
	// the first of them).
	lc := c.nodeClients()[leader-1]
	var tail []ackedRecord
	for i := range 20 {
		values := make([]string, 5)
		recs := make([]client.ProduceRecord, 5)
		for j := range values {
			values[j] = fmt.Sprintf("tail-%d-%d", i, j)
			recs[j] = client.StringValue(values[j])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := lc.Produce(ctx, "dv", &p0, recs, client.AcksOne, 5*time.Second)
		cancel()
		if err != nil {
			t.Fatalf("acks=1 write %d to leader %d while its followers are frozen: %v", i, leader, err)
		}
		for j, o := range resp.Offsets {
			tail = append(tail, ackedRecord{Partition: 0, Offset: o.Offset, Value: values[j]})
		}
	}
	leaderLEO := tail[len(tail)-1].Offset + 1
	c.kill9(leader)
	for _, f := range followers {
		c.sigcont(f)
	}

	var newLeader int32
	var newLEO int64
	c.waitFor(30*time.Second, "a follower leading dv/0", func() error {
		l, err := c.tryLeaderOf("dv", 0)
		if err != nil {
			return err
		}
		if int(l) == leader || l < 0 || c.isLive(l) != nil {
			return fmt.Errorf("leader %d", l)
		}
		info, err := c.tryPartitionInfo("dv", 0)
		if err != nil {
			return err
		}
		if info.Leader != l || info.LogEndOffset < 0 {
			return fmt.Errorf("leader %d has not reported its offsets (%+v)", l, info)
		}
		newLeader, newLEO = l, info.LogEndOffset
		return nil
	})
	after := c.partitionInfo("dv", 0)
	t.Logf("old leader %d (epoch %d) had log end %d; new leader %d (epoch %d) has log end %d",
		leader, before.LeaderEpoch, leaderLEO, newLeader, after.LeaderEpoch, newLEO)
	if newLEO >= leaderLEO {
		t.Fatalf("no divergence was arranged: the new leader %d already holds the whole tail (log end %d >= %d)", newLeader, newLEO, leaderLEO)
	}
	if after.LeaderEpoch <= before.LeaderEpoch {
		t.Fatalf("leader epoch %d after the election, was %d", after.LeaderEpoch, before.LeaderEpoch)
	}

	// New history at the same offsets, under the new epoch.
	var fresh []ackedRecord
	for i := range 10 {
		fresh = append(fresh, c.mustProduce("dv", &p0, fmt.Sprintf("new-%d", i), 5, client.AcksAll)...)
	}
	if fresh[0].Offset != newLEO {
		t.Errorf("the first write to the new leader got offset %d, its log end was %d", fresh[0].Offset, newLEO)
	}

	c.restart(leader)
	c.waitSettled(45*time.Second, "dv")
	acked = append(acked, fresh...)
	final := c.verifyFinal(map[string][]ackedRecord{"dv": acked}, true)
	where := valueOffsets(final["dv"][0].records)
	kept := 0
	for _, r := range tail {
		offs := where[r.Value]
		switch {
		case r.Offset < newLEO:
			// A follower had fetched it before it froze: it is history now.
			if len(offs) != 1 || offs[0] != r.Offset {
				t.Errorf("tail record %q at %d, below the new leader's log end %d, is at offsets %v", r.Value, r.Offset, newLEO, offs)
			}
			kept++
		case len(offs) != 0:
			t.Errorf("divergent tail record %q (offset %d on the old leader) survived at offsets %v", r.Value, r.Offset, offs)
		}
	}
	t.Logf("%d of %d tail records had reached a follower; the other %d were truncated", kept, len(tail), len(tail)-kept)
	c.stopAll()
	c.compareReplicaLogs(final)
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}

// TestControllerFailoverDuringFencing kills a broker that leads partitions
// and, before the session timeout fences it, the controller too. The new
// controller (five voters keep a majority) must fence the broker and give its
// partitions new leaders from their ISRs.
func TestControllerFailoverDuringFencing(t *testing.T) {
	began := time.Now()
	c := startCluster(t, 5, failoverArgs()...)
	c.keepLogs()
	c.createTopic("cf", 10, 3, map[string]string{"min.insync.replicas": "2"})
	c.waitSettled(30*time.Second, "cf")
	load := c.startLoad("cf", loadOptions{Workers: 2, Timeout: 3 * time.Second, MaxTime: 80 * time.Second})
	load.waitAcked(200, 30*time.Second)

	ctrl := c.controller()
	before := c.topicInfo("cf")
	victim, most := 0, 0
	for id := 1; id <= 5; id++ {
		if id == ctrl {
			continue
		}
		n := 0
		for _, p := range before.Partitions {
			if int(p.Leader) == id {
				n++
			}
		}
		if n > most {
			victim, most = id, n
		}
	}
	if victim == 0 {
		t.Fatalf("no broker but the controller %d leads a partition: %+v", ctrl, before.Partitions)
	}

	killedAt := time.Now()
	c.kill9(victim)
	if err := c.tryBrokerState(int32(victim), "alive"); err != nil {
		t.Fatalf("broker %d, killed %v ago, is no longer alive before the session timeout: %v", victim, time.Since(killedAt), err)
	}
	c.kill9(ctrl)
	gap := time.Since(killedAt)
	if gap >= sessionTimeout {
		t.Fatalf("the controller died %v after the broker, not within the session timeout %v", gap, sessionTimeout)
	}
	t.Logf("killed broker %d (leading %d partitions), then controller %d %v later", victim, most, ctrl, gap.Round(time.Millisecond))

	dead := []int32{int32(victim), int32(ctrl)}
	var newCtrl int32
	c.waitFor(30*time.Second, "a new controller fencing both and re-electing their partitions", func() error {
		id, err := c.tryController()
		if err != nil {
			return err
		}
		if err := c.isLive(id); err != nil {
			return fmt.Errorf("controller %d: %w", id, err)
		}
		newCtrl = id
		for _, d := range dead {
			if err := c.tryBrokerState(d, "fenced"); err != nil {
				return err
			}
		}
		for _, n := range c.live() {
			var tp client.Topic
			if err := c.getJSON(n, "/v1/topics/cf", &tp); err != nil {
				return err
			}
			for _, p := range tp.Partitions {
				old := partitionOf(before, p.Partition)
				want := without32(old.ISR, dead...)
				if !sameSet(p.ISR, want) {
					return fmt.Errorf("node %d: cf/%d ISR %v, want %v (was %v)", n.id, p.Partition, p.ISR, want, old.ISR)
				}
				if p.Leader < 0 || !slices.Contains(p.ISR, p.Leader) {
					return fmt.Errorf("node %d: cf/%d leader %d outside ISR %v", n.id, p.Partition, p.Leader, p.ISR)
				}
				if slices.Contains(dead, old.Leader) && p.LeaderEpoch <= old.LeaderEpoch {
					return fmt.Errorf("node %d: cf/%d leader %d at epoch %d, was %d at %d", n.id, p.Partition, p.Leader, p.LeaderEpoch, old.Leader, old.LeaderEpoch)
				}
			}
		}
		return nil
	})
	t.Logf("controller %d fenced brokers %v and re-elected their partitions %v after the first kill",
		newCtrl, dead, time.Since(killedAt).Round(time.Millisecond))

	// Partitions with two in-sync replicas left take acks=all writes; those
	// with one refuse them (min.insync.replicas=2) with NOT_ENOUGH_REPLICAS.
	clients := c.nodeClients()
	now := c.topicInfo("cf")
	var probes []ackedRecord
	for _, p := range now.Partitions {
		if len(p.ISR) >= 2 {
			r, _ := c.firstAck(clients, "cf", p.Partition, fmt.Sprintf("after-%d", p.Partition), 20*time.Second)
			probes = append(probes, r)
			continue
		}
		c.waitFor(20*time.Second, fmt.Sprintf("NOT_ENOUGH_REPLICAS from cf/%d (ISR %v)", p.Partition, p.ISR), func() error {
			live := c.live()
			cl := clients[live[0].id-1]
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			part := p.Partition
			resp, err := cl.Produce(ctx, "cf", &part, []client.ProduceRecord{client.StringValue(fmt.Sprintf("refused-%d", part))}, client.AcksAll, 2*time.Second)
			if err == nil {
				t.Errorf("cf/%d with ISR %v (min.insync.replicas=2) acknowledged an acks=all write: %+v", part, p.ISR, resp.Offsets)
				return nil
			}
			if client.IsCode(err, client.CodeNotEnoughReplicas) {
				return nil
			}
			return err
		})
	}

	c.restart(victim)
	c.restart(ctrl)
	c.waitSettled(60*time.Second, "cf")
	acked := append(load.stop(), probes...)
	load.logFailures(t, "cf")
	c.verifyFinal(map[string][]ackedRecord{"cf": acked}, false)
	t.Logf("%d acknowledged records verified; took %v", len(acked), time.Since(began).Round(time.Millisecond))
}

// TestConsumersNeverSeeAboveHW has consumers on every node poll every
// partition while acks=all producers write, across a kill -9 of a leader:
// every record they are given must lie below the high_watermark of the same
// reply, and be, once everything has settled, the record the final log holds
// at that offset.
func TestConsumersNeverSeeAboveHW(t *testing.T) {
	began := time.Now()
	c := startCluster(t, 3, failoverArgs()...)
	c.keepLogs()
	c.createTopic("hw", 3, 3, map[string]string{"min.insync.replicas": "2"})
	c.waitSettled(30*time.Second, "hw")
	load := c.startLoad("hw", loadOptions{Workers: 2, Timeout: 3 * time.Second, MaxTime: 80 * time.Second})
	cons := c.startConsumers("hw", 3)
	load.waitAcked(300, 30*time.Second)
	cons.waitSeen(t, 100, 30*time.Second)

	leader := c.leaderOf("hw", 0)
	c.kill9(leader)
	probe, _ := c.firstAck(c.nodeClients(), "hw", 0, "hw-probe", 30*time.Second)
	load.waitAcked(load.count()+200, 40*time.Second)
	c.restart(leader)
	c.waitSettled(45*time.Second, "hw")
	load.waitAcked(load.count()+200, 30*time.Second)
	acked := append(load.stop(), probe)
	load.logFailures(t, "hw")

	// Let every consumer read up to the final HW, then stop them.
	var info client.Topic
	c.waitFor(30*time.Second, "the final HW", func() error {
		var err error
		info, err = c.tryQuiescent("hw")
		return err
	})
	hws := map[int32]int64{}
	for _, p := range info.Partitions {
		hws[p.Partition] = p.HighWatermark
	}
	c.waitFor(30*time.Second, "every consumer at the final HW", func() error { return cons.allAt(hws) })
	stats := cons.stop()

	final := c.verifyFinal(map[string][]ackedRecord{"hw": acked}, false)
	for _, v := range stats.violations {
		t.Error(v)
	}
	checked := 0
	for p, seen := range stats.seen {
		fp := final["hw"][p]
		for off, v := range seen {
			got, ok := fp.records[off]
			switch {
			case !ok || off >= fp.hw:
				t.Errorf("a consumer read %q at hw/%d offset %d, which is not in the final log (HW %d)", v, p, off, fp.hw)
			case string(got.value) != v:
				t.Errorf("a consumer read %q at hw/%d offset %d; the final log holds %q there", v, p, off, got.value)
			default:
				checked++
			}
		}
	}
	t.Logf("consumers: %d replies with records, %d distinct records checked against the final log; "+
		"%d OFFSET_OUT_OF_RANGE replies, %d replies whose HW was below one seen before by the same consumer, %d other errors %v",
		stats.replies, checked, stats.outOfRange, stats.hwBack, stats.errors, stats.errorKinds)
	for _, d := range stats.oorDetails {
		t.Logf("OFFSET_OUT_OF_RANGE: %s", d)
	}
	t.Logf("%d acknowledged records verified; took %v", len(acked), time.Since(began).Round(time.Millisecond))
}

// TestRollingRestartUnderLoad stops each node in turn with SIGTERM (a
// controlled shutdown), restarts it and waits for it to be back in every ISR,
// while acks=all producers write. Producers may see only retriable errors
// (503/504 with "retriable": true) or connection errors from the node that is
// down; no acknowledged record may be lost.
func TestRollingRestartUnderLoad(t *testing.T) {
	began := time.Now()
	c := startCluster(t, 3)
	c.keepLogs()
	c.createTopic("rr", 3, 3, map[string]string{"min.insync.replicas": "2"})
	c.waitSettled(30*time.Second, "rr")
	load := c.startLoad("rr", loadOptions{Workers: 3, Timeout: 5 * time.Second, MaxTime: 85 * time.Second})
	load.waitAcked(200, 30*time.Second)

	type window struct {
		node     int
		from, to time.Time
	}
	var down []window
	for i := 1; i <= 3; i++ {
		w := window{node: i, from: time.Now()}
		c.stop(i)
		stopped := time.Since(w.from)
		c.restart(i)
		w.to = time.Now()
		down = append(down, w)
		c.waitSettled(45*time.Second, "rr")
		t.Logf("node %d: stopped in %v, down %v, back in every ISR %v after the SIGTERM",
			i, stopped.Round(time.Millisecond), w.to.Sub(w.from).Round(time.Millisecond), time.Since(w.from).Round(time.Millisecond))
		load.waitAcked(load.count()+100, 30*time.Second)
	}
	acked := load.stop()

	for _, w := range down {
		t.Logf("node %d down from %s (SIGTERM) to %s (ready again)", w.node, clock(w.from), clock(w.to))
	}
	// Errors that are not allowed, grouped by node and kind.
	type group struct {
		n           int
		first, last produceFailure
	}
	kinds := map[string]int{}
	badGroups := map[string]*group{}
	var badOrder []string
	bad := 0
	for _, f := range load.failures() {
		wasDown := false
		for _, w := range down {
			if w.node == f.Node && f.Start.Before(w.to) && f.End.After(w.from) {
				wasDown = true
			}
		}
		var kind string
		allowed := true
		switch {
		case f.Status == http.StatusServiceUnavailable || f.Status == http.StatusGatewayTimeout:
			kind = fmt.Sprintf("%d %s retriable=%v", f.Status, f.Code, f.Retriable)
			allowed = f.Retriable
		case f.Status == 0 && wasDown:
			kind = "connection error to the node that was down"
		case f.Status == 0:
			kind = "connection error to a node that was up"
			allowed = false
		default:
			kind = fmt.Sprintf("%d %s retriable=%v", f.Status, f.Code, f.Retriable)
			allowed = false
		}
		kinds[kind]++
		if allowed {
			continue
		}
		bad++
		key := fmt.Sprintf("node %d (down: %v): %s", f.Node, wasDown, kind)
		g := badGroups[key]
		if g == nil {
			g = &group{first: f}
			badGroups[key] = g
			badOrder = append(badOrder, key)
		}
		g.n++
		g.last = f
	}
	for _, key := range badOrder {
		g := badGroups[key]
		t.Errorf("%d produce errors a rolling restart must not cause, from %s, sent between %s and %s; first: %s",
			g.n, key, clock(g.first.Start), clock(g.last.Start), g.first.Err)
	}
	t.Logf("producer errors during the rolling restart: %d in all, %d not allowed; by kind: %v", len(load.failures()), bad, kinds)
	c.verifyFinal(map[string][]ackedRecord{"rr": acked}, false)
	t.Logf("%d acknowledged records verified; took %v", len(acked), time.Since(began).Round(time.Millisecond))
}

// TestJoinAndRemoveBroker starts a fourth node with --join: it becomes a
// non-voter broker that holds replicas; joining again is a no-op; DELETE
// /v1/brokers/4 is refused while it is alive and while it holds the only
// in-sync copy of a partition, and accepted after that.
func TestJoinAndRemoveBroker(t *testing.T) {
	began := time.Now()
	c := startCluster(t, 3, failoverArgs()...)
	c.keepLogs()
	j := c.addJoiner(c.node(2).url(), failoverArgs()...)
	if j.id != 4 {
		t.Fatalf("the joiner is node %d", j.id)
	}
	var b4 client.Broker
	c.waitFor(30*time.Second, "four brokers, broker 4 a non-voter", func() error {
		var err error
		b4, err = c.tryFourBrokers()
		return err
	})

	// It holds replicas: a topic over all four brokers, every one in sync.
	c.createTopic("j4", 1, 4, map[string]string{"min.insync.replicas": "4"})
	c.waitSettled(30*time.Second, "j4")
	var acked []ackedRecord
	p0 := int32(0)
	for i := range 5 {
		acked = append(acked, c.mustProduce("j4", &p0, fmt.Sprintf("j4-%d", i), 10, client.AcksAll)...)
	}
	c.createTopic("solo", 8, 1, nil)
	c.waitSettled(30*time.Second, "solo")
	only := int32(-1)
	for _, p := range c.topicInfo("solo").Partitions {
		if slices.Equal(p.Replicas, []int32{4}) {
			only = p.Partition
		}
	}
	if only < 0 {
		t.Fatalf("no partition of solo (8 partitions, RF 1, 4 brokers) was placed on broker 4 alone: %+v", c.topicInfo("solo").Partitions)
	}

	// Joining again with the same id and addresses is no new member; the
	// restarted process registers as a new incarnation (a new broker epoch)
	// and is unfenced once caught up.
	c.stop(4)
	c.restart(4)
	c.waitFor(30*time.Second, "broker 4 back as a new incarnation", func() error {
		again, err := c.tryFourBrokers()
		if err != nil {
			return err
		}
		if again.Epoch <= b4.Epoch || again.State != "alive" {
			return fmt.Errorf("broker 4 is %s with epoch %d after joining again, %d before", again.State, again.Epoch, b4.Epoch)
		}
		return nil
	})
	c.waitSettled(30*time.Second, "j4", "solo")

	deleteBroker := func() (int, string) {
		st, body := call(t, "DELETE", c.node(1).url()+"/v1/brokers/4", "", nil)
		return st, string(body)
	}
	if st, body := deleteBroker(); st/100 != 4 {
		t.Fatalf("DELETE /v1/brokers/4 while it is alive: %d %s, want a 4xx refusal", st, body)
	} else {
		t.Logf("DELETE of the alive broker refused: %d %s", st, body)
	}

	c.kill9(4)
	c.waitFor(30*time.Second, "broker 4 fenced, solo/"+fmt.Sprint(only)+" leaderless with ISR [4]", func() error {
		if err := c.tryBrokerState(4, "fenced"); err != nil {
			return err
		}
		info, err := c.tryPartitionInfo("solo", only)
		if err != nil {
			return err
		}
		if info.Leader != -1 || !slices.Equal(info.ISR, []int32{4}) {
			return fmt.Errorf("solo/%d: leader %d ISR %v", only, info.Leader, info.ISR)
		}
		return nil
	})
	if st, body := deleteBroker(); st/100 != 4 {
		t.Fatalf("DELETE /v1/brokers/4 while it holds the only in-sync copy of solo/%d: %d %s, want a 4xx refusal", only, st, body)
	} else {
		t.Logf("DELETE of the only in-sync copy refused: %d %s", st, body)
	}
	if _, err := c.tryBroker(c.live()[0], 4); err != nil {
		t.Fatalf("broker 4 after a refused DELETE: %v", err)
	}

	if st, body := call(t, "DELETE", c.node(1).url()+"/v1/topics/solo", "", nil); st != http.StatusNoContent {
		t.Fatalf("DELETE /v1/topics/solo: %d %s", st, body)
	}
	c.waitFor(30*time.Second, "solo gone on every live node", func() error {
		for _, n := range c.live() {
			var tp client.Topic
			err := c.getJSON(n, "/v1/topics/solo", &tp)
			if err == nil {
				return fmt.Errorf("node %d still describes solo", n.id)
			}
			if !strings.Contains(err.Error(), "404") {
				return err
			}
		}
		return nil
	})
	st, body := deleteBroker()
	if st/100 != 2 {
		t.Fatalf("DELETE /v1/brokers/4 once it holds no only copy: %d %s", st, body)
	}
	c.waitFor(30*time.Second, "three brokers on every live node", func() error {
		for _, n := range c.live() {
			var cl client.Cluster
			if err := c.getJSON(n, "/v1/cluster", &cl); err != nil {
				return err
			}
			if len(cl.Brokers) != 3 {
				return fmt.Errorf("node %d: brokers %+v", n.id, cl.Brokers)
			}
			for _, b := range cl.Brokers {
				if b.ID == 4 {
					return fmt.Errorf("node %d still lists broker 4", n.id)
				}
			}
		}
		return nil
	})
	c.verifyAcked("j4", acked)
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}

// ---- cluster helpers ----

// keepLogs logs the tail of every node's log when the test fails and, when
// WEIR_TEST_LOGS names a directory, copies every log there. It kills the
// nodes first so that the logs are complete.
func (c *cluster) keepLogs() {
	t := c.t
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.kill()
		}
		dir := os.Getenv("WEIR_TEST_LOGS")
		if dir != "" {
			dir = filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Logf("keeping logs: %v", err)
				dir = ""
			}
		}
		for _, n := range c.nodes {
			b, err := os.ReadFile(n.logPath)
			if err != nil {
				continue
			}
			if t.Failed() {
				tail := b
				if len(tail) > 6000 {
					tail = tail[len(tail)-6000:]
				}
				t.Logf("node %d log (last %d bytes):\n%s", n.id, len(tail), tail)
			}
			if dir != "" {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("node-%d.log", n.id)), b, 0o644); err != nil {
					t.Logf("keeping logs: %v", err)
				}
			}
		}
	})
}

// addJoiner starts one more node that joins the cluster through via (a node's
// URL) with --join, and waits until it is ready.
func (c *cluster) addJoiner(via string, extraArgs ...string) *node {
	c.t.Helper()
	dir := filepath.Dir(c.nodes[0].dataDir)
	id := len(c.nodes) + 1
	nd := &node{
		t: c.t, id: id,
		dataDir:  filepath.Join(dir, fmt.Sprintf("node-%d", id)),
		httpAddr: freePort(c.t),
		raftAddr: freePort(c.t),
		logPath:  filepath.Join(dir, fmt.Sprintf("node-%d.log", id)),
	}
	nd.args = append([]string{"serve", "--node-id", itoa(id), "--data-dir", nd.dataDir,
		"--http-addr", nd.httpAddr, "--raft-addr", nd.raftAddr, "--join", via, "--cluster-secret", c.secret}, extraArgs...)
	c.t.Cleanup(nd.kill)
	c.nodes = append(c.nodes, nd)
	nd.start()
	return nd
}

// tryFourBrokers checks that every live node lists brokers 1-4, alive, 1-3
// voters and 4 not, and returns broker 4.
func (c *cluster) tryFourBrokers() (client.Broker, error) {
	var b4 client.Broker
	for _, n := range c.live() {
		var cl client.Cluster
		if err := c.getJSON(n, "/v1/cluster", &cl); err != nil {
			return b4, err
		}
		if len(cl.Brokers) != 4 {
			return b4, fmt.Errorf("node %d lists %d brokers: %+v", n.id, len(cl.Brokers), cl.Brokers)
		}
		for _, b := range cl.Brokers {
			if b.State != "alive" || b.Voter != (b.ID != 4) || b.HTTPAddr != c.node(int(b.ID)).httpAddr {
				return b4, fmt.Errorf("node %d: broker %+v (want alive, voter only for 1-3, at %s)", n.id, b, c.node(int(b.ID)).httpAddr)
			}
			if b.ID == 4 {
				b4 = b
			}
		}
	}
	return b4, nil
}

// createTopic creates a topic (nil configs: the defaults).
func (c *cluster) createTopic(name string, partitions, rf int, configs map[string]string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.client().CreateTopic(ctx, client.CreateTopicRequest{Name: name, Partitions: &partitions,
		ReplicationFactor: &rf, Configs: configs}); err != nil {
		c.t.Fatalf("create topic %s: %v", name, err)
	}
}

// topicInfo is GET /v1/topics/{t} from a live node.
func (c *cluster) topicInfo(topic string) client.Topic {
	c.t.Helper()
	var tp client.Topic
	c.waitFor(clusterAgreeTimeout, "topic "+topic, func() error {
		live := c.live()
		if len(live) == 0 {
			return errors.New("no live node")
		}
		return c.getJSON(live[0], "/v1/topics/"+url.PathEscape(topic), &tp)
	})
	return tp
}

// tryPartitionInfo is one partition as a live node describes it.
func (c *cluster) tryPartitionInfo(topic string, p int32) (client.PartitionInfo, error) {
	live := c.live()
	if len(live) == 0 {
		return client.PartitionInfo{}, errors.New("no live node")
	}
	var tp client.Topic
	if err := c.getJSON(live[0], "/v1/topics/"+url.PathEscape(topic), &tp); err != nil {
		return client.PartitionInfo{}, err
	}
	for _, pi := range tp.Partitions {
		if pi.Partition == p {
			return pi, nil
		}
	}
	return client.PartitionInfo{}, fmt.Errorf("node %d: topic %s has no partition %d", live[0].id, topic, p)
}

func (c *cluster) partitionInfo(topic string, p int32) client.PartitionInfo {
	c.t.Helper()
	var pi client.PartitionInfo
	c.waitFor(clusterAgreeTimeout, fmt.Sprintf("%s/%d described", topic, p), func() error {
		var err error
		pi, err = c.tryPartitionInfo(topic, p)
		return err
	})
	return pi
}

// tryBroker is GET /v1/brokers/{id} from node n.
func (c *cluster) tryBroker(n *node, id int32) (client.Broker, error) {
	var b client.Broker
	err := c.getJSON(n, fmt.Sprintf("/v1/brokers/%d", id), &b)
	return b, err
}

// tryBrokerState checks that every live node shows broker id in state.
func (c *cluster) tryBrokerState(id int32, state string) error {
	live := c.live()
	if len(live) == 0 {
		return errors.New("no live node")
	}
	for _, n := range live {
		b, err := c.tryBroker(n, id)
		if err != nil {
			return err
		}
		if b.State != state {
			return fmt.Errorf("node %d: broker %d is %s, want %s", n.id, id, b.State, state)
		}
	}
	return nil
}

// trySettled checks that every live node describes each topic alike: every
// partition led by a live node, every replica in the ISR.
func (c *cluster) trySettled(topics ...string) error {
	live := c.live()
	if len(live) == 0 {
		return errors.New("no live node")
	}
	for _, topic := range topics {
		var ref client.Topic
		for i, n := range live {
			var tp client.Topic
			if err := c.getJSON(n, "/v1/topics/"+url.PathEscape(topic), &tp); err != nil {
				return err
			}
			for _, p := range tp.Partitions {
				if p.Leader < 0 {
					return fmt.Errorf("node %d: %s/%d has no leader (ISR %v)", n.id, topic, p.Partition, p.ISR)
				}
				if err := c.isLive(p.Leader); err != nil {
					return fmt.Errorf("node %d: %s/%d leader %d: %w", n.id, topic, p.Partition, p.Leader, err)
				}
				if !sameSet(p.ISR, p.Replicas) {
					return fmt.Errorf("node %d: %s/%d ISR %v, replicas %v", n.id, topic, p.Partition, p.ISR, p.Replicas)
				}
			}
			if i == 0 {
				ref = tp
				continue
			}
			for _, p := range tp.Partitions {
				r := partitionOf(ref, p.Partition)
				if p.Leader != r.Leader || p.LeaderEpoch != r.LeaderEpoch {
					return fmt.Errorf("%s/%d: node %d says leader %d epoch %d, node %d says leader %d epoch %d",
						topic, p.Partition, n.id, p.Leader, p.LeaderEpoch, live[0].id, r.Leader, r.LeaderEpoch)
				}
			}
		}
	}
	return nil
}

// waitSettled waits until trySettled holds for the topics.
func (c *cluster) waitSettled(timeout time.Duration, topics ...string) {
	c.t.Helper()
	c.waitFor(timeout, fmt.Sprintf("%v settled (full ISRs, live leaders, nodes agreeing)", topics), func() error {
		return c.trySettled(topics...)
	})
}

// tryQuiescent checks that topic is settled and that each partition's HW has
// reached its leader's log end, and returns the topic as a live node sees it.
func (c *cluster) tryQuiescent(topic string) (client.Topic, error) {
	if err := c.trySettled(topic); err != nil {
		return client.Topic{}, err
	}
	var tp client.Topic
	if err := c.getJSON(c.live()[0], "/v1/topics/"+url.PathEscape(topic), &tp); err != nil {
		return tp, err
	}
	for _, p := range tp.Partitions {
		if p.HighWatermark < 0 || p.HighWatermark != p.LogEndOffset {
			return tp, fmt.Errorf("%s/%d: HW %d, log end %d (leader %d)", topic, p.Partition, p.HighWatermark, p.LogEndOffset, p.Leader)
		}
	}
	return tp, nil
}

// mustProduce writes n records valued prefix-<i> with the given acks through
// the cluster's client (it retries what provably wrote nothing) and returns
// them as acknowledged.
func (c *cluster) mustProduce(topic string, partition *int32, prefix string, n int, acks string) []ackedRecord {
	c.t.Helper()
	values := make([]string, n)
	recs := make([]client.ProduceRecord, n)
	for i := range values {
		values[i] = fmt.Sprintf("%s-%d", prefix, i)
		recs[i] = client.StringValue(values[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.client().Produce(ctx, topic, partition, recs, acks, 10*time.Second)
	if err != nil {
		c.t.Fatalf("produce %s to %s: %v", prefix, topic, err)
	}
	out := make([]ackedRecord, 0, n)
	for i, o := range resp.Offsets {
		out = append(out, ackedRecord{Partition: o.Partition, Offset: o.Offset, Value: values[i]})
	}
	return out
}

// nodeClients are one client per node (index id-1) that neither retries nor
// fails over: each call goes to that node only.
func (c *cluster) nodeClients() []*client.Client {
	c.t.Helper()
	out := make([]*client.Client, len(c.nodes))
	for i, n := range c.nodes {
		cl, err := client.New([]string{n.url()}, client.WithRetry(client.RetryPolicy{Attempts: 1}), client.WithDialTimeout(time.Second))
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(cl.CloseIdleConnections)
		out[i] = cl
	}
	return out
}

// firstAck writes one record at a time with acks=all to topic/partition
// through the live nodes in turn until one is acknowledged, and returns it
// with the time of the acknowledgement.
func (c *cluster) firstAck(clients []*client.Client, topic string, partition int32, prefix string, timeout time.Duration) (ackedRecord, time.Time) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for k := 0; time.Now().Before(deadline); k++ {
		live := c.live()
		if len(live) == 0 {
			c.t.Fatal("firstAck: no live node")
		}
		n := live[k%len(live)]
		value := fmt.Sprintf("%s-%d", prefix, k)
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		resp, err := clients[n.id-1].Produce(ctx, topic, &partition, []client.ProduceRecord{client.StringValue(value)}, client.AcksAll, 2*time.Second)
		cancel()
		if err == nil && len(resp.Offsets) == 1 {
			return ackedRecord{Partition: partition, Offset: resp.Offsets[0].Offset, Value: value}, time.Now()
		}
		lastErr = err
		pause(20 * time.Millisecond) // between attempts, bounded by the deadline
	}
	c.t.Fatalf("no acks=all write to %s/%d acknowledged within %v: %v", topic, partition, timeout, lastErr)
	return ackedRecord{}, time.Time{}
}

// pause waits between polls of a condition.
func pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}

// stopAll stops every running node cleanly (SIGTERM), the controller last.
func (c *cluster) stopAll() {
	c.t.Helper()
	ctrl, _ := c.tryController()
	var last *node
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		if int32(n.id) == ctrl {
			last = n
			continue
		}
		n.stop()
	}
	if last != nil {
		last.stop()
	}
}

// finalPartition is a partition's log as read through the API once all was
// settled.
type finalPartition struct {
	hw       int64
	replicas []int32
	records  map[int64]stored
}

// verifyFinal waits until the topics are settled and quiescent (HW = log
// end), reads each partition whole (through every live node when allNodes)
// and checks: offsets 0..HW-1 all present, nothing at or above the HW, no
// value twice, and every acknowledged record at its offset.
func (c *cluster) verifyFinal(acked map[string][]ackedRecord, allNodes bool) map[string]map[int32]*finalPartition {
	c.t.Helper()
	out := map[string]map[int32]*finalPartition{}
	for topic, recs := range acked {
		var info client.Topic
		c.waitFor(60*time.Second, topic+" settled and quiescent", func() error {
			var err error
			info, err = c.tryQuiescent(topic)
			return err
		})
		out[topic] = map[int32]*finalPartition{}
		for _, p := range info.Partitions {
			fp := &finalPartition{hw: p.HighWatermark, replicas: p.Replicas}
			readers := c.live()
			if !allNodes {
				readers = readers[:1]
			}
			for _, n := range readers {
				var got map[int64]stored
				c.waitFor(30*time.Second, fmt.Sprintf("%s/%d read through node %d", topic, p.Partition, n.id), func() error {
					var hw int64
					var err error
					got, hw, err = c.tryReadPartition(n, topic, p.Partition)
					if err == nil && hw != fp.hw {
						err = fmt.Errorf("HW %d, was %d", hw, fp.hw)
					}
					return err
				})
				if fp.records == nil {
					fp.records = got
					continue
				}
				if !sameRecords(fp.records, got) {
					c.t.Errorf("%s/%d reads differently through node %d than through node %d", topic, p.Partition, n.id, readers[0].id)
				}
			}
			out[topic][p.Partition] = fp
			for off := int64(0); off < fp.hw; off++ {
				if _, ok := fp.records[off]; !ok {
					c.t.Errorf("%s/%d: offset %d missing below the HW %d", topic, p.Partition, off, fp.hw)
					break
				}
			}
			if int64(len(fp.records)) != fp.hw {
				c.t.Errorf("%s/%d: %d records read, HW %d", topic, p.Partition, len(fp.records), fp.hw)
			}
			for v, offs := range valueOffsets(fp.records) {
				if len(offs) > 1 {
					c.t.Errorf("%s/%d: value %q at offsets %v", topic, p.Partition, v, offs)
				}
			}
		}
		lost := 0
		for _, a := range recs {
			fp := out[topic][a.Partition]
			if fp == nil {
				c.t.Errorf("acknowledged record %q at %s/%d: no such partition", a.Value, topic, a.Partition)
				continue
			}
			if g, ok := fp.records[a.Offset]; !ok || string(g.value) != a.Value {
				lost++
				if lost <= 20 {
					c.t.Errorf("acknowledged record %q at %s/%d offset %d lost or changed: final log has %q (present %v), HW %d, value at offsets %v",
						a.Value, topic, a.Partition, a.Offset, g.value, ok, fp.hw, valueOffsets(fp.records)[a.Value])
				}
			}
		}
		if lost > 0 {
			c.t.Errorf("%s: %d of %d acknowledged records lost or changed", topic, lost, len(recs))
		}
	}
	return out
}

// tryReadPartition reads a partition whole through node n (base64, so values
// come back as stored), checking that each reply starts at the offset asked
// for, has no gap and stays below its HW.
func (c *cluster) tryReadPartition(n *node, topic string, p int32) (map[int64]stored, int64, error) {
	out := map[int64]stored{}
	next := int64(0)
	for range 100000 {
		u := fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=%d&encoding=base64&limit=1000", n.url(), url.PathEscape(topic), p, next)
		resp, err := c.hc.Get(u)
		if err != nil {
			return nil, 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, 0, fmt.Errorf("node %d: GET %s: %s: %s", n.id, u, resp.Status, body)
		}
		var cr client.ConsumeResponse
		if err := json.Unmarshal(body, &cr); err != nil {
			return nil, 0, fmt.Errorf("node %d: %w: %s", n.id, err, body)
		}
		for i, r := range cr.Records {
			if r.Offset != next+int64(i) {
				c.t.Errorf("%s/%d through node %d: record %d of a read at %d has offset %d", topic, p, n.id, i, next, r.Offset)
			}
			if r.Offset >= cr.HighWatermark {
				c.t.Errorf("%s/%d through node %d: offset %d served with HW %d", topic, p, n.id, r.Offset, cr.HighWatermark)
			}
			s, err := decodeStored(r)
			if err != nil {
				return nil, 0, err
			}
			out[r.Offset] = s
		}
		if cr.NextOffset >= cr.HighWatermark || cr.NextOffset <= next {
			return out, cr.HighWatermark, nil
		}
		next = cr.NextOffset
	}
	return nil, 0, errors.New("too many reads")
}

func decodeStored(r client.ConsumedRecord) (stored, error) {
	var s stored
	var err error
	if r.KeyB64 != nil {
		if s.key, err = base64.StdEncoding.DecodeString(*r.KeyB64); err != nil {
			return s, err
		}
	}
	if r.ValueB64 != nil {
		if s.value, err = base64.StdEncoding.DecodeString(*r.ValueB64); err != nil {
			return s, err
		}
	}
	return s, nil
}

// compareReplicaLogs opens every replica's partition directory (the nodes
// must be stopped) and checks that each holds exactly the same batches, byte
// for byte, from its log start to the HW, and nothing beyond the HW.
func (c *cluster) compareReplicaLogs(final map[string]map[int32]*finalPartition) {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.running() {
			c.t.Fatalf("compareReplicaLogs: node %d is running", n.id)
		}
	}
	for topic, parts := range final {
		for p, fp := range parts {
			var ref []byte
			var refID int32
			for _, r := range fp.replicas {
				dir := filepath.Join(c.node(int(r)).dataDir, fmt.Sprintf("%s-%d", topic, p))
				data, leo, epochs, err := replicaBytes(dir, fp.hw)
				if err != nil {
					c.t.Errorf("%s/%d replica %d: %v", topic, p, r, err)
					continue
				}
				if leo != fp.hw {
					c.t.Errorf("%s/%d replica %d: log end %d, HW %d (epochs %v)", topic, p, r, leo, fp.hw, epochs)
				}
				if ref == nil {
					ref, refID = data, r
					continue
				}
				if !bytes.Equal(ref, data) {
					c.t.Errorf("%s/%d: replicas %d and %d differ below the HW %d: %s", topic, p, refID, r, fp.hw, firstDifference(ref, data))
				}
			}
			c.t.Logf("%s/%d: %d replicas compared up to HW %d (%d bytes)", topic, p, len(fp.replicas), fp.hw, len(ref))
		}
	}
}

// replicaBytes reads a stopped replica's batches from its log start up to hw.
func replicaBytes(dir string, hw int64) ([]byte, int64, []logstore.EpochEntry, error) {
	l, err := logstore.Open(dir, logstore.DefaultConfig(), logstore.Options{Clean: true})
	if err != nil {
		return nil, 0, nil, err
	}
	defer l.Close()
	var data []byte
	off := l.LogStartOffset()
	for off < hw {
		res, err := l.Read(off, 8<<20, hw)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("read at %d: %w", off, err)
		}
		if len(res.Data) == 0 {
			return nil, 0, nil, fmt.Errorf("no batch at offset %d below the HW %d (log end %d)", off, hw, l.LogEndOffset())
		}
		data = append(data, res.Data...)
		off = res.NextOffset
	}
	return data, l.LogEndOffset(), l.Epochs(), nil
}

// firstDifference describes the first batch where two logs differ.
func firstDifference(a, b []byte) string {
	for {
		ba, ra, oka, erra := logstore.NextBatch(a)
		bb, rb, okb, errb := logstore.NextBatch(b)
		if erra != nil || errb != nil {
			return fmt.Sprintf("bad batch framing: %v / %v", erra, errb)
		}
		if !oka || !okb {
			return fmt.Sprintf("one log ends first (%d and %d bytes left)", len(a), len(b))
		}
		if !bytes.Equal(ba, bb) {
			return fmt.Sprintf("batch at offset %d (epoch %d, %d records, crc %08x) vs batch at offset %d (epoch %d, %d records, crc %08x)",
				ba.BaseOffset(), ba.LeaderEpoch(), ba.RecordCount(), ba.CRC(), bb.BaseOffset(), bb.LeaderEpoch(), bb.RecordCount(), bb.CRC())
		}
		a, b = ra, rb
	}
}

// ---- producer that knows which node each request went to ----

// loadOptions bound a loadProducer; zero fields take the defaults.
type loadOptions struct {
	Name       string        // prefix of the values, unique per producer of a topic
	Workers    int           // default 2
	Batch      int           // records per request, default 10
	MaxRecords int           // default 1,000,000
	MaxTime    time.Duration // default 60s
	Timeout    time.Duration // server-side timeout_ms of a request, default 5s
	Acks       string        // default all
}

// produceFailure is one request that was not wholly acknowledged.
type produceFailure struct {
	Node       int // the node it was sent to
	Start, End time.Time
	Status     int // HTTP status; 0 when no reply came
	Code       string
	Retriable  bool
	Err        string
}

// loadProducer writes to a topic in the background, each request to one
// node (every worker goes round the nodes), without client-side retries, and
// records what was acknowledged and every failure.
type loadProducer struct {
	t      testing.TB
	cancel context.CancelFunc
	wg     sync.WaitGroup
	budget atomic.Int64
	mu     sync.Mutex
	acked  []ackedRecord
	fails  []produceFailure
}

func (c *cluster) startLoad(topic string, o loadOptions) *loadProducer {
	c.t.Helper()
	o.Name = cmpOr(o.Name, "v")
	o.Workers = cmpOr(o.Workers, 2)
	o.Batch = cmpOr(o.Batch, 10)
	o.MaxRecords = cmpOr(o.MaxRecords, 1000000)
	o.MaxTime = cmpOr(o.MaxTime, 60*time.Second)
	o.Timeout = cmpOr(o.Timeout, 5*time.Second)
	o.Acks = cmpOr(o.Acks, client.AcksAll)
	clients := c.nodeClients()
	ctx, cancel := context.WithTimeout(context.Background(), o.MaxTime)
	p := &loadProducer{t: c.t, cancel: cancel}
	p.budget.Store(int64(o.MaxRecords))
	for w := range o.Workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.work(ctx, clients, topic, w, o)
		}()
	}
	c.t.Cleanup(func() { p.stop() })
	return p
}

func (p *loadProducer) work(ctx context.Context, clients []*client.Client, topic string, w int, o loadOptions) {
	seq := 0
	for k := w; ctx.Err() == nil; k++ {
		n := min(int64(o.Batch), p.budget.Add(-int64(o.Batch))+int64(o.Batch))
		if n <= 0 {
			return
		}
		values := make([]string, n)
		recs := make([]client.ProduceRecord, n)
		for i := range values {
			values[i] = fmt.Sprintf("%s-w%d-%d", o.Name, w, seq)
			recs[i] = client.StringValue(values[i])
			seq++
		}
		target := k % len(clients)
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, o.Timeout+3*time.Second)
		resp, err := clients[target].Produce(rctx, topic, nil, recs, o.Acks, o.Timeout)
		cancel()
		end := time.Now()
		if err != nil && ctx.Err() != nil {
			return // stopped during the request: its outcome is unknown, not a failure
		}
		acked := 0
		p.mu.Lock()
		if resp != nil {
			for i, off := range resp.Offsets {
				if i < len(values) && off.ErrorCode == "" && off.Offset >= 0 {
					p.acked = append(p.acked, ackedRecord{Partition: off.Partition, Offset: off.Offset, Value: values[i]})
					acked++
				}
			}
		}
		if err != nil || acked < len(values) {
			f := produceFailure{Node: target + 1, Start: start, End: end}
			var apiErr *client.APIError
			switch {
			case errors.As(err, &apiErr):
				f.Status, f.Code, f.Retriable = apiErr.Status, apiErr.Code, apiErr.Retriable
				f.Err = err.Error()
			case err != nil:
				f.Err = err.Error()
			default:
				f.Status, f.Err = http.StatusOK, fmt.Sprintf("%d of %d records acknowledged: %+v", acked, len(values), resp.Offsets)
			}
			p.fails = append(p.fails, f)
		}
		p.mu.Unlock()
		if err != nil {
			select { // back off a little while the cluster fails over
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

func (p *loadProducer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

func (p *loadProducer) failures() []produceFailure {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.fails)
}

// waitAcked waits until at least n records were acknowledged.
func (p *loadProducer) waitAcked(n int, timeout time.Duration) {
	p.t.Helper()
	pollUntil(p.t, timeout, fmt.Sprintf("%d acknowledged records", n), func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.acked) >= n {
			return nil
		}
		last := "none"
		if len(p.fails) > 0 {
			f := p.fails[len(p.fails)-1]
			last = fmt.Sprintf("to node %d: %s", f.Node, f.Err)
		}
		return fmt.Errorf("%d acknowledged, %d failed requests (last %s)", len(p.acked), len(p.fails), last)
	})
}

// stop ends the producer and returns every acknowledged record.
func (p *loadProducer) stop() []ackedRecord {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acked)
}

// logFailures logs the failed requests by node and kind.
func (p *loadProducer) logFailures(t testing.TB, what string) {
	t.Helper()
	kinds := map[string]int{}
	for _, f := range p.failures() {
		k := fmt.Sprintf("node %d: %d %s", f.Node, f.Status, f.Code)
		if f.Status == 0 {
			k = fmt.Sprintf("node %d: no reply", f.Node)
		}
		kinds[k]++
	}
	t.Logf("%s producer: %d acknowledged, %d failed requests %v", what, p.count(), len(p.failures()), kinds)
}

// rawProduce posts values to topic/partition at base with acks and returns
// the status, the Weir-Served-By header and the reply.
func rawProduce(base, topic string, partition int32, acks string, values []string, timeout time.Duration) (int, string, client.ProduceResponse, error) {
	var pr client.ProduceResponse
	recs := make([]client.ProduceRecord, len(values))
	for i, v := range values {
		recs[i] = client.StringValue(v)
	}
	body, err := json.Marshal(client.ProduceRequest{Records: recs})
	if err != nil {
		return 0, "", pr, err
	}
	u := fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?acks=%s&timeout_ms=%d", base, url.PathEscape(topic), partition, acks, (timeout / 2).Milliseconds())
	hc := &http.Client{Timeout: timeout}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post(u, client.ContentTypeJSON, bytes.NewReader(body))
	if err != nil {
		return 0, "", pr, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header.Get(client.HeaderServedBy), pr, err
	}
	if err := json.Unmarshal(out, &pr); err != nil {
		return resp.StatusCode, resp.Header.Get(client.HeaderServedBy), pr, fmt.Errorf("%w: %s", err, out)
	}
	return resp.StatusCode, resp.Header.Get(client.HeaderServedBy), pr, nil
}

// ---- consumers polling every partition through every node ----

// consumerStats is what the consumers saw.
type consumerStats struct {
	seen       map[int32]map[int64]string // partition -> offset -> value
	violations []string
	replies    int // replies that carried records
	outOfRange int // OFFSET_OUT_OF_RANGE replies
	oorDetails []string
	hwBack     int // replies whose HW was below one the same consumer saw before
	errors     int // other failures
	errorKinds map[string]int
}

type consumers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	stats  consumerStats
	pos    map[[2]int]int64 // (node id, partition) -> next offset
	count  int              // consumers started
}

// startConsumers starts one consumer per node and partition of topic, each
// polling its node from offset 0 with wait_ms.
func (c *cluster) startConsumers(topic string, partitions int) *consumers {
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Second)
	cs := &consumers{cancel: cancel, pos: map[[2]int]int64{}, count: len(c.nodes) * partitions,
		stats: consumerStats{seen: map[int32]map[int64]string{}, errorKinds: map[string]int{}}}
	for p := range partitions {
		cs.stats.seen[int32(p)] = map[int64]string{}
	}
	for _, n := range c.nodes {
		for p := range partitions {
			cs.wg.Add(1)
			go func() {
				defer cs.wg.Done()
				cs.poll(ctx, n.id, n.url(), topic, int32(p))
			}()
		}
	}
	c.t.Cleanup(func() { cs.stop() })
	return cs
}

func (cs *consumers) poll(ctx context.Context, id int, base, topic string, p int32) {
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	pos, maxHW := int64(0), int64(0)
	backoff := func() {
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	fail := func(kind string) {
		cs.mu.Lock()
		cs.stats.errors++
		cs.stats.errorKinds[kind]++
		cs.mu.Unlock()
		backoff()
	}
	for ctx.Err() == nil {
		u := fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=%d&wait_ms=300&limit=200&encoding=base64", base, url.PathEscape(topic), p, pos)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			fail("request: " + err.Error())
			continue
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				fail("no reply")
			}
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			fail("reading the reply")
			continue
		}
		if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			var eb client.ErrorBody
			_ = json.Unmarshal(body, &eb)
			cs.mu.Lock()
			cs.stats.outOfRange++
			if len(cs.stats.oorDetails) < 10 {
				hw := int64(-1)
				if eb.HighWatermark != nil {
					hw = *eb.HighWatermark
				}
				cs.stats.oorDetails = append(cs.stats.oorDetails, fmt.Sprintf(
					"%s node %d (served by %s) partition %d: offset %d out of range, HW %d; this consumer had seen HW %d",
					clock(time.Now()), id, resp.Header.Get(client.HeaderServedBy), p, pos, hw, maxHW))
			}
			cs.mu.Unlock()
			backoff()
			continue
		}
		if resp.StatusCode != http.StatusOK {
			var eb client.ErrorBody
			_ = json.Unmarshal(body, &eb)
			fail(fmt.Sprintf("%d %s", resp.StatusCode, eb.ErrorCode))
			continue
		}
		var cr client.ConsumeResponse
		if err := json.Unmarshal(body, &cr); err != nil {
			fail("bad reply")
			continue
		}
		cs.mu.Lock()
		bad := func(format string, args ...any) {
			cs.stats.violations = append(cs.stats.violations,
				fmt.Sprintf("consumer of partition %d on node %d, read at %d: ", p, id, pos)+fmt.Sprintf(format, args...))
		}
		if cr.HighWatermark < maxHW {
			cs.stats.hwBack++
		}
		maxHW = max(maxHW, cr.HighWatermark)
		if cr.NextOffset > cr.HighWatermark {
			bad("next_offset %d above high_watermark %d", cr.NextOffset, cr.HighWatermark)
		}
		if len(cr.Records) > 0 {
			cs.stats.replies++
		}
		for i, r := range cr.Records {
			if r.Offset >= cr.HighWatermark {
				bad("record at offset %d served with high_watermark %d", r.Offset, cr.HighWatermark)
			}
			if r.Offset != pos+int64(i) {
				bad("record %d has offset %d", i, r.Offset)
			}
			s, err := decodeStored(r)
			if err != nil {
				bad("record at %d: %v", r.Offset, err)
				continue
			}
			if prev, ok := cs.stats.seen[p][r.Offset]; ok && prev != string(s.value) {
				bad("offset %d holds %q, another read gave %q", r.Offset, s.value, prev)
			} else if !ok {
				cs.stats.seen[p][r.Offset] = string(s.value)
			}
		}
		if cr.NextOffset > pos {
			pos = cr.NextOffset
		}
		cs.pos[[2]int{id, int(p)}] = pos
		cs.mu.Unlock()
	}
}

// waitSeen waits until the consumers saw at least n distinct records.
func (cs *consumers) waitSeen(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	pollUntil(t, timeout, fmt.Sprintf("consumers seeing %d records", n), func() error {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		total := 0
		for _, m := range cs.stats.seen {
			total += len(m)
		}
		if total < n {
			return fmt.Errorf("%d seen, errors %v", total, cs.stats.errorKinds)
		}
		return nil
	})
}

// allAt says which consumer has not reached the given HWs yet.
func (cs *consumers) allAt(hws map[int32]int64) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for key, pos := range cs.pos {
		if pos != hws[int32(key[1])] {
			return fmt.Errorf("the consumer of partition %d on node %d is at %d, HW %d", key[1], key[0], pos, hws[int32(key[1])])
		}
	}
	if len(cs.pos) < cs.count {
		return fmt.Errorf("only %d of %d consumers have had a reply", len(cs.pos), cs.count)
	}
	return nil
}

func (cs *consumers) stop() consumerStats {
	cs.cancel()
	cs.wg.Wait()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.stats
}

// ---- small helpers ----

// waitGroupFor waits for wg, failing the test after timeout.
func waitGroupFor(t testing.TB, wg *sync.WaitGroup, timeout time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("waited %v for %s", timeout, what)
	}
}

func partitionOf(tp client.Topic, p int32) client.PartitionInfo {
	for _, pi := range tp.Partitions {
		if pi.Partition == p {
			return pi
		}
	}
	return client.PartitionInfo{Partition: p, Leader: -1}
}

func sameSet(a, b []int32) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func without32(list []int32, drop ...int32) []int32 {
	var out []int32
	for _, v := range list {
		if !slices.Contains(drop, v) {
			out = append(out, v)
		}
	}
	return out
}

func sameRecords(a, b map[int64]stored) bool {
	if len(a) != len(b) {
		return false
	}
	for off, r := range a {
		s, ok := b[off]
		if !ok || !bytes.Equal(r.key, s.key) || !bytes.Equal(r.value, s.value) {
			return false
		}
	}
	return true
}

// valueOffsets maps each value of a log to the offsets holding it.
func valueOffsets(recs map[int64]stored) map[string][]int64 {
	out := map[string][]int64{}
	for off, r := range recs {
		out[string(r.value)] = append(out[string(r.value)], off)
	}
	for _, offs := range out {
		slices.Sort(offs)
	}
	return out
}

// clock is a wall-clock time as the nodes' logs show it.
func clock(t time.Time) string { return t.UTC().Format("15:04:05.000") }

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// TestTornTailQuickRestart kills the leader with kill -9, tears the tail
// off its newest segment (recovery cuts its log below the HW) and restarts
// it at once, well within the session timeout. The restarted process is a
// new incarnation: it must not lead or sit in the ISR with its shorter log,
// where followers would truncate acknowledged records to match it. Every
// acknowledged record stays, and the replicas end byte-identical.
func TestTornTailQuickRestart(t *testing.T) {
	c := startCluster(t, 3, failoverArgs()...)
	c.keepLogs()
	c.createTopic("tt", 1, 3, map[string]string{"min.insync.replicas": "2"})
	c.waitSettled(30*time.Second, "tt")
	p0 := int32(0)
	var acked []ackedRecord
	for i := range 10 {
		acked = append(acked, c.mustProduce("tt", &p0, fmt.Sprintf("before-%d", i), 20, client.AcksAll)...)
	}
	leader := c.leaderOf("tt", 0)
	c.kill9(leader)
	segs, err := filepath.Glob(filepath.Join(c.node(leader).dataDir, "tt-0", "*.log"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments of tt-0 on node %d: %v %v", leader, segs, err)
	}
	slices.Sort(segs)
	newest := segs[len(segs)-1]
	st, err := os.Stat(newest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(newest, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	c.restart(leader)
	for i := range 10 {
		acked = append(acked, c.mustProduce("tt", &p0, fmt.Sprintf("after-%d", i), 20, client.AcksAll)...)
	}
	c.waitSettled(45*time.Second, "tt")
	final := c.verifyFinal(map[string][]ackedRecord{"tt": acked}, true)
	c.stopAll()
	c.compareReplicaLogs(final)
}
