#!/usr/bin/env bash
# The basic story of a replicated store: a 3-node cluster with copies=3
# keeps a VDI's 64 MiB of random data on every node, reads it back identical
# through any node, keeps serving it with a holder killed (degraded reads),
# takes writes while degraded, and after the holder restarts and recovers
# serves the latest data from every node, including the restarted one.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

start_cluster 3
format_cluster 3
assert_exit 0 dog_p 0 vdi create test 100M

# node list: exact output, zone = index (the harness passes -z IDX)
expected=$(printf '  Id   Host:Port         V-Nodes       Zone\n')
for i in 0 1 2; do
	expected+=$'\n'$(printf '%4d   %-20s\t%2d%11u' "$i" "127.0.0.1:$(port_of "$i")" 128 "$i")
done
assert_eq "$expected" "$(dog_p 1 node list)" "node list output"
assert_eq "0 127.0.0.1:$(port_of 0) 128 0" "$(dog_p 2 node list -r | head -1)" "node list -r"

data=$SD_TMP/data
head -c 64M /dev/urandom >"$data"
dog_p 1 vdi write test <"$data" || fail "vdi write failed"

# Every node holds a replica of each of the 16 data objects and the inode.
vid=$(dog_p 0 vdi list -r test | awk '{print $8}')
for i in 0 1 2; do
	n=$(find "$(node_dir "$i")/obj" -maxdepth 1 -name "00${vid}*" | wc -l)
	assert_eq 16 "$n" "data objects on node $i"
	[[ -f $(node_dir "$i")/obj/80${vid}00000000 ]] || fail "inode missing on node $i"
done

for i in 0 1 2; do
	dog_p "$i" vdi read test 0 64M | cmp -s - "$data" ||
		fail "data read through node $i differs"
done

# vdi list: exact header and row
list=$(dog_p 0 vdi list)
header='  Name        Id    Size    Used  Shared    Creation time   VDI id  Copies  Tag   Block Size Shift'
assert_eq "$header" "$(head -1 <<<"$list")" "vdi list header"
row=$(tail -1 <<<"$list")
[[ $row =~ ^\ \ test\ +0\ +100\ MB\ +64\ MB\ +0\.0\ MB\ [0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}\ +${vid}\ +3\ +22$ ]] ||
	fail "vdi list row: '$row'"
raw=$(dog_p 0 vdi list -r)
[[ $raw =~ ^=\ test\ 0\ 104857600\ 67108864\ 0\ [0-9]+\ ${vid}\ 3\ \ 22$ ]] ||
	fail "vdi list -r row: '$raw'"

# Degraded: a holder dies; reads are served by the others at once.
kill_sheep 2 KILL
for i in 0 1; do
	dog_p "$i" vdi read test 0 64M | cmp -s - "$data" ||
		fail "degraded read through node $i differs"
done
wait_for_nodes 0 2

# Writes go on while degraded.
patch=$SD_TMP/patch
head -c 8M /dev/urandom >"$patch"
dog_p 0 vdi write test 4M 8M <"$patch" || fail "degraded write failed"
python3 - "$data" "$patch" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[4 << 20:12 << 20] = open(sys.argv[2], 'rb').read()
open(sys.argv[1], 'wb').write(d)
PY

# The holder comes back, recovers, and serves only the latest data.
start_sheep 2
wait_for_sheep 2
wait_for_nodes 0 3
for i in 2 0 1; do
	dog_p "$i" vdi read test 0 64M | cmp -s - "$data" ||
		fail "read through node $i after restart differs"
done
recovered() {
	local f
	for f in "$(node_dir 2)"/obj/00"${vid}"*; do
		cmp -s "$f" "$(node_dir 0)/obj/$(basename "$f")" || return 1
	done
	[[ $(find "$(node_dir 2)/obj" -maxdepth 1 -name "00${vid}*" | wc -l) -eq 16 ]]
}
wait_for "node 2 to hold the latest replicas" recovered

# Epoch history: format, the leave, the return.
epochs=$(dog_p 0 cluster info -r | grep -cE '^[0-9]+ [0-9]+ \[')
assert_eq 3 "$epochs" "epochs in cluster info"

for i in 0 1 2; do assert_alive "$i"; done
pass
