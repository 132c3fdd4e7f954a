package groups

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestOffsetRecordRoundTrip(t *testing.T) {
	tests := []struct {
		group, topic, md string
		p                int32
		off, ts          int64
	}{
		{"g", "orders", "", 0, 0, 0},
		{"test-consumer-group", "t", "meta", 7, 1 << 40, 1_700_000_000_000},
		{"消费组", "主题", "ü", 2147483647, 1<<63 - 1, -1},
	}
	for _, tt := range tests {
		k, v := EncodeOffsetCommit(tt.group, tt.topic, tt.p, tt.off, tt.md, tt.ts)
		// Kafka's layout: key version 1, value version 3.
		if k[0] != 0 || k[1] != 1 || v[0] != 0 || v[1] != 3 {
			t.Fatalf("versions: key %x value %x", k[:2], v[:2])
		}
		rec, err := DecodeRecord(k, v)
		if err != nil {
			t.Fatal(err)
		}
		want := Record{Kind: KindOffsetCommit, Group: tt.group, Topic: tt.topic, Partition: tt.p,
			Offset: tt.off, Metadata: tt.md, CommitTime: tt.ts, LeaderEpoch: -1}
		if !reflect.DeepEqual(rec, want) {
			t.Fatalf("got %+v\nwant %+v", rec, want)
		}
		tomb, err := DecodeRecord(EncodeOffsetTombstone(tt.group, tt.topic, tt.p), nil)
		if err != nil || !tomb.Tombstone || tomb.Group != tt.group || tomb.Topic != tt.topic || tomb.Partition != tt.p {
			t.Fatalf("tombstone %+v %v", tomb, err)
		}
		// The tombstone key equals the commit key, so compaction replaces.
		if !bytes.Equal(k, EncodeOffsetTombstone(tt.group, tt.topic, tt.p)) {
			t.Fatal("tombstone key differs from commit key")
		}
	}
}

func TestDecodeOtherVersions(t *testing.T) {
	// Records written by Kafka with older layouts still decode.
	k := kmsg.NewOffsetCommitKey()
	k.Version, k.Group, k.Topic, k.Partition = 0, "g", "t", 1
	for _, ver := range []int16{0, 1, 2, 3, 4} {
		v := kmsg.NewOffsetCommitValue()
		v.Version, v.Offset, v.Metadata, v.CommitTimestamp, v.LeaderEpoch = ver, 9, "m", 5, 4
		rec, err := DecodeRecord(k.AppendTo(nil), v.AppendTo(nil))
		if err != nil || rec.Offset != 9 || rec.Metadata != "m" || rec.CommitTime != 5 {
			t.Fatalf("value v%d: %+v %v", ver, rec, err)
		}
		if wantEpoch := map[bool]int32{true: 4, false: -1}[ver >= 3]; rec.LeaderEpoch != wantEpoch {
			t.Fatalf("v%d epoch %d", ver, rec.LeaderEpoch)
		}
	}
	gk, gv := EncodeGroupMetadata("g", 12, "sticky", 77)
	rec, err := DecodeRecord(gk, gv)
	if err != nil || rec.Kind != KindGroupMetadata || rec.Generation != 12 || rec.Assignor != "sticky" || rec.StateTime != 77 {
		t.Fatalf("group metadata %+v %v", rec, err)
	}
	// A newer Kafka coordinator record type is recognised as foreign.
	if _, err := DecodeRecord([]byte{0, 5, 0, 1, 'g'}, []byte{1}); !errors.Is(err, ErrUnknownRecord) {
		t.Fatalf("unknown type: %v", err)
	}
}

func TestDecodeGarbage(t *testing.T) {
	k, v := EncodeOffsetCommit("group", "topic", 3, 100, "metadata", 5)
	gk, gv := EncodeGroupMetadata("group", 1, "range", 5)
	cases := [][2][]byte{
		{nil, nil},
		{{0}, nil},
		{{0, 1, 0xff, 0xff}, v},      // negative string length
		{{0, 1, 0x7f, 0xff, 'a'}, v}, // string longer than key
		{k, {0, 3, 1}},               // truncated value
		{k, {0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}, // future value version
		{k, {0x80, 0, 1, 2, 3}},                   // negative value version
	}
	for i := 1; i < len(k); i++ {
		cases = append(cases, [2][]byte{k[:i], v})
	}
	for i := 1; i < len(v); i++ {
		cases = append(cases, [2][]byte{k, v[:i]})
	}
	for i := 1; i < len(gv); i++ {
		cases = append(cases, [2][]byte{gk, gv[:i]})
	}
	for i, c := range cases {
		if _, err := DecodeRecord(c[0], c[1]); err == nil {
			t.Errorf("case %d (%x / %x): decoded garbage", i, c[0], c[1])
		} else if !errors.Is(err, ErrMalformedRecord) && !errors.Is(err, ErrUnknownRecord) {
			t.Errorf("case %d: unexpected error %v", i, err)
		}
	}
	// Random mutations: never panic (the fuzz target below goes further).
	r := rand.New(rand.NewPCG(9, 9))
	for range 20000 {
		kk, vv := bytes.Clone(k), bytes.Clone(v)
		if r.IntN(2) == 0 {
			kk, vv = bytes.Clone(gk), bytes.Clone(gv)
		}
		for range 1 + r.IntN(4) {
			buf := kk
			if r.IntN(2) == 0 {
				buf = vv
			}
			if len(buf) > 0 {
				buf[r.IntN(len(buf))] = byte(r.Uint32())
			}
		}
		_, _ = DecodeRecord(kk, vv)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	k, v := EncodeOffsetCommit("g", "t", 1, 2, "m", 3)
	f.Add(k, v)
	gk, gv := EncodeGroupMetadata("g", 1, "range", 5)
	f.Add(gk, gv)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		_, _ = DecodeRecord(key, value)
		l := NewLoader()
		_ = l.Apply(key, value)
	})
}

func TestLoader(t *testing.T) {
	type rec struct{ k, v []byte }
	var log []rec
	commit := func(g, topic string, p int32, off int64, md string, ts int64) {
		k, v := EncodeOffsetCommit(g, topic, p, off, md, ts)
		log = append(log, rec{k, v})
	}
	commit("g1", "t", 0, 5, "a", 1)
	commit("g1", "t", 1, 6, "", 1)
	commit("g2", "t", 0, 9, "", 2)
	log = append(log, rec{[]byte("garbage"), []byte("x")})
	commit("g1", "t", 0, 50, "b", 3) // later wins
	log = append(log, rec{EncodeOffsetTombstone("g1", "t", 1), nil})
	gk, gv := EncodeGroupMetadata("g1", 4, "sticky", 3)
	log = append(log, rec{gk, gv})
	log = append(log, rec{[]byte{0, 4, 0, 0}, []byte{1}}) // foreign record type
	commit("g3", "t", 0, 1, "", 4)
	log = append(log, rec{EncodeOffsetTombstone("g3", "t", 0), []byte{}}) // g3 vanishes
	log = append(log, rec{EncodeOffsetTombstone("nobody", "t", 0), nil})  // harmless
	gk2, gv2 := EncodeGroupMetadata("g4", 2, "range", 3)
	log = append(log, rec{gk2, gv2}, rec{EncodeGroupTombstone("g4"), nil})

	l := NewLoader()
	for _, r := range log {
		_ = l.Apply(r.k, r.v)
	}
	if l.Errors != 1 || l.Ignored != 1 || l.LastError == nil {
		t.Fatalf("errors %d ignored %d last %v", l.Errors, l.Ignored, l.LastError)
	}
	gs := l.Groups()
	if len(gs) != 2 {
		t.Fatalf("groups %v", gs)
	}
	g1 := gs["g1"]
	want := map[TopicPartition]OffsetAndMetadata{{"t", 0}: {50, "b", 3}}
	if !reflect.DeepEqual(g1.Offsets, want) || !g1.HasMetadata || g1.Generation != 4 || g1.Assignor != "sticky" {
		t.Fatalf("g1 %+v", g1)
	}
	if gs["g2"].Offsets[TopicPartition{"t", 0}].Offset != 9 || gs["g2"].HasMetadata {
		t.Fatalf("g2 %+v", gs["g2"])
	}
	// Restoring continues the generation and offsets.
	g := NewGroup("g1", g1.Options())
	ms, err := g.Join(JoinRequest{Topics: []string{"t"}}, t0)
	if err != nil || ms.Generation != 5 {
		t.Fatalf("restored join %+v %v", ms, err)
	}
	if o, ok := g.Committed(TopicPartition{"t", 0}); !ok || o.Offset != 50 {
		t.Fatal("restored offsets missing")
	}
}

// TestLoaderMatchesCompaction: replaying a random history gives the same
// state as replaying only the last record per key (what compaction keeps).
func TestLoaderMatchesCompaction(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 50 {
		type rec struct{ k, v []byte }
		var log []rec
		for range 200 {
			g, topic, p := []string{"g1", "g2"}[r.IntN(2)], []string{"a", "b"}[r.IntN(2)], int32(r.IntN(3))
			if r.IntN(4) == 0 {
				log = append(log, rec{EncodeOffsetTombstone(g, topic, p), nil})
				continue
			}
			k, v := EncodeOffsetCommit(g, topic, p, r.Int64N(1000), "", r.Int64N(1000))
			log = append(log, rec{k, v})
		}
		full := NewLoader()
		last := map[string]int{}
		for i, x := range log {
			_ = full.Apply(x.k, x.v)
			last[string(x.k)] = i
		}
		compacted := NewLoader()
		for i, x := range log {
			if last[string(x.k)] == i {
				_ = compacted.Apply(x.k, x.v)
			}
		}
		if !reflect.DeepEqual(full.Groups(), compacted.Groups()) {
			t.Fatalf("full %v\ncompacted %v", full.Groups(), compacted.Groups())
		}
	}
}
