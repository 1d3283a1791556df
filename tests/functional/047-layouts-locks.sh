#!/usr/bin/env bash
# Format options a user sees: the tree store puts inodes under obj/meta and
# data under obj/<low byte of the vid>; erasure-coded redundancy (d:p) is
# refused with a clear error rather than stored some other way; with
# `cluster format -l` a VDI locked through one sheep is refused through
# another until it is released.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

sdproto() { python3 "$SD_SOURCE_DIR/tests/functional/sdproto.py" "$@"; }

start_cluster 3

# Erasure coding is refused, nothing is formatted.
out=$(dog_p 0 cluster format -c 4:2 2>&1) && fail "format -c 4:2 succeeded"
[[ $out == *"Format failed: Operation is not supported"* ]] || fail "format -c 4:2 said: $out"
[[ $(dog_p 0 cluster info -r | head -1) == "Waiting for cluster to be formatted" ]] ||
	fail "cluster formatted by a refused format"

# The tree store.
out=$(dog_p 0 cluster format -b tree -c 3 -l)
assert_eq "using backend tree store" "$out" "format message"
dog_p 1 vdi create test 16M
vid=$(dog_p 0 vdi list -r test | awk '{print $8}')
head -c 8M /dev/urandom >"$SD_TMP/data"
dog_p 2 vdi write test <"$SD_TMP/data"
low=${vid: -2}
for i in 0 1 2; do
	d=$(node_dir "$i")/obj
	[[ -f $d/meta/80${vid}00000000 ]] || fail "inode not in meta/ on node $i"
	[[ -f $d/$low/00${vid}00000000 && -f $d/$low/00${vid}00000001 ]] ||
		fail "data objects not in $low/ on node $i"
	[[ -z $(find "$d" -maxdepth 1 -type f) ]] || fail "object files at the top of obj/ on node $i"
done
dog_p 0 vdi read test 0 8M | cmp -s - "$SD_TMP/data" || fail "tree store data differs"

out=$(dog_p 0 vdi create ec 16M -c 2:1 2>&1) && fail "vdi create -c 2:1 succeeded"
[[ $out == "Failed to create VDI ec: Operation is not supported" ]] || fail "vdi create -c 2:1 said: $out"

# Locks belong to the sheep a client talks to.
lock() { # IDX EXPECTED
	sdproto req "$(port_of "$1")" LOCK_VDI --name test --expect "$2" >/dev/null ||
		fail "LOCK_VDI through sheep $1 did not answer $2"
}
lock 0 SUCCESS
lock 0 SUCCESS
lock 1 VDI_LOCKED
sdproto req "$(port_of 0)" RELEASE_VDI --vid "0x$vid" --expect SUCCESS >/dev/null
lock 1 SUCCESS
lock 2 VDI_LOCKED
for i in 0 1 2; do assert_alive "$i"; done
pass
