//go:build linux

package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"weir/client"
	"weir/nodeauth"
)

// Bounds of the cluster's waits.
const (
	readyTimeout   = 90 * time.Second // a node's /readyz after a start
	stopTimeout    = 40 * time.Second // a clean stop (the node's own shutdown timeout is 10 s)
	controlTimeout = 3 * time.Second  // one call of the harness's own
	pollEvery      = 100 * time.Millisecond
	tmpfsSize      = "256m"
)

// cluster is n `weir serve` processes on a network, each with its own data
// dir: a tmpfs of its own where mounting works, so a fault can fill it.
type cluster struct {
	net      network
	bin      string
	dir      string
	rec      *Recorder
	logf     func(string, ...any)
	nodes    []*node // nodes[i-1] is node i
	tmpfs    bool
	tmpfsWhy string // why there is no tmpfs, when there is none
	session  time.Duration

	ctlHC *http.Client

	mu      sync.Mutex
	clients []*client.Client // workload clients, closed at the end
}

// node is one weir process, restartable with the same arguments and data.
type node struct {
	c       *cluster
	id      int
	args    []string
	dataDir string
	mount   string // the tmpfs holding dataDir, or ""
	logPath string

	mu          sync.Mutex
	cmd         *exec.Cmd
	exited      chan struct{}
	paused      bool
	expectExit  bool // the harness stopped or killed it
	incarnation int
}

// clusterConfig is how to start a cluster.
type clusterConfig struct {
	nodes   int
	bin     string
	dir     string
	session time.Duration // broker.session.timeout.ms
	extra   []string      // more serve flags, for every node
}

// startCluster starts the nodes and waits until each is ready. close (which
// the caller must call, also on failure) kills every process by pid and
// unmounts the tmpfs data dirs.
func startCluster(cfg clusterConfig, nw network, rec *Recorder, logf func(string, ...any)) (*cluster, error) {
	c := &cluster{net: nw, bin: cfg.bin, dir: cfg.dir, rec: rec, logf: logf, session: cfg.session}
	c.ctlHC = &http.Client{
		Transport: &http.Transport{DialContext: nw.controlDial, MaxIdleConnsPerHost: 2, IdleConnTimeout: 10 * time.Second},
		Timeout:   controlTimeout,
	}
	c.tmpfs = true
	secret, err := nodeauth.Generate()
	if err != nil {
		return c, err
	}
	var voters []string
	for i := 1; i <= cfg.nodes; i++ {
		voters = append(voters, fmt.Sprintf("%d@%s", i, nw.addrs(i).raftAdvertise))
	}
	for i := 1; i <= cfg.nodes; i++ {
		n := &node{c: c, id: i, logPath: filepath.Join(cfg.dir, fmt.Sprintf("node-%d.log", i))}
		c.nodes = append(c.nodes, n)
		root := filepath.Join(cfg.dir, fmt.Sprintf("node-%d", i))
		if err := os.MkdirAll(root, 0o755); err != nil {
			return c, fmt.Errorf("node %d dir: %w", i, err)
		}
		if c.tmpfs {
			if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+tmpfsSize); err != nil {
				c.tmpfs, c.tmpfsWhy = false, fmt.Sprintf("cannot mount a tmpfs (%v)", err)
			} else {
				n.mount = root
			}
		}
		n.dataDir = filepath.Join(root, "data")
		a := nw.addrs(i)
		n.args = append([]string{"serve", "--node-id", strconv.Itoa(i), "--data-dir", n.dataDir,
			"--http-addr", a.httpListen, "--advertise-http-addr", a.httpAdvertise, "--raft-addr", a.raftListen,
			"--voters", strings.Join(voters, ","), "--cluster-secret", secret,
			"--broker-session-timeout-ms", strconv.FormatInt(cfg.session.Milliseconds(), 10),
		}, cfg.extra...)
	}
	if !c.tmpfs {
		// Some nodes may have one: keep the cluster uniform.
		for _, n := range c.nodes {
			if n.mount != "" {
				_ = unix.Unmount(n.mount, unix.MNT_DETACH)
				n.mount = ""
			}
		}
	}
	nw.setNodes(c.pids)
	for _, n := range c.nodes {
		if err := n.launch(); err != nil {
			return c, err
		}
	}
	for _, n := range c.nodes {
		if err := n.waitReady(readyTimeout); err != nil {
			return c, err
		}
	}
	return c, nil
}

// close kills every process still running (by pid) and unmounts the data dirs.
func (c *cluster) close() {
	for _, n := range c.nodes {
		n.kill9()
	}
	c.mu.Lock()
	for _, cl := range c.clients {
		cl.CloseIdleConnections()
	}
	c.mu.Unlock()
	c.ctlHC.CloseIdleConnections()
	for _, n := range c.nodes {
		if n.mount != "" {
			if err := unix.Unmount(n.mount, unix.MNT_DETACH); err != nil {
				c.logf("unmount %s: %v", n.mount, err)
			}
		}
	}
}

// pids maps the running processes to their nodes.
func (c *cluster) pids() map[int]int {
	out := map[int]int{}
	for _, n := range c.nodes {
		n.mu.Lock()
		if n.cmd != nil && n.cmd.Process != nil {
			out[n.cmd.Process.Pid] = n.id
		}
		n.mu.Unlock()
	}
	return out
}

func (c *cluster) node(i int) *node { return c.nodes[i-1] }

func (c *cluster) size() int { return len(c.nodes) }

// live lists the ids of the nodes running and not paused.
func (c *cluster) live() []int {
	var out []int
	for _, n := range c.nodes {
		if n.running() && !n.isPaused() {
			out = append(out, n.id)
		}
	}
	return out
}

func (n *node) launch() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("node %d log: %w", n.id, err)
	}
	n.incarnation++
	fmt.Fprintf(logf, "=== harness: start of incarnation %d at %.3fs\n", n.incarnation, n.c.rec.Now().Seconds())
	cmd := n.c.net.command(n.id, n.c.bin, n.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Should the test binary itself die (a go test timeout skips every
	// cleanup), the kernel kills the node with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close() // abandoned: the start's error is the one to report
		return fmt.Errorf("start node %d: %w", n.id, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.paused, n.expectExit = cmd, exited, false, false
	go n.wait(cmd, logf, exited)
	return nil
}

// wait reaps the process; an exit the harness did not cause is recorded.
func (n *node) wait(cmd *exec.Cmd, logf *os.File, exited chan struct{}) {
	err := cmd.Wait()
	if cerr := logf.Close(); cerr != nil {
		n.c.rec.Event(EventHarness, n.id, "close the node's log %s: %v", n.logPath, cerr)
	}
	n.mu.Lock()
	expected := n.expectExit
	if n.cmd == cmd {
		n.cmd = nil
	}
	n.mu.Unlock()
	if !expected {
		n.c.rec.Event(EventNodeCrash, n.id, "exited by itself (%v); log tail:\n%s", err, n.logTail(30))
	}
	close(exited)
}

func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

func (n *node) isPaused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

func (n *node) incarnationNo() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.incarnation
}

// signal sends sig to the running process; false when none runs.
func (n *node) signal(sig syscall.Signal) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	switch sig {
	case syscall.SIGKILL, syscall.SIGTERM:
		n.expectExit = true
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return syscall.Kill(n.cmd.Process.Pid, sig) == nil
}

func (n *node) exitedChan() chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exited
}

// kill9 crashes the node (SIGKILL, which ends a stopped process too) and
// waits until it is gone.
func (n *node) kill9() {
	ch := n.exitedChan()
	if n.signal(syscall.SIGKILL) {
		<-ch
	}
}

func (n *node) pause() bool  { return n.signal(syscall.SIGSTOP) }
func (n *node) resume() bool { return n.signal(syscall.SIGCONT) }

// stop shuts the node down cleanly (SIGTERM); past stopTimeout it is killed
// and that is an error, as is a non-zero exit.
func (n *node) stop() error {
	if n.isPaused() {
		n.resume()
	}
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	ch := n.exitedChan()
	if !n.signal(syscall.SIGTERM) {
		return nil
	}
	select {
	case <-ch:
	case <-time.After(stopTimeout):
		n.kill9()
		return fmt.Errorf("node %d did not stop within %v of SIGTERM; log tail:\n%s", n.id, stopTimeout, n.logTail(30))
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("node %d exited with %d after SIGTERM; log tail:\n%s", n.id, code, n.logTail(30))
	}
	return nil
}

// waitReady waits until the node answers /readyz with 200.
func (n *node) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-n.exitedChan():
			return fmt.Errorf("node %d exited before it was ready; log tail:\n%s", n.id, n.logTail(30))
		default:
		}
		if err := n.c.ctlDo(n.id, "/readyz", nil); err == nil {
			return nil
		} else {
			last = err
		}
		time.Sleep(pollEvery) // polling a condition, bounded by the deadline
	}
	return fmt.Errorf("node %d not ready after %v (%v); log tail:\n%s", n.id, timeout, last, n.logTail(30))
}

// logTail is the last lines of the node's log.
func (n *node) logTail(lines int) string {
	f, err := os.Open(n.logPath)
	if err != nil {
		return err.Error()
	}
	defer func() { _ = f.Close() }() // only read
	if st, err := f.Stat(); err == nil && st.Size() > 256<<10 {
		_, _ = f.Seek(st.Size()-256<<10, io.SeekStart)
	}
	var all []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		all = append(all, sc.Text())
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// ctlDo GETs path from node i over the control links and decodes a 200
// reply into out (when not nil).
func (c *cluster) ctlDo(i int, path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.net.controlHTTP(i)+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.ctlHC.Do(req)
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("node %d: GET %s: %w", i, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("node %d: GET %s: %s: %.200s", i, path, resp.Status, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("node %d: GET %s: %w", i, path, err)
		}
	}
	return nil
}

// controller is the controller most live nodes name (0 when none do).
func (c *cluster) controller() int {
	votes := map[int]int{}
	for _, i := range c.live() {
		var cl client.Cluster
		if c.ctlDo(i, "/v1/cluster", &cl) == nil && cl.ControllerID > 0 {
			votes[int(cl.ControllerID)]++
		}
	}
	best, bestVotes := 0, 0
	for id, v := range votes {
		if v > bestVotes || (v == bestVotes && id < best) {
			best, bestVotes = id, v
		}
	}
	return best
}

// topic describes a topic as the controller (else any live node) sees it.
func (c *cluster) topic(name string) (client.Topic, error) {
	order := c.live()
	if ctrl := c.controller(); ctrl > 0 {
		order = append([]int{ctrl}, order...)
	}
	var last error = errors.New("no live node")
	for _, i := range order {
		var tp client.Topic
		if err := c.ctlDo(i, "/v1/topics/"+url.PathEscape(name), &tp); err != nil {
			last = err
			continue
		}
		return tp, nil
	}
	return client.Topic{}, last
}

// healthy says why the cluster is not healthy, if it is not: every node
// running and ready; every partition of the topics led by a live node with
// every replica in its ISR, the nodes agreeing; with quiet, also every
// partition's HW at its leader's log end.
func (c *cluster) healthy(topics []TopicSpec, quiet bool) error {
	for _, n := range c.nodes {
		if !n.running() || n.isPaused() {
			return fmt.Errorf("node %d is not running", n.id)
		}
		if err := c.ctlDo(n.id, "/readyz", nil); err != nil {
			return err
		}
	}
	for _, ts := range topics {
		var ref *client.Topic
		for _, n := range c.nodes {
			var tp client.Topic
			if err := c.ctlDo(n.id, "/v1/topics/"+url.PathEscape(ts.Name), &tp); err != nil {
				return err
			}
			for _, p := range tp.Partitions {
				if p.Leader < 0 {
					return fmt.Errorf("node %d: %s/%d has no leader (ISR %v)", n.id, ts.Name, p.Partition, p.ISR)
				}
				if !sameMembers(p.ISR, p.Replicas) {
					return fmt.Errorf("node %d: %s/%d ISR %v, replicas %v", n.id, ts.Name, p.Partition, p.ISR, p.Replicas)
				}
				if ref != nil {
					r := ref.Partitions[p.Partition]
					if r.Leader != p.Leader || r.LeaderEpoch != p.LeaderEpoch {
						return fmt.Errorf("%s/%d: node %d says leader %d epoch %d, node 1 says %d epoch %d",
							ts.Name, p.Partition, n.id, p.Leader, p.LeaderEpoch, r.Leader, r.LeaderEpoch)
					}
				}
			}
			if ref == nil {
				ref = &tp
			}
		}
		if !quiet {
			continue
		}
		for _, p := range ref.Partitions {
			var tp client.Topic
			if err := c.ctlDo(int(p.Leader), "/v1/topics/"+url.PathEscape(ts.Name), &tp); err != nil {
				return err
			}
			lp := tp.Partitions[p.Partition]
			if lp.HighWatermark != lp.LogEndOffset {
				return fmt.Errorf("%s/%d: HW %d, log end %d at leader %d", ts.Name, p.Partition, lp.HighWatermark, lp.LogEndOffset, p.Leader)
			}
		}
	}
	return nil
}

func sameMembers(a, b []int32) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// waitHealthy polls healthy until it holds or timeout passes.
func (c *cluster) waitHealthy(topics []TopicSpec, quiet bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.healthy(topics, quiet)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pollEvery * 3) // polling a condition, bounded by the deadline
	}
}

// client is a workload client of every node, trying them in an order that
// starts at a different node for each worker, over the links faults cut.
func (c *cluster) client(worker int) (*client.Client, error) {
	var servers []string
	for k := range c.nodes {
		i := (worker+k)%len(c.nodes) + 1
		servers = append(servers, "http://"+c.net.addrs(i).httpAdvertise)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: c.net.clientDial, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}}
	cl, err := client.New(servers, client.WithHTTPClient(hc))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.clients = append(c.clients, cl)
	c.mu.Unlock()
	return cl, nil
}

// controlClient is a client of every node over the links no fault cuts.
func (c *cluster) controlClient() (*client.Client, error) {
	var servers []string
	for i := 1; i <= len(c.nodes); i++ {
		servers = append(servers, "http://"+c.net.controlHTTP(i))
	}
	hc := &http.Client{Transport: c.ctlHC.Transport}
	return client.New(servers, client.WithHTTPClient(hc))
}

// cleanStaleMounts unmounts the tmpfs data dirs of earlier runs whose test
// process is gone.
func cleanStaleMounts(logf func(string, ...any)) {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != "tmpfs" {
			continue
		}
		dir := filepath.Base(filepath.Dir(f[1])) // .../weir-faults-<pid>-xxxx/node-1
		pid, ok := runPID(dir, runDirPrefix)
		if !ok || processAlive(pid) {
			continue
		}
		if err := unix.Unmount(f[1], unix.MNT_DETACH); err != nil {
			logf("unmount stale %s: %v", f[1], err)
		} else {
			logf("unmounted stale %s of a run that is gone (pid %d)", f[1], pid)
		}
	}
}

// runDirPrefix starts the name of each run's directory: weir-faults-<pid>-.
const runDirPrefix = "weir-faults-"
