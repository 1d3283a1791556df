#!/usr/bin/env bash
# Hostile and broken clients cannot hurt a sheep or the data it stores.
# Against a formatted 3-node cluster holding a VDI with known data, each case
# below sends malformed bytes or requests (truncated and garbage headers,
# unknown opcodes, wrong protocol versions, oversized lengths, payloads that
# stop halfway, out-of-range offsets, invalid oids, VDI requests with wrong
# payload sizes or unterminated names, peer writes from an old epoch) and
# asserts the exact reply where one is due. After every case: each sheep is
# running and answers, a client on a parallel connection was served
# throughout, the VDI reads back byte-identical through two nodes, and not a
# byte changed in any node's object store.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

SDPROTO_DIR=$SD_SOURCE_DIR/tests/functional

start_cluster 3
format_cluster 3
assert_exit 0 dog_p 0 vdi create test 16M

# 5 MiB + 4 KiB of known data: all of object 0, part of object 1.
data=$SD_TMP/data
python3 -c 'import random, sys; r = random.Random(2020)
sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range((5 << 20) + 4096)))' >"$data"
data_len=$(stat -c %s "$data")
dog_p 1 vdi write test 0 "$data_len" <"$data" || fail "vdi write failed"
vid=$(dog_p 0 vdi list -r test | awk '{print $8}')
[[ $vid =~ ^[0-9a-f]+$ ]] || fail "no vid for VDI test: '$vid'"

# Every object file of every node, with its content hash.
store_fingerprint() {
	(cd "$SD_TMP" && find n0/obj n1/obj n2/obj -type f -print0 |
		sort -z | xargs -0 sha1sum)
}
fingerprint=$(store_fingerprint)
grep -q "/0*${vid}00000001\$" <<<"$fingerprint" ||
	fail "data object 1 of vid $vid is not in the stores"

# The cases, one function each, run by name. Each prints "ok" at the end;
# any unexpected reply raises and exits non-zero.
cat >"$SD_TMP/cases.py" <<'PY'
import os
import random
import socket
import struct
import sys

sys.path.insert(0, os.environ["SDPROTO_DIR"])
import sdproto as sd

PORTS = [int(p) for p in os.environ["PORTS"].split(",")]
VID = int(os.environ["VID"], 16)
DATA = open(os.environ["DATA"], "rb").read()
OBJ = 4 << 20
OID0 = sd.data_oid(VID, 0)
OID1 = sd.data_oid(VID, 1)
INODE = sd.vdi_oid(VID)


def check(rsp, result, what, req_id=None):
    sd.expect(rsp, result, what)
    if req_id is not None and rsp.id != req_id:
        raise AssertionError("%s: reply id %#x, sent %#x" % (what, rsp.id, req_id))
    if rsp.result != sd.RES_SUCCESS and rsp.data_length != 0:
        raise AssertionError("%s: error reply carries %d bytes" % (what, rsp.data_length))


def still_in_sync(c, what):
    """The connection still frames requests: a valid one is answered."""
    rid = 0x5a5a0000 | random.getrandbits(16)
    rsp, _ = c.request(sd.Request(sd.OP_GET_CLUSTER_DEFAULT, proto_ver=1), rid)
    check(rsp, sd.RES_SUCCESS, what + ": next request on the same connection", rid)


def bystander_check(c, what):
    """Another client on its own connection is served, and sees the data."""
    rsp, data = c.request(sd.obj_req(sd.OP_READ_OBJ, OID0, length=65536,
                                     offset=OBJ - 65536))
    check(rsp, sd.RES_SUCCESS, what + ": bystander READ_OBJ")
    if data != DATA[OBJ - 65536:OBJ]:
        raise AssertionError(what + ": bystander read different data")
    rsp, _ = c.request(sd.Request(sd.OP_GET_VDI_INFO,
                                  sd.vdi_name_payload("test"), proto_ver=1))
    check(rsp, sd.RES_SUCCESS, what + ": bystander GET_VDI_INFO")
    if rsp.vdi_id != VID:
        raise AssertionError("%s: bystander got vid %x" % (what, rsp.vdi_id))


def simple(port, req, result, what, req_id):
    """One request on a fresh connection: its exact result, then sync."""
    with sd.Conn(port, timeout=10) as c:
        rsp, _ = c.request(req, req_id)
        check(rsp, result, what, req_id)
        if rsp.opcode != req.opcode:
            raise AssertionError("%s: reply opcode 0x%02x" % (what, rsp.opcode))
        still_in_sync(c, what)


def error_or_close(c, what):
    """After a request whose payload can never be sent: an error reply
    and/or a close, within the deadline, and nothing else."""
    try:
        seen = c.wait_closed(10)
    except sd.Timeout:
        raise AssertionError(what + ": neither an error reply nor a close")
    for rsp, _ in seen:
        if rsp.result == sd.RES_SUCCESS:
            raise AssertionError(what + ": answered SUCCESS")


# ---- the cases ----

def case_truncated_header(port):
    hdr = sd.header(sd.OP_READ_OBJ, data_length=4096, body=sd.obj_body(OID0))
    with sd.Conn(port) as c:          # 20 bytes, then gone
        c.send(hdr[:20])
    with sd.Conn(port) as c:          # 47 bytes, half-close: closed, no reply
        c.send(hdr[:47])
        c.shutdown_write()
        if c.wait_closed(10):
            raise AssertionError("a reply to a 47-byte header")
    with sd.Conn(port) as c:          # one byte per segment still frames
        rid = 0x1000
        for b in sd.header(sd.OP_GET_CLUSTER_DEFAULT, 1, req_id=rid):
            c.send(bytes([b]))
        rsp, _ = c.recv_reply()
        check(rsp, sd.RES_SUCCESS, "header sent byte by byte", rid)


def case_unknown_opcode(port):
    for op, proto in ((0x00, 2), (0x06, 0), (0x7f, 2), (0x83, 0x0a),
                      (0xf0, 0x0a), (0xff, 0x0a)):
        simple(port, sd.Request(op, proto_ver=proto), sd.RES_INVALID_PARMS,
               "opcode 0x%02x" % op, 0xdead0000 | op)
    # With a payload, which is read and skipped: the stream stays in sync.
    simple(port, sd.Request(0x7e, bytes(1000), proto_ver=2),
           sd.RES_INVALID_PARMS, "opcode 0x7e with payload", 0xdead007e)


def case_public_proto_ver(port):
    for proto in (0x03, 0x0a, 0xff):
        simple(port, sd.obj_req(sd.OP_READ_OBJ, OID0, length=4096, proto_ver=proto),
               sd.RES_VER_MISMATCH, "READ_OBJ proto 0x%02x" % proto, 0x300 + proto)
    simple(port, sd.obj_req(sd.OP_WRITE_OBJ, OID0, payload=b"\xee" * 4096,
                            proto_ver=0x03),
           sd.RES_VER_MISMATCH, "WRITE_OBJ proto 0x03", 0x3ff)


def case_internal_proto_ver(port):
    for proto in (0x00, 0x02, 0x09, 0x0b, 0xff):
        simple(port, sd.Request(sd.OP_GET_NODE_LIST, proto_ver=proto,
                                data_length=6144 * 80),
               sd.RES_VER_MISMATCH, "GET_NODE_LIST proto 0x%02x" % proto,
               0x8200 + proto)
    simple(port, sd.obj_req(sd.OP_WRITE_PEER, OID0, payload=b"\xee" * 4096,
                            proto_ver=0x09),
           sd.RES_VER_MISMATCH, "WRITE_PEER proto 0x09", 0xa509)


def case_write_beyond_limit(port):
    for op, proto, dlen in ((sd.OP_WRITE_OBJ, 0, sd.MAX_PAYLOAD + 1),
                            (sd.OP_CREATE_AND_WRITE_OBJ, 2, 0xffffffff),
                            (sd.OP_WRITE_PEER, 0x0a, 0x80000000)):
        what = "op 0x%02x WRITE with data_length %#x" % (op, dlen)
        with sd.Conn(port) as c:
            c.send(sd.header(op, proto, sd.FLAG_WRITE, req_id=0x6400,
                             data_length=dlen, body=sd.obj_body(OID0)))
            c.send(b"\xee" * 65536)   # the start of a payload it must not take
            error_or_close(c, what)


def case_read_beyond_limit(port):
    for dlen in (sd.MAX_PAYLOAD + 1, 0xffffffff):
        simple(port, sd.obj_req(sd.OP_READ_OBJ, OID0, length=dlen),
               sd.RES_INVALID_PARMS, "READ_OBJ of %#x bytes" % dlen, 0x6500)
    simple(port, sd.Request(sd.OP_CLUSTER_INFO, data_length=0xffffffff),
           sd.RES_INVALID_PARMS, "CLUSTER_INFO of 4 GiB", 0x6501)


def case_random_garbage(port):
    # The byte 0x0a never occurs, so no garbage header passes as an
    # internal request (MAKE_FS, KILL_NODE, SHUTDOWN would be obeyed).
    for seed in (20, 21, 22, 23):
        junk = sd.garbage(64 << 10, seed).replace(b"\x0a", b"\x0b")
        with sd.Conn(port) as c:
            c.send(junk)
            c.shutdown_write()
            try:
                c.drain_until_closed(15)
            except sd.Timeout:
                raise AssertionError("garbage seed %d: connection not closed" % seed)


def case_random_headers(port):
    # 300 well-framed public requests with random opcodes and bodies,
    # pipelined: exactly one reply for each id, none for anything else.
    rng = random.Random(30)
    ids, wire = set(), b""
    for i in range(300):
        op = rng.choice([o for o in range(0x80) if o not in (0x01, 0x03, 0x04)])
        rid = (i << 16) | rng.getrandbits(16)
        ids.add(rid)
        body = bytes(rng.getrandbits(8) for _ in range(32))
        wire += sd.header(op, rng.choice((0, 1, 2)), 0, rng.getrandbits(32),
                          rid, rng.getrandbits(16), body)
    with sd.Conn(port) as c:
        c.send(wire)
        for _ in range(len(ids)):
            rsp, _ = c.recv_reply(15)
            if rsp.id not in ids:
                raise AssertionError("reply with unknown or repeated id %#x" % rsp.id)
            ids.discard(rsp.id)
        still_in_sync(c, "random headers")


def case_half_payload(port):
    hdr = sd.header(sd.OP_WRITE_OBJ, 0, sd.FLAG_WRITE, req_id=0x4000,
                    data_length=OBJ, body=sd.obj_body(OID0, copies=3))
    c = sd.Conn(port)
    c.send(hdr + b"\xaa" * (OBJ // 2))
    # While that client stalls mid-payload, others are served.
    with sd.Conn(port) as b:
        bystander_check(b, "during a stalled payload")
    c.vanish()
    hdr = sd.header(sd.OP_CREATE_AND_WRITE_OBJ, 0, sd.FLAG_WRITE,
                    req_id=0x4001, data_length=OBJ,
                    body=sd.obj_body(OID1, copies=3))
    with sd.Conn(port) as c:
        c.send(hdr + b"\xbb" * (OBJ // 2))
    # A VDI creation whose name never fully arrives creates nothing.
    hdr = sd.header(sd.OP_NEW_VDI, 2, sd.FLAG_WRITE, req_id=0x4002,
                    data_length=256, body=sd.vdi_body(vdi_size=OBJ))
    with sd.Conn(port) as c:
        c.send(hdr + b"half")


def case_out_of_range(port):
    bad = [
        (sd.OP_READ_OBJ, OID0, OBJ - 100, 4096, None),
        (sd.OP_READ_OBJ, OID0, OBJ, 1, None),
        (sd.OP_READ_OBJ, OID0, 1 << 32, 4096, None),
        (sd.OP_READ_OBJ, OID0, 0, 2 * OBJ, None),
        (sd.OP_READ_OBJ, INODE, 0, sd.INODE_SIZE + 1, None),
        (sd.OP_WRITE_OBJ, OID0, OBJ - 100, 4096, b"\xcc"),
        (sd.OP_WRITE_OBJ, OID0, 1 << 32, 4096, b"\xcc"),
        (sd.OP_WRITE_OBJ, OID0, (1 << 64) - 4096, 8192, b"\xcc"),
        (sd.OP_WRITE_OBJ, INODE, sd.INODE_SIZE - 2, 4, b"\xcc"),
        (sd.OP_CREATE_AND_WRITE_OBJ, OID0, OBJ, 1, b"\xcc"),
        (sd.OP_CREATE_AND_WRITE_OBJ, OID1, 1 << 32, 4096, b"\xcc"),
    ]
    for n, (op, oid, off, length, fill) in enumerate(bad):
        what = "op 0x%02x oid %016x offset %#x length %d" % (op, oid, off, length)
        if fill:
            req = sd.obj_req(op, oid, offset=off, payload=fill * length, copies=3)
        else:
            req = sd.obj_req(op, oid, offset=off, length=length)
        simple(port, req, sd.RES_INVALID_PARMS, what, 0x7000 + n)


def case_invalid_oid(port):
    n = 0
    for bit in (56, 57, 58):
        for op, fill in ((sd.OP_READ_OBJ, None), (sd.OP_WRITE_OBJ, b"\xdd"),
                         (sd.OP_CREATE_AND_WRITE_OBJ, b"\xdd"),
                         (sd.OP_REMOVE_OBJ, None)):
            oid = (1 << bit) | OID0
            if fill:
                req = sd.obj_req(op, oid, payload=fill * 4096, copies=3)
            else:
                req = sd.obj_req(op, oid, length=4096 if op == sd.OP_READ_OBJ else 0)
            simple(port, req, sd.RES_INVALID_PARMS,
                   "op 0x%02x oid %016x" % (op, oid), 0x9000 + n)
            n += 1
    # Straight to a peer, with its current epoch.
    with sd.Conn(port) as c:
        rsp, _ = c.request(sd.Request(sd.OP_GET_CLUSTER_DEFAULT))
        epoch = rsp.epoch
    for op, fill in ((sd.OP_WRITE_PEER, b"\xdd"), (sd.OP_REMOVE_PEER, None)):
        oid = (1 << 57) | OID0
        req = sd.obj_req(op, oid, payload=fill * 4096 if fill else None,
                         epoch=epoch)
        simple(port, req, sd.RES_INVALID_PARMS, "op 0x%02x oid %016x" % (op, oid),
               0x9100 + op)


def case_new_vdi_payload(port):
    for n, length in enumerate((0, 100, 255, 257, 512)):
        payload = sd.vdi_name_payload("evil", with_tag=False).ljust(length, b"\0")[:length]
        req = sd.Request(sd.OP_NEW_VDI, payload, flags=sd.FLAG_WRITE,
                         body=sd.vdi_body(vdi_size=OBJ, copies=3))
        simple(port, req, sd.RES_INVALID_PARMS, "NEW_VDI with %d-byte name" % length,
               0xa000 + n)
    rsp, _ = sd.call(port, sd.Request(sd.OP_GET_VDI_INFO,
                                      sd.vdi_name_payload("evil"), proto_ver=1))
    check(rsp, sd.RES_NO_VDI, "lookup of the refused VDI")


def case_vdi_info_payload(port):
    for n, length in enumerate((100, 0, 300, 511)):
        for op in (sd.OP_GET_VDI_INFO, sd.OP_LOCK_VDI, sd.OP_DEL_VDI):
            payload = sd.vdi_name_payload("test")[:length].ljust(length, b"\0")
            req = sd.Request(op, payload, flags=sd.FLAG_WRITE, proto_ver=1)
            simple(port, req, sd.RES_INVALID_PARMS,
                   "op 0x%02x with a %d-byte payload" % (op, length),
                   0xb000 + n * 256 + op)
    # More than name and tag is refused before the payload is trusted.
    req = sd.Request(sd.OP_GET_VDI_INFO, sd.vdi_name_payload("test") + bytes(1),
                     proto_ver=1)
    simple(port, req, sd.RES_INVALID_PARMS, "GET_VDI_INFO with 513 bytes", 0xb1ff)


def case_name_without_nul(port):
    n = 0
    for op, payload in ((sd.OP_GET_VDI_INFO, b"A" * 256),
                        (sd.OP_GET_VDI_INFO, b"test" + b"T" * 252),
                        (sd.OP_NEW_VDI, b"B" * 256),
                        (sd.OP_GET_VDI_INFO, sd.vdi_name_payload("test", with_tag=False) + b"T" * 256),
                        (sd.OP_DEL_VDI, sd.vdi_name_payload("test", with_tag=False) + b"T" * 256),
                        (sd.OP_LOCK_VDI, b"C" * 256 + bytes(256))):
        req = sd.Request(op, payload, proto_ver=1,
                         body=sd.vdi_body(vdi_size=OBJ) if op == sd.OP_NEW_VDI else b"")
        simple(port, req, sd.RES_INVALID_PARMS,
               "op 0x%02x with an unterminated name or tag" % op, 0xc000 + n)
        n += 1


def case_read_vdis_length(port):
    n = 0
    for op in (sd.OP_READ_VDIS, sd.OP_READ_DEL_VDIS):
        for dlen in (0, 4096, sd.VDI_BITMAP_SIZE - 1, sd.VDI_BITMAP_SIZE + 1,
                     sd.MAX_PAYLOAD):
            simple(port, sd.Request(op, data_length=dlen), sd.RES_INVALID_PARMS,
                   "op 0x%02x with data_length %d" % (op, dlen), 0xd000 + n)
            n += 1
    with sd.Conn(port) as c:
        rsp, bitmap = c.request(sd.Request(sd.OP_READ_VDIS,
                                           data_length=sd.VDI_BITMAP_SIZE))
        check(rsp, sd.RES_SUCCESS, "READ_VDIS of 2 MiB")
        if len(bitmap) != sd.VDI_BITMAP_SIZE or not bitmap[VID >> 3] & (1 << (VID & 7)):
            raise AssertionError("READ_VDIS: vid %x not in the bitmap" % VID)


def case_peer_old_epoch(port):
    with sd.Conn(port) as c:
        rsp, _ = c.request(sd.Request(sd.OP_GET_CLUSTER_DEFAULT))
        epoch = rsp.epoch
    if epoch < 1:
        raise AssertionError("cluster epoch is %d" % epoch)
    n = 0
    for p in PORTS:
        for old in sorted({0, epoch - 1}):
            for op, oid, fill in ((sd.OP_WRITE_PEER, OID0, b"\x81"),
                                  (sd.OP_CREATE_AND_WRITE_PEER, OID1, b"\x81"),
                                  (sd.OP_REMOVE_PEER, OID1, None)):
                req = sd.obj_req(op, oid, payload=fill * 4096 if fill else None,
                                 epoch=old)
                simple(p, req, sd.RES_OLD_NODE_VER,
                       "op 0x%02x epoch %d on port %d" % (op, old, p), 0xe000 + n)
                n += 1


def case_unread_replies(port):
    # Many reads pipelined, replies never read, then gone.
    with sd.Conn(port) as c:
        for i in range(48):
            c.submit(sd.obj_req(sd.OP_READ_OBJ, OID0 + (i & 1), length=1 << 20,
                                offset=(i % 4) << 20), 0xf000 + i)
        c.vanish()
    # Cluster-wide lookups too: their replies come after the client left.
    with sd.Conn(port) as c:
        for i in range(8):
            c.submit(sd.Request(sd.OP_GET_VDI_INFO, sd.vdi_name_payload("test"),
                                proto_ver=1), 0xf100 + i)
        c.vanish()


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}

if __name__ == "__main__":
    name, port = sys.argv[1], int(sys.argv[2])
    bystander = sd.Conn(port, timeout=10)
    CASES[name](port)
    bystander_check(bystander, name)
    bystander.close()
    print("ok")
PY

export SDPROTO_DIR DATA=$data VID=$vid
PORTS=$(port_of 0),$(port_of 1),$(port_of 2)
export PORTS

# run_case NAME IDX: run the case against sheep IDX, then check that nothing
# died, nothing stopped answering and nothing stored changed.
run_case() {
	local name=$1 idx=$2 out i
	out=$(timeout 120 python3 "$SD_TMP/cases.py" "$name" "$(port_of "$idx")" 2>&1) ||
		fail "case $name: $out"
	[[ $out == ok ]] || fail "case $name: $out"
	for i in 0 1 2; do
		assert_alive "$i"
	done
	for i in 0 2; do
		dog_p "$i" vdi read test 0 "$data_len" | cmp -s - "$data" ||
			fail "case $name: VDI data read through sheep $i changed"
	done
	[[ $(store_fingerprint) == "$fingerprint" ]] ||
		fail "case $name: the object stores changed:
$(diff <(echo "$fingerprint") <(store_fingerprint))"
	echo "case $name: ok"
}

run_case truncated_header 0
run_case unknown_opcode 1
run_case public_proto_ver 2
run_case internal_proto_ver 0
run_case write_beyond_limit 1
run_case read_beyond_limit 2
run_case random_garbage 0
run_case random_headers 1
run_case half_payload 2
run_case out_of_range 0
run_case invalid_oid 1
run_case new_vdi_payload 2
run_case vdi_info_payload 0
run_case name_without_nul 1
run_case read_vdis_length 2
run_case peer_old_epoch 0
run_case unread_replies 1

# The namespace is as it was: one VDI, nothing created by the cases.
assert_eq "test" "$(dog_p 0 vdi list -r | awk '{print $2}')" "VDIs after the cases"
pass
