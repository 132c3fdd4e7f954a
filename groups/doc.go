// Package groups is Weir's consumer group coordination: the pure pieces,
// kept free of I/O so that they can be tested exhaustively, and the
// Coordinator that runs them for the offsets partitions a node leads,
// reaching disk and network only through its Env.
//
// It provides:
//
//   - OffsetsPartition: which partition of the internal __consumer_offsets
//     topic (and therefore which coordinator, its leader) owns a group. It is
//     bit-for-bit Kafka's Utils.abs(groupId.hashCode()) % partitions so that
//     operators can reason about placement with Kafka's formula.
//   - Assignors (range, roundrobin, sticky): pure, deterministic functions
//     from subscriptions and partition counts to an assignment.
//   - Group: the per-group state machine (membership, session expiry,
//     generations, server-side assignment in the spirit of KIP-848,
//     generation-fenced commits, offset resets while empty). It owns no
//     goroutines and never reads the clock: every time-dependent method takes
//     `now`, so the caller (the coordinator) owns locking, timers and time.
//   - Offset records: committed offsets persist as records of the compacted
//     __consumer_offsets topic, in Kafka's own key/value layouts (kmsg), so
//     that compaction by key keeps only the latest commit per
//     group-topic-partition and a tombstone deletes it. Loader replays a partition of that
//     topic into per-group state when a node becomes its leader.
//   - Coordinator: loading (loading.go), a group's lock and durable writes
//     (state.go), membership (membership.go), commits, polls and seeks
//     (offsets.go), describe, reset, delete and stats (admin.go).
//
// # Guarantees
//
//   - Durable before applied or revealed: a commit is applied to memory, and
//     a generation told to a member, only once its records are in the
//     offsets topic (acks=all). A join whose generation could not be written
//     takes its new member out again.
//   - Writes carry the leader epoch the partition was loaded in, so a node
//     that lost the leadership cannot write into the new leader's log.
//   - A commit of a stale generation (or an unknown member) is refused under
//     the group's lock before anything is written.
//   - A group has one durable write in flight (its turn), so its records reach
//     the log in the order they were decided and memory applies them in that
//     order; a reload replays the same sequence.
//   - A node that has not heard from the controller lately refuses calls
//     (NOT_COORDINATOR) rather than answering from memory another
//     coordinator may have outdated; checked under the group's lock.
//
// # Lock order
//
// No lock of the coordinator is held across disk or network I/O: Env's
// AppendOffsets, LoadOffsets and TopicOffsets are called with none held
// (PartitionCounts reads the node's metadata in memory and may be called
// under groupState.mu). A call that writes decides under groupState.mu,
// releases it, appends, and re-takes it to apply what became durable.
//
//	groupState.turn => groupState.mu => offsetsPart.mu
//
// Never acquire a lock on the left while holding one on its right:
//
//   - groupState.turn (a one-token channel) is a group's write turn: taken,
//     with the call's context, by a call that will append records for the
//     group, and held until its write is applied or has failed. Never take a
//     turn while holding any mutex, and never wait for a second group's turn
//     while holding one.
//   - groupState.mu guards the group's state (Group, positions, polls,
//     persisted generation). Held only for decisions in memory. Expiry,
//     stats, describe and heartbeats of a generation already durable take
//     only this lock, so a slow write delays none of them.
//   - offsetsPart.mu guards a partition's map of groups; it is taken under
//     groupState.mu only to drop a deleted group. Never acquire a
//     groupState.mu while holding it.
//   - Coordinator.mu guards the set of offsets partitions; it is a leaf:
//     never acquire another lock while holding it.
//
// A Group is not safe for concurrent use; the coordinator serialises access.
package groups
