package replication

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"weir/logstore"
)

// keyedBatch is a batch of one record with key k.
func keyedBatch(t *testing.T, p *Partition, k, v string) []byte {
	t.Helper()
	b, err := p.Log().Codecs().EncodeBatch(nil, []logstore.Record{{Key: []byte(k), Value: []byte(v), Timestamp: time.Now().UnixMilli()}}, logstore.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFollowerCatchesUpAcrossMergedEmptyBatches: compaction empties batches
// whose records were superseded and merges neighbouring empty ones, so the
// leader's merged batch can span the log end of a follower that was away.
// That follower used to refuse every fetch ("straddles the fetch offset")
// and never came back into the ISR: a compacted partition (the offsets
// topic) then stayed one failure away from too few in-sync replicas, and
// the fault harness saw joins of a group fail with NOT_ENOUGH_REPLICAS for
// minutes. It continues from its end now, and rejoins the ISR.
func TestFollowerCatchesUpAcrossMergedEmptyBatches(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir()} // made first: removed after the cluster stops
	c := newCluster(t, logstore.FsyncNever)
	c.cfg.CleanupPolicy = logstore.CleanupCompact
	c.cfg.SegmentBytes = 4 << 10
	for i, dir := range dirs {
		c.start(int32(i+1), dir)
	}
	c.set(Assignment{Topic: "t", Partition: 0, Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1,
		ISR: []int32{1, 2}, MinISR: 1, ReplicaLagTimeMax: 10 * time.Second})
	lp := c.part(1)
	ctx := testCtx(t)
	produce := func(i int, acks Acks) int64 {
		t.Helper()
		res, err := lp.Append(ctx, keyedBatch(t, lp, "k", fmt.Sprint(i)), acks)
		if err != nil {
			t.Fatal(err)
		}
		return res.LastOffset + 1
	}
	var away int64
	for i := range 5 {
		away = produce(i, AcksAll)
	}
	waitUntil(t, "node 2 has the first batches", func() bool { return c.part(2).Log().LogEndOffset() == away })

	// Node 2 goes away; the ISR shrinks, the leader writes on (one key, so
	// every batch but the last is superseded) and compacts.
	c.block(2)
	end := produce(5, AcksLeader) // node 2 is behind from here
	c.clock.Advance(11 * time.Second)
	c.node(1).m.CheckISR(c.clock.Now())
	waitUntil(t, "node 2 out of the ISR", func() bool { return slices.Equal(isrOf(lp), []int32{1}) })
	c.applyAll()
	for i := 6; lp.Log().SegmentCount() < 3; i++ {
		end = produce(i, AcksLeader)
	}
	if err := lp.WaitHW(ctx, end-1); err != nil {
		t.Fatal(err)
	}
	if _, err := lp.Log().Compact(ctx, lp.HighWatermark()); err != nil {
		t.Fatal(err)
	}
	rr, err := lp.Log().Read(away, 1<<20, lp.Log().LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	first, _, _, err := logstore.NextBatch(rr.Data)
	if err != nil || first.BaseOffset() >= away || first.RecordCount() != 0 {
		t.Fatalf("the test needs a merged empty batch across node 2's end %d; the leader has [%d, %d] with %d records (%v)",
			away, first.BaseOffset(), first.LastOffset(), first.RecordCount(), err)
	}

	c.unblock(2)
	fp := c.part(2)
	waitUntil(t, fmt.Sprintf("node 2 continues from %d to the leader's end %d", away, end), func() bool { return fp.Log().LogEndOffset() == end })
	waitUntil(t, "node 2 back in the ISR", func() bool { return slices.Equal(isrOf(lp), []int32{1, 2}) })
	last, err := fp.Log().Read(end-1, 1<<20, end)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := fp.Log().Codecs().Records(logstore.Batch(last.Data))
	if err != nil || len(recs) != 1 || string(recs[0].Value) != fmt.Sprint(end-1) {
		t.Fatalf("node 2's last record: %+v %v, want value %d", recs, err, end-1)
	}
}
