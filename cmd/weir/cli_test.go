package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cliEnv runs the built binary against one node, with WEIR_SERVER set.
type cliEnv struct {
	t   *testing.T
	bin string
	env []string
}

func (e *cliEnv) run(stdin string, args ...string) result {
	e.t.Helper()
	cmd := weirCmd(e.t, e.bin, e.env, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run weir %q: %v", args, err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// ok runs a command that must succeed with nothing on stderr.
func (e *cliEnv) ok(stdin string, args ...string) string {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != 0 || r.stderr != "" {
		e.t.Fatalf("weir %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	return r.stdout
}

// fails runs a command that must exit with code, printing one "weir: " line
// on stderr that contains each of want.
func (e *cliEnv) fails(code int, args []string, want ...string) {
	e.t.Helper()
	r := e.run("", args...)
	if r.code != code {
		e.t.Fatalf("weir %q: exit %d, want %d; stdout %q stderr %q", args, r.code, code, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "weir: ") || !strings.HasSuffix(r.stderr, "\n") {
		e.t.Fatalf("weir %q: stderr is not a weir: line: %q", args, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			e.t.Fatalf("weir %q: stderr %q lacks %q", args, r.stderr, w)
		}
	}
}

var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "UUID"},
	{regexp.MustCompile(`-\d{13}-UUID`), "-MS-UUID"}, // the time in a group member id
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "ADDR"},
	{regexp.MustCompile(`("timestamp": ?|timestamp: )\d+`), "${1}TS"},
	{regexp.MustCompile(`("broker_epoch": |broker_epoch: )\d+`), "${1}EPOCH"},
	{regexp.MustCompile(`("leader_count": |leader_count: )\d+`), "${1}N"},
}

// golden compares got, with volatile fields masked, to testdata/golden/name;
// WEIR_UPDATE_GOLDEN=1 rewrites the file instead.
func golden(t *testing.T, name, got string) {
	t.Helper()
	for _, v := range volatile {
		got = v.re.ReplaceAllString(got, v.with)
	}
	path := filepath.Join("testdata", "golden", name)
	if os.Getenv("WEIR_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with WEIR_UPDATE_GOLDEN=1 to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

// TestCLI runs every client command of the built binary against a real node.
func TestCLI(t *testing.T) {
	n := startNode(t)
	// GORACE: the race runtime otherwise sleeps 1 s in every exit with status 0.
	e := &cliEnv{t: t, bin: weirBinary(t), env: []string{"WEIR_SERVER=" + n.url(), "GORACE=atexit_sleep_ms=0"}}

	t.Run("help", func(t *testing.T) {
		for _, c := range [][]string{{}, {"topic"}, {"topic", "create"}, {"topic", "list"}, {"topic", "describe"},
			{"topic", "alter"}, {"topic", "delete"}, {"produce"}, {"consume"}, {"cluster"}, {"cluster", "status"},
			{"cluster", "brokers"}, {"completion"}, {"group"}, {"group", "list"}, {"group", "describe"},
			{"group", "reset-offsets"}, {"group", "delete"}} {
			out := e.ok("", append(c, "--help")...)
			for _, w := range []string{"Examples:", "--server", "--output", "--timeout"} {
				if !strings.Contains(out, w) {
					t.Errorf("weir %s --help lacks %q", strings.Join(c, " "), w)
				}
			}
		}
	})

	t.Run("completion", func(t *testing.T) {
		for _, sh := range []string{"bash", "zsh", "fish"} {
			if out := e.ok("", "completion", sh); !strings.Contains(out, "weir") || len(out) < 500 {
				t.Errorf("completion %s: %d bytes", sh, len(out))
			}
		}
	})

	t.Run("bad usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"topic", "create"},
			{"topic", "create", "x", "-p", "0"},
			{"topic", "create", "x", "-c", "retention.ms"},
			{"topic", "create", "x", "--partitions", "many"},
			{"topic", "list", "extra"},
			{"topic", "list", "-o", "xml"},
			{"topic", "list", "--timeout", "-1s"},
			{"topic", "describe"},
			{"topic", "alter", "x"},
			{"topic", "alter", "x", "-c", "a=1", "--delete-config", "a"},
			{"topic", "delete"},
			{"topic", "bogus"},
			{"produce"},
			{"produce", "x", "--acks", "2"},
			{"produce", "x", "--batch", "0"},
			{"produce", "x", "--header", "novalue"},
			{"consume", "x", "--partition", "-1"},
			{"consume", "x", "--partition", "0", "--format", "%x"},
			{"consume", "x", "--partition", "0", "--offset", "1", "--from-beginning"},
			{"consume", "x", "--partition", "0", "--from-time", "yesterday"},
			{"consume", "x", "--partition", "0", "-n", "-1"},
			{"cluster", "status", "extra"},
			{"cluster", "brokers", "extra"},
			{"cluster", "bogus"},
			{"completion"},
			{"completion", "tcsh"},
			{"topic", "list", "--server", "ftp://x"},
		} {
			e.fails(2, args)
		}
	})

	t.Run("topics", func(t *testing.T) {
		golden(t, "create.txt", e.ok("", "topic", "create", "alpha", "-p", "3", "-r", "1"))
		golden(t, "create.json", e.ok("", "topic", "create", "beta", "-p", "1", "-c", "cleanup.policy=compact", "-c", "retention.ms=1000", "-o", "json"))
		e.fails(1, []string{"topic", "create", "alpha"}, "TOPIC_ALREADY_EXISTS")
		golden(t, "create-exists.txt", e.ok("", "topic", "create", "alpha", "--if-not-exists"))
		golden(t, "create-exists.json", e.ok("", "topic", "create", "alpha", "-p", "7", "--if-not-exists", "-o", "json"))
		e.fails(1, []string{"topic", "create", "bad/name"}, "INVALID_TOPIC")
		e.fails(1, []string{"topic", "create", "gamma", "-c", "no.such.config=1"}, "INVALID_CONFIG")

		golden(t, "list.txt", e.ok("", "topic", "list"))
		golden(t, "list.json", e.ok("", "topic", "list", "-o", "json"))
		golden(t, "list.yaml", e.ok("", "topic", "list", "-o", "yaml"))

		e.ok("a\nb\nc\n", "produce", "alpha", "--partition", "1")
		golden(t, "describe.txt", e.ok("", "topic", "describe", "alpha"))
		golden(t, "describe.json", e.ok("", "topic", "describe", "alpha", "-o", "json"))
		golden(t, "describe.yaml", e.ok("", "topic", "describe", "alpha", "-o", "yaml"))
		golden(t, "describe-under-replicated.txt", e.ok("", "topic", "describe", "alpha", "--under-replicated"))
		if out := e.ok("", "topic", "describe", "alpha", "--unavailable", "-o", "json"); !strings.Contains(out, `"partitions": []`) {
			t.Errorf("--unavailable -o json: %s", out)
		}
		e.fails(1, []string{"topic", "describe", "nope"}, "UNKNOWN_TOPIC_OR_PARTITION")

		golden(t, "alter.txt", e.ok("", "topic", "alter", "alpha", "-p", "4", "-c", "retention.ms=3600000"))
		out := e.ok("", "topic", "describe", "alpha", "-o", "json")
		if !strings.Contains(out, `"retention.ms": "3600000"`) || !strings.Contains(out, `"partition": 3,`) {
			t.Errorf("after alter: %s", out)
		}
		out = e.ok("", "topic", "alter", "alpha", "--delete-config", "retention.ms", "-o", "json")
		if !strings.Contains(out, `"retention.ms": "604800000"`) {
			t.Errorf("after --delete-config: %s", out)
		}
		e.fails(1, []string{"topic", "alter", "alpha", "-p", "2"}, "INVALID_PARTITIONS")
		e.fails(1, []string{"topic", "alter", "nope", "-p", "2"}, "UNKNOWN_TOPIC_OR_PARTITION")

		golden(t, "delete.txt", e.ok("", "topic", "delete", "beta"))
		e.fails(1, []string{"topic", "delete", "beta"}, "UNKNOWN_TOPIC_OR_PARTITION")
		golden(t, "delete-missing.txt", e.ok("", "topic", "delete", "beta", "--if-exists"))
		if out := e.ok("", "topic", "list", "-o", "json"); strings.Contains(out, "beta") {
			t.Errorf("beta still listed: %s", out)
		}
	})

	t.Run("produce and consume", func(t *testing.T) {
		e.ok("", "topic", "create", "pc", "-p", "3")
		// Values byte for byte: UTF-8, JSON, tabs, spaces, empty, not UTF-8.
		values := []string{"plain", `{"amount":5}`, "tab\tinside", "  spaces  ", "", "héllo ☃", "\xff\xfe\x00raw", "42", "last"}
		in := strings.Join(values, "\n") + "\n"
		if out := e.ok(in, "produce", "pc", "--partition", "0", "--batch", "4"); out != "" {
			t.Errorf("produce printed %q without -v", out)
		}
		got := e.ok("", "consume", "pc", "--partition", "0", "--from-beginning", "-n", itoa(len(values)), "--format", `%v\n`)
		if got != in {
			t.Fatalf("consumed values differ:\n got %q\nwant %q", got, in)
		}
		// The default output: one JSON object per record.
		golden(t, "consume-p0.jsonl", e.ok("", "consume", "pc", "--partition", "0", "--from-beginning"))
		// -n stops early; --offset starts later; without -n it stops at the end.
		if out := e.ok("", "consume", "pc", "--partition", "0", "--offset", "7", "--format", `%o:%v\n`); out != "7:42\n8:last\n" {
			t.Errorf("--offset 7: %q", out)
		}
		if out := e.ok("", "consume", "pc", "--partition", "0", "--from-beginning", "-n", "2", "--format", `%v|`); out != `plain|{"amount":5}|` {
			t.Errorf("-n 2: %q", out)
		}
		if out := e.ok("", "consume", "pc", "--partition", "0"); out != "" {
			t.Errorf("from the end without --follow: %q", out)
		}

		// Keys, headers, -v and every --format directive.
		out := e.ok("k1=v1\nk2=a=b\nnokey\n", "produce", "pc", "--partition", "1", "--key-separator", "=",
			"--header", "trace=abc", "--header", "app=cli", "-v")
		if out != "partition 1 offset 0\npartition 1 offset 1\npartition 1 offset 2\n" {
			t.Errorf("produce -v: %q", out)
		}
		out = e.ok("", "consume", "pc", "--partition", "1", "--from-beginning", "--format", `%t %p %o [%k] [%v] %h %T 100%%\t|\n`)
		want := regexp.MustCompile(`^pc 1 0 \[k1\] \[v1\] app=cli,trace=abc \d{13} 100%\t\|\n` +
			`pc 1 1 \[k2\] \[a=b\] app=cli,trace=abc \d{13} 100%\t\|\n` +
			`pc 1 2 \[\] \[nokey\] app=cli,trace=abc \d{13} 100%\t\|\n$`)
		if !want.MatchString(out) {
			t.Errorf("--format: %q", out)
		}
		golden(t, "consume-p1.jsonl", e.ok("", "consume", "pc", "--partition", "1", "--from-beginning"))
		if out := e.ok("x\n", "produce", "pc", "--partition", "2", "-v", "-o", "json"); !regexp.MustCompile(`^\{"partition":2,"offset":0,"timestamp":\d+\}\n$`).MatchString(out) {
			t.Errorf("produce -v -o json: %q", out)
		}

		// --from-time: an hour ago is everything, the year 2100 nothing.
		if out := e.ok("", "consume", "pc", "--partition", "1", "--from-time", "-1h", "--format", `%o`); out != "012" {
			t.Errorf("--from-time -1h: %q", out)
		}
		if out := e.ok("", "consume", "pc", "--partition", "1", "--from-time", "2100-01-01T00:00:00Z"); out != "" {
			t.Errorf("--from-time 2100: %q", out)
		}

		// --follow waits for records that are produced after it started.
		e.ok("", "topic", "create", "follow", "-p", "1")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fcmd := weirCmd(t, e.bin, e.env, "consume", "follow", "--partition", "0", "--offset", "0", "--follow", "-n", "2", "--format", `%v\n`)
		var fout, ferr bytes.Buffer
		fcmd.Stdout, fcmd.Stderr = &fout, &ferr
		if err := fcmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- fcmd.Wait() }()
		e.ok("one\ntwo\nthree\n", "produce", "follow")
		select {
		case err := <-done:
			if err != nil || fout.String() != "one\ntwo\n" {
				t.Errorf("consume --follow -n 2: %v, stdout %q, stderr %q", err, fout.String(), ferr.String())
			}
		case <-ctx.Done():
			_ = fcmd.Process.Kill()
			<-done
			t.Fatalf("consume --follow -n 2 did not exit; stdout %q", fout.String())
		}

		// Failures: exit 1 with the server's error code.
		e.fails(1, []string{"consume", "nope", "--partition", "0"}, "UNKNOWN_TOPIC_OR_PARTITION")
		e.fails(1, []string{"consume", "pc", "--partition", "0", "--offset", "1000"}, "OFFSET_OUT_OF_RANGE")
		e.fails(1, []string{"consume", "pc", "--partition", "9", "--from-time", "-1m"}, "no partition 9")
		r := e.run("x\n", "produce", "nope")
		if r.code != 1 || !strings.Contains(r.stderr, "UNKNOWN_TOPIC_OR_PARTITION") {
			t.Errorf("produce to a missing topic: exit %d, stderr %q", r.code, r.stderr)
		}
		e.ok("", "topic", "create", "small", "-p", "1", "-c", "max.message.bytes=200")
		r = e.run("short\n"+strings.Repeat("x", 1000)+"\n", "produce", "small")
		if r.code != 1 || !strings.Contains(r.stderr, "MESSAGE_TOO_LARGE") {
			t.Errorf("produce of a too large record: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("cluster", func(t *testing.T) {
		out := e.ok("", "cluster", "status")
		for _, w := range []string{"Controller: 1\n", "Healthy: true\n", "Brokers: 1 (- down)\n", "Under-replicated partitions: 0\n",
			"ID  HTTP-ADDR", "1*  " + n.httpAddr, "alive  true"} {
			if !strings.Contains(out, w) {
				t.Errorf("cluster status lacks %q:\n%s", w, out)
			}
		}
		golden(t, "cluster-status.json", e.ok("", "cluster", "status", "-o", "json"))
		golden(t, "cluster-status.yaml", e.ok("", "cluster", "status", "-o", "yaml"))
		golden(t, "brokers.json", e.ok("", "cluster", "brokers", "-o", "json"))
		out = e.ok("", "cluster", "brokers")
		if !regexp.MustCompile(`^ID +HTTP-ADDR +RAFT-ADDR +RACK +STATE +VOTER +LEADERS +EPOCH\n1 +` + regexp.QuoteMeta(n.httpAddr) + ` +` +
			regexp.QuoteMeta(n.raftAddr) + ` +- +alive +true +\d+ +\d+\n$`).MatchString(out) {
			t.Errorf("cluster brokers:\n%s", out)
		}
	})

	t.Run("servers", func(t *testing.T) {
		dead := freePort(t)
		// The first server is down: the next one answers.
		e.ok("", "cluster", "brokers", "--server", "http://"+dead+","+n.url())
		// --server beats WEIR_SERVER; nothing reachable is a failure (1).
		e.fails(1, []string{"cluster", "brokers", "--server", "http://" + dead}, "connection refused")
		// bench takes the global --server too.
		r := e.run("", "bench", "produce", "--server", "http://"+dead, "--records", "1")
		if r.code != 1 || !strings.Contains(r.stderr, dead) {
			t.Errorf("bench produce against a dead server: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}
