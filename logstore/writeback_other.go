//go:build !linux || arm

package logstore

// startWriteback is a no-op where sync_file_range is not available.
func (s *segment) startWriteback(off, n int64) {}
