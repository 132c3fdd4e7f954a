package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"weir/client"
)

// Reads across the nodes of a real cluster: a long consume sent to a node
// that does not lead the partition keeps its wait, and a follow stream on
// one node reads the partitions other nodes lead, those added while it runs
// too. The request timeout is 1 s, so the node-to-node client of old (a
// fixed request timeout + 5 s) would cut the consume after 6 s.
func TestReadsAcrossNodes(t *testing.T) {
	c := startCluster(t, 3, "--request-timeout-ms", "1000")
	ctx := testCtx(t, 3*time.Minute)
	cl := c.client()
	one := 1
	if _, err := cl.CreateTopic(ctx, client.CreateTopicRequest{Name: "lp", Partitions: &one, ReplicationFactor: &one}); err != nil {
		t.Fatal(err)
	}
	leader := c.leaderOf("lp", 0)
	other := c.node(leader%3 + 1)

	t.Run("long consume forwarded", func(t *testing.T) {
		type reply struct {
			status    int
			body      string
			forwarded string
			err       error
		}
		done := make(chan reply, 1)
		start := time.Now()
		go func() {
			hc := &http.Client{Timeout: time.Minute}
			resp, err := hc.Get(other.url() + "/v1/topics/lp/partitions/0/records?offset=0&wait_ms=20000&encoding=text")
			if err != nil {
				done <- reply{err: err}
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			done <- reply{status: resp.StatusCode, body: string(body), forwarded: resp.Header.Get("Weir-Forwarded-To"), err: err}
		}()
		select {
		case r := <-done:
			t.Fatalf("answered after %v with no record produced yet: %d %s %v", time.Since(start), r.status, r.body, r.err)
		case <-time.After(8 * time.Second): // still waiting, past the 6 s of old
		}
		p := int32(0)
		if _, err := cl.Produce(ctx, "lp", &p, []client.ProduceRecord{client.StringValue("late")}, "all", 0); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			if r.err != nil || r.status != 200 || r.forwarded != strconv.Itoa(leader) {
				t.Fatalf("consume on node %d: %d %s (forwarded to %q) %v", other.id, r.status, r.body, r.forwarded, r.err)
			}
			if want := `"value":"late"`; !strings.Contains(r.body, want) {
				t.Fatalf("consume on node %d: %s, want the record produced meanwhile", other.id, r.body)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the consume did not answer after the record came")
		}
	})

	t.Run("follow across nodes", func(t *testing.T) {
		three := 3
		if _, err := cl.CreateTopic(ctx, client.CreateTopicRequest{Name: "fl", Partitions: &three, ReplicationFactor: &one}); err != nil {
			t.Fatal(err)
		}
		remote := 0
		for p := range int32(3) {
			if c.leaderOf("fl", p) != other.id {
				remote++
			}
		}
		if remote == 0 {
			t.Fatalf("node %d leads every partition of fl: nothing to read from another node", other.id)
		}
		sc, err := client.New([]string{other.url()})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.CloseIdleConnections()
		fctx, stop := context.WithCancel(ctx)
		recs := make(chan client.ConsumedRecord)
		// followed is closed when the stream ends, followErr then holds why: a closed channel can be
		// waited on by expect and by the deferred stop alike, so a failing expect cannot hang the test.
		followed := make(chan struct{})
		var followErr error
		go func() {
			defer close(followed)
			followErr = sc.Follow(fctx, "fl", "earliest", func(r client.ConsumedRecord) error {
				select {
				case recs <- r:
					return nil
				case <-fctx.Done():
					return fctx.Err()
				}
			})
		}()
		defer func() {
			stop()
			<-followed
		}()
		produceEach := func(parts ...int32) {
			for _, p := range parts {
				if _, err := cl.Produce(ctx, "fl", &p, []client.ProduceRecord{client.StringValue(fmt.Sprintf("p%d", p))}, "all", 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		expect := func(parts ...int32) {
			t.Helper()
			var got []int32
			for range parts {
				select {
				case r := <-recs:
					got = append(got, *r.Partition)
				case <-followed:
					t.Fatalf("the stream ended: %v", followErr)
				case <-time.After(30 * time.Second):
					t.Fatalf("records of partitions %v: got only %v", parts, got)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, parts) {
				t.Fatalf("records of partitions %v, want %v", got, parts)
			}
		}
		produceEach(0, 1, 2)
		expect(0, 1, 2)
		six := 6
		if _, err := cl.AlterTopic(ctx, "fl", client.AlterTopicRequest{Partitions: &six}); err != nil {
			t.Fatal(err)
		}
		produceEach(3, 4, 5)
		expect(3, 4, 5)
	})
}
