package main

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"weir/client"
)

func newGroupCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, reset and delete consumer groups (like kafka-consumer-groups.sh)",
		Long:  `Manage consumer groups. To read as a member of one, see 'weir consume TOPIC --group G'.`,
		Example: `  weir group list
  weir group describe billing
  weir group reset-offsets billing --topic orders --to-earliest --execute
  weir group delete billing`,
		Args: cobra.ArbitraryArgs,
		RunE: helpOrUnknown,
	}
	cmd.AddCommand(newGroupListCmd(a), newGroupDescribeCmd(a), newGroupResetOffsetsCmd(a), newGroupDeleteCmd(a))
	return cmd
}

func newGroupListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the consumer groups of the cluster",
		Long: `List every consumer group of the cluster: its state, number of members, the
node coordinating it and its total lag (summed over the partitions with a
committed offset).`,
		Example: `  weir group list
  weir group list -o json | jq -r '.groups[] | select(.total_lag > 0) | .group'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			groups, err := c.ListGroups(ctx)
			if err != nil {
				return err
			}
			if groups == nil {
				groups = []client.GroupSummary{}
			}
			if a.structured() {
				return a.printStructured(client.GroupList{Groups: groups})
			}
			t := newTable(a.stdout, "GROUP", "STATE", "MEMBERS", "COORDINATOR", "TOTAL-LAG")
			for _, g := range groups {
				t.row(g.Group, g.State, g.Members, g.Coordinator, g.TotalLag)
			}
			return t.flush()
		},
	}
}

func newGroupDescribeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's state, members, committed offsets and lag",
		Long: `Show a consumer group: its state, generation, coordinator and assignor, then
one row per partition as kafka-consumer-groups.sh --describe prints them:
the committed offset (CURRENT-OFFSET), the log end consumers see (the high
watermark), the lag, and the member holding the partition. A member without
partitions gets a row of its own; "-" is shown where there is no value (no
committed offset, no member).`,
		Example: `  weir group describe billing

  # The total lag, from the table (no jq needed)
  weir group describe billing | awk '$1 == "billing" && $6 ~ /^[0-9]+$/ { lag += $6 } END { print lag + 0 }'

  # The API's shape
  weir group describe billing -o json`,
		Args:              exactArgs("GROUP"),
		ValidArgsFunction: groupCompletion(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			g, err := c.DescribeGroup(ctx, args[0])
			if err != nil {
				return err
			}
			if a.structured() {
				return a.printStructured(g)
			}
			return printGroup(a, g)
		},
	}
}

// printGroup prints g: a header, then the table of kafka-consumer-groups.sh --describe.
func printGroup(a *app, g *client.Group) error {
	w := a.stdout
	fmt.Fprintf(w, "Group: %s\nState: %s\nGeneration: %d\nCoordinator: %d\nAssignor: %s\nMembers: %d\n\n",
		g.Group, g.State, g.Generation, g.Coordinator, dash(g.Assignor), len(g.Members))
	members := make(map[string]client.GroupMember, len(g.Members))
	for _, m := range g.Members {
		members[m.MemberID] = m
	}
	offsets := slices.Clone(g.Offsets)
	slices.SortFunc(offsets, func(x, y client.GroupOffset) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	t := newTable(w, "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID")
	for _, o := range offsets {
		end := "-"
		if o.LogEndOffset >= 0 {
			end = strconv.FormatInt(o.LogEndOffset, 10)
		}
		id, host, clientID := "-", "-", "-"
		if m, ok := members[o.MemberID]; ok {
			id, host, clientID = m.MemberID, dash(m.Host), dash(m.ClientID)
		} else if o.MemberID != "" {
			id = o.MemberID
		}
		t.row(g.Group, o.Topic, o.Partition, optInt(o.CommittedOffset), end, optInt(o.Lag), id, host, clientID)
	}
	// Members without partitions, as Kafka shows them.
	for _, m := range g.Members {
		if len(m.Assignments) == 0 {
			t.row(g.Group, "-", "-", "-", "-", "-", m.MemberID, dash(m.Host), dash(m.ClientID))
		}
	}
	return t.flush()
}

// dash is s, or "-" when s is empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// optInt renders an optional number ("-" when absent).
func optInt(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}

// resetFlags are the flags of group reset-offsets.
type resetFlags struct {
	topic      string
	toEarliest bool
	toLatest   bool
	toOffset   int64
	toDatetime string
	shiftBy    int64
	execute    bool
	dryRun     bool
}

func newGroupResetOffsetsCmd(a *app) *cobra.Command {
	f := &resetFlags{}
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP --topic TOPIC[:P,P...] TARGET [--execute]",
		Short: "Move a group's committed offsets (a dry run unless --execute)",
		Long: `Move the committed offsets of a group without members, for every partition of
--topic or the listed ones (--topic orders:0,2). Give exactly one target:

  --to-earliest        the log start
  --to-latest          the log end (skip everything not yet read)
  --to-offset N        offset N (clamped to the log)
  --to-datetime TIME   the first record at or after TIME: RFC 3339
                       (2026-01-02T15:04:05Z) or a negative duration (-1h)
  --shift-by N         N more (or, negative, fewer) than the committed offset

Without --execute it is a dry run: it prints what would change and changes
nothing. A group with members cannot be reset (NON_EMPTY_GROUP): stop its
consumers first.`,
		Example: `  # What would a rewind of an hour do?
  weir group reset-offsets billing --topic orders --to-datetime -1h

  # Rewind partitions 0 and 1 to the start, for real
  weir group reset-offsets billing --topic orders:0,1 --to-earliest --execute

  # Skip the next 10 records of every partition
  weir group reset-offsets billing --topic orders --shift-by 10 --execute -o json`,
		Args:              exactArgs("GROUP"),
		ValidArgsFunction: groupCompletion(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := resetRequest(cmd, f, time.Now())
			if err != nil {
				return err
			}
			ctx, cancel, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			out, err := c.ResetOffsets(ctx, args[0], req)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.printStructured(out)
			}
			t := newTable(a.stdout, "GROUP", "TOPIC", "PARTITION", "OLD-OFFSET", "NEW-OFFSET")
			for _, r := range out.Offsets {
				t.row(out.Group, r.Topic, r.Partition, optInt(r.OldOffset), r.NewOffset)
			}
			if err := t.flush(); err != nil {
				return err
			}
			if out.DryRun {
				_, err = fmt.Fprintln(a.stdout, "Dry run: nothing changed (add --execute to apply).")
			} else {
				_, err = fmt.Fprintf(a.stdout, "Executed: the committed offsets of group %q are reset.\n", out.Group)
			}
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.topic, "topic", "", "the `TOPIC` to reset, optionally with partitions: orders:0,2 (required)")
	fs.BoolVar(&f.toEarliest, "to-earliest", false, "target: the log start")
	fs.BoolVar(&f.toLatest, "to-latest", false, "target: the log end")
	fs.Int64Var(&f.toOffset, "to-offset", 0, "target: offset `N`")
	fs.StringVar(&f.toDatetime, "to-datetime", "", "target: the first record at or after `TIME` (RFC 3339 or a negative duration like -1h)")
	fs.Int64Var(&f.shiftBy, "shift-by", 0, "target: the committed offset plus `N` (may be negative)")
	fs.BoolVar(&f.execute, "execute", false, "apply the reset (without it: a dry run)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "only show what would change (the default)")
	_ = cmd.RegisterFlagCompletionFunc("topic", topicNameCompletion(a))
	return cmd
}

// resetRequest turns the flags of reset-offsets into the API's request.
func resetRequest(cmd *cobra.Command, f *resetFlags, now time.Time) (client.ResetOffsetsRequest, error) {
	var req client.ResetOffsetsRequest
	path := cmd.CommandPath()
	if f.topic == "" {
		return req, usageError(fmt.Errorf("%s: --topic is required (see '%s --help')", path, path))
	}
	topic, parts, hasParts := strings.Cut(f.topic, ":")
	if topic == "" {
		return req, usageError(fmt.Errorf("--topic %q: the topic name is missing", f.topic))
	}
	req.Topic = topic
	if hasParts {
		for s := range strings.SplitSeq(parts, ",") {
			p, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
			if err != nil || p < 0 {
				return req, usageError(fmt.Errorf("--topic %q: partitions must be numbers from 0, comma-separated, got %q", f.topic, s))
			}
			if slices.Contains(req.Partitions, int32(p)) {
				return req, usageError(fmt.Errorf("--topic %q: partition %d is listed twice", f.topic, p))
			}
			req.Partitions = append(req.Partitions, int32(p))
		}
	}
	var targets []string
	for _, name := range []string{"to-earliest", "to-latest", "to-offset", "to-datetime", "shift-by"} {
		if cmd.Flags().Changed(name) {
			targets = append(targets, "--"+name)
		}
	}
	if len(targets) != 1 {
		what := "none"
		if len(targets) > 1 {
			what = strings.Join(targets, " and ")
		}
		return req, usageError(fmt.Errorf("%s: give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime and --shift-by, got %s (see '%s --help')",
			path, what, path))
	}
	switch targets[0] {
	case "--to-earliest":
		if !f.toEarliest {
			return req, usageError(errors.New("--to-earliest=false is not a target"))
		}
		req.To = client.ResetToEarliest
	case "--to-latest":
		if !f.toLatest {
			return req, usageError(errors.New("--to-latest=false is not a target"))
		}
		req.To = client.ResetToLatest
	case "--to-offset":
		if f.toOffset < 0 {
			return req, usageError(fmt.Errorf("--to-offset must not be negative, got %d", f.toOffset))
		}
		req.To, req.Value = client.ResetToOffset, &f.toOffset
	case "--to-datetime":
		ms, err := parseFromTime(f.toDatetime, now)
		if err != nil {
			return req, usageError(fmt.Errorf("--to-datetime: %w", err))
		}
		if ms < 0 {
			return req, usageError(fmt.Errorf("--to-datetime: %q is before 1970", f.toDatetime))
		}
		req.To, req.Value = client.ResetToTimestamp, &ms
	case "--shift-by":
		req.To, req.Value = client.ResetShift, &f.shiftBy
	}
	if f.execute && f.dryRun {
		return req, usageError(errors.New("give --execute or --dry-run, not both"))
	}
	dry := !f.execute
	req.DryRun = &dry
	return req, nil
}

func newGroupDeleteCmd(a *app) *cobra.Command {
	var ifExists bool
	cmd := &cobra.Command{
		Use:   "delete GROUP",
		Short: "Delete a group without members, and its committed offsets",
		Long: `Delete a consumer group and its committed offsets. A group with members
cannot be deleted (NON_EMPTY_GROUP): stop its consumers first. With
--if-exists, a group that does not exist is success.`,
		Example: `  weir group delete billing
  weir group delete billing --if-exists`,
		Args:              exactArgs("GROUP"),
		ValidArgsFunction: groupCompletion(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			name := args[0]
			err = c.DeleteGroup(ctx, name)
			if err != nil && !(ifExists && client.IsCode(err, client.CodeGroupIDNotFound)) {
				return err
			}
			if a.structured() {
				return nil // 204: the API has no body to show
			}
			if err != nil {
				_, err = fmt.Fprintf(a.stdout, "Group %q does not exist.\n", name)
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "Deleted group %q.\n", name)
			return err
		},
	}
	cmd.Flags().BoolVar(&ifExists, "if-exists", false, "succeed if the group does not exist")
	return cmd
}
