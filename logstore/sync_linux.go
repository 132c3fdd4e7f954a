package logstore

import (
	"os"
	"syscall"
)

// datasync flushes a file's data and the metadata needed to read it back
// (fdatasync skips mtime updates, which makes group commit cheaper).
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
