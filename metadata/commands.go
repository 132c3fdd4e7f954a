package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Command is one change to the metadata. It travels through Raft as a flat
// JSON object: {"type": "<CommandType()>", ...the command's fields}.
type Command interface {
	CommandType() string
}

// Command type names as they appear in the log.
const (
	TypeInitCluster       = "init_cluster"
	TypeRegisterBroker    = "register_broker"
	TypeFenceBroker       = "fence_broker"
	TypeUnfenceBroker     = "unfence_broker"
	TypeCreateTopic       = "create_topic"
	TypeDeleteTopic       = "delete_topic"
	TypeAlterTopicConfigs = "alter_topic_configs"
	TypeCreatePartitions  = "create_partitions"
	TypeAlterPartition    = "alter_partition"
	TypeUnregisterBroker  = "unregister_broker"
	TypeOfflineReplicas   = "offline_replicas"
)

// InitClusterCmd sets the cluster id if none is set yet (else it is a no-op).
type InitClusterCmd struct {
	ClusterID string `json:"cluster_id"`
}

// RegisterBrokerCmd registers a broker. Registering again from the same
// incarnation with the same addresses and rack changes nothing (the epoch is
// kept); a new incarnation (the process restarted) or different addresses
// give the broker a new epoch (this entry's index) and fence it, taking it
// out of leaderships and ISRs: the old incarnation is gone, and the new one
// may have lost an unflushed or torn log tail. A new broker starts fenced.
type RegisterBrokerCmd struct {
	ID          int32  `json:"id"`
	HTTPAddr    string `json:"http_addr"`
	RaftAddr    string `json:"raft_addr"`
	Rack        string `json:"rack,omitempty"`
	Incarnation string `json:"incarnation,omitempty"`
}

// FenceBrokerCmd fences a broker: it leaves every ISR it is not the last
// member of, and every partition it led gets a new leader from the remaining
// ISR (first alive replica in preferred order), or none.
type FenceBrokerCmd struct {
	ID int32 `json:"id"`
	// Epoch, when non-zero, must be the broker's current epoch, so that a
	// decision about an old incarnation never fences a new one.
	Epoch int64 `json:"epoch,omitempty"`
}

// UnregisterBrokerCmd removes a broker that is gone for good. It is refused
// while the broker is alive or still holds the only in-sync copy of a
// partition; it stays listed in the replicas of its partitions (they are
// under-replicated until reassigned), as in Kafka.
type UnregisterBrokerCmd struct {
	ID int32 `json:"id"`
}

// OfflineReplicasCmd reports that broker ID, in its epoch Epoch, lost its
// replicas of Partitions: their logs went offline (a failed fsync or
// rename). The broker leaves each of their ISRs it is not the last member
// of, each of them it led gets a new leader from the remaining ISR (or none),
// and until it registers a new incarnation (a restart, which recovers the
// logs) those replicas can neither lead nor rejoin an ISR. Partitions that no
// longer exist or that the broker holds no replica of are skipped.
type OfflineReplicasCmd struct {
	ID         int32            `json:"id"`
	Epoch      int64            `json:"epoch"`
	Partitions []TopicPartition `json:"partitions"`
}

// UnfenceBrokerCmd marks a broker alive again; leaderless partitions whose
// ISR contains it elect it.
type UnfenceBrokerCmd struct {
	ID int32 `json:"id"`
	// Epoch, when non-zero, must be the broker's current epoch.
	Epoch int64 `json:"epoch,omitempty"`
}

// CreateTopicCmd creates a topic. Assignments (one replica list per
// partition, preferred leader first) are computed by the proposer.
type CreateTopicCmd struct {
	Name        string            `json:"name"`
	ID          string            `json:"id"`
	Internal    bool              `json:"internal,omitempty"`
	Configs     map[string]string `json:"configs,omitempty"`
	Assignments [][]int32         `json:"assignments"`
}

// DeleteTopicCmd deletes a topic.
type DeleteTopicCmd struct {
	Name string `json:"name"`
	// ID, when set, must be the topic's id, so that a retried delete never
	// removes a topic re-created under the same name.
	ID string `json:"id,omitempty"`
}

// AlterTopicConfigsCmd sets and resets (back to the default) topic configs.
type AlterTopicConfigsCmd struct {
	Name  string            `json:"name"`
	Set   map[string]string `json:"set,omitempty"`
	Reset []string          `json:"reset,omitempty"`
}

// CreatePartitionsCmd appends partitions with the given assignments.
type CreatePartitionsCmd struct {
	Topic string `json:"topic"`
	// FirstPartition is the id of the first new partition and must equal the
	// topic's current partition count, so that two concurrent increases
	// computed from the same count cannot both apply.
	FirstPartition int32     `json:"first_partition"`
	Assignments    [][]int32 `json:"assignments"`
}

// AlterPartitionCmd changes a partition's leader and/or ISR. It applies only
// if ExpectedLeaderEpoch and ExpectedPartitionEpoch are the current epochs;
// it then bumps the partition epoch, and the leader epoch if the leader
// changes.
type AlterPartitionCmd struct {
	Topic                  string  `json:"topic"`
	Partition              int32   `json:"partition"`
	Leader                 int32   `json:"leader"`
	ISR                    []int32 `json:"isr"`
	ExpectedLeaderEpoch    int32   `json:"expected_leader_epoch"`
	ExpectedPartitionEpoch int32   `json:"expected_partition_epoch"`
}

func (InitClusterCmd) CommandType() string       { return TypeInitCluster }
func (RegisterBrokerCmd) CommandType() string    { return TypeRegisterBroker }
func (FenceBrokerCmd) CommandType() string       { return TypeFenceBroker }
func (UnregisterBrokerCmd) CommandType() string  { return TypeUnregisterBroker }
func (UnfenceBrokerCmd) CommandType() string     { return TypeUnfenceBroker }
func (CreateTopicCmd) CommandType() string       { return TypeCreateTopic }
func (DeleteTopicCmd) CommandType() string       { return TypeDeleteTopic }
func (AlterTopicConfigsCmd) CommandType() string { return TypeAlterTopicConfigs }
func (CreatePartitionsCmd) CommandType() string  { return TypeCreatePartitions }
func (AlterPartitionCmd) CommandType() string    { return TypeAlterPartition }
func (OfflineReplicasCmd) CommandType() string   { return TypeOfflineReplicas }

// EncodeCommand renders cmd as {"type": ..., fields...}.
func EncodeCommand(cmd Command) ([]byte, error) {
	if cmd == nil {
		return nil, fmt.Errorf("%w: nil command", ErrInvalidRequest)
	}
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode %s command: %w", cmd.CommandType(), err)
	}
	if len(body) < 2 || body[0] != '{' {
		return nil, fmt.Errorf("encode %s command: not a JSON object", cmd.CommandType())
	}
	typ, _ := json.Marshal(cmd.CommandType())
	var buf bytes.Buffer
	buf.Grow(len(body) + len(typ) + 10)
	buf.WriteString(`{"type":`)
	buf.Write(typ)
	if len(body) > 2 { // not "{}"
		buf.WriteByte(',')
		buf.Write(body[1:])
	} else {
		buf.WriteByte('}')
	}
	return buf.Bytes(), nil
}

// DecodeCommand parses what EncodeCommand produced. Unknown fields are
// ignored (as Kafka ignores unknown tagged fields), so that a log written by a
// newer version still decodes the same way on every node.
func DecodeCommand(data []byte) (Command, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: decode command: %v", ErrInvalidRequest, err)
	}
	switch head.Type {
	case TypeInitCluster:
		return decodeAs[InitClusterCmd](data)
	case TypeRegisterBroker:
		return decodeAs[RegisterBrokerCmd](data)
	case TypeFenceBroker:
		return decodeAs[FenceBrokerCmd](data)
	case TypeUnfenceBroker:
		return decodeAs[UnfenceBrokerCmd](data)
	case TypeCreateTopic:
		return decodeAs[CreateTopicCmd](data)
	case TypeDeleteTopic:
		return decodeAs[DeleteTopicCmd](data)
	case TypeAlterTopicConfigs:
		return decodeAs[AlterTopicConfigsCmd](data)
	case TypeCreatePartitions:
		return decodeAs[CreatePartitionsCmd](data)
	case TypeAlterPartition:
		return decodeAs[AlterPartitionCmd](data)
	case TypeUnregisterBroker:
		return decodeAs[UnregisterBrokerCmd](data)
	case TypeOfflineReplicas:
		return decodeAs[OfflineReplicasCmd](data)
	case "":
		return nil, fmt.Errorf("%w: command has no type", ErrInvalidRequest)
	default:
		return nil, fmt.Errorf("%w: unknown command type %q", ErrInvalidRequest, head.Type)
	}
}

// decodeAs decodes data into a T; the "type" key has no field in T and is
// ignored like any unknown field.
func decodeAs[T Command](data []byte) (Command, error) {
	var c T
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%w: decode %s command: %v", ErrInvalidRequest, c.CommandType(), err)
	}
	return c, nil
}
