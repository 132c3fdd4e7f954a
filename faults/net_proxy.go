//go:build linux

package faults

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy networking, for where namespaces cannot be made: every node listens
// on loopback ports of its own, and advertises (to clients and to the other
// nodes, Raft included) the ports of a TCP proxy in front of them. The proxy
// tells who opened each connection from /proc (the socket's owner among the
// node processes; anything else is a client), and forwards bytes only while
// the link between the two is not cut. Across a cut, connections stall and
// new ones hang, as in a partition; they resume once it heals, like TCP
// retransmitting. The harness's own checks dial the nodes' real ports, which
// no fault cuts.

type proxyNet struct {
	n     int
	real  []nodeAddrs // [i] for node i (index 0 unused)
	front []nodeAddrs
	lis   []net.Listener
	nodes atomic.Pointer[func() map[int]int] // node processes: pid -> node
	logf  func(string, ...any)

	mu      sync.Mutex
	cuts    map[[2]endpoint]bool
	changed chan struct{} // closed and replaced whenever cuts change
	conns   map[net.Conn]struct{}
	closed  bool

	closing chan struct{}
	wg      sync.WaitGroup

	fromNodes, fromClients atomic.Int64 // connections by who opened them
}

const proxyDialTimeout = 2 * time.Second

func newProxyNet(n int, logf func(string, ...any)) (_ *proxyNet, err error) {
	p := &proxyNet{
		n: n, logf: logf, cuts: map[[2]endpoint]bool{}, changed: make(chan struct{}),
		conns: map[net.Conn]struct{}{}, closing: make(chan struct{}),
		real: make([]nodeAddrs, n+1), front: make([]nodeAddrs, n+1),
	}
	defer func() {
		if err != nil {
			_ = p.close()
		}
	}()
	// The nodes' own ports are chosen while every proxy port and every other
	// node port is held open, so no two can be the same.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for i := 1; i <= n; i++ {
		for _, kind := range []string{"http", "raft"} {
			front, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("proxy listen: %w", err)
			}
			p.lis = append(p.lis, front)
			real, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("finding a free port: %w", err)
			}
			held = append(held, real)
			if kind == "http" {
				p.real[i].httpListen, p.front[i].httpAdvertise = real.Addr().String(), front.Addr().String()
			} else {
				p.real[i].raftListen, p.front[i].raftAdvertise = real.Addr().String(), front.Addr().String()
			}
			p.wg.Add(1)
			go p.accept(front, endpoint(i), real.Addr().String())
		}
	}
	return p, nil
}

func (p *proxyNet) mode() string { return modeProxy }

func (p *proxyNet) addrs(i int) nodeAddrs {
	return nodeAddrs{httpListen: p.real[i].httpListen, raftListen: p.real[i].raftListen,
		httpAdvertise: p.front[i].httpAdvertise, raftAdvertise: p.front[i].raftAdvertise}
}

func (p *proxyNet) command(_ int, bin string, args ...string) *exec.Cmd {
	return exec.Command(bin, args...)
}

func (p *proxyNet) clientDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: proxyDialTimeout}
	return d.DialContext(ctx, network, addr)
}

func (p *proxyNet) controlDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: proxyDialTimeout}
	return d.DialContext(ctx, network, addr)
}

func (p *proxyNet) controlHTTP(i int) string { return p.real[i].httpListen }

func (p *proxyNet) setNodes(f func() map[int]int) { p.nodes.Store(&f) }

func (p *proxyNet) cut(a, b endpoint) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cuts[pairKey(a, b)] = true
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}

func (p *proxyNet) healAll() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.cuts)
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}

// waitOpen waits until the link a-b is not cut; false when the proxy closes
// or done (the connection ended) is closed first.
func (p *proxyNet) waitOpen(a, b endpoint, done <-chan struct{}) bool {
	for {
		p.mu.Lock()
		cut, ch := p.cuts[pairKey(a, b)], p.changed
		p.mu.Unlock()
		if !cut {
			return true
		}
		select {
		case <-ch:
		case <-done:
			return false
		case <-p.closing:
			return false
		}
	}
}

func (p *proxyNet) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxyNet) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *proxyNet) accept(l net.Listener, dst endpoint, upstream string) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.serve(c, dst, upstream)
		}()
	}
}

func (p *proxyNet) serve(down net.Conn, dst endpoint, upstream string) {
	s := &proxied{p: p, down: down, src: p.identify(down.RemoteAddr(), down.LocalAddr()), dst: dst,
		upstream: upstream, done: make(chan struct{})}
	if s.src == clientEndpoint {
		p.fromClients.Add(1)
	} else {
		p.fromNodes.Add(1)
	}
	defer s.end()
	// A connection made across a cut reaches the node only once it heals;
	// meanwhile its sender sees a connection that does not answer.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if p.waitOpen(s.src, s.dst, s.done) && s.connectUp() == nil {
			s.end() // the node is down: the sender sees the connection close
		}
	}()
	s.pumpDown()
	s.wg.Wait()
}

// proxied is one connection through the proxy.
type proxied struct {
	p        *proxyNet
	down     net.Conn
	src, dst endpoint
	upstream string
	done     chan struct{} // closed when the connection ends
	wg       sync.WaitGroup

	mu      sync.Mutex
	up      net.Conn
	dialed  bool
	endOnce sync.Once
}

// connectUp dials the node once and returns the connection, nil when the
// dial failed (the caller then ends the proxied connection).
func (s *proxied) connectUp() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dialed {
		return s.up
	}
	s.dialed = true
	up, err := net.DialTimeout("tcp", s.upstream, proxyDialTimeout)
	if err != nil || !s.p.track(up) {
		if up != nil {
			up.Close()
		}
		return nil
	}
	s.up = up
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.pump(up, s.down)
	}()
	return up
}

func (s *proxied) pumpDown() {
	defer s.end()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.down.Read(buf)
		if n > 0 {
			if !s.p.waitOpen(s.src, s.dst, s.done) {
				return
			}
			up := s.connectUp()
			if up == nil {
				return
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pump copies the node's replies back while the link is open.
func (s *proxied) pump(from, to net.Conn) {
	defer s.end()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if !s.p.waitOpen(s.src, s.dst, s.done) {
				return
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// end closes both sides once.
func (s *proxied) end() {
	s.endOnce.Do(func() {
		close(s.done)
		s.down.Close()
		s.mu.Lock()
		up := s.up
		s.mu.Unlock()
		if up != nil {
			up.Close()
			s.p.untrack(up)
		}
	})
}

// identify names the endpoint that opened a connection: the node whose
// process owns the other end of it, else the clients.
func (p *proxyNet) identify(remote, local net.Addr) endpoint {
	f := p.nodes.Load()
	if f == nil {
		return clientEndpoint
	}
	ra, err1 := netip.ParseAddrPort(remote.String())
	la, err2 := netip.ParseAddrPort(local.String())
	if err1 != nil || err2 != nil {
		return clientEndpoint
	}
	inode, ok := socketInode(ra, la)
	if !ok {
		return clientEndpoint
	}
	nodes := (*f)()
	if node, ok := socketOwner(inode, nodes); ok {
		return endpoint(node)
	}
	return clientEndpoint
}

// socketInode finds, in the table of TCP sockets, the socket whose local address is
// local and whose peer is remote.
func socketInode(local, remote netip.AddrPort) (string, bool) {
	// This thread's view (the host's namespace: threads that entered
	// another namespace run nothing but their own work).
	f, err := os.Open("/proc/thread-self/net/tcp")
	if err != nil {
		return "", false
	}
	defer func() { _ = f.Close() }() // only read
	want := procAddr(local) + " " + procAddr(remote)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[1]+" "+fields[2] != want {
			continue
		}
		if fields[9] != "0" {
			return fields[9], true
		}
	}
	return "", false
}

// procAddr formats an IPv4 address and port as /proc/net/tcp does: the
// address's 4 bytes as a native-endian word in hex, the port in hex.
func procAddr(a netip.AddrPort) string {
	b := a.Addr().Unmap().As4()
	word := binary.NativeEndian.Uint32(b[:])
	var w [4]byte
	binary.BigEndian.PutUint32(w[:], word)
	return strings.ToUpper(hex.EncodeToString(w[:])) + ":" + fmt.Sprintf("%04X", a.Port())
}

// socketOwner finds which of the node processes (pid -> node) holds the
// socket with the given inode.
func socketOwner(inode string, nodes map[int]int) (int, bool) {
	target := "socket:[" + inode + "]"
	for pid, node := range nodes {
		fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && link == target {
				return node, true
			}
		}
	}
	return 0, false
}

// check: with two nodes or more, some connections came from nodes (else
// node-to-node cuts cut nothing).
func (p *proxyNet) check() error {
	if p.n >= 2 && p.fromNodes.Load() == 0 {
		return fmt.Errorf("the proxy told none of %d connections as a node's: cuts between nodes had no effect", p.fromClients.Load())
	}
	return nil
}

func (p *proxyNet) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.closing)
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	var errs []error
	for _, l := range p.lis {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	p.wg.Wait()
	return errors.Join(errs...)
}
