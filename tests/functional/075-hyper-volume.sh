#!/usr/bin/env bash
# Hyper volumes (store_policy 1, spec 5.2-5.3): an 8 TB VDI, twice the flat
# limit, is created at once with no object written; random data written
# below, across and beyond the 4 TiB flat limit reads back identical, holes
# read as zeros, vdi list counts exactly the objects written, the inode holds
# a depth-1 B-tree root with one sorted entry per object, and everything
# still reads back through the survivors after a sheep is killed with
# SIGKILL. A flat VDI of the same size and -y with -z are refused with
# upstream's messages.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

# capture CMD...: stderr in ERR, exit status in RC.
capture() {
	RC=0
	"$@" >"$SD_TMP/out" 2>"$SD_TMP/err" || RC=$?
	ERR=$(<"$SD_TMP/err")
}

start_cluster 3
format_cluster 3

T=$((1 << 40))
M=$((1 << 20))

# The flat index stops at 2^20 objects of 4 MiB.
capture dog_p 0 vdi create flat 8T
assert_eq 64 "$RC" "flat 8T exit status"
assert_eq "VDI size is larger than 4.0 TB bytes, please use '-y' to create a hyper volume with size up to 16 PB bytes or use '-z' to create larger object size volume" \
	"$ERR" "flat 8T message"
capture dog_p 0 vdi create -y -z 23 both 1G
assert_eq 1 "$RC" "-y -z exit status"
assert_eq "Don't specify both -y and -z options, please" "$ERR" "-y -z message"
capture dog_p 0 vdi create -z 23 -y both 1G
assert_eq 1 "$RC" "-z -y exit status"
[[ -z $(dog_p 0 vdi list -r) ]] || fail "a refused create left a VDI behind"

# Creating 8 TB writes the inode only.
start=$(now_ms)
assert_exit 0 dog_p 1 vdi create -y big 8T
(($(now_ms) - start < 10000)) || fail "creating an 8 TB hyper volume took $(($(now_ms) - start)) ms"
vid=$(dog_p 0 vdi list -r big | awk '{print $8}')
[[ $vid =~ ^[0-9a-f]+$ ]] || fail "no vid for big: '$vid'"
vid6=$(printf '%06x' "$((16#$vid))")
for i in 0 1 2; do
	n=$(find "$(node_dir "$i")/obj" -maxdepth 1 -name "00${vid6}*" | wc -l)
	assert_eq 0 "$n" "data objects on node $i after create"
done
assert_eq "= big 0 $((8 * T)) 0 0" "$(dog_p 0 vdi list -r big | awk '{print $1, $2, $3, $4, $5, $6}')" \
	"vdi list -r of the new hyper volume"
row=$(dog_p 0 vdi list big | tail -1)
[[ $row =~ ^\ \ big\ +0\ +8\.0\ TB\ +0\.0\ MB\ +0\.0\ MB\ .*\ 22$ ]] || fail "vdi list row: '$row'"

# Pieces: offset and length; 11 objects in all.
pieces=(
	"0 $M"                                  # object 0
	"$((T + 7)) $((300 * 1024))"            # object 262144, unaligned
	"$((4 * T - 512 * 1024)) $M"            # objects 1048575-1048576, across the flat limit
	"$((4 * T + 8 * M)) $((12 * M))"        # objects 1048578-1048580, several in one write
	"$((5 * T + 123456)) $((2 * M))"        # object 1310720
	"$((6 * T + 4 * M - 100)) 200"          # objects 1572864-1572865
	"$((8 * T - M)) $M"                     # the last object, 2097151
)
nr_objs=11
i=0
for p in "${pieces[@]}"; do
	read -r off len <<<"$p"
	head -c "$len" /dev/urandom >"$SD_TMP/piece$i"
	dog_p $((i % 3)) vdi write big "$off" "$len" <"$SD_TMP/piece$i" ||
		fail "vdi write big $off $len failed"
	i=$((i + 1))
done

check_pieces() {
	local node=$1 i=0 p off len
	for p in "${pieces[@]}"; do
		read -r off len <<<"$p"
		dog_p "$node" vdi read big "$off" "$len" | cmp -s - "$SD_TMP/piece$i" ||
			fail "$2: piece $i ($off +$len) read through node $node differs"
		i=$((i + 1))
	done
}
check_pieces 0 "after writing"
check_pieces 2 "after writing"

# Holes around the written pieces read as zeros.
head -c $M /dev/zero >"$SD_TMP/zeros"
for off in $((2 * M)) $((3 * T)) $((7 * T)) $((4 * T + 4 * M)); do
	dog_p 1 vdi read big "$off" "$M" | cmp -s - "$SD_TMP/zeros" ||
		fail "hole at $off does not read as zeros"
done
# A read across a written object and the hole after it.
dog_p 1 vdi read big $((T + 7)) $((4 * M)) >"$SD_TMP/span"
cmp -s <(head -c $((300 * 1024)) "$SD_TMP/span") "$SD_TMP/piece1" ||
	fail "span read: the written part differs"
cmp -s <(tail -c +$((300 * 1024 + 1)) "$SD_TMP/span") <(head -c $((4 * M - 300 * 1024)) /dev/zero) ||
	fail "span read: the hole part is not zeros"

# Overwrite inside existing objects (no new object, no index change).
head -c $((3 * M)) /dev/urandom >"$SD_TMP/over"
dog_p 0 vdi write big $((4 * T + 9 * M)) $((3 * M)) <"$SD_TMP/over" || fail "overwrite failed"
python3 - "$SD_TMP/piece3" "$SD_TMP/over" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[1 << 20:4 << 20] = open(sys.argv[2], 'rb').read()
open(sys.argv[1], 'wb').write(d)
PY
check_pieces 1 "after the overwrite"

# Used counts exactly the objects written.
assert_eq "$((nr_objs * 4 * M)) 0" "$(dog_p 0 vdi list -r big | awk '{print $5, $6}')" "used and shared bytes"
row=$(dog_p 0 vdi list big | tail -1)
[[ $row =~ ^\ \ big\ +0\ +8\.0\ TB\ +44\ MB\ +0\.0\ MB\ [0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}\ +${vid}\ +3\ +22$ ]] ||
	fail "vdi list row after writes: '$row'"
for i in 0 1 2; do
	n=$(find "$(node_dir "$i")/obj" -maxdepth 1 -name "00${vid6}*" | wc -l)
	assert_eq "$nr_objs" "$n" "data objects on node $i"
done

# The stored root: magic 0x6274, depth 1, one {idx, vid} per object, sorted.
inode=$(node_dir 0)/obj/80${vid6}00000000
[[ -f $inode ]] || fail "inode file $inode missing"
root=$(python3 - "$inode" <<'PY'
import struct, sys
b = open(sys.argv[1], 'rb').read()[4664:]
magic, depth, nr = struct.unpack_from('<HHI', b, 0)
ents = [struct.unpack_from('<II', b, 8 + 8 * i) for i in range(nr)]
print('%04x %d %d' % (magic, depth, nr), ' '.join('%d:%x' % e for e in ents))
PY
)
expect="6274 1 $nr_objs"
for idx in 0 262144 1048575 1048576 1048578 1048579 1048580 1310720 1572864 1572865 2097151; do
	expect+=" $idx:$vid"
done
assert_eq "$expect" "$root" "B-tree root in the inode"

# A holder dies: every piece reads back through the survivors, and writes
# (new objects included) go on.
kill_sheep 2 KILL
check_pieces 0 "with sheep 2 killed"
check_pieces 1 "with sheep 2 killed"
head -c $((5 * M)) /dev/urandom >"$SD_TMP/piece${#pieces[@]}"
pieces+=("$((3 * T + 2 * M)) $((5 * M))") # objects 786432-786433
dog_p 1 vdi write big $((3 * T + 2 * M)) $((5 * M)) <"$SD_TMP/piece$((${#pieces[@]} - 1))" ||
	fail "degraded write failed"
check_pieces 0 "after a degraded write"
assert_eq "$(((nr_objs + 2) * 4 * M))" "$(dog_p 0 vdi list -r big | awk '{print $5}')" "used bytes after a degraded write"

for i in 0 1; do assert_alive "$i"; done
pass
