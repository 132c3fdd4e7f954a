package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"

	"weir/client"
	"weir/logstore"
	"weir/replication"
)

// Error is an API error: a Kafka error name, the status it travels with, and a
// message that names what was wrong.
type Error struct {
	Status    int
	Code      string
	Message   string
	Retriable bool
	// The bounds of the log, on OFFSET_OUT_OF_RANGE.
	LogStartOffset, HighWatermark *int64
	// offset is the offset asked for, on OFFSET_OUT_OF_RANGE.
	offset int64
}

// outOfRange is the 416 with both bounds, in the message and as fields.
func outOfRange(offset, logStart, hw int64) *Error {
	e := Errorf(client.CodeOffsetOutOfRange, "offset %d is out of range: log start offset %d, high watermark %d", offset, logStart, hw)
	e.LogStartOffset, e.HighWatermark, e.offset = &logStart, &hw, offset
	return e
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// statusOf gives each error code its HTTP status and retriability (API.md "Errors").
var statusOf = map[string]struct {
	status    int
	retriable bool
}{
	client.CodeInvalidRequest:               {http.StatusBadRequest, false},
	client.CodeInvalidTopic:                 {http.StatusBadRequest, false},
	client.CodeInvalidPartitions:            {http.StatusBadRequest, false},
	client.CodeInvalidReplicationFactor:     {http.StatusBadRequest, false},
	client.CodeInvalidConfig:                {http.StatusBadRequest, false},
	client.CodeInvalidRecord:                {http.StatusBadRequest, false},
	client.CodeUnknownTopicOrPartition:      {http.StatusNotFound, false},
	client.CodeBrokerNotAvailable:           {http.StatusNotFound, false},
	client.CodeGroupIDNotFound:              {http.StatusNotFound, false},
	client.CodeUnknownMemberID:              {http.StatusNotFound, false},
	client.CodeNotFound:                     {http.StatusNotFound, false},
	client.CodeMethodNotAllowed:             {http.StatusMethodNotAllowed, false},
	client.CodeTopicAlreadyExists:           {http.StatusConflict, false},
	client.CodeNonEmptyGroup:                {http.StatusConflict, false},
	client.CodeIllegalGeneration:            {http.StatusConflict, false},
	client.CodeRebalanceInProgress:          {http.StatusConflict, false},
	client.CodeMessageTooLarge:              {http.StatusRequestEntityTooLarge, false},
	client.CodeRecordListTooLarge:           {http.StatusRequestEntityTooLarge, false},
	client.CodeUnsupportedMediaType:         {http.StatusUnsupportedMediaType, false},
	client.CodeOffsetOutOfRange:             {http.StatusRequestedRangeNotSatisfiable, false},
	client.CodeLeaderNotAvailable:           {http.StatusServiceUnavailable, true},
	client.CodeNotLeaderOrFollower:          {http.StatusServiceUnavailable, true},
	client.CodeNotController:                {http.StatusServiceUnavailable, true},
	client.CodeNotEnoughReplicas:            {http.StatusServiceUnavailable, true},
	client.CodeNotEnoughReplicasAfterAppend: {http.StatusServiceUnavailable, true},
	client.CodeCoordinatorLoadInProgress:    {http.StatusServiceUnavailable, true},
	client.CodeInconsistentGroupProtocol:    {http.StatusConflict, false},
	client.CodeCoordinatorNotAvailable:      {http.StatusServiceUnavailable, true},
	client.CodeNotCoordinator:               {http.StatusServiceUnavailable, true},
	client.CodeRequestTimedOut:              {http.StatusGatewayTimeout, true},
	client.CodeKafkaStorageError:            {http.StatusInternalServerError, true},
	client.CodeUnknownServerError:           {http.StatusInternalServerError, false},
}

// Errorf builds an API error for code with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	s, ok := statusOf[code]
	if !ok {
		s.status = http.StatusInternalServerError
	}
	return &Error{Status: s.status, Code: code, Message: fmt.Sprintf(format, args...), Retriable: s.retriable}
}

// badRequest is the common 400 INVALID_REQUEST.
func badRequest(format string, args ...any) *Error {
	return Errorf(client.CodeInvalidRequest, format, args...)
}

// asAPIError maps errors of the layers below to API errors.
func asAPIError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var oor *logstore.OutOfRangeError
	switch {
	case errors.As(err, &oor):
		return outOfRange(oor.Offset, oor.LogStartOffset, oor.LogEndOffset)
	case errors.Is(err, replication.ErrNotLeader):
		return Errorf(client.CodeNotLeaderOrFollower, "%v", err)
	case errors.Is(err, replication.ErrUnknownPartition):
		return Errorf(client.CodeUnknownTopicOrPartition, "%v", err)
	case errors.Is(err, replication.ErrNotEnoughReplicas):
		return Errorf(client.CodeNotEnoughReplicas, "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return Errorf(client.CodeRequestTimedOut, "the request timed out; its outcome is unknown")
	case errors.Is(err, logstore.ErrCorruptBatch), errors.Is(err, logstore.ErrBatchTooLarge):
		return Errorf(client.CodeInvalidRecord, "%v", err)
	case errors.Is(err, logstore.ErrClosed):
		return Errorf(client.CodeLeaderNotAvailable, "the partition is closing; retry")
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EIO), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EDQUOT):
		// The disk failed the write (full, broken, read-only): nothing was
		// acknowledged; another replica may take over or space come back.
		return Errorf(client.CodeKafkaStorageError, "the log's disk refused the write: %v", err)
	}
	return Errorf(client.CodeUnknownServerError, "%v", err)
}
