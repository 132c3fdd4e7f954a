#!/usr/bin/env bash
# disk-baseline.sh: sequential write throughput of the disk the logstore
# benchmarks write to, measured with dd and one fdatasync at the end.
#
# Usage: scripts/disk-baseline.sh [-d DIR] [-m MiB] [-r RUNS] [-q]
#   -d DIR   directory on the filesystem to measure (default: ${TMPDIR:-/tmp},
#            which is where `go test` puts b.TempDir)
#   -m MiB   MiB written per run (default 1024)
#   -r RUNS  runs; the median is reported (default 3)
#   -q       print only the median MB/s (for scripts)
# Prints MB/s (10^6 bytes/s, as dd and `go test -bench` report it).
set -euo pipefail

dir=${TMPDIR:-/tmp}
mib=1024
runs=3
quiet=0
while getopts 'd:m:r:qh' opt; do
	case $opt in
	d) dir=$OPTARG ;;
	m) mib=$OPTARG ;;
	r) runs=$OPTARG ;;
	q) quiet=1 ;;
	h) sed -n '2,11p' "$0"; exit 0 ;;
	*) sed -n '2,11p' "$0" >&2; exit 2 ;;
	esac
done
case $mib in '' | *[!0-9]*) echo "disk-baseline: -m wants a number of MiB" >&2; exit 2 ;; esac
case $runs in '' | *[!0-9]*) echo "disk-baseline: -r wants a number" >&2; exit 2 ;; esac
if ((mib < 1 || mib > 16384 || runs < 1 || runs > 20)); then
	echo "disk-baseline: -m must be 1..16384 and -r 1..20" >&2
	exit 2
fi
[[ -d $dir && -w $dir ]] || { echo "disk-baseline: $dir is not a writable directory" >&2; exit 2; }

# Need room for the file plus a margin.
avail_kib=$(df -Pk "$dir" | awk 'NR==2 {print $4}')
if ((avail_kib < (mib + 256) * 1024)); then
	echo "disk-baseline: $dir has only $((avail_kib / 1024)) MiB free, need $((mib + 256))" >&2
	exit 1
fi

work=$(mktemp -d "$dir/disk-baseline.XXXXXX")
cleanup() { rm -rf -- "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Bound each run: even a 10 MB/s disk writes 1 GiB in under two minutes.
limit=$((60 + mib / 5))
results=()
for ((i = 1; i <= runs; i++)); do
	rm -f -- "$work/ddtest"
	sync "$work" 2>/dev/null || true
	out=$(LC_ALL=C timeout "$limit" dd if=/dev/zero of="$work/ddtest" bs=1M count="$mib" conv=fdatasync 2>&1) || {
		echo "disk-baseline: dd failed or timed out after ${limit}s:" >&2
		echo "$out" >&2
		exit 1
	}
	# "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 1.23 s, 873 MB/s": compute from bytes and seconds.
	mbps=$(awk '/bytes.*copied/ {
		for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) secs = $(i-1)
		sub(/,$/, "", secs)
		if (secs > 0) printf "%.1f", $1 / secs / 1e6
	}' <<<"$out")
	[[ -n $mbps ]] || { echo "disk-baseline: cannot parse dd output: $out" >&2; exit 1; }
	results+=("$mbps")
	((quiet)) || echo "run $i: $mbps MB/s"
done
rm -f -- "$work/ddtest"

median=$(printf '%s\n' "${results[@]}" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
if ((quiet)); then
	echo "$median"
else
	fs=$(df -PT "$dir" | awk 'NR==2 {print $1 " (" $2 ")"}')
	echo "dd seq write, ${mib} MiB + fdatasync, $dir on $fs: median $median MB/s over $runs runs"
fi
