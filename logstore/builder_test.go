package logstore

import (
	"bytes"
	"errors"
	"testing"
)

// A batch built record by record is byte for byte the batch EncodeBatch
// makes of the same records, and the builder's memory is reused.
func TestBatchBuilderMatchesEncodeBatch(t *testing.T) {
	codecs := NewCodecs(0)
	opts := BatchOptions{BaseOffset: 7, LeaderEpoch: 3, LogAppendTime: true}
	var b BatchBuilder
	if _, err := b.Finish(opts); !errors.Is(err, ErrEmptyBatch) {
		t.Fatalf("empty builder: %v", err)
	}
	for name, recs := range utRecordCases() {
		b.Reset()
		for i := range recs {
			b.Add(&recs[i])
		}
		got, err := b.Finish(opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := codecs.EncodeBatch(nil, recs, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want) || b.Len() != len(recs) || b.Size() != len(want) {
			t.Fatalf("%s: the builder's batch (%d records, %d bytes) differs from EncodeBatch's (%d bytes)", name, b.Len(), len(got), len(want))
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := b.Finish(BatchOptions{Compression: CompressionZstd}); err == nil {
		t.Fatal("the builder compressed")
	}
}
