//go:build linux

package faults

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"weir/client"
	"weir/logstore"
)

// Fault kinds.
const (
	FaultKillRandom      = "kill-random"                 // kill -9 a random node, restart it later
	FaultKillLeader      = "kill-leader"                 // kill -9 the leader of a partition
	FaultKillController  = "kill-controller"             // kill -9 the controller
	FaultKillCoordinator = "kill-coordinator"            // kill -9 the coordinator of a consumer group
	FaultPauseLeader     = "pause-leader"                // SIGSTOP a partition leader past the session timeout, then SIGCONT
	FaultPartLeader      = "partition-leader-followers"  // a partition's leader cut from its followers
	FaultPartController  = "partition-leader-controller" // a partition's leader cut from the controller
	FaultPartMinority    = "partition-minority"          // a minority of the nodes cut from the majority
	FaultPartRing        = "partition-ring"              // each node reaches only its ring neighbours (3 nodes: a bridge)
	FaultPartClient      = "partition-client-leader"     // the clients cut from a partition's leader
	FaultTornTail        = "torn-tail"                   // kill -9, tear the newest segment's tail, restart once fenced
	FaultTornTailQuick   = "torn-tail-quick-restart"     // the same, restarted at once (before the controller notices)
	FaultDiskFull        = "disk-full"                   // a node's data disk filled up, then freed
	FaultClockSkew       = "clock-skew"                  // never injected: see clockSkewUnsupported
)

// Why some faults are not injected.
const (
	clockSkewUnsupported = "not injected: a per-process wall clock offset needs a time namespace (which offsets only the " +
		"monotonic and boot clocks) or libfaketime (not installed); Weir's timeouts use the monotonic clock anyway"
)

// allFaults lists every kind the nemesis can inject, in a fixed order.
func allFaults() []string {
	return []string{
		FaultKillRandom, FaultKillLeader, FaultKillController, FaultKillCoordinator, FaultPauseLeader,
		FaultPartLeader, FaultPartController, FaultPartMinority, FaultPartRing, FaultPartClient,
		FaultTornTail, FaultTornTailQuick, FaultDiskFull,
	}
}

// nemesis injects one fault at a time into a cluster, choosing targets
// from its own seeded random source.
type nemesis struct {
	c      *cluster
	seed   int64
	n      uint64      // faults drawn so far
	rng    *rand.Rand  // the current fault's random source (see next)
	topics []TopicSpec // faults target partitions of the first
	groups []string    // the consumer groups of the load (kill-coordinator)
}

// next gives the next fault a random source of its own, derived from the
// seed and the fault's number.
func (nm *nemesis) next() {
	nm.n++
	nm.rng = rand.New(rand.NewPCG(uint64(nm.seed), 1000+nm.n))
}

// activeFault is an injected fault until heal undoes it.
type activeFault struct {
	kind, target string
	start        time.Duration
	heal         func() error
}

// skipReason says why kind cannot be injected here ("" when it can).
func (nm *nemesis) skipReason(kind string) string {
	switch kind {
	case FaultDiskFull:
		if !nm.c.tmpfs {
			return "not injected: " + nm.c.tmpfsWhy + "; filling a real disk is not an option"
		}
	case FaultClockSkew:
		return clockSkewUnsupported
	}
	return ""
}

// partitionLeader picks a random partition of the main topic and returns
// its leader and replicas (leader 0 when there is none).
func (nm *nemesis) partitionLeader() (leader int, replicas []int, desc string) {
	ts := nm.topics[0]
	p := int32(nm.rng.IntN(ts.Partitions))
	tp, err := nm.c.topic(ts.Name)
	if err != nil {
		return 0, nil, err.Error()
	}
	for _, pi := range tp.Partitions {
		if pi.Partition == p {
			for _, r := range pi.Replicas {
				replicas = append(replicas, int(r))
			}
			return int(pi.Leader), replicas, fmt.Sprintf("%s/%d", ts.Name, p)
		}
	}
	return 0, nil, "no such partition"
}

// leaderOtherThan picks, in random order, a partition of the main topic
// whose leader is not node id, and returns that leader (0 when none is).
func (nm *nemesis) leaderOtherThan(id int) (int, string) {
	ts := nm.topics[0]
	tp, err := nm.c.topic(ts.Name)
	if err != nil {
		return 0, err.Error()
	}
	for _, i := range nm.rng.Perm(len(tp.Partitions)) {
		p := tp.Partitions[i]
		if p.Leader > 0 && int(p.Leader) != id {
			return int(p.Leader), fmt.Sprintf("%s/%d", ts.Name, p.Partition)
		}
	}
	return 0, ""
}

// coordinator picks one of the load's consumer groups and returns its
// coordinator as a live node describes the group (GET /v1/groups/{g}), 0
// when none says.
func (nm *nemesis) coordinator() (int, string) {
	if len(nm.groups) == 0 {
		return 0, "coordinator of no group (the load has none)"
	}
	g := nm.groups[nm.rng.IntN(len(nm.groups))]
	var last error = errors.New("no live node")
	for _, i := range nm.c.live() {
		var desc client.Group
		if err := nm.c.ctlDo(i, "/v1/groups/"+url.PathEscape(g), &desc); err != nil {
			last = err
			continue
		}
		if desc.Coordinator > 0 {
			return int(desc.Coordinator), "coordinator of group " + g
		}
	}
	return 0, fmt.Sprintf("coordinator of group %s unknown (%v)", g, last)
}

// randomLive is a random running, unpaused node (0 when there is none).
func (nm *nemesis) randomLive() int {
	live := nm.c.live()
	if len(live) == 0 {
		return 0
	}
	return live[nm.rng.IntN(len(live))]
}

// inject starts a fault of the given kind; the returned fault's heal undoes
// it (restarting what it stopped). Faults that are over once injected (a
// torn tail) heal by waiting for the node to be ready.
func (nm *nemesis) inject(kind string) (*activeFault, error) {
	f := &activeFault{kind: kind, start: nm.c.rec.Now()}
	switch kind {
	case FaultKillRandom, FaultKillLeader, FaultKillController, FaultKillCoordinator:
		var target int
		switch kind {
		case FaultKillRandom:
			target = nm.randomLive()
		case FaultKillLeader:
			var desc string
			target, _, desc = nm.partitionLeader()
			f.target = "leader of " + desc + ": "
		case FaultKillController:
			target = nm.c.controller()
			f.target = "controller: "
		case FaultKillCoordinator:
			var desc string
			target, desc = nm.coordinator()
			f.target = desc + ": "
		}
		if target <= 0 || !nm.c.node(target).running() {
			target = nm.randomLive()
		}
		if target <= 0 {
			return nil, errors.New("no live node to kill")
		}
		f.target += fmt.Sprintf("n%d", target)
		nm.c.node(target).kill9()
		f.heal = func() error { return nm.restart(target) }
	case FaultPauseLeader:
		target, _, desc := nm.partitionLeader()
		if target <= 0 || !nm.c.node(target).running() {
			target = nm.randomLive()
		}
		f.target = fmt.Sprintf("leader of %s: n%d", desc, target)
		nm.c.node(target).pause()
		f.heal = func() error {
			nm.c.node(target).resume()
			return nm.c.node(target).waitReady(readyTimeout)
		}
	case FaultPartLeader, FaultPartController, FaultPartMinority, FaultPartRing, FaultPartClient:
		pairs, desc := nm.partitionPairs(kind)
		if len(pairs) == 0 {
			return nil, fmt.Errorf("%s: nothing to cut (%s)", kind, desc)
		}
		f.target = desc
		for _, p := range pairs {
			if err := nm.c.net.cut(p[0], p[1]); err != nil {
				_ = nm.c.net.healAll()
				return nil, err
			}
		}
		f.heal = nm.c.net.healAll
	case FaultTornTail, FaultTornTailQuick:
		return nm.tornTail(f, kind == FaultTornTailQuick)
	case FaultDiskFull:
		target := nm.randomLive()
		if target <= 0 {
			return nil, errors.New("no live node")
		}
		n := nm.c.node(target)
		fill := filepath.Join(n.mount, "fill")
		size, err := fillDisk(fill)
		if err != nil {
			_ = os.Remove(fill)
			return nil, err
		}
		f.target = fmt.Sprintf("n%d (%d MiB written until ENOSPC)", target, size>>20)
		f.heal = func() error {
			if err := os.Remove(fill); err != nil {
				return err
			}
			if !n.running() {
				return nm.restart(target) // it exited on the full disk: the checker reports that
			}
			return n.waitReady(readyTimeout)
		}
	default:
		return nil, fmt.Errorf("unknown fault %q", kind)
	}
	return f, nil
}

func (nm *nemesis) restart(i int) error {
	n := nm.c.node(i)
	if n.running() {
		return nil
	}
	if err := n.launch(); err != nil {
		return err
	}
	return n.waitReady(readyTimeout)
}

// partitionPairs lists the links a partition fault cuts.
func (nm *nemesis) partitionPairs(kind string) ([][2]endpoint, string) {
	n := nm.c.size()
	var pairs [][2]endpoint
	switch kind {
	case FaultPartLeader:
		leader, replicas, desc := nm.partitionLeader()
		if leader <= 0 {
			return nil, "no leader of " + desc
		}
		for _, r := range replicas {
			if r != leader {
				pairs = append(pairs, [2]endpoint{endpoint(leader), endpoint(r)})
			}
		}
		return pairs, fmt.Sprintf("n%d (leader of %s) from its followers %v", leader, desc, without(replicas, leader))
	case FaultPartController:
		ctrl := nm.c.controller()
		if ctrl <= 0 {
			return nil, "no controller"
		}
		leader, desc := nm.leaderOtherThan(ctrl)
		if leader <= 0 {
			// The controller leads every partition: cut another node from it.
			for _, i := range nm.rng.Perm(n) {
				if i+1 != ctrl {
					leader, desc = i+1, "no partition (the controller leads them all)"
					break
				}
			}
		}
		return [][2]endpoint{{endpoint(leader), endpoint(ctrl)}}, fmt.Sprintf("n%d (leader of %s) from the controller n%d", leader, desc, ctrl)
	case FaultPartMinority:
		perm := nm.rng.Perm(n)
		minority := perm[:(n-1)/2]
		var minIDs, majIDs []int
		for i, x := range perm {
			if i < len(minority) {
				minIDs = append(minIDs, x+1)
			} else {
				majIDs = append(majIDs, x+1)
			}
		}
		for _, a := range minIDs {
			for _, b := range majIDs {
				pairs = append(pairs, [2]endpoint{endpoint(a), endpoint(b)})
			}
		}
		return pairs, fmt.Sprintf("%v from %v", minIDs, majIDs)
	case FaultPartRing:
		perm := nm.rng.Perm(n)
		ring := make([]int, n)
		for i, x := range perm {
			ring[i] = x + 1
		}
		if n == 3 {
			// A ring of three is fully connected: cut one link, leaving a bridge.
			return [][2]endpoint{{endpoint(ring[0]), endpoint(ring[2])}},
				fmt.Sprintf("bridge: n%d and n%d see each other only through n%d", ring[0], ring[2], ring[1])
		}
		for i := range n {
			for j := i + 2; j < n; j++ {
				if i == 0 && j == n-1 {
					continue // neighbours around the ring
				}
				pairs = append(pairs, [2]endpoint{endpoint(ring[i]), endpoint(ring[j])})
			}
		}
		return pairs, fmt.Sprintf("ring %v", ring)
	case FaultPartClient:
		leader, _, desc := nm.partitionLeader()
		if leader <= 0 {
			leader = nm.randomLive()
		}
		return [][2]endpoint{{clientEndpoint, endpoint(leader)}}, fmt.Sprintf("clients from n%d (leader of %s)", leader, desc)
	}
	return nil, "unknown"
}

func without(xs []int, x int) []int {
	return slices.DeleteFunc(slices.Clone(xs), func(y int) bool { return y == x })
}

// tornTail kills a node, cuts a random number of bytes off the newest
// segment of one of its partitions, and restarts it: recovery must find the
// torn batch by its CRC and cut it, and the node must catch up. It picks a
// node whose every partition has another in-sync replica, so the bytes cut
// exist elsewhere (a torn tail of the only copy is a lost disk, not a fault
// the design promises to survive). The node restarts once the controller
// has fenced it, or at once with quick.
func (nm *nemesis) tornTail(f *activeFault, quick bool) (*activeFault, error) {
	target := 0
	for _, i := range nm.rng.Perm(nm.c.size()) {
		if nm.c.node(i+1).running() && nm.hasOtherInSyncCopies(i+1) {
			target = i + 1
			break
		}
	}
	if target == 0 {
		return nil, errors.New("no node whose partitions all have another in-sync copy")
	}
	n := nm.c.node(target)
	n.kill9()
	var dirs []string
	for _, ts := range nm.topics {
		for p := range ts.Partitions {
			dir := filepath.Join(n.dataDir, logstore.PartitionDir(ts.Name, int32(p)))
			if _, err := os.Stat(dir); err == nil {
				dirs = append(dirs, dir)
			}
		}
	}
	desc := "no partition dir"
	if len(dirs) > 0 {
		dir := dirs[nm.rng.IntN(len(dirs))]
		var err error
		if desc, err = tearNewestSegment(dir, nm.rng); err != nil {
			return nil, errors.Join(err, nm.restart(target))
		}
	}
	f.target = fmt.Sprintf("n%d: %s", target, desc)
	if !quick {
		if err := nm.waitFenced(target); err != nil {
			nm.c.rec.Event(EventNotFenced, target, "%v", err)
		}
	}
	if err := n.launch(); err != nil {
		return nil, err
	}
	f.heal = func() error { return n.waitReady(readyTimeout) }
	return f, nil
}

// waitFenced waits until the live nodes' controller says broker i is fenced.
func (nm *nemesis) waitFenced(i int) error {
	timeout := 3*nm.c.session + 10*time.Second
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if ctrl := nm.c.controller(); ctrl > 0 {
			var b client.Broker
			if err := nm.c.ctlDo(ctrl, fmt.Sprintf("/v1/brokers/%d", i), &b); err != nil {
				last = err
			} else if b.State == "fenced" {
				return nil
			} else {
				last = fmt.Errorf("broker %d is %s at the controller n%d", i, b.State, ctrl)
			}
		}
		time.Sleep(pollEvery) // polling a condition, bounded by the deadline
	}
	return fmt.Errorf("a killed node was not fenced within %v: %v", timeout, last)
}

// hasOtherInSyncCopies: every partition node i holds has another live ISR member.
func (nm *nemesis) hasOtherInSyncCopies(i int) bool {
	live := nm.c.live()
	for _, ts := range nm.topics {
		tp, err := nm.c.topic(ts.Name)
		if err != nil {
			return false
		}
		for _, p := range tp.Partitions {
			if !slices.Contains(p.Replicas, int32(i)) {
				continue
			}
			other := false
			for _, r := range p.ISR {
				if int(r) != i && slices.Contains(live, int(r)) {
					other = true
				}
			}
			if !other {
				return false
			}
		}
	}
	return true
}

// tearNewestSegment truncates the newest .log file in dir by 1..4096 bytes
// (at most its size) and describes what it did.
func tearNewestSegment(dir string, rng *rand.Rand) (string, error) {
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(logs) == 0 {
		return fmt.Sprintf("%s: no segment", filepath.Base(dir)), err
	}
	slices.Sort(logs)
	newest := logs[len(logs)-1]
	st, err := os.Stat(newest)
	if err != nil {
		return "", err
	}
	if st.Size() == 0 {
		return fmt.Sprintf("%s/%s is empty, nothing to tear", filepath.Base(dir), filepath.Base(newest)), nil
	}
	cut := 1 + rng.Int64N(min(st.Size(), 4096))
	if err := os.Truncate(newest, st.Size()-cut); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s/%s cut by %d of %d bytes", filepath.Base(dir), filepath.Base(newest), cut, st.Size()), nil
}

// fillDisk writes path until the file system is full and returns how much
// it wrote.
func fillDisk(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }() // on the error paths; the success path closes it below
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, err
	}
	// Most of it at once, then byte chunks up to ENOSPC.
	free := int64(st.Bavail) * int64(st.Bsize)
	const slack = 1 << 20
	if free > 2*slack {
		if err := unix.Fallocate(int(f.Fd()), 0, 0, free-slack); err != nil && !errors.Is(err, unix.ENOSPC) {
			return 0, fmt.Errorf("fallocate: %w", err)
		}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return 0, err
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, unix.ENOSPC) {
				break
			}
			return 0, err
		}
	}
	st2, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close %s: %w", path, err)
	}
	return st2.Size(), nil
}
