package groups

import (
	"context"
	"testing"

	"weir/client"
	"weir/errcode"
)

// A data partition whose leader does not report its offsets is
// LEADER_NOT_AVAILABLE: the group's coordinator is fine, and a client told
// NOT_COORDINATOR would look for another coordinator.
func TestResetWithoutPartitionLeaderIsLeaderNotAvailable(t *testing.T) {
	f := newCoord(t)
	f.env.setTopic("orders", 3, 0, 100)
	f.env.mu.Lock()
	delete(f.env.bounds["orders"], 1) // its leader did not answer
	f.env.mu.Unlock()
	dry := true
	_, err := f.c.ResetOffsets(context.Background(), "g", client.ResetOffsetsRequest{Topic: "orders", To: "earliest", DryRun: &dry})
	if codeOf(err) != errcode.LeaderNotAvailable {
		t.Fatalf("reset with a leaderless partition: %v, want %s", err, errcode.LeaderNotAvailable)
	}
	if !errcode.Get(codeOf(err)).Retriable {
		t.Fatal("LEADER_NOT_AVAILABLE must be retriable")
	}
}
