package groups

import (
	"crypto/rand"
	"encoding/hex"
)

// Error is a group error carrying the Kafka error name the API reports, so
// the HTTP layer maps errors by code instead of by message text. Functions
// wrap these sentinels with fmt.Errorf("%w: ...") for context; test with
// errors.Is and recover the code with errors.As.
type Error struct {
	Code      string
	Retriable bool
}

func (e *Error) Error() string { return e.Code }

var (
	// ErrUnknownMember: the member id is not (or no longer) in the group.
	ErrUnknownMember = &Error{Code: "UNKNOWN_MEMBER_ID"}
	// ErrIllegalGeneration: a call carried a generation other than the
	// group's current one; the member must heartbeat to learn its new
	// assignment before committing.
	ErrIllegalGeneration = &Error{Code: "ILLEGAL_GENERATION"}
	// ErrRebalanceInProgress: a standalone commit (no member id) while the
	// group has members, which would race the members' own commits.
	ErrRebalanceInProgress = &Error{Code: "REBALANCE_IN_PROGRESS"}
	// ErrNonEmptyGroup: resets and deletes need a group without members.
	ErrNonEmptyGroup = &Error{Code: "NON_EMPTY_GROUP"}
	// ErrInconsistentAssignor: a join names an assignor other than the one
	// the group's current members use.
	ErrInconsistentAssignor = &Error{Code: "INCONSISTENT_GROUP_PROTOCOL"}
	// ErrDeadGroup: the group was deleted; the coordinator should drop it.
	ErrDeadGroup = &Error{Code: "GROUP_ID_NOT_FOUND"}
	// ErrInvalidRequest: malformed input (bad names, negative timeouts...).
	ErrInvalidRequest = &Error{Code: "INVALID_REQUEST"}
)

// randomUUID returns a random (version 4) UUID in its canonical text form.
// crypto/rand rather than an extra dependency: the package uses only the
// standard library and kmsg.
func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
