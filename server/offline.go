package server

import (
	"context"
	"fmt"
	"slices"

	"weir/client"
	httpapi "weir/http"
	"weir/logstore"
	"weir/metadata"
	"weir/replication"
)

// Offline logs. A log goes offline when an fsync or rename of its files
// fails (see logstore.ErrLogOffline): it refuses writes until a restart
// recovers it. The node then gives up the partition through the controller,
// as a Kafka broker reports an offline log dir: its heartbeat lists the
// offline partitions, and the controller commits an offline_replicas command,
// which takes the broker out of their ISRs and elects new leaders from the
// remaining ISRs. Until the restart (a new incarnation) the replica can
// neither lead nor rejoin an ISR, and this node answers KAFKA_STORAGE_ERROR
// for the partition wherever it would serve it itself.

// Option configures a Node beyond its Config.
type Option func(*Node)

// WithLogFS makes the node's logs change their files through fs instead of
// the real file system: tests inject a failing disk with it.
func WithLogFS(fs logstore.FS) Option { return func(n *Node) { n.logFS = fs } }

// onLogOffline is the log manager's hook: it must not block.
func (n *Node) onLogOffline(name string, err error) {
	n.logger.Error("partition log offline; giving up its leadership and ISR membership until a restart", "log", name, "err", err)
	select { // tell the controller now, not at the next heartbeat
	case n.heartbeatNow <- struct{}{}:
	default:
	}
}

// offlinePartitions lists the local replicas whose logs are offline, and
// those whose log could not be opened (created) at all: the controller moves
// their leadership and ISR membership away alike.
func (n *Node) offlinePartitions() []client.TopicPartition {
	if n.repl == nil {
		return nil
	}
	var out []client.TopicPartition
	for _, p := range n.repl.Partitions() {
		if p.Offline() != nil {
			out = append(out, client.TopicPartition{Topic: p.Topic, Partition: p.Index})
		}
	}
	for _, f := range n.repl.FailedToOpen() {
		out = append(out, client.TopicPartition{Topic: f.Topic, Partition: f.Partition})
	}
	return out
}

// offlineError is the answer for a partition this node would serve itself
// (it leads it, or nobody does) while its replica (p, if ok) is offline, or
// could not be opened; nil otherwise.
func (n *Node) offlineError(p *replication.Partition, ok bool, topic string, partition, leader int32) error {
	if leader != n.cfg.NodeID && leader != metadata.NoLeader {
		return nil // another node leads it: the request goes there
	}
	if !ok {
		if err := n.repl.OpenError(topic, partition); err != nil {
			return httpapi.Errorf(client.CodeKafkaStorageError, "%v; its leadership moves to another in-sync replica, retry", err)
		}
		return nil
	}
	if err := p.Offline(); err != nil {
		return httpapi.Errorf(client.CodeKafkaStorageError,
			"this node's replica of %s-%d is offline after a storage failure (%v); its leadership moves to another in-sync replica, retry",
			topic, partition, err)
	}
	return nil
}

// offlineReport is what a broker's last heartbeat said of its offline replicas.
type offlineReport struct {
	epoch int64
	parts []client.TopicPartition
}

// offlineToCommit picks, from a broker's report, the partitions the metadata
// does not yet treat as offline on it: not recorded, or the broker still
// leads it or sits in an ISR it is not the last member of. Nil when the
// report is of another epoch (an earlier incarnation) or there is nothing to do.
func offlineToCommit(img *metadata.Image, id int32, r offlineReport) []metadata.TopicPartition {
	b := img.Broker(id)
	if b == nil || b.Epoch != r.epoch {
		return nil
	}
	var out []metadata.TopicPartition
	for _, tp := range r.parts {
		p := img.Partition(tp.Topic, tp.Partition)
		if p == nil || !p.IsReplica(id) {
			continue
		}
		if !b.ReplicaOffline(tp.Topic, tp.Partition) || p.Leader == id || (p.InISR(id) && len(p.ISR) > 1) {
			out = append(out, metadata.TopicPartition{Topic: tp.Topic, Partition: tp.Partition})
		}
	}
	return out
}

// commitOfflineReplicas runs on the controller: it commits the offline
// replicas the brokers reported and the metadata does not show yet.
func (n *Node) commitOfflineReplicas(ctx context.Context, reports map[int32]offlineReport) {
	img := n.meta.Image()
	ids := make([]int32, 0, len(reports))
	for id := range reports {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		parts := offlineToCommit(img, id, reports[id])
		if len(parts) == 0 {
			continue
		}
		n.logger.Warn("moving leadership and ISR membership away from offline replicas", "broker", id, "partitions", fmt.Sprint(parts))
		if err := n.meta.OfflineReplicas(ctx, id, reports[id].epoch, parts); err != nil && ctx.Err() == nil {
			n.logger.Warn("offline replicas not committed", "broker", id, "err", err)
		}
	}
}
