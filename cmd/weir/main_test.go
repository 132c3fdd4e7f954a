package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// weirCmd runs in an empty directory with no WEIR_* variables from the
// caller's environment.
func weirCmd(t *testing.T, bin string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WEIR_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

type result struct {
	code           int
	stdout, stderr string
}

func runWeir(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	cmd := weirCmd(t, bin, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run weir %q: %v", args, err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// TestBinary checks what a user sees of the real binary (built by
// weirBinary): exit codes, stdout and stderr.
func TestBinary(t *testing.T) {
	bin := weirBinary(t)

	// A bad start-up is exactly one line on stderr, naming the key, exit 2.
	failures := []struct {
		name string
		env  []string
		args []string
		want []string // substrings of the one line
	}{
		{"node id zero", nil, []string{"serve", "--node-id", "0"}, []string{"node_id", "--node-id"}},
		{"missing config file", nil, []string{"serve", "--config", "missing.yaml"}, []string{"config", "missing.yaml", "no such file"}},
		{"missing config file from env", []string{"WEIR_CONFIG=missing.yaml"}, []string{"serve"}, []string{"missing.yaml", "WEIR_CONFIG"}},
		{"bad env value", []string{"WEIR_LOG_LEVEL=loud"}, []string{"serve"}, []string{"log_level", "WEIR_LOG_LEVEL"}},
		{"bad address", nil, []string{"serve", "--http-addr", "foo"}, []string{`http_addr: "foo" is not host:port`}},
		{"unknown flag", nil, []string{"serve", "--nod-id", "1"}, []string{"unknown flag", "--nod-id"}},
		{"unknown command", nil, []string{"sevre"}, []string{`unknown command "sevre"`, "serve"}},
		{"serve takes no args", nil, []string{"serve", "now"}, []string{"no arguments"}},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			r := runWeir(t, bin, tc.env, tc.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", r.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "weir: ") {
				t.Fatalf("stderr is not one weir: line: %q", r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("stderr %q lacks %q", lines[0], w)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}

	t.Run("unknown yaml key", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "weir.yaml")
		if err := os.WriteFile(cfg, []byte("node_id: 2\nlog.retention.ms: 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runWeir(t, bin, nil, "serve", "--config", cfg)
		if r.code != 2 || !strings.Contains(r.stderr, "log.retention.ms: unknown key; did you mean log_retention_ms?") ||
			!strings.Contains(r.stderr, "line 2") || strings.Count(r.stderr, "\n") != 1 {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
	})

	help := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"serve", "version", "Examples:"}},
		{nil, []string{"serve", "version"}},
		{[]string{"serve", "--help"}, []string{"--node-id", "--voters", "--shutdown-timeout-ms", "WEIR_NODE_ID", "--config", "Examples:"}},
		{[]string{"help", "serve"}, []string{"--node-id"}},
		{[]string{"version"}, []string{"weir ", "go1."}},
		{[]string{"--version"}, []string{"weir ", "go1."}},
	}
	for _, tc := range help {
		t.Run(strings.Join(append([]string{"weir"}, tc.args...), " "), func(t *testing.T) {
			r := runWeir(t, bin, nil, tc.args...)
			if r.code != 0 {
				t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}

	// SIGTERM makes a running node shut down cleanly: exit 0.
	t.Run("sigterm", func(t *testing.T) {
		cmd := weirCmd(t, bin, nil, "serve", "--data-dir", t.TempDir(),
			"--http-addr", freePort(t), "--raft-addr", freePort(t), "--shutdown-timeout-ms", "10000")
		var stderr syncBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(stderr.String(), "starting weir") {
			select {
			case err := <-waited:
				t.Fatalf("weir exited before the signal: %v\n%s", err, stderr.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("weir did not start:\n%s", stderr.String())
			}
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-waited:
			if err != nil {
				t.Fatalf("after SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("weir did not stop after SIGTERM:\n%s", stderr.String())
		}
		if !strings.Contains(stderr.String(), "weir stopped") {
			t.Fatalf("no clean stop logged:\n%s", stderr.String())
		}
	})
}
