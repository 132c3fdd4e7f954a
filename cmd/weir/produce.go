package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"weir/client"
)

type produceFlags struct {
	keySep    string
	partition int32
	acks      string
	headers   []string
	batch     int
	verbose   bool
}

func newProduceCmd(a *app) *cobra.Command {
	f := &produceFlags{}
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce one record per line of standard input",
		Long: `Produce one record per line of standard input (the newline is not part of
the record; a last line without one counts too; an empty line is an empty
value). Lines are sent --batch at a time.

--key-separator splits each line at the first separator into key and value;
a line without the separator is a value without a key. Values and keys are
sent byte for byte (not valid UTF-8: as base64).

Prints nothing on success; -v prints each record's partition and offset
(-o json: the API's offset objects, one per line). If a record fails, each
failed record and the server's error code go to stderr, nothing more is
sent, and the exit status is 1.`,
		Example: `  # One record per line of a file
  weir produce orders < orders.txt

  # key<TAB>value lines, with a header on every record, to partition 0
  printf 'user-1\t{"amount":5}\n' | weir produce orders --key-separator $'\t' --header source=cli --partition 0 -v`,
		Args:              exactArgs("TOPIC"),
		ValidArgsFunction: topicCompletion(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			var partition *int32
			if cmd.Flags().Changed("partition") {
				if f.partition < 0 {
					return usageError(fmt.Errorf("--partition must not be negative, got %d", f.partition))
				}
				partition = &f.partition
			}
			return runProduce(cmd.Context(), a, cmd.InOrStdin(), args[0], partition, f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.keySep, "key-separator", "", "split each line at the first `SEP` into key and value")
	fs.Int32Var(&f.partition, "partition", 0, "write every record to this partition (default: by key, else spread)")
	fs.StringVar(&f.acks, "acks", client.AcksAll, "acks: all, 1 or 0")
	fs.StringArrayVar(&f.headers, "header", nil, "header `key=value` on every record (repeatable)")
	fs.IntVar(&f.batch, "batch", 500, "lines per request")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "print the partition and offset of each record")
	_ = cmd.RegisterFlagCompletionFunc("acks", cobra.FixedCompletions([]string{"all", "1", "0"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runProduce(ctx context.Context, a *app, stdin io.Reader, topic string, partition *int32, f *produceFlags) error {
	switch f.acks {
	case client.AcksAll, client.AcksOne, client.AcksNone:
	case "-1":
		f.acks = client.AcksAll
	default:
		return usageError(fmt.Errorf("--acks must be all, 1 or 0, got %q", f.acks))
	}
	if f.batch < 1 {
		return usageError(fmt.Errorf("--batch must be at least 1, got %d", f.batch))
	}
	headers, err := parseKVs("--header", f.headers)
	if err != nil {
		return err
	}
	c, err := a.newClient()
	if err != nil {
		return err
	}
	if stdin == nil {
		stdin = os.Stdin
	}
	in := bufio.NewReaderSize(stdin, 64<<10)
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()
	line := 0 // lines read so far
	for {
		records, eof, err := readLines(in, f.batch, f.keySep, headers)
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		if len(records) > 0 {
			first := line + 1
			line += len(records)
			if err := produceBatch(ctx, a, c, out, topic, partition, records, first, f); err != nil {
				return err
			}
		}
		if eof {
			return out.Flush()
		}
	}
}

// readLines reads up to n lines as records; eof reports the end of input.
func readLines(in *bufio.Reader, n int, keySep string, headers map[string]string) (recs []client.ProduceRecord, eof bool, err error) {
	for len(recs) < n {
		b, err := in.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, err
		}
		if len(b) == 0 && err != nil {
			return recs, true, nil
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		var r client.ProduceRecord
		k, v, found := []byte(nil), b, false
		if keySep != "" {
			k, v, found = bytes.Cut(b, []byte(keySep))
			if !found {
				v = b
			}
		}
		r = client.StringValue(string(v))
		if found {
			r = r.WithKey(string(k))
		}
		r.Headers = headers
		recs = append(recs, r)
		if err != nil { // a last line without a newline
			return recs, true, nil
		}
	}
	return recs, false, nil
}

func produceBatch(ctx context.Context, a *app, c *client.Client, out *bufio.Writer, topic string, partition *int32,
	records []client.ProduceRecord, firstLine int, f *produceFlags) error {
	rctx, cancel := a.reqCtx(ctx)
	defer cancel()
	resp, err := c.Produce(rctx, topic, partition, records, f.acks, 0)
	if resp == nil {
		return err
	}
	failed := 0
	for i, o := range resp.Offsets {
		if o.ErrorCode != "" {
			failed++
			out.Flush()
			fmt.Fprintf(a.stderr, "weir: line %d: %s: %s\n", firstLine+i, o.ErrorCode, o.Message)
			continue
		}
		if !f.verbose {
			continue
		}
		if a.global.output == outJSON {
			data, _ := json.Marshal(o)
			out.Write(append(data, '\n'))
		} else {
			fmt.Fprintf(out, "partition %d offset %d\n", o.Partition, o.Offset)
		}
	}
	if err != nil {
		out.Flush()
		return fmt.Errorf("%d of %d records of lines %d-%d failed, later lines not sent: %w",
			max(failed, 1), len(records), firstLine, firstLine+len(records)-1, err)
	}
	if failed > 0 {
		return fmt.Errorf("produce to %q: %d of %d records failed", topic, failed, len(records))
	}
	return nil
}
