package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "weir",
		Short: "Weir: a Kafka-like streaming server with a REST API",
		Long: `Weir is a streaming server in the spirit of Kafka: topics split into
partitions, replicated append-only logs, consumer groups and retention, with
Raft instead of ZooKeeper for the cluster metadata and a JSON REST API for
everything.

'weir serve' runs a node; the other commands work against a running cluster.`,
		Example: `  # Run a single node: REST API on 127.0.0.1:8082, data in ./weir-data
  weir serve

  # Run from a config file (see config.example.yaml), overriding one key
  weir serve --config weir.yaml --log-level debug

  # Look at it
  weir cluster status
  weir topic create orders -p 3 --if-not-exists
  seq 10 | weir produce orders --partition 0
  weir consume orders --partition 0 --from-beginning -n 10
  weir consume orders --group billing --from-beginning
  weir group describe billing

  # Every flag of serve, and its environment variable and YAML key
  weir serve --help`,
		Version: versionString(),
		// Errors are printed once, as one line, by run; usage only on --help.
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs, // so helpOrUnknown, not cobra, reports a mistyped command
		RunE:          helpOrUnknown,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	// Inherited by every subcommand: a bad flag is a usage error (exit 2).
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError(fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath()))
	})

	addGlobalFlags(root, a)
	root.CompletionOptions.DisableDefaultCmd = true // newCompletionCmd, with examples

	// The command tree: one constructor per file. Client commands (topic,
	// produce, consume, group, cluster, bench, local-cluster) go here too.
	root.AddCommand(
		newServeCmd(a),
		newTopicCmd(a),
		newProduceCmd(a),
		newConsumeCmd(a),
		newGroupCmd(a),
		newClusterCmd(a),
		newCompletionCmd(),
		newBenchCmd(a),
		newLocalClusterCmd(a),
		newVersionCmd(),
	)
	return root
}

// helpOrUnknown is the RunE of a command that only groups subcommands: alone
// it prints help; with an argument, that argument is a mistyped subcommand.
func helpOrUnknown(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's own default, which it only sets on its error path
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError(fmt.Errorf("%s (see '%s --help')", msg, cmd.CommandPath()))
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError(errors.New(cmd.CommandPath() + " takes no arguments, got " + fmt.Sprintf("%q", args[0])))
	}
	return nil
}
