package metadata

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"weir/nodeauth"
)

// raftHandshakeTimeout bounds an accepted connection's handshake: a dialer
// that sends nothing is dropped after this long.
const raftHandshakeTimeout = 5 * time.Second

// authStream is Raft's stream layer over TCP, with every connection
// authenticated by the cluster credential (nodeauth's handshake) in both
// directions. raft.NetworkTransport accepts in one loop and serves each
// connection in its own goroutine; the handshake of an accepted connection
// runs in that goroutine (on its first read), so a slow or hostile dialer
// never stalls the accept loop.
type authStream struct {
	ln        net.Listener
	advertise net.Addr
	keys      *nodeauth.Keys
	refusals  *nodeauth.RefusalLog
}

func newAuthStream(bindAddr string, advertise net.Addr, keys *nodeauth.Keys, refusals *nodeauth.RefusalLog) (*authStream, error) {
	ip := advertise.(*net.TCPAddr).IP
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("raft address %s is not one other nodes can dial", advertise)
	}
	ln, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return nil, err
	}
	return &authStream{ln: ln, advertise: advertise, keys: keys, refusals: refusals}, nil
}

// Accept hands out connections unauthenticated; their first read runs the handshake.
func (s *authStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return s.keys.AcceptedConn(c, raftHandshakeTimeout, func(remote net.Addr, err error) {
		s.refusals.Refused(remote.String(), err.Error())
	}), nil
}

// Dial connects to another node and authenticates both ends before Raft
// uses the connection.
func (s *authStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	// A refusal is logged by raft, which reports this error with the
	// call that needed the connection.
	if err := s.keys.DialHandshake(c, max(timeout-time.Since(start), time.Millisecond)); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

func (s *authStream) Close() error { return s.ln.Close() }

// Addr is the advertised address (raft puts it in its messages).
func (s *authStream) Addr() net.Addr { return s.advertise }
