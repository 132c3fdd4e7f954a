package fetch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weir/errcode"
	"weir/logstore"
)

// testLog is a log with small segments whose batches the test appends.
type testLog struct {
	t     *testing.T
	l     *logstore.Log
	dir   string
	sizes []int // of each appended batch, in order
}

func newTestLog(t *testing.T, segmentBytes int64, policy string) *testLog {
	t.Helper()
	cfg := logstore.DefaultConfig()
	cfg.SegmentBytes = segmentBytes
	cfg.Fsync = logstore.FsyncNever
	cfg.CleanupPolicy = policy
	dir := t.TempDir()
	l, err := logstore.Open(dir, cfg, logstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &testLog{t: t, l: l, dir: dir}
}

// add appends one batch holding a record per key=value pair ("k=v").
func (tl *testLog) add(kvs ...string) {
	tl.t.Helper()
	recs := make([]logstore.Record, len(kvs))
	for i, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		recs[i] = logstore.Record{Timestamp: 1, Key: []byte(k), Value: []byte(v)}
	}
	batch, err := tl.l.Codecs().EncodeBatch(nil, recs, logstore.BatchOptions{})
	if err != nil {
		tl.t.Fatal(err)
	}
	if _, err := tl.l.AppendAsLeader(context.Background(), batch, 0); err != nil {
		tl.t.Fatal(err)
	}
	tl.sizes = append(tl.sizes, len(batch))
}

// hwSource is the log bounded by a high watermark the test sets.
type hwSource struct {
	l  *logstore.Log
	hw atomic.Int64
}

func newHWSource(l *logstore.Log, hw int64) *hwSource {
	s := &hwSource{l: l}
	s.hw.Store(hw)
	return s
}

func (s *hwSource) Read(offset int64, maxBytes int) (logstore.ReadResult, int64, error) {
	hw := s.hw.Load()
	res, err := s.l.Read(offset, maxBytes, hw)
	return res, hw, err
}

func (s *hwSource) Log() *logstore.Log { return s.l }

// collect reads with Records and returns "offset:value" of each record.
func collect(t *testing.T, src Source, offset int64, lim Limits) ([]string, Result, error) {
	t.Helper()
	var got []string
	res, err := Records(src, offset, lim, func(r logstore.Record) error {
		got = append(got, fmt.Sprintf("%d:%s", r.Offset, r.Value))
		return nil
	})
	return got, res, err
}

func TestRecordsLimitsAndSegments(t *testing.T) {
	tl := newTestLog(t, 200, logstore.CleanupDelete) // about two batches a segment
	for i := range 6 {
		tl.add(fmt.Sprintf("a=%d", 2*i), fmt.Sprintf("b=%d", 2*i+1))
	}
	src := newHWSource(tl.l, 10) // offsets 10 and 11 are not committed
	big := Limits{MaxBytes: 1 << 20}

	got, res, err := collect(t, src, 3, big)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"3:3", "4:4", "5:5", "6:6", "7:7", "8:8", "9:9"}
	if !slices.Equal(got, want) || res.Next != 10 || res.Records != 7 || res.HighWatermark != 10 || res.Bytes != 14 {
		t.Fatalf("from 3 (mid-batch), across segments, below the HW: %q %+v", got, res)
	}
	got, res, err = collect(t, src, 1, Limits{MaxBytes: 1 << 20, MaxRecords: 4})
	if err != nil || !slices.Equal(got, []string{"1:1", "2:2", "3:3", "4:4"}) || res.Next != 5 {
		t.Fatalf("limit 4 from 1: %q %+v %v", got, res, err)
	}
	// One byte: the first batch comes whole, nothing more.
	got, res, err = collect(t, src, 0, Limits{MaxBytes: 1})
	if err != nil || !slices.Equal(got, []string{"0:0", "1:1"}) || res.Next != 2 {
		t.Fatalf("max 1 byte: %q %+v %v", got, res, err)
	}
	// Two batches' worth reaches into the second segment, no further.
	got, _, err = collect(t, src, 0, Limits{MaxBytes: tl.sizes[0] + tl.sizes[1]})
	if err != nil || len(got) != 4 {
		t.Fatalf("two batches' bytes: %q %v", got, err)
	}
	// At the HW: nothing, no error; past the log end: out of range.
	if got, res, err := collect(t, src, 10, big); err != nil || len(got) != 0 || res.Next != 10 {
		t.Fatalf("at the HW: %q %+v %v", got, res, err)
	}
	var oor *logstore.OutOfRangeError
	if _, _, err := collect(t, src, 13, big); !errors.As(err, &oor) {
		t.Fatalf("past the end: %v, want an OutOfRangeError", err)
	}
	// A source bounded by the log end reads what the HW hides.
	if got, res, err := collect(t, newHWSource(tl.l, tl.l.LogEndOffset()), 9, big); err != nil || !slices.Equal(got, []string{"9:9", "10:10", "11:11"}) || res.HighWatermark != 12 {
		t.Fatalf("to the log end: %q %+v %v", got, res, err)
	}
	// fn's error stops the read and comes back as is.
	stop := errors.New("enough")
	n := 0
	res, err = Records(src, 0, big, func(logstore.Record) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || res.Next != 2 || res.Records != 2 {
		t.Fatalf("fn failing at the third record: %v %+v", err, res)
	}
}

// raisingSource is an hwSource whose HW moves to `to` after each read, as
// a leader's does when followers catch up while a read goes on.
type raisingSource struct {
	*hwSource
	to int64
}

func (s raisingSource) Read(offset int64, maxBytes int) (logstore.ReadResult, int64, error) {
	res, hw, err := s.hwSource.Read(offset, maxBytes)
	s.hw.Store(s.to)
	return res, hw, err
}

// A read that goes on into the next segment stays below the HW it began
// with, the HighWatermark it reports: Next never passes it, even when the
// HW rose meanwhile.
func TestRecordsStayBelowTheirHW(t *testing.T) {
	tl := newTestLog(t, 200, logstore.CleanupDelete) // about two batches a segment
	for i := range 6 {
		tl.add(fmt.Sprintf("a=%d", 2*i), fmt.Sprintf("b=%d", 2*i+1))
	}
	src := raisingSource{newHWSource(tl.l, 6), 12}
	got, res, err := collect(t, src, 0, Limits{MaxBytes: 1 << 20})
	want := []string{"0:0", "1:1", "2:2", "3:3", "4:4", "5:5"}
	if err != nil || !slices.Equal(got, want) || res.Next != 6 || res.HighWatermark != 6 {
		t.Fatalf("read from 0 with the HW at 6, then 12: %q %+v %v; want %q, next 6 and HW 6", got, res, err, want)
	}
}

// Ranges compaction emptied are read through, and Next goes past them.
func TestRecordsGoPastCompactedRanges(t *testing.T) {
	tl := newTestLog(t, 150, logstore.CleanupCompact)
	for range 8 {
		tl.add("k=old")
	}
	tl.add("k=new")
	for range 4 { // the active segment, and one to make the previous cleanable
		tl.add("other=x")
	}
	if _, err := tl.l.Compact(context.Background(), tl.l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	src := newHWSource(tl.l, tl.l.LogEndOffset())
	got, res, err := collect(t, src, 0, Limits{MaxBytes: 1 << 20})
	if err != nil || len(got) < 2 || got[0] != "8:new" || res.Next != 13 {
		t.Fatalf("compacted log: %q %+v %v", got, res, err)
	}
}

// corrupt flips a byte inside the batch with index i of the first segment.
func (tl *testLog) corrupt(i int) {
	tl.t.Helper()
	pos := 0
	for _, s := range tl.sizes[:i] {
		pos += s
	}
	path := filepath.Join(tl.dir, fmt.Sprintf("%020d.log", 0))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tl.t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	at := int64(pos + tl.sizes[i] - 1) // the last byte: a record's, under the CRC
	if _, err := f.ReadAt(b, at); err != nil {
		tl.t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		tl.t.Fatal(err)
	}
}

// A batch that fails its CRC is an error at its offset: the records before
// it come, none after it, and no read steps over it.
func TestRecordsStopAtADamagedBatch(t *testing.T) {
	tl := newTestLog(t, 1<<20, logstore.CleanupDelete)
	tl.add("a=0", "a=1")
	tl.add("a=2", "a=3")
	tl.add("a=4", "a=5")
	tl.corrupt(1)
	src := newHWSource(tl.l, 6)
	got, res, err := collect(t, src, 0, Limits{MaxBytes: 1 << 20})
	var se *StorageError
	if name, _ := errcode.NameOf(err); !errors.As(err, &se) || se.Offset != 2 || !errors.Is(err, logstore.ErrCorruptBatch) || name != errcode.KafkaStorageError {
		t.Fatalf("err %v, want a StorageError at offset 2 wrapping ErrCorruptBatch, coded KAFKA_STORAGE_ERROR", err)
	}
	if !slices.Equal(got, []string{"0:0", "1:1"}) || res.Next != 2 {
		t.Fatalf("before the damage: %q %+v", got, res)
	}
	// From the damaged batch on: the error again, whatever the offset inside it.
	for _, off := range []int64{2, 3} {
		if got, res, err := collect(t, src, off, Limits{MaxBytes: 1 << 20}); !errors.As(err, &se) || len(got) != 0 || res.Next != off {
			t.Fatalf("from %d: %q %+v %v", off, got, res, err)
		}
	}
	// Past it, reading goes on.
	if got, _, err := collect(t, src, 4, Limits{MaxBytes: 1 << 20}); err != nil || len(got) != 2 {
		t.Fatalf("from 4: %q %v", got, err)
	}
	// The same batches decoded after another node sent them: the same answer.
	data, _, err := Batches(src, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	res, err = Decode(tl.l.Codecs(), data, 1, 6, Limits{}, func(r logstore.Record) error {
		got = append(got, fmt.Sprintf("%d:%s", r.Offset, r.Value))
		return nil
	})
	if !errors.As(err, &se) || se.Offset != 2 || !slices.Equal(got, []string{"1:1"}) || res.Next != 2 {
		t.Fatalf("decode: %q %+v %v", got, res, err)
	}
	// A torn batch (a reply cut short) is damage too, not the end of the data.
	if _, err := Decode(tl.l.Codecs(), data[:tl.sizes[0]+10], 0, 6, Limits{}, func(logstore.Record) error { return nil }); !errors.As(err, &se) || se.Offset != 2 {
		t.Fatalf("torn: %v", err)
	}
}

// changes is a changed() for Fetch that the test closes.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

func (c *changes) get() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changes) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
	}
	c.ch = make(chan struct{})
}

func TestFetchManyPartitions(t *testing.T) {
	a, b := newTestLog(t, 1<<20, logstore.CleanupDelete), newTestLog(t, 1<<20, logstore.CleanupDelete)
	a.add("x=a0", "x=a1")
	srcA, srcB := newHWSource(a.l, 2), newHWSource(b.l, 0)
	lookup := func(topic string, p int32) (Source, error) {
		switch {
		case topic == "t" && p == 0:
			return srcA, nil
		case topic == "t" && p == 1:
			return srcB, nil
		}
		return nil, fmt.Errorf("no %s-%d here", topic, p)
	}
	var ch changes
	req := Request{MaxBytes: 1 << 20, MaxWait: time.Minute, Partitions: []PartitionRequest{
		{Topic: "t", Partition: 0, Offset: 1}, {Topic: "t", Partition: 1, Offset: 0}}}

	// Data on one partition answers at once.
	out := Fetch(context.Background(), req, lookup, ch.get)
	if len(out) != 2 || len(out[0].Batches) == 0 || out[0].Next != 2 || out[1].Batches != nil || out[1].Err != nil {
		t.Fatalf("with data: %+v", out)
	}
	// Nothing to read: it waits, and an append on another partition wakes it.
	req.Partitions[0].Offset = 2
	done := make(chan []PartitionResult, 1)
	go func() { done <- Fetch(context.Background(), req, lookup, ch.get) }()
	select {
	case out := <-done:
		t.Fatalf("answered without data: %+v", out)
	case <-time.After(50 * time.Millisecond): // it is waiting (an answer would have come)
	}
	b.add("y=b0")
	srcB.hw.Store(1)
	ch.fire()
	select {
	case out := <-done:
		var got []string
		if _, err := Decode(b.l.Codecs(), out[1].Batches, 0, out[1].HighWatermark, Limits{}, func(r logstore.Record) error {
			got = append(got, string(r.Value))
			return nil
		}); err != nil || !slices.Equal(got, []string{"b0"}) || out[0].Batches != nil {
			t.Fatalf("woken: %q %v %+v", got, err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the append did not wake the fetch")
	}
	// An error answers at once; MaxWait 0 answers at once.
	req.Partitions = append(req.Partitions, PartitionRequest{Topic: "t", Partition: 7})
	if out := Fetch(context.Background(), req, lookup, ch.get); out[2].Err == nil {
		t.Fatalf("unknown partition: %+v", out[2])
	}
	req.Partitions, req.MaxWait = req.Partitions[:1], 0
	if out := Fetch(context.Background(), req, lookup, ch.get); out[0].Batches != nil || out[0].Err != nil {
		t.Fatalf("no wait: %+v", out)
	}
	// The whole answer's bound: the second partition's data waits its turn,
	// and the answer says it was left out, unread (HW -1, no error), not
	// read up to its end.
	leftOut := func(r PartitionResult) bool {
		return r.Batches == nil && r.Err == nil && r.Next == 0 && r.HighWatermark == -1 && r.LogStartOffset == -1
	}
	req = Request{MaxBytes: 1, Partitions: []PartitionRequest{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}}}
	if out := Fetch(context.Background(), req, lookup, ch.get); len(out[0].Batches) == 0 || !leftOut(out[1]) {
		t.Fatalf("max bytes 1: %+v", out)
	}
	// So is one whose first batch is over its own bound (only the answer's
	// first batch may be).
	req = Request{MaxBytes: 1 << 20, Partitions: []PartitionRequest{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1, MaxBytes: 1}}}
	if out := Fetch(context.Background(), req, lookup, ch.get); len(out[0].Batches) == 0 || !leftOut(out[1]) {
		t.Fatalf("partition max bytes 1: %+v", out)
	}
}
