package httpapi

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"weir/client"
)

func asIs(g *fakeGroups) Groups { return g }

// shortRequests is a test node's option: a request timeout of 100 ms.
func shortRequests(o *Options) { o.RequestTimeout = 100 * time.Millisecond }

// A produce forwarded to its leader may take its timeout_ms there: the call
// is not cut at the request timeout plus a margin, and the leader is told
// how long the forwarding node waits.
func TestForwardedProduceWaitsItsTimeout(t *testing.T) {
	// Held past what one fixed timeout allowed.
	leader, told := slowLeader(t, forwardMargin+500*time.Millisecond, `{"offsets":[{"partition":0,"offset":7}]}`)
	n := newGroupTestNodeWith(t, asIs, shortRequests)
	n.b.remote[client.TopicPartition{Topic: "p", Partition: 0}] = leader

	start := time.Now()
	r := do(t, "POST", n.url+"/v1/topics/p/partitions/0/records?timeout_ms=20000", `{"records":[{"value":"x"}]}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"offset":7`) {
		t.Fatalf("forwarded produce after %v: %d %s", time.Since(start), r.status, r.body)
	}
	if got, want := <-told, "25100"; got != want { // timeout_ms + request timeout + margin
		t.Fatalf("%s: %q, want %s", ForwardTimeoutHeader, got, want)
	}
}

// slowLeader is a partition leader that answers a produce with reply after
// holding it for hold (less if the caller gives up); told receives the
// ForwardTimeoutHeader of each call.
func slowLeader(t *testing.T, hold time.Duration, reply string) (addr string, told <-chan string) {
	heard := make(chan string, 1)
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case heard <- r.Header.Get(ForwardTimeoutHeader):
		default:
		}
		_, _ = io.Copy(io.Discard, r.Body)
		held := time.NewTimer(hold)
		defer held.Stop()
		select {
		case <-held.C:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, reply)
	}))
	t.Cleanup(leader.Close)
	return strings.TrimPrefix(leader.URL, "http://"), heard
}

// The remote part of a produce split across nodes may take its timeout_ms
// at the leader and the forwarding margin besides, as a whole forwarded
// produce may: a leader that answers past timeout_ms is heard, its outcomes
// reported, not "the outcome is unknown".
func TestSplitProduceWaitsForItsLeader(t *testing.T) {
	leader, told := slowLeader(t, time.Second, `{"offsets":[{"partition":1,"offset":7,"timestamp":5}]}`)
	n := newGroupTestNodeWith(t, asIs, shortRequests)
	n.addLocal(t, "p", 0)
	n.b.remote[client.TopicPartition{Topic: "p", Partition: 1}] = leader

	start := time.Now()
	r := do(t, "POST", n.url+"/v1/topics/p/records?timeout_ms=200", `{"records":[{"partition":0,"value":"x"},{"partition":1,"value":"y"}]}`)
	got := decodeReply[client.ProduceResponse](t, r)
	if r.status != 200 || len(got.Offsets) != 2 || got.Offsets[0] != (client.ProduceOffset{Partition: 0, Offset: 0, Timestamp: got.Offsets[0].Timestamp}) ||
		got.Offsets[1] != (client.ProduceOffset{Partition: 1, Offset: 7, Timestamp: 5}) {
		t.Fatalf("split produce after %v: %d %s", time.Since(start), r.status, r.body)
	}
	if got, want := <-told, "5300"; got != want { // timeout_ms + request timeout + margin
		t.Fatalf("%s: %q, want %s", ForwardTimeoutHeader, got, want)
	}
}

// A group poll forwarded to the coordinator waits its wait_ms there, not
// just the coordinator's request timeout.
func TestForwardedPollWaitsItsWait(t *testing.T) {
	owner := newGroupTestNodeWith(t, asIs, shortRequests)
	p := owner.addLocal(t, "f", 0)
	owner.g.positions = []client.GroupPosition{{Topic: "f", Partition: 0}}
	first := newGroupTestNodeWith(t, asIs, shortRequests)
	first.g.notHere = &NotHereError{NodeID: 2, Addr: strings.TrimPrefix(owner.url, "http://"), What: "the coordinator of group \"g\""}

	done := pollAsync(first, "wait_ms=10000")
	waitWaiting(t, p) // the coordinator's poll found nothing to read
	select {
	case res := <-done:
		t.Fatalf("the forwarded poll answered before its wait was over, with no record: %+v %v", res.r, res.err)
	case <-time.After(time.Second): // ten times the request timeout
	}
	p.add(t, "late")
	select {
	case res := <-done:
		if res.err != nil || len(res.r.Records) != 1 || res.r.Records[0].Value != "late" {
			t.Fatalf("forwarded poll: %+v %v", res.r, res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the forwarded poll did not answer with the record")
	}
}

// A produce split across nodes sends each remote partition's records to its
// leader byte-exact: header values that are not UTF-8 too (as headers_b64),
// not turned into U+FFFD on the way.
func TestSplitProduceKeepsBinaryHeaders(t *testing.T) {
	leader := newGroupTestNode(t)
	leader.addLocal(t, "h", 1)
	n := newGroupTestNode(t)
	n.addLocal(t, "h", 0)
	n.b.remote[client.TopicPartition{Topic: "h", Partition: 1}] = strings.TrimPrefix(leader.url, "http://")

	bin := base64.StdEncoding.EncodeToString([]byte{0xfa, 0x00, 0xff})
	r := do(t, "POST", n.url+"/v1/topics/h/records", `{"records":[{"partition":0,"value":"here"},`+
		`{"partition":1,"value":"there","headers":{"txt":"plain"},"headers_b64":{"bin":"`+bin+`"}}]}`)
	if r.status != 200 {
		t.Fatalf("split produce: %d %s", r.status, r.body)
	}
	got := decodeReply[client.ConsumeResponse](t, do(t, "GET", leader.url+"/v1/topics/h/partitions/1/records?offset=0", ""))
	if len(got.Records) != 1 || got.Records[0].HeadersB64["bin"] != bin || got.Records[0].Headers["txt"] != "plain" {
		t.Fatalf("the leader stored %+v, want headers txt=plain and bin=%s (base64)", got.Records, bin)
	}
}
