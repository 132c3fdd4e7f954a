package logstore

import (
	"fmt"
	"log/slog"
	"math"
	"time"
)

// FsyncPolicy says when appended data is forced to disk.
type FsyncPolicy string

const (
	// FsyncAlways makes every append durable before it returns; appends that
	// wait at the same time share one fsync (group commit).
	FsyncAlways FsyncPolicy = "always"
	// FsyncNever leaves flushing to the OS (and to Sync, roll and Close).
	FsyncNever FsyncPolicy = "never"
)

// Cleanup policies (cleanup.policy).
const (
	CleanupDelete        = "delete"
	CleanupCompact       = "compact"
	CleanupCompactDelete = "compact,delete"
)

// Timestamp types (message.timestamp.type).
const (
	CreateTime    = "CreateTime"
	LogAppendTime = "LogAppendTime"
)

// Config holds a partition log's settings; the names follow Kafka's topic configs.
type Config struct {
	SegmentBytes         int64       // segment.bytes: roll when a segment would pass this size
	SegmentMs            int64       // segment.ms: roll when the first batch is older than this
	SegmentIndexBytes    int64       // segment.index.bytes: roll when the offset index reaches this size
	IndexIntervalBytes   int64       // index.interval.bytes: bytes between index entries
	RetentionMs          int64       // retention.ms: -1 keeps forever
	RetentionBytes       int64       // retention.bytes: -1 is unlimited
	CleanupPolicy        string      // cleanup.policy: delete, compact or compact,delete
	DeleteRetentionMs    int64       // delete.retention.ms: how long tombstones outlive compaction
	MessageTimestampType string      // message.timestamp.type: CreateTime or LogAppendTime
	Fsync                FsyncPolicy // log.flush policy: always or never
}

// DefaultConfig returns Kafka's defaults with fsync always.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:         1 << 30,
		SegmentMs:            7 * 24 * time.Hour.Milliseconds(),
		SegmentIndexBytes:    10 << 20,
		IndexIntervalBytes:   4096,
		RetentionMs:          7 * 24 * time.Hour.Milliseconds(),
		RetentionBytes:       -1,
		CleanupPolicy:        CleanupDelete,
		DeleteRetentionMs:    24 * time.Hour.Milliseconds(),
		MessageTimestampType: CreateTime,
		Fsync:                FsyncAlways,
	}
}

// Validate names the first setting that is out of range.
func (c Config) Validate() error {
	switch {
	case c.SegmentBytes < 14 || c.SegmentBytes > math.MaxInt32:
		return fmt.Errorf("segment.bytes must be between 14 and %d, got %d", math.MaxInt32, c.SegmentBytes)
	case c.SegmentMs < 1:
		return fmt.Errorf("segment.ms must be at least 1, got %d", c.SegmentMs)
	case c.SegmentIndexBytes < offsetEntrySize || c.SegmentIndexBytes > math.MaxInt32:
		return fmt.Errorf("segment.index.bytes must be between %d and %d, got %d", offsetEntrySize, math.MaxInt32, c.SegmentIndexBytes)
	case c.IndexIntervalBytes < 0 || c.IndexIntervalBytes > math.MaxInt32:
		return fmt.Errorf("index.interval.bytes must be between 0 and %d, got %d", math.MaxInt32, c.IndexIntervalBytes)
	case c.RetentionMs < -1:
		return fmt.Errorf("retention.ms must be -1 or more, got %d", c.RetentionMs)
	case c.RetentionBytes < -1:
		return fmt.Errorf("retention.bytes must be -1 or more, got %d", c.RetentionBytes)
	case c.DeleteRetentionMs < 0:
		return fmt.Errorf("delete.retention.ms must be 0 or more, got %d", c.DeleteRetentionMs)
	}
	switch c.CleanupPolicy {
	case CleanupDelete, CleanupCompact, CleanupCompactDelete, "delete,compact":
	default:
		return fmt.Errorf("cleanup.policy must be delete, compact or compact,delete, got %q", c.CleanupPolicy)
	}
	switch c.MessageTimestampType {
	case CreateTime, LogAppendTime:
	default:
		return fmt.Errorf("message.timestamp.type must be CreateTime or LogAppendTime, got %q", c.MessageTimestampType)
	}
	switch c.Fsync {
	case FsyncAlways, FsyncNever:
	default:
		return fmt.Errorf("fsync must be always or never, got %q", c.Fsync)
	}
	return nil
}

// Compact reports whether the log is compacted.
func (c Config) Compact() bool {
	return c.CleanupPolicy == CleanupCompact || c.CleanupPolicy == CleanupCompactDelete || c.CleanupPolicy == "delete,compact"
}

// Delete reports whether retention deletes old segments.
func (c Config) Delete() bool { return c.CleanupPolicy != CleanupCompact }

func (c Config) maxIndexEntries() int { return int(c.SegmentIndexBytes / offsetEntrySize) }

// Options are how a log is opened, as opposed to how it is configured.
type Options struct {
	// Clean says the previous run shut down cleanly: skip recovery.
	Clean bool
	// RecoveryPoint is the first offset that may not be durable; segments from
	// the one holding it on are scanned when the shutdown was not clean.
	RecoveryPoint int64
	// LogStartOffset restores a log start offset moved by DeleteRecordsBefore.
	LogStartOffset int64
	// Codecs to share; nil makes new ones.
	Codecs *Codecs
	// Logger for what recovery finds; nil discards.
	Logger *slog.Logger
	// Now is the clock (retention, segment.ms, LogAppendTime); nil is time.Now.
	Now func() time.Time
	// FS is how the log changes its files; nil is OSFS. Tests inject failures here.
	FS FS
	// OnOffline, when set, is called once when the log goes offline (see
	// ErrLogOffline), with the error its writes answer from then on. It
	// may run under the log's lock: it must not block or call into the log.
	OnOffline func(error)
	// Files is the open-files budget the log shares with others; nil: none
	// (segments still open their files on first use, and keep them).
	Files *FileBudget
}
