package httpapi

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"syscall"
	"testing"

	"weir/client"
	"weir/logstore"
)

// A write the disk refuses is a retriable storage error, not an unknown 500.
func TestDiskErrorsAreStorageErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO, syscall.EROFS} {
		err := fmt.Errorf("append to t-0: %w", &fs.PathError{Op: "write", Path: "/data/t-0/0.log", Err: errno})
		ae := asAPIError(err)
		if ae.Code != client.CodeKafkaStorageError || ae.Status != http.StatusInternalServerError || !ae.Retriable {
			t.Fatalf("%v: %+v, want a retriable KAFKA_STORAGE_ERROR", errno, ae)
		}
	}
	// An offline log (a failed fsync or rename, whatever its cause) too.
	offline := fmt.Errorf("append to t-0: %w", fmt.Errorf("%w: %w", logstore.ErrLogOffline, errors.New("retire segment 7: rename failed")))
	if ae := asAPIError(offline); ae.Code != client.CodeKafkaStorageError || ae.Status != http.StatusInternalServerError || !ae.Retriable {
		t.Fatalf("an offline log: %+v, want a retriable KAFKA_STORAGE_ERROR", ae)
	}
	if ae := asAPIError(fmt.Errorf("something else")); ae.Code != client.CodeUnknownServerError {
		t.Fatalf("an unknown error: %+v", ae)
	}
}
