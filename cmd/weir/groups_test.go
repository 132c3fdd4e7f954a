package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"weir/client"
)

// Consumer groups on real three-node clusters: members joining, leaving and
// going silent, the coordinator killed, fencing, resets, seeks and lag.
// The tests speak the REST API directly so that they check its contract.

// groupCall sends a JSON request to base+path and decodes a 2xx reply into
// out; any other status comes back as an *apiErr.
func groupCall(hc *http.Client, method, base, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", client.ContentTypeJSON)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var eb client.ErrorBody
		_ = json.Unmarshal(data, &eb)
		return &apiErr{status: resp.StatusCode, code: eb.ErrorCode, msg: string(data)}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: %w: %s", method, path, err, data)
		}
	}
	return nil
}

type apiErr struct {
	status int
	code   string
	msg    string
}

func (e *apiErr) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func errCode(err error) string {
	if e, ok := err.(*apiErr); ok {
		return e.code
	}
	return ""
}

// retriable reports errors a member should simply retry: transport
// failures and retriable API errors (coordinator moving or loading).
func retriable(err error) bool {
	e, ok := err.(*apiErr)
	return !ok || e.status == http.StatusServiceUnavailable || e.status == http.StatusGatewayTimeout
}

// member is one group member driven by the test, through one node's address.
type member struct {
	t      *testing.T
	hc     *http.Client
	base   string // the node it talks to; never changes
	group  string
	join   client.JoinGroupRequest
	id     string
	gen    int32
	assign []client.TopicPartition
	owners *ownership
	seen   map[string]int // value -> times consumed
	ack    int64          // poll_id of the last reply received
}

// ownership records which member each reply said held a partition in each
// generation, and every conflict.
type ownership struct {
	byGen     map[int32]map[client.TopicPartition]string
	conflicts []string
}

func (o *ownership) note(member string, gen int32, tps []client.TopicPartition) {
	if o.byGen[gen] == nil {
		o.byGen[gen] = map[client.TopicPartition]string{}
	}
	for _, tp := range tps {
		if prev, ok := o.byGen[gen][tp]; ok && prev != member {
			o.conflicts = append(o.conflicts, fmt.Sprintf("generation %d: %s-%d held by %s and %s", gen, tp.Topic, tp.Partition, prev, member))
		}
		o.byGen[gen][tp] = member
	}
}

func newMember(t *testing.T, base, group string, owners *ownership, join client.JoinGroupRequest) *member {
	m := &member{t: t, hc: &http.Client{Timeout: 15 * time.Second}, base: base, group: group, join: join,
		owners: owners, seen: map[string]int{}}
	t.Cleanup(m.hc.CloseIdleConnections)
	m.doJoin()
	return m
}

func (m *member) path(suffix string) string {
	return "/v1/groups/" + url.PathEscape(m.group) + "/members" + suffix
}

// doJoin joins (again, after a coordinator failover forgot the member).
func (m *member) doJoin() {
	m.t.Helper()
	pollUntil(m.t, 30*time.Second, "joining group "+m.group, func() error {
		var ma client.MemberAssignment
		err := groupCall(m.hc, http.MethodPost, m.base, m.path(""), m.join, &ma)
		if err != nil {
			if retriable(err) {
				return err
			}
			m.t.Fatalf("join: %v", err)
		}
		m.id, m.gen, m.assign, m.ack = ma.MemberID, ma.Generation, ma.Assignments, 0
		m.owners.note(m.id, m.gen, m.assign)
		return nil
	})
}

// heartbeat refreshes the member's generation and assignment.
func (m *member) heartbeat() error {
	var ma client.MemberAssignment
	if err := groupCall(m.hc, http.MethodPost, m.base, m.path("/"+url.PathEscape(m.id)+"/heartbeat"), nil, &ma); err != nil {
		return err
	}
	m.gen, m.assign = ma.Generation, ma.Assignments
	m.owners.note(m.id, m.gen, m.assign)
	return nil
}

// poll reads once; it re-joins when the coordinator no longer knows it.
func (m *member) poll(waitMS int) ([]client.ConsumedRecord, error) {
	var gr client.GroupRecords
	q := fmt.Sprintf("/%s/records?limit=100&wait_ms=%d&ack=%d", url.PathEscape(m.id), waitMS, m.ack)
	err := groupCall(m.hc, http.MethodGet, m.base, m.path(q), nil, &gr)
	if errCode(err) == client.CodeUnknownMemberID {
		m.doJoin()
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m.gen, m.assign, m.ack = gr.Generation, gr.Assignments, gr.PollID
	m.owners.note(m.id, m.gen, m.assign)
	for _, r := range gr.Records {
		var v string
		if err := json.Unmarshal(r.Value, &v); err != nil {
			m.t.Fatalf("record value %s: %v", r.Value, err)
		}
		if r.Partition == nil || !slices.Contains(m.assign, client.TopicPartition{Topic: r.Topic, Partition: *r.Partition}) {
			m.t.Fatalf("member %s got a record of %s-%v, not in its assignment %v", m.id, r.Topic, r.Partition, m.assign)
		}
		m.seen[v]++
	}
	return gr.Records, nil
}

func (m *member) leave() {
	m.t.Helper()
	if err := groupCall(m.hc, http.MethodDelete, m.base, m.path("/"+url.PathEscape(m.id)), nil, nil); err != nil {
		m.t.Fatalf("leave: %v", err)
	}
}

// drain polls all members in turn until none got a record for a few rounds
// and the union of what they saw covers want.
func drain(t *testing.T, members []*member, want []string, timeout time.Duration) {
	t.Helper()
	pollUntil(t, timeout, "the group to consume everything", func() error {
		for _, m := range members {
			if _, err := m.poll(50); err != nil && !retriable(err) {
				t.Fatalf("poll: %v", err)
			}
		}
		missing := 0
		for _, v := range want {
			seen := 0
			for _, m := range members {
				seen += m.seen[v]
			}
			if seen == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d records not consumed yet", missing, len(want))
		}
		return nil
	})
}

// stable heartbeats every member until they all report one generation and
// their assignments cover the topic's partitions exactly once.
func stable(t *testing.T, members []*member, partitions int) {
	t.Helper()
	pollUntil(t, 30*time.Second, "a stable assignment", func() error {
		gens := map[int32]bool{}
		count := 0
		for _, m := range members {
			if err := m.heartbeat(); err != nil {
				return err
			}
			gens[m.gen] = true
			count += len(m.assign)
		}
		if len(gens) != 1 || count != partitions {
			return fmt.Errorf("generations %v, %d partitions assigned", gens, count)
		}
		return nil
	})
}

func produceValues(t *testing.T, c *cluster, topic, prefix string, n int) []string {
	t.Helper()
	acked := c.mustProduce(topic, nil, prefix, n, client.AcksAll)
	out := make([]string, len(acked))
	for i, a := range acked {
		out[i] = a.Value
	}
	return out
}

func sizes(members []*member) []int {
	out := make([]int, len(members))
	for i, m := range members {
		out[i] = len(m.assign)
	}
	slices.Sort(out)
	return out
}

// TestConsumerGroupRebalances: three members share six partitions two each
// and consume everything exactly once; a fourth joins, one leaves, one goes
// silent past its session timeout; across it all every record is consumed
// at least once and no partition has two owners in one generation.
func TestConsumerGroupRebalances(t *testing.T) {
	c := startCluster(t, 3, failoverArgs()...)
	c.createTopic("orders", 6, 3, map[string]string{"min.insync.replicas": "2"})
	owners := &ownership{byGen: map[int32]map[client.TopicPartition]string{}}
	sess := int64(4000)
	join := client.JoinGroupRequest{Topics: []string{"orders"}, AutoOffsetReset: "earliest", SessionTimeoutMS: &sess}
	var ms []*member
	for i := range 3 {
		ms = append(ms, newMember(t, c.node(i+1).url(), "workers", owners, join))
	}
	stable(t, ms, 6)
	if got := sizes(ms); !slices.Equal(got, []int{2, 2, 2}) {
		t.Fatalf("three members on six partitions: %v", got)
	}
	batch1 := produceValues(t, c, "orders", "one", 300)
	drain(t, ms, batch1, 60*time.Second)
	for _, v := range batch1 { // a stable group: exactly once
		n := 0
		for _, m := range ms {
			n += m.seen[v]
		}
		if n != 1 {
			t.Fatalf("record %s consumed %d times without a rebalance", v, n)
		}
	}

	// A fourth member: 2,2,1,1.
	ms = append(ms, newMember(t, c.node(1).url(), "workers", owners, join))
	stable(t, ms, 6)
	if got := sizes(ms); !slices.Equal(got, []int{1, 1, 2, 2}) {
		t.Fatalf("four members on six partitions: %v", got)
	}
	batch2 := produceValues(t, c, "orders", "two", 200)
	drain(t, ms, batch2, 60*time.Second)

	// One leaves: its partitions move to the others.
	leaver := ms[0]
	held := leaver.assign
	leaver.leave()
	ms = ms[1:]
	stable(t, ms, 6)
	for _, tp := range held {
		if owners.byGen[ms[0].gen][tp] == leaver.id || owners.byGen[ms[0].gen][tp] == "" {
			t.Fatalf("%v did not move after %s left", tp, leaver.id)
		}
	}
	batch3 := produceValues(t, c, "orders", "three", 200)
	drain(t, ms, batch3, 60*time.Second)

	// One goes silent: removed after its session timeout, partitions moved.
	silent := ms[0]
	ms = ms[1:]
	pollUntil(t, 30*time.Second, "the silent member to be removed", func() error {
		for _, m := range ms {
			if _, err := m.poll(0); err != nil && !retriable(err) {
				t.Fatalf("poll: %v", err)
			}
		}
		var g client.Group
		if err := groupCall(ms[0].hc, http.MethodGet, ms[0].base, "/v1/groups/workers", nil, &g); err != nil {
			return err
		}
		for _, gm := range g.Members {
			if gm.MemberID == silent.id {
				return fmt.Errorf("%s is still a member", silent.id)
			}
		}
		return nil
	})
	if err := silent.heartbeat(); errCode(err) != client.CodeUnknownMemberID {
		t.Fatalf("the expired member's heartbeat: %v, want UNKNOWN_MEMBER_ID", err)
	}
	stable(t, ms, 6)
	batch4 := produceValues(t, c, "orders", "four", 200)
	drain(t, ms, batch4, 60*time.Second)

	for _, v := range slices.Concat(batch1, batch2, batch3, batch4) {
		n := silent.seen[v] + leaver.seen[v]
		for _, m := range ms {
			n += m.seen[v]
		}
		if n == 0 {
			t.Fatalf("record %s was never consumed", v)
		}
	}
	if len(owners.conflicts) > 0 {
		t.Fatalf("partitions with two owners in one generation:\n%s", strings.Join(owners.conflicts, "\n"))
	}
}

// TestConsumerGroupCoordinatorKilled: kill -9 the coordinator's node; the
// committed offsets survive and the members, still talking to the same
// node, re-join and resume from the committed positions.
func TestConsumerGroupCoordinatorKilled(t *testing.T) {
	c := startCluster(t, 3, failoverArgs()...)
	c.createTopic("events", 4, 3, map[string]string{"min.insync.replicas": "2"})
	owners := &ownership{byGen: map[int32]map[client.TopicPartition]string{}}
	join := client.JoinGroupRequest{Topics: []string{"events"}, AutoOffsetReset: "earliest"}
	// Find the coordinator, then talk to another node throughout.
	probe := newMember(t, c.node(1).url(), "survivors", owners, join)
	var g client.Group
	if err := groupCall(probe.hc, http.MethodGet, probe.base, "/v1/groups/survivors", nil, &g); err != nil {
		t.Fatal(err)
	}
	coord := int(g.Coordinator)
	via := c.node(coord%3 + 1).url()
	probe.leave()
	ms := []*member{newMember(t, via, "survivors", owners, join), newMember(t, via, "survivors", owners, join)}
	stable(t, ms, 4)
	first := produceValues(t, c, "events", "before", 200)
	drain(t, ms, first, 60*time.Second)
	for _, m := range ms { // the next poll auto-commits what the last one returned
		if _, err := m.poll(0); err != nil {
			t.Fatal(err)
		}
	}
	committed := func() (map[int32]int64, error) {
		var offs client.GroupOffsets
		if err := groupCall(ms[0].hc, http.MethodGet, via, "/v1/groups/survivors/offsets", nil, &offs); err != nil {
			return nil, err
		}
		out := map[int32]int64{}
		for _, o := range offs.Offsets {
			if o.CommittedOffset != nil {
				out[o.Partition] = *o.CommittedOffset
			}
		}
		return out, nil
	}
	before, err := committed()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, o := range before {
		total += o
	}
	if len(before) != 4 || total != 200 {
		t.Fatalf("committed before the kill: %v (sum %d, want 200 over 4 partitions)", before, total)
	}

	c.kill9(coord)
	killed := time.Now()
	var after map[int32]int64
	pollUntil(t, 60*time.Second, "the offsets on a new coordinator", func() error {
		var err error
		if after, err = committed(); err != nil {
			return err
		}
		if g := c.groupCoordinator(via, "survivors"); g == coord {
			return fmt.Errorf("node %d still named coordinator", coord)
		}
		return nil
	})
	t.Logf("coordinator failover: the committed offsets were served by a new coordinator %v after kill -9", time.Since(killed).Round(time.Millisecond))
	for p, o := range before {
		if after[p] != o {
			t.Fatalf("partition %d: committed %d before the kill, %d after", p, o, after[p])
		}
	}
	for _, m := range ms {
		m.seen = map[string]int{}
	}
	second := produceValues(t, c, "events", "after", 100)
	drain(t, ms, second, 90*time.Second)
	for _, m := range ms {
		for v := range m.seen {
			if strings.HasPrefix(v, "before-") {
				t.Fatalf("%s re-read %s: it did not resume from the committed offsets", m.id, v)
			}
		}
	}
	if len(owners.conflicts) > 0 {
		t.Fatalf("partitions with two owners in one generation:\n%s", strings.Join(owners.conflicts, "\n"))
	}
}

// groupCoordinator is the coordinator GET /v1/groups/{g} names via base (-1 on error).
func (c *cluster) groupCoordinator(base, group string) int {
	var g client.Group
	if err := groupCall(c.hc, http.MethodGet, base, "/v1/groups/"+url.PathEscape(group), nil, &g); err != nil {
		return -1
	}
	return int(g.Coordinator)
}

// TestConsumerGroupFencingResetSeekLag: a commit with an old generation is
// refused; a reset while members are active is refused; a dry-run reset
// changes nothing; a seek to a timestamp lands on the first record at or
// after it; lag is log end minus committed offset per partition.
func TestConsumerGroupFencingResetSeekLag(t *testing.T) {
	c := startCluster(t, 3, failoverArgs()...)
	c.createTopic("ticks", 2, 3, nil)
	base := c.node(2).url()
	owners := &ownership{byGen: map[int32]map[client.TopicPartition]string{}}
	off := false
	join := client.JoinGroupRequest{Topics: []string{"ticks"}, AutoOffsetReset: "earliest", AutoCommit: &off}
	a := newMember(t, base, "audit", owners, join)
	oldGen := a.gen
	b := newMember(t, base, "audit", owners, join)
	commit := func(m *member, gen int32, p int32, offset int64) error {
		return groupCall(m.hc, http.MethodPost, base, "/v1/groups/audit/offsets", client.CommitRequest{
			MemberID: m.id, Generation: &gen, Offsets: []client.CommitOffset{{Topic: "ticks", Partition: p, Offset: offset}}}, nil)
	}
	if err := commit(a, oldGen, 0, 1); errCode(err) != client.CodeIllegalGeneration {
		t.Fatalf("commit with generation %d after a rebalance to %d: %v, want ILLEGAL_GENERATION", oldGen, b.gen, err)
	}
	reset := func(dry *bool) (client.ResetOffsetsResponse, error) {
		var rr client.ResetOffsetsResponse
		err := groupCall(c.hc, http.MethodPost, base, "/v1/groups/audit/offsets/reset",
			client.ResetOffsetsRequest{Topic: "ticks", To: client.ResetToLatest, DryRun: dry}, &rr)
		return rr, err
	}
	no := false
	if _, err := reset(&no); errCode(err) != client.CodeNonEmptyGroup {
		t.Fatalf("reset with active members: %v, want NON_EMPTY_GROUP", err)
	}

	// Records one second apart on partition 0; seek to a time between two.
	base0 := time.Now().Add(-time.Hour).UnixMilli()
	recs := make([]client.ProduceRecord, 10)
	for i := range recs {
		ts := base0 + int64(i)*1000
		recs[i] = client.StringValue(fmt.Sprintf("tick-%d", i))
		recs[i].Timestamp = &ts
	}
	p0 := int32(0)
	cl := c.client()
	ctx := testCtx(t, 30*time.Second)
	if _, err := cl.Produce(ctx, "ticks", &p0, recs, client.AcksAll, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	holder := a
	if err := a.heartbeat(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(a.assign, client.TopicPartition{Topic: "ticks", Partition: 0}) {
		holder = b
	}
	if err := holder.heartbeat(); err != nil {
		t.Fatal(err)
	}
	seekTS := base0 + 4500
	var sr client.SeekResponse
	if err := groupCall(holder.hc, http.MethodPost, base, holder.path("/"+url.PathEscape(holder.id)+"/seek"),
		client.SeekRequest{Topic: "ticks", Partition: &p0, Timestamp: &seekTS}, &sr); err != nil {
		t.Fatal(err)
	}
	if len(sr.Positions) != 1 || sr.Positions[0].Offset != 5 {
		t.Fatalf("seek to %d: %+v, want offset 5 (the first record at or after it)", seekTS, sr.Positions)
	}
	var got []client.ConsumedRecord
	pollUntil(t, 20*time.Second, "records after the seek", func() error {
		recs, err := holder.poll(100)
		if err != nil {
			return err
		}
		got = append(got, recs...)
		if len(got) == 0 {
			return fmt.Errorf("nothing yet")
		}
		return nil
	})
	if got[0].Offset != 5 || got[0].Timestamp < seekTS {
		t.Fatalf("first record after the seek: offset %d ts %d, want offset 5 at or after %d", got[0].Offset, got[0].Timestamp, seekTS)
	}
	if err := commit(holder, holder.gen, 0, 7); err != nil {
		t.Fatalf("commit in the current generation: %v", err)
	}

	// Both leave; a dry run shows the reset and changes nothing.
	a.leave()
	b.leave()
	rr, err := reset(nil)
	if err != nil || !rr.DryRun || len(rr.Offsets) != 2 {
		t.Fatalf("dry-run reset: %+v %v", rr, err)
	}
	var offs client.GroupOffsets
	if err := groupCall(c.hc, http.MethodGet, base, "/v1/groups/audit/offsets", nil, &offs); err != nil {
		t.Fatal(err)
	}
	if len(offs.Offsets) != 1 || *offs.Offsets[0].CommittedOffset != 7 {
		t.Fatalf("offsets after a dry run: %+v, want partition 0 at 7 only", offs.Offsets)
	}

	// Lag = log end - committed, against the topic's own offsets.
	if err := groupCall(c.hc, http.MethodPost, base, "/v1/groups/audit/offsets",
		client.CommitRequest{Offsets: []client.CommitOffset{{Topic: "ticks", Partition: 1, Offset: 0}}}, nil); err != nil {
		t.Fatalf("standalone commit on an empty group: %v", err)
	}
	var tos client.TopicOffsets
	if err := c.getJSON(c.node(3), "/v1/topics/ticks/offsets", &tos); err != nil {
		t.Fatal(err)
	}
	var g client.Group
	if err := groupCall(c.hc, http.MethodGet, c.node(1).url(), "/v1/groups/audit", nil, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Offsets) != 2 {
		t.Fatalf("describe offsets: %+v", g.Offsets)
	}
	for _, o := range g.Offsets {
		hw := tos.Partitions[o.Partition].HighWatermark
		if o.LogEndOffset != hw || o.Lag == nil || *o.Lag != hw-*o.CommittedOffset {
			t.Fatalf("partition %d: log end %d lag %v committed %v; topic HW %d", o.Partition, o.LogEndOffset, o.Lag, o.CommittedOffset, hw)
		}
	}
	if g.Offsets[0].Lag == nil || *g.Offsets[0].Lag != 3 {
		t.Fatalf("partition 0 lag %v, want 10-7=3", g.Offsets[0].Lag)
	}

	// A real reset moves the offsets; deleting the empty group drops them.
	if rr, err = reset(&no); err != nil || rr.DryRun {
		t.Fatalf("reset: %+v %v", rr, err)
	}
	if err := groupCall(c.hc, http.MethodGet, base, "/v1/groups/audit/offsets", nil, &offs); err != nil {
		t.Fatal(err)
	}
	for _, o := range offs.Offsets {
		if *o.CommittedOffset != tos.Partitions[o.Partition].HighWatermark {
			t.Fatalf("after reset to latest: %+v", offs.Offsets)
		}
	}
	if err := groupCall(c.hc, http.MethodDelete, base, "/v1/groups/audit", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := groupCall(c.hc, http.MethodGet, base, "/v1/groups/audit", nil, &g); errCode(err) != client.CodeGroupIDNotFound {
		t.Fatalf("describe after delete: %v", err)
	}
	if len(owners.conflicts) > 0 {
		t.Fatalf("conflicts: %v", owners.conflicts)
	}
}

// metricValue sums the samples of /metrics lines starting with prefix.
func metricValue(t *testing.T, base, prefix string) (float64, bool) {
	t.Helper()
	st, body := call(t, "GET", base+"/metrics", "", nil)
	if st != http.StatusOK {
		t.Fatalf("/metrics: %d", st)
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// TestOffsetsTopicCompactedAndReloaded: __consumer_offsets is internal
// (listed only with ?internal=true), compaction keeps it small under many
// commits of the same partitions, and the latest commits survive a restart
// that reloads it; the group metrics are exported.
func TestOffsetsTopicCompactedAndReloaded(t *testing.T) {
	n := startNode(t, "--groups-offsets-partitions", "2", "--groups-offsets-segment-bytes", "4096",
		"--log-cleaner-backoff-ms", "100")
	u := n.url()
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	st, body := call(t, "POST", u+"/v1/topics", client.ContentTypeJSON, []byte(`{"name":"pay","partitions":3}`))
	mustJSON(t, st, body, http.StatusCreated, nil)
	for i := range 600 {
		req := client.CommitRequest{Offsets: []client.CommitOffset{
			{Topic: "pay", Partition: int32(i % 3), Offset: int64(i), Metadata: strings.Repeat("m", 40)}}}
		if err := groupCall(hc, http.MethodPost, u, "/v1/groups/ledger/offsets", req, nil); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	var tl client.TopicList
	st, body = call(t, "GET", u+"/v1/topics", "", nil)
	if mustJSON(t, st, body, 200, &tl); len(tl.Topics) != 1 {
		t.Fatalf("internal topic listed without ?internal=true: %s", body)
	}
	st, body = call(t, "GET", u+"/v1/topics?internal=true", "", nil)
	if mustJSON(t, st, body, 200, &tl); len(tl.Topics) != 2 || !tl.Topics[0].Internal {
		t.Fatalf("?internal=true: %s", body)
	}
	// 600 commits of ~150 bytes each: compaction must keep far less.
	waitFor(t, "compaction of __consumer_offsets", 30*time.Second, func() bool {
		size, ok := metricValue(t, u, `weir_log_size_bytes{partition="`)
		pay, _ := metricValue(t, u, `weir_log_size_bytes{partition="0",topic="pay"}`)
		return ok && size-pay < 20000
	})
	if v, ok := metricValue(t, u, "weir_group_commit_duration_seconds_count"); !ok || v < 600 {
		t.Fatalf("commit latency histogram count %v", v)
	}
	if _, ok := metricValue(t, u, `weir_group_members{group="ledger"}`); !ok {
		t.Fatal("no weir_group_members for the group")
	}
	n.stop()
	n.start()
	var offs client.GroupOffsets
	pollUntil(t, 30*time.Second, "the offsets after a restart", func() error {
		return groupCall(hc, http.MethodGet, u, "/v1/groups/ledger/offsets", nil, &offs)
	})
	for _, o := range offs.Offsets {
		if want := int64(597 + o.Partition); o.CommittedOffset == nil || *o.CommittedOffset != want {
			t.Fatalf("partition %d after restart: %v, want %d", o.Partition, o.CommittedOffset, want)
		}
	}
	if len(offs.Offsets) != 3 {
		t.Fatalf("offsets after restart: %+v", offs.Offsets)
	}
	// Lag: 5 records in pay-0, committed at 2.
	st, body = call(t, "POST", u+"/v1/topics/pay/partitions/0/records", client.ContentTypeJSON,
		[]byte(`{"records":[{"value":"a"},{"value":"b"},{"value":"c"},{"value":"d"},{"value":"e"}]}`))
	mustJSON(t, st, body, http.StatusOK, nil)
	if err := groupCall(hc, http.MethodPost, u, "/v1/groups/ledger/offsets",
		client.CommitRequest{Offsets: []client.CommitOffset{{Topic: "pay", Partition: 0, Offset: 2}}}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lag metric of pay-0", 30*time.Second, func() bool {
		v, ok := metricValue(t, u, `weir_group_lag{group="ledger",partition="0",topic="pay"}`)
		return ok && v == 3
	})
}
