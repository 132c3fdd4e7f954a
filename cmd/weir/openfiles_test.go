package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"weir/client"
	"weir/logstore"
)

// segmentFilesOpen counts the descriptors a process holds on segment files.
func segmentFilesOpen(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err == nil && (strings.HasSuffix(target, ".log") || strings.HasSuffix(target, ".index") || strings.HasSuffix(target, ".timeindex")) {
			n++
		}
	}
	return n
}

// partitionDirs lists the partition directories of a data dir.
func partitionDirs(t *testing.T, dataDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if _, _, ok := logstore.ParsePartitionDir(e.Name()); ok && e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func consumeValues(t *testing.T, u, topic string, p int) []string {
	t.Helper()
	recs, _ := readPartition(t, u, topic, p)
	var out []string
	for off := int64(0); off < int64(len(recs)); off++ {
		out = append(out, string(recs[off].value))
	}
	return out
}

// A node whose open-files limit is 256 creates a topic of 2,000 partitions
// (6,000 segment files, were they all open): the create answers 201, produce
// and consume go on on another topic and on the new one, the data dir holds a
// directory for each partition and no other, the segment files open stay
// within the budget (half the limit), and the node restarts within the limit.
// Before, each segment kept its files open: the create answered 500 with the
// topic half made, other produces failed, and the restart could not open the
// logs.
func TestWideTopicUnderLowFileLimit(t *testing.T) {
	const limit, partitions = 256, 2000
	n := newNode(t)
	n.fileLimit = limit
	n.start()
	u := n.url()
	st, body := call(t, "POST", u+"/v1/topics", "application/json", []byte(`{"name":"steady","partitions":1}`))
	mustJSON(t, st, body, 201, nil)
	produceOne(t, u, "steady", 0, "", "before")

	st, body = call(t, "POST", u+"/v1/topics", "application/json", []byte(fmt.Sprintf(`{"name":"wide","partitions":%d}`, partitions)))
	var topic client.Topic
	mustJSON(t, st, body, 201, &topic)
	if len(topic.Partitions) != partitions {
		t.Fatalf("created %d partitions, want %d", len(topic.Partitions), partitions)
	}
	produceOne(t, u, "steady", 0, "", "after")
	if got := consumeValues(t, u, "steady", 0); strings.Join(got, ",") != "before,after" {
		t.Fatalf("steady-0 holds %v", got)
	}
	for _, p := range []int{0, partitions / 2, partitions - 1} {
		produceOne(t, u, "wide", p, "", fmt.Sprintf("v%d", p))
		if got := consumeValues(t, u, "wide", p); len(got) != 1 || got[0] != fmt.Sprintf("v%d", p) {
			t.Fatalf("wide-%d holds %v", p, got)
		}
	}
	if open := segmentFilesOpen(t, n.pid()); open > limit/2 {
		t.Fatalf("%d segment files open, budget %d", open, limit/2)
	}
	want := []string{"steady-0"}
	for p := range partitions {
		want = append(want, logstore.PartitionDir("wide", int32(p)))
	}
	sort.Strings(want)
	if got := partitionDirs(t, n.dataDir); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%d partition directories, want %d (one per partition, no orphans)", len(got), len(want))
	}

	n.stop()
	n.start()
	if got := consumeValues(t, u, "wide", partitions-1); len(got) != 1 {
		t.Fatalf("after the restart wide-%d holds %v", partitions-1, got)
	}
	produceOne(t, u, "steady", 0, "", "restarted")
}

// A partition whose log cannot be created on the node (a file is in the way
// of its directory) does not make the create fail after the topic exists: it
// answers 201; that partition alone answers KAFKA_STORAGE_ERROR naming what
// failed (the node reports the replica offline, as it does a log whose fsync
// failed), the others take records, nothing is left behind; and once the way
// is clear, a restart brings it back. Before, the create answered 500
// although the topic had been created.
func TestCreateWithUnopenableLog(t *testing.T) {
	n := startNode(t)
	u := n.url()
	blocked := filepath.Join(n.dataDir, logstore.PartitionDir("blocked", 1))
	if err := os.WriteFile(blocked, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, body := call(t, "POST", u+"/v1/topics", "application/json", []byte(`{"name":"blocked","partitions":3}`))
	mustJSON(t, st, body, 201, nil)
	produceOne(t, u, "blocked", 0, "", "a")
	produceOne(t, u, "blocked", 2, "", "c")

	st, body = call(t, "POST", u+"/v1/topics/blocked/partitions/1/records", "application/json", []byte(`{"records":[{"value":"b"}]}`))
	var apiErr client.ErrorBody
	if err := json.Unmarshal(body, &apiErr); err != nil {
		t.Fatalf("produce to the broken partition: %d %s", st, body)
	}
	if apiErr.ErrorCode != client.CodeKafkaStorageError || !strings.Contains(apiErr.Message, "blocked-1") {
		t.Fatalf("produce to the broken partition answered %d %s, want KAFKA_STORAGE_ERROR naming blocked-1", st, body)
	}
	if fi, err := os.Stat(blocked); err != nil || fi.IsDir() {
		t.Fatalf("what was in the way of blocked-1 changed: %v", err)
	}
	// Reported offline, the replica loses its leadership (none is left: one replica).
	pollUntil(t, 30*time.Second, "the controller takes blocked-1's leadership from the failed replica", func() error {
		st, body := call(t, "GET", u+"/v1/topics/blocked", "", nil)
		var topic client.Topic
		mustJSON(t, st, body, 200, &topic)
		if l := topic.Partitions[1].Leader; l != -1 {
			return fmt.Errorf("leader %d", l)
		}
		return nil
	})

	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	n.stop()
	n.start()
	// The restarted node registers and takes the partition back.
	pollUntil(t, 30*time.Second, "blocked-1 to come back after the way was cleared and the node restarted", func() error {
		st, body := call(t, "POST", u+"/v1/topics/blocked/partitions/1/records", "application/json", []byte(`{"records":[{"value":"b"}]}`))
		if st != 200 {
			return fmt.Errorf("produce: %d %s", st, body)
		}
		return nil
	})
	if got := consumeValues(t, u, "blocked", 1); len(got) != 1 || got[0] != "b" {
		t.Fatalf("blocked-1 holds %v", got)
	}
}

// max_partitions_per_request refuses a create or an alter that would add
// more partitions in one call, before anything is written: 400
// INVALID_PARTITIONS naming the limit.
func TestPartitionsPerRequestCap(t *testing.T) {
	n := startNode(t, "--max-partitions-per-request", "50")
	u := n.url()
	refused := func(st int, body []byte) {
		t.Helper()
		var e client.ErrorBody
		mustJSON(t, st, body, 400, &e)
		if e.ErrorCode != client.CodeInvalidPartitions || !strings.Contains(e.Message, "max_partitions_per_request (50)") {
			t.Fatalf("refusal %s, want INVALID_PARTITIONS naming max_partitions_per_request (50)", body)
		}
	}
	refused(call(t, "POST", u+"/v1/topics", "application/json", []byte(`{"name":"big","partitions":51}`)))
	st, body := call(t, "GET", u+"/v1/topics/big", "", nil)
	mustJSON(t, st, body, 404, nil)
	if dirs := partitionDirs(t, n.dataDir); len(dirs) != 0 {
		t.Fatalf("a refused create left %v", dirs)
	}
	st, body = call(t, "POST", u+"/v1/topics", "application/json", []byte(`{"name":"big","partitions":50}`))
	mustJSON(t, st, body, 201, nil)
	refused(call(t, "PATCH", u+"/v1/topics/big", "application/json", []byte(`{"partitions":101}`)))
	st, body = call(t, "PATCH", u+"/v1/topics/big", "application/json", []byte(`{"partitions":100}`))
	var topic client.Topic
	mustJSON(t, st, body, 200, &topic)
	if len(topic.Partitions) != 100 {
		t.Fatalf("%d partitions after adding 50 to 50", len(topic.Partitions))
	}
}
