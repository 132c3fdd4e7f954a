package metadata

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// StoredMembers reads the Raft configuration kept in dir (a Store's Dir)
// without starting Raft or listening anywhere: existing is false when dir
// holds no Raft state yet. A node uses it before Open, to know whether it
// is a cluster of its own or a member of a larger one.
func StoredMembers(dir string) (members []Member, existing bool, err error) {
	dbPath := filepath.Join(dir, "raft.db")
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	opts := *bbolt.DefaultOptions
	opts.Timeout = 10 * time.Second // the caller holds the data dir: nobody else has raft.db
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: dbPath, BoltOptions: &opts})
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", dbPath, err)
	}
	defer func() { _ = bolt.Close() }() // read only: nothing to lose
	quiet := NewHCLogger(slog.New(slog.DiscardHandler), "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, quiet)
	if err != nil {
		return nil, false, fmt.Errorf("open raft snapshots in %s: %w", dir, err)
	}
	if existing, err = raft.HasExistingState(bolt, bolt, snaps); err != nil || !existing {
		return nil, false, err
	}
	rc := raft.DefaultConfig()
	rc.LocalID, rc.Logger = "reader", quiet
	_, trans := raft.NewInmemTransport("")
	defer func() { _ = trans.Close() }() // in memory, never connected
	cf, err := raft.GetConfiguration(rc, NewFSM(slog.New(slog.DiscardHandler)), bolt, bolt, snaps, trans)
	if err != nil {
		return nil, true, fmt.Errorf("read the raft configuration in %s: %w", dir, err)
	}
	return membersOf(cf, func(raft.ServerID) {}), true, nil
}
