package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	reads   atomic.Int64  // Read calls
	// onAppend tells the backend (AnyChanged) of each append.
	onAppend func()
	// inRead, when set, runs inside each Read (to see reads overlap).
	inRead func()
}

func newFakePartition(t testing.TB) *fakePartition {
	t.Helper()
	cfg := logstore.DefaultConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.Fsync = logstore.FsyncNever
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
	p.reads.Add(1)
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

// fakeGroups is a one-member coordinator: it keeps the member's positions
// (PollDone moves them) and records what the API passed it.
type fakeGroups struct {
	mu         sync.Mutex
	generation int32
	policy     string
	positions  []client.GroupPosition
	err        error // returned by every call when set
	notHere    *NotHereError
	calls      []string
	joinHost   string
	join       client.JoinGroupRequest
	seek       client.SeekRequest
	commit     client.CommitRequest
	reset      client.ResetOffsetsRequest
	doneGen    int32
	done       [][]client.GroupPosition
	ack        int64 // the ack of the last PollStart
}

func (g *fakeGroups) call(name string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, name)
	if g.notHere != nil {
		return g.notHere
	}
	return g.err
}

func (g *fakeGroups) called() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.calls)
}

func (g *fakeGroups) assignments() []client.TopicPartition {
	out := []client.TopicPartition{}
	for _, p := range g.positions {
		out = append(out, client.TopicPartition{Topic: p.Topic, Partition: p.Partition})
	}
	return out
}

func (g *fakeGroups) ListGroups(context.Context) (client.GroupList, error) {
	if err := g.call("list"); err != nil {
		return client.GroupList{}, err
	}
	return client.GroupList{Groups: []client.GroupSummary{{Group: "g1", State: "Stable", Members: 1, Coordinator: 1}}}, nil
}

func (g *fakeGroups) DescribeGroup(_ context.Context, group string) (client.Group, error) {
	if err := g.call("describe " + group); err != nil {
		return client.Group{}, err
	}
	return client.Group{Group: group, State: "Empty", Generation: 3, Coordinator: 1, Assignor: "range"}, nil
}

func (g *fakeGroups) JoinGroup(_ context.Context, group string, req client.JoinGroupRequest, host string) (client.MemberAssignment, error) {
	if err := g.call("join " + group); err != nil {
		return client.MemberAssignment{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.join, g.joinHost = req, host
	return client.MemberAssignment{MemberID: "m-1", Generation: g.generation, State: "Stable", Assignments: g.assignments()}, nil
}

func (g *fakeGroups) Heartbeat(_ context.Context, group, member string) (client.MemberAssignment, error) {
	if err := g.call("heartbeat " + group + " " + member); err != nil {
		return client.MemberAssignment{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return client.MemberAssignment{MemberID: member, Generation: g.generation, State: "Stable", Assignments: g.assignments()}, nil
}

func (g *fakeGroups) LeaveGroup(_ context.Context, group, member string) error {
	return g.call("leave " + group + " " + member)
}

func (g *fakeGroups) PollStart(_ context.Context, group, member string, ack int64) (GroupPoll, error) {
	if err := g.call("pollstart " + group + " " + member); err != nil {
		return GroupPoll{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ack = ack
	return GroupPoll{MemberID: member, Generation: g.generation, Assignments: g.assignments(),
		Positions: slices.Clone(g.positions), AutoOffsetReset: g.policy}, nil
}

func (g *fakeGroups) PollDone(_ context.Context, group, member string, generation int32, next []client.GroupPosition) (int64, error) {
	if err := g.call("polldone " + group + " " + member); err != nil {
		return 0, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.doneGen = generation
	g.done = append(g.done, slices.Clone(next))
	for _, n := range next {
		for i := range g.positions {
			if g.positions[i].Topic == n.Topic && g.positions[i].Partition == n.Partition {
				g.positions[i].Offset = n.Offset
			}
		}
	}
	return int64(len(g.done)), nil
}

func (g *fakeGroups) lastDone() (int32, []client.GroupPosition) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.done) == 0 {
		return 0, nil
	}
	return g.doneGen, g.done[len(g.done)-1]
}

func (g *fakeGroups) Seek(_ context.Context, group, member string, req client.SeekRequest) (client.SeekResponse, error) {
	if err := g.call("seek " + group + " " + member); err != nil {
		return client.SeekResponse{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seek = req
	return client.SeekResponse{Positions: []client.GroupPosition{{Topic: req.Topic, Partition: 0, Offset: 7}}}, nil
}

func (g *fakeGroups) CommitOffsets(_ context.Context, group string, req client.CommitRequest) (client.CommitResponse, error) {
	if err := g.call("commit " + group); err != nil {
		return client.CommitResponse{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.commit = req
	return client.CommitResponse{Offsets: req.Offsets}, nil
}

func (g *fakeGroups) GroupOffsets(_ context.Context, group string) (client.GroupOffsets, error) {
	if err := g.call("offsets " + group); err != nil {
		return client.GroupOffsets{}, err
	}
	c := int64(4)
	return client.GroupOffsets{Group: group, Offsets: []client.GroupOffset{{Topic: "t", Partition: 0, CommittedOffset: &c, LogEndOffset: 10}}}, nil
}

func (g *fakeGroups) ResetOffsets(_ context.Context, group string, req client.ResetOffsetsRequest) (client.ResetOffsetsResponse, error) {
	if err := g.call("reset " + group); err != nil {
		return client.ResetOffsetsResponse{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reset = req
	return client.ResetOffsetsResponse{Group: group, DryRun: *req.DryRun, Offsets: []client.ResetOffsetRow{{Topic: req.Topic, Partition: 0, NewOffset: 0}}}, nil
}

func (g *fakeGroups) DeleteGroup(_ context.Context, group string) error {
	return g.call("delete " + group)
}

type groupTestNode struct {
	b     *fakeBackend
	g     *fakeGroups
	srv   *Server
	hs    *httptest.Server
	url   string
	reads atomic.Int64 // requests served that read records (a consume, another node's read)
}

func newGroupTestNode(t testing.TB) *groupTestNode {
	return newGroupTestNodeWith(t, func(g *fakeGroups) Groups { return g })
}

// newGroupTestNodeWith serves wrap(the fake) as the node's group service;
// more, if given, changes the options. Every test node holds the same
// cluster credential.
func newGroupTestNodeWith(t testing.TB, wrap func(*fakeGroups) Groups, more ...func(*Options)) *groupTestNode {
	t.Helper()
	n := &groupTestNode{b: newFakeBackend(), g: &fakeGroups{generation: 5, policy: client.ResetToEarliest}}
	opts := Options{Backend: n.b, Groups: wrap(n.g), RequestTimeout: 5 * time.Second, Metrics: NewMetrics(), Cluster: testKeys(t)}
	for _, f := range more {
		f(&opts)
	}
	n.srv = New(opts)
	h := n.srv.Handler()
	n.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/records") || r.URL.Path == "/internal/v1/read" {
			n.reads.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(n.hs.Close)
	n.url = n.hs.URL
	return n
}

// addLocal gives the node the leader replica of topic-partition.
func (n *groupTestNode) addLocal(t testing.TB, topic string, partition int32) *fakePartition {
	p := newFakePartition(t)
	p.onAppend = n.b.changed
	n.b.mu.Lock()
	n.b.local[client.TopicPartition{Topic: topic, Partition: partition}] = p
	n.b.mu.Unlock()
	return p
}

type reply struct {
	status int
	body   []byte
	header http.Header
}

func (r reply) errBody(t *testing.T) client.ErrorBody {
	t.Helper()
	var eb client.ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return eb
}

func do(t *testing.T, method, url, body string, header ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, body: data, header: resp.Header}
}

func decodeReply[T any](t *testing.T, r reply) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("reply %q: %v", r.body, err)
	}
	return v
}

func TestGroupRoutes(t *testing.T) {
	n := newGroupTestNode(t)
	n.g.positions = []client.GroupPosition{{Topic: "orders", Partition: 0}}
	n.addLocal(t, "orders", 0) // commits are for partitions that exist
	n.addLocal(t, "orders", 1)
	u := n.url + "/v1/groups"

	r := do(t, "GET", u, "")
	if r.status != 200 || decodeReply[client.GroupList](t, r).Groups[0].Group != "g1" {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	r = do(t, "GET", u+"/my-group", "")
	if d := decodeReply[client.Group](t, r); r.status != 200 || d.Group != "my-group" || d.Members == nil || d.Offsets == nil {
		t.Fatalf("describe: %d %s", r.status, r.body)
	}
	if !strings.Contains(string(r.body), `"members":[]`) {
		t.Fatalf("describe lists no members as [], got %s", r.body)
	}
	// A group name with a '/' travels escaped.
	r = do(t, "GET", u+"/a%2Fb", "")
	if r.status != 200 || decodeReply[client.Group](t, r).Group != "a/b" {
		t.Fatalf("describe a/b: %d %s", r.status, r.body)
	}

	r = do(t, "POST", u+"/my-group/members", `{"topics":["orders"],"client_id":"c1","session_timeout_ms":10000,"auto_offset_reset":"earliest","auto_commit":false,"assignor":"sticky"}`)
	ma := decodeReply[client.MemberAssignment](t, r)
	if r.status != 201 || ma.MemberID != "m-1" || ma.Generation != 5 || len(ma.Assignments) != 1 {
		t.Fatalf("join: %d %s", r.status, r.body)
	}
	if n.g.joinHost != "127.0.0.1" || n.g.join.ClientID != "c1" || *n.g.join.SessionTimeoutMS != 10000 ||
		*n.g.join.AutoCommit || n.g.join.Assignor != "sticky" || n.g.join.AutoOffsetReset != "earliest" {
		t.Fatalf("join passed %+v from %q", n.g.join, n.g.joinHost)
	}

	for _, body := range []string{"", "{}"} {
		r = do(t, "POST", u+"/my-group/members/m-1/heartbeat", body)
		if ma := decodeReply[client.MemberAssignment](t, r); r.status != 200 || ma.Generation != 5 || ma.State != "Stable" {
			t.Fatalf("heartbeat with body %q: %d %s", body, r.status, r.body)
		}
	}

	r = do(t, "POST", u+"/my-group/members/m-1/seek", `{"topic":"orders","partition":0,"offset":7}`)
	if sr := decodeReply[client.SeekResponse](t, r); r.status != 200 || sr.Positions[0].Offset != 7 {
		t.Fatalf("seek: %d %s", r.status, r.body)
	}
	if *n.g.seek.Offset != 7 || *n.g.seek.Partition != 0 || n.g.seek.Topic != "orders" {
		t.Fatalf("seek passed %+v", n.g.seek)
	}

	r = do(t, "POST", u+"/my-group/offsets", `{"offsets":[{"topic":"orders","partition":0,"offset":12,"metadata":"m"}],"member_id":"m-1","generation":5}`)
	if cr := decodeReply[client.CommitResponse](t, r); r.status != 200 || cr.Offsets[0].Offset != 12 || cr.Offsets[0].Metadata != "m" {
		t.Fatalf("commit: %d %s", r.status, r.body)
	}
	if n.g.commit.MemberID != "m-1" || *n.g.commit.Generation != 5 {
		t.Fatalf("commit passed %+v", n.g.commit)
	}
	r = do(t, "POST", u+"/my-group/offsets", `{"offsets":[{"topic":"orders","partition":1,"offset":0}]}`)
	if r.status != 200 || n.g.commit.Generation != nil {
		t.Fatalf("standalone commit: %d %s", r.status, r.body)
	}

	r = do(t, "GET", u+"/my-group/offsets", "")
	if o := decodeReply[client.GroupOffsets](t, r); r.status != 200 || *o.Offsets[0].CommittedOffset != 4 || o.Offsets[0].Lag != nil {
		t.Fatalf("offsets: %d %s", r.status, r.body)
	}

	r = do(t, "POST", u+"/my-group/offsets/reset", `{"topic":"orders","to":"earliest"}`)
	if rr := decodeReply[client.ResetOffsetsResponse](t, r); r.status != 200 || !rr.DryRun || !*n.g.reset.DryRun {
		t.Fatalf("reset without dry_run must be a dry run: %d %s", r.status, r.body)
	}
	r = do(t, "POST", u+"/my-group/offsets/reset", `{"topic":"orders","partitions":[0,2],"to":"shift","value":-3,"dry_run":false}`)
	if rr := decodeReply[client.ResetOffsetsResponse](t, r); r.status != 200 || rr.DryRun || *n.g.reset.Value != -3 || len(n.g.reset.Partitions) != 2 {
		t.Fatalf("reset: %d %s (passed %+v)", r.status, r.body, n.g.reset)
	}

	r = do(t, "GET", u+"/my-group/members/m-1/records", "")
	if gr := decodeReply[client.GroupRecords](t, r); r.status != 200 || gr.MemberID != "m-1" || gr.Generation != 5 || gr.Records == nil {
		t.Fatalf("poll: %d %s", r.status, r.body)
	}

	if r = do(t, "DELETE", u+"/my-group/members/m-1", ""); r.status != 204 {
		t.Fatalf("leave: %d %s", r.status, r.body)
	}
	if r = do(t, "DELETE", u+"/my-group", ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	want := []string{"list", "describe my-group", "describe a/b", "join my-group", "heartbeat my-group m-1", "heartbeat my-group m-1",
		"seek my-group m-1", "commit my-group", "commit my-group", "offsets my-group", "reset my-group", "reset my-group",
		"pollstart my-group m-1", "polldone my-group m-1", "leave my-group m-1", "delete my-group"}
	if got := n.g.called(); !slices.Equal(got, want) {
		t.Fatalf("calls:\n got %q\nwant %q", got, want)
	}
}

func TestGroupRoutesAbsentWithoutGroups(t *testing.T) {
	srv := New(Options{Backend: newFakeBackend()})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	r := do(t, "GET", hs.URL+"/v1/groups", "")
	if r.status != 404 || r.errBody(t).ErrorCode != client.CodeNotFound {
		t.Fatalf("GET /v1/groups without a group service: %d %s", r.status, r.body)
	}
}

func TestGroupValidation(t *testing.T) {
	n := newGroupTestNode(t)
	u := n.url + "/v1/groups/g"
	long := strings.Repeat("x", 256)
	cases := []struct {
		method, path, body string
		field              string // the message must name it
	}{
		{"POST", "/members", ``, "empty"},
		{"POST", "/members", `{"topics":["t"],"topic":"x"}`, `"topic"`},
		{"POST", "/members", `{"topics":[]}`, "topics"},
		{"POST", "/members", `{}`, "topics"},
		{"POST", "/members", `{"topics":"t"}`, "topics"},
		{"POST", "/members", `{"topics":["ok","bad name"]}`, "topics[1]"},
		{"POST", "/members", `{"topics":[".."]}`, "topics[0]"},
		{"POST", "/members", `{"topics":["t"],"session_timeout_ms":999}`, "session_timeout_ms"},
		{"POST", "/members", `{"topics":["t"],"session_timeout_ms":1800001}`, "session_timeout_ms"},
		{"POST", "/members", `{"topics":["t"],"session_timeout_ms":"30s"}`, "session_timeout_ms"},
		{"POST", "/members", `{"topics":["t"],"auto_offset_reset":"none"}`, "auto_offset_reset"},
		{"POST", "/members", `{"topics":["t"],"assignor":"cooperative"}`, "assignor"},
		{"POST", "/members", `{"topics":["t"],"client_id":"` + long + `"}`, "client_id"},
		{"POST", "/members", `{"topics":["t"]} {}`, "after the JSON object"},
		{"POST", "/members/m/heartbeat", `{"generation":1}`, `"generation"`},
		{"POST", "/members/m/seek", `{"topic":"t"}`, "exactly one of offset, timestamp and to"},
		{"POST", "/members/m/seek", `{"topic":"t","offset":1,"to":"earliest"}`, "exactly one of offset, timestamp and to"},
		{"POST", "/members/m/seek", `{"topic":"t","offset":-1}`, "offset"},
		{"POST", "/members/m/seek", `{"topic":"t","timestamp":-5}`, "timestamp"},
		{"POST", "/members/m/seek", `{"topic":"t","to":"middle"}`, "to"},
		{"POST", "/members/m/seek", `{"partition":0,"offset":1}`, "partition"},
		{"POST", "/members/m/seek", `{"topic":"t","partition":-1,"offset":1}`, "partition"},
		{"POST", "/offsets", `{"offsets":[]}`, "offsets"},
		{"POST", "/offsets", `{"offsets":[{"topic":"t","partition":0,"offset":-1}]}`, "offsets[0].offset"},
		{"POST", "/offsets", `{"offsets":[{"topic":"t","partition":-2,"offset":1}]}`, "offsets[0].partition"},
		{"POST", "/offsets", `{"offsets":[{"topic":"","partition":0,"offset":1}]}`, "offsets[0].topic"},
		{"POST", "/offsets", `{"offsets":[{"topic":"t","partition":0,"offset":1},{"topic":"t","partition":0,"offset":2}]}`, "offsets[1]"},
		{"POST", "/offsets", `{"offsets":[{"topic":"t","partition":0,"offset":1,"metadata":"` + strings.Repeat("m", 4097) + `"}]}`, "offsets[0].metadata"},
		{"POST", "/offsets", `{"offsets":[{"topic":"t","partition":0,"offset":1}],"member_id":"m"}`, "generation"},
		{"POST", "/offsets", `{"offsets":[{"topic":"t","partition":0,"offset":1}],"generation":2}`, "member_id"},
		{"POST", "/offsets", `{"offsets":[{"topic":"t","partition":0,"offset":1}],"member_id":"m","generation":-1}`, "generation"},
		{"POST", "/offsets/reset", `{"to":"earliest"}`, "topic"},
		{"POST", "/offsets/reset", `{"topic":"t"}`, "to"},
		{"POST", "/offsets/reset", `{"topic":"t","to":"beginning"}`, "to"},
		{"POST", "/offsets/reset", `{"topic":"t","to":"offset"}`, "value"},
		{"POST", "/offsets/reset", `{"topic":"t","to":"timestamp"}`, "value"},
		{"POST", "/offsets/reset", `{"topic":"t","to":"shift"}`, "value"},
		{"POST", "/offsets/reset", `{"topic":"t","to":"offset","value":-1}`, "value"},
		{"POST", "/offsets/reset", `{"topic":"t","to":"latest","value":3}`, "value"},
		{"POST", "/offsets/reset", `{"topic":"t","partitions":[0,-1],"to":"latest"}`, "partitions[1]"},
		{"POST", "/offsets/reset", `{"topic":"t","partitions":[1,1],"to":"latest"}`, "partitions[1]"},
		{"POST", "/offsets/reset", `{"topic":"t","to":"latest","dry_run":"no"}`, "dry_run"},
		{"GET", "/members/m/records?limit=0", ``, "limit"},
		{"GET", "/members/m/records?max_bytes=abc", ``, "max_bytes"},
		{"GET", "/members/m/records?wait_ms=-1", ``, "wait_ms"},
		{"GET", "/members/m/records?wait_ms=300001", ``, "wait_ms"},
		{"GET", "/members/m/records?encoding=hex", ``, "encoding"},
		{"GET", "/members/%01/records", ``, "member"},
	}
	for _, tc := range cases {
		r := do(t, tc.method, u+tc.path, tc.body)
		if r.status != 400 {
			t.Errorf("%s %s %s: status %d %s, want 400", tc.method, tc.path, tc.body, r.status, r.body)
			continue
		}
		eb := r.errBody(t)
		if eb.ErrorCode != client.CodeInvalidRequest || eb.Retriable || !strings.Contains(eb.Message, tc.field) {
			t.Errorf("%s %s %s: %+v, want INVALID_REQUEST naming %q", tc.method, tc.path, tc.body, eb, tc.field)
		}
	}
	r := do(t, "GET", n.url+"/v1/groups/"+long, "")
	if r.status != 400 || !strings.Contains(r.errBody(t).Message, "group") {
		t.Errorf("overlong group: %d %s", r.status, r.body)
	}
	if calls := n.g.called(); len(calls) != 0 {
		t.Fatalf("refused requests reached the coordinator: %q", calls)
	}
}

func TestGroupErrorStatuses(t *testing.T) {
	n := newGroupTestNode(t)
	cases := []struct {
		code      string
		status    int
		retriable bool
	}{
		{client.CodeUnknownMemberID, 404, false},
		{client.CodeGroupIDNotFound, 404, false},
		{client.CodeIllegalGeneration, 409, false},
		{client.CodeRebalanceInProgress, 409, false},
		{client.CodeNonEmptyGroup, 409, false},
		{client.CodeInconsistentGroupProtocol, 409, false},
		{client.CodeCoordinatorLoadInProgress, 503, true},
		{client.CodeCoordinatorNotAvailable, 503, true},
		{client.CodeNotCoordinator, 503, true},
	}
	for _, tc := range cases {
		n.g.mu.Lock()
		n.g.err = Errorf(tc.code, "from the coordinator")
		n.g.mu.Unlock()
		r := do(t, "GET", n.url+"/v1/groups/g/members/m/records", "")
		eb := r.errBody(t)
		if r.status != tc.status || eb.ErrorCode != tc.code || eb.Retriable != tc.retriable {
			t.Errorf("%s: %d %+v, want %d retriable=%v", tc.code, r.status, eb, tc.status, tc.retriable)
		}
	}
}

// A request the coordinator elsewhere owns is forwarded with its body, and
// the join records the address of the client, not of the forwarding node.
// The first node sits behind a proxy it trusts (loopback here), which names
// the client in X-Forwarded-For.
func TestGroupForwardKeepsBodyAndClientAddr(t *testing.T) {
	owner := newGroupTestNode(t)
	first := newGroupTestNodeWith(t, func(g *fakeGroups) Groups { return g }, func(o *Options) {
		o.TrustedProxies = []*net.IPNet{{IP: net.IPv4(127, 0, 0, 0), Mask: net.CIDRMask(8, 32)}}
	})
	first.g.notHere = &NotHereError{NodeID: 2, Addr: strings.TrimPrefix(owner.url, "http://"), What: "the coordinator of group \"g\""}

	r := do(t, "POST", first.url+"/v1/groups/g/members", `{"topics":["orders"],"client_id":"fwd"}`, "X-Forwarded-For", "10.9.8.7")
	if r.status != 201 || r.header.Get("Weir-Forwarded-To") != "2" {
		t.Fatalf("forwarded join: %d %s %v", r.status, r.body, r.header)
	}
	if owner.g.join.ClientID != "fwd" || owner.g.joinHost != "10.9.8.7" {
		t.Fatalf("the owner saw %+v from %q", owner.g.join, owner.g.joinHost)
	}
}

type polledRecord struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Timestamp int64  `json:"timestamp"`
	Key       string `json:"key"`
	Value     string `json:"value"`
}

type pollReply struct {
	MemberID    string                  `json:"member_id"`
	Generation  int32                   `json:"generation"`
	PollID      int64                   `json:"poll_id"`
	Assignments []client.TopicPartition `json:"assignments"`
	Records     []polledRecord          `json:"records"`
}

func poll(t *testing.T, n *groupTestNode, query string) (pollReply, time.Duration) {
	t.Helper()
	r, took, err := pollErr(n, query)
	if err != nil {
		t.Fatal(err)
	}
	return r, took
}

// pollErr is poll for other goroutines than the test's.
func pollErr(n *groupTestNode, query string) (pollReply, time.Duration, error) {
	start := time.Now()
	resp, err := http.Get(n.url + "/v1/groups/g/members/m/records?encoding=text&" + query)
	if err != nil {
		return pollReply{}, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err != nil || resp.StatusCode != 200 {
		return pollReply{}, took, fmt.Errorf("poll: %d %s %v", resp.StatusCode, body, err)
	}
	var out pollReply
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return out, took, fmt.Errorf("poll reply %s: %w", body, err)
	}
	for _, r := range out.Records {
		if r.Timestamp != 1000+r.Offset {
			return out, took, fmt.Errorf("record %+v: timestamp is not the one produced", r)
		}
	}
	return out, took, nil
}

func values(recs []polledRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%s-%d@%d=%s", r.Topic, r.Partition, r.Offset, r.Value))
	}
	return out
}

func positionOf(ps []client.GroupPosition, topic string, partition int32) (int64, bool) {
	for _, p := range ps {
		if p.Topic == topic && p.Partition == partition {
			return p.Offset, true
		}
	}
	return 0, false
}

func TestGroupPollInterleavesFairly(t *testing.T) {
	n := newGroupTestNode(t)
	a, b := n.addLocal(t, "a", 0), n.addLocal(t, "b", 3)
	a.add(t, "a0", "a1", "a2", "a3", "a4")
	b.add(t, "b0", "b1")
	b.add(t, "b2", "b3", "b4")
	n.g.positions = []client.GroupPosition{{Topic: "a", Partition: 0}, {Topic: "b", Partition: 3, Offset: 1}}

	got, _ := poll(t, n, "limit=5")
	if len(got.Records) != 5 || got.Generation != 5 || len(got.Assignments) != 2 {
		t.Fatalf("poll: %+v", got)
	}
	// Alternating, whichever partition went first.
	counts := map[string]int{}
	for i, r := range got.Records {
		counts[r.Topic]++
		if i > 0 && r.Topic == got.Records[i-1].Topic {
			t.Fatalf("records not interleaved: %q", values(got.Records))
		}
		if r.Key != fmt.Sprintf("k%d", r.Offset) || r.Value != fmt.Sprintf("%s%d", r.Topic, r.Offset) {
			t.Fatalf("record %+v does not match its offset", r)
		}
	}
	first := got.Records[0].Topic
	if counts[first] != 3 || len(counts) != 2 {
		t.Fatalf("5 records from 2 partitions: 3 from the first, got %v", counts)
	}
	if got.Records[0].Offset != map[string]int64{"a": 0, "b": 1}[first] {
		t.Fatalf("the first record is not at the position: %q", values(got.Records))
	}
	gen, next := n.g.lastDone()
	// a first: a0 b1 a1 b2 a2; b first: b1 a0 b2 a1 b3.
	wantA, wantB := int64(2), int64(4)
	if first == "a" {
		wantA, wantB = 3, 3
	}
	if offA, _ := positionOf(next, "a", 0); gen != 5 || offA != wantA {
		t.Fatalf("PollDone(gen %d, %+v), want a-0 at %d", gen, next, wantA)
	}
	if offB, _ := positionOf(next, "b", 3); offB != wantB {
		t.Fatalf("PollDone %+v, want b-3 at %d", next, wantB)
	}

	// The next poll continues from there, starting with the other partition.
	got2, _ := poll(t, n, "limit=2")
	if len(got2.Records) != 2 || got2.Records[0].Topic == first {
		t.Fatalf("second poll %q should start with the partition that went second before", values(got2.Records))
	}
	seen := map[string]bool{}
	for _, r := range append(got.Records, got2.Records...) {
		key := fmt.Sprintf("%s@%d", r.Topic, r.Offset)
		if seen[key] {
			t.Fatalf("%s returned twice: %q then %q", key, values(got.Records), values(got2.Records))
		}
		seen[key] = true
	}

	// Drain: everything comes exactly once, and positions end at the log ends.
	for range 10 {
		r, _ := poll(t, n, "")
		if len(r.Records) == 0 {
			break
		}
		for _, rec := range r.Records {
			key := fmt.Sprintf("%s@%d", rec.Topic, rec.Offset)
			if seen[key] {
				t.Fatalf("%s returned twice", key)
			}
			seen[key] = true
		}
	}
	if len(seen) != 9 {
		t.Fatalf("saw %d records, want 9 (a0-a4, b1-b4): %v", len(seen), seen)
	}
	metrics := string(do(t, "GET", n.url+"/metrics", "").body)
	for _, line := range []string{`weir_records_out_total{topic="b"} 4`, `weir_bytes_out_total{topic="a"} 20`} { // "k0"+"a0"...
		if !strings.Contains(metrics, line+"\n") {
			t.Fatalf("metrics lack %s", line)
		}
	}
	n.g.mu.Lock()
	defer n.g.mu.Unlock()
	if n.g.positions[0].Offset != 5 || n.g.positions[1].Offset != 5 {
		t.Fatalf("positions at the end: %+v", n.g.positions)
	}
}

func TestGroupPollMaxBytes(t *testing.T) {
	n := newGroupTestNode(t)
	p := n.addLocal(t, "t", 0)
	p.add(t, strings.Repeat("x", 100), strings.Repeat("y", 100), strings.Repeat("z", 100))
	n.g.positions = []client.GroupPosition{{Topic: "t", Partition: 0}}
	// Key "k0" + 100 bytes = 102 per record: 250 bytes hold two.
	got, _ := poll(t, n, "max_bytes=250")
	if len(got.Records) != 2 {
		t.Fatalf("max_bytes=250 gave %d records", len(got.Records))
	}
	if _, next := n.g.lastDone(); len(next) != 1 || next[0].Offset != 2 {
		t.Fatalf("position after 2 records: %+v", next)
	}
	// A record larger than max_bytes still goes when it is the first.
	got, _ = poll(t, n, "max_bytes=1")
	if len(got.Records) != 1 || got.Records[0].Offset != 2 {
		t.Fatalf("max_bytes=1 gave %q", values(got.Records))
	}
}

func TestGroupPollLongPollWakes(t *testing.T) {
	n := newGroupTestNode(t)
	a, b := n.addLocal(t, "a", 0), n.addLocal(t, "a", 1)
	n.g.positions = []client.GroupPosition{{Topic: "a", Partition: 0}, {Topic: "a", Partition: 1}}
	type result struct {
		r    pollReply
		took time.Duration
		err  error
	}
	done := make(chan result, 1)
	go func() {
		r, took, err := pollErr(n, "wait_ms=20000")
		done <- result{r, took, err}
	}()
	// Both partitions are waiting; data on one ends the poll.
	for _, p := range []*fakePartition{a, b} {
		select {
		case <-p.waiting:
		case <-time.After(10 * time.Second):
			t.Fatal("the poll did not wait on the partition")
		}
	}
	b.add(t, "hello")
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatal(res.err)
		}
		if len(res.r.Records) != 1 || res.r.Records[0].Value != "hello" || res.r.Records[0].Partition != 1 {
			t.Fatalf("woken poll: %+v", res.r)
		}
		if res.took > 10*time.Second {
			t.Fatalf("the poll took %v", res.took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the poll did not wake")
	}
	if _, next := n.g.lastDone(); len(next) != 1 || next[0].Partition != 1 || next[0].Offset != 1 {
		t.Fatalf("PollDone after the wake: %+v", next)
	}
}

func TestGroupPollWaitsNoLongerThanWaitMS(t *testing.T) {
	n := newGroupTestNode(t)
	n.addLocal(t, "a", 0)
	n.b.remote[client.TopicPartition{Topic: "a", Partition: 1}] = closedAddr(t)                                                // its leader is down
	n.g.positions = []client.GroupPosition{{Topic: "a", Partition: 0}, {Topic: "a", Partition: 1}, {Topic: "a", Partition: 2}} // a-2: no leader
	got, took := poll(t, n, "wait_ms=300")
	if len(got.Records) != 0 {
		t.Fatalf("records from nowhere: %+v", got)
	}
	if took < 300*time.Millisecond || took > 300*time.Millisecond+pollRemoteSlack+time.Second {
		t.Fatalf("wait_ms=300 took %v", took)
	}
	if _, next := n.g.lastDone(); len(next) != 0 {
		t.Fatalf("positions moved without records: %+v", next)
	}
	// Without a wait it answers at once.
	if _, took := poll(t, n, ""); took > pollRemoteSlack+time.Second {
		t.Fatalf("a poll without wait_ms took %v", took)
	}
	// Nothing assigned: the poll still waits (a polling loop must not spin).
	n.g.positions = nil
	if _, took := poll(t, n, "wait_ms=200"); took < 200*time.Millisecond {
		t.Fatalf("an idle member's poll with wait_ms=200 took %v", took)
	}
}

func TestGroupPollSkipsLeaderlessPartitions(t *testing.T) {
	n := newGroupTestNode(t)
	n.addLocal(t, "a", 0).add(t, "x", "y")
	n.g.positions = []client.GroupPosition{{Topic: "a", Partition: 0}, {Topic: "a", Partition: 7, Offset: 3}}
	got, _ := poll(t, n, "wait_ms=5000")
	if len(got.Records) != 2 {
		t.Fatalf("poll: %q", values(got.Records))
	}
	if _, next := n.g.lastDone(); len(next) != 1 || next[0].Partition != 0 || next[0].Offset != 2 {
		t.Fatalf("PollDone: %+v", next)
	}
}

func TestGroupPollOutOfRangeResets(t *testing.T) {
	for _, policy := range []string{client.ResetToEarliest, client.ResetToLatest} {
		t.Run(policy, func(t *testing.T) {
			n := newGroupTestNode(t)
			n.g.policy = policy
			gone := n.addLocal(t, "a", 0)
			gone.add(t, "0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
			if err := gone.log.DeleteRecordsBefore(6); err != nil { // retention passed offset 2
				t.Fatal(err)
			}
			n.addLocal(t, "a", 1).add(t, "ok")
			n.g.positions = []client.GroupPosition{{Topic: "a", Partition: 0, Offset: 2}, {Topic: "a", Partition: 1}}
			got, _ := poll(t, n, "")
			if len(got.Records) != 1 || got.Records[0].Partition != 1 {
				t.Fatalf("poll: %q", values(got.Records))
			}
			want := map[string]int64{client.ResetToEarliest: 6, client.ResetToLatest: 10}[policy]
			_, next := n.g.lastDone()
			if off, ok := positionOf(next, "a", 0); !ok || off != want {
				t.Fatalf("PollDone %+v, want a-0 reset to %d", next, want)
			}
			// The records come on the next poll.
			got, _ = poll(t, n, "")
			if policy == client.ResetToEarliest && (len(got.Records) != 4 || got.Records[0].Offset != 6) {
				t.Fatalf("after the reset: %q", values(got.Records))
			}
			if policy == client.ResetToLatest && len(got.Records) != 0 {
				t.Fatalf("after the reset to latest: %q", values(got.Records))
			}
		})
	}
	// A position past the log end (the log was truncated below it) resets too.
	n := newGroupTestNode(t)
	n.addLocal(t, "a", 0).add(t, "0", "1")
	n.g.positions = []client.GroupPosition{{Topic: "a", Partition: 0, Offset: 9}}
	poll(t, n, "")
	if _, next := n.g.lastDone(); len(next) != 1 || next[0].Offset != 0 {
		t.Fatalf("PollDone %+v, want a-0 reset to 0", next)
	}
}

// Partitions led elsewhere are read from their leader's consume endpoint.
func TestGroupPollRemotePartitions(t *testing.T) {
	leader := newGroupTestNode(t)
	r0 := leader.addLocal(t, "r", 0)
	r0.add(t, "r0", "r1", "r2")
	gone := leader.addLocal(t, "r", 1)
	gone.add(t, "0", "1", "2", "3")
	if err := gone.log.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	r2 := leader.addLocal(t, "r", 2)

	n := newGroupTestNode(t)
	l0 := n.addLocal(t, "l", 0)
	l0.add(t, "l0", "l1", "l2")
	addr := strings.TrimPrefix(leader.url, "http://")
	for p := range int32(3) {
		n.b.remote[client.TopicPartition{Topic: "r", Partition: p}] = addr
	}
	n.g.positions = []client.GroupPosition{{Topic: "l", Partition: 0}, {Topic: "r", Partition: 0, Offset: 1}, {Topic: "r", Partition: 1}, {Topic: "r", Partition: 2}}

	got, _ := poll(t, n, "limit=3")
	if len(got.Records) != 3 {
		t.Fatalf("poll: %q", values(got.Records))
	}
	_, next := n.g.lastDone()
	if off, _ := positionOf(next, "r", 1); off != 3 {
		t.Fatalf("remote out-of-range position not reset to the log start: %+v", next)
	}
	// Drain: all of l-0 and r-0 from offset 1, each once.
	all := append([]polledRecord(nil), got.Records...)
	for range 5 {
		got, _ = poll(t, n, "")
		all = append(all, got.Records...)
	}
	vals := values(all)
	slices.Sort(vals)
	want := []string{"l-0@0=l0", "l-0@1=l1", "l-0@2=l2", "r-0@1=r1", "r-0@2=r2", "r-1@3=3"}
	if !slices.Equal(vals, want) {
		t.Fatalf("records:\n got %q\nwant %q", vals, want)
	}

	// A long-poll wakes when the remote leader gets a record.
	type result struct {
		r   pollReply
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, _, err := pollErr(n, "wait_ms=20000")
		done <- result{r, err}
	}()
	select {
	case <-r2.waiting: // the leader's consume is waiting on r-2
	case <-time.After(10 * time.Second):
		t.Fatal("the poll did not long-poll the remote leader")
	}
	r2.add(t, "late")
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatal(res.err)
		}
		if r := res.r.Records; len(r) != 1 || r[0].Value != "late" || r[0].Topic != "r" || r[0].Partition != 2 {
			t.Fatalf("woken poll: %q", values(r))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the poll did not wake")
	}

	// Records on a local partition end the leader's long-polls at once.
	select {
	case <-r2.waiting: // a token left by the last poll
	default:
	}
	select {
	case <-l0.waiting:
	default:
	}
	start := time.Now()
	go func() {
		r, _, err := pollErr(n, "wait_ms=20000")
		done <- result{r, err}
	}()
	for _, p := range []*fakePartition{r2, l0} {
		select {
		case <-p.waiting:
		case <-time.After(10 * time.Second):
			t.Fatal("the poll did not wait on every partition")
		}
	}
	l0.add(t, "l3")
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatal(res.err)
		}
		if r := res.r.Records; len(r) != 1 || r[0].Value != "l3" {
			t.Fatalf("woken poll: %q", values(r))
		}
		// The leader's long-poll would have lasted the request timeout (5 s).
		if took := time.Since(start); took > 4*time.Second {
			t.Fatalf("the poll took %v: the remote long-polls were not cut short", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the poll did not wake")
	}
}

func TestGroupPollDoneErrorWithholdsRecords(t *testing.T) {
	n := newGroupTestNodeWith(t, func(g *fakeGroups) Groups { return pollDoneFails{g} })
	n.addLocal(t, "a", 0).add(t, "x")
	n.g.positions = []client.GroupPosition{{Topic: "a", Partition: 0}}
	r := do(t, "GET", n.url+"/v1/groups/g/members/m/records", "")
	if r.status != 409 || r.errBody(t).ErrorCode != client.CodeIllegalGeneration {
		t.Fatalf("poll whose PollDone failed: %d %s", r.status, r.body)
	}
}

type pollDoneFails struct{ *fakeGroups }

func (pollDoneFails) PollDone(context.Context, string, string, int32, []client.GroupPosition) (int64, error) {
	return 0, Errorf(client.CodeIllegalGeneration, "the group rebalanced")
}

func TestMergeFair(t *testing.T) {
	mk := func(offsets ...int64) partFetch {
		f := partFetch{}
		for _, o := range offsets {
			f.recs = append(f.recs, logstore.Record{Offset: o, Value: []byte("v")})
		}
		return f
	}
	parts := []partFetch{mk(0, 1, 2), mk(), mk(10, 11)}
	picks, taken := mergeFair(parts, 4, 1<<20, 2)
	if !slices.Equal(picks, []int{2, 0, 2, 0}) || !slices.Equal(taken, []int{2, 0, 2}) {
		t.Fatalf("turn 2, limit 4: picks %v taken %v", picks, taken)
	}
	picks, _ = mergeFair(parts, 100, 1<<20, 0)
	if !slices.Equal(picks, []int{0, 2, 0, 2, 0}) {
		t.Fatalf("turn 0: picks %v", picks)
	}
	if picks, _ := mergeFair(nil, 10, 10, 0); len(picks) != 0 {
		t.Fatalf("no partitions: %v", picks)
	}
	// nextPosition: past what was taken; all taken goes to next (past empty ranges).
	f := mk(4, 5, 6)
	f.pos.Offset, f.next = 4, 9
	for _, c := range []struct {
		taken int
		want  int64
		moved bool
	}{{0, 4, false}, {2, 6, true}, {3, 9, true}} {
		if off, moved := f.nextPosition(c.taken); off != c.want || moved != c.moved {
			t.Errorf("nextPosition(%d) = %d, %v; want %d, %v", c.taken, off, moved, c.want, c.moved)
		}
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	hs := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(hs.URL, "http://")
	hs.Close()
	return addr
}

// A node whose metadata may be stale (a replaced leader, cut off or just
// healed) must not tell a consumer that an offset is past its log end: the
// real leader's log may be longer. The partition consume answers a
// retriable 503 and a group poll leaves the position where it is; below the
// log start (retention), and once the metadata is current, 416 and resets
// stand.
func TestStaleLeaderDoesNotAnswerPastItsEnd(t *testing.T) {
	n := newGroupTestNode(t)
	p := n.addLocal(t, "a", 0)
	p.add(t, "0", "1", "2", "3")
	if err := p.log.DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	consume := func(offset int) (int, client.ErrorBody) {
		resp, err := http.Get(fmt.Sprintf("%s/v1/topics/a/partitions/0/records?offset=%d", n.url, offset))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb client.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		return resp.StatusCode, eb
	}
	n.b.stale = true
	if st, eb := consume(9); st != http.StatusServiceUnavailable || eb.ErrorCode != client.CodeNotLeaderOrFollower || !eb.Retriable {
		t.Fatalf("past the end on a stale node: %d %+v, want 503 NOT_LEADER_OR_FOLLOWER", st, eb)
	}
	if st, eb := consume(0); st != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("below the log start on a stale node: %d %+v, want 416", st, eb)
	}
	n.g.positions = []client.GroupPosition{{Topic: "a", Partition: 0, Offset: 9}}
	poll(t, n, "")
	if _, next := n.g.lastDone(); len(next) != 0 {
		t.Fatalf("a stale node moved the position: PollDone %+v", next)
	}
	n.b.stale = false
	if st, eb := consume(9); st != http.StatusRequestedRangeNotSatisfiable || eb.HighWatermark == nil {
		t.Fatalf("past the end on a current node: %d %+v, want 416 with bounds", st, eb)
	}
	poll(t, n, "")
	if _, next := n.g.lastDone(); len(next) != 1 || next[0].Offset != 2 {
		t.Fatalf("PollDone %+v, want a-0 reset to the log start 2", next)
	}
}

// The poll passes the member's ack on (-1 without one) and names its reply
// with the poll id PollDone gave; a malformed ack is a 400.
func TestGroupPollAck(t *testing.T) {
	n := newGroupTestNode(t)
	n.addLocal(t, "a", 0).add(t, "x")
	n.g.positions = []client.GroupPosition{{Topic: "a", Partition: 0}}
	got, _ := poll(t, n, "")
	n.g.mu.Lock()
	ack := n.g.ack
	n.g.mu.Unlock()
	if ack != -1 || got.PollID != 1 {
		t.Fatalf("poll without ack: PollStart got ack %d, reply poll_id %d", ack, got.PollID)
	}
	got, _ = poll(t, n, "ack=1")
	n.g.mu.Lock()
	ack = n.g.ack
	n.g.mu.Unlock()
	if ack != 1 || got.PollID != 2 {
		t.Fatalf("poll with ack=1: PollStart got ack %d, reply poll_id %d", ack, got.PollID)
	}
	if r := do(t, http.MethodGet, n.url+"/v1/groups/g/members/m/records?ack=-3", ""); r.status != http.StatusBadRequest {
		t.Fatalf("ack=-3: %d %s", r.status, r.body)
	}
}
