#!/usr/bin/env python3
"""Raw access to the sheepdog wire protocol, for the functional tests.

A request or a reply is a 48-byte little-endian header (spec section 1),
followed by data_length payload bytes: after a request only when it has the
WRITE flag, after a reply always. This module builds and parses those
headers byte by byte, opens TCP connections to a sheep, sends raw bytes or
whole requests, and collects replies matched by id. Every socket operation
has a deadline, so a test using it cannot hang on a silent server.

Used from bash as `python3 sdproto.py SUBCOMMAND ...` (see --help), or
imported by small inline scripts:

    import sdproto as sd
    with sd.Conn(port) as c:
        rsp, data = c.request(sd.obj_req(sd.OP_READ_OBJ, oid, length=4096))
        assert rsp.result == sd.RES_SUCCESS

Only the standard library is used.
"""

import argparse
import random
import select
import socket
import struct
import sys
import time

HEADER_SIZE = 48
PROTO_VER = 0x02        # public requests as dog sends them
SHEEP_PROTO_VER = 0x0a  # internal requests (opcode >= 0x80)
MAX_PAYLOAD = 64 << 20  # the daemon's limit on one request's data_length

# Opcodes (spec 2.2); the names follow the spec without the SD_OP_ prefix.
OPCODES = {
    "CREATE_AND_WRITE_OBJ": 0x01, "READ_OBJ": 0x02, "WRITE_OBJ": 0x03,
    "REMOVE_OBJ": 0x04, "DISCARD_OBJ": 0x05, "NEW_VDI": 0x11,
    "LOCK_VDI": 0x12, "RELEASE_VDI": 0x13, "GET_VDI_INFO": 0x14,
    "READ_VDIS": 0x15, "FLUSH_VDI": 0x16, "DEL_VDI": 0x17,
    "GET_CLUSTER_DEFAULT": 0x18,
    "GET_NODE_LIST": 0x82, "MAKE_FS": 0x84, "SHUTDOWN": 0x85,
    "STAT_SHEEP": 0x86, "STAT_CLUSTER": 0x87, "GET_VDI_ATTR": 0x89,
    "GET_STORE_LIST": 0x90, "STAT_RECOVERY": 0x97, "KILL_NODE": 0x9a,
    "GET_OBJ_LIST": 0xa1, "GET_EPOCH": 0xa2,
    "CREATE_AND_WRITE_PEER": 0xa3, "READ_PEER": 0xa4, "WRITE_PEER": 0xa5,
    "REMOVE_PEER": 0xa6, "ENABLE_RECOVER": 0xa8, "DISABLE_RECOVER": 0xa9,
    "GET_VDI_COPIES": 0xab, "MD_INFO": 0xb1,
    "GET_HASH": 0xb4, "STAT": 0xb8, "GET_LOGLEVEL": 0xb9,
    "REPAIR_REPLICA": 0xc5,
    "SET_LOGLEVEL": 0xba, "EXIST": 0xbd, "CLUSTER_INFO": 0xbe,
    "READ_DEL_VDIS": 0xc9, "GET_VNODES": 0xcd,
}
for _name, _code in OPCODES.items():
    globals()["OP_" + _name] = _code

# Result codes (spec 3).
RESULTS = {
    "SUCCESS": 0x00, "UNKNOWN": 0x01, "NO_OBJ": 0x02, "EIO": 0x03,
    "VDI_EXIST": 0x04, "INVALID_PARMS": 0x05, "SYSTEM_ERROR": 0x06,
    "VDI_LOCKED": 0x07, "NO_VDI": 0x08, "NO_BASE_VDI": 0x09,
    "VDI_READ": 0x0a, "VDI_WRITE": 0x0b, "NO_TAG": 0x0e, "STARTUP": 0x0f,
    "VDI_NOT_LOCKED": 0x10, "SHUTDOWN": 0x11, "NO_MEM": 0x12,
    "FULL_VDI": 0x13, "VER_MISMATCH": 0x14, "NO_SPACE": 0x15,
    "WAIT_FOR_FORMAT": 0x16, "WAIT_FOR_JOIN": 0x17, "HALT": 0x19,
    "READONLY": 0x1a, "OLD_NODE_VER": 0x81, "NEW_NODE_VER": 0x82,
    "NETWORK_ERROR": 0x86, "BUFFER_SMALL": 0x88, "NO_SUPPORT": 0x8b,
    "KILLED": 0x8d,
}
for _name, _code in RESULTS.items():
    globals()["RES_" + _name] = _code
RESULT_NAMES = {v: k for k, v in RESULTS.items()}

FLAG_WRITE = 0x01
FLAG_COW = 0x02
FLAG_CACHE = 0x04
FLAG_DIRECT = 0x08

# Object ids (spec 4.1) and the inode layout (spec 5).
OID_VDI = 1 << 63
OID_VMSTATE = 1 << 62
INODE_SIZE = 12587576
INODE_HEADER_SIZE = 4664
INODE_DATA_VDI_ID = 4664
INODE_QEMU_READ = 4198968  # header + index, as QEMU reads it
VDI_BITMAP_SIZE = 1 << 21
NODE_SIZE = 80
CLUSTER_INFO_SIZE = 491568


def vdi_oid(vid):
    return OID_VDI | (vid << 32)


def data_oid(vid, idx):
    return (vid << 32) | idx


def vmstate_oid(vid, idx):
    return OID_VMSTATE | (vid << 32) | idx


def result_name(code):
    return RESULT_NAMES.get(code, "0x%02x" % code)


class Timeout(Exception):
    """The server said nothing within the deadline."""


class Closed(Exception):
    """The server closed the connection."""


# ---- headers ----------------------------------------------------------------

_HDR = struct.Struct("<BBHIII")  # proto_ver opcode flags epoch id data_length


def default_proto(opcode):
    return SHEEP_PROTO_VER if opcode >= 0x80 else PROTO_VER


def header(opcode, proto_ver=None, flags=0, epoch=0, req_id=0,
           data_length=0, body=b""):
    """A 48-byte request header; body is the 32 opcode-specific bytes."""
    if proto_ver is None:
        proto_ver = default_proto(opcode)
    if len(body) > 32:
        raise ValueError("header body is %d bytes, at most 32" % len(body))
    return (_HDR.pack(proto_ver, opcode, flags, epoch, req_id, data_length)
            + body + bytes(32 - len(body)))


def obj_body(oid=0, cow_oid=0, copies=0, copy_policy=0, ec_index=0,
             tgt_epoch=0, offset=0):
    """The obj variant. offset is QEMU's u64 at 40..47."""
    return struct.pack("<QQBBBxIQ", oid, cow_oid, copies, copy_policy,
                       ec_index, tgt_epoch, offset)


def vdi_body(vdi_size=0, base_vdi_id=0, copies=0, copy_policy=0,
             store_policy=0, block_size_shift=0, snapid=0, lock_type=0):
    return struct.pack("<QIBBBBII8x", vdi_size, base_vdi_id, copies,
                       copy_policy, store_policy, block_size_shift, snapid,
                       lock_type)


def forw_body(oid=0, addr="127.0.0.1", port=0):
    """The forw variant (REPAIR_REPLICA): oid, the source's 16-byte
    address (IPv4 as 12 zero bytes and the 4 address bytes), port."""
    if isinstance(addr, str):
        addr = bytes(12) + socket.inet_aton(addr)
    return struct.pack("<Q16sH6x", oid, addr, port)


def cluster_body(ctime=0, copies=0, copy_policy=0, flags=0, nodes_nr=0,
                 block_size_shift=0):
    return struct.pack("<QQBBHIIB3x", 0, ctime, copies, copy_policy, flags,
                       0, nodes_nr, block_size_shift)


class Request:
    """A request: its header fields, its payload, and its 48 header bytes."""

    def __init__(self, opcode, payload=b"", proto_ver=None, flags=None,
                 epoch=0, req_id=None, data_length=None, body=b""):
        self.opcode = opcode
        self.payload = bytes(payload)
        if flags is None:
            flags = FLAG_WRITE if payload else 0
        if data_length is None:
            data_length = len(self.payload)
        self.proto_ver = proto_ver
        self.flags = flags
        self.epoch = epoch
        self.id = req_id
        self.data_length = data_length
        self.body = body

    def encode(self, req_id=None):
        if req_id is not None:
            self.id = req_id
        return header(self.opcode, self.proto_ver, self.flags, self.epoch,
                      self.id or 0, self.data_length, self.body)

    def wire(self, req_id=None):
        """Header plus payload, as the server should receive them."""
        return self.encode(req_id) + self.payload


def obj_req(opcode, oid, length=0, offset=0, payload=None, copies=0,
            cow_oid=0, flags=None, **kw):
    """An object request: a read of `length` bytes, or a write of payload."""
    if payload is not None:
        length = len(payload)
        if flags is None:
            flags = FLAG_WRITE
    return Request(opcode, payload or b"", flags=flags or 0,
                   data_length=length,
                   body=obj_body(oid=oid, cow_oid=cow_oid, copies=copies,
                                 offset=offset), **kw)


def vdi_name_payload(name, tag=b"", with_tag=True):
    """name[256] (+ tag[256]), NUL padded, as QEMU and dog send it."""
    if isinstance(name, str):
        name = name.encode()
    if isinstance(tag, str):
        tag = tag.encode()
    p = name.ljust(256, b"\0")[:256]
    if with_tag:
        p += tag.ljust(256, b"\0")[:256]
    return p


class Response:
    """A decoded 48-byte reply header; raw keeps all the bytes."""

    def __init__(self, raw):
        if len(raw) != HEADER_SIZE:
            raise ValueError("a reply header is 48 bytes, got %d" % len(raw))
        self.raw = bytes(raw)
        (self.proto_ver, self.opcode, self.flags, self.epoch, self.id,
         self.data_length) = _HDR.unpack_from(raw, 0)
        self.result = struct.unpack_from("<I", raw, 16)[0]

    def u8(self, off):
        return self.raw[off]

    def u32(self, off):
        return struct.unpack_from("<I", self.raw, off)[0]

    def u64(self, off):
        return struct.unpack_from("<Q", self.raw, off)[0]

    # the named variants (spec 1.3)
    @property
    def vdi_id(self):
        return self.u32(24)

    @property
    def nr_nodes(self):
        return self.u32(20)

    @property
    def digest(self):
        """GET_HASH: the SHA-1 at 24..43, as hex."""
        return self.raw[24:44].hex()

    def __repr__(self):
        return ("<rsp op=0x%02x id=%#x result=%s epoch=%d data_length=%d>"
                % (self.opcode, self.id, result_name(self.result),
                   self.epoch, self.data_length))


# ---- connections ------------------------------------------------------------

class Conn:
    """One TCP connection to a sheep. Every wait is bounded by `timeout`."""

    def __init__(self, port, host="127.0.0.1", timeout=20.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rbuf = bytearray()
        self.pending = {}   # replies that arrived before anyone asked
        self.next_id = random.Random(port).randrange(1, 1 << 30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def vanish(self):
        """Close with a reset (SO_LINGER 0) instead of an orderly FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.close()

    def shutdown_write(self):
        """Half-close; a connection the server already reset is fine."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def send(self, data):
        """Send raw bytes; a server that already closed is not an error
        here (the caller asserts what it expects)."""
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def _fill(self, need, deadline):
        while len(self.rbuf) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("no data within the deadline (have %d of %d)"
                              % (len(self.rbuf), need))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(max(need - len(self.rbuf), 1 << 20))
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed("closed by the server (have %d of %d bytes)"
                             % (len(self.rbuf), need))
            self.rbuf += chunk

    def reply_ready(self):
        """True if reply bytes have arrived (without waiting)."""
        if self.rbuf or self.pending:
            return True
        r, _, _ = select.select([self.sock], [], [], 0)
        return bool(r)

    def recv_reply(self, timeout=None):
        """The next reply on the wire, in arrival order: (Response, data)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self._fill(HEADER_SIZE, deadline)
        rsp = Response(self.rbuf[:HEADER_SIZE])
        self._fill(HEADER_SIZE + rsp.data_length, deadline)
        data = bytes(self.rbuf[HEADER_SIZE:HEADER_SIZE + rsp.data_length])
        del self.rbuf[:HEADER_SIZE + rsp.data_length]
        return rsp, data

    def wait_reply(self, req_id, timeout=None):
        """The reply to req_id; replies to other ids are kept for later."""
        if req_id in self.pending:
            return self.pending.pop(req_id)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            rsp, data = self.recv_reply(max(deadline - time.monotonic(),
                                            0.001))
            if rsp.id == req_id:
                return rsp, data
            if rsp.id in self.pending:
                raise AssertionError("two replies with id %#x" % rsp.id)
            self.pending[rsp.id] = (rsp, data)

    def alloc_id(self):
        self.next_id = (self.next_id + 1) & 0xffffffff
        return self.next_id

    def submit(self, req, req_id=None):
        """Send a request without waiting; returns its id."""
        if req_id is None:
            req_id = req.id if req.id is not None else self.alloc_id()
        if not self.send(req.wire(req_id)):
            raise Closed("closed by the server while sending")
        return req_id

    def request(self, req, req_id=None, timeout=None):
        """Send a request and wait for its reply: (Response, data)."""
        return self.wait_reply(self.submit(req, req_id), timeout)

    def wait_closed(self, timeout=None):
        """Read (and discard) until the server closes. Returns the replies
        seen on the way; raises Timeout if the connection stays open."""
        seen = []
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                seen.append(self.recv_reply(max(deadline - time.monotonic(),
                                                0.001)))
            except Closed:
                return seen

    def drain_until_closed(self, timeout=None):
        """Discard bytes, unparsed, until the server closes: how many."""
        total = len(self.rbuf)
        self.rbuf.clear()
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("the server kept the connection open")
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                return total
            if not chunk:
                return total
            total += len(chunk)


def call(port, req, timeout=20.0):
    """One request on a fresh connection: (Response, data)."""
    with Conn(port, timeout=timeout) as c:
        return c.request(req)


def expect(rsp, result, what=""):
    if rsp.result != result:
        raise AssertionError("%s: expected %s, got %s (%r)"
                             % (what or "request", result_name(result),
                                result_name(rsp.result), rsp))


def garbage(nbytes, seed):
    """Deterministic random bytes."""
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(nbytes))


# ---- command line -----------------------------------------------------------

def _int(s):
    return int(s, 0)


def _payload(args):
    if args.payload_hex is not None:
        return bytes.fromhex(args.payload_hex)
    if args.payload_file is not None:
        with open(args.payload_file, "rb") as f:
            return f.read()
    if args.payload_zero is not None:
        return bytes(args.payload_zero)
    if args.name is not None:
        return vdi_name_payload(args.name, args.tag or "",
                                with_tag=args.tag is not None)
    return b""


def _print_reply(rsp, data, args):
    print("result=0x%02x %s id=%#x opcode=0x%02x epoch=%d data_length=%d"
          % (rsp.result, result_name(rsp.result), rsp.id, rsp.opcode,
             rsp.epoch, rsp.data_length))
    for spec in args.field or []:
        off, size = (int(x, 0) for x in spec.split(":"))
        val = int.from_bytes(rsp.raw[off:off + size], "little")
        print("rsp[%d:%d]=%d" % (off, off + size, val))
    if args.out:
        with open(args.out, "wb") as f:
            f.write(data)


def cmd_req(args):
    opcode = args.op if isinstance(args.op, int) else OPCODES[args.op]
    payload = _payload(args)
    flags = args.flags
    if flags is None:
        flags = FLAG_WRITE if payload else 0
    if opcode in (0x11, 0x12, 0x13, 0x14, 0x17):
        body = vdi_body(vdi_size=args.vdi_size, base_vdi_id=args.vid,
                        snapid=args.snapid)
    elif opcode in (0x84, 0x87):
        body = cluster_body(copies=args.copies, nodes_nr=args.nodes_nr)
    else:
        body = obj_body(oid=args.oid, cow_oid=args.cow_oid,
                        copies=args.copies, tgt_epoch=args.tgt_epoch,
                        offset=args.offset)
    dlen = args.data_length if args.data_length is not None else len(payload)
    req = Request(opcode, payload, proto_ver=args.proto, flags=flags,
                  epoch=args.epoch, req_id=args.id, data_length=dlen,
                  body=body)
    with Conn(args.port, args.host, args.timeout) as c:
        rsp, data = c.request(req)
    _print_reply(rsp, data, args)
    if args.expect is not None:
        want = args.expect if isinstance(args.expect, int) else \
            RESULTS[args.expect]
        if rsp.result != want:
            print("expected %s" % result_name(want), file=sys.stderr)
            return 1
    return 0


def cmd_raw(args):
    if args.hex is not None:
        data = bytes.fromhex(args.hex)
    elif args.file is not None:
        with open(args.file, "rb") as f:
            data = f.read()
    else:
        data = garbage(args.random, args.seed)
    with Conn(args.port, args.host, args.timeout) as c:
        c.send(data)
        if args.close:
            return 0
        c.shutdown_write()
        try:
            n = c.drain_until_closed()
        except Timeout:
            print("still open after %.0fs" % args.timeout)
            return 1
    print("closed by server after %d reply bytes" % n)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--timeout", type=float, default=20.0)
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("req", help="send one request, print the reply")
    r.add_argument("port", type=int)
    r.add_argument("op", type=lambda s: OPCODES[s] if s in OPCODES
                   else int(s, 0), help="opcode name or number")
    r.add_argument("--proto", type=_int)
    r.add_argument("--flags", type=_int)
    r.add_argument("--epoch", type=_int, default=0)
    r.add_argument("--id", type=_int, default=1)
    r.add_argument("--data-length", type=_int)
    r.add_argument("--oid", type=_int, default=0)
    r.add_argument("--cow-oid", type=_int, default=0)
    r.add_argument("--offset", type=_int, default=0)
    r.add_argument("--copies", type=_int, default=0)
    r.add_argument("--tgt-epoch", type=_int, default=0)
    r.add_argument("--vid", type=_int, default=0)
    r.add_argument("--vdi-size", type=_int, default=0)
    r.add_argument("--snapid", type=_int, default=0)
    r.add_argument("--nodes-nr", type=_int, default=0)
    r.add_argument("--name", help="payload: name[256] (+tag[256] with --tag)")
    r.add_argument("--tag")
    r.add_argument("--payload-hex")
    r.add_argument("--payload-file")
    r.add_argument("--payload-zero", type=_int, metavar="N")
    r.add_argument("--field", action="append", metavar="OFF:SIZE",
                   help="also print reply header bytes as a LE integer")
    r.add_argument("--out", help="write the reply payload here")
    r.add_argument("--expect", type=lambda s: RESULTS[s] if s in RESULTS
                   else int(s, 0), help="exit 1 unless the result is this")
    r.set_defaults(fn=cmd_req)

    w = sub.add_parser("raw", help="send raw bytes, wait for the close")
    w.add_argument("port", type=int)
    g = w.add_mutually_exclusive_group(required=True)
    g.add_argument("--hex")
    g.add_argument("--file")
    g.add_argument("--random", type=_int, metavar="N")
    w.add_argument("--seed", type=_int, default=0)
    w.add_argument("--close", action="store_true",
                   help="close right after sending instead of waiting")
    w.set_defaults(fn=cmd_raw)

    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except (Timeout, Closed, OSError) as e:
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
