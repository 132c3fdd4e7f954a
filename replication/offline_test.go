package replication

import (
	"errors"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"weir/logstore"
)

// brokenDisk fails every fsync of a segment once armed, as a failing disk does.
type brokenDisk struct {
	logstore.OSFS
	armed atomic.Bool
}

func (d *brokenDisk) Sync(f *os.File) error {
	if d.armed.Load() && strings.HasSuffix(f.Name(), ".log") {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: syscall.EIO}
	}
	return d.OSFS.Sync(f)
}

func newClusterOnDisks(t *testing.T, disks map[int32]*brokenDisk, ids ...int32) *testCluster {
	dirs := map[int32]string{}
	for _, id := range ids { // before the cluster: its cleanup closes the logs before the dirs go
		dirs[id] = t.TempDir()
	}
	c := newClusterWith(t, logstore.FsyncAlways, nil)
	c.fs = map[int32]logstore.FS{}
	for id, d := range disks {
		c.fs[id] = d
	}
	for _, id := range ids {
		c.start(id, dirs[id])
	}
	return c
}

// A leader whose log goes offline refuses appends and follower fetches
// (KAFKA_STORAGE_ERROR), never shrinks the ISR to itself (its followers look
// lagging), and its HW stays below what it could not make durable. Once the
// controller moved the leadership, the offline replica does not fetch.
func TestOfflineLeaderStopsServing(t *testing.T) {
	disk := &brokenDisk{}
	c := newClusterOnDisks(t, map[int32]*brokenDisk{1: disk}, 1, 2, 3)
	c.set(rf3(1, 1, []int32{1, 2, 3}, 2))
	lp, m1 := c.part(1), c.node(1).m
	end := c.mustProduce(1, AcksAll, "a")

	disk.armed.Store(true)
	_, err := c.produce(1, AcksAll, "b")
	if !errors.Is(err, logstore.ErrLogOffline) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("acks=all append whose fsync failed: %v, want the log's offline error", err)
	}
	if lp.Offline() == nil {
		t.Fatal("the partition does not report its log offline")
	}
	disk.armed.Store(false) // a later fsync would succeed: it must not matter
	if _, err := c.produce(1, AcksLeader, "c"); !errors.Is(err, logstore.ErrLogOffline) {
		t.Fatalf("acks=1 append on the offline log: %v", err)
	}
	resp := m1.HandleFetch(testCtx(t), FetchRequest{ReplicaID: 2, ReplicaEpoch: 1, Partitions: []FetchPartition{
		{Topic: "t", Partition: 0, FetchOffset: end, LeaderEpoch: 1, LastFetchedEpoch: 1}}})
	if len(resp.Partitions) != 1 || resp.Partitions[0].Error != ErrCodeKafkaStorageError {
		t.Fatalf("fetch from the offline leader: %+v, want %s", resp.Partitions, ErrCodeKafkaStorageError)
	}
	c.clock.Advance(time.Minute) // the followers look lagging now
	m1.CheckISR(c.clock.Now())
	expectNoRequest(t, c.ctrl)
	if hw := lp.HighWatermark(); hw > end {
		t.Fatalf("HW %d passed the last durable end %d", hw, end)
	}

	// The controller moves the leadership (what offline_replicas does).
	c.set(rf3(2, 2, []int32{2, 3}, 2))
	end = c.mustProduce(2, AcksAll, "d")
	m1.applyMu.Lock()
	_, following := m1.following[key{"t", 0}]
	m1.applyMu.Unlock()
	if following {
		t.Fatal("the offline replica fetches from the new leader")
	}
	c.requireIdentical(2, 3)
	if leo := followerLEO(c.part(2), 1); leo >= 0 {
		t.Fatalf("the new leader recorded a fetch of the offline replica at %d", leo)
	}
	if isr := isrOf(c.part(2)); !slices.Equal(isr, []int32{2, 3}) {
		t.Fatalf("ISR %v, want [2 3]", isr)
	}
}

// A follower whose log goes offline while it copies its leader stops fetching.
func TestOfflineFollowerStopsFetching(t *testing.T) {
	disk := &brokenDisk{}
	c := newClusterOnDisks(t, map[int32]*brokenDisk{3: disk}, 1, 2, 3)
	c.set(rf3(1, 1, []int32{1, 2, 3}, 2))
	endA := c.mustProduce(1, AcksAll, "a")
	disk.armed.Store(true)
	c.mustProduce(1, AcksLeader, "b")
	fp := c.part(3)
	waitUntil(t, "node 3's log goes offline", func() bool { return fp.Offline() != nil })
	waitUntil(t, "node 3 stops fetching t-0", func() bool {
		m := c.node(3).m
		m.applyMu.Lock()
		defer m.applyMu.Unlock()
		f := m.fetchers[1]
		if f == nil {
			return true
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.parts[key{"t", 0}] == nil
	})
	if d := fp.Log().DurableOffset(); d != endA {
		t.Fatalf("node 3's durable offset %d, want %d: what its failed fsync covered is not durable", d, endA)
	}
}
