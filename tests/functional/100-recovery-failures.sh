#!/usr/bin/env bash
# Re-replication and rebalancing (issue 4, points 2, 3 and 8): 5 sheep with
# copies=3 and checksummed data. Two holders of the same object are killed
# with SIGKILL; the survivors copy what they held until every object has
# exactly 3 live replicas on the nodes placement says, and every byte reads
# back. The two come back with their old stores and everything is placed
# again, with their outdated copies never served; stale copies are purged
# only once every node has recovered. A brand-new sheep joins with recovery
# disabled: the old holders keep their copies (in .stale) while the new one
# does not have them yet, and drop them only after it does.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

verify_all() {
	local i
	for i in "$@"; do
		dog_p "$i" vdi read big | cmp -s - "$SD_TMP/big" || fail "VDI big read through sheep $i differs"
		dog_p "$i" vdi read small | cmp -s - "$SD_TMP/small" || fail "VDI small read through sheep $i differs"
	done
}
stale_count() {
	local n=0 i
	for i in "$@"; do
		n=$((n + $(find "$(node_dir "$i")/obj/.stale" -type f | wc -l)))
	done
	echo "$n"
}
no_stale() { [[ $(stale_count "$@") -eq 0 ]]; }

start_cluster 5
format_cluster 3
dog_p 0 vdi create big 96M
dog_p 0 vdi create small 8M
head -c 96M /dev/urandom >"$SD_TMP/big"
head -c 8M /dev/urandom >"$SD_TMP/small"
dog_p 0 vdi write big <"$SD_TMP/big"
dog_p 0 vdi write small <"$SD_TMP/small"
wait_placed 0 5

# Two of the three holders of big's object 5 die at once.
mapfile -t h < <(holders_of big 5)
[[ ${#h[@]} -eq 3 ]] || fail "object 5 of big should have 3 holders, got '${h[*]}'"
a=${h[0]} b=${h[1]} survivor=${h[2]}
kill -9 "${SD_PIDS[$a]}" "${SD_PIDS[$b]}"
kill_sheep "$a" KILL
kill_sheep "$b" KILL
mapfile -t alive < <(for i in 0 1 2 3 4; do [[ $i != "$a" && $i != "$b" ]] && echo "$i"; done)
wait_for_nodes "$survivor" 3
wait_placed "$survivor" 3
verify_all "${alive[@]}"
wait_for "stale copies to be purged on the survivors" no_stale "${alive[@]}"

# The same data again while they are away, so their copies are outdated.
head -c 8M /dev/urandom >"$SD_TMP/small"
dog_p "$survivor" vdi write small <"$SD_TMP/small"

start_sheep "$a"
wait_for_sheep "$a"
start_sheep "$b"
wait_for_sheep "$b"
wait_for_nodes "$survivor" 5
wait_placed "$survivor" 5
verify_all 0 1 2 3 4
wait_for "stale copies to be purged everywhere" no_stale 0 1 2 3 4

# Rebalancing onto a new sheep, recovery held back: the old holders move
# what they no longer hold aside, and nothing is removed yet.
dog_p 0 cluster recover disable >/dev/null
start_sheep 5
wait_for_sheep 5
wait_for_nodes 0 6
moved_aside() { [[ $(stale_count 0 1 2 3 4) -gt 0 ]]; }
wait_for "old holders to move copies to .stale" moved_aside
verify_all 0 5
placement_ok 0 6 >/dev/null && fail "placement is already exact with recovery disabled"
[[ $(stale_count 0 1 2 3 4) -gt 0 ]] || fail "old copies were dropped before the new holder had them"
dog_p 0 cluster recover enable >/dev/null
wait_placed 0 6
wait_for "stale copies to be purged after rebalancing" no_stale 0 1 2 3 4 5
verify_all 0 1 2 3 4 5
for i in 0 1 2 3 4 5; do assert_alive "$i"; done
pass
