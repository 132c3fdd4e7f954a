package metadata

import "weir/errcode"

// Sentinel errors. Commands and Store methods wrap them with a message that
// names the offending field, so callers match with errors.Is and show the
// message to users as-is.
var (
	// ErrTopicExists: a topic with that name already exists.
	ErrTopicExists = errcode.New(errcode.TopicAlreadyExists, "topic already exists")
	// ErrUnknownTopic: no such topic or partition.
	ErrUnknownTopic = errcode.New(errcode.UnknownTopicOrPartition, "unknown topic or partition")
	// ErrInvalidTopic: the topic name is not allowed, or the operation is not
	// allowed on this topic (e.g. deleting an internal topic).
	ErrInvalidTopic = errcode.New(errcode.InvalidTopic, "invalid topic")
	// ErrInvalidPartitions: a partition count or assignment is not allowed.
	ErrInvalidPartitions = errcode.New(errcode.InvalidPartitions, "invalid partitions")
	// ErrInvalidReplicationFactor: replication factor out of range, or an
	// assignment with duplicate replicas or uneven replica counts.
	ErrInvalidReplicationFactor = errcode.New(errcode.InvalidReplicationFactor, "invalid replication factor")
	// ErrInvalidConfig: unknown topic config key or a value out of range.
	ErrInvalidConfig = errcode.New(errcode.InvalidConfig, "invalid config")
	// ErrUnknownBroker: the broker id is not registered.
	ErrUnknownBroker = errcode.New(errcode.BrokerNotAvailable, "unknown broker")
	// ErrFencedBroker: the broker is registered but fenced, so it cannot lead
	// or join an ISR, and no new replicas are placed on it.
	ErrFencedBroker = errcode.New(errcode.IneligibleReplica, "broker is fenced")
	// ErrStaleEpoch: the request's leader/partition/broker epoch (or expected
	// partition count) is not the current one; the requester must refresh its
	// metadata and retry.
	ErrStaleEpoch = errcode.New(errcode.NotController, "stale epoch")
	// ErrInvalidRequest: a malformed command (missing or inconsistent fields).
	ErrInvalidRequest = errcode.New(errcode.InvalidRequest, "invalid request")
	// ErrNotLeader: this node is not the Raft leader (the controller); nothing
	// was written, so the request may be retried against the leader.
	ErrNotLeader = errcode.New(errcode.NotController, "not the controller")
	// ErrUnknownOutcome: the command was handed to Raft but it is not known
	// whether it committed (leadership lost, deadline passed or shutdown while
	// waiting). Kafka calls this REQUEST_TIMED_OUT.
	ErrUnknownOutcome = errcode.New(errcode.RequestTimedOut, "request timed out, outcome unknown")
	// ErrClosed: the Store has been closed.
	ErrClosed = errcode.New(errcode.NotController, "metadata store closed")
)
