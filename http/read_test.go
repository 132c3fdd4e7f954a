package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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

// addRecords appends one batch holding recs (their offsets are assigned).
func (p *fakePartition) addRecords(t *testing.T, recs ...logstore.Record) {
	t.Helper()
	batch, err := p.log.Codecs().EncodeBatch(nil, recs, logstore.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(context.Background(), batch, replication.AcksAll); err != nil {
		t.Fatal(err)
	}
}

// corrupt flips the last byte (inside the CRC's span) of the batch holding
// offset in the log's first segment, as a disk that went bad would.
func (p *fakePartition) corrupt(t *testing.T, offset int64) {
	t.Helper()
	res, err := p.log.Read(0, 1<<20, p.log.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	pos := -1
	at := 0
	if err := logstore.Batches(res.Data, func(b logstore.Batch) error {
		if b.BaseOffset() <= offset && offset <= b.LastOffset() {
			pos = at + len(b) - 1
		}
		at += len(b)
		return nil
	}); err != nil || pos < 0 {
		t.Fatalf("no batch holds offset %d (%v)", offset, err)
	}
	f, err := os.OpenFile(filepath.Join(p.dir, fmt.Sprintf("%020d.log", 0)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, int64(pos)); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, int64(pos)); err != nil {
		t.Fatal(err)
	}
}

// openStream GETs an NDJSON stream and hands its non-blank lines over; the
// channel closes when the server ends the stream.
func openStream(t *testing.T, url string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	lines := make(chan string)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			if l := sc.Text(); l != "" {
				select {
				case lines <- l:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return lines
}

// nextLine is the stream's next line; ok is false once the stream ended.
func nextLine(t *testing.T, lines <-chan string) (line string, ok bool) {
	t.Helper()
	select {
	case l, ok := <-lines:
		return l, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no line from the stream in 10 s")
		return "", false
	}
}

// streamLine is a line of a follow stream: a record or an error.
type streamLine struct {
	client.ConsumedRecord
	client.ErrorBody
}

func parseLine(t *testing.T, l string) streamLine {
	t.Helper()
	var sl streamLine
	if err := json.Unmarshal([]byte(l), &sl); err != nil {
		t.Fatalf("stream line %q: %v", l, err)
	}
	return sl
}

func textValue(t *testing.T, r client.ConsumedRecord) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(r.Value, &s); err != nil {
		t.Fatalf("value %s: %v", r.Value, err)
	}
	return s
}

// A batch that cannot be decoded is an error every reader sees, never a
// skip: consume answers the records before it and then
// KAFKA_STORAGE_ERROR, a stream writes them and an error line and ends, a
// group poll answers the error and keeps the position; read here or
// through another node alike.
func TestDamagedBatchIsAnErrorOnEveryReadPath(t *testing.T) {
	leader := newGroupTestNode(t)
	p := leader.addLocal(t, "d", 0)
	p.add(t, "v0", "v1")
	p.add(t, "v2")
	p.add(t, "v3")
	p.corrupt(t, 2)
	other := newGroupTestNode(t)
	other.b.remote[client.TopicPartition{Topic: "d", Partition: 0}] = strings.TrimPrefix(leader.url, "http://")

	r := do(t, "GET", leader.url+"/v1/topics/d/partitions/0/records?offset=0&encoding=text", "")
	cr := decodeReply[client.ConsumeResponse](t, r)
	if r.status != 200 || len(cr.Records) != 2 || cr.NextOffset != 2 {
		t.Fatalf("consume from 0: %d %s, want the 2 records before the damage and next_offset 2", r.status, r.body)
	}
	r = do(t, "GET", leader.url+"/v1/topics/d/partitions/0/records?offset=2&wait_ms=5000", "")
	if eb := r.errBody(t); r.status != 500 || eb.ErrorCode != client.CodeKafkaStorageError || !eb.Retriable || !strings.Contains(eb.Message, "offset 2") {
		t.Fatalf("consume at the damage: %d %s", r.status, r.body)
	}

	for _, n := range []*groupTestNode{leader, other} {
		lines := openStream(t, n.url+"/v1/topics/d/records?follow=true&encoding=text")
		var vals []string
		for {
			l, ok := nextLine(t, lines)
			if !ok {
				t.Fatalf("stream on node %s ended without an error line after %q", n.url, vals)
			}
			sl := parseLine(t, l)
			if sl.ErrorCode != "" {
				if sl.ErrorCode != client.CodeKafkaStorageError || sl.Partition == nil || *sl.Partition != 0 || sl.Offset != 2 {
					t.Fatalf("error line %s", l)
				}
				break
			}
			vals = append(vals, textValue(t, sl.ConsumedRecord))
		}
		if !slices.Equal(vals, []string{"v0", "v1"}) {
			t.Fatalf("stream on %s: %q before the error line", n.url, vals)
		}
		if l, ok := nextLine(t, lines); ok {
			t.Fatalf("stream on %s went on after the error line: %s", n.url, l)
		}

		n.g.mu.Lock()
		n.g.positions = []client.GroupPosition{{Topic: "d", Partition: 0}}
		n.g.mu.Unlock()
		if got, _ := poll(t, n, ""); !slices.Equal(values(got.Records), []string{"d-0@0=v0", "d-0@1=v1"}) {
			t.Fatalf("first poll on %s: %q", n.url, values(got.Records))
		}
		for range 2 {
			r := do(t, "GET", n.url+"/v1/groups/g/members/m/records?wait_ms=5000", "")
			if eb := r.errBody(t); r.status != 500 || eb.ErrorCode != client.CodeKafkaStorageError || !eb.Retriable {
				t.Fatalf("poll at the damage on %s: %d %s", n.url, r.status, r.body)
			}
		}
		n.g.mu.Lock()
		pos, _ := positionOf(n.g.positions, "d", 0)
		n.g.mu.Unlock()
		if pos != 2 {
			t.Fatalf("the position moved to %d", pos)
		}
	}
}

// A follow stream reads partitions added to the topic while it runs.
func TestStreamPicksUpAddedPartitions(t *testing.T) {
	n := newGroupTestNode(t)
	p0 := n.addLocal(t, "g", 0)
	p0.add(t, "a")
	lines := openStream(t, n.url+"/v1/topics/g/records?follow=true&from=latest&encoding=text")
	<-p0.waiting // the stream read p0 up to its end
	p0.add(t, "b")
	if l, _ := nextLine(t, lines); textValue(t, parseLine(t, l).ConsumedRecord) != "b" {
		t.Fatalf("first line %s", l)
	}
	p2 := n.addLocal(t, "g", 2) // partitions 1 and 2, one of them with no leader yet
	p2.add(t, "c", "d")
	seen := map[string]int32{}
	for len(seen) < 2 {
		l, _ := nextLine(t, lines)
		sl := parseLine(t, l)
		if sl.Partition == nil {
			t.Fatalf("line without a partition: %s", l)
		}
		seen[textValue(t, sl.ConsumedRecord)] = *sl.Partition
	}
	if seen["c"] != 2 || seen["d"] != 2 {
		t.Fatalf("records of the added partition: %v", seen)
	}
}

// A poll over many partitions runs at most maxReadsInFlight reads at once.
func TestGroupPollBoundsConcurrentReads(t *testing.T) {
	n := newGroupTestNode(t)
	var cur, peak atomic.Int64
	over := make(chan struct{})
	var once sync.Once
	hold := func() {
		c := cur.Add(1)
		defer cur.Add(-1)
		for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
		}
		if c > maxReadsInFlight {
			once.Do(func() { close(over) })
		}
		// Held a moment so that reads running at once overlap; released at
		// once when too many run.
		select {
		case <-over:
		case <-time.After(20 * time.Millisecond):
		}
	}
	const parts = 40
	for i := range int32(parts) {
		p := n.addLocal(t, "c", i)
		p.add(t, fmt.Sprint(i))
		p.inRead = hold
		n.g.positions = append(n.g.positions, client.GroupPosition{Topic: "c", Partition: i})
	}
	got, _ := poll(t, n, "limit=1000")
	if len(got.Records) != parts {
		t.Fatalf("%d records, want %d", len(got.Records), parts)
	}
	if pk := peak.Load(); pk > maxReadsInFlight || pk < 2 {
		t.Fatalf("%d reads ran at once, want 2 to %d", pk, maxReadsInFlight)
	}
}

// A follow stream waits on the leader of a partition led elsewhere (a
// long-poll there) instead of asking it again and again.
func TestStreamLongPollsRemotePartitions(t *testing.T) {
	leader := newGroupTestNode(t)
	r0 := leader.addLocal(t, "r", 0)
	n := newGroupTestNode(t)
	n.b.remote[client.TopicPartition{Topic: "r", Partition: 0}] = strings.TrimPrefix(leader.url, "http://")
	lines := openStream(t, n.url+"/v1/topics/r/records?follow=true&encoding=text")
	<-r0.waiting // the stream's read reached the leader and found nothing
	r0.add(t, "first")
	if l, _ := nextLine(t, lines); textValue(t, parseLine(t, l).ConsumedRecord) != "first" {
		t.Fatalf("line %s", l)
	}
	before := leader.reads.Load()
	select {
	case l := <-lines:
		t.Fatalf("unexpected line %s", l)
	case <-time.After(time.Second): // a second with nothing to read
	}
	if got := leader.reads.Load() - before; got > 2 {
		t.Fatalf("the stream asked the leader %d times in a quiet second: it polls instead of waiting there", got)
	}
	start := time.Now()
	r0.add(t, "second")
	if l, _ := nextLine(t, lines); textValue(t, parseLine(t, l).ConsumedRecord) != "second" {
		t.Fatalf("line %s", l)
	}
	if took := time.Since(start); took > streamRemoteWait/2 {
		t.Fatalf("the record came after %v: the wait on the leader was not woken by it", took)
	}
}

// A stream without follow reads every partition to its end through another
// node, those the leader's reply had no room for too: the leader leaves them
// out of a full reply (unread, HW -1), which is not "caught up".
func TestStreamReadsPartitionsTheLeaderLeftOut(t *testing.T) {
	big := func(n int) []string { // a batch of n records of 700 KB
		vals := make([]string, n)
		for i := range vals {
			vals[i] = strings.Repeat("x", 700<<10)
		}
		return vals
	}
	bigSegments := func(c *logstore.Config) { c.SegmentBytes = 4 << 20 } // room for batches over 1 MB
	leader := newGroupTestNode(t)
	n := newGroupTestNode(t)
	addr := strings.TrimPrefix(leader.url, "http://")
	for _, c := range []struct {
		topic  string
		p0, p1 []string
	}{
		// The reply's bound (1 MB a partition: 2 MB) is spent on p-0's batch.
		{"spent", big(3), []string{"small"}},
		// p-1's batch is over what is left of it: only a reply's first may be.
		{"over", []string{"small"}, big(2)},
	} {
		leader.addLocal(t, c.topic, 0, bigSegments).add(t, c.p0...)
		leader.addLocal(t, c.topic, 1, bigSegments).add(t, c.p1...)
		for p := range int32(2) {
			n.b.remote[client.TopicPartition{Topic: c.topic, Partition: p}] = addr
		}
		lines := openStream(t, n.url+"/v1/topics/"+c.topic+"/records?encoding=text")
		got := map[int32]int{}
		for {
			l, ok := nextLine(t, lines)
			if !ok {
				break
			}
			sl := parseLine(t, l)
			if sl.ErrorCode != "" || sl.Partition == nil {
				t.Fatalf("%s: line %.200s", c.topic, l)
			}
			got[*sl.Partition]++
		}
		if got[0] != len(c.p0) || got[1] != len(c.p1) {
			t.Fatalf("%s: records by partition %v, want %d and %d", c.topic, got, len(c.p0), len(c.p1))
		}
	}
}
