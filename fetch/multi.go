package fetch

import (
	"context"
	"time"
)

// Batches reads stored batches of src from offset, unchanged (one read, see
// Source.Read), for a reader that decodes them elsewhere. The first batch
// may start below offset.
func Batches(src Source, offset int64, maxBytes int) ([]byte, Result, error) {
	rr, hw, err := src.Read(offset, maxBytes)
	out := Result{Next: offset, HighWatermark: hw, LogStartOffset: rr.LogStartOffset}
	if err != nil {
		return nil, out, readError(offset, err)
	}
	out.Next = max(offset, rr.NextOffset)
	return rr.Data, out, nil
}

// Request reads many partitions at once, as Kafka's Fetch does.
type Request struct {
	Partitions []PartitionRequest
	// MaxBytes bounds the batches of the whole answer; only its first
	// batch may exceed it.
	MaxBytes int
	// MaxWait is how long to wait for data while no partition has any.
	MaxWait time.Duration
}

// PartitionRequest is one partition of a Request.
type PartitionRequest struct {
	Topic     string
	Partition int32
	Offset    int64
	// MaxBytes bounds this partition's batches (0: only the request's bound).
	MaxBytes int
}

// PartitionResult is one partition of Fetch's answer: its batches from
// the offset asked for (Result.Next follows them), or why there are none.
// A partition the answer had no room for is left out, unread: no batches,
// no error, HighWatermark and LogStartOffset -1 (so a reader does not take
// it for one read up to its end); it is read on the next Fetch.
type PartitionResult struct {
	Topic     string
	Partition int32
	Batches   []byte
	Result
	Err error
}

// Lookup finds a partition for reading (its leader replica on this node);
// an error says why it cannot be read here.
type Lookup func(topic string, partition int32) (Source, error)

// Fetch reads every partition of req and answers as soon as one has data or
// an error. Until then it waits for changed() to be closed (an append
// became readable somewhere) and looks again, for up to req.MaxWait or
// until ctx ends. changed is taken before each look, so an append between
// the look and the wait is not missed.
func Fetch(ctx context.Context, req Request, lookup Lookup, changed func() <-chan struct{}) []PartitionResult {
	var timeout <-chan time.Time
	for {
		wake := changed()
		out, ready := fetchOnce(req, lookup)
		if ready || req.MaxWait <= 0 {
			return out
		}
		if timeout == nil {
			t := time.NewTimer(req.MaxWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-wake:
		case <-timeout:
			return out
		case <-ctx.Done():
			return out
		}
	}
}

// fetchOnce reads each partition once; ready is true when the answer should
// go now (some data, or an error to report).
func fetchOnce(req Request, lookup Lookup) (out []PartitionResult, ready bool) {
	out = make([]PartitionResult, len(req.Partitions))
	total := 0
	for i, pr := range req.Partitions {
		r := &out[i]
		r.Topic, r.Partition, r.Next, r.HighWatermark, r.LogStartOffset = pr.Topic, pr.Partition, pr.Offset, -1, -1
		budget := req.MaxBytes - total
		if pr.MaxBytes > 0 {
			budget = min(budget, pr.MaxBytes)
		}
		if budget <= 0 {
			continue // the answer is full: this partition's turn comes next time
		}
		src, err := lookup(pr.Topic, pr.Partition)
		if err != nil {
			r.Err, ready = err, true
			continue
		}
		data, res, err := Batches(src, pr.Offset, budget)
		r.Result, r.Err = res, err
		if err != nil {
			ready = true
			continue
		}
		if total > 0 && len(data) > budget { // only the answer's first batch may exceed the bound
			r.Result = Result{Next: pr.Offset, HighWatermark: -1, LogStartOffset: -1} // left out, as above
			continue
		}
		r.Batches = data
		total += len(data)
	}
	return out, ready || total > 0
}
