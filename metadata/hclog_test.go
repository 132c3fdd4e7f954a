package metadata

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func jsonLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: LevelTrace, AddSource: true}))
	var hl hclog.Logger = NewHCLogger(sl, "raft")

	hl.Trace("t", "k", 1)
	hl.Debug("d")
	hl.Info("i", "peer", "n2", "err", errors.New("boom"))
	hl.Warn("w")
	hl.Error("e")
	hl.Log(hclog.Info, "logged")
	hl.Named("transport").With("node", "7").Info("named", "x", hclog.Fmt("%d-%s", 3, "y"))
	hl.ResetNamed("other").Info("reset", 42, "nonstring-key", "dangling")

	lines := jsonLines(t, &buf)
	if len(lines) != 8 {
		t.Fatalf("%d lines: %s", len(lines), buf.String())
	}
	wantLevels := []string{"DEBUG-4", "DEBUG", "INFO", "WARN", "ERROR", "INFO", "INFO", "INFO"}
	for i, want := range wantLevels {
		if lines[i]["level"] != want {
			t.Errorf("line %d level %v, want %v", i, lines[i]["level"], want)
		}
	}
	if l := lines[2]; l["msg"] != "i" || l["peer"] != "n2" || l["err"] != "boom" || l["logger"] != "raft" {
		t.Errorf("key/values lost: %v", l)
	}
	if l := lines[6]; l["logger"] != "raft.transport" || l["node"] != "7" || l["x"] != "3-y" {
		t.Errorf("Named/With: %v", l)
	}
	if l := lines[7]; l["logger"] != "other" || l["42"] != "nonstring-key" || l["EXTRA_VALUE_AT_END"] != "dangling" {
		t.Errorf("ResetNamed/odd args: %v", l)
	}
	src, _ := lines[0]["source"].(map[string]any)
	if file, _ := src["file"].(string); !strings.HasSuffix(file, "hclog_test.go") {
		t.Errorf("source should be the caller, got %v", src)
	}
}

func TestHCLogLevels(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	hl := NewHCLogger(sl, "")
	if hl.IsDebug() || hl.IsTrace() || !hl.IsInfo() || !hl.IsError() {
		t.Fatal("Is* should follow the slog handler's level")
	}
	if hl.GetLevel() != hclog.Info {
		t.Fatalf("GetLevel %v", hl.GetLevel())
	}
	hl.Debug("hidden")
	hl.SetLevel(hclog.Warn)
	hl.Info("hidden too")
	hl.Warn("shown")
	hl.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[ERR] from std")
	lines := jsonLines(t, &buf)
	if len(lines) != 2 || lines[0]["msg"] != "shown" || lines[1]["msg"] != "from std" || lines[1]["level"] != "ERROR" {
		t.Fatalf("got %s", buf.String())
	}
	hl.SetLevel(hclog.Off)
	hl.Error("off")
	if strings.Contains(buf.String(), "off") {
		t.Fatal("Off still logs")
	}
}
