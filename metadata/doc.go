// Package metadata keeps Weir's cluster metadata in a Raft group: it is the
// replicated state machine (brokers, topics, partitions, topic configs and the
// cluster id), the JSON commands that change it, its snapshots, and the
// controller-side helpers that run on the Raft leader (replica placement,
// validation of topic names and configs, and proposing commands). Every
// change is one Raft entry applied deterministically by the FSM; after each
// entry the FSM publishes a new immutable Image, so readers on any node (voter
// or non-voter) get a consistent, lock-free view of the whole cluster. The
// Store wires hashicorp/raft (raft-boltdb log, file snapshots, TCP transport)
// around the FSM. The package knows nothing of HTTP or of the log storage.
package metadata
