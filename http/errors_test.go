package httpapi

import (
	"fmt"
	"io/fs"
	"net/http"
	"syscall"
	"testing"

	"weir/client"
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
	if ae := asAPIError(fmt.Errorf("something else")); ae.Code != client.CodeUnknownServerError {
		t.Fatalf("an unknown error: %+v", ae)
	}
}
