package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"weir/internal/testport"
)

// The binary under test is built once per package run.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func weirBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "weir-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "weir")
		out, err := exec.Command("go", "build", "-race", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t testing.TB) string { return testport.Addr(t) }

// node is a weir process started by a test.
type node struct {
	t        testing.TB
	id       int
	dataDir  string
	httpAddr string
	raftAddr string
	args     []string
	cmd      *exec.Cmd
	logPath  string
	exited   chan struct{}
	paused   bool // SIGSTOPped (see pause and resume)
	// fileLimit, when set, is the process's RLIMIT_NOFILE (soft and hard).
	fileLimit int
}

// startNode runs `weir serve` on free loopback ports in a temp data dir.
func startNode(t testing.TB, extra ...string) *node {
	t.Helper()
	n := newNode(t, extra...)
	n.start()
	return n
}

// newNode is a single node set up on free loopback ports in a temp data dir, not started yet.
func newNode(t testing.TB, extra ...string) *node {
	t.Helper()
	n := &node{t: t, id: 1, dataDir: filepath.Join(t.TempDir(), "data"), httpAddr: freePort(t), raftAddr: freePort(t)}
	n.args = append([]string{"serve", "--node-id", "1", "--data-dir", n.dataDir, "--http-addr", n.httpAddr,
		"--raft-addr", n.raftAddr, "--voters", "1@" + n.raftAddr}, extra...)
	n.logPath = filepath.Join(t.TempDir(), "node.log")
	t.Cleanup(n.kill)
	return n
}

func (n *node) url() string { return "http://" + n.httpAddr }

// start launches the process and waits until it is ready.
func (n *node) start() {
	n.t.Helper()
	n.launch()
	n.waitReady(60 * time.Second)
}

// launch starts the process without waiting for it to be ready; one
// goroutine waits for it and closes exited.
func (n *node) launch() {
	n.t.Helper()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	name, args := weirBinary(n.t), n.args
	if n.fileLimit > 0 { // through a shell: Go cannot set a child's rlimit; exec keeps the pid
		name, args = "/bin/sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, n.fileLimit), name}, args...)
	}
	n.cmd = exec.Command(name, args...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}(n.cmd, n.exited)
}

// running reports whether the process was started and has not been waited for.
func (n *node) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// pid is the process id of the running process.
func (n *node) pid() int {
	n.t.Helper()
	if n.cmd == nil {
		n.t.Fatalf("node %d is not running", n.id)
	}
	return n.cmd.Process.Pid
}

// pause freezes the process with SIGSTOP (a zombie leader, a long GC pause).
func (n *node) pause() {
	n.t.Helper()
	if err := syscall.Kill(n.pid(), syscall.SIGSTOP); err != nil {
		n.t.Fatalf("SIGSTOP node %d: %v", n.id, err)
	}
	n.paused = true
	// A signal is delivered asynchronously: wait until every thread has
	// stopped, or a request sent right after may still be answered.
	deadline := time.Now().Add(10 * time.Second)
	for !processStopped(n.pid()) {
		if time.Now().After(deadline) {
			n.t.Fatalf("node %d did not stop within 10s of SIGSTOP", n.id)
		}
		time.Sleep(time.Millisecond)
	}
}

// processStopped reports whether every thread of pid is in the stopped state.
func processStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// pid (comm) state ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) || (stat[i+2] != 'T' && stat[i+2] != 't') {
			return false
		}
	}
	return true
}

// resume lets a paused process run again with SIGCONT.
func (n *node) resume() {
	n.t.Helper()
	if err := syscall.Kill(n.pid(), syscall.SIGCONT); err != nil {
		n.t.Fatalf("SIGCONT node %d: %v", n.id, err)
	}
	n.paused = false
}

// waitReady polls /readyz until it answers 200, failing the test at the deadline.
func (n *node) waitReady(timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-n.exited:
			n.t.Fatalf("weir exited before it was ready:\n%s", n.log())
		default:
		}
		resp, err := hc.Get(n.url() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, bounded by the deadline
	}
	n.t.Fatalf("weir not ready after %v:\n%s", timeout, n.log())
}

func (n *node) log() string {
	b, _ := os.ReadFile(n.logPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop() {
	n.t.Helper()
	if n.cmd == nil {
		return
	}
	if n.paused {
		n.resume() // a stopped process would not act on SIGTERM
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(60 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
		n.t.Fatalf("weir did not stop on SIGTERM:\n%s", n.log())
	}
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		n.t.Fatalf("weir exited with %d after SIGTERM:\n%s", code, n.log())
	}
	n.cmd = nil
}

// kill sends SIGKILL (a crash) and waits for the process to go.
func (n *node) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill() // SIGKILL ends a SIGSTOPped process too
	<-n.exited
	n.cmd, n.paused = nil, false
}

// restart starts a node that was stopped or killed.
func (n *node) restart() {
	n.t.Helper()
	if n.running() {
		n.t.Fatalf("restart of node %d, which is still running (stop or kill it first)", n.id)
	}
	n.start()
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func itoa(i int) string { return strconv.Itoa(i) }
