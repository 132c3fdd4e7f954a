package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"weir/server"
)

// local-cluster runs N `weir serve` children of this very binary on one
// machine. Every child is started in its own process group (so a terminal's
// Ctrl-C reaches local-cluster, which then stops the children in order), is
// waited for by exactly one goroutine, and is stopped before local-cluster
// returns, whatever the path out.

const (
	localClusterMaxNodes = 9
	localManifestFile    = "local-cluster.json"
	localLogFile         = "weir.log"
	// readyPoll is how often /readyz is asked while waiting for the nodes.
	readyPoll = 100 * time.Millisecond
	// stillStoppingAfter is when a node's slow stop is pointed out.
	stillStoppingAfter = 3 * time.Second
)

// localClusterOptions are the flags of local-cluster.
type localClusterOptions struct {
	nodes        int
	dir          string
	baseHTTPPort int
	baseRaftPort int
	verbose      bool
	readyTimeout time.Duration
	stopTimeout  time.Duration
}

func newLocalClusterCmd(a *app) *cobra.Command {
	var o localClusterOptions
	cmd := &cobra.Command{
		Use:   "local-cluster [flags] [-- serve flags]",
		Short: "Run a cluster of several nodes on this machine, to try Weir out",
		Long: `Run a cluster of --nodes 'weir serve' processes (1 to 9, default 3) on this
machine, all on loopback addresses, until SIGINT or SIGTERM.

Node i gets --node-id i, --data-dir <dir>/node-i, the REST API on
127.0.0.1:<base-http-port + i-1> and Raft on 127.0.0.1:<base-raft-port + i-1>.
The first three nodes are the Raft voters (the first five from 5 nodes on,
every node below 3) and start together; once they are ready, the others
start and join through them (--join lists the voters' URLs, node 1's first).
Each node logs to <dir>/node-i/weir.log (and, with --verbose, to stderr too,
each line prefixed with its node).

Flags after -- are passed to every node ('weir serve --help' lists them),
except the ones local-cluster sets itself (--node-id, --data-dir, --http-addr,
--raft-addr, --advertise-http-addr, --voters, --join, --cluster-secret).

The nodes share one cluster secret, which they prove to each other: <dir>/cluster-secret,
made at the first start. It goes to each node in WEIR_CLUSTER_SECRET; a node
started by hand to join them needs it too (--cluster-secret "$(cat <dir>/cluster-secret)").

Once every node answers /readyz, the addresses and the process ids are
printed. A node that dies is reported with the end of its log; the others
keep running. The first SIGINT or SIGTERM stops the nodes cleanly with
SIGTERM, last node first (one still running after --stop-timeout is killed);
a second one kills them all at once. The exit status is 0 only if every node
ran until asked to stop and then stopped cleanly.

Starting again with the same --dir reopens the same data; <dir> remembers its
node count and ports, and a different layout is refused.`,
		Example: `  # Three nodes: REST on 127.0.0.1:8082-8084, Raft on 127.0.0.1:9093-9095, data in ./weir-local
  weir local-cluster
  curl -s localhost:8082/v1/cluster

  # Five voters and two more nodes that join, with every node's log on stderr
  weir local-cluster --nodes 7 --verbose

  # Other ports and directory, and settings for every node
  weir local-cluster --nodes 3 --dir /tmp/weir3 --base-http-port 18082 --base-raft-port 19093 \
    -- --fsync never --default-replication-factor 3`,
		Args: localClusterArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			lc, err := newLocalCluster(a, o, args)
			if err != nil {
				return err
			}
			return lc.run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.IntVar(&o.nodes, "nodes", 3, "number of nodes, 1 to 9")
	f.StringVar(&o.dir, "dir", "./weir-local", "`directory` for the nodes' data and logs (<dir>/node-i)")
	f.IntVar(&o.baseHTTPPort, "base-http-port", 8082, "REST API `port` of node 1; node i uses port+i-1 on 127.0.0.1")
	f.IntVar(&o.baseRaftPort, "base-raft-port", 9093, "Raft `port` of node 1; node i uses port+i-1 on 127.0.0.1")
	f.BoolVar(&o.verbose, "verbose", false, "copy every node's log to stderr too, each line prefixed with its node")
	f.DurationVar(&o.readyTimeout, "ready-timeout", 60*time.Second, "how long the nodes may take to become ready")
	f.DurationVar(&o.stopTimeout, "stop-timeout", 0, "how long each node gets to stop after SIGTERM before it is killed (0: the nodes' shutdown_timeout_ms plus 10s)")
	return cmd
}

// localClusterArgs accepts only arguments after --, which go to every node.
func localClusterArgs(cmd *cobra.Command, args []string) error {
	if dash := cmd.ArgsLenAtDash(); len(args) > 0 && dash != 0 {
		return usageError(fmt.Errorf("%s takes no arguments, got %q; flags for the nodes go after -- (e.g. -- --fsync never)", cmd.CommandPath(), args[0]))
	}
	return nil
}

// lcNode is one child process.
type lcNode struct {
	id       int
	voter    bool
	httpAddr string // 127.0.0.1:port
	raftAddr string
	dataDir  string // as the user gave it (relative to the working directory)
	logPath  string
	args     []string // of the binary, starting with "serve"

	// Set by launch, before the waiter starts.
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been waited for
	// Written by the waiter before it closes done.
	waitErr error
}

func (n *lcNode) url() string { return "http://" + n.httpAddr }

func (n *lcNode) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// status describes how the process ended; only after done is closed.
func (n *lcNode) status() string {
	if n.waitErr == nil {
		return "exit status 0"
	}
	return n.waitErr.Error() // "exit status 1", "signal: killed"
}

type localCluster struct {
	opts        localClusterOptions
	stdout      io.Writer
	stderr      *lockedWriter // the children's prefixed lines and our own messages
	notify      func(chan<- os.Signal, ...os.Signal)
	stopNotify  func(chan<- os.Signal)
	bin         string
	secret      string // the nodes' cluster secret (prepareDir)
	nodes       []*lcNode
	stopTimeout time.Duration

	started []*lcNode    // launched, in order
	exits   chan *lcNode // every waiter sends its node once; buffered for all
	sigs    chan os.Signal
	died    []*lcNode // exited without being asked to
}

// newLocalCluster checks the flags and lays out the nodes; it starts nothing.
func newLocalCluster(a *app, o localClusterOptions, extra []string) (*localCluster, error) {
	if o.nodes < 1 || o.nodes > localClusterMaxNodes {
		return nil, usageError(fmt.Errorf("--nodes must be between 1 and %d, got %d", localClusterMaxNodes, o.nodes))
	}
	for _, p := range []struct {
		flag string
		port int
	}{{"--base-http-port", o.baseHTTPPort}, {"--base-raft-port", o.baseRaftPort}} {
		if p.port < 1 || p.port+o.nodes-1 > 65535 {
			return nil, usageError(fmt.Errorf("%s must be between 1 and %d for %d nodes, got %d", p.flag, 65535-o.nodes+1, o.nodes, p.port))
		}
	}
	if o.baseHTTPPort < o.baseRaftPort+o.nodes && o.baseRaftPort < o.baseHTTPPort+o.nodes {
		return nil, usageError(fmt.Errorf("the HTTP ports %d-%d and the Raft ports %d-%d overlap; move --base-http-port or --base-raft-port",
			o.baseHTTPPort, o.baseHTTPPort+o.nodes-1, o.baseRaftPort, o.baseRaftPort+o.nodes-1))
	}
	if strings.TrimSpace(o.dir) == "" {
		return nil, usageError(errors.New("--dir must not be empty"))
	}
	if o.readyTimeout <= 0 {
		return nil, usageError(fmt.Errorf("--ready-timeout must be positive, got %s", o.readyTimeout))
	}
	if o.stopTimeout < 0 {
		return nil, usageError(fmt.Errorf("--stop-timeout must not be negative, got %s", o.stopTimeout))
	}
	if err := checkExtraServeFlags(extra); err != nil {
		return nil, err
	}
	absDir, err := filepath.Abs(o.dir)
	if err != nil {
		return nil, fmt.Errorf("--dir %q: %w", o.dir, err)
	}

	lc := &localCluster{
		opts: o, stdout: a.stdout, stderr: &lockedWriter{w: a.stderr},
		notify: a.notify, stopNotify: a.stopNotify,
		exits: make(chan *lcNode, o.nodes),
	}
	voters := min(o.nodes, 3)
	if o.nodes >= 5 {
		voters = 5
	}
	var voterList, voterURLs []string
	for i := 1; i <= o.nodes; i++ {
		n := &lcNode{
			id:       i,
			voter:    i <= voters,
			httpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(o.baseHTTPPort+i-1)),
			raftAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(o.baseRaftPort+i-1)),
			dataDir:  filepath.Join(o.dir, "node-"+strconv.Itoa(i)),
		}
		n.logPath = filepath.Join(n.dataDir, localLogFile)
		if n.voter {
			voterList = append(voterList, strconv.Itoa(i)+"@"+n.raftAddr)
			voterURLs = append(voterURLs, n.url())
		}
		lc.nodes = append(lc.nodes, n)
	}
	for _, n := range lc.nodes {
		// Every cluster setting is given as a flag, empty ones included, so
		// that none can leak in from WEIR_* variables or a --config file.
		n.args = []string{"serve",
			"--node-id", strconv.Itoa(n.id),
			"--data-dir", filepath.Join(absDir, "node-"+strconv.Itoa(n.id)),
			"--http-addr", n.httpAddr,
			"--advertise-http-addr", n.httpAddr,
			"--raft-addr", n.raftAddr,
		}
		if n.voter {
			n.args = append(n.args, "--voters", strings.Join(voterList, ","), "--join=")
		} else {
			// Every voter, node 1 first: a join is answered by the
			// controller, whichever voter that is.
			n.args = append(n.args, "--voters=", "--join", strings.Join(voterURLs, ","))
		}
		n.args = append(n.args, extra...)
	}

	// Load every node's configuration exactly as its serve will, so that a
	// bad flag after -- (or a bad WEIR_* variable or config file) is one
	// clear line now rather than N dead nodes later.
	lc.stopTimeout = o.stopTimeout
	// The nodes get local-cluster's own secret, whatever the environment says.
	lookupEnv := func(k string) (string, bool) {
		if k == server.EnvName("cluster_secret") {
			return "", false
		}
		return a.lookupEnv(k)
	}
	for _, n := range lc.nodes {
		cfg, err := loadServeConfig(n.args[1:], lookupEnv)
		if err != nil {
			return nil, usageError(fmt.Errorf("node %d: %w", n.id, err))
		}
		if o.stopTimeout == 0 {
			// serve itself exits shutdown_timeout_ms (plus a few seconds of
			// grace) after SIGTERM; killing it sooner would cut a clean stop short.
			lc.stopTimeout = max(lc.stopTimeout, time.Duration(cfg.ShutdownTimeoutMs)*time.Millisecond+10*time.Second)
		}
	}
	return lc, nil
}

// checkExtraServeFlags refuses what serve would refuse and what would
// fight local-cluster's own per-node flags.
func checkExtraServeFlags(extra []string) error {
	flags := newServeFlagSet()
	if err := flags.Parse(extra); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return usageError(errors.New("flags after -- go to every node; see 'weir serve --help' for them"))
		}
		return usageError(fmt.Errorf("flags after -- (for every node): %w", err))
	}
	if flags.NArg() > 0 {
		return usageError(fmt.Errorf("flags after -- (for every node): unexpected argument %q", flags.Arg(0)))
	}
	// The serve flags local-cluster sets per node: giving them for every
	// node would break the layout.
	for _, name := range []string{"node-id", "data-dir", "http-addr", "raft-addr", "advertise-http-addr", "voters", "join", "cluster-secret"} {
		if flags.Changed(name) {
			return usageError(fmt.Errorf("--%s is set by local-cluster for each node and cannot be given after -- (see --nodes, --dir, --base-http-port, --base-raft-port)", name))
		}
	}
	return nil
}

func newServeFlagSet() *pflag.FlagSet {
	flags := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	server.AddFlags(flags)
	return flags
}

// loadServeConfig is what `weir serve args...` loads.
func loadServeConfig(args []string, lookupEnv func(string) (string, bool)) (server.Config, error) {
	flags := newServeFlagSet()
	if err := flags.Parse(args); err != nil {
		return server.Config{}, err
	}
	return server.LoadConfig(flags, lookupEnv)
}

// run starts the cluster, serves until a signal (or ctx ends) and stops it.
func (lc *localCluster) run(ctx context.Context) error {
	if err := lc.checkPorts(); err != nil {
		return err
	}
	if err := lc.prepareDir(); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this weir binary to start the nodes with: %w", err)
	}
	lc.bin = bin

	// Signals are caught before the first child starts, so that one arriving
	// during start-up still stops every child that is running.
	lc.sigs = make(chan os.Signal, 4)
	lc.notify(lc.sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer lc.stopNotify(lc.sigs)

	runErr := lc.startAndWatch(ctx)
	forced, stopErr := lc.stopAll()
	switch {
	case forced:
		return stopErr
	case runErr != nil:
		return runErr
	case stopErr != nil:
		return stopErr
	case len(lc.died) > 0:
		ids := make([]string, len(lc.died))
		for i, n := range lc.died {
			ids[i] = strconv.Itoa(n.id)
		}
		return fmt.Errorf("node %s exited unexpectedly during the run (see above)", strings.Join(ids, ", "))
	}
	return nil
}

// startAndWatch starts the voters, then (once they are ready) the others,
// prints the addresses and watches the nodes until a signal or ctx ends. A
// nil return means a stop was asked for.
func (lc *localCluster) startAndWatch(ctx context.Context) error {
	deadline := time.Now().Add(lc.opts.readyTimeout)
	var voters, joiners []*lcNode
	for _, n := range lc.nodes {
		if n.voter {
			voters = append(voters, n)
		} else {
			joiners = append(joiners, n)
		}
	}
	lc.say("starting %d node%s in %s (logs: %s)", len(lc.nodes), plural(len(lc.nodes)), lc.opts.dir,
		filepath.Join(lc.opts.dir, "node-N", localLogFile))
	for _, group := range [][]*lcNode{voters, joiners} {
		if len(group) == 0 {
			continue
		}
		for _, n := range group {
			if err := lc.launch(n); err != nil {
				return err
			}
		}
		if proceed, err := lc.awaitReady(ctx, group, deadline); !proceed {
			return err
		}
	}
	lc.printReady()
	return lc.watch(ctx)
}

// launch starts one node's process and its waiter.
func (lc *localCluster) launch(n *lcNode) error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("node %d: open its log: %w", n.id, err)
	}
	fmt.Fprintf(logf, "--- %s weir local-cluster: starting node %d: weir %s\n",
		time.Now().Format(time.RFC3339), n.id, strings.Join(n.args, " "))
	cmd := exec.Command(lc.bin, n.args...)
	cmd.SysProcAttr = childSysProcAttr() // own process group: Ctrl-C reaches us, not them
	// In the environment, not the arguments: those show in ps and in the log.
	cmd.Env = append(os.Environ(), server.EnvName("cluster_secret")+"="+lc.secret)
	var prefixer *linePrefixer
	if lc.opts.verbose {
		prefixer = &linePrefixer{file: logf, out: lc.stderr, prefix: fmt.Sprintf("node %d | ", n.id)}
		cmd.Stdout, cmd.Stderr = prefixer, prefixer
	} else {
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	if err := cmd.Start(); err != nil {
		_ = logf.Close() // abandoned: the start's error is the one to report
		return fmt.Errorf("start node %d: %w", n.id, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	lc.started = append(lc.started, n)
	// The one waiter of this process; stopAll waits for done of every
	// started node, so it never outlives run.
	go func() {
		err := cmd.Wait()
		if prefixer != nil {
			prefixer.flush()
		}
		if cerr := logf.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close its log %s: %w", n.logPath, cerr))
		}
		n.waitErr = err
		close(n.done)
		lc.exits <- n // buffered for every node: never blocks
	}()
	lc.say("started node %d (pid %d)", n.id, cmd.Process.Pid)
	return nil
}

// awaitReady waits until every node of group answers /readyz with 200.
// proceed is false when the run must end: err nil for a stop asked for (a
// signal, ctx), else why the cluster did not come up.
func (lc *localCluster) awaitReady(ctx context.Context, group []*lcNode, deadline time.Time) (proceed bool, err error) {
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	result := make(chan readiness, 1)
	go func() { result <- pollReady(rctx, group) }()
	// Every path below ends the poller and receives its result: it never
	// outlives this call.
	stopPoller := func() readiness { cancel(); return <-result }
	for {
		select {
		case r := <-result:
			if len(r.notReady) == 0 {
				return true, nil
			}
			if ctx.Err() != nil {
				return false, nil
			}
			for _, n := range r.notReady {
				lc.say("node %d (%s) is not ready after %s (last answer: %s); end of %s:\n%s",
					n.id, n.url(), lc.opts.readyTimeout, r.last[n.id], n.logPath, logTail(n.logPath))
			}
			return false, fmt.Errorf("node %s not ready after %s (--ready-timeout); see the end of the log above",
				idList(r.notReady), lc.opts.readyTimeout)
		case s := <-lc.sigs:
			stopPoller()
			lc.say("%s during start-up: stopping the nodes (send it again to kill them at once)", s)
			return false, nil
		case n := <-lc.exits:
			stopPoller()
			lc.say("node %d exited during start-up (%s); end of %s:\n%s", n.id, n.status(), n.logPath, logTail(n.logPath))
			return false, fmt.Errorf("node %d exited during start-up (%s); see the end of its log above", n.id, n.status())
		}
	}
}

// readiness is the outcome of pollReady: the nodes not ready (none when all
// are) and the last answer of each.
type readiness struct {
	notReady []*lcNode
	last     map[int]string
}

// pollReady asks every node of group for /readyz until all answered 200 or
// ctx ends. It reads only the nodes' fixed fields.
func pollReady(ctx context.Context, group []*lcNode) readiness {
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	pending := slices.Clone(group)
	last := map[int]string{}
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		var still []*lcNode
		for _, n := range pending {
			if answer := probeReady(ctx, hc, n.url()+"/readyz"); answer != "" {
				last[n.id] = answer
				still = append(still, n)
			}
		}
		if pending = still; len(pending) == 0 {
			return readiness{}
		}
		select {
		case <-ctx.Done():
			return readiness{notReady: pending, last: last}
		case <-tick.C:
		}
	}
}

// probeReady returns "" for a 200, else what came back instead.
func probeReady(ctx context.Context, hc *http.Client, u string) string {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return ""
	}
	return resp.Status
}

func (lc *localCluster) printReady() {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Weir local cluster: %d node%s ready, data and logs in %s\n", len(lc.nodes), plural(len(lc.nodes)), lc.opts.dir)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, n := range lc.nodes {
		role := "voter"
		if !n.voter {
			role = "joined"
		}
		fmt.Fprintf(tw, "  node %d\t%s\traft %s\t%s\tpid %d\tlog %s\n", n.id, n.url(), n.raftAddr, role, n.cmd.Process.Pid, n.logPath)
	}
	tw.Flush()
	fmt.Fprintf(&b, "Try:\n  curl -s localhost:%d/v1/cluster\n", lc.opts.baseHTTPPort)
	b.WriteString("Ctrl-C stops every node cleanly (a second Ctrl-C kills them at once).\n")
	_, _ = lc.stdout.Write(b.Bytes())
}

// watch reports nodes that die until a stop is asked for; nil means it was.
func (lc *localCluster) watch(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-lc.sigs:
			lc.say("%s: stopping the nodes, last first (send it again to kill them at once)", s)
			return nil
		case n := <-lc.exits:
			lc.died = append(lc.died, n)
			alive := 0
			for _, m := range lc.started {
				if !m.exited() {
					alive++
				}
			}
			lc.say("node %d (pid %d) exited unexpectedly (%s); %d node%s still running. End of %s:\n%s",
				n.id, n.cmd.Process.Pid, n.status(), alive, plural(alive), n.logPath, logTail(n.logPath))
			if alive == 0 {
				return errors.New("every node has exited (see above)")
			}
		}
	}
}

// stopAll stops every started node: SIGTERM, last node first, each waited
// for up to stopTimeout and then killed. A signal meanwhile kills every node
// left at once. It returns only once every started process has been waited
// for. forced says a signal cut the clean stop short.
func (lc *localCluster) stopAll() (forced bool, err error) {
	var unclean []string
	for i := len(lc.started) - 1; i >= 0; i-- {
		n := lc.started[i]
		if n.exited() {
			continue
		}
		clean, sig := lc.stopOne(n)
		if sig != nil {
			lc.say("%s while stopping: killing every node", sig)
			for _, m := range lc.started[:i+1] {
				lc.kill(m)
			}
			return true, &exitError{code: signalExitCode(sig), err: fmt.Errorf("second %s: the nodes were killed without a clean shutdown", sig)}
		}
		if !clean {
			unclean = append(unclean, strconv.Itoa(n.id))
		}
	}
	if len(unclean) > 0 {
		return false, fmt.Errorf("node %s did not stop cleanly (see above)", strings.Join(unclean, ", "))
	}
	return false, nil
}

// stopOne sends SIGTERM to n and waits for it: clean if it exited 0 in
// time (else it is killed), or the signal that interrupted the wait (n is
// then still running).
func (lc *localCluster) stopOne(n *lcNode) (clean bool, sig os.Signal) {
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		lc.say("node %d: send SIGTERM: %v", n.id, err)
	}
	timeout := time.NewTimer(lc.stopTimeout)
	defer timeout.Stop()
	var slowC <-chan time.Time // nil (never) unless the timeout is longer
	if lc.stopTimeout > stillStoppingAfter {
		slow := time.NewTimer(stillStoppingAfter)
		defer slow.Stop()
		slowC = slow.C
	}
	for {
		select {
		case <-n.done:
			if n.waitErr != nil {
				lc.say("node %d did not stop cleanly (%s); end of %s:\n%s", n.id, n.status(), n.logPath, logTail(n.logPath))
				return false, nil
			}
			lc.say("stopped node %d", n.id)
			return true, nil
		case <-slowC:
			lc.say("node %d is still stopping (a clean stop may take up to its shutdown_timeout_ms; it is killed after %s, or at once on another signal)", n.id, lc.stopTimeout)
		case <-timeout.C:
			lc.say("node %d did not stop within %s; killing it", n.id, lc.stopTimeout)
			lc.kill(n)
			return false, nil
		case s := <-lc.sigs:
			return false, s
		}
	}
}

// kill sends SIGKILL and waits for the process to go.
func (lc *localCluster) kill(n *lcNode) {
	if err := n.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		lc.say("node %d: kill: %v", n.id, err)
	}
	<-n.done
}

// say writes one message of local-cluster's own to stderr.
func (lc *localCluster) say(format string, args ...any) {
	fmt.Fprintf(lc.stderr, "local-cluster: "+format+"\n", args...)
}

// logTail is the end of a log file, indented, for an error report.
func logTail(path string) string {
	const maxBytes, maxLines = 16 << 10, 20
	f, err := os.Open(path)
	if err != nil {
		return "    (" + err.Error() + ")"
	}
	defer func() { _ = f.Close() }() // only read
	var data []byte
	if st, err := f.Stat(); err == nil && st.Size() > maxBytes {
		data = make([]byte, maxBytes)
		n, _ := f.ReadAt(data, st.Size()-maxBytes)
		data = data[:n]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:] // drop the partial first line
		}
	} else {
		data, _ = io.ReadAll(f)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "    (empty)"
	}
	return "    " + strings.Join(lines, "\n    ")
}

func idList(nodes []*lcNode) string {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = strconv.Itoa(n.id)
	}
	return strings.Join(ids, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// lockedWriter serialises writes from several goroutines to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// linePrefixer is a child's stdout and stderr with --verbose: everything
// goes to its log file, and every complete line also to out with a prefix.
// exec calls Write from one goroutine at a time (Stdout == Stderr); flush
// runs after Wait.
type linePrefixer struct {
	file    io.Writer
	out     io.Writer
	prefix  string
	partial []byte
}

func (p *linePrefixer) Write(b []byte) (int, error) {
	// A failing log file or stderr must not kill the node with EPIPE:
	// errors are dropped.
	_, _ = p.file.Write(b)
	p.partial = append(p.partial, b...)
	last := bytes.LastIndexByte(p.partial, '\n')
	if last < 0 && len(p.partial) < 64<<10 {
		return len(b), nil
	}
	if last < 0 {
		last = len(p.partial) - 1 // an endless line: cut it here
	}
	var out bytes.Buffer
	for line := range bytes.Lines(p.partial[:last+1]) {
		out.WriteString(p.prefix)
		out.Write(line)
		if line[len(line)-1] != '\n' {
			out.WriteByte('\n')
		}
	}
	_, _ = p.out.Write(out.Bytes())
	p.partial = append(p.partial[:0], p.partial[last+1:]...)
	return len(b), nil
}

// flush writes a last line that had no newline.
func (p *linePrefixer) flush() {
	if len(p.partial) > 0 {
		_, _ = p.out.Write([]byte(p.prefix + string(p.partial) + "\n"))
		p.partial = nil
	}
}
