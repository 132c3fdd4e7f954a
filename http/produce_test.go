package httpapi

import "testing"

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
	s := "AAEC"
	cases := []struct {
		raw  string
		b64  *string
		want []byte
		err  bool
	}{
		{`"hello"`, nil, []byte("hello"), false},
		{`{"a": 1, "b": [1, 2]}`, nil, []byte(`{"a":1,"b":[1,2]}`), false},
		{`null`, nil, nil, false},
		{``, nil, nil, false},
		{`12.5`, nil, []byte("12.5"), false},
		{``, &s, []byte{0, 1, 2}, false},
		{`"x"`, &s, nil, true},
	}
	for _, c := range cases {
		var raw []byte
		if c.raw != "" {
			raw = []byte(c.raw)
		}
		got, err := recordBytes(raw, c.b64, "records[0]", "value")
		if (err != nil) != c.err || string(got) != string(c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("recordBytes(%q, %v) = %q, %v; want %q err=%v", c.raw, c.b64, got, err, c.want, c.err)
		}
	}
}
