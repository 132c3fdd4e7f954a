package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"weir/client"
	"weir/logstore"
)

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

// polled is the outcome of a poll run in the background.
type polled struct {
	r    pollReply
	took time.Duration
	err  error
}

// pollAsync polls in the background; the outcome comes on the channel.
func pollAsync(n *groupTestNode, query string) <-chan polled {
	done := make(chan polled, 1)
	go func() {
		r, took, err := pollErr(n, query)
		done <- polled{r, took, err}
	}()
	return done
}

// waitWaiting waits until a read found nothing new on each partition and
// waits for more.
func waitWaiting(t *testing.T, ps ...*fakePartition) {
	t.Helper()
	for _, p := range ps {
		select {
		case <-p.waiting:
		case <-time.After(10 * time.Second):
			t.Fatal("the poll did not wait on every partition")
		}
	}
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
	done := pollAsync(n, "wait_ms=20000")
	// Both partitions are waiting; data on one ends the poll.
	waitWaiting(t, a, b)
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

// Partitions led elsewhere are read from their leader (POST /internal/v1/read).
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
	done := pollAsync(n, "wait_ms=20000")
	waitWaiting(t, r2) // the leader's read found nothing new on r-2
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
	done = pollAsync(n, "wait_ms=20000")
	waitWaiting(t, r2, l0)
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
