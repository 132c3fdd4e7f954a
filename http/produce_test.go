package httpapi

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"weir/logstore"
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

func TestEachLine(t *testing.T) {
	var got []string
	var at []int
	err := eachLine([]byte("a\r\nb\n\nc\n"), func(line []byte, off int) error {
		got, at = append(got, string(line)), append(at, off)
		return nil
	})
	if err != nil || !slices.Equal(got, []string{"a", "b", "", "c"}) || !slices.Equal(at, []int{0, 3, 5, 6}) {
		t.Fatalf("eachLine: %q at %v, %v", got, at, err)
	}
	if eachLine(nil, func([]byte, int) error { t.Fatal("a line in an empty body"); return nil }) != nil {
		t.Fatal("empty body")
	}
}

// parseProduce parses body as a produce of a 3-partition topic and returns
// the records in request order with their partitions.
func parseProduce(t testing.TB, body, mt string) ([]logstore.Record, []int32, error) {
	t.Helper()
	st := &produceState{}
	st.reset(TopicInfo{Name: "t", Partitions: 3, MaxMessageBytes: 1 << 20}, -1, nil, 1000, 1000, func() int32 { return 1 })
	if err := st.parse([]byte(body), mt); err != nil {
		return nil, nil, err
	}
	codecs := logstore.NewCodecs(0)
	perBatch := make([][]logstore.Record, len(st.batches))
	for i, b := range st.batches {
		batch, err := b.b.Finish(logstore.BatchOptions{})
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if err := batch.Validate(); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if perBatch[i], err = codecs.Records(batch); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	recs := make([]logstore.Record, len(st.place))
	parts := make([]int32, len(st.place))
	for i, pl := range st.place {
		recs[i], parts[i] = perBatch[pl.batch][pl.delta], st.batches[pl.batch].partition
		if recs[i].Timestamp != pl.ts {
			t.Fatalf("record %d: timestamp %d in the batch, %d in the reply", i, recs[i].Timestamp, pl.ts)
		}
	}
	return recs, parts, nil
}

func TestRecordBytes(t *testing.T) {
	cases := []struct {
		record string
		want   []byte
		err    bool
	}{
		{`{"value":"hello"}`, []byte("hello"), false},
		{`{"value":"esc\"aped\n\u00e9\ud83d\ude00"}`, []byte("esc\"aped\n\u00e9\U0001F600"), false},
		{`{"value":{"a": 1, "b": [1, 2], "c": " x "}}`, []byte(`{"a":1,"b":[1,2],"c":" x "}`), false},
		{`{"value":null}`, nil, false},
		{`{}`, nil, false},
		{`{"value":12.5}`, []byte("12.5"), false},
		{`{"value":-0.5e-3}`, []byte("-0.5e-3"), false},
		{`{"value":""}`, []byte{}, false},
		{`{"value_b64":"AAEC"}`, []byte{0, 1, 2}, false},
		{`{"value_b64":"AA\/C"}`, []byte{0, 15, 194}, false},
		{`{"value_b64":null}`, nil, false},
		{`{"value":"x","value_b64":"AAEC"}`, nil, true},
		{`{"value_b64":"!!"}`, nil, true},
		{`{"value_b64":5}`, nil, true},
	}
	for _, c := range cases {
		recs, _, err := parseProduce(t, `{"records":[`+c.record+`]}`, "application/json")
		if (err != nil) != c.err {
			t.Errorf("%s: %v", c.record, err)
			continue
		}
		if err != nil {
			continue
		}
		got := recs[0].Value
		if string(got) != string(c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("%s: value %q, want %q", c.record, got, c.want)
		}
	}
}

func TestProduceBodies(t *testing.T) {
	recs, parts, err := parseProduce(t, `{"records":[{"key":"k","value":"a","headers":{"b":"2","a":"1"}},{"value":"b","partition":2,"timestamp":5}]}`, "application/json")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0].Key) != "k" || parts[0] != KeyPartition([]byte("k"), 3) || parts[1] != 2 || recs[1].Timestamp != 5 || recs[0].Timestamp != 1000 {
		t.Fatalf("records %+v in %v", recs, parts)
	}
	if h := recs[0].Headers; len(h) != 2 || h[0].Key != "a" || string(h[1].Value) != "2" {
		t.Fatalf("headers %+v", h)
	}
	recs, parts, err = parseProduce(t, "{\"value\":1}\n\n  \r\n{\"value\":2, \"partition\":0}\n", "application/x-ndjson")
	if err != nil || len(recs) != 2 || string(recs[1].Value) != "2" || parts[0] != 1 || parts[1] != 0 {
		t.Fatalf("ndjson: %+v %v %v", recs, parts, err)
	}
	recs, _, err = parseProduce(t, "a\r\n\nb", "text/plain")
	if err != nil || len(recs) != 3 || string(recs[0].Value) != "a" || len(recs[1].Value) != 0 || recs[1].Value == nil {
		t.Fatalf("text: %+v %v", recs, err)
	}
	recs, _, err = parseProduce(t, "", "application/octet-stream")
	if err != nil || len(recs) != 1 || recs[0].Value == nil || len(recs[0].Value) != 0 {
		t.Fatalf("empty octet body: %+v %v", recs, err)
	}
}

// Each refusal is a 4xx naming where the fault is.
func TestProduceBodyRefusals(t *testing.T) {
	cases := []struct{ body, mention string }{
		{`{"records":["a"]}`, "records[0]"},
		{`{"records":[[1]]}`, "records[0]"},
		{`{"records":[{"partition":"1"}]}`, "records[0].partition"},
		{`{"records":[{"partition":-1}]}`, "records[0].partition"},
		{`{"records":[{"partition":1.5}]}`, "records[0].partition"},
		{`{"records":[{"partition":null}]}`, "records[0].partition"},
		{`{"records":[{"partition":3}]}`, "no partition 3"},
		{`{"records":[{"timestamp":"now"}]}`, "records[0].timestamp"},
		{`{"records":[{"timestamp":-1}]}`, "records[0].timestamp"},
		{`{"records":[{"headers":{"h":1}}]}`, "headers"},
		{`{"records":[{"headers":[1]}]}`, "headers"},
		{`{"records":[{"headers":{"h":"1","h":"2"}}]}`, `"h" is given twice`},
		{`{"records":[{"valu":1}]}`, `"valu"`},
		{`{"records":[{"Value":1}]}`, `"Value"`},
		{`{"records":[{"value":1,"value":2}]}`, `"value" is given twice`},
		{`{"records":[],"records":[]}`, `"records" is given twice`},
		{`{"Records":[]}`, `"Records"`},
		{`{"records":[{"key":"a","key_b64":"YQ=="}]}`, "key_b64"},
		{`{"records":[{"value":NaN}]}`, "byte 21"},
		{`{"records":[{"value":01}]}`, "leading zero"},
		{`{"records":[{"value":.5}]}`, "byte 21"},
		{`{"records":[{"value":1.}]}`, "decimal point"},
		{`{"records":[{"value":1e}]}`, "exponent"},
		{`{"records":[{"value":"\x"}]}`, `invalid escape \x`},
		{`{"records":[{"value":"\u12"}]}`, `\u`},
		{"{\"records\":[{\"value\":\"a\tb\"}]}", "control character 0x09"},
		{`{"records":[{"value":tru}]}`, "true"},
		{`{"records":[{"value":"a"}]} x`, "after the JSON object"},
		{"{\"records\":[{\"value\":\"a\"}]}\x00", "after the JSON object"},
		{"{\"records\":[{\"value\":\x00}]}", "byte 0x00"},
		{`{"records":[{"value":"a"},]}`, "byte 26"},
		{`{"records":[{"value":"a"}`, "byte"},
		{`{"records":[{"value":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}]}`, "nested"},
		{`[]`, "JSON object"},
		{``, "empty"},
		{`{}`, "records: missing"},
	}
	for _, c := range cases {
		_, _, err := parseProduce(t, c.body, "application/json")
		var ae *Error
		if !errors.As(err, &ae) || ae.Status/100 != 4 || !strings.Contains(ae.Message, c.mention) {
			t.Errorf("%s: %v, want a 4xx naming %q", clipInput(c.body, 80), err, c.mention)
		}
	}
	if _, _, err := parseProduce(t, "{\"value\":1}\n\x00\n", "application/x-ndjson"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a NUL line: %v, want line 2 refused", err)
	}
	_, _, err := parseProduce(t, "{\"value\":1}\n{\"value\":01}\n", "application/x-ndjson")
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "byte 21") {
		t.Errorf("ndjson: %v, want line 2 at byte 21", err)
	}
}

// The produce hot path: weir bench's body of 500 records of 1 KiB strings.
func BenchmarkProduceParseJSON(b *testing.B) {
	value := strings.Repeat("abcdefghij klmnopqrstuvwxyz!#$%&'()*+,-./0123456789", 21)[:1024]
	var body strings.Builder
	body.WriteString(`{"records":[`)
	for i := range 500 {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"value":"` + value + `"}`)
	}
	body.WriteString(`]}`)
	data := []byte(body.String())
	st := &produceState{}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		st.reset(TopicInfo{Name: "t", Partitions: 3, MaxMessageBytes: 1 << 20}, -1, nil, 1000, 100_000, func() int32 { return 1 })
		if err := st.parse(data, "application/json"); err != nil {
			b.Fatal(err)
		}
	}
}
