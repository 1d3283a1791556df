#!/usr/bin/env bash
# The orphan case (issue 4, point 6; upstream's test 061): every holder of
# some objects dies at once while the rest of the cluster carries on and
# even takes writes. Those objects cannot be read meanwhile, and nothing
# else is lost. When the dead sheep come back, their copies (set aside as
# stale, since they missed epochs) are where recovery finds the orphans:
# they are recovered, not deleted, and all data reads back. Objects of a
# VDI deleted while a sheep was away, however, stay deleted.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"


start_cluster 5
format_cluster 2
dog_p 0 vdi create data 64M
head -c 64M /dev/urandom >"$SD_TMP/data"
dog_p 0 vdi write data <"$SD_TMP/data"
dog_p 0 vdi create other 8M
wait_placed 0 5

# Two holders of a data object, but not both holders of the inode: the VDI
# stays readable, only some of its objects are orphaned.
# (Nor both holders of the inode of "other", which must take writes.)
mapfile -t ih < <(holders_of data)
mapfile -t oh < <(holders_of other)
both() { [[ " $1 " == *" ${h[0]} "* && " $1 " == *" ${h[1]} "* ]]; }
found=
for idx in $(seq 0 15); do
	mapfile -t h < <(holders_of data "$idx")
	[[ ${#h[@]} -eq 2 ]] || fail "object $idx should have 2 holders, got '${h[*]}'"
	if ! both "${ih[*]}" && ! both "${oh[*]}"; then
		found=1
		break
	fi
done
[[ -n $found ]] || fail "test setup: every data object shares its holders with an inode"

a=${h[0]} b=${h[1]}
# Which objects only these two hold: they become orphans.
orphans=()
for idx in $(seq 0 15); do
	mapfile -t o < <(holders_of data "$idx")
	if [[ " ${o[*]} " == *" $a "* && " ${o[*]} " == *" $b "* ]]; then
		orphans+=("$idx")
	fi
done
mapfile -t alive < <(for i in 0 1 2 3 4; do [[ $i != "$a" && $i != "$b" ]] && echo "$i"; done)
s=${alive[0]}

kill -9 "${SD_PIDS[$a]}" "${SD_PIDS[$b]}"
kill_sheep "$a" KILL
kill_sheep "$b" KILL
wait_for_nodes "$s" 3

# The cluster carries on: other VDIs take writes, orphans fail to read.
head -c 8M /dev/urandom >"$SD_TMP/other"
dog_p "$s" vdi write other <"$SD_TMP/other"
for idx in "${orphans[@]}"; do
	if dog_p "$s" vdi read data $((idx * 4))M 4096 >/dev/null 2>&1; then
		fail "orphaned object $idx was readable with all its holders dead"
	fi
done
for idx in $(seq 0 15); do
	[[ " ${orphans[*]} " == *" $idx "* ]] && continue
	dog_p "$s" vdi read data $((idx * 4))M 4M | cmp -s - <(tail -c +$((idx * 4194304 + 1)) "$SD_TMP/data" | head -c 4M) ||
		fail "object $idx, which had a surviving holder, differs"
done
start_sheep "$a"
wait_for_sheep "$a"
start_sheep "$b"
wait_for_sheep "$b"
wait_for_nodes "$s" 5
wait_placed "$s" 5
for i in 0 1 2 3 4; do
	dog_p "$i" vdi read data | cmp -s - "$SD_TMP/data" || fail "data read through sheep $i differs after the orphans came back"
	dog_p "$i" vdi read other | cmp -s - "$SD_TMP/other" || fail "other read through sheep $i differs"
	assert_alive "$i"
done
stale_none() {
	local i
	for i in 0 1 2 3 4; do
		[[ -z $(find "$(node_dir "$i")/obj/.stale" -type f) ]] || return 1
	done
}
wait_for "stale copies to be purged" stale_none

# A VDI deleted while a sheep is away: its objects, which that sheep still
# has set aside, do not come back when it returns.
ovid=$(dog_p 0 vdi list -r other | awk '{print $8}')
kill_sheep "$a" KILL
wait_for_nodes "$s" 4
dog_p "$s" vdi delete other
wait_placed "$s" 4
start_sheep "$a"
wait_for_sheep "$a"
wait_for_nodes "$s" 5
wait_placed "$s" 5
wait_for "stale copies to be purged" stale_none
left=$(find "$SD_TMP"/n*/obj -maxdepth 1 -name "00${ovid}*" | wc -l)
assert_eq 0 "$left" "data objects of the deleted VDI on disk"
dog_p "$s" vdi read data | cmp -s - "$SD_TMP/data" || fail "data differs after the deletion round"
pass
