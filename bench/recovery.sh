#!/usr/bin/env bash
# Time to recover from a lost node, against copying the same bytes. 4 local
# sheep with copies=3 hold SIZE_MIB written with `dog vdi write`; one sheep
# is killed with SIGKILL and the clock runs until every object has its 3
# copies on the holders placement gives again (tests/tools/sd-placement
# exits 0, polled every 0.1 s; this includes the time the cluster takes to
# notice the death). Meanwhile a small client load reads a region of the
# VDI through a surviving sheep in a loop and compares it with what was
# written; every read must succeed and match. The local limit, measured in
# the same run on the same file system, is `cp` of the object files the
# killed sheep held (the same bytes that recovery must re-create) and a
# `sync` of the copies (fsync of each file, as sheep syncs each object).
# The ratio is copy time / recovery time for the same bytes (compared as
# the best rate of each side, since each rep kills a different sheep):
# recovery's speed as a fraction of a plain copy's. After each kill the sheep is restarted and the time
# until placement is exact again (the rejoin) is reported too.
# Page-cache data is dropped before each timed phase when that is allowed.
#
# Usage: bench/recovery.sh [SIZE_MIB]   (default 1024)
# Env:   SD_BUILD_DIR (default build; needs tests/sd-placement built),
#        BENCH_DIR (default /var/tmp), BENCH_REPS (best of; default 3),
#        BENCH_LOAD_MIB (region the client load reads; default 64),
#        BENCH_TIMEOUT (seconds one recovery may take; default 600)
set -euo pipefail

size_mib=${1:-1024}
reps=${BENCH_REPS:-3}
load_mib=${BENCH_LOAD_MIB:-64}
limit=${BENCH_TIMEOUT:-600}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${SD_BUILD_DIR:-$top/build}
placement=$build/tests/sd-placement
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sd-bench-rec.XXXXXX")
ram=$(mktemp -d /dev/shm/sd-bench-rec.XXXXXX)
# below the ephemeral range, so no outgoing connection holds one of ours
# shellcheck source=bench/lib.sh
. "$top/bench/lib.sh"
port=$(bench_ports 32)
declare -a pids=()
load_pid=""

[[ -x $placement ]] || { echo "no $placement: build the tests first" >&2; exit 1; }

cleanup() {
	[[ -n $load_pid ]] && kill -TERM "$load_pid" 2>/dev/null || true
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}" $load_pid; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work" "$ram"
}
trap cleanup EXIT

drop_caches() {
	sync
	echo "${BENCH_DROP:-1}" >/proc/sys/vm/drop_caches 2>/dev/null || true
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / 1048576 / t }'; }
die() {
	echo "recovery bench: $*" >&2
	tail -n 5 "$work"/out* >&2
	exit 1
}

start_sheep() {
	"$build/sheep" -f -c "local:$work/shm" -p $((port + $1)) -z "$1" \
		"$work/n$1" >>"$work/out$1" 2>&1 &
	pids[$1]=$!
}
nodes_listed() { "$build/dog" node list -r -p "$port" 2>/dev/null | wc -l; }
settled() { "$placement" -p "$port" -n "$1"; }
has_nodes() { [[ $(nodes_listed) -eq $1 ]]; }

for i in 0 1 2 3; do start_sheep "$i"; done
bench_wait 30 has_nodes 4 || die "sheep did not start"
"$build/dog" cluster format -c 3 -p "$port" >/dev/null || die "format failed"
"$build/dog" vdi create bench "${size_mib}M" -p "$port" || die "vdi create failed"
head -c "${size_mib}M" /dev/urandom >"$ram/src"
"$build/dog" vdi write bench -p "$port" <"$ram/src" || die "vdi write failed"
head -c "${load_mib}M" "$ram/src" >"$ram/region"
bench_wait 60 settled 4 || die "placement is not exact after the write"

# The client load: read the region through sheep 0 (never killed) and
# compare; one line per read in load.log, "ok" or "FAIL <why>".
load() {
	while :; do
		if ! "$build/dog" vdi read bench 0 "${load_mib}M" -p "$port" \
			>"$ram/read" 2>"$ram/read.err"; then
			echo "FAIL dog: $(head -c 200 "$ram/read.err" | tr '\n' ' ')"
		elif ! cmp -s "$ram/read" "$ram/region"; then
			echo "FAIL data differs"
		else
			echo ok
		fi
	done >>"$work/load.log"
}
load &
load_pid=$!
load_count() { grep -c "^$1" "$work/load.log" 2>/dev/null || true; }

# Victims differ in how much they hold, so reps are compared by rate:
# bytes / time for each side, the best rate of each kept.
rec_rate="" copy_rate="" detect_best="" rejoin_best=""
load_ok=0 load_fail=0
rows=()
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b > a) ? b : a }'; }
for rep in $(seq "$reps"); do
	victim=$((1 + (rep - 1) % 3))
	mapfile -t files < <(find "$work/n$victim/obj" -maxdepth 1 -type f \
		-name '[0-9a-f]*' ! -name '*.tmp')
	bytes=$(du -cb "${files[@]}" | tail -n 1 | cut -f 1)

	# the local limit: the same files, copied and synced on this disk
	rm -rf "$work/copy" && mkdir "$work/copy"
	drop_caches
	t0=$(now)
	cp "${files[@]}" "$work/copy/"
	sync "$work"/copy/*
	t1=$(now)
	copy_t=$(elapsed "$t0" "$t1")
	copy_rate=$(max "$copy_rate" "$(mbps "$bytes" "$copy_t")")
	rm -rf "$work/copy"

	drop_caches
	ok0=$(load_count ok) fail0=$(load_count FAIL)
	t0=$(now)
	kill -KILL "${pids[$victim]}"
	wait "${pids[$victim]}" 2>/dev/null || true
	bench_wait "$limit" has_nodes 3 || die "the death of sheep $victim was not noticed"
	t_detect=$(now)
	bench_wait "$limit" settled 3 ||
		die "rep $rep: placement not exact ${limit}s after killing sheep $victim: $(settled 3 2>&1 | tail -n 3)"
	t1=$(now)
	ok1=$(load_count ok) fail1=$(load_count FAIL)
	rec_t=$(elapsed "$t0" "$t1")
	rec_rate=$(max "$rec_rate" "$(mbps "$bytes" "$rec_t")")
	detect_best=$(best "$detect_best" "$(elapsed "$t0" "$t_detect")")
	load_ok=$((load_ok + ok1 - ok0)) load_fail=$((load_fail + fail1 - fail0))

	t0=$(now)
	start_sheep "$victim"
	bench_wait 60 has_nodes 4 || die "sheep $victim did not rejoin"
	bench_wait "$limit" settled 4 ||
		die "rep $rep: placement not exact ${limit}s after sheep $victim rejoined: $(settled 4 2>&1 | tail -n 3)"
	t1=$(now)
	rejoin_t=$(elapsed "$t0" "$t1")
	rejoin_best=$(best "$rejoin_best" "$rejoin_t")
	rows+=("$(printf '%3s  %5s  %8s  %9s  %10s  %8s  %5s' "$rep" "$victim" \
		$((bytes >> 20)) "$copy_t" "$rec_t" "$rejoin_t" \
		"$(awk -v c="$copy_t" -v r="$rec_t" 'BEGIN { printf "%.2f", c / r }')")")
	echo "${rows[-1]}"
done
kill -TERM "$load_pid" 2>/dev/null || true
wait "$load_pid" 2>/dev/null || true
load_pid=""
load_total_ok=$(load_count ok) load_total_fail=$(load_count FAIL)

ratio=$(awk -v c="$copy_rate" -v r="$rec_rate" 'BEGIN { printf "%.2f", r / c }')
report=$(cat <<REPORT
date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)
machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, $(uname -r), fs $(df -T "$work" | awk 'NR==2 {print $2}')
size:    $size_mib MiB, copies=3 on 4 local sheep, kill -9 of one, best of $reps, drop_caches=${BENCH_DROP:-1}
rep  sheep  MiB held  cp+sync s  recovery s  rejoin s  ratio
$(printf '%s\n' "${rows[@]}")
best MB/s: recovery $rec_rate, cp + sync $copy_rate; ratio (copy time / recovery time): $ratio
death noticed after ${detect_best}s (best); rejoin until placement exact: ${rejoin_best}s (best)
client load (${load_mib} MiB reads through a survivor): during recoveries $load_ok ok, $load_fail failed; whole run $load_total_ok ok, $load_total_fail failed
REPORT
)
echo "$report"
if ((load_total_fail)); then
	grep -m 3 '^FAIL' "$work/load.log"
fi
out=$top/bench/results/recovery.txt
if [[ ! -e $out ]]; then
	cat >"$out" <<'HEADER'
# bench/recovery.sh results, newest last. Each block is one run: the time
# from kill -9 of one of 4 sheep (copies=3) until every object has its 3
# copies on the holders placement gives again, against cp + sync of the
# killed sheep's object files on the same file system; one row per rep.
# The best rate (bytes the killed sheep held / time) of each side is kept;
# ratio = copy time / recovery time for the same bytes (1.00: recovery as
# fast as a copy, above 1: faster).
HEADER
fi
{ echo "$report"; echo; } >>"$out"
echo "(appended to $out)"
((load_total_fail == 0)) || die "the client load saw $load_total_fail failed reads"
