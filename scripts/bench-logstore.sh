#!/usr/bin/env bash
# bench-logstore.sh: the disk baseline (dd) and the logstore benchmarks in one
# run, then the ratios against the targets:
#   append with fsync=always >= 0.7x dd, read from page cache >= 2 GB/s,
#   recovery scan of 1 GiB < 2 s.
#
# Usage: scripts/bench-logstore.sh [-d DIR] [-c COUNT] [-m MiB] [-s] [-o FILE]
#   -d DIR    where the benchmarks and dd write (default: ${TMPDIR:-/tmp});
#             exported as TMPDIR, so b.TempDir lands there too
#   -c COUNT  -count for every benchmark (default 3); medians are reported.
#             Appends run in COUNT rounds, each right after its own dd run,
#             and the append/dd ratios are per round (the disk's speed drifts)
#   -m MiB    MiB per dd run (default 1024)
#   -s        short: skip the 1 GiB recovery benchmark and the slow variants
#   -o FILE   also keep the raw `go test -bench` output in FILE (benchstat input)
# Each step is bounded by timeout(1); the whole run takes about 3-5 minutes.
set -euo pipefail

dir=${TMPDIR:-/tmp}
count=3
mib=1024
short=0
out=
while getopts 'd:c:m:so:h' opt; do
	case $opt in
	d) dir=$OPTARG ;;
	c) count=$OPTARG ;;
	m) mib=$OPTARG ;;
	s) short=1 ;;
	o) out=$OPTARG ;;
	h) sed -n '2,17p' "$0"; exit 0 ;;
	*) sed -n '2,17p' "$0" >&2; exit 2 ;;
	esac
done
case $count in '' | *[!0-9]*) echo "bench-logstore: -c wants a number" >&2; exit 2 ;; esac
((count >= 1 && count <= 10)) || { echo "bench-logstore: -c must be 1..10" >&2; exit 2; }
[[ -d $dir && -w $dir ]] || { echo "bench-logstore: $dir is not a writable directory" >&2; exit 2; }
dir=$(cd "$dir" && pwd)

root=$(cd "$(dirname "$0")/.." && pwd)
here=$(dirname "$0")
work=$(mktemp -d "$dir/bench-logstore.XXXXXX")
cleanup() { rm -rf -- "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# The logs built: 256 MiB twice, 1 GiB, up to ~1 GiB per append run.
avail_kib=$(df -Pk "$dir" | awk 'NR==2 {print $4}')
if ((avail_kib < 4 * 1024 * 1024)); then
	echo "bench-logstore: $dir has only $((avail_kib / 1024)) MiB free, need 4 GiB" >&2
	exit 1
fi

echo "== $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), dir $dir ($(df -PT "$dir" | awk 'NR==2 {print $2}'))"
echo "== go test -c ./logstore"
(cd "$root" && timeout 300 go test -c -o "$work/logstore.test" ./logstore/)

raw=$work/raw.txt
: >"$raw"
# bench PATTERN BENCHTIME LIMIT_SECONDS [COUNT]: one run of the test binary.
bench() {
	local n=${4:-$count}
	echo "== -bench '$1' -benchtime $2 -count $n"
	local args=(-test.run '^$' -test.bench "$1" -test.benchtime "$2" -test.count "$n"
		-test.timeout "$3s" -test.benchmem)
	((short)) && args+=(-test.short)
	local log=$work/step.txt rc
	{
		rc=0
		(cd "$root/logstore" && TMPDIR=$dir timeout "$(($3 + 30))" "$work/logstore.test" "${args[@]}") || rc=$?
		echo "$rc" >"$work/rc"
	} 2>&1 | tee "$log" | grep --line-buffered -E '^(Benchmark|--- |FAIL|panic)' || true
	rc=$(cat "$work/rc")
	if [[ $rc != 0 ]] || grep -qE '^(--- FAIL|FAIL|panic)' "$log"; then
		tail -n 30 "$log" >&2
		echo "bench-logstore: benchmark step failed (exit $rc)" >&2
		exit 1
	fi
	cat "$log" >>"$raw"
}

# The disk is shared and its speed drifts by 2x within minutes, so each round
# measures dd right before the appends it is compared with; the ratios are per
# round (the "DD" lines in the raw output), their median is reported. A fixed
# count (not time) keeps the fsync=never variants from writing tens of GB.
for ((round = 1; round <= count; round++)); do
	echo "== round $round/$count: dd ${mib} MiB + fdatasync, median of 3"
	dd_mbps=$("$here/disk-baseline.sh" -d "$dir" -m "$mib" -r 3 -q)
	echo "dd: $dd_mbps MB/s"
	echo "DD $dd_mbps" >>"$raw"
	bench '^BenchmarkAppend$' 1000x 600 1
	if ((short)); then
		bench '^BenchmarkAppendParallel$/fsync=always' 1000x 300 1
	else
		bench '^BenchmarkAppendParallel$' 1000x 600 1
	fi
done
bench '^BenchmarkEncodeBatch$' 1s 300
bench '^BenchmarkRead$' 2s 600
bench '^BenchmarkOffsetLookup$' 2s 300
((short)) || bench '^BenchmarkRecovery$' 5x 600

[[ -n $out ]] && cp -- "$raw" "$out"

# Medians per benchmark and unit, then the ratios.
echo
echo "== medians of $count runs"
awk '
function median(key,   n, i, j, t, a) {
	n = split(vals[key], a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function get(name, unit) { return ((name SUBSEP unit) in vals) ? median(name SUBSEP unit) : "" }
function verdict(ok) { return ok ? "ok" : "MISSED" }
/^DD / { dd = $2; dds = dds " " dd; next }
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if ($4 == "ns/op" && $6 == "MB/s" && name ~ /^BenchmarkAppend/) {
		k = name SUBSEP "xdd"
		vals[k] = (k in vals) ? vals[k] " " $5 / dd : $5 / dd
	}
	if (!(name in seen)) { seen[name] = 1; order[++nn] = name }
	for (i = 3; i < NF; i += 2) {
		k = name SUBSEP $(i+1)
		vals[k] = (k in vals) ? vals[k] " " $i : $i
	}
}
END {
	for (i = 1; i <= nn; i++) {
		n = order[i]; line = sprintf("%-52s %12.0f ns/op", n, get(n, "ns/op"))
		split("MB/s GB/s s/GiB batches/fsync B/op allocs/op", us, " ")
		for (u = 1; u <= 6; u++) if ((v = get(n, us[u])) != "") line = line sprintf(u < 5 ? "  %10.4g %s" : "  %10.0f %s", v, us[u])
		print line
	}
	vals["dd"] = substr(dds, 2)
	print ""
	printf "dd MB/s by round: %s (median %.1f)\n", vals["dd"], median("dd")
	print "== against the targets (append ratios: median over rounds of append / dd of the same round)"
	a = get("BenchmarkAppend/fsync=always", "MB/s")
	p4 = get("BenchmarkAppendParallel/fsync=always/writers=4", "MB/s")
	p8 = get("BenchmarkAppendParallel/fsync=always/writers=8", "MB/s")
	nv = get("BenchmarkAppend/fsync=never", "MB/s")
	rd = get("BenchmarkRead/Read/maxBytes=1MiB", "GB/s")
	ri = get("BenchmarkRead/ReadInto/maxBytes=1MiB", "GB/s")
	rc = get("BenchmarkRecovery/size=1GiB", "s/GiB")
	ra = get("BenchmarkAppend/fsync=always", "xdd")
	r4 = get("BenchmarkAppendParallel/fsync=always/writers=4", "xdd")
	r8 = get("BenchmarkAppendParallel/fsync=always/writers=8", "xdd")
	rn = get("BenchmarkAppend/fsync=never", "xdd")
	w = get("BenchmarkAppend/raw/fsync=always", "MB/s")
	rw = get("BenchmarkAppend/raw/fsync=always", "xdd")
	if (a != "") printf "append fsync=always, 1 writer   %8.1f MB/s, %.2fx dd  (target >= 0.70x: %s)\n", a, ra, verdict(ra >= 0.7)
	if (w != "") printf "  floor: pwrite+fdatasync, no log %8.1f MB/s, %.2fx dd; the log reaches %.2fx of it\n", w, rw, a / w
	if (p4 != "") printf "append fsync=always, 4 writers  %8.1f MB/s, %.2fx dd  (target >= 0.70x: %s)\n", p4, r4, verdict(r4 >= 0.7)
	if (p8 != "") printf "append fsync=always, 8 writers  %8.1f MB/s, %.2fx dd  (target >= 0.70x: %s)\n", p8, r8, verdict(r8 >= 0.7)
	if (nv != "") printf "append fsync=never, 1 writer    %8.1f MB/s, %.2fx dd\n", nv, rn
	if (ri != "") printf "read 1 MiB fetches, ReadInto    %8.2f GB/s          (target >= 2 GB/s: %s)\n", ri, verdict(ri >= 2)
	if (rd != "") printf "read 1 MiB fetches, Read        %8.2f GB/s          (new buffer per fetch)\n", rd
	if (rc != "") printf "recovery scan                   %8.3f s/GiB         (target < 2 s: %s)\n", rc, verdict(rc < 2)
}' "$raw"
