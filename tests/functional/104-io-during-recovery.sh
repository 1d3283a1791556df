#!/usr/bin/env bash
# I/O during recovery (issue 4, points 4 and 8): a verifying writer keeps
# writing random blocks through every sheep in turn while sheep are killed
# with SIGKILL, restarted and added, and recovery runs under it (throttled,
# so that it is still running while the writer goes on). No acknowledged
# write is lost, no block reads back anything but its last acknowledged
# content (or an unacknowledged newer one), and every round ends with every
# object on exactly its holders.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

vwriter() { python3 "$SD_SOURCE_DIR/tests/tools/vwriter.py" -q "$@"; }
progress() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$SD_TMP/progress" "$1"; }
# more_writes N: the writer acknowledged N more writes than when called.
writes_now() { progress acked 2>/dev/null || echo 0; }
more_writes() {
	local target=$(($(writes_now) + $1))
	wait_for "the writer to go on" eval '(($(writes_now) >= target))'
}

SD_WAIT_TIMEOUT=90
start_cluster 5
format_cluster 3
dog_p 0 vdi create vol 96M -P
# Recovery paced at one object per 200 ms: it overlaps the writes below.
for i in 0 1 2 3 4; do dog_p "$i" node recovery set-throttle 1 200 >/dev/null; done

# --pdeathsig: a failed test must not leave the writer running.
setpriv --pdeathsig KILL python3 "$SD_SOURCE_DIR/tests/tools/vwriter.py" -q \
	write --vdi vol --ports "$(port_of 0)-$(port_of 5)" --jobs 3 \
	--state "$SD_TMP/state.json" --progress "$SD_TMP/progress" \
	--stop-file "$SD_TMP/stop" --seed 7 >"$SD_TMP/writer.out" 2>&1 &
writer=$!
more_writes 200

kill_sheep 1 KILL
more_writes 100
wait_for_nodes 0 4
kill_sheep 3 KILL
more_writes 100
wait_placed 0 3
more_writes 100

start_sheep 1
wait_for_sheep 1
more_writes 100
start_sheep 5
wait_for_sheep 5
for i in 1 5; do dog_p "$i" node recovery set-throttle 1 200 >/dev/null; done
more_writes 200
kill_sheep 2 KILL
more_writes 100
start_sheep 3
wait_for_sheep 3
more_writes 100
wait_placed 0 5

touch "$SD_TMP/stop"
st=0
wait "$writer" || st=$?
cat "$SD_TMP/writer.out"
assert_eq 0 "$st" "writer exit status"
grep -qE 'lost 0, corrupt 0' "$SD_TMP/writer.out" || fail "the writer saw lost or corrupt blocks"
vwriter verify --state "$SD_TMP/state.json" --ports "$(port_of 0)-$(port_of 5)" >"$SD_TMP/verify.out" ||
	fail "verification failed: $(cat "$SD_TMP/verify.out")"
cat "$SD_TMP/verify.out"
grep -qE 'lost 0, corrupt 0' "$SD_TMP/verify.out" || fail "verify found lost or corrupt blocks"
for i in 0 1 3 4 5; do assert_alive "$i"; done
pass
