package server

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"weir/internal/testport"
	"weir/metadata"
	"weir/nodeauth"
)

func freeAddr(t *testing.T) string { return testport.Addr(t) }

// TestClusterKeys: where a node's secret comes from, and when it makes one.
func TestClusterKeys(t *testing.T) {
	node := func(t *testing.T, cfg Config) *Node {
		cfg.DataDir = t.TempDir()
		n, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	alone := DefaultConfig()
	secretFile := func(n *Node) string { return filepath.Join(n.cfg.DataDir, nodeauth.SecretFile) }

	t.Run("alone makes one and keeps it", func(t *testing.T) {
		n := node(t, alone)
		k1, err := n.clusterKeys()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(secretFile(n)); err != nil {
			t.Fatal(err)
		}
		k2, err := n.clusterKeys()
		if err != nil || k2.HTTPToken() != k1.HTTPToken() {
			t.Fatalf("the second start has another secret (%v)", err)
		}
	})
	t.Run("configured wins", func(t *testing.T) {
		cfg := alone
		cfg.ClusterSecret = "the-configured-cluster-secret"
		n := node(t, cfg)
		k, err := n.clusterKeys()
		want, _ := nodeauth.NewKeys(cfg.ClusterSecret)
		if err != nil || k.HTTPToken() != want.HTTPToken() {
			t.Fatalf("keys from cluster_secret: %v", err)
		}
		if _, err := os.Stat(secretFile(n)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a configured secret was written to the data dir (%v)", err)
		}
	})
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"voter of three", func(c *Config) {
			c.Voters = []Voter{{1, "127.0.0.1:9093"}, {2, "127.0.0.1:9094"}, {3, "127.0.0.1:9095"}}
		}},
		{"joiner", func(c *Config) { c.Join, c.Voters = []string{"http://127.0.0.1:8082"}, nil }},
	} {
		t.Run(tc.name+" needs one", func(t *testing.T) {
			cfg := alone
			tc.edit(&cfg)
			n := node(t, cfg)
			_, err := n.clusterKeys()
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Key != "cluster_secret" {
				t.Fatalf("%v, want a cluster_secret error", err)
			}
			if _, err := os.Stat(secretFile(n)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a secret was made (%v)", err)
			}
		})
	}
	t.Run("member of a cluster started alone needs one", func(t *testing.T) {
		// Raft state of a node in a cluster of two, as after a join and a
		// restart without join: the configuration says "alone", Raft does not.
		n := node(t, alone)
		keys, _ := nodeauth.NewKeys("the-cluster-secret-of-the-two")
		self := freeAddr(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := metadata.Open(ctx, metadata.Config{NodeID: 1, RaftAddr: self, Dir: filepath.Join(n.cfg.DataDir, "raft"),
			Voters: []metadata.Voter{{ID: 1, RaftAddr: self}, {ID: 2, RaftAddr: freeAddr(t)}}, Keys: keys, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = n.clusterKeys()
		if err == nil || !strings.Contains(err.Error(), "one of 2 members") {
			t.Fatalf("%v, want a cluster_secret error", err)
		}
	})
}
