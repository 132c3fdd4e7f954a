package replication

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"weir/logstore"
)

// A replica whose log cannot be opened (here a file is in the way of its
// directory) does not fail Apply nor hold up the other replicas: it is
// reported by OpenError, left without a directory of its own, and opened by a
// later Apply once the way is clear and the backoff passed.
func TestApplyKeepsOtherReplicasWhenALogCannotOpen(t *testing.T) {
	cfg := logstore.DefaultConfig()
	dir := t.TempDir()
	logs, err := logstore.OpenManager(dir, logstore.ManagerOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	m := New(1, logs, Options{Now: func() time.Time { return time.Unix(0, now.Load()) }})
	t.Cleanup(func() { m.Close(); _ = logs.Close() })
	blocked := filepath.Join(dir, logstore.PartitionDir("t", 1))
	if err := os.WriteFile(blocked, []byte("not a log"), 0o644); err != nil {
		t.Fatal(err)
	}
	var as []Assignment
	for p := range int32(3) {
		as = append(as, Assignment{Topic: "t", Partition: p, Replicas: []int32{1}, Leader: 1, ISR: []int32{1}, MinISR: 1, Config: cfg})
	}
	if err := m.Apply(as); err != nil {
		t.Fatalf("Apply failed because of one replica: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range []int32{0, 2} {
		part, ok := m.Partition("t", p)
		if !ok {
			t.Fatalf("partition %d was not opened", p)
		}
		if _, err := part.Append(ctx, batch(t, part, "v"), AcksAll); err != nil {
			t.Fatalf("append to partition %d: %v", p, err)
		}
	}
	if _, ok := m.Partition("t", 1); ok {
		t.Fatal("the replica whose log failed is listed")
	}
	if err := m.OpenError("t", 1); err == nil || !strings.Contains(err.Error(), "t-1") {
		t.Fatalf("OpenError = %v, want the failure naming t-1", err)
	}
	if f := m.FailedToOpen(); len(f) != 1 || f[0] != (PartitionID{"t", 1}) || m.OpenError("t", 0) != nil {
		t.Fatalf("failed to open %v, partition 0: %v", f, m.OpenError("t", 0))
	}
	if fi, err := os.Stat(blocked); err != nil || fi.IsDir() {
		t.Fatalf("what was in the way changed: %v", err)
	}

	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(as); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Partition("t", 1); ok {
		t.Fatal("retried before the backoff passed")
	}
	now.Add(int64(2 * openRetryMin))
	if err := m.Apply(as); err != nil {
		t.Fatal(err)
	}
	part, ok := m.Partition("t", 1)
	if !ok || m.OpenError("t", 1) != nil || len(m.FailedToOpen()) != 0 {
		t.Fatalf("after the retry: opened %v, error %v", ok, m.OpenError("t", 1))
	}
	if _, err := part.Append(ctx, batch(t, part, "v"), AcksAll); err != nil {
		t.Fatal(err)
	}
}
