#!/usr/bin/env bash
# tests/tools/sd-placement, the oracle of the recovery tests, sees every
# object where placement puts it and reports exactly what is wrong: a
# replica removed from a holder (misplaced), a live copy on a node that
# is not a holder (extra), an object gone from every node (missing), and
# a cluster that has fewer members than expected (not settled). Objects
# shared by a snapshot and the B-tree leaves of a hyper volume are counted
# once each.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

placement() { "$SD_BUILD_DIR/tests/sd-placement" -p "$(port_of 0)" "$@"; }

start_cluster 4
format_cluster 3
dog_p 0 vdi create flat 16M -P
dog_p 0 vdi snapshot flat
dog_p 0 vdi create hyper 1T -y
head -c 8M /dev/urandom | dog_p 0 vdi write hyper 1G
# The data objects belong to the snapshot, which kept the original vid.
vid=$(dog_p 0 vdi list -r flat | awk '$1 == "s" {print $8}')

# 2 inodes of flat (the snapshot's objects are the working VDI's), 4 data
# objects, the hyper volume's inode and its 2 data objects.
out=$(placement) || fail "placement of a fresh cluster is not exact: $out"
assert_eq "objects 9, misplaced 0, missing 0, extra 0" "$(tail -n 1 <<<"$out")"
assert_eq "epoch 1, 4 nodes, 3 VDIs" "$(tail -n 2 <<<"$out" | head -n 1)"
out=$(placement --vdi hyper) || fail "placement of hyper is not exact: $out"
assert_eq "objects 3, misplaced 0, missing 0, extra 0" "$(tail -n 1 <<<"$out")"

# With 4 nodes and 3 copies, exactly one node does not hold object 1.
oid=$(printf '%016x' $((0x$vid << 32 | 1)))
holders=() other=""
for i in 0 1 2 3; do
	if [[ -e $(node_dir "$i")/obj/$oid ]]; then
		holders+=("$i")
	else
		other=$i
	fi
done
assert_eq 3 "${#holders[@]}" "holders of $oid"
cp "$(node_dir "${holders[0]}")/obj/$oid" "$SD_TMP/saved"

rm "$(node_dir "${holders[0]}")/obj/$oid"
assert_exit 1 placement >"$SD_TMP/out"
assert_eq "objects 9, misplaced 1, missing 0, extra 0" "$(tail -n 1 "$SD_TMP/out")"
grep -qx "misplaced $oid (copies 3): holders .*127.0.0.1:$(port_of "${holders[0]}")(lacks it).*" \
	"$SD_TMP/out" || fail "no detail line for the misplaced object: $(cat "$SD_TMP/out")"

cp "$SD_TMP/saved" "$(node_dir "${holders[0]}")/obj/$oid"
cp "$SD_TMP/saved" "$(node_dir "$other")/obj/$oid"
assert_exit 1 placement >"$SD_TMP/out"
assert_eq "objects 9, misplaced 0, missing 0, extra 1" "$(tail -n 1 "$SD_TMP/out")"
grep -qx "extra $oid (copies 3): holders .*; also live on 127.0.0.1:$(port_of "$other")" \
	"$SD_TMP/out" || fail "no detail line for the extra copy: $(cat "$SD_TMP/out")"

for i in 0 1 2 3; do rm -f "$(node_dir "$i")/obj/$oid"; done
assert_exit 1 placement >"$SD_TMP/out"
assert_eq "objects 9, misplaced 0, missing 1, extra 0" "$(tail -n 1 "$SD_TMP/out")"
grep -qx "missing $oid (copies 3): holders .*" "$SD_TMP/out" ||
	fail "no detail line for the missing object: $(cat "$SD_TMP/out")"
for i in "${holders[@]}"; do cp "$SD_TMP/saved" "$(node_dir "$i")/obj/$oid"; done
placement >/dev/null || fail "placement is not exact once the copies are back"

# A cluster with fewer members than expected has not settled.
assert_exit 1 placement -n 5 >"$SD_TMP/out"
grep -qx "not settled: 127.0.0.1:$(port_of 0) lists 4 nodes, expected 5" "$SD_TMP/out" ||
	fail "no 'not settled' line: $(cat "$SD_TMP/out")"
# A member that does not answer makes the check impossible, not a pass.
assert_exit 2 "$SD_BUILD_DIR/tests/sd-placement" -p "$(port_of 9)" 2>"$SD_TMP/err"
grep -q "cannot connect to 127.0.0.1:$(port_of 9)" "$SD_TMP/err" ||
	fail "no message for an unreachable sheep: $(cat "$SD_TMP/err")"
for i in 0 1 2 3; do assert_alive "$i"; done
pass
