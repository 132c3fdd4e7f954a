package httpapi

import (
	"testing"

	"github.com/valyala/fastjson"
)

// Kafka's own vectors (UtilsTest.testMurmur2 in the Java client): keys must
// land where Kafka clients put them.
func TestMurmur2MatchesKafka(t *testing.T) {
	cases := []struct {
		key  string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	}
	for _, c := range cases {
		if got := Murmur2([]byte(c.key)); got != c.want {
			t.Errorf("Murmur2(%q) = %d, want %d", c.key, got, c.want)
		}
	}
}

// The default partitioner is toPositive(murmur2(key)) % partitions.
func TestKeyPartitionIsKafkasDefaultPartitioner(t *testing.T) {
	cases := []struct {
		key        string
		partitions int
		want       int32
	}{
		// toPositive(-973932308) = 1173551340
		{"21", 3, 1173551340 % 3},
		{"21", 10, 1173551340 % 10},
		// toPositive(-790332482) = 1357151166
		{"foobar", 7, 1357151166 % 7},
		{"abc", 4, 479470107 % 4},
	}
	for _, c := range cases {
		if got := KeyPartition([]byte(c.key), c.partitions); got != c.want {
			t.Errorf("KeyPartition(%q, %d) = %d, want %d", c.key, c.partitions, got, c.want)
		}
	}
}

func TestSplitLines(t *testing.T) {
	got := splitLines([]byte("a\r\nb\n\nc\n"))
	want := []string{"a", "b", "", "c"}
	if len(got) != len(want) {
		t.Fatalf("splitLines: %q", got)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("line %d: %q want %q", i, got[i], want[i])
		}
	}
	if splitLines(nil) != nil {
		t.Fatal("empty body has no lines")
	}
}

func TestRecordBytes(t *testing.T) {
	cases := []struct {
		record string
		want   []byte
		err    bool
	}{
		{`{"value":"hello"}`, []byte("hello"), false},
		{`{"value":"esc\"aped\n"}`, []byte("esc\"aped\n"), false},
		{`{"value":{"a": 1, "b": [1, 2]}}`, []byte(`{"a":1,"b":[1,2]}`), false},
		{`{"value":null}`, nil, false},
		{`{}`, nil, false},
		{`{"value":12.5}`, []byte("12.5"), false},
		{`{"value":""}`, []byte{}, false},
		{`{"value_b64":"AAEC"}`, []byte{0, 1, 2}, false},
		{`{"value":"x","value_b64":"AAEC"}`, nil, true},
		{`{"value_b64":"!!"}`, nil, true},
		{`{"value_b64":5}`, nil, true},
	}
	var p fastjson.Parser
	for _, c := range cases {
		v, err := p.Parse(c.record)
		if err != nil {
			t.Fatal(err)
		}
		r, err := recordFromValue(v, "records[0]")
		got := r.rec.Value
		if (err != nil) != c.err || string(got) != string(c.want) || (!c.err && (got == nil) != (c.want == nil)) {
			t.Errorf("%s: value %q, %v; want %q err=%v", c.record, got, err, c.want, c.err)
		}
	}
}

func TestRecordFromValueRefusals(t *testing.T) {
	for _, rec := range []string{
		`"a"`, `[1]`, `{"partition":"1"}`, `{"partition":-1}`, `{"partition":1.5}`, `{"timestamp":"now"}`,
		`{"timestamp":-1}`, `{"headers":{"h":1}}`, `{"headers":[1]}`, `{"valu":1}`, `{"key":"a","key_b64":"YQ=="}`,
	} {
		var p fastjson.Parser
		v, err := p.Parse(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := recordFromValue(v, "records[0]"); err == nil {
			t.Errorf("%s was accepted", rec)
		}
	}
}
