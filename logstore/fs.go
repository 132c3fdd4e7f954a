package logstore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// FS is the seam through which a log changes its files: every open, write,
// fsync, truncation, rename and removal of a log's files (and of its leader
// epoch checkpoint), and the creation, renaming and removal of its
// directory, go through it. Reads use the *os.File directly: they change
// nothing, and a hot read path stays free of indirection. OSFS is the real
// thing; tests wrap it to fail a chosen operation on a chosen file.
//
// Implementations must be safe for concurrent use.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (*os.File, error)
	// CreateTemp is os.CreateTemp: a new file in dir named by pattern.
	CreateTemp(dir, pattern string) (*os.File, error)
	WriteAt(f *os.File, b []byte, off int64) (int, error)
	Truncate(f *os.File, size int64) error
	// Sync makes f's data durable (fdatasync where there is one).
	Sync(f *os.File) error
	// SyncDir makes the creations, renames and removals in dir durable.
	SyncDir(dir string) error
	Rename(oldpath, newpath string) error
	Remove(name string) error
	// MkdirAll is os.MkdirAll (a log's directory).
	MkdirAll(path string, perm os.FileMode) error
	// RemoveAll is os.RemoveAll (a deleted log's directory).
	RemoveAll(path string) error
}

// OSFS is FS on the real file system.
type OSFS struct{}

func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}
func (OSFS) CreateTemp(dir, pattern string) (*os.File, error) { return os.CreateTemp(dir, pattern) }
func (OSFS) WriteAt(f *os.File, b []byte, off int64) (int, error) {
	return f.WriteAt(b, off)
}
func (OSFS) Truncate(f *os.File, size int64) error { return f.Truncate(size) }
func (OSFS) Sync(f *os.File) error                 { return datasync(f) }
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (OSFS) Remove(name string) error             { return os.Remove(name) }
func (OSFS) MkdirAll(path string, perm os.FileMode) error {
	return os.MkdirAll(path, perm)
}
func (OSFS) RemoveAll(path string) error { return os.RemoveAll(path) }

// orOS is fs, or OSFS when fs is nil.
func orOS(fs FS) FS {
	if fs == nil {
		return OSFS{}
	}
	return fs
}

// ErrLogOffline is what every write (and flush) of a log answers once an
// fsync, rename or cut-back of its files failed: the kernel may have dropped
// the pages the failed call was to write and marked them clean, so a later
// fsync that succeeds proves nothing about them (PostgreSQL's "fsyncgate";
// Kafka takes the log dir offline). Nothing written after the failure ever
// counts as durable. The log stays readable below its durable offset; only a
// restart, which recovers the log from disk (CRC scan), brings it back.
// Errors wrapping it also wrap the failure that caused it.
var ErrLogOffline = errors.New("log is offline after a storage failure")

// IsDiskFault reports an error of the disk itself refusing a write: full,
// over quota, read-only or broken. Nothing of the write was acknowledged;
// space may come back, or another replica take over.
func IsDiskFault(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EIO)
}

// faultError marks a failure that leaves a log's files in a state its memory
// no longer describes (a failed fsync, rename or cut-back): the log goes
// offline with it.
type faultError struct{ err error }

func (e *faultError) Error() string { return e.err.Error() }
func (e *faultError) Unwrap() error { return e.err }

func fault(err error) error {
	if err == nil {
		return nil
	}
	return &faultError{err}
}

// isFault reports whether err is (or wraps) a fault.
func isFault(err error) bool {
	var f *faultError
	return errors.As(err, &f)
}

// unfault strips the fault mark from err (a failure in a file about to be discarded).
func unfault(err error) error {
	var f *faultError
	if errors.As(err, &f) {
		return f.err
	}
	return err
}

// fileOps is what a log's segments change their files through, where they
// report what they could not clean up (closing or removing files), and the
// open-files budget they share with the data dir's other logs.
type fileOps struct {
	fs     FS
	logger *slog.Logger
	files  *FileBudget // nil: no budget
	// fault takes the log offline for a failure found outside its own calls
	// (the budget's sweeper fsyncing an idle segment).
	fault func(error) error
}

// remove deletes a file that is no longer wanted; a failure is logged (the
// file is a leftover that the next open removes), a missing file is fine.
func (o *fileOps) remove(name, what string) {
	if err := o.fs.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		o.logger.Warn("could not remove "+what+"; the next open removes it", "file", name, "err", err)
	}
}

// removeSegment removes the files of a segment whose creation failed.
func (o *fileOps) removeSegment(path string) {
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		o.remove(path+suf, "a segment file whose creation failed")
	}
}

// close closes f, logging a failure (it may report a lost write-back, which
// the log has either made durable before or never counted as durable).
func (o *fileOps) close(f *os.File) {
	if f == nil {
		return
	}
	if err := f.Close(); err != nil {
		o.logger.Warn("close log file", "file", f.Name(), "err", err)
	}
}

// writeFileAtomic is WriteFileAtomic through fs. A failed fsync or rename is
// a fault (see faultError); a failure before them left the old file as it was.
func writeFileAtomic(fs FS, path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := fs.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	renamed := false
	defer func() {
		if renamed {
			return
		}
		if rerr := fs.Remove(tmp.Name()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", tmp.Name(), rerr))
		}
	}()
	if _, err := fs.WriteAt(tmp, data, 0); err != nil {
		_ = tmp.Close() // abandoned: the write failed, and the file is removed
		return fmt.Errorf("checkpoint %s: write: %w", path, err)
	}
	if err := fs.Sync(tmp); err != nil {
		_ = tmp.Close() // abandoned: the fsync failed, and the file is removed
		return fault(fmt.Errorf("checkpoint %s: fsync: %w", path, err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("checkpoint %s: close: %w", path, err)
	}
	if err := fs.Rename(tmp.Name(), path); err != nil {
		return fault(fmt.Errorf("checkpoint %s: rename: %w", path, err))
	}
	renamed = true
	if err := fs.SyncDir(dir); err != nil {
		return fault(fmt.Errorf("checkpoint %s: fsync dir: %w", path, err))
	}
	return nil
}
