#!/usr/bin/env bash
# A VM's disk survives storage nodes failing under it: fio writes through
# sheep 0's NBD server (4 sheep, copies=3) with crc32c verification while
# another sheep is killed with SIGKILL and later started again. fio sees no
# error, every block verifies, and after recovery a verify-only pass through
# the restarted sheep finds every block intact, with every object on exactly
# its holders.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

need_tools fio

M=1048576
SIZE=96
T=${SD_NBD_CLIENT_TIMEOUT:-300}
used_mib() { # allocated MiB of VDI vm, as sheep 0 lists it
	local b
	b=$(dog_p 0 vdi list -r vm | awk '$1 == "=" { print $5 }')
	echo $(((${b:-0}) / M))
}
used_at_least() { (($(used_mib) >= $1)); }

start_cluster 4
format_cluster 3
wait_nbd 0
assert_exit 0 dog_p 0 vdi create vm ${SIZE}M

# sequential, so that the allocated size tells how far fio got
job=(--name=nbd --ioengine=nbd --rw=write --verify=crc32c --size=${SIZE}M
	--bs=4k --iodepth=8 --randseed=126 --verify_state_save=0)
cd "$SD_TMP" # fio leaves files in the working directory
setpriv --pdeathsig KILL timeout "$T" fio "${job[@]}" --uri="$(nbd_uri 0 vm)" \
	>"$SD_TMP/fio1.out" 2>&1 &
fio_pid=$!

wait_for "fio to allocate 16 MiB" used_at_least 16
kill_sheep 2 KILL
echo "sheep 2 killed at $(used_mib) MiB allocated"
wait_for "fio to allocate 48 MiB with sheep 2 down" used_at_least 48
start_sheep 2
wait_for_sheep 2
echo "sheep 2 back at $(used_mib) MiB allocated"

status=0
wait "$fio_pid" || status=$?
((status == 0)) || fail "fio exited $status across the failure: $(tail -20 "$SD_TMP/fio1.out")"
grep -q "err= 0" "$SD_TMP/fio1.out" || fail "fio reported errors: $(cat "$SD_TMP/fio1.out")"

wait_placed 0 4
timeout "$T" fio "${job[@]}" --verify_only --uri="$(nbd_uri 2 vm)" >"$SD_TMP/fio2.out" 2>&1 ||
	fail "verify-only pass through the restarted sheep failed: $(tail -20 "$SD_TMP/fio2.out")"
{ grep -q "err= 0" "$SD_TMP/fio2.out" && grep -q "READ: .*io=${SIZE}.0MiB" "$SD_TMP/fio2.out"; } ||
	fail "the verify-only pass did not read and verify ${SIZE} MiB: $(cat "$SD_TMP/fio2.out")"
for i in 0 1 2 3; do assert_alive $i; done

pass
