//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Namespace networking: a hub namespace holds a bridge; every node, the
// clients and the harness's control side get a namespace of their own with
// a veth into the bridge and an address in nsSubnet. Nothing is created in
// the host's namespace: veths are made inside the hub and their far ends
// moved straight into the member namespace. A link is cut by a blackhole
// route to the peer's address on both sides; established connections then
// stall (their segments go nowhere) and new ones fail, as in a partition.
//
// Names are nsPrefix-<pid>-<random>-<role>, so a later run can tell the
// namespaces of a run whose process is gone and remove them.

const (
	nsPrefix    = "weirfaults"
	nsSubnet    = "10.213.0."
	nsHTTPPort  = "8082"
	nsRaftPort  = "9093"
	nsThreadsN  = 8 // dialing threads per namespace
	ipCmdTimout = 10 * time.Second
	nsDialLimit = time.Second
)

type netnsNet struct {
	base  string // nsPrefix-<pid>-<random>
	n     int
	hub   string
	names []string // names[0]: clients, names[i]: node i
	ctl   string
	cli   *nsThreads
	ctlT  *nsThreads
	logf  func(string, ...any)

	hostNS string // this process's namespace (its main thread's), which must not change

	mu   sync.Mutex
	cuts map[[2]endpoint]bool
}

func (m *netnsNet) mode() string { return modeNetns }

// check: the main thread is still in the host's namespace.
func (m *netnsNet) check() error {
	if ns, err := os.Readlink("/proc/self/ns/net"); err != nil || ns != m.hostNS {
		return fmt.Errorf("this process's network namespace changed from %s to %s (%v)", m.hostNS, ns, err)
	}
	return nil
}

func nsIP(e endpoint) string {
	if e == clientEndpoint {
		return nsSubnet + "2"
	}
	return nsSubnet + strconv.Itoa(10+int(e))
}

const nsControlIP = nsSubnet + "3"

// netnsAvailable says why namespaces cannot be used, if they cannot.
func netnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("no ip(8)")
	}
	name := fmt.Sprintf("%s-%d-probe", nsPrefix, os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), ipCmdTimout)
	defer cancel()
	if err := ip(ctx, "netns", "add", name); err != nil {
		return err
	}
	return ip(ctx, "netns", "del", name)
}

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return commandError("ip", args, out, err)
	}
	return nil
}

// newNetnsNet builds the namespaces of an n-node cluster.
func newNetnsNet(n int, logf func(string, ...any)) (_ *netnsNet, err error) {
	cleanStaleNamespaces(logf)
	m := &netnsNet{
		base: fmt.Sprintf("%s-%d-%04x", nsPrefix, os.Getpid(), rand.IntN(1<<16)),
		n:    n, logf: logf, cuts: map[[2]endpoint]bool{},
	}
	if m.hostNS, err = os.Readlink("/proc/self/ns/net"); err != nil {
		return nil, fmt.Errorf("this process's network namespace: %w", err)
	}
	m.hub = m.base + "-hub"
	m.ctl = m.base + "-ctl"
	m.names = append(m.names, m.base+"-cli")
	for i := 1; i <= n; i++ {
		m.names = append(m.names, fmt.Sprintf("%s-n%d", m.base, i))
	}
	defer func() {
		if err != nil {
			_ = m.close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	steps := [][]string{
		{"netns", "add", m.hub},
		{"-n", m.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", m.hub, "link", "set", "br0", "up"},
	}
	if err := runIP(ctx, steps); err != nil {
		return nil, err
	}
	members := []struct{ name, ip, veth string }{{m.ctl, nsControlIP, "vctl"}}
	for i, name := range m.names {
		members = append(members, struct{ name, ip, veth string }{name, nsIP(endpoint(i)), fmt.Sprintf("v%d", i)})
	}
	for _, mb := range members {
		steps := [][]string{
			{"netns", "add", mb.name},
			{"-n", m.hub, "link", "add", mb.veth, "type", "veth", "peer", "name", "eth0", "netns", mb.name},
			{"-n", m.hub, "link", "set", mb.veth, "master", "br0", "up"},
			{"-n", mb.name, "addr", "add", mb.ip + "/24", "dev", "eth0"},
			{"-n", mb.name, "link", "set", "eth0", "up"},
			{"-n", mb.name, "link", "set", "lo", "up"},
		}
		if err := runIP(ctx, steps); err != nil {
			return nil, err
		}
	}
	if m.cli, err = startNSThreads(nsPath(m.names[0]), nsThreadsN); err != nil {
		return nil, err
	}
	if m.ctlT, err = startNSThreads(nsPath(m.ctl), nsThreadsN); err != nil {
		return nil, err
	}
	return m, nil
}

func runIP(ctx context.Context, steps [][]string) error {
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

func nsPath(name string) string { return filepath.Join("/var/run/netns", name) }

func (m *netnsNet) addrs(i int) nodeAddrs {
	h := nsIP(endpoint(i))
	a := nodeAddrs{httpListen: net.JoinHostPort(h, nsHTTPPort), raftListen: net.JoinHostPort(h, nsRaftPort)}
	a.httpAdvertise, a.raftAdvertise = a.httpListen, a.raftListen
	return a
}

// command runs bin in node i's namespace; ip(8) execs it, so the process
// id is bin's.
func (m *netnsNet) command(i int, bin string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", m.names[i], bin}, args...)...)
}

func (m *netnsNet) clientDial(ctx context.Context, network, addr string) (net.Conn, error) {
	return m.cli.dial(ctx, network, addr)
}

func (m *netnsNet) controlDial(ctx context.Context, network, addr string) (net.Conn, error) {
	return m.ctlT.dial(ctx, network, addr)
}

func (m *netnsNet) controlHTTP(i int) string { return m.addrs(i).httpAdvertise }

func (m *netnsNet) setNodes(func() map[int]int) {}

func (m *netnsNet) cut(a, b endpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := pairKey(a, b)
	if m.cuts[k] {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipCmdTimout)
	defer cancel()
	m.cuts[k] = true // marked first: healAll removes a half-made cut too
	for _, d := range [][2]endpoint{{a, b}, {b, a}} {
		if err := ip(ctx, "-n", m.names[d[0]], "route", "replace", "blackhole", nsIP(d[1])+"/32"); err != nil {
			return err
		}
	}
	return nil
}

func (m *netnsNet) healAll() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), ipCmdTimout)
	defer cancel()
	var errs []error
	for k := range m.cuts {
		for _, d := range [][2]endpoint{{k[0], k[1]}, {k[1], k[0]}} {
			err := ip(ctx, "-n", m.names[d[0]], "route", "del", "blackhole", nsIP(d[1])+"/32")
			if err != nil && !strings.Contains(err.Error(), "No such process") {
				errs = append(errs, err)
			}
		}
		delete(m.cuts, k)
	}
	return errors.Join(errs...)
}

// close removes every namespace of the run. The nodes' processes must be
// gone by then (a namespace lives on while a process is in it).
func (m *netnsNet) close() error {
	if m.cli != nil {
		m.cli.close()
	}
	if m.ctlT != nil {
		m.ctlT.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, name := range append([]string{m.hub, m.ctl}, m.names...) {
		if _, err := os.Stat(nsPath(name)); err != nil {
			continue
		}
		if err := ip(ctx, "netns", "del", name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cleanStaleNamespaces removes the namespaces of earlier runs whose test
// process is gone, killing (by pid) the weir processes still in them.
func cleanStaleNamespaces(logf func(string, ...any)) {
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, e := range entries {
		name := e.Name()
		pid, ok := runPID(name, nsPrefix+"-")
		if !ok || processAlive(pid) {
			continue
		}
		if out, err := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if p, err := strconv.Atoi(f); err == nil && isWeirProcess(p) {
					_ = syscall.Kill(p, syscall.SIGKILL)
				}
			}
		}
		if err := ip(ctx, "netns", "del", name); err != nil {
			logf("removing stale namespace %s: %v", name, err)
		} else {
			logf("removed stale namespace %s of a run that is gone (pid %d)", name, pid)
		}
	}
}

// runPID extracts the test process id from a name prefix-<pid>-...
func runPID(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	pidText, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidText)
	return pid, err == nil && pid > 0
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// isWeirProcess tells a weir node left by an earlier run from anything else.
func isWeirProcess(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == "weir"
}

// nsThreads are OS threads that entered a network namespace and run
// functions there: sockets are created in the namespace of the thread that
// creates them, and stay there whichever thread uses them later.
type nsThreads struct {
	work chan func()
	wg   sync.WaitGroup
}

func startNSThreads(path string, n int) (*nsThreads, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open namespace: %w", err)
	}
	defer func() { _ = f.Close() }() // only a handle to enter the namespace by
	t := &nsThreads{work: make(chan func())}
	ready := make(chan error, n)
	var worker func()
	worker = func() {
		defer t.wg.Done()
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread must stay in the host's namespace: /proc/self
			// is its view, and the runtime never ends it. Hand over to a new
			// goroutine, which cannot get this thread while it is locked.
			t.wg.Add(1)
			go worker()
			runtime.UnlockOSThread()
			return
		}
		// Never unlocked: a thread in another namespace must not go back to
		// the runtime's pool; it ends with this goroutine.
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		ready <- nil
		for fn := range t.work {
			fn()
		}
	}
	for range n {
		t.wg.Add(1)
		go worker()
	}
	var errs []error
	for range n {
		errs = append(errs, <-ready)
	}
	if err := errors.Join(errs...); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// do runs fn on one of the threads and waits for it; fn must honour ctx.
func (t *nsThreads) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case t.work <- func() { defer close(done); fn() }:
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done
	return nil
}

func (t *nsThreads) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	var err error
	if werr := t.do(ctx, func() {
		d := net.Dialer{Timeout: nsDialLimit}
		conn, err = d.DialContext(ctx, network, addr)
	}); werr != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: werr}
	}
	return conn, err
}

func (t *nsThreads) listen(ctx context.Context, network, addr string) (net.Listener, error) {
	var l net.Listener
	var err error
	if werr := t.do(ctx, func() { l, err = (&net.ListenConfig{}).Listen(ctx, network, addr) }); werr != nil {
		return nil, werr
	}
	return l, err
}

func (t *nsThreads) close() {
	close(t.work)
	t.wg.Wait()
}
