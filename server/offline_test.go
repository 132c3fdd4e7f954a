package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"weir/client"
	"weir/logstore"
)

// partitionState is partition 0 of topic as a node's metadata shows it.
func partitionState(cl *client.Client, topic string) (client.PartitionInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tp, err := cl.Topic(ctx, topic)
	if err != nil {
		return client.PartitionInfo{}, err
	}
	if len(tp.Partitions) == 0 {
		return client.PartitionInfo{}, errors.New("no partition")
	}
	return tp.Partitions[0], nil
}

// waitPartition waits until partition 0 of topic, as cl's node shows it,
// satisfies ok, and returns it.
func waitPartition(t *testing.T, cl *client.Client, topic, what string, ok func(client.PartitionInfo) bool) client.PartitionInfo {
	t.Helper()
	var p client.PartitionInfo
	waitFor(t, 60*time.Second, what, func() error {
		var err error
		if p, err = partitionState(cl, topic); err == nil && !ok(p) {
			err = fmt.Errorf("partition %+v", p)
		}
		return err
	})
	return p
}

// acked is one acknowledged record.
type acked struct {
	offset int64
	value  string
}

// writer produces to partition 0 of a topic with acks=all in the
// background, one request at a time, and keeps what was acknowledged and
// which errors were answered (by code and serving node).
type writer struct {
	mu     sync.Mutex
	acked  []acked
	errors map[string]int // "CODE@node" -> count
	cancel context.CancelFunc
	done   chan struct{}
}

func startWriter(t *testing.T, cl *client.Client, topic string) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{errors: map[string]int{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		zero := int32(0)
		for seq := 0; ctx.Err() == nil; seq += 5 {
			var recs []client.ProduceRecord
			var values []string
			for i := range 5 {
				values = append(values, fmt.Sprintf("v%d", seq+i))
				recs = append(recs, client.StringValue(values[i]))
			}
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err := cl.Produce(rctx, topic, &zero, recs, client.AcksAll, 10*time.Second)
			rcancel()
			w.mu.Lock()
			var ae *client.APIError
			switch {
			case err == nil:
				for i, o := range resp.Offsets {
					w.acked = append(w.acked, acked{o.Offset, values[i]})
				}
			case errors.As(err, &ae):
				w.errors[ae.Code+"@"+ae.ServedBy]++
			case ctx.Err() == nil:
				w.errors[err.Error()]++
			}
			w.mu.Unlock()
			if err != nil {
				select { // pace the retries while the partition fails over
				case <-ctx.Done():
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *writer) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *writer) stop() ([]acked, map[string]int) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked), w.errors
}

// readAll consumes partition 0 of topic from the start up to its HW.
func readAll(t *testing.T, cl *client.Client, topic string) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	next := client.OffsetEarliest
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := cl.Consume(ctx, topic, 0, client.ConsumeOptions{Offset: next, Limit: 1000, Encoding: client.EncodingText})
		cancel()
		if err != nil {
			t.Fatalf("read %s back: %v", topic, err)
		}
		for _, r := range resp.Records {
			var v string
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("offset %d: value %s is not a JSON string", r.Offset, r.Value)
			}
			out[r.Offset] = v
		}
		if len(resp.Records) == 0 || resp.NextOffset >= resp.HighWatermark {
			return out
		}
		next = client.OffsetAt(resp.NextOffset)
	}
}

// checkAcked fails the test unless every acknowledged record is stored at its offset.
func checkAcked(t *testing.T, stored map[int64]string, recs []acked) {
	t.Helper()
	for _, a := range recs {
		if got, ok := stored[a.offset]; !ok || got != a.value {
			t.Fatalf("acknowledged record %q at offset %d lost or changed: read back %q (present %v) among %d records",
				a.value, a.offset, got, ok, len(stored))
		}
	}
}

func createTopic(t *testing.T, cl *client.Client, name string, rf int, configs map[string]string) {
	t.Helper()
	one := 1
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitFor(t, 30*time.Second, "topic "+name+" created", func() error {
		_, err := cl.CreateTopic(ctx, client.CreateTopicRequest{Name: name, Partitions: &one, ReplicationFactor: &rf, Configs: configs})
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Code == client.CodeTopicAlreadyExists {
			return nil
		}
		return err
	})
}

// On 3 nodes with acks=all writes flowing, fsync starts failing on the
// leader of a partition: its log goes offline, it answers
// KAFKA_STORAGE_ERROR, the controller moves the leadership to another
// in-sync replica and takes the failed one out of the ISR, writes go on
// there, and every acknowledged record is read back. The failed replica
// stays out of the ISR until it restarts; then it recovers and rejoins.
func TestFsyncFailureOnLeaderMovesLeadership(t *testing.T) {
	nodes := startNodes(t, 3)
	const topic = "fsyncgate"
	cl0 := nodes[0].client(t)
	createTopic(t, cl0, topic, 3, map[string]string{"min.insync.replicas": "2"})
	p := waitPartition(t, cl0, topic, "a leader and a full ISR", func(p client.PartitionInfo) bool { return p.Leader > 0 && len(p.ISR) == 3 })
	leader := nodes[p.Leader-1]
	var other *testNode
	for _, nd := range nodes {
		if nd != leader {
			other = nd
			break
		}
	}
	// The writer goes through every node: a failing one answers errors, the
	// others forward to the leader.
	all := []string{nodes[0].url(), nodes[1].url(), nodes[2].url()}
	wcl, err := client.New(all, client.WithRetry(client.RetryPolicy{Attempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wcl.CloseIdleConnections)
	w := startWriter(t, wcl, topic)
	waitFor(t, 30*time.Second, "writes acknowledged before the fault", func() error {
		if n := w.ackedCount(); n < 100 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})

	leader.disk.fail(logstore.PartitionDir(topic, 0))
	ocl := other.client(t)
	moved := waitPartition(t, ocl, topic, "the leadership to move off the failed replica", func(m client.PartitionInfo) bool {
		return m.Leader > 0 && m.Leader != p.Leader && !slices.Contains(m.ISR, p.Leader)
	})
	if moved.LeaderEpoch <= p.LeaderEpoch || len(moved.ISR) != 2 {
		t.Fatalf("after the move: %+v, want a new leader epoch and the two healthy replicas in the ISR", moved)
	}
	atMove := w.ackedCount()
	waitFor(t, 30*time.Second, "writes acknowledged by the new leader", func() error {
		if n := w.ackedCount(); n < atMove+100 {
			return fmt.Errorf("%d acknowledged since the move", n-atMove)
		}
		return nil
	})
	recs, errs := w.stop()
	storage := client.CodeKafkaStorageError + "@" + strconv.Itoa(int(p.Leader))
	if errs[storage] == 0 {
		t.Fatalf("the failed leader never answered %s; errors seen: %v", client.CodeKafkaStorageError, errs)
	}
	t.Logf("%d records acknowledged; errors while failing over: %v", len(recs), errs)

	// The failed replica is not re-added while it runs.
	if st, err := partitionState(ocl, topic); err != nil || slices.Contains(st.ISR, p.Leader) {
		t.Fatalf("after more writes: %+v, %v; the offline replica must stay out of the ISR", st, err)
	}
	checkAcked(t, readAll(t, ocl, topic), recs)

	// A restart recovers the log and brings the replica back into the ISR.
	if err := leader.stop(); !errors.Is(err, logstore.ErrLogOffline) {
		t.Fatalf("stopping the failed node: %v, want its offline log reported", err)
	}
	if _, err := os.Stat(filepath.Join(leader.cfg.DataDir, logstore.CleanShutdownFile)); !os.IsNotExist(err) {
		t.Fatalf("the failed node left a clean-shutdown marker (stat: %v): its restart would skip recovery", err)
	}
	leader.disk = &failingDisk{}
	leader.start()
	leader.waitReady()
	waitPartition(t, ocl, topic, "the restarted replica back in the ISR", func(st client.PartitionInfo) bool { return slices.Contains(st.ISR, p.Leader) })
	checkAcked(t, readAll(t, ocl, topic), recs)
}

// On 1 node, the partition whose fsync failed answers KAFKA_STORAGE_ERROR
// to writes and reads until the restart (no other replica can take over;
// the write in flight when the fsync failed has an unknown outcome),
// other partitions go on, and nothing acknowledged is lost across the
// restart, which recovers the log from disk.
func TestFsyncFailureOnSingleNode(t *testing.T) {
	nodes := startNodes(t, 1)
	nd := nodes[0]
	cl := nd.client(t)
	const topic, healthy = "solo", "healthy"
	createTopic(t, cl, topic, 1, nil)
	createTopic(t, cl, healthy, 1, nil)
	zero := int32(0)
	produce := func(topic string, values ...string) (*client.ProduceResponse, error) {
		var recs []client.ProduceRecord
		for _, v := range values {
			recs = append(recs, client.StringValue(v))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return cl.Produce(ctx, topic, &zero, recs, client.AcksAll, 10*time.Second)
	}
	storageError := func(what string, err error) {
		t.Helper()
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Code != client.CodeKafkaStorageError || !ae.Retriable || ae.Status != 500 {
			t.Fatalf("%s: %v, want a retriable %s", what, err, client.CodeKafkaStorageError)
		}
	}
	var recs []acked
	for i := range 20 {
		vals := []string{fmt.Sprintf("a%d", 2*i), fmt.Sprintf("a%d", 2*i+1)}
		resp, err := produce(topic, vals...)
		if err != nil {
			t.Fatal(err)
		}
		for j, o := range resp.Offsets {
			recs = append(recs, acked{o.Offset, vals[j]})
		}
	}

	nd.disk.fail(logstore.PartitionDir(topic, 0))
	// The write whose fsync failed was appended: it is not acknowledged, and
	// its outcome is unknown (the restart may find it in the file).
	_, err := produce(topic, "unknown")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != client.CodeRequestTimedOut || !strings.Contains(ae.Message, logstore.ErrLogOffline.Error()) {
		t.Fatalf("the write whose fsync failed: %v, want %s naming the offline log", err, client.CodeRequestTimedOut)
	}
	// The controller gives the partition up: no replica can take it over.
	waitPartition(t, cl, topic, "the partition to lose its leader", func(st client.PartitionInfo) bool {
		return st.Leader == -1 && slices.Equal(st.ISR, []int32{1})
	})
	_, err = produce(topic, "refused")
	storageError("a write after the failure", err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = cl.Consume(ctx, topic, 0, client.ConsumeOptions{Offset: client.OffsetEarliest})
	cancel()
	storageError("a read after the failure", err)
	if _, err := produce(healthy, "fine"); err != nil {
		t.Fatalf("another partition on the same node: %v", err)
	}

	if err := nd.stop(); !errors.Is(err, logstore.ErrLogOffline) {
		t.Fatalf("stopping the node: %v, want its offline log reported", err)
	}
	if _, err := os.Stat(filepath.Join(nd.cfg.DataDir, logstore.CleanShutdownFile)); !os.IsNotExist(err) {
		t.Fatalf("a clean-shutdown marker was left (stat: %v): the restart would skip recovery", err)
	}
	nd.disk = &failingDisk{}
	nd.start()
	nd.waitReady()
	waitPartition(t, cl, topic, "the partition led again after the restart", func(st client.PartitionInfo) bool { return st.Leader == 1 })
	checkAcked(t, readAll(t, cl, topic), recs)
	if _, err := produce(topic, "after"); err != nil {
		t.Fatalf("a write after the restart: %v", err)
	}
}
