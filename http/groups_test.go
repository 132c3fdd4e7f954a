package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
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
)

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

// addLocal gives the node the leader replica of topic-partition (edit, if
// given, changes its log's config).
func (n *groupTestNode) addLocal(t testing.TB, topic string, partition int32, edit ...func(*logstore.Config)) *fakePartition {
	p := newFakePartition(t, edit...)
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
