package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"weir/client"
)

// sortedLines is out's lines in order, for output whose order across
// partitions is not fixed.
func sortedLines(out string) []string {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if out == "" {
		lines = nil
	}
	slices.Sort(lines)
	return lines
}

// describeGroup is `weir group describe -o json`, decoded.
func (e *cliEnv) describeGroup(group string) client.Group {
	e.t.Helper()
	var g client.Group
	if err := json.Unmarshal([]byte(e.ok("", "group", "describe", group, "-o", "json")), &g); err != nil {
		e.t.Fatal(err)
	}
	return g
}

// committed maps "topic-partition" to the group's committed offset (-1: none).
func committed(g client.Group) map[string]int64 {
	out := map[string]int64{}
	for _, o := range g.Offsets {
		off := int64(-1)
		if o.CommittedOffset != nil {
			off = *o.CommittedOffset
		}
		out[fmt.Sprintf("%s-%d", o.Topic, o.Partition)] = off
	}
	return out
}

// TestGroupCLI runs the group commands and consume --group and consume of
// every partition of the built binary against a real node.
func TestGroupCLI(t *testing.T) {
	n := startNode(t)
	e := &cliEnv{t: t, bin: weirBinary(t), env: []string{"WEIR_SERVER=" + n.url(), "GORACE=atexit_sleep_ms=0"}}
	c, err := client.New([]string{n.url()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()

	t.Run("bad usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"group", "bogus"},
			{"group", "list", "extra"},
			{"group", "describe"},
			{"group", "describe", "a", "b"},
			{"group", "delete"},
			{"group", "reset-offsets", "g", "--to-earliest"},
			{"group", "reset-offsets", "g", "--topic", "t"},
			{"group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"},
			{"group", "reset-offsets", "g", "--topic", "t", "--to-offset", "3", "--shift-by", "1"},
			{"group", "reset-offsets", "g", "--topic", "t", "--to-offset", "-1"},
			{"group", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday"},
			{"group", "reset-offsets", "g", "--topic", "t:x", "--to-earliest"},
			{"group", "reset-offsets", "g", "--topic", "t:1,1", "--to-earliest"},
			{"group", "reset-offsets", "g", "--topic", ":1", "--to-earliest"},
			{"group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--execute", "--dry-run"},
			{"consume", "t", "--group", "g", "--partition", "0"},
			{"consume", "t", "--group", "g", "--offset", "1"},
			{"consume", "t", "--group", "g", "--from-time", "-1m"},
			{"consume", "t", "--group", ""},
			{"consume", "t", "--offset", "1"},
		} {
			e.fails(2, args)
		}
		e.fails(2, []string{"group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--shift-by", "1"}, "got --to-earliest and --shift-by")
		e.fails(2, []string{"group", "reset-offsets", "g", "--topic", "t"}, "give exactly one of", "got none")
		e.fails(2, []string{"consume", "t", "--group", "g", "--partition", "0"}, "--group and --partition cannot be combined")
	})

	// orders: 3 records in partition 0, 2 in partition 1, none in 2.
	e.ok("", "topic", "create", "orders", "-p", "3")
	e.ok("a0\na1\na2\n", "produce", "orders", "--partition", "0")
	e.ok("b0\nb1\n", "produce", "orders", "--partition", "1")
	all := []string{"0:0 a0", "0:1 a1", "0:2 a2", "1:0 b0", "1:1 b1"}

	t.Run("consume all partitions", func(t *testing.T) {
		if out := e.ok("", "consume", "orders", "--from-beginning", "--format", `%p:%o %v\n`); out != strings.Join(all, "\n")+"\n" {
			t.Errorf("every partition, from the beginning: %q", out)
		}
		golden(t, "consume-all.jsonl", e.ok("", "consume", "orders", "--from-beginning"))
		// -n counts across partitions.
		if out := e.ok("", "consume", "orders", "--from-beginning", "-n", "4", "--format", `%p:%o %v\n`); out != strings.Join(all[:4], "\n")+"\n" {
			t.Errorf("-n 4: %q", out)
		}
		if out := e.ok("", "consume", "orders", "--from-time", "-1h", "--format", `%p:%o,`); out != "0:0,0:1,0:2,1:0,1:1," {
			t.Errorf("--from-time -1h: %q", out)
		}
		if out := e.ok("", "consume", "orders", "--from-time", "2100-01-01T00:00:00Z"); out != "" {
			t.Errorf("--from-time 2100: %q", out)
		}
		if out := e.ok("", "consume", "orders"); out != "" {
			t.Errorf("from the end without --follow: %q", out)
		}
		e.fails(1, []string{"consume", "nope"}, "UNKNOWN_TOPIC_OR_PARTITION")

		// --follow reads every partition at once: a record in each, the
		// first ones in the last partitions, all come.
		e.ok("", "topic", "create", "fan", "-p", "3")
		_, fout, done := startWeir(t, e, "consume", "fan", "--from-beginning", "--follow", "-n", "3", "--format", `%p:%o %v\n`)
		for _, p := range []string{"2", "1", "0"} {
			e.ok("v"+p+"\n", "produce", "fan", "--partition", p)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("consume --follow -n 3 of every partition did not exit; stdout %q", fout.String())
		}
		if got := sortedLines(fout.String()); !slices.Equal(got, []string{"0:0 v0", "1:0 v1", "2:0 v2"}) {
			t.Errorf("consume --follow -n 3 of every partition: %q", got)
		}
	})

	t.Run("consume --group", func(t *testing.T) {
		// The first run reads everything once; the second finds nothing new.
		first := e.ok("", "consume", "orders", "--group", "g1", "--from-beginning", "--format", `%p:%o %v\n`)
		if got := sortedLines(first); !slices.Equal(got, all) {
			t.Fatalf("first consume --group: %q, want %q", got, all)
		}
		if out := e.ok("", "consume", "orders", "--group", "g1", "--from-beginning"); out != "" {
			t.Fatalf("second consume --group read again: %q", out)
		}
		// What arrives later is read by the next run, once.
		e.ok("a3\n", "produce", "orders", "--partition", "0")
		e.ok("c0\n", "produce", "orders", "--partition", "2")
		if got := sortedLines(e.ok("", "consume", "orders", "--group", "g1", "--format", `%p:%o %v\n`)); !slices.Equal(got, []string{"0:3 a3", "2:0 c0"}) {
			t.Fatalf("third consume --group: %q", got)
		}
		all = append(all, "0:3 a3", "2:0 c0")
		slices.Sort(all)

		// -n stops after N records and commits exactly those: the next run
		// reads the rest, nothing twice, nothing lost.
		var seen []string
		for _, n := range []string{"2", "3"} {
			out := e.ok("", "consume", "orders", "--group", "g2", "--from-beginning", "-n", n, "--format", `%p:%o %v\n`)
			if got := len(sortedLines(out)); itoa(got) != n {
				t.Fatalf("consume --group -n %s printed %d records: %q", n, got, out)
			}
			seen = append(seen, sortedLines(out)...)
		}
		seen = append(seen, sortedLines(e.ok("", "consume", "orders", "--group", "g2", "--from-beginning", "--format", `%p:%o %v\n`))...)
		slices.Sort(seen)
		if !slices.Equal(seen, all) {
			t.Fatalf("consume --group -n 2, -n 3, then the rest: %q, want %q", seen, all)
		}

		// The default output: JSON lines naming topic and partition.
		golden(t, "consume-group.jsonl", strings.Join(sortedLines(e.ok("", "consume", "orders", "--group", "g3", "--from-beginning")), "\n")+"\n")
		// Without --from-beginning a new group starts at the end.
		if out := e.ok("", "consume", "orders", "--group", "g4"); out != "" {
			t.Errorf("a new group without --from-beginning: %q", out)
		}
		e.fails(1, []string{"consume", "nope", "--group", "g1"}, "UNKNOWN_TOPIC_OR_PARTITION")

		// After every run the group is empty again (the member left) with
		// its offsets at the log end.
		g := e.describeGroup("g1")
		if g.State != "Empty" || len(g.Members) != 0 {
			t.Errorf("g1 after consume: state %s, %d members", g.State, len(g.Members))
		}
		if got := committed(g); got["orders-0"] != 4 || got["orders-1"] != 2 || got["orders-2"] != 1 {
			t.Errorf("g1 committed %v, want orders-0: 4, orders-1: 2, orders-2: 1", got)
		}
	})

	t.Run("consume --group until interrupted", func(t *testing.T) {
		for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
			group := "follow-" + sig.String()
			cmd, out, done := startWeir(t, e, "consume", "orders", "--group", group, "--from-beginning", "--follow", "--format", `%p:%o %v\n`)
			e.ok("late\n", "produce", "orders", "--partition", "1")
			offs, err := c.TopicOffsets(testCtx(t, 10*time.Second), "orders", nil)
			if err != nil {
				t.Fatal(err)
			}
			total := int64(0)
			for _, p := range offs.Partitions {
				total += p.HighWatermark
			}
			pollUntil(t, 60*time.Second, "consume --group --follow to print every record", func() error {
				if got := len(sortedLines(out.String())); int64(got) != total {
					return fmt.Errorf("%d of %d records printed: %q", got, total, out.String())
				}
				return nil
			})
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("consume --group --follow after %v: %v", sig, err)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("consume --group --follow did not exit after %v", sig)
			}
			if lines := sortedLines(out.String()); int64(len(lines)) != total || !strings.Contains(out.String(), "late") {
				t.Errorf("printed %q, want the %d records of orders", lines, total)
			}
			// It left, and committed what it printed.
			g := e.describeGroup(group)
			if g.State != "Empty" || len(g.Members) != 0 {
				t.Errorf("%s after %v: state %s, members %+v", group, sig, g.State, g.Members)
			}
			for _, o := range g.Offsets {
				if o.Lag == nil || *o.Lag != 0 {
					t.Errorf("%s-%d: committed %v, log end %d after %v", o.Topic, o.Partition, o.CommittedOffset, o.LogEndOffset, sig)
				}
			}
		}
	})

	t.Run("list and describe", func(t *testing.T) {
		// A group of its own topic, so that what it shows is fixed.
		e.ok("", "topic", "create", "solo", "-p", "1")
		e.ok("x\ny\n", "produce", "solo")
		e.ok("", "consume", "solo", "--group", "shown", "--from-beginning", "-n", "1")
		golden(t, "group-describe-empty.txt", e.ok("", "group", "describe", "shown"))
		golden(t, "group-describe-empty.json", e.ok("", "group", "describe", "shown", "-o", "json"))

		ctx := testCtx(t, 30*time.Second)
		one, err := c.JoinGroup(ctx, "shown", client.JoinGroupRequest{Topics: []string{"solo"}, ClientID: "golden"})
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "group-describe.txt", e.ok("", "group", "describe", "shown"))
		golden(t, "group-describe.json", e.ok("", "group", "describe", "shown", "-o", "json"))
		golden(t, "group-describe.yaml", e.ok("", "group", "describe", "shown", "-o", "yaml"))
		// A second member has no partition left: a row of its own.
		two, err := c.JoinGroup(ctx, "shown", client.JoinGroupRequest{Topics: []string{"solo"}, ClientID: "golden"})
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "group-describe-idle-member.txt", e.ok("", "group", "describe", "shown"))

		// Groups with members cannot be reset or deleted.
		e.fails(1, []string{"group", "delete", "shown"}, "NON_EMPTY_GROUP")
		e.fails(1, []string{"group", "reset-offsets", "shown", "--topic", "solo", "--to-earliest"}, "NON_EMPTY_GROUP")
		for _, m := range []string{one.MemberID, two.MemberID} {
			if err := c.LeaveGroup(ctx, "shown", m); err != nil {
				t.Fatal(err)
			}
		}

		golden(t, "group-list.txt", e.ok("", "group", "list"))
		golden(t, "group-list.json", e.ok("", "group", "list", "-o", "json"))
		golden(t, "group-list.yaml", e.ok("", "group", "list", "-o", "yaml"))
		e.fails(1, []string{"group", "describe", "nope"}, "GROUP_ID_NOT_FOUND", `"nope"`)
	})

	t.Run("reset-offsets", func(t *testing.T) {
		// g1 has read orders to the end: 4, 2 and 1.
		before := committed(e.describeGroup("g1"))
		golden(t, "group-reset-dry-run.txt", e.ok("", "group", "reset-offsets", "g1", "--topic", "orders", "--to-earliest"))
		golden(t, "group-reset-dry-run.json", e.ok("", "group", "reset-offsets", "g1", "--topic", "orders:0,2", "--shift-by", "-1", "-o", "json"))
		if after := committed(e.describeGroup("g1")); !maps.Equal(after, before) {
			t.Fatalf("a dry run changed the offsets: %v, before %v", after, before)
		}

		golden(t, "group-reset-execute.txt", e.ok("", "group", "reset-offsets", "g1", "--topic", "orders:0,1", "--to-earliest", "--execute"))
		if got := committed(e.describeGroup("g1")); got["orders-0"] != 0 || got["orders-1"] != 0 || got["orders-2"] != 1 {
			t.Fatalf("after --execute: %v", got)
		}
		// The group reads them again.
		if got := sortedLines(e.ok("", "consume", "orders", "--group", "g1", "--format", `%p:%o %v\n`)); len(got) != 4+4 {
			t.Fatalf("after the reset consume --group read %q, want partitions 0 and 1 again", got)
		}
		golden(t, "group-reset-execute.json", e.ok("", "group", "reset-offsets", "g1", "--topic", "orders:0", "--to-offset", "2", "--execute", "-o", "json"))

		// --to-datetime: RFC 3339 and a negative duration.
		out := e.ok("", "group", "reset-offsets", "g1", "--topic", "orders:1", "--to-datetime", "-1h")
		if !regexp.MustCompile(`\ng1 +orders +1 +\d+ +0\nDry run`).MatchString(out) {
			t.Errorf("--to-datetime -1h:\n%s", out)
		}
		out = e.ok("", "group", "reset-offsets", "g1", "--topic", "orders:1", "--to-datetime", "2100-01-01T00:00:00Z", "--execute")
		if !regexp.MustCompile(`\ng1 +orders +1 +\d+ +4\nExecuted`).MatchString(out) {
			t.Errorf("--to-datetime 2100:\n%s", out)
		}

		e.fails(1, []string{"group", "reset-offsets", "g1", "--topic", "nope", "--to-earliest"}, "UNKNOWN_TOPIC_OR_PARTITION")
		e.fails(1, []string{"group", "reset-offsets", "g1", "--topic", "orders:9", "--to-earliest"}, "UNKNOWN_TOPIC_OR_PARTITION")
	})

	t.Run("delete", func(t *testing.T) {
		golden(t, "group-delete.txt", e.ok("", "group", "delete", "g2"))
		e.fails(1, []string{"group", "delete", "g2"}, "GROUP_ID_NOT_FOUND")
		if out := e.ok("", "group", "delete", "g2", "--if-exists"); out != "Group \"g2\" does not exist.\n" {
			t.Errorf("delete --if-exists: %q", out)
		}
		if out := e.ok("", "group", "list"); strings.Contains(out, "g2") {
			t.Errorf("g2 still listed:\n%s", out)
		}
		// A deleted group starts afresh.
		if got := sortedLines(e.ok("", "consume", "orders", "--group", "g2", "--from-beginning", "--format", `%p:%o %v\n`)); len(got) != 4+4+1 {
			t.Errorf("the deleted group read %q, want every record", got)
		}
	})
}

// startWeir starts the binary in the background; done gets its Wait error.
// It is killed at the end of the test if still running.
func startWeir(t *testing.T, e *cliEnv, args ...string) (*exec.Cmd, *syncBuffer, chan error) {
	t.Helper()
	cmd := weirCmd(t, e.bin, e.env, args...)
	out, errOut := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	waited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w; stderr %q", err, errOut.String())
		}
		done <- err
		close(waited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-waited
	})
	return cmd, out, done
}

// readmeScript is the first bash block after the "Scripting Weir" heading
// of the README.
func readmeScript(t *testing.T) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(text), "\n## Scripting Weir\n")
	if !ok {
		t.Fatal(`README.md has no "## Scripting Weir" section`)
	}
	_, block, ok := strings.Cut(after, "\n```bash\n")
	if !ok {
		t.Fatal(`no bash block in the README's "Scripting Weir" section`)
	}
	script, _, ok := strings.Cut(block, "\n```\n")
	if !ok {
		t.Fatal(`the bash block of "Scripting Weir" does not end`)
	}
	return script + "\n"
}

// freePortRange returns the first of n consecutive loopback ports that were
// free a moment ago, none of them in avoid.
func freePortRange(t *testing.T, n int, avoid ...int) int {
	t.Helper()
	for range 50 {
		base, err := strconv.Atoi(portOf(t, freePort(t)))
		if err != nil {
			t.Fatal(err)
		}
		if base+n > 65535 {
			continue
		}
		ok := true
		for p := base; p < base+n && ok; p++ {
			for _, a := range avoid {
				ok = ok && p != a
			}
			if ok {
				l, err := net.Listen("tcp", "127.0.0.1:"+itoa(p))
				if err != nil {
					ok = false
					continue
				}
				l.Close()
			}
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports found", n)
	return 0
}

// TestScript runs the README's "Scripting Weir" script, as written, against
// `weir local-cluster --nodes 3`, twice: both runs must succeed.
func TestScript(t *testing.T) {
	script := readmeScript(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("this test needs bash: %v", err)
	}
	bin := weirBinary(t)
	httpBase := freePortRange(t, 3)
	raftBase := freePortRange(t, 3, httpBase, httpBase+1, httpBase+2)
	p := startLocalCluster(t, "--nodes", "3", "--dir", filepath.Join(t.TempDir(), "lc"),
		"--base-http-port", itoa(httpBase), "--base-raft-port", itoa(raftBase))
	p.waitOutput(fmt.Sprintf("curl -s localhost:%d/v1/cluster", httpBase), 120*time.Second)
	var servers []string
	for i := range 3 {
		servers = append(servers, fmt.Sprintf("http://127.0.0.1:%d", httpBase+i))
	}
	env := []string{"WEIR_SERVER=" + strings.Join(servers, ","), "GORACE=atexit_sleep_ms=0",
		"PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")}
	// runBash runs script as `bash load.sh` in an empty directory.
	runBash := func(script string) (result, error) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "load.sh"), []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bash, "load.sh")
		cmd.Dir = dir
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "WEIR_") && !strings.HasPrefix(kv, "PATH=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			r.code, err = ee.ExitCode(), nil
		}
		return r, err
	}
	done := regexp.MustCompile(`(?m)^run-\d+-\d+: produced and read 1000 records; group page-view-loader has no lag$`)
	for run := 1; run <= 2; run++ {
		r, err := runBash(script)
		if err != nil || r.code != 0 || !done.MatchString(r.stdout) {
			t.Fatalf("run %d of the README script: exit %d (%v)\nstdout:\n%s\nstderr:\n%s", run, r.code, err, r.stdout, r.stderr)
		}
	}
	ctx := testCtx(t, 30*time.Second)
	cl, err := client.New(servers)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.CloseIdleConnections()
	g, err := cl.DescribeGroup(ctx, "page-view-loader")
	if err != nil {
		t.Fatal(err)
	}
	var read int64
	for _, o := range g.Offsets {
		if o.CommittedOffset == nil || o.Lag == nil || *o.Lag != 0 {
			t.Errorf("after two runs %s-%d: committed %v, log end %d", o.Topic, o.Partition, o.CommittedOffset, o.LogEndOffset)
		} else {
			read += *o.CommittedOffset
		}
	}
	if read != 2000 || len(g.Members) != 0 {
		t.Errorf("after two runs the group committed %d records and has %d members, want 2000 and none", read, len(g.Members))
	}

	// The script's lag check fails when the group is behind.
	if _, err := cl.Produce(ctx, "page-views", nil, []client.ProduceRecord{client.StringValue("x"), client.StringValue("y")}, client.AcksAll, 0); err != nil {
		t.Fatal(err)
	}
	_, check, ok := strings.Cut(script, "\n# 4.")
	check, _, _ = strings.Cut(check, "\n\n")
	if !ok || !strings.Contains(check, "weir group describe") {
		t.Fatalf("no lag check (# 4.) in the script:\n%s", script)
	}
	r, err := runBash("set -euo pipefail\ngroup=page-view-loader\n# 4." + check + "\necho unreachable\n")
	if err != nil || r.code != 1 || r.stderr != "group page-view-loader is 2 records behind\n" || r.stdout != "" {
		t.Fatalf("the lag check with a lag of 2: exit %d (%v), stdout %q, stderr %q", r.code, err, r.stdout, r.stderr)
	}

	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(90 * time.Second); code != 0 {
		t.Fatalf("local-cluster exit %d after SIGINT:\n%s", code, p.stderr)
	}
}
