#!/usr/bin/env bash
# NBD on a hyper volume (B-tree index) and snapshots taken under a writer:
#   - a 5 TiB hyper volume: writes far past the flat limit land where they
#     were written, read back through another sheep and with dog vdi read,
#     and base:allocation shows data only there;
#   - TRIM and WRITE_ZEROES of whole objects release them (holes again in
#     the map, and reads give zeros) on flat and hyper volumes alike;
#   - a writer keeps writing while dog vdi snapshot is taken three times:
#     each snapshot holds exactly what was written before it, the working
#     VDI holds everything, and the writer never sees an error.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

need_tools qemu-io nbdinfo python3
need_python_nbd

M=1048576
T=${SD_NBD_CLIENT_TIMEOUT:-120}
qio() { # qio SHEEP EXPORT COMMAND...
	local node=$1 exp=$2
	shift 2
	local args=()
	for c in "$@"; do args+=(-c "$c"); done
	timeout "$T" qemu-io -f raw "${args[@]}" "$(nbd_uri "$node" "$exp")"
}
# data extents of an export as "offset length" lines, adjacent ones merged
data_map() {
	timeout "$T" nbdinfo --map --json "$(nbd_uri "$1" "$2")" | python3 -c '
import json, sys
out = []
for e in json.load(sys.stdin):
    if e["type"] & 1:
        continue
    if out and out[-1][0] + out[-1][1] == e["offset"]:
        out[-1][1] += e["length"]
    else:
        out.append([e["offset"], e["length"]])
for o, l in out:
    print(o, l)'
}

start_cluster 3
format_cluster 2
wait_nbd 0 1 2

# ---- a hyper volume ----
T4=$((4 << 40))
FAR=$((T4 + 512 * 1024 * M)) # 4.5 TiB: past what a flat index can address
assert_exit 0 dog_p 0 vdi create -y big 5T
qio 0 big "write -P 0x5c $FAR $((2 * M))" "write -P 0x3a 0 $M" >/dev/null ||
	fail "qemu-io writes to the hyper volume failed"
qio 1 big "read -P 0x5c $FAR $((2 * M))" "read -P 0x3a 0 $M" \
	"read -P 0 $((FAR - M)) $M" >"$SD_TMP/qio.out" ||
	fail "hyper volume reads through sheep 1: $(cat "$SD_TMP/qio.out")"
grep -q "Pattern verification failed" "$SD_TMP/qio.out" &&
	fail "hyper volume data differs: $(cat "$SD_TMP/qio.out")"
dog_p 2 vdi read big $FAR $M | cmp -s - <(head -c $M /dev/zero | tr '\0' '\134') ||
	fail "dog vdi read of the far hyper region differs"
assert_eq "0 4194304
$FAR 4194304" "$(data_map 2 big)" "hyper volume allocation map"

# whole objects trimmed / zeroed: holes again
qio 0 big "discard $FAR $((4 * M))" >/dev/null || fail "trim on the hyper volume failed"
assert_eq "0 4194304" "$(data_map 1 big)" "hyper map after trimming the far object"
qio 2 big "read -P 0 $FAR $((4 * M))" | grep -q "Pattern verification failed" &&
	fail "a trimmed hyper object does not read as zeros"

assert_exit 0 dog_p 0 vdi create flat 64M
qio 0 flat "write -P 0x11 0 $((16 * M))" >/dev/null || fail "flat write failed"
qio 1 flat "write -z -u $((4 * M)) $((8 * M))" >/dev/null || fail "write zeroes (unmap) failed"
assert_eq "0 4194304
$((12 * M)) 4194304" "$(data_map 2 flat)" "flat map after zeroing two whole objects"
qio 2 flat "read -P 0x11 0 $((4 * M))" "read -P 0 $((4 * M)) $((8 * M))" \
	"read -P 0x11 $((12 * M)) $((4 * M))" | grep -q "Pattern verification failed" &&
	fail "flat VDI after write zeroes reads wrong"
for idx in 1 2; do
	dog_p 0 vdi object location -i $idx flat | grep -q "not allocated" ||
		fail "zeroed object $idx of flat is still allocated"
done

# ---- snapshots under a writer ----
assert_exit 0 dog_p 0 vdi create live 32M
"$PY" - "$(nbd_uri 1 live)" "$SD_TMP" "$DOG" "$(port_of 2)" <<'PY' || fail "the writer failed"
import nbd, subprocess, sys
uri, tmp, dog, port = sys.argv[1:5]
M = 1 << 20
h = nbd.NBD()
h.connect_uri(uri)
img = bytearray(32 * M)
def write(off, byte, n):
    data = bytes([byte]) * n
    h.pwrite(data, off)
    img[off:off + n] = data
for snap in range(3):
    # scattered writes, some into objects the last snapshot froze
    for k in range(8):
        write((k * 4 + snap) * M + snap * 8192, 0x40 + snap * 8 + k, 64 * 1024)
    open("%s/snap%d" % (tmp, snap), "wb").write(img)
    subprocess.run([dog, "vdi", "snapshot", "-s", "s%d" % snap, "live",
                    "-p", port], check=True)
for k in range(8):
    write(k * 4 * M + 3 * M, 0x7f, 128 * 1024)
open("%s/final" % tmp, "wb").write(img)
h.shutdown()
PY
for s in 0 1 2; do
	dog_p 0 vdi read -s "s$s" live | cmp -s - "$SD_TMP/snap$s" ||
		fail "snapshot s$s does not hold what was written before it"
done
dog_p 2 vdi read live | cmp -s - "$SD_TMP/final" || fail "the working VDI after the snapshots differs"
wait_for "the writer's lock to go" bash -c "! '$DOG' vdi lock list -p $(port_of 0) | grep -qw live"
for i in 0 1 2; do assert_alive $i; done

pass
