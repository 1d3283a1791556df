#!/usr/bin/env bash
# Throughput and compression of `dog vdi backup` and `dog vdi restore` on a
# VDI that holds a real file system: an ext4 image made here with
# mkfs.ext4 -d from a copy of /usr/include, /usr/share and
# /usr/lib/x86_64-linux-gnu (text, compressed documents and binaries),
# with the rest of the image left free (zeros). The local limits, measured
# in the same run on the same file system, are the zstd CLI compressing the
# same raw image file at the same level (-T1, its default here: one worker
# thread compresses beside the I/O, as dog's stream writer does; and
# --single-thread for reference), and `dog vdi write` of the raw image into
# a new VDI. `dog vdi read` of the snapshot is timed too: the backup's
# reads alone, its floor. Backup and zstd both write their output to the
# work directory and sync it (dog fsyncs the stream itself; zstd's output
# is synced with `sync FILE` inside its timing).
#
# Every rate is on the raw image's bytes: MB/s = image MiB / seconds. The
# ratio is image bytes / output bytes for both sides; zstd compresses the
# free space, a full stream leaves zeros out, which is the point of it.
# One warm run first, then best of BENCH_REPS, each rep running every side
# once. The image stays in /dev/shm, so zstd and `dog vdi write` read it
# from memory; sheep reads its objects with O_DIRECT (its default), so the
# backup reads them from disk in every rep, warm or not.
# Restored and written VDIs are read back and compared with the image once.
#
# Targets: backup at least 0.8x the throughput of zstd -T1 at the same level
# with a ratio at least 0.9x zstd's; restore at least 0.5x `dog vdi write`.
# Missing a target is reported, not an error; the exit status is non-zero
# only when something fails or a restored VDI differs from the image.
#
# Usage: bench/backup.sh [IMAGE_MIB [FILL_MIB]]   (default 512 and 300)
# Env:   SD_BUILD_DIR (default build), BENCH_DIR (default /var/tmp),
#        BENCH_REPS (best of; default 3), BENCH_LEVEL (default 3),
#        BENCH_COPIES (default 3, on 3 local sheep), BENCH_NOTE (a line
#        for the record: what this run is about)
set -euo pipefail

image_mib=${1:-512}
fill_mib=${2:-300}
reps=${BENCH_REPS:-3}
level=${BENCH_LEVEL:-3}
copies=${BENCH_COPIES:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${SD_BUILD_DIR:-$top/build}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sd-bench-bk.XXXXXX")
ram=$(mktemp -d /dev/shm/sd-bench-bk.XXXXXX)
# shellcheck source=bench/lib.sh
. "$top/bench/lib.sh"
port=$(bench_ports 32)
pids=()

for tool in zstd mkfs.ext4 /usr/bin/time; do
	command -v "$tool" >/dev/null ||
		{ echo "backup bench: $tool is missing (scripts/deps.sh --tests)" >&2; exit 1; }
done

cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work" "$ram"
}
trap cleanup EXIT

die() {
	echo "backup bench: $*" >&2
	tail -n 5 "$work"/out* >&2 || true
	exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b > a) ? b : a }'; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / 1048576 / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
dog() { "$build/dog" "$@" -p "$port"; }

# timed NAME CMD...: run CMD, keep its wall time in t_NAME (best of the reps
# so far) and its peak RSS in rss_NAME (KiB, largest seen); stdin and stdout
# come from the caller. The first run (warm) counts for neither.
declare -A t_best=() rss_max=()
counting=false
timed() {
	local name=$1 t0 t1 t
	shift
	t0=$(now)
	/usr/bin/time -o "$work/time.$name" -f %M "$@" || die "$name failed: $*"
	t1=$(now)
	t=$(elapsed "$t0" "$t1")
	$counting || return 0
	t_best[$name]=$(best "${t_best[$name]:-}" "$t")
	rss_max[$name]=$(max "${rss_max[$name]:-}" "$(tail -n 1 "$work/time.$name")")
	printf '  %-14s %7.3f s\n' "$name" "$t"
}

# ---- the image: ext4 with FILL_MIB of real files, the rest free ----
# pick DIR MIB: the readable regular files under DIR, in name order, until
# their sizes add up to MIB.
pick() {
	find "$1" -xdev -type f -readable -printf '%s %p\n' 2>/dev/null |
		sort -k 2 | awk -v max=$(($2 << 20)) \
		'!full && sum + $1 > max { full = 1 }
		 !full { sum += $1; print substr($0, index($0, " ") + 1) }'
}
{
	pick /usr/include $((fill_mib * 3 / 10))
	pick /usr/share $((fill_mib * 2 / 10))
	pick /usr/lib/x86_64-linux-gnu $((fill_mib - fill_mib * 5 / 10))
} >"$ram/list"
mkdir "$ram/tree"
tar -cf - --ignore-failed-read -T "$ram/list" 2>/dev/null | tar -xf - -C "$ram/tree"
mkfs.ext4 -q -F -d "$ram/tree" "$ram/img.raw" "${image_mib}M" >/dev/null ||
	die "mkfs.ext4 -d failed"
files=$(wc -l <"$ram/list")
used_mib=$(($(du -sk "$ram/tree" | cut -f 1) >> 10))
rm -rf "$ram/tree"
bytes=$(stat -c %s "$ram/img.raw")

# ---- the cluster and the snapshot to back up ----
for i in 0 1 2; do
	setpriv --pdeathsig KILL "$build/sheep" -f -c "local:$work/shm" \
		-p $((port + i)) -z "$i" "$work/n$i" >"$work/out$i" 2>&1 &
	pids+=($!)
done
deadline=$((SECONDS + 30))
until [[ $("$build/dog" node list -r -p "$port" 2>/dev/null | wc -l) -eq 3 ]]; do
	((SECONDS < deadline)) || die "sheep did not start"
	sleep 0.05
done
dog cluster format -c "$copies" >/dev/null || die "format failed"
dog vdi create img "${image_mib}M" || die "vdi create failed"
dog vdi write img <"$ram/img.raw" || die "vdi write failed"
dog vdi snapshot -s full img >/dev/null || die "vdi snapshot failed"

zstd_default=$(zstd -H 2>&1 | sed -n 's/.*-T#.*Default: \([0-9]*\).*/\1/p')
stream=$work/img.sdb
declare -A out_bytes=()

# Rep 0 is the warm run. In each rep every side runs once, in this order.
for rep in $(seq 0 "$reps"); do
	((rep)) && counting=true
	echo "rep $rep$( ((rep)) || echo ' (warm, not counted)')"
	timed zstd_T1 bash -c 'zstd -q -f "-$1" -T1 "$2" -o "$3" && sync "$3"' \
		_ "$level" "$ram/img.raw" "$work/img.zst"
	out_bytes[zstd_T1]=$(stat -c %s "$work/img.zst")
	timed zstd_single bash -c \
		'zstd -q -f "-$1" --single-thread "$2" -o "$3" && sync "$3"' \
		_ "$level" "$ram/img.raw" "$work/img.zst"
	out_bytes[zstd_single]=$(stat -c %s "$work/img.zst")
	rm -f "$work/img.zst"
	timed read "$build/dog" vdi read -s full img -p "$port" >/dev/null
	timed backup "$build/dog" vdi backup -L "$level" -s full img "$stream" \
		-p "$port"
	out_bytes[backup]=$(stat -c %s "$stream")
	timed write bash -c '"$1" vdi create "w$2" "$3M" -p "$4" &&
		"$1" vdi write "w$2" -p "$4" <"$5"' _ "$build/dog" "$rep" \
		"$image_mib" "$port" "$ram/img.raw"
	timed verify "$build/dog" backup verify "$stream" >/dev/null
	timed restore "$build/dog" vdi restore "r$rep" "$stream" -p "$port"
	if ((rep == 0)); then
		for v in "w$rep" "r$rep"; do
			dog vdi read "$v" | cmp -s - "$ram/img.raw" ||
				die "VDI $v does not read back as the image"
		done
		"$build/dog" backup show -r "$stream" >"$work/show" ||
			die "dog backup show failed"
	fi
	# the restored state is a snapshot under a working VDI: drop both
	dog vdi delete "w$rep" >/dev/null || die "vdi delete w$rep failed"
	dog vdi delete "r$rep" >/dev/null || die "vdi delete r$rep failed"
	dog vdi delete -s 1 "r$rep" >/dev/null ||
		die "vdi delete -s 1 r$rep failed"
	rm -f "$stream"
done

field() { awk -v k="$1" '$1 == k { print $2 }' "$work/show"; }
mib() { echo $(($1 >> 20)); }
# row LABEL NAME [OUTBYTES]: MB/s on the image's bytes, best s, ratio, RSS
row() {
	local r=-
	[[ -n ${3:-} ]] && r=$(ratio "$bytes" "$3")
	printf '%-36s %6s %7s %6s %7s' "$1" "$(mbps "$bytes" "${t_best[$2]}")" \
		"${t_best[$2]}" "$r" "$((${rss_max[$2]} >> 10))"
}
rate() { mbps "$bytes" "${t_best[$1]}"; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "pass" : "FAIL" }'; }
bk_vs_zstd=$(ratio "$(rate backup)" "$(rate zstd_T1)")
bk_vs_single=$(ratio "$(rate backup)" "$(rate zstd_single)")
ratio_vs=$(awk -v a="${out_bytes[zstd_T1]}" -v b="${out_bytes[backup]}" \
	'BEGIN { printf "%.2f", a / b }')
rs_vs_write=$(ratio "$(rate restore)" "$(rate write)")
v_speed=$(verdict "$bk_vs_zstd" 0.8)
v_ratio=$(verdict "$ratio_vs" 0.9)
v_restore=$(verdict "$rs_vs_write" 0.5)

report=$(cat <<REPORT
date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)
machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, $(uname -r), fs $(df -T "$work" | awk 'NR==2 {print $2}'), $(zstd -V | sed 's/^\*\*\* //; s/, by.*//')
${BENCH_NOTE:+note:    $BENCH_NOTE
}image:   ext4 of $image_mib MiB (mkfs.ext4 -d), $files files of $used_mib MiB from /usr/include, /usr/share, /usr/lib/x86_64-linux-gnu; in /dev/shm
cluster: 3 local sheep, copies=$copies; dog talks to one sheep; outputs on the work fs, synced; warm run + best of $reps
stream:  $(field records) records, data $(mib "$(field data)") MiB, zero records $(mib "$(field zero)") MiB, stream $(mib "${out_bytes[backup]}") MiB
commands (level $level):
  zstd -q -f -$level -T1 IMG -o OUT && sync OUT            (zstd's default is -T${zstd_default:-?})
  zstd -q -f -$level --single-thread IMG -o OUT && sync OUT
  dog vdi backup -L $level -s full img OUT                 (fsyncs OUT)
  dog vdi read -s full img > /dev/null                (what backup reads)
  dog vdi create wN ${image_mib}M && dog vdi write wN < IMG
  dog vdi restore rN OUT                              (verify pass + apply)
  dog backup verify OUT                               (restore's first pass)
                                       MB/s  best s  ratio  RSS MiB
$(row "zstd -$level -T1" zstd_T1 "${out_bytes[zstd_T1]}")
$(row "zstd -$level --single-thread" zstd_single "${out_bytes[zstd_single]}")
$(row "dog vdi backup -L $level" backup "${out_bytes[backup]}")
$(row "  its reads alone (vdi read -s)" read)
$(row "dog vdi write (raw image)" write)
$(row "dog vdi restore" restore)
$(row "  its verify pass alone" verify)
backup speed / zstd -T1:           $bk_vs_zstd (target >= 0.80) $v_speed   [/ --single-thread: $bk_vs_single]
backup ratio / zstd -T1 ratio:     $ratio_vs (target >= 0.90) $v_ratio
restore speed / vdi write:         $rs_vs_write (target >= 0.50) $v_restore
REPORT
)
echo "$report"
out=$top/bench/results/backup.txt
if [[ ! -e $out ]]; then
	cat >"$out" <<'HEADER'
# bench/backup.sh results, newest last. Each block is one run: dog vdi
# backup and restore of a VDI holding an ext4 image with real files in it,
# against zstd compressing the same raw image file at the same level and
# dog vdi write of that image, on the same machine in the same run. MB/s
# are on the raw image's bytes (image MiB / s); ratio = image bytes / output
# bytes; RSS is the peak resident size of the command (/usr/bin/time %M).
HEADER
fi
{ echo "$report"; echo; } >>"$out"
echo "(appended to $out)"
