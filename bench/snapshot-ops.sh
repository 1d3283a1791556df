#!/usr/bin/env bash
# Time of `dog vdi snapshot`, `clone`, `rollback` and `delete` on 3 local
# sheep with copies=3, for a small VDI, a fully written flat VDI and a sparse
# hyper volume with data written, to show that snapshot and clone copy
# metadata only (their time does not grow with the VDI) and that delete
# costs time in proportion to the objects it frees. The local limit measured
# in the same run is removing the same number of replica files (4 MiB each)
# with rm on the same file system.
#
# Usage: bench/snapshot-ops.sh [FLAT_GIB [HYPER_TIB HYPER_WRITTEN_GIB]]
#        (default 4, 1 and 1)
# Env:   SD_BUILD_DIR (default build), BENCH_DIR (default /var/tmp)
set -euo pipefail

flat_gib=${1:-4}
hyper_tib=${2:-1}
hyper_gib=${3:-1}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${SD_BUILD_DIR:-$top/build}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sd-bench-snap.XXXXXX")
ram=$(mktemp -d /dev/shm/sd-bench-snap.XXXXXX)
# shellcheck source=bench/lib.sh
. "$top/bench/lib.sh"
port=$(bench_ports 32)
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work" "$ram"
}
trap cleanup EXIT

for i in 0 1 2; do
	"$build/sheep" -f -c "local:$work/shm" -p $((port + i)) -z "$i" \
		"$work/n$i" >"$work/out$i" 2>&1 &
	pids+=($!)
done
deadline=$((SECONDS + 30))
until [[ $("$build/dog" node list -r -p "$port" 2>/dev/null | wc -l) -eq 3 ]]; do
	((SECONDS < deadline)) || { echo "sheep did not start" >&2; exit 1; }
	sleep 0.05
done
dog() { "$build/dog" "$@" -p "$port"; }
dog cluster format -c 3 >/dev/null

now() { date +%s.%N; }
# secs CMD...: run CMD, print its wall time in seconds (3 decimals)
secs() {
	local t0 t1
	t0=$(now)
	"$@" >/dev/null
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
data_files() { find "$work"/n[0-2]/obj -maxdepth 1 -name '00*' | wc -l; }

head -c 1G /dev/urandom >"$ram/chunk"
# fill VDI GIB: write GIB GiB from the 1 GiB chunk
fill() {
	for ((g = 0; g < $2; g++)); do
		dog vdi write "$1" $((g << 30)) $((1 << 30)) <"$ram/chunk"
	done
}

declare -A row
measure() { # measure LABEL VDI: snapshot, clone, rollback, delete times
	local label=$1 v=$2 before after
	row[$label.snap]=$(secs dog vdi snapshot -s s1 "$v")
	row[$label.clone]=$(secs dog vdi clone -s s1 "$v" "$v-clone")
	row[$label.rollback]=$(secs dog vdi rollback -f -s s1 "$v")
	dog vdi delete "$v-clone"
	dog vdi delete "$v"
	before=$(data_files)
	row[$label.delete]=$(secs dog vdi delete -s s1 "$v")
	after=$(data_files)
	row[$label.freed]=$(((before - after) / 3))
}

dog vdi create small 64M
head -c 64M "$ram/chunk" | dog vdi write small
measure small small

dog vdi create flat "${flat_gib}G"
fill flat "$flat_gib"
measure flat flat

hyper_ok=1
dog vdi create -y hyper "${hyper_tib}T" || hyper_ok=0
if ((hyper_ok)) && fill hyper "$hyper_gib" 2>"$work/hyper.err"; then
	measure hyper hyper
else
	hyper_ok=0
fi

# The local limit: rm of as many 4 MiB replica files as the flat delete freed.
mkdir -p "$work/files"
n=$((row[flat.freed] * 3))
for ((i = 0; i < n; i++)); do
	fallocate -l 4M "$work/files/f$i"
done
sync
rm_secs=$(secs rm -rf "$work/files")

per_obj() { awk -v t="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.2f", t * 1000 / n; else print "-" }'; }
line() {
	printf '%-34s %8s %8s %8s %8s %8s %10s\n' "$1" "${row[$2.snap]}" \
		"${row[$2.clone]}" "${row[$2.rollback]}" "${row[$2.delete]}" \
		"${row[$2.freed]}" "$(per_obj "${row[$2.delete]}" "${row[$2.freed]}")"
}
report=$(
	echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, $(uname -r), fs $(df -T "$work" | awk 'NR==2 {print $2}')"
	echo "3 local sheep, copies=3; seconds per dog command (wall time, including dog's start)"
	printf '%-34s %8s %8s %8s %8s %8s %10s\n' VDI snapshot clone rollback delete freed ms/object
	line "64 MiB flat, written" small
	line "$flat_gib GiB flat, fully written" flat
	if ((hyper_ok)); then
		line "$hyper_tib TiB hyper, $hyper_gib GiB written" hyper
	else
		echo "$hyper_tib TiB hyper volume: not measured ($(head -1 "$work/hyper.err" 2>/dev/null))"
	fi
	echo "local limit: rm of $n replica files of 4 MiB: $rm_secs s, $(per_obj "$rm_secs" $((n / 3))) ms per object (3 replicas)"
	echo "target: snapshot and clone under 0.2 s whatever the size"
)
echo "$report"
out=$top/bench/results/snapshot-ops.txt
{ echo "$report"; echo; } >>"$out"
echo "(appended to $out)"
