package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"weir/client"
)

// TestBadInputs sends malformed and refused requests: each gets its documented
// status and error code, the message names the problem, and nothing is written.
func TestBadInputs(t *testing.T) {
	n := startNode(t, "--max-request-bytes", "65536", "--message-max-bytes", "1024", "--max-request-records", "10")
	u := n.url()
	st, body := call(t, "POST", u+"/v1/topics", "application/json", []byte(`{"name":"good","partitions":2}`))
	mustJSON(t, st, body, 201, nil)
	st, body = call(t, "POST", u+"/v1/topics/good/records", "application/json", []byte(`{"records":[{"value":"seed","partition":0},{"value":"seed","partition":1}]}`))
	mustJSON(t, st, body, 200, nil)
	st, body = call(t, "POST", u+"/v1/groups/g/offsets", "application/json", []byte(`{"offsets":[{"topic":"good","partition":0,"offset":1}]}`))
	mustJSON(t, st, body, 200, nil) // and the offsets topic exists
	groupOffsets := func() string {
		st, body := call(t, "GET", u+"/v1/groups/g/offsets", "", nil)
		mustJSON(t, st, body, 200, nil)
		return string(body)
	}
	offsetsBefore := groupOffsets()

	leos := func() []int64 {
		st, body := call(t, "GET", u+"/v1/topics/good/offsets", "", nil)
		var o client.TopicOffsets
		mustJSON(t, st, body, 200, &o)
		out := []int64{}
		for _, p := range o.Partitions {
			out = append(out, p.LogEndOffset)
		}
		return out
	}
	before := leos()

	big := `{"records":[{"value":"` + strings.Repeat("x", 70000) + `"}]}`
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		code, mention                   string
	}{
		{"malformed json", "POST", "/v1/topics/good/records", "application/json", `{"records":[`, 400, client.CodeInvalidRequest, "JSON"},
		{"not an object", "POST", "/v1/topics/good/records", "application/json", `[1,2]`, 400, client.CodeInvalidRequest, ""},
		{"unknown top field", "POST", "/v1/topics/good/records", "application/json", `{"records":[],"x":1}`, 400, client.CodeInvalidRequest, `"x"`},
		{"unknown record field", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"valu":"a"}]}`, 400, client.CodeInvalidRequest, `valu`},
		{"records missing", "POST", "/v1/topics/good/records", "application/json", `{}`, 400, client.CodeInvalidRequest, "records"},
		{"records empty", "POST", "/v1/topics/good/records", "application/json", `{"records":[]}`, 400, client.CodeInvalidRequest, "records"},
		{"record not object", "POST", "/v1/topics/good/records", "application/json", `{"records":["a"]}`, 400, client.CodeInvalidRequest, "records[0]"},
		{"wrong type partition", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"value":"a","partition":"1"}]}`, 400, client.CodeInvalidRequest, "partition"},
		{"wrong type timestamp", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"value":"a","timestamp":"now"}]}`, 400, client.CodeInvalidRequest, "timestamp"},
		{"negative partition", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"value":"a","partition":-1}]}`, 400, client.CodeInvalidRequest, "partition"},
		{"negative timestamp", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"value":"a","timestamp":-5}]}`, 400, client.CodeInvalidRequest, "timestamp"},
		{"partition out of range", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"value":"a"},{"value":"b","partition":7}]}`, 404, client.CodeUnknownTopicOrPartition, "partition 7"},
		{"bad base64 value", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"value_b64":"!!!"}]}`, 400, client.CodeInvalidRequest, "value_b64"},
		{"bad base64 key", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"key_b64":"@@","value":"a"}]}`, 400, client.CodeInvalidRequest, "key_b64"},
		{"value and value_b64", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"value":"a","value_b64":"YQ=="}]}`, 400, client.CodeInvalidRequest, "value_b64"},
		{"header not string", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"value":"a","headers":{"h":1}}]}`, 400, client.CodeInvalidRequest, "headers"},
		{"record too large", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"value":"a"},{"value":"` + strings.Repeat("y", 2000) + `"}]}`, 413, client.CodeMessageTooLarge, "records[1]"},
		{"body too large", "POST", "/v1/topics/good/records", "application/json", big, 413, client.CodeRecordListTooLarge, "max_request_bytes"},
		{"unsupported content type", "POST", "/v1/topics/good/records", "application/xml", `<r/>`, 415, client.CodeUnsupportedMediaType, "application/xml"},
		{"form content type", "POST", "/v1/topics/good/records", "application/x-www-form-urlencoded", `a=b`, 415, client.CodeUnsupportedMediaType, "Content-Type"},
		{"bad ndjson line", "POST", "/v1/topics/good/records", "application/x-ndjson", "{\"value\":\"a\"}\n{oops\n", 400, client.CodeInvalidRequest, "line 2"},
		{"too many records", "POST", "/v1/topics/good/records", "text/plain", strings.Repeat("r\n", 11), 413, client.CodeRecordListTooLarge, "max_request_records (10)"},
		{"not JSON: NaN", "POST", "/v1/topics/good/records", "application/json", `{"records":[{"value":NaN}]}`, 400, client.CodeInvalidRequest, "byte 21"},
		{"produce to the internal topic", "POST", "/v1/topics/__consumer_offsets/records", "application/json", `{"records":[{"value":"x"}]}`, 400, client.CodeInvalidTopic, "internal"},
		{"alter the internal topic", "PATCH", "/v1/topics/__consumer_offsets", "application/json", `{"partitions":17}`, 400, client.CodeInvalidTopic, "internal"},
		{"create as text", "POST", "/v1/topics", "text/plain", `{"name":"z"}`, 415, client.CodeUnsupportedMediaType, "application/json"},
		{"commit as a form", "POST", "/v1/groups/g/offsets", "application/x-www-form-urlencoded", `{"offsets":[{"topic":"good","partition":0,"offset":0}]}`, 415, client.CodeUnsupportedMediaType, "application/json"},
		{"commit null offset", "POST", "/v1/groups/g/offsets", "application/json", `{"offsets":[{"topic":"good","partition":0,"offset":null}]}`, 400, client.CodeInvalidRequest, "offsets[0].offset"},
		{"commit unknown partition", "POST", "/v1/groups/g/offsets", "application/json", `{"offsets":[{"topic":"good","partition":5,"offset":0}]}`, 404, client.CodeUnknownTopicOrPartition, "partition 5"},
		{"unknown topic produce", "POST", "/v1/topics/nope/records", "application/json", `{"records":[{"value":"a"}]}`, 404, client.CodeUnknownTopicOrPartition, `"nope"`},
		{"bad acks", "POST", "/v1/topics/good/records?acks=2", "application/json", `{"records":[{"value":"a"}]}`, 400, client.CodeInvalidRequest, "acks"},
		{"bad timeout", "POST", "/v1/topics/good/records?timeout_ms=-1", "application/json", `{"records":[{"value":"a"}]}`, 400, client.CodeInvalidRequest, "timeout_ms"},
		{"path and record partition differ", "POST", "/v1/topics/good/partitions/0/records", "application/json", `{"records":[{"value":"a","partition":1}]}`, 400, client.CodeInvalidRequest, "partition"},
		{"bad path partition", "POST", "/v1/topics/good/partitions/x/records", "text/plain", "a", 400, client.CodeInvalidRequest, "partition"},
		{"negative offset", "GET", "/v1/topics/good/partitions/0/records?offset=-3", "", "", 400, client.CodeInvalidRequest, "offset"},
		{"offset not a number", "GET", "/v1/topics/good/partitions/0/records?offset=first", "", "", 400, client.CodeInvalidRequest, "offset"},
		{"offset past the log end", "GET", "/v1/topics/good/partitions/0/records?offset=99", "", "", 416, client.CodeOffsetOutOfRange, "high watermark"},
		{"bad limit", "GET", "/v1/topics/good/partitions/0/records?limit=0", "", "", 400, client.CodeInvalidRequest, "limit"},
		{"absurd max_bytes", "GET", "/v1/topics/good/partitions/0/records?max_bytes=99999999999", "", "", 400, client.CodeInvalidRequest, "max_bytes"},
		{"bad wait_ms", "GET", "/v1/topics/good/partitions/0/records?wait_ms=abc", "", "", 400, client.CodeInvalidRequest, "wait_ms"},
		{"bad encoding", "GET", "/v1/topics/good/partitions/0/records?encoding=hex", "", "", 400, client.CodeInvalidRequest, "encoding"},
		{"consume partition out of range", "GET", "/v1/topics/good/partitions/9/records", "", "", 404, client.CodeUnknownTopicOrPartition, "partition 9"},
		{"consume unknown topic", "GET", "/v1/topics/nope/partitions/0/records", "", "", 404, client.CodeUnknownTopicOrPartition, `"nope"`},
		{"bad topic name", "POST", "/v1/topics", "application/json", `{"name":"bad/name"}`, 400, client.CodeInvalidTopic, "bad/name"},
		{"dot topic name", "POST", "/v1/topics", "application/json", `{"name":".."}`, 400, client.CodeInvalidTopic, ""},
		{"long topic name", "POST", "/v1/topics", "application/json", `{"name":"` + strings.Repeat("a", 250) + `"}`, 400, client.CodeInvalidTopic, ""},
		{"missing topic name", "POST", "/v1/topics", "application/json", `{"partitions":1}`, 400, client.CodeInvalidTopic, "name"},
		{"zero partitions", "POST", "/v1/topics", "application/json", `{"name":"z","partitions":0}`, 400, client.CodeInvalidPartitions, "partitions"},
		{"absurd partitions", "POST", "/v1/topics", "application/json", `{"name":"z","partitions":1000000000}`, 400, client.CodeInvalidPartitions, "partitions"},
		{"replication factor too high", "POST", "/v1/topics", "application/json", `{"name":"z","replication_factor":3}`, 400, client.CodeInvalidReplicationFactor, ""},
		{"unknown config", "POST", "/v1/topics", "application/json", `{"name":"z","configs":{"retention.hours":"1"}}`, 400, client.CodeInvalidConfig, "retention.hours"},
		{"bad config value", "POST", "/v1/topics", "application/json", `{"name":"z","configs":{"retention.ms":"soon"}}`, 400, client.CodeInvalidConfig, "retention.ms"},
		{"bad cleanup policy", "POST", "/v1/topics", "application/json", `{"name":"z","configs":{"cleanup.policy":"shred"}}`, 400, client.CodeInvalidConfig, "cleanup.policy"},
		{"config wrong type", "POST", "/v1/topics", "application/json", `{"name":"z","configs":{"retention.ms":5}}`, 400, client.CodeInvalidRequest, "configs"},
		{"topic exists", "POST", "/v1/topics", "application/json", `{"name":"good"}`, 409, client.CodeTopicAlreadyExists, `"good"`},
		{"fewer partitions", "PATCH", "/v1/topics/good", "application/json", `{"partitions":1}`, 400, client.CodeInvalidPartitions, "partitions"},
		{"alter bad config", "PATCH", "/v1/topics/good", "application/json", `{"configs":{"segment.bytes":"1"}}`, 400, client.CodeInvalidConfig, "segment.bytes"},
		{"alter nothing", "PATCH", "/v1/topics/good", "application/json", `{}`, 400, client.CodeInvalidRequest, "nothing"},
		{"alter unknown topic", "PATCH", "/v1/topics/nope", "application/json", `{"partitions":3}`, 404, client.CodeUnknownTopicOrPartition, `"nope"`},
		{"delete unknown topic", "DELETE", "/v1/topics/nope", "", "", 404, client.CodeUnknownTopicOrPartition, `"nope"`},
		{"bad timestamp query", "GET", "/v1/topics/good/offsets?timestamp=yesterday", "", "", 400, client.CodeInvalidRequest, "timestamp"},
		{"bad follow flag", "GET", "/v1/topics/good/records?follow=maybe", "", "", 400, client.CodeInvalidRequest, "follow"},
		{"unknown route", "GET", "/v1/nothing-here", "", "", 404, client.CodeNotFound, "/v1/nothing-here"},
		{"wrong method", "PUT", "/v1/topics", "application/json", `{}`, 405, client.CodeMethodNotAllowed, "PUT"},
		{"unknown broker", "GET", "/v1/brokers/42", "", "", 404, client.CodeBrokerNotAvailable, "42"},
		{"bad broker id", "GET", "/v1/brokers/x", "", "", 400, client.CodeInvalidRequest, "broker id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, body := call(t, c.method, u+c.path, c.ctype, []byte(c.body))
			var e client.ErrorBody
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not the API's JSON: %s", body)
			}
			if st != c.status || e.ErrorCode != c.code {
				t.Fatalf("got %d %s, want %d %s: %s", st, e.ErrorCode, c.status, c.code, body)
			}
			if c.mention != "" && !strings.Contains(e.Message, c.mention) {
				t.Fatalf("message %q does not name %q", e.Message, c.mention)
			}
			if e.Message == "" {
				t.Fatal("empty error message")
			}
		})
	}
	// GET routes answer HEAD, except the stream and the group poll: their 405
	// names what they allow, as docs/API.md says.
	for _, h := range []struct{ path, allow string }{
		{"/v1/topics/good", ""},
		{"/v1/topics/good/partitions/0/records?offset=0", ""},
		{"/v1/topics/good/records", "OPTIONS, GET, POST"},
		{"/v1/topics/good/records?follow=true", "OPTIONS, GET, POST"},
		{"/v1/groups/g/members/m/records", "OPTIONS, GET"},
	} {
		resp, err := http.Head(u + h.path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close() // a HEAD reply has no body
		want := http.StatusOK
		if h.allow != "" {
			want = http.StatusMethodNotAllowed
		}
		if resp.StatusCode != want || resp.Header.Get("Allow") != h.allow {
			t.Errorf("HEAD %s: %s, Allow %q; want %d, Allow %q", h.path, resp.Status, resp.Header.Get("Allow"), want, h.allow)
		}
	}
	after := leos()
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("refused requests wrote to partition %d: LEO %d -> %d", i, before[i], after[i])
		}
	}
	if after := groupOffsets(); after != offsetsBefore {
		t.Fatalf("refused requests changed the group's offsets: %s -> %s", offsetsBefore, after)
	}
	st, body = call(t, "GET", u+"/v1/topics/z", "", nil)
	if st != 404 {
		t.Fatalf("a refused create left topic z behind: %d %s", st, body)
	}
}
