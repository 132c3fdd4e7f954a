//go:build linux

package faults

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"weir/client"
	"weir/logstore"
)

// phase is one cluster's run: its size, load and faults.
type phase struct {
	name  string
	nodes int
	mode  string // "" chooses (see chooseMode)
	// faults are injected in a seeded random order, each once, then random
	// kinds for duration.
	faults   []string
	duration time.Duration
	holdLo   time.Duration // how long a partition, pause or full disk lasts
	holdHi   time.Duration
	downLo   time.Duration // how long a killed node stays down
	downHi   time.Duration
	gapLo    time.Duration // quiet time after a heal
	gapHi    time.Duration
	// waitHealthy, when set, bounds a wait for a healthy cluster (full
	// ISRs) after each heal, so each fault starts from a healthy cluster.
	waitHealthy time.Duration
	partitions  int
	producers   int // acks=all workers
	acks1       bool
	pace        time.Duration // between a producer's requests
	maxOps      int           // per producer or consumer process
	// groupMembers, when set, adds two consumer groups on every topic of
	// the phase, one auto-committing and one committing explicitly, each
	// with this many members.
	groupMembers int
}

// runConfig is what a phase needs from the test.
type runConfig struct {
	bin     string
	seed    int64
	session time.Duration
	keep    bool
	logf    func(string, ...any)
}

// phaseResult is a phase's history, anomalies and what was injected.
type phaseResult struct {
	name      string
	mode      string
	modeWhy   string
	seed      int64
	dir       string
	history   History
	anomalies []Anomaly
	skipped   map[string]string
	groups    []string // how each consumer group's drain went
	err       error    // the phase could not run to its end
}

const (
	mainTopic     = "faults-all"
	acks1Topic    = "faults-one"
	settleTimeout = 90 * time.Second
	warmup        = 3 * time.Second
	quietAfter    = 3 * time.Second
	// groupSession is the members' session timeout: longer than a paused
	// node's pause, short enough that members cut off expire in a fault.
	groupSession = 6 * time.Second
	drainTimeout = 60 * time.Second
)

// groupLoads are the consumer groups of a phase (none without groupMembers):
// one auto-committing with the sticky assignor, one committing explicitly
// with range, both on every topic, members leaving and re-joining now and
// then.
func groupLoads(ph phase, topics []TopicSpec) []*groupLoad {
	if ph.groupMembers <= 0 {
		return nil
	}
	var names []string
	for _, ts := range topics {
		names = append(names, ts.Name)
	}
	mk := func(name string, auto bool, assignor string, worker int) *groupLoad {
		return &groupLoad{spec: GroupSpec{Name: name, Topics: names, AutoCommit: auto}, assignor: assignor,
			members: ph.groupMembers, session: groupSession, maxOps: ph.maxOps, worker: worker,
			leaveLo: 60, leaveHi: 160, pace: 100 * time.Millisecond}
	}
	return []*groupLoad{
		mk("faults-auto", true, "sticky", 200),
		mk("faults-explicit", false, "range", 300),
	}
}

// runPhase runs one phase; cleanup (kill, unmount, namespaces) is
// registered with addCleanup and also runs when the phase fails half-way.
func runPhase(ph phase, cfg runConfig, addCleanup func(func())) *phaseResult {
	res := &phaseResult{name: ph.name, seed: cfg.seed, skipped: map[string]string{}}
	res.mode, res.modeWhy = ph.mode, "forced by the phase"
	if res.mode == "" || os.Getenv("WEIR_FAULTS_MODE") != "" {
		res.mode, res.modeWhy = chooseMode()
	}
	logf := cfg.logf
	cleanStaleMounts(logf)
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", runDirPrefix, os.Getpid()))
	if err != nil {
		res.err = err
		return res
	}
	res.dir = dir
	logf("phase %q: %d nodes, mode %s (%s), seed %d, run dir %s", ph.name, ph.nodes, res.mode, res.modeWhy, cfg.seed, dir)

	var nw network
	if res.mode == modeNetns {
		nw, err = newNetnsNet(ph.nodes, logf)
	} else {
		nw, err = newProxyNet(ph.nodes, logf)
	}
	if err != nil {
		res.err = fmt.Errorf("network: %w", err)
		return res
	}
	addCleanup(func() {
		if err := nw.close(); err != nil {
			logf("closing the network: %v", err)
		}
	})
	rec := NewRecorder()
	c, err := startCluster(clusterConfig{nodes: ph.nodes, bin: cfg.bin, dir: dir, session: cfg.session, extra: nodeFlags()}, nw, rec, logf)
	addCleanup(c.close) // registered after the network's: runs before it
	if err != nil {
		res.err = fmt.Errorf("starting the cluster: %w", err)
		return res
	}
	topics := []TopicSpec{{Name: mainTopic, Partitions: ph.partitions, RF: 3, MinISR: 2, Acks: client.AcksAll}}
	if ph.acks1 {
		topics = append(topics, TopicSpec{Name: acks1Topic, Partitions: 2, RF: 3, MinISR: 2, Acks: client.AcksOne})
	}
	if err := createTopics(c, topics); err != nil {
		res.err = err
		return res
	}
	if err := c.waitHealthy(topics, false, settleTimeout); err != nil {
		res.err = fmt.Errorf("the new cluster is not healthy: %w", err)
		return res
	}

	// Load.
	env := &Env{Rec: rec, Client: c.client, Seed: cfg.seed}
	var workloads []Workload
	for k, ts := range topics {
		workers := ph.producers
		if ts.Acks != client.AcksAll {
			workers = 1
		}
		workloads = append(workloads,
			&producers{topic: ts, workers: workers, prefix: fmt.Sprintf("%c", 'a'+k), maxOps: ph.maxOps, pace: ph.pace, maxRecs: 4},
			&consumers{topic: ts, maxOps: ph.maxOps})
	}
	gls := groupLoads(ph, topics)
	var groupNames []string
	for _, gl := range gls {
		workloads = append(workloads, gl)
		groupNames = append(groupNames, gl.spec.Name)
	}
	workloads = append(workloads, &observer{c: c, topics: topics, interval: time.Second})
	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var wg sync.WaitGroup
	for _, w := range workloads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Run(loadCtx, env)
		}()
	}
	sleepCtx(context.Background(), warmup) // load before the first fault

	nm := &nemesis{c: c, seed: cfg.seed, topics: topics, groups: groupNames}
	for _, k := range append(allFaults(), FaultClockSkew) {
		if why := nm.skipReason(k); why != "" {
			res.skipped[k] = why
		}
	}
	runFaults(ph, nm, rec, logf)

	// Heal everything, let the load see the healed cluster, stop it.
	if err := healEverything(c); err != nil {
		rec.Event(EventNodeStuck, 0, "healing after the faults: %v", err)
	}
	sleepCtx(context.Background(), quietAfter)
	stopLoad()
	wg.Wait()

	// Settle, read everything, stop cleanly, compare the replicas.
	if err := c.waitHealthy(topics, true, settleTimeout); err != nil {
		rec.Event(EventNotSettled, 0, "%v", err)
	}
	if err := nw.check(); err != nil {
		rec.Event(EventHarness, 0, "%v", err)
	}
	res.groups = drainGroups(gls, env, logf)
	final := finalRead(c, rec, topics)
	stopped := stopAll(c, rec)
	readReplicas(c, final, stopped)

	h := rec.History()
	h.Seed, h.Topics, h.Final = cfg.seed, topics, final
	for _, gl := range gls {
		h.Groups = append(h.Groups, gl.spec)
	}
	res.history = h
	res.anomalies = Check(&h)
	if err := h.WriteFile(filepath.Join(dir, "history.json")); err != nil {
		logf("%v", err)
	}
	return res
}

// drainGroups lets every group's members poll until they have received
// every record (see groupLoad.Drain), the groups at once, and describes how
// each went. A group that cannot get there on a healed cluster is an
// anomaly of its own (EventGroupNotDrained).
func drainGroups(gls []*groupLoad, env *Env, logf func(string, ...any)) []string {
	notes := make([]string, len(gls))
	var wg sync.WaitGroup
	for i, gl := range gls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			start := time.Now()
			ends, short, err := gl.Drain(ctx, env)
			took := time.Since(start).Round(100 * time.Millisecond)
			switch {
			case err != nil:
				env.Rec.Event(EventGroupNotDrained, 0, "group %s: %v", gl.spec.Name, err)
				notes[i] = fmt.Sprintf("%s: not drained: %v", gl.spec.Name, err)
			case len(short) > 0:
				env.Rec.Event(EventGroupNotDrained, 0, "group %s: after %v the members had not received every record of %v", gl.spec.Name, took, short)
				notes[i] = fmt.Sprintf("%s: not drained in %v: %v short", gl.spec.Name, took, short)
			default:
				var total int64
				for _, e := range ends {
					total += e
				}
				notes[i] = fmt.Sprintf("%s: every record of %d partitions (%d records) received, drained in %v", gl.spec.Name, len(ends), total, took)
			}
			logf("%s", notes[i])
		}()
	}
	wg.Wait()
	return notes
}

// nodeFlags are the serve flags of every node: faster ISR changes than the
// defaults so that faults of a few seconds move ISRs, short request
// timeouts so that stuck requests end while the fault lasts.
func nodeFlags() []string {
	return []string{
		"--replica-lag-time-max-ms", "3000",
		"--request-timeout-ms", "8000",
		"--shutdown-timeout-ms", "10000",
		"--default-replication-factor", "3",
		"--min-insync-replicas", "2",
		// Few offsets partitions (a two-core box), small segments so that
		// the offsets topic rolls and compacts while coordinators fail over.
		"--groups-offsets-partitions", "4",
		"--groups-offsets-segment-bytes", "65536",
	}
}

func createTopics(c *cluster, topics []TopicSpec) error {
	cl, err := c.controlClient()
	if err != nil {
		return err
	}
	defer cl.CloseIdleConnections()
	for _, ts := range topics {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		parts, rf := ts.Partitions, ts.RF
		_, err := cl.CreateTopic(ctx, client.CreateTopicRequest{Name: ts.Name, Partitions: &parts, ReplicationFactor: &rf,
			Configs: map[string]string{"min.insync.replicas": fmt.Sprint(ts.MinISR), "unclean.leader.election.enable": "false"}})
		cancel()
		if err != nil {
			return fmt.Errorf("creating %s: %w", ts.Name, err)
		}
	}
	return nil
}

// runFaults injects the phase's faults one at a time, each healed before
// the next: first the listed ones in a seeded random order, each followed
// by a wait for a healthy cluster, then random ones back to back for
// duration (Jepsen-style: the next may hit a cluster still recovering).
func runFaults(ph phase, nm *nemesis, rec *Recorder, logf func(string, ...any)) {
	// The schedule has a random source of its own, and each fault another
	// (see nemesis.next): a fault that is skipped here (no tmpfs, a known
	// bug) changes neither the order nor the targets of the others.
	sched := rand.New(rand.NewPCG(uint64(nm.seed), 1))
	listed := slices.Clone(ph.faults)
	sched.Shuffle(len(listed), func(i, j int) { listed[i], listed[j] = listed[j], listed[i] })
	for _, kind := range listed {
		injectAndHeal(ph, nm, sched, rec, logf, kind, ph.waitHealthy)
	}
	all := allFaults()
	for deadline := time.Now().Add(ph.duration); time.Now().Before(deadline); {
		injectAndHeal(ph, nm, sched, rec, logf, all[sched.IntN(len(all))], 0)
	}
}

// injectAndHeal injects one fault (unless it is skipped here), holds it,
// heals it and waits a gap (and up to waitHealthy for a healthy cluster).
func injectAndHeal(ph phase, nm *nemesis, sched *rand.Rand, rec *Recorder, logf func(string, ...any), kind string, waitHealthy time.Duration) {
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(sched.Int64N(int64(hi-lo)+1))
	}
	hold := between(ph.holdLo, ph.holdHi)
	switch kind {
	case FaultKillRandom, FaultKillLeader, FaultKillController, FaultKillCoordinator:
		hold = between(ph.downLo, ph.downHi)
	case FaultPauseLeader:
		hold = nm.c.session + between(time.Second, 3*time.Second)
	case FaultTornTail, FaultTornTailQuick:
		hold = 0
	}
	gap := between(ph.gapLo, ph.gapHi)
	nm.next()
	if nm.skipReason(kind) != "" {
		return
	}
	f, err := nm.inject(kind)
	if err != nil {
		logf("%6.1fs %s not injected: %v", rec.Now().Seconds(), kind, err)
		sleepCtx(context.Background(), time.Second)
		return
	}
	logf("%6.1fs inject %s: %s (for %v)", rec.Now().Seconds(), kind, f.target, hold.Round(time.Millisecond))
	sleepCtx(context.Background(), hold)
	herr := f.heal()
	rec.Fault(FaultWindow{Kind: f.kind, Target: f.target, Start: f.start, End: rec.Now()})
	if herr != nil {
		rec.Event(EventNodeStuck, 0, "healing %s (%s): %v", kind, f.target, herr)
		_ = healEverything(nm.c)
	}
	logf("%6.1fs healed %s", rec.Now().Seconds(), kind)
	sleepCtx(context.Background(), gap)
	if waitHealthy > 0 {
		if err := nm.c.waitHealthy(nm.topics, false, waitHealthy); err != nil {
			logf("%6.1fs not healthy %v after healing %s: %v", rec.Now().Seconds(), waitHealthy, kind, err)
		}
	}
}

// healEverything removes every cut, resumes paused nodes and restarts
// stopped ones.
func healEverything(c *cluster) error {
	err := c.net.healAll()
	for _, n := range c.nodes {
		if n.isPaused() {
			n.resume()
		}
	}
	for _, n := range c.nodes {
		if !n.running() {
			if lerr := n.launch(); lerr != nil {
				return lerr
			}
		}
	}
	for _, n := range c.nodes {
		if rerr := n.waitReady(readyTimeout); rerr != nil {
			return rerr
		}
	}
	return err
}

// finalRead reads every partition from its start up to its HW after healing.
func finalRead(c *cluster, rec *Recorder, topics []TopicSpec) []FinalPartition {
	cl, err := c.controlClient()
	if err != nil {
		rec.Event(EventFinalFailed, 0, "%v", err)
		return nil
	}
	defer cl.CloseIdleConnections()
	var out []FinalPartition
	for _, ts := range topics {
		for p := range int32(ts.Partitions) {
			fp := FinalPartition{Topic: ts.Name, Partition: p, HW: -1}
			pos := int64(0)
			for attempt := 0; attempt < 10000; attempt++ {
				op := readPartition(context.Background(), rec, cl, "final", KindFinalRead, ts.Name, p, pos, 1000, 0)
				if op.Outcome != OK {
					if attempt > 20 {
						rec.Event(EventFinalFailed, 0, "%s/%d at %d: %s", ts.Name, p, pos, op.Error)
						break
					}
					sleepCtx(context.Background(), 500*time.Millisecond)
					continue
				}
				fp.HW = op.HW
				if op.NextOffset >= op.HW {
					fp.Complete = true
					break
				}
				if op.NextOffset == pos {
					rec.Event(EventFinalFailed, 0, "%s/%d: no progress at %d below HW %d", ts.Name, p, pos, op.HW)
					break
				}
				pos = op.NextOffset
			}
			out = append(out, fp)
		}
	}
	return out
}

// stopAll stops every node cleanly and reports which stopped cleanly.
func stopAll(c *cluster, rec *Recorder) map[int]bool {
	clean := map[int]bool{}
	for _, n := range c.nodes {
		if err := n.stop(); err != nil {
			rec.Event(EventStopFailed, n.id, "%v", err)
			continue
		}
		clean[n.id] = true
	}
	return clean
}

// readReplicas opens each replica's log in the stopped nodes' data dirs and
// records its batches (digests) and records below the final HW.
func readReplicas(c *cluster, final []FinalPartition, clean map[int]bool) {
	for i := range final {
		fp := &final[i]
		if fp.HW < 0 {
			continue
		}
		for _, n := range c.nodes {
			dir := filepath.Join(n.dataDir, logstore.PartitionDir(fp.Topic, fp.Partition))
			if _, err := os.Stat(dir); err != nil {
				continue // not a replica
			}
			fp.Replicas = append(fp.Replicas, readReplica(n.id, dir, fp.Topic, fp.Partition, fp.HW, clean[n.id]))
		}
	}
}

func readReplica(node int, dir, topic string, p int32, hw int64, clean bool) ReplicaLog {
	r := ReplicaLog{Node: node, Topic: topic, Partition: p}
	l, err := logstore.Open(dir, logstore.DefaultConfig(), logstore.Options{Clean: clean})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer func() { _ = l.Close() }() // read only: nothing to lose
	r.LogStart, r.LogEnd = l.LogStartOffset(), l.LogEndOffset()
	off := r.LogStart
	for off < min(hw, r.LogEnd) {
		res, err := l.Read(off, 8<<20, r.LogEnd)
		if err != nil {
			r.Error = fmt.Sprintf("read at %d: %v", off, err)
			return r
		}
		if len(res.Data) == 0 {
			r.Error = fmt.Sprintf("no batch at %d below the log end %d", off, r.LogEnd)
			return r
		}
		err = logstore.Batches(res.Data, func(b logstore.Batch) error {
			if b.BaseOffset() >= hw {
				return nil
			}
			sum := sha256.Sum256(b)
			r.Batches = append(r.Batches, BatchDigest{Base: b.BaseOffset(), Last: b.LastOffset(), SHA256: hex.EncodeToString(sum[:])})
			recs, err := l.Codecs().Records(b)
			if err != nil {
				return fmt.Errorf("batch at %d: %w", b.BaseOffset(), err)
			}
			for _, rr := range recs {
				if rr.Offset < hw {
					r.Records = append(r.Records, ReadRecord{Partition: p, Offset: rr.Offset, Value: string(rr.Value)})
				}
			}
			return nil
		})
		if err != nil {
			r.Error = err.Error()
			return r
		}
		off = res.NextOffset
	}
	return r
}

// summary is the table a phase prints: operations by kind and outcome,
// faults by kind, anomalies by kind, availability inside fault windows.
func (res *phaseResult) summary() string {
	var b strings.Builder
	h := &res.history
	fmt.Fprintf(&b, "phase %q: mode %s (%s), seed %d\n", res.name, res.mode, res.modeWhy, res.seed)
	type row struct{ ok, fail, unknown int }
	label := func(op *Op) string {
		if op.Kind == KindProduce {
			return "produce acks=" + op.Acks
		}
		return string(op.Kind)
	}
	rows := map[string]*row{}
	avail := map[string]*row{}
	why := map[string]failureCounts{}
	inFault := func(t time.Duration) bool {
		for _, f := range h.Faults {
			if t >= f.Start && t <= f.End {
				return true
			}
		}
		return false
	}
	for i := range h.Ops {
		op := &h.Ops[i]
		l := label(op)
		bump := func(m map[string]*row) {
			r := m[l]
			if r == nil {
				r = &row{}
				m[l] = r
			}
			switch op.Outcome {
			case OK:
				r.ok++
			case Fail:
				r.fail++
			default:
				r.unknown++
			}
		}
		bump(rows)
		if op.Outcome != OK {
			why[l] = why[l].add(op)
		}
		if inFault(op.Invoke) {
			bump(avail)
		}
	}
	fmt.Fprintf(&b, "  %-22s %8s %8s %8s %8s\n", "operations", "ok", "fail", "unknown", "total")
	for _, l := range sortedStrings(rows) {
		r := rows[l]
		fmt.Fprintf(&b, "  %-22s %8d %8d %8d %8d\n", l, r.ok, r.fail, r.unknown, r.ok+r.fail+r.unknown)
	}
	if len(why) > 0 {
		fmt.Fprintf(&b, "  why operations did not succeed (error code or transport error: count)\n")
		for _, l := range sortedStrings(why) {
			fmt.Fprintf(&b, "    %-20s %s\n", l, why[l])
		}
	}
	fmt.Fprintf(&b, "  %-22s %8s\n", "faults injected", "count")
	byKind := map[string]int{}
	var faultTime time.Duration
	for _, f := range h.Faults {
		byKind[f.Kind]++
		faultTime += f.End - f.Start
	}
	for _, k := range sortedStrings(byKind) {
		fmt.Fprintf(&b, "  %-28s %2d\n", k, byKind[k])
	}
	for _, k := range sortedStrings(res.skipped) {
		fmt.Fprintf(&b, "  %-28s  - %s\n", k, res.skipped[k])
	}
	if lost, acked := lostAcks1(h); acked > 0 {
		fmt.Fprintf(&b, "  acks=1 writes acknowledged but not in the final log: %d of %d (allowed: DESIGN §7.1 promises acks=all only)\n", lost, acked)
	}
	for _, line := range groupSummary(h) {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	for _, note := range res.groups {
		fmt.Fprintf(&b, "    drain: %s\n", note)
	}
	fmt.Fprintf(&b, "  %-22s %8d\n", "anomalies", len(res.anomalies))
	aKinds := map[string]int{}
	for _, a := range res.anomalies {
		aKinds[a.Kind]++
	}
	for _, k := range sortedStrings(aKinds) {
		fmt.Fprintf(&b, "    %-26s %6d\n", k, aKinds[k])
	}
	fmt.Fprintf(&b, "  availability during faults (%.0fs in %d windows): ok / attempted\n", faultTime.Seconds(), len(h.Faults))
	for _, l := range sortedStrings(avail) {
		r := avail[l]
		total := r.ok + r.fail + r.unknown
		if total == 0 || l == string(KindFinalRead) || l == string(KindSeek) {
			continue
		}
		fmt.Fprintf(&b, "    %-24s %6d / %-6d %5.1f%%\n", l, r.ok, total, 100*float64(r.ok)/float64(total))
	}
	return b.String()
}

// groupKinds are the calls of a group member and reader, in the order the
// summary lists them.
var groupKinds = []Kind{KindJoin, KindHeartbeat, KindPoll, KindCommit, KindLeave, KindFetchCommitted}

// groupSummary describes each consumer group of the history: its calls
// (ok of all), generations and records received, and where the committed
// offsets ended against the final high watermarks.
func groupSummary(h *History) []string {
	var out []string
	for _, g := range h.Groups {
		type count struct {
			ok, all int
			why     failureCounts
		}
		counts := map[Kind]*count{}
		var records int
		var maxGen int32
		var last *Op // the last ok read of the committed offsets
		for i := range h.Ops {
			op := &h.Ops[i]
			if op.Group != g.Name {
				continue
			}
			c := counts[op.Kind]
			if c == nil {
				c = &count{}
				counts[op.Kind] = c
			}
			c.all++
			if op.Outcome != OK {
				c.why = c.why.add(op)
				continue
			}
			c.ok++
			maxGen = max(maxGen, op.Generation)
			switch op.Kind {
			case KindPoll:
				records += len(op.Records)
			case KindFetchCommitted:
				last = op
			}
		}
		mode := "explicit commits"
		if g.AutoCommit {
			mode = "auto-commit"
		}
		var calls []string
		for _, k := range groupKinds {
			if c := counts[k]; c != nil {
				calls = append(calls, fmt.Sprintf("%s %d/%d", k, c.ok, c.all))
			}
		}
		out = append(out, fmt.Sprintf("group %s (%s): generation %d at the end, %d records received; calls ok/all: %s",
			g.Name, mode, maxGen, records, strings.Join(calls, ", ")))
		for _, k := range groupKinds {
			if c := counts[k]; c != nil && len(c.why) > 0 {
				out = append(out, fmt.Sprintf("  %s not ok: %s", k, c.why))
			}
		}
		if last == nil {
			out = append(out, "  committed offsets never read")
			continue
		}
		committed := map[TP]int64{}
		for _, e := range last.Commits {
			committed[TP{e.Topic, e.Partition}] = e.Offset
		}
		var at, behind []string
		for _, fp := range h.Final {
			if !slices.Contains(g.Topics, fp.Topic) {
				continue
			}
			tp := TP{fp.Topic, fp.Partition}
			off, ok := committed[tp]
			switch {
			case ok && off == fp.HW:
				at = append(at, tp.String())
			case ok:
				behind = append(behind, fmt.Sprintf("%s %d of %d", tp, off, fp.HW))
			default:
				behind = append(behind, fmt.Sprintf("%s none of %d", tp, fp.HW))
			}
		}
		line := fmt.Sprintf("  committed offsets at the end: %d partitions at the final HW", len(at))
		if len(behind) > 0 {
			line += "; behind: " + strings.Join(behind, ", ")
		}
		out = append(out, line)
	}
	return out
}

// failing are the anomalies that fail the run: all of them.
func (res *phaseResult) failing() []Anomaly { return res.anomalies }

// lostAcks1 counts the acknowledged acks=1 records missing from the final
// read: no anomaly, but worth knowing.
func lostAcks1(h *History) (lost, acked int) {
	final := map[tpo]string{}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind == KindFinalRead && op.Outcome == OK {
			for _, r := range op.Records {
				final[tpo{TP{op.Topic, op.Partition}, r.Offset}] = r.Value
			}
		}
	}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind != KindProduce || op.Outcome != OK || op.Acks != client.AcksOne {
			continue
		}
		for j, v := range op.Values {
			if j < len(op.Offsets) {
				acked++
				if final[tpo{TP{op.Topic, op.Partition}, op.Offsets[j]}] != v {
					lost++
				}
			}
		}
	}
	return lost, acked
}

// report describes the anomalies, at most perKind of each kind.
func (res *phaseResult) report(perKind int) string {
	var b strings.Builder
	seen := map[string]int{}
	for _, a := range res.anomalies {
		seen[a.Kind]++
		if seen[a.Kind] > perKind {
			continue
		}
		b.WriteString(a.Describe(&res.history))
		b.WriteString("\n")
	}
	for _, k := range sortedStrings(seen) {
		if seen[k] > perKind {
			fmt.Fprintf(&b, "(%d more %s)\n", seen[k]-perKind, k)
		}
	}
	return b.String()
}

// faultLog lists the fault windows in order.
func (res *phaseResult) faultLog() string {
	fs := slices.Clone(res.history.Faults)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Start < fs[j].Start })
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %6.1fs-%6.1fs %-28s %s\n", f.Start.Seconds(), f.End.Seconds(), f.Kind, f.Target)
	}
	return b.String()
}
