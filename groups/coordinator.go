package groups

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// The coordinator: its environment, options and timers. Its calls live
// beside it by concern: loading.go (offsets partitions this node leads),
// state.go (a group's lock and its durable writes), membership.go,
// offsets.go (commits, polls, seeks) and admin.go (describe, reset,
// delete, stats). The lock order is in the package doc.

// ErrDiskRefused marks an append to the offsets topic that this node's disk
// refused (full, failing, read-only): Env.AppendOffsets wraps it around such
// failures, and the coordinator hands the partition over (Env.HandOver).
var ErrDiskRefused = errors.New("this node's disk refused the write")

// KV is one record for the offsets topic; a nil Value is a tombstone.
type KV struct {
	Key, Value []byte
}

// PartitionOffsets are a data partition's bounds as its leader reports them.
type PartitionOffsets struct {
	LogStart, HighWatermark int64
	// ForTimestamp is the first offset at or after the asked timestamp, nil
	// when no committed record is that late.
	ForTimestamp *int64
}

// Env is what the coordinator needs of its node: the offsets topic's
// partitions it leads and the data partitions' bounds. LoadOffsets,
// AppendOffsets and TopicOffsets do disk or network I/O and are never
// called with a lock of the coordinator held; PartitionCounts reads the
// node's metadata in memory and may be.
type Env interface {
	// LoadOffsets calls fn with every committed record of offsets
	// partition p, in order, once this node leads p in leader epoch
	// epoch and its high watermark covers everything earlier leaders
	// wrote. It fails if the leadership moves on.
	LoadOffsets(ctx context.Context, p, epoch int32, fn func(key, value []byte)) error
	// AppendOffsets writes records to offsets partition p, acks=all, only
	// while this node still leads p in epoch. A failure of this node's disk
	// wraps ErrDiskRefused.
	AppendOffsets(ctx context.Context, p, epoch int32, recs []KV) error
	// HandOver gives the leadership of offsets partition p, led here in
	// epoch, to another in-sync replica and leaves this node's replica out
	// of the ISR (until it catches up again), returning the new leader. It
	// fails, changing nothing, when no other in-sync replica is alive.
	HandOver(ctx context.Context, p, epoch int32) (int32, error)
	// PartitionCounts gives the partition count of each topic (absent or 0:
	// the topic does not exist).
	PartitionCounts(topics []string) map[string]int32
	// TopicOffsets asks the leaders of topic's partitions for their bounds
	// (and the offset for timestamp when it is not nil). Partitions whose
	// leader did not answer are missing from the map.
	TopicOffsets(ctx context.Context, topic string, timestamp *int64) (map[int32]PartitionOffsets, error)
}

// CoordinatorOptions configure a Coordinator.
type CoordinatorOptions struct {
	Env Env
	// NodeID is reported as the groups' coordinator.
	NodeID int32
	Logger *slog.Logger
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
	// ObserveCommit, if set, is told how long each durable commit took.
	ObserveCommit func(time.Duration)
	// NewUUID overrides the uuid part of member ids (tests).
	NewUUID func() string
	// ExpiryInterval paces session-timeout checks; default 100ms.
	ExpiryInterval time.Duration
	// LagInterval paces the refresh of log ends for lag metrics; default 5s.
	LagInterval time.Duration
	// MetadataCurrent, if set, reports whether the node's view of the
	// cluster is current (the controller answered it lately). While it is
	// not, the node may have lost an offsets partition's leadership without
	// knowing, and another coordinator may already be taking commits, so
	// calls are refused (NOT_COORDINATOR) rather than answered from memory.
	MetadataCurrent func() bool
}

// Coordinator runs the consumer groups whose offsets partitions this node
// leads: it loads a partition when it becomes leader, serves its groups from
// memory, writes their commits and generations durably before answering,
// and forgets them when the leadership moves on. The node routes each call
// to the group's coordinator first; a call that reaches a node that does
// not (yet) coordinate the group gets ErrNotCoordinator or ErrLoadInProgress.
type Coordinator struct {
	opts CoordinatorOptions
	log  *slog.Logger
	env  Env

	mu         sync.Mutex // guards numParts and parts; a leaf (see the package doc)
	numParts   int32      // partitions of the offsets topic; 0 until it exists
	parts      map[int32]*offsetsPart
	topicsKick chan struct{}

	wg     sync.WaitGroup
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
}

// NewCoordinator returns a coordinator; Run drives its timers.
func NewCoordinator(opts CoordinatorOptions) *Coordinator {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ExpiryInterval <= 0 {
		opts.ExpiryInterval = 100 * time.Millisecond
	}
	if opts.LagInterval <= 0 {
		opts.LagInterval = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Coordinator{opts: opts, log: opts.Logger, env: opts.Env, parts: map[int32]*offsetsPart{},
		topicsKick: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
}

// Close stops the loaders and timers and waits for them.
func (c *Coordinator) Close() {
	c.cancel()
	c.mu.Lock()
	for _, op := range c.parts {
		op.resign()
	}
	c.parts = map[int32]*offsetsPart{}
	c.mu.Unlock()
	c.wg.Wait()
}

// Run expires silent members, rebalances on topic changes and refreshes lag
// until ctx or Close ends it.
func (c *Coordinator) Run(ctx context.Context) {
	// Lag refreshes ask other nodes and may take seconds: they run apart
	// so that session expiry stays on time.
	done := make(chan struct{})
	go func() {
		defer close(done)
		lag := time.NewTicker(c.opts.LagInterval)
		defer lag.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.ctx.Done():
				return
			case <-lag.C:
				c.refreshLag(ctx)
			}
		}
	}()
	defer func() { <-done }()
	expiry := time.NewTicker(c.opts.ExpiryInterval)
	defer expiry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.ctx.Done():
			return
		case <-expiry.C:
			c.expire()
		case <-c.topicsKick:
			c.updateTopics()
		}
	}
}

// TopicsChanged tells the coordinator that topics or partition counts may
// have changed, so subscriptions pick them up.
func (c *Coordinator) TopicsChanged() {
	select {
	case c.topicsKick <- struct{}{}:
	default:
	}
}

// expire removes members whose session timed out. A group's lock is never
// held across I/O, so a slow durable write of one group delays no other's
// expiry, nor its own beyond that write's decision.
func (c *Coordinator) expire() {
	now := c.opts.Now()
	for _, gs := range c.allGroups() {
		gs.mu.Lock()
		if t, ok := gs.g.NextExpiry(); ok && now.After(t) && !gs.part.gone.Load() && !gs.removed {
			if gone := gs.g.Expire(now); len(gone) > 0 {
				gs.prune()
				c.log.Info("members expired", "group", gs.g.Name(), "members", gone, "generation", gs.g.Generation())
			}
		}
		gs.mu.Unlock()
	}
}

// updateTopics rebalances groups whose subscribed topics changed.
func (c *Coordinator) updateTopics() {
	for _, gs := range c.allGroups() {
		gs.mu.Lock()
		if !gs.part.gone.Load() && !gs.removed {
			c.refreshTopics(gs, nil)
		}
		gs.mu.Unlock()
	}
}

// refreshLag fetches log ends of the topics groups committed offsets for:
// the topics under each group's lock, the log ends with none held.
func (c *Coordinator) refreshLag(ctx context.Context) {
	groups := c.allGroups()
	topics := map[string]bool{}
	for _, gs := range groups {
		gs.mu.Lock()
		for tp := range gs.g.Offsets() {
			topics[tp.Topic] = true
		}
		gs.mu.Unlock()
	}
	if len(topics) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ends := c.logEnds(cctx, slices.Sorted(maps.Keys(topics)))
	for _, gs := range groups {
		gs.mu.Lock()
		maps.Copy(gs.logEnd, ends)
		gs.mu.Unlock()
	}
}
