package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"weir/client"
	httpapi "weir/http"
	"weir/metadata"
	"weir/nodeauth"
)

// peers calls other nodes' /internal/v1 endpoints over pooled keep-alive connections.
type peers struct {
	self   string
	client *http.Client
}

func newPeers(selfID int32, timeout time.Duration, keys *nodeauth.Keys) *peers {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &peers{self: fmt.Sprint(selfID), client: &http.Client{Transport: keys.Transport(tr), Timeout: timeout}}
}

// call posts in as JSON to addr+path and decodes the reply into out; API
// errors come back as *httpapi.Error.
func (p *peers) call(ctx context.Context, method, addr, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	// No forwarded mark: a node whose view of the controller is stale passes
	// the call on once, which a join sent to any node relies on.
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s http://%s%s: %w", method, addr, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read reply of %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb client.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.ErrorCode != "" {
			return httpapi.Errorf(eb.ErrorCode, "%s", eb.Message)
		}
		return fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode reply of %s: %w", path, err)
		}
	}
	return nil
}

// controllerState is the controller's soft state: never logged, rebuilt on
// every election (each broker then gets a full session timeout of grace).
type controllerState struct {
	mu          sync.Mutex
	leading     bool
	since       time.Time
	lastSeen    map[int32]time.Time
	applied     map[int32]uint64 // metadata index applied by Raft, per broker
	replicas    map[int32]uint64 // metadata version applied to the replicas, per broker
	stopping    map[int32]bool
	offline     map[int32]offlineReport // what each broker last reported offline
	lastBalance time.Time
}

// startLeading resets the soft state when this node has just become the
// controller: every broker then gets a full session timeout of grace. The
// caller holds mu.
func (cs *controllerState) startLeading(now time.Time) {
	if cs.leading {
		return
	}
	cs.leading, cs.since = true, now
	cs.lastSeen, cs.applied, cs.replicas, cs.stopping = map[int32]time.Time{}, map[int32]uint64{}, map[int32]uint64{}, map[int32]bool{}
	cs.offline = map[int32]offlineReport{}
	// A new controller waits an interval before restoring preferred
	// leaders too: a partition its predecessor saw handed over moments ago
	// would go straight back.
	cs.lastBalance = now
}

// controller returns the controller's id and REST address.
func (n *Node) controller() (int32, string, bool) {
	id, _, ok := n.meta.Leader()
	if !ok {
		return -1, "", false
	}
	if b := n.meta.Image().Broker(id); b != nil {
		return id, b.HTTPAddr, true
	}
	return id, "", true
}

// notController is the error for a call only the controller serves: the API
// forwards it there.
func (n *Node) notController() error {
	id, addr, ok := n.controller()
	if !ok {
		return httpapi.Errorf(client.CodeNotController, "no controller is elected right now; retry")
	}
	return &httpapi.NotHereError{NodeID: id, Addr: addr, What: "the controller"}
}

// toController runs a node-to-node call on the controller: here if this node
// is it, else over HTTP.
func toController[Req, Resp any](ctx context.Context, n *Node, path string, local func(context.Context, Req) (Resp, error), req Req) (Resp, error) {
	var resp Resp
	if n.meta.IsLeader() {
		return local(ctx, req)
	}
	_, addr, ok := n.controller()
	if !ok || addr == "" {
		return resp, errors.New("no controller with a known address yet")
	}
	err := n.peers.call(ctx, http.MethodPost, addr, "/internal/v1"+path, req, &resp)
	return resp, err
}

// Register registers (or re-registers) a broker; controller only.
func (n *Node) Register(ctx context.Context, req httpapi.RegisterRequest) (httpapi.RegisterResponse, error) {
	if !n.meta.IsLeader() {
		return httpapi.RegisterResponse{}, n.notController()
	}
	b, err := n.meta.RegisterBroker(ctx, metadata.Broker{ID: req.ID, HTTPAddr: req.HTTPAddr, RaftAddr: req.RaftAddr, Rack: req.Rack, Incarnation: req.Incarnation})
	if err != nil {
		return httpapi.RegisterResponse{}, err
	}
	return httpapi.RegisterResponse{Epoch: b.Epoch, State: b.State}, nil
}

// Join adds a node to Raft as a non-voter and registers it; controller only.
// Everything the registration would refuse is refused first, so that a
// refused join leaves the Raft configuration as it was.
func (n *Node) Join(ctx context.Context, req httpapi.JoinRequest) (httpapi.RegisterResponse, error) {
	if !n.meta.IsLeader() {
		return httpapi.RegisterResponse{}, n.notController()
	}
	if err := n.meta.CheckRegistration(metadata.Broker{ID: req.ID, HTTPAddr: req.HTTPAddr, RaftAddr: req.RaftAddr}); err != nil {
		return httpapi.RegisterResponse{}, err
	}
	if err := n.meta.Join(ctx, req.ID, req.RaftAddr, false); err != nil {
		return httpapi.RegisterResponse{}, err
	}
	return n.Register(ctx, req)
}

// Heartbeat records that a broker is alive; controller only.
func (n *Node) Heartbeat(ctx context.Context, req httpapi.HeartbeatRequest) (httpapi.HeartbeatResponse, error) {
	if !n.meta.IsLeader() {
		return httpapi.HeartbeatResponse{}, n.notController()
	}
	img := n.meta.Image()
	b := img.Broker(req.ID)
	if b == nil {
		return httpapi.HeartbeatResponse{}, httpapi.Errorf(client.CodeBrokerNotAvailable, "broker %d is not registered", req.ID)
	}
	cs := &n.ctrl
	cs.mu.Lock()
	cs.startLeading(time.Now())
	cs.lastSeen[req.ID] = time.Now()
	cs.applied[req.ID] = req.AppliedIndex
	cs.replicas[req.ID] = req.ReplicasIndex
	cs.stopping[req.ID] = req.ShuttingDown
	cs.offline[req.ID] = offlineReport{epoch: req.Epoch, parts: req.OfflinePartitions}
	cs.mu.Unlock()
	return httpapi.HeartbeatResponse{MetadataIndex: n.meta.AppliedIndex(), State: b.State}, nil
}

// AlterPartition applies a leader's ISR change; controller only.
func (n *Node) AlterPartition(ctx context.Context, req httpapi.AlterPartitionRequest) (httpapi.AlterPartitionResponse, error) {
	if !n.meta.IsLeader() {
		return httpapi.AlterPartitionResponse{}, n.notController()
	}
	p, err := n.meta.AlterPartition(ctx, metadata.AlterPartitionCmd{Topic: req.Topic, Partition: req.Partition, Leader: req.Leader,
		ISR: req.ISR, ExpectedLeaderEpoch: req.LeaderEpoch, ExpectedPartitionEpoch: req.PartitionEpoch})
	if err != nil {
		return httpapi.AlterPartitionResponse{}, err
	}
	return httpapi.AlterPartitionResponse{Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: p.ISR}, nil
}

// waitBrokersApplied waits (briefly, bounded) until every alive broker has
// reported, by heartbeat, that its replicas reflect the metadata this
// controller has applied: then a produce sent to any node right after a
// create finds the topic and its partitions open. (Raft's applied index is
// not enough: it runs ahead of the replicas for as long as opening the new
// partitions takes.) Past the bound the call returns anyway; the change is
// committed.
func (n *Node) waitBrokersApplied(ctx context.Context) {
	// The image version, which heartbeats' replicas_index counts in: Raft's
	// applied index also counts entries that change no image (no-ops,
	// barriers), which no broker's replicas would ever report.
	target := n.meta.Image().Version
	// Up to a session timeout: a broker that has not reported by then is
	// about to be fenced anyway; a shorter bound let a loaded but alive
	// broker answer "no such topic" right after a create.
	deadline := time.Now().Add(time.Duration(n.cfg.BrokerSessionTimeoutMs) * time.Millisecond)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		img := n.meta.Image()
		behind := false
		n.ctrl.mu.Lock()
		for _, id := range img.SortedBrokerIDs() {
			if id != n.cfg.NodeID && img.Broker(id).Alive() && n.ctrl.replicas[id] < target {
				behind = true
			}
		}
		n.ctrl.mu.Unlock()
		if !behind {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ControlledShutdown fences a stopping broker, which moves its leaderships
// to other in-sync replicas; controller only.
func (n *Node) ControlledShutdown(ctx context.Context, req httpapi.ShutdownRequest) (httpapi.ShutdownResponse, error) {
	if !n.meta.IsLeader() {
		return httpapi.ShutdownResponse{}, n.notController()
	}
	n.ctrl.mu.Lock()
	n.ctrl.startLeading(time.Now())
	n.ctrl.stopping[req.ID] = true
	n.ctrl.mu.Unlock()
	if b := n.meta.Image().Broker(req.ID); b != nil && b.Alive() {
		if err := n.meta.FenceBroker(ctx, req.ID, req.Epoch); err != nil {
			return httpapi.ShutdownResponse{}, err
		}
	}
	return httpapi.ShutdownResponse{RemainingLeaders: n.meta.Image().LeaderCount(req.ID)}, nil
}

// runController does the controller's periodic work while this node leads
// Raft: fence silent brokers, unfence caught-up ones, restore preferred leaders.
func (n *Node) runController(ctx context.Context) {
	interval := time.Duration(n.cfg.BrokerHeartbeatIntervalMs) * time.Millisecond
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.controllerTick(ctx)
	}
}

func (n *Node) controllerTick(ctx context.Context) {
	cs := &n.ctrl
	now := time.Now()
	cs.mu.Lock()
	if !n.meta.IsLeader() {
		cs.leading = false
		cs.mu.Unlock()
		return
	}
	cs.startLeading(now)
	cs.lastSeen[n.cfg.NodeID] = now
	cs.applied[n.cfg.NodeID] = n.meta.AppliedIndex()
	cs.stopping[n.cfg.NodeID] = n.stopping.Load()
	// Its own offline replicas come with its own heartbeat, as everyone's.
	offline := maps.Clone(cs.offline)
	session := time.Duration(n.cfg.BrokerSessionTimeoutMs) * time.Millisecond
	acts := fencingDecisions(n.meta.Image(), brokerView{since: cs.since, lastSeen: cs.lastSeen, applied: cs.applied, stopping: cs.stopping},
		now, session)
	// Once an interval (Kafka's leader.imbalance.check.interval), not on
	// every tick: a leader that just handed a partition over (its disk
	// refused a write) would get it straight back.
	balance := n.cfg.AutoLeaderRebalanceEnable &&
		now.Sub(cs.lastBalance) >= time.Duration(n.cfg.LeaderImbalanceCheckIntervalMs)*time.Millisecond
	if balance {
		cs.lastBalance = now
	}
	cs.mu.Unlock()

	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n.commitOfflineReplicas(cctx, offline)
	for _, a := range acts {
		var err error
		if a.fence {
			n.logger.Warn("fencing broker", "broker", a.id, "reason", a.reason)
			err = n.meta.FenceBroker(cctx, a.id, a.epoch)
		} else {
			n.logger.Info("unfencing broker", "broker", a.id, "reason", a.reason)
			err = n.meta.UnfenceBroker(cctx, a.id, a.epoch)
		}
		if err != nil && ctx.Err() == nil {
			n.logger.Warn("controller action failed", "broker", a.id, "fence", a.fence, "err", err)
		}
	}
	if balance {
		n.restorePreferredLeaders(cctx)
	}
}

// restorePreferredLeaders moves leadership back to each partition's first
// replica once it is alive and in sync (auto.leader.rebalance.enable).
func (n *Node) restorePreferredLeaders(ctx context.Context) {
	img := n.meta.Image()
	n.ctrl.mu.Lock()
	stopping := maps.Clone(n.ctrl.stopping)
	n.ctrl.mu.Unlock()
	for _, cmd := range preferredLeaderMoves(img, stopping) {
		if _, err := n.meta.AlterPartition(ctx, cmd); err != nil && ctx.Err() == nil {
			n.logger.Debug("preferred leader not restored", "topic", cmd.Topic, "partition", cmd.Partition, "err", err)
		}
	}
}

// heartbeatLoop keeps this broker registered and alive at the controller and
// learns how far the metadata has to be applied to count as caught up.
func (n *Node) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(n.cfg.BrokerHeartbeatIntervalMs) * time.Millisecond)
	defer t.Stop()
	for {
		n.heartbeatOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.heartbeatNow:
			// A metadata change was applied: tell the controller at once, so a
			// create waiting for every broker returns sooner.
		}
	}
}

func (n *Node) heartbeatOnce(ctx context.Context) {
	self := n.meta.Image().Broker(n.cfg.NodeID)
	cctx, cancel := context.WithTimeout(ctx, time.Duration(n.cfg.BrokerSessionTimeoutMs)*time.Millisecond)
	defer cancel()
	if self == nil || self.HTTPAddr != n.cfg.AdvertiseHTTPAddr || self.RaftAddr != n.cfg.RaftAdvertiseAddr() || self.Rack != n.cfg.BrokerRack ||
		self.Incarnation != n.incarnation {
		req := httpapi.RegisterRequest{ID: n.cfg.NodeID, HTTPAddr: n.cfg.AdvertiseHTTPAddr, RaftAddr: n.cfg.RaftAdvertiseAddr(),
			Rack: n.cfg.BrokerRack, Incarnation: n.incarnation}
		if _, err := toController(cctx, n, "/brokers/register", n.Register, req); err != nil && ctx.Err() == nil {
			n.logger.Debug("registration not done yet", "err", err)
		}
		return
	}
	req := httpapi.HeartbeatRequest{ID: n.cfg.NodeID, Epoch: self.Epoch, AppliedIndex: n.meta.AppliedIndex(),
		ReplicasIndex: n.replicasVersion.Load(), ShuttingDown: n.stopping.Load(), OfflinePartitions: n.offlinePartitions()}
	resp, err := toController(cctx, n, "/brokers/heartbeat", n.Heartbeat, req)
	if err != nil {
		if ctx.Err() == nil {
			n.logger.Debug("heartbeat failed", "err", err)
		}
		return
	}
	n.metadataTarget.Store(resp.MetadataIndex)
	n.lastHeartbeat.Store(time.Now().UnixNano())
}

// MetadataCurrent reports whether the controller answered a heartbeat within
// two heartbeat intervals and this node has applied the metadata it reported
// then. The window is shorter than the session timeout, so a node the
// controller is about to fence for silence already knows it is not current.
func (n *Node) MetadataCurrent() bool {
	window := min(2*time.Duration(n.cfg.BrokerHeartbeatIntervalMs), time.Duration(n.cfg.BrokerSessionTimeoutMs)/2) * time.Millisecond
	if time.Since(time.Unix(0, n.lastHeartbeat.Load())) > window {
		return false
	}
	return n.meta.AppliedIndex() >= n.metadataTarget.Load()
}

// joinLoop asks an existing node to add this one to the Raft group, until it is in.
func (n *Node) joinLoop(ctx context.Context) {
	req := httpapi.JoinRequest{ID: n.cfg.NodeID, HTTPAddr: n.cfg.AdvertiseHTTPAddr, RaftAddr: n.cfg.RaftAdvertiseAddr(), Rack: n.cfg.BrokerRack,
		Incarnation: n.incarnation}
	backoff := 200 * time.Millisecond
	for {
		for _, u := range n.cfg.Join {
			if n.meta.Image().Broker(n.cfg.NodeID) != nil {
				return // in the group and registered
			}
			addr := trimScheme(u)
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var resp httpapi.RegisterResponse
			err := n.peers.call(cctx, http.MethodPost, addr, "/internal/v1/join", req, &resp)
			cancel()
			if err == nil {
				n.logger.Info("joined the cluster", "via", u, "broker_epoch", resp.Epoch)
				return
			}
			if ae, ok := errors.AsType[*httpapi.Error](err); ok && (ae.Code == client.CodeNodeAuthenticationRequired || ae.Code == client.CodeClusterAuthorizationFailed) {
				n.logger.Warn("the cluster refused this node's credential: give it the cluster's secret (cluster_secret)", "via", u, "err", err)
			} else {
				n.logger.Debug("join attempt failed", "via", u, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 3*time.Second)
	}
}

func trimScheme(u string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(u) > len(p) && u[:len(p)] == p {
			u = u[len(p):]
		}
	}
	for len(u) > 0 && u[len(u)-1] == '/' {
		u = u[:len(u)-1]
	}
	return u
}

// controlledShutdown moves this broker's leaderships away before it stops,
// so producers see only retriable errors during a rolling restart.
func (n *Node) controlledShutdown(ctx context.Context) {
	n.stopping.Store(true)
	self := n.meta.Image().Broker(n.cfg.NodeID)
	if self == nil {
		return
	}
	if n.meta.Image().LeaderCount(n.cfg.NodeID) == 0 {
		// Nothing to move (or no quorum to move it with): tell the controller
		// once, briefly, so it does not wait for the session timeout.
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := toController(cctx, n, "/brokers/shutdown", n.ControlledShutdown, httpapi.ShutdownRequest{ID: n.cfg.NodeID, Epoch: self.Epoch}); err != nil {
			n.logger.Debug("telling the controller of the shutdown failed", "err", err)
		}
		return
	}
	noController := time.Time{}
	for ctx.Err() == nil {
		if _, _, ok := n.controller(); !ok {
			// No quorum (the other voters are gone): nobody could take the
			// leaderships; do not hold the shutdown for long.
			if noController.IsZero() {
				noController = time.Now()
			} else if time.Since(noController) > 2*time.Duration(n.cfg.BrokerHeartbeatIntervalMs)*time.Millisecond {
				n.logger.Info("controlled shutdown skipped: no controller")
				return
			}
		} else {
			noController = time.Time{}
		}
		resp, err := toController(ctx, n, "/brokers/shutdown", n.ControlledShutdown,
			httpapi.ShutdownRequest{ID: n.cfg.NodeID, Epoch: self.Epoch})
		if err == nil && (resp.RemainingLeaders == 0 || n.meta.Image().LeaderCount(n.cfg.NodeID) == 0) {
			n.logger.Info("controlled shutdown: leaderships moved")
			return
		}
		if err != nil {
			n.logger.Debug("controlled shutdown not done yet", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	n.logger.Warn("controlled shutdown timed out; stopping anyway", "leaderships", n.meta.Image().LeaderCount(n.cfg.NodeID))
}
