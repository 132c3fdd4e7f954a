package metadata

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestJoinRefusalChangesNothing: a join whose id or Raft address no node
// could have, or whose address another member uses, is refused before the
// Raft configuration changes.
func TestJoinRefusalChangesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := freeAddr(t)
	s := openStore(t, Config{NodeID: 1, RaftAddr: addr, Dir: t.TempDir(), Voters: []Voter{{1, addr}}, Keys: testKeys(t), Logger: testLogger(t)})
	waitImage(ctx, t, s, "cluster id", func(img *Image) bool { return img.ClusterID != "" })
	registerAlive(ctx, t, s, 1, addr)
	for _, tc := range []struct {
		id   int32
		addr string
	}{
		{2, "nonsense"}, {2, "127.0.0.1"}, {2, "127.0.0.1:0"}, {2, "127.0.0.1:70000"}, {2, "0.0.0.0:9093"},
		{2, ":9093"}, {2, "http://127.0.0.1:9093"}, {2, ""}, {0, "127.0.0.1:9"}, {-4, "127.0.0.1:9"}, {2, addr},
	} {
		if err := s.Join(ctx, tc.id, tc.addr, false); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("join of node %d at %q: %v, want %v", tc.id, tc.addr, err, ErrInvalidRequest)
		}
	}
	for _, b := range []Broker{
		{ID: 2, HTTPAddr: "127.0.0.1:8001", RaftAddr: "127.0.0.1:9"}, // node 1's HTTP address (registerAlive)
		{ID: 2, HTTPAddr: "127.0.0.1:8002", RaftAddr: addr},
		{ID: 2, HTTPAddr: "127.0.0.1:8002", RaftAddr: "bad"},
		{ID: 0, HTTPAddr: "127.0.0.1:8002", RaftAddr: "127.0.0.1:9"},
	} {
		if err := s.CheckRegistration(b); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("registration %+v: %v, want %v", b, err, ErrInvalidRequest)
		}
		if _, err := s.RegisterBroker(ctx, b); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("register %+v: %v, want %v", b, err, ErrInvalidRequest)
		}
	}
	if err := s.CheckRegistration(Broker{ID: 2, HTTPAddr: "127.0.0.1:8002", RaftAddr: "node-2.example:9093"}); err != nil {
		t.Errorf("a good registration: %v", err)
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		t.Fatal(err)
	}
	if servers := cf.Configuration().Servers; len(servers) != 1 || servers[0].ID != "1" {
		t.Fatalf("refused joins changed the raft configuration: %+v", servers)
	}
	if img := s.Image(); len(img.Brokers) != 1 || len(img.Members) != 1 {
		t.Fatalf("refused calls changed the image: brokers %v, members %+v", img.SortedBrokerIDs(), img.Members)
	}
}
