package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"weir/logstore"
)

// Assignment is what the metadata says about one partition, as this node must apply it.
type Assignment struct {
	Topic       string
	Partition   int32
	Replicas    []int32
	Leader      int32 // -1: none
	LeaderEpoch int32
	// PartitionEpoch is bumped by the controller on every change of the
	// partition. It goes into AlterPartition requests, and an assignment
	// older than the state this node holds (by leader epoch, then partition
	// epoch) is ignored; so it must be filled in.
	PartitionEpoch int32
	ISR            []int32
	MinISR         int
	// ReplicaLagTimeMax is replica.lag.time.max.ms (0: DefaultReplicaLagTimeMax).
	ReplicaLagTimeMax time.Duration
	Config            logstore.Config
}

// HighWatermarkCheckpointFile is where the Manager keeps every partition's
// HW, in the data dir (Kafka's name).
const HighWatermarkCheckpointFile = "replication-offset-checkpoint"

// Options configure a Manager. The zero value is a replica manager that
// neither fetches nor asks for ISR changes: enough for one node.
type Options struct {
	// Transport carries this node's follower fetches; nil: it follows no one.
	Transport FetchTransport
	// ISRChanger sends the ISR changes this node asks for as a leader; nil: none.
	ISRChanger ISRChanger
	// BrokerEpoch returns this broker's current epoch, sent with every fetch
	// so a leader can refuse requests of an earlier incarnation; nil: 0.
	BrokerEpoch func() int64
	// FetchWaitMax is replica.fetch.wait.max.ms, the follower's long poll (default 500 ms).
	FetchWaitMax time.Duration
	// FetchMaxBytes bounds a fetch response's records (default 10 MiB, as
	// Kafka's replica.fetch.response.max.bytes); one batch may exceed it.
	FetchMaxBytes int
	// FetchTimeout bounds one fetch call, long poll included (default FetchWaitMax + 30 s).
	FetchTimeout time.Duration
	// FetchBackoffMax caps the pause after failed fetches (default 1 s, replica.fetch.backoff.ms).
	FetchBackoffMax time.Duration
	// AlterPartitionTimeout bounds one ISR change request (default 10 s).
	AlterPartitionTimeout time.Duration
	// Now is the clock of ISR lag tracking (tests inject one).
	Now    func() time.Time
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.FetchWaitMax <= 0 {
		o.FetchWaitMax = 500 * time.Millisecond
	}
	if o.FetchMaxBytes <= 0 {
		o.FetchMaxBytes = 10 << 20
	}
	if o.FetchTimeout <= o.FetchWaitMax {
		o.FetchTimeout = o.FetchWaitMax + 30*time.Second
	}
	if o.FetchBackoffMax <= 0 {
		o.FetchBackoffMax = time.Second
	}
	if o.AlterPartitionTimeout <= 0 {
		o.AlterPartitionTimeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

type key struct {
	topic     string
	partition int32
}

// followTarget is whom a partition is fetched from, in which epoch.
type followTarget struct {
	leader int32
	epoch  int32
}

// Manager holds this node's replicas and keeps them in line with the
// metadata: it leads some (serving follower fetches, tracking the ISR) and
// follows others (its fetchers pull them from their leaders).
type Manager struct {
	nodeID int32
	logs   *logstore.Manager
	opts   Options
	ctx    context.Context // ends at Close: fetchers, ISR requests, parked fetches
	cancel context.CancelFunc

	applyMu   sync.Mutex // one Apply (or Close) at a time; guards the fields below
	closed    bool
	fetchers  map[int32]*fetcher // by leader broker
	following map[key]followTarget

	mu      sync.RWMutex
	parts   map[key]*Partition
	failed  map[key]openFailure // replicas whose log could not be opened; guarded by mu
	changed chan struct{}       // closed when any HW moves; guarded by mu

	bgMu     sync.Mutex // guards bgClosed and bg.Add
	bgClosed bool
	bg       sync.WaitGroup // ISR change requests in flight

	ckptMu sync.Mutex       // one checkpoint write at a time; guards ckpt
	ckpt   map[string]int64 // checkpointed HWs of partitions not opened yet
}

// NewManager returns a replica manager with default options: it follows no
// one and asks for no ISR change (a single node). See New.
func NewManager(nodeID int32, logs *logstore.Manager) *Manager {
	return New(nodeID, logs, Options{})
}

// New returns a replica manager over the logs of a data dir. It reads the
// HW checkpoint the previous run left; a damaged one is ignored (HWs then
// start at the log start and move up as the ISR confirms: late, never wrong).
func New(nodeID int32, logs *logstore.Manager, opts Options) *Manager {
	opts.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{nodeID: nodeID, logs: logs, opts: opts, ctx: ctx, cancel: cancel,
		fetchers: map[int32]*fetcher{}, following: map[key]followTarget{},
		parts: map[key]*Partition{}, failed: map[key]openFailure{}, changed: make(chan struct{})}
	ckpt, err := logstore.ReadOffsetCheckpoint(m.checkpointPath())
	if err != nil {
		opts.Logger.Warn("ignoring the high watermark checkpoint", "err", err)
		ckpt = map[string]int64{}
	}
	m.ckpt = ckpt
	return m
}

func (m *Manager) checkpointPath() string {
	return filepath.Join(m.logs.Dir(), HighWatermarkCheckpointFile)
}

// Partition returns this node's replica of a partition.
func (m *Manager) Partition(topic string, partition int32) (*Partition, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.parts[key{topic, partition}]
	return p, ok
}

// Partitions returns every replica this node holds, sorted by topic and partition.
func (m *Manager) Partitions() []*Partition {
	m.mu.RLock()
	out := make([]*Partition, 0, len(m.parts))
	for _, p := range m.parts {
		out = append(out, p)
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return topicPartitionLess(out[i].Topic, out[i].Index, out[j].Topic, out[j].Index) })
	return out
}

// topicPartitionLess orders partitions by topic, then index.
func topicPartitionLess(t1 string, p1 int32, t2 string, p2 int32) bool {
	if t1 != t2 {
		return t1 < t2
	}
	return p1 < p2
}

// AnyChanged returns a channel closed when the HW of any partition next moves.
func (m *Manager) AnyChanged() <-chan struct{} {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.changed
}

func (m *Manager) broadcast() {
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

// Apply brings the replicas in line with the assignments of every partition
// this node holds a replica of: it opens missing logs, applies leadership,
// ISR and configs, starts and stops fetching, and deletes the logs of
// partitions no longer assigned here. Applying the same assignments again
// changes nothing (the server calls it on every metadata change and retry).
// A log that cannot be opened is no error of Apply's: that one replica stays
// offline on this node (OpenError says why; it is logged once), the others
// are applied, and a later Apply tries again after a backoff.
func (m *Manager) Apply(assignments []Assignment) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	if m.closed {
		return errors.New("apply assignments: replica manager is closed")
	}
	want := map[key]Assignment{}
	for _, a := range assignments {
		for _, r := range a.Replicas {
			if r == m.nodeID {
				want[key{a.Topic, a.Partition}] = a
			}
		}
	}
	var errs []error
	opened := m.openLogs(want)
	for k, a := range want {
		p, ok := m.Partition(k.topic, k.partition)
		if !ok {
			l, ok := opened[k]
			if !ok {
				continue
			}
			p = newPartition(k.topic, k.partition, l, m.nodeID, m.initialHW(k, l), m.opts.Now, m.broadcast)
			m.mu.Lock()
			m.parts[k] = p
			m.mu.Unlock()
		} else if err := p.log.SetConfig(a.Config); err != nil {
			errs = append(errs, fmt.Errorf("configure %s-%d: %w", k.topic, k.partition, err))
		}
		m.applyRoleLocked(k, p, a)
	}
	m.mu.Lock()
	var gone []*Partition
	for k, p := range m.parts {
		if _, ok := want[k]; !ok {
			gone = append(gone, p)
			delete(m.parts, k)
		}
	}
	for k := range m.failed {
		if _, ok := want[k]; !ok {
			delete(m.failed, k)
		}
	}
	m.mu.Unlock()
	for _, p := range gone {
		m.unfollowLocked(key{p.Topic, p.Index})
		p.stop()
		m.forgetCheckpoint(p.Topic, p.Index)
		if err := m.logs.Delete(p.Topic, p.Index); err != nil {
			errs = append(errs, err)
		}
	}
	// Logs on disk that no assignment names (a topic deleted while we were down).
	for _, name := range m.logs.Names() {
		t, part, ok := logstore.ParsePartitionDir(name)
		if !ok {
			continue
		}
		if _, ok := want[key{t, part}]; !ok {
			m.forgetCheckpoint(t, part)
			if err := m.logs.Delete(t, part); err != nil {
				errs = append(errs, err)
			}
		}
	}
	m.stopIdleFetchersLocked()
	if len(errs) > 0 {
		return fmt.Errorf("apply assignments: %w", errors.Join(errs...))
	}
	return nil
}

// openFailure is a replica whose log could not be opened on this node.
type openFailure struct {
	err   error
	retry time.Time     // Apply tries again from then on
	wait  time.Duration // the backoff after the next failure is twice this
}

const (
	openRetryMin = time.Second
	openRetryMax = time.Minute
)

// openLog opens (or creates) a replica's log, recording a failure instead of
// returning it: the replica stays out of service here until a retry, after
// the backoff, succeeds. The failure is logged when it first happens or
// changes, not on every retry.
func (m *Manager) openLog(k key, cfg logstore.Config) (*logstore.Log, bool) {
	now := m.opts.Now()
	m.mu.RLock()
	f, failed := m.failed[k]
	m.mu.RUnlock()
	if failed && now.Before(f.retry) {
		return nil, false
	}
	l, err := m.logs.GetOrCreate(k.topic, k.partition, cfg)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		wait := min(max(2*f.wait, openRetryMin), openRetryMax)
		if !failed || f.err.Error() != err.Error() {
			m.opts.Logger.Error("cannot open the log of a replica: it is offline on this node until a retry succeeds",
				"topic", k.topic, "partition", k.partition, "retry_in", wait, "err", err)
		}
		m.failed[k] = openFailure{err: err, retry: now.Add(wait), wait: wait}
		return nil, false
	}
	if failed {
		delete(m.failed, k)
		m.opts.Logger.Info("opened the log of a replica after it had failed", "topic", k.topic, "partition", k.partition)
	}
	return l, true
}

// openConcurrency bounds the logs Apply opens at once: creating one costs two
// directory fsyncs, which overlap (a wide topic creates thousands).
const openConcurrency = 8

// openLogs opens the logs of the assigned replicas this node does not hold
// yet, several at a time; those that fail are left out (see openLog).
func (m *Manager) openLogs(want map[key]Assignment) map[key]*logstore.Log {
	var missing []key
	m.mu.RLock()
	for k := range want {
		if _, ok := m.parts[k]; !ok {
			missing = append(missing, k)
		}
	}
	m.mu.RUnlock()
	opened := make(map[key]*logstore.Log, len(missing))
	if len(missing) == 0 {
		return opened
	}
	todo := make(chan key)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(openConcurrency, len(missing)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range todo {
				if l, ok := m.openLog(k, want[k].Config); ok {
					mu.Lock()
					opened[k] = l
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range missing {
		todo <- k
	}
	close(todo)
	wg.Wait()
	return opened
}

// OpenError says why this node holds no replica of a partition assigned to
// it: its log could not be opened (nil if it could, or is not assigned here).
func (m *Manager) OpenError(topic string, partition int32) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if f, ok := m.failed[key{topic, partition}]; ok {
		return fmt.Errorf("the log of %s-%d could not be opened on this node: %w", topic, partition, f.err)
	}
	return nil
}

// PartitionID names a partition.
type PartitionID struct {
	Topic     string
	Partition int32
}

// FailedToOpen lists the replicas assigned here whose log could not be
// opened, sorted: the server reports them to the controller as offline.
func (m *Manager) FailedToOpen() []PartitionID {
	m.mu.RLock()
	out := make([]PartitionID, 0, len(m.failed))
	for k := range m.failed {
		out = append(out, PartitionID{k.topic, k.partition})
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		return topicPartitionLess(out[i].Topic, out[i].Partition, out[j].Topic, out[j].Partition)
	})
	return out
}

// applyRoleLocked applies one assignment's leadership. Fetching from a
// leader (or in an epoch) no longer current stops before the state changes,
// so no batch of the old leadership is appended after it; fetching from the
// new leader starts after, from our log end: becoming a follower never
// truncates (only a diverging epoch from the leader does).
func (m *Manager) applyRoleLocked(k key, p *Partition, a Assignment) {
	if p.stale(a) {
		return
	}
	target := followTarget{leader: a.Leader, epoch: a.LeaderEpoch}
	// An offline replica fetches nothing: its log refuses appends until a restart.
	follow := a.Leader >= 0 && a.Leader != m.nodeID && m.opts.Transport != nil && p.Offline() == nil
	cur, fetching := m.following[k]
	if fetching && (!follow || cur != target) {
		m.unfollowLocked(k)
	}
	if !p.setState(a) {
		return
	}
	if follow && (!fetching || cur != target) {
		f := m.fetchers[a.Leader]
		if f == nil {
			f = newFetcher(m, a.Leader)
			m.fetchers[a.Leader] = f
		}
		f.add(k, p, a.LeaderEpoch)
		m.following[k] = target
	}
}

// stale tells whether an assignment is older than what p already applied.
func (p *Partition) stale(a Assignment) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.known && (a.LeaderEpoch < p.leaderEpoch || (a.LeaderEpoch == p.leaderEpoch && a.PartitionEpoch < p.partitionEpoch))
}

// unfollowLocked stops fetching a partition; it returns once no fetched
// batch for it is being appended.
func (m *Manager) unfollowLocked(k key) {
	cur, ok := m.following[k]
	if !ok {
		return
	}
	delete(m.following, k)
	if f := m.fetchers[cur.leader]; f != nil {
		f.remove(k)
	}
}

// stopIdleFetchersLocked ends the fetchers left with no partition.
func (m *Manager) stopIdleFetchersLocked() {
	for id, f := range m.fetchers {
		f.mu.Lock()
		idle := len(f.parts) == 0
		f.mu.Unlock()
		if idle {
			delete(m.fetchers, id)
			f.stop()
		}
	}
}

// goBackground runs fn in a goroutine Close waits for; false once closed.
func (m *Manager) goBackground(fn func(ctx context.Context)) bool {
	m.bgMu.Lock()
	defer m.bgMu.Unlock()
	if m.bgClosed {
		return false
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		fn(m.ctx)
	}()
	return true
}

// initialHW is a new replica's HW: the checkpointed one within the log's
// bounds, or the log start without a checkpoint. Not the log end: a tail
// that was never committed must not become visible because of a restart.
func (m *Manager) initialHW(k key, l *logstore.Log) int64 {
	name := logstore.PartitionDir(k.topic, k.partition)
	m.ckptMu.Lock()
	hw, ok := m.ckpt[name]
	delete(m.ckpt, name) // the partition holds it from now on
	m.ckptMu.Unlock()
	start := l.LogStartOffset()
	if !ok {
		return start
	}
	return min(max(hw, start), l.LogEndOffset())
}

func (m *Manager) forgetCheckpoint(topic string, partition int32) {
	m.ckptMu.Lock()
	delete(m.ckpt, logstore.PartitionDir(topic, partition))
	m.ckptMu.Unlock()
}

// CheckpointHighWatermarks writes every partition's HW to the data dir's
// replication-offset-checkpoint (atomically). The server calls it
// periodically (Kafka: every 5 s); Close writes it too.
func (m *Manager) CheckpointHighWatermarks() error {
	m.ckptMu.Lock()
	defer m.ckptMu.Unlock()
	out := make(map[string]int64, len(m.ckpt))
	for name, hw := range m.ckpt { // not opened yet: keep what the last run knew
		if t, part, ok := logstore.ParsePartitionDir(name); ok {
			if _, exists := m.logs.Get(t, part); exists {
				out[name] = hw
			}
		}
	}
	for _, p := range m.Partitions() {
		out[logstore.PartitionDir(p.Topic, p.Index)] = p.HighWatermark()
	}
	if err := logstore.WriteOffsetCheckpoint(m.checkpointPath(), out); err != nil {
		return fmt.Errorf("write high watermark checkpoint: %w", err)
	}
	return nil
}

// Close stops the fetchers and every replica's background work, waits for
// ISR requests in flight and writes the HW checkpoint (the log manager
// closes the logs, after this).
func (m *Manager) Close() error {
	m.applyMu.Lock()
	if m.closed {
		m.applyMu.Unlock()
		return nil
	}
	m.closed = true
	m.bgMu.Lock()
	m.bgClosed = true
	m.bgMu.Unlock()
	m.cancel()
	fetchers := m.fetchers
	m.fetchers, m.following = map[int32]*fetcher{}, map[key]followTarget{}
	m.applyMu.Unlock()
	for _, f := range fetchers {
		f.stop()
	}
	m.bg.Wait()
	err := m.CheckpointHighWatermarks()
	m.mu.Lock()
	parts := m.parts
	m.parts = map[key]*Partition{}
	m.mu.Unlock()
	for _, p := range parts {
		p.stop()
	}
	return err
}
