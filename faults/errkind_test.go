//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"weir/client"
)

// TestErrorKind: a failed call is named by the API's error code, or by what
// happened on the way, however deeply the client wrapped it.
func TestErrorKind(t *testing.T) {
	dial := func(errno error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: errno}}
	}
	read := &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"an error code", fmt.Errorf("join group %q: %w", "g", &client.APIError{Status: 500, Code: client.CodeKafkaStorageError}), "KAFKA_STORAGE_ERROR"},
		{"a reply without a code", &client.APIError{Status: 502}, "HTTP 502"},
		{"refused everywhere", fmt.Errorf("no server reachable: %w", errors.Join(dial(syscall.ECONNREFUSED), dial(syscall.ECONNREFUSED))), "dial: connection refused"},
		{"no route", dial(syscall.EHOSTUNREACH), "dial: no route"},
		{"a dial that timed out", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, "dial: timeout"},
		{"reset after sending", fmt.Errorf("%w (the request may have reached the server, so it is not retried)", read), errKindConnReset},
		{"the call's deadline", fmt.Errorf("poll: %w", context.DeadlineExceeded), errKindTimeout},
		{"closed mid-reply", fmt.Errorf("decoding the reply: %w", io.ErrUnexpectedEOF), errKindConnClosed},
		{"anything else", errors.New("x"), errKindOther},
		{"a dropped reply", fmt.Errorf("%w by the member (poll_id 3, 2 records): a lost reply, simulated", errDropped), errKindDropped},
		{"a malformed reply", fmt.Errorf("%w: %w", errMalformedReply, errors.New("no topic")), errKindMalformed},
	}
	for _, tc := range cases {
		if got := errorKind(tc.err); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestSummarySaysWhyCallsFailed: the summary counts what did not succeed
// by error kind, per operation and per group call, most frequent first.
func TestSummarySaysWhyCallsFailed(t *testing.T) {
	op := func(kind Kind, outcome Outcome, errKind string) Op {
		return Op{Kind: kind, Group: "g", Process: "m", Outcome: outcome, ErrorKind: errKind, Error: errKind}
	}
	res := &phaseResult{name: "p", history: History{Groups: []GroupSpec{{Name: "g", AutoCommit: true}}, Ops: []Op{
		op(KindJoin, OK, ""),
		op(KindJoin, Fail, "KAFKA_STORAGE_ERROR"),
		op(KindJoin, Fail, "KAFKA_STORAGE_ERROR"),
		op(KindJoin, Fail, "NOT_COORDINATOR"),
		op(KindPoll, Unknown, errKindTimeout),
	}}}
	s := res.summary()
	for _, want := range []string{
		"join 1/4",
		"join not ok: KAFKA_STORAGE_ERROR 2, NOT_COORDINATOR 1",
		"poll not ok: timeout 1",
		"why operations did not succeed",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}
