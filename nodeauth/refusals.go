package nodeauth

import (
	"log/slog"
	"sync"
	"time"
)

// RefusalLog logs refused peers at most once per interval, with the number
// refused since the last line: a misconfigured node is seen at once, and a
// flood of bad connections does not flood the log.
type RefusalLog struct {
	logger   *slog.Logger
	msg      string
	interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// NewRefusalLog logs msg at Warn for refusals, at most once per interval.
func NewRefusalLog(logger *slog.Logger, msg string, interval time.Duration) *RefusalLog {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &RefusalLog{logger: logger, msg: msg, interval: interval}
}

// Refused records one refusal of remote, for reason.
func (l *RefusalLog) Refused(remote, reason string) {
	now := time.Now()
	l.mu.Lock()
	if !l.last.IsZero() && now.Sub(l.last) < l.interval {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	l.logger.Warn(l.msg, "remote", remote, "reason", reason, "refused_since_last_log", suppressed)
}
