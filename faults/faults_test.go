//go:build linux

package faults

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Profiles. smoke runs with `go test ./...`: every fault kind once on three
// nodes (namespaces where possible) and then random ones for a while, then
// a short five-node phase on the proxy, so both networks run in CI. long runs random faults for
// WEIR_FAULTS_DURATION, half on three nodes and half on five.
func smokeProfile() []phase {
	return []phase{
		{name: "3 nodes", nodes: 3, faults: allFaults(), duration: 40 * time.Second,
			holdLo: 3 * time.Second, holdHi: 6 * time.Second, downLo: 2 * time.Second, downHi: 4 * time.Second,
			gapLo: time.Second, gapHi: 2 * time.Second, waitHealthy: 30 * time.Second,
			partitions: 3, producers: 2, acks1: true, pace: 20 * time.Millisecond, maxOps: 20000, groupMembers: 3},
		{name: "5 nodes", nodes: 5, mode: modeProxy,
			faults: []string{FaultPartRing, FaultPartMinority, FaultKillLeader, FaultPartClient, FaultKillCoordinator},
			holdLo: 3 * time.Second, holdHi: 5 * time.Second, downLo: 2 * time.Second, downHi: 3 * time.Second,
			gapLo: time.Second, gapHi: 2 * time.Second, waitHealthy: 30 * time.Second,
			partitions: 3, producers: 2, pace: 30 * time.Millisecond, maxOps: 20000, groupMembers: 3},
	}
}

func longProfile(d time.Duration) []phase {
	base := phase{
		holdLo: 2 * time.Second, holdHi: 12 * time.Second, downLo: time.Second, downHi: 8 * time.Second,
		gapLo: 500 * time.Millisecond, gapHi: 4 * time.Second,
		producers: 3, acks1: true, pace: 10 * time.Millisecond, maxOps: 10_000_000, groupMembers: 3,
	}
	three, five := base, base
	three.name, three.nodes, three.partitions, three.duration = "3 nodes", 3, 4, d/2
	five.name, five.nodes, five.partitions, five.duration = "5 nodes", 5, 5, d-d/2
	return []phase{three, five}
}

// TestFaults runs a profile (WEIR_FAULTS_PROFILE: smoke, the default, or
// long) against real clusters and fails on any anomaly, naming the seed
// (WEIR_FAULTS_SEED reruns it).
func TestFaults(t *testing.T) {
	var phases []phase
	switch p := os.Getenv("WEIR_FAULTS_PROFILE"); p {
	case "", "smoke":
		phases = smokeProfile()
	case "long":
		d := 30 * time.Minute
		if s := os.Getenv("WEIR_FAULTS_DURATION"); s != "" {
			var err error
			if d, err = time.ParseDuration(s); err != nil || d <= 0 {
				t.Fatalf("WEIR_FAULTS_DURATION=%q: want a positive duration such as 30m", s)
			}
		}
		phases = longProfile(d)
	default:
		t.Fatalf("WEIR_FAULTS_PROFILE=%q: want smoke or long", p)
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("WEIR_FAULTS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("WEIR_FAULTS_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (rerun with WEIR_FAULTS_SEED=%d)", seed, seed)
	bin := buildWeir(t)
	keep := os.Getenv("WEIR_FAULTS_KEEP") != ""

	var results []*phaseResult
	for i, ph := range phases {
		res := runOnePhase(t, ph, runConfig{bin: bin, seed: seed + int64(i), session: 2500 * time.Millisecond, keep: keep, logf: t.Logf})
		results = append(results, res)
	}
	var total strings.Builder
	for _, res := range results {
		total.WriteString(res.summary())
	}
	t.Logf("summary (seed %d):\n%s", seed, total.String())
}

// runOnePhase runs a phase, frees everything it made before returning, and
// fails the test on any anomaly.
func runOnePhase(t *testing.T, ph phase, cfg runConfig) *phaseResult {
	t.Helper()
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	start := time.Now()
	res := runPhase(ph, cfg, func(f func()) { cleanups = append(cleanups, f) })
	t.Logf("phase %q took %v; faults:\n%s", ph.name, time.Since(start).Round(time.Second), res.faultLog())
	t.Logf("%s", res.summary())
	failed := false
	if res.err != nil {
		t.Errorf("phase %q (seed %d) did not run to its end: %v", ph.name, cfg.seed, res.err)
		failed = true
	}
	if n := len(res.failing()); n > 0 {
		t.Errorf("phase %q: %d anomalies (seed %d; rerun with WEIR_FAULTS_SEED=%d):\n%s",
			ph.name, n, cfg.seed, cfg.seed, res.report(5))
		failed = true
	}
	if res.dir != "" {
		if failed || cfg.keep || len(res.anomalies) > 0 {
			t.Logf("run dir kept: %s (node logs, history.json)", res.dir)
		} else {
			cleanups = append([]func(){func() { os.RemoveAll(res.dir) }}, cleanups...) // runs last
		}
	}
	return res
}

// buildWeir builds the weir binary of this worktree into a temp dir
// (WEIR_FAULTS_RACE=1: with the race detector).
func buildWeir(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "weir")
	args := []string{"build", "-o", bin}
	if os.Getenv("WEIR_FAULTS_RACE") != "" {
		args = append(args, "-race")
	}
	args = append(args, "weir/cmd/weir")
	start := time.Now()
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}
