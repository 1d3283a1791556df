#!/usr/bin/env bash
# Whole-cluster restart and stale stores (issue 4, points 1, 5 and 8).
# A sheep is killed and misses writes; the cluster is shut down and its
# members restarted in a shuffled order: it waits until every member of the
# last epoch is back, then runs at the same epoch with all data. The sheep
# that missed the writes comes back afterwards: its old copies are never
# served (reads through it return the new data) and are cleaned up once the
# cluster has recovered. All of them die at once and come back. Then a
# member is lost for good: the cluster waits
# until `dog cluster recover force` lets it go on without it.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

verify() {
	local i
	for i in "$@"; do
		dog_p "$i" vdi read data | cmp -s - "$SD_TMP/data" || fail "data read through sheep $i differs"
	done
}
epoch_of() { dog_p "$1" cluster info -r | awk 'NR==3 {print $2}'; }
status_is() { [[ $(dog_p "$1" cluster info -r | head -1) == "$2"* ]]; }
stale_files() { find "$(node_dir "$1")/obj/.stale" -type f | wc -l; }

start_cluster 5
format_cluster 3
dog_p 0 vdi create data 64M
head -c 64M /dev/urandom >"$SD_TMP/data"
dog_p 0 vdi write data <"$SD_TMP/data"
wait_placed 0 5

# Sheep 4 dies and misses an overwrite of everything.
kill_sheep 4 KILL
wait_for_nodes 0 4
wait_placed 0 4
head -c 64M /dev/urandom >"$SD_TMP/data"
dog_p 1 vdi write data <"$SD_TMP/data"
verify 0 1 2 3

epoch=$(epoch_of 0)
dog_p 0 cluster shutdown
for i in 0 1 2 3; do
	wait_exit "${SD_PIDS[$i]}" "$SD_WAIT_TIMEOUT" || fail "sheep $i did not exit after shutdown"
done

# Back in a shuffled order; until the last member is back they wait.
for i in 2 0 3; do
	start_sheep "$i"
	wait_for_sheep "$i"
done
status_is 0 "Waiting for other nodes" || fail "the cluster runs without every member of epoch $epoch"
assert_eq "$epoch" "$(epoch_of 0)" "a waiting cluster's history should end at epoch $epoch"
assert_exit 1 dog_p 2 vdi read data 0 4096
start_sheep 1
wait_for_sheep 1
wait_for "the cluster to run again" cluster_running 0
assert_eq "$epoch" "$(epoch_of 0)" "a restart with the same members must not start an epoch"
verify 0 1 2 3
wait_placed 0 4

# The stale sheep returns: never serves what it had, recovers, cleans up.
[[ $(find "$(node_dir 4)/obj" -maxdepth 1 -type f | wc -l) -gt 0 ]] || fail "sheep 4 should still have its old copies on disk"
start_sheep 4
wait_for_sheep 4
wait_for_nodes 0 5
verify 4
wait_placed 0 5
verify 0 1 2 3 4
no_stale_4() { [[ $(stale_files 4) -eq 0 ]]; }
wait_for "sheep 4's outdated copies to be removed" no_stale_4
grep -q "not a member of epoch" "$(node_dir 4)/sheep.log" || fail "sheep 4 did not set its old objects aside"

# The history is in every store's epoch log, the returning node's too.
for i in 0 4; do
	dog_p "$i" cluster info -r | awk 'NR>2 {print $2}' >"$SD_TMP/epochs$i"
done
cmp -s "$SD_TMP/epochs0" "$SD_TMP/epochs4" || fail "sheep 4's epoch history differs from sheep 0's"
[[ $(wc -l <"$SD_TMP/epochs0") -eq $(epoch_of 0) ]] || fail "the epoch history has gaps"

# Power failure: every sheep dies at once, in the middle of writes, and
# comes back. Same members, same epoch; recovery in place fills in
# whatever a sheep lacks, and every write acknowledged before is there.
dog_p 0 vdi write data 0 8M <"$SD_TMP/data" &
writer=$!
for i in 0 1 2 3 4; do kill -KILL "${SD_PIDS[$i]}"; done
for i in 0 1 2 3 4; do kill_sheep "$i" KILL; done
wait "$writer" || true
epoch=$(ls "$(node_dir 0)/epoch" | sort | tail -1)
for i in 4 2 0 3 1; do
	start_sheep "$i"
	wait_for_sheep "$i"
done
wait_for "the cluster to run after the power failure" cluster_running 0
assert_eq "$((10#$epoch))" "$(epoch_of 0)" "a restart after a power failure must not start an epoch"
wait_placed 0 5
verify 0 1 2 3 4

# Sheep 3 is lost for good during a shutdown: the rest wait for it until
# the operator forces recovery.
dog_p 0 cluster shutdown
for i in 0 1 2 3 4; do
	wait_exit "${SD_PIDS[$i]}" "$SD_WAIT_TIMEOUT" || fail "sheep $i did not exit after shutdown"
done
rm -rf "$(node_dir 3)"
for i in 0 1 2 4; do
	start_sheep "$i"
	wait_for_sheep "$i"
done
status_is 0 "Waiting for other nodes" || fail "the cluster runs without sheep 3"
echo no | dog_p 0 cluster recover force >/dev/null 2>&1 || true
status_is 0 "Waiting for other nodes" || fail "recover force ran although it was declined"
dog_p 0 cluster recover force -f >/dev/null
wait_for "the cluster to run without sheep 3" cluster_running 0
wait_placed 0 4
verify 0 1 2 4
assert_exit 1 dog_p 0 cluster recover force -f
for i in 0 1 2 4; do assert_alive "$i"; done
pass
