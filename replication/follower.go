package replication

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"weir/logstore"
)

// errRefetch cancels a fetch in flight because its partition set changed.
var errRefetch = errors.New("fetch partitions changed")

// minFetchBackoff is the first pause after a failed fetch; it doubles up to
// Options.FetchBackoffMax.
const minFetchBackoff = 50 * time.Millisecond

// fetcher pulls every partition this node follows from one leader broker, in
// one long-polling request at a time (Kafka's ReplicaFetcherThread).
type fetcher struct {
	m      *Manager
	leader int32

	// mu guards parts and is held while a response is applied, so removing a
	// partition waits until no follower append for it is in progress.
	mu       sync.Mutex
	parts    map[key]*fetchPart
	inflight context.CancelCauseFunc // cancels the fetch in flight; nil when none

	wake   chan struct{} // partitions were added while no fetch was in flight
	cancel context.CancelFunc
	done   chan struct{}
}

// fetchPart is one partition of a fetcher, fetched in one leader epoch.
type fetchPart struct {
	p           *Partition
	leaderEpoch int32
	retryAt     time.Time // after an error: not fetched before then
	backoff     time.Duration
}

func newFetcher(m *Manager, leader int32) *fetcher {
	ctx, cancel := context.WithCancel(m.ctx)
	f := &fetcher{m: m, leader: leader, parts: map[key]*fetchPart{}, wake: make(chan struct{}, 1),
		cancel: cancel, done: make(chan struct{})}
	go f.run(ctx)
	return f
}

// add starts fetching p in epoch (replacing an earlier epoch's entry, which
// also ends its backoff: a new epoch is a fresh start).
func (f *fetcher) add(k key, p *Partition, epoch int32) {
	f.mu.Lock()
	f.parts[k] = &fetchPart{p: p, leaderEpoch: epoch}
	if f.inflight != nil {
		// The request in flight lacks it and may park for the whole long
		// poll: restart it (this happens only on metadata changes).
		f.inflight(errRefetch)
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// remove stops fetching a partition; once it returns no response for it is
// being applied any more.
func (f *fetcher) remove(k key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.parts, k)
}

func (f *fetcher) stop() {
	f.cancel()
	<-f.done
}

func (f *fetcher) run(ctx context.Context) {
	defer close(f.done)
	for ctx.Err() == nil {
		req, sent, rctx, cancel, wait := f.nextRequest(ctx)
		if len(req.Partitions) == 0 {
			var retry <-chan time.Time
			var t *time.Timer
			if wait > 0 {
				t = time.NewTimer(wait)
				retry = t.C
			}
			select {
			case <-ctx.Done():
			case <-f.wake:
			case <-retry:
			}
			if t != nil {
				t.Stop()
			}
			continue
		}
		resp, err := f.m.opts.Transport.Fetch(rctx, f.leader, req)
		restarted := errors.Is(context.Cause(rctx), errRefetch)
		cancel(nil)
		f.mu.Lock()
		f.inflight = nil
		switch {
		case ctx.Err() != nil:
		case restarted:
			// The partition set changed: fetch again at once (what came back,
			// if anything, is dropped; the offsets say where to go on).
		case err != nil:
			f.m.opts.Logger.Debug("fetch failed", "leader", f.leader, "err", err)
			for k, s := range sent {
				f.backoffLocked(k, s.LeaderEpoch)
			}
		case len(resp.Partitions) == 0:
			for k, s := range sent { // a leader answering nothing must not make us spin
				f.backoffLocked(k, s.LeaderEpoch)
			}
		default:
			f.applyLocked(ctx, sent, resp)
		}
		f.mu.Unlock()
	}
}

// nextRequest builds the fetch for every partition not backing off and marks
// it in flight; with none, wait says when the first backoff ends (0: none).
func (f *fetcher) nextRequest(ctx context.Context) (FetchRequest, map[key]FetchPartition, context.Context, context.CancelCauseFunc, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	opts := &f.m.opts
	req := FetchRequest{ReplicaID: f.m.nodeID, MaxWaitMs: int32(opts.FetchWaitMax / time.Millisecond),
		MinBytes: 1, MaxBytes: int32(min(opts.FetchMaxBytes, 1<<31-1))}
	if opts.BrokerEpoch != nil {
		req.ReplicaEpoch = opts.BrokerEpoch()
	}
	sent := map[key]FetchPartition{}
	now := time.Now()
	var wait time.Duration
	for k, fp := range f.parts {
		if fp.p.Offline() != nil {
			delete(f.parts, k) // its log refuses appends until a restart: stop fetching it
			continue
		}
		if d := fp.retryAt.Sub(now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		l := fp.p.log
		part := FetchPartition{Topic: k.topic, Partition: k.partition, FetchOffset: l.LogEndOffset(),
			LeaderEpoch: fp.leaderEpoch, LastFetchedEpoch: l.LatestEpoch(), LogStartOffset: l.LogStartOffset()}
		req.Partitions = append(req.Partitions, part)
		sent[k] = part
	}
	if len(req.Partitions) == 0 {
		return req, nil, nil, nil, wait
	}
	cctx, cancel := context.WithCancelCause(ctx)
	rctx, cancelT := context.WithTimeout(cctx, opts.FetchTimeout)
	f.inflight = cancel
	return req, sent, rctx, func(cause error) { cancelT(); cancel(cause) }, 0
}

// backoffLocked delays a partition's next fetch, doubling up to the maximum,
// jittered so the fetchers of a cluster do not retry in step.
func (f *fetcher) backoffLocked(k key, epoch int32) {
	fp := f.parts[k]
	if fp == nil || fp.leaderEpoch != epoch {
		return // removed or re-added meanwhile: it starts afresh
	}
	fp.backoff = min(max(2*fp.backoff, minFetchBackoff), f.m.opts.FetchBackoffMax)
	jittered := fp.backoff/2 + rand.N(fp.backoff/2+1)
	fp.retryAt = time.Now().Add(jittered)
}

// applyLocked applies a response to the partitions still fetched as sent.
func (f *fetcher) applyLocked(ctx context.Context, sent map[key]FetchPartition, resp FetchResponse) {
	for _, res := range resp.Partitions {
		k := key{res.Topic, res.Partition}
		s, ok := sent[k]
		fp := f.parts[k]
		if !ok || fp == nil || fp.leaderEpoch != s.LeaderEpoch || fp.p.log.LogEndOffset() != s.FetchOffset {
			continue // not asked, or no longer fetched as asked: the next fetch asks again
		}
		if err := f.m.applyFetched(ctx, fp.p, s, res); err != nil {
			if ctx.Err() == nil {
				f.m.opts.Logger.Warn("follower fetch result not applied", "topic", res.Topic, "partition", res.Partition,
					"leader", f.leader, "leader_epoch", s.LeaderEpoch, "fetch_offset", s.FetchOffset, "err", err)
			}
			f.backoffLocked(k, s.LeaderEpoch)
			continue
		}
		fp.backoff, fp.retryAt = 0, time.Time{}
	}
}

// applyFetched applies one partition of a leader's answer to our replica.
func (m *Manager) applyFetched(ctx context.Context, p *Partition, sent FetchPartition, res FetchPartitionResult) error {
	switch res.Error {
	case ErrCodeNone:
	case ErrCodeOffsetOutOfRange:
		// Only a fetch offset below the leader's log start gets here (with an
		// epoch history, an offset past the leader's end is a divergence):
		// what we would fetch is gone, so start over at the leader's start.
		if sent.FetchOffset >= res.LogStartOffset {
			return fmt.Errorf("fetch offset %d is outside the leader's log [%d, %d]", sent.FetchOffset, res.LogStartOffset, res.LogEndOffset)
		}
		m.opts.Logger.Warn("replica fell behind the leader's log start; restarting it there",
			"topic", p.Topic, "partition", p.Index, "fetch_offset", sent.FetchOffset, "leader_log_start", res.LogStartOffset)
		if err := p.log.TruncateFullyAndStartAt(res.LogStartOffset); err != nil {
			return fmt.Errorf("restart the replica at %d: %w", res.LogStartOffset, err)
		}
		return m.logs.Checkpoint()
	default:
		return fmt.Errorf("leader refused the fetch: %s", res.Error)
	}
	if res.LeaderEpoch != sent.LeaderEpoch {
		return fmt.Errorf("leader answered in epoch %d, fetched in %d", res.LeaderEpoch, sent.LeaderEpoch)
	}
	if d := res.DivergingEpoch; d != nil {
		return m.truncateDiverging(p, *d)
	}
	if len(res.Records) > 0 {
		recs, err := skipBelow(res.Records, sent.FetchOffset)
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			if _, err := p.log.AppendAsFollower(ctx, recs); err != nil {
				return fmt.Errorf("append fetched batches at %d: %w", sent.FetchOffset, err)
			}
		}
	}
	p.advanceFollowerHW(res.HighWatermark)
	// Follow the leader's retention and record deletions, within what we
	// hold and know committed (the leader's start never passes its HW).
	if lso := res.LogStartOffset; lso > p.log.LogStartOffset() && lso <= p.HighWatermark() {
		if err := m.logs.DeleteRecordsBefore(p.Topic, p.Index, lso); err != nil {
			return fmt.Errorf("follow the leader's log start %d: %w", lso, err)
		}
	}
	return nil
}

// skipBelow drops leading batches wholly below offset (a leader may answer
// from the batch holding the fetch offset). A batch straddling it cannot be
// appended as it is: an empty one (compaction merges emptied batches, so the
// leader's may span where our log ends) is cut to start at offset; one with
// records is an error.
func skipBelow(records []byte, offset int64) ([]byte, error) {
	for len(records) > 0 {
		b, rest, ok, err := logstore.NextBatch(records)
		if err != nil {
			return nil, fmt.Errorf("fetched records: %w", err)
		}
		if !ok {
			return nil, fmt.Errorf("fetched records end in a partial batch (%d bytes)", len(records))
		}
		if b.NextOffset() > offset {
			if b.BaseOffset() < offset {
				e, err := logstore.EmptyBatchFrom(b, offset)
				if err != nil {
					return nil, fmt.Errorf("fetched batch [%d, %d] straddles the fetch offset %d: %w", b.BaseOffset(), b.LastOffset(), offset, err)
				}
				return append(e, rest...), nil
			}
			return records, nil
		}
		records = rest
	}
	return nil, nil
}

// truncateDiverging cuts our log where the leader's history of the diverging
// epoch ends (Kafka's getOffsetTruncationState): if we know that epoch, to
// the lower of both ends; if not, to the end of our last epoch before it,
// and the next fetch finds the rest. Never to the HW alone.
func (m *Manager) truncateDiverging(p *Partition, d EpochEndOffset) error {
	if d.Epoch < 0 || d.EndOffset < 0 {
		// The leader knows no epoch up to ours: our history is inconsistent
		// with the metadata. Truncating everything could lose committed data;
		// wait for the metadata to change instead.
		return fmt.Errorf("leader knows no epoch up to the last fetched one (answered %d at %d)", d.Epoch, d.EndOffset)
	}
	leo := p.log.LogEndOffset()
	target := d.EndOffset
	if fe, fend := p.log.EndOffsetForEpoch(d.Epoch); fe != logstore.UndefinedEpoch && fend >= 0 {
		if fe == d.Epoch {
			target = min(fend, d.EndOffset)
		} else {
			target = fend
		}
	}
	target = min(target, leo)
	if target >= leo {
		return fmt.Errorf("leader reports a divergence at epoch %d offset %d, but our log ends at %d", d.Epoch, d.EndOffset, leo)
	}
	end, err := p.log.Truncate(target)
	if err != nil {
		return fmt.Errorf("truncate to %d (diverging epoch %d ends at %d): %w", target, d.Epoch, d.EndOffset, err)
	}
	m.opts.Logger.Info("truncated a divergent log tail", "topic", p.Topic, "partition", p.Index,
		"from", leo, "to", end, "diverging_epoch", d.Epoch, "leader_end_offset", d.EndOffset)
	if p.clampHW(end) {
		m.opts.Logger.Warn("truncation went below the high watermark", "topic", p.Topic, "partition", p.Index, "log_end", end)
	}
	return nil
}
