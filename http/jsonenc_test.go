package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"testing"
	"unicode/utf8"

	"weir/client"
	"weir/logstore"
)

// Strings written by hand must read back through encoding/json unchanged
// (invalid UTF-8 as U+FFFD, as encoding/json itself does).
func TestAppendJSONStringRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	samples := [][]byte{[]byte(""), []byte(`quote " back \ slash`), []byte("tab\tnl\ncr\r\x00\x1f"), []byte("ünïcødé ✓ \u2028\u2029"), {0xff, 'a', 0xc3}}
	for i := 0; i < 500; i++ {
		b := make([]byte, rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		samples = append(samples, b)
	}
	for _, b := range samples {
		out := appendJSONString(nil, b)
		var s string
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("%q -> %s: %v", b, out, err)
		}
		want := []byte(string([]rune(string(b)))) // invalid bytes -> U+FFFD
		if !utf8.Valid(b) {
			want = []byte(string([]rune(string(b))))
		}
		if s != string(want) {
			t.Fatalf("%q -> %s -> %q", b, out, s)
		}
	}
}

func TestAppendRecordJSONEncodings(t *testing.T) {
	r := logstore.Record{Offset: 41, Timestamp: 1763700000000, Key: []byte("user-1"), Value: []byte(`{"amount":5}`),
		Headers: []logstore.Header{{Key: "trace", Value: []byte("abc")}}}
	bin := logstore.Record{Offset: 42, Timestamp: 1, Key: []byte{0xff, 0, 1}, Value: []byte{0xff, 0xfe}}
	null := logstore.Record{Offset: 43, Timestamp: 2}
	cases := []struct {
		rec       logstore.Record
		enc       encoding
		partition int32
		check     func(client.ConsumedRecord) bool
	}{
		{r, encAuto, -1, func(c client.ConsumedRecord) bool {
			return string(c.Value) == `{"amount":5}` && string(c.Key) == `"user-1"` && c.Headers["trace"] == "abc" && c.Partition == nil
		}},
		{r, encText, 3, func(c client.ConsumedRecord) bool {
			var s string
			_ = json.Unmarshal(c.Value, &s)
			return s == `{"amount":5}` && c.Partition != nil && *c.Partition == 3
		}},
		{r, encBase64, -1, func(c client.ConsumedRecord) bool {
			v, _ := base64.StdEncoding.DecodeString(*c.ValueB64)
			return c.Value == nil && string(v) == `{"amount":5}`
		}},
		{bin, encAuto, -1, func(c client.ConsumedRecord) bool {
			if c.KeyB64 == nil || c.ValueB64 == nil {
				return false
			}
			k, _ := base64.StdEncoding.DecodeString(*c.KeyB64)
			v, _ := base64.StdEncoding.DecodeString(*c.ValueB64)
			return c.KeyB64 != nil && string(k) == "\xff\x00\x01" && string(v) == "\xff\xfe"
		}},
		{null, encAuto, -1, func(c client.ConsumedRecord) bool {
			return string(c.Value) == "null" && c.Key == nil && c.KeyB64 == nil
		}},
	}
	for i, c := range cases {
		out := appendRecordJSON(nil, &c.rec, c.enc, c.partition)
		var got client.ConsumedRecord
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("case %d: %s: %v", i, out, err)
		}
		if got.Offset != c.rec.Offset || got.Timestamp != c.rec.Timestamp || !c.check(got) {
			t.Fatalf("case %d: %s", i, out)
		}
	}
}

// Records whose bytes are not UTF-8 come back as value_b64 (key_b64,
// headers_b64) in every encoding, on every read path: each reply is valid
// UTF-8 JSON that strict parsers take, and the bytes come back unchanged.
func TestRepliesAreValidJSONForAnyBytes(t *testing.T) {
	n := newGroupTestNode(t)
	p := n.addLocal(t, "u", 0)
	recs := []logstore.Record{
		{Timestamp: 1, Value: []byte("{\"a\":\"\xff\"}")}, // JSON but for its bytes
		{Timestamp: 2, Value: []byte("\xfe")},
		{Timestamp: 3, Key: []byte("k\xff"), Value: []byte(`"ok"`),
			Headers: []logstore.Header{{Key: "bin", Value: []byte("\xfa\x00")}, {Key: "txt", Value: []byte("plain")}}},
	}
	p.addRecords(t, recs...)
	n.g.positions = []client.GroupPosition{{Topic: "u", Partition: 0}}
	python, _ := exec.LookPath("python3")
	if python == "" {
		t.Log("python3 not found: checked with encoding/json and utf8.Valid only")
	}
	for _, enc := range []string{"auto", "text", "base64"} {
		bodies := map[string][]byte{}
		r := do(t, "GET", n.url+"/v1/topics/u/partitions/0/records?encoding="+enc, "")
		bodies["consume"] = r.body
		var stream bytes.Buffer
		for l := range openStream(t, n.url+"/v1/topics/u/records?encoding="+enc) {
			stream.WriteString(l + "\n")
		}
		bodies["stream"] = stream.Bytes()
		n.g.mu.Lock()
		n.g.positions[0].Offset = 0
		n.g.mu.Unlock()
		bodies["poll"] = do(t, "GET", n.url+"/v1/groups/g/members/m/records?encoding="+enc, "").body
		for path, body := range bodies {
			var got []client.ConsumedRecord
			for _, l := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
				if !utf8.Valid(l) || !json.Valid(l) {
					t.Fatalf("%s, encoding=%s: not valid UTF-8 JSON: %q", path, enc, l)
				}
				var reply struct {
					Records []client.ConsumedRecord `json:"records"`
				}
				if path == "stream" {
					var r client.ConsumedRecord
					_ = json.Unmarshal(l, &r)
					got = append(got, r)
				} else if err := json.Unmarshal(l, &reply); err == nil {
					got = append(got, reply.Records...)
				}
			}
			if len(got) != len(recs) {
				t.Fatalf("%s, encoding=%s: %d records in %s", path, enc, len(got), body)
			}
			checkBytes(t, path+" encoding="+enc, got)
			if python != "" {
				cmd := exec.Command(python, "-c", "import json,sys\nfor l in sys.stdin.buffer.read().splitlines():\n  l.strip() and json.loads(l)")
				cmd.Stdin = bytes.NewReader(body)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s, encoding=%s: python3's json refuses the reply: %v\n%s", path, enc, err, out)
				}
			}
		}
	}
}

// checkBytes checks that the non-UTF-8 bytes of the test's records came
// back in base64, unchanged.
func checkBytes(t *testing.T, what string, got []client.ConsumedRecord) {
	t.Helper()
	b64 := func(s *string) string {
		if s == nil {
			t.Fatalf("%s: a field that is not UTF-8 came without _b64: %+v", what, got)
		}
		b, err := base64.StdEncoding.DecodeString(*s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if v := b64(got[0].ValueB64); v != "{\"a\":\"\xff\"}" {
		t.Fatalf("%s: value 0 %q", what, v)
	}
	if v := b64(got[1].ValueB64); v != "\xfe" {
		t.Fatalf("%s: value 1 %q", what, v)
	}
	if k := b64(got[2].KeyB64); k != "k\xff" {
		t.Fatalf("%s: key 2 %q", what, k)
	}
	h := got[2].HeadersB64["bin"]
	if v := b64(&h); v != "\xfa\x00" || got[2].Headers["txt"] != "plain" || len(got[2].Headers) != 1 {
		t.Fatalf("%s: headers %v %v", what, got[2].Headers, got[2].HeadersB64)
	}
}
