#!/usr/bin/env bash
# bench-compare.sh: the REST benchmarks of two weir binaries in one run, on
# one node each, alternating A and B per round so drift hits both alike; then
# the median of each figure and the ratio B/A. Use it to show a change keeps
# (or improves) throughput: A = the binary before, B = after.
#
# Usage: scripts/bench-compare.sh [-r ROUNDS] [-n RECORDS] A_BINARY B_BINARY
#   -r ROUNDS   rounds (default 3); each round runs A then B (B then A on odd rounds)
#   -n RECORDS  records of 1 KiB per batched run (default 100000); the
#               single-record run sends a third of them
# Every node listens on 127.0.0.1 at free ports, keeps its data in a temp dir
# that is removed at the end, and is stopped by its pid. Each bench run is
# bounded by timeout(1).
set -euo pipefail

rounds=3
records=100000
while getopts 'r:n:h' opt; do
	case $opt in
	r) rounds=$OPTARG ;;
	n) records=$OPTARG ;;
	h) sed -n '2,14p' "$0"; exit 0 ;;
	*) sed -n '2,14p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[[ $# -eq 2 ]] || { sed -n '2,14p' "$0" >&2; exit 2; }
bins=("$(realpath "$1")" "$(realpath "$2")")
for b in "${bins[@]}"; do [[ -x $b ]] || { echo "bench-compare: $b is not executable" >&2; exit 2; }; done
command -v python3 >/dev/null || { echo "bench-compare: needs python3 for the summary" >&2; exit 2; }

work=$(mktemp -d)
mkdir "$work/out"
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# freeports N: N distinct loopback ports that were free a moment ago, drawn
# from 10000-31999, below the kernel's ephemeral range: there outgoing
# connections take their local ports, so a port that port 0 handed out can
# be taken before the node binds it.
freeports() {
	python3 - "$1" <<'PY'
import random, socket, sys
want, got = int(sys.argv[1]), []
for _ in range(1000):
    if len(got) == want:
        break
    p = random.randrange(10000, 32000)
    if p in got:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    got.append(p)
if len(got) < want:
    sys.exit("bench-compare: no %d free loopback ports below the ephemeral range" % want)
print(*got)
PY
}

# run_one LABEL BINARY ROUND: start a node, run the three benchmarks, stop it.
run_one() {
	local label=$1 bin=$2 round=$3
	local http raft dir ports
	ports=$(freeports 2)
	read -r http raft <<<"$ports"
	dir=$work/$label-$round
	mkdir -p "$dir"
	"$bin" serve --data-dir "$dir/data" --http-addr 127.0.0.1:$http --raft-addr 127.0.0.1:$raft \
		--voters 1@127.0.0.1:$raft >"$dir/node.log" 2>&1 &
	pid=$!
	local url=http://127.0.0.1:$http
	for _ in $(seq 1 300); do
		curl -fs "$url/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fs "$url/readyz" >/dev/null || { echo "bench-compare: $label did not get ready; its log:" >&2; tail -20 "$dir/node.log" >&2; exit 1; }
	local common=(--server "$url" --topic bench --json)
	timeout 300 "$bin" bench produce "${common[@]}" --record-size 1024 --create 1 --records "$records" --batch 500 --concurrency 8 \
		>"$work/out/$label.produce_batch500.$round.json"
	timeout 300 "$bin" bench consume "${common[@]}" --records "$records" --batch 500 --concurrency 1 \
		>"$work/out/$label.consume_batch500.$round.json"
	timeout 300 "$bin" bench produce "${common[@]}" --record-size 1024 --records $((records / 3)) --batch 1 --concurrency 32 \
		>"$work/out/$label.produce_single.$round.json"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
}

for r in $(seq 1 "$rounds"); do
	if ((r % 2)); then order=(A B); else order=(B A); fi
	for label in "${order[@]}"; do
		if [[ $label == A ]]; then bin=${bins[0]}; else bin=${bins[1]}; fi
		echo "round $r: $label" >&2
		run_one "$label" "$bin" "$r"
	done
done

python3 - "$work/out" <<'PY'
import json, os, statistics, sys
rows = {}
for f in sorted(os.listdir(sys.argv[1])):
    label, name, _round, _ = f.split(".")
    d = json.load(open(os.path.join(sys.argv[1], f)))
    rows.setdefault(name, {}).setdefault(label, []).append(d)
print(f"{'benchmark':<18} {'A MB/s':>9} {'B MB/s':>9} {'B/A':>6}   {'A req/s':>9} {'B req/s':>9} {'B/A':>6}   {'A p99 ms':>9} {'B p99 ms':>9}")
for name, by in rows.items():
    med = lambda k, f: statistics.median(x[f] for x in by[k])
    a, b = med("A", "mb_per_sec"), med("B", "mb_per_sec")
    ar, br = med("A", "requests_per_sec"), med("B", "requests_per_sec")
    ap, bp = med("A", "latency_p99_ns") / 1e6, med("B", "latency_p99_ns") / 1e6
    errs = sum(x["errors"] for k in by for x in by[k])
    print(f"{name:<18} {a:>9.1f} {b:>9.1f} {b/a:>6.2f}   {ar:>9.0f} {br:>9.0f} {br/ar:>6.2f}   {ap:>9.2f} {bp:>9.2f}" + (f"  ({errs} errors)" if errs else ""))
PY
