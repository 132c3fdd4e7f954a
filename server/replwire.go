package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"weir/client"
	"weir/replication"
)

// fetchTransport carries this node's follower fetches to partition leaders.
type fetchTransport struct{ n *Node }

// Fetch posts a fetch to the leader's /internal/v1/fetch and decodes the binary reply.
func (t fetchTransport) Fetch(ctx context.Context, leaderID int32, req replication.FetchRequest) (replication.FetchResponse, error) {
	b := t.n.meta.Image().Broker(leaderID)
	if b == nil {
		return replication.FetchResponse{}, fmt.Errorf("leader %d is not registered", leaderID)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return replication.FetchResponse{}, fmt.Errorf("encode fetch: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+b.HTTPAddr+"/internal/v1/fetch", bytes.NewReader(body))
	if err != nil {
		return replication.FetchResponse{}, fmt.Errorf("fetch from %d: %w", leaderID, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := t.n.fetchClient.Do(hreq)
	if err != nil {
		return replication.FetchResponse{}, fmt.Errorf("fetch from %d: %w", leaderID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return replication.FetchResponse{}, fmt.Errorf("fetch from %d: status %d: %s", leaderID, resp.StatusCode, data)
	}
	// A reply may carry up to the fetch size plus one oversized batch.
	return replication.DecodeFetchResponse(resp.Body, maxFetchReplyBytes)
}

// maxFetchReplyBytes bounds what a fetch reply may hold, against a peer's garbage.
const maxFetchReplyBytes = 256 << 20

// isrChanger sends a leader's ISR changes to the controller.
type isrChanger struct{ n *Node }

func (c isrChanger) AlterPartition(ctx context.Context, req replication.AlterPartitionRequest) ([]int32, int32, int32, error) {
	resp, err := toController(ctx, c.n, "/alter-partition", c.n.AlterPartition, req)
	if err != nil {
		return nil, 0, 0, err
	}
	return resp.ISR, resp.LeaderEpoch, resp.PartitionEpoch, nil
}

// ServeFetch serves a follower's fetch from the partitions this node leads.
func (n *Node) ServeFetch(w http.ResponseWriter, r *http.Request) {
	var req replication.FetchRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<20))
	if err := dec.Decode(&req); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(client.ErrorBody{ErrorCode: client.CodeInvalidRequest, Message: "fetch: " + err.Error()})
		return
	}
	resp := n.repl.HandleFetch(r.Context(), req)
	w.Header().Set("Content-Type", replication.FetchResponseContentType)
	if err := replication.EncodeFetchResponse(w, resp); err != nil {
		n.logger.Debug("writing a fetch reply failed", "follower", req.ReplicaID, "err", err)
	}
}

// brokerEpoch is this broker's current epoch, sent with its fetches.
func (n *Node) brokerEpoch() int64 {
	if b := n.meta.Image().Broker(n.cfg.NodeID); b != nil {
		return b.Epoch
	}
	return 0
}

// replicaMaintenance runs the leader-side ISR checks and HW checkpoints.
func (n *Node) replicaMaintenance(ctx context.Context) {
	isr := time.NewTicker(max(100*time.Millisecond, time.Duration(n.cfg.ReplicaLagTimeMaxMs)*time.Millisecond/10))
	hw := time.NewTicker(5 * time.Second)
	defer isr.Stop()
	defer hw.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-isr.C:
			if n.ready.Load() {
				n.repl.CheckISR(now)
			}
		case <-hw.C:
			if err := n.repl.CheckpointHighWatermarks(); err != nil {
				n.logger.Warn("high watermark checkpoint failed", "err", err)
			}
		}
	}
}
