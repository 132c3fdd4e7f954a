package client

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Latency histogram, HDR-like: values in nanoseconds fall in log-linear
// buckets, exact below 256 ns and then 128 buckets per power of two, so a
// bucket's midpoint is within 0.4% of every value in it. The range ends at
// 2^40 ns (about 18 minutes); larger values land in the last bucket. Counters
// are atomic, so many goroutines record into one histogram without locks
// and in fixed memory (35 KiB).
const (
	histSubBits  = 8
	histSub      = 1 << histSubBits // exact values below this
	histHalf     = histSub / 2      // buckets per power of two above it
	histMaxBits  = 40
	histMaxValue = 1<<histMaxBits - 1
	histBuckets  = (histMaxBits-histSubBits)*histHalf + histSub
)

type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	min    atomic.Uint64 // stored as ^v so that the zero value means "none"
	max    atomic.Uint64
}

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits // >= 1: the bits dropped
	return e*histHalf + int(v>>e)
}

// histBounds returns the smallest and largest value of bucket i.
func histBounds(i int) (lo, hi uint64) {
	if i < histSub {
		return uint64(i), uint64(i)
	}
	e := i/histHalf - 1
	m := uint64(i - e*histHalf) // in [histHalf, histSub)
	return m << e, (m+1)<<e - 1
}

func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	v = min(v, histMaxValue)
	h.counts[histIndex(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for cur := h.max.Load(); v > cur && !h.max.CompareAndSwap(cur, v); cur = h.max.Load() {
	}
	for cur := h.min.Load(); ^v > cur && !h.min.CompareAndSwap(cur, ^v); cur = h.min.Load() {
	}
}

func (h *histogram) count() uint64 { return h.n.Load() }

func (h *histogram) mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

func (h *histogram) maxValue() time.Duration { return time.Duration(h.max.Load()) }

// quantile returns the value at quantile q in [0, 1] by nearest rank: the
// smallest recorded value with at least ceil(q*n) values at or below it:
// exact for the smallest and largest, else its bucket's midpoint kept within
// the recorded range.
// Call it once recording is over.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	switch {
	case rank <= 1:
		return time.Duration(^h.min.Load())
	case rank >= n:
		return time.Duration(h.max.Load())
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := histBounds(i)
			v := lo + (hi-lo)/2
			v = max(v, ^h.min.Load())
			v = min(v, h.max.Load())
			return time.Duration(v)
		}
	}
	return time.Duration(h.max.Load())
}
