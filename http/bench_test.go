package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"weir/client"
)

// benchNode is a node with partitions "b"-0..n-1 of 2,000 records of 200
// bytes each, in batches of 500, for the read path's benchmarks.
func benchNode(b *testing.B, partitions int) *groupTestNode {
	b.Helper()
	n := newGroupTestNode(b)
	value := `{"v":"` + strings.Repeat("x", 190) + `"}`
	vals := make([]string, 500)
	for i := range vals {
		vals[i] = value
	}
	for p := range int32(partitions) {
		fp := n.addLocal(b, "b", p)
		for range 4 {
			fp.add(b, vals...)
		}
	}
	return n
}

func serve(b *testing.B, h http.Handler, url string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	if rec.Code != 200 {
		b.Fatalf("%s: %d %s", url, rec.Code, rec.Body)
	}
}

// BenchmarkConsume reads 500 records (one batch) per request.
func BenchmarkConsume(b *testing.B) {
	n := benchNode(b, 1)
	h := n.srv.Handler()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		serve(b, h, fmt.Sprintf("/v1/topics/b/partitions/0/records?offset=%d&limit=500", (i%4)*500))
	}
}

// BenchmarkGroupPoll reads 500 records from 8 partitions per request.
func BenchmarkGroupPoll(b *testing.B) {
	n := benchNode(b, 8)
	h := n.srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		n.g.mu.Lock()
		n.g.positions = n.g.positions[:0]
		for p := range int32(8) {
			n.g.positions = append(n.g.positions, client.GroupPosition{Topic: "b", Partition: p})
		}
		n.g.mu.Unlock()
		serve(b, h, "/v1/groups/g/members/m/records?limit=500")
	}
}

// BenchmarkDecodeCommitBody: a commit body's strict decode (its check
// against the request's type, then encoding/json).
func BenchmarkDecodeCommitBody(b *testing.B) {
	body := []byte(`{"offsets":[{"topic":"orders","partition":0,"offset":12,"metadata":"m"},` +
		`{"topic":"orders","partition":1,"offset":7}],"member_id":"m-1","generation":5}`)
	var sh shapes // as a server's: warm after the first body
	b.ReportAllocs()
	for b.Loop() {
		var req client.CommitRequest
		if err := sh.decodeStrict(body, &req); err != nil {
			b.Fatal(err)
		}
	}
}
