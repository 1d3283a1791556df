#!/usr/bin/env bash
# A joining sheep is validated (issue 4, point 1; spec 7.2) and refused
# with a clear reason when its store belongs to another cluster, when its
# store has another layout than the cluster's, or when it has seen an epoch
# newer than the running cluster's (the two histories diverged). The refused
# sheep exits with status 1 and says why; the cluster and its data are
# untouched, and so is the refused sheep's store. A client cannot pose as
# a sheep reporting the end of its recovery.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

epoch_of() { dog_p "$1" cluster info -r | awk 'NR==3 {print $2}'; }
# refused IDX REASON: sheep IDX exits 1 and its log gives REASON.
refused() {
	local idx=$1 reason=$2
	wait_exit "${SD_PIDS[$idx]}" "$SD_WAIT_TIMEOUT" || fail "sheep $idx was not refused"
	local st=0
	wait "${SD_PIDS[$idx]}" || st=$?
	unset 'SD_PIDS[idx]'
	assert_eq 1 "$st" "exit status of the refused sheep $idx"
	grep -q "the cluster refused this node: .*$reason" "$(node_dir "$idx")/sheep.log" ||
		fail "sheep $idx's log does not say '$reason'"
}
snapshot_store() { (cd "$(node_dir "$1")" && find obj epoch config -type f -exec sha1sum {} + | sort); }

start_cluster 3
format_cluster 2
dog_p 0 vdi create data 16M
head -c 16M /dev/urandom >"$SD_TMP/data"
dog_p 0 vdi write data <"$SD_TMP/data"

# Another cluster: sheep 5 is formatted on its own, then pointed at ours.
start_sheep 5 -c "local:$SD_TMP/other-shm"
wait_for_sheep 5
dog_p 5 cluster format -c 1 </dev/null >/dev/null
dog_p 5 vdi create mine 4M
kill_sheep 5 TERM
before=$(snapshot_store 5)
start_sheep 5
refused 5 "belongs to another cluster"
assert_eq "$before" "$(snapshot_store 5)" "the refused sheep's store changed"

# Another layout: sheep 2 leaves, its config is made to say "tree".
kill_sheep 2 TERM
wait_for_nodes 0 2
cp "$(node_dir 2)/config" "$SD_TMP/config2"
python3 - "$(node_dir 2)/config" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
assert b[11:16] == b"plain", b[11:27]
b[11:27] = b"tree".ljust(16, b"\0")
open(p, 'wb').write(b)
PY
start_sheep 2
refused 2 "layout"
cp "$SD_TMP/config2" "$(node_dir 2)/config"
start_sheep 2
wait_for_sheep 2
wait_for_nodes 0 3

# A diverged history: sheep 0 is cut off, the others go on to newer
# epochs; sheep 0 restarts alone and is forced to run; then sheep 2, which
# saw the newer epochs, may not join it.
e1=$(epoch_of 2)
kill_sheep 0 KILL
wait_for_nodes 1 2
kill_sheep 1 KILL
two_ahead() { (($(epoch_of 2) >= e1 + 2)); }
wait_for "sheep 2 to see the departures" two_ahead
e2=$(epoch_of 2)
kill_sheep 2 KILL
start_sheep 0
wait_for_sheep 0
dog_p 0 cluster recover force -f >/dev/null
wait_for "sheep 0 to run alone" cluster_running 0
(($(epoch_of 0) < e2)) || fail "test setup: sheep 0's epoch $(epoch_of 0) should be older than $e2"
start_sheep 2
refused 2 "epoch $e2 is newer than the running cluster's"
assert_alive 0
dog_p 0 vdi list -r data >/dev/null || fail "the running cluster lost its VDI"

# COMPLETE_RECOVERY is the sheep's own message: a client's is refused and
# changes nothing.
python3 "$SD_SOURCE_DIR/tests/functional/sdproto.py" req "$(port_of 0)" 0xac \
	--tgt-epoch "$(epoch_of 0)" --expect INVALID_PARMS >/dev/null ||
	fail "a client's COMPLETE_RECOVERY was not refused"
assert_alive 0
pass
