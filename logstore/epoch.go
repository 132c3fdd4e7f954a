package logstore

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
)

// EpochFileName is the per-partition leader epoch checkpoint.
const EpochFileName = "leader-epoch-checkpoint"

// EpochEntry says that leader epoch Epoch wrote its first batch at StartOffset.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// UndefinedEpoch and UndefinedOffset answer EndOffsetForEpoch when the log knows nothing useful.
const (
	UndefinedEpoch  int32 = -1
	UndefinedOffset int64 = -1
)

// epochCache is the leader epoch -> start offset map (Kafka's LeaderEpochFileCache).
// Writers hold the log's lock as well; the RWMutex lets fetches read it concurrently.
type epochCache struct {
	mu      sync.RWMutex
	fs      FS // nil: OSFS
	path    string
	entries []EpochEntry // strictly increasing in both fields
}

// loadEpochCache reads the checkpoint; ok is false when it is missing or damaged
// (the caller rebuilds it from the log).
func loadEpochCache(dir string) (*epochCache, bool) {
	c := &epochCache{path: filepath.Join(dir, EpochFileName)}
	data, err := os.ReadFile(c.path)
	if err != nil {
		return c, false
	}
	lines, err := decodeCheckpoint(data)
	if err != nil {
		return c, false
	}
	for _, l := range lines {
		e, err1 := strconv.ParseInt(l[0], 10, 32)
		o, err2 := strconv.ParseInt(l[1], 10, 64)
		if err1 != nil || err2 != nil || e < 0 || o < 0 {
			return &epochCache{path: c.path}, false
		}
		if n := len(c.entries); n > 0 && (int32(e) <= c.entries[n-1].Epoch || o <= c.entries[n-1].StartOffset) {
			return &epochCache{path: c.path}, false
		}
		c.entries = append(c.entries, EpochEntry{Epoch: int32(e), StartOffset: o})
	}
	return c, true
}

func (c *epochCache) flush() error {
	lines := make([][2]string, len(c.entries))
	for i, e := range c.entries {
		lines[i] = [2]string{strconv.Itoa(int(e.Epoch)), strconv.FormatInt(e.StartOffset, 10)}
	}
	if err := writeFileAtomic(orOS(c.fs), c.path, encodeCheckpoint(lines)); err != nil {
		return fmt.Errorf("leader epoch checkpoint: %w", err)
	}
	return nil
}

func (c *epochCache) snapshot() []EpochEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]EpochEntry(nil), c.entries...)
}

func (c *epochCache) latest() (EpochEntry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.entries) == 0 {
		return EpochEntry{Epoch: UndefinedEpoch, StartOffset: UndefinedOffset}, false
	}
	return c.entries[len(c.entries)-1], true
}

// epochAt is the epoch that wrote offset, per the cache (UndefinedEpoch if none).
func (c *epochCache) epochAt(offset int64) int32 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].StartOffset > offset }) - 1
	if i < 0 {
		return UndefinedEpoch
	}
	return c.entries[i].Epoch
}

// assign records that epoch starts at offset, if it is newer than the latest.
// changed tells the caller to flush. An older epoch is an error.
func (c *epochCache) assign(epoch int32, offset int64) (changed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.entries); n > 0 {
		last := c.entries[n-1]
		if epoch == last.Epoch {
			return false, nil
		}
		if epoch < last.Epoch {
			return false, fmt.Errorf("leader epoch %d is older than the log's latest epoch %d", epoch, last.Epoch)
		}
		if offset < last.StartOffset {
			return false, fmt.Errorf("epoch %d would start at %d, before epoch %d at %d", epoch, offset, last.Epoch, last.StartOffset)
		}
		if offset == last.StartOffset { // the previous epoch wrote nothing
			c.entries[n-1] = EpochEntry{Epoch: epoch, StartOffset: offset}
			return true, nil
		}
	}
	c.entries = append(c.entries, EpochEntry{Epoch: epoch, StartOffset: offset})
	return true, nil
}

// endOffsetFor answers a follower's OffsetForLeaderEpoch: the largest epoch <=
// epoch the log knows, and the offset where it ended (the next epoch's start,
// or leo for the latest epoch).
func (c *epochCache) endOffsetFor(epoch int32, leo int64) (int32, int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := len(c.entries)
	if epoch == UndefinedEpoch || n == 0 {
		return UndefinedEpoch, UndefinedOffset
	}
	if epoch == c.entries[n-1].Epoch {
		return epoch, leo
	}
	higher := sort.Search(n, func(i int) bool { return c.entries[i].Epoch > epoch })
	if higher == n {
		return UndefinedEpoch, UndefinedOffset // newer than anything we know
	}
	if higher == 0 {
		return epoch, c.entries[0].StartOffset // older than anything we know
	}
	return c.entries[higher-1].Epoch, c.entries[higher].StartOffset
}

// truncateFromEnd drops epochs that start at or after offset.
func (c *epochCache) truncateFromEnd(offset int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].StartOffset >= offset })
	if i == len(c.entries) {
		return false
	}
	c.entries = c.entries[:i]
	return true
}

// truncateFromStart drops epochs wholly before offset; the one holding offset now starts there.
func (c *epochCache) truncateFromStart(offset int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].StartOffset > offset }) - 1
	if i < 0 || (i == 0 && c.entries[0].StartOffset == offset) {
		return false
	}
	kept := append([]EpochEntry(nil), c.entries[i:]...)
	kept[0].StartOffset = offset
	c.entries = kept
	return true
}

func (c *epochCache) reset(entries []EpochEntry) {
	c.mu.Lock()
	c.entries = entries
	c.mu.Unlock()
}
