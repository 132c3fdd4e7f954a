package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"weir/client"
	"weir/groups"
	httpapi "weir/http"
	"weir/logstore"
	"weir/metadata"
	"weir/replication"
)

// Node is one Weir broker: storage, Raft metadata, replication and HTTP.
type Node struct {
	cfg    Config
	logger *slog.Logger

	logs    *logstore.Manager
	meta    *metadata.Store
	repl    *replication.Manager
	metrics *httpapi.Metrics
	api     *httpapi.Server

	ready       atomic.Bool
	infoCache   atomic.Pointer[topicInfos]
	peers       *peers
	fetchClient *http.Client // follower fetches: long polls, their own pool
	ctrl        controllerState
	stopping    atomic.Bool // controlled shutdown under way
	// heartbeatNow asks the heartbeat loop for an early heartbeat.
	heartbeatNow chan struct{}
	// metadataTarget is the controller's applied index from the last heartbeat:
	// a broker has caught up with the metadata once it applied that far.
	metadataTarget atomic.Uint64
	caughtUp       atomic.Bool // the metadata image was current once
	// incarnation is this process's registration id: a restart registers
	// anew, which takes the broker out of leaderships and ISRs until it has
	// caught up (its log may have lost a torn tail).
	incarnation string
	// lastHeartbeat is when the controller last answered a heartbeat (unix ns).
	lastHeartbeat atomic.Int64
	syncMu        sync.Mutex // serialises applying the metadata to local replicas
	// replicasVersion is the metadata version the local replicas last took.
	replicasVersion atomic.Uint64

	coord          *groups.Coordinator
	offsetsTopicMu sync.Mutex // serialises on-demand creation of the offsets topic

	logFS logstore.FS // nil: the real file system (see WithLogFS)
}

// New prepares a node from a config; Run starts it.
func New(cfg Config, logger *slog.Logger, opts ...Option) (*Node, error) {
	cfg = cfg.Resolved()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, logger: logger, heartbeatNow: make(chan struct{}, 1), incarnation: uuid.NewString()}
	for _, o := range opts {
		o(n)
	}
	return n, nil
}

// logConfig is the storage configuration of a topic from its effective configs.
func (n *Node) logConfig(tc metadata.TopicConfig) logstore.Config {
	c := logstore.DefaultConfig()
	c.SegmentBytes = int64(tc.SegmentBytes)
	c.SegmentMs = tc.SegmentMs
	c.IndexIntervalBytes = int64(tc.IndexIntervalBytes)
	c.RetentionMs = tc.RetentionMs
	c.RetentionBytes = tc.RetentionBytes
	switch {
	case tc.CleanupPolicy.Compact && tc.CleanupPolicy.Delete:
		c.CleanupPolicy = logstore.CleanupCompactDelete
	case tc.CleanupPolicy.Compact:
		c.CleanupPolicy = logstore.CleanupCompact
	default:
		c.CleanupPolicy = logstore.CleanupDelete
	}
	c.DeleteRetentionMs = tc.DeleteRetentionMs
	c.MessageTimestampType = tc.MessageTimestampType
	c.Fsync = logstore.FsyncPolicy(n.cfg.Fsync)
	return c
}

// topicConfig is a topic's effective typed configuration.
func (n *Node) topicConfig(t *metadata.Topic) (metadata.TopicConfig, error) {
	return metadata.ParseTopicConfig(metadata.EffectiveConfigs(n.cfg.TopicDefaults(), t.Configs))
}

// Run serves until ctx ends, then shuts down cleanly (clean-shutdown markers
// written, Raft closed) and returns. It is open, start and stop in a row.
func (n *Node) Run(ctx context.Context) error {
	rt, err := n.open(ctx)
	if err != nil {
		return err
	}
	n.start(rt)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-rt.serveErr:
	}
	return errors.Join(runErr, n.stop(rt))
}

// running is what open hands to start and stop: the listener and server,
// and the contexts and wait group of the node's goroutines.
type running struct {
	ln       net.Listener
	srv      *http.Server
	serveErr chan error
	// Requests hang off reqCtx, cancelled at shutdown: long polls, follow
	// streams and follower fetches end at once instead of holding Shutdown.
	cancelRequests context.CancelFunc
	bg             context.Context // the background loops' context
	stopBG         context.CancelFunc
	wg             sync.WaitGroup
}

// open binds the HTTP listener, opens the data dir and the Raft member, and
// builds the replica manager, the coordinator and the API, without starting
// any loop. On failure it closes what it opened, in reverse order, so the
// ports and the data dir's lock are free again.
func (n *Node) open(ctx context.Context) (_ *running, err error) {
	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				err = errors.Join(err, undo[i]())
			}
		}
	}()
	proxies, err := parseTrustedProxies(n.cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	defaults, err := metadata.ParseTopicConfig(n.cfg.TopicDefaults())
	if err != nil {
		return nil, fmt.Errorf("topic defaults: %w", err)
	}
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on http_addr %s: %w", n.cfg.HTTPAddr, err)
	}
	undo = append(undo, func() error { return ignoreClosed(ln.Close()) })
	n.logs, err = logstore.OpenManager(n.cfg.DataDir, logstore.ManagerOptions{
		Config:                 n.logConfig(defaults),
		Committed:              n.committed,
		RetentionCheckInterval: time.Duration(n.cfg.LogRetentionCheckIntervalMs) * time.Millisecond,
		FlushInterval:          time.Duration(n.cfg.LogFlushIntervalMs) * time.Millisecond,
		CleanerInterval:        time.Duration(n.cfg.LogCleanerBackoffMs) * time.Millisecond,
		CleanerThreads:         int(n.cfg.LogCleanerThreads),
		MaxOpenFiles:           int(n.cfg.LogMaxOpenFiles),
		Logger:                 n.logger.With("component", "logstore"),
		FS:                     n.logFS,
		OnLogOffline:           n.onLogOffline,
	})
	if err != nil {
		return nil, fmt.Errorf("open data dir: %w", err)
	}
	undo = append(undo, n.logs.Close)
	n.logger.Info("data dir open", "dir", n.cfg.DataDir, "clean_shutdown", n.logs.WasClean(), "logs", len(n.logs.Names()),
		"max_open_files", n.logs.Files().Max())
	keys, err := n.clusterKeys()
	if err != nil {
		return nil, err
	}
	voters := make([]metadata.Voter, len(n.cfg.Voters))
	for i, v := range n.cfg.Voters {
		voters[i] = metadata.Voter{ID: v.ID, RaftAddr: v.RaftAddr}
	}
	n.meta, err = metadata.Open(ctx, metadata.Config{
		NodeID: n.cfg.NodeID, RaftAddr: n.cfg.RaftAdvertiseAddr(), RaftBindAddr: n.cfg.RaftAddr,
		HTTPAddr: n.cfg.AdvertiseHTTPAddr, Rack: n.cfg.BrokerRack,
		Dir: filepath.Join(n.cfg.DataDir, "raft"), Voters: voters, Keys: keys, Logger: n.logger.With("component", "raft"),
	})
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	fetchWait := time.Duration(n.cfg.ReplicaFetchWaitMaxMs) * time.Millisecond
	n.fetchClient = &http.Client{Transport: keys.Transport(&http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	})}
	n.repl = replication.New(n.cfg.NodeID, n.logs, replication.Options{
		Transport: fetchTransport{n}, ISRChanger: isrChanger{n}, BrokerEpoch: n.brokerEpoch,
		FetchWaitMax: fetchWait, Logger: n.logger.With("component", "replication"),
	})
	n.metrics = httpapi.NewMetrics()
	n.metrics.Registry.MustRegister(newCollector(n))
	n.peers = newPeers(n.cfg.NodeID, time.Duration(n.cfg.RequestTimeoutMs)*time.Millisecond, keys)
	n.coord = groups.NewCoordinator(groups.CoordinatorOptions{Env: groupsEnv{n}, NodeID: n.cfg.NodeID,
		Logger: n.logger.With("component", "groups"), ObserveCommit: newCommitLatency(n.metrics.Registry),
		MetadataCurrent: n.MetadataCurrent})
	n.api = httpapi.New(httpapi.Options{
		Backend: n, Internal: n, Groups: groupsAPI{n}, Logger: n.logger.With("component", "http"), Metrics: n.metrics,
		MaxRequestBytes: n.cfg.MaxRequestBytes, MaxRequestRecords: int(n.cfg.MaxRequestRecords),
		RequestTimeout: time.Duration(n.cfg.RequestTimeoutMs) * time.Millisecond, Cluster: keys, TrustedProxies: proxies,
		Hosts:        httpapi.NewHostPolicy(n.cfg.HTTPAddr, n.cfg.AdvertiseHTTPAddr, n.cfg.HTTPAllowedHosts),
		WriteTimeout: time.Duration(n.cfg.HTTPWriteTimeoutMs) * time.Millisecond,
	})
	rt := &running{ln: ln, serveErr: make(chan error, 1)}
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	rt.cancelRequests = cancelRequests
	rt.srv = n.newHTTPServer(n.api.Handler(), reqCtx)
	rt.bg, rt.stopBG = context.WithCancel(context.Background())
	return rt, nil
}

// ignoreClosed drops the error of closing what is already closed.
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// start runs the node: the API server and every background loop, each
// owned by rt.wg and stopped by stop.
func (n *Node) start(rt *running) {
	loops := []func(context.Context){n.logs.Run, n.watchMetadata, n.replicaMaintenance, n.heartbeatLoop,
		n.runController, n.coord.Run}
	if len(n.cfg.Join) > 0 {
		loops = append(loops, n.joinLoop)
	}
	rt.wg.Add(1 + len(loops))
	go func() {
		defer rt.wg.Done()
		if err := rt.srv.Serve(rt.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			rt.serveErr <- err
		}
	}()
	for _, loop := range loops {
		go func() { defer rt.wg.Done(); loop(rt.bg) }()
	}
	n.logger.Info("weir node started", "node_id", n.cfg.NodeID, "http_addr", rt.ln.Addr().String(), "raft_addr", n.cfg.RaftAddr)
}

// stop shuts the node down: leaderships moved away first (while the API can
// still forward), then the API, the loops, and last the replicas, the logs
// (clean-shutdown markers) and Raft.
func (n *Node) stop(rt *running) error {
	n.logger.Info("shutting down")
	csCtx, csCancel := context.WithTimeout(context.Background(), time.Duration(n.cfg.ShutdownTimeoutMs)*time.Millisecond/2)
	n.controlledShutdown(csCtx)
	csCancel()
	n.ready.Store(false)
	rt.cancelRequests()
	shCtx, cancel := context.WithTimeout(context.Background(), time.Duration(n.cfg.ShutdownTimeoutMs)*time.Millisecond)
	defer cancel()
	if serr := rt.srv.Shutdown(shCtx); serr != nil {
		// Requests still running past the timeout: cut them. The node's
		// state is closed properly below either way.
		n.logger.Warn("the API did not stop in time; closing its connections", "err", serr)
		if cerr := ignoreClosed(rt.srv.Close()); cerr != nil {
			n.logger.Warn("closing the API's connections failed", "err", cerr)
		}
	}
	rt.stopBG()
	n.coord.Close()
	rt.wg.Wait()
	var err error
	if cerr := n.repl.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close replicas: %w", cerr))
	}
	if cerr := n.logs.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close logs: %w", cerr))
	}
	if cerr := n.meta.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close raft: %w", cerr))
	}
	n.logger.Info("stopped")
	return err
}

// committed is the offset below which retention and compaction may work: the HW.
func (n *Node) committed(name string, l *logstore.Log) int64 {
	if t, p, ok := logstore.ParsePartitionDir(name); ok && n.repl != nil {
		if part, ok := n.repl.Partition(t, p); ok {
			return part.HighWatermark()
		}
	}
	return l.DurableOffset()
}

// watchMetadata registers this broker and keeps the local replicas in line
// with every metadata change.
func (n *Node) watchMetadata(ctx context.Context) {
	retry := time.NewTicker(250 * time.Millisecond)
	defer retry.Stop()
	var reported uint64
	for {
		changed := n.meta.Changed()
		if err := n.reconcile(ctx); err != nil && ctx.Err() == nil {
			n.logger.Debug("metadata not applied yet", "err", err)
		}
		if v := n.meta.Image().Version; v != reported {
			reported = v
			select { // a change was applied: an early heartbeat reports it
			case n.heartbeatNow <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-retry.C:
		}
	}
}

// reconcile applies the current image to the local replicas once this
// broker is registered, unfenced and caught up with the metadata; from then
// on every change is applied as it comes.
func (n *Node) reconcile(ctx context.Context) error {
	img := n.meta.Image()
	if !n.caughtUp.Load() {
		if self := img.Broker(n.cfg.NodeID); self == nil || self.Incarnation != n.incarnation {
			// Until this process is registered, the image may still show the
			// previous one as leader: acting on it with a log that lost its
			// tail would make followers truncate what they rightly have.
			return errors.New("waiting for the controller to register this broker")
		}
		// The image may still lack committed entries (Raft replays its log
		// after a restart): applying it now could delete the logs of topics it
		// does not show yet. Catch up to what the controller has applied first.
		if n.meta.IsLeader() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := n.meta.Barrier(cctx); err != nil {
				return fmt.Errorf("metadata barrier: %w", err)
			}
		} else if target := n.metadataTarget.Load(); target == 0 || n.meta.AppliedIndex() < target {
			return errors.New("catching up with the metadata")
		}
		img = n.meta.Image()
		if self := img.Broker(n.cfg.NodeID); self == nil || !self.Alive() {
			return errors.New("waiting for the controller to unfence this broker")
		}
		n.caughtUp.Store(true)
	}
	if err := n.applyImage(img); err != nil {
		return err
	}
	n.ready.Store(true)
	return nil
}

// applyImage hands every partition of the image to the replica manager.
func (n *Node) applyImage(img *metadata.Image) error {
	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	var as []replication.Assignment
	for _, name := range img.SortedTopicNames() {
		t := img.Topic(name)
		tc, err := n.topicConfig(t)
		if err != nil {
			return fmt.Errorf("topic %s: %w", name, err)
		}
		lc := n.logConfig(tc)
		for _, p := range t.Partitions {
			as = append(as, replication.Assignment{Topic: name, Partition: p.Partition, Replicas: p.Replicas,
				Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: p.ISR,
				MinISR: int(tc.MinInsyncReplicas), Config: lc,
				ReplicaLagTimeMax: time.Duration(n.cfg.ReplicaLagTimeMaxMs) * time.Millisecond})
		}
	}
	if err := n.repl.Apply(as); err != nil {
		return err
	}
	if img.Version > n.replicasVersion.Load() {
		n.replicasVersion.Store(img.Version) // under syncMu: no lost update
	}
	n.syncCoordinator(img)
	return nil
}

// syncNow applies the latest image at once, so a reply to an admin call is
// only sent once this node's replicas reflect it.
func (n *Node) syncNow() error {
	if !n.ready.Load() {
		return nil
	}
	return n.applyImage(n.meta.Image())
}

// syncAfterAdmin is syncNow after an admin change the metadata has already
// committed: the change happened, so a local failure to apply it is no
// failure of the call. It is logged, watchMetadata tries again, and a
// replica whose log cannot be opened answers KAFKA_STORAGE_ERROR on its own.
func (n *Node) syncAfterAdmin(what, topic string) {
	if err := n.syncNow(); err != nil {
		n.logger.Warn("committed, but not yet applied on this node; retrying in the background", "op", what, "topic", topic, "err", err)
	}
}

// loaded fails retriably until this node has caught up with the metadata
// once: before that, a topic it does not know yet may well exist.
func (n *Node) loaded() error {
	if n.caughtUp.Load() {
		return nil
	}
	return httpapi.Errorf(client.CodeLeaderNotAvailable, "this node is still loading the cluster metadata; retry")
}

// NodeID is this broker's id.
func (n *Node) NodeID() int32 { return n.cfg.NodeID }

// Ready reports whether the node is registered, caught up and knows a controller.
func (n *Node) Ready() bool {
	if !n.ready.Load() || n.meta == nil {
		return false
	}
	_, _, ok := n.meta.Leader()
	return ok
}

// Codecs are the storage codecs.
func (n *Node) Codecs() *logstore.Codecs { return n.logs.Codecs() }

// AnyChanged is closed when any local partition's HW moves.
func (n *Node) AnyChanged() <-chan struct{} { return n.repl.AnyChanged() }
