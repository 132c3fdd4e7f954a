package nodeauth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The stream handshake (Raft's connections): the dialing node sends the
// magic and its dial token; the accepting node checks both and answers its
// accept token, which the dialer checks in turn, so each side knows the
// other holds the secret before any message flows. A refused dialer gets
// the connection closed without an answer.

// handshakeMagic opens every authenticated stream; a peer speaking raw Raft
// (or anything else) fails on it at once.
var handshakeMagic = []byte("WEIRRFT1")

// ErrRefused is a handshake the other side did not pass.
var ErrRefused = errors.New("the cluster credential was refused")

// DialHandshake authenticates a connection this node opened, within timeout.
func (k *Keys) DialHandshake(conn net.Conn, timeout time.Duration) error {
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("handshake with %s: %w", conn.RemoteAddr(), err)
	}
	hello := append(append(make([]byte, 0, len(handshakeMagic)+len(k.raftDial)), handshakeMagic...), k.raftDial...)
	if _, err := conn.Write(hello); err != nil {
		return fmt.Errorf("handshake with %s: %w", conn.RemoteAddr(), err)
	}
	answer := make([]byte, len(k.raftAccept))
	if _, err := io.ReadFull(conn, answer); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("handshake with %s: %w (the connection was closed: is cluster_secret the same on every node?)", conn.RemoteAddr(), ErrRefused)
		}
		return fmt.Errorf("handshake with %s: %w", conn.RemoteAddr(), err)
	}
	if subtle.ConstantTimeCompare(answer, k.raftAccept) != 1 {
		return fmt.Errorf("handshake with %s: %w (it answered with another cluster's credential)", conn.RemoteAddr(), ErrRefused)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("handshake with %s: %w", conn.RemoteAddr(), err)
	}
	return nil
}

// acceptHandshake authenticates a connection another node opened, within timeout.
func (k *Keys) acceptHandshake(conn net.Conn, timeout time.Duration) error {
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	hello := make([]byte, len(handshakeMagic)+len(k.raftDial))
	if _, err := io.ReadFull(conn, hello[:len(handshakeMagic)]); err != nil {
		return fmt.Errorf("no handshake: %w", err)
	}
	if subtle.ConstantTimeCompare(hello[:len(handshakeMagic)], handshakeMagic) != 1 {
		return errors.New("no handshake: the stream does not start with one (a peer without the cluster credential?)")
	}
	if _, err := io.ReadFull(conn, hello[len(handshakeMagic):]); err != nil {
		return fmt.Errorf("incomplete handshake: %w", err)
	}
	if subtle.ConstantTimeCompare(hello[len(handshakeMagic):], k.raftDial) != 1 {
		return errors.New("wrong cluster credential")
	}
	if _, err := conn.Write(k.raftAccept); err != nil {
		return fmt.Errorf("answer the handshake: %w", err)
	}
	return conn.SetDeadline(time.Time{})
}

// AcceptedConn wraps a connection another node opened: the handshake runs
// on its first Read or Write, that is in the goroutine that serves the
// connection, never in the accept loop, so a slow or silent dialer holds up
// only itself (and for timeout at most). A failed handshake closes the
// connection, reports to refused, and reads as io.EOF from then on.
func (k *Keys) AcceptedConn(conn net.Conn, timeout time.Duration, refused func(remote net.Addr, err error)) net.Conn {
	return &acceptedConn{Conn: conn, keys: k, timeout: timeout, refused: refused}
}

type acceptedConn struct {
	net.Conn
	keys    *Keys
	timeout time.Duration
	refused func(net.Addr, error)
	once    sync.Once
	err     error
}

func (c *acceptedConn) handshake() error {
	c.once.Do(func() {
		if err := c.keys.acceptHandshake(c.Conn, c.timeout); err != nil {
			c.err = io.EOF // the server loop ends quietly; refused logs why
			err = errors.Join(err, c.Conn.Close())
			if c.refused != nil {
				c.refused(c.Conn.RemoteAddr(), err)
			}
		}
	})
	return c.err
}

func (c *acceptedConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *acceptedConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
