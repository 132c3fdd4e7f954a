package server

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"weir/client"
	"weir/logstore"
)

// A node that ran and stopped leaves a clean data dir, releases its ports
// and lock, and a new process on the same dir finds its records.
func TestNodeRunsStopsAndReopens(t *testing.T) {
	nd := startNodes(t, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	createTopic(t, nd.client(t), "kept", 1, nil)
	if _, err := nd.client(t).Produce(ctx, "kept", nil, []client.ProduceRecord{{Value: []byte(`"v1"`)}}, "all", 0); err != nil {
		t.Fatal(err)
	}
	if err := nd.stop(); err != nil {
		t.Fatalf("Run after its context ended: %v", err)
	}
	if _, err := os.Stat(filepath.Join(nd.cfg.DataDir, ".clean-shutdown")); err != nil {
		t.Fatalf("no clean-shutdown marker after a clean stop: %v", err)
	}
	for _, a := range []string{nd.cfg.HTTPAddr, nd.cfg.RaftAddr} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s is still taken after the node stopped: %v", a, err)
		}
		ln.Close()
	}

	nd.start()
	nd.waitReady()
	if got := readAll(t, nd.client(t), "kept"); len(got) != 1 || got[0] != "v1" {
		t.Fatalf("after a restart: %v", got)
	}
}

// A node that cannot open (here: its Raft port is taken) returns the error
// and leaves nothing behind: the HTTP port is free and the data dir's lock
// is released, so a retry with a free port starts.
func TestNodeOpenFailureLeavesNothingOpen(t *testing.T) {
	nd := newTestNodes(t, 1)[0]
	taken, err := net.Listen("tcp", nd.cfg.RaftAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	n, err := New(nd.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Run(ctx); err == nil || !strings.Contains(err.Error(), "raft") {
		t.Fatalf("Run with its raft port taken: %v, want an error naming raft", err)
	}
	ln, err := net.Listen("tcp", nd.cfg.HTTPAddr)
	if err != nil {
		t.Fatalf("the HTTP port is still taken after a failed start: %v", err)
	}
	ln.Close()
	m, err := logstore.OpenManager(nd.cfg.DataDir, logstore.ManagerOptions{Config: logstore.DefaultConfig()})
	if err != nil {
		t.Fatalf("the data dir is still locked after a failed start: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	nd.cfg.RaftAddr = freeAddr(t)
	nd.cfg.Voters = []Voter{{ID: nd.cfg.NodeID, RaftAddr: nd.cfg.RaftAddr}}
	nd.start()
	nd.waitReady()
}

// A config the node cannot use is refused by New, before anything opens.
func TestNewRefusesABadConfig(t *testing.T) {
	cfg := newTestNodes(t, 1)[0].cfg
	cfg.NodeID = -1
	if _, err := New(cfg, nil); err == nil {
		t.Fatal("New took node id -1")
	}
	cfg = newTestNodes(t, 1)[0].cfg
	cfg.TrustedProxies = []string{"not a cidr"}
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "trusted_proxies") {
		t.Fatalf("a bad trusted_proxies entry: %v, want an error naming the key", err)
	}
}
