package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testAttempts is the retry bound of test clients, whose backoff is 1-2 ms.
const testAttempts = 3

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, servers []string, opts ...Option) *Client {
	t.Helper()
	fast := WithRetry(RetryPolicy{Attempts: testAttempts, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	c, err := New(servers, append([]Option{fast}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func writeError(w http.ResponseWriter, status int, code, msg string, retriable bool) {
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorBody{ErrorCode: code, Message: msg, Retriable: retriable})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// counting wraps a handler and counts its calls.
type counting struct {
	n atomic.Int64
	h http.HandlerFunc
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.h(w, r)
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		servers []string
		opts    []Option
	}{
		{servers: nil},
		{servers: []string{""}},
		{servers: []string{"ftp://x:1"}},
		{servers: []string{"http://x:1?a=b"}},
		{servers: []string{"x:1"}, opts: []Option{WithRetry(RetryPolicy{Attempts: -1})}},
		{servers: []string{"x:1"}, opts: []Option{WithMaxIdleConnsPerHost(-1)}},
	} {
		if _, err := New(tc.servers, tc.opts...); err == nil {
			t.Errorf("New(%q) accepted", tc.servers)
		}
	}
	c, err := New([]string{"127.0.0.1:9092", "https://weir.example/base/"})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Servers()
	if want := []string{"http://127.0.0.1:9092", "https://weir.example/base"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Servers() = %q, want %q", got, want)
	}
}

func TestAPIErrorParsing(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		ctype, body string
		want        APIError
	}{
		{"json", 404, ContentTypeJSON, `{"error_code":"UNKNOWN_TOPIC_OR_PARTITION","message":"topic \"x\" does not exist","retriable":false}`,
			APIError{Status: 404, Code: CodeUnknownTopicOrPartition, Message: `topic "x" does not exist`, ServedBy: "3"}},
		{"json retriable", 503, ContentTypeJSON, `{"error_code":"LEADER_NOT_AVAILABLE","message":"no leader","retriable":true}`,
			APIError{Status: 503, Code: CodeLeaderNotAvailable, Message: "no leader", Retriable: true, ServedBy: "3"}},
		{"json without code", 404, ContentTypeJSON, `{"message":"Not Found"}`,
			APIError{Status: 404, Message: "Not Found", ServedBy: "3"}},
		{"html", 502, "text/html", "<html><body>bad gateway</body></html>\n",
			APIError{Status: 502, Message: "<html><body>bad gateway</body></html>", ServedBy: "3"}},
		{"plain 503", 503, "text/plain", "upstream unavailable",
			APIError{Status: 503, Message: "upstream unavailable", Retriable: true, ServedBy: "3"}},
		{"json array", 500, ContentTypeJSON, `["x"]`,
			APIError{Status: 500, Message: `["x"]`, ServedBy: "3"}},
		{"empty", 500, "", "",
			APIError{Status: 500, Message: "Internal Server Error", ServedBy: "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(HeaderServedBy, "3")
				if tc.ctype != "" {
					w.Header().Set("Content-Type", tc.ctype)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			c := newClient(t, []string{srv.URL}, WithRetry(RetryPolicy{Attempts: 1}))
			_, err := c.Topic(t.Context(), "x")
			var got *APIError
			if !errors.As(err, &got) {
				t.Fatalf("error %v (%T) is not an *APIError", err, err)
			}
			if got.Status != tc.want.Status || got.Code != tc.want.Code || got.Message != tc.want.Message ||
				got.Retriable != tc.want.Retriable || got.ServedBy != tc.want.ServedBy {
				t.Errorf("got %+v, want %+v", *got, tc.want)
			}
			if string(got.Body) != tc.body {
				t.Errorf("Body = %q, want %q", got.Body, tc.body)
			}
			if tc.want.Code != "" && !IsCode(err, tc.want.Code) {
				t.Errorf("IsCode(%v, %s) = false", err, tc.want.Code)
			}
			if IsCode(err, "") || IsCode(err, CodeTopicAlreadyExists) {
				t.Errorf("IsCode matched a code the error does not have")
			}
			if !strings.Contains(err.Error(), `get topic "x"`) || !strings.Contains(err.Error(), "served by 3") {
				t.Errorf("error text %q lacks the call or the node", err)
			}
		})
	}
	if IsCode(errors.New("plain"), CodeNotFound) || IsCode(nil, CodeNotFound) {
		t.Error("IsCode matched a non-API error")
	}
}

func TestFailoverOnConnectionRefused(t *testing.T) {
	var hits atomic.Int64
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set(HeaderServedBy, "2")
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, 200, Cluster{ClusterID: "c1", ControllerID: 2})
		case http.MethodPost:
			writeJSON(w, 200, ProduceResponse{Offsets: []ProduceOffset{{Partition: 0, Offset: 7}}})
		}
	}))
	var metas []ResponseMeta
	var mu sync.Mutex
	c := newClient(t, []string{closedAddr(t), srv.URL}, WithResponseHook(func(m ResponseMeta) {
		mu.Lock()
		metas = append(metas, m)
		mu.Unlock()
	}))
	cl, err := c.Cluster(t.Context())
	if err != nil {
		t.Fatalf("Cluster: %v", err)
	}
	if cl.ClusterID != "c1" {
		t.Errorf("cluster = %+v", cl)
	}
	// A write fails over too: a refused connection never reached a server.
	c2 := newClient(t, []string{closedAddr(t), srv.URL})
	var meta ResponseMeta
	pr, err := c2.Produce(CaptureMeta(t.Context(), &meta), "t", nil, []ProduceRecord{StringValue("v")}, "", 0)
	if err != nil {
		t.Fatalf("Produce: %v", err)
	}
	if pr.Offsets[0].Offset != 7 || meta.ServedBy != "2" || meta.Server != srv.URL || meta.Status != 200 {
		t.Errorf("produce = %+v, meta %+v", pr, meta)
	}
	// The client now starts with the server that answered.
	if _, err := c.Cluster(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := c.preferred.Load(); got != 1 {
		t.Errorf("preferred server = %d, want 1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(metas) != 2 || metas[0].ServedBy != "2" || metas[0].Path != "/v1/cluster" || metas[0].Attempt != 1 {
		t.Errorf("hook saw %+v", metas)
	}
	if hits.Load() != 3 {
		t.Errorf("server hit %d times, want 3", hits.Load())
	}
}

func TestAllServersDown(t *testing.T) {
	c := newClient(t, []string{closedAddr(t), closedAddr(t)})
	_, err := c.Cluster(t.Context())
	if err == nil || !strings.Contains(err.Error(), "no server reachable") || !isDialError(err) {
		t.Fatalf("err = %v, want a dial error naming no server reachable", err)
	}
}

func TestProduceNotRetriedWhenOutcomeUnknown(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
	}{
		{504, CodeRequestTimedOut},
		{503, CodeNotEnoughReplicasAfterAppend},
	} {
		t.Run(tc.code, func(t *testing.T) {
			h := &counting{h: func(w http.ResponseWriter, r *http.Request) {
				writeError(w, tc.status, tc.code, "outcome unknown", true)
			}}
			c := newClient(t, []string{newServer(t, h).URL})
			_, err := c.Produce(t.Context(), "t", nil, []ProduceRecord{StringValue("v")}, AcksAll, 0)
			if !IsCode(err, tc.code) {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
			if n := h.n.Load(); n != 1 {
				t.Errorf("server saw %d produces, want 1 (no retry)", n)
			}
			// A read is retried on the same code: it cannot duplicate anything.
			h.n.Store(0)
			if _, err := c.Topic(t.Context(), "t"); !IsCode(err, tc.code) {
				t.Fatalf("err = %v", err)
			}
			if n := h.n.Load(); n != int64(testAttempts) {
				t.Errorf("server saw %d reads, want %d", n, testAttempts)
			}
		})
	}
}

func TestProduceRetriedOnLeaderNotAvailable(t *testing.T) {
	t.Run("bounded", func(t *testing.T) {
		h := &counting{h: func(w http.ResponseWriter, r *http.Request) {
			writeError(w, 503, CodeLeaderNotAvailable, "no leader", true)
		}}
		c := newClient(t, []string{newServer(t, h).URL})
		_, err := c.Produce(t.Context(), "t", nil, []ProduceRecord{StringValue("v")}, "", 0)
		if !IsCode(err, CodeLeaderNotAvailable) {
			t.Fatalf("err = %v", err)
		}
		if n := h.n.Load(); n != int64(testAttempts) {
			t.Errorf("server saw %d produces, want %d", n, testAttempts)
		}
	})
	t.Run("succeeds", func(t *testing.T) {
		var mu sync.Mutex
		var bodies []string
		h := &counting{}
		h.h = func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, string(b))
			mu.Unlock()
			if h.n.Load() < 3 {
				writeError(w, 503, CodeLeaderNotAvailable, "electing", true)
				return
			}
			writeJSON(w, 200, ProduceResponse{Offsets: []ProduceOffset{{Offset: 1}, {Offset: 2}}})
		}
		c := newClient(t, []string{newServer(t, h).URL})
		pr, err := c.Produce(t.Context(), "t", nil, []ProduceRecord{StringValue("a"), BytesValue([]byte{0, 1})}, "", 0)
		if err != nil {
			t.Fatalf("Produce: %v", err)
		}
		if len(pr.Offsets) != 2 || h.n.Load() != 3 {
			t.Fatalf("offsets %+v after %d calls", pr.Offsets, h.n.Load())
		}
		want := `{"records":[{"value":"a"},{"value_b64":"AAE="}]}`
		for i, b := range bodies {
			if b != want {
				t.Errorf("attempt %d sent %s, want %s", i+1, b, want)
			}
		}
	})
	t.Run("not after a partial write", func(t *testing.T) {
		h := &counting{h: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 503, ProduceResponse{
				Offsets: []ProduceOffset{
					{Partition: 0, Offset: 4},
					{Partition: 1, ErrorCode: CodeLeaderNotAvailable, Message: "no leader"},
				},
				ErrorCode: CodeLeaderNotAvailable, Message: "partition 1 has no leader", Retriable: true,
			})
		}}
		c := newClient(t, []string{newServer(t, h).URL})
		pr, err := c.Produce(t.Context(), "t", nil, []ProduceRecord{StringValue("a"), StringValue("b")}, "", 0)
		if !IsCode(err, CodeLeaderNotAvailable) {
			t.Fatalf("err = %v", err)
		}
		if h.n.Load() != 1 {
			t.Errorf("server saw %d produces, want 1: a retry would duplicate record 0", h.n.Load())
		}
		if pr == nil || len(pr.Offsets) != 2 || pr.Offsets[0].Offset != 4 || pr.Offsets[1].ErrorCode == "" {
			t.Errorf("partial outcome = %+v", pr)
		}
	})
	t.Run("not on a non-retriable code", func(t *testing.T) {
		h := &counting{h: func(w http.ResponseWriter, r *http.Request) {
			writeError(w, 413, CodeMessageTooLarge, "too big", false)
		}}
		c := newClient(t, []string{newServer(t, h).URL})
		if _, err := c.Produce(t.Context(), "t", nil, nil, "", 0); !IsCode(err, CodeMessageTooLarge) {
			t.Fatalf("err = %v", err)
		}
		if h.n.Load() != 1 {
			t.Errorf("server saw %d produces, want 1", h.n.Load())
		}
	})
}

func TestConnectionDroppedAfterSend(t *testing.T) {
	h := &counting{h: func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}}
	srv := newServer(t, h)
	// The produce reached the server: neither retried nor sent elsewhere.
	other := &counting{h: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, ProduceResponse{}) }}
	c := newClient(t, []string{srv.URL, newServer(t, other).URL})
	if _, err := c.Produce(t.Context(), "t", nil, []ProduceRecord{StringValue("v")}, "", 0); err == nil {
		t.Fatal("Produce succeeded")
	}
	if h.n.Load() != 1 || other.n.Load() != 0 {
		t.Errorf("produce sent %d + %d times, want once", h.n.Load(), other.n.Load())
	}
	// A read is retried.
	c1 := newClient(t, []string{srv.URL})
	h.n.Store(0)
	if _, err := c1.Topic(t.Context(), "t"); err == nil {
		t.Fatal("Topic succeeded")
	}
	if n := h.n.Load(); n != int64(testAttempts) {
		t.Errorf("read sent %d times, want %d", n, testAttempts)
	}
}

func TestRetryHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	h := &counting{h: func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 503, CodeLeaderNotAvailable, "no leader", true)
	}}
	// A backoff of an hour: only the context, cancelled once the first
	// reply is in, can end the wait.
	c := newClient(t, []string{newServer(t, h).URL},
		WithRetry(RetryPolicy{Attempts: 10, Backoff: time.Hour, MaxBackoff: time.Hour}),
		WithResponseHook(func(ResponseMeta) { cancel() }))
	_, err := c.Produce(ctx, "t", nil, []ProduceRecord{StringValue("v")}, "", 0)
	if !errors.Is(err, context.Canceled) || !IsCode(err, CodeLeaderNotAvailable) {
		t.Fatalf("err = %v, want the cancellation and the last error", err)
	}
	if h.n.Load() != 1 {
		t.Errorf("server saw %d calls", h.n.Load())
	}
}

func TestHealthAndProbes(t *testing.T) {
	var ready atomic.Bool
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/health":
			writeJSON(w, 503, Health{Healthy: false, Reasons: []string{"broker 2 down"}, BrokersDown: []int32{2}})
		case "/livez":
			w.WriteHeader(200)
		case "/readyz":
			if !ready.Load() {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(200)
		default:
			writeError(w, 404, CodeNotFound, "no route", false)
		}
	}))
	c := newClient(t, []string{srv.URL})
	h, err := c.Health(t.Context())
	if err != nil {
		t.Fatalf("Health: %v", err)
	}
	if h.Healthy || len(h.BrokersDown) != 1 || h.Reasons[0] != "broker 2 down" {
		t.Errorf("health = %+v", h)
	}
	if ok, err := c.Livez(t.Context()); !ok || err != nil {
		t.Errorf("Livez = %v, %v", ok, err)
	}
	if ok, err := c.Readyz(t.Context()); ok || err != nil {
		t.Errorf("Readyz = %v, %v; want false, nil", ok, err)
	}
	ready.Store(true)
	if ok, err := c.Readyz(t.Context()); !ok || err != nil {
		t.Errorf("Readyz = %v, %v", ok, err)
	}
	down := newClient(t, []string{closedAddr(t)})
	if ok, err := down.Livez(t.Context()); ok || err == nil {
		t.Errorf("Livez of a dead server = %v, %v", ok, err)
	}
}

// TestCalls checks the method, path, query and body of each call.
func TestCalls(t *testing.T) {
	type seen struct{ method, uri, body string }
	var mu sync.Mutex
	var got seen
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = seen{r.Method, r.URL.RequestURI(), string(b)}
		mu.Unlock()
		switch {
		case r.Method == http.MethodDelete:
			w.WriteHeader(204)
		case r.URL.Path == "/v1/topics" && r.Method == http.MethodGet:
			writeJSON(w, 200, TopicList{Topics: []TopicSummary{{Name: "a", Partitions: 3}}})
		case r.URL.Path == "/v1/brokers":
			writeJSON(w, 200, BrokerList{Brokers: []Broker{{ID: 1}, {ID: 2}}})
		case strings.HasPrefix(r.URL.Path, "/v1/brokers/"):
			writeJSON(w, 200, Broker{ID: 2, State: "alive"})
		case strings.HasSuffix(r.URL.Path, "/offsets"):
			writeJSON(w, 200, TopicOffsets{Topic: "a", Partitions: []PartitionOffsets{{Partition: 0, HighWatermark: 9}}})
		case strings.HasSuffix(r.URL.Path, "/records"):
			writeJSON(w, 200, ConsumeResponse{Topic: "a", Partition: 2, NextOffset: 5,
				Records: []ConsumedRecord{{Offset: 4, Value: json.RawMessage(`{"x":1}`)}}})
		default:
			writeJSON(w, 200, Topic{Name: "a", Partitions: []PartitionInfo{{Partition: 0}}})
		}
	}))
	c := newClient(t, []string{srv.URL})
	ctx := t.Context()
	three, ms := 3, "60000"
	ts := int64(1700)
	check := func(err error, want seen) {
		t.Helper()
		if err != nil {
			t.Fatalf("%v: %v", want, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if got != want {
			t.Errorf("sent %+v, want %+v", got, want)
		}
	}
	topics, err := c.ListTopics(ctx, true)
	check(err, seen{"GET", "/v1/topics?internal=true", ""})
	if len(topics) != 1 || topics[0].Partitions != 3 {
		t.Errorf("topics = %+v", topics)
	}
	_, err = c.ListTopics(ctx, false)
	check(err, seen{"GET", "/v1/topics", ""})
	_, err = c.CreateTopic(ctx, CreateTopicRequest{Name: "a", Partitions: &three, Configs: map[string]string{"retention.ms": ms}})
	check(err, seen{"POST", "/v1/topics", `{"name":"a","partitions":3,"configs":{"retention.ms":"60000"}}`})
	_, err = c.Topic(ctx, "a")
	check(err, seen{"GET", "/v1/topics/a", ""})
	tp, err := c.AlterTopic(ctx, "a", AlterTopicRequest{Configs: map[string]*string{"retention.ms": &ms, "x": nil}})
	check(err, seen{"PATCH", "/v1/topics/a", `{"configs":{"retention.ms":"60000","x":null}}`})
	if tp == nil || tp.Name != "a" {
		t.Errorf("AlterTopic = %+v", tp)
	}
	check(c.DeleteTopic(ctx, "a"), seen{"DELETE", "/v1/topics/a", ""})
	offs, err := c.TopicOffsets(ctx, "a", &ts)
	check(err, seen{"GET", "/v1/topics/a/offsets?timestamp=1700", ""})
	if offs.Partitions[0].HighWatermark != 9 {
		t.Errorf("offsets = %+v", offs)
	}
	brokers, err := c.Brokers(ctx)
	check(err, seen{"GET", "/v1/brokers", ""})
	if len(brokers) != 2 {
		t.Errorf("brokers = %+v", brokers)
	}
	_, err = c.Broker(ctx, 2)
	check(err, seen{"GET", "/v1/brokers/2", ""})
	check(c.DeleteBroker(ctx, 2), seen{"DELETE", "/v1/brokers/2", ""})
	p := int32(2)
	_, err = c.Produce(ctx, "a", &p, []ProduceRecord{StringValue("x").WithKey("k"), {Value: json.RawMessage(`{"n":1}`)}}, AcksOne, 1500*time.Millisecond)
	check(err, seen{"POST", "/v1/topics/a/partitions/2/records?acks=1&timeout_ms=1500",
		`{"records":[{"key":"k","value":"x"},{"value":{"n":1}}]}`})
	cr, err := c.Consume(ctx, "a", 2, ConsumeOptions{Offset: OffsetEarliest, Limit: 10, MaxBytes: 1024, WaitMS: 100, Encoding: EncodingBase64})
	check(err, seen{"GET", "/v1/topics/a/partitions/2/records?encoding=base64&limit=10&max_bytes=1024&offset=earliest&wait_ms=100", ""})
	if cr.NextOffset != 5 || string(cr.Records[0].Value) != `{"x":1}` {
		t.Errorf("consume = %+v", cr)
	}
	_, err = c.Consume(ctx, "a", 0, ConsumeOptions{Offset: OffsetAt(42)})
	check(err, seen{"GET", "/v1/topics/a/partitions/0/records?offset=42", ""})
	if _, err := c.Topic(ctx, ""); err == nil {
		t.Error("an empty topic name was sent")
	}
}

func TestOffsetOutOfRangeBounds(t *testing.T) {
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start, hw := int64(10), int64(20)
		writeJSON(w, 416, ErrorBody{ErrorCode: CodeOffsetOutOfRange, Message: "offset 5 is out of range",
			LogStartOffset: &start, HighWatermark: &hw})
	}))
	c := newClient(t, []string{srv.URL})
	_, err := c.Consume(t.Context(), "a", 0, ConsumeOptions{Offset: OffsetAt(5)})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeOffsetOutOfRange {
		t.Fatalf("err = %v", err)
	}
	if start, hw, ok := apiErr.OffsetBounds(); !ok || start != 10 || hw != 20 {
		t.Errorf("bounds = %d, %d, %v", start, hw, ok)
	}
}

func TestRecordHelpers(t *testing.T) {
	for _, tc := range []struct {
		r    ProduceRecord
		want string
	}{
		{StringValue("héllo <b>"), `{"value":"héllo \u003cb\u003e"}`},
		{StringValue("\xff\x00"), `{"value_b64":"/wA="}`},
		{BytesValue(nil), `{"value_b64":""}`},
		{StringValue("v").WithBytesKey([]byte{1}), `{"key_b64":"AQ==","value":"v"}`},
		{StringValue("v").WithKey("\xfe"), `{"key_b64":"/g==","value":"v"}`},
	} {
		got, err := json.Marshal(tc.r)
		if err != nil || string(got) != tc.want {
			t.Errorf("got %s (%v), want %s", got, err, tc.want)
		}
	}
	r, err := JSONValue(map[string]int{"amount": 5})
	if err != nil || string(r.Value) != `{"amount":5}` {
		t.Errorf("JSONValue = %s, %v", r.Value, err)
	}
}
