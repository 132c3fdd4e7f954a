package httpapi

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"weir/client"
	"weir/logstore"
	"weir/replication"
)

// fakePartition is a leader replica over a real log whose high watermark the
// test moves (every append is committed at once).
type fakePartition struct {
	log     *logstore.Log
	dir     string // the log's directory
	hw      atomic.Int64
	mu      sync.Mutex
	notify  chan struct{}
	waiting chan struct{} // receives (without blocking) each time a reader finds nothing new and may wait
	// onAppend tells the backend (AnyChanged) of each append.
	onAppend func()
	// inRead, when set, runs inside each Read (to see reads overlap).
	inRead func()
}

// newFakePartition's log has segments of 1 MB, or as edit sets them.
func newFakePartition(t testing.TB, edit ...func(*logstore.Config)) *fakePartition {
	t.Helper()
	cfg := logstore.DefaultConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.Fsync = logstore.FsyncNever
	for _, f := range edit {
		f(&cfg)
	}
	dir := t.TempDir()
	l, err := logstore.Open(dir, cfg, logstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &fakePartition{log: l, dir: dir, notify: make(chan struct{}), waiting: make(chan struct{}, 1)}
}

func (p *fakePartition) Append(ctx context.Context, batch []byte, _ replication.Acks) (logstore.AppendResult, error) {
	res, err := p.log.AppendAsLeader(ctx, batch, 0)
	if err != nil {
		return res, err
	}
	p.hw.Store(p.log.LogEndOffset())
	p.mu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
	if p.onAppend != nil {
		p.onAppend()
	}
	return res, nil
}

// add appends one batch of records with the given values (key "k<offset>").
func (p *fakePartition) add(t testing.TB, values ...string) {
	t.Helper()
	recs := make([]logstore.Record, len(values))
	base := p.log.LogEndOffset()
	for i, v := range values {
		recs[i] = logstore.Record{Timestamp: 1000 + base + int64(i), Key: fmt.Appendf(nil, "k%d", base+int64(i)), Value: []byte(v)}
	}
	batch, err := p.log.Codecs().EncodeBatch(nil, recs, logstore.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(context.Background(), batch, replication.AcksAll); err != nil {
		t.Fatal(err)
	}
}

func (p *fakePartition) Read(offset int64, maxBytes int) (logstore.ReadResult, int64, error) {
	if p.inRead != nil {
		p.inRead()
	}
	hw := p.hw.Load()
	res, err := p.log.Read(offset, maxBytes, hw)
	if err == nil && len(res.Data) == 0 && offset >= hw {
		p.signalWaiting()
	}
	return res, hw, err
}

// signalWaiting leaves a token in waiting, without blocking.
func (p *fakePartition) signalWaiting() {
	select {
	case p.waiting <- struct{}{}:
	default:
	}
}

func (p *fakePartition) WaitHW(ctx context.Context, offset int64) error {
	for {
		ch := p.Changed()
		if p.hw.Load() > offset {
			return nil
		}
		p.signalWaiting()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *fakePartition) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notify
}

func (p *fakePartition) HighWatermark() int64          { return p.hw.Load() }
func (p *fakePartition) LeaderEpochStartOffset() int64 { return 0 }
func (p *fakePartition) Log() *logstore.Log            { return p.log }

// fakeBackend serves the partitions of a test. The methods group calls do
// not use come from the embedded interface (nil: calling one panics, which
// the server turns into a 500 the test would see).
type fakeBackend struct {
	Backend
	local  map[client.TopicPartition]*fakePartition
	remote map[client.TopicPartition]string // partition led by the node at this address
	stale  bool                             // MetadataCurrent reports false
	codecs *logstore.Codecs
	mu     sync.Mutex    // guards the maps (a test may add partitions while serving) and notify
	notify chan struct{} // closed on an append to any local partition
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{local: map[client.TopicPartition]*fakePartition{}, remote: map[client.TopicPartition]string{},
		notify: make(chan struct{}), codecs: logstore.NewCodecs(64 << 20)}
}

func (b *fakeBackend) AnyChanged() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.notify
}

func (b *fakeBackend) changed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.notify)
	b.notify = make(chan struct{})
}

func (b *fakeBackend) Codecs() *logstore.Codecs { return b.codecs }

func (b *fakeBackend) NodeID() int32 { return 1 }

func (b *fakeBackend) MetadataCurrent() bool { return !b.stale }

func (b *fakeBackend) TopicInfo(name string) (TopicInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0 // partitions 0..n-1 (those of neither map have no leader)
	for tp := range b.local {
		if tp.Topic == name {
			n = max(n, int(tp.Partition)+1)
		}
	}
	for tp := range b.remote {
		if tp.Topic == name {
			n = max(n, int(tp.Partition)+1)
		}
	}
	if n == 0 {
		return TopicInfo{}, Errorf(client.CodeUnknownTopicOrPartition, "topic %q does not exist", name)
	}
	return TopicInfo{Name: name, Partitions: n, MaxMessageBytes: 1 << 20}, nil
}

// TopicOffsets reports the local partitions of topic (with the offset of a
// timestamp: the first at or after it).
func (b *fakeBackend) TopicOffsets(_ context.Context, name string, ts *int64) (client.TopicOffsets, error) {
	info, err := b.TopicInfo(name)
	if err != nil {
		return client.TopicOffsets{}, err
	}
	out := client.TopicOffsets{Topic: name}
	for i := range int32(info.Partitions) {
		b.mu.Lock()
		p, ok := b.local[client.TopicPartition{Topic: name, Partition: i}]
		b.mu.Unlock()
		if !ok { // led elsewhere or by no one: report an empty log
			out.Partitions = append(out.Partitions, client.PartitionOffsets{Partition: i})
			continue
		}
		o := client.PartitionOffsets{Partition: i, LogStartOffset: p.log.LogStartOffset(), HighWatermark: p.HighWatermark(), LogEndOffset: p.log.LogEndOffset()}
		if ts != nil {
			if off, at, found, err := p.log.OffsetForTimestamp(*ts); err == nil && found {
				o.Offset, o.Timestamp = &off, &at
			}
		}
		out.Partitions = append(out.Partitions, o)
	}
	return out, nil
}

func (b *fakeBackend) Partition(topic string, partition int32) (Partition, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tp := client.TopicPartition{Topic: topic, Partition: partition}
	if p, ok := b.local[tp]; ok {
		return p, nil
	}
	if addr, ok := b.remote[tp]; ok {
		return nil, &NotHereError{NodeID: 2, Addr: addr, What: fmt.Sprintf("the leader of %s-%d", topic, partition)}
	}
	return nil, Errorf(client.CodeLeaderNotAvailable, "partition %s-%d has no leader right now", topic, partition)
}
