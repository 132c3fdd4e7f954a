//go:build linux

package faults

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"weir/logstore"
)

// TestTornSegmentIsRecovered: tearing the newest segment cuts only its
// tail, and the log store's recovery then keeps the whole batches before
// the tear — what the torn-tail fault relies on.
func TestTornSegmentIsRecovered(t *testing.T) {
	dir := t.TempDir()
	cfg := logstore.DefaultConfig()
	cfg.SegmentBytes = 4096 // several segments: only the newest may be torn
	l, err := logstore.Open(dir, cfg, logstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 200 {
		batch, err := l.Codecs().EncodeBatch(nil, []logstore.Record{{Value: []byte(strings.Repeat("v", 40+i%7))}}, logstore.BatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.AppendAsLeader(ctx, batch, 0); err != nil {
			t.Fatal(err)
		}
	}
	leo := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(logs) < 2 {
		t.Fatalf("%d segments, want several", len(logs))
	}
	sizes := map[string]int64{}
	for _, p := range logs {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		sizes[p] = st.Size()
	}
	desc, err := tearNewestSegment(dir, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	newest := logs[len(logs)-1]
	for _, p := range logs {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		cut := sizes[p] - st.Size()
		switch {
		case p == newest && (cut < 1 || cut > 4096):
			t.Fatalf("newest segment cut by %d bytes (%s)", cut, desc)
		case p != newest && cut != 0:
			t.Fatalf("an older segment %s was cut by %d bytes (%s)", filepath.Base(p), cut, desc)
		}
	}
	l, err = logstore.Open(dir, cfg, logstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rep := l.Recovery()
	if rep.TruncatedAt < 0 || l.LogEndOffset() >= leo || l.LogEndOffset() < leo-100 {
		t.Fatalf("after the tear (%s): recovery %+v, log end %d of %d", desc, rep, l.LogEndOffset(), leo)
	}
}
