#!/usr/bin/env python3
"""A raw NBD client for the functional tests, byte by byte.

It speaks the fixed newstyle handshake and the transmission phase of the NBD
protocol (github.com/NetworkBlockDevice/nbd, doc/proto.md; all integers
big-endian) without hiding anything: a test sends exactly the bytes it wants,
good or bad, and reads back exactly what the server answered. Every socket
operation has a deadline, so a test cannot hang on a silent server; a closed
connection shows as Closed.

    import nbdproto as nbd
    with nbd.Conn(port) as c:
        c.start()                        # greeting and client flags
        c.structured_reply()
        c.set_meta("vm", ["base:allocation"])
        info = c.go("vm")                # dict: size, flags, block sizes
        data = c.read(0, 4096)           # raises NbdError on an error reply

Only the standard library is used.
"""

import socket
import struct

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
STRUCTURED_MAGIC = 0x668E33EF

FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2

# transmission flags
F_HAS_FLAGS = 1 << 0
F_READ_ONLY = 1 << 1
F_SEND_FLUSH = 1 << 2
F_SEND_FUA = 1 << 3
F_ROTATIONAL = 1 << 4
F_SEND_TRIM = 1 << 5
F_SEND_WRITE_ZEROES = 1 << 6
F_SEND_DF = 1 << 7
F_CAN_MULTI_CONN = 1 << 8
F_SEND_RESIZE = 1 << 9
F_SEND_CACHE = 1 << 10
F_SEND_FAST_ZERO = 1 << 11

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_META_CONTEXT = 4
REP_ERR = 1 << 31
REP_ERR_UNSUP = REP_ERR | 1
REP_ERR_POLICY = REP_ERR | 2
REP_ERR_INVALID = REP_ERR | 3
REP_ERR_PLATFORM = REP_ERR | 4
REP_ERR_TLS_REQD = REP_ERR | 5
REP_ERR_UNKNOWN = REP_ERR | 6
REP_ERR_SHUTDOWN = REP_ERR | 7
REP_ERR_TOO_BIG = REP_ERR | 9

INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

CMD_FLAG_FUA = 1 << 0
CMD_FLAG_NO_HOLE = 1 << 1
CMD_FLAG_DF = 1 << 2
CMD_FLAG_REQ_ONE = 1 << 3
CMD_FLAG_FAST_ZERO = 1 << 4

REPLY_FLAG_DONE = 1
REPLY_TYPE_NONE = 0
REPLY_TYPE_OFFSET_DATA = 1
REPLY_TYPE_OFFSET_HOLE = 2
REPLY_TYPE_BLOCK_STATUS = 5
REPLY_TYPE_ERROR = 32769
REPLY_TYPE_ERROR_OFFSET = 32770

EPERM = 1
EIO = 5
ENOMEM = 12
EINVAL = 22
ENOSPC = 28
EOVERFLOW = 75
ENOTSUP = 95
ESHUTDOWN = 108

STATE_HOLE = 1
STATE_ZERO = 2

MAX_PAYLOAD = 32 << 20


class Closed(Exception):
    """The server closed the connection."""


class NbdError(Exception):
    """An error reply to a command: .error is the NBD errno, .msg the text
    of a structured ERROR chunk (empty for a simple reply)."""

    def __init__(self, error, msg=""):
        super().__init__("NBD error %d%s" % (error, ": " + msg if msg else ""))
        self.error = error
        self.msg = msg


class OptError(Exception):
    """An error reply to an option: .rep is the NBD_REP_ERR_* value."""

    def __init__(self, opt, rep, msg):
        super().__init__("option %d: reply 0x%x: %s" % (opt, rep, msg))
        self.opt = opt
        self.rep = rep
        self.msg = msg


class Reply:
    """One transmission reply or structured chunk."""

    def __init__(self, handle, error=0, flags=REPLY_FLAG_DONE, rtype=None,
                 payload=b"", structured=False):
        self.handle = handle
        self.error = error
        self.flags = flags
        self.type = rtype
        self.payload = payload
        self.structured = structured

    @property
    def done(self):
        return not self.structured or bool(self.flags & REPLY_FLAG_DONE)

    def __repr__(self):
        return "Reply(handle=%d, error=%d, flags=%d, type=%s, %d bytes)" % (
            self.handle, self.error, self.flags, self.type, len(self.payload))


class Conn:
    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.structured = False
        self.handle = 0
        self.size = None
        self.flags = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- bytes ----

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed(str(e))

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            except ConnectionResetError as e:
                raise Closed(str(e))
            if not chunk:
                raise Closed("connection closed after %d of %d bytes" %
                             (len(buf), n))
            buf += chunk
        return bytes(buf)

    def is_closed(self, wait=5.0):
        """True if the server closes the connection within wait seconds
        (any bytes it still sends are read and dropped)."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    # ---- handshake ----

    def greeting(self):
        """The server's 18 opening bytes."""
        return self.recv_exact(18)

    def start(self, cflags=FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES):
        g = self.greeting()
        magic, opt, hflags = struct.unpack(">QQH", g)
        assert magic == NBDMAGIC and opt == IHAVEOPT, g.hex()
        self.no_zeroes = bool(cflags & FLAG_NO_ZEROES)
        self.send(struct.pack(">I", cflags))
        return hflags

    def send_opt(self, opt, data=b"", length=None):
        if length is None:
            length = len(data)
        self.send(struct.pack(">QII", IHAVEOPT, opt, length) + data)

    def opt_reply(self):
        """(option, reply type, data) of one option reply."""
        magic, opt, rtype, length = struct.unpack(">QIII", self.recv_exact(20))
        assert magic == REP_MAGIC, "option reply magic 0x%x" % magic
        assert length <= 1 << 20, "option reply of %d bytes" % length
        return opt, rtype, self.recv_exact(length)

    def opt_replies(self, opt, data=b""):
        """Send an option, collect its replies up to the ACK. An error
        reply raises OptError."""
        self.send_opt(opt, data)
        out = []
        while True:
            o, rtype, rdata = self.opt_reply()
            assert o == opt, "reply for option %d to option %d" % (o, opt)
            if rtype & REP_ERR:
                raise OptError(opt, rtype, rdata.decode(errors="replace"))
            if rtype == REP_ACK:
                return out
            out.append((rtype, rdata))

    def list(self):
        names = []
        for rtype, data in self.opt_replies(OPT_LIST):
            assert rtype == REP_SERVER, rtype
            (n,) = struct.unpack(">I", data[:4])
            names.append(data[4:4 + n].decode())
        return names

    def structured_reply(self):
        self.opt_replies(OPT_STRUCTURED_REPLY)
        self.structured = True

    @staticmethod
    def meta_data(name, queries):
        b = name.encode()
        data = struct.pack(">I", len(b)) + b + struct.pack(">I", len(queries))
        for q in queries:
            qb = q.encode()
            data += struct.pack(">I", len(qb)) + qb
        return data

    def meta(self, opt, name, queries):
        """{context id: name} from LIST_ or SET_META_CONTEXT."""
        out = {}
        for rtype, data in self.opt_replies(opt, self.meta_data(name, queries)):
            assert rtype == REP_META_CONTEXT, rtype
            (cid,) = struct.unpack(">I", data[:4])
            out[cid] = data[4:].decode()
        return out

    def set_meta(self, name, queries):
        return self.meta(OPT_SET_META_CONTEXT, name, queries)

    @staticmethod
    def info_data(name, infos=()):
        b = name.encode()
        return (struct.pack(">I", len(b)) + b + struct.pack(">H", len(infos)) +
                b"".join(struct.pack(">H", i) for i in infos))

    def info_go(self, opt, name, infos=()):
        """Replies of INFO or GO, parsed into a dict; GO enters transmission."""
        info = {}
        for rtype, data in self.opt_replies(opt, self.info_data(name, infos)):
            assert rtype == REP_INFO, rtype
            (itype,) = struct.unpack(">H", data[:2])
            if itype == INFO_EXPORT:
                info["size"], info["flags"] = struct.unpack(">QH", data[2:])
            elif itype == INFO_NAME:
                info["name"] = data[2:].decode()
            elif itype == INFO_DESCRIPTION:
                info["description"] = data[2:].decode()
            elif itype == INFO_BLOCK_SIZE:
                info["block_size"] = struct.unpack(">III", data[2:])
            else:
                info.setdefault("unknown", []).append(itype)
        if opt == OPT_GO:
            self.size, self.flags = info["size"], info["flags"]
        return info

    def go(self, name, infos=()):
        return self.info_go(OPT_GO, name, infos)

    def info(self, name, infos=()):
        return self.info_go(OPT_INFO, name, infos)

    def export_name(self, name):
        """The old ending of the handshake: (size, flags, padding length)."""
        self.send_opt(OPT_EXPORT_NAME, name.encode())
        self.size, self.flags = struct.unpack(">QH", self.recv_exact(10))
        pad = 0
        if not self.no_zeroes:
            z = self.recv_exact(124)
            assert z == bytes(124), "padding is not zeroes"
            pad = 124
        return self.size, self.flags, pad

    # ---- transmission ----

    def next_handle(self):
        self.handle += 1
        return self.handle

    def send_request(self, cmd, offset=0, length=0, flags=0, data=b"",
                     handle=None, magic=REQUEST_MAGIC):
        if handle is None:
            handle = self.next_handle()
        self.send(struct.pack(">IHHQQI", magic, flags, cmd, handle, offset,
                              length) + data)
        return handle

    def recv_reply(self, read_len=0):
        """One simple reply or structured chunk. read_len: the length of
        the READ this simple reply answers (its data follows)."""
        (magic,) = struct.unpack(">I", self.recv_exact(4))
        if magic == SIMPLE_MAGIC:
            error, handle = struct.unpack(">IQ", self.recv_exact(12))
            payload = self.recv_exact(read_len) if read_len and not error else b""
            return Reply(handle, error=error, payload=payload)
        assert magic == STRUCTURED_MAGIC, "reply magic 0x%x" % magic
        flags, rtype, handle, length = struct.unpack(">HHQI",
                                                     self.recv_exact(16))
        assert length <= MAX_PAYLOAD + 64, "chunk of %d bytes" % length
        payload = self.recv_exact(length)
        r = Reply(handle, flags=flags, rtype=rtype, payload=payload,
                  structured=True)
        if rtype in (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET):
            r.error, mlen = struct.unpack(">IH", payload[:6])
            r.msg = payload[6:6 + mlen].decode(errors="replace")
        return r

    def command(self, cmd, offset=0, length=0, flags=0, data=b""):
        """Send one command and collect its reply chunks up to DONE. An
        error raises NbdError; returns the list of replies."""
        h = self.send_request(cmd, offset, length, flags, data)
        chunks = []
        while True:
            r = self.recv_reply(length if cmd == CMD_READ else 0)
            assert r.handle == h, "reply for handle %d, expected %d" % (r.handle, h)
            if r.error:
                # an error chunk may be followed by others until DONE
                while not r.done:
                    r2 = self.recv_reply()
                    r = r2 if not r2.error else r
                raise NbdError(r.error, getattr(r, "msg", ""))
            chunks.append(r)
            if r.done:
                return chunks

    def read(self, offset, length, flags=0):
        chunks = self.command(CMD_READ, offset, length, flags)
        if not self.structured:
            return chunks[0].payload
        buf = bytearray(length)
        for r in chunks:
            if r.type == REPLY_TYPE_OFFSET_DATA:
                (off,) = struct.unpack(">Q", r.payload[:8])
                d = r.payload[8:]
                buf[off - offset:off - offset + len(d)] = d
            elif r.type == REPLY_TYPE_OFFSET_HOLE:
                off, n = struct.unpack(">QI", r.payload)
                buf[off - offset:off - offset + n] = bytes(n)
        return bytes(buf)

    def write(self, offset, data, flags=0):
        self.command(CMD_WRITE, offset, len(data), flags, data)

    def flush(self):
        self.command(CMD_FLUSH)

    def trim(self, offset, length, flags=0):
        self.command(CMD_TRIM, offset, length, flags)

    def zero(self, offset, length, flags=0):
        self.command(CMD_WRITE_ZEROES, offset, length, flags)

    def block_status(self, offset, length, flags=0):
        """[(length, flags), ...] of the BLOCK_STATUS chunk."""
        chunks = self.command(CMD_BLOCK_STATUS, offset, length, flags)
        out = []
        for r in chunks:
            assert r.type == REPLY_TYPE_BLOCK_STATUS, r
            n = (len(r.payload) - 4) // 8
            for i in range(n):
                out.append(struct.unpack(">II", r.payload[4 + 8 * i:12 + 8 * i]))
        return out

    def disconnect(self):
        self.send_request(CMD_DISC)


def open_export(port, name, structured=True, meta=True, **kw):
    """A connection in transmission on export name."""
    c = Conn(port, **kw)
    c.start()
    if structured:
        c.structured_reply()
        if meta:
            c.set_meta(name, ["base:allocation"])
    c.go(name)
    return c
