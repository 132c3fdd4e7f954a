// Package replication is the replica manager: it holds this node's partition
// replicas, leads some and follows others, Kafka style (followers pull).
//
// Leader side: Partition.Append appends with the acks the producer asked
// for; Manager.HandleFetch serves follower fetches (raw stored batches, a
// diverging epoch when a follower's history forks from ours, refusals for
// stale leader epochs) and records each follower's log end and the last time
// it was caught up. The HW (first offset not yet committed; readers get only
// offsets below it) is the minimum log end over the ISR, where a pending
// expansion counts at once and a pending shrink only once committed; it
// never goes back and stays put while the ISR is below min.insync.replicas.
// Our own log end counts only once durable (fsync always), and followers are
// served nothing beyond it either, so nothing a crash could lose is
// replicated or acknowledged. Manager.CheckISR asks the controller (through
// an ISRChanger) to drop followers that lag for replica.lag.time.max.ms and
// to add back those that caught up.
//
// Follower side: one fetcher per leader broker pulls all partitions this node
// follows from it (through a FetchTransport), appends what comes, follows the
// leader's HW and log start, and truncates only where the leader says its
// history diverges, never to the HW alone.
//
// A replica whose log went offline (a failed fsync or rename, see
// logstore.ErrLogOffline) neither leads (appends and follower fetches are
// refused with KAFKA_STORAGE_ERROR), nor fetches, nor asks for ISR changes;
// the server reports it to the controller, which moves the leadership.
//
// The metadata is the source of truth: Manager.Apply hands over every
// assignment (leader, epochs, ISR) and starts or stops fetching; HWs are
// checkpointed in the data dir and read back on restart.
package replication
