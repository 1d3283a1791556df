#!/usr/bin/env bash
# Soak: nothing acknowledged is ever lost while sheep die, come back and
# join. A cluster of SOAK_NODES sheep (copies SOAK_COPIES) holds a
# preallocated VDI that tests/tools/vwriter.py keeps writing random 4 KiB
# blocks to, failing over between sheep. Each round does one thing picked
# at random among those allowed: kill -9 one or two sheep (never more than
# copies-1 at once, and never below copies running), restart a killed sheep
# on its old store, or add a brand-new sheep. Then it waits until the
# cluster has settled (tests/tools/sd-placement exits 0: every member at
# the same epoch, none recovering, every object live on exactly the holders
# placement gives), pauses the writer and reads back every block it ever
# wrote (vwriter.py verify). A round that does not settle within
# SOAK_SETTLE_TIMEOUT seconds, a lost or corrupt block, or a stale read seen
# by the writer's own read-back checks fails the soak; it stops at the first
# failing round, after verifying what it can. Each round's line also
# reports the .stale copies the running sheep keep (not judged: spec 7.3
# lets them stay until every member has recovered).
#
# With SOAK_UNSETTLED percent of the rounds (default 30), the next action
# comes at once, without waiting for the cluster to settle: sheep die and
# join while recovery is still running. Fewer than SOAK_COPIES sheep are
# ever killed between two settled states, so some copy of every object
# always survives.
#
# Usage: tests/soak.sh ROUNDS
# Env:   SOAK_NODES (5), SOAK_COPIES (3), SOAK_MAX_NODES (8, at most 16),
#        SOAK_VDI_SIZE (256M), SOAK_SETTLE_TIMEOUT (120), SOAK_JOBS (2,
#        concurrent writers), SOAK_MIN_WRITES (200, acknowledged writes
#        between the resume and the next action), SOAK_RETRY_FOR (60,
#        seconds the writer retries one request before calling its outcome
#        uncertain), SOAK_SEED (random; the run prints it, and the same
#        seed replays the same actions), SOAK_UNSETTLED (30, percent of
#        rounds followed at once by the next action), SOAK_DURATION
#        (seconds; when set, the soak ends after the first settled round
#        past it, or after ROUNDS rounds),
#        SD_BUILD_DIR (build/), SD_WAIT_TIMEOUT (30, for starts and joins).
# Output ends with "rounds R, objects verified V, losses L": V counts the
# blocks read back by every verification, L the lost, corrupt and
# unreadable blocks and the writer's bad read-backs.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/functional/lib.sh"

rounds=${1:-}
[[ $rounds =~ ^[0-9]+$ ]] || fail "usage: $0 ROUNDS"
nodes=${SOAK_NODES:-5}
copies=${SOAK_COPIES:-3}
max_nodes=${SOAK_MAX_NODES:-8}
vdi_size=${SOAK_VDI_SIZE:-256M}
settle_timeout=${SOAK_SETTLE_TIMEOUT:-120}
min_writes=${SOAK_MIN_WRITES:-200}
retry_for=${SOAK_RETRY_FOR:-60}
seed=${SOAK_SEED:-$((RANDOM << 15 | RANDOM))}
unsettled_pct=${SOAK_UNSETTLED:-30}
duration=${SOAK_DURATION:-0}
[[ $duration =~ ^[0-9]+$ ]] || fail "SOAK_DURATION must be a number of seconds"
soak_start=$(now_ms)
killed_since_settle=0
((max_nodes <= SD_MAX_NODES)) || fail "SOAK_MAX_NODES is at most $SD_MAX_NODES"
((nodes >= copies && nodes <= max_nodes)) ||
	fail "need SOAK_COPIES <= SOAK_NODES <= SOAK_MAX_NODES"
RANDOM=$seed

PLACEMENT=$SD_BUILD_DIR/tests/sd-placement
VWRITER=$SD_SOURCE_DIR/tests/tools/vwriter.py
[[ -x $PLACEMENT ]] || fail "no sd-placement at $PLACEMENT (build first)"

ports="$(port_of 0)-$(port_of $((max_nodes - 1)))"
state=$SD_TMP/vwriter.json
progress=$SD_TMP/vwriter.progress
pause=$SD_TMP/vwriter.pause
stop=$SD_TMP/vwriter.stop
writer_pid=""

declare -a running=() down=()
next_new=$nodes
verified=0 losses=0 done_rounds=0 failed=""

# The writer is not a sheep: stop it before lib.sh's cleanup stops those.
soak_cleanup() {
	local rc=$?
	set +e
	if [[ -n $writer_pid ]] && pid_alive "$writer_pid"; then
		touch "$stop"
		rm -f "$pause"
		wait_exit "$writer_pid" 30 || kill -KILL "$writer_pid"
		wait "$writer_pid"
	fi
	(exit "$rc")
	sd_cleanup
}
trap soak_cleanup EXIT

say() { echo "soak: $*"; }

list_running() { echo "${running[*]}"; }

remove_running() {
	local idx=$1 out=() i
	for i in "${running[@]}"; do [[ $i == "$idx" ]] || out+=("$i"); done
	running=("${out[@]}")
}

remove_down() {
	local idx=$1 out=() i
	for i in "${down[@]}"; do [[ $i == "$idx" ]] || out+=("$i"); done
	down=("${out[@]}")
}

# Stale copies kept by the running sheep (spec 7.3: kept until every
# member has recovered, then purged). Reported, not judged.
stale_copies() {
	local i n=0
	for i in "${running[@]}"; do
		n=$((n + $(find "$(node_dir "$i")/obj/.stale" -type f 2>/dev/null | wc -l)))
	done
	echo "$n"
}

progress_field() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$progress" "$1" 2>/dev/null || echo 0
}

acked_beyond() { (($(progress_field acked) >= $1)); }

# settle: poll sd-placement until it passes; false after the timeout,
# with its last report on stdout.
placement_out=""
settle() {
	local deadline=$(($(now_ms) + settle_timeout * 1000)) rc
	while :; do
		rc=0
		placement_out=$(timeout 60 "$PLACEMENT" -p "$(port_of "${running[0]}")" \
			-n "${#running[@]}" 2>&1) || rc=$?
		((rc == 0)) && return 0
		if (($(now_ms) > deadline)); then
			echo "$placement_out"
			return 1
		fi
		sleep 0.1
	done
}

# verify_state: read back every block of the writer's last state dump.
verify_state() {
	local out rc=0 n lost corrupt unreadable
	out=$(python3 "$VWRITER" --timeout 20 --retry-for 30 -q verify \
		--state "$state" --ports "$ports") || rc=$?
	echo "soak:   ${out//$'\n'/$'\n'soak:   }"
	[[ $out =~ verified\ ([0-9]+)\ blocks,\ lost\ ([0-9]+),\ corrupt\ ([0-9]+)(,\ unreadable\ ([0-9]+))? ]] ||
		fail "unexpected vwriter verify output (exit $rc)"
	n=${BASH_REMATCH[1]} lost=${BASH_REMATCH[2]} corrupt=${BASH_REMATCH[3]}
	unreadable=${BASH_REMATCH[5]:-0}
	verified=$((verified + n))
	losses=$((losses + lost + corrupt + unreadable))
	((rc == 0 && lost + corrupt + unreadable == 0))
}

# verify: pause the writer (it dumps its state), verify, resume it. A
# writer busy retrying may take a write and a read-back to get there.
verify() {
	local rc=0
	touch "$pause"
	SD_WAIT_TIMEOUT=$((2 * (retry_for + 20) + 10)) \
		wait_for "the writer to pause" test -e "$pause.ack"
	verify_state || rc=$?
	rm -f "$pause"
	wait_for "the writer to resume" test ! -e "$pause.ack"
	return "$rc"
}

do_kill() {
	local k=$1 victims=() i pick
	for ((i = 0; i < k; i++)); do
		pick=${running[RANDOM % ${#running[@]}]}
		victims+=("$pick")
		remove_running "$pick"
	done
	for i in "${victims[@]}"; do kill -KILL "${SD_PIDS[$i]}" 2>/dev/null || true; done
	for i in "${victims[@]}"; do
		kill_sheep "$i" KILL
		down+=("$i")
	done
	killed_since_settle=$((killed_since_settle + k))
	action="kill -9 sheep ${victims[*]}"
	wait_for_nodes "${running[0]}" "${#running[@]}"
}

do_restart() {
	local idx=${down[RANDOM % ${#down[@]}]}
	remove_down "$idx"
	start_sheep "$idx"
	wait_for_sheep "$idx"
	running+=("$idx")
	action="restart sheep $idx"
	wait_for_nodes "${running[0]}" "${#running[@]}"
}

do_add() {
	local idx=$next_new
	next_new=$((next_new + 1))
	start_sheep "$idx"
	wait_for_sheep "$idx"
	running+=("$idx")
	action="add sheep $idx"
	wait_for_nodes "${running[0]}" "${#running[@]}"
}

say "seed $seed, $nodes sheep, copies $copies, VDI $vdi_size, $rounds rounds"
start_cluster "$nodes"
for ((i = 0; i < nodes; i++)); do running+=("$i"); done
format_cluster "$copies"
dog_p 0 vdi create soak "$vdi_size" -P
settle || fail "the new cluster's placement is not exact"

setpriv --pdeathsig KILL python3 "$VWRITER" --timeout 20 --retry-for "$retry_for" write \
	--vdi soak --ports "$ports" --state "$state" --progress "$progress" \
	--pause-file "$pause" --stop-file "$stop" --jobs "${SOAK_JOBS:-2}" \
	--seed "$seed" >"$SD_TMP/vwriter.out" 2>&1 &
writer_pid=$!
wait_for "the writer to start" acked_beyond "$min_writes"

for ((round = 1; round <= rounds; round++)); do
	actions=()
	max_kill=$((copies - 1 - killed_since_settle))
	((${#running[@]} - copies < max_kill)) && max_kill=$((${#running[@]} - copies))
	((max_kill >= 1)) && actions+=(kill)
	((${#down[@]} > 0)) && actions+=(restart)
	((${#running[@]} + ${#down[@]} < max_nodes && next_new < max_nodes)) &&
		actions+=(add)
	if ((${#actions[@]} == 0 && killed_since_settle > 0)); then
		# Every sheep is up and no more may die before recovery ends.
		pick=settle
		action="no action until recovery ends"
	else
		((${#actions[@]})) || fail "round $round: no action possible"
		pick=${actions[RANDOM % ${#actions[@]}]}
	fi
	case $pick in
	kill) do_kill $((1 + RANDOM % max_kill)) ;;
	restart) do_restart ;;
	add) do_add ;;
	esac
	if [[ $pick != settle ]] &&
		((round < rounds && RANDOM % 100 < unsettled_pct)); then
		say "round $round: $action; running $(list_running); next action without waiting for recovery"
		done_rounds=$round
		wait_for "the writer to make progress" acked_beyond $(($(progress_field acked) + min_writes / 4))
		continue
	fi
	t0=$(now_ms)
	if settle; then
		killed_since_settle=0
		took=$(($(now_ms) - t0))
		say "round $round: $action; running $(list_running); settled in $((took / 1000)).$(printf '%03d' $((took % 1000)))s: ${placement_out//$'\n'/; }; .stale copies $(stale_copies)"
	else
		say "round $round: $action; running $(list_running); NOT settled within ${settle_timeout}s"
		failed="round $round ($action) did not settle within ${settle_timeout}s"
	fi
	verify || failed=${failed:-"round $round ($action) lost data"}
	bad_reads=$(($(progress_field check_lost) + $(progress_field check_corrupt)))
	if ((bad_reads)); then
		failed=${failed:-"round $round: the writer read back $bad_reads bad blocks"}
	fi
	done_rounds=$round
	[[ -z $failed ]] || break
	((duration > 0 && ($(now_ms) - soak_start) / 1000 >= duration)) && break
	base=$(progress_field acked)
	wait_for "the writer to make progress" acked_beyond $((base + min_writes))
done

touch "$stop"
wait_exit "$writer_pid" 120 || fail "the writer did not stop"
writer_rc=0
wait "$writer_pid" || writer_rc=$?
writer_pid=""
grep -v 'via port' "$SD_TMP/vwriter.out" | sed 's/^/soak: writer: /' || true
bad_reads=$(($(progress_field check_lost) + $(progress_field check_corrupt)))
losses=$((losses + bad_reads))
if [[ -z $failed ]]; then
	verify_state || failed="the final verification lost data"
fi
say "ran $((($(now_ms) - soak_start) / 1000))s"
echo "rounds $done_rounds, objects verified $verified, losses $losses"
[[ -z $failed ]] || fail "$failed (seed $seed)"
((writer_rc == 0)) || fail "the writer exited with $writer_rc (seed $seed)"
pass
