package logstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Files a Manager keeps at the top of its data dir.
const (
	CleanShutdownFile     = ".clean-shutdown"
	LockFile              = ".lock"
	RecoveryPointFile     = "recovery-point-offset-checkpoint"
	LogStartOffsetFile    = "log-start-offset-checkpoint"
	deletingSuffix        = ".deleting"
	defaultCheckInterval  = 5 * time.Minute
	defaultCleanInterval  = 15 * time.Second
	defaultFlushInterval  = time.Minute
	defaultCleanerThreads = 1
	partitionNameSplitter = "-"
)

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	// Config is the configuration logs are opened with until SetConfig says otherwise.
	Config Config
	// Committed returns the offset below which a log's records are committed
	// (its high watermark); retention and compaction never pass it. Nil means
	// the log's durable offset.
	Committed func(name string, l *Log) int64
	// RetentionCheckInterval, CleanerInterval and FlushInterval pace Run
	// (defaults 5 min as Kafka's log.retention.check.interval.ms, 15 s, 1 min).
	RetentionCheckInterval time.Duration
	CleanerInterval        time.Duration
	FlushInterval          time.Duration
	// CleanerThreads bounds how many logs are compacted at once (default 1,
	// as Kafka's log.cleaner.threads).
	CleanerThreads int
	// MaxOpenFiles is the budget of segment files open at once across the
	// data dir (see FileBudget): 0 means DefaultMaxOpenFiles, < 0 no limit.
	MaxOpenFiles int
	Logger       *slog.Logger
	Now          func() time.Time
	// FS is how the logs change their files (nil: OSFS); tests inject failures here.
	FS FS
	// OnLogOffline, when set, is called once for each log that goes offline
	// (see ErrLogOffline), with its partition dir name; it must not block.
	OnLogOffline func(name string, err error)
}

// Manager owns the partition logs of one data dir: it opens them all at start
// (recovering those the last run left unclean), creates and deletes them,
// keeps the recovery point and log start checkpoints, and runs retention,
// compaction and periodic flushing in the background. Its logs share one
// open-files budget.
type Manager struct {
	dir    string
	opts   ManagerOptions
	codecs *Codecs
	files  *FileBudget
	fs     FS // how the logs' files and directories change (opts.FS or OSFS)
	lock   *os.File
	clean  bool
	stop   context.Context // ends at Close: Run's workers stop
	cancel context.CancelFunc

	// compact compacts one log; tests replace it to make compaction slow.
	compact func(ctx context.Context, l *Log, committed int64) (CompactResult, error)

	ckptMu sync.Mutex // one checkpoint write at a time (flusher and retention both write them)

	mu         sync.Mutex
	logs       map[string]*Log
	closed     bool
	running    sync.WaitGroup           // Run calls; Add under mu while not closed
	creates    sync.WaitGroup           // GetOrCreate calls creating a log; Add under mu while not closed
	creating   map[string]chan struct{} // logs being created, closed when done; under mu
	compacting map[string]bool          // logs queued for or in compaction; under mu
}

// PartitionDir names a partition's directory: "<topic>-<partition>".
func PartitionDir(topic string, partition int32) string {
	return topic + partitionNameSplitter + strconv.Itoa(int(partition))
}

// ParsePartitionDir splits a partition directory name into topic and partition.
func ParsePartitionDir(name string) (string, int32, bool) {
	i := strings.LastIndex(name, partitionNameSplitter)
	if i <= 0 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || p < 0 {
		return "", 0, false
	}
	return name[:i], int32(p), true
}

// OpenManager locks dir (one process per data dir) and opens every partition log in it.
func OpenManager(dir string, opts ManagerOptions) (*Manager, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RetentionCheckInterval <= 0 {
		opts.RetentionCheckInterval = defaultCheckInterval
	}
	if opts.CleanerInterval <= 0 {
		opts.CleanerInterval = defaultCleanInterval
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = defaultFlushInterval
	}
	if opts.CleanerThreads <= 0 {
		opts.CleanerThreads = defaultCleanerThreads
	}
	if opts.MaxOpenFiles == 0 {
		opts.MaxOpenFiles = DefaultMaxOpenFiles()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open data dir lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close() // never locked: nothing to release
		return nil, fmt.Errorf("data dir %s is in use by another process: %w", dir, err)
	}
	m := &Manager{dir: dir, opts: opts, codecs: NewCodecs(0), files: NewFileBudget(opts.MaxOpenFiles), fs: orOS(opts.FS), lock: lock,
		logs: map[string]*Log{}, creating: map[string]chan struct{}{}, compacting: map[string]bool{}}
	m.stop, m.cancel = context.WithCancel(context.Background())
	m.compact = func(ctx context.Context, l *Log, committed int64) (CompactResult, error) {
		return l.Compact(ctx, committed)
	}
	if err := m.load(); err != nil {
		for _, l := range m.logs {
			_ = l.Close()
		}
		m.cancel()
		return nil, errors.Join(err, lock.Close())
	}
	return m, nil
}

func (m *Manager) load() error {
	markerPath := filepath.Join(m.dir, CleanShutdownFile)
	_, err := os.Stat(markerPath)
	m.clean = err == nil
	recovery, err := ReadOffsetCheckpoint(filepath.Join(m.dir, RecoveryPointFile))
	if err != nil {
		m.opts.Logger.Warn("recovery point checkpoint unreadable; recovering every log fully", "err", err)
		recovery, m.clean = map[string]int64{}, false
	}
	starts, err := ReadOffsetCheckpoint(filepath.Join(m.dir, LogStartOffsetFile))
	if err != nil {
		m.opts.Logger.Warn("log start checkpoint unreadable; log starts fall back to the first segment", "err", err)
		starts = map[string]int64{}
	}
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		return fmt.Errorf("list data dir: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		if strings.HasSuffix(name, deletingSuffix) { // a deletion the last run did not finish
			if err := m.fs.RemoveAll(filepath.Join(m.dir, name)); err != nil {
				return fmt.Errorf("finish deleting %s: %w", name, err)
			}
			continue
		}
		if _, _, ok := ParsePartitionDir(name); !ok {
			continue
		}
		o := m.logOptions(name)
		o.Clean, o.RecoveryPoint, o.LogStartOffset = m.clean, recovery[name], starts[name]
		l, err := Open(filepath.Join(m.dir, name), m.opts.Config, o)
		if err != nil {
			return fmt.Errorf("open log %s: %w", name, err)
		}
		m.logs[name] = l
		m.files.sweepPending(m.stop) // the sweeper runs from Run on: opening keeps to the budget itself

	}
	// From here on a crash is unclean again.
	if m.clean {
		if err := os.Remove(markerPath); err != nil {
			return fmt.Errorf("remove clean shutdown marker: %w", err)
		}
		if err := syncDir(m.dir); err != nil {
			return err
		}
	}
	return nil
}

// Dir is the data dir.
func (m *Manager) Dir() string { return m.dir }

// WasClean reports whether the previous run shut down cleanly.
func (m *Manager) WasClean() bool { return m.clean }

// Codecs are the codecs every log of the manager shares.
func (m *Manager) Codecs() *Codecs { return m.codecs }

// Files is the open-files budget the logs share.
func (m *Manager) Files() *FileBudget { return m.files }

// Get returns the log of a partition, if it exists.
func (m *Manager) Get(topic string, partition int32) (*Log, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.logs[PartitionDir(topic, partition)]
	return l, ok
}

// GetOrCreate returns a partition's log, creating it with cfg if needed (an
// existing log takes cfg as its new configuration). A log that cannot be
// created leaves nothing behind: its directory is removed again.
func (m *Manager) GetOrCreate(topic string, partition int32, cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	name := PartitionDir(topic, partition)
	if _, _, ok := ParsePartitionDir(name); !ok || strings.ContainsAny(topic, `/\`) || topic == "." || topic == ".." {
		return nil, fmt.Errorf("invalid partition name %q", name)
	}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		if l, ok := m.logs[name]; ok {
			m.mu.Unlock()
			return l, l.SetConfig(cfg)
		}
		busy, ok := m.creating[name]
		if !ok {
			break // m.mu held
		}
		m.mu.Unlock()
		<-busy // another caller is creating it: take theirs
	}
	// Created outside the lock, so that creating many logs at once (a wide
	// topic) overlaps their fsyncs and does not stall Get.
	done := make(chan struct{})
	m.creating[name] = done
	m.creates.Add(1)
	m.mu.Unlock()
	defer m.creates.Done()
	l, err := m.create(name, cfg)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.creating, name)
	close(done)
	if err != nil {
		return nil, err
	}
	if m.closed { // Close did not see it: close it here
		if err := l.Close(); err != nil {
			m.opts.Logger.Warn("closing a log created while the manager closed failed", "log", name, "err", err)
		}
		return nil, ErrClosed
	}
	m.logs[name] = l
	return l, nil
}

// create opens a new log's directory; if that fails, the directory goes again.
func (m *Manager) create(name string, cfg Config) (*Log, error) {
	dir := filepath.Join(m.dir, name)
	_, statErr := os.Stat(dir)
	fresh := errors.Is(statErr, fs.ErrNotExist)
	l, err := Open(dir, cfg, m.logOptions(name))
	if err == nil {
		if err = m.fs.SyncDir(m.dir); err != nil {
			err = errors.Join(fmt.Errorf("fsync data dir: %w", err), l.Close())
		}
	}
	if err != nil {
		err = fmt.Errorf("create log %s: %w", name, err)
		if fresh { // leave no half-made log for the next start to find
			if rerr := m.fs.RemoveAll(dir); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove %s: %w", dir, rerr))
			}
		}
		return nil, err
	}
	return l, nil
}

// logOptions are how the manager opens the log named name.
func (m *Manager) logOptions(name string) Options {
	return Options{Codecs: m.codecs, Logger: m.opts.Logger, Now: m.opts.Now, FS: m.opts.FS, OnOffline: m.onOffline(name), Files: m.files}
}

// onOffline is the OnOffline hook of the log named name.
func (m *Manager) onOffline(name string) func(error) {
	if m.opts.OnLogOffline == nil {
		return nil
	}
	return func(err error) { m.opts.OnLogOffline(name, err) }
}

// Names lists the partition directory names of every open log, sorted.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.logs))
	for n := range m.logs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Delete closes a partition's log and removes its files. The directory is
// first renamed, so a crash midway leaves nothing that looks like a log.
func (m *Manager) Delete(topic string, partition int32) error {
	name := PartitionDir(topic, partition)
	m.mu.Lock()
	l, ok := m.logs[name]
	delete(m.logs, name)
	m.mu.Unlock()
	if !ok {
		return nil
	}
	if err := l.Close(); err != nil { // the files go anyway
		m.opts.Logger.Warn("closing a log before deleting it failed", "log", name, "err", err)
	}
	gone := filepath.Join(m.dir, fmt.Sprintf("%s.%d%s", name, m.opts.Now().UnixNano(), deletingSuffix))
	if err := m.fs.Rename(l.Dir(), gone); err != nil {
		return fmt.Errorf("delete log %s: %w", name, err)
	}
	if err := m.fs.SyncDir(m.dir); err != nil {
		return fmt.Errorf("delete log %s: fsync data dir: %w", name, err)
	}
	if err := m.fs.RemoveAll(gone); err != nil {
		return fmt.Errorf("delete log %s: %w", name, err)
	}
	return nil
}

func (m *Manager) snapshot() map[string]*Log {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*Log, len(m.logs))
	for n, l := range m.logs {
		out[n] = l
	}
	return out
}

func (m *Manager) committed(name string, l *Log) int64 {
	if m.opts.Committed != nil {
		return m.opts.Committed(name, l)
	}
	return l.DurableOffset()
}

// Checkpoint writes the recovery points (each log's durable offset) and log start offsets.
func (m *Manager) Checkpoint() error {
	m.ckptMu.Lock() // a later snapshot must not be overwritten by an earlier one
	defer m.ckptMu.Unlock()
	logs := m.snapshot()
	rp := make(map[string]int64, len(logs))
	ls := make(map[string]int64, len(logs))
	for n, l := range logs {
		rp[n] = l.DurableOffset()
		ls[n] = l.LogStartOffset()
	}
	if err := WriteOffsetCheckpoint(filepath.Join(m.dir, RecoveryPointFile), rp); err != nil {
		return err
	}
	return WriteOffsetCheckpoint(filepath.Join(m.dir, LogStartOffsetFile), ls)
}

// DeleteRecordsBefore moves a log's start offset and checkpoints it at once,
// so deleted records do not come back after a crash.
func (m *Manager) DeleteRecordsBefore(topic string, partition int32, offset int64) error {
	l, ok := m.Get(topic, partition)
	if !ok {
		return fmt.Errorf("no log for %s", PartitionDir(topic, partition))
	}
	if err := l.DeleteRecordsBefore(offset); err != nil {
		return err
	}
	return m.Checkpoint()
}

// Run does the background work until ctx ends or the manager closes, each
// kind on its own goroutine so that none waits for another (a long
// compaction delays no flush and no retention): flushing plus checkpoints,
// retention, compaction on up to CleanerThreads workers, one log per
// worker, and the open-files budget's sweeper. It returns once they all
// stopped.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.running.Add(1)
	m.mu.Unlock()
	defer m.running.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.stop, cancel)()

	var wg sync.WaitGroup
	every := func(interval time.Duration, fn func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					fn(ctx)
				}
			}
		}()
	}
	jobs := make(chan string)
	for range m.opts.CleanerThreads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.compactor(ctx, jobs)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.files.Run(ctx)
	}()
	every(m.opts.FlushInterval, m.FlushAll)
	every(m.opts.RetentionCheckInterval, func(context.Context) { m.RunRetention() })
	every(m.opts.CleanerInterval, func(ctx context.Context) { m.queueCompactions(ctx, jobs) })
	wg.Wait()
}

// queueCompactions hands every log that needs compaction and is not queued
// or being compacted already to the compactors; it waits while they are all
// busy. A log in compaction is passed over before anything else is asked of
// it, so that a long pass holds up no other log.
func (m *Manager) queueCompactions(ctx context.Context, jobs chan<- string) {
	for name, l := range m.snapshot() {
		if m.isCompacting(name) || !l.NeedsCompaction(m.committed(name, l)) {
			continue
		}
		m.mu.Lock()
		busy := m.compacting[name] // another Run queued it meanwhile
		m.compacting[name] = true
		m.mu.Unlock()
		if busy {
			continue
		}
		select {
		case jobs <- name:
		case <-ctx.Done():
			m.doneCompacting(name)
			return
		}
	}
}

func (m *Manager) isCompacting(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.compacting[name]
}

func (m *Manager) doneCompacting(name string) {
	m.mu.Lock()
	delete(m.compacting, name)
	m.mu.Unlock()
}

// compactor compacts the logs it is handed until ctx ends.
func (m *Manager) compactor(ctx context.Context, jobs <-chan string) {
	for {
		select {
		case <-ctx.Done():
			return
		case name := <-jobs:
			m.mu.Lock()
			l, ok := m.logs[name]
			m.mu.Unlock()
			if ok {
				m.compactLog(ctx, name, l)
			}
			m.doneCompacting(name)
		}
	}
}

// compactLog compacts one log if it needs it, logging a failure.
func (m *Manager) compactLog(ctx context.Context, name string, l *Log) {
	committed := m.committed(name, l)
	if !l.NeedsCompaction(committed) {
		return
	}
	if _, err := m.compact(ctx, l, committed); err != nil && !quiet(err) && ctx.Err() == nil {
		m.opts.Logger.Error("compaction failed", "log", name, "err", err)
	}
}

// RunRetention applies retention to every log once.
func (m *Manager) RunRetention() {
	for name, l := range m.snapshot() {
		if _, err := l.ApplyRetention(m.committed(name, l)); err != nil && !quiet(err) {
			m.opts.Logger.Error("retention failed", "log", name, "err", err)
		}
	}
	if err := m.Checkpoint(); err != nil {
		m.opts.Logger.Error("checkpoint failed", "err", err)
	}
}

// quiet tells the errors background work does not log: a closed log, and an
// offline one (it logged why when it went offline).
func quiet(err error) bool { return errors.Is(err, ErrClosed) || errors.Is(err, ErrLogOffline) }

// FlushAll fsyncs every log (what fsync never left to the OS) and checkpoints.
func (m *Manager) FlushAll(ctx context.Context) {
	for name, l := range m.snapshot() {
		if err := l.Sync(ctx); err != nil && !quiet(err) && ctx.Err() == nil {
			m.opts.Logger.Error("flush failed", "log", name, "err", err)
		}
	}
	if err := m.Checkpoint(); err != nil {
		m.opts.Logger.Error("checkpoint failed", "err", err)
	}
}

// Close stops Run's workers, flushes and closes every log, writes the
// checkpoints and then the clean shutdown marker, and releases the data dir.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel() // background work stops before the logs close
	m.running.Wait()
	m.creates.Wait() // a log created meanwhile is closed by its creator
	m.mu.Lock()
	logs := m.logs
	m.mu.Unlock()
	var errs []error
	rp := make(map[string]int64, len(logs))
	ls := make(map[string]int64, len(logs))
	for n, l := range logs {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close log %s: %w", n, err))
		}
		rp[n], ls[n] = l.DurableOffset(), l.LogStartOffset()
	}
	if len(errs) == 0 {
		errs = append(errs,
			WriteOffsetCheckpoint(filepath.Join(m.dir, RecoveryPointFile), rp),
			WriteOffsetCheckpoint(filepath.Join(m.dir, LogStartOffsetFile), ls))
	}
	if err := errors.Join(errs...); err != nil {
		return errors.Join(err, m.lock.Close()) // no marker: the next start recovers
	}
	return errors.Join(WriteFileAtomic(filepath.Join(m.dir, CleanShutdownFile), nil), m.lock.Close())
}
