package groups

import (
	"crypto/rand"
	"encoding/hex"

	"weir/errcode"
)

// Error is a group error: a catalog entry's name (weir/errcode), so the
// front ends map errors by code instead of by message text. Functions wrap
// these sentinels with fmt.Errorf("%w: ...") for context; test with
// errors.Is and recover the code with errcode.NameOf.
type Error = errcode.Error

var (
	// ErrUnknownMember: the member id is not (or no longer) in the group.
	ErrUnknownMember = errcode.New(errcode.UnknownMemberID, "")
	// ErrIllegalGeneration: a call carried a generation other than the
	// group's current one; the member must heartbeat to learn its new
	// assignment before committing.
	ErrIllegalGeneration = errcode.New(errcode.IllegalGeneration, "")
	// ErrRebalanceInProgress: a standalone commit (no member id) while the
	// group has members, which would race the members' own commits.
	ErrRebalanceInProgress = errcode.New(errcode.RebalanceInProgress, "")
	// ErrNonEmptyGroup: resets and deletes need a group without members.
	ErrNonEmptyGroup = errcode.New(errcode.NonEmptyGroup, "")
	// ErrInconsistentAssignor: a join names an assignor other than the one
	// the group's current members use.
	ErrInconsistentAssignor = errcode.New(errcode.InconsistentGroupProtocol, "")
	// ErrDeadGroup: the group was deleted; the coordinator should drop it.
	ErrDeadGroup = errcode.New(errcode.GroupIDNotFound, "")
	// ErrInvalidRequest: malformed input (bad names, negative timeouts...).
	ErrInvalidRequest = errcode.New(errcode.InvalidRequest, "")
	// ErrNotCoordinator: this node does not (or no longer, or not yet)
	// coordinate the group's offsets partition.
	ErrNotCoordinator = errcode.New(errcode.NotCoordinator, "")
	// ErrLoadInProgress: this node coordinates the group but is still
	// reading the group's offsets partition.
	ErrLoadInProgress = errcode.New(errcode.CoordinatorLoadInProgress, "")
	// ErrUnknownTopicOrPartition: a subscription or commit names a topic or
	// partition that does not exist.
	ErrUnknownTopicOrPartition = errcode.New(errcode.UnknownTopicOrPartition, "")
	// ErrLeaderNotAvailable: a data partition's leader did not answer (its
	// offsets are needed for a reset or a lag).
	ErrLeaderNotAvailable = errcode.New(errcode.LeaderNotAvailable, "")
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
