#!/usr/bin/env bash
# Real NBD clients against sheep's NBD server on a 3-node cluster with 2
# copies, each client through whichever sheep it likes:
#   - qemu-img info sees a raw disk of the VDI's size;
#   - a qcow2 image made locally (qemu-img create + qemu-io pattern writes,
#     a random chunk and a zeroed range) is imported with qemu-img convert -n
#     into a VDI of the same size, exported back with qemu-img convert, and
#     qemu-img compare says the qcow2 and the VDI are identical; dog vdi read
#     gives the same bytes;
#   - qemu-io writes a pattern through one sheep and read -P verifies it
#     through another; write -z zeroes a range;
#   - writes by dog vdi write are read back over NBD and the other way round;
#   - nbdinfo --list lists every VDI; nbdinfo --map shows "data" where objects
#     exist and "hole,zero" where they do not;
#   - nbdcopy copies a VDI to a local file, a local file into a VDI, and a VDI
#     into another VDI, byte for byte;
#   - NAME@TAG and NAME:ID export a snapshot read-only with its old bytes, a
#     write there is refused, while the working VDI moves on;
#   - fio's nbd engine runs a random-write job with crc32c verification, and
#     a verify-only pass through another sheep finds every block intact.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

need_tools qemu-img qemu-io nbdinfo nbdcopy fio
declare -F nbd_port >/dev/null || fail "lib.sh has no nbd_port: this tree has no NBD server"

M=1048576
SIZE=$((64 * M))
T=${SD_NBD_CLIENT_TIMEOUT:-120}

start_cluster 3
format_cluster 2
wait_nbd 0 1 2

# qemu-img info: a raw disk of exactly the VDI's size.
assert_exit 0 dog_p 0 vdi create vm 64M
info=$(timeout "$T" qemu-img info --output=json "$(nbd_uri 1 vm)") || fail "qemu-img info failed"
got=$(python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(j["format"], j["virtual-size"])' "$info")
assert_eq "raw $SIZE" "$got" "qemu-img info: format and virtual size"

# A qcow2 image with patterns at odd places, a random chunk and a zeroed
# range, imported into the VDI with qemu-img convert -n.
src=$SD_TMP/src.qcow2
head -c $((3 * M)) /dev/urandom >"$SD_TMP/rnd3m"
qemu-img create -q -f qcow2 "$src" $SIZE
timeout "$T" qemu-io -f qcow2 \
	-c "write -q -P 0x11 0 1M" \
	-c "write -q -P 0x22 $((5 * M)) 512k" \
	-c "write -q -P 0x33 $((17 * M + 4096)) 12k" \
	-c "write -q -s $SD_TMP/rnd3m $((30 * M)) 3M" \
	-c "write -q -z $((40 * M)) 1M" \
	-c "write -q -P 0x44 $((63 * M)) 1M" \
	"$src" || fail "qemu-io could not write the qcow2 source"
expect=$SD_TMP/expect
qemu-img convert -O raw "$src" "$expect"
assert_eq $SIZE "$(stat -c %s "$expect")" "size of the raw expectation"

timeout "$T" qemu-img convert -n -O raw "$src" "$(nbd_uri 0 vm)" ||
	fail "qemu-img convert into the VDI failed"
timeout "$T" qemu-img convert -O raw "$(nbd_uri 1 vm)" "$SD_TMP/back.raw" ||
	fail "qemu-img convert out of the VDI failed"
cmp "$expect" "$SD_TMP/back.raw" || fail "the image exported back differs from the qcow2"
out=$(timeout "$T" qemu-img compare "$src" "$(nbd_uri 2 vm)" 2>&1) ||
	fail "qemu-img compare src.qcow2 with the VDI: $out"
assert_eq "Images are identical." "$out" "qemu-img compare"
dog_p 2 vdi read vm | cmp - "$expect" || fail "dog vdi read differs from the imported qcow2"

# qemu-io: a pattern written through sheep 1 verifies through sheep 2 and
# through dog; write -z zeroes.
out=$(timeout "$T" qemu-io -f raw -c "write -P 0xab 0 1M" "$(nbd_uri 1 vm)" 2>&1) ||
	fail "qemu-io write: $out"
[[ $out == *"wrote 1048576/1048576 bytes at offset 0"* ]] || fail "qemu-io write said: $out"
out=$(timeout "$T" qemu-io -f raw -c "read -P 0xab 0 1M" "$(nbd_uri 2 vm)" 2>&1) ||
	fail "qemu-io read -P 0xab: $out"
[[ $out == *"read 1048576/1048576 bytes at offset 0"* && $out != *"Pattern verification failed"* ]] ||
	fail "qemu-io read -P 0xab said: $out"
head -c $M /dev/zero | tr '\0' '\253' >"$SD_TMP/ab"
dd if="$SD_TMP/ab" of="$expect" conv=notrunc status=none
dog_p 0 vdi read vm 0 1M | cmp - "$SD_TMP/ab" || fail "dog does not see qemu-io's pattern"
out=$(timeout "$T" qemu-io -f raw -c "write -z $((5 * M)) 512k" \
	-c "read -P 0 $((5 * M)) 512k" "$(nbd_uri 0 vm)" 2>&1) || fail "qemu-io write -z: $out"
[[ $out != *"Pattern verification failed"* ]] || fail "write -z left non-zero bytes: $out"
dd if=/dev/zero of="$expect" bs=512k count=1 seek=10 conv=notrunc status=none

# dog writes are seen over NBD, NBD writes by dog.
head -c $((2 * M)) /dev/urandom >"$SD_TMP/rnd2m"
dog_p 2 vdi write vm $((20 * M)) $((2 * M)) <"$SD_TMP/rnd2m" || fail "dog vdi write failed"
dd if="$SD_TMP/rnd2m" of="$expect" bs=$M seek=20 conv=notrunc status=none
timeout "$T" nbdcopy "$(nbd_uri 0 vm)" "$SD_TMP/vm.raw" || fail "nbdcopy of vm to a file failed"
cmp "$expect" "$SD_TMP/vm.raw" || fail "NBD read of vm differs after dog vdi write"
dog_p 1 vdi read vm | cmp - "$expect" || fail "dog vdi read of vm differs"

# nbdinfo --map: data where objects exist, hole,zero elsewhere (4 MiB
# objects). Adjacent extents of one type are merged before comparing.
assert_exit 0 dog_p 0 vdi create sparse 64M
head -c $((4 * M)) /dev/urandom | dog_p 1 vdi write sparse $((8 * M)) $((4 * M)) ||
	fail "dog vdi write of sparse failed"
printf x | dog_p 2 vdi write sparse $((40 * M + 100)) 1 || fail "dog vdi write of 1 byte failed"
map=$(timeout "$T" nbdinfo --map "$(nbd_uri 2 sparse)") || fail "nbdinfo --map failed"
merged=$(awk '{ if (n && $4 == t && $1 == end) { len += $2; end += $2 }
	else { if (n) print off, len, t; off = $1; len = $2; end = $1 + $2; t = $4; n = 1 } }
	END { if (n) print off, len, t }' <<<"$map")
want="0 $((8 * M)) hole,zero
$((8 * M)) $((4 * M)) data
$((12 * M)) $((28 * M)) hole,zero
$((40 * M)) $((4 * M)) data
$((44 * M)) $((20 * M)) hole,zero"
assert_eq "$want" "$merged" "nbdinfo --map of sparse (raw map: $map)"

# nbdcopy: a local file into a VDI, a VDI into another VDI.
head -c $SIZE /dev/urandom >"$SD_TMP/rnd64"
assert_exit 0 dog_p 0 vdi create copy 64M
timeout "$T" nbdcopy "$SD_TMP/rnd64" "$(nbd_uri 1 copy)" || fail "nbdcopy file -> VDI failed"
dog_p 0 vdi read copy | cmp - "$SD_TMP/rnd64" || fail "VDI copy differs from the file nbdcopy wrote"
assert_exit 0 dog_p 0 vdi create vm2 64M
timeout "$T" nbdcopy "$(nbd_uri 0 vm)" "$(nbd_uri 2 vm2)" || fail "nbdcopy VDI -> VDI failed"
dog_p 1 vdi read vm2 | cmp - "$expect" || fail "vm2 differs from vm after nbdcopy"

# nbdinfo --list: every VDI.
list=$(timeout "$T" nbdinfo --list --json "nbd://127.0.0.1:$(nbd_port 1)") ||
	fail "nbdinfo --list failed"
names=$(python3 -c 'import json, sys
print(" ".join(sorted(e["export-name"] for e in json.loads(sys.argv[1])["exports"])))' "$list")
assert_eq "copy sparse vm vm2" "$names" "exports listed by nbdinfo --list"

# Snapshots: read-only exports by tag and by id, with the old bytes.
cp "$expect" "$SD_TMP/snap.expect"
assert_exit 0 dog_p 0 vdi snapshot -s before vm
snapid=$(dog_p 0 vdi list -r vm | awk '$1 == "s" && $10 == "before" { print $3 }')
[[ $snapid =~ ^[0-9]+$ ]] || fail "no id for snapshot 'before': '$snapid'"
timeout "$T" qemu-io -f raw -c "write -P 0xcd $((2 * M)) 1M" "$(nbd_uri 2 vm)" >/dev/null ||
	fail "qemu-io write to vm after the snapshot failed"
head -c $M /dev/zero | tr '\0' '\315' | dd of="$expect" bs=$M seek=2 conv=notrunc status=none
for name in vm@before "vm:$snapid"; do
	info=$(timeout "$T" nbdinfo --json "$(nbd_uri 1 "$name")") || fail "nbdinfo $name failed"
	ro=$(python3 -c 'import json, sys; e = json.loads(sys.argv[1])["exports"][0]
print(e["is_read_only"], e["export-size"])' "$info")
	assert_eq "True $SIZE" "$ro" "snapshot export $name: read-only and size"
	timeout "$T" nbdcopy "$(nbd_uri 0 "$name")" "$SD_TMP/snap.raw" || fail "nbdcopy of $name failed"
	cmp "$SD_TMP/snap.raw" "$SD_TMP/snap.expect" || fail "snapshot export $name has other bytes"
	out=$(timeout "$T" qemu-io -f raw -c "write -P 0xee 0 4k" "$(nbd_uri 2 "$name")" 2>&1) &&
		fail "qemu-io wrote to the read-only export $name: $out"
done
dog_p 0 vdi read -s before vm | cmp - "$SD_TMP/snap.expect" || fail "snapshot changed"
dog_p 0 vdi read vm | cmp - "$expect" || fail "vm lost writes made after the snapshot"

# fio's nbd engine: random 4k writes at QD16 with crc32c verification, then
# a verify-only pass through another sheep.
assert_exit 0 dog_p 0 vdi create fio 64M
fio_job=(--name=nbd --ioengine=nbd --rw=randwrite --verify=crc32c --size=64M --bs=4k
	--iodepth=16 --randseed=122 --verify_state_save=0)
cd "$SD_TMP" # fio leaves files in the working directory
timeout "$T" fio "${fio_job[@]}" --uri="$(nbd_uri 0 fio)" >"$SD_TMP/fio1.out" 2>&1 ||
	fail "fio randwrite+verify failed: $(tail -20 "$SD_TMP/fio1.out")"
grep -q "err= 0" "$SD_TMP/fio1.out" || fail "fio reported errors: $(cat "$SD_TMP/fio1.out")"
timeout "$T" fio "${fio_job[@]}" --verify_only --uri="$(nbd_uri 2 fio)" >"$SD_TMP/fio2.out" 2>&1 ||
	fail "fio verify-only pass failed: $(tail -20 "$SD_TMP/fio2.out")"
{ grep -q "err= 0" "$SD_TMP/fio2.out" && grep -q "READ: .*io=64.0MiB" "$SD_TMP/fio2.out"; } ||
	fail "fio verify-only pass did not read and verify 64 MiB: $(cat "$SD_TMP/fio2.out")"

for i in 0 1 2; do assert_alive "$i"; done
pass
