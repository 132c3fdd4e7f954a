// Package errcode is Weir's one catalog of errors: each error's name (Kafka's,
// as the REST API reports it), Kafka's numeric code, the HTTP status it
// travels with, whether a client may retry it, and what it means. Every front
// end (REST today, the Kafka listener next) and every layer that raises a
// coded error reads it from here, so an error's properties are written once.
//
// The package imports nothing of Weir's; anything may import it.
package errcode

import (
	"errors"
	"net/http"
)

// Error names, as they appear in the REST API's "error_code".
const (
	UnknownServerError           = "UNKNOWN_SERVER_ERROR"
	OffsetOutOfRange             = "OFFSET_OUT_OF_RANGE"
	UnknownTopicOrPartition      = "UNKNOWN_TOPIC_OR_PARTITION"
	LeaderNotAvailable           = "LEADER_NOT_AVAILABLE"
	NotLeaderOrFollower          = "NOT_LEADER_OR_FOLLOWER"
	RequestTimedOut              = "REQUEST_TIMED_OUT"
	BrokerNotAvailable           = "BROKER_NOT_AVAILABLE"
	MessageTooLarge              = "MESSAGE_TOO_LARGE"
	CoordinatorLoadInProgress    = "COORDINATOR_LOAD_IN_PROGRESS"
	CoordinatorNotAvailable      = "COORDINATOR_NOT_AVAILABLE"
	NotCoordinator               = "NOT_COORDINATOR"
	InvalidTopic                 = "INVALID_TOPIC"
	RecordListTooLarge           = "RECORD_LIST_TOO_LARGE"
	NotEnoughReplicas            = "NOT_ENOUGH_REPLICAS"
	NotEnoughReplicasAfterAppend = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
	IllegalGeneration            = "ILLEGAL_GENERATION"
	InconsistentGroupProtocol    = "INCONSISTENT_GROUP_PROTOCOL"
	UnknownMemberID              = "UNKNOWN_MEMBER_ID"
	RebalanceInProgress          = "REBALANCE_IN_PROGRESS"
	TopicAlreadyExists           = "TOPIC_ALREADY_EXISTS"
	InvalidPartitions            = "INVALID_PARTITIONS"
	InvalidReplicationFactor     = "INVALID_REPLICATION_FACTOR"
	InvalidConfig                = "INVALID_CONFIG"
	NotController                = "NOT_CONTROLLER"
	InvalidRequest               = "INVALID_REQUEST"
	KafkaStorageError            = "KAFKA_STORAGE_ERROR"
	NonEmptyGroup                = "NON_EMPTY_GROUP"
	GroupIDNotFound              = "GROUP_ID_NOT_FOUND"
	InvalidRecord                = "INVALID_RECORD"
	FencedLeaderEpoch            = "FENCED_LEADER_EPOCH"
	UnknownLeaderEpoch           = "UNKNOWN_LEADER_EPOCH"
	StaleBrokerEpoch             = "STALE_BROKER_EPOCH"
	IneligibleReplica            = "INELIGIBLE_REPLICA"
	ClusterAuthorizationFailed   = "CLUSTER_AUTHORIZATION_FAILED"

	// REST-only: HTTP conditions Kafka's protocol has no code for.
	NotFound             = "NOT_FOUND"
	MethodNotAllowed     = "METHOD_NOT_ALLOWED"
	UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	MisdirectedRequest   = "MISDIRECTED_REQUEST"
	// A node-to-node route (/internal/v1) without the cluster credential.
	NodeAuthenticationRequired = "NODE_AUTHENTICATION_REQUIRED"
)

// NoKafkaCode marks a REST-only error; the Kafka listener never answers it.
const NoKafkaCode int16 = -2

// Code is one error of the catalog.
type Code struct {
	Name        string
	Kafka       int16 // Kafka's numeric error code; NoKafkaCode for REST-only errors
	HTTPStatus  int
	Retriable   bool // a client may retry; the request changed nothing (see API.md "Errors")
	Description string
}

// catalog is every error, ordered by Kafka code. It is read-only.
var catalog = []Code{
	{UnknownServerError, -1, http.StatusInternalServerError, false,
		"The server hit an unexpected error; the message says what failed."},
	{OffsetOutOfRange, 1, http.StatusRequestedRangeNotSatisfiable, false,
		"The offset is below the log start or past the log end; the reply carries both bounds."},
	{UnknownTopicOrPartition, 3, http.StatusNotFound, false,
		"The topic or partition does not exist."},
	{LeaderNotAvailable, 5, http.StatusServiceUnavailable, true,
		"The partition has no leader right now (an election is under way or its replicas are down)."},
	{NotLeaderOrFollower, 6, http.StatusServiceUnavailable, true,
		"This node does not lead the partition (its metadata may be behind); retry, the request will find the leader."},
	{RequestTimedOut, 7, http.StatusGatewayTimeout, true,
		"The request did not finish in time; its outcome is unknown (it may have been written)."},
	{BrokerNotAvailable, 8, http.StatusNotFound, false,
		"The broker is not registered."},
	{MessageTooLarge, 10, http.StatusRequestEntityTooLarge, false,
		"A record is larger than the topic's max.message.bytes."},
	{CoordinatorLoadInProgress, 14, http.StatusServiceUnavailable, true,
		"The group's coordinator is loading the group's offsets partition."},
	{CoordinatorNotAvailable, 15, http.StatusServiceUnavailable, true,
		"The group's coordinator is not available (the offsets topic is being created or its partition has no leader)."},
	{NotCoordinator, 16, http.StatusServiceUnavailable, true,
		"This node does not (or no longer) coordinate the group."},
	{InvalidTopic, 17, http.StatusBadRequest, false,
		"The topic name is not allowed, or the operation is not allowed on this topic (an internal topic)."},
	{RecordListTooLarge, 18, http.StatusRequestEntityTooLarge, false,
		"The request holds more bytes or records than the node accepts in one request."},
	{NotEnoughReplicas, 19, http.StatusServiceUnavailable, true,
		"Fewer in-sync replicas than min.insync.replicas; nothing was written."},
	{NotEnoughReplicasAfterAppend, 20, http.StatusServiceUnavailable, true,
		"The write was appended but the in-sync replicas fell below min.insync.replicas before it committed; its outcome is unknown."},
	{IllegalGeneration, 22, http.StatusConflict, false,
		"The call carries a generation other than the group's current one; heartbeat to learn the new assignment."},
	{InconsistentGroupProtocol, 23, http.StatusConflict, false,
		"The join names an assignor other than the one the group's members use."},
	{UnknownMemberID, 25, http.StatusNotFound, false,
		"The member is not (or no longer) in the group; join again."},
	{RebalanceInProgress, 27, http.StatusConflict, false,
		"A commit without a member id while the group has members, or a seek that raced a rebalance; heartbeat and retry."},
	{ClusterAuthorizationFailed, 31, http.StatusForbidden, false,
		"The request carries a cluster credential other than this cluster's (a node of another cluster, or a guess); nothing was done."},
	{TopicAlreadyExists, 36, http.StatusConflict, false,
		"A topic with that name exists."},
	{InvalidPartitions, 37, http.StatusBadRequest, false,
		"The partition count or assignment is not allowed."},
	{InvalidReplicationFactor, 38, http.StatusBadRequest, false,
		"The replication factor is out of range."},
	{InvalidConfig, 40, http.StatusBadRequest, false,
		"A config key is unknown or its value is out of range."},
	{NotController, 41, http.StatusServiceUnavailable, true,
		"No controller is elected right now, the call reached a node that stopped being it, or the metadata changed under the call (a stale epoch); retry."},
	{InvalidRequest, 42, http.StatusBadRequest, false,
		"The request is malformed; the message names the field."},
	{KafkaStorageError, 56, http.StatusInternalServerError, true,
		"The log's disk failed (full, broken or read-only), or the log is offline after a failed fsync or rename until its node restarts; nothing was acknowledged. On a read: a stored batch cannot be read or decoded there (it is never skipped). Another replica takes over."},
	{NonEmptyGroup, 68, http.StatusConflict, false,
		"The group has members; resets and deletes need an empty group."},
	{GroupIDNotFound, 69, http.StatusNotFound, false,
		"The group does not exist."},
	{FencedLeaderEpoch, 74, http.StatusConflict, true,
		"The request's leader epoch is older than the partition's current one; refresh the metadata."},
	{UnknownLeaderEpoch, 75, http.StatusConflict, true,
		"The request's leader epoch is newer than this replica knows; its metadata is behind."},
	{StaleBrokerEpoch, 77, http.StatusConflict, false,
		"The request comes from an earlier incarnation of the broker."},
	{InvalidRecord, 87, http.StatusBadRequest, false,
		"A record or batch is malformed."},
	{IneligibleReplica, 107, http.StatusConflict, false,
		"An ISR change names a broker that is fenced or not registered, so it may not lead or join the ISR."},
	{NotFound, NoKafkaCode, http.StatusNotFound, false,
		"No route for that method and path."},
	{MethodNotAllowed, NoKafkaCode, http.StatusMethodNotAllowed, false,
		"The route exists but not for that method."},
	{MisdirectedRequest, NoKafkaCode, http.StatusMisdirectedRequest, false,
		"The request's Host names a site this node does not answer to (a guard against DNS rebinding)."},
	{UnsupportedMediaType, NoKafkaCode, http.StatusUnsupportedMediaType, false,
		"The request body's Content-Type is not one the endpoint takes."},
	{NodeAuthenticationRequired, NoKafkaCode, http.StatusUnauthorized, false,
		"The route is for the nodes of the cluster, which present its credential (Weir-Cluster-Auth); nothing was done."},
}

// byName indexes catalog; built once, never written after.
var byName = func() map[string]*Code {
	m := make(map[string]*Code, len(catalog))
	for i := range catalog {
		m[catalog[i].Name] = &catalog[i]
	}
	return m
}()

// Lookup returns the error named name.
func Lookup(name string) (Code, bool) {
	c, ok := byName[name]
	if !ok {
		return Code{}, false
	}
	return *c, true
}

// Get returns the error named name, or UNKNOWN_SERVER_ERROR (keeping the
// name) for a name the catalog lacks: a programming error that tests catch.
func Get(name string) Code {
	if c, ok := byName[name]; ok {
		return *c
	}
	c := *byName[UnknownServerError]
	c.Name = name
	return c
}

// All returns a copy of the catalog, ordered by Kafka code.
func All() []Code { return append([]Code(nil), catalog...) }

// Error is an error that carries its catalog name. Layers below the front
// ends define their sentinel errors with New and wrap them with fmt.Errorf
// ("%w: ...") for context; a front end recovers the name with NameOf.
type Error struct {
	Code string // the catalog name
	// Text is the sentinel's message; empty means the name itself.
	Text string
}

// New returns a sentinel error for the named catalog entry.
func New(name, text string) *Error { return &Error{Code: name, Text: text} }

func (e *Error) Error() string {
	if e.Text == "" {
		return e.Code
	}
	return e.Text
}

// NameOf returns the catalog name err carries, if any.
func NameOf(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, true
	}
	return "", false
}
