package server

import (
	"fmt"
	"time"

	"weir/metadata"
)

// The controller's decisions, as pure functions of the metadata image and
// its soft state: no clock (now is given), no I/O, no locks. controllerTick
// gathers the inputs under ctrl.mu and carries out what these return.

// brokerView is the controller's soft state about the brokers: what the
// heartbeats told it since it became controller. It is never logged.
type brokerView struct {
	since    time.Time           // when this node became the controller
	lastSeen map[int32]time.Time // the last heartbeat of each broker
	applied  map[int32]uint64    // the metadata index each broker last reported
	stopping map[int32]bool      // brokers on their way out (controlled shutdown)
}

// brokerAction is one decision: fence or unfence broker id at epoch.
type brokerAction struct {
	id     int32
	epoch  int64
	fence  bool
	reason string
}

// fencingDecisions fences every alive broker silent for longer than session
// (a broker never heard from counts from since: a new controller gives every
// broker a full session of grace), and unfences a fenced broker that
// heartbeats, is not stopping, and has applied the metadata up to its own
// registration (its epoch is that Raft index), so it acts on an image that
// knows it. Brokers are considered in id order.
func fencingDecisions(img *metadata.Image, v brokerView, now time.Time, session time.Duration) []brokerAction {
	var acts []brokerAction
	for _, id := range img.SortedBrokerIDs() {
		b := img.Broker(id)
		seen, heard := v.lastSeen[id]
		if !heard {
			seen = v.since
		}
		silent := now.Sub(seen) > session
		switch {
		case b.Alive() && silent:
			acts = append(acts, brokerAction{id, b.Epoch, true, fmt.Sprintf("no heartbeat for %v", now.Sub(seen).Round(time.Millisecond))})
		case !b.Alive() && !silent && heard && !v.stopping[id] && v.applied[id] >= uint64(b.Epoch):
			acts = append(acts, brokerAction{id, b.Epoch, false, "caught up"})
		}
	}
	return acts
}

// preferredLeaderMoves are the leader changes that give each partition back
// to its preferred (first) replica: only where that replica is alive, in the
// ISR, not offline and not stopping. Each carries the epochs it was decided on, so one
// that lost a race with another change is refused by the state machine.
func preferredLeaderMoves(img *metadata.Image, stopping map[int32]bool) []metadata.AlterPartitionCmd {
	var moves []metadata.AlterPartitionCmd
	for _, name := range img.SortedTopicNames() {
		for _, p := range img.Topic(name).Partitions {
			pref := p.Replicas[0]
			if p.Leader == pref || !p.InISR(pref) || !img.Broker(pref).CanServe(name, p.Partition) || stopping[pref] {
				continue
			}
			moves = append(moves, metadata.AlterPartitionCmd{Topic: name, Partition: p.Partition, Leader: pref,
				ISR: p.ISR, ExpectedLeaderEpoch: p.LeaderEpoch, ExpectedPartitionEpoch: p.PartitionEpoch})
		}
	}
	return moves
}
