#!/usr/bin/env bash
# sheep's configuration (sheep(8), sheepdog.conf(5)): a daemon configured only
# by `--config FILE` uses every key (store, port, zone, driver, log level and
# directory, pid file, foreground or not); the command line overrides the
# file; an unknown key or a bad value stops sheep before it creates or starts
# anything, with a message naming the file, the line and the key; a second
# sheep on a store in use is refused without disturbing the first; -v prints
# the version and bad -p/-z values are refused.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

# A daemonized sheep is not our child and has no parent-death signal: should
# the test fail before it knows the daemon's pid from the pid file, find it by
# its own config file on its command line and stop it.
daemon_conf=$SD_TMP/daemon.conf
stop_daemon_by_conf() {
	local rc=$? f pid
	set +e
	trap - EXIT
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		if tr '\0' '\n' 2>/dev/null <"$f" | grep -qxF -- "--config=$daemon_conf"; then
			kill -TERM "$pid" 2>/dev/null
			wait_exit "$pid" 10 || kill -KILL "$pid" 2>/dev/null
		fi
	done
	(exit "$rc")
	sd_cleanup
}
trap stop_daemon_by_conf EXIT

# capture CMD...: stdout+stderr in OUT, exit status in RC.
capture() {
	RC=0
	OUT=$("$@" 2>&1) || RC=$?
}

port_answers() {
	timeout 10 "$DOG" node list -p "$1"
}

# refused DESCRIPTION PATTERN CMD...: CMD exits non-zero at once, its output
# matches the extended regex PATTERN, and it leaves no store and no listener.
refused() {
	local what=$1 pattern=$2
	shift 2
	rm -rf "$SD_TMP/never"
	capture timeout 10 "$@"
	((RC != 0 && RC != 124)) || fail "$what: exit status $RC ($OUT)"
	[[ $OUT =~ $pattern ]] || fail "$what: output '$OUT' does not match /$pattern/"
	[[ ! -e $SD_TMP/never ]] || fail "$what: the store directory was created"
	! port_answers "$(port_of 5)" >/dev/null 2>&1 || fail "$what: something answers on its port"
}

# --- Everything from the file. ---------------------------------------------

store=$SD_TMP/store0
log_dir=$SD_TMP/logs0
cat >"$SD_TMP/full.conf" <<EOF
# A sheep configured by its file alone.

dir = $store
   port = 1
port=$(port_of 0)
zone = 7
cluster = local:$SD_TMP/shm
log_level = notice
log_dir = $log_dir
nosync = yes
foreground = yes
	pidfile = $SD_TMP/sheep0.pid
EOF
setpriv --pdeathsig KILL "$SHEEP" --config "$SD_TMP/full.conf" \
	>>"$SD_TMP/sheep0.out" 2>&1 &
SD_PIDS[0]=$!
wait_for_sheep 0

assert_eq "0 127.0.0.1:$(port_of 0) 128 7" "$(dog_p 0 node list -r)" \
	"node list of the configured sheep (port, zone)"
pid_alive "${SD_PIDS[0]}" || fail "foreground = yes: the sheep detached"
assert_eq "${SD_PIDS[0]}" "$(tr -d '[:space:]' <"$SD_TMP/sheep0.pid")" "pid file"
for f in epoch obj lock; do
	[[ -e $store/$f ]] || fail "no $f in the configured store $store"
done
[[ -s $log_dir/sheep.log ]] || fail "no log in log_dir $log_dir"
[[ ! -e $store/sheep.log ]] || fail "the log went to the store, not log_dir"
grep -q ' NOTICE ' "$log_dir/sheep.log" || fail "log_level = notice: no notice line in the log"
if grep -q ' INFO ' "$log_dir/sheep.log"; then
	fail "log_level = notice: info lines in the log"
fi
! port_answers 1 >/dev/null 2>&1 || fail "the first of two port keys won"

# --- The command line overrides the file. ----------------------------------

cat >"$SD_TMP/override.conf" <<EOF
dir = $SD_TMP/store1
port = $(port_of 6)
zone = 7
cluster = local:$SD_TMP/shm
log_level = notice
foreground = yes
EOF
setpriv --pdeathsig KILL "$SHEEP" --config "$SD_TMP/override.conf" \
	-p "$(port_of 1)" -z 4294967295 -l level=info >>"$SD_TMP/sheep1.out" 2>&1 &
SD_PIDS[1]=$!
wait_for_sheep 1
wait_for_nodes 1 2
assert_eq "0 127.0.0.1:$(port_of 0) 128 7
1 127.0.0.1:$(port_of 1) 128 4294967295" "$(dog_p 1 node list -r)" \
	"node list with the flags over the file"
! port_answers "$(port_of 6)" >/dev/null 2>&1 || fail "the file's port answers despite -p"
grep -q ' INFO ' "$SD_TMP/store1/sheep.log" || fail "-l level=info did not override log_level"

# --- Values run to the end of the line, however long. ---------------------

long_dir=$SD_TMP/$(printf 'a%.0s' {1..120})/$(printf 'b%.0s' {1..120})' ;x'
cat >"$SD_TMP/long.conf" <<EOF
	dir = $long_dir
	port = $(port_of 2)
	zone = 2
	cluster = local:$SD_TMP/shm
	foreground = yes
EOF
setpriv --pdeathsig KILL "$SHEEP" --config "$SD_TMP/long.conf" \
	>>"$SD_TMP/sheep2.out" 2>&1 &
SD_PIDS[2]=$!
wait_for_sheep 2
[[ -f $long_dir/sheep.log ]] || fail "the store is not at the ${#long_dir}-byte path of the file"
kill_sheep 2 TERM

# --- Daemonized by default, with the pid file naming the daemon. -----------

cat >"$daemon_conf" <<EOF
dir = $SD_TMP/store2
port = $(port_of 2)
cluster = local:$SD_TMP/shm
pidfile = $SD_TMP/sheep2.pid
EOF
capture timeout 10 "$SHEEP" --config="$daemon_conf"
assert_eq 0 "$RC" "exit status of a daemonizing sheep ($OUT)"
wait_for "the daemon's pid file" test -s "$SD_TMP/sheep2.pid"
daemon_pid=$(tr -d '[:space:]' <"$SD_TMP/sheep2.pid")
[[ $daemon_pid =~ ^[0-9]+$ ]] || fail "pid file holds '$daemon_pid'"
SD_PIDS[2]=$daemon_pid
wait_for_sheep 2
wait_for_nodes 0 3
grep -qxF -- "--config=$daemon_conf" <(tr '\0' '\n' <"/proc/$daemon_pid/cmdline") ||
	fail "pid $daemon_pid from the pid file is not the daemon"
[[ -s $SD_TMP/store2/sheep.log ]] || fail "no log in the daemon's store"
grep -q ' INFO ' "$SD_TMP/store2/sheep.log" ||
	fail "the default log level (info) wrote no info lines"
kill -TERM "$daemon_pid"
wait_exit "$daemon_pid" "$SD_WAIT_TIMEOUT" || fail "the daemon ignored SIGTERM"
unset 'SD_PIDS[2]'
wait_for_nodes 0 2

# --- Refusals: nothing is created and nothing listens. ---------------------

never_conf() { # FILE LINES...: a config for $SD_TMP/never on port_of 5, then LINES
	local f=$1
	shift
	{
		echo "# refused"
		echo "dir = $SD_TMP/never"
		echo "port = $(port_of 5)"
		echo "cluster = local:$SD_TMP/shm"
		echo "foreground = yes"
		printf '%s\n' "$@"
	} >"$f"
}

never_conf "$SD_TMP/unknown.conf" "zone = 3" "colour = blue" "nosync = yes"
refused "unknown key" "$SD_TMP/unknown.conf:7:.*colour" \
	"$SHEEP" --config "$SD_TMP/unknown.conf"

for bad in "port = 70000" "port = 0" "port = x" "zone = -1" "zone = 4294967296" \
	"foreground = maybe" "log_level = loud" "vnodes = 0"; do
	key=${bad%% *}
	never_conf "$SD_TMP/bad.conf" "$bad"
	refused "'$bad' in a config file" "$SD_TMP/bad.conf:6:.*$key" \
		"$SHEEP" --config "$SD_TMP/bad.conf"
done

refused "a missing config file" "$SD_TMP/missing.conf" \
	"$SHEEP" --config "$SD_TMP/missing.conf" -p "$(port_of 5)" "$SD_TMP/never"

for bad in "-p 0" "-p 65536" "-p abc" "-p -1" "-z -1" "-z 4294967296" "-z abc"; do
	# shellcheck disable=SC2086 # the option and its value
	refused "sheep $bad" "invalid ${bad% *}" \
		"$SHEEP" -f -c "local:$SD_TMP/shm" $bad -p "$(port_of 5)" "$SD_TMP/never"
	# The same value before a good -p is refused as well.
	# shellcheck disable=SC2086
	refused "sheep $bad (first)" "invalid ${bad% *}" \
		"$SHEEP" -f -c "local:$SD_TMP/shm" -p "$(port_of 5)" $bad "$SD_TMP/never"
done

# --- A second sheep on a store in use. -------------------------------------

capture timeout 10 "$SHEEP" -f -c "local:$SD_TMP/shm" -p "$(port_of 5)" "$store"
((RC != 0 && RC != 124)) || fail "second sheep on $store: exit status $RC ($OUT)"
[[ $OUT == *"another sheep daemon is using"* ]] ||
	fail "second sheep on $store says '$OUT'"
! port_answers "$(port_of 5)" >/dev/null 2>&1 || fail "the second sheep answers"
assert_alive 0
assert_alive 1
wait_for_nodes 0 2
assert_eq "${SD_PIDS[0]}" "$(tr -d '[:space:]' <"$SD_TMP/sheep0.pid")" \
	"pid file after the refused second sheep"

# --- Version. --------------------------------------------------------------

for flag in -v --version; do
	capture timeout 10 "$SHEEP" "$flag"
	assert_eq 0 "$RC" "sheep $flag exit status"
	[[ $(head -n 1 <<<"$OUT") =~ ^Sheepdog\ daemon\ version\ [0-9]+\.[0-9]+\.[0-9]+ ]] ||
		fail "sheep $flag prints '$OUT'"
done

pass
