package metadata

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"weir/nodeauth"
)

// TestRaftRefusesPeersWithoutTheSecret: a peer that does not hold the
// cluster secret cannot make a node take a Raft message, however it speaks:
// raw Raft from hashicorp/raft's own transport (a forged leader of a later
// term appending a configuration with one more voter), or the handshake with
// another cluster's secret. The node stays leader, in its term, with its
// configuration. A dialer that sends nothing does not hold up other
// connections and is dropped after the handshake timeout.
func TestRaftRefusesPeersWithoutTheSecret(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr := freeAddr(t)
	s := openStore(t, Config{NodeID: 1, RaftAddr: addr, Dir: t.TempDir(), Voters: []Voter{{1, addr}}, Keys: testKeys(t), Logger: testLogger(t)})
	waitImage(ctx, t, s, "cluster id", func(img *Image) bool { return img.ClusterID != "" })
	before := s.Stats()
	members := s.Image().Members

	plain, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	forged := raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: "1", Address: raft.ServerAddress(addr)},
		{Suffrage: raft.Voter, ID: "66", Address: "127.0.0.1:1"},
	}}
	term := before.Term + 100
	ae := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("66"), Addr: []byte("127.0.0.1:1")},
		Term:      term, PrevLogEntry: before.LastLogIndex, PrevLogTerm: before.Term,
		Entries: []*raft.Log{{Index: before.LastLogIndex + 1, Term: term, Type: raft.LogConfiguration,
			Data: raft.EncodeConfiguration(forged)}},
		LeaderCommitIndex: before.LastLogIndex + 1,
	}
	var aeResp raft.AppendEntriesResponse
	if err := plain.AppendEntries("1", raft.ServerAddress(addr), ae, &aeResp); err == nil {
		t.Fatalf("raw AppendEntries of a forged leader was answered: %+v", aeResp)
	}
	var tnResp raft.TimeoutNowResponse
	if err := plain.TimeoutNow("1", raft.ServerAddress(addr), &raft.TimeoutNowRequest{RPCHeader: ae.RPCHeader}, &tnResp); err == nil {
		t.Fatalf("raw TimeoutNow was answered: %+v", tnResp)
	}

	other, err := nodeauth.NewKeys("another-cluster-secret")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.DialHandshake(conn, 2*time.Second); !errors.Is(err, nodeauth.ErrRefused) {
		t.Fatalf("handshake with another cluster's secret: %v, want %v", err, nodeauth.ErrRefused)
	}
	conn.Close()

	// A silent dialer, then a node of the cluster: the second is let in at
	// once, while the first still waits for its handshake.
	silent, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	good, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := testKeys(t).DialHandshake(good, raftHandshakeTimeout/2); err != nil {
		t.Fatalf("handshake of a node of the cluster next to a silent dialer: %v", err)
	}
	good.Close()
	if err := silent.SetReadDeadline(start.Add(2 * raftHandshakeTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := silent.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("a silent dialer: read %v, want the connection closed (EOF) after the handshake timeout", err)
	}

	if err := s.Barrier(ctx); err != nil {
		t.Fatalf("barrier after the refused peers: %v", err)
	}
	after := s.Stats()
	if !s.IsLeader() || after.Term != before.Term {
		t.Fatalf("after the refused peers: leader %v, term %d (was %d)", s.IsLeader(), after.Term, before.Term)
	}
	if got := s.Image().Members; !slices.Equal(got, members) {
		t.Fatalf("raft members %+v, were %+v", got, members)
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		t.Fatal(err)
	}
	if servers := cf.Configuration().Servers; len(servers) != 1 || servers[0].ID != "1" {
		t.Fatalf("raft configuration %+v", servers)
	}
}

// TestStoredMembers reads the Raft configuration a closed store left.
func TestStoredMembers(t *testing.T) {
	dir := t.TempDir()
	if members, existing, err := StoredMembers(dir); err != nil || existing || members != nil {
		t.Fatalf("an empty dir: %v %v %v", members, existing, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := freeAddr(t)
	s := openStore(t, Config{NodeID: 3, RaftAddr: addr, Dir: dir, Voters: []Voter{{3, addr}}, Keys: testKeys(t), Logger: testLogger(t)})
	waitImage(ctx, t, s, "cluster id", func(img *Image) bool { return img.ClusterID != "" })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	members, existing, err := StoredMembers(dir)
	if err != nil || !existing || !slices.Equal(members, []Member{{ID: 3, RaftAddr: addr, Voter: true}}) {
		t.Fatalf("stored members %+v, existing %v: %v", members, existing, err)
	}
}
