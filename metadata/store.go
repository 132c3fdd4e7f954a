package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"weir/nodeauth"
)

// Voter is one initial Raft voter.
type Voter struct {
	ID       int32  `json:"id"`
	RaftAddr string `json:"raft_addr"`
}

// Config configures a Store. Zero timing fields take LAN-friendly defaults.
type Config struct {
	NodeID int32
	// RaftAddr is the host:port other nodes dial for Raft; it is also the
	// listen address unless RaftBindAddr is set.
	RaftAddr     string
	RaftBindAddr string
	HTTPAddr     string
	Rack         string
	// Dir holds raft.db (log and stable store) and the snapshots.
	Dir string
	// Voters is the initial voter set, identical on every node. A node with
	// no Raft state that is among them bootstraps the cluster with all of
	// them; any other node waits to be added with Join.
	Voters []Voter
	// Keys authenticate every Raft connection, both ways (required).
	Keys   *nodeauth.Keys
	Logger *slog.Logger

	HeartbeatTimeout   time.Duration // default 500ms
	ElectionTimeout    time.Duration // default 500ms
	LeaderLeaseTimeout time.Duration // default 250ms
	CommitTimeout      time.Duration // default 20ms
	SnapshotThreshold  uint64        // entries between snapshots; default 8192
	SnapshotInterval   time.Duration // how often to check the threshold; default 2m
	TrailingLogs       uint64        // entries kept after a snapshot; default 10240
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 500*time.Millisecond)
	def(&c.ElectionTimeout, 500*time.Millisecond)
	def(&c.LeaderLeaseTimeout, 250*time.Millisecond)
	def(&c.CommitTimeout, 20*time.Millisecond)
	def(&c.SnapshotInterval, 2*time.Minute)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.RaftBindAddr == "" {
		c.RaftBindAddr = c.RaftAddr
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	switch {
	case c.NodeID < 0:
		return fmt.Errorf("node id %d is negative", c.NodeID)
	case c.RaftAddr == "":
		return errors.New("raft address is empty")
	case c.Dir == "":
		return errors.New("raft directory is empty")
	case c.Keys == nil:
		return errors.New("no cluster credentials to authenticate raft connections with")
	}
	ids, addrs := map[int32]bool{}, map[string]bool{}
	for _, v := range c.Voters {
		if v.ID < 0 || v.RaftAddr == "" {
			return fmt.Errorf("voter %d at %q: needs an id >= 0 and a raft address", v.ID, v.RaftAddr)
		}
		if ids[v.ID] {
			return fmt.Errorf("voter %d is listed twice", v.ID)
		}
		if addrs[v.RaftAddr] {
			return fmt.Errorf("voter address %q is listed twice", v.RaftAddr)
		}
		ids[v.ID], addrs[v.RaftAddr] = true, true
		if v.ID == c.NodeID && v.RaftAddr != c.RaftAddr {
			return fmt.Errorf("voter %d has raft address %q but this node's is %q", v.ID, v.RaftAddr, c.RaftAddr)
		}
	}
	return nil
}

// Store runs this node's member of the metadata Raft group.
type Store struct {
	cfg       Config
	logger    *slog.Logger
	fsm       *FSM
	raft      *raft.Raft
	transport *raft.NetworkTransport
	bolt      *raftboltdb.BoltStore

	observer *raft.Observer
	obsCh    chan raft.Observation
	kick     chan struct{} // watch -> clusterIDLoop: leadership changed

	leaderMu      sync.Mutex
	leaderChanged chan struct{} // closed on the next leadership change

	ctx    context.Context // cancelled by Close; bounds the Store's own work
	cancel context.CancelFunc
	wg     sync.WaitGroup // watch and clusterIDLoop

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Open starts this node's Raft member. It bootstraps a new cluster when there
// is no Raft state in cfg.Dir and the node is one of cfg.Voters, and resumes
// from the existing state otherwise. It does not wait for a leader (see
// WaitForLeader). ctx bounds opening: raft.db being locked by another
// process fails once ctx ends (or after 10s without a deadline).
func Open(ctx context.Context, cfg Config) (_ *Store, err error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("metadata config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create raft dir: %w", err)
	}
	s := &Store{cfg: cfg, logger: cfg.Logger, leaderChanged: make(chan struct{})}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	lockWait := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		lockWait = max(time.Until(dl), time.Millisecond)
	}
	boltOpts := *bbolt.DefaultOptions
	boltOpts.Timeout = lockWait
	dbPath := filepath.Join(cfg.Dir, "raft.db")
	s.bolt, err = raftboltdb.New(raftboltdb.Options{Path: dbPath, BoltOptions: &boltOpts})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dbPath, err)
	}
	cleanup = append(cleanup, func() { _ = s.bolt.Close() })
	logStore, err := raft.NewLogCache(512, s.bolt)
	if err != nil {
		return nil, fmt.Errorf("raft log cache: %w", err)
	}

	hclogger := NewHCLogger(cfg.Logger, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hclogger.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("open raft snapshots in %s: %w", cfg.Dir, err)
	}

	advertise, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("resolve raft address %q: %w", cfg.RaftAddr, err)
	}
	// One AppendEntries in flight per follower (MaxRPCsInFlight 1 turns
	// raft's pipelining off): its pipeline can deadlock after a follower
	// refuses an append (the decoder stops while the sender waits for it),
	// which ends replication to that follower until the leader restarts and
	// makes Close hang. The metadata log is small; pipelining buys nothing.
	stream, err := newAuthStream(cfg.RaftBindAddr, advertise, cfg.Keys,
		nodeauth.NewRefusalLog(cfg.Logger, "refused a raft connection without the cluster credential", 10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", cfg.RaftBindAddr, err)
	}
	s.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hclogger.Named("transport"), MaxRPCsInFlight: 1})
	cleanup = append(cleanup, func() { _ = s.transport.Close() })

	existing, err := raft.HasExistingState(logStore, s.bolt, snaps)
	if err != nil {
		return nil, fmt.Errorf("inspect raft state in %s: %w", cfg.Dir, err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.FormatInt(int64(cfg.NodeID), 10))
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.Logger = hclogger
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}

	s.fsm = NewFSM(cfg.Logger.With("component", "metadata-fsm"))
	s.raft, err = raft.NewRaft(rc, s.fsm, logStore, s.bolt, snaps, s.transport)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	cleanup = append(cleanup, func() { _ = s.raft.Shutdown().Error() })

	if !existing && s.isInitialVoter() {
		var servers []raft.Server
		for _, v := range cfg.Voters {
			servers = append(servers, raft.Server{
				Suffrage: raft.Voter,
				ID:       raft.ServerID(strconv.FormatInt(int64(v.ID), 10)),
				Address:  raft.ServerAddress(v.RaftAddr),
			})
		}
		err := s.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return nil, fmt.Errorf("bootstrap raft cluster: %w", err)
		}
		s.logger.Info("bootstrapped metadata cluster", "voters", len(servers))
	} else if !existing {
		s.logger.Info("no raft state and not an initial voter: waiting to be added with Join")
	}

	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.obsCh = make(chan raft.Observation, 64)
	s.observer = raft.NewObserver(s.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	s.raft.RegisterObserver(s.observer)
	// One initial nudge covers a leadership change before the observer was
	// registered.
	s.kick = make(chan struct{}, 1)
	s.kick <- struct{}{}
	s.wg.Add(2)
	go s.watch()
	go s.clusterIDLoop()
	s.logger.Info("metadata store open", "node", cfg.NodeID, "raft_addr", cfg.RaftAddr,
		"dir", cfg.Dir, "existing_state", existing)
	return s, nil
}

func (s *Store) isInitialVoter() bool {
	for _, v := range s.cfg.Voters {
		if v.ID == s.cfg.NodeID {
			return true
		}
	}
	return false
}

// watch follows leadership changes: it wakes LeaderChanged waiters at once
// and nudges clusterIDLoop. Close stops it.
func (s *Store) watch() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.obsCh:
			s.notifyLeaderChanged()
			select {
			case s.kick <- struct{}{}:
			default: // a nudge is already pending
			}
		}
	}
}

// clusterIDLoop makes sure the cluster has an id: whenever this node becomes
// leader of a cluster without one, it proposes one, retrying while it leads.
// It runs apart from watch so that a slow proposal never delays leadership
// notifications. Close stops it.
func (s *Store) clusterIDLoop() {
	defer s.wg.Done()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		case <-retry.C:
		}
		if !s.IsLeader() || s.fsm.Image().ClusterID != "" {
			continue
		}
		if err := s.ensureClusterID(); err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.logger.Warn("could not set the cluster id; retrying", "error", err)
			retry.Reset(s.cfg.ElectionTimeout)
		}
	}
}

// ensureClusterID proposes init_cluster with a fresh UUID if, after every
// earlier entry is applied, the image still has no cluster id. The command
// is a no-op when another leader's proposal got there first.
func (s *Store) ensureClusterID() error {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	if err := s.Barrier(ctx); err != nil {
		return err
	}
	if s.fsm.Image().ClusterID != "" {
		return nil
	}
	res, err := s.Propose(ctx, InitClusterCmd{ClusterID: newUUID()})
	if err != nil {
		return err
	}
	s.logger.Info("cluster id set", "cluster_id", res.Image.ClusterID)
	return nil
}

func (s *Store) notifyLeaderChanged() {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	close(s.leaderChanged)
	s.leaderChanged = make(chan struct{})
}

// LeaderChanged returns a channel closed at the next change of Raft
// leadership or of this node's Raft state. Take it before checking Leader or
// IsLeader so no change is missed.
func (s *Store) LeaderChanged() <-chan struct{} {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	return s.leaderChanged
}

// Image returns the latest applied metadata image. It is immutable: callers
// must not modify it or anything it references.
func (s *Store) Image() *Image { return s.fsm.Image() }

// Changed returns a channel closed when the next image is published. Take it
// before reading Image, then wait on it, to never miss a change.
func (s *Store) Changed() <-chan struct{} { return s.fsm.Changed() }

// Self returns this node's registration as configured (for RegisterBroker,
// which must run on or be forwarded to the leader).
func (s *Store) Self() Broker {
	return Broker{ID: s.cfg.NodeID, HTTPAddr: s.cfg.HTTPAddr, RaftAddr: s.cfg.RaftAddr, Rack: s.cfg.Rack}
}

// NodeID returns this node's id.
func (s *Store) NodeID() int32 { return s.cfg.NodeID }

// IsLeader reports whether this node is the Raft leader, i.e. the controller.
// A freshly elected leader may not have applied every committed entry yet;
// call Barrier before acting on its image.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the current leader's id and Raft address, if known.
func (s *Store) Leader() (id int32, raftAddr string, ok bool) {
	addr, sid := s.raft.LeaderWithID()
	if sid == "" {
		return -1, "", false
	}
	n, err := strconv.ParseInt(string(sid), 10, 32)
	if err != nil {
		return -1, string(addr), false
	}
	return int32(n), string(addr), true
}

// WaitForLeader blocks until a leader is known and returns its id.
func (s *Store) WaitForLeader(ctx context.Context) (int32, error) {
	for {
		ch := s.LeaderChanged()
		if id, _, ok := s.Leader(); ok {
			return id, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return -1, fmt.Errorf("wait for a metadata leader: %w", ctx.Err())
		case <-s.ctx.Done():
			return -1, ErrClosed
		}
	}
}

// Result is the outcome of a committed command.
type Result struct {
	// Index is the command's Raft index.
	Index uint64
	// Image is the image right after the command was applied.
	Image *Image
}

func (s *Store) notLeader() error {
	if id, addr, ok := s.Leader(); ok {
		return fmt.Errorf("%w: node %d is not the raft leader; node %d at %s is", ErrNotLeader, s.cfg.NodeID, id, addr)
	}
	return fmt.Errorf("%w: node %d is not the raft leader and no leader is known", ErrNotLeader, s.cfg.NodeID)
}

// applyTimeout converts ctx's deadline into raft's enqueue timeout (0: none).
func applyTimeout(ctx context.Context) (time.Duration, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	d := time.Until(dl)
	if d <= 0 {
		return 0, context.DeadlineExceeded
	}
	return d, nil
}

// Propose commits cmd through Raft and returns once this node applied it.
// Only the leader accepts commands (ErrNotLeader otherwise, nothing written).
// The command's own refusal (e.g. ErrTopicExists) is returned as the error,
// with the Result still carrying the index. If ctx ends or leadership is lost
// while waiting, the error is ErrUnknownOutcome: the command may still commit.
func (s *Store) Propose(ctx context.Context, cmd Command) (Result, error) {
	if s.closed.Load() {
		return Result{}, ErrClosed
	}
	data, err := EncodeCommand(cmd)
	if err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if !s.IsLeader() {
		return Result{}, s.notLeader()
	}
	timeout, err := applyTimeout(ctx)
	if err != nil {
		return Result{}, err
	}
	f := s.raft.Apply(data, timeout)
	if err := s.wait(ctx, f); err != nil {
		return Result{}, fmt.Errorf("propose %s: %w", cmd.CommandType(), err)
	}
	res, ok := f.Response().(*ApplyResult)
	if !ok {
		return Result{}, fmt.Errorf("propose %s: unexpected fsm response %T", cmd.CommandType(), f.Response())
	}
	return Result{Index: f.Index(), Image: res.Image}, res.Err
}

// wait waits for a raft future within ctx and classifies its error. The
// helper goroutine ends when raft resolves the future, which it always does,
// at the latest when Close shuts raft down.
func (s *Store) wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return s.mapRaftErr(err)
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, ctx.Err())
	}
}

func (s *Store) mapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return s.notLeader() // refused before it was written
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, ErrClosed)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("raft apply queue full: %w", context.DeadlineExceeded)
	}
	return err
}

// Barrier waits until every entry committed before the call is applied to
// this node's image. Leader only.
func (s *Store) Barrier(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !s.IsLeader() {
		return s.notLeader()
	}
	timeout, err := applyTimeout(ctx)
	if err != nil {
		return err
	}
	if err := s.wait(ctx, s.raft.Barrier(timeout)); err != nil {
		return fmt.Errorf("raft barrier: %w", err)
	}
	return nil
}

// WaitApplied blocks until the image includes the entry at index (Image
// Version >= index). Use it with indexes of commands or configuration
// changes (e.g. a Result's Index or a broker epoch); Raft's internal no-op
// entries never reach the image.
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	for {
		ch := s.Changed()
		if s.Image().Version >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for metadata index %d (applied %d): %w", index, s.Image().Version, ctx.Err())
		case <-s.ctx.Done():
			return ErrClosed
		}
	}
}

// Join adds a node to the Raft group, as a voter or a non-voter. Leader only.
// Joining again with the same id and address is a no-op; a non-voter joining
// as voter is promoted; a voter is never demoted; a known id with a new
// address gets the new address.
func (s *Store) Join(ctx context.Context, id int32, raftAddr string, voter bool) error {
	if id < 1 {
		return fmt.Errorf("%w: node id %d must be 1 or more", ErrInvalidRequest, id)
	}
	if err := CheckAddr(raftAddr, true); err != nil {
		return fmt.Errorf("%w: raft_addr: %w", ErrInvalidRequest, err)
	}
	if !s.IsLeader() {
		return s.notLeader()
	}
	cf := s.raft.GetConfiguration()
	if err := s.wait(ctx, cf); err != nil {
		return fmt.Errorf("read raft configuration: %w", err)
	}
	sid, addr := raft.ServerID(strconv.FormatInt(int64(id), 10)), raft.ServerAddress(raftAddr)
	for _, srv := range cf.Configuration().Servers {
		if srv.ID == sid && srv.Address == addr && (!voter || srv.Suffrage == raft.Voter) {
			return nil
		}
		if srv.ID != sid && srv.Address == addr {
			return fmt.Errorf("%w: raft address %s is already used by node %s (remove that node first)", ErrInvalidRequest, raftAddr, srv.ID)
		}
	}
	timeout, err := applyTimeout(ctx)
	if err != nil {
		return err
	}
	var f raft.IndexFuture
	if voter {
		f = s.raft.AddVoter(sid, addr, cf.Index(), timeout)
	} else {
		f = s.raft.AddNonvoter(sid, addr, cf.Index(), timeout)
	}
	if err := s.wait(ctx, f); err != nil {
		return fmt.Errorf("add node %d at %s to raft: %w", id, raftAddr, err)
	}
	s.logger.Info("node joined the metadata group", "node", id, "raft_addr", raftAddr, "voter", voter)
	return nil
}

// RemoveServer removes a node from the Raft group (no-op if absent). Leader
// only.
func (s *Store) RemoveServer(ctx context.Context, id int32) error {
	if !s.IsLeader() {
		return s.notLeader()
	}
	timeout, err := applyTimeout(ctx)
	if err != nil {
		return err
	}
	sid := raft.ServerID(strconv.FormatInt(int64(id), 10))
	if err := s.wait(ctx, s.raft.RemoveServer(sid, 0, timeout)); err != nil {
		return fmt.Errorf("remove node %d from raft: %w", id, err)
	}
	return nil
}

// Stats are Raft figures for metrics and health.
type Stats struct {
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	LastLogIndex uint64 `json:"last_log_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// ImageVersion is the index of the last entry in Image (AppliedIndex
	// counts entries handed to the FSM, which may not be applied yet).
	ImageVersion uint64 `json:"image_version"`
	// NumPeers counts the other voters (0 if this node is not a voter).
	NumPeers int   `json:"num_peers"`
	LeaderID int32 `json:"leader_id"`
}

// AppliedIndex is the index of the last Raft entry handed to the state
// machine: cheap (an atomic read), unlike Stats.
func (s *Store) AppliedIndex() uint64 { return s.raft.AppliedIndex() }

// Stats returns current Raft figures.
func (s *Store) Stats() Stats {
	raw := s.raft.Stats()
	num := func(k string) uint64 { n, _ := strconv.ParseUint(raw[k], 10, 64); return n }
	leader, _, _ := s.Leader()
	return Stats{
		State:        raw["state"],
		Term:         num("term"),
		LastLogIndex: num("last_log_index"),
		CommitIndex:  num("commit_index"),
		AppliedIndex: num("applied_index"),
		ImageVersion: s.Image().Version,
		NumPeers:     int(num("num_peers")),
		LeaderID:     leader,
	}
}

// Close leaves the group's leadership to another voter if this node leads
// (so the cluster does not wait for an election timeout), shuts Raft down
// and closes raft.db. Safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.IsLeader() && s.hasOtherVoters() {
			if err := s.raft.LeadershipTransfer().Error(); err != nil {
				s.logger.Info("leadership transfer before shutdown failed", "error", err)
			}
		}
		s.cancel()
		var errs []error
		if err := s.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("shut down raft: %w", err))
		}
		s.raft.DeregisterObserver(s.observer)
		s.wg.Wait()
		if err := s.transport.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft transport: %w", err))
		}
		if err := s.bolt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft.db: %w", err))
		}
		s.closeErr = errors.Join(errs...)
		s.logger.Info("metadata store closed", "node", s.cfg.NodeID)
	})
	return s.closeErr
}

func (s *Store) hasOtherVoters() bool {
	cf := s.raft.GetConfiguration()
	if cf.Error() != nil {
		return false
	}
	self := raft.ServerID(strconv.FormatInt(int64(s.cfg.NodeID), 10))
	for _, srv := range cf.Configuration().Servers {
		if srv.ID != self && srv.Suffrage == raft.Voter {
			return true
		}
	}
	return false
}
