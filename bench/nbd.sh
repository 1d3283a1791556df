#!/usr/bin/env bash
# NBD performance of sheep with fio's nbd engine: 4 KiB random read and
# write at queue depth 1 and 32, 1 MiB sequential read and write at queue
# depth 8, against a VDI on 3 local sheep with copies=3 and with copies=1.
# Compared in the same run, on the same machine, with `nbdkit memory`
# (the NBD protocol with no storage behind it) and `qemu-nbd` serving a raw
# file on the file system the sheep store to. The floor of a replicated
# write is measured too, by tests/tools/sd-latency on that file system:
# two loopback round trips with a 4 KiB payload plus one 4 KiB
# pwrite + fdatasync.
#
# Every target's data is written before it is read (fio's layout pass, or
# a fill), so reads hit real data, not holes.
#
# Targets: 4 KiB random read at QD32 with copies=1 at least 0.5x nbdkit
# memory's IOPS; mean 4 KiB write latency at QD1 with copies=3 at most 1.3x
# the measured floor. A missed target is reported, not an error; the exit
# status is non-zero only when something fails.
#
# Usage: bench/nbd.sh
# Env:   SD_BUILD_DIR (default build), BENCH_DIR (default /var/tmp),
#        BENCH_RUNTIME (seconds per fio job, default 8), BENCH_SIZE_MIB
#        (default 256), BENCH_SHEEP_OPTS (extra sheep options, e.g.
#        --no-directio), BENCH_NOTE (a line for the record)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${SD_BUILD_DIR:-$top/build}
runtime=${BENCH_RUNTIME:-8}
size_mib=${BENCH_SIZE_MIB:-256}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sd-bench-nbd.XXXXXX")
# shellcheck source=bench/lib.sh
. "$top/bench/lib.sh"
port=$(bench_ports 32)
nbd_base=$((port + 10))
pids=()
results=$top/bench/results/nbd.txt

for tool in fio nbdkit qemu-nbd qemu-img nbdcopy; do
	command -v "$tool" >/dev/null ||
		{ echo "nbd bench: $tool is missing (scripts/deps.sh --tests)" >&2; exit 1; }
done

cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for f in "$work"/*.pid; do
		# (already gone after a complete run: that must not stop the
		# clean-up before the rm below)
		[[ -e $f ]] && kill -TERM "$(cat "$f")" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

die() {
	echo "nbd bench: $*" >&2
	tail -n 5 "$work"/out* >&2 2>/dev/null || true
	exit 1
}
dog() { "$build/dog" "$@" -p "$port"; }

# fio_job NAME URI RW BS QD: one fio run; appends "NAME iops bw_MBps p50 p99
# mean" (latencies in microseconds, completion latency) to $work/table.
fio_job() {
	local name=$1 uri=$2 rw=$3 bs=$4 qd=$5
	fio --name="$name" --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs" \
		--iodepth="$qd" --size="${size_mib}M" --time_based \
		--runtime="$runtime" --ramp_time=1 --randrepeat=0 \
		--output-format=json --output="$work/fio.json" \
		>"$work/fio.out" 2>&1 || die "fio $name failed: $(tail -n 3 "$work/fio.out")"
	python3 - "$work/fio.json" "$name" "$rw" >>"$work/table" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
side = job["read"] if "read" in sys.argv[3] else job["write"]
clat = side["clat_ns"]
pct = clat.get("percentile", {})
def p(k):
    return pct.get(k, 0) / 1000.0
print("%s %.0f %.1f %.1f %.1f %.1f" % (sys.argv[2], side["iops"],
      side["bw_bytes"] / 1e6, p("50.000000"), p("99.000000"),
      clat["mean"] / 1000.0))
PY
	tail -n 1 "$work/table"
}

# the six jobs against one URI; fill first so that reads see data
run_suite() {
	local tag=$1 uri=$2
	nbdcopy -- [ nbdkit --exit-with-parent pattern "${size_mib}M" ] "$uri" ||
		die "filling $uri failed"
	fio_job "$tag.randread.qd1" "$uri" randread 4k 1
	fio_job "$tag.randread.qd32" "$uri" randread 4k 32
	fio_job "$tag.randwrite.qd1" "$uri" randwrite 4k 1
	fio_job "$tag.randwrite.qd32" "$uri" randwrite 4k 32
	fio_job "$tag.read.1m" "$uri" read 1m 8
	fio_job "$tag.write.1m" "$uri" write 1m 8
}

: >"$work/table"

# ---- the floor of a replicated write, on the store's file system ----
"$build/tests/sd-latency" "$work" 3000 >"$work/floor" || die "sd-latency failed"
floor_mean=$(awk '$1 == "floor_us" { print $5 }' "$work/floor")
# For context: with copies=3 on one host the three replicas' syncs share
# one disk. The same floor, three at once.
for i in 1 2 3; do
	"$build/tests/sd-latency" "$work" 2000 >"$work/floor3.$i" &
done
wait
floor3_mean=$(awk '$1 == "floor_us" { s += $5; n++ } END { printf "%.1f", s / n }' "$work"/floor3.*)

# ---- sheep, copies=1 and copies=3 ----
for copies in 1 3; do
	rm -rf "$work/n"* "$work/shm"
	pids=()
	for i in 0 1 2; do
		setpriv --pdeathsig KILL "$build/sheep" -f -c "local:$work/shm" \
			-p $((port + i)) -z "$i" --nbd "port=$((nbd_base + i))" \
			${BENCH_SHEEP_OPTS:-} "$work/n$i" >"$work/out$i" 2>&1 &
		pids+=($!)
	done
	bench_wait 30 dog node list || die "sheep did not start"
	bench_wait 30 bash -c "[[ \$('$build/dog' node list -r -p $port | wc -l) == 3 ]]" ||
		die "the cluster did not form"
	dog cluster format -c "$copies" </dev/null >/dev/null || die "format failed"
	dog vdi create vm "${size_mib}M" || die "vdi create failed"
	run_suite "sheep.c$copies" "nbd://127.0.0.1:$nbd_base/vm"
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
done
pids=()

# ---- nbdkit memory: the protocol alone ----
nbdkit -P "$work/nbdkit.pid" -i 127.0.0.1 -p $((nbd_base + 5)) memory "${size_mib}M" ||
	die "nbdkit failed"
bench_wait 10 nbdinfo "nbd://127.0.0.1:$((nbd_base + 5))" || die "nbdkit does not answer"
run_suite nbdkit.memory "nbd://127.0.0.1:$((nbd_base + 5))"
kill -TERM "$(cat "$work/nbdkit.pid")"

# ---- qemu-nbd on a raw file on the same file system ----
qemu-img create -q -f raw "$work/raw.img" "${size_mib}M"
qemu-nbd -f raw --cache=none --aio=native -b 127.0.0.1 -p $((nbd_base + 6)) \
	--persistent --shared=4 --pid-file="$work/qemu-nbd.pid" --fork \
	"$work/raw.img" || die "qemu-nbd failed"
bench_wait 10 nbdinfo "nbd://127.0.0.1:$((nbd_base + 6))" || die "qemu-nbd does not answer"
run_suite qemu-nbd.raw "nbd://127.0.0.1:$((nbd_base + 6))"
kill -TERM "$(cat "$work/qemu-nbd.pid")"

# ---- the record ----
col() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$work/table"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" -v dir="$3" \
	'BEGIN { ok = dir == "ge" ? r >= t : r <= t; print ok ? "pass" : "FAIL" }'; }
rr=$(ratio "$(col sheep.c1.randread.qd32 2)" "$(col nbdkit.memory.randread.qd32 2)")
wl=$(ratio "$(col sheep.c3.randwrite.qd1 6)" "$floor_mean")
{
	echo
	echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ { print $2 }') GiB, $(uname -r), $(fio --version)"
	[[ -n ${BENCH_NOTE:-} ]] && echo "note:    $BENCH_NOTE"
	echo "setup:   3 local sheep ${BENCH_SHEEP_OPTS:+($BENCH_SHEEP_OPTS) }(each with its own NBD port, fio talks to sheep 0), VDI of ${size_mib} MiB filled first;"
	echo "         nbdkit memory ${size_mib}M; qemu-nbd -f raw --cache=none --aio=native on $(df -T "$work" | awk 'NR == 2 { print $2 }');"
	echo "         fio --ioengine=nbd, ${runtime} s per job after 1 s ramp; latencies are completion latencies"
	echo "floor:   $(tr '\n' ';' <"$work/floor")"
	printf '%-28s %8s %8s %9s %9s %9s\n' job IOPS MB/s "p50 us" "p99 us" "mean us"
	while read -r name iops bw p50 p99 mean; do
		printf '%-28s %8s %8s %9s %9s %9s\n' "$name" "$iops" "$bw" "$p50" "$p99" "$mean"
	done <"$work/table"
	echo "4k randread QD32, copies=1 / nbdkit memory:   $rr (target >= 0.50) $(verdict "$rr" 0.5 ge)"
	echo "4k randwrite QD1 mean latency, copies=3 / floor ($floor_mean us): $wl (target <= 1.30) $(verdict "$wl" 1.3 le)"
	echo "  (for context: the floor measured three at once, as three replicas on one disk sync: $floor3_mean us;"
	echo "   copies=3 latency / that: $(ratio "$(col sheep.c3.randwrite.qd1 6)" "$floor3_mean"))"
} | tee -a "$results"
echo "(appended to $results)"
