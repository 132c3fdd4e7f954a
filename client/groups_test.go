package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// seenRequest is one request a test server received.
type seenRequest struct {
	method, path, query string
	body                string
}

// groupServer answers group calls with handle, recording every request.
type groupServer struct {
	mu     sync.Mutex
	seen   []seenRequest
	handle func(n int, r seenRequest, w http.ResponseWriter) // n counts requests from 1
}

func (s *groupServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := seenRequest{method: r.Method, path: r.URL.EscapedPath(), query: r.URL.RawQuery, body: string(body)}
	s.mu.Lock()
	s.seen = append(s.seen, req)
	n := len(s.seen)
	s.mu.Unlock()
	s.handle(n, req, w)
}

func (s *groupServer) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

func newGroupServer(t *testing.T, handle func(n int, r seenRequest, w http.ResponseWriter)) (*groupServer, *Client) {
	gs := &groupServer{handle: handle}
	srv := newServer(t, gs)
	return gs, newClient(t, []string{srv.URL})
}

func TestGroupCallShapes(t *testing.T) {
	gs, c := newGroupServer(t, func(_ int, r seenRequest, w http.ResponseWriter) {
		key := r.method + " " + r.path
		switch key {
		case "GET /v1/groups":
			writeJSON(w, 200, GroupList{Groups: []GroupSummary{{Group: "g", State: "Stable", Members: 2}}})
		case "GET /v1/groups/a%2Fb":
			writeJSON(w, 200, Group{Group: "a/b", State: "Empty", Generation: 4})
		case "POST /v1/groups/g/members":
			writeJSON(w, 201, MemberAssignment{MemberID: "m1", Generation: 1, State: "Stable", Assignments: []TopicPartition{{Topic: "t", Partition: 0}}})
		case "POST /v1/groups/g/members/m1/heartbeat":
			writeJSON(w, 200, MemberAssignment{MemberID: "m1", Generation: 2, State: "PreparingRebalance"})
		case "GET /v1/groups/g/members/m1/records":
			p := int32(0)
			writeJSON(w, 200, GroupRecords{MemberID: "m1", Generation: 2, Records: []ConsumedRecord{{Topic: "t", Partition: &p, Offset: 5, Value: json.RawMessage(`"v"`)}}})
		case "POST /v1/groups/g/members/m1/seek":
			writeJSON(w, 200, SeekResponse{Positions: []GroupPosition{{Topic: "t", Partition: 0, Offset: 0}}})
		case "DELETE /v1/groups/g/members/m1", "DELETE /v1/groups/g":
			w.WriteHeader(204)
		case "POST /v1/groups/g/offsets":
			writeJSON(w, 200, CommitResponse{Offsets: []CommitOffset{{Topic: "t", Partition: 0, Offset: 6}}})
		case "GET /v1/groups/g/offsets":
			writeJSON(w, 200, GroupOffsets{Group: "g", Offsets: []GroupOffset{{Topic: "t", LogEndOffset: 9}}})
		case "POST /v1/groups/g/offsets/reset":
			writeJSON(w, 200, ResetOffsetsResponse{Group: "g", DryRun: true, Offsets: []ResetOffsetRow{{Topic: "t", NewOffset: 0}}})
		default:
			writeError(w, 404, CodeNotFound, "no route for "+key, false)
		}
	})
	ctx := context.Background()
	list, err := c.ListGroups(ctx)
	if err != nil || len(list) != 1 || list[0].Members != 2 {
		t.Fatalf("ListGroups: %+v %v", list, err)
	}
	g, err := c.DescribeGroup(ctx, "a/b")
	if err != nil || g.Group != "a/b" || g.Generation != 4 {
		t.Fatalf("DescribeGroup: %+v %v", g, err)
	}
	st := int64(10000)
	ma, err := c.JoinGroup(ctx, "g", JoinGroupRequest{Topics: []string{"t"}, SessionTimeoutMS: &st, AutoOffsetReset: "earliest"})
	if err != nil || ma.MemberID != "m1" || len(ma.Assignments) != 1 {
		t.Fatalf("JoinGroup: %+v %v", ma, err)
	}
	if ma, err = c.Heartbeat(ctx, "g", "m1"); err != nil || ma.Generation != 2 || ma.State != "PreparingRebalance" {
		t.Fatalf("Heartbeat: %+v %v", ma, err)
	}
	recs, err := c.PollGroup(ctx, "g", "m1", GroupPollOptions{Limit: 10, WaitMS: 250, Encoding: EncodingText})
	if err != nil || len(recs.Records) != 1 || recs.Records[0].Topic != "t" || *recs.Records[0].Partition != 0 {
		t.Fatalf("PollGroup: %+v %v", recs, err)
	}
	to := int64(0)
	if sr, err := c.Seek(ctx, "g", "m1", SeekRequest{Topic: "t", Offset: &to}); err != nil || len(sr.Positions) != 1 {
		t.Fatalf("Seek: %+v %v", sr, err)
	}
	gen := int32(2)
	if cr, err := c.CommitOffsets(ctx, "g", CommitRequest{Offsets: []CommitOffset{{Topic: "t", Partition: 0, Offset: 6}}, MemberID: "m1", Generation: &gen}); err != nil || cr.Offsets[0].Offset != 6 {
		t.Fatalf("CommitOffsets: %+v %v", cr, err)
	}
	if o, err := c.GroupOffsets(ctx, "g"); err != nil || o.Offsets[0].LogEndOffset != 9 {
		t.Fatalf("GroupOffsets: %+v %v", o, err)
	}
	if rr, err := c.ResetOffsets(ctx, "g", ResetOffsetsRequest{Topic: "t", To: ResetToEarliest}); err != nil || !rr.DryRun {
		t.Fatalf("ResetOffsets: %+v %v", rr, err)
	}
	if err := c.LeaveGroup(ctx, "g", "m1"); err != nil {
		t.Fatalf("LeaveGroup: %v", err)
	}
	if err := c.DeleteGroup(ctx, "g"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	if _, err := c.PollGroup(ctx, "g", "", GroupPollOptions{}); err == nil {
		t.Fatal("a poll without a member id was sent")
	}

	want := []seenRequest{
		{"GET", "/v1/groups", "", ""},
		{"GET", "/v1/groups/a%2Fb", "", ""},
		{"POST", "/v1/groups/g/members", "", `{"topics":["t"],"session_timeout_ms":10000,"auto_offset_reset":"earliest"}`},
		{"POST", "/v1/groups/g/members/m1/heartbeat", "", ""},
		{"GET", "/v1/groups/g/members/m1/records", "encoding=text&limit=10&wait_ms=250", ""},
		{"POST", "/v1/groups/g/members/m1/seek", "", `{"topic":"t","offset":0}`},
		{"POST", "/v1/groups/g/offsets", "", `{"offsets":[{"topic":"t","partition":0,"offset":6}],"member_id":"m1","generation":2}`},
		{"GET", "/v1/groups/g/offsets", "", ""},
		{"POST", "/v1/groups/g/offsets/reset", "", `{"topic":"t","to":"earliest"}`},
		{"DELETE", "/v1/groups/g/members/m1", "", ""},
		{"DELETE", "/v1/groups/g", "", ""},
	}
	if got := gs.requests(); !slices.Equal(got, want) {
		t.Fatalf("requests:\n got %q\nwant %q", got, want)
	}
}

func TestGroupErrorMapping(t *testing.T) {
	_, c := newGroupServer(t, func(_ int, r seenRequest, w http.ResponseWriter) {
		writeError(w, 404, CodeUnknownMemberID, "member \"m9\" is not in group \"g\"", false)
	})
	_, err := c.Heartbeat(context.Background(), "g", "m9")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || !IsCode(err, CodeUnknownMemberID) ||
		!strings.Contains(err.Error(), `heartbeat of "m9" in group "g"`) || !strings.Contains(err.Error(), "is not in group") {
		t.Fatalf("error %v", err)
	}
}

// A join is retried only when the reply shows no member was added.
func TestJoinRetries(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		code      string
		retriable bool
		memberID  string
		calls     int // with testAttempts = 3 and every reply an error
	}{
		{"load in progress", 503, CodeCoordinatorLoadInProgress, true, "", 3},
		{"not coordinator", 503, CodeNotCoordinator, true, "", 3},
		{"coordinator unreachable", 503, CodeLeaderNotAvailable, true, "", 3},
		{"timed out", 504, CodeRequestTimedOut, true, "", 1},
		{"storage error", 500, CodeKafkaStorageError, true, "", 1},
		{"invalid", 400, CodeInvalidRequest, false, "", 1},
		{"known member, storage error", 500, CodeKafkaStorageError, true, "m1", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gs, c := newGroupServer(t, func(_ int, _ seenRequest, w http.ResponseWriter) {
				writeError(w, tc.status, tc.code, "no", tc.retriable)
			})
			_, err := c.JoinGroup(context.Background(), "g", JoinGroupRequest{Topics: []string{"t"}, MemberID: tc.memberID})
			if !IsCode(err, tc.code) {
				t.Fatalf("error %v, want %s", err, tc.code)
			}
			if n := len(gs.requests()); n != tc.calls {
				t.Fatalf("%d calls, want %d", n, tc.calls)
			}
		})
	}
	// Load in progress, then the join: one member.
	gs, c := newGroupServer(t, func(n int, _ seenRequest, w http.ResponseWriter) {
		if n < 3 {
			writeError(w, 503, CodeCoordinatorLoadInProgress, "loading", true)
			return
		}
		writeJSON(w, 201, MemberAssignment{MemberID: "m1", Generation: 1})
	})
	ma, err := c.JoinGroup(context.Background(), "g", JoinGroupRequest{Topics: []string{"t"}})
	if err != nil || ma.MemberID != "m1" || len(gs.requests()) != 3 {
		t.Fatalf("JoinGroup: %+v %v after %d calls", ma, err, len(gs.requests()))
	}
}

// Idempotent calls retry even errors whose outcome is unknown; a shifting
// reset does not.
func TestGroupWriteRetries(t *testing.T) {
	ctx := context.Background()
	no := false
	one := int64(1)
	cases := []struct {
		name  string
		call  func(*Client) error
		calls int
	}{
		{"heartbeat", func(c *Client) error { _, err := c.Heartbeat(ctx, "g", "m"); return err }, 3},
		{"commit", func(c *Client) error {
			_, err := c.CommitOffsets(ctx, "g", CommitRequest{Offsets: []CommitOffset{{Topic: "t"}}})
			return err
		}, 3},
		{"leave", func(c *Client) error { return c.LeaveGroup(ctx, "g", "m") }, 3},
		{"seek", func(c *Client) error { _, err := c.Seek(ctx, "g", "m", SeekRequest{To: "earliest"}); return err }, 3},
		{"reset to offset", func(c *Client) error {
			_, err := c.ResetOffsets(ctx, "g", ResetOffsetsRequest{Topic: "t", To: ResetToOffset, Value: &one, DryRun: &no})
			return err
		}, 3},
		{"reset shift", func(c *Client) error {
			_, err := c.ResetOffsets(ctx, "g", ResetOffsetsRequest{Topic: "t", To: ResetShift, Value: &one, DryRun: &no})
			return err
		}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gs, c := newGroupServer(t, func(_ int, _ seenRequest, w http.ResponseWriter) {
				writeError(w, 504, CodeRequestTimedOut, "slow", true)
			})
			if err := tc.call(c); !IsCode(err, CodeRequestTimedOut) {
				t.Fatalf("error %v", err)
			}
			if n := len(gs.requests()); n != tc.calls {
				t.Fatalf("%d calls, want %d", n, tc.calls)
			}
		})
	}
}

// fakeCoordinator is a small coordinator for GroupConsumer tests: members
// join with ids m1, m2...; a poll of a member returns the next record of
// t-0 and moves its position; forgetAll drops every member (a failover).
type fakeCoordinator struct {
	mu         sync.Mutex
	next       int
	members    map[string]bool
	generation int32
	position   int64
	loading    int // the next polls answered with COORDINATOR_LOAD_IN_PROGRESS
	joins      int
	commits    []CommitRequest
	leaves     []string
}

func (f *fakeCoordinator) remaining() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loading
}

func (f *fakeCoordinator) forgetAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.members)
}

func (f *fakeCoordinator) handle(_ int, r seenRequest, w http.ResponseWriter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := strings.Split(strings.TrimPrefix(r.path, "/v1/groups/"), "/")
	switch {
	case r.method == "POST" && len(parts) == 2 && parts[1] == "members":
		f.next++
		f.joins++
		f.generation++
		id := fmt.Sprintf("m%d", f.next)
		f.members[id] = true
		writeJSON(w, 201, MemberAssignment{MemberID: id, Generation: f.generation, State: "Stable",
			Assignments: []TopicPartition{{Topic: "t", Partition: 0}}})
	case r.method == "GET" && len(parts) == 4 && parts[3] == "records":
		if f.loading > 0 {
			f.loading--
			writeError(w, 503, CodeCoordinatorLoadInProgress, "loading the group", true)
			return
		}
		if !f.members[parts[2]] {
			writeError(w, 404, CodeUnknownMemberID, "unknown member "+parts[2], false)
			return
		}
		p := int32(0)
		rec := ConsumedRecord{Topic: "t", Partition: &p, Offset: f.position, Value: json.RawMessage(`"x"`)}
		f.position++
		writeJSON(w, 200, GroupRecords{MemberID: parts[2], Generation: f.generation,
			Assignments: []TopicPartition{{Topic: "t", Partition: 0}}, Records: []ConsumedRecord{rec}})
	case r.method == "POST" && len(parts) == 2 && parts[1] == "offsets":
		var req CommitRequest
		if err := json.Unmarshal([]byte(r.body), &req); err != nil {
			writeError(w, 400, CodeInvalidRequest, err.Error(), false)
			return
		}
		if req.Generation == nil || *req.Generation != f.generation {
			writeError(w, 409, CodeIllegalGeneration, "stale generation", false)
			return
		}
		f.commits = append(f.commits, req)
		writeJSON(w, 200, CommitResponse{Offsets: req.Offsets})
	case r.method == "DELETE" && len(parts) == 3:
		if !f.members[parts[2]] {
			writeError(w, 404, CodeUnknownMemberID, "unknown member", false)
			return
		}
		delete(f.members, parts[2])
		f.leaves = append(f.leaves, parts[2])
		w.WriteHeader(204)
	default:
		writeError(w, 404, CodeNotFound, "no route", false)
	}
}

func newFakeCoordinator(t *testing.T) (*fakeCoordinator, *Client) {
	f := &fakeCoordinator{members: map[string]bool{}}
	_, c := newGroupServer(t, f.handle)
	return f, c
}

func TestGroupConsumerRejoinsAfterFailover(t *testing.T) {
	f, c := newFakeCoordinator(t)
	gc := NewGroupConsumer(c, "g", JoinGroupRequest{Topics: []string{"t"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if gc.MemberID() != "" {
		t.Fatal("joined before the first poll")
	}
	recs, err := gc.Poll(ctx, 100)
	if err != nil || len(recs) != 1 || recs[0].Offset != 0 {
		t.Fatalf("first poll: %+v %v", recs, err)
	}
	if gc.MemberID() != "m1" || gc.Generation() != 1 || len(gc.Assignments()) != 1 {
		t.Fatalf("after the first poll: %s gen %d %v", gc.MemberID(), gc.Generation(), gc.Assignments())
	}
	f.forgetAll() // a new coordinator knows no members
	recs, err = gc.Poll(ctx, 100)
	if err != nil || len(recs) != 1 || recs[0].Offset != 1 {
		t.Fatalf("poll after the failover: %+v %v", recs, err)
	}
	if gc.MemberID() != "m2" || gc.Generation() != 2 || f.joins != 2 {
		t.Fatalf("after the rejoin: %s gen %d, %d joins", gc.MemberID(), gc.Generation(), f.joins)
	}
	// Commit: the offset after the last record, in the generation it was read in.
	if err := gc.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if len(f.commits) != 1 || f.commits[0].MemberID != "m2" || *f.commits[0].Generation != 2 ||
		!slices.Equal(f.commits[0].Offsets, []CommitOffset{{Topic: "t", Partition: 0, Offset: 2}}) {
		t.Fatalf("commits: %+v", f.commits)
	}
	// Close commits (auto-commit) and leaves.
	if _, err := gc.Poll(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if err := gc.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(f.commits) != 2 || f.commits[1].Offsets[0].Offset != 3 || !slices.Equal(f.leaves, []string{"m2"}) {
		t.Fatalf("Close: commits %+v, leaves %v", f.commits, f.leaves)
	}
	if gc.MemberID() != "" {
		t.Fatal("still a member after Close")
	}
	if err := gc.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestGroupConsumerRetriesLoadInProgress(t *testing.T) {
	f, c := newFakeCoordinator(t)
	f.loading = 2*testAttempts + 1 // more than one call's own retries
	gc := NewGroupConsumer(c, "", JoinGroupRequest{Topics: []string{"t"}, AutoCommit: new(bool)})
	if gc.Group() != DefaultGroup {
		t.Fatalf("group %q, want the default", gc.Group())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := gc.Poll(ctx, 0)
	if err != nil || len(recs) != 1 {
		t.Fatalf("poll through the load: %+v %v", recs, err)
	}
	if f.loading != 0 || f.joins != 1 {
		t.Fatalf("loading %d left, %d joins", f.loading, f.joins)
	}
	// Without auto-commit, Close only leaves.
	if err := gc.Close(ctx); err != nil || len(f.commits) != 0 || len(f.leaves) != 1 {
		t.Fatalf("Close: %v, commits %+v, leaves %v", err, f.commits, f.leaves)
	}

	// Retries end with the context.
	f.loading = 1 << 30
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	_, err = gc.Poll(short, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("poll under a permanent load: %v", err)
	}
	if left := f.remaining(); left > 1<<30-2*testAttempts {
		t.Fatalf("only %d polls under a permanent load: the consumer did not retry", 1<<30-left)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("retries outlived the context: %v", took)
	}
}

func TestGroupConsumerStopsOnRefusal(t *testing.T) {
	gs, c := newGroupServer(t, func(_ int, _ seenRequest, w http.ResponseWriter) {
		writeError(w, 400, CodeInvalidRequest, "topics[0]: a topic name is required", false)
	})
	gc := NewGroupConsumer(c, "g", JoinGroupRequest{Topics: []string{""}})
	_, err := gc.Poll(context.Background(), 0)
	if !IsCode(err, CodeInvalidRequest) || len(gs.requests()) != 1 {
		t.Fatalf("poll with a refused join: %v after %d calls", err, len(gs.requests()))
	}
}
