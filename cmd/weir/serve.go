package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"weir/server"
)

func newServeCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Weir node",
		Long: `Run a Weir node until SIGINT or SIGTERM. The first signal shuts the node
down cleanly; a second one exits at once.

Every setting can be given, from highest precedence to lowest, as a flag
(--node-id), an environment variable (WEIR_NODE_ID), a key in the YAML file
named by --config or WEIR_CONFIG (node_id), or left at its default.
config.example.yaml lists every key with its default and meaning; times are
milliseconds and sizes bytes, as in Kafka. A boolean flag alone means true;
turn one off with =false (--auto-leader-rebalance-enable=false).

A cluster starts from the same voters list on its first 3 (or 5) nodes; more
nodes join a running cluster with --join and receive all metadata as
non-voters. Every node of a cluster holds the same cluster secret
(WEIR_CLUSTER_SECRET, --cluster-secret or <data-dir>/cluster-secret) and
proves it to the others; a node alone makes one in its data dir.`,
		Example: `  # One node on localhost
  weir serve

  # Node 2 of a 3-node cluster (run the same with ids 1 and 3 on the others),
  # with the secret all of them share
  export WEIR_CLUSTER_SECRET=0d5e...   # e.g. from openssl rand -hex 32
  weir serve --node-id 2 --data-dir /var/lib/weir \
    --http-addr 0.0.0.0:8082 --advertise-http-addr 10.0.0.2:8082 \
    --raft-addr 0.0.0.0:9093 \
    --voters 1@10.0.0.1:9093,2@10.0.0.2:9093,3@10.0.0.3:9093

  # A fourth node joining that cluster (with the same WEIR_CLUSTER_SECRET)
  weir serve --node-id 4 --http-addr 10.0.0.4:8082 --raft-addr 10.0.0.4:9093 \
    --join http://10.0.0.1:8082,http://10.0.0.2:8082

  # The same settings from the environment and a file
  WEIR_NODE_ID=2 WEIR_LOG_FORMAT=json weir serve --config /etc/weir.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := server.LoadConfig(cmd.Flags(), a.lookupEnv)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			return serve(cmd.Context(), a, cfg)
		},
	}
	cmd.Flags().SortFlags = false // keep the config's grouping in --help
	server.AddFlags(cmd.Flags())
	return cmd
}

// serve runs a node until ctx ends or a signal arrives.
func serve(ctx context.Context, a *app, cfg server.Config) error {
	logger := newLogger(a.stderr, cfg)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Catch signals before the node is built, so that one arriving during
	// start-up still gets a clean shutdown rather than the default death.
	sigs := make(chan os.Signal, 2)
	a.notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer a.stopNotify(sigs)
	stopped := make(chan struct{})
	defer close(stopped)
	backstop := time.Duration(cfg.ShutdownTimeoutMs)*time.Millisecond + a.shutdownGrace
	go watchSignals(a, logger, sigs, stopped, cancel, backstop)

	node, err := a.newNode(cfg, logger)
	if err != nil {
		return fmt.Errorf("start node %d: %w", cfg.NodeID, err)
	}
	logger.Info("starting weir", "version", versionString(), "node_id", cfg.NodeID,
		"http_addr", cfg.HTTPAddr, "raft_addr", cfg.RaftAddr, "data_dir", cfg.DataDir)
	err = node.Run(ctx)
	if err != nil && !(errors.Is(err, context.Canceled) && ctx.Err() != nil) {
		return fmt.Errorf("node %d: %w", cfg.NodeID, err)
	}
	logger.Info("weir stopped")
	return nil
}

// watchSignals turns the first signal into a clean shutdown (cancel) and a
// second one, or a shutdown that outlives backstop, into an immediate exit.
func watchSignals(a *app, logger *slog.Logger, sigs <-chan os.Signal, stopped <-chan struct{}, cancel context.CancelFunc, backstop time.Duration) {
	select {
	case s := <-sigs:
		logger.Info("shutting down; send the signal again to exit at once", "signal", s.String())
		cancel()
	case <-stopped:
		return
	}
	timer := time.NewTimer(backstop)
	defer timer.Stop()
	select {
	case s := <-sigs:
		logger.Warn("second signal: exiting without a clean shutdown", "signal", s.String())
		a.exit(signalExitCode(s))
	case <-timer.C:
		logger.Error("shutdown did not finish in time; exiting", "waited", backstop.String())
		a.exit(1)
	case <-stopped:
	}
}

// signalExitCode is the shell's convention for death by signal: 128+n.
func signalExitCode(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

// newLogger writes text or JSON to w at the configured level.
func newLogger(w io.Writer, cfg server.Config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo // unreachable: LoadConfig validated it
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
