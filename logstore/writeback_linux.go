//go:build linux && !arm

package logstore

import "syscall"

const syncFileRangeWrite = 0x2 // SYNC_FILE_RANGE_WRITE

// startWriteback asks the kernel to start writing bytes [off, off+n) of the
// segment's log file to disk, without waiting (sync_file_range with
// SYNC_FILE_RANGE_WRITE). Only a hint: the fdatasync that follows still
// decides durability, it just finds less left to write.
func (s *segment) startWriteback(off, n int64) {
	f := s.tryPin()
	if f == nil {
		return // closed or removed meanwhile
	}
	defer f.release()
	_ = syscall.SyncFileRange(int(f.log.Fd()), off, n, syncFileRangeWrite)
}
