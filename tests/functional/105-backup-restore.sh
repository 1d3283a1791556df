#!/usr/bin/env bash
# Backup and restore of VDIs between snapshots: a full backup plus three
# incrementals, each point restored (into a new VDI as a chain, and in
# place) and compared byte for byte with `dog vdi read -s` of its snapshot;
# an incremental after changing 10% of the blocks is about 10% of the full;
# truncated, corrupted and mis-chained streams are refused before anything
# changes; the offline verify and show commands; pipes and files alike.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

start_cluster 3
format_cluster 2
K=4096
M=1048576
SIZE=$((40 * M))

img=$SD_TMP/img
head -c $SIZE /dev/urandom >"$img"
# a hole of 8 MiB (two whole objects) that stays unallocated
dd if=/dev/zero of="$img" bs=$M seek=16 count=8 conv=notrunc status=none

assert_exit 0 dog_p 0 vdi create vm $SIZE
dog_p 0 vdi write vm 0 $((16 * M)) < <(head -c $((16 * M)) "$img") ||
	fail "first write failed"
dog_p 1 vdi write vm $((24 * M)) $((16 * M)) < <(tail -c $((16 * M)) "$img") ||
	fail "second write failed"
assert_exit 0 dog_p 0 vdi snapshot -s p0 vm
cp "$img" "$SD_TMP/p0"

# change N random 4 KiB blocks of the image (never in the hole) and write
# them to vm
change_blocks() {
	python3 - "$img" "$1" "$2" <<'PY'
import os, random, sys
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
size = os.path.getsize(path)
hole = range(16 * 256, 24 * 256)
blocks = rnd.sample([b for b in range(size // 4096) if b not in hole], n)
with open(path, "r+b") as f:
    for b in blocks:
        f.seek(b * 4096)
        f.write(os.urandom(4096))
PY
	dog_p 2 vdi write vm <"$img" || fail "write of changed blocks failed"
}

nblocks=$(((SIZE - 8 * M) / K))
for p in 1 2 3; do
	change_blocks $((nblocks / 10)) $p
	if [[ $p == 2 ]]; then
		# shrink the data: one object becomes all zeros
		dd if=/dev/zero of="$img" bs=$M seek=4 count=4 conv=notrunc status=none
		dog_p 0 vdi write vm $((4 * M)) $((4 * M)) </dev/zero ||
			fail "zeroing failed"
	fi
	assert_exit 0 dog_p 0 vdi snapshot -s "p$p" vm
	cp "$img" "$SD_TMP/p$p"
done
# the working VDI moves on after the last snapshot
change_blocks 100 9
cp "$img" "$SD_TMP/work"

for p in 0 1 2 3; do
	dog_p 1 vdi read -s "p$p" vm | cmp -s - "$SD_TMP/p$p" ||
		fail "snapshot p$p does not read back as written"
done

# ---- backups: one full to a file, incrementals to stdout ----
B=$SD_TMP/bk
mkdir "$B"
assert_exit 0 dog_p 0 vdi backup -s p0 vm "$B/full"
for p in 1 2 3; do
	dog_p $((p % 3)) vdi backup -F "p$((p - 1))" -s "p$p" vm >"$B/inc$p" ||
		fail "incremental backup p$p failed"
done

full_size=$(stat -c %s "$B/full")
inc1_size=$(stat -c %s "$B/inc1")
# 10% of the blocks changed: the incremental is about 10% of the full
((inc1_size * 100 <= full_size * 12)) ||
	fail "incremental p1 is $inc1_size bytes, more than 12% of the full ($full_size)"
((inc1_size * 100 >= full_size * 8)) ||
	fail "incremental p1 is $inc1_size bytes, less than 8% of the full ($full_size): data missing?"
echo "full $full_size bytes, incremental (10% of blocks) $inc1_size bytes"

# ---- offline: verify and show need no cluster ----
out=$("$DOG" backup verify "$B/inc2") || fail "verify of inc2 failed"
[[ $out == *"OK: incremental backup of vm"* ]] || fail "verify said: $out"
"$DOG" backup show -r "$B/inc2" >"$SD_TMP/show" || fail "show failed"
grep -qx "kind incremental" "$SD_TMP/show" || fail "show: $(cat "$SD_TMP/show")"
grep -qx "name vm" "$SD_TMP/show" || fail "show has no name"
grep -qx "size $SIZE" "$SD_TMP/show" || fail "show has no size"
grep -qx "object_size 4194304" "$SD_TMP/show" || fail "show has no object size"
grep -qx "copies 2" "$SD_TMP/show" || fail "show has no copies"
grep -q "^from 2 p1 [0-9]*$" "$SD_TMP/show" || fail "show has no from snapshot"
grep -q "^to 3 p2 [0-9]*$" "$SD_TMP/show" || fail "show has no to snapshot"
"$DOG" backup show "$B/full" | grep -q "^Kind: *full$" || fail "show full"
"$DOG" backup verify <"$B/inc3" >/dev/null || fail "verify from stdin failed"

# ---- restore the chain into a new VDI, comparing every point ----
assert_exit 0 dog_p 1 vdi restore copy "$B/full"
dog_p 2 vdi read -s p0 copy | cmp -s - "$SD_TMP/p0" || fail "restored p0 differs"
dog_p 0 vdi read copy | cmp -s - "$SD_TMP/p0" || fail "working copy after full differs"
for p in 1 2 3; do
	# through a pipe (spooled) and from a file, alternately
	if ((p % 2)); then
		cat "$B/inc$p" | dog_p $((p % 3)) vdi restore -s "p$((p - 1))" copy ||
			fail "restore of inc$p through a pipe failed"
	else
		dog_p $((p % 3)) vdi restore -s "p$((p - 1))" copy <"$B/inc$p" ||
			fail "restore of inc$p from a file failed"
	fi
	dog_p 0 vdi read -s "p$p" copy | cmp -s - "$SD_TMP/p$p" ||
		fail "restored p$p differs"
	dog_p 1 vdi read copy | cmp -s - "$SD_TMP/p$p" ||
		fail "working copy after p$p differs"
done
# the hole stayed a hole: its objects were never allocated
for idx in 4 5; do
	dog_p 0 vdi object location -i $idx copy | grep -q "not allocated" ||
		fail "object $idx of the restored VDI is allocated"
done

# ---- refusals: nothing changes ----
state() { # everything a refusal must leave alone
	dog_p 0 vdi list -r
	for v in vm copy; do
		dog_p 0 vdi read "$v" | md5sum
		for p in 0 1 2 3; do dog_p 0 vdi read -s "p$p" "$v" | md5sum; done
	done
}
state >"$SD_TMP/before"

refuse() { # refuse CODE MESSAGE-PATTERN ARGS... < stream
	local want=$1 pat=$2 got=0
	shift 2
	dog_p 0 vdi restore "$@" 2>"$SD_TMP/err" || got=$?
	[[ $got -eq $want ]] || fail "restore $* exited $got, expected $want: $(cat "$SD_TMP/err")"
	grep -q "$pat" "$SD_TMP/err" || fail "restore $*: message '$(cat "$SD_TMP/err")' lacks '$pat'"
}

# truncated at several points, through a pipe and from a file
inc2_size=$(stat -c %s "$B/inc2")
for cut in 7 100 $((inc2_size / 2)) $((inc2_size - 1)); do
	head -c $cut "$B/inc2" >"$SD_TMP/trunc"
	refuse 1 "The backup file is corrupted" -s p1 vm <"$SD_TMP/trunc"
	head -c $cut "$B/inc2" | refuse 1 "The backup file is corrupted" -s p1 vm
done
# one byte changed in the compressed stream, early, middle and late
for at in 20 $((inc2_size / 2)) $((inc2_size - 10)); do
	cp "$B/inc2" "$SD_TMP/bad"
	flip_byte "$SD_TMP/bad" $at
	refuse 1 "The backup file is corrupted" -s p1 vm <"$SD_TMP/bad"
done
# not a stream at all
head -c 5000 /dev/urandom | refuse 1 "The backup file is corrupted" -s p1 vm
# mis-chained: inc3 onto p1, inc2 onto p3, in both VDIs
refuse 1 "does not chain onto snapshot" -s p1 vm <"$B/inc3"
refuse 1 "does not chain onto snapshot" -s p3 vm <"$B/inc2"
refuse 1 "does not chain onto snapshot" -s p0 copy <"$B/inc2"
# an incremental without -s, a full over an existing VDI
refuse 64 "incremental stream" vm <"$B/inc1"
refuse 3 "exists" vm <"$B/full"
# a snapshot that does not exist
refuse 1 "Failed to open VDI vm" -s nosuch vm <"$B/inc1"
state >"$SD_TMP/after"
cmp -s "$SD_TMP/before" "$SD_TMP/after" || {
	diff "$SD_TMP/before" "$SD_TMP/after" >&2 || true
	fail "a refused restore changed the cluster"
}
for i in 0 1 2; do assert_alive $i; done

# ---- in place: roll vm back to p1 + inc2 (upstream's semantics) ----
assert_exit 0 dog_p 2 vdi restore -s p1 vm <"$B/inc2"
dog_p 0 vdi read vm | cmp -s - "$SD_TMP/p2" || fail "in-place restore differs from p2"
# the original snapshots are untouched
for p in 0 1 2 3; do
	dog_p 1 vdi read -s "p$p" vm | cmp -s - "$SD_TMP/p$p" ||
		fail "snapshot p$p changed by the in-place restore"
done

# ---- a full stream onto an existing VDI's snapshot replaces everything ----
assert_exit 0 dog_p 0 vdi restore -s p3 vm "$B/full"
dog_p 0 vdi read vm | cmp -s - "$SD_TMP/p0" || fail "full onto p3 differs from p0"

# ---- -c: a restore into a new VDI with other copies ----
assert_exit 0 dog_p 1 vdi restore -c 1 single "$B/full"
dog_p 0 vdi read single | cmp -s - "$SD_TMP/p0" || fail "restore with -c 1 differs"
dog_p 0 vdi list -r single >"$SD_TMP/list"
# raw: = name id size used shared ctime vid copies tag shift
awk '$1 == "=" || $1 == "c" || $1 == "s" { print $9 }' "$SD_TMP/list" | sort -u |
	grep -qx 1 || fail "restore -c 1: $(cat "$SD_TMP/list")"

# ---- vdi write is sparse-aware: zeros allocate nothing ----
assert_exit 0 dog_p 0 vdi create sparse $SIZE
dog_p 1 vdi write sparse <"$SD_TMP/p0" || fail "write of p0 into sparse failed"
dog_p 2 vdi read sparse | cmp -s - "$SD_TMP/p0" || fail "sparse reads back wrong"
for idx in 4 5; do
	dog_p 0 vdi object location -i $idx sparse | grep -q "not allocated" ||
		fail "writing zeros allocated object $idx of sparse"
done
dog_p 0 vdi object location -i 3 sparse | grep -q "not allocated" &&
	fail "object 3 of sparse (data) is not allocated"

# ---- usage errors ----
assert_exit 64 dog_p 0 vdi backup vm "$B/x"
[[ ! -e $B/x ]] || fail "a refused backup left a file"
assert_exit 64 dog_p 0 vdi backup -s p1 -O v2 vm "$B/x"
assert_exit 64 dog_p 0 vdi backup -s p1 -L 99 vm "$B/x"
assert_exit 1 dog_p 0 vdi backup -s nosuch vm "$B/x"
[[ ! -e $B/x ]] || fail "a failed backup left a file"
assert_exit 5 "$DOG" backup verify "$SD_TMP/nonexistent"

pass
