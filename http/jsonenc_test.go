package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
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
