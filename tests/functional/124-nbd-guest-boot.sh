#!/usr/bin/env bash
# A Linux guest boots under qemu-system-x86_64 (TCG) with a VDI as its
# virtio disk over NBD: tests/tools/mkguest.sh builds Debian's cloud kernel
# and a busybox initramfs (cached by kernel version); the test writes a
# random pattern into the VDI with dog vdi write and passes its md5 and a
# random token on the kernel command line; the guest's /init reads the
# pattern from /dev/vda and says on the console whether it matched, writes a
# marker sector with the token into an object nobody wrote yet, syncs and
# powers off. QEMU exits 0, the console says "pattern ok", `dog vdi read`
# through another sheep shows the marker with the token, and the VDI's lock
# is gone once QEMU has exited.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

need_tools qemu-system-x86_64 dpkg-deb cpio nbdinfo
declare -F nbd_port >/dev/null || fail "lib.sh has no nbd_port: this tree has no NBD server"

# The kit (kernel + initramfs): 77 from mkguest.sh means no kernel can be
# had here (no apt lists, no mirror, nothing cached); it says why.
kit_rc=0
kit=$(bash "$SD_SOURCE_DIR/tests/tools/mkguest.sh") || kit_rc=$?
if ((kit_rc == 77)); then
	echo "SKIP: $SD_TEST_NAME: no guest kernel (see mkguest's reason above)"
	exit 77
fi
((kit_rc == 0)) || fail "tests/tools/mkguest.sh failed ($kit_rc)"
[[ -f $kit/vmlinuz && -f $kit/initrd.img ]] || fail "no kernel/initrd in '$kit'"

M=1048576
QEMU_TIMEOUT=${SD_GUEST_TIMEOUT:-300}

start_cluster 3
format_cluster 2
wait_nbd 0 1 2

assert_exit 0 dog_p 0 vdi create vm 64M
pat_off=$((6 * M + 4096))
pat_len=65536
head -c $pat_len /dev/urandom >"$SD_TMP/pattern"
dog_p 0 vdi write vm $pat_off $pat_len <"$SD_TMP/pattern" || fail "dog vdi write of the pattern failed"
pat_md5=$(md5sum <"$SD_TMP/pattern" | cut -d' ' -f1)
token=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
mark_off=$((33 * M + 512)) # object 8: not allocated before the guest writes

start=$(now_ms)
qemu_rc=0
setpriv --pdeathsig KILL timeout "$QEMU_TIMEOUT" \
	setpriv --pdeathsig KILL qemu-system-x86_64 -accel tcg -m 256M -nographic -no-reboot \
	-nic none -kernel "$kit/vmlinuz" -initrd "$kit/initrd.img" \
	-append "console=ttyS0 panic=-1 quiet sdtoken=$token sdmark_off=$mark_off sdpat_off=$pat_off sdpat_len=$pat_len sdpat_md5=$pat_md5" \
	-drive "file=nbd://127.0.0.1:$(nbd_port 1)/vm,format=raw,if=virtio,cache=none" \
	</dev/null >"$SD_TMP/console.log" 2>&1 || qemu_rc=$?
echo "guest ran for $(($(now_ms) - start)) ms (qemu exit $qemu_rc)"
console=$(tr -d '\r' <"$SD_TMP/console.log")
((qemu_rc == 0)) || fail "qemu exited with $qemu_rc; console: $(tail -30 <<<"$console")"
grep -q "SHEEPDOG-GUEST: modules loaded" <<<"$console" ||
	fail "the guest's /init did not run; console: $(tail -30 <<<"$console")"
grep -q "SHEEPDOG-GUEST: FAILED" <<<"$console" &&
	fail "the guest failed: $(grep SHEEPDOG-GUEST <<<"$console")"
grep -q "SHEEPDOG-GUEST: vda has $((64 * M / 512)) sectors" <<<"$console" ||
	fail "the guest's disk is not the 64 MiB VDI: $(grep SHEEPDOG-GUEST <<<"$console")"
grep -q "SHEEPDOG-GUEST: pattern ok" <<<"$console" ||
	fail "the guest did not read the pattern: $(grep SHEEPDOG-GUEST <<<"$console")"
grep -q "SHEEPDOG-GUEST: marker written" <<<"$console" ||
	fail "the guest did not write its marker: $(grep SHEEPDOG-GUEST <<<"$console")"

# The marker, read through another sheep than the one QEMU used.
{
	echo "SHEEPDOG-NBD-GUEST-OK $token"
	head -c 512 /dev/zero
} | head -c 512 >"$SD_TMP/marker"
dog_p 2 vdi read vm $mark_off 512 >"$SD_TMP/marker.read" || fail "dog vdi read of the marker failed"
cmp "$SD_TMP/marker" "$SD_TMP/marker.read" ||
	fail "no marker with token $token at $mark_off: '$(head -c 64 "$SD_TMP/marker.read" | tr -c '[:print:]' .)'"
dog_p 0 vdi read vm $pat_off $pat_len | cmp - "$SD_TMP/pattern" || fail "the guest changed the pattern"

# QEMU has exited: its lock is gone.
no_lock() { [[ -z $(dog_p 0 vdi lock list | awk '$1 == "vm"') ]]; }
wait_for "vm's lock to go after QEMU exited" no_lock
for i in 0 1 2; do assert_alive "$i"; done
pass
