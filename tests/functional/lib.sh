# shellcheck shell=bash
# Harness for the functional tests: sourced by every tests/functional/NNN-*.sh.
# It gives each test a private temporary directory and a block of free TCP
# ports, starts and stops sheep processes on the local cluster driver, and
# offers the assertions the stories are written with. On exit it stops every
# sheep it started, fails the test if a sanitizer reported anything, shows the
# logs when the test failed, and removes what it created.
#
# A sheep that does not stop on SIGTERM fails the test too.
#
# Waits are polls with a deadline (SD_WAIT_TIMEOUT seconds, default 30), never
# fixed sleeps. ctest sets SD_BUILD_DIR and SD_SOURCE_DIR; when a test is run
# by hand they default to build/ and the source tree this file lives in.

set -euo pipefail

SD_TEST_NAME=$(basename "$0" .sh)
SD_SOURCE_DIR=${SD_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SD_BUILD_DIR=${SD_BUILD_DIR:-$SD_SOURCE_DIR/build}
SD_WAIT_TIMEOUT=${SD_WAIT_TIMEOUT:-30}
SD_DOG_TIMEOUT=${SD_DOG_TIMEOUT:-60}
SHEEP=$SD_BUILD_DIR/sheep
DOG=$SD_BUILD_DIR/dog

# Sheep IDX listens on SD_PORT_BASE + IDX; the second half of the block is for
# other services a test starts (aux_port IDX), e.g. one NBD port per sheep.
SD_MAX_NODES=16
SD_PORT_BLOCK=$((2 * SD_MAX_NODES))

declare -a SD_PIDS=()
SD_LAST_STATUS=0
SD_SHM_BEFORE=""

fail() {
	echo "FAIL: $SD_TEST_NAME: $*" >&2
	exit 1
}

pass() {
	echo "PASS: $SD_TEST_NAME"
}

# Milliseconds since the epoch, without forking (EPOCHREALTIME is bash 5).
now_ms() {
	local us=${EPOCHREALTIME//[!0-9]/}
	echo $((us / 1000))
}

# wait_for DESCRIPTION CMD...: run CMD every 50 ms until it succeeds, or fail
# after SD_WAIT_TIMEOUT seconds.
wait_for() {
	local what=$1
	shift
	local deadline=$(($(now_ms) + SD_WAIT_TIMEOUT * 1000))
	until "$@" >/dev/null 2>&1; do
		if (($(now_ms) > deadline)); then
			fail "timed out after ${SD_WAIT_TIMEOUT}s waiting for $what"
		fi
		sleep 0.05
	done
}

# A process is alive when it exists and is not a zombie waiting to be reaped.
pid_alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# Are COUNT consecutive TCP ports from BASE free to bind on every address?
ports_free() {
	python3 "$SD_SOURCE_DIR/tests/tools/ports-free.py" "$1" "$2"
}

# Blocks are reserved with flock(1) on a lock file per block, held on a file
# descriptor for the life of the test, so two tests running at once (ctest -j)
# never share a block even if neither has bound its ports yet. Blocks lie below
# the kernel's ephemeral port range, so no outgoing connection of another test
# can take a port between the check and the bind.
SD_PORT_LOCK_DIR=${SD_PORT_LOCK_DIR:-${TMPDIR:-/tmp}/sheepdog-test-ports}

pick_port_base() {
	local try base lo hi eph_lo eph_hi fd
	lo=10000
	read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range || eph_lo=32768
	hi=$eph_lo
	((hi - lo >= 4 * SD_PORT_BLOCK)) || hi=60000
	mkdir -p "$SD_PORT_LOCK_DIR"
	chmod 1777 "$SD_PORT_LOCK_DIR" 2>/dev/null || true
	for ((try = 0; try < 200; try++)); do
		base=$((lo + ((RANDOM << 15 | RANDOM) % (hi - lo - SD_PORT_BLOCK))))
		base=$((base - base % SD_PORT_BLOCK))
		((base >= lo)) || continue
		exec {fd}>>"$SD_PORT_LOCK_DIR/$base.lock" || continue
		if flock -n "$fd" && ports_free "$base" "$SD_PORT_BLOCK"; then
			SD_PORT_LOCK_FD=$fd
			SD_PORT_BASE=$base
			return 0
		fi
		exec {fd}>&-
	done
	fail "no block of $SD_PORT_BLOCK free TCP ports found in $lo-$hi"
}

check_idx() {
	if ! [[ $1 =~ ^[0-9]+$ ]] || (($1 >= SD_MAX_NODES)); then
		fail "bad sheep index '$1' (0..$((SD_MAX_NODES - 1)))"
	fi
}

port_of() {
	check_idx "$1"
	echo $((SD_PORT_BASE + $1))
}

aux_port() {
	check_idx "$1"
	echo $((SD_PORT_BASE + SD_MAX_NODES + $1))
}

# nbd_port IDX: the NBD port of sheep IDX (start_sheep gives each its own).
nbd_port() {
	aux_port "$1"
}

node_dir() {
	echo "$SD_TMP/n$1"
}

# need_pid IDX: fail unless sheep IDX was started. It runs in the caller's
# shell (not in $(...)) so that the failure ends the test from any context.
need_pid() {
	check_idx "$1"
	[[ -n ${SD_PIDS[$1]:-} ]] || fail "sheep $1 was never started"
}

# start_sheep IDX [ARGS...]: start sheep IDX in the foreground of a background
# job, on port_of IDX, NBD port nbd_port IDX, zone IDX and the shared
# local-driver file. ARGS go before the store directory (a --nbd there
# overrides the NBD port). Call it from the test's own shell, not from a
# subshell: the sheep lives only as long as the shell that started it.
start_sheep() {
	local idx=$1
	shift
	check_idx "$idx"
	local dir
	dir=$(node_dir "$idx")
	mkdir -p "$dir"
	if [[ -n ${SD_PIDS[$idx]:-} ]] && pid_alive "${SD_PIDS[$idx]}"; then
		fail "sheep $idx is already running (pid ${SD_PIDS[$idx]})"
	fi
	# setpriv --pdeathsig: should this shell die without its EXIT trap
	# (SIGKILL from a test runner), the sheep dies with it.
	setpriv --pdeathsig KILL \
		"$SHEEP" -f -c "local:$SD_TMP/shm" -p "$(port_of "$idx")" -z "$idx" \
			-l "level=debug,dir=$dir" --nbd "port=$(nbd_port "$idx")" \
			"$@" "$dir" \
		>>"$SD_TMP/sheep$idx.out" 2>&1 &
	SD_PIDS[idx]=$!
}

sheep_answers() {
	timeout 10 "$DOG" node list -p "$(port_of "$1")"
}

# wait_for_sheep IDX: poll until sheep IDX answers `dog node list`.
wait_for_sheep() {
	local idx=$1
	need_pid "$idx"
	local pid=${SD_PIDS[$idx]}
	local deadline=$(($(now_ms) + SD_WAIT_TIMEOUT * 1000))
	until sheep_answers "$idx" >/dev/null 2>&1; do
		if ! pid_alive "$pid"; then
			local status=0
			wait "$pid" || status=$?
			fail "sheep $idx (pid $pid) exited with status $status before answering"
		fi
		if (($(now_ms) > deadline)); then
			fail "sheep $idx did not answer within ${SD_WAIT_TIMEOUT}s"
		fi
		sleep 0.05
	done
}

node_count_is() {
	local n
	n=$(timeout 10 "$DOG" node list -r -p "$(port_of "$1")" | wc -l)
	[[ $n -eq $2 ]]
}

# wait_for_nodes IDX N: poll until sheep IDX lists exactly N members.
wait_for_nodes() {
	wait_for "sheep $1 to list $2 nodes" node_count_is "$1" "$2"
}

# start_cluster N: start sheep 0..N-1 and wait until all of them are members.
start_cluster() {
	local n=$1 i
	for ((i = 0; i < n; i++)); do
		start_sheep "$i"
		wait_for_sheep "$i"
	done
	wait_for_nodes 0 "$n"
}

cluster_running() {
	local out
	out=$(timeout 10 "$DOG" cluster info -r -p "$(port_of "$1")") || return 1
	[[ $out == running* ]]
}

# format_cluster [COPIES]: format through sheep 0 and wait until it runs.
format_cluster() {
	dog_p 0 cluster format -c "${1:-3}" </dev/null >/dev/null
	wait_for "the cluster to run" cluster_running 0
}

# wait_exit PID SECONDS: poll until PID is gone; return 1 if it outlives the wait.
wait_exit() {
	local pid=$1 deadline=$(($(now_ms) + $2 * 1000))
	while pid_alive "$pid"; do
		(($(now_ms) > deadline)) && return 1
		sleep 0.05
	done
	return 0
}

# kill_sheep IDX [SIG]: send SIG (default KILL) to sheep IDX and wait for it
# to exit. Its exit status is left in SD_LAST_STATUS for the test to check.
kill_sheep() {
	local idx=$1 sig=${2:-KILL}
	need_pid "$idx"
	local pid=${SD_PIDS[$idx]}
	kill -s "$sig" "$pid" 2>/dev/null || true
	wait_exit "$pid" "$SD_WAIT_TIMEOUT" ||
		fail "sheep $idx (pid $pid) did not exit within ${SD_WAIT_TIMEOUT}s of SIG$sig"
	# shellcheck disable=SC2034 # read by the tests
	SD_LAST_STATUS=0
	# shellcheck disable=SC2034
	wait "$pid" || SD_LAST_STATUS=$?
}

# placement_ok IDX N: tests/tools/sd-placement through sheep IDX: N members
# at one epoch, none recovering, every object live on exactly its holders.
placement_ok() {
	"$SD_BUILD_DIR/tests/sd-placement" -p "$(port_of "$1")" -n "$2" --details 3
}

# wait_placed IDX N: poll placement_ok until it passes.
wait_placed() {
	wait_for "every object to be on its holders ($2 nodes)" placement_ok "$1" "$2"
}

# holders_of VDI [IDX]: the sheep indexes placement gives for data object
# IDX of VDI (its inode without IDX), from `dog vdi object location`.
holders_of() {
	local hp i out
	out=$(dog_p 0 vdi object location ${2:+-i "$2"} "$1" | tail -1)
	for hp in $out; do
		for ((i = 0; i < SD_MAX_NODES; i++)); do
			[[ $hp == "127.0.0.1:$(port_of "$i")" ]] && echo "$i"
		done
	done
}

# dog_p IDX ARGS...: run dog against sheep IDX, bounded by SD_DOG_TIMEOUT.
dog_p() {
	local idx=$1
	shift
	check_idx "$idx"
	timeout "$SD_DOG_TIMEOUT" "$DOG" "$@" -p $((SD_PORT_BASE + idx))
}

assert_eq() {
	[[ $1 == "$2" ]] || fail "${3:-values differ}: expected '$1', got '$2'"
}

# nbd_uri IDX EXPORT: the NBD URI of EXPORT on sheep IDX ("" for none).
nbd_uri() { echo "nbd://127.0.0.1:$(nbd_port "$1")/$2"; }

# wait_nbd IDX...: wait until each of these sheep answers NBD.
wait_nbd() {
	local i
	for i; do
		wait_for "sheep $i to answer NBD" nbdinfo --list "$(nbd_uri "$i" "")"
	done
}

# need_tools TOOL...: skip the test (exit 77) unless every TOOL is installed.
need_tools() {
	local t
	for t; do
		command -v "$t" >/dev/null 2>&1 || {
			echo "SKIP: $SD_TEST_NAME: $t is not installed (scripts/deps.sh --tests installs it)"
			exit 77
		}
	done
}

# libnbd's Python binding (python3-libnbd) is built for Debian's python3.
PY=/usr/bin/python3
# need_python_nbd: skip the test (exit 77) unless $PY has that binding.
need_python_nbd() {
	"$PY" -c 'import nbd' 2>/dev/null || {
		echo "SKIP: $SD_TEST_NAME: python3-libnbd is not installed (scripts/deps.sh --tests installs it)"
		exit 77
	}
}

# flip_byte FILE OFFSET: invert every bit of the byte at OFFSET, so the file
# is certain to change (writing a fixed byte may leave it as it was).
flip_byte() {
	local b
	(($2 < $(stat -c %s "$1"))) || fail "flip_byte: offset $2 is past the end of $1"
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\$(printf %03o $((b ^ 255)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# assert_exit CODE CMD...: CMD must exit with CODE.
assert_exit() {
	local want=$1 got=0
	shift
	"$@" || got=$?
	[[ $got -eq $want ]] || fail "'$*' exited with $got, expected $want"
}

# assert_alive IDX: sheep IDX is still running and still answers requests.
assert_alive() {
	need_pid "$1"
	local pid=${SD_PIDS[$1]}
	pid_alive "$pid" || fail "sheep $1 (pid $pid) is not running"
	sheep_answers "$1" >/dev/null 2>&1 || fail "sheep $1 (pid $pid) does not answer"
}

# Files that appeared in /dev/shm during the test and that no process still
# holds open are the test's leftovers (for example after a SIGKILL).
clean_dev_shm() {
	local f
	for f in /dev/shm/*; do
		[[ -e $f ]] || continue
		grep -qxF "$f" <<<"$SD_SHM_BEFORE" && continue
		if ! find /proc/[0-9]*/fd -lname "$f" -print -quit 2>/dev/null | grep -q .; then
			rm -f "$f"
		fi
	done
}

sd_cleanup() {
	local rc=$? idx pid logs=()
	set +e
	trap - EXIT
	for idx in "${!SD_PIDS[@]}"; do
		pid=${SD_PIDS[$idx]}
		pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null
	done
	for idx in "${!SD_PIDS[@]}"; do
		pid=${SD_PIDS[$idx]}
		if ! wait_exit "$pid" 10; then
			# SIGTERM must stop a sheep (and lets LeakSanitizer run).
			echo "FAIL: $SD_TEST_NAME: sheep $idx (pid $pid) did not exit within 10s of SIGTERM; killing it" >&2
			((rc == 0)) && rc=1
			kill -KILL "$pid" 2>/dev/null
			wait_exit "$pid" 10
		fi
		wait "$pid" 2>/dev/null
	done

	if [[ -n ${SD_TMP:-} && -d $SD_TMP ]]; then
		mapfile -t logs < <(find "$SD_TMP" -maxdepth 2 -type f \
			\( -name 'sheep*.out' -o -name 'sheep.log*' \) | sort)
		if ((${#logs[@]})) && grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
			"${logs[@]}" >/dev/null 2>&1; then
			echo "FAIL: $SD_TEST_NAME: a sanitizer reported an error (see logs below)" >&2
			((rc == 0)) && rc=1
		fi
		if ((rc != 0)); then
			for f in "${logs[@]}"; do
				echo "----- ${f#"$SD_TMP"/} (last 40 lines) -----" >&2
				tail -n 40 "$f" >&2
			done
			# SD_KEEP_FAILED=DIR keeps a failed test's files there.
			if [[ -n ${SD_KEEP_FAILED:-} ]]; then
				mkdir -p "$SD_KEEP_FAILED" &&
					cp -a "$SD_TMP" "$SD_KEEP_FAILED/" &&
					echo "kept in $SD_KEEP_FAILED/${SD_TMP##*/}" >&2
			fi
		fi
		rm -rf "$SD_TMP"
	fi
	clean_dev_shm
	exit "$rc"
}

[[ -x $SHEEP ]] || fail "no sheep binary at $SHEEP (build first)"
[[ -x $DOG ]] || fail "no dog binary at $DOG (build first)"

SD_SHM_BEFORE=$(printf '%s\n' /dev/shm/*)
SD_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sd-$SD_TEST_NAME.XXXXXX")
trap sd_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
pick_port_base
