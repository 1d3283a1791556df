#!/usr/bin/env bash
# Formatting a running cluster that holds data (`cluster format -f`) wipes
# it on every node: no VDIs, no object files, a single epoch, and the
# cluster takes new VDIs and data afterwards.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

start_cluster 3
format_cluster 3
dog_p 0 vdi create old 32M
head -c 8M /dev/urandom | dog_p 1 vdi write old 0 8M
kill_sheep 2 KILL
wait_for_nodes 0 2
start_sheep 2
wait_for_sheep 2
wait_for_nodes 0 3

assert_exit 0 dog_p 1 cluster format -f -c 2
assert_eq "" "$(dog_p 0 vdi list -r)" "VDIs after reformat"
for i in 0 1 2; do
	n=$(find "$(node_dir "$i")/obj" -maxdepth 1 -type f | wc -l)
	[[ $n == 0 ]] || ls -la "$(node_dir "$i")/obj" >&2
	assert_eq 0 "$n" "object files on node $i after reformat"
done
assert_eq 1 "$(dog_p 2 cluster info -r | grep -cE '^[0-9]+ [0-9]+ \[')" "epochs after reformat"

dog_p 2 vdi create new 16M
head -c 16M /dev/urandom >"$SD_TMP/data"
dog_p 0 vdi write new <"$SD_TMP/data"
for i in 0 1 2; do
	dog_p "$i" vdi read new | cmp -s - "$SD_TMP/data" || fail "data through node $i differs"
done
assert_eq "2" "$(dog_p 0 vdi list -r new | awk '{print $9}')" "copies of the new VDI"
pass
