package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"weir/client"
)

func newTopicCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, alter and delete topics (like kafka-topics.sh)",
		Example: `  weir topic create orders -p 3 -r 1 -c retention.ms=86400000 --if-not-exists
  weir topic list
  weir topic describe orders
  weir topic alter orders -p 6
  weir topic delete orders --if-exists`,
		Args: cobra.ArbitraryArgs,
		RunE: helpOrUnknown,
	}
	cmd.AddCommand(newTopicCreateCmd(a), newTopicListCmd(a), newTopicDescribeCmd(a), newTopicAlterCmd(a), newTopicDeleteCmd(a))
	return cmd
}

func newTopicCreateCmd(a *app) *cobra.Command {
	var (
		partitions, rf int
		configs        []string
		ifNotExists    bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Long: `Create a topic. Partitions, replication factor and configs not given take the
broker defaults. With --if-not-exists, a topic of that name that already exists
is success (its settings are not compared).`,
		Example: `  weir topic create orders
  weir topic create orders -p 3 -r 3 -c retention.ms=86400000 -c cleanup.policy=compact
  weir topic create orders -p 3 --if-not-exists -o json`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := parseKVs("-c/--config", configs)
			if err != nil {
				return err
			}
			req := client.CreateTopicRequest{Name: args[0], Configs: cfg}
			if cmd.Flags().Changed("partitions") {
				if partitions < 1 {
					return usageError(fmt.Errorf("-p/--partitions must be at least 1, got %d", partitions))
				}
				req.Partitions = &partitions
			}
			if cmd.Flags().Changed("replication-factor") {
				if rf < 1 {
					return usageError(fmt.Errorf("-r/--replication-factor must be at least 1, got %d", rf))
				}
				req.ReplicationFactor = &rf
			}
			ctx, cancel, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			t, err := c.CreateTopic(ctx, req)
			existed := false
			if err != nil {
				if !ifNotExists || !client.IsCode(err, client.CodeTopicAlreadyExists) {
					return err
				}
				existed = true
				if t, err = c.Topic(ctx, req.Name); err != nil {
					return err
				}
			}
			if a.structured() {
				return a.printStructured(t)
			}
			if existed {
				_, err = fmt.Fprintf(a.stdout, "Topic %q already exists.\n", t.Name)
			} else {
				_, err = fmt.Fprintf(a.stdout, "Created topic %q: %d partition(s), replication factor %d.\n", t.Name, len(t.Partitions), t.ReplicationFactor)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVarP(&partitions, "partitions", "p", 0, "number of partitions (default: the broker's num_partitions)")
	f.IntVarP(&rf, "replication-factor", "r", 0, "replicas per partition (default: the broker's default)")
	f.StringArrayVarP(&configs, "config", "c", nil, "topic config `key=value` (repeatable), e.g. retention.ms=86400000")
	f.BoolVar(&ifNotExists, "if-not-exists", false, "succeed if the topic already exists")
	return cmd
}

func newTopicListCmd(a *app) *cobra.Command {
	var internal bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Example: `  weir topic list
  weir topic list --internal
  weir topic list -o json | jq -r '.topics[].name'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			topics, err := c.ListTopics(ctx, internal)
			if err != nil {
				return err
			}
			if topics == nil {
				topics = []client.TopicSummary{}
			}
			if a.structured() {
				return a.printStructured(client.TopicList{Topics: topics})
			}
			t := newTable(a.stdout, "NAME", "PARTITIONS", "REPLICATION-FACTOR", "INTERNAL")
			for _, s := range topics {
				t.row(s.Name, s.Partitions, s.ReplicationFactor, s.Internal)
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&internal, "internal", false, "include internal topics (e.g. __consumer_offsets)")
	return cmd
}

func newTopicDescribeCmd(a *app) *cobra.Command {
	var underReplicated, unavailable bool
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's configs and partitions (leader, epoch, replicas, ISR, offsets)",
		Long: `Show a topic: its id, replication factor, every effective config, and one row
per partition with its leader, leader epoch, replicas, in-sync replicas, log
start offset, high watermark (HW) and log end offset (LEO).

--under-replicated keeps the partitions whose ISR is smaller than their
replica set, --unavailable those without a leader; given both, either.
The filters apply to -o json/yaml too.`,
		Example: `  weir topic describe orders
  weir topic describe orders --under-replicated
  weir topic describe orders -o json | jq '.partitions[] | {partition, high_watermark}'`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: topicCompletion(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			t, err := c.Topic(ctx, args[0])
			if err != nil {
				return err
			}
			total := len(t.Partitions)
			if underReplicated || unavailable {
				kept := []client.PartitionInfo{}
				for _, p := range t.Partitions {
					if (underReplicated && len(p.ISR) < len(p.Replicas)) || (unavailable && p.Leader < 0) {
						kept = append(kept, p)
					}
				}
				t.Partitions = kept
			}
			if a.structured() {
				return a.printStructured(t)
			}
			return printTopic(a, t, total)
		},
	}
	cmd.Flags().BoolVar(&underReplicated, "under-replicated", false, "only partitions whose ISR is smaller than their replicas")
	cmd.Flags().BoolVar(&unavailable, "unavailable", false, "only partitions without a leader")
	return cmd
}

// printTopic prints t; total is its partition count before any filter.
func printTopic(a *app, t *client.Topic, total int) error {
	w := a.stdout
	fmt.Fprintf(w, "Topic: %s\nID: %s\nInternal: %t\nReplication factor: %d\nPartitions: %d\nConfigs:\n",
		t.Name, t.ID, t.Internal, t.ReplicationFactor, total)
	for _, k := range sortedKeys(t.Configs) {
		fmt.Fprintf(w, "  %s=%s\n", k, t.Configs[k])
	}
	fmt.Fprintln(w)
	tb := newTable(w, "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "HW", "LEO")
	for _, p := range t.Partitions {
		leader := fmt.Sprint(p.Leader)
		if p.Leader < 0 {
			leader = "none"
		}
		tb.row(p.Partition, leader, p.LeaderEpoch, joinIDs(p.Replicas), joinIDs(p.ISR), p.LogStartOffset, p.HighWatermark, p.LogEndOffset)
	}
	return tb.flush()
}

func newTopicAlterCmd(a *app) *cobra.Command {
	var (
		partitions int
		configs    []string
		deletes    []string
	)
	cmd := &cobra.Command{
		Use:   "alter NAME",
		Short: "Add partitions to a topic, or set or reset its configs",
		Long: `Alter a topic: -p raises the partition count (it never lowers), -c sets a
config, --delete-config resets one to the broker default. Give at least one.`,
		Example: `  weir topic alter orders -p 6
  weir topic alter orders -c retention.ms=3600000 -c cleanup.policy=compact
  weir topic alter orders --delete-config retention.ms`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: topicCompletion(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := parseKVs("-c/--config", configs)
			if err != nil {
				return err
			}
			var req client.AlterTopicRequest
			if cmd.Flags().Changed("partitions") {
				if partitions < 1 {
					return usageError(fmt.Errorf("-p/--partitions must be at least 1, got %d", partitions))
				}
				req.Partitions = &partitions
			}
			if len(set)+len(deletes) > 0 {
				req.Configs = map[string]*string{}
				for k, v := range set {
					req.Configs[k] = &v
				}
				for _, k := range deletes {
					if k == "" {
						return usageError(errors.New("--delete-config wants a config name"))
					}
					if _, dup := set[k]; dup {
						return usageError(fmt.Errorf("config %q is both set (-c) and deleted (--delete-config)", k))
					}
					req.Configs[k] = nil
				}
			}
			if req.Partitions == nil && req.Configs == nil {
				return usageError(fmt.Errorf("%s: nothing to change; give -p, -c or --delete-config (see '%s --help')", cmd.CommandPath(), cmd.CommandPath()))
			}
			ctx, cancel, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			t, err := c.AlterTopic(ctx, args[0], req)
			if err != nil {
				return err
			}
			if !a.structured() {
				_, err = fmt.Fprintf(a.stdout, "Altered topic %q.\n", args[0])
				return err
			}
			if t == nil {
				if t, err = c.Topic(ctx, args[0]); err != nil {
					return err
				}
			}
			return a.printStructured(t)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&partitions, "partitions", "p", 0, "new partition count (only raises)")
	f.StringArrayVarP(&configs, "config", "c", nil, "set config `key=value` (repeatable)")
	f.StringArrayVar(&deletes, "delete-config", nil, "reset config `key` to the broker default (repeatable)")
	return cmd
}

func newTopicDeleteCmd(a *app) *cobra.Command {
	var ifExists bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic and all its data",
		Long: `Delete a topic; its data goes from every broker. With --if-exists, a topic
that does not exist is success.`,
		Example: `  weir topic delete orders
  weir topic delete orders --if-exists`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: topicCompletion(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			return deleteTopic(ctx, a, c, args[0], ifExists)
		},
	}
	cmd.Flags().BoolVar(&ifExists, "if-exists", false, "succeed if the topic does not exist")
	return cmd
}

func deleteTopic(ctx context.Context, a *app, c *client.Client, name string, ifExists bool) error {
	err := c.DeleteTopic(ctx, name)
	if err != nil && !(ifExists && client.IsCode(err, client.CodeUnknownTopicOrPartition)) {
		return err
	}
	if a.structured() {
		return nil // 204: the API has no body to show
	}
	if err != nil {
		_, err = fmt.Fprintf(a.stdout, "Topic %q does not exist.\n", name)
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "Deleted topic %q.\n", name)
	return err
}
