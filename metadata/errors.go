package metadata

import "errors"

// Sentinel errors. Commands and Store methods wrap them with a message that
// names the offending field, so callers match with errors.Is and show the
// message to users as-is.
var (
	// ErrTopicExists: a topic with that name already exists.
	ErrTopicExists = errors.New("topic already exists")
	// ErrUnknownTopic: no such topic or partition.
	ErrUnknownTopic = errors.New("unknown topic or partition")
	// ErrInvalidTopic: the topic name is not allowed, or the operation is not
	// allowed on this topic (e.g. deleting an internal topic).
	ErrInvalidTopic = errors.New("invalid topic")
	// ErrInvalidPartitions: a partition count or assignment is not allowed.
	ErrInvalidPartitions = errors.New("invalid partitions")
	// ErrInvalidReplicationFactor: replication factor out of range, or an
	// assignment with duplicate replicas or uneven replica counts.
	ErrInvalidReplicationFactor = errors.New("invalid replication factor")
	// ErrInvalidConfig: unknown topic config key or a value out of range.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrUnknownBroker: the broker id is not registered.
	ErrUnknownBroker = errors.New("unknown broker")
	// ErrFencedBroker: the broker is registered but fenced, so it cannot lead
	// or join an ISR, and no new replicas are placed on it.
	ErrFencedBroker = errors.New("broker is fenced")
	// ErrStaleEpoch: the request's leader/partition/broker epoch (or expected
	// partition count) is not the current one; the requester must refresh its
	// metadata and retry.
	ErrStaleEpoch = errors.New("stale epoch")
	// ErrInvalidRequest: a malformed command (missing or inconsistent fields).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrNotLeader: this node is not the Raft leader (the controller); nothing
	// was written, so the request may be retried against the leader.
	ErrNotLeader = errors.New("not the controller")
	// ErrUnknownOutcome: the command was handed to Raft but it is not known
	// whether it committed (leadership lost, deadline passed or shutdown while
	// waiting). Kafka calls this REQUEST_TIMED_OUT.
	ErrUnknownOutcome = errors.New("request timed out, outcome unknown")
	// ErrClosed: the Store has been closed.
	ErrClosed = errors.New("metadata store closed")
)
