package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"weir/nodeauth"
)

// What local-cluster checks and keeps on disk before it starts a node: free
// ports, the layout its directory was made with, and the nodes' secret.

// checkPorts refuses to start if any address of the layout is taken.
func (lc *localCluster) checkPorts() error {
	for _, n := range lc.nodes {
		for _, p := range []struct{ addr, what, flag string }{
			{n.httpAddr, "HTTP", "--base-http-port"},
			{n.raftAddr, "Raft", "--base-raft-port"},
		} {
			l, err := net.Listen("tcp", p.addr)
			if err != nil {
				if errors.Is(err, syscall.EADDRINUSE) {
					return fmt.Errorf("%s (the %s address of node %d) is already in use; stop what listens there or choose other ports with %s", p.addr, p.what, n.id, p.flag)
				}
				return fmt.Errorf("cannot listen on %s (the %s address of node %d): %w", p.addr, p.what, n.id, err)
			}
			if err := l.Close(); err != nil {
				return fmt.Errorf("close probe listener %s: %w", p.addr, err)
			}
		}
	}
	return nil
}

// localManifest is <dir>/local-cluster.json: the layout the data in <dir>
// was made with. Raft remembers its voters' addresses, so a directory is only
// reused with the same layout.
type localManifest struct {
	Nodes        int `json:"nodes"`
	BaseHTTPPort int `json:"base_http_port"`
	BaseRaftPort int `json:"base_raft_port"`
}

func (lc *localCluster) prepareDir() error {
	o := lc.opts
	want := localManifest{Nodes: o.nodes, BaseHTTPPort: o.baseHTTPPort, BaseRaftPort: o.baseRaftPort}
	path := filepath.Join(o.dir, localManifestFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		var have localManifest
		if err := json.Unmarshal(data, &have); err != nil {
			return fmt.Errorf("%s: %w (remove %s to start afresh)", path, err, o.dir)
		}
		if have != want {
			return usageError(fmt.Errorf("%s holds a cluster of %d nodes on ports %d.. (HTTP) and %d.. (Raft); run with --nodes %d --base-http-port %d --base-raft-port %d, use another --dir, or remove %s to start afresh",
				o.dir, have.Nodes, have.BaseHTTPPort, have.BaseRaftPort, have.Nodes, have.BaseHTTPPort, have.BaseRaftPort, o.dir))
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(o.dir, 0o755); err != nil {
			return fmt.Errorf("create --dir: %w", err)
		}
		data, _ := json.MarshalIndent(want, "", "  ") // plain struct: cannot fail
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	default:
		return fmt.Errorf("read %s: %w", path, err)
	}
	for _, n := range lc.nodes {
		if err := os.MkdirAll(n.dataDir, 0o755); err != nil {
			return fmt.Errorf("create the data dir of node %d: %w", n.id, err)
		}
	}
	return lc.prepareSecret()
}

// prepareSecret reads <dir>/cluster-secret, making it at the first start.
func (lc *localCluster) prepareSecret() error {
	secret, _, err := nodeauth.LoadOrCreate(filepath.Join(lc.opts.dir, nodeauth.SecretFile), nil)
	if err != nil {
		return fmt.Errorf("%w (remove %s to start afresh)", err, lc.opts.dir)
	}
	lc.secret = secret
	return nil
}
