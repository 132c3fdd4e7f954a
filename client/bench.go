package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BodyType is how a produce bench encodes its requests.
type BodyType string

// Body types of a produce bench.
const (
	BodyJSON   BodyType = "json"   // {"records":[{"value":"..."},...]}
	BodyNDJSON BodyType = "ndjson" // one {"value":"..."} per line
	BodyText   BodyType = "text"   // one value per line
	BodyOctet  BodyType = "octet"  // the body is the value (Batch must be 1)
)

// Bench defaults, taken by zero BenchOptions fields.
const (
	DefaultBenchRecordSize = 100
	DefaultBenchMaxErrors  = 100
)

// BenchOptions configure BenchProduce and BenchConsume. Zero fields take
// defaults.
type BenchOptions struct {
	Topic string
	// Records to send; for a consume bench, to read (0 = every record below
	// the high watermarks).
	Records int
	// RecordSize is the size of each produced value (default 100 bytes).
	RecordSize int
	// Batch is records per request: per produce, or the limit of a fetch
	// (default 1 for produce, 500 for consume).
	Batch int
	// Concurrency is the number of requests in flight (default 1).
	Concurrency int
	// Acks of a produce bench ("" = the server's default, all).
	Acks string
	// Partition, when set, produces to / reads from that partition only.
	Partition *int32
	// BodyType of a produce bench (default json).
	BodyType BodyType
	// Encoding of a consume bench ("" = the server's default).
	Encoding string
	// MaxBytes of each fetch of a consume bench (0 = the server's default).
	MaxBytes int
	// MaxErrors stops the bench once that many requests failed
	// (0 = DefaultBenchMaxErrors, negative = never).
	MaxErrors int
	// Progress, when set, is called about every ProgressInterval (default
	// 1s) from a goroutine the bench owns; it is not called once the bench
	// has returned.
	Progress         func(BenchProgress)
	ProgressInterval time.Duration
}

// BenchProgress is a progress report: totals so far and the last interval.
type BenchProgress struct {
	Op            string        `json:"op"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	Records       int64         `json:"records"`
	Bytes         int64         `json:"bytes"`
	Requests      int64         `json:"requests"`
	Errors        int64         `json:"errors"`
	WindowRecords int64         `json:"window_records"`
	RecordsPerSec float64       `json:"records_per_sec"` // over the interval
	MBPerSec      float64       `json:"mb_per_sec"`      // over the interval
	AvgLatency    time.Duration `json:"avg_latency_ns"`  // over the interval
	MaxLatency    time.Duration `json:"max_latency_ns"`  // over the interval
}

// String is a line like kafka-producer-perf-test's.
func (p BenchProgress) String() string {
	return fmt.Sprintf("%d records %s, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency.",
		p.WindowRecords, opVerb(p.Op), p.RecordsPerSec, p.MBPerSec, ms(p.AvgLatency), ms(p.MaxLatency))
}

// BenchResult is the outcome of a bench. Requests counts successful requests,
// Errors failed ones; Records and Bytes (record values) count what
// successful requests carried. Latencies are per successful request,
// retries included.
type BenchResult struct {
	Op             string        `json:"op"` // produce | consume
	BodyType       BodyType      `json:"body_type,omitempty"`
	Batch          int           `json:"batch"`
	Concurrency    int           `json:"concurrency"`
	Records        int64         `json:"records"`
	Bytes          int64         `json:"bytes"`
	Requests       int64         `json:"requests"`
	Errors         int64         `json:"errors"`
	Elapsed        time.Duration `json:"elapsed_ns"`
	RecordsPerSec  float64       `json:"records_per_sec"`
	MBPerSec       float64       `json:"mb_per_sec"`
	RequestsPerSec float64       `json:"requests_per_sec"`
	LatencyAvg     time.Duration `json:"latency_avg_ns"`
	LatencyMax     time.Duration `json:"latency_max_ns"`
	LatencyP50     time.Duration `json:"latency_p50_ns"`
	LatencyP99     time.Duration `json:"latency_p99_ns"`
	LatencyP999    time.Duration `json:"latency_p999_ns"`
}

// String is a one-paragraph summary like kafka-producer-perf-test's.
func (r BenchResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d records %s in %d requests (", r.Records, opVerb(r.Op), r.Requests)
	if r.BodyType != "" {
		fmt.Fprintf(&b, "%s bodies, ", r.BodyType)
	}
	fmt.Fprintf(&b, "batch %d, concurrency %d) in %.2f s, %.1f records/sec (%.2f MB/sec), %.1f requests/sec, "+
		"%.2f ms avg latency, %.2f ms max latency, %.2f ms 50th, %.2f ms 99th, %.2f ms 99.9th; %d failed requests.",
		r.Batch, r.Concurrency, r.Elapsed.Seconds(), r.RecordsPerSec, r.MBPerSec, r.RequestsPerSec,
		ms(r.LatencyAvg), ms(r.LatencyMax), ms(r.LatencyP50), ms(r.LatencyP99), ms(r.LatencyP999), r.Errors)
	return b.String()
}

func opVerb(op string) string {
	if op == "consume" {
		return "read"
	}
	return "sent"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

const mib = 1 << 20

// benchStats is shared by the workers of a bench; its counters are atomic.
type benchStats struct {
	records, bytes, requests, errors atomic.Int64
	windowLatSum, windowLatN         atomic.Int64
	windowLatMax                     atomic.Int64
	hist                             histogram

	maxErrors int64
	abort     context.CancelFunc
	errOnce   sync.Once
	firstErr  error
}

func (s *benchStats) ok(records, bytes int64, lat time.Duration) {
	s.records.Add(records)
	s.bytes.Add(bytes)
	s.requests.Add(1)
	s.hist.record(lat)
	s.windowLatSum.Add(int64(lat))
	s.windowLatN.Add(1)
	for cur := s.windowLatMax.Load(); int64(lat) > cur && !s.windowLatMax.CompareAndSwap(cur, int64(lat)); cur = s.windowLatMax.Load() {
	}
}

func (s *benchStats) fail(err error) {
	s.errOnce.Do(func() { s.firstErr = err })
	if n := s.errors.Add(1); s.maxErrors > 0 && n >= s.maxErrors {
		s.abort()
	}
}

// runBench runs workers until they return, reporting progress meanwhile.
func runBench(ctx context.Context, o BenchOptions, op string, workers int,
	work func(ctx context.Context, s *benchStats)) (BenchResult, error) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &benchStats{abort: cancel, maxErrors: int64(o.MaxErrors)}
	start := time.Now()

	var progress sync.WaitGroup
	stopProgress := make(chan struct{})
	if o.Progress != nil {
		progress.Go(func() { s.reportProgress(op, start, o.ProgressInterval, o.Progress, stopProgress) })
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { work(runCtx, s) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProgress)
	progress.Wait()

	r := BenchResult{
		Op: op, Batch: o.Batch, Concurrency: o.Concurrency,
		Records: s.records.Load(), Bytes: s.bytes.Load(), Requests: s.requests.Load(), Errors: s.errors.Load(),
		Elapsed:    elapsed,
		LatencyAvg: s.hist.mean(), LatencyMax: s.hist.maxValue(),
		LatencyP50: s.hist.quantile(0.50), LatencyP99: s.hist.quantile(0.99), LatencyP999: s.hist.quantile(0.999),
	}
	if secs := elapsed.Seconds(); secs > 0 {
		r.RecordsPerSec = float64(r.Records) / secs
		r.MBPerSec = float64(r.Bytes) / mib / secs
		r.RequestsPerSec = float64(r.Requests) / secs
	}
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("%s bench interrupted: %w", op, ctx.Err())
	case s.maxErrors > 0 && r.Errors >= s.maxErrors:
		return r, fmt.Errorf("%s bench stopped after %d failed requests; the first: %w", op, r.Errors, s.firstErr)
	case r.Errors > 0:
		return r, fmt.Errorf("%s bench: %d failed requests; the first: %w", op, r.Errors, s.firstErr)
	}
	return r, nil
}

func (s *benchStats) reportProgress(op string, start time.Time, interval time.Duration, fn func(BenchProgress), stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last, lastRecords, lastBytes := start, int64(0), int64(0)
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			p := BenchProgress{Op: op, Elapsed: now.Sub(start), Records: s.records.Load(), Bytes: s.bytes.Load(),
				Requests: s.requests.Load(), Errors: s.errors.Load()}
			p.WindowRecords = p.Records - lastRecords
			if secs := now.Sub(last).Seconds(); secs > 0 {
				p.RecordsPerSec = float64(p.WindowRecords) / secs
				p.MBPerSec = float64(p.Bytes-lastBytes) / mib / secs
			}
			if n := s.windowLatN.Swap(0); n > 0 {
				p.AvgLatency = time.Duration(s.windowLatSum.Swap(0) / n)
			}
			p.MaxLatency = time.Duration(s.windowLatMax.Swap(0))
			last, lastRecords, lastBytes = now, p.Records, p.Bytes
			fn(p)
		}
	}
}

func (o *BenchOptions) defaults(batch int) error {
	if o.Topic == "" {
		return errors.New("bench: no topic")
	}
	if o.Records < 0 || o.RecordSize < 0 || o.Batch < 0 || o.Concurrency < 0 || o.MaxBytes < 0 || o.ProgressInterval < 0 {
		return fmt.Errorf("bench: negative option in %+v", *o)
	}
	if o.RecordSize == 0 {
		o.RecordSize = DefaultBenchRecordSize
	}
	if o.Batch == 0 {
		o.Batch = batch
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.MaxErrors == 0 {
		o.MaxErrors = DefaultBenchMaxErrors
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = time.Second
	}
	return nil
}

// BenchProduce sends o.Records records of o.RecordSize random printable bytes
// in requests of o.Batch records, o.Concurrency at a time, and measures
// throughput and per-request latency. The request bodies are built once
// before the clock starts. It returns the result so far with an error when
// ctx ends or requests failed.
func BenchProduce(ctx context.Context, c *Client, o BenchOptions) (BenchResult, error) {
	if err := o.defaults(1); err != nil {
		return BenchResult{}, err
	}
	if o.Records == 0 {
		return BenchResult{}, errors.New("bench: no records to produce")
	}
	if o.BodyType == "" {
		o.BodyType = BodyJSON
	}
	contentType, err := benchContentType(o.BodyType, o.Batch)
	if err != nil {
		return BenchResult{}, err
	}
	path, err := producePath(o.Topic, o.Partition)
	if err != nil {
		return BenchResult{}, err
	}
	rawQuery := produceQuery(o.Acks, 0).Encode()

	nReq := (o.Records + o.Batch - 1) / o.Batch
	bodies, tail := benchBodies(o, nReq)
	tailRecords := o.Records - (nReq-1)*o.Batch
	var next atomic.Int64
	work := func(ctx context.Context, s *benchStats) {
		for {
			i := int(next.Add(1) - 1)
			if i >= nReq || ctx.Err() != nil {
				return
			}
			body, n := bodies[i%len(bodies)], o.Batch
			if i == nReq-1 && tail != nil {
				body, n = tail, tailRecords
			}
			start := time.Now()
			resp, err := c.do(ctx, produceCall(path, rawQuery, bytesSource(contentType, body)))
			if err != nil {
				if ctx.Err() == nil {
					s.fail(err)
				}
				continue
			}
			discardBody(resp)
			s.ok(int64(n), int64(n)*int64(o.RecordSize), time.Since(start))
		}
	}
	r, err := runBench(ctx, o, "produce", min(o.Concurrency, nReq), work)
	r.BodyType = o.BodyType
	return r, err
}

func benchContentType(t BodyType, batch int) (string, error) {
	switch t {
	case BodyJSON:
		return ContentTypeJSON, nil
	case BodyNDJSON:
		return ContentTypeNDJSON, nil
	case BodyText:
		return ContentTypeText, nil
	case BodyOctet:
		if batch != 1 {
			return "", fmt.Errorf("bench: an octet-stream body holds one record; batch is %d", batch)
		}
		return ContentTypeOctet, nil
	}
	return "", fmt.Errorf("bench: unknown body type %q (want json, ndjson, text or octet)", t)
}

// benchMaxBodyBytes bounds the memory of pre-built bodies.
const benchMaxBodyBytes = 64 << 20

// benchBodies builds up to 16 distinct bodies of o.Batch records, and the
// body of the last, shorter, batch when Records is not a multiple of Batch.
func benchBodies(o BenchOptions, nReq int) (bodies [][]byte, tail []byte) {
	full := min(nReq, o.Records/o.Batch)
	n := min(full, 16, max(1, benchMaxBodyBytes/max(1, o.Batch*(o.RecordSize+16))))
	value := make([]byte, o.RecordSize)
	for range n {
		bodies = append(bodies, benchBody(o.BodyType, o.Batch, value))
	}
	if rest := o.Records % o.Batch; rest != 0 {
		tail = benchBody(o.BodyType, rest, value)
		if len(bodies) == 0 {
			bodies = append(bodies, tail) // only one request, the short one
		}
	}
	return bodies, tail
}

// benchBody encodes records of random printable ASCII values, without '"'
// and '\\' so that a value is a JSON string as it is.
func benchBody(t BodyType, records int, value []byte) []byte {
	const chars = " !#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~"
	var b bytes.Buffer
	if t == BodyJSON {
		b.WriteString(`{"records":[`)
	}
	for i := range records {
		for j := range value {
			value[j] = chars[rand.N(len(chars))]
		}
		switch t {
		case BodyJSON:
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"value":"`)
			b.Write(value)
			b.WriteString(`"}`)
		case BodyNDJSON:
			b.WriteString(`{"value":"`)
			b.Write(value)
			b.WriteString("\"}\n")
		case BodyText:
			b.Write(value)
			b.WriteByte('\n')
		case BodyOctet:
			b.Write(value)
		}
	}
	if t == BodyJSON {
		b.WriteString(`]}`)
	}
	return b.Bytes()
}

// consumeChunk is a range of offsets [from, to) of one partition for one
// reader to fetch.
type consumeChunk struct {
	partition int32
	from, to  int64
}

// BenchConsume reads o.Records records (0 = all) below the high watermarks of
// every partition of o.Topic (or of o.Partition), spreading them evenly over
// the partitions, with o.Concurrency readers fetching o.Batch records per
// request. Each partition's range is cut into chunks that readers take in
// turn, so readers outnumbering partitions still all work. It fails at once
// when the topic holds fewer records than asked.
func BenchConsume(ctx context.Context, c *Client, o BenchOptions) (BenchResult, error) {
	if err := o.defaults(500); err != nil {
		return BenchResult{}, err
	}
	offs, err := c.TopicOffsets(ctx, o.Topic, nil)
	if err != nil {
		return BenchResult{}, fmt.Errorf("consume bench: %w", err)
	}
	chunks, err := planConsume(offs.Partitions, o)
	if err != nil {
		return BenchResult{}, err
	}
	base := ConsumeOptions{MaxBytes: o.MaxBytes, Encoding: o.Encoding}
	var next atomic.Int64
	work := func(ctx context.Context, s *benchStats) {
		for {
			i := int(next.Add(1) - 1)
			if i >= len(chunks) {
				return
			}
			benchReadChunk(ctx, c, o.Topic, chunks[i], o.Batch, base, s)
		}
	}
	return runBench(ctx, o, "consume", min(o.Concurrency, max(1, len(chunks))), work)
}

// planConsume spreads the records to read over the partitions (water-filling:
// equal shares, a partition with fewer records gives its share to the others)
// and cuts each partition's range into chunks.
func planConsume(parts []PartitionOffsets, o BenchOptions) ([]consumeChunk, error) {
	var sel []PartitionOffsets
	var available int64
	for _, p := range parts {
		if o.Partition != nil && p.Partition != *o.Partition {
			continue
		}
		sel = append(sel, p)
		available += max(0, p.HighWatermark-p.LogStartOffset)
	}
	if o.Partition != nil && len(sel) == 0 {
		return nil, fmt.Errorf("consume bench: topic %q has no partition %d", o.Topic, *o.Partition)
	}
	want := int64(o.Records)
	if want == 0 {
		want = available
	}
	if want > available {
		return nil, fmt.Errorf("consume bench: topic %q holds %d records below its high watermarks, fewer than the %d asked for",
			o.Topic, available, want)
	}
	if want == 0 {
		return nil, fmt.Errorf("consume bench: topic %q holds no records", o.Topic)
	}
	quota := make([]int64, len(sel))
	for left := want; left > 0; {
		open := 0
		for i, p := range sel {
			if quota[i] < p.HighWatermark-p.LogStartOffset {
				open++
			}
		}
		share := max(1, left/int64(open))
		for i, p := range sel {
			take := min(share, p.HighWatermark-p.LogStartOffset-quota[i], left)
			if take > 0 {
				quota[i] += take
				left -= take
			}
		}
	}
	batch := int64(o.Batch)
	chunkLen := max(batch, (want+int64(o.Concurrency)*4-1)/(int64(o.Concurrency)*4))
	chunkLen = (chunkLen + batch - 1) / batch * batch
	var chunks []consumeChunk
	for i, p := range sel {
		for from, end := p.LogStartOffset, p.LogStartOffset+quota[i]; from < end; from += chunkLen {
			chunks = append(chunks, consumeChunk{partition: p.Partition, from: from, to: min(from+chunkLen, end)})
		}
	}
	return chunks, nil
}

// benchPage is the part of a consume reply the bench needs.
type benchPage struct {
	Records []struct {
		Offset   int64           `json:"offset"`
		Value    json.RawMessage `json:"value"`
		ValueB64 string          `json:"value_b64"`
	} `json:"records"`
	NextOffset int64 `json:"next_offset"`
}

func benchReadChunk(ctx context.Context, c *Client, topic string, ch consumeChunk, batch int, base ConsumeOptions, s *benchStats) {
	path := consumePath(topic, ch.partition)
	for off := ch.from; off < ch.to; {
		if ctx.Err() != nil {
			return
		}
		opts := base
		opts.Offset, opts.Limit = OffsetAt(off), int(min(int64(batch), ch.to-off))
		start := time.Now()
		var page benchPage
		_, err := c.doJSON(ctx, &call{method: http.MethodGet, path: path, rawQuery: opts.query().Encode(), read: true}, &page)
		lat := time.Since(start)
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("consume %s-%d at offset %d: %w", topic, ch.partition, off, err))
			}
			return
		}
		var n, size int64
		for _, r := range page.Records {
			if r.Offset >= off && r.Offset < ch.to {
				n++
				size += payloadLen(r.Value, r.ValueB64)
			}
		}
		if page.NextOffset <= off {
			s.fail(fmt.Errorf("consume %s-%d at offset %d: no progress (next_offset %d)", topic, ch.partition, off, page.NextOffset))
			return
		}
		s.ok(n, size, lat)
		off = page.NextOffset
	}
}

// payloadLen estimates the size of a consumed value: a JSON string's
// content, other JSON's text, or the decoded size of value_b64.
func payloadLen(v json.RawMessage, b64 string) int64 {
	switch {
	case b64 != "":
		n := base64.StdEncoding.DecodedLen(len(b64))
		return int64(n - strings.Count(b64[max(0, len(b64)-2):], "="))
	case len(v) >= 2 && v[0] == '"':
		return int64(len(v) - 2)
	case string(v) == "null":
		return 0
	}
	return int64(len(v))
}
