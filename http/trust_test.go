package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/logstore"
	"weir/nodeauth"
	"weir/replication"
)

// testKeys is the cluster credential of the test nodes.
func testKeys(t testing.TB) *nodeauth.Keys {
	t.Helper()
	k, err := nodeauth.NewKeys("http-test-cluster-secret")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fakeInternal records which node-to-node calls reached it.
type fakeInternal struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeInternal) called(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
}

func (f *fakeInternal) reached() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeInternal) Register(context.Context, RegisterRequest) (RegisterResponse, error) {
	f.called("register")
	return RegisterResponse{Epoch: 1, State: "fenced"}, nil
}

func (f *fakeInternal) Heartbeat(context.Context, HeartbeatRequest) (HeartbeatResponse, error) {
	f.called("heartbeat")
	return HeartbeatResponse{}, nil
}

func (f *fakeInternal) Join(context.Context, JoinRequest) (RegisterResponse, error) {
	f.called("join")
	return RegisterResponse{}, nil
}

func (f *fakeInternal) AlterPartition(context.Context, AlterPartitionRequest) (AlterPartitionResponse, error) {
	f.called("alter-partition")
	return AlterPartitionResponse{}, nil
}

func (f *fakeInternal) ControlledShutdown(context.Context, ShutdownRequest) (ShutdownResponse, error) {
	f.called("shutdown")
	return ShutdownResponse{}, nil
}

func (f *fakeInternal) LocalPartitionOffsets(context.Context, string, *int64) ([]client.PartitionOffsets, error) {
	f.called("topic offsets")
	return []client.PartitionOffsets{}, nil
}

func (f *fakeInternal) ServeFetch(w http.ResponseWriter, _ *http.Request) {
	f.called("fetch")
	w.WriteHeader(http.StatusOK)
}

func (f *fakeInternal) LocalGroups(context.Context) ([]client.GroupSummary, error) {
	f.called("groups")
	return []client.GroupSummary{}, nil
}

func (f *fakeInternal) CreateOffsetsTopic(context.Context, OffsetsTopicRequest) (OffsetsTopicResponse, error) {
	f.called("offsets-topic")
	return OffsetsTopicResponse{}, nil
}

// TestInternalRoutesNeedTheClusterCredential: every node-to-node route
// answers 401 without the cluster credential and 403 with a wrong one, in
// the API's error shape, and the call never reaches the node; with the
// credential it does.
func TestInternalRoutesNeedTheClusterCredential(t *testing.T) {
	in := &fakeInternal{}
	keys := testKeys(t)
	srv := New(Options{Backend: newFakeBackend(), Internal: in, Cluster: keys})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	other, err := nodeauth.NewKeys("another-cluster-secret")
	if err != nil {
		t.Fatal(err)
	}
	// call is what reaches Internal: "" for no route, "-" for a route the
	// node serves without it.
	routes := []struct{ method, path, body, call string }{
		{"POST", "/internal/v1/brokers/register", `{"id":99,"http_addr":"127.0.0.1:1","raft_addr":"127.0.0.1:2"}`, "register"},
		{"POST", "/internal/v1/brokers/heartbeat", `{"id":1,"broker_epoch":1,"applied_index":0}`, "heartbeat"},
		{"POST", "/internal/v1/brokers/shutdown", `{"id":1,"broker_epoch":1}`, "shutdown"},
		{"POST", "/internal/v1/join", `{"id":98,"http_addr":"127.0.0.1:1","raft_addr":"127.0.0.1:2"}`, "join"},
		{"POST", "/internal/v1/alter-partition", `{"topic":"t","partition":0,"leader":1,"leader_epoch":0,"partition_epoch":0,"isr":[1]}`, "alter-partition"},
		{"POST", "/internal/v1/fetch", `{"replica_id":99,"partitions":[]}`, "fetch"},
		{"POST", "/internal/v1/offsets-topic", `{}`, "offsets-topic"},
		{"GET", "/internal/v1/groups", "", "groups"},
		{"GET", "/internal/v1/topics/t/offsets", "", "topic offsets"},
		{"POST", "/internal/v1/read", `{"max_wait_ms":0,"max_bytes":1024,"partitions":[{"topic":"t","partition":0,"offset":0,"max_bytes":1024}]}`, "-"},
		{"GET", "/internal/v1/no-such-route", "", ""},
	}
	for _, rt := range routes {
		r := do(t, rt.method, hs.URL+rt.path, rt.body)
		if eb := r.errBody(t); r.status != 401 || eb.ErrorCode != client.CodeNodeAuthenticationRequired || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s without the credential: %d %s", rt.method, rt.path, r.status, r.body)
		}
		r = do(t, rt.method, hs.URL+rt.path, rt.body, nodeauth.Header, other.HTTPToken())
		if eb := r.errBody(t); r.status != 403 || eb.ErrorCode != client.CodeClusterAuthorizationFailed {
			t.Errorf("%s %s with another cluster's credential: %d %s", rt.method, rt.path, r.status, r.body)
		}
	}
	if got := in.reached(); len(got) != 0 {
		t.Fatalf("calls without the credential reached the node: %q", got)
	}
	var want []string
	for _, rt := range routes {
		r := do(t, rt.method, hs.URL+rt.path, rt.body, nodeauth.Header, keys.HTTPToken())
		if rt.call == "" {
			if r.status != 404 {
				t.Errorf("%s %s with the credential: %d %s", rt.method, rt.path, r.status, r.body)
			}
			continue
		}
		if rt.call != "-" {
			want = append(want, rt.call)
		}
		if r.status != 200 {
			t.Errorf("%s %s with the credential: %d %s", rt.method, rt.path, r.status, r.body)
		}
	}
	if got := in.reached(); !slices.Equal(got, want) {
		t.Fatalf("calls with the credential: %q, want %q", got, want)
	}
	// A public route with a wrong credential is refused too: the forwarding
	// headers it may carry are not to be believed.
	if r := do(t, "GET", hs.URL+"/livez", "", nodeauth.Header, "guess"); r.status != 403 {
		t.Fatalf("a wrong credential on a public route: %d %s", r.status, r.body)
	}
}

// TestClientForwardingHeadersChangeNothing: Weir-Forwarded-By,
// Weir-Client-Addr, X-Forwarded-For and X-Real-IP from a client neither stop
// forwarding nor change the recorded client address; without trusted
// proxies the client is the connection's peer.
func TestClientForwardingHeadersChangeNothing(t *testing.T) {
	group := func(g *fakeGroups) Groups { return g }
	owner := newGroupTestNodeWith(t, group, withRecords(nil))
	owner.addLocal(t, "t", 0)
	first := newGroupTestNodeWith(t, group, withRecords(nil))
	first.b.remote[client.TopicPartition{Topic: "t", Partition: 0}] = strings.TrimPrefix(owner.url, "http://")

	// A client's Weir-Forwarded-By does not keep the produce from its leader.
	r := do(t, "POST", first.url+"/v1/topics/t/partitions/0/records", `{"records":[{"value":"v"}]}`, ForwardedHeader, "7")
	if r.status != 200 || r.header.Get("Weir-Forwarded-To") != "2" {
		t.Fatalf("produce with a client's %s: %d %s", ForwardedHeader, r.status, r.body)
	}
	if hw := owner.b.local[client.TopicPartition{Topic: "t", Partition: 0}].HighWatermark(); hw != 1 {
		t.Fatalf("the leader has %d records, want 1", hw)
	}

	// A client cannot claim an address: not as a forwarding node, not as a proxy.
	for _, hdr := range [][]string{
		{ForwardedHeader, "2", ClientAddrHeader, "6.6.6.6"},
		{ClientAddrHeader, "6.6.6.6"},
		{"X-Forwarded-For", "6.6.6.7"},
		{"X-Real-IP", "6.6.6.8"},
		{"X-Forwarded-For", "6.6.6.7", "X-Real-IP", "6.6.6.8", ForwardedHeader, "2", ClientAddrHeader, "6.6.6.6"},
	} {
		r := do(t, "POST", owner.url+"/v1/groups/g/members", `{"topics":["orders"]}`, hdr...)
		if r.status != 201 || owner.g.joinHost != "127.0.0.1" {
			t.Errorf("join with %q: %d, host %q, want 127.0.0.1", hdr, r.status, owner.g.joinHost)
		}
	}

	// Trusted proxies elsewhere: the loopback peer is not one of them.
	behind := newGroupTestNodeWith(t, group, func(o *Options) {
		o.TrustedProxies = []*net.IPNet{{IP: net.IPv4(10, 0, 0, 0), Mask: net.CIDRMask(8, 32)}}
	})
	r = do(t, "POST", behind.url+"/v1/groups/g/members", `{"topics":["orders"]}`, "X-Forwarded-For", "6.6.6.7")
	if r.status != 201 || behind.g.joinHost != "127.0.0.1" {
		t.Fatalf("join through an untrusted peer: %d, host %q", r.status, behind.g.joinHost)
	}
}

// TestLongRequestsOutliveTheWriteTimeout: behind an http.Server whose write
// timeout is shorter than their wait, a long poll and another node's read
// still get their (empty) replies, and a follow stream still delivers a
// record written after the timeout has passed.
func TestLongRequestsOutliveTheWriteTimeout(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	b := newFakeBackend()
	p := newFakePartition(t)
	b.local[client.TopicPartition{Topic: "t", Partition: 0}] = p
	keys := testKeys(t)
	opts := Options{Backend: b, WriteTimeout: writeTimeout, Cluster: keys}
	withRecords(p)(&opts)
	srv := New(opts)
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config.WriteTimeout = writeTimeout
	hs.Start()
	defer hs.Close()

	start := time.Now()
	r := do(t, "GET", hs.URL+"/v1/topics/t/partitions/0/records?offset=0&wait_ms=1000", "")
	if r.status != 200 || !strings.Contains(string(r.body), `"records":[]`) || time.Since(start) < time.Second {
		t.Fatalf("a long poll past the write timeout: %d %s after %v", r.status, r.body, time.Since(start))
	}
	start = time.Now()
	r = do(t, "POST", hs.URL+"/internal/v1/read", `{"max_wait_ms":1000,"max_bytes":1024,"partitions":[{"topic":"t","partition":0,"offset":0,"max_bytes":1024}]}`,
		nodeauth.Header, keys.HTTPToken())
	if r.status != 200 || r.header.Get(echo.HeaderContentType) != replication.FetchResponseContentType || time.Since(start) < time.Second {
		t.Fatalf("a node's read past the write timeout: %d %q after %v", r.status, r.body, time.Since(start))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", hs.URL+"/v1/topics/t/records?from=earliest&follow=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The stream sends its headers at once, before any record.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("follow: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("follow: %s", resp.Status)
	}
	// Past the write timeout (what is tested, not a synchronisation), a record.
	<-time.After(2 * writeTimeout)
	p.add(t, "late")
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatalf("the follow stream ended after the write timeout: %v", err)
	}
	var rec struct{ Value string }
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Value != "late" {
		t.Fatalf("follow line %q: %v", line, err)
	}
}

// withRecords makes a test node's fake backend serve produce and the
// follow stream too; changed (if any) wakes the stream.
func withRecords(changed *fakePartition) func(*Options) {
	return func(o *Options) { o.Backend = &recordsBackend{fakeBackend: o.Backend.(*fakeBackend), changed: changed} }
}

type recordsBackend struct {
	*fakeBackend
	changed *fakePartition
}

func (b *recordsBackend) TopicInfo(name string) (TopicInfo, error) {
	info, err := b.fakeBackend.TopicInfo(name)
	info.MaxMessageBytes = 1 << 20
	return info, err
}

func (b *recordsBackend) TopicOffsets(_ context.Context, name string, _ *int64) (client.TopicOffsets, error) {
	out := client.TopicOffsets{Topic: name}
	for tp, p := range b.local {
		if tp.Topic == name {
			out.Partitions = append(out.Partitions, client.PartitionOffsets{Partition: tp.Partition,
				LogStartOffset: p.log.LogStartOffset(), HighWatermark: p.HighWatermark(), LogEndOffset: p.log.LogEndOffset()})
		}
	}
	return out, nil
}

func (b *recordsBackend) AnyChanged() <-chan struct{} { return b.changed.Changed() }

func (b *recordsBackend) Codecs() *logstore.Codecs { return logstore.NewCodecs(64 << 20) }
