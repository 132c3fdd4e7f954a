package metadata

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// FSM is the Raft state machine. Raft calls Apply, StoreConfiguration,
// Snapshot and Restore from a single goroutine; readers call Image and
// Changed from anywhere.
type FSM struct {
	logger *slog.Logger
	img    atomic.Pointer[Image]

	mu      sync.Mutex    // serialises publish and guards changed
	changed chan struct{} // closed (and replaced) on every publish
}

var (
	_ raft.FSM                = (*FSM)(nil)
	_ raft.ConfigurationStore = (*FSM)(nil)
)

// NewFSM returns an FSM holding an empty image. logger may be nil.
func NewFSM(logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &FSM{logger: logger, changed: make(chan struct{})}
	f.img.Store(emptyImage())
	return f
}

// Image returns the current image. It is immutable: do not modify it.
func (f *FSM) Image() *Image { return f.img.Load() }

// Changed returns a channel closed at the next publish of an image. To wait
// for a condition without missing a change, take the channel first, then
// check Image, then wait on the channel.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *FSM) publish(img *Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.img.Store(img)
	close(f.changed)
	f.changed = make(chan struct{})
}

// ApplyResult is what Apply returns to Raft, and so what the proposer's
// future carries: the image right after the entry, and the command's error.
type ApplyResult struct {
	Image *Image
	Err   error
}

// Apply applies one committed command entry.
func (f *FSM) Apply(l *raft.Log) any {
	base := f.img.Load()
	cmd, err := DecodeCommand(l.Data)
	var next *Image
	if err != nil {
		next = shallowCopy(base)
		next.Version = l.Index
	} else {
		next, err = applyCommand(base, l.Index, cmd)
	}
	f.publish(next)
	if err != nil {
		f.logger.Debug("metadata command refused", "index", l.Index, "error", err)
	} else {
		f.logger.Debug("metadata command applied", "index", l.Index, "type", cmd.CommandType())
	}
	return &ApplyResult{Image: next, Err: err}
}

// StoreConfiguration records a committed Raft configuration, so the image
// knows the Raft members and which brokers are voters.
func (f *FSM) StoreConfiguration(index uint64, c raft.Configuration) {
	members := membersOf(c, func(id raft.ServerID) {
		f.logger.Warn("ignoring raft server with a non-numeric id", "id", id)
	})
	f.publish(applyConfiguration(f.img.Load(), index, members))
}

// membersOf is a Raft configuration as the image keeps it, in id order;
// servers whose id is not a node id are left out and passed to bad.
func membersOf(c raft.Configuration, bad func(raft.ServerID)) []Member {
	members := make([]Member, 0, len(c.Servers))
	for _, s := range c.Servers {
		id, err := strconv.ParseInt(string(s.ID), 10, 32)
		if err != nil {
			bad(s.ID)
			continue
		}
		members = append(members, Member{ID: int32(id), RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	slices.SortFunc(members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return members
}

// snapshotFormat versions the snapshot encoding.
const snapshotFormat = 1

type snapshotFile struct {
	Format int    `json:"format"`
	Image  *Image `json:"image"`
}

// Snapshot captures the current image. Images are immutable, so holding the
// pointer is a consistent point-in-time copy for free.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{img: f.img.Load()}, nil
}

// Restore replaces the state with a snapshot written by Persist.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	img, err := ReadSnapshot(rc)
	if err != nil {
		return err
	}
	f.publish(img)
	f.logger.Info("metadata restored from snapshot", "version", img.Version,
		"topics", len(img.Topics), "brokers", len(img.Brokers))
	return nil
}

// ReadSnapshot decodes a snapshot written by the FSM (useful for tools that
// inspect a node's snapshot directory).
func ReadSnapshot(r io.Reader) (*Image, error) {
	var sf snapshotFile
	if err := json.NewDecoder(r).Decode(&sf); err != nil {
		return nil, fmt.Errorf("decode metadata snapshot: %w", err)
	}
	if sf.Format != snapshotFormat {
		return nil, fmt.Errorf("decode metadata snapshot: unsupported format %d", sf.Format)
	}
	if sf.Image == nil {
		return nil, fmt.Errorf("decode metadata snapshot: no image")
	}
	img := sf.Image
	if img.Brokers == nil {
		img.Brokers = map[int32]*Broker{}
	}
	if img.Topics == nil {
		img.Topics = map[string]*Topic{}
	}
	for _, t := range img.Topics {
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
	}
	return img, nil
}

type fsmSnapshot struct{ img *Image }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(snapshotFile{Format: snapshotFormat, Image: s.img}); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write metadata snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close metadata snapshot: %w", err)
	}
	return nil
}

func (s *fsmSnapshot) Release() {}
