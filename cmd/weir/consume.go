package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"weir/client"
)

type consumeFlags struct {
	partition     int32
	group         string
	fromBeginning bool
	offset        int64
	offsetSet     bool
	fromTime      string
	count         int
	follow        bool
	format        string
	encoding      string
}

func newConsumeCmd(a *app) *cobra.Command {
	f := &consumeFlags{}
	cmd := &cobra.Command{
		Use:   "consume TOPIC [--partition P | --group G]",
		Short: "Print the records of a topic, of one partition, or as a member of a consumer group",
		Long: `Print records, by default one JSON object per line: the API's record shape
plus "topic" and "partition" (keys and values per --encoding: valid JSON
embedded, other UTF-8 as strings, else key_b64/value_b64).

What is read:
  (neither)        every partition of TOPIC: without --follow one partition
                   after the other, each in offset order; with --follow all
                   of them at once
  --partition P    partition P only
  --group G        as a member of consumer group G subscribed to TOPIC: the
                   group shares the partitions among its members and starts
                   where it last committed; what is printed is committed (by
                   the next poll, and on exit, Ctrl-C included, when the
                   member commits and leaves the group). A second run reads
                   only what is new.

Start: --from-beginning, --offset N (with --partition), or --from-time
(RFC 3339, or a negative duration such as -5m meaning that long ago);
default: the end (only new records). With --group, the group's committed
offsets decide, and --from-beginning only says where partitions the group
never committed start (auto_offset_reset=earliest instead of latest, as with
Kafka's console consumer).

Without --follow it stops at the end of the log (with --group: at the first
poll that returns nothing) or after -n records; with --follow it waits for
new records (until -n, or Ctrl-C).

--format prints each record with these directives (like kcat and rpk):
  %t topic   %p partition   %o offset   %k key   %v value
  %h headers (k=v,k=v)   %T timestamp (ms)   %% a percent sign
and the escapes \n \t \r \\. Keys and values are printed byte for byte;
a null key or value prints nothing.`,
		Example: `  # Everything in partition 0, then exit
  weir consume orders --partition 0 --from-beginning

  # Everything in every partition, then exit
  weir consume orders --from-beginning

  # The first 10 records from offset 100, values only
  weir consume orders --partition 0 --offset 100 -n 10 --format '%v\n'

  # What arrived in the last 5 minutes, then follow new records
  weir consume orders --partition 0 --from-time -5m --follow --format '%o %k=%v\n'

  # As group billing: what the group has not read yet, then exit; run it
  # again later and it continues where it stopped
  weir consume orders --group billing --from-beginning

  # As group billing, forever; start several to share the partitions
  weir consume orders --group billing --follow --format '%p:%o %v\n'

  # Pipe into jq
  weir consume orders --partition 0 --from-beginning | jq .value`,
		Args:              exactArgs("TOPIC"),
		ValidArgsFunction: topicCompletion(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConsume(cmd, a, args[0], f)
		},
	}
	fs := cmd.Flags()
	fs.Int32Var(&f.partition, "partition", 0, "read only this partition")
	fs.StringVar(&f.group, "group", "", "read as a member of consumer `GROUP` (committing what is printed)")
	fs.BoolVar(&f.fromBeginning, "from-beginning", false, "start at the log start (with --group: where the group has no committed offset)")
	fs.Int64Var(&f.offset, "offset", 0, "start at offset `N` (with --partition)")
	fs.StringVar(&f.fromTime, "from-time", "", "start at the first record at or after `TIME`: RFC 3339 (2026-01-02T15:04:05Z) or a negative duration (-5m)")
	fs.IntVarP(&f.count, "num", "n", 0, "exit after `N` records (0: no limit)")
	fs.BoolVarP(&f.follow, "follow", "f", false, "wait for new records at the end of the log (long-poll)")
	fs.StringVar(&f.format, "format", "", "print each record with this `format` (see above) instead of JSON")
	fs.StringVar(&f.encoding, "encoding", client.EncodingAuto, "keys and values in the JSON output: auto, text or base64")
	_ = cmd.RegisterFlagCompletionFunc("encoding", cobra.FixedCompletions([]string{"auto", "text", "base64"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("group", serverCompletion(a, listGroupNames))
	return cmd
}

func runConsume(cmd *cobra.Command, a *app, topic string, f *consumeFlags) error {
	flags := cmd.Flags()
	byGroup, byPartition := flags.Changed("group"), flags.Changed("partition")
	if byGroup {
		if f.group == "" {
			return usageError(errors.New("--group must not be empty"))
		}
		for _, name := range []string{"partition", "offset", "from-time"} {
			if flags.Changed(name) {
				return usageError(fmt.Errorf("--group and --%s cannot be combined: the group assigns the partitions and its committed offsets say where to start (see '%s --help')",
					name, cmd.CommandPath()))
			}
		}
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
	if flags.Changed("offset") && !byPartition {
		return usageError(fmt.Errorf("--offset needs --partition: an offset is a position in one partition (see '%s --help')", cmd.CommandPath()))
	}
	f.offsetSet = flags.Changed("offset")
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
	p := &printer{limit: f.count}
	if flags.Changed("format") {
		var err error
		if p.format, err = parseFormat(f.format); err != nil {
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

	encoding := f.encoding
	if p.format != nil {
		encoding = client.EncodingBase64 // byte for byte
	}
	p.w = bufio.NewWriter(a.stdout)
	if byGroup {
		return consumeGroup(ctx, stop, a, c, topic, f, encoding, p)
	}
	if byPartition {
		err = consumePartition(ctx, a, c, topic, f, fromMS, encoding, p)
	} else {
		err = consumeAll(ctx, a, c, topic, f, fromMS, encoding, p)
	}
	if err != nil && ctx.Err() != nil {
		err = nil // interrupted: a clean stop
	}
	if ferr := p.w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// pollBatch is the most records one request asks for.
const pollBatch = 500

// printer writes consumed records, counting them against -n.
type printer struct {
	w       *bufio.Writer
	format  []formatPart
	limit   int // -n; 0: none
	printed int
}

// want is how many records the next request may ask for: 0 once -n is reached.
func (p *printer) want() int {
	if p.limit == 0 {
		return pollBatch
	}
	return min(pollBatch, p.limit-p.printed)
}

// done reports whether -n records were printed.
func (p *printer) done() bool { return p.limit > 0 && p.printed >= p.limit }

// print writes recs (as far as -n allows) and flushes them.
func (p *printer) print(recs []client.ConsumedRecord) error {
	for _, r := range recs {
		if p.done() {
			break
		}
		if err := writeRecord(p.w, r, p.format); err != nil {
			return err
		}
		p.printed++
	}
	return p.w.Flush()
}

// longPollMS is the wait of a long-poll of ms, shortened to half of a
// --timeout below twice that so that the request is not cut short.
func (a *app) longPollMS(ms int) int {
	if t := a.global.timeout; t > 0 && t < 2*time.Duration(ms)*time.Millisecond {
		return max(1, int(t.Milliseconds()/2))
	}
	return ms
}

// partitionReader reads partitions of one topic with the partition consume call.
type partitionReader struct {
	a        *app
	c        *client.Client
	topic    string
	follow   bool
	encoding string
}

// read reads partition part from start and hands every response's records
// (with topic and partition set) to emit: up to the high watermark, or with
// follow until ctx ends. want bounds each request; at 0 the read stops.
func (r *partitionReader) read(ctx context.Context, part int32, start client.Offset, want func() int, emit func([]client.ConsumedRecord) error) error {
	opts := client.ConsumeOptions{Offset: start, Encoding: r.encoding}
	if r.follow {
		opts.WaitMS = r.a.longPollMS(5000)
	}
	for {
		if opts.Limit = want(); opts.Limit <= 0 {
			return nil
		}
		rctx, cancel := r.a.reqCtx(ctx)
		resp, err := r.c.Consume(rctx, r.topic, part, opts)
		cancel()
		if err != nil {
			return err
		}
		for i := range resp.Records {
			p := resp.Partition
			resp.Records[i].Topic, resp.Records[i].Partition = resp.Topic, &p
		}
		if err := emit(resp.Records); err != nil {
			return err
		}
		opts.Offset = client.OffsetAt(resp.NextOffset)
		if !r.follow && resp.NextOffset >= resp.HighWatermark {
			return nil
		}
	}
}

// startOffsets says where each partition of topic starts per the start
// flags (the index is the partition); it also tells how many there are.
func startOffsets(ctx context.Context, a *app, c *client.Client, topic string, f *consumeFlags, fromMS *int64) ([]client.Offset, error) {
	rctx, cancel := a.reqCtx(ctx)
	offs, err := c.TopicOffsets(rctx, topic, fromMS)
	cancel()
	if err != nil {
		return nil, err
	}
	starts := make([]client.Offset, len(offs.Partitions))
	for i := range starts {
		starts[i] = client.OffsetLatest
		if f.fromBeginning {
			starts[i] = client.OffsetEarliest
		}
	}
	if fromMS != nil {
		for _, p := range offs.Partitions {
			if p.Partition < 0 || int(p.Partition) >= len(starts) {
				return nil, fmt.Errorf("topic %q: the offsets name partition %d of %d", topic, p.Partition, len(starts))
			}
			starts[p.Partition] = client.OffsetAt(p.HighWatermark)
			if p.Offset != nil {
				starts[p.Partition] = client.OffsetAt(*p.Offset)
			}
		}
	}
	return starts, nil
}

// consumePartition reads partition f.partition of topic.
func consumePartition(ctx context.Context, a *app, c *client.Client, topic string, f *consumeFlags, fromMS *int64, encoding string, p *printer) error {
	start := client.OffsetLatest
	switch {
	case f.fromBeginning:
		start = client.OffsetEarliest
	case fromMS != nil:
		starts, err := startOffsets(ctx, a, c, topic, f, fromMS)
		if err != nil {
			return err
		}
		if int(f.partition) >= len(starts) {
			return fmt.Errorf("topic %q has no partition %d", topic, f.partition)
		}
		start = starts[f.partition]
	case f.offsetSet:
		start = client.OffsetAt(f.offset)
	}
	r := &partitionReader{a: a, c: c, topic: topic, follow: f.follow, encoding: encoding}
	return r.read(ctx, f.partition, start, p.want, p.print)
}

// consumeAll reads every partition of topic: one after the other up to
// their high watermarks, or with --follow all at once, one reader each.
func consumeAll(ctx context.Context, a *app, c *client.Client, topic string, f *consumeFlags, fromMS *int64, encoding string, p *printer) error {
	starts, err := startOffsets(ctx, a, c, topic, f, fromMS)
	if err != nil {
		return err
	}
	r := &partitionReader{a: a, c: c, topic: topic, follow: f.follow, encoding: encoding}
	if !f.follow {
		for part, start := range starts {
			if err := r.read(ctx, int32(part), start, p.want, p.print); err != nil {
				return err
			}
		}
		return nil
	}

	// --follow: a reader per partition long-polls it and hands its records
	// to this goroutine, the only one that prints.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	batches := make(chan []client.ConsumedRecord)
	failed := make(chan error, len(starts))
	for part, start := range starts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.read(ctx, int32(part), start, func() int { return pollBatch }, func(recs []client.ConsumedRecord) error {
				if len(recs) == 0 {
					return nil
				}
				select {
				case batches <- recs:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil && ctx.Err() == nil {
				failed <- err
			}
		}()
	}
	for !p.done() {
		select {
		case recs := <-batches:
			if err := p.print(recs); err != nil {
				return err
			}
		case err := <-failed:
			return err
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// consumeGroup reads topic as a member of group f.group until a poll
// returns nothing (or, with --follow, until ctx ends) or -n records were
// printed; then it commits what it printed and leaves the group, also after
// an interrupt. stop releases the signals once the reading is over, so that
// a second Ctrl-C ends the process at once.
func consumeGroup(ctx context.Context, stop func(), a *app, c *client.Client, topic string, f *consumeFlags, encoding string, p *printer) error {
	// A subscription to a topic that does not exist is accepted (the group
	// waits for it to appear): say so instead of printing nothing.
	rctx, cancel := a.reqCtx(ctx)
	_, err := c.Topic(rctx, topic)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	reset := string(client.OffsetLatest)
	if f.fromBeginning {
		reset = string(client.OffsetEarliest)
	}
	gc := client.NewGroupConsumer(c, f.group, client.JoinGroupRequest{Topics: []string{topic}, ClientID: "weir-cli", AutoOffsetReset: reset})
	err = pollGroup(ctx, a, gc, f.follow, encoding, p)
	if err != nil && ctx.Err() != nil {
		err = nil // interrupted: a clean stop
	}
	if ferr := p.w.Flush(); err == nil {
		err = ferr
	}
	stop()
	// Not ctx: after Ctrl-C the commit and the leave must still happen.
	cctx, cancel := a.reqCtx(context.WithoutCancel(ctx))
	defer cancel()
	if cerr := gc.Close(cctx); cerr != nil {
		err = errors.Join(err, fmt.Errorf("committing and leaving group %q: %w", gc.Group(), cerr))
	}
	return err
}

// pollGroup prints what gc's polls return.
func pollGroup(ctx context.Context, a *app, gc *client.GroupConsumer, follow bool, encoding string, p *printer) error {
	// Without --follow a poll waits a little for records, so that a
	// partition whose leader is slow to answer is not taken for empty.
	wait := a.longPollMS(1000)
	if follow {
		wait = a.longPollMS(5000)
	}
	for !p.done() {
		// Never more than -n still allows: what a poll returns counts as
		// read, and is committed on leaving.
		gc.SetPollOptions(client.GroupPollOptions{Limit: p.want(), Encoding: encoding})
		rctx, cancel := a.reqCtx(ctx)
		recs, err := gc.Poll(rctx, wait)
		cancel()
		if err != nil {
			return err
		}
		if err := p.print(recs); err != nil {
			return err
		}
		if len(recs) == 0 && !follow {
			return nil
		}
	}
	return nil
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
			if err := writeHeaders(w, r); err != nil {
				return fmt.Errorf("record at offset %d: headers: %w", r.Offset, err)
			}
		}
	}
	return nil
}

// writeHeaders writes a record's headers as k=v,k=v in key order, with the
// bytes of those that came in base64 (not UTF-8).
func writeHeaders(w *bufio.Writer, r client.ConsumedRecord) error {
	all := make(map[string]string, len(r.Headers)+len(r.HeadersB64))
	maps.Copy(all, r.Headers)
	for k, v := range r.HeadersB64 {
		data, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return fmt.Errorf("%q: %w", k, err)
		}
		all[k] = string(data)
	}
	for i, k := range sortedKeys(all) {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(k + "=" + all[k])
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
