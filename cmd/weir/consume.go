package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"weir/client"
)

type consumeFlags struct {
	partition     int32
	fromBeginning bool
	offset        int64
	fromTime      string
	count         int
	follow        bool
	format        string
	encoding      string
}

func newConsumeCmd(a *app) *cobra.Command {
	f := &consumeFlags{}
	cmd := &cobra.Command{
		Use:   "consume TOPIC --partition P",
		Short: "Print the records of a partition",
		Long: `Print the records of one partition, by default one JSON object per line:
the API's record shape plus "topic" and "partition" (keys and values per
--encoding: valid JSON embedded, other UTF-8 as strings, else key_b64/value_b64).

Start: --from-beginning, --offset N, or --from-time (RFC 3339, or a negative
duration such as -5m meaning that long ago); default: the end (only new
records). Without --follow it stops at the end of the log or after -n
records; with --follow it waits for new records (until -n, or Ctrl-C).

--format prints each record with these directives (like kcat and rpk):
  %t topic   %p partition   %o offset   %k key   %v value
  %h headers (k=v,k=v)   %T timestamp (ms)   %% a percent sign
and the escapes \n \t \r \\. Keys and values are printed byte for byte;
a null key or value prints nothing.`,
		Example: `  # Everything in partition 0, then exit
  weir consume orders --partition 0 --from-beginning

  # The first 10 records from offset 100, values only
  weir consume orders --partition 0 --offset 100 -n 10 --format '%v\n'

  # What arrived in the last 5 minutes, then follow new records
  weir consume orders --partition 0 --from-time -5m --follow --format '%o %k=%v\n'

  # Pipe into jq
  weir consume orders --partition 0 --from-beginning | jq .value`,
		Args:              exactArgs("TOPIC"),
		ValidArgsFunction: topicCompletion(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConsume(cmd, a, args[0], f)
		},
	}
	fs := cmd.Flags()
	fs.Int32Var(&f.partition, "partition", 0, "the partition to read (required)")
	fs.BoolVar(&f.fromBeginning, "from-beginning", false, "start at the log start")
	fs.Int64Var(&f.offset, "offset", 0, "start at offset `N`")
	fs.StringVar(&f.fromTime, "from-time", "", "start at the first record at or after `TIME`: RFC 3339 (2026-01-02T15:04:05Z) or a negative duration (-5m)")
	fs.IntVarP(&f.count, "num", "n", 0, "exit after `N` records (0: no limit)")
	fs.BoolVarP(&f.follow, "follow", "f", false, "wait for new records at the end of the log (long-poll)")
	fs.StringVar(&f.format, "format", "", "print each record with this `format` (see above) instead of JSON")
	fs.StringVar(&f.encoding, "encoding", client.EncodingAuto, "keys and values in the JSON output: auto, text or base64")
	_ = cmd.RegisterFlagCompletionFunc("encoding", cobra.FixedCompletions([]string{"auto", "text", "base64"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runConsume(cmd *cobra.Command, a *app, topic string, f *consumeFlags) error {
	flags := cmd.Flags()
	if !flags.Changed("partition") {
		return usageError(fmt.Errorf("%s: --partition is required (see '%s --help')", cmd.CommandPath(), cmd.CommandPath()))
	}
	if f.partition < 0 {
		return usageError(fmt.Errorf("--partition must not be negative, got %d", f.partition))
	}
	starts := 0
	for _, name := range []string{"from-beginning", "offset", "from-time"} {
		if flags.Changed(name) {
			starts++
		}
	}
	if starts > 1 {
		return usageError(errors.New("give at most one of --from-beginning, --offset and --from-time"))
	}
	if f.offset < 0 {
		return usageError(fmt.Errorf("--offset must not be negative, got %d", f.offset))
	}
	if f.count < 0 {
		return usageError(fmt.Errorf("-n must not be negative, got %d", f.count))
	}
	switch f.encoding {
	case client.EncodingAuto, client.EncodingText, client.EncodingBase64:
	default:
		return usageError(fmt.Errorf("--encoding must be auto, text or base64, got %q", f.encoding))
	}
	var format []formatPart
	if flags.Changed("format") {
		var err error
		if format, err = parseFormat(f.format); err != nil {
			return usageError(fmt.Errorf("--format: %w", err))
		}
	}
	var fromMS *int64
	if flags.Changed("from-time") {
		ms, err := parseFromTime(f.fromTime, time.Now())
		if err != nil {
			return usageError(fmt.Errorf("--from-time: %w", err))
		}
		fromMS = &ms
	}
	c, err := a.newClient()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := client.OffsetLatest
	switch {
	case f.fromBeginning:
		start = client.OffsetEarliest
	case flags.Changed("offset"):
		start = client.OffsetAt(f.offset)
	case fromMS != nil:
		rctx, cancel := a.reqCtx(ctx)
		offs, err := c.TopicOffsets(rctx, topic, fromMS)
		cancel()
		if err != nil {
			return err
		}
		found := false
		for _, p := range offs.Partitions {
			if p.Partition == f.partition {
				found = true
				start = client.OffsetAt(p.HighWatermark)
				if p.Offset != nil {
					start = client.OffsetAt(*p.Offset)
				}
			}
		}
		if !found {
			return fmt.Errorf("topic %q has no partition %d", topic, f.partition)
		}
	}

	opts := client.ConsumeOptions{Offset: start, Encoding: f.encoding}
	if format != nil {
		opts.Encoding = client.EncodingBase64 // byte for byte
	}
	if f.follow {
		opts.WaitMS = 5000
		if t := a.global.timeout; t > 0 && t < 10*time.Second {
			opts.WaitMS = max(1, int(t.Milliseconds()/2))
		}
	}
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()
	printed := 0
	for {
		opts.Limit = 500
		if f.count > 0 {
			opts.Limit = min(opts.Limit, f.count-printed)
		}
		rctx, cancel := a.reqCtx(ctx)
		resp, err := c.Consume(rctx, topic, f.partition, opts)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return out.Flush() // interrupted: a clean stop
			}
			return err
		}
		for _, r := range resp.Records {
			p := resp.Partition
			r.Topic, r.Partition = resp.Topic, &p
			if err := writeRecord(out, r, format); err != nil {
				return err
			}
			printed++
			if f.count > 0 && printed >= f.count {
				return out.Flush()
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
		opts.Offset = client.OffsetAt(resp.NextOffset)
		if !f.follow && resp.NextOffset >= resp.HighWatermark {
			return nil
		}
	}
}

// parseFromTime takes RFC 3339 or a negative duration before now, to ms.
func parseFromTime(s string, now time.Time) (int64, error) {
	if strings.HasPrefix(s, "-") {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is neither RFC 3339 nor a negative duration like -5m", s)
		}
		return now.Add(d).UnixMilli(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither RFC 3339 (2026-01-02T15:04:05Z) nor a negative duration like -5m", s)
	}
	return t.UnixMilli(), nil
}

// formatPart is literal text or one %-directive of --format.
type formatPart struct {
	lit  string
	verb byte // 0 for literal text
}

func parseFormat(s string) ([]formatPart, error) {
	parts := []formatPart{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, formatPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if (ch != '%' && ch != '\\') || i+1 == len(s) {
			if ch == '%' {
				return nil, errors.New("a lone % at the end (write %% for a percent sign)")
			}
			lit.WriteByte(ch)
			continue
		}
		i++
		next := s[i]
		if ch == '\\' {
			switch next {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			case 'r':
				lit.WriteByte('\r')
			case '\\':
				lit.WriteByte('\\')
			default:
				lit.WriteByte('\\')
				lit.WriteByte(next)
			}
			continue
		}
		switch next {
		case '%':
			lit.WriteByte('%')
		case 't', 'p', 'o', 'k', 'v', 'h', 'T':
			flush()
			parts = append(parts, formatPart{verb: next})
		default:
			return nil, fmt.Errorf("unknown directive %%%c (want %%t %%p %%o %%k %%v %%h %%T or %%%%)", next)
		}
	}
	flush()
	return parts, nil
}

// writeRecord prints r as JSON (format nil) or per format. With a format, r
// was fetched with encoding=base64.
func writeRecord(w *bufio.Writer, r client.ConsumedRecord, format []formatPart) error {
	if format == nil {
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		w.Write(data)
		return w.WriteByte('\n')
	}
	for _, p := range format {
		switch p.verb {
		case 0:
			w.WriteString(p.lit)
		case 't':
			w.WriteString(r.Topic)
		case 'p':
			w.WriteString(strconv.Itoa(int(*r.Partition)))
		case 'o':
			w.WriteString(strconv.FormatInt(r.Offset, 10))
		case 'T':
			w.WriteString(strconv.FormatInt(r.Timestamp, 10))
		case 'k':
			if err := writeB64(w, r.KeyB64, r.Key); err != nil {
				return fmt.Errorf("record at offset %d: key: %w", r.Offset, err)
			}
		case 'v':
			if err := writeB64(w, r.ValueB64, r.Value); err != nil {
				return fmt.Errorf("record at offset %d: value: %w", r.Offset, err)
			}
		case 'h':
			for i, k := range sortedKeys(r.Headers) {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteString(k + "=" + r.Headers[k])
			}
		}
	}
	return nil
}

// writeB64 writes the bytes of a base64 field; a JSON string that came
// instead (a server that ignored the encoding) is written as its text.
func writeB64(w io.Writer, b64 *string, raw json.RawMessage) error {
	if b64 != nil {
		data, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		_, err := io.WriteString(w, s)
		return err
	}
	_, err := w.Write(raw)
	return err
}
