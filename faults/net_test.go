//go:build linux

package faults

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoServer answers each line with the same line, until l closes.
func echoServer(t *testing.T, l net.Listener) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// echoes reports whether a line sent on c comes back within wait.
func echoes(c net.Conn, line string, wait time.Duration) bool {
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return false
	}
	return readsBack(c, line, wait)
}

func readsBack(c net.Conn, line string, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	defer c.SetReadDeadline(time.Time{})
	got, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && got == line+"\n"
}

// TestProxyCutsLinks: the proxy tells clients from nodes by the socket's
// owning process, stalls exactly the cut links, and lets held bytes through
// once they heal.
func TestProxyCutsLinks(t *testing.T) {
	p, err := newProxyNet(2, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.close() })
	for i := 1; i <= 2; i++ {
		l, err := net.Listen("tcp", p.addrs(i).httpListen)
		if err != nil {
			t.Fatal(err)
		}
		echoServer(t, l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(i int) net.Conn {
		t.Helper()
		c, err := p.clientDial(ctx, "tcp", p.addrs(i).httpAdvertise)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	const short = 300 * time.Millisecond

	// This process is the clients.
	p.setNodes(func() map[int]int { return map[int]int{} })
	c2 := dial(2)
	if !echoes(c2, "hello", 5*time.Second) {
		t.Fatal("no echo through the proxy")
	}
	if err := p.cut(clientEndpoint, 2); err != nil {
		t.Fatal(err)
	}
	if echoes(c2, "held", short) {
		t.Fatal("an established connection passed bytes across a cut")
	}
	fresh := dial(2)
	if echoes(fresh, "new", short) {
		t.Fatal("a new connection passed bytes across a cut")
	}
	if c1 := dial(1); !echoes(c1, "other", 5*time.Second) {
		t.Fatal("cutting client-n2 cut client-n1 too")
	}
	if err := p.healAll(); err != nil {
		t.Fatal(err)
	}
	if !readsBack(c2, "held", 5*time.Second) || !readsBack(fresh, "new", 5*time.Second) {
		t.Fatal("bytes held across the cut did not arrive after the heal")
	}

	// Now this process is node 1: its connections are node 1's.
	p.setNodes(func() map[int]int { return map[int]int{os.Getpid(): 1} })
	n1 := dial(2)
	if err := p.cut(clientEndpoint, 2); err != nil {
		t.Fatal(err)
	}
	if !echoes(n1, "node1", 5*time.Second) {
		t.Fatal("a cut of client-n2 stalled a connection of node 1")
	}
	if err := p.cut(1, 2); err != nil {
		t.Fatal(err)
	}
	if echoes(n1, "cut", short) {
		t.Fatal("n1-n2 cut, yet node 1's bytes passed")
	}
	if err := p.healAll(); err != nil {
		t.Fatal(err)
	}
	if !readsBack(n1, "cut", 5*time.Second) {
		t.Fatal("n1-n2 healed, held bytes did not arrive")
	}
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
}

func hostNetworkState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"link", "show"}, {"addr", "show"}, {"route", "show", "table", "all"}} {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
		b.Write(out)
	}
	return b.String()
}

// TestNetnsCutsLinks: nodes in namespaces reach each other and the clients
// reach them; a cut stops exactly one link; the host's interfaces and routes
// are the same before and after; every namespace is gone at the end. Where
// namespaces cannot be made, the harness must choose the proxy.
func TestNetnsCutsLinks(t *testing.T) {
	if err := netnsAvailable(); err != nil {
		if mode, why := chooseMode(); mode != modeProxy && os.Getenv("WEIR_FAULTS_MODE") == "" {
			t.Fatalf("namespaces unavailable (%v) but mode %s chosen (%s)", err, mode, why)
		}
		t.Logf("namespaces unavailable here (%v): the harness runs on the proxy", err)
		return
	}
	before := hostNetworkState(t)
	m, err := newNetnsNet(2, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	var threads []*nsThreads
	defer func() {
		for _, th := range threads {
			th.close()
		}
		if err := m.close(); err != nil {
			t.Error(err)
		}
		for _, name := range append([]string{m.hub, m.ctl}, m.names...) {
			if _, err := os.Stat(nsPath(name)); err == nil {
				t.Errorf("namespace %s left behind", name)
			}
		}
		if after := hostNetworkState(t); after != before {
			t.Errorf("the host's network changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 1; i <= 2; i++ {
		th, err := startNSThreads(nsPath(m.names[i]), 1)
		if err != nil {
			t.Fatal(err)
		}
		threads = append(threads, th)
		l, err := th.listen(ctx, "tcp", m.addrs(i).httpListen)
		if err != nil {
			t.Fatal(err)
		}
		echoServer(t, l)
	}
	dialOK := func(dial func(context.Context, string, string) (net.Conn, error), addr string) bool {
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		defer dcancel()
		c, err := dial(dctx, "tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		return echoes(c, "ping", 2*time.Second)
	}
	n1, n2 := m.addrs(1).httpListen, m.addrs(2).httpListen
	fromN1 := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return threads[0].dial(ctx, network, addr)
	}
	if !dialOK(m.clientDial, n1) || !dialOK(m.clientDial, n2) || !dialOK(fromN1, n2) || !dialOK(m.controlDial, n1) {
		t.Fatal("the namespaces do not reach each other")
	}
	// Threads come and go; the main thread (this process's namespace, as
	// /proc/self shows it) never enters another namespace.
	for range 5 {
		th, err := startNSThreads(nsPath(m.names[0]), 16)
		if err != nil {
			t.Fatal(err)
		}
		th.close()
	}
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
	established, err := m.clientDial(ctx, "tcp", n2)
	if err != nil {
		t.Fatal(err)
	}
	defer established.Close()
	if err := m.cut(clientEndpoint, 2); err != nil {
		t.Fatal(err)
	}
	if dialOK(m.clientDial, n2) {
		t.Fatal("client reached n2 across a cut")
	}
	if echoes(established, "held", 300*time.Millisecond) {
		t.Fatal("an established connection passed bytes across a cut")
	}
	if !dialOK(m.clientDial, n1) || !dialOK(fromN1, n2) || !dialOK(m.controlDial, n2) {
		t.Fatal("a cut of client-n2 cut another link")
	}
	if err := m.cut(1, 2); err != nil {
		t.Fatal(err)
	}
	if dialOK(fromN1, n2) {
		t.Fatal("n1 reached n2 across a cut")
	}
	if err := m.healAll(); err != nil {
		t.Fatal(err)
	}
	if !dialOK(m.clientDial, n2) || !dialOK(fromN1, n2) {
		t.Fatal("links stay cut after the heal")
	}
	if !readsBack(established, "held", 10*time.Second) {
		t.Fatal("bytes held across the cut did not arrive after the heal")
	}
	var opErr *net.OpError
	if _, err := m.clientDial(ctx, "tcp", nsSubnet+"99:1"); err == nil || !errors.As(err, &opErr) || opErr.Op != "dial" {
		t.Fatalf("dialing nobody: %v, want a dial error", err)
	}
}
