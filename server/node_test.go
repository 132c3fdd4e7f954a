package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"weir/logstore"
)

func singleNodeConfig(t *testing.T, dir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.HTTPAddr = freeAddr(t)
	cfg.RaftAddr = freeAddr(t)
	return cfg
}

// runNode runs a node in the background; the returned stop cancels it and
// returns what Run returned.
func runNode(t *testing.T, cfg Config) (url string, stop func() error) {
	t.Helper()
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return errors.New("Run did not return within 60s of its context ending")
		}
	}
	t.Cleanup(func() { _ = stop() })
	url = "http://" + cfg.HTTPAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("Run returned before the node was ready: %v", err)
		default:
		}
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, stop
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the node was not ready within 30s")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
}

func call(t *testing.T, method, url, body string, wantStatus int) []byte {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, data, wantStatus)
	}
	return data
}

// A node that ran and stopped leaves a clean data dir, releases its ports
// and lock, and a new process on the same dir finds its records.
func TestNodeRunsStopsAndReopens(t *testing.T) {
	dir := t.TempDir()
	cfg := singleNodeConfig(t, dir)
	url, stop := runNode(t, cfg)
	call(t, "POST", url+"/v1/topics", `{"name":"kept","partitions":1}`, http.StatusCreated)
	call(t, "POST", url+"/v1/topics/kept/records", `{"records":[{"key":"k","value":"v1"}]}`, http.StatusOK)
	if err := stop(); err != nil {
		t.Fatalf("Run after its context ended: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".clean-shutdown")); err != nil {
		t.Fatalf("no clean-shutdown marker after a clean stop: %v", err)
	}
	for _, a := range []string{cfg.HTTPAddr, cfg.RaftAddr} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s is still taken after the node stopped: %v", a, err)
		}
		ln.Close()
	}

	url, _ = runNode(t, cfg)
	data := call(t, "GET", url+"/v1/topics/kept/partitions/0/records?offset=0", "", http.StatusOK)
	var got struct {
		Records []struct {
			Value string `json:"value"`
		} `json:"records"`
	}
	if err := json.Unmarshal(data, &got); err != nil || len(got.Records) != 1 || got.Records[0].Value != "v1" {
		t.Fatalf("after a restart: %s (%v)", data, err)
	}
}

// A node that cannot open (here: its Raft port is taken) returns the error
// and leaves nothing behind: the HTTP port is free and the data dir's lock
// is released, so a retry with a free port starts.
func TestNodeOpenFailureLeavesNothingOpen(t *testing.T) {
	dir := t.TempDir()
	cfg := singleNodeConfig(t, dir)
	taken, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = n.Run(ctx)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("raft")) {
		t.Fatalf("Run with its raft port taken: %v, want an error naming raft", err)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		t.Fatalf("the HTTP port is still taken after a failed start: %v", err)
	}
	ln.Close()
	m, err := logstore.OpenManager(dir, logstore.ManagerOptions{Config: logstore.DefaultConfig()})
	if err != nil {
		t.Fatalf("the data dir is still locked after a failed start: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.RaftAddr = freeAddr(t)
	runNode(t, cfg)
}

// A config the node cannot use is refused by New, before anything opens.
func TestNewRefusesABadConfig(t *testing.T) {
	cfg := singleNodeConfig(t, t.TempDir())
	cfg.NodeID = -1
	if _, err := New(cfg, nil); err == nil {
		t.Fatal("New took node id -1")
	}
	cfg = singleNodeConfig(t, t.TempDir())
	cfg.TrustedProxies = []string{"not a cidr"}
	if _, err := New(cfg, nil); err == nil || !bytes.Contains([]byte(err.Error()), []byte("trusted_proxies")) {
		t.Fatalf("a bad trusted_proxies entry: %v, want an error naming the key", err)
	}
}
