#!/usr/bin/env bash
# Throughput of `dog vdi write|read` on 3 local sheep with copies=3, against
# the local limit measured in the same run on the same file system: the same
# bytes written to three files in parallel with O_DSYNC (what three durable
# replicas cost), and one copy read back (what a reader needs). Data pages
# are dropped from the page cache before each phase when that is allowed, so
# both sides read their data from disk; inodes and directory entries stay
# cached (drop_caches=1), as they are on a running server (BENCH_DROP=3
# drops them too, which charges sheep one inode read per 4 MiB object).
# Also records each sheep's resident memory at idle, at peak and after.
#
# Usage: bench/io-throughput.sh [SIZE_MIB]   (default 1024)
# Env:   SD_BUILD_DIR (default build), BENCH_DIR (default /var/tmp),
#        BENCH_REPS (alternating repetitions, best kept; default 5)
set -euo pipefail

size_mib=${1:-1024}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${SD_BUILD_DIR:-$top/build}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sd-bench.XXXXXX")
ram=$(mktemp -d /dev/shm/sd-bench.XXXXXX)
src=$ram/src
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

drop_caches() {
	sync
	echo "${BENCH_DROP:-1}" >/proc/sys/vm/drop_caches 2>/dev/null || true
}

now() { date +%s.%N; }
# Milliseconds the work directory's disk was busy (/proc/diskstats io_ticks).
disk=$(lsblk -no PKNAME "$(df --output=source "$work" | tail -1)" 2>/dev/null || true)
[[ -n $disk ]] || disk=$(basename "$(df --output=source "$work" | tail -1)")
busy_ms() { awk -v d="$disk" '$3 == d { print $13 }' /proc/diskstats; }
pct() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / 10 / t }'; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / 1048576 / t }'; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }

for i in 0 1 2; do
	"$build/sheep" ${SHEEP_ARGS:-} -f -c "local:$work/shm" -p $((port + i)) -z "$i" \
		"$work/n$i" >"$work/out$i" 2>&1 &
	pids+=($!)
done
deadline=$((SECONDS + 30))
until [[ $("$build/dog" node list -r -p "$port" 2>/dev/null | wc -l) -eq 3 ]]; do
	((SECONDS < deadline)) || { echo "sheep did not start" >&2; exit 1; }
	sleep 0.05
done
"$build/dog" cluster format -c 3 -p "$port" >/dev/null
head -c "${size_mib}M" /dev/urandom >"$src"
bytes=$((size_mib * 1048576))

idle=()
for p in "${pids[@]}"; do idle+=($(($(rss_kib "$p") / 1024))); done

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

# Alternate the two sides and keep the best time of each: the machine is
# shared, and a neighbour's burst should not decide the ratio.
sheep_w="" sheep_r="" file_w="" file_r=""
mkdir -p "$work/files"
for rep in $(seq "${BENCH_REPS:-5}"); do
	"$build/dog" vdi create "bench$rep" "${size_mib}M" -p "$port"
	drop_caches
	t0=$(now)
	"$build/dog" vdi write "bench$rep" -p "$port" <"$src"
	t1=$(now)
	sheep_w=$(best "$sheep_w" "$(elapsed "$t0" "$t1")")
	drop_caches
	b0=$(busy_ms)
	t0=$(now)
	"$build/dog" vdi read "bench$rep" -p $((port + 1)) >/dev/null
	t1=$(now)
	b1=$(busy_ms)
	if [[ $(best "$sheep_r" "$(elapsed "$t0" "$t1")") != "$sheep_r" ]]; then
		sheep_r=$(elapsed "$t0" "$t1")
		sheep_busy=$(pct $((b1 - b0)) "$sheep_r")
	fi
	"$build/dog" vdi delete "bench$rep" -p "$port"

	drop_caches
	t0=$(now)
	dds=()
	for i in 0 1 2; do
		dd if="$src" of="$work/files/copy$i" bs=4M oflag=dsync status=none &
		dds+=($!)
	done
	for p in "${dds[@]}"; do wait "$p"; done
	t1=$(now)
	file_w=$(best "$file_w" "$(elapsed "$t0" "$t1")")
	drop_caches
	b0=$(busy_ms)
	t0=$(now)
	dd if="$work/files/copy0" of=/dev/null bs=4M status=none
	t1=$(now)
	b1=$(busy_ms)
	if [[ $(best "$file_r" "$(elapsed "$t0" "$t1")") != "$file_r" ]]; then
		file_r=$(elapsed "$t0" "$t1")
		file_busy=$(pct $((b1 - b0)) "$file_r")
	fi
	rm -f "$work/files/copy"*
done

peak=() after=()
for p in "${pids[@]}"; do
	peak+=($(($(hwm_kib "$p") / 1024)))
	after+=($(($(rss_kib "$p") / 1024)))
done

sw=$(mbps $bytes "$sheep_w") sr=$(mbps $bytes "$sheep_r")
fw=$(mbps $bytes "$file_w") fr=$(mbps $bytes "$file_r")
rw=$(awk -v a="$sw" -v b="$fw" 'BEGIN { printf "%.2f", a / b }')
rr=$(awk -v a="$sr" -v b="$fr" 'BEGIN { printf "%.2f", a / b }')

report=$(cat <<REPORT
date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)
machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, $(uname -r), fs $(df -T "$work" | awk 'NR==2 {print $2}')
size:    $size_mib MiB, copies=3 on 3 local sheep${SHEEP_ARGS:+ (sheep $SHEEP_ARGS)}, best of ${BENCH_REPS:-5}, drop_caches=${BENCH_DROP:-1}
                 sheep MB/s   files MB/s   ratio
write            $(printf '%10s   %10s   %5s' "$sw" "$fw" "$rw")
read             $(printf '%10s   %10s   %5s' "$sr" "$fr" "$rr")
disk busy during the best reads: sheep ${sheep_busy:-?}%, file ${file_busy:-?}% ($disk)
sheep RSS MiB idle: ${idle[*]}   peak while serving: ${peak[*]}   idle after: ${after[*]}
REPORT
)
echo "$report"
out=$top/bench/results/io-throughput.txt
{ echo "$report"; echo; } >>"$out"
echo "(appended to $out)"
