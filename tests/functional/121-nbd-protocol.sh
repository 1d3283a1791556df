#!/usr/bin/env bash
# sheep's NBD server, byte by byte (tests/functional/nbdproto.py): the fixed
# newstyle greeting; LIST, INFO and GO with the export's size, transmission
# flags and block sizes (a working VDI read-write, a snapshot read-only and
# shareable); the old EXPORT_NAME ending with and without zero padding;
# structured replies, base:allocation block status (holes until written),
# READ, WRITE with FUA, FLUSH, TRIM, WRITE_ZEROES with FAST_ZERO; 32 requests
# in flight on one connection; DISC only after the writes before it are done.
# Then bad input (point 4 of issue 6): garbage instead of the handshake, an
# unknown option, STARTTLS, an option too long, bad export names, a second
# writer, requests out of range, oversized, with bad flags or a bad magic, a
# connection limit, a client vanishing in the middle of a write: each gets
# an error reply or a closed connection, the data stays intact, the VDI's
# lock is released, and the daemon goes on serving. Last, SIGTERM with a
# client connected: the sheep exits at once and the lock is free again.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

# nbdpy ARGS... <<'PY': run an inline Python client with nbdproto importable.
nbdpy() {
	PYTHONPATH=$SD_SOURCE_DIR/tests/functional timeout 120 python3 - "$@"
}

start_sheep 0
wait_for_sheep 0
start_sheep 1 --nbd max-connections=4
wait_for_sheep 1
wait_for_nodes 0 2
format_cluster 2
assert_exit 0 dog_p 0 vdi create vm 64M
assert_exit 0 dog_p 0 vdi create other 8M
p0=$(nbd_port 0)
p1=$(nbd_port 1)

# A client that sends half its flags and then nothing (slowloris) is closed
# after the 30 s the handshake may take; it runs alongside the rest.
nbdpy "$p0" "$SD_TMP/slow.s" <<'PY' &
import sys, time
import nbdproto as nbd
c = nbd.Conn(int(sys.argv[1]), timeout=60)
c.greeting()
c.send(b"\x00\x00")
t0 = time.time()
closed = c.is_closed(wait=60)
open(sys.argv[2], "w").write("%d %d\n" % (closed, time.time() - t0))
PY
slow=$!

# --- Handshake, LIST, INFO, GO, EXPORT_NAME. -------------------------------

nbdpy "$p1" <<'PY' || fail "handshake, LIST, INFO, GO"
import struct, sys
import nbdproto as nbd
port = int(sys.argv[1])
MiB = 1 << 20
rw = (nbd.F_HAS_FLAGS | nbd.F_SEND_FLUSH | nbd.F_SEND_FUA | nbd.F_SEND_TRIM |
      nbd.F_SEND_WRITE_ZEROES | nbd.F_SEND_FAST_ZERO)

with nbd.Conn(port) as c:
    g = c.greeting()
    assert g == b"NBDMAGIC" + b"IHAVEOPT" + b"\x00\x03", g.hex()
    c.send(struct.pack(">I", nbd.FLAG_FIXED_NEWSTYLE | nbd.FLAG_NO_ZEROES))
    names = sorted(c.list())
    assert names == ["other", "vm"], names
    # INFO without structured replies: no DF; everything asked for is there
    i = c.info("vm", [nbd.INFO_NAME, nbd.INFO_DESCRIPTION, nbd.INFO_BLOCK_SIZE])
    assert i["size"] == 64 * MiB, i
    assert i["flags"] == rw, "INFO flags 0x%x, expected 0x%x" % (i["flags"], rw)
    assert i["block_size"] == (1, 4096, 32 * MiB), i
    assert i["name"] == "vm", i
    assert "vm" in i["description"], i
    # INFO leaves us in the handshake: structured replies, then GO
    c.structured_reply()
    ctx = c.meta(nbd.OPT_LIST_META_CONTEXT, "vm", [])
    assert list(ctx.values()) == ["base:allocation"], ctx
    ctx = c.meta(nbd.OPT_LIST_META_CONTEXT, "vm", ["base:", "qemu:dirty-bitmap:x"])
    assert list(ctx.values()) == ["base:allocation"], ctx
    ctx = c.set_meta("vm", ["qemu:allocation-depth", "base:allocation"])
    assert list(ctx.values()) == ["base:allocation"], ctx
    i = c.go("vm")
    assert i["size"] == 64 * MiB
    assert i["flags"] == rw | nbd.F_SEND_DF, "GO flags 0x%x" % i["flags"]
    assert i["block_size"] == (1, 4096, 32 * MiB), i
    c.disconnect()
    assert c.is_closed(), "DISC did not close the connection"

# the old ending: size, flags, and 124 zero bytes unless NO_ZEROES
for cflags, pad in ((nbd.FLAG_FIXED_NEWSTYLE, 124),
                    (nbd.FLAG_FIXED_NEWSTYLE | nbd.FLAG_NO_ZEROES, 0)):
    with nbd.Conn(port) as c:
        c.start(cflags)
        size, flags, got_pad = c.export_name("other")
        assert (size, flags, got_pad) == (8 * MiB, rw, pad), (size, flags, got_pad)
        assert c.read(0, 512) == bytes(512)
        c.disconnect()

# ABORT: an ACK, then the server closes
with nbd.Conn(port) as c:
    c.start()
    c.send_opt(nbd.OPT_ABORT)
    assert c.opt_reply()[1] == nbd.REP_ACK
    assert c.is_closed()
PY

# --- Transmission: structured replies, block status, every command. --------

nbdpy "$p1" <<'PY' || fail "transmission commands"
import os, sys
import nbdproto as nbd
port = int(sys.argv[1])
MiB = 1 << 20
OBJ = 4 * MiB
HZ = nbd.STATE_HOLE | nbd.STATE_ZERO

c = nbd.open_export(port, "vm")
assert c.block_status(0, 64 * MiB) == [(64 * MiB, HZ)], c.block_status(0, 64 * MiB)
assert c.read(10 * MiB, 4096) == bytes(4096)

a = os.urandom(3 * 4096)
c.write(OBJ + 4096, a, nbd.CMD_FLAG_FUA)
b = os.urandom(2 * MiB)
c.write(9 * MiB, b)  # spans objects 2 and 3
c.flush()
assert c.read(OBJ + 4096, len(a)) == a
assert c.read(9 * MiB, len(b)) == b
assert c.read(OBJ, 4096) == bytes(4096), "bytes around a write are not zero"

# one OFFSET_DATA chunk with DONE and the right offset
h = c.send_request(nbd.CMD_READ, OBJ + 4096, 4096)
r = c.recv_reply()
assert (r.handle, r.type, r.flags) == (h, nbd.REPLY_TYPE_OFFSET_DATA, nbd.REPLY_FLAG_DONE), r
assert r.payload[:8] == (OBJ + 4096).to_bytes(8, "big") and r.payload[8:] == a[:4096]

def merged(ext):
    out = []
    for n, f in ext:
        if out and out[-1][1] == f:
            out[-1] = (out[-1][0] + n, f)
        else:
            out.append((n, f))
    return out

# objects 1 and 2 are written, the others are holes
ext = c.block_status(0, 64 * MiB)
assert sum(n for n, _ in ext) == 64 * MiB, ext
assert merged(ext) == [(OBJ, HZ), (2 * OBJ, 0), (52 * MiB, HZ)], ext
one = c.block_status(OBJ, 4096, nbd.CMD_FLAG_REQ_ONE)
assert len(one) == 1 and one[0][1] == 0 and 0 < one[0][0] <= 4096, one
one = c.block_status(0, 64 * MiB, nbd.CMD_FLAG_REQ_ONE)
assert one == [(OBJ, HZ)], one

# WRITE_ZEROES in the middle of an object writes zeros; FAST_ZERO there may
# refuse with ENOTSUP and change nothing; on whole objects it releases them
c.zero(OBJ + 8192, 4096)
assert c.read(OBJ + 4096, len(a)) == a[:4096] + bytes(4096) + a[8192:]
try:
    c.zero(OBJ + 4096, 4096, nbd.CMD_FLAG_FAST_ZERO)
    assert c.read(OBJ + 4096, 4096) == bytes(4096)
except nbd.NbdError as e:
    assert e.error == nbd.ENOTSUP, e
    assert c.read(OBJ + 4096, 4096) == a[:4096], "a refused FAST_ZERO changed data"
c.zero(2 * OBJ, OBJ, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_FUA)
assert c.read(2 * OBJ, OBJ) == bytes(OBJ)
c.zero(3 * OBJ, 4096, nbd.CMD_FLAG_NO_HOLE)
assert c.read(3 * OBJ, 4096) == bytes(4096)

# TRIM of a whole object releases it: a hole that reads as zeros
c.write(5 * OBJ, os.urandom(4096))
c.trim(5 * OBJ, OBJ, nbd.CMD_FLAG_FUA)
assert c.read(5 * OBJ, 4096) == bytes(4096)
assert c.block_status(5 * OBJ, OBJ) == [(OBJ, HZ)], c.block_status(5 * OBJ, OBJ)

# 32 requests in flight, answered by handle in any order
pattern = {}
for i in range(32):
    pattern[i] = os.urandom(4096)
    c.send_request(nbd.CMD_WRITE, 40 * MiB + i * 4096, 4096, data=pattern[i],
                   handle=1000 + i)
seen = set()
for i in range(32):
    r = c.recv_reply()
    assert r.error == 0 and r.done, r
    seen.add(r.handle)
assert seen == set(range(1000, 1032)), seen
for i in range(32):
    c.send_request(nbd.CMD_READ, 40 * MiB + i * 4096, 4096, handle=2000 + i)
for i in range(32):
    r = c.recv_reply()
    assert r.type == nbd.REPLY_TYPE_OFFSET_DATA, r
    assert r.payload[8:] == pattern[r.handle - 2000], "read %d" % r.handle

# DISC right after a burst of writes: they all land before the close
last = {}
for i in range(16):
    last[i] = os.urandom(64 * 1024)
    c.send_request(nbd.CMD_WRITE, 48 * MiB + i * 65536, 65536, data=last[i])
c.disconnect()
for i in range(16):
    r = c.recv_reply()
    assert r.error == 0, r
assert c.is_closed(), "open after DISC"
c.close()
with nbd.open_export(port, "vm") as c2:
    for i in range(16):
        assert c2.read(48 * MiB + i * 65536, 65536) == last[i], "write %d before DISC lost" % i
    c2.disconnect()

# without structured replies: simple replies with the data
with nbd.open_export(port, "vm", structured=False) as c3:
    assert c3.flags & nbd.F_SEND_DF == 0
    assert c3.read(48 * MiB, 65536) == last[0]
    try:
        c3.block_status(0, 4096)
        raise SystemExit("BLOCK_STATUS without a meta context was accepted")
    except nbd.NbdError as e:
        assert e.error == nbd.EINVAL, e
    c3.disconnect()
PY
# what the next checks must leave intact
nbdpy "$p0" >"$SD_TMP/before.sha" <<'PY' || fail "checksum through sheep 0"
import hashlib, sys
import nbdproto as nbd
with nbd.open_export(int(sys.argv[1]), "vm") as c:
    print(hashlib.sha256(c.read(0, 32 << 20) + c.read(32 << 20, 32 << 20)).hexdigest())
    c.disconnect()
PY

# --- Snapshots are read-only, shareable, and keep their data. -------------

assert_exit 0 dog_p 0 vdi snapshot -s snap1 vm
nbdpy "$p1" "$(cat "$SD_TMP/before.sha")" <<'PY' || fail "snapshot export"
import hashlib, sys
import nbdproto as nbd
port, want = int(sys.argv[1]), sys.argv[2]
for name in ("vm@snap1", "vm:1"):
    c1 = nbd.open_export(port, name)
    c2 = nbd.open_export(port, name)  # a second reader of a snapshot is fine
    f = c1.flags
    assert f & nbd.F_READ_ONLY and f & nbd.F_CAN_MULTI_CONN, "%s flags 0x%x" % (name, f)
    assert not f & (nbd.F_SEND_TRIM | nbd.F_SEND_WRITE_ZEROES | nbd.F_SEND_FUA), hex(f)
    d = c2.read(0, 32 << 20) + c2.read(32 << 20, 32 << 20)
    assert hashlib.sha256(d).hexdigest() == want, "%s differs from the VDI it was taken of" % name
    for cmd, data in ((nbd.CMD_WRITE, b"x" * 512), (nbd.CMD_TRIM, b""),
                      (nbd.CMD_WRITE_ZEROES, b"")):
        try:
            c1.command(cmd, 0, 512, data=data)
            raise SystemExit("%s: command %d on a snapshot was accepted" % (name, cmd))
        except nbd.NbdError as e:
            assert e.error == nbd.EPERM, e
            assert "read-only" in e.msg, e.msg
    c1.flush()
    c1.disconnect()
    c2.disconnect()
PY

# --- Bad input in the handshake. ------------------------------------------

nbdpy "$p1" <<'PY' || fail "bad handshakes"
import os, struct, sys
import nbdproto as nbd
port = int(sys.argv[1])

def closed_after(data, what):
    with nbd.Conn(port) as c:
        c.greeting()
        try:
            c.send(data)
        except nbd.Closed:
            return
        assert c.is_closed(), what + ": connection still open"

closed_after(os.urandom(4096), "garbage instead of client flags")
closed_after(struct.pack(">I", 0x80000001), "unknown client flags")
closed_after(struct.pack(">I", 0), "no FIXED_NEWSTYLE")
closed_after(struct.pack(">I", 3) + b"NOTMAGIC" + bytes(8), "bad option magic")
closed_after(struct.pack(">IQII", 3, nbd.IHAVEOPT, nbd.OPT_GO, 0x7fffffff) + bytes(1024),
             "option of 2 GiB")
closed_after(struct.pack(">IQII", 3, nbd.IHAVEOPT, nbd.OPT_GO, 65537), "option over 64 KiB")

with nbd.Conn(port) as c:
    c.start()
    # unknown option: ERR_UNSUP and still in the handshake, data skipped
    c.send_opt(0x1234, b"z" * 1000)
    o, t, msg = c.opt_reply()
    assert (o, t) == (0x1234, nbd.REP_ERR_UNSUP), (o, hex(t))
    assert b"not supported" in msg, msg
    c.send_opt(nbd.OPT_STARTTLS)
    o, t, msg = c.opt_reply()
    assert t == nbd.REP_ERR_UNSUP and b"TLS" in msg, (hex(t), msg)
    # malformed options: ERR_INVALID
    for opt, data in ((nbd.OPT_GO, b"\x00\x00\x00\x09vm\x00\x00"),       # name runs past the end
                      (nbd.OPT_GO, b"\x00\x00\x00\x02vm\x00\x02\x00\x01"),  # 2 infos, 1 sent
                      (nbd.OPT_INFO, b"\x00\x00"),
                      (nbd.OPT_GO, b"\x00\x00\x00\x03v\x00m\x00\x00"),  # NUL in the name
                      (nbd.OPT_LIST, b"xx"),
                      (nbd.OPT_STRUCTURED_REPLY, b"x"),
                      (nbd.OPT_SET_META_CONTEXT, nbd.Conn.meta_data("vm", []))):  # before STRUCTURED_REPLY
        try:
            c.opt_replies(opt, data)
            raise SystemExit("option %d %r accepted" % (opt, data))
        except nbd.OptError as e:
            assert e.rep == nbd.REP_ERR_INVALID, e
    c.structured_reply()
    bad_meta = nbd.Conn.meta_data("vm", ["base:allocation"])[:-3]
    try:
        c.opt_replies(nbd.OPT_SET_META_CONTEXT, bad_meta)
        raise SystemExit("truncated SET_META_CONTEXT accepted")
    except nbd.OptError as e:
        assert e.rep == nbd.REP_ERR_INVALID, e
    # exports that do not exist
    for name, rep in (("nosuch", nbd.REP_ERR_UNKNOWN), ("", nbd.REP_ERR_UNKNOWN),
                      ("vm@nosuchtag", nbd.REP_ERR_UNKNOWN), ("vm:99", nbd.REP_ERR_UNKNOWN),
                      ("vm:abc", nbd.REP_ERR_UNKNOWN)):
        for opt in (nbd.OPT_INFO, nbd.OPT_GO):
            try:
                c.info_go(opt, name)
                raise SystemExit("export %r opened" % name)
            except nbd.OptError as e:
                assert e.rep == rep, (name, e)
                assert e.msg, "no reason given for %r" % name
    # after all that, the same connection still gets its export
    c.go("vm")
    assert c.read(0, 512) is not None
    c.disconnect()

# EXPORT_NAME of an unknown export: the connection is closed
with nbd.Conn(port) as c:
    c.start()
    c.send_opt(nbd.OPT_EXPORT_NAME, b"nosuch")
    assert c.is_closed()

# a second writer of vm is refused with the reason while the first holds it
w = nbd.open_export(port, "vm")
with nbd.Conn(port) as c:
    c.start()
    try:
        c.go("vm")
        raise SystemExit("a second writer got vm")
    except nbd.OptError as e:
        assert e.rep == nbd.REP_ERR_POLICY and "vm" in e.msg and "use" in e.msg, e
w.disconnect()
w.close()
PY
assert_alive 1

# --- Bad requests in transmission. ----------------------------------------

nbdpy "$p1" <<'PY' || fail "bad requests"
import os, struct, sys, time
import nbdproto as nbd
port = int(sys.argv[1])
MiB = 1 << 20
SIZE = 64 * MiB

def expect(c, err, cmd, off=0, length=0, flags=0, data=b""):
    try:
        c.command(cmd, off, length, flags, data)
    except nbd.NbdError as e:
        assert e.error == err, "command %d off %d len %d flags 0x%x: error %d, expected %d (%s)" % (
            cmd, off, length, flags, e.error, err, e.msg)
        return e
    raise SystemExit("command %d off %d len %d flags 0x%x accepted" % (cmd, off, length, flags))

for structured in (True, False):
    c = nbd.open_export(port, "vm", structured=structured)
    e = expect(c, nbd.EINVAL, nbd.CMD_READ, SIZE, 1)
    if structured:
        assert "outside" in e.msg and str(SIZE) in e.msg, e.msg
    expect(c, nbd.EINVAL, nbd.CMD_READ, SIZE - 512, 1024)
    expect(c, nbd.EINVAL, nbd.CMD_READ, (1 << 64) - 512, 1024)  # offset + length wraps
    expect(c, nbd.EINVAL, nbd.CMD_READ, 0, 0)
    expect(c, nbd.ENOSPC, nbd.CMD_WRITE, SIZE - 4096, 8192, data=os.urandom(8192))
    expect(c, nbd.EINVAL, nbd.CMD_TRIM, SIZE, 4096)
    expect(c, nbd.ENOSPC, nbd.CMD_WRITE_ZEROES, (1 << 64) - 4096, 8192)
    expect(c, nbd.EOVERFLOW if structured else nbd.EINVAL, nbd.CMD_READ, 0, 32 * MiB + 1)
    # an oversized write is refused and its payload skipped: the stream goes on
    expect(c, nbd.EOVERFLOW if structured else nbd.EINVAL, nbd.CMD_WRITE, 0, 33 * MiB,
           data=b"\xee" * (33 * MiB))
    # flags not allowed for the command, or unknown; unknown commands
    expect(c, nbd.EINVAL, nbd.CMD_READ, 0, 512, nbd.CMD_FLAG_FUA)
    expect(c, nbd.EINVAL, nbd.CMD_WRITE, 0, 512, nbd.CMD_FLAG_REQ_ONE, b"\xee" * 512)
    expect(c, nbd.EINVAL, nbd.CMD_WRITE, 0, 512, 0x8000, b"\xee" * 512)
    expect(c, nbd.EINVAL, nbd.CMD_TRIM, 0, 512, nbd.CMD_FLAG_FAST_ZERO)
    expect(c, nbd.EINVAL, nbd.CMD_FLUSH, 4096, 0)
    expect(c, nbd.EINVAL, nbd.CMD_CACHE, 0, 512)
    expect(c, nbd.EINVAL, 99, 0, 512)
    if not structured:
        expect(c, nbd.EINVAL, nbd.CMD_READ, 0, 512, nbd.CMD_FLAG_DF)
    assert c.read(0, 512) is not None, "the connection did not go on"
    c.disconnect()
    c.close()

# a WRITE too big to skip: an error, then the connection is closed
c = nbd.open_export(port, "vm")
h = c.send_request(nbd.CMD_WRITE, 0, 0xF0000000)
r = c.recv_reply()
assert r.handle == h and r.error == nbd.EOVERFLOW, r
assert c.is_closed(), "connection open after a 3.75 GiB write"
c.close()

# a request with a bad magic closes the connection
c = nbd.open_export(port, "vm")
c.send_request(nbd.CMD_READ, 0, 512, magic=0x12345678)
assert c.is_closed()
c.close()

# vanishing in the middle of a write: nothing of it is applied
with nbd.open_export(port, "vm") as c:
    before = c.read(20 * MiB, MiB)
    c.disconnect()
c = nbd.open_export(port, "vm")
c.send_request(nbd.CMD_WRITE, 20 * MiB, MiB, data=b"\xee" * (MiB // 2))
time.sleep(0.3)
c.close()
# the lock of the vanished writer is released: GO as a writer succeeds
deadline = time.time() + 10
while True:
    try:
        c = nbd.open_export(port, "vm")
        break
    except nbd.OptError as e:
        if e.rep != nbd.REP_ERR_POLICY or time.time() > deadline:
            raise
        time.sleep(0.1)
assert c.read(20 * MiB, MiB) == before, "a write cut short was applied"
c.disconnect()
c.close()
PY
assert_alive 1

# the data of the first story is intact, through the other sheep too
nbdpy "$p0" >"$SD_TMP/after.sha" <<'PY' || fail "checksum through sheep 0"
import hashlib, sys
import nbdproto as nbd
with nbd.open_export(int(sys.argv[1]), "vm") as c:
    print(hashlib.sha256(c.read(0, 32 << 20) + c.read(32 << 20, 32 << 20)).hexdigest())
    c.disconnect()
PY
assert_eq "$(cat "$SD_TMP/before.sha")" "$(cat "$SD_TMP/after.sha")" "vm after the bad input"

# --- The connection limit (sheep 1: --nbd max-connections=4). -------------

nbdpy "$p1" <<'PY' || fail "connection limit"
import sys, time
import nbdproto as nbd
port = int(sys.argv[1])
held = []
deadline = time.time() + 10
while len(held) < 4:  # connections of the stories above may still be closing
    c = nbd.Conn(port)
    try:
        c.greeting()
        held.append(c)
    except nbd.Closed:
        c.close()
        if time.time() > deadline:
            raise SystemExit("fewer than 4 connections accepted")
        time.sleep(0.1)
extra = nbd.Conn(port)
try:
    extra.greeting()
    raise SystemExit("a fifth connection got the greeting")
except nbd.Closed:
    pass
extra.close()
held.pop().close()
deadline = time.time() + 10
while True:  # the freed slot is noticed once its thread ends
    c = nbd.Conn(port)
    try:
        c.start()
        break
    except nbd.Closed:
        c.close()
        if time.time() > deadline:
            raise SystemExit("no connection accepted after one closed")
        time.sleep(0.1)
assert "vm" in c.list()
c.close()
for h in held:
    h.close()
PY
assert_alive 1
assert_alive 0

# --- The handshake's time limit. ------------------------------------------

wait "$slow" || fail "the slowloris client failed"
read -r slow_closed slow_s <"$SD_TMP/slow.s"
((slow_closed == 1 && slow_s >= 25 && slow_s <= 40)) ||
	fail "a stalled handshake: closed=$slow_closed after ${slow_s}s, expected closed after ~30s"
assert_alive 0

# --- Configuration: the keys, the flag over them, bad values. -------------

printf 'nbd_port = %s\nnbd_address = 127.0.0.1\nnbd_max_connections = 1\n' \
	"$(nbd_port 2)" >"$SD_TMP/n2.conf"
start_sheep 2 --config "$SD_TMP/n2.conf" --nbd max-connections=2
wait_for_sheep 2
nbdpy "$(nbd_port 2)" <<'PY' || fail "sheep 2 on its configured NBD port"
import sys
import nbdproto as nbd
a, b = nbd.Conn(int(sys.argv[1])), nbd.Conn(int(sys.argv[1]))
a.start()
b.start()  # the flag's max-connections=2 overrides the key's 1
assert "vm" in a.list()
c = nbd.Conn(int(sys.argv[1]))
try:
    c.greeting()
    raise SystemExit("a third connection was served")
except nbd.Closed:
    pass
PY
kill_sheep 2 TERM
refuse() { # DESCRIPTION PATTERN ARGS...
	local what=$1 pattern=$2 out rc=0
	shift 2
	out=$(timeout 10 "$SHEEP" -f -c "local:$SD_TMP/shm2" -p "$(port_of 3)" \
		-l "dir=$SD_TMP/n3" "$@" "$SD_TMP/n3" 2>&1) || rc=$?
	((rc == 1)) || fail "$what: exit status $rc ($out)"
	[[ $out =~ $pattern ]] || fail "$what: '$out' does not match /$pattern/"
}
refuse "--nbd port=65536" "invalid --nbd 'port=65536'" --nbd port=65536
refuse "--nbd bogus=1" "invalid --nbd 'bogus=1'" --nbd bogus=1
refuse "--nbd max-connections=0" "invalid --nbd" --nbd max-connections=0
refuse "--nbd address=nowhere" "invalid --nbd" --nbd address=nowhere
refuse "a configured NBD port in use" "cannot serve NBD on port $p0" --nbd "$p0"

# --- SIGTERM with a writer connected: exit at once, lock released. --------

closed_before=$(grep -c "nbd: .*export vm closed" "$(node_dir 1)/sheep.log")
nbdpy "$p1" "$SD_TMP/holder.ready" <<'PY' &
import sys, time
import nbdproto as nbd
c = nbd.open_export(int(sys.argv[1]), "vm")
c.write(0, b"\x5a" * 4096)
open(sys.argv[2], "w").close()
time.sleep(60)
PY
holder=$!
wait_for "the NBD writer on sheep 1" test -e "$SD_TMP/holder.ready"
start=$(now_ms)
kill_sheep 1 TERM
assert_eq 0 "$SD_LAST_STATUS" "sheep 1 exit status after SIGTERM"
(($(now_ms) - start < 8000)) || fail "sheep 1 took $(($(now_ms) - start)) ms to exit with an NBD client"
closed_after=$(grep -c "nbd: .*export vm closed" "$(node_dir 1)/sheep.log")
((closed_after == closed_before + 1)) || fail "sheep 1 did not close its export on SIGTERM"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
wait_for_nodes 0 1
nbdpy "$p0" <<'PY' || fail "vm after sheep 1 stopped"
import sys
import nbdproto as nbd
with nbd.open_export(int(sys.argv[1]), "vm") as c:
    assert c.read(0, 4096) == b"\x5a" * 4096
    c.disconnect()
PY
assert_alive 0
pass
