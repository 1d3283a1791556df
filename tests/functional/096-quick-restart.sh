#!/usr/bin/env bash
# A sheep killed with SIGKILL and started again at once, before the others
# noticed that its process died, rejoins cleanly: the dead process leaves,
# the new one joins, every sheep stays up, and the data stays where
# placement says. (A quick restart, as a supervisor with a short restart
# delay does, used to put one node twice in the ring: every sheep aborted.)
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

start_cluster 3
format_cluster 2
M=1048576
assert_exit 0 dog_p 0 vdi create vm 32M
head -c $((32 * M)) /dev/urandom >"$SD_TMP/img"
dog_p 0 vdi write vm <"$SD_TMP/img" || fail "write failed"

for round in 1 2 3 4 5; do
	victim=$((round % 3))
	kill_sheep $victim KILL
	start_sheep $victim
	wait_for_sheep $victim
	wait_for_nodes $(((victim + 1) % 3)) 3
	for i in 0 1 2; do assert_alive $i; done
done
grep -q "joins again" "$(node_dir 0)/sheep.log" "$(node_dir 1)/sheep.log" \
	"$(node_dir 2)/sheep.log" ||
	echo "note: no restart was quicker than the liveness check this time"
wait_placed 0 3
for i in 0 1 2; do
	dog_p $i vdi read vm | cmp -s - "$SD_TMP/img" || fail "vm reads differently through sheep $i"
done
pass
