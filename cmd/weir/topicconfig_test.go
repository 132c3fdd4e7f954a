package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"weir/client"
)

func countSegments(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, bounded by the deadline
	}
}

// anyPartition, as produceOne's partition, produces to the topic: the key
// (or, without one, the server) picks the partition.
const anyPartition = -1

// produceOne writes one record (key "" for none) to partition p of topic, or
// to the topic itself for anyPartition, and returns where it landed.
func produceOne(t *testing.T, u, topic string, p int, key, value string) client.ProduceOffset {
	t.Helper()
	rec := map[string]any{"value": value}
	if key != "" {
		rec["key"] = key
	}
	body, err := json.Marshal(map[string]any{"records": []any{rec}})
	if err != nil {
		t.Fatal(err)
	}
	path := u + "/v1/topics/" + topic + "/records"
	if p != anyPartition {
		path = fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records", u, topic, p)
	}
	st, out := call(t, "POST", path, "application/json", body)
	var pr client.ProduceResponse
	mustJSON(t, st, out, 200, &pr)
	return pr.Offsets[0]
}

// TestTopicConfigsAreHonoured checks that the log applies segment.bytes,
// retention.bytes, message.timestamp.type, max.message.bytes and compaction.
func TestTopicConfigsAreHonoured(t *testing.T) {
	n := startNode(t, "--log-retention-check-interval-ms", "100", "--log-cleaner-backoff-ms", "100")
	u := n.url()
	create := func(name, configs string) {
		st, body := call(t, "POST", u+"/v1/topics", "application/json", []byte(`{"name":"`+name+`","partitions":1,"configs":{`+configs+`}}`))
		mustJSON(t, st, body, 201, nil)
	}
	val := strings.Repeat("v", 200)

	// segment.bytes: small segments roll.
	create("segs", `"segment.bytes":"1024"`)
	for i := 0; i < 20; i++ {
		produceOne(t, u, "segs", anyPartition, "", val)
	}
	if got := countSegments(t, filepath.Join(n.dataDir, "segs-0")); got < 3 {
		t.Fatalf("segment.bytes=1024 gave %d segments for 20 records of 200 bytes", got)
	}

	// retention.bytes: old segments go and the log start moves up.
	create("ret", `"segment.bytes":"1024","retention.bytes":"2048"`)
	for i := 0; i < 30; i++ {
		produceOne(t, u, "ret", anyPartition, "", fmt.Sprintf("%03d-%s", i, val))
	}
	var offs client.TopicOffsets
	waitFor(t, "retention.bytes to delete segments", 20*time.Second, func() bool {
		st, body := call(t, "GET", u+"/v1/topics/ret/offsets", "", nil)
		mustJSON(t, st, body, 200, &offs)
		return offs.Partitions[0].LogStartOffset > 0
	})
	got, _ := readPartition(t, u, "ret", 0)
	if _, ok := got[offs.Partitions[0].LogStartOffset]; !ok || len(got) >= 30 {
		t.Fatalf("after retention: %d records readable from start %d", len(got), offs.Partitions[0].LogStartOffset)
	}

	// message.timestamp.type=LogAppendTime: the broker's clock wins.
	create("lat", `"message.timestamp.type":"LogAppendTime"`)
	before := time.Now().UnixMilli()
	st, body := call(t, "POST", u+"/v1/topics/lat/records", "application/json", []byte(`{"records":[{"value":"x","timestamp":1000}]}`))
	var pr client.ProduceResponse
	mustJSON(t, st, body, 200, &pr)
	if ts := pr.Offsets[0].Timestamp; ts < before-1000 {
		t.Fatalf("LogAppendTime reply kept the client's timestamp: %d", ts)
	}
	st, body = call(t, "GET", u+"/v1/topics/lat/partitions/0/records", "", nil)
	var cr client.ConsumeResponse
	mustJSON(t, st, body, 200, &cr)
	if cr.Records[0].Timestamp < before-1000 {
		t.Fatalf("LogAppendTime record stored with the client's timestamp: %d", cr.Records[0].Timestamp)
	}

	// max.message.bytes per topic.
	create("small", `"max.message.bytes":"100"`)
	st, body = call(t, "POST", u+"/v1/topics/small/records", "application/json", []byte(`{"records":[{"value":"`+val+`"}]}`))
	if st != 413 || !strings.Contains(string(body), client.CodeMessageTooLarge) {
		t.Fatalf("a 200-byte record on a max.message.bytes=100 topic: %d %s", st, body)
	}

	// cleanup.policy=compact: superseded values go, the latest per key stays, offsets stay.
	create("cmp", `"cleanup.policy":"compact","segment.bytes":"1024"`)
	latest := map[string]int64{}
	for i := 0; i < 60; i++ {
		k := fmt.Sprintf("k%d", i%5)
		latest[k] = produceOne(t, u, "cmp", anyPartition, k, fmt.Sprintf("%s-%d-%s", k, i, val[:50])).Offset
	}
	waitFor(t, "compaction", 20*time.Second, func() bool {
		got, _ := readPartition(t, u, "cmp", 0)
		return len(got) < 40
	})
	got, _ = readPartition(t, u, "cmp", 0)
	for k, off := range latest {
		if r, ok := got[off]; !ok || string(r.key) != k {
			t.Fatalf("compaction lost the latest value of %s at %d", k, off)
		}
	}
	// Compacted data survives a restart (recovery demands contiguous offsets).
	n.stop()
	n.restart()
	// The cleaner may have gone on meanwhile, but only ever removing superseded
	// records: what remains is a subset, unchanged at its offsets, with every latest value.
	again, _ := readPartition(t, u, "cmp", 0)
	for off, r := range again {
		if g, ok := got[off]; !ok || string(g.value) != string(r.value) {
			t.Fatalf("after restart offset %d holds %q, before it held %q", off, r.value, g.value)
		}
	}
	for k, off := range latest {
		if r, ok := again[off]; !ok || string(r.key) != k {
			t.Fatalf("after restart the latest value of %s at %d is gone", k, off)
		}
	}
	if _, err := os.Stat(filepath.Join(n.dataDir, "cmp-0")); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsAndHealth checks /metrics exposes the documented families and
// /v1/health reports a healthy single node.
func TestMetricsAndHealth(t *testing.T) {
	n := startNode(t)
	u := n.url()
	st, body := call(t, "POST", u+"/v1/topics", "application/json", []byte(`{"name":"m","partitions":2}`))
	mustJSON(t, st, body, 201, nil)
	produceOne(t, u, "m", anyPartition, "k", "v")
	call(t, "GET", u+"/v1/topics/m/partitions/0/records", "", nil)
	st, body = call(t, "GET", u+"/metrics", "", nil)
	if st != 200 {
		t.Fatalf("/metrics: %d", st)
	}
	for _, want := range []string{
		`weir_http_requests_total{method="POST",route="/v1/topics/:topic/records",status="200"}`,
		`weir_http_request_duration_seconds_bucket`,
		`weir_records_in_total{topic="m"} 1`,
		`weir_bytes_in_total{topic="m"}`,
		`weir_records_out_total{topic="m"}`,
		`weir_log_end_offset{partition="`,
		`weir_log_size_bytes{partition="`,
		`weir_high_watermark{partition="`,
		`weir_raft_state{state="Leader"} 1`,
		`weir_raft_commit_index`,
		`weir_ready 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
	var h client.Health
	st, body = call(t, "GET", u+"/v1/health", "", nil)
	mustJSON(t, st, body, 200, &h)
	if !h.Healthy || h.ControllerID != 1 || len(h.Reasons) != 0 {
		t.Fatalf("health: %s", body)
	}
	var cl client.Cluster
	st, body = call(t, "GET", u+"/v1/cluster", "", nil)
	mustJSON(t, st, body, 200, &cl)
	if cl.ClusterID == "" || cl.ControllerID != 1 || len(cl.Brokers) != 1 || cl.Brokers[0].State != "alive" || cl.Brokers[0].LeaderCount != 2 {
		t.Fatalf("cluster: %s", body)
	}
	for _, path := range []string{"/livez", "/readyz"} {
		if st, body := call(t, "GET", u+path, "", nil); st != 200 {
			t.Fatalf("%s: %d %s", path, st, body)
		}
	}
}
