#!/usr/bin/env bash
# Per-VDI options: -c sets the VDI's own number of replicas (whatever the
# cluster default), -z its object size (2^20 .. 2^31, refused outside with
# upstream's messages), -P writes every object at creation (flat VDIs and
# hyper volumes), and snapshots and clones keep the options of their VDI.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

start_cluster 3
format_cluster 3

# Replica files of each data object of VDI NAME, as "count count ...".
replica_counts() {
	local vid
	vid=$(dog_p 0 vdi list -r "$1" | awk '$3 == 0 {print $8}')
	find "$SD_TMP"/n[0-2]/obj -maxdepth 1 -name "00$(printf %06x $((0x$vid)))*" -printf '%f\n' |
		sort | uniq -c | awk '{print $1}' | sort -u | tr '\n' ' '
}

# -c 2: two replicas of every object, on a copies=3 cluster.
assert_exit 0 dog_p 0 vdi create -c 2 two 12M
head -c 12M /dev/urandom >"$SD_TMP/two"
dog_p 1 vdi write two <"$SD_TMP/two"
assert_eq "2 " "$(replica_counts two)" "replicas per object of a -c 2 VDI"
assert_eq "2" "$(dog_p 0 vdi list -r two | awk '{print $9}')" "Copies column"
dog_p 2 vdi read two | cmp -s - "$SD_TMP/two" || fail "-c 2 VDI differs"
# A snapshot and a clone keep 2 copies, and so do their new objects.
assert_exit 0 dog_p 0 vdi snapshot two
assert_exit 0 dog_p 0 vdi clone -s 1 two two-clone
head -c 4M /dev/urandom | dog_p 0 vdi write two-clone
assert_eq "2 " "$(replica_counts two-clone)" "replicas of a clone's own objects"
assert_eq "2 2" "$(dog_p 0 vdi list -r two | awk '{printf "%s%s", sep, $9; sep=" "}')" "Copies of snapshot and VDI"

# -z: the object size of the VDI.
assert_exit 0 dog_p 0 vdi create -z 24 big-objects 64M
head -c 20M /dev/urandom >"$SD_TMP/bo"
dog_p 0 vdi write big-objects <"$SD_TMP/bo"
vid=$(dog_p 0 vdi list -r big-objects | awk '{print $8}')
size=$(stat -c %s "$SD_TMP/n0/obj/$(printf '%08x%08x' $((0x$vid)) 1)")
assert_eq $((16 << 20)) "$size" "object size with -z 24"
assert_eq "24" "$(dog_p 0 vdi list -r big-objects | awk '{print $10}')" "Block Size Shift column"
dog_p 1 vdi read big-objects 0 20M | cmp -s - "$SD_TMP/bo" || fail "-z 24 VDI differs"
out=$(dog_p 0 vdi create -z 19 small 4M 2>&1) && fail "-z 19 accepted"
assert_eq "Object Size is larger than 2^20. Please set shift bit larger than 20" "$out" "-z 19 message"
out=$(dog_p 0 vdi create -z 32 small 4M 2>&1) && fail "-z 32 accepted"
assert_eq "Object Size is limited to 2^31. Please set shift bit lower than 31" "$out" "-z 32 message"
assert_exit 0 dog_p 0 vdi create -z 20 one-mib 3M
assert_exit 0 dog_p 0 vdi create -z 31 two-gib 4G

# -P: every object exists and is counted as used at once.
assert_exit 0 dog_p 0 vdi create -P pre 20M
read -r _ _ _ size used shared _ <<<"$(dog_p 0 vdi list -r pre)"
assert_eq "20971520 20971520 0" "$size $used $shared" "-P: size, used, shared"
assert_eq "3 " "$(replica_counts pre)" "-P: replicas per object"
dog_p 0 vdi read pre | cmp -s - <(head -c 20M /dev/zero) || fail "-P VDI is not zero"
assert_exit 0 dog_p 0 vdi create -y -P hpre 12M
read -r _ _ _ size used _ <<<"$(dog_p 0 vdi list -r hpre)"
assert_eq "12582912 12582912" "$size $used" "-y -P: size, used"
for i in 0 1 2; do assert_alive "$i"; done
pass
