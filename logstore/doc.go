// Package logstore keeps one partition's records on disk as an append-only
// log, the way Kafka does, and is the only place Weir's data touches a file.
// It imports nothing else of Weir's.
//
// # On disk
//
// A partition is a directory <data_dir>/<topic>-<partition>/ holding:
//
//	00000000000000000000.log        record batches, back to back
//	00000000000000000000.index      sparse offset index: (u32 offset - base, u32 file position)
//	00000000000000000000.timeindex  sparse time index: (i64 timestamp, u32 offset - base)
//	00000000000000004096.log        the next segment, named by its first offset (20 digits)
//	...
//	leader-epoch-checkpoint         "0\n<n>\n<epoch> <start offset>\n..." (written atomically)
//
// The data dir itself (see Manager) holds .clean-shutdown, .lock,
// recovery-point-offset-checkpoint and log-start-offset-checkpoint.
//
// Every batch is Kafka's record batch v2, byte for byte, so stored bytes can be
// sent to followers and (later) Kafka clients unchanged: a 61-byte big-endian
// header (base offset i64, length i32, partition leader epoch i32, magic i8 = 2,
// CRC-32C u32 over everything after it, attributes i16 (bits 0-2 codec: none,
// gzip, snappy, lz4, zstd; bit 3 LogAppendTime), last offset delta i32, base and
// max timestamps i64, producer id/epoch/base sequence, record count i32) then
// the records, compressed as a whole if the codec says so. Each record is
// varint-framed: attributes, timestamp delta, offset delta, key, value, headers.
//
// Index entries are added every index.interval.bytes (4096) of log; the time
// index entry for a batch holds the largest timestamp of everything written
// before it, so "first offset with timestamp >= T" can start scanning at the
// last entry below T. Both indexes are derived data: they are checked on open
// and rebuilt from the log whenever they are missing or do not fit it.
//
// # Open files
//
// A segment's three files are opened when it is first read or written, not
// when its log opens, and the logs of a data dir share a budget of open files
// (FileBudget, ManagerOptions.MaxOpenFiles; by default half of
// RLIMIT_NOFILE). Over the budget, a sweeper (run by Manager.Run) closes the
// files not used lately (a clock sweep), so an idle partition holds no
// descriptor and ten thousand of them fit in a few hundred. An open that goes
// over the budget only wakes the sweeper; only a quarter over it (the sweeper
// not keeping up) does the opener close idle files itself, one bounded pass.
// Never closed: files a reader or writer holds (each call pins them,
// lock-free; readers finish on what they pinned), and a segment holding data
// not yet fsynced through them, so that an fsync error is reported on the
// descriptor that wrote the data: the sweeper fsyncs an idle one first (a
// failure takes its log offline), never a request. A segment's size,
// indexes and offsets stay in memory, so reopening reads nothing back. The
// budget is soft: files in use stay open above it.
//
// # Guarantees
//
//   - Appends are single-writer (a mutex); reads do not take it. A reader sees
//     only whole batches: a segment's size is published after its bytes are
//     written, and readers never read past it. Below the log end a read
//     returns data or an error, never neither: a reader whose snapshot of the
//     segment list went stale (a segment retired or cut under it) looks
//     again, and if nothing was published yet waits once for the writer's
//     change in progress. A segment being replaced (compaction's swap, a
//     restart at an offset) keeps its open files open until the new list is
//     out.
//   - As leader, AppendAsLeader assigns the next offsets and stamps the leader
//     epoch into the batch header (the CRC does not cover those fields). As
//     follower, AppendAsFollower takes batches that already carry offsets and
//     refuses gaps, overlaps, older epochs and bad CRCs, whole.
//   - Offsets are contiguous in every log. Compaction keeps each batch's
//     offset range; a batch left empty becomes a record-less batch (runs of
//     them merged), so recovery and followers can demand contiguity. Each
//     replica compacts on its own, so a merged empty batch may span where
//     another replica's log ends: that replica continues from its end with
//     the batch's remainder (EmptyBatchFrom).
//   - Fsync "always" (the default): an append returns only once its batch is
//     on disk; appends that wait together share one fdatasync (group commit).
//     "never" leaves it to the OS and to Sync/roll/Close. DurableOffset says
//     up to where data is on disk either way.
//   - A failed fsync is never retried into "durable" (the kernel may have
//     dropped the pages and marked them clean). A failed fsync, rename or
//     cut-back of the log's files takes the log offline (ErrLogOffline), as
//     does any failure of a truncation after it changed the files (cut a
//     segment or retired one; its end then comes down to the cut):
//     writes and flushes are refused, the durable offset stays where the last
//     good fsync left it, Close reports it (so the Manager writes no clean
//     shutdown marker) and only a restart's recovery brings the log back.
//     Every change to the files goes through FS, the seam tests fail.
//   - A new leader epoch is checkpointed before any batch of it is written, so
//     the checkpoint knows every epoch in the log; truncation cuts the log
//     first, then the checkpoint. EndOffsetForEpoch answers a follower's
//     "where did epoch E end" exactly as Kafka's leader epoch cache does.
//   - Checkpoint files are written to a temp file, fsynced, renamed over the
//     old one, and the directory fsynced.
//   - Recovery: after a clean shutdown (marker present) nothing is scanned. Otherwise every segment from
//     the one holding the recovery point on is read and each batch checked:
//     framing, magic, CRC-32C, offsets contiguous with the previous batch,
//     epochs non-decreasing and matching the epoch checkpoint. The log is cut
//     at the first batch that fails, later segments are dropped, indexes are
//     rebuilt, and Recovery() (and the logger) says what was cut. A damaged
//     file never makes Open fail or panic; an I/O error does make it fail.
//   - Retention deletes whole segments, oldest first, by retention.ms (the
//     segment's largest timestamp) and retention.bytes, never the active
//     segment and never one holding an offset at or above the committed
//     offset the caller passes (its high watermark).
//   - Compaction (cleanup.policy=compact) runs beside appends and reads: it
//     rewrites closed, committed segments keeping the last record per key,
//     tombstones until their segment is delete.retention.ms old, then swaps
//     each one in with a rename; readers of the old file finish on it.
//   - Background work (Manager.Run) runs on goroutines of its own, so none
//     waits for another: the flusher (and checkpoints), retention, up to
//     CleanerThreads compactors, each on one log at a time, and the
//     open-files sweeper.
package logstore
