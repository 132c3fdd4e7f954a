package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"weir/client"
)

// globalFlags are the root's persistent flags, used by the client commands.
type globalFlags struct {
	servers string
	output  string
	timeout time.Duration
}

// Output formats of -o.
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
)

// addGlobalFlags registers --server, -o/--output and --timeout on root.
func addGlobalFlags(root *cobra.Command, a *app) {
	g := &a.global
	pf := root.PersistentFlags()
	pf.StringVar(&g.servers, "server", envOr(a, "WEIR_SERVER", "http://127.0.0.1:8082"),
		"server `URL`s, comma-separated; the next is tried when one cannot be reached (env WEIR_SERVER)")
	pf.StringVarP(&g.output, "output", "o", outTable, "output `format`: table, json (the API's shape) or yaml")
	pf.DurationVar(&g.timeout, "timeout", 30*time.Second, "time limit of each request to the server (0: none)")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{outTable, outJSON, outYAML}, cobra.ShellCompDirectiveNoFileComp))
}

// newClient checks the global flags and returns a client of --server.
func (a *app) newClient() (*client.Client, error) {
	switch a.global.output {
	case outTable, outJSON, outYAML:
	default:
		return nil, usageError(fmt.Errorf("-o/--output must be table, json or yaml, got %q", a.global.output))
	}
	if a.global.timeout < 0 {
		return nil, usageError(errors.New("--timeout must not be negative"))
	}
	var servers []string
	for s := range strings.SplitSeq(a.global.servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			servers = append(servers, s)
		}
	}
	c, err := client.New(servers, client.WithUserAgent("weir-cli"), client.WithMaxIdleConnsPerHost(4))
	if err != nil {
		return nil, usageError(fmt.Errorf("--server: %w", err))
	}
	return c, nil
}

// connect is the start of every request-reply command: a client for the
// --server list and a context bounded by --timeout.
func (a *app) connect(ctx context.Context) (context.Context, context.CancelFunc, *client.Client, error) {
	c, err := a.newClient()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := a.reqCtx(ctx)
	return ctx, cancel, c, nil
}

// reqCtx bounds one request by --timeout.
func (a *app) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if a.global.timeout > 0 {
		return context.WithTimeout(ctx, a.global.timeout)
	}
	return context.WithCancel(ctx)
}

// structured reports whether -o asks for JSON or YAML.
func (a *app) structured() bool { return a.global.output == outJSON || a.global.output == outYAML }

// printStructured writes v as indented JSON or as YAML, per -o.
func (a *app) printStructured(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if a.global.output == outYAML {
		data, err = jsonToYAML(data)
		if err != nil {
			return err
		}
		_, err = a.stdout.Write(data)
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = a.stdout.Write(buf.Bytes())
	return err
}

// jsonToYAML converts JSON text to block-style YAML, keeping the key order.
func jsonToYAML(data []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, err
	}
	var plain func(*yaml.Node)
	plain = func(n *yaml.Node) {
		n.Style = 0
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// table is a tab-separated table with aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	t.row(toAny(header)...)
	return t
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (t *table) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprint(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// joinIDs renders broker ids as "1,2,3" ("-" when there are none).
func joinIDs(ids []int32) string {
	if len(ids) == 0 {
		return "-"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

// parseKVs parses repeated key=value flags.
func parseKVs(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError(fmt.Errorf("%s wants key=value, got %q", flag, kv))
		}
		m[k] = v
	}
	return m, nil
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// exactArgs is cobra.ExactArgs as a usage error naming the arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageError(fmt.Errorf("%s takes %d argument(s) (%s), got %d (see '%s --help')",
				cmd.CommandPath(), len(names), strings.Join(names, " "), len(args), cmd.CommandPath()))
		}
		for i, a := range args {
			if a == "" {
				return usageError(fmt.Errorf("%s: %s must not be empty", cmd.CommandPath(), names[i]))
			}
		}
		return nil
	}
}

// topicCompletion completes a command's TOPIC argument from the server.
func topicCompletion(a *app) cobra.CompletionFunc {
	return firstArg(topicNameCompletion(a))
}

// groupCompletion completes a command's GROUP argument from the server.
func groupCompletion(a *app) cobra.CompletionFunc {
	return firstArg(serverCompletion(a, listGroupNames))
}

// listGroupNames lists the names of the cluster's groups.
func listGroupNames(ctx context.Context, c *client.Client) ([]string, error) {
	groups, err := c.ListGroups(ctx)
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = g.Group
	}
	return names, err
}

// topicNameCompletion completes topic names (e.g. of a --topic flag).
func topicNameCompletion(a *app) cobra.CompletionFunc {
	return serverCompletion(a, func(ctx context.Context, c *client.Client) ([]string, error) {
		topics, err := c.ListTopics(ctx, false)
		names := make([]string, len(topics))
		for i, t := range topics {
			names[i] = t.Name
		}
		return names, err
	})
}

// firstArg completes only a command's first argument.
func firstArg(f cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return f(cmd, args, toComplete)
	}
}

// serverCompletion completes names that list asks the server for; no
// answer within 2 s (or a failure) completes nothing.
func serverCompletion(a *app, list func(context.Context, *client.Client) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		c, err := a.newClient()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
		defer cancel()
		names, err := list(ctx, c)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
