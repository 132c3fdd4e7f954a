//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"weir/client"
)

// Workload drives the cluster with client operations, recording each one
// (with its invoke and complete times and outcome) in the Env's Recorder.
// Run stops issuing operations once ctx ends or its own bounds are reached,
// and returns when its last operation has completed; operations in flight
// are bounded by their own timeouts, not by ctx, so their outcome is known
// where the server can tell it.
//
// The consumer groups (groupLoad) are workloads too: their members record
// KindJoin, KindHeartbeat, KindPoll (records carrying Topic and Partition),
// KindCommit, KindLeave and KindFetchCommitted operations with Group,
// MemberID, Generation and Assignments taken from each reply, and the
// checker applies the group rules (one owner per partition and generation,
// polls contiguous within a generation across lost replies, committed
// offsets never going back, no stale commit, every acknowledged write
// received by each group).
type Workload interface {
	Name() string
	Run(ctx context.Context, env *Env)
}

// Env is what a workload runs with.
type Env struct {
	Rec *Recorder
	// Client returns a client of every node for one worker: each worker
	// starts at a different node and goes over the links faults cut.
	Client func(worker int) (*client.Client, error)
	Seed   int64
}

// Timeouts of one workload operation.
const (
	produceServerTimeout = 4 * time.Second // timeout_ms: the server's acks=all wait
	produceOpTimeout     = 8 * time.Second
	consumeOpTimeout     = 5 * time.Second
	consumeWaitMS        = 250
	failureBackoff       = 100 * time.Millisecond
)

// producers write unique values ("<prefix><worker>.<seq>") to random
// partitions of one topic, one request at a time per worker, pinning the
// partition so that a request is one append.
type producers struct {
	topic   TopicSpec
	workers int
	prefix  string
	maxOps  int           // per worker
	pace    time.Duration // between a worker's requests
	maxRecs int           // records per request, at most
}

func (p *producers) Name() string {
	return fmt.Sprintf("producers(%s, acks=%s)", p.topic.Name, p.topic.Acks)
}

func (p *producers) Run(ctx context.Context, env *Env) {
	var wg sync.WaitGroup
	for w := range p.workers {
		cl, err := env.Client(w)
		if err != nil {
			env.Rec.Event(EventHarness, 0, "producer client: %v", err)
			return
		}
		rng := rand.New(rand.NewPCG(uint64(env.Seed), uint64(w)+uint64(len(p.prefix))<<32))
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.work(ctx, env.Rec, cl, w, rng)
		}()
	}
	wg.Wait()
}

func (p *producers) work(ctx context.Context, rec *Recorder, cl *client.Client, w int, rng *rand.Rand) {
	process := fmt.Sprintf("producer-%s-%d", p.topic.Name, w)
	seq := 0
	for range p.maxOps {
		if ctx.Err() != nil {
			return
		}
		n := 1 + rng.IntN(p.maxRecs)
		values := make([]string, n)
		recs := make([]client.ProduceRecord, n)
		for i := range values {
			values[i] = fmt.Sprintf("%s%d.%d", p.prefix, w, seq)
			recs[i] = client.StringValue(values[i])
			seq++
		}
		part := int32(rng.IntN(p.topic.Partitions))
		op := Op{Process: process, Kind: KindProduce, Topic: p.topic.Name, Partition: part, Acks: p.topic.Acks, Values: values}
		var meta client.ResponseMeta
		octx, cancel := context.WithTimeout(client.CaptureMeta(context.WithoutCancel(ctx), &meta), produceOpTimeout)
		op.Invoke = rec.Now()
		resp, err := cl.Produce(octx, p.topic.Name, &part, recs, p.topic.Acks, produceServerTimeout)
		op.Complete = rec.Now()
		cancel()
		op.Outcome, op.Offsets = produceOutcome(resp, err, n)
		op.Node = servedBy(meta.ServedBy, err)
		setError(&op, err)
		rec.Add(op)
		wait := p.pace
		if op.Outcome != OK {
			wait = max(wait, failureBackoff)
		}
		if !sleepCtx(ctx, wait) {
			return
		}
	}
}

// produceOutcome classifies a produce as the API defines it: an error
// promises nothing was written, except REQUEST_TIMED_OUT and
// NOT_ENOUGH_REPLICAS_AFTER_APPEND; a reply that is not the API's, or none
// after the request may have been sent, is unknown. Only a failure to
// connect anywhere proves that nothing was sent.
func produceOutcome(resp *client.ProduceResponse, err error, n int) (Outcome, []int64) {
	if err == nil {
		if resp == nil || len(resp.Offsets) != n {
			return Unknown, nil
		}
		offsets := make([]int64, n)
		for i, o := range resp.Offsets {
			if o.ErrorCode != "" || o.Offset < 0 {
				return Unknown, nil
			}
			offsets[i] = o.Offset
		}
		return OK, offsets
	}
	return errorOutcome(err), nil
}

// errorOutcome classifies a failed call as the API defines it: an error
// reply promises nothing was done, except REQUEST_TIMED_OUT,
// NOT_ENOUGH_REPLICAS_AFTER_APPEND, a gateway timeout and replies that are
// not the API's; no reply after the request may have been sent is unknown.
// Only a failure to connect anywhere proves that nothing was sent.
func errorOutcome(err error) Outcome {
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		switch {
		case apiErr.Code == "", apiErr.Code == client.CodeRequestTimedOut,
			apiErr.Code == client.CodeNotEnoughReplicasAfterAppend, apiErr.Status == 504:
			return Unknown
		}
		return Fail
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return Fail
	}
	return Unknown
}

func servedBy(header string, err error) int {
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		header = apiErr.ServedBy
	}
	n, _ := strconv.Atoi(header)
	return n
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// consumers read every partition of one topic in order, one process per
// partition (an assigned consumer), from offset 0, each read starting at
// the previous reply's next_offset.
type consumers struct {
	topic  TopicSpec
	maxOps int // per partition
}

func (c *consumers) Name() string { return fmt.Sprintf("consumers(%s)", c.topic.Name) }

func (c *consumers) Run(ctx context.Context, env *Env) {
	var wg sync.WaitGroup
	for p := range c.topic.Partitions {
		cl, err := env.Client(100 + p)
		if err != nil {
			env.Rec.Event(EventHarness, 0, "consumer client: %v", err)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(ctx, env.Rec, cl, int32(p))
		}()
	}
	wg.Wait()
}

func (c *consumers) work(ctx context.Context, rec *Recorder, cl *client.Client, p int32) {
	process := fmt.Sprintf("consumer-%s-%d", c.topic.Name, p)
	pos := int64(0)
	for range c.maxOps {
		if ctx.Err() != nil {
			return
		}
		op := readPartition(ctx, rec, cl, process, KindConsume, c.topic.Name, p, pos, 200, consumeWaitMS)
		switch {
		case op.Outcome == OK:
			pos = op.NextOffset
		case op.Error != "" && op.HW >= 0 && op.LogStart >= 0 && (pos < op.LogStart || pos > op.HW):
			// Refused as out of range: move to the bound, as a consumer with
			// auto.offset.reset would (the checker flags the refusal when an
			// earlier reply had shown the position committed).
			to := min(max(pos, op.LogStart), op.HW)
			at := rec.Now()
			rec.Add(Op{Process: process, Kind: KindSeek, Topic: c.topic.Name, Partition: p, Invoke: at, Complete: at,
				Outcome: OK, Offset: to, Error: "reset after OFFSET_OUT_OF_RANGE"})
			pos = to
			fallthrough
		default:
			if !sleepCtx(ctx, failureBackoff) {
				return
			}
		}
	}
}

// readPartition reads one partition from offset and records the read as an
// operation of the given kind. On OFFSET_OUT_OF_RANGE, HW and LogStart hold
// the bounds the reply gave (else -1).
func readPartition(ctx context.Context, rec *Recorder, cl *client.Client, process string, kind Kind, topic string, p int32, offset int64, limit, waitMS int) Op {
	op := Op{Process: process, Kind: kind, Topic: topic, Partition: p, Offset: offset, HW: -1, LogStart: -1}
	var meta client.ResponseMeta
	octx, cancel := context.WithTimeout(client.CaptureMeta(context.WithoutCancel(ctx), &meta), consumeOpTimeout)
	defer cancel()
	op.Invoke = rec.Now()
	resp, err := cl.Consume(octx, topic, p, client.ConsumeOptions{Offset: client.OffsetAt(offset), Limit: limit, WaitMS: waitMS, Encoding: client.EncodingText})
	op.Complete = rec.Now()
	op.Node = servedBy(meta.ServedBy, err)
	if err == nil {
		if op.Records, err = decodeRecords(resp.Records, p); err != nil {
			err = fmt.Errorf("%w: %w", errMalformedReply, err)
		}
		op.NextOffset, op.HW, op.LogStart = resp.NextOffset, resp.HighWatermark, resp.LogStartOffset
	}
	if err != nil {
		op.Outcome, op.Records = Fail, nil
		setError(&op, err)
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Code == client.CodeOffsetOutOfRange {
			if ls, hw, ok := apiErr.OffsetBounds(); ok {
				op.LogStart, op.HW = ls, hw
			}
		}
	} else {
		op.Outcome = OK
	}
	rec.Add(op)
	return op
}

func decodeRecords(in []client.ConsumedRecord, p int32) ([]ReadRecord, error) {
	out := make([]ReadRecord, 0, len(in))
	for _, r := range in {
		v, err := recordValue(r)
		if err != nil {
			return nil, err
		}
		out = append(out, ReadRecord{Partition: p, Offset: r.Offset, Value: v})
	}
	return out, nil
}

// observer records each live node's view of the topics' partitions every
// interval: the checker wants leader epochs that never go back per node,
// and ISRs that hold their leader.
type observer struct {
	c        *cluster
	topics   []TopicSpec
	interval time.Duration
}

func (o *observer) Name() string { return "metadata observer" }

// observerMaxRounds bounds the observer by count as well as by ctx.
const observerMaxRounds = 1_000_000

func (o *observer) Run(ctx context.Context, env *Env) {
	for range observerMaxRounds {
		for _, i := range o.c.live() {
			// One process per incarnation: a restarted node may briefly know
			// less than before it crashed.
			process := fmt.Sprintf("observer-n%d#%d", i, o.c.node(i).incarnationNo())
			for _, ts := range o.topics {
				op := Op{Process: process, Kind: KindMeta, Topic: ts.Name, ObservedBy: i, Invoke: env.Rec.Now()}
				var tp client.Topic
				err := o.c.ctlDo(i, "/v1/topics/"+url.PathEscape(ts.Name), &tp)
				op.Complete = env.Rec.Now()
				if err != nil {
					op.Outcome = Fail
					setError(&op, err)
				} else {
					op.Outcome = OK
					for _, p := range tp.Partitions {
						op.Meta = append(op.Meta, MetaPartition{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
							ISR: p.ISR, Replicas: p.Replicas})
					}
				}
				env.Rec.Add(op)
			}
		}
		if !sleepCtx(ctx, o.interval) {
			return
		}
	}
}
