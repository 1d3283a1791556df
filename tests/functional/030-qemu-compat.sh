#!/usr/bin/env bash
# The requests QEMU's sheepdog driver sends (spec 16), byte for byte in
# QEMU's shapes, and the node and cluster queries of upstream dog, work
# against a 3-node cluster: proto_ver 0x01 VDI lookups and locks with a
# 512-byte name+tag payload, proto_ver 0x00 object I/O with the CACHE flag,
# the inode read as 4,198,968 and 4,664 bytes, a new data object created
# with a partial write and linked by a 4-byte index-slot write (visible to
# `dog vdi read`), discard by a zero slot write (the object files leave every
# store), copy-on-write creation, vmstate objects, RELEASE_VDI with the name
# as payload, FLUSH_VDI, READ_VDIS, GET_CLUSTER_DEFAULT, 16 reads pipelined
# on one connection and a mixed read/write pipeline, then GET_NODE_LIST,
# STAT_CLUSTER with stride 0 and CLUSTER_INFO.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

SDPROTO_DIR=$SD_SOURCE_DIR/tests/functional
MiB=$((1 << 20))

start_cluster 3
format_cluster 3
assert_exit 0 dog_p 0 vdi create qemu 64M

# The expected content of the whole VDI: 16 MiB of known data (objects
# 0..3), zeros after. Steps that write update it.
image=$SD_TMP/image
python3 -c 'import random, sys; r = random.Random(3030)
sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(16 << 20)) + bytes(48 << 20))' >"$image"
head -c 16M "$image" | dog_p 1 vdi write qemu 0 16M || fail "vdi write failed"
vid=$(dog_p 0 vdi list -r qemu | awk '{print $8}')
[[ $vid =~ ^[0-9a-f]+$ ]] || fail "no vid for VDI qemu: '$vid'"

cat >"$SD_TMP/qemu.py" <<'PY'
import os
import random
import struct
import sys

sys.path.insert(0, os.environ["SDPROTO_DIR"])
import sdproto as sd

PORTS = [int(p) for p in os.environ["PORTS"].split(",")]
VID = int(os.environ["VID"], 16)
IMAGE = os.environ["IMAGE"]
OBJ = 4 << 20
INODE = sd.vdi_oid(VID)
CACHE = sd.FLAG_CACHE          # QEMU's default cache_flags
STEP_PATTERN = bytes((i * 7 + 3) & 0xff for i in range(4096))


def check(rsp, result, what, req_id=None):
    sd.expect(rsp, result, what)
    if req_id is not None and rsp.id != req_id:
        raise AssertionError("%s: reply id %#x, sent %#x" % (what, rsp.id, req_id))


def image_read(off, length):
    with open(IMAGE, "rb") as f:
        f.seek(off)
        return f.read(length)


def image_write(off, data):
    with open(IMAGE, "r+b") as f:
        f.seek(off)
        f.write(data)


# QEMU's request shapes (block/sheepdog.c): headers memset to zero, I/O with
# proto_ver 0 and copies = inode.nr_copies (0 when reading the inode).

def qemu_read(c, oid, length, offset=0, copies=3, flags=CACHE, req_id=None):
    return c.request(sd.Request(sd.OP_READ_OBJ, proto_ver=0, flags=flags,
                                data_length=length,
                                body=sd.obj_body(oid, copies=copies, offset=offset)),
                     req_id)


def qemu_write(c, oid, data, offset, create=False, cow_oid=0, copies=3):
    flags = sd.FLAG_WRITE | CACHE | (sd.FLAG_COW if cow_oid else 0)
    op = sd.OP_CREATE_AND_WRITE_OBJ if create else sd.OP_WRITE_OBJ
    return c.request(sd.Request(op, data, proto_ver=0, flags=flags,
                                body=sd.obj_body(oid, cow_oid=cow_oid,
                                                 copies=copies, offset=offset)))


def qemu_find_vdi(c, name, lock=False, snapid=0, tag=""):
    op = sd.OP_LOCK_VDI if lock else sd.OP_GET_VDI_INFO
    return c.request(sd.Request(op, sd.vdi_name_payload(name, tag),
                                proto_ver=0x01, flags=sd.FLAG_WRITE,
                                body=sd.vdi_body(snapid=snapid)))


def step_lookup(c):
    for lock in (False, True):
        what = "LOCK_VDI" if lock else "GET_VDI_INFO"
        rsp, _ = qemu_find_vdi(c, "qemu", lock)
        check(rsp, sd.RES_SUCCESS, what)
        if rsp.u32(24) != VID:
            raise AssertionError("%s: vdi_id %x at bytes 24..27, dog says %x"
                                 % (what, rsp.u32(24), VID))
        if (rsp.u8(32), rsp.u8(33)) != (3, 22):
            raise AssertionError("%s: copies %d shift %d" % (what, rsp.u8(32), rsp.u8(33)))
        if rsp.proto_ver != 0 or rsp.opcode != (0x12 if lock else 0x14):
            raise AssertionError("%s: reply header %r" % (what, rsp.raw[:4]))
    # dog's form, the name alone
    rsp, _ = c.request(sd.Request(sd.OP_GET_VDI_INFO,
                                  sd.vdi_name_payload("qemu", with_tag=False)))
    check(rsp, sd.RES_SUCCESS, "GET_VDI_INFO, 256 bytes")
    if rsp.vdi_id != VID:
        raise AssertionError("GET_VDI_INFO, 256 bytes: vid %x" % rsp.vdi_id)
    rsp, _ = qemu_find_vdi(c, "no-such-vdi")
    check(rsp, sd.RES_NO_VDI, "GET_VDI_INFO of a missing name")
    print(VID)


def step_read_inode(c):
    rsp, big = qemu_read(c, INODE, sd.INODE_QEMU_READ, copies=0, flags=0)
    check(rsp, sd.RES_SUCCESS, "READ_OBJ inode, 4198968 bytes")
    if rsp.data_length != sd.INODE_QEMU_READ or len(big) != sd.INODE_QEMU_READ:
        raise AssertionError("inode read returned %d bytes" % rsp.data_length)
    rsp, hdr = qemu_read(c, INODE, sd.INODE_HEADER_SIZE, copies=0)
    check(rsp, sd.RES_SUCCESS, "READ_OBJ inode, 4664 bytes")
    if hdr != big[:sd.INODE_HEADER_SIZE]:
        raise AssertionError("the 4664-byte header differs from the big read")
    if hdr[:256] != b"qemu".ljust(256, b"\0"):
        raise AssertionError("inode name: %r" % hdr[:16])
    got = (struct.unpack_from("<Q", hdr, 536)[0], struct.unpack_from("<I", hdr, 560)[0],
           hdr[554], hdr[555], hdr[553])
    if got != (64 << 20, VID, 3, 22, 0):
        raise AssertionError("inode vdi_size/vdi_id/copies/shift/store_policy: %r" % (got,))
    slots = struct.unpack_from("<16I", big, sd.INODE_DATA_VDI_ID)
    if slots != (VID,) * 4 + (0,) * 12:
        raise AssertionError("inode index: %r" % (slots,))
    if big[sd.INODE_DATA_VDI_ID + 64:] != bytes(len(big) - sd.INODE_DATA_VDI_ID - 64):
        raise AssertionError("inode index beyond slot 15 is not zero")


def slot_write(c, idx, value):
    rsp, _ = qemu_write(c, INODE, struct.pack("<I", value),
                        sd.INODE_DATA_VDI_ID + 4 * idx)
    check(rsp, sd.RES_SUCCESS, "WRITE_OBJ inode slot %d = %x" % (idx, value))


def step_create_data(c):
    oid = sd.data_oid(VID, 5)
    rsp, _ = qemu_write(c, oid, STEP_PATTERN, 8192, create=True)
    check(rsp, sd.RES_SUCCESS, "CREATE_AND_WRITE_OBJ idx 5")
    slot_write(c, 5, VID)
    rsp, data = qemu_read(c, oid, OBJ)
    check(rsp, sd.RES_SUCCESS, "READ_OBJ idx 5")
    want = bytes(8192) + STEP_PATTERN + bytes(OBJ - 8192 - 4096)
    if data != want:
        raise AssertionError("object 5 is not zeros around the data at 8192")
    rsp, data = qemu_read(c, INODE, 4, offset=sd.INODE_DATA_VDI_ID + 20, copies=0)
    check(rsp, sd.RES_SUCCESS, "READ_OBJ inode slot 5")
    if data != struct.pack("<I", VID):
        raise AssertionError("slot 5 reads back %r" % data)
    image_write(5 * OBJ + 8192, STEP_PATTERN)


def step_discard(c):
    slot_write(c, 5, 0)   # QEMU's discard: a 4-byte zero write to the slot
    image_write(5 * OBJ, bytes(OBJ))


def step_discarded(c):
    rsp, _ = qemu_read(c, sd.data_oid(VID, 5), 4096)
    check(rsp, sd.RES_NO_OBJ, "READ_OBJ of the discarded object")
    rsp, data = qemu_read(c, INODE, 4, offset=sd.INODE_DATA_VDI_ID + 20, copies=0)
    check(rsp, sd.RES_SUCCESS, "READ_OBJ inode slot 5")
    if data != bytes(4):
        raise AssertionError("slot 5 after discard: %r" % data)


def step_cow(c):
    # Copy-on-write from object 0 into a new object 6, then link it.
    oid = sd.data_oid(VID, 6)
    rsp, _ = qemu_write(c, oid, STEP_PATTERN, 4096, create=True,
                        cow_oid=sd.data_oid(VID, 0))
    check(rsp, sd.RES_SUCCESS, "CREATE_AND_WRITE_OBJ idx 6 with COW from idx 0")
    slot_write(c, 6, VID)
    want = bytearray(image_read(0, OBJ))
    want[4096:8192] = STEP_PATTERN
    rsp, data = qemu_read(c, oid, OBJ)
    check(rsp, sd.RES_SUCCESS, "READ_OBJ idx 6")
    if data != want:
        raise AssertionError("object 6 is not object 0 with the COW overlay")
    image_write(6 * OBJ, bytes(want))


def step_vmstate(c):
    # do_load_save_vm_state: create when offset == 0, write after.
    oid = sd.vmstate_oid(VID, 0)
    first, second = b"\x51" * 4096, b"\x52" * 4096
    rsp, _ = qemu_write(c, oid, first, 0, create=True)
    check(rsp, sd.RES_SUCCESS, "CREATE_AND_WRITE_OBJ vmstate at offset 0")
    rsp, _ = qemu_write(c, oid, second, 4096)
    check(rsp, sd.RES_SUCCESS, "WRITE_OBJ vmstate at offset 4096")
    rsp, data = qemu_read(c, oid, 3 * 4096)
    check(rsp, sd.RES_SUCCESS, "READ_OBJ vmstate")
    if data != first + second + bytes(4096):
        raise AssertionError("vmstate object reads back different data")
    print("%016x" % oid)


def step_pipeline(c):
    # 16 reads of 64 KiB in objects 0..3, one write, ids in no order.
    rng = random.Random(16)
    ids = rng.sample(range(1, 0xfffffffe), 14) + [0, 0xffffffff]
    offsets = rng.sample(range(0, 16 << 20, 64 << 10), 16)
    wire = b"".join(
        sd.Request(sd.OP_READ_OBJ, proto_ver=0, flags=CACHE, data_length=64 << 10,
                   body=sd.obj_body(sd.data_oid(VID, off // OBJ), copies=3,
                                    offset=off % OBJ)).wire(rid)
        for rid, off in zip(ids, offsets))
    c.send(wire)
    want = dict(zip(ids, offsets))
    while want:
        rsp, data = c.recv_reply()
        if rsp.id not in want:
            raise AssertionError("reply to unknown or answered id %#x" % rsp.id)
        check(rsp, sd.RES_SUCCESS, "pipelined READ_OBJ %#x" % rsp.id)
        if data != image_read(want.pop(rsp.id), 64 << 10):
            raise AssertionError("pipelined read %#x returned other data" % rsp.id)

    # QEMU mixes: 8 writes into object 2 and 8 reads of object 0, at once.
    reqs, expect_read = [], {}
    for i in range(8):
        data = bytes([0x60 + i]) * 8192
        off = i * 300000
        reqs.append((0x1000 + i, sd.Request(
            sd.OP_WRITE_OBJ, data, proto_ver=0, flags=sd.FLAG_WRITE | CACHE,
            body=sd.obj_body(sd.data_oid(VID, 2), copies=3, offset=off))))
        image_write(2 * OBJ + off, data)
        roff = i * 500000
        reqs.append((0x2000 + i, sd.Request(
            sd.OP_READ_OBJ, proto_ver=0, flags=CACHE, data_length=4096,
            body=sd.obj_body(sd.data_oid(VID, 0), copies=3, offset=roff))))
        expect_read[0x2000 + i] = image_read(roff, 4096)
    c.send(b"".join(r.wire(rid) for rid, r in reqs))
    pending = {rid for rid, _ in reqs}
    while pending:
        rsp, data = c.recv_reply()
        if rsp.id not in pending:
            raise AssertionError("mixed pipeline: reply to id %#x" % rsp.id)
        pending.discard(rsp.id)
        check(rsp, sd.RES_SUCCESS, "mixed pipeline id %#x" % rsp.id)
        if rsp.id in expect_read and data != expect_read[rsp.id]:
            raise AssertionError("mixed pipeline read %#x: other data" % rsp.id)
    rsp, data = qemu_read(c, sd.data_oid(VID, 2), OBJ)
    check(rsp, sd.RES_SUCCESS, "READ_OBJ object 2 after the pipeline")
    if data != image_read(2 * OBJ, OBJ):
        raise AssertionError("object 2 after the pipelined writes differs")


def step_misc(c):
    # sd_close: RELEASE_VDI, the name (strlen + 1) as payload
    rsp, _ = c.request(sd.Request(sd.OP_RELEASE_VDI, b"qemu\0", proto_ver=0,
                                  flags=sd.FLAG_WRITE,
                                  body=sd.vdi_body(base_vdi_id=VID, lock_type=0)))
    check(rsp, sd.RES_SUCCESS, "RELEASE_VDI")
    rsp, _ = c.request(sd.Request(sd.OP_FLUSH_VDI, proto_ver=0,
                                  body=sd.obj_body(INODE)))
    check(rsp, sd.RES_SUCCESS, "FLUSH_VDI")
    rsp, bitmap = c.request(sd.Request(sd.OP_READ_VDIS, proto_ver=0,
                                       data_length=sd.VDI_BITMAP_SIZE))
    check(rsp, sd.RES_SUCCESS, "READ_VDIS")
    if len(bitmap) != sd.VDI_BITMAP_SIZE:
        raise AssertionError("READ_VDIS returned %d bytes" % len(bitmap))
    if not bitmap[VID >> 3] & (1 << (VID & 7)):
        raise AssertionError("READ_VDIS: bit %x is clear" % VID)
    if sum(bin(b).count("1") for b in bitmap) != 1:
        raise AssertionError("READ_VDIS: more than one bit set")
    rsp, _ = c.request(sd.Request(sd.OP_GET_CLUSTER_DEFAULT, proto_ver=0x01))
    check(rsp, sd.RES_SUCCESS, "GET_CLUSTER_DEFAULT")
    if (rsp.u8(20), rsp.u8(21), rsp.u8(22)) != (3, 0, 22):
        raise AssertionError("GET_CLUSTER_DEFAULT: copies %d policy %d shift %d"
                             % (rsp.u8(20), rsp.u8(21), rsp.u8(22)))


def check_node_entry(e, what):
    if e[:24] != bytes(24):
        raise AssertionError("%s: bytes 0..23 are not zero" % what)
    if e[24:40] != bytes(12) + bytes([127, 0, 0, 1]):
        raise AssertionError("%s: address %s" % (what, e[24:40].hex()))
    return struct.unpack_from("<H", e, 40)[0]


def step_dog_queries(c):
    rsp, nodes = c.request(sd.Request(sd.OP_GET_NODE_LIST, proto_ver=0x0a,
                                      data_length=6144 * 80))
    check(rsp, sd.RES_SUCCESS, "GET_NODE_LIST")
    if rsp.u32(20) != 3 or rsp.data_length != 3 * 80:
        raise AssertionError("GET_NODE_LIST: nr_nodes %d, %d bytes"
                             % (rsp.u32(20), rsp.data_length))
    ports = [check_node_entry(nodes[i * 80:(i + 1) * 80], "node %d" % i)
             for i in range(3)]
    if ports != sorted(PORTS):
        raise AssertionError("GET_NODE_LIST ports %r, want %r" % (ports, sorted(PORTS)))
    epoch = rsp.epoch

    rsp, logs = c.request(sd.Request(sd.OP_STAT_CLUSTER, proto_ver=0x0a,
                                     data_length=48,
                                     body=sd.cluster_body(nodes_nr=0)))
    check(rsp, sd.RES_SUCCESS, "STAT_CLUSTER, stride 0")
    if rsp.data_length != 48:
        raise AssertionError("STAT_CLUSTER: %d bytes" % rsp.data_length)
    ctime, _, e, nr = struct.unpack_from("<QQII", logs, 0)
    if (e, nr, logs[25], logs[26]) != (epoch, 3, 3, 0) or not ctime:
        raise AssertionError("STAT_CLUSTER record: epoch %d nodes %d copies %d "
                             "policy %d ctime %x" % (e, nr, logs[25], logs[26], ctime))
    if logs[32:48].rstrip(b"\0") != b"plain":
        raise AssertionError("STAT_CLUSTER store %r" % logs[32:48])
    # More room: one record per epoch, newest first.
    rsp, logs = c.request(sd.Request(sd.OP_STAT_CLUSTER, proto_ver=0x0a,
                                     data_length=48 * 64,
                                     body=sd.cluster_body(nodes_nr=0)))
    check(rsp, sd.RES_SUCCESS, "STAT_CLUSTER, 64 records")
    epochs = [struct.unpack_from("<I", logs, i + 16)[0]
              for i in range(0, rsp.data_length, 48)]
    if epochs != list(range(epoch, 0, -1)):
        raise AssertionError("STAT_CLUSTER epochs %r" % epochs)

    rsp, ci = c.request(sd.Request(sd.OP_CLUSTER_INFO, proto_ver=0x0a,
                                   data_length=sd.CLUSTER_INFO_SIZE))
    check(rsp, sd.RES_SUCCESS, "CLUSTER_INFO")
    if not 48 + 3 * 80 <= rsp.data_length <= sd.CLUSTER_INFO_SIZE:
        raise AssertionError("CLUSTER_INFO: %d bytes" % rsp.data_length)
    fields = (ci[0], struct.unpack_from("<h", ci, 2)[0],
              struct.unpack_from("<I", ci, 4)[0], struct.unpack_from("<Q", ci, 8)[0],
              ci[18], ci[19], ci[20], ci[21], ci[25:41].rstrip(b"\0"))
    if fields != (0x0a, 3, epoch, ctime, 3, 0, 1, 22, b"plain"):
        raise AssertionError("CLUSTER_INFO fields %r" % (fields,))
    if ci[48:48 + 240] != nodes:
        raise AssertionError("CLUSTER_INFO nodes differ from GET_NODE_LIST")


if __name__ == "__main__":
    step, port = sys.argv[1], int(sys.argv[2])
    with sd.Conn(port, timeout=20) as conn:
        globals()["step_" + step](conn)
PY

export SDPROTO_DIR VID=$vid IMAGE=$image
PORTS=$(port_of 0),$(port_of 1),$(port_of 2)
export PORTS

# step NAME IDX: run one step through sheep IDX; its output on stdout.
step() {
	local out
	out=$(timeout 120 python3 "$SD_TMP/qemu.py" "$1" "$(port_of "$2")" 2>&1) ||
		fail "step $1 through sheep $2: $out"
	printf '%s' "$out"
}

# The whole VDI, through sheep IDX, equals the expected image.
image_matches() {
	dog_p "$1" vdi read qemu 0 64M | cmp -s - "$image"
}

# How many nodes store a file named FILE under their obj/ directory.
stores_holding() {
	local i n=0
	for i in 0 1 2; do
		[[ -n $(find "$(node_dir "$i")/obj" -name "$1" -not -path '*/.stale/*') ]] && n=$((n + 1))
	done
	echo "$n"
}
no_store_holds() {
	[[ $(stores_holding "$1") -eq 0 ]]
}

assert_eq "$((16#$vid))" "$(step lookup 0)" "vid from GET_VDI_INFO/LOCK_VDI"
step read_inode 1

obj5=$(printf '%016x' $(((16#$vid << 32) | 5)))
assert_eq 0 "$(stores_holding "$obj5")" "stores holding object 5 before the write"
step create_data 2
assert_eq 3 "$(stores_holding "$obj5")" "stores holding object 5"
pattern=$SD_TMP/pattern
python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7 + 3) & 0xff for i in range(4096)))' >"$pattern"
for i in 0 1 2; do
	dog_p "$i" vdi read qemu $((5 * 4 * MiB + 8192)) 4096 | cmp -s - "$pattern" ||
		fail "dog vdi read through sheep $i does not see the data at 5*4MiB+8192"
done
assert_eq "$(head -c 8192 /dev/zero | sha1sum)" \
	"$(dog_p 0 vdi read qemu $((5 * 4 * MiB)) 8192 | sha1sum)" "zeros before the data"
image_matches 1 || fail "VDI content after the create differs"

step discard 0
for i in 0 1 2; do
	assert_eq "$(head -c 16384 /dev/zero | sha1sum)" \
		"$(dog_p "$i" vdi read qemu $((5 * 4 * MiB)) 16384 | sha1sum)" \
		"discarded range read through sheep $i"
done
wait_for "object 5 to leave every store" no_store_holds "$obj5"
step discarded 1
image_matches 2 || fail "VDI content after the discard differs"

step cow 1
obj6=$(printf '%016x' $(((16#$vid << 32) | 6)))
assert_eq 3 "$(stores_holding "$obj6")" "stores holding the COW object 6"
image_matches 0 || fail "VDI content after the COW write differs"

vmstate=$(step vmstate 2)
assert_eq "$(printf '%016x' $(((1 << 62) | (16#$vid << 32))))" "$vmstate" "vmstate oid"
assert_eq 3 "$(stores_holding "$vmstate")" "stores holding the vmstate object"

step pipeline 0
for i in 0 1 2; do
	image_matches "$i" || fail "VDI content after the pipeline differs (sheep $i)"
done

step misc 1
step dog_queries 2
step dog_queries 0

for i in 0 1 2; do assert_alive "$i"; done
pass
