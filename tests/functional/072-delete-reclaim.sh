#!/usr/bin/env bash
# Deleting a VDI, a snapshot at any position of a chain, or a clone's parent
# frees exactly the data objects nobody else references: the object files on
# every store go away (and the bytes used on disk go down) while every
# remaining VDI, snapshot and clone reads back unchanged. A deleted name no
# longer resolves and can be created again. Bad requests (unknown snapshot,
# duplicate or numeric tag, cloning a non-snapshot, resizing a snapshot,
# shrinking, sizes beyond the limit, names too long) get upstream's message
# and exit code and change nothing.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

start_cluster 3
format_cluster 3
M=1048576

put() { # put VDI OBJ IMAGE: 1 MiB of fresh random data at object OBJ
	head -c $M /dev/urandom >"$SD_TMP/piece"
	dog_p 0 vdi write "$1" $(($2 * M)) $M <"$SD_TMP/piece" ||
		fail "write of $1 object $2 failed"
	dd if="$SD_TMP/piece" of="$3" bs=$M seek="$2" conv=notrunc status=none
}

# Data object files (names without the inode/attr/B-tree bits) per store.
data_files() {
	local n=0 i
	for i in 0 1 2; do
		n=$((n + $(find "$(node_dir "$i")/obj" -maxdepth 1 -name '00*' | wc -l)))
	done
	echo "$n"
}
store_bytes() { du -sb "$SD_TMP"/n[0-2]/obj | awk '{s += $1} END {print s}'; }

# Each data object has 3 replicas, one per store.
expect_objects() {
	assert_eq $(($1 * 3)) "$(data_files)" "$2: data object files"
}

vid_of() { dog_p 0 vdi list -r "$1" | awk -v s="$2" '$3 == s {print $8}'; }

# A chain: s1 <- s2 <- s3 <- working, on a 4-object VDI.
assert_exit 0 dog_p 0 vdi create -z 20 d 4M
head -c 4M /dev/urandom >"$SD_TMP/s1"
dog_p 0 vdi write d <"$SD_TMP/s1"
assert_exit 0 dog_p 0 vdi snapshot -s s1 d
cp "$SD_TMP/s1" "$SD_TMP/s2"
put d 0 "$SD_TMP/s2"
assert_exit 0 dog_p 0 vdi snapshot -s s2 d
cp "$SD_TMP/s2" "$SD_TMP/s3"
put d 1 "$SD_TMP/s3"
assert_exit 0 dog_p 0 vdi snapshot -s s3 d
cp "$SD_TMP/s3" "$SD_TMP/w"
put d 2 "$SD_TMP/w"
# s1 owns 4, s2 owns object 0, s3 object 1, the working VDI object 2.
expect_objects 7 "chain"

check_reads() {
	local v
	for v in "$@"; do
		case $v in
		w) dog_p 1 vdi read d | cmp -s - "$SD_TMP/w" || fail "working VDI differs" ;;
		*) dog_p 2 vdi read -s "$v" d | cmp -s - "$SD_TMP/$v" || fail "snapshot $v differs" ;;
		esac
	done
}

# Middle of the chain: everything s2 owns is still used by s3 and the
# working VDI.
b0=$(store_bytes)
dog_p 0 vdi delete -s s2 d
expect_objects 7 "after deleting s2"
check_reads s1 s3 w
assert_exit 1 dog_p 0 vdi read -s s2 d

# First of the chain: objects 0 and 1 of s1 are overwritten in every
# remaining descendant; 2 and 3 are still shared.
dog_p 0 vdi delete -s s1 d
expect_objects 5 "after deleting s1"
check_reads s3 w
b1=$(store_bytes)
((b1 <= b0 - 2 * M)) || fail "store bytes did not go down by 2 objects: $b0 -> $b1"

# The working VDI: only its own object 2 goes.
dog_p 0 vdi delete d
expect_objects 4 "after deleting the working VDI"
check_reads s3
out=$(dog_p 0 vdi read d 2>&1) && fail "deleted working VDI still reads"
assert_eq "Failed to open VDI d (snapshot id: 0 snapshot tag: ): No VDI found" "$out" "message for a deleted VDI"

# A clone of s3, then s3 (the clone's parent) is deleted: the clone keeps
# the objects it shares, and they go with it.
assert_exit 0 dog_p 0 vdi clone -s s3 d cl
cp "$SD_TMP/s3" "$SD_TMP/cl"
put cl 3 "$SD_TMP/cl"
expect_objects 5 "clone with one own object"
dog_p 0 vdi delete -s s3 d
expect_objects 4 "after deleting the clone's parent"
dog_p 1 vdi read cl | cmp -s - "$SD_TMP/cl" || fail "clone differs after its parent went"
dog_p 0 vdi delete cl
expect_objects 0 "after deleting the clone"

# The name can be created again and reads as zeros; an older hash chain
# member (tombstone) does not get in the way.
assert_exit 0 dog_p 0 vdi create -z 20 d 4M
dog_p 0 vdi read d | cmp -s - <(head -c 4M /dev/zero) || fail "re-created VDI is not zero"
assert_exit 0 dog_p 0 vdi delete d
assert_exit 0 dog_p 0 vdi create d 8M

# A plain VDI without snapshots: all of its objects go.
assert_exit 0 dog_p 0 vdi create -z 20 plain 6M
head -c 6M /dev/urandom | dog_p 0 vdi write plain
expect_objects 6 "plain VDI"
dog_p 0 vdi delete plain
expect_objects 0 "plain VDI deleted"

# A hyper volume beyond the flat limit: snapshot, clone and deletion work
# on its B-tree index the same way.
T=$((1 << 40))
assert_exit 0 dog_p 0 vdi create -y hv 6T
head -c 8M /dev/urandom >"$SD_TMP/hv"
dog_p 0 vdi write hv $((5 * T)) 8M <"$SD_TMP/hv"
dog_p 1 vdi write hv 0 4M <"$SD_TMP/hv"
assert_exit 0 dog_p 0 vdi snapshot -s h1 hv
head -c 4M /dev/urandom >"$SD_TMP/hv2"
dog_p 2 vdi write hv $((5 * T)) 4M <"$SD_TMP/hv2"
assert_exit 0 dog_p 0 vdi clone -s h1 hv hvc
expect_objects 4 "hyper volume, snapshot and clone"
dog_p 0 vdi delete -s h1 hv
expect_objects 4 "hyper snapshot deleted (all shared)"
dog_p 1 vdi read hvc $((5 * T)) 8M | cmp -s - "$SD_TMP/hv" || fail "hyper clone differs"
dog_p 1 vdi read hv $((5 * T)) 4M | cmp -s - "$SD_TMP/hv2" || fail "hyper volume differs"
dog_p 0 vdi delete hvc
expect_objects 3 "hyper clone deleted"
dog_p 0 vdi delete hv
expect_objects 0 "hyper volume deleted"

# ---- bad input: upstream's messages and exit codes, nothing changes ----
assert_exit 0 dog_p 0 vdi create -z 20 b 4M
head -c 4M /dev/urandom >"$SD_TMP/b"
dog_p 0 vdi write b <"$SD_TMP/b"
assert_exit 0 dog_p 0 vdi snapshot -s first b
before=$(dog_p 0 vdi list -r; data_files)

check_err() { # check_err CODE MESSAGE CMD...: exit code and last stderr line
	local want=$1 msg=$2 got=0 err
	shift 2
	err=$("$@" 2>&1 >/dev/null) || got=$?
	[[ $got -eq $want ]] || fail "'$*' exited with $got, expected $want ($err)"
	[[ $err == *"$msg"* ]] || fail "'$*': expected message '$msg', got '$err'"
}
check_err 1 "Failed to open VDI b (snapshot id: 7 snapshot tag: ): Failed to find requested tag" \
	dog_p 0 vdi read -s 7 b
check_err 1 "Failed to open VDI b (snapshot id: 0 snapshot tag: nosuch): Failed to find requested tag" \
	dog_p 0 vdi clone -s nosuch b x
check_err 1 "Failed to create snapshot for b, maybe snapshot id (0) or tag (first) is existed" \
	dog_p 0 vdi snapshot -s first b
check_err 64 "Please specify a non-integer value for a snapshot tag name" \
	dog_p 0 vdi snapshot -s 12 b
check_err 64 "Only snapshot VDIs can be cloned" dog_p 0 vdi clone b x
check_err 64 "Please specify the '-s' option" dog_p 0 vdi rollback b
check_err 64 "invalid option" dog_p 0 vdi resize -s first b 8M
check_err 64 "Shrinking VDIs is not implemented" dog_p 0 vdi resize b 2M
check_err 64 "New VDI size is too large" dog_p 0 vdi resize b 2T
check_err 64 "VDI size is larger than" dog_p 0 vdi create big 5T
check_err 1 "Failed to create VDI b: VDI exists already" dog_p 0 vdi create b 4M
long=$(printf 'n%.0s' $(seq 300))
check_err 64 "VDI name is too long" dog_p 0 vdi create "$long" 4M
check_err 64 "Snapshot tag is too long" dog_p 0 vdi snapshot -s "$long" b
check_err 1 "No VDI found" dog_p 0 vdi read "$long"
assert_eq "$before" "$(dog_p 0 vdi list -r; data_files)" "bad requests changed something"
dog_p 0 vdi read b | cmp -s - "$SD_TMP/b" || fail "b changed"
dog_p 0 vdi read -s first b | cmp -s - "$SD_TMP/b" || fail "snapshot of b changed"
for i in 0 1 2; do assert_alive "$i"; done
pass
