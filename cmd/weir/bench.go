package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"weir/client"
)

// benchFlags are the flags shared by bench produce and bench consume.
type benchFlags struct {
	topic       string
	records     int
	recordSize  int
	batch       int
	concurrency int
	acks        string
	body        string
	partition   int32
	encoding    string
	maxBytes    int
	create      int
	jsonOut     bool
}

func newBenchCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a cluster over the REST API (like kafka-producer-perf-test)",
		Long: `Load-test Weir over its REST API: 'bench produce' sends records, 'bench consume'
reads them back, each printing records/s, MB/s and latency percentiles.
'bench echo-server' runs a bare net/http JSON echo of the produce endpoint, the
baseline to compare against on the same machine.`,
		Example: `  # 100k records of 1 KiB, 500 per request, 8 requests in flight
  weir bench produce --topic bench --create 3 --records 100000 --record-size 1024 --batch 500 --concurrency 8

  # Read them back
  weir bench consume --topic bench --records 100000 --batch 500 --concurrency 3

  # The floor: the same produce load against a bare HTTP+JSON echo handler
  weir bench echo-server --addr 127.0.0.1:18099 &
  weir bench produce --server http://127.0.0.1:18099 --topic bench --records 100000 --record-size 1024 --batch 500`,
		Args: cobra.ArbitraryArgs,
		RunE: helpOrUnknown,
	}
	cmd.AddCommand(newBenchRunCmd(a, "produce"), newBenchRunCmd(a, "consume"), newEchoServerCmd(a))
	return cmd
}

func newBenchRunCmd(a *app, op string) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   op,
		Short: map[string]string{"produce": "Produce records as fast as the server takes them", "consume": "Consume records as fast as the server serves them"}[op],
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), a, op, f, cmd.Flags().Changed("partition"))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.topic, "topic", "bench", "topic")
	fs.IntVar(&f.records, "records", 100000, "records to send or read (consume: 0 = all below the high watermark)")
	fs.IntVar(&f.batch, "batch", 500, "records per request (consume: the fetch limit)")
	fs.IntVar(&f.concurrency, "concurrency", 4, "requests in flight")
	fs.Int32Var(&f.partition, "partition", 0, "only this partition (default: all)")
	fs.BoolVar(&f.jsonOut, "json", false, "print the result as JSON")
	if op == "produce" {
		fs.IntVar(&f.recordSize, "record-size", 1024, "bytes per record value")
		fs.StringVar(&f.acks, "acks", "all", "acks: 0, 1 or all")
		fs.StringVar(&f.body, "body", "json", "request body: json, ndjson, text or octet (octet needs --batch 1)")
		fs.IntVar(&f.create, "create", 0, "create the topic with this many partitions if it does not exist")
	} else {
		fs.StringVar(&f.encoding, "encoding", "", "encoding: auto, text or base64 (default: the server's)")
		fs.IntVar(&f.maxBytes, "max-bytes", 0, "max bytes per fetch (default: the server's)")
	}
	return cmd
}

func envOr(a *app, key, def string) string {
	if v, ok := a.lookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func runBench(ctx context.Context, a *app, op string, f *benchFlags, partitionSet bool) error {
	if f.records < 0 || f.batch < 1 || f.concurrency < 1 || (op == "produce" && (f.recordSize < 0 || f.records < 1)) {
		return usageError(errors.New("--records, --batch, --concurrency and --record-size must be positive"))
	}
	c, err := client.New(strings.Split(a.global.servers, ","), client.WithMaxIdleConnsPerHost(f.concurrency*2))
	if err != nil {
		return usageError(err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	if op == "produce" && f.create > 0 {
		parts := f.create
		_, err := c.CreateTopic(ctx, client.CreateTopicRequest{Name: f.topic, Partitions: &parts})
		if err != nil && !client.IsCode(err, client.CodeTopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", f.topic, err)
		}
	}
	opts := client.BenchOptions{Topic: f.topic, Records: f.records, RecordSize: f.recordSize, Batch: f.batch,
		Concurrency: f.concurrency, Acks: f.acks, BodyType: client.BodyType(f.body), Encoding: f.encoding, MaxBytes: f.maxBytes}
	if partitionSet {
		opts.Partition = &f.partition
	}
	if isTerminal(a.stderr) && !f.jsonOut {
		opts.Progress = func(p client.BenchProgress) { fmt.Fprintf(a.stderr, "\r\033[K%s", p.String()) }
	}
	var res client.BenchResult
	if op == "produce" {
		res, err = client.BenchProduce(ctx, c, opts)
	} else {
		res, err = client.BenchConsume(ctx, c, opts)
	}
	if opts.Progress != nil {
		fmt.Fprint(a.stderr, "\r\033[K")
	}
	if f.jsonOut {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if e := enc.Encode(res); e != nil {
			return e
		}
	} else if res.Requests > 0 {
		fmt.Fprintln(a.stdout, res.String())
	}
	return err
}

// isTerminal reports whether w is a terminal (the progress line needs one).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newEchoServerCmd(a *app) *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "echo-server",
		Short: "Serve a bare net/http JSON echo of the produce endpoint (the benchmark baseline)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			srv := &http.Server{Handler: client.EchoHandler(), ReadHeaderTimeout: 10 * time.Second}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			fmt.Fprintf(a.stdout, "echo server on http://%s\n", ln.Addr())
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:18099", "listen address")
	return cmd
}
