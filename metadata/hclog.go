package metadata

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level hclog's Trace maps to (below Debug).
const LevelTrace = slog.LevelDebug - 4

// NewHCLogger returns an hclog.Logger that writes through logger, so
// hashicorp/raft logs with the rest of the process: levels are mapped
// (Trace -> LevelTrace, Debug, Info, Warn, Error), key/value pairs become
// slog attributes, Named adds to the "logger" attribute, and With adds
// attributes. Filtering is the slog handler's; SetLevel can raise the bar
// further.
func NewHCLogger(logger *slog.Logger, name string) hclog.Logger {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &hcLogger{base: logger, name: name, level: new(atomic.Int32)}
}

type hcLogger struct {
	base    *slog.Logger // without the name and implied args
	name    string
	implied []any
	// level is the SetLevel floor shared by a logger and the loggers derived
	// from it, as in hclog; hclog.NoLevel defers to the slog handler.
	level *atomic.Int32
}

var _ hclog.Logger = (*hcLogger)(nil)

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default: // Info, NoLevel, DefaultLevel
		return slog.LevelInfo
	}
}

func (l *hcLogger) enabled(level hclog.Level) bool {
	floor := hclog.Level(l.level.Load())
	if floor == hclog.Off || (floor != hclog.NoLevel && level < floor) {
		return false
	}
	return l.base.Enabled(context.Background(), slogLevel(level))
}

// emit logs with the caller's pc so that slog's AddSource points at raft,
// not at this adapter. skip counts frames above emit.
func (l *hcLogger) emit(skip int, level hclog.Level, msg string, args []any) {
	if level == hclog.Off || !l.enabled(level) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(skip+2, pcs[:])
	r := slog.NewRecord(time.Now(), slogLevel(level), msg, pcs[0])
	if l.name != "" {
		r.AddAttrs(slog.String("logger", l.name))
	}
	r.Add(normalizeArgs(l.implied)...)
	r.Add(normalizeArgs(args)...)
	_ = l.base.Handler().Handle(context.Background(), r)
}

// normalizeArgs turns hclog's alternating key/values into slog's: keys are
// strings (non-strings are formatted), and a dangling value gets hclog's
// EXTRA_VALUE_AT_END key.
func normalizeArgs(args []any) []any {
	if len(args) == 0 {
		return nil
	}
	out := make([]any, 0, len(args)+1)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			out = append(out, slog.Any("EXTRA_VALUE_AT_END", args[i]))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		out = append(out, slog.Any(key, hclogValue(args[i+1])))
	}
	return out
}

// hclogValue unwraps hclog's formatting helpers into plain values.
func hclogValue(v any) any {
	switch x := v.(type) {
	case hclog.Format:
		if len(x) == 0 {
			return ""
		}
		format, _ := x[0].(string)
		return fmt.Sprintf(format, x[1:]...)
	case hclog.Hex:
		return fmt.Sprintf("0x%x", int(x))
	case hclog.Octal:
		return fmt.Sprintf("0%o", int(x))
	case hclog.Binary:
		return fmt.Sprintf("0b%b", int(x))
	case hclog.Quote:
		return fmt.Sprintf("%q", string(x))
	}
	return v
}

func (l *hcLogger) Log(level hclog.Level, msg string, args ...any) {
	l.emit(1, level, msg, args)
}
func (l *hcLogger) Trace(msg string, args ...any) { l.emit(1, hclog.Trace, msg, args) }
func (l *hcLogger) Debug(msg string, args ...any) { l.emit(1, hclog.Debug, msg, args) }
func (l *hcLogger) Info(msg string, args ...any)  { l.emit(1, hclog.Info, msg, args) }
func (l *hcLogger) Warn(msg string, args ...any)  { l.emit(1, hclog.Warn, msg, args) }
func (l *hcLogger) Error(msg string, args ...any) { l.emit(1, hclog.Error, msg, args) }

func (l *hcLogger) IsTrace() bool { return l.enabled(hclog.Trace) }
func (l *hcLogger) IsDebug() bool { return l.enabled(hclog.Debug) }
func (l *hcLogger) IsInfo() bool  { return l.enabled(hclog.Info) }
func (l *hcLogger) IsWarn() bool  { return l.enabled(hclog.Warn) }
func (l *hcLogger) IsError() bool { return l.enabled(hclog.Error) }

func (l *hcLogger) ImpliedArgs() []any { return l.implied }

func (l *hcLogger) With(args ...any) hclog.Logger {
	c := *l
	c.implied = append(append([]any(nil), l.implied...), args...)
	return &c
}

func (l *hcLogger) Name() string { return l.name }

func (l *hcLogger) Named(name string) hclog.Logger {
	c := *l
	if l.name != "" {
		c.name = l.name + "." + name
	} else {
		c.name = name
	}
	return &c
}

func (l *hcLogger) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	return &c
}

func (l *hcLogger) SetLevel(level hclog.Level) { l.level.Store(int32(level)) }

func (l *hcLogger) GetLevel() hclog.Level {
	if floor := hclog.Level(l.level.Load()); floor != hclog.NoLevel {
		return floor
	}
	for _, lvl := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if l.base.Enabled(context.Background(), slogLevel(lvl)) {
			return lvl
		}
	}
	return hclog.Off
}

func (l *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *hcLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	w := &stdWriter{l: l}
	if opts != nil {
		w.infer = opts.InferLevels || opts.InferLevelsWithTimestamp
		w.force = opts.ForceLevel
	}
	return w
}

// stdWriter adapts the standard library logger (one Write per line) to the
// hclog logger, inferring levels from "[DEBUG]"-style prefixes if asked.
type stdWriter struct {
	l     *hcLogger
	infer bool
	force hclog.Level
}

func (w *stdWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(bytes.TrimRight(p, "\n")), "\n") {
		level, msg := hclog.Info, line
		if w.infer {
			level, msg = inferLevel(line)
		}
		if w.force != hclog.NoLevel {
			level = w.force
		}
		w.l.emit(1, level, msg, nil)
	}
	return len(p), nil
}

func inferLevel(line string) (hclog.Level, string) {
	prefixes := []struct {
		tag   string
		level hclog.Level
	}{
		{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
		{"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error},
	}
	for _, p := range prefixes {
		if i := strings.Index(line, p.tag); i >= 0 {
			return p.level, strings.TrimSpace(line[i+len(p.tag):])
		}
	}
	return hclog.Info, line
}
