package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"weir/client"
	"weir/internal/testport"
	"weir/server"
)

// The bad-input suite: hostile and careless requests against a real node
// (Raft, logs, group coordinator, in this process). Each gets its status and
// error code, a message that names the problem and stays short, and leaves
// the cluster as it was.

// testNode is a single real node serving on a free port.
type testNode struct {
	url string
}

func freeAddr(t testing.TB) string { return testport.Addr(t) }

func startTestNode(t testing.TB, edit func(*server.Config)) *testNode {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr, cfg.RaftAddr = freeAddr(t), freeAddr(t)
	cfg.Fsync = "never"
	cfg.GroupsOffsetsPartitions = 2
	cfg.LogLevel = "error"
	cfg.ShutdownTimeoutMs = 5000
	if edit != nil {
		edit(&cfg)
	}
	n, err := server.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node stopped with %v", err)
		}
	})
	tn := &testNode{url: "http://" + cfg.HTTPAddr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(tn.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return tn
			}
		}
		select {
		case err := <-done:
			t.Fatalf("node stopped before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("node not ready after 30s")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// send makes one request; ctype "" sends no Content-Type.
func (n *testNode) send(t testing.TB, method, path, ctype, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, n.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, clip(path), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data, resp.Header
}

// must sends a request that has to succeed with status want.
func (n *testNode) must(t testing.TB, want int, method, path, body string) []byte {
	t.Helper()
	st, data, _ := n.send(t, method, path, "application/json", body)
	if st != want {
		t.Fatalf("%s %s %s: %d %s", method, path, clip(body), st, data)
	}
	return data
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// state is what refused requests must leave as it was: the topics, the end
// of every partition's log (the internal topic's too) and a group's offsets.
func (n *testNode) state(t testing.TB) string {
	t.Helper()
	var list client.TopicList
	if err := json.Unmarshal(n.must(t, 200, "GET", "/v1/topics?internal=true", ""), &list); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, tp := range list.Topics {
		var offs client.TopicOffsets
		if err := json.Unmarshal(n.must(t, 200, "GET", "/v1/topics/"+tp.Name+"/offsets", ""), &offs); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s rf=%d:", tp.Name, tp.ReplicationFactor)
		for _, p := range offs.Partitions {
			fmt.Fprintf(&b, " %d=%d", p.Partition, p.LogEndOffset)
		}
		var topic client.Topic
		if err := json.Unmarshal(n.must(t, 200, "GET", "/v1/topics/"+tp.Name, ""), &topic); err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 0, len(topic.Configs))
		for k := range topic.Configs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%s", k, topic.Configs[k])
		}
		b.WriteByte('\n')
	}
	b.Write(n.must(t, 200, "GET", "/v1/groups/g/offsets", ""))
	return b.String()
}

type badCase struct {
	name, method, path, ctype, body string
	status                          int
	code, mention                   string
}

// check sends c and asserts the reply: status, code, a message naming the
// problem, retriable present, and a short body whatever the input's size.
func (c badCase) check(t *testing.T, n *testNode) {
	t.Helper()
	st, data, _ := n.send(t, c.method, c.path, c.ctype, c.body)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("%s: the reply is not a JSON object: %s", c.name, clip(string(data)))
	}
	var e client.ErrorBody
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	if st != c.status || e.ErrorCode != c.code {
		t.Errorf("%s: got %d %s, want %d %s: %s", c.name, st, e.ErrorCode, c.status, c.code, clip(string(data)))
		return
	}
	if !strings.Contains(e.Message, c.mention) || e.Message == "" {
		t.Errorf("%s: message %q does not name %q", c.name, clip(e.Message), c.mention)
	}
	if _, ok := raw["retriable"]; !ok {
		t.Errorf("%s: the error body has no retriable: %s", c.name, clip(string(data)))
	}
	if len(data) > 2048 {
		t.Errorf("%s: a %d-byte error reply (input echoed whole?)", c.name, len(data))
	}
}

func TestBadInput(t *testing.T) {
	n := startTestNode(t, nil)
	n.must(t, 201, "POST", "/v1/topics", `{"name":"good","partitions":2}`)
	n.must(t, 201, "POST", "/v1/topics", `{"name":"tiny","configs":{"segment.bytes":"200"}}`)
	n.must(t, 200, "POST", "/v1/topics/good/records", `{"records":[{"value":"seed","partition":0},{"value":"seed","partition":1}]}`)
	n.must(t, 200, "POST", "/v1/groups/g/offsets", `{"offsets":[{"topic":"good","partition":0,"offset":1}]}`) // creates __consumer_offsets
	before := n.state(t)
	if !strings.Contains(before, "__consumer_offsets") || !strings.Contains(before, `"committed_offset":1`) {
		t.Fatalf("setup: %s", before)
	}

	const (
		js     = "application/json"
		nd     = "application/x-ndjson"
		prod   = "/v1/topics/good/records"
		commit = "/v1/groups/g/offsets"
	)
	huge := strings.Repeat("a", 1<<20)
	cases := []badCase{
		// A produce's records are bounded in number, not only in bytes.
		{"records over the limit", "POST", prod, "text/plain", strings.Repeat("\n", 100_001), 413, client.CodeRecordListTooLarge, "max_request_records (100000)"},
		{"ndjson records over the limit", "POST", prod, nd, strings.Repeat("{}\n", 100_001), 413, client.CodeRecordListTooLarge, "max_request_records"},
		{"json records over the limit", "POST", prod, js, `{"records":[` + strings.Repeat("{},", 100_000) + `{}]}`, 413, client.CodeRecordListTooLarge, "max_request_records"},

		// Internal topics are the cluster's: read-only to clients.
		{"alter internal partitions", "PATCH", "/v1/topics/__consumer_offsets", js, `{"partitions":17}`, 400, client.CodeInvalidTopic, "internal"},
		{"alter internal configs", "PATCH", "/v1/topics/__consumer_offsets", js, `{"configs":{"retention.ms":"1"}}`, 400, client.CodeInvalidTopic, "internal"},
		{"produce to internal", "POST", "/v1/topics/__consumer_offsets/records", js, `{"records":[{"key_b64":"AAEAAWcABGdvb2QAAAAA","value_b64":"AAMAAAAAAAAAAAA="}]}`, 400, client.CodeInvalidTopic, "internal"},
		{"produce to internal partition", "POST", "/v1/topics/__consumer_offsets/partitions/0/records", "text/plain", "x", 400, client.CodeInvalidTopic, "internal"},
		{"create internal name", "POST", "/v1/topics", js, `{"name":"__consumer_offsets","partitions":1}`, 400, client.CodeInvalidTopic, "reserved"},
		{"delete internal", "DELETE", "/v1/topics/__consumer_offsets", "", "", 400, client.CodeInvalidTopic, "internal"},

		// JSON calls take JSON only: no form or text bodies from other sites.
		{"create as text", "POST", "/v1/topics", "text/plain", `{"name":"z"}`, 415, client.CodeUnsupportedMediaType, `"text/plain"`},
		{"create as form", "POST", "/v1/topics", "application/x-www-form-urlencoded", `{"name":"z"}`, 415, client.CodeUnsupportedMediaType, "application/json"},
		{"create without content type", "POST", "/v1/topics", "", `{"name":"z"}`, 415, client.CodeUnsupportedMediaType, "Content-Type"},
		{"create in latin1", "POST", "/v1/topics", "application/json; charset=iso-8859-1", `{"name":"z"}`, 415, client.CodeUnsupportedMediaType, "UTF-8"},
		{"alter as text", "PATCH", "/v1/topics/good", "text/plain", `{"partitions":5}`, 415, client.CodeUnsupportedMediaType, "application/json"},
		{"commit as text", "POST", commit, "text/plain", `{"offsets":[{"topic":"good","partition":0,"offset":0}]}`, 415, client.CodeUnsupportedMediaType, "application/json"},
		{"commit as form", "POST", commit, "application/x-www-form-urlencoded", `offsets=1`, 415, client.CodeUnsupportedMediaType, "application/json"},
		{"reset as text", "POST", commit + "/reset", "text/plain", `{"topic":"good","to":"latest","dry_run":false}`, 415, client.CodeUnsupportedMediaType, "application/json"},
		{"join as text", "POST", "/v1/groups/g2/members", "text/plain", `{"topics":["good"]}`, 415, client.CodeUnsupportedMediaType, "application/json"},
		{"heartbeat as text", "POST", "/v1/groups/g/members/m/heartbeat", "text/plain", `{}`, 415, client.CodeUnsupportedMediaType, "application/json"},
		{"produce as xml", "POST", prod, "application/xml", `<r/>`, 415, client.CodeUnsupportedMediaType, "application/xml"},

		// What is not JSON is refused, with where it goes wrong.
		{"NaN value", "POST", prod, js, `{"records":[{"value":NaN}]}`, 400, client.CodeInvalidRequest, "byte 21"},
		{"leading zero", "POST", prod, js, `{"records":[{"value":01}]}`, 400, client.CodeInvalidRequest, "leading zero"},
		{"bare fraction", "POST", prod, js, `{"records":[{"value":.5}]}`, 400, client.CodeInvalidRequest, "byte 21"},
		{"bad escape", "POST", prod, js, `{"records":[{"value":"\q"}]}`, 400, client.CodeInvalidRequest, `invalid escape \q`},
		{"raw control character", "POST", prod, js, "{\"records\":[{\"value\":\"a\x01b\"}]}", 400, client.CodeInvalidRequest, "control character 0x01"},
		{"ndjson NaN", "POST", prod, nd, "{\"value\":1}\n{\"value\":NaN}\n", 400, client.CodeInvalidRequest, "line 2"},
		{"ndjson trailing data", "POST", prod, nd, "{\"value\":1} {}\n", 400, client.CodeInvalidRequest, "after the JSON object"},
		{"commit null offset", "POST", commit, js, `{"offsets":[{"topic":"good","partition":0,"offset":null}]}`, 400, client.CodeInvalidRequest, "offsets[0].offset"},
		{"commit null partition", "POST", commit, js, `{"offsets":[{"topic":"good","partition":null,"offset":0}]}`, 400, client.CodeInvalidRequest, "offsets[0].partition"},
		{"commit missing offset", "POST", commit, js, `{"offsets":[{"topic":"good","partition":0}]}`, 400, client.CodeInvalidRequest, "offsets[0].offset"},
		{"commit missing partition", "POST", commit, js, `{"offsets":[{"topic":"good","offset":0}]}`, 400, client.CodeInvalidRequest, "offsets[0].partition"},
		{"commit fractional offset", "POST", commit, js, `{"offsets":[{"topic":"good","partition":0,"offset":0.5}]}`, 400, client.CodeInvalidRequest, "offsets[0].offset"},
		{"commit unknown topic", "POST", commit, js, `{"offsets":[{"topic":"nope","partition":0,"offset":0}]}`, 404, client.CodeUnknownTopicOrPartition, `"nope"`},
		{"commit unknown partition", "POST", commit, js, `{"offsets":[{"topic":"good","partition":7,"offset":0}]}`, 404, client.CodeUnknownTopicOrPartition, "partition 7"},

		// Keys: exact, once.
		{"duplicate header", "POST", prod, js, `{"records":[{"value":"a","headers":{"h":"1","h":"2"}}]}`, 400, client.CodeInvalidRequest, `"h" is given twice`},
		{"duplicate record field", "POST", prod, js, `{"records":[{"value":"a","value":"b"}]}`, 400, client.CodeInvalidRequest, `"value" is given twice`},
		{"create with wrong case", "POST", "/v1/topics", js, `{"Name":"zz"}`, 400, client.CodeInvalidRequest, `"Name"`},
		{"create with repeated name", "POST", "/v1/topics", js, `{"name":"z1","name":"z2"}`, 400, client.CodeInvalidRequest, `"name" is given twice`},
		{"alter with wrong case", "PATCH", "/v1/topics/good", js, `{"Partitions":5}`, 400, client.CodeInvalidRequest, `"Partitions"`},
		{"commit with repeated offset", "POST", commit, js, `{"offsets":[{"topic":"good","partition":0,"offset":5,"offset":0}]}`, 400, client.CodeInvalidRequest, `"offset" is given twice`},
		{"commit with wrong case", "POST", commit, js, `{"Offsets":[{"topic":"good","partition":0,"offset":0}]}`, 400, client.CodeInvalidRequest, `"Offsets"`},
		{"reset with repeated dry_run", "POST", commit + "/reset", js, `{"topic":"good","to":"latest","dry_run":true,"dry_run":false}`, 400, client.CodeInvalidRequest, `"dry_run" is given twice`},
		{"create name null", "POST", "/v1/topics", js, `{"name":null}`, 400, client.CodeInvalidRequest, "name"},

		// Every error body says whether to retry, a failed produce's too.
		{"produce refused by the log", "POST", "/v1/topics/tiny/records", js, `{"records":[{"value":"` + strings.Repeat("v", 300) + `"}]}`, 400, client.CodeInvalidRecord, ""},

		// Input is echoed cut short.
		{"huge field name", "POST", "/v1/topics", js, `{"` + huge + `":1}`, 400, client.CodeInvalidRequest, "unknown field"},
		{"huge record field", "POST", prod, js, `{"records":[{"` + huge + `":1}]}`, 400, client.CodeInvalidRequest, "unknown field"},
		{"huge header type", "POST", prod, js, `{"records":[{"headers":{"` + huge + `":1}}]}`, 400, client.CodeInvalidRequest, "headers"},
		{"huge query value", "POST", prod + "?acks=" + huge[:100_000], js, `{"records":[{"value":1}]}`, 400, client.CodeInvalidRequest, "acks"},
		{"huge topic name", "GET", "/v1/topics/" + huge[:100_000], "", "", 404, client.CodeUnknownTopicOrPartition, "does not exist"},
		{"huge group config", "POST", "/v1/groups/g2/members", js, `{"topics":["good"],"assignor":"` + huge + `"}`, 400, client.CodeInvalidRequest, "assignor"},

		// One decoding for every route's path.
		{"escaped slash in a topic", "POST", "/v1/topics/go%2Fod/records", js, `{"records":[{"value":1}]}`, 404, client.CodeUnknownTopicOrPartition, `"go/od"`},
		{"escaped dots as a topic", "GET", "/v1/topics/%2E%2E/partitions/0/records", "", "", 404, client.CodeUnknownTopicOrPartition, `".."`},
	}
	for _, c := range cases {
		c.check(t, n)
	}
	if after := n.state(t); after != before {
		t.Fatalf("refused requests changed the cluster:\nbefore %s\nafter  %s", before, after)
	}
	// Reading the internal topic stays allowed, as in Kafka, and the group
	// coordinator still writes it through its own path.
	n.must(t, 200, "GET", "/v1/topics/__consumer_offsets/partitions/0/records?offset=earliest", "")
	n.must(t, 200, "POST", "/v1/groups/g/offsets", `{"offsets":[{"topic":"good","partition":0,"offset":0}]}`)
	if got := string(n.must(t, 200, "GET", "/v1/groups/g/offsets", "")); !strings.Contains(got, `"committed_offset":0`) {
		t.Fatalf("a commit after the refusals: %s", got)
	}
}

// A topic in the path means the same on every route however it is escaped,
// and GET routes answer HEAD.
func TestPathsDecodeAlikeAndHEAD(t *testing.T) {
	n := startTestNode(t, nil)
	n.must(t, 201, "POST", "/v1/topics", `{"name":"A"}`)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/topics/%41", ""},
		{"GET", "/v1/topics/%41/offsets", ""},
		{"POST", "/v1/topics/%41/records", `{"records":[{"value":1}]}`},
		{"POST", "/v1/topics/%41/partitions/0/records", `{"records":[{"value":2}]}`},
		{"GET", "/v1/topics/%41/partitions/0/records?offset=0", ""},
		{"PATCH", "/v1/topics/%41", `{"configs":{"retention.ms":"3600000"}}`},
		{"GET", "/v1/topics/%41/records?from=earliest", ""},
	} {
		st, body, _ := n.send(t, r.method, r.path, "application/json", r.body)
		if st != 200 {
			t.Errorf("%s %s: %d %s", r.method, r.path, st, body)
		}
	}
	st, body, _ := n.send(t, "GET", "/v1/topics/%41/partitions/0/records?offset=0", "", "")
	if st != 200 || !strings.Contains(string(body), `"value":2`) {
		t.Fatalf("the records produced through %%41 are not in A: %d %s", st, body)
	}
	for _, path := range []string{"/livez", "/v1/topics", "/v1/topics/A", "/v1/topics/%41/offsets", "/v1/cluster", "/v1/groups", "/metrics"} {
		st, body, _ := n.send(t, "HEAD", path, "", "")
		if st != 200 || len(body) != 0 {
			t.Errorf("HEAD %s: %d with %d bytes of body", path, st, len(body))
		}
	}
	// A poll moves positions: no HEAD there, and the 405 says what is allowed.
	st, _, h := n.send(t, "HEAD", "/v1/groups/g/members/m/records", "", "")
	if st != 405 || h.Get("Allow") == "" || !strings.Contains(h.Get("Allow"), "GET") {
		t.Fatalf("HEAD of a poll: %d, Allow %q", st, h.Get("Allow"))
	}
	st, body, _ = n.send(t, "GET", "/v1/topics/a%2Fb", "", "")
	if st != 404 || !strings.Contains(string(body), `a/b`) {
		t.Fatalf("a%%2Fb: %d %s", st, body)
	}
}

// allocatedDuring is how many bytes the process allocated while fn ran.
func allocatedDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A produce within max_request_bytes costs about its body, not gigabytes:
// 4 MB of newlines as text (4.2 M empty records) took a node from 145 MB to
// 1.56 GB, 16 MB of {}\n NDJSON to 6.2 GB. The bound on what the process
// allocates while serving one is a bound on how far its heap can grow.
func TestProduceMemoryIsBounded(t *testing.T) {
	n := startTestNode(t, nil)
	n.must(t, 201, "POST", "/v1/topics", `{"name":"m","partitions":2}`)
	cases := []struct {
		name, ctype string
		body        []byte
		status      int
	}{
		{"4 MB of newlines", "text/plain", bytes.Repeat([]byte("\n"), 4<<20), 413},
		{"16 MB of {} lines", "application/x-ndjson", bytes.Repeat([]byte("{}\n"), (16<<20)/3), 413},
		{"16 MB of {} records", "application/json", append(append([]byte(`{"records":[`), bytes.Repeat([]byte("{},"), (16<<20)/3-8)...), []byte("{}]}")...), 413},
		{"100,000 records", "application/x-ndjson", bytes.Repeat([]byte("{\"value\":1}\n"), 100_000), 200},
	}
	for _, c := range cases {
		var st int
		var reply []byte
		alloc := allocatedDuring(func() {
			req, err := http.NewRequest("POST", n.url+"/v1/topics/m/records", bytes.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", c.ctype)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			// The reply's start is enough to report; the rest is not kept
			// (its copy would count as the server's).
			reply, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			st = resp.StatusCode
		})
		limit := uint64(2*len(c.body) + 48<<20) // the body, once read, and bookkeeping
		t.Logf("%s: %d, %.1f MB allocated", c.name, st, float64(alloc)/(1<<20))
		if st != c.status {
			t.Errorf("%s: %d %s", c.name, st, clip(string(reply)))
		}
		if alloc > limit {
			t.Errorf("%s: the process allocated %.1f MB serving it, more than %.1f MB", c.name, float64(alloc)/(1<<20), float64(limit)/(1<<20))
		}
	}
}
