package client

import (
	"encoding/json"

	"weir/errcode"
)

// This file is the REST contract (../shared/API.md) in Go: the server encodes
// these types and the client decodes them, so the two cannot drift apart.

// Error codes, as they appear in ErrorBody.ErrorCode: the names of the
// catalog in weir/errcode, which says what each means, its HTTP status,
// Kafka code and whether it may be retried.
const (
	CodeInvalidRequest               = errcode.InvalidRequest
	CodeInvalidTopic                 = errcode.InvalidTopic
	CodeInvalidPartitions            = errcode.InvalidPartitions
	CodeInvalidReplicationFactor     = errcode.InvalidReplicationFactor
	CodeInvalidConfig                = errcode.InvalidConfig
	CodeInvalidRecord                = errcode.InvalidRecord
	CodeUnknownTopicOrPartition      = errcode.UnknownTopicOrPartition
	CodeBrokerNotAvailable           = errcode.BrokerNotAvailable
	CodeGroupIDNotFound              = errcode.GroupIDNotFound
	CodeUnknownMemberID              = errcode.UnknownMemberID
	CodeNotFound                     = errcode.NotFound
	CodeMethodNotAllowed             = errcode.MethodNotAllowed
	CodeTopicAlreadyExists           = errcode.TopicAlreadyExists
	CodeNonEmptyGroup                = errcode.NonEmptyGroup
	CodeIllegalGeneration            = errcode.IllegalGeneration
	CodeRebalanceInProgress          = errcode.RebalanceInProgress
	CodeMessageTooLarge              = errcode.MessageTooLarge
	CodeRecordListTooLarge           = errcode.RecordListTooLarge
	CodeUnsupportedMediaType         = errcode.UnsupportedMediaType
	CodeMisdirectedRequest           = errcode.MisdirectedRequest
	CodeOffsetOutOfRange             = errcode.OffsetOutOfRange
	CodeLeaderNotAvailable           = errcode.LeaderNotAvailable
	CodeNotLeaderOrFollower          = errcode.NotLeaderOrFollower
	CodeNotController                = errcode.NotController
	CodeNotEnoughReplicas            = errcode.NotEnoughReplicas
	CodeNotEnoughReplicasAfterAppend = errcode.NotEnoughReplicasAfterAppend
	CodeCoordinatorLoadInProgress    = errcode.CoordinatorLoadInProgress
	CodeCoordinatorNotAvailable      = errcode.CoordinatorNotAvailable
	CodeNotCoordinator               = errcode.NotCoordinator
	CodeInconsistentGroupProtocol    = errcode.InconsistentGroupProtocol
	CodeRequestTimedOut              = errcode.RequestTimedOut
	CodeKafkaStorageError            = errcode.KafkaStorageError
	CodeUnknownServerError           = errcode.UnknownServerError
	CodeFencedLeaderEpoch            = errcode.FencedLeaderEpoch
	CodeUnknownLeaderEpoch           = errcode.UnknownLeaderEpoch
	CodeStaleBrokerEpoch             = errcode.StaleBrokerEpoch
	CodeIneligibleReplica            = errcode.IneligibleReplica
	CodeNodeAuthenticationRequired   = errcode.NodeAuthenticationRequired
	CodeClusterAuthorizationFailed   = errcode.ClusterAuthorizationFailed
)

// ErrorBody is every non-2xx reply.
type ErrorBody struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
	Retriable bool   `json:"retriable"`
	// With OFFSET_OUT_OF_RANGE: the partition's bounds at the time.
	LogStartOffset *int64 `json:"log_start_offset,omitempty"`
	HighWatermark  *int64 `json:"high_watermark,omitempty"`
}

// Cluster is GET /v1/cluster.
type Cluster struct {
	ClusterID    string   `json:"cluster_id"`
	ControllerID int32    `json:"controller_id"`
	Brokers      []Broker `json:"brokers"`
}

// Broker is one node as GET /v1/brokers shows it.
type Broker struct {
	ID          int32  `json:"id"`
	HTTPAddr    string `json:"http_addr"`
	RaftAddr    string `json:"raft_addr"`
	Rack        string `json:"rack,omitempty"`
	State       string `json:"state"` // alive | fenced
	Voter       bool   `json:"voter"`
	LeaderCount int    `json:"leader_count"`
	Epoch       int64  `json:"broker_epoch"`
}

// BrokerList is GET /v1/brokers.
type BrokerList struct {
	Brokers []Broker `json:"brokers"`
}

// Health is GET /v1/health.
type Health struct {
	Healthy                   bool             `json:"healthy"`
	Reasons                   []string         `json:"reasons"`
	ControllerID              int32            `json:"controller_id"`
	BrokersDown               []int32          `json:"brokers_down"`
	LeaderlessPartitions      []TopicPartition `json:"leaderless_partitions"`
	UnderReplicatedPartitions []TopicPartition `json:"under_replicated_partitions"`
	UnderMinISRPartitions     []TopicPartition `json:"under_min_isr_partitions"`
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// TopicSummary is one row of GET /v1/topics.
type TopicSummary struct {
	Name              string `json:"name"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Internal          bool   `json:"internal"`
}

// TopicList is GET /v1/topics.
type TopicList struct {
	Topics []TopicSummary `json:"topics"`
}

// CreateTopicRequest is POST /v1/topics. Nil fields take the broker defaults.
type CreateTopicRequest struct {
	Name              string            `json:"name"`
	Partitions        *int              `json:"partitions,omitempty"`
	ReplicationFactor *int              `json:"replication_factor,omitempty"`
	Configs           map[string]string `json:"configs,omitempty"`
}

// Topic is GET /v1/topics/{t} (and the 201 body of a create).
type Topic struct {
	Name              string            `json:"name"`
	ID                string            `json:"id"`
	Internal          bool              `json:"internal"`
	ReplicationFactor int               `json:"replication_factor"`
	Configs           map[string]string `json:"configs"`
	Partitions        []PartitionInfo   `json:"partitions"`
}

// PartitionInfo is one partition of a Topic.
type PartitionInfo struct {
	Partition      int32   `json:"partition"`
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
	LogStartOffset int64   `json:"log_start_offset"`
	HighWatermark  int64   `json:"high_watermark"`
	LogEndOffset   int64   `json:"log_end_offset"`
}

// AlterTopicRequest is PATCH /v1/topics/{t}. A nil config value resets it to the default.
type AlterTopicRequest struct {
	Partitions *int               `json:"partitions,omitempty"`
	Configs    map[string]*string `json:"configs,omitempty"`
}

// PartitionOffsets is one row of GET /v1/topics/{t}/offsets.
type PartitionOffsets struct {
	Partition      int32 `json:"partition"`
	LogStartOffset int64 `json:"log_start_offset"`
	HighWatermark  int64 `json:"high_watermark"`
	LogEndOffset   int64 `json:"log_end_offset"`
	// With ?timestamp=MS: the first offset whose timestamp >= MS (nil when none is).
	Offset    *int64 `json:"offset,omitempty"`
	Timestamp *int64 `json:"timestamp,omitempty"`
}

// TopicOffsets is GET /v1/topics/{t}/offsets.
type TopicOffsets struct {
	Topic      string             `json:"topic"`
	Partitions []PartitionOffsets `json:"partitions"`
}

// ProduceRecord is one record of a produce request. Key/Value are raw JSON: a
// JSON string is stored as its UTF-8 bytes, any other value as its compact
// JSON text, null or absent as null. KeyB64/ValueB64 carry binary.
type ProduceRecord struct {
	Key      json.RawMessage   `json:"key,omitempty"`
	KeyB64   *string           `json:"key_b64,omitempty"`
	Value    json.RawMessage   `json:"value,omitempty"`
	ValueB64 *string           `json:"value_b64,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
	// HeadersB64 are headers whose values are not UTF-8, in base64 (as
	// consume replies give them).
	HeadersB64 map[string]string `json:"headers_b64,omitempty"`
	Partition  *int32            `json:"partition,omitempty"`
	Timestamp  *int64            `json:"timestamp,omitempty"`
}

// ProduceRequest is the JSON body of POST /v1/topics/{t}/records.
type ProduceRequest struct {
	Records []ProduceRecord `json:"records"`
}

// ProduceOffset is the outcome of one record, in request order.
type ProduceOffset struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Timestamp int64  `json:"timestamp"`
	ErrorCode string `json:"error_code,omitempty"`
	Message   string `json:"message,omitempty"`
}

// ProduceResponse is the reply to a produce.
type ProduceResponse struct {
	Offsets []ProduceOffset `json:"offsets"`
	// Present when the status is an error: the error of the request as a whole.
	ErrorCode string `json:"error_code,omitempty"`
	Message   string `json:"message,omitempty"`
	Retriable bool   `json:"retriable,omitempty"`
}

// ConsumedRecord is one record of a consume reply. Key/Value hold embedded JSON
// or a JSON string per the encoding; KeyB64/ValueB64 hold binary (and any
// bytes that are not UTF-8, whatever the encoding).
type ConsumedRecord struct {
	Topic     string            `json:"topic,omitempty"`
	Partition *int32            `json:"partition,omitempty"`
	Offset    int64             `json:"offset"`
	Timestamp int64             `json:"timestamp"`
	Key       json.RawMessage   `json:"key,omitempty"`
	KeyB64    *string           `json:"key_b64,omitempty"`
	Value     json.RawMessage   `json:"value,omitempty"`
	ValueB64  *string           `json:"value_b64,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	// HeadersB64 holds the headers whose values are not UTF-8, in base64.
	HeadersB64 map[string]string `json:"headers_b64,omitempty"`
}

// ConsumeResponse is GET /v1/topics/{t}/partitions/{p}/records.
type ConsumeResponse struct {
	Topic          string           `json:"topic"`
	Partition      int32            `json:"partition"`
	Records        []ConsumedRecord `json:"records"`
	NextOffset     int64            `json:"next_offset"`
	HighWatermark  int64            `json:"high_watermark"`
	LogStartOffset int64            `json:"log_start_offset"`
}
