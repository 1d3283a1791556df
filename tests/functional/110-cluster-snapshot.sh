#!/usr/bin/env bash
# Cluster snapshots: a tree of VDIs (a chain of snapshots, a clone of one of
# them, VDIs with other copies and object sizes) is saved twice into one
# farm; the second save adds only the few MiB that changed (dedupe). list and
# show print exactly the documented text. A damaged or incomplete farm is
# refused before the target cluster changes. Loaded into a fresh cluster,
# every VDI and snapshot reads back bit for bit, and vdi list shows the same
# tree: flags, snapshot ids, tags, sizes, used and shared bytes, copies.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

export TZ=UTC
M=1048576
start_cluster 3
format_cluster 2

put() { # put VDI OFFSET_MIB MIB IMAGE: fresh random data, mirrored in IMAGE
	head -c $(($3 * M)) /dev/urandom >"$SD_TMP/piece"
	dog_p 0 vdi write "$1" $(($2 * M)) $(($3 * M)) <"$SD_TMP/piece" ||
		fail "write of $1 at $2 MiB failed"
	dd if="$SD_TMP/piece" of="$4" bs=$M seek="$2" conv=notrunc status=none
}

# alpha: 1 MiB objects, snapshot s1, 3 MiB changed, snapshot s2, 1 MiB more.
dog_p 0 vdi create -z 20 alpha 16M
: >"$SD_TMP/alpha"
truncate -s 16M "$SD_TMP/alpha"
put alpha 0 16 "$SD_TMP/alpha"
cp "$SD_TMP/alpha" "$SD_TMP/alpha.s1"
dog_p 0 vdi snapshot -s s1 alpha
put alpha 2 3 "$SD_TMP/alpha"
cp "$SD_TMP/alpha" "$SD_TMP/alpha.s2"
dog_p 0 vdi snapshot -s s2 alpha
put alpha 10 1 "$SD_TMP/alpha"
# beta: a clone of alpha's s1 with 2 MiB of its own.
dog_p 0 vdi clone -s s1 alpha beta
cp "$SD_TMP/alpha.s1" "$SD_TMP/beta"
put beta 0 2 "$SD_TMP/beta"
# gamma: 4 MiB objects, partly written; delta: one copy.
dog_p 0 vdi create gamma 8M
: >"$SD_TMP/gamma"
truncate -s 8M "$SD_TMP/gamma"
put gamma 0 5 "$SD_TMP/gamma"
dog_p 0 vdi create -c 1 delta 4M
: >"$SD_TMP/delta"
truncate -s 4M "$SD_TMP/delta"
put delta 1 2 "$SD_TMP/delta"

farm=$SD_TMP/farm
farm_bytes() { find "$farm/objects" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

# Bad tags and paths are refused before anything is written.
assert_exit 64 dog_p 0 cluster snapshot save 1st "$farm"
[[ ! -e $farm ]] || fail "a refused save created the farm"
assert_exit 5 dog_p 0 cluster snapshot save first "$farm" nosuchvdi
assert_exit 1 dog_p 0 cluster snapshot list "$SD_TMP/nofarm"

out=$(dog_p 0 cluster snapshot save first "$farm" 2>"$SD_TMP/err")
[[ $out =~ ^Snapshot\ 1\ \'first\'\ saved:\ 6\ VDIs,\ [0-9]+\ objects,\ .*\ read,\ .*\ added\ to\ $farm$ ]] ||
	fail "save output: '$out'"
[[ ! -s $SD_TMP/err ]] || fail "save wrote to stderr off a terminal: $(cat "$SD_TMP/err")"
[[ -f $farm/user_snap ]] || fail "no user_snap"
assert_eq $((32 + 296)) "$(stat -c %s "$farm/user_snap")" "user_snap size after one save"
first_bytes=$(farm_bytes)
# 16+3+1 (alpha) + 2 (beta) + 5 (gamma) + 2 (delta) MiB of random data,
# each stored once; zeros and shared objects add next to nothing
((first_bytes > 29 * M && first_bytes < 29 * M + 256 * 1024)) ||
	fail "the first save stored $first_bytes bytes, expected 29 MiB and a little metadata"
assert_exit 3 dog_p 0 cluster snapshot save first "$farm"

# Three more MiB in alpha: the second save adds those and a little metadata.
put alpha 4 3 "$SD_TMP/alpha"
dog_p 0 cluster snapshot save second "$farm" >/dev/null
growth=$(($(farm_bytes) - first_bytes))
((growth >= 3 * M && growth < 3 * M + 256 * 1024)) ||
	fail "the second save added $growth bytes, expected 3 MiB and a little metadata"

# list: index, time, tag.
t1=$(od -An -tu8 -j $((32 + 264)) -N8 "$farm/user_snap" | tr -d ' ')
t2=$(od -An -tu8 -j $((32 + 296 + 264)) -N8 "$farm/user_snap" | tr -d ' ')
assert_eq "1 $t1 first
2 $t2 second" "$(dog_p 0 cluster snapshot list -r "$farm")" "list -r"
assert_eq "Index  Time                 Tag
    1  $(date -d "@$t1" '+%Y-%m-%d %H:%M:%S')  first
    2  $(date -d "@$t2" '+%Y-%m-%d %H:%M:%S')  second" \
	"$(dog_p 0 cluster snapshot list "$farm")" "list"

# show: the VDIs with their sizes, by index or tag, all or some.
want_show="s alpha 1 16777216 16777216 2 s1 -
s alpha 2 16777216 16777216 2 s2 alpha:1
= alpha 0 16777216 16777216 2 - alpha:2
c beta 0 16777216 16777216 2 - alpha:1
= delta 0 4194304 4194304 1 - -
= gamma 0 8388608 8388608 2 - -"
assert_eq "$want_show" "$(dog_p 0 cluster snapshot show -r 2 "$farm")" "show -r 2"
assert_eq "$want_show" "$(dog_p 0 cluster snapshot show -r second "$farm")" "show -r second"
assert_eq "= delta 0 4194304 4194304 1 - -" \
	"$(dog_p 0 cluster snapshot show -r first "$farm" delta)" "show -r first delta"
assert_eq "  Name              Id       Size  Allocated  Copies  Tag              Parent
s alpha              1      16 MB      16 MB       2  s1               -
c beta               0      16 MB      16 MB       2  -                alpha:1" \
	"$(dog_p 0 cluster snapshot show first "$farm" beta alpha | sed -n '1,2p;5p')" "show"
assert_exit 5 dog_p 0 cluster snapshot show third "$farm"
assert_exit 5 dog_p 0 cluster snapshot show 3 "$farm"

# The tree as vdi list shows it, without creation times and vids.
tree() { dog_p "$1" vdi list -r | awk '{$7 = ""; $8 = ""; print}'; }
tree_before=$(tree 0)

# A fresh cluster of two sheep.
start_sheep 3 -c "local:$SD_TMP/shm2"
wait_for_sheep 3
start_sheep 4 -c "local:$SD_TMP/shm2"
wait_for_sheep 4
wait_for_nodes 3 2
dog_p 3 cluster format -c 1 </dev/null >/dev/null
wait_for "the new cluster to run" cluster_running 3

# A damaged farm: one slice of alpha's first object corrupted, then missing.
bad=$SD_TMP/badfarm
cp -a "$farm" "$bad"
sum=$(head -c 131072 "$SD_TMP/alpha.s1" | sha1sum | cut -c1-40)
slice=$bad/objects/${sum:0:2}/${sum:2}
[[ -f $slice ]] || fail "no farm file for the first slice of alpha"
printf 'garbage' | dd of="$slice" bs=1 seek=20 conv=notrunc status=none
assert_exit 1 dog_p 3 cluster snapshot load second "$bad" 2>"$SD_TMP/err"
grep -qF "Snapshot 2 'second' is damaged: object " "$SD_TMP/err" ||
	fail "no damage message: $(cat "$SD_TMP/err")"
grep -qF "$slice: content does not match its SHA-1 or is malformed" "$SD_TMP/err" ||
	fail "the damage message does not name the file: $(cat "$SD_TMP/err")"
rm "$slice"
assert_exit 1 dog_p 3 cluster snapshot load 2 "$bad" 2>"$SD_TMP/err"
grep -qF "$slice: No such file or directory" "$SD_TMP/err" ||
	fail "no message for the missing file: $(cat "$SD_TMP/err")"
assert_eq "" "$(dog_p 3 vdi list -r)" "VDIs after the refused loads"
assert_alive 3
assert_alive 4

out=$(dog_p 3 cluster snapshot load second "$farm" 2>"$SD_TMP/err")
assert_eq "Snapshot 2 'second' loaded: 6 VDIs, 76 MB" "$out" "load output"
[[ ! -s $SD_TMP/err ]] || fail "load wrote to stderr: $(cat "$SD_TMP/err")"

for n in 3 4; do
	dog_p "$n" vdi read alpha | cmp -s - "$SD_TMP/alpha" || fail "alpha differs (sheep $n)"
	dog_p "$n" vdi read -s s1 alpha | cmp -s - "$SD_TMP/alpha.s1" || fail "alpha s1 differs"
	dog_p "$n" vdi read -s 2 alpha | cmp -s - "$SD_TMP/alpha.s2" || fail "alpha 2 differs"
	dog_p "$n" vdi read beta | cmp -s - "$SD_TMP/beta" || fail "beta differs"
	dog_p "$n" vdi read gamma | cmp -s - "$SD_TMP/gamma" || fail "gamma differs"
	dog_p "$n" vdi read delta | cmp -s - "$SD_TMP/delta" || fail "delta differs"
done
assert_eq "$tree_before" "$(tree 3)" "vdi list of the loaded cluster"

# Loading again would clash with the VDIs now there: refused.
assert_exit 3 dog_p 3 cluster snapshot load first "$farm"
# One VDI of the first snapshot into the first cluster after deleting it.
dog_p 0 vdi delete delta
dog_p 0 cluster snapshot load first "$farm" delta >/dev/null
dog_p 0 vdi read delta | cmp -s - "$SD_TMP/delta" || fail "delta loaded alone differs"
assert_alive 0
assert_alive 3
pass
