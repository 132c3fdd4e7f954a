package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/fetch"
	"weir/logstore"
	"weir/replication"
)

// Reads of partitions led by other nodes. A node serving a request that
// spans partitions (a group poll, a follow stream) reads those it does not
// lead from their leaders: one POST /internal/v1/read per leader node for
// all the partitions that node leads, answered with their stored batches
// (the binary fetch encoding: no base64, no re-encoding), long-polling there
// when the request waits. The reading node decodes the batches with the
// same fetch.Decode as its own, so both ends keep the same rules.

// maxReadsInFlight bounds the reads one request runs at once, local and
// remote: a poll over a thousand partitions costs a few goroutines, not a
// thousand. One slot is always left for local reads, so at most
// maxReadsInFlight-1 leader nodes are long-polled at a time.
const maxReadsInFlight = 8

// noLeaderRetry paces the look at a partition without a reachable leader
// while a request waits (nothing wakes us when one is elected).
const noLeaderRetry = 200 * time.Millisecond

// maxReadReply bounds what a node accepts as the reply of another node's
// read, against a peer's garbage.
const maxReadReply = 256 << 20

// maxReadPartitions bounds the partitions of one read request.
const maxReadPartitions = 100000

// readRequest is the body of POST /internal/v1/read.
type readRequest struct {
	MaxWaitMS  int64           `json:"max_wait_ms"`
	MaxBytes   int             `json:"max_bytes"`
	Partitions []readPartition `json:"partitions"`
}

// readPartition is one partition of a readRequest.
type readPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	MaxBytes  int    `json:"max_bytes"`
}

func validateRead(req *readRequest) error {
	switch {
	case len(req.Partitions) == 0 || len(req.Partitions) > maxReadPartitions:
		return badRequest("partitions: give 1 to %d partitions, got %d", maxReadPartitions, len(req.Partitions))
	case req.MaxBytes < 1 || req.MaxBytes > maxMaxBytes:
		return badRequest("max_bytes: must be between 1 and %d, got %d", maxMaxBytes, req.MaxBytes)
	case req.MaxWaitMS < 0 || req.MaxWaitMS > maxWait.Milliseconds():
		return badRequest("max_wait_ms: must be between 0 and %d, got %d", maxWait.Milliseconds(), req.MaxWaitMS)
	}
	for i, p := range req.Partitions {
		if p.Partition < 0 || p.Offset < 0 || p.MaxBytes < 0 {
			return badRequest("partitions[%d]: partition, offset and max_bytes must not be negative", i)
		}
	}
	return nil
}

// serveRead serves POST /internal/v1/read: the partitions of the request
// this node leads, read with fetch.Fetch (at once when one has data or an
// error, else after up to max_wait_ms).
func (s *Server) serveRead(c echo.Context) error {
	req, err := readJSON[readRequest](s, c)
	if err != nil {
		return err
	}
	if err := validateRead(&req); err != nil {
		return err
	}
	fr := fetch.Request{MaxBytes: req.MaxBytes, MaxWait: s.readWait(c, req.MaxWaitMS),
		Partitions: make([]fetch.PartitionRequest, len(req.Partitions))}
	for i, p := range req.Partitions {
		fr.Partitions[i] = fetch.PartitionRequest{Topic: p.Topic, Partition: p.Partition, Offset: p.Offset, MaxBytes: p.MaxBytes}
	}
	results := fetch.Fetch(c.Request().Context(), fr, s.leaderReplica, s.b.AnyChanged)
	resp := replication.FetchResponse{Partitions: make([]replication.FetchPartitionResult, len(results))}
	for i, r := range results {
		out := replication.FetchPartitionResult{Topic: r.Topic, Partition: r.Partition, HighWatermark: r.HighWatermark,
			LogStartOffset: r.LogStartOffset, LogEndOffset: -1, LeaderEpoch: -1, Records: r.Batches}
		if r.Err != nil {
			out.Error = s.readFailure(r.Err, r.HighWatermark).Code
		}
		resp.Partitions[i] = out
	}
	c.Response().Header().Set(echo.HeaderContentType, replication.FetchResponseContentType)
	c.Response().WriteHeader(http.StatusOK)
	if err := replication.EncodeFetchResponse(c.Response(), resp); err != nil {
		s.log.Debug("read reply cut short", "err", err) // the reader sees a short reply and retries
	}
	return nil
}

// leaderReplica is fetch's view of Backend.Partition.
func (s *Server) leaderReplica(topic string, partition int32) (fetch.Source, error) {
	p, err := s.b.Partition(topic, partition)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// readFailure is the API error for a read of a partition that failed: a log
// that cannot be read is KAFKA_STORAGE_ERROR (never an empty answer), an
// offset out of range carries the bounds (hw: the partition's high
// watermark) unless this node's metadata may be stale.
func (s *Server) readFailure(err error, hw int64) *Error {
	var oor *logstore.OutOfRangeError
	var ne *NotHereError
	switch {
	case errors.As(err, &oor):
		var ae *Error
		errors.As(s.staleOutOfRange(outOfRange(oor.Offset, oor.LogStartOffset, hw)), &ae)
		return ae
	case errors.As(err, &ne):
		return Errorf(client.CodeNotLeaderOrFollower, "%v", err)
	}
	return asAPIError(err) // a fetch.StorageError carries KAFKA_STORAGE_ERROR
}

// remotePart is one partition of another node's read reply.
type remotePart struct {
	batches []byte
	hw      int64
	err     *Error // with the log's bounds on OFFSET_OUT_OF_RANGE
}

// readRemote reads partitions their leader (at addr) leads, waiting there
// up to wait for data. An error fails the whole read (the leader could not
// be reached or answered no reply); a partition's own failure is in its
// remotePart.
func (s *Server) readRemote(ctx context.Context, addr string, req readRequest, wait time.Duration) ([]remotePart, error) {
	req.MaxWaitMS = wait.Milliseconds()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode read: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/internal/v1/read", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("read from %s: %w", addr, err)
	}
	hreq.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	resp, err := s.fwd.do(hreq, s.servedBy, wait)
	if err != nil {
		return nil, fmt.Errorf("read from %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb client.ErrorBody
		if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&eb) != nil || eb.ErrorCode == "" {
			return nil, fmt.Errorf("read from %s: status %d", addr, resp.StatusCode)
		}
		return nil, &Error{Status: resp.StatusCode, Code: eb.ErrorCode, Retriable: eb.Retriable,
			Message: fmt.Sprintf("read from %s: %s", addr, eb.Message)}
	}
	fr, err := replication.DecodeFetchResponse(resp.Body, maxReadReply)
	if err != nil {
		return nil, fmt.Errorf("read from %s: %w", addr, err)
	}
	if len(fr.Partitions) != len(req.Partitions) {
		return nil, fmt.Errorf("read from %s: %d partitions answered for %d asked", addr, len(fr.Partitions), len(req.Partitions))
	}
	out := make([]remotePart, len(fr.Partitions))
	for i, p := range fr.Partitions {
		want := req.Partitions[i]
		if p.Topic != want.Topic || p.Partition != want.Partition {
			return nil, fmt.Errorf("read from %s: answered %s-%d for %s-%d", addr, p.Topic, p.Partition, want.Topic, want.Partition)
		}
		out[i] = remotePart{batches: p.Records, hw: p.HighWatermark}
		if p.Error != "" {
			e := Errorf(p.Error, "%s-%d at offset %d, on its leader (%s): %s", p.Topic, p.Partition, want.Offset, addr, p.Error)
			if p.Error == client.CodeOffsetOutOfRange {
				start, hw := p.LogStartOffset, p.HighWatermark
				e.LogStartOffset, e.HighWatermark, e.offset = &start, &hw, want.Offset
			}
			out[i].err = e
		}
	}
	return out, nil
}

// decodeRemote yields the records of a partition's remote batches from
// offset on; a batch that does not decode is KAFKA_STORAGE_ERROR, as it is
// locally.
func (s *Server) decodeRemote(part remotePart, offset int64, lim fetch.Limits, fn func(logstore.Record) error) (fetch.Result, error) {
	res, err := fetch.Decode(s.b.Codecs(), part.batches, offset, part.hw, lim, fn)
	if err != nil {
		var se *fetch.StorageError
		if errors.As(err, &se) {
			return res, asAPIError(fmt.Errorf("batches from the partition's leader: %w", err))
		}
		return res, err
	}
	return res, nil
}

// isStorageFailure tells a failure the reader must see (the log cannot be
// read there) from one that passes (no leader right now, leader moving).
func isStorageFailure(err error) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Code == client.CodeKafkaStorageError
}
