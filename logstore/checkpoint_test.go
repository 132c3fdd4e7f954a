package logstore

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// utDirNames lists the names in dir.
func utDirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestCheckpointWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "some-checkpoint")
	for _, data := range [][]byte{
		[]byte("first version, fairly long so that a shorter one must not leave a tail\n"),
		[]byte("short\n"),
		{},
		bytes.Repeat([]byte{0, 1, 2, 0xff}, 100_000),
	} {
		if err := WriteFileAtomic(path, data); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes, wrote %d", len(got), len(data))
		}
		// No temp file is left behind.
		if names := utDirNames(t, dir); !reflect.DeepEqual(names, []string{"some-checkpoint"}) {
			t.Fatalf("dir holds %v", names)
		}
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing-dir", "x"), []byte("x")); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
	// A directory in the way: the rename fails, the directory survives, no temp file stays.
	blocker := filepath.Join(dir, "blocker")
	if err := os.Mkdir(blocker, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blocker, "keep"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(blocker, []byte("x")); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	for _, n := range utDirNames(t, dir) {
		if strings.Contains(n, ".tmp-") {
			t.Fatalf("temp file %s left behind after a failed write", n)
		}
	}
}

func TestCheckpointOffsetRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "recovery-point-offset-checkpoint")
	cases := []map[string]int64{
		{},
		{"orders-0": 0},
		{"orders-0": 42, "orders-1": 7, "payments-12": math.MaxInt64, "x-3": -1, "a.b_c-9": 1 << 40},
	}
	for _, want := range cases {
		if err := WriteOffsetCheckpoint(path, want); err != nil {
			t.Fatal(err)
		}
		got, err := ReadOffsetCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("read %v, wrote %v", got, want)
		}
	}
	// The format is Kafka's: version 0, a count, then sorted "name offset" lines.
	if err := WriteOffsetCheckpoint(path, map[string]int64{"b-1": 5, "a-0": 10}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != "0\n2\na-0 10\nb-1 5\n" {
		t.Fatalf("file holds %q", raw)
	}
	if names := utDirNames(t, dir); len(names) != 1 {
		t.Fatalf("dir holds %v", names)
	}
}

func TestCheckpointMissingFileIsEmpty(t *testing.T) {
	got, err := ReadOffsetCheckpoint(filepath.Join(t.TempDir(), "nope"))
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("missing file: %v, %v", got, err)
	}
	got["usable"] = 1 // the map is writable
}

func TestCheckpointDamagedFile(t *testing.T) {
	cases := map[string]string{
		"empty file":          "",
		"garbage":             "\x00\x01\x02 not a checkpoint",
		"wrong version":       "1\n1\na-0 5\n",
		"missing count":       "0\n",
		"bad count":           "0\nx\n",
		"negative count":      "0\n-1\n",
		"fewer entries":       "0\n3\na-0 1\nb-0 2\n",
		"more entries":        "0\n1\na-0 1\nb-0 2\n",
		"bad offset":          "0\n1\na-0 x\n",
		"offset overflows":    "0\n1\na-0 99999999999999999999\n",
		"three fields":        "0\n1\na-0 1 2\n",
		"one field":           "0\n1\na-0\n",
		"torn last line":      "0\n2\na-0 1\nb-",
		"blank entry line":    "0\n1\n\n",
		"huge count no lines": "0\n999999999999\n",
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cp")
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if got, err := ReadOffsetCheckpoint(path); err == nil {
				t.Fatalf("damaged checkpoint read as %v", got)
			}
		})
	}
	t.Run("a directory", func(t *testing.T) {
		if _, err := ReadOffsetCheckpoint(t.TempDir()); err == nil {
			t.Fatal("read a directory as a checkpoint")
		}
	})
}

// utEpochFile reads the leader epoch checkpoint through the package's own loader.
func utEpochFile(t *testing.T, dir string) ([]EpochEntry, bool) {
	t.Helper()
	c, ok := loadEpochCache(dir)
	return c.snapshot(), ok
}

func TestCheckpointLeaderEpochRebuiltFromLog(t *testing.T) {
	build := func(t *testing.T, dir string, cfg Config) (leo int64, epochs []EpochEntry) {
		l := utOpen(t, dir, cfg, Options{})
		for _, e := range []int32{1, 1, 4, 4, 4, 7, 9, 9} { // epochs 1@0, 4@6, 7@15, 9@18
			utAppend(t, l, 3, e)
		}
		want := []EpochEntry{{1, 0}, {4, 6}, {7, 15}, {9, 18}}
		if got := l.Epochs(); !reflect.DeepEqual(got, want) {
			t.Fatalf("epochs %v, want %v", got, want)
		}
		if got, ok := utEpochFile(t, dir); !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("checkpoint file holds %v (ok %v)", got, ok)
		}
		leo = l.LogEndOffset()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return leo, want
	}
	valid := "0\n4\n1 0\n4 6\n7 15\n9 18\n"
	damage := map[string]func(path string) error{
		"missing":            os.Remove,
		"empty":              func(p string) error { return os.WriteFile(p, nil, 0o644) },
		"garbage":            func(p string) error { return os.WriteFile(p, []byte("\xff\xfe garbage"), 0o644) },
		"torn":               func(p string) error { return os.WriteFile(p, []byte(valid[:len(valid)-6]), 0o644) },
		"wrong version":      func(p string) error { return os.WriteFile(p, []byte("7"+valid[1:]), 0o644) },
		"epochs go back":     func(p string) error { return os.WriteFile(p, []byte("0\n2\n4 0\n1 6\n"), 0o644) },
		"offsets go back":    func(p string) error { return os.WriteFile(p, []byte("0\n2\n1 6\n4 0\n"), 0o644) },
		"negative offset":    func(p string) error { return os.WriteFile(p, []byte("0\n1\n1 -3\n"), 0o644) },
		"negative epoch":     func(p string) error { return os.WriteFile(p, []byte("0\n1\n-1 0\n"), 0o644) },
		"epoch beyond int32": func(p string) error { return os.WriteFile(p, []byte("0\n1\n4294967297 0\n"), 0o644) },
		"not a number":       func(p string) error { return os.WriteFile(p, []byte("0\n1\none 0\n"), 0o644) },
	}
	for name, dmg := range damage {
		for _, clean := range []bool{true, false} {
			t.Run(name+map[bool]string{true: "/clean", false: "/crash"}[clean], func(t *testing.T) {
				cfg := utSmallSegments(t)
				dir := t.TempDir()
				leo, want := build(t, dir, cfg)
				if err := dmg(filepath.Join(dir, EpochFileName)); err != nil {
					t.Fatal(err)
				}
				l := utOpen(t, dir, cfg, Options{Clean: clean})
				if got := l.Epochs(); !reflect.DeepEqual(got, want) {
					t.Fatalf("rebuilt epochs %v, want %v", got, want)
				}
				r := l.Recovery()
				if !r.EpochCacheRebult || r.Reason != "" || l.LogEndOffset() != leo {
					t.Fatalf("report %+v, leo %d (want %d)", r, l.LogEndOffset(), leo)
				}
				// The rebuilt checkpoint is on disk and well formed.
				if got, ok := utEpochFile(t, dir); !ok || !reflect.DeepEqual(got, want) {
					t.Fatalf("checkpoint file holds %v (ok %v) after the rebuild", got, ok)
				}
				if e, o := l.EndOffsetForEpoch(4); e != 4 || o != 15 {
					t.Fatalf("EndOffsetForEpoch(4) = %d, %d", e, o)
				}
				// And the log goes on: a new epoch is recorded after the rebuilt ones.
				utAppend(t, l, 1, 11)
				if got := l.Epochs(); !reflect.DeepEqual(got, append(want, EpochEntry{11, leo})) {
					t.Fatalf("epochs after appending %v", got)
				}
			})
		}
	}

	t.Run("with a moved log start", func(t *testing.T) {
		cfg := utSmallSegments(t)
		dir := t.TempDir()
		l := utOpen(t, dir, cfg, Options{})
		for _, e := range []int32{1, 1, 4, 4, 4, 7, 9, 9} {
			utAppend(t, l, 3, e)
		}
		if err := l.DeleteRecordsBefore(7); err != nil {
			t.Fatal(err)
		}
		want := []EpochEntry{{4, 7}, {7, 15}, {9, 18}}
		if got := l.Epochs(); !reflect.DeepEqual(got, want) {
			t.Fatalf("epochs %v, want %v", got, want)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, EpochFileName), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
		l = utOpen(t, dir, cfg, Options{LogStartOffset: 7})
		if got := l.Epochs(); !reflect.DeepEqual(got, want) || !l.Recovery().EpochCacheRebult {
			t.Fatalf("rebuilt epochs %v (report %+v), want %v", got, l.Recovery(), want)
		}
	})

	t.Run("an intact checkpoint is not rebuilt", func(t *testing.T) {
		cfg := utSmallSegments(t)
		dir := t.TempDir()
		_, want := build(t, dir, cfg)
		l := utOpen(t, dir, cfg, Options{})
		if l.Recovery().EpochCacheRebult || !reflect.DeepEqual(l.Epochs(), want) {
			t.Fatalf("report %+v epochs %v", l.Recovery(), l.Epochs())
		}
	})
}
