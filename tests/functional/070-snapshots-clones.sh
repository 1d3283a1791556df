#!/usr/bin/env bash
# Snapshots, clones and rollback keep exactly the bytes they were given: a
# chain of 10 snapshots, each taken after a write, reads back exactly by id
# and by tag through every node while the working VDI moves on; snapshot
# data objects refuse writes (READONLY); two clones of one snapshot diverge
# without touching it or each other; clone -P and -n copy instead of
# sharing; rollback discards the working VDI's changes only when confirmed.
# vdi list shows the s/c flags, ids, tags, Used and Shared.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

start_cluster 3
format_cluster 3
M=1048576

# 1 MiB objects keep the images small: 8 objects.
assert_exit 0 dog_p 0 vdi create -z 20 chain 8M
img=$SD_TMP/img
head -c 8M /dev/zero >"$img"

put() { # put VDI NODE OBJ IMAGE: write 1 MiB of fresh random data at OBJ
	head -c $M /dev/urandom >"$SD_TMP/piece"
	dog_p "$2" vdi write "$1" $(($3 * M)) $M <"$SD_TMP/piece" ||
		fail "write of $1 object $3 failed"
	dd if="$SD_TMP/piece" of="$4" bs=$M seek="$3" conv=notrunc status=none
}

for k in $(seq 1 10); do
	put chain $((k % 3)) $(((k * 3) % 8)) "$img"
	cp "$img" "$SD_TMP/snap$k"
	assert_exit 0 dog_p $((k % 3)) vdi snapshot -s "tag$k" chain
done
put chain 1 5 "$img"

for k in $(seq 1 10); do
	dog_p $((k % 3)) vdi read -s "$k" chain | cmp -s - "$SD_TMP/snap$k" ||
		fail "snapshot $k read by id differs"
	dog_p $(((k + 1) % 3)) vdi read -s "tag$k" chain | cmp -s - "$SD_TMP/snap$k" ||
		fail "snapshot tag$k read by tag differs"
done
dog_p 2 vdi read chain | cmp -s - "$img" || fail "working VDI differs"

# vdi list -r: ten snapshots with their ids and tags, then the working VDI.
list=$(dog_p 0 vdi list -r chain)
assert_eq 11 "$(wc -l <<<"$list")" "rows of vdi list chain"
for k in $(seq 1 10); do
	row=$(sed -n "${k}p" <<<"$list")
	read -r flag name id size _ _ _ _ copies tag shift <<<"$row"
	assert_eq "s chain $k 8388608 3 tag$k 20" \
		"$flag $name $id $size $copies $tag $shift" "snapshot row $k"
done
# Snapshot 1 owns the one object written before it; the working VDI owns
# object 5 (written after the last snapshot) and shares 7 others (objects
# 0-7 were all written by then except object 4... counted below).
used_objs=$(sort -u <(for k in $(seq 1 10); do echo $(((k * 3) % 8)); done) | wc -l)
last=$(tail -1 <<<"$list")
read -r flag name id size used shared _ <<<"$last"
assert_eq "= chain 0 8388608 $M" "$flag $name $id $size $used" "working VDI row"
shared_want=$(sort -u <(for k in $(seq 1 10); do echo $(((k * 3) % 8)); done | grep -vx 5) | wc -l)
assert_eq $((shared_want * M)) "$shared" "working VDI shared bytes"
((used_objs == 8)) || fail "the chain should have touched all 8 objects"
human=$(dog_p 0 vdi list chain | sed -n 2p)
[[ $human =~ ^s\ chain\ +1\ +8\.0\ MB\ +1\.0\ MB\ +0\.0\ MB\ .*\ tag1\ +20$ ]] ||
	fail "vdi list row of snapshot 1: '$human'"

# A snapshot's data objects are read-only on the wire (spec 4.4).
snap3=$(sed -n 3p <<<"$list" | awk '{print $8}')
SDPROTO_DIR=$SD_SOURCE_DIR/tests/functional PORT=$(port_of 1) VID=$snap3 python3 - <<'PY' ||
import os, sys
sys.path.insert(0, os.environ["SDPROTO_DIR"])
import sdproto as sd
vid = int(os.environ["VID"], 16)
with sd.Conn(int(os.environ["PORT"])) as c:
    rsp, _ = c.request(sd.obj_req(sd.OP_WRITE_OBJ, sd.data_oid(vid, 1),
                                  payload=b"x" * 512))
    sd.expect(rsp, sd.RES_READONLY, "write to a snapshot object")
    rsp, _ = c.request(sd.obj_req(sd.OP_CREATE_AND_WRITE_OBJ,
                                  sd.data_oid(vid, 7), payload=b"x" * 512))
    sd.expect(rsp, sd.RES_READONLY, "create in a snapshot")
PY
	fail "snapshot objects accepted a raw write"
dog_p 0 vdi read -s 3 chain | cmp -s - "$SD_TMP/snap3" || fail "snapshot 3 changed"

# Two clones of snapshot 5 diverge; the snapshot and the other clone keep
# their bytes.
assert_exit 0 dog_p 0 vdi clone -s tag5 chain c1
assert_exit 0 dog_p 1 vdi clone -s 5 chain c2
cp "$SD_TMP/snap5" "$SD_TMP/c1"
cp "$SD_TMP/snap5" "$SD_TMP/c2"
put c1 0 0 "$SD_TMP/c1"
put c1 2 3 "$SD_TMP/c1"
put c2 1 0 "$SD_TMP/c2"
for i in 0 1 2; do
	dog_p "$i" vdi read c1 | cmp -s - "$SD_TMP/c1" || fail "clone c1 via $i"
	dog_p "$i" vdi read c2 | cmp -s - "$SD_TMP/c2" || fail "clone c2 via $i"
	dog_p "$i" vdi read -s 5 chain | cmp -s - "$SD_TMP/snap5" ||
		fail "snapshot 5 changed by its clones"
done
row=$(dog_p 0 vdi list -r c1)
read -r flag name id _ used _ <<<"$row"
assert_eq "c c1 0 $((2 * M))" "$flag $name $id $used" "clone row"
[[ $(dog_p 0 vdi list c1 | sed -n 2p) =~ ^c\ c1\  ]] || fail "clone flag 'c'"
out=$(dog_p 0 vdi clone -v -s 5 chain c3)
c3=$(dog_p 0 vdi list -r c3 | awk '{print $8}')
assert_eq "VDI ID of newly created clone: $c3" "$out" "clone -v"

# -P gives the clone its own copy of every object; -n an independent VDI.
assert_exit 0 dog_p 2 vdi clone -P -s 2 chain full
assert_exit 0 dog_p 2 vdi clone -n -s 2 chain copy
for v in full copy; do
	dog_p 0 vdi read "$v" | cmp -s - "$SD_TMP/snap2" || fail "$v differs"
done
read -r flag _ _ _ used shared _ <<<"$(dog_p 0 vdi list -r full)"
assert_eq "c $((8 * M)) 0" "$flag $used $shared" "clone -P owns all objects"
read -r flag _ _ _ used shared _ <<<"$(dog_p 0 vdi list -r copy)"
assert_eq "= $((2 * M)) 0" "$flag $used $shared" "clone -n shares nothing"

# Rollback: "no" keeps everything; -f (or "yes") goes back to the snapshot.
echo no | dog_p 0 vdi rollback -s tag4 chain >/dev/null
dog_p 0 vdi read chain | cmp -s - "$img" || fail "declined rollback changed the VDI"
echo yes | dog_p 1 vdi rollback -s tag4 chain >/dev/null
dog_p 0 vdi read chain | cmp -s - "$SD_TMP/snap4" || fail "rollback to tag4"
cp "$SD_TMP/snap4" "$img"
put chain 2 6 "$img"
dog_p 0 vdi read chain | cmp -s - "$img" || fail "write after rollback"
dog_p 0 vdi read -s 4 chain | cmp -s - "$SD_TMP/snap4" || fail "snapshot 4 after rollback"
assert_exit 0 dog_p 2 vdi rollback -f -s 10 chain
dog_p 0 vdi read chain | cmp -s - "$SD_TMP/snap10" || fail "rollback -f to 10"
for k in $(seq 1 10); do
	dog_p 0 vdi read -s "$k" chain | cmp -s - "$SD_TMP/snap$k" ||
		fail "snapshot $k after rollbacks"
done

# vdi snapshot -v, -R
out=$(dog_p 0 vdi snapshot -v chain)
[[ $out =~ ^new\ VID\ of\ original\ VDI:\ [0-9a-f]+,\ VDI\ ID\ of\ newly\ created\ snapshot:\ [0-9a-f]+$ ]] ||
	fail "snapshot -v: '$out'"
before=$(dog_p 0 vdi list -r chain | wc -l)
assert_exit 0 dog_p 0 vdi snapshot -R chain
assert_eq "$before" "$(dog_p 0 vdi list -r chain | wc -l)" "-R skips a snapshot without own objects"
for i in 0 1 2; do assert_alive "$i"; done
pass
