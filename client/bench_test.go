package client

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	// Every value lies within its bucket's bounds, and buckets tile the range.
	prevHi := uint64(0)
	for i := range histBuckets {
		lo, hi := histBounds(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if histIndex(lo) != i || histIndex(hi) != i {
			t.Fatalf("bucket %d [%d, %d]: index(lo)=%d index(hi)=%d", i, lo, hi, histIndex(lo), histIndex(hi))
		}
		if lo >= histSub && float64(hi-lo)/2 > float64(lo)*0.004 {
			t.Fatalf("bucket %d [%d, %d] is wider than 0.4%% either side of its midpoint", i, lo, hi)
		}
		prevHi = hi
	}
	if prevHi != histMaxValue {
		t.Errorf("last bucket ends at %d, want %d", prevHi, uint64(histMaxValue))
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var empty histogram
	if empty.quantile(0.5) != 0 || empty.mean() != 0 || empty.maxValue() != 0 {
		t.Error("an empty histogram is not all zero")
	}

	// Small values are exact: 1..200 ns, nearest rank.
	var small histogram
	for v := 200; v >= 1; v-- {
		small.record(time.Duration(v))
	}
	for q, want := range map[float64]time.Duration{0: 1, 0.5: 100, 0.99: 198, 0.999: 200, 1: 200} {
		if got := small.quantile(q); got != want {
			t.Errorf("small: quantile(%v) = %d, want %d", q, got, want)
		}
	}
	if small.mean() != 100 || small.maxValue() != 200 || small.count() != 200 {
		t.Errorf("small: mean %d max %d count %d", small.mean(), small.maxValue(), small.count())
	}

	// 1..10000 µs in random order, from 8 goroutines: within 0.4%.
	var h histogram
	vals := rand.Perm(10000)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < len(vals); i += 8 {
				h.record(time.Duration(vals[i]+1) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	for q, want := range map[float64]time.Duration{0.5: 5000 * time.Microsecond, 0.99: 9900 * time.Microsecond, 0.999: 9990 * time.Microsecond} {
		got := h.quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.004 || diff < -0.004 {
			t.Errorf("quantile(%v) = %v, want %v ± 0.4%%", q, got, want)
		}
	}
	if h.quantile(1) != 10*time.Millisecond || h.maxValue() != 10*time.Millisecond {
		t.Errorf("max = %v / %v, want 10ms exactly", h.quantile(1), h.maxValue())
	}

	// A single value is reported as itself, however coarse its bucket.
	var one histogram
	one.record(123456789 * time.Nanosecond)
	if got := one.quantile(0.5); got != 123456789 {
		t.Errorf("single value: p50 = %d", got)
	}
	// Out of range values are clamped, not lost.
	var huge histogram
	huge.record(time.Hour)
	huge.record(-time.Second)
	if huge.count() != 2 || huge.quantile(1) != histMaxValue || huge.quantile(0) != 0 {
		t.Errorf("clamping: count %d max %v min %v", huge.count(), huge.quantile(1), huge.quantile(0))
	}
}

func TestBenchProduceAgainstEcho(t *testing.T) {
	p := int32(3)
	for _, tc := range []struct {
		body    BodyType
		records int
		batch   int
		part    *int32
	}{
		{BodyJSON, 1003, 10, nil},
		{BodyNDJSON, 500, 64, &p},
		{BodyText, 77, 100, nil}, // one short request only
		{BodyOctet, 120, 1, nil},
	} {
		t.Run(string(tc.body), func(t *testing.T) {
			srv := newServer(t, EchoHandler())
			c := newClient(t, []string{srv.URL})
			res, err := BenchProduce(t.Context(), c, BenchOptions{
				Topic: "bench", Records: tc.records, RecordSize: 37, Batch: tc.batch, Concurrency: 4,
				Acks: AcksOne, Partition: tc.part, BodyType: tc.body,
			})
			if err != nil {
				t.Fatalf("BenchProduce: %v", err)
			}
			wantReq := int64((tc.records + tc.batch - 1) / tc.batch)
			if res.Records != int64(tc.records) || res.Bytes != int64(tc.records*37) || res.Requests != wantReq || res.Errors != 0 {
				t.Errorf("result %+v: want %d records, %d bytes, %d requests", res, tc.records, tc.records*37, wantReq)
			}
			if res.BodyType != tc.body || res.Op != "produce" || res.Batch != tc.batch || res.Concurrency != 4 {
				t.Errorf("result %+v does not echo its options", res)
			}
			if !(res.LatencyP50 > 0 && res.LatencyP50 <= res.LatencyP99 && res.LatencyP99 <= res.LatencyP999 &&
				res.LatencyP999 <= res.LatencyMax && res.RecordsPerSec > 0 && res.MBPerSec > 0 && res.RequestsPerSec > 0) {
				t.Errorf("implausible figures: %s", res)
			}
			// The echo handed out one fake offset per record it decoded.
			pr, err := c.Produce(t.Context(), "bench", nil, []ProduceRecord{StringValue("last")}, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			if pr.Offsets[0].Offset != int64(tc.records) {
				t.Errorf("echo counted %d records, want %d", pr.Offsets[0].Offset, tc.records)
			}
		})
	}
}

func TestBenchProduceProgress(t *testing.T) {
	// The first request waits for a progress report, so at least one comes.
	reported := make(chan struct{})
	var once sync.Once
	var returned atomic.Bool
	var reports atomic.Int64
	echo := EchoHandler()
	var first atomic.Bool
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(false, true) {
			select {
			case <-reported:
			case <-r.Context().Done():
				return
			}
		}
		echo.ServeHTTP(w, r)
	}))
	c := newClient(t, []string{srv.URL})
	res, err := BenchProduce(t.Context(), c, BenchOptions{
		Topic: "t", Records: 50, Concurrency: 1, ProgressInterval: time.Millisecond,
		Progress: func(p BenchProgress) {
			if returned.Load() {
				t.Error("progress reported after the bench returned")
			}
			if p.Op != "produce" || p.Elapsed <= 0 || !strings.Contains(p.String(), "records sent") {
				t.Errorf("progress %+v", p)
			}
			reports.Add(1)
			once.Do(func() { close(reported) })
		},
	})
	returned.Store(true)
	if err != nil || res.Records != 50 || res.Bytes != 50*DefaultBenchRecordSize {
		t.Fatalf("BenchProduce = %+v, %v", res, err)
	}
	if reports.Load() == 0 {
		t.Error("no progress report")
	}
}

func TestBenchProduceErrors(t *testing.T) {
	h := &counting{h: func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 400, CodeInvalidRecord, "bad record", false)
	}}
	c := newClient(t, []string{newServer(t, h).URL})
	res, err := BenchProduce(t.Context(), c, BenchOptions{Topic: "t", Records: 100, MaxErrors: 5})
	if err == nil || !IsCode(err, CodeInvalidRecord) || !strings.Contains(err.Error(), "stopped after 5") {
		t.Errorf("err = %v", err)
	}
	if res.Errors != 5 || res.Records != 0 || h.n.Load() != 5 {
		t.Errorf("result %+v after %d requests", res, h.n.Load())
	}
	if _, err := BenchProduce(t.Context(), c, BenchOptions{Topic: "t", Records: 10, Batch: 2, BodyType: BodyOctet}); err == nil {
		t.Error("octet bodies of 2 records accepted")
	}
	if _, err := BenchProduce(t.Context(), c, BenchOptions{Topic: "t", BodyType: "xml", Records: 1}); err == nil {
		t.Error("unknown body type accepted")
	}
}

// fakeLog serves the offsets and consume calls of one topic whose partition
// p holds offsets [start[p], hw[p]) with 4-byte values, and records how many
// times each offset was served.
type fakeLog struct {
	start, hw []int64
	mu        sync.Mutex
	served    map[[2]int64]int
}

func (f *fakeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/offsets") {
		out := TopicOffsets{Topic: "t"}
		for p := range f.start {
			out.Partitions = append(out.Partitions, PartitionOffsets{Partition: int32(p), LogStartOffset: f.start[p],
				HighWatermark: f.hw[p], LogEndOffset: f.hw[p]})
		}
		writeJSON(w, 200, out)
		return
	}
	p, _ := strconv.Atoi(r.PathValue("p"))
	off, err1 := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	limit, err2 := strconv.ParseInt(r.URL.Query().Get("limit"), 10, 64)
	if err1 != nil || err2 != nil || p >= len(f.start) || limit <= 0 {
		writeError(w, 400, CodeInvalidRequest, "bad query "+r.URL.RawQuery, false)
		return
	}
	if off < f.start[p] || off > f.hw[p] {
		writeError(w, 416, CodeOffsetOutOfRange, "out of range", false)
		return
	}
	resp := ConsumeResponse{Topic: "t", Partition: int32(p), HighWatermark: f.hw[p], LogStartOffset: f.start[p]}
	f.mu.Lock()
	for o := off; o < min(off+limit, f.hw[p]); o++ {
		f.served[[2]int64{int64(p), o}]++
		rec := ConsumedRecord{Offset: o, Value: json.RawMessage(`"abcd"`)}
		if o%2 == 1 {
			v := "AAECAw==" // 4 bytes too
			rec = ConsumedRecord{Offset: o, ValueB64: &v}
		}
		resp.Records = append(resp.Records, rec)
	}
	f.mu.Unlock()
	resp.NextOffset = off + int64(len(resp.Records))
	writeJSON(w, 200, resp)
}

func newFakeLog(t *testing.T, start, hw []int64) (*fakeLog, *Client) {
	f := &fakeLog{start: start, hw: hw, served: map[[2]int64]int{}}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/topics/t/offsets", f)
	mux.Handle("GET /v1/topics/t/partitions/{p}/records", f)
	return f, newClient(t, []string{newServer(t, mux).URL})
}

func TestBenchConsume(t *testing.T) {
	start, hw := []int64{0, 10, 5}, []int64{100, 60, 5}
	t.Run("all", func(t *testing.T) {
		f, c := newFakeLog(t, start, hw)
		res, err := BenchConsume(t.Context(), c, BenchOptions{Topic: "t", Batch: 7, Concurrency: 5})
		if err != nil {
			t.Fatalf("BenchConsume: %v", err)
		}
		if res.Records != 150 || res.Bytes != 150*4 || res.Errors != 0 || res.Op != "consume" {
			t.Errorf("result %s", res)
		}
		if !strings.Contains(res.String(), "150 records read") {
			t.Errorf("summary %q", res)
		}
		for p := range start {
			for o := start[p]; o < hw[p]; o++ {
				if n := f.served[[2]int64{int64(p), o}]; n != 1 {
					t.Errorf("offset %d of partition %d served %d times", o, p, n)
				}
			}
		}
		if len(f.served) != 150 {
			t.Errorf("served %d offsets, want 150", len(f.served))
		}
	})
	t.Run("spread", func(t *testing.T) {
		f, c := newFakeLog(t, start, hw)
		res, err := BenchConsume(t.Context(), c, BenchOptions{Topic: "t", Records: 120, Batch: 500, Concurrency: 2})
		if err != nil || res.Records != 120 {
			t.Fatalf("BenchConsume = %s, %v", res, err)
		}
		per := map[int64]int{}
		for k := range f.served {
			per[k[0]]++
		}
		// Equal shares, with partition 1's shortfall given to partition 0.
		if per[0] != 70 || per[1] != 50 || per[2] != 0 {
			t.Errorf("records per partition %v, want 70/50/0", per)
		}
	})
	t.Run("one partition", func(t *testing.T) {
		_, c := newFakeLog(t, start, hw)
		p := int32(1)
		res, err := BenchConsume(t.Context(), c, BenchOptions{Topic: "t", Partition: &p, Batch: 10, Concurrency: 8})
		if err != nil || res.Records != 50 || res.Requests != 5 {
			t.Errorf("BenchConsume = %s, %v", res, err)
		}
	})
	t.Run("too few records", func(t *testing.T) {
		_, c := newFakeLog(t, start, hw)
		if _, err := BenchConsume(t.Context(), c, BenchOptions{Topic: "t", Records: 151}); err == nil ||
			!strings.Contains(err.Error(), "holds 150 records") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestPlanConsume(t *testing.T) {
	parts := []PartitionOffsets{{Partition: 0, LogStartOffset: 0, HighWatermark: 1000}, {Partition: 1, LogStartOffset: 100, HighWatermark: 1100}}
	chunks, err := planConsume(parts, BenchOptions{Topic: "t", Records: 1000, Batch: 30, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	// 1000 records, 16 chunks wanted: 63 rounded up to whole batches = 90.
	var total int64
	for _, ch := range chunks {
		if ch.to-ch.from > 90 || ch.from < parts[ch.partition].LogStartOffset {
			t.Errorf("chunk %+v", ch)
		}
		total += ch.to - ch.from
	}
	if total != 1000 || chunks[0] != (consumeChunk{0, 0, 90}) || chunks[len(chunks)-1].to != 600 {
		t.Errorf("chunks %v", chunks)
	}
}

func TestEchoHandler(t *testing.T) {
	srv := newServer(t, EchoHandler())
	for _, tc := range []struct {
		method, path, ctype, body string
		status, records           int
	}{
		{"POST", "/v1/topics/t/records", "", `{"records":[{"value":"a"},{"key":"k","value":{"x":1}}]}`, 200, 2},
		{"POST", "/v1/topics/t/records", "application/json; charset=utf-8", `{"records":[{"value":"a"}]}`, 200, 1},
		{"POST", "/v1/topics/t/partitions/4/records", ContentTypeNDJSON, "{\"value\":1}\n\n{\"value\":2}", 200, 2},
		{"POST", "/v1/topics/t/records", ContentTypeText, "a\nb\nc\n", 200, 3},
		{"POST", "/v1/topics/t/records", ContentTypeOctet, "\x00\x01", 200, 1},
		{"POST", "/v1/topics/t/records", "", `{"records":[{"value":`, 400, 0},
		{"POST", "/v1/topics/t/records", "", `{"records":[]}`, 400, 0},
		{"POST", "/v1/topics/t/records", "application/xml", `<r/>`, 415, 0},
		{"POST", "/v1/topics/t/partitions/x/records", "", `{"records":[{}]}`, 400, 0},
		{"GET", "/v1/topics/t/records", "", ``, 404, 0},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var pr ProduceResponse
		err = json.NewDecoder(resp.Body).Decode(&pr)
		resp.Body.Close()
		name := fmt.Sprintf("%s %s %q", tc.method, tc.path, tc.body)
		if err != nil || resp.StatusCode != tc.status || resp.Header.Get(HeaderServedBy) != "echo" {
			t.Errorf("%s: status %d, decode %v", name, resp.StatusCode, err)
			continue
		}
		if tc.status != 200 {
			if pr.ErrorCode == "" || pr.Message == "" {
				t.Errorf("%s: error body %+v", name, pr)
			}
			continue
		}
		if len(pr.Offsets) != tc.records {
			t.Errorf("%s: %d offsets, want %d", name, len(pr.Offsets), tc.records)
		}
		for i, o := range pr.Offsets {
			if i > 0 && o.Offset != pr.Offsets[i-1].Offset+1 || o.Timestamp == 0 {
				t.Errorf("%s: offsets %+v", name, pr.Offsets)
			}
			if strings.Contains(tc.path, "/partitions/4/") && o.Partition != 4 {
				t.Errorf("%s: partition %d", name, o.Partition)
			}
		}
	}
}
