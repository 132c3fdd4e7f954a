package fetch

import (
	"errors"
	"fmt"

	"weir/errcode"
	"weir/logstore"
)

// Source is a partition as a reader sees it.
type Source interface {
	// Read returns whole stored batches from the one holding offset on, at
	// most maxBytes (the first batch whole), only below the bound readers
	// may see (the high watermark of a leader replica), and that bound.
	Read(offset int64, maxBytes int) (logstore.ReadResult, int64, error)
	Log() *logstore.Log
}

// Limits bound one read of a partition.
type Limits struct {
	// MaxBytes bounds the stored batches read, by their size in the log. The
	// first batch comes whole however large, so that a big batch cannot
	// stall its reader.
	MaxBytes int
	// MaxRecords bounds the records yielded; 0 is no bound.
	MaxRecords int
}

// Result says where a read ended.
type Result struct {
	// Next is the offset to read from next: past the last record yielded
	// and past any range without records that was read through; the offset
	// asked for when nothing was read.
	Next int64
	// HighWatermark is the bound of the source when the read began: Next
	// never passes it, even when the source's bound rose during the read.
	// LogStartOffset is the source's first offset.
	HighWatermark, LogStartOffset int64
	// Records and Bytes count the records yielded and their keys' and values' bytes.
	Records, Bytes int
}

// StorageError reports a log that could not be read at Offset: an I/O
// error, or a stored batch that fails its checks (CRC, framing,
// compression). Nothing from Offset on was yielded. It carries the catalog's
// KAFKA_STORAGE_ERROR (errStorage) besides its cause.
type StorageError struct {
	Offset int64
	Err    error
}

// errStorage is the catalog code every StorageError carries.
var errStorage = errcode.New(errcode.KafkaStorageError, "the log cannot be read")

func (e *StorageError) Error() string {
	return fmt.Sprintf("the log cannot be read at offset %d: %v", e.Offset, e.Err)
}

func (e *StorageError) Unwrap() []error { return []error{errStorage, e.Err} }

// maxReads bounds the reads of one call: a read covers one segment at
// most, and a compacted log may hold long runs of batches without records.
const maxReads = 64

// errFull stops a decode once MaxRecords records were yielded.
var errFull = errors.New("record limit reached")

// Records reads src from offset and yields each record at or past offset,
// below the source's bound, in offset order, until lim is reached or
// nothing more is there. fn's error stops the read and is returned as is.
//
// The first read's failure is returned as the source gave it when it is an
// *logstore.OutOfRangeError or logstore.ErrClosed, else as a *StorageError.
// A later read (the next segment) that fails ends the call with what was
// yielded; when nothing was, with its error, so that a reader never takes
// an empty answer for a damaged log.
func Records(src Source, offset int64, lim Limits, fn func(logstore.Record) error) (Result, error) {
	data, hw, err := src.Read(offset, lim.MaxBytes)
	out := Result{Next: offset, HighWatermark: hw, LogStartOffset: data.LogStartOffset}
	if err != nil {
		return out, readError(offset, err)
	}
	codecs := src.Log().Codecs()
	budget := lim.MaxBytes
	for reads := 1; ; reads++ {
		full, err := decode(codecs, data.Data, &out, lim, fn)
		if err != nil || full {
			return out, err
		}
		budget -= len(data.Data)
		if out.Next >= hw || len(data.Data) == 0 || budget <= 0 || reads >= maxReads {
			return out, nil
		}
		// The read ended at a segment's end: go on in the next one, within
		// what is left of the budget and below the HW the read began with
		// (the result's: the source's may have risen since).
		if data, _, err = src.Read(out.Next, budget); err != nil {
			var oor *logstore.OutOfRangeError
			if out.Records > 0 || errors.As(err, &oor) || errors.Is(err, logstore.ErrClosed) {
				return out, nil // the next read meets the error, at out.Next
			}
			return out, readError(out.Next, err)
		}
		data.Data = below(data.Data, hw)
		if len(data.Data) > budget && out.Records > 0 {
			return out, nil // only a read's first batch may exceed the budget
		}
	}
}

// below is the leading batches of data that lie wholly below bound, as a
// source's first read returns them. A batch whose framing is damaged stays
// in, and what follows it: decoding reports it.
func below(data []byte, bound int64) []byte {
	rest := data
	for len(rest) > 0 {
		b, next, ok, err := logstore.NextBatch(rest)
		if err != nil || !ok {
			return data
		}
		if b.NextOffset() > bound {
			return data[:len(data)-len(rest)]
		}
		rest = next
	}
	return data
}

// Decode yields the records of data (whole stored batches, as Batches or
// another node returns them) from offset on, as Records does. hw bounds
// what data holds (it is reported back in the result).
func Decode(codecs *logstore.Codecs, data []byte, offset, hw int64, lim Limits, fn func(logstore.Record) error) (Result, error) {
	out := Result{Next: offset, HighWatermark: hw}
	_, err := decode(codecs, data, &out, lim, fn)
	return out, err
}

// decode yields the records of data at or past out.Next, moving out along;
// full reports that lim.MaxRecords was reached.
func decode(codecs *logstore.Codecs, data []byte, out *Result, lim Limits, fn func(logstore.Record) error) (full bool, err error) {
	var fnErr error
	for len(data) > 0 {
		b, rest, ok, err := logstore.NextBatch(data)
		if err != nil {
			return false, &StorageError{Offset: out.Next, Err: err}
		}
		if !ok { // reads return whole batches: a torn one is damage
			return false, &StorageError{Offset: out.Next, Err: fmt.Errorf("%w: a batch of %d bytes is cut short", logstore.ErrCorruptBatch, len(data))}
		}
		data = rest
		if b.NextOffset() <= out.Next {
			continue // wholly below the offset asked for (the first batch of a read)
		}
		err = codecs.EachRecord(b, func(r logstore.Record) error {
			if r.Offset < out.Next {
				return nil
			}
			if lim.MaxRecords > 0 && out.Records >= lim.MaxRecords {
				return errFull
			}
			if fnErr = fn(r); fnErr != nil {
				return fnErr
			}
			out.Next = r.Offset + 1
			out.Records++
			out.Bytes += len(r.Key) + len(r.Value)
			return nil
		})
		switch {
		case errors.Is(err, errFull):
			return true, nil
		case fnErr != nil:
			return false, fnErr
		case err != nil:
			return false, &StorageError{Offset: out.Next, Err: fmt.Errorf("batch at offset %d: %w", b.BaseOffset(), err)}
		}
		out.Next = max(out.Next, b.NextOffset()) // past records compaction removed, too
		if lim.MaxRecords > 0 && out.Records >= lim.MaxRecords {
			return true, nil
		}
	}
	return false, nil
}

// readError passes on what a reader acts on (out of range, closing) and
// makes any other failure of the log a StorageError.
func readError(offset int64, err error) error {
	var oor *logstore.OutOfRangeError
	if errors.As(err, &oor) || errors.Is(err, logstore.ErrClosed) {
		return err
	}
	return &StorageError{Offset: offset, Err: err}
}
