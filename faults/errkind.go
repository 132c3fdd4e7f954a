//go:build linux

package faults

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"

	"weir/client"
)

// Why calls failed: each failed or unknown operation carries the kind of
// its error (Op.ErrorKind), so that the summary can say why a figure is
// low — an error code the server answered, or what went wrong on the way.

// Error kinds that are not an error code of the API.
const (
	errKindDropped     = "reply dropped (simulated)"
	errKindMalformed   = "malformed reply"
	errKindTimeout     = "timeout"
	errKindConnReset   = "connection reset"
	errKindConnClosed  = "connection closed"
	errKindUnreachable = "unreachable" // a dial failed without a known cause
	errKindOther       = "other"
)

// errorKind names what err is: the API's error code (or "HTTP <status>"
// for an error reply without one), or the kind of transport error. A
// dial's cause is named too: refused, a timeout or no route all mean the
// node was not reached, but not for the same reason.
func errorKind(err error) string {
	if err == nil {
		return ""
	}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		if apiErr.Code != "" {
			return apiErr.Code
		}
		return fmt.Sprintf("HTTP %d", apiErr.Status)
	}
	var opErr *net.OpError
	dial := errors.As(err, &opErr) && opErr.Op == "dial"
	prefix := ""
	if dial {
		prefix = "dial: "
	}
	switch {
	case errors.Is(err, errDropped):
		return errKindDropped
	case errors.Is(err, errMalformedReply):
		return errKindMalformed
	case errors.Is(err, syscall.ECONNREFUSED):
		return prefix + "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return prefix + "no route"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return prefix + errKindConnReset
	case isTimeout(err):
		return prefix + errKindTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return prefix + errKindConnClosed
	case dial:
		return errKindUnreachable
	}
	return errKindOther
}

// isTimeout reports a net.Error that timed out (the client's own timeout
// surfaces as one, and so do context.DeadlineExceeded and
// os.ErrDeadlineExceeded).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errMalformedReply marks a reply that was received but is not what the
// API describes.
var errMalformedReply = errors.New("malformed reply")

// setError records a failed operation's error and its kind.
func setError(op *Op, err error) {
	if err == nil {
		return
	}
	op.Error, op.ErrorKind = err.Error(), errorKind(err)
}

// failureCounts counts the operations that did not succeed by error kind.
type failureCounts map[string]int

// add counts op, one that did not succeed, and returns fc, made if it was
// nil (as append does).
func (fc failureCounts) add(op *Op) failureCounts {
	if fc == nil {
		fc = failureCounts{}
	}
	k := op.ErrorKind
	if k == "" {
		k = errKindOther
		if op.Error == "" {
			k = "no error recorded"
		}
	}
	fc[k]++
	return fc
}

// String lists the kinds, most frequent first: "NOT_COORDINATOR 12, timeout 3".
func (fc failureCounts) String() string {
	kinds := make([]string, 0, len(fc))
	for k := range fc {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int {
		if fc[a] != fc[b] {
			return fc[b] - fc[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, fc[k])
	}
	return strings.Join(parts, ", ")
}
