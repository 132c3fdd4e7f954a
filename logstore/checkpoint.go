package logstore

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// WriteFileAtomic replaces path with data so that a crash leaves either the old
// or the new file whole: write a temp file, fsync it, rename it over path,
// fsync the directory.
func WriteFileAtomic(path string, data []byte) error { return writeFileAtomic(OSFS{}, path, data) }

// syncDir fsyncs a directory so that file creations, renames and removals in it are durable.
func syncDir(dir string) error {
	if err := (OSFS{}).SyncDir(dir); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// checkpointVersion heads every checkpoint file, as in Kafka's checkpoint files.
const checkpointVersion = 0

// encodeCheckpoint renders "<version>\n<count>\n" then one "<a> <b>" line per entry.
func encodeCheckpoint(lines [][2]string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n%d\n", checkpointVersion, len(lines))
	for _, l := range lines {
		fmt.Fprintf(&b, "%s %s\n", l[0], l[1])
	}
	return b.Bytes()
}

// decodeCheckpoint parses encodeCheckpoint's format, refusing anything else.
func decodeCheckpoint(data []byte) ([][2]string, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		return sc.Text(), true
	}
	v, ok := line()
	if !ok || v != strconv.Itoa(checkpointVersion) {
		return nil, fmt.Errorf("unknown checkpoint version %q", v)
	}
	c, ok := line()
	n, err := strconv.Atoi(c)
	if !ok || err != nil || n < 0 {
		return nil, fmt.Errorf("bad checkpoint entry count %q", c)
	}
	out := make([][2]string, 0, min(n, 1<<16))
	for i := 0; i < n; i++ {
		l, ok := line()
		if !ok {
			return nil, fmt.Errorf("checkpoint has %d of %d entries", i, n)
		}
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("bad checkpoint line %q", l)
		}
		out = append(out, [2]string{f[0], f[1]})
	}
	if _, extra := line(); extra {
		return nil, fmt.Errorf("checkpoint has more than %d entries", n)
	}
	return out, nil
}

// WriteOffsetCheckpoint atomically writes name -> offset pairs (a data dir's
// recovery points, log start offsets or high watermarks, by partition dir name).
func WriteOffsetCheckpoint(path string, offsets map[string]int64) error {
	names := make([]string, 0, len(offsets))
	for n := range offsets {
		names = append(names, n)
	}
	sort.Strings(names)
	lines := make([][2]string, len(names))
	for i, n := range names {
		lines[i] = [2]string{n, strconv.FormatInt(offsets[n], 10)}
	}
	return WriteFileAtomic(path, encodeCheckpoint(lines))
}

// ReadOffsetCheckpoint reads WriteOffsetCheckpoint's file; a missing file is empty.
func ReadOffsetCheckpoint(path string) (map[string]int64, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return map[string]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	lines, err := decodeCheckpoint(data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	out := make(map[string]int64, len(lines))
	for _, l := range lines {
		o, err := strconv.ParseInt(l[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: bad offset %q", path, l[1])
		}
		out[l[0]] = o
	}
	return out, nil
}
