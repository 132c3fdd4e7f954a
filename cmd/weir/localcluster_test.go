package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"weir/client"
	"weir/nodeauth"
)

// testApp is an app for running commands in-process that never touch the
// process's signals.
func testApp() (*app, *syncBuffer, *syncBuffer) {
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	return &app{
		stdout:     stdout,
		stderr:     stderr,
		lookupEnv:  func(string) (string, bool) { return "", false },
		notify:     func(chan<- os.Signal, ...os.Signal) {},
		stopNotify: func(chan<- os.Signal) {},
		exit:       func(int) {},
	}, stdout, stderr
}

// portOf is the port of a host:port.
func portOf(t testing.TB, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestLocalClusterRefuses: bad flags, a taken port and a data dir of another
// layout are refused with one clear line before any node starts.
func TestLocalClusterRefuses(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := portOf(t, busy.Addr().String())

	otherLayout := t.TempDir()
	if err := os.WriteFile(filepath.Join(otherLayout, localManifestFile), []byte(`{"nodes":3,"base_http_port":8082,"base_raft_port":9093}`), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"zero nodes", []string{"--nodes", "0"}, 2, []string{"--nodes must be between 1 and 9, got 0"}},
		{"ten nodes", []string{"--nodes", "10"}, 2, []string{"--nodes must be between 1 and 9, got 10"}},
		{"bad flag value", []string{"--nodes", "three"}, 2, []string{"--nodes"}},
		{"argument", []string{"now"}, 2, []string{`takes no arguments, got "now"`, "after --"}},
		{"argument before --", []string{"now", "--", "--fsync", "never"}, 2, []string{`got "now"`}},
		{"managed flag", []string{"--", "--node-id", "4"}, 2, []string{"--node-id is set by local-cluster"}},
		{"managed flag with =", []string{"--", "--voters=1@127.0.0.1:1"}, 2, []string{"--voters is set by local-cluster"}},
		{"managed secret", []string{"--", "--cluster-secret", "0123456789abcdef-mine"}, 2, []string{"--cluster-secret is set by local-cluster"}},
		{"unknown serve flag", []string{"--", "--fsnyc", "never"}, 2, []string{"unknown flag: --fsnyc"}},
		{"bad serve value", []string{"--", "--fsync", "sometimes"}, 2, []string{"node 1: fsync:", "(from --fsync)"}},
		{"serve argument", []string{"--", "--fsync", "never", "now"}, 2, []string{`unexpected argument "now"`}},
		{"ports overlap", []string{"--base-http-port", "9000", "--base-raft-port", "9002"}, 2, []string{"overlap"}},
		{"port range", []string{"--base-http-port", "65534"}, 2, []string{"--base-http-port must be between 1 and 65533 for 3 nodes"}},
		{"ready timeout", []string{"--ready-timeout", "0s"}, 2, []string{"--ready-timeout must be positive"}},
		{"port in use", []string{"--nodes", "1", "--base-http-port", busyPort, "--base-raft-port", portOf(t, freePort(t))}, 1,
			[]string{"127.0.0.1:" + busyPort + " (the HTTP address of node 1) is already in use", "--base-http-port"}},
		{"other layout", []string{"--nodes", "1", "--dir", otherLayout, "--base-http-port", portOf(t, freePort(t)), "--base-raft-port", portOf(t, freePort(t))}, 2,
			[]string{"holds a cluster of 3 nodes", "--nodes 3 --base-http-port 8082 --base-raft-port 9093"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, stdout, stderr := testApp()
			dir := filepath.Join(t.TempDir(), "lc")
			args := append([]string{"local-cluster", "--dir", dir}, tc.args...)
			if code := run(context.Background(), args, a); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			line := stderr.String()
			if strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, "weir: ") {
				t.Fatalf("stderr is not one weir: line: %q", line)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr %q lacks %q", line, w)
				}
			}
			if stdout.String() != "" {
				t.Errorf("stdout %q", stdout)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused run created %s (%v)", dir, err)
			}
		})
	}
}

// TestLocalClusterStopAll: nodes stop last first; one that ignores SIGTERM
// is killed after --stop-timeout; a second signal kills every node at once.
// The nodes are shell processes standing in for weir.
func TestLocalClusterStopAll(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("this test needs sh: %v", err)
	}
	const (
		clean    = "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done"
		stubborn = "trap '' TERM; echo up; exec sleep 30"
	)
	setup := func(t *testing.T, stopTimeout time.Duration, scripts ...string) (*localCluster, *syncBuffer) {
		a, _, stderr := testApp()
		o := localClusterOptions{nodes: len(scripts), dir: t.TempDir(), baseHTTPPort: 30000, baseRaftPort: 31000,
			readyTimeout: time.Minute, stopTimeout: stopTimeout}
		lc, err := newLocalCluster(a, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := lc.prepareDir(); err != nil {
			t.Fatal(err)
		}
		lc.bin, lc.sigs = sh, make(chan os.Signal, 4)
		for i, n := range lc.nodes {
			n.args = []string{"-c", scripts[i]}
			if err := lc.launch(n); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			for _, n := range lc.started {
				lc.kill(n)
			}
		})
		// Wait until each shell has set its trap.
		for _, n := range lc.nodes {
			pollUntil(t, 10*time.Second, "node "+itoa(n.id)+" up", func() error {
				if b, _ := os.ReadFile(n.logPath); !strings.Contains(string(b), "up\n") {
					return errors.New("not up")
				}
				return nil
			})
		}
		return lc, stderr
	}

	t.Run("timeout", func(t *testing.T) {
		lc, stderr := setup(t, 300*time.Millisecond, clean, stubborn)
		forced, err := lc.stopAll()
		if forced || err == nil || !strings.Contains(err.Error(), "node 2 did not stop cleanly") {
			t.Fatalf("forced %v, err %v", forced, err)
		}
		out := stderr.String()
		killed, stopped := strings.Index(out, "node 2 did not stop within 300ms; killing it"), strings.Index(out, "stopped node 1")
		if killed < 0 || stopped < killed {
			t.Fatalf("want node 2 killed, then node 1 stopped:\n%s", out)
		}
		for _, n := range lc.nodes {
			if !n.exited() {
				t.Fatalf("node %d still running", n.id)
			}
		}
		if b, _ := os.ReadFile(lc.nodes[0].logPath); !strings.Contains(string(b), "bye") {
			t.Fatalf("node 1 did not get SIGTERM: %q", b)
		}
	})

	t.Run("second signal", func(t *testing.T) {
		lc, stderr := setup(t, time.Minute, stubborn, stubborn, stubborn)
		lc.sigs <- syscall.SIGINT
		start := time.Now()
		forced, err := lc.stopAll()
		if !forced || exitCode(err) != 130 {
			t.Fatalf("forced %v, err %v (exit %d), want forced and 130", forced, err, exitCode(err))
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("killing took %v", d)
		}
		for _, n := range lc.nodes {
			if !n.exited() || n.status() != "signal: killed" {
				t.Fatalf("node %d: exited %v, %s", n.id, n.exited(), n.status())
			}
		}
		if !strings.Contains(stderr.String(), "interrupt while stopping: killing every node") {
			t.Fatalf("stderr:\n%s", stderr)
		}
	})
}

// localClusterProc is `weir local-cluster` run as a child process by a test.
type localClusterProc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	waited         chan error
}

func startLocalCluster(t *testing.T, args ...string) *localClusterProc {
	t.Helper()
	p := &localClusterProc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, waited: make(chan error, 1)}
	p.cmd = weirCmd(t, weirBinary(t), nil, append([]string{"local-cluster"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		// A failed test must not leave processes behind. A local-cluster
		// that exited has waited for its nodes; one still running is
		// killed, and then the nodes it started, by pid (orphans by now).
		if p.waited == nil {
			return
		}
		_ = p.cmd.Process.Kill()
		<-p.waited
		p.waited = nil
		for _, pid := range p.pids(`started node \d+ \(pid (\d+)\)`) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return p
}

// The pids local-cluster prints once the nodes are ready.
const readyPIDs = `  pid (\d+)  `

// pids are the process ids pattern's group matches in stdout and stderr.
func (p *localClusterProc) pids(pattern string) []int {
	var out []int
	re := regexp.MustCompile(pattern)
	for _, m := range re.FindAllStringSubmatch(p.stdout.String()+p.stderr.String(), -1) {
		if pid, err := strconv.Atoi(m[1]); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// waitOutput waits until stdout contains s.
func (p *localClusterProc) waitOutput(s string, timeout time.Duration) {
	p.t.Helper()
	pollUntil(p.t, timeout, "local-cluster to print "+strconv.Quote(s), func() error {
		select {
		case err := <-p.waited:
			p.waited = nil
			p.t.Fatalf("local-cluster exited (%v):\nstdout:\n%s\nstderr:\n%s", err, p.stdout, p.stderr)
		default:
		}
		if !strings.Contains(p.stdout.String(), s) {
			return errors.New("not yet")
		}
		return nil
	})
}

// wait waits for local-cluster to exit and returns its exit code.
func (p *localClusterProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case err := <-p.waited:
		p.waited = nil
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			return ee.ExitCode()
		} else if err != nil {
			p.t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		p.t.Fatalf("local-cluster still running after %v:\nstdout:\n%s\nstderr:\n%s", timeout, p.stdout, p.stderr)
		return -1
	}
}

func processGone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// TestLocalClusterCommand runs `weir local-cluster --nodes 1` for real:
// it comes up, serves, refuses a second cluster on its ports, and on SIGINT
// stops its node cleanly and leaves no process behind.
func TestLocalClusterCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lc")
	httpPort, raftPort := portOf(t, freePort(t)), portOf(t, freePort(t))
	p := startLocalCluster(t, "--nodes", "1", "--dir", dir, "--base-http-port", httpPort, "--base-raft-port", raftPort,
		"--verbose", "--", "--shutdown-timeout-ms", "10000")
	p.waitOutput("curl -s localhost:"+httpPort+"/v1/cluster", 90*time.Second)

	pids := p.pids(readyPIDs)
	if len(pids) != 1 {
		t.Fatalf("want the pid of 1 node in:\n%s", p.stdout)
	}
	node := pids[0]
	if processGone(node) {
		t.Fatalf("node pid %d is not running", node)
	}
	if pgid, err := syscall.Getpgid(node); err != nil || pgid != node {
		t.Fatalf("node %d is in process group %d (%v), want its own", node, pgid, err)
	}
	for _, w := range []string{"node 1  http://127.0.0.1:" + httpPort, "raft 127.0.0.1:" + raftPort, filepath.Join(dir, "node-1", "weir.log")} {
		if !strings.Contains(p.stdout.String(), w) {
			t.Errorf("stdout lacks %q:\n%s", w, p.stdout)
		}
	}

	// It serves.
	cl, err := client.New([]string{"127.0.0.1:" + httpPort})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.CloseIdleConnections()
	info, err := cl.Cluster(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if info.ControllerID != 1 || len(info.Brokers) != 1 || info.Brokers[0].HTTPAddr != "127.0.0.1:"+httpPort {
		t.Fatalf("cluster %+v", info)
	}
	// --verbose: the node's log on stderr, prefixed.
	if !strings.Contains(p.stderr.String(), "node 1 | ") || !strings.Contains(p.stderr.String(), "starting weir") {
		t.Errorf("no prefixed node log on stderr:\n%s", p.stderr)
	}

	// A second cluster on the same ports is refused at once.
	other := startLocalCluster(t, "--nodes", "1", "--dir", filepath.Join(t.TempDir(), "other"),
		"--base-http-port", httpPort, "--base-raft-port", portOf(t, freePort(t)))
	if code := other.wait(30 * time.Second); code != 1 || !strings.Contains(other.stderr.String(), "is already in use") {
		t.Fatalf("second cluster on port %s: exit %d, stderr %q", httpPort, code, other.stderr)
	}

	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT:\n%s", code, p.stderr)
	}
	if !processGone(node) {
		t.Fatalf("node pid %d still exists after local-cluster exited", node)
	}
	if !strings.Contains(p.stderr.String(), "local-cluster: stopped node 1") {
		t.Errorf("stderr:\n%s", p.stderr)
	}
	logText, err := os.ReadFile(filepath.Join(dir, "node-1", "weir.log"))
	if err != nil || !strings.Contains(string(logText), "weir stopped") {
		t.Fatalf("no clean stop in the node log (%v):\n%s", err, logText)
	}
	// The nodes' secret is kept for the next start, readable by its owner
	// only, and appears in no log.
	secretPath := filepath.Join(dir, nodeauth.SecretFile)
	st, err := os.Stat(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", secretPath, st.Mode().Perm())
	}
	secret, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(string(secret)); strings.Contains(string(logText), s) || strings.Contains(p.stderr.String(), s) {
		t.Fatal("the cluster secret is in a log")
	}
}

// TestLocalClusterNodeDies: a node that dies is reported with the end of
// its log; with none left, local-cluster exits 1.
func TestLocalClusterNodeDies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lc")
	httpPort := portOf(t, freePort(t))
	p := startLocalCluster(t, "--nodes", "1", "--dir", dir, "--base-http-port", httpPort, "--base-raft-port", portOf(t, freePort(t)))
	p.waitOutput("curl -s localhost:"+httpPort+"/v1/cluster", 90*time.Second)
	pids := p.pids(readyPIDs)
	if len(pids) != 1 {
		t.Fatalf("want the pid of 1 node in:\n%s", p.stdout)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(30 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, p.stderr)
	}
	errText := p.stderr.String()
	for _, w := range []string{
		"node 1 (pid " + itoa(pids[0]) + ") exited unexpectedly (signal: killed); 0 nodes still running",
		"weir node started", // the end of its log
		"weir: every node has exited",
	} {
		if !strings.Contains(errText, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errText)
		}
	}
	// The data is still there to start again.
	if _, err := os.Stat(filepath.Join(dir, "node-1", "raft")); err != nil {
		t.Fatal(err)
	}
}
