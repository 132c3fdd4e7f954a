package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPreferredLeaderAndTopicDeletion checks two controller duties across
// nodes: a partition's preferred leader (its first replica) gets leadership
// back once it returns in sync, and deleting a topic removes its data from
// every broker.
func TestPreferredLeaderAndTopicDeletion(t *testing.T) {
	c := startCluster(t, 3, "--leader-imbalance-check-interval-ms", "500")
	c.createTopic("pref", 3, 3, map[string]string{"min.insync.replicas": "2"})
	var preferred int32
	c.waitFor(30*time.Second, "pref-0 led by its preferred replica", func() error {
		pi, err := c.tryPartitionInfo("pref", 0)
		if err != nil {
			return err
		}
		if len(pi.ISR) != 3 || pi.Leader != pi.Replicas[0] {
			return fmt.Errorf("pref-0: leader %d, replicas %v, isr %v", pi.Leader, pi.Replicas, pi.ISR)
		}
		preferred = pi.Replicas[0]
		return nil
	})
	// Take the preferred leader away: another replica leads.
	c.kill9(int(preferred))
	c.waitFor(30*time.Second, "pref-0 led elsewhere", func() error {
		pi, err := c.tryPartitionInfo("pref", 0)
		if err != nil {
			return err
		}
		if pi.Leader == preferred || pi.Leader < 0 {
			return fmt.Errorf("pref-0 still led by %d", pi.Leader)
		}
		return nil
	})
	c.mustProduce("pref", nil, "while-away", 20, "all")
	// Bring it back: it catches up, rejoins the ISR and leads again.
	c.restart(int(preferred))
	c.waitFor(60*time.Second, "pref-0 back with its preferred leader", func() error {
		pi, err := c.tryPartitionInfo("pref", 0)
		if err != nil {
			return err
		}
		if pi.Leader != preferred || len(pi.ISR) != 3 {
			return fmt.Errorf("pref-0: leader %d (preferred %d), isr %v", pi.Leader, preferred, pi.ISR)
		}
		return nil
	})

	// Delete: every broker drops the partition directories.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.client().DeleteTopic(ctx, "pref"); err != nil {
		t.Fatalf("delete topic: %v", err)
	}
	c.waitFor(30*time.Second, "pref's data gone from every broker", func() error {
		for _, n := range c.nodes {
			for p := 0; p < 3; p++ {
				dir := filepath.Join(n.dataDir, fmt.Sprintf("pref-%d", p))
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("node %d still has %s (%v)", n.id, dir, err)
				}
			}
		}
		return nil
	})
}

// TestCreateThenProduceThroughAnyNode: a topic created through one node can be
// written through every other node at once (the create returns once every
// alive broker has applied it), with no retry.
func TestCreateThenProduceThroughAnyNode(t *testing.T) {
	c := startCluster(t, 3)
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("now-%d", i)
		st, body := call(t, "POST", c.node(1+i%3).url()+"/v1/topics", "application/json",
			[]byte(`{"name":"`+name+`","partitions":3,"replication_factor":3}`))
		mustJSON(t, st, body, 201, nil)
		for j := 1; j <= 3; j++ {
			st, body := call(t, "POST", c.node(j).url()+"/v1/topics/"+name+"/records", "application/json",
				[]byte(`{"records":[{"key":"k","value":"v"}]}`))
			if st != 200 {
				t.Fatalf("produce to %s through node %d right after the create: %d %s", name, j, st, body)
			}
		}
	}
}
