package replication

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"weir/errcode"
)

// Error names a fetch or ISR answer can carry (the catalog's, which are
// Kafka's, so logs and tools read the same as with Kafka).
const (
	ErrCodeNone                    = ""
	ErrCodeNotLeaderOrFollower     = errcode.NotLeaderOrFollower
	ErrCodeFencedLeaderEpoch       = errcode.FencedLeaderEpoch
	ErrCodeUnknownLeaderEpoch      = errcode.UnknownLeaderEpoch
	ErrCodeUnknownTopicOrPartition = errcode.UnknownTopicOrPartition
	ErrCodeOffsetOutOfRange        = errcode.OffsetOutOfRange
	ErrCodeKafkaStorageError       = errcode.KafkaStorageError
	// ErrCodeStaleBrokerEpoch refuses a fetch from an earlier incarnation of
	// a follower (a request that was in flight when it restarted).
	ErrCodeStaleBrokerEpoch = errcode.StaleBrokerEpoch
)

// FetchRequest is a follower's pull from one leader broker: every partition
// the follower replicates from that leader, in one long poll.
type FetchRequest struct {
	ReplicaID    int32            `json:"replica_id"`
	ReplicaEpoch int64            `json:"replica_epoch"` // the follower's broker epoch
	MaxWaitMs    int32            `json:"max_wait_ms"`
	MinBytes     int32            `json:"min_bytes"`
	MaxBytes     int32            `json:"max_bytes"`
	Partitions   []FetchPartition `json:"partitions"`
}

// FetchPartition is one partition of a FetchRequest.
type FetchPartition struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	FetchOffset int64  `json:"fetch_offset"` // the follower's log end offset
	// LeaderEpoch is the follower's view of the current leader epoch; the
	// leader refuses the partition unless it is its own.
	LeaderEpoch int32 `json:"leader_epoch"`
	// LastFetchedEpoch is the epoch of the follower's last batch (-1 if none):
	// the leader checks it against its epoch history to find a divergence.
	LastFetchedEpoch int32 `json:"last_fetched_epoch"`
	LogStartOffset   int64 `json:"log_start_offset"`
}

// EpochEndOffset is where the leader's history of an epoch ends: the
// follower's log diverges from the leader's at or before EndOffset.
type EpochEndOffset struct {
	Epoch     int32 `json:"epoch"`
	EndOffset int64 `json:"end_offset"`
}

// FetchResponse is the leader's answer to a FetchRequest.
type FetchResponse struct {
	Partitions []FetchPartitionResult `json:"partitions"`
}

// FetchPartitionResult is one partition of a FetchResponse.
type FetchPartitionResult struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Error     string `json:"error,omitempty"` // one of the ErrCode names; "" on success
	// HighWatermark, LogStartOffset and LogEndOffset are the leader's. The
	// log end is what the leader serves (its durable end with fsync always).
	HighWatermark  int64 `json:"high_watermark"`
	LogStartOffset int64 `json:"log_start_offset"`
	LogEndOffset   int64 `json:"log_end_offset"`
	LeaderEpoch    int32 `json:"leader_epoch"`
	// DivergingEpoch, when set, tells the follower to truncate (it then
	// carries no records).
	DivergingEpoch *EpochEndOffset `json:"diverging_epoch,omitempty"`
	// Records are whole record batches exactly as the leader stores them.
	Records []byte `json:"records,omitempty"`
}

// FetchTransport carries a follower's fetch to a leader broker. The server
// implements it over its node-to-node HTTP; on the leader it calls
// Manager.HandleFetch. ctx bounds the whole call (it already allows the long
// poll); an error means the request as a whole failed.
type FetchTransport interface {
	Fetch(ctx context.Context, leaderID int32, req FetchRequest) (FetchResponse, error)
}

// AlterPartitionRequest asks the controller to change a partition's ISR.
// The controller applies it only if LeaderEpoch and PartitionEpoch are the
// partition's current ones.
type AlterPartitionRequest struct {
	Topic          string  `json:"topic"`
	Partition      int32   `json:"partition"`
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"`
	ISR            []int32 `json:"isr"`
}

// ISRChanger sends AlterPartition requests to the controller. The server
// implements it (forwarding to the Raft leader); a nil error means the change
// is committed and the returned values are the partition's new state.
type ISRChanger interface {
	AlterPartition(ctx context.Context, req AlterPartitionRequest) (newISR []int32, newLeaderEpoch, newPartitionEpoch int32, err error)
}

// The binary fetch response: magic, a 4-byte big-endian header length, a JSON
// header (every result without its records, plus their length), then every
// result's records back to back in header order. Records stay raw bytes
// instead of growing by a third as base64 in JSON.
const fetchResponseMagic = "WFR1"

const fetchResponsePrefix = 8 // magic + header length

type wireHeader struct {
	Partitions []wirePartition `json:"partitions"`
}

type wirePartition struct {
	Topic          string          `json:"topic"`
	Partition      int32           `json:"partition"`
	Error          string          `json:"error,omitempty"`
	HighWatermark  int64           `json:"high_watermark"`
	LogStartOffset int64           `json:"log_start_offset"`
	LogEndOffset   int64           `json:"log_end_offset"`
	LeaderEpoch    int32           `json:"leader_epoch"`
	DivergingEpoch *EpochEndOffset `json:"diverging_epoch,omitempty"`
	RecordsLen     int64           `json:"records_len"`
}

// ErrBadFetchResponse wraps every reason a fetch response cannot be decoded.
var ErrBadFetchResponse = errors.New("malformed fetch response")

// FetchResponseContentType names the binary encoding (for the HTTP header).
const FetchResponseContentType = "application/x-weir-fetch-response"

// EncodeFetchResponse writes resp in the binary encoding.
func EncodeFetchResponse(w io.Writer, resp FetchResponse) error {
	h := wireHeader{Partitions: make([]wirePartition, len(resp.Partitions))}
	for i, r := range resp.Partitions {
		h.Partitions[i] = wirePartition{Topic: r.Topic, Partition: r.Partition, Error: r.Error,
			HighWatermark: r.HighWatermark, LogStartOffset: r.LogStartOffset, LogEndOffset: r.LogEndOffset,
			LeaderEpoch: r.LeaderEpoch, DivergingEpoch: r.DivergingEpoch, RecordsLen: int64(len(r.Records))}
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encode fetch response header: %w", err)
	}
	if len(hdr) > 1<<31-1 {
		return fmt.Errorf("encode fetch response: header of %d bytes", len(hdr))
	}
	prefix := make([]byte, fetchResponsePrefix, fetchResponsePrefix+len(hdr))
	copy(prefix, fetchResponseMagic)
	binary.BigEndian.PutUint32(prefix[4:], uint32(len(hdr)))
	if _, err := w.Write(append(prefix, hdr...)); err != nil {
		return fmt.Errorf("write fetch response: %w", err)
	}
	for _, r := range resp.Partitions {
		if len(r.Records) == 0 {
			continue
		}
		if _, err := w.Write(r.Records); err != nil {
			return fmt.Errorf("write fetch response records: %w", err)
		}
	}
	return nil
}

// DecodeFetchResponse reads one binary fetch response of at most maxBytes in
// total from r. A malformed or oversized response is an error wrapping
// ErrBadFetchResponse; memory grows only with the bytes actually received,
// never with what a (broken) peer claims. The Records of the results share
// one buffer.
func DecodeFetchResponse(r io.Reader, maxBytes int64) (FetchResponse, error) {
	var prefix [fetchResponsePrefix]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return FetchResponse{}, fmt.Errorf("%w: prefix: %w", ErrBadFetchResponse, err)
	}
	if string(prefix[:4]) != fetchResponseMagic {
		return FetchResponse{}, fmt.Errorf("%w: bad magic %q", ErrBadFetchResponse, prefix[:4])
	}
	hlen := int64(binary.BigEndian.Uint32(prefix[4:]))
	budget := maxBytes - fetchResponsePrefix
	if hlen > budget {
		return FetchResponse{}, fmt.Errorf("%w: header of %d bytes exceeds the limit of %d", ErrBadFetchResponse, hlen, maxBytes)
	}
	hdrBytes, err := readExactly(r, hlen)
	if err != nil {
		return FetchResponse{}, fmt.Errorf("%w: header: %w", ErrBadFetchResponse, err)
	}
	budget -= hlen
	var h wireHeader
	if err := json.Unmarshal(hdrBytes, &h); err != nil {
		return FetchResponse{}, fmt.Errorf("%w: header: %w", ErrBadFetchResponse, err)
	}
	var total int64
	for _, p := range h.Partitions {
		if p.RecordsLen < 0 || p.RecordsLen > budget-total { // overflow-safe: both sides stay within budget
			return FetchResponse{}, fmt.Errorf("%w: records length %d of %s-%d exceeds the limit of %d",
				ErrBadFetchResponse, p.RecordsLen, p.Topic, p.Partition, maxBytes)
		}
		total += p.RecordsLen
	}
	body, err := readExactly(r, total)
	if err != nil {
		return FetchResponse{}, fmt.Errorf("%w: records: %w", ErrBadFetchResponse, err)
	}
	resp := FetchResponse{Partitions: make([]FetchPartitionResult, len(h.Partitions))}
	var pos int64
	for i, p := range h.Partitions {
		res := FetchPartitionResult{Topic: p.Topic, Partition: p.Partition, Error: p.Error,
			HighWatermark: p.HighWatermark, LogStartOffset: p.LogStartOffset, LogEndOffset: p.LogEndOffset,
			LeaderEpoch: p.LeaderEpoch, DivergingEpoch: p.DivergingEpoch}
		if p.RecordsLen > 0 {
			// Full slice expression: appending to one result cannot clobber the next.
			res.Records = body[pos : pos+p.RecordsLen : pos+p.RecordsLen]
			pos += p.RecordsLen
		}
		resp.Partitions[i] = res
	}
	return resp, nil
}

// readExactly reads n bytes, growing the buffer as they arrive (a peer that
// announces a lot and sends little costs little).
func readExactly(r io.Reader, n int64) ([]byte, error) {
	const chunk = 64 << 10
	if n <= chunk {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	var b bytes.Buffer
	b.Grow(chunk)
	got, err := io.CopyN(&b, r, n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %d of %d bytes: %w", got, n, err)
	}
	return b.Bytes(), nil
}
