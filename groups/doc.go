// Package groups is the core of Weir's consumer group coordination, kept free
// of I/O so that it can be tested exhaustively and wired into the server and
// HTTP layers separately.
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
//     that compaction by key keeps only the latest commit per group-topic-
//     partition and a tombstone deletes it. Loader replays a partition of that
//     topic into per-group state when a node becomes its leader.
//
// A Group is not safe for concurrent use; the coordinator serialises access.
package groups
