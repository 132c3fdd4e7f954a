package replication

import (
	"context"
	"errors"
	"slices"
	"time"

	"weir/logstore"
)

// maxFetchWait bounds a follower's long poll whatever it asks for.
const maxFetchWait = time.Minute

// isrRetryBackoff paces the ISR expansions that follower fetches trigger
// after the controller refused one (fetches come many times a second).
const isrRetryBackoff = time.Second

// HandleFetch answers a follower's fetch (the server's node-to-node fetch
// endpoint calls it). For each partition this node must lead it in the
// follower's leader epoch; then the follower's last fetched epoch is checked
// against this log's epoch history (a divergence is answered with the epoch
// and end offset to truncate to), and batches from the fetch offset are
// returned, up to what this leader serves (its durable end with fsync
// always), MaxBytes in total. The fetch offset is the follower's log end: it
// moves the follower's caught-up time and the HW. With nothing to return the
// call waits up to MaxWaitMs for an append, or until ctx ends.
func (m *Manager) HandleFetch(ctx context.Context, req FetchRequest) FetchResponse {
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = m.opts.FetchMaxBytes
	}
	minBytes := max(1, int(req.MinBytes))
	wait := min(time.Duration(max(req.MaxWaitMs, 0))*time.Millisecond, maxFetchWait)
	parts := make([]*Partition, len(req.Partitions))
	wake := make(chan struct{}, 1)
	for i, fp := range req.Partitions {
		if p, ok := m.Partition(fp.Topic, fp.Partition); ok {
			parts[i] = p
			// Registered before the first look, so an append between the look
			// and the wait is not missed.
			p.addWaiter(wake)
			defer p.removeWaiter(wake)
		}
	}
	var timeout <-chan time.Time
	for {
		resp, ready := m.fetchOnce(req, parts, maxBytes, minBytes)
		if ready || wait <= 0 {
			return resp
		}
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-wake:
		case <-timeout:
			resp, _ = m.fetchOnce(req, parts, maxBytes, minBytes) // with the latest HW
			return resp
		case <-ctx.Done():
			return resp
		case <-m.ctx.Done():
			return resp
		}
	}
}

// fetchOnce answers every partition once; ready is true when the answer
// should go now (enough bytes, an error or a divergence to report).
func (m *Manager) fetchOnce(req FetchRequest, parts []*Partition, maxBytes, minBytes int) (FetchResponse, bool) {
	resp := FetchResponse{Partitions: make([]FetchPartitionResult, len(req.Partitions))}
	total, ready := 0, false
	now := m.opts.Now()
	for i, fp := range req.Partitions {
		p := parts[i]
		if p == nil {
			resp.Partitions[i] = FetchPartitionResult{Topic: fp.Topic, Partition: fp.Partition,
				Error: ErrCodeUnknownTopicOrPartition, HighWatermark: -1, LogStartOffset: -1, LogEndOffset: -1, LeaderEpoch: -1}
			ready = true
			continue
		}
		res, expand := p.serveFetch(fp, req.ReplicaID, req.ReplicaEpoch, maxBytes-total, total == 0, now)
		resp.Partitions[i] = res
		total += len(res.Records)
		if res.Error != "" || res.DivergingEpoch != nil {
			ready = true
		}
		if expand {
			m.requestISRChange(p, now, true)
		}
	}
	return resp, ready || total >= minBytes
}

// serveFetch answers one partition of a follower's fetch. budget is what the
// response may still carry; only the first data of a response may be one
// batch larger than that (so a big batch is never stuck). expand tells the
// caller the follower has just become eligible to join the ISR.
func (p *Partition) serveFetch(fp FetchPartition, replica int32, brokerEpoch int64, budget int, first bool, now time.Time) (res FetchPartitionResult, expand bool) {
	res = FetchPartitionResult{Topic: fp.Topic, Partition: fp.Partition, HighWatermark: -1, LogStartOffset: -1, LogEndOffset: -1}
	p.mu.Lock()
	epoch, leader := p.leaderEpoch, p.leader
	res.LeaderEpoch = epoch
	switch {
	case !p.known:
		res.Error = ErrCodeNotLeaderOrFollower
	case p.Offline() != nil: // as Kafka's offline partitions: nothing is served from a failed log
		res.Error = ErrCodeKafkaStorageError
	case fp.LeaderEpoch < epoch: // as Kafka: the epoch is checked before the role
		res.Error = ErrCodeFencedLeaderEpoch
	case fp.LeaderEpoch > epoch:
		res.Error = ErrCodeUnknownLeaderEpoch
	case !leader, replica == p.self, !slices.Contains(p.replicas, replica):
		res.Error = ErrCodeNotLeaderOrFollower
	}
	if res.Error == "" {
		fs := p.followerLocked(replica)
		if brokerEpoch < fs.brokerEpoch {
			res.Error = ErrCodeStaleBrokerEpoch
		} else {
			fs.brokerEpoch = brokerEpoch
		}
	}
	p.mu.Unlock()
	if res.Error != "" {
		return res, false
	}

	// What we serve ends at the committed end; read it before the data so the
	// caught-up bookkeeping never credits the follower with more than it saw.
	end := p.committedEnd()
	res.HighWatermark, res.LogStartOffset, res.LogEndOffset = p.hw.Load(), p.log.LogStartOffset(), end
	if fp.LastFetchedEpoch >= 0 {
		de, dend := p.endOffsetForEpoch(fp.LastFetchedEpoch, epoch)
		if de != fp.LastFetchedEpoch || dend < fp.FetchOffset {
			// The follower's log diverges: it truncates and asks again. Its
			// fetch offset is not its log end in our history, so it is not
			// recorded (as Kafka).
			res.DivergingEpoch = &EpochEndOffset{Epoch: de, EndOffset: dend}
			return res, false
		}
	}
	if leo := p.log.LogEndOffset(); fp.FetchOffset < res.LogStartOffset || fp.FetchOffset > leo {
		res.Error = ErrCodeOffsetOutOfRange
		return res, false
	}
	if budget > 0 {
		rr, err := p.log.Read(fp.FetchOffset, budget, end)
		switch {
		case errors.Is(err, logstore.ErrOffsetOutOfRange): // retention moved the start meanwhile
			res.Error, res.LogStartOffset = ErrCodeOffsetOutOfRange, rr.LogStartOffset
			return res, false
		case err != nil:
			res.Error = ErrCodeKafkaStorageError
			return res, false
		}
		if first || len(rr.Data) <= budget {
			res.Records = rr.Data
		}
	}
	expand = p.recordFetch(replica, epoch, fp.FetchOffset, end, now)
	p.updateHW()
	res.HighWatermark = p.hw.Load()
	return res, expand
}

// followerLocked returns the state of a follower, creating it unknown.
func (p *Partition) followerLocked(r int32) *followerState {
	fs := p.followers[r]
	if fs == nil {
		fs = &followerState{leo: -1, lastFetchLeaderEnd: -1}
		p.followers[r] = fs
	}
	return fs
}

// recordFetch is Kafka's updateFollowerFetchState: the fetch offset is the
// follower's log end, and it was caught up now if it reached our end, or at
// its previous fetch if it reached our end as of then. It reports whether the
// follower, out of the ISR, may now join it.
func (p *Partition) recordFetch(replica, epoch int32, fetchOffset, leaderEnd int64, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.leader || p.leaderEpoch != epoch {
		return false // the role changed since the checks: this fetch says nothing now
	}
	fs := p.followerLocked(replica)
	switch {
	case fetchOffset >= leaderEnd:
		fs.lastCaughtUp = laterOf(fs.lastCaughtUp, now)
	case fs.lastFetchLeaderEnd >= 0 && fetchOffset >= fs.lastFetchLeaderEnd:
		fs.lastCaughtUp = laterOf(fs.lastCaughtUp, fs.lastFetch)
	}
	fs.lastFetchLeaderEnd, fs.lastFetch, fs.leo = leaderEnd, now, fetchOffset
	return p.pending == nil && !slices.Contains(p.isr, replica) && p.eligibleLocked(fs) &&
		(p.isrFailedAt.IsZero() || now.Sub(p.isrFailedAt) >= isrRetryBackoff)
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// eligibleLocked is the ISR expansion rule: the follower's log end reached
// the HW and the start of this leader's epoch.
func (p *Partition) eligibleLocked(fs *followerState) bool {
	return fs.leo >= 0 && fs.leo >= p.hw.Load() && fs.leo >= p.epochStart
}

// inSyncLocked is Kafka's isCaughtUp: at our end, or caught up within the lag time.
func (p *Partition) inSyncLocked(fs *followerState, leaderEnd int64, now time.Time) bool {
	return fs.leo == leaderEnd || now.Sub(fs.lastCaughtUp) <= p.lagMax
}

// endOffsetForEpoch answers "where did epoch end in your history" for the
// divergence check. The log records an epoch only with its first batch, while
// Kafka's leader records its epoch when elected; until this leader appended,
// answer as if it had (its epoch starting at the log end), so a follower
// holding batches of an epoch between our last one and the current one is
// told where our last one ended instead of getting "unknown".
func (p *Partition) endOffsetForEpoch(epoch, current int32) (int32, int64) {
	leo := p.log.LogEndOffset() // before the epoch: a concurrent append only adds a newer epoch
	latest := p.log.LatestEpoch()
	if latest < current && epoch > latest && epoch <= current {
		if epoch == current || latest == logstore.UndefinedEpoch {
			return epoch, leo
		}
		return latest, leo
	}
	return p.log.EndOffsetForEpoch(epoch)
}

// CheckISR is the periodic ISR maintenance the server runs (Kafka runs it
// every replica.lag.time.max.ms / 2): for each partition this node leads, a
// follower in the ISR that has not caught up for replica.lag.time.max.ms is
// dropped, else followers that caught up (log end >= HW and >= the start of
// this leader's epoch) are added. The change goes to the controller through
// the ISRChanger, at most one in flight per partition; it returns at once.
func (m *Manager) CheckISR(now time.Time) {
	for _, p := range m.Partitions() {
		m.requestISRChange(p, now, false)
	}
}

// requestISRChange computes the ISR p should have and, if it differs and no
// change is in flight, sends it to the controller in the background.
// onlyExpand is the fetch path's check (a shrink waits for CheckISR).
func (m *Manager) requestISRChange(p *Partition, now time.Time, onlyExpand bool) {
	if m.opts.ISRChanger == nil {
		return
	}
	if p.Offline() != nil {
		// Its followers get errors now and would look lagging: a shrink to
		// this replica alone would leave the partition to a failed log. The
		// controller moves the leadership instead (the node reports it).
		return
	}
	p.mu.Lock()
	if !p.leader || p.pending != nil || !slices.Contains(p.isr, p.self) {
		p.mu.Unlock()
		return
	}
	end := p.committedEnd()
	var isr []int32
	if !onlyExpand {
		for _, r := range p.isr {
			if fs := p.followers[r]; r == p.self || fs == nil || p.inSyncLocked(fs, end, now) {
				isr = append(isr, r)
			}
		}
	}
	if onlyExpand || len(isr) == len(p.isr) { // nothing to drop: look for followers to add
		isr = slices.Clone(p.isr)
		for _, r := range p.replicas {
			if fs := p.followers[r]; fs != nil && r != p.self && !slices.Contains(isr, r) && p.eligibleLocked(fs) {
				isr = append(isr, r)
			}
		}
	}
	if slices.Equal(isr, p.isr) {
		p.mu.Unlock()
		return
	}
	p.isrSeq++
	change := &isrChange{seq: p.isrSeq, isr: isr}
	p.pending = change
	req := AlterPartitionRequest{Topic: p.Topic, Partition: p.Index, Leader: p.self,
		LeaderEpoch: p.leaderEpoch, PartitionEpoch: p.partitionEpoch, ISR: slices.Clone(isr)}
	p.mu.Unlock()
	// A pending expansion counts toward the HW at once: recompute.
	p.updateHW()
	started := m.goBackground(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, m.opts.AlterPartitionTimeout)
		defer cancel()
		newISR, le, pe, err := m.opts.ISRChanger.AlterPartition(ctx, req)
		if err != nil && ctx.Err() == nil {
			m.opts.Logger.Warn("ISR change refused", "topic", req.Topic, "partition", req.Partition,
				"isr", req.ISR, "leader_epoch", req.LeaderEpoch, "partition_epoch", req.PartitionEpoch, "err", err)
		}
		p.finishISRChange(change, newISR, le, pe, err, m.opts.Now())
	})
	if !started {
		p.finishISRChange(change, nil, 0, 0, context.Canceled, m.opts.Now())
	}
}

// finishISRChange ends an AlterPartition: on success the committed ISR is
// applied at once (the metadata brings the same state later; setState then
// ignores anything older); in any case the pending change is over.
func (p *Partition) finishISRChange(change *isrChange, newISR []int32, leaderEpoch, partitionEpoch int32, err error, now time.Time) {
	p.mu.Lock()
	if p.pending == change {
		p.pending = nil
	}
	if err != nil {
		p.isrFailedAt = now
	} else {
		p.isrFailedAt = time.Time{}
		if p.leader && leaderEpoch == p.leaderEpoch && partitionEpoch > p.partitionEpoch && len(newISR) > 0 {
			p.isr, p.partitionEpoch = slices.Clone(newISR), partitionEpoch
		}
	}
	p.mu.Unlock()
	p.updateHW() // a committed shrink may let the HW move
}
