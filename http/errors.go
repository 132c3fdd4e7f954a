package httpapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"weir/client"
	"weir/errcode"
	"weir/logstore"
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

// Errorf builds an API error for the catalog code (weir/errcode), which
// gives its HTTP status and retriability, with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	c := errcode.Get(code)
	return &Error{Status: c.HTTPStatus, Code: code, Message: fmt.Sprintf(format, args...), Retriable: c.Retriable}
}

// badRequest is the common 400 INVALID_REQUEST.
func badRequest(format string, args ...any) *Error {
	return Errorf(client.CodeInvalidRequest, format, args...)
}

// asAPIError maps errors of the layers below to API errors: those that carry
// a catalog code (errcode.Error sentinels of metadata, replication and
// groups) by their code, logstore's (which imports nothing of ours) and the
// system's here.
func asAPIError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	if name, ok := errcode.NameOf(err); ok {
		// A sentinel that is only its code ("UNKNOWN_MEMBER_ID: member m
		// left") says the code once, in error_code.
		return Errorf(name, "%s", strings.TrimPrefix(err.Error(), name+": "))
	}
	var oor *logstore.OutOfRangeError
	switch {
	case errors.As(err, &oor):
		return outOfRange(oor.Offset, oor.LogStartOffset, oor.LogEndOffset)
	case errors.Is(err, context.DeadlineExceeded):
		return Errorf(client.CodeRequestTimedOut, "the request timed out; its outcome is unknown")
	case errors.Is(err, logstore.ErrCorruptBatch), errors.Is(err, logstore.ErrBatchTooLarge):
		return Errorf(client.CodeInvalidRecord, "%v", err)
	case errors.Is(err, logstore.ErrClosed):
		return Errorf(client.CodeLeaderNotAvailable, "the partition is closing; retry")
	case errors.Is(err, logstore.ErrLogOffline):
		// A failed fsync or rename: the write is not durable here, and the
		// partition's leadership moves to another in-sync replica.
		return Errorf(client.CodeKafkaStorageError, "%v; the partition's leadership moves to another replica, retry", err)
	case logstore.IsDiskFault(err):
		// The disk failed the write (full, broken, read-only): nothing was
		// acknowledged; another replica may take over or space come back.
		return Errorf(client.CodeKafkaStorageError, "the log's disk refused the write: %v", err)
	}
	return Errorf(client.CodeUnknownServerError, "%v", err)
}
