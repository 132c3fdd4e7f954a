//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"weir/client"
)

// TestProduceOutcome: only what the API promises wrote nothing is a
// failure; anything that may have reached the server is unknown.
func TestProduceOutcome(t *testing.T) {
	ok := &client.ProduceResponse{Offsets: []client.ProduceOffset{{Offset: 7}, {Offset: 8}}}
	apiErr := func(status int, code string) error {
		return fmt.Errorf("produce to %q: %w", "t", &client.APIError{Status: status, Code: code})
	}
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cases := []struct {
		name string
		resp *client.ProduceResponse
		err  error
		want Outcome
	}{
		{"acknowledged", ok, nil, OK},
		{"fewer offsets than records", &client.ProduceResponse{Offsets: ok.Offsets[:1]}, nil, Unknown},
		{"an offset with an error", &client.ProduceResponse{Offsets: []client.ProduceOffset{{Offset: 7}, {Offset: -1, ErrorCode: "X"}}}, nil, Unknown},
		{"not enough replicas", nil, apiErr(503, client.CodeNotEnoughReplicas), Fail},
		{"no leader", nil, apiErr(503, client.CodeLeaderNotAvailable), Fail},
		{"storage error", nil, apiErr(500, client.CodeKafkaStorageError), Fail},
		{"timed out", nil, apiErr(504, client.CodeRequestTimedOut), Unknown},
		{"not enough replicas after append", nil, apiErr(503, client.CodeNotEnoughReplicasAfterAppend), Unknown},
		{"a gateway timeout without a code", nil, apiErr(504, ""), Unknown},
		{"a reply that is not the API's", nil, apiErr(502, ""), Unknown},
		{"no server reachable", nil, fmt.Errorf("no server reachable: %w", errors.Join(dialErr, dialErr)), Fail},
		{"connection lost after sending", nil, errors.New("read: connection reset by peer (the request may have reached the server, so it is not retried)"), Unknown},
		{"deadline", nil, context.DeadlineExceeded, Unknown},
	}
	for _, tc := range cases {
		got, offsets := produceOutcome(tc.resp, tc.err, 2)
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
		if (got == OK) != (len(offsets) == 2) {
			t.Errorf("%s: offsets %v with outcome %s", tc.name, offsets, got)
		}
	}
}

// TestGroupOutcome: a group call that failed over several servers failed
// for sure only when it reached none of them.
func TestGroupOutcome(t *testing.T) {
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	readErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	apiErr := func(status int, code string) error {
		return fmt.Errorf("poll group %q: %w", "g", &client.APIError{Status: status, Code: code})
	}
	cases := []struct {
		name string
		err  error
		want Outcome
	}{
		{"a reply", nil, OK},
		{"unknown member", apiErr(404, client.CodeUnknownMemberID), Fail},
		{"not the coordinator", apiErr(503, client.CodeNotCoordinator), Fail},
		{"timed out", apiErr(504, client.CodeRequestTimedOut), Unknown},
		{"every server refused", fmt.Errorf("no server reachable: %w", errors.Join(dialErr, dialErr)), Fail},
		{"one server lost the reply", fmt.Errorf("no server reachable: %w", errors.Join(dialErr, readErr, dialErr)), Unknown},
		{"one server lost the reply, first", fmt.Errorf("no server reachable: %w", errors.Join(readErr, dialErr)), Unknown},
		{"deadline", context.DeadlineExceeded, Unknown},
	}
	for _, tc := range cases {
		if got := groupOutcome(tc.err); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestOffsetSetCovers: the drain's record of what the members received.
func TestOffsetSetCovers(t *testing.T) {
	var s offsetSet
	if !s.covers(0) {
		t.Fatal("an empty range is not covered")
	}
	for _, off := range []int64{0, 1, 2, 63, 64, 65, 130} {
		s.add(off)
	}
	if !s.covers(3) || s.covers(4) || !s.has(64) || s.has(66) || s.has(-1) || s.has(1000) {
		t.Fatalf("set %v", s.bits)
	}
	for off := int64(3); off < 130; off++ {
		s.add(off)
	}
	if !s.covers(131) || s.covers(132) {
		t.Fatalf("set %v", s.bits)
	}
	var none *offsetSet
	if none.covers(1) || !none.covers(0) {
		t.Fatal("a nil set")
	}
}
