package replication

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
)

func sampleResponse() FetchResponse {
	return FetchResponse{Partitions: []FetchPartitionResult{
		{Topic: "a", Partition: 0, HighWatermark: 10, LogStartOffset: 2, LogEndOffset: 12, LeaderEpoch: 3,
			Records: []byte("first partition's batches")},
		{Topic: "b-c", Partition: 7, Error: ErrCodeFencedLeaderEpoch, HighWatermark: -1, LogStartOffset: -1, LogEndOffset: -1, LeaderEpoch: 9},
		{Topic: "d", Partition: 1, HighWatermark: 4, LogEndOffset: 8, LeaderEpoch: 2,
			DivergingEpoch: &EpochEndOffset{Epoch: 1, EndOffset: 5}},
		{Topic: "ü", Partition: 2, HighWatermark: 1, LogEndOffset: 1, Records: bytes.Repeat([]byte{0, 0xff, '\n'}, 100_000)},
	}}
}

func encode(t testing.TB, resp FetchResponse) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := EncodeFetchResponse(&buf, resp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFetchResponseRoundTrip(t *testing.T) {
	want := sampleResponse()
	enc := encode(t, want)
	if raw := len(want.Partitions[0].Records) + len(want.Partitions[3].Records); len(enc) > raw+1024 {
		t.Fatalf("encoding of %d record bytes takes %d bytes", raw, len(enc))
	}
	got, err := DecodeFetchResponse(bytes.NewReader(enc), int64(len(enc)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// Records of one result cannot grow into the next one's.
	r0 := got.Partitions[0].Records
	_ = append(r0, 'X')
	if !bytes.Equal(got.Partitions[3].Records, want.Partitions[3].Records) {
		t.Fatal("appending to one result's records changed another's")
	}
	// One byte under the size is refused, as is a truncated body.
	if _, err := DecodeFetchResponse(bytes.NewReader(enc), int64(len(enc)-1)); !errors.Is(err, ErrBadFetchResponse) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := DecodeFetchResponse(bytes.NewReader(enc[:len(enc)-1]), 1<<30); !errors.Is(err, ErrBadFetchResponse) {
		t.Fatalf("truncated: %v", err)
	}
	// Empty response.
	enc = encode(t, FetchResponse{})
	if got, err := DecodeFetchResponse(bytes.NewReader(enc), 1<<20); err != nil || len(got.Partitions) != 0 {
		t.Fatalf("empty: %+v %v", got, err)
	}
}

func TestFetchRequestJSON(t *testing.T) {
	req := FetchRequest{ReplicaID: 2, ReplicaEpoch: 77, MaxWaitMs: 500, MinBytes: 1, MaxBytes: 1 << 20,
		Partitions: []FetchPartition{{Topic: "t", Partition: 3, FetchOffset: 42, LeaderEpoch: 5, LastFetchedEpoch: 4, LogStartOffset: 1}}}
	js, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"replica_id":2,"replica_epoch":77,"max_wait_ms":500,"min_bytes":1,"max_bytes":1048576,"partitions":[{"topic":"t","partition":3,"fetch_offset":42,"leader_epoch":5,"last_fetched_epoch":4,"log_start_offset":1}]}`
	if string(js) != want {
		t.Fatalf("JSON\n got %s\nwant %s", js, want)
	}
}

func TestDecodeFetchResponseGarbage(t *testing.T) {
	valid := encode(t, sampleResponse())
	check := func(name string, data []byte, limit int64) {
		t.Helper()
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%s: panic %v", name, r)
			}
		}()
		if _, err := DecodeFetchResponse(bytes.NewReader(data), limit); err != nil && !errors.Is(err, ErrBadFetchResponse) {
			t.Fatalf("%s: error %v does not wrap ErrBadFetchResponse", name, err)
		}
	}
	small := sampleResponse()
	small.Partitions = small.Partitions[:3]
	smallEnc := encode(t, small)
	for i := range len(smallEnc) { // cut everywhere: prefix, header, records
		check("truncated", smallEnc[:i], 1<<30)
	}
	for i := len(smallEnc); i < len(valid); i += 9973 { // and the big one now and then
		check("truncated", valid[:i], 1<<30)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(300))
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		if rng.IntN(2) == 0 && len(b) >= 8 { // past the magic, into the header parser
			copy(b, fetchResponseMagic)
			binary.BigEndian.PutUint32(b[4:], uint32(rng.IntN(len(b))))
		}
		check("random", b, 1<<20)
	}
	for range 2000 { // flipped bytes in a valid encoding
		b := bytes.Clone(smallEnc)
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] ^= byte(1 + rng.UintN(255))
		}
		check("flipped", b, 1<<30)
	}
	for _, hdr := range []string{
		`{"partitions":[{"topic":"a","records_len":-1}]}`,
		`{"partitions":[{"topic":"a","records_len":9223372036854775807},{"topic":"b","records_len":9223372036854775807}]}`,
		`{"partitions":[{"topic":"a","records_len":5}]}`, // body missing
		`{"partitions":"nope"}`,
		`null`,
	} {
		b := append([]byte(fetchResponseMagic+"\x00\x00\x00\x00"), hdr...)
		binary.BigEndian.PutUint32(b[4:], uint32(len(hdr)))
		if _, err := DecodeFetchResponse(bytes.NewReader(b), 1<<20); hdr != "null" && !errors.Is(err, ErrBadFetchResponse) {
			t.Errorf("header %s: %v", hdr, err)
		}
	}
}

// A peer announcing huge sizes and sending little costs little memory.
func TestDecodeFetchResponseAllocatesWhatArrives(t *testing.T) {
	hdr := []byte(`{"partitions":[{"topic":"a","records_len":1000000000}]}`)
	b := append([]byte(fetchResponseMagic+"\x00\x00\x00\x00"), hdr...)
	binary.BigEndian.PutUint32(b[4:], uint32(len(hdr)))
	b = append(b, make([]byte, 1000)...)
	claimsHeader := []byte(fetchResponseMagic + "\x7f\xff\xff\xff")
	for name, data := range map[string][]byte{"records": b, "header": claimsHeader} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := DecodeFetchResponse(io.MultiReader(bytes.NewReader(data)), 4<<30)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrBadFetchResponse) {
			t.Fatalf("%s: %v", name, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Fatalf("%s: decoding %d bytes that claim ~1-2 GB allocated %d bytes", name, len(data), grew)
		}
	}
}

func FuzzDecodeFetchResponse(f *testing.F) {
	f.Add(encode(f, sampleResponse()))
	f.Add(encode(f, FetchResponse{}))
	f.Add([]byte("WFR1\x00\x00\x00\x02{}"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := DecodeFetchResponse(bytes.NewReader(data), 1<<20)
		if err != nil {
			if !errors.Is(err, ErrBadFetchResponse) {
				t.Fatalf("error %v does not wrap ErrBadFetchResponse", err)
			}
			return
		}
		// Whatever decodes encodes back and decodes to the same.
		again, err := DecodeFetchResponse(bytes.NewReader(encode(t, resp)), 1<<20)
		if err != nil || !reflect.DeepEqual(normalize(again), normalize(resp)) {
			t.Fatalf("re-encoding changed the response: %v", err)
		}
	})
}

// normalize makes empty records nil (both encode alike).
func normalize(r FetchResponse) FetchResponse {
	for i := range r.Partitions {
		if len(r.Partitions[i].Records) == 0 {
			r.Partitions[i].Records = nil
		}
	}
	return r
}
