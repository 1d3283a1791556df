#!/usr/bin/env bash
# A store that fails under the daemons: each sheep's object directory is a
# small tmpfs. (a) When the stores fill up, dog vdi write fails with "Server
# has no space for new objects", the daemons keep answering, what was written
# before reads back unchanged, and deleting a VDI makes room again. (b) When
# one node's store turns read-only, writes that touch it fail promptly with an
# error while reads still return the right bytes, and writes work again once
# the store is writable.
#
# Needs root (mount). The test runs in a private mount namespace, so that its
# mounts vanish with it even if it is killed; it unmounts them itself too.

if [[ -z ${SD_MOUNT_NS:-} ]]; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "SKIP: $(basename "$0"): needs root to mount tmpfs" >&2
		exit 77
	fi
	SD_MOUNT_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi

# A write that hangs instead of failing must not hold the test for a minute.
SD_DOG_TIMEOUT=${SD_DOG_TIMEOUT:-20}
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

declare -a MOUNTS=()

# The harness removes SD_TMP when it exits, so the tmpfs must be gone by then,
# and it can only go once the sheep that use it have stopped: stop them here
# (SIGTERM, as the harness does; it still judges how they stopped), unmount,
# then let the harness finish.
store_cleanup() {
	local rc=$? pid m
	set +e
	trap - EXIT
	for pid in "${SD_PIDS[@]}"; do
		pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${SD_PIDS[@]}"; do
		wait_exit "$pid" 10
	done
	for m in "${MOUNTS[@]}"; do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	(exit "$rc")
	sd_cleanup
}
trap store_cleanup EXIT

# mount_store IDX: a 48 MiB tmpfs as the object directory of sheep IDX.
mount_store() {
	local dir
	dir=$(node_dir "$1")/obj
	mkdir -p "$dir"
	mount -t tmpfs -o size=48m tmpfs "$dir" || fail "cannot mount a tmpfs on $dir"
	MOUNTS+=("$dir")
}

# capture CMD...: stdout in $SD_TMP/out, stderr in ERR, exit status in RC.
capture() {
	RC=0
	"$@" >"$SD_TMP/out" 2>"$SD_TMP/err" || RC=$?
	ERR=$(<"$SD_TMP/err")
}

# expect_write_error WHAT: the last capture was a write that failed, promptly
# (not killed by the timeout), with a message.
expect_write_error() {
	((RC != 0)) || fail "$1: succeeded"
	((RC != 124)) || fail "$1: hung (killed after ${SD_DOG_TIMEOUT}s)"
	[[ -n $ERR ]] || fail "$1: exit status $RC without a message"
}

all_alive() {
	local i
	for i in 0 1 2; do
		assert_alive "$i"
	done
}

# same_bytes FILE IDX VDI OFFSET LEN: sheep IDX reads back FILE from VDI.
same_bytes() {
	dog_p "$2" vdi read "$3" "$4" "$5" >"$SD_TMP/back" ||
		fail "vdi read $3 $4 $5 via sheep $2 failed"
	cmp -s "$1" "$SD_TMP/back" ||
		fail "vdi read $3 $4 $5 via sheep $2 returns other bytes than were written"
}

no_tmp_files() {
	local i
	for i in 0 1 2; do
		[[ -z $(find "$(node_dir "$i")/obj" -name '*.tmp*' -print -quit) ]] || return 1
	done
}

# vid_prefix NAME: the file-name prefix of the data objects of VDI NAME
# (00, then the VDI id: FNV-1a 64 of the name, low 24 bits, spec 4.2).
vid_prefix() {
	python3 -c '
import sys
h = 0xcbf29ce484222325
for b in sys.argv[1].encode():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print("00%06x" % ((h & 0xffffff) or 1))' "$1"
}

vid_objects_gone() { # NAME: no data object of VDI NAME is left on any node
	local prefix i
	prefix=$(vid_prefix "$1")
	for i in 0 1 2; do
		[[ -z $(find "$(node_dir "$i")/obj" -maxdepth 1 -name "$prefix*" -print -quit) ]] ||
			return 1
	done
}

mib=$((1 << 20))
for i in 0 1 2; do
	mount_store "$i"
done
start_cluster 3
format_cluster 3

# --- (b) A read-only store. -------------------------------------------------

head -c $((12 * mib)) /dev/urandom >"$SD_TMP/r"
dog_p 0 vdi create r 40M || fail "vdi create r failed"
dog_p 0 vdi write r 0 $((12 * mib)) <"$SD_TMP/r" || fail "vdi write r failed"

ro_dir=$(node_dir 1)/obj
mount -o remount,ro "$ro_dir" || fail "cannot remount $ro_dir read-only"

# Every object has a copy on sheep 1: a new object, an overwrite and a new
# VDI all fail, through any gateway.
head -c $((4 * mib)) /dev/urandom >"$SD_TMP/x"
capture dog_p 0 vdi write r $((12 * mib)) $((4 * mib)) <"$SD_TMP/x"
expect_write_error "vdi write of a new object with a read-only store"
capture dog_p 1 vdi write r $((8 * mib + 4096)) 4096 <"$SD_TMP/x"
expect_write_error "vdi overwrite with a read-only store"
capture dog_p 2 vdi create r2 10M
expect_write_error "vdi create with a read-only store"
all_alive

# Reads are not affected (objects 0 and 1 were not written to since).
for i in 0 1 2; do
	same_bytes <(head -c $((8 * mib)) "$SD_TMP/r") "$i" r 0 $((8 * mib))
done
capture dog_p 1 vdi list -r r
((RC == 0)) || fail "vdi list with a read-only store: $ERR"

# Writable again: the same writes succeed and read back.
mount -o remount,rw "$ro_dir" || fail "cannot remount $ro_dir read-write"
head -c $((4 * mib)) /dev/urandom >"$SD_TMP/r2"
dog_p 1 vdi write r $((8 * mib)) $((4 * mib)) <"$SD_TMP/r2" ||
	fail "vdi overwrite after remounting read-write failed"
dog_p 0 vdi write r $((12 * mib)) $((4 * mib)) <"$SD_TMP/x" ||
	fail "vdi write of a new object after remounting read-write failed"
dog_p 2 vdi create r2 10M || fail "vdi create r2 after remounting read-write failed"
{
	head -c $((8 * mib)) "$SD_TMP/r"
	cat "$SD_TMP/r2" "$SD_TMP/x"
} >"$SD_TMP/r_all"
for i in 0 1 2; do
	same_bytes "$SD_TMP/r_all" "$i" r 0 $((16 * mib))
done
all_alive

# Every object of r is indexed now, so deleting it empties the stores.
for v in r r2; do
	dog_p 0 vdi delete "$v" || fail "vdi delete $v failed"
done
wait_for "the objects of r to go" vid_objects_gone r

# --- (a) Full stores. ------------------------------------------------------

# Of each 48 MiB store (three copies: everything is on every node), keep
# takes 8 MiB and filler 16 MiB.
head -c $((8 * mib)) /dev/urandom >"$SD_TMP/keep"
dog_p 0 vdi create keep 100M || fail "vdi create keep failed"
dog_p 0 vdi write keep 0 $((8 * mib)) <"$SD_TMP/keep" || fail "vdi write keep failed"
dog_p 0 vdi create filler 100M || fail "vdi create filler failed"
head -c $((16 * mib)) /dev/urandom | dog_p 0 vdi write filler 0 $((16 * mib)) ||
	fail "vdi write filler failed"

# Another 60 MiB does not fit.
dog_p 1 vdi create b 100M || fail "vdi create b failed"
head -c $((60 * mib)) /dev/urandom >"$SD_TMP/b"
capture dog_p 1 vdi write b <"$SD_TMP/b"
expect_write_error "vdi write of 60 MiB into full stores"
[[ $ERR == *"Server has no space for new objects"* ]] ||
	fail "vdi write into full stores says: $ERR"
all_alive
# A failed create leaves no half-written object file behind.
wait_for "no temporary object files" no_tmp_files

for i in 0 1 2; do
	same_bytes "$SD_TMP/keep" "$i" keep 0 $((8 * mib))
done

# The objects of b that reached all three stores were written whole, so
# they are in b's index and go with it. (A create that failed on one store
# leaves its copies on the others: no index slot points at them, so, as
# upstream, nothing reclaims them.)
b_vid=$(vid_prefix b)
mapfile -t b_whole < <(
	for i in 0 1 2; do
		(cd "$(node_dir "$i")/obj" && ls -1 -- "$b_vid"*) 2>/dev/null
	done | sort | uniq -c | awk '$1 == 3 { print $2 }'
)
whole_objects_gone() {
	local o i
	for o in "${b_whole[@]}"; do
		for i in 0 1 2; do
			[[ ! -e $(node_dir "$i")/obj/$o ]] || return 1
		done
	done
}
for v in b filler; do
	dog_p 2 vdi delete "$v" 2>"$SD_TMP/err" ||
		fail "vdi delete $v failed: $(<"$SD_TMP/err")"
done
wait_for "the whole objects of b to go" whole_objects_gone
wait_for "the objects of filler to go" vid_objects_gone filler

# With filler gone there is room again: keep grows by 8 MiB and a new VDI
# takes 4 MiB, through every gateway.
head -c $((8 * mib)) /dev/urandom >"$SD_TMP/keep2"
dog_p 1 vdi write keep $((8 * mib)) $((8 * mib)) <"$SD_TMP/keep2" ||
	fail "vdi write after deleting VDIs failed"
cat "$SD_TMP/keep" "$SD_TMP/keep2" >"$SD_TMP/keep_all"
dog_p 2 vdi create c 8M || fail "vdi create c after deleting VDIs failed"
head -c $((4 * mib)) /dev/urandom >"$SD_TMP/c"
dog_p 2 vdi write c 0 $((4 * mib)) <"$SD_TMP/c" || fail "vdi write c failed"
for i in 0 1 2; do
	same_bytes "$SD_TMP/keep_all" "$i" keep 0 $((16 * mib))
	same_bytes "$SD_TMP/c" "$i" c 0 $((4 * mib))
done
all_alive

pass
