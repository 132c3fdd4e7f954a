package logstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression is the codec of a record batch, the low three bits of its attributes.
type Compression int8

// The codecs of Kafka's record batch v2.
const (
	CompressionNone   Compression = 0
	CompressionGzip   Compression = 1
	CompressionSnappy Compression = 2
	CompressionLZ4    Compression = 3
	CompressionZstd   Compression = 4
)

// String returns the codec's name as Kafka's compression.type spells it.
func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionSnappy:
		return "snappy"
	case CompressionLZ4:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("unknown(%d)", int8(c))
}

// ParseCompression parses a compression.type name.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "none", "uncompressed", "":
		return CompressionNone, nil
	case "gzip":
		return CompressionGzip, nil
	case "snappy":
		return CompressionSnappy, nil
	case "lz4":
		return CompressionLZ4, nil
	case "zstd":
		return CompressionZstd, nil
	}
	return 0, fmt.Errorf("unknown compression %q (want none, gzip, snappy, lz4 or zstd)", s)
}

// DefaultMaxDecompressedBytes bounds what one batch may inflate to, so a hostile
// or corrupt batch cannot exhaust memory.
const DefaultMaxDecompressedBytes = 128 << 20

// ErrDecompressedTooLarge is returned when a batch inflates beyond the codec limit.
var ErrDecompressedTooLarge = errors.New("decompressed batch exceeds the size limit")

// Codecs compresses and decompresses batch payloads. It holds the reusable
// encoder and decoder state; one value is safe for concurrent use.
type Codecs struct {
	maxDecoded int

	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
	zstdErr  error

	gzipWriters sync.Pool // *gzip.Writer
	lz4Writers  sync.Pool // *lz4.Writer
	lz4Readers  sync.Pool // *lz4.Reader
	bodies      sync.Pool // *[]byte: uncompressed record bodies EncodeBatch builds
}

// maxPooledBody is the largest body buffer kept for reuse.
const maxPooledBody = 4 << 20

// bodyBuffer returns an empty buffer of at least n bytes' capacity.
func (c *Codecs) bodyBuffer(n int) []byte {
	if p, _ := c.bodies.Get().(*[]byte); p != nil && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

// putBodyBuffer keeps b for a later bodyBuffer; the caller no longer uses it.
func (c *Codecs) putBodyBuffer(b []byte) {
	if cap(b) <= maxPooledBody {
		c.bodies.Put(&b)
	}
}

// NewCodecs returns codecs that refuse to inflate a batch beyond maxDecoded
// bytes (DefaultMaxDecompressedBytes when <= 0).
func NewCodecs(maxDecoded int) *Codecs {
	if maxDecoded <= 0 {
		maxDecoded = DefaultMaxDecompressedBytes
	}
	return &Codecs{maxDecoded: maxDecoded}
}

func (c *Codecs) initZstd() error {
	c.zstdOnce.Do(func() {
		c.zstdEnc, c.zstdErr = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		if c.zstdErr != nil {
			return
		}
		c.zstdDec, c.zstdErr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
			// zstd needs at least a 1 KiB window (and memory) even for tiny frames;
			// Decompress enforces a smaller limit on the output itself.
			zstd.WithDecoderMaxMemory(uint64(max(c.maxDecoded, zstd.MinWindowSize))),
			zstd.WithDecoderMaxWindow(uint64(max(c.maxDecoded, zstd.MinWindowSize))))
	})
	return c.zstdErr
}

// Compress appends src compressed with codec to dst.
func (c *Codecs) Compress(dst, src []byte, codec Compression) ([]byte, error) {
	switch codec {
	case CompressionNone:
		return append(dst, src...), nil
	case CompressionGzip:
		buf := bytes.NewBuffer(dst)
		w, _ := c.gzipWriters.Get().(*gzip.Writer)
		if w == nil {
			w = gzip.NewWriter(buf)
		} else {
			w.Reset(buf)
		}
		defer c.gzipWriters.Put(w)
		if _, err := w.Write(src); err != nil {
			return dst, fmt.Errorf("gzip: %w", err)
		}
		if err := w.Close(); err != nil {
			return dst, fmt.Errorf("gzip: %w", err)
		}
		return buf.Bytes(), nil
	case CompressionSnappy:
		// Raw snappy blocks, as franz-go and librdkafka write them; Java reads them too.
		// Encoded straight into dst's spare room: no temporary block, no second copy.
		n := s2.MaxEncodedLen(len(src))
		if n < 0 {
			return dst, fmt.Errorf("snappy: %w", s2.ErrTooLarge)
		}
		dst = slices.Grow(dst, n)
		return dst[:len(dst)+len(s2.EncodeSnappy(dst[len(dst):len(dst)+n], src))], nil
	case CompressionLZ4:
		buf := bytes.NewBuffer(dst)
		w, _ := c.lz4Writers.Get().(*lz4.Writer)
		if w == nil {
			w = lz4.NewWriter(buf)
			// 64 KiB blocks, as Kafka's Java client writes: small batches need no 4 MiB buffers.
			if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
				return dst, fmt.Errorf("lz4: %w", err)
			}
		} else {
			w.Reset(buf)
		}
		defer c.lz4Writers.Put(w)
		if _, err := w.Write(src); err != nil {
			return dst, fmt.Errorf("lz4: %w", err)
		}
		if err := w.Close(); err != nil {
			return dst, fmt.Errorf("lz4: %w", err)
		}
		return buf.Bytes(), nil
	case CompressionZstd:
		if err := c.initZstd(); err != nil {
			return dst, fmt.Errorf("zstd: %w", err)
		}
		return c.zstdEnc.EncodeAll(src, dst), nil
	}
	return dst, fmt.Errorf("unsupported compression codec %d", codec)
}

// xerialHeader starts snappy data framed the way the Java client's xerial library writes it.
var xerialHeader = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// Decompress returns src inflated with codec, at most the codec limit in size.
func (c *Codecs) Decompress(src []byte, codec Compression) ([]byte, error) {
	switch codec {
	case CompressionNone:
		return src, nil
	case CompressionGzip:
		r, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return c.readLimited(r, "gzip")
	case CompressionSnappy:
		if bytes.HasPrefix(src, xerialHeader) {
			return c.decodeXerial(src)
		}
		return c.decodeSnappyBlock(nil, src)
	case CompressionLZ4:
		r, _ := c.lz4Readers.Get().(*lz4.Reader)
		if r == nil {
			r = lz4.NewReader(nil)
		}
		r.Reset(bytes.NewReader(src))
		defer c.lz4Readers.Put(r)
		return c.readLimited(r, "lz4")
	case CompressionZstd:
		if err := c.initZstd(); err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		out, err := c.zstdDec.DecodeAll(src, nil)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return nil, ErrDecompressedTooLarge
		}
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if len(out) > c.maxDecoded {
			return nil, ErrDecompressedTooLarge
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported compression codec %d", codec)
}

func (c *Codecs) readLimited(r io.Reader, name string) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, int64(c.maxDecoded)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(out) > c.maxDecoded {
		return nil, ErrDecompressedTooLarge
	}
	return out, nil
}

func (c *Codecs) decodeSnappyBlock(dst, src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	if n > c.maxDecoded-len(dst) {
		return nil, ErrDecompressedTooLarge
	}
	dst = slices.Grow(dst, n) // decode in place after dst: no temporary block
	out, err := s2.Decode(dst[len(dst):len(dst)+n], src)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	return dst[:len(dst)+len(out)], nil
}

// decodeXerial reads the xerial framing: 8-byte magic, two 4-byte versions,
// then chunks of [4-byte big-endian length][raw snappy block].
func (c *Codecs) decodeXerial(src []byte) ([]byte, error) {
	if len(src) < 16 {
		return nil, errors.New("snappy: short xerial header")
	}
	src = src[16:]
	var out []byte
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, errors.New("snappy: truncated xerial chunk length")
		}
		n := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(n) > uint64(len(src)) {
			return nil, errors.New("snappy: xerial chunk exceeds input")
		}
		var err error
		if out, err = c.decodeSnappyBlock(out, src[:n]); err != nil {
			return nil, err
		}
		src = src[n:]
	}
	return out, nil
}
