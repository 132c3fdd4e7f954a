package replication

import (
	"context"
	"errors"
	"testing"
	"time"

	"weir/logstore"
)

func newTestManager(t *testing.T, fsync logstore.FsyncPolicy) (*Manager, logstore.Config) {
	t.Helper()
	cfg := logstore.DefaultConfig()
	cfg.Fsync = fsync
	logs, err := logstore.OpenManager(t.TempDir(), logstore.ManagerOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(1, logs)
	t.Cleanup(func() { m.Close(); _ = logs.Close() })
	return m, cfg
}

func batch(t *testing.T, p *Partition, values ...string) []byte {
	t.Helper()
	var recs []logstore.Record
	for _, v := range values {
		recs = append(recs, logstore.Record{Value: []byte(v), Timestamp: time.Now().UnixMilli()})
	}
	b, err := p.Log().Codecs().EncodeBatch(nil, recs, logstore.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendAcksAndHighWatermark(t *testing.T) {
	for _, fsync := range []logstore.FsyncPolicy{logstore.FsyncAlways, logstore.FsyncNever} {
		t.Run(string(fsync), func(t *testing.T) {
			m, cfg := newTestManager(t, fsync)
			if err := m.Apply([]Assignment{{Topic: "t", Partition: 0, Replicas: []int32{1}, Leader: 1, ISR: []int32{1}, MinISR: 1, Config: cfg}}); err != nil {
				t.Fatal(err)
			}
			p, ok := m.Partition("t", 0)
			if !ok {
				t.Fatal("partition not created")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := p.Append(ctx, batch(t, p, "a", "b"), AcksAll)
			if err != nil || res.BaseOffset != 0 || res.LastOffset != 1 {
				t.Fatalf("append: %+v %v", res, err)
			}
			if hw := p.HighWatermark(); hw != 2 {
				t.Fatalf("acks=all returned before the HW passed the batch: hw %d", hw)
			}
			// acks=1: the HW follows once the background flusher ran.
			if _, err := p.Append(ctx, batch(t, p, "c"), AcksLeader); err != nil {
				t.Fatal(err)
			}
			if err := p.WaitHW(ctx, 2); err != nil {
				t.Fatalf("HW never passed an acks=1 write: %v", err)
			}
			// Reads stop at the HW and refuse beyond it.
			if _, _, err := p.Read(4, 1<<20); !errors.Is(err, logstore.ErrOffsetOutOfRange) {
				t.Fatalf("read above the HW: %v", err)
			}
			rr, hw, err := p.Read(0, 1<<20)
			if err != nil || hw != 3 || rr.NextOffset != 3 {
				t.Fatalf("read: next %d hw %d err %v", rr.NextOffset, hw, err)
			}
		})
	}
}

func TestWaitHWWakesOnAppendAndHonoursContext(t *testing.T) {
	m, cfg := newTestManager(t, logstore.FsyncAlways)
	if err := m.Apply([]Assignment{{Topic: "t", Partition: 0, Replicas: []int32{1}, Leader: 1, ISR: []int32{1}, MinISR: 1, Config: cfg}}); err != nil {
		t.Fatal(err)
	}
	p, _ := m.Partition("t", 0)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.WaitHW(short, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitHW on an empty log: %v", err)
	}
	any := m.AnyChanged()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- p.WaitHW(ctx, 0)
	}()
	if _, err := p.Append(context.Background(), batch(t, p, "x"), AcksAll); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiter not woken: %v", err)
	}
	select {
	case <-any:
	case <-time.After(10 * time.Second):
		t.Fatal("AnyChanged not closed after the HW moved")
	}
}

func TestNotLeaderAndMinISR(t *testing.T) {
	m, cfg := newTestManager(t, logstore.FsyncNever)
	err := m.Apply([]Assignment{
		{Topic: "f", Partition: 0, Replicas: []int32{2, 1}, Leader: 2, ISR: []int32{2, 1}, MinISR: 1, Config: cfg},
		{Topic: "m", Partition: 0, Replicas: []int32{1}, Leader: 1, ISR: []int32{1}, MinISR: 2, Config: cfg},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := m.Partition("f", 0)
	if _, err := f.Append(context.Background(), batch(t, f, "x"), AcksAll); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append on a follower: %v", err)
	}
	mp, _ := m.Partition("m", 0)
	if _, err := mp.Append(context.Background(), batch(t, mp, "x"), AcksAll); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("acks=all below min.insync.replicas: %v", err)
	}
	if mp.Log().LogEndOffset() != 0 {
		t.Fatal("a refused acks=all write was appended")
	}
	// Unassigning deletes the local log.
	if err := m.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Partition("m", 0); ok {
		t.Fatal("unassigned partition still held")
	}
}

func TestParseAcks(t *testing.T) {
	for in, want := range map[string]Acks{"": AcksAll, "all": AcksAll, "-1": AcksAll, "1": AcksLeader, "0": AcksNone} {
		if got, err := ParseAcks(in); err != nil || got != want {
			t.Errorf("ParseAcks(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseAcks("2"); err == nil {
		t.Error("acks=2 accepted")
	}
}

func TestAppendInEpochRefusesAnotherLeadership(t *testing.T) {
	m, cfg := newTestManager(t, logstore.FsyncNever)
	assign := func(epoch int32) {
		t.Helper()
		if err := m.Apply([]Assignment{{Topic: "t", Partition: 0, Replicas: []int32{1}, Leader: 1, LeaderEpoch: epoch,
			ISR: []int32{1}, MinISR: 1, Config: cfg}}); err != nil {
			t.Fatal(err)
		}
	}
	assign(3)
	p, _ := m.Partition("t", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.AppendInEpoch(ctx, batch(t, p, "a"), AcksAll, 3); err != nil {
		t.Fatalf("append in the current epoch: %v", err)
	}
	assign(4)
	if _, err := p.AppendInEpoch(ctx, batch(t, p, "b"), AcksAll, 3); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append in a past epoch: %v, want ErrNotLeader", err)
	}
	if end := p.Log().LogEndOffset(); end != 1 {
		t.Fatalf("the refused append was written: log end %d", end)
	}
}
