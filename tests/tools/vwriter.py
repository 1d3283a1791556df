#!/usr/bin/env python3
"""Verifying writer: random 4 KiB writes to a preallocated VDI, every
acknowledged one checked later.

`write` overwrites random blocks of a VDI created with `dog vdi create -P`
(so only WRITE_OBJ to existing data objects is needed, never an inode
update) through a list of sheep ports, moving to the next port every
--switch-every requests (so every sheep is a gateway in turn) and failing
over to it when a connection breaks or a request fails. Every block
written carries its own identity: a magic, the block's byte offset, a
sequence number and this run's nonce, a filler derived from them, and a
SHA-256 of all that, so a block read back tells which write it came from.

Each write ends either acknowledged (SUCCESS from some port; a retry sends
the same bytes, so a late copy of an earlier attempt cannot differ) or
uncertain (every attempt failed within --retry-for seconds: the old or the
new content is acceptable). The expected state of every block stays in
memory and is dumped as JSON to --state on pause and at the end.

`verify` loads that state and reads back every block ever written, through
any live port: a block must hold its last acknowledged write or one of the
uncertain writes after it (zeros if nothing was acknowledged; an uncertain
write from before the last acknowledged one does not count). A block that
holds an older write or zeros instead of an acknowledged one is lost; one
whose content is no version of the block at all (bad checksum, another
block's data, another run's) is corrupt.

While writing, a sample of blocks is read back and checked the same way
(--check-every). --progress keeps the counters in a file a driver can
poll. --pause-file lets a driver (tests/soak.sh) stop the writes, get the
state dumped and run `verify` against a quiet VDI: when the file appears
the writer goes idle, dumps the state and creates PAUSE_FILE.ack, and it
resumes (removing the .ack) once the file is gone.

Only the standard library and tests/functional/sdproto.py are used.
"""

import argparse
import hashlib
import json
import os
import random
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "functional"))
import sdproto as sd  # noqa: E402

MAGIC = b"VWRITER1"
_HDR = struct.Struct("<8sQQQ")  # magic, byte offset, seq, nonce
SUM_LEN = 32

# Results after which retrying cannot help: the writer or the VDI is wrong.
PERMANENT = {sd.RES_INVALID_PARMS, sd.RES_READONLY, sd.RES_NO_VDI,
             sd.RES_VER_MISMATCH, sd.RES_NO_SUPPORT}


class Fatal(Exception):
    """A condition the writer cannot continue from."""


def log(msg):
    sys.stderr.write("vwriter %s: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# ---- block contents -----------------------------------------------------

def block_bytes(off, seq, nonce, bs):
    """The content of write `seq` to the block at byte offset `off`."""
    hdr = _HDR.pack(MAGIC, off, seq, nonce)
    body = hdr + hashlib.shake_128(hdr).digest(bs - len(hdr) - SUM_LEN)
    return body + hashlib.sha256(body).digest()


def decode_block(data, bs):
    """(off, seq, nonce) if data is a well-formed block, else None."""
    if len(data) != bs or data[:8] != MAGIC:
        return None
    body = data[:bs - SUM_LEN]
    if hashlib.sha256(body).digest() != data[bs - SUM_LEN:]:
        return None
    _, off, seq, nonce = _HDR.unpack_from(data)
    return off, seq, nonce


class State:
    """What every block written so far may hold.

    blocks maps a block number to [acked, uncertain]: acked is the seq of
    the last acknowledged write (0: none, the block still reads as zeros
    unless an uncertain write landed), uncertain the seqs of the writes
    after it whose outcome is unknown.
    """

    def __init__(self, vdi, vid, vdi_size, obj_size, bs, nonce):
        self.vdi, self.vid = vdi, vid
        self.vdi_size, self.obj_size, self.bs = vdi_size, obj_size, bs
        self.nonce = nonce
        self.blocks = {}
        self.lock = threading.Lock()
        self.next_seq = 1

    @property
    def nr_blocks(self):
        return self.vdi_size // self.bs

    def new_seq(self):
        with self.lock:
            seq = self.next_seq
            self.next_seq += 1
            return seq

    def acked(self, blk, seq):
        self.blocks[blk] = [seq, []]

    def uncertain(self, blk, seq):
        self.blocks.setdefault(blk, [0, []])[1].append(seq)

    def content(self, blk, seq):
        if seq == 0:
            return bytes(self.bs)
        return block_bytes(blk * self.bs, seq, self.nonce, self.bs)

    def judge(self, blk, data):
        """None if data is acceptable for blk, else (kind, description)
        with kind "lost" or "corrupt"."""
        acked, unsure = self.blocks[blk]
        for seq in [acked] + unsure:
            if data == self.content(blk, seq):
                return None
        want = "seq %d" % acked if acked else "zeros"
        if unsure:
            want += " or uncertain seq %s" % ",".join(map(str, unsure))
        if not any(data):
            return "lost", "reads zeros, expected %s" % want
        got = decode_block(data, self.bs)
        if got is None:
            return "corrupt", "not a block written by vwriter (expected %s)" \
                % want
        off, seq, nonce = got
        if nonce != self.nonce:
            return "corrupt", "data of another run (seq %d), expected %s" \
                % (seq, want)
        if off != blk * self.bs:
            return "corrupt", "holds block %d's seq %d, expected %s" \
                % (off // self.bs, seq, want)
        if seq < acked:
            return "lost", "holds older seq %d, expected %s" % (seq, want)
        return "corrupt", "holds seq %d, never written here, expected %s" \
            % (seq, want)

    def dump(self, path):
        doc = {"version": 1, "vdi": self.vdi, "vid": self.vid,
               "vdi_size": self.vdi_size, "obj_size": self.obj_size,
               "block_size": self.bs, "nonce": self.nonce,
               "next_seq": self.next_seq,
               "blocks": {str(b): v for b, v in self.blocks.items()}}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            doc = json.load(f)
        if doc.get("version") != 1:
            raise Fatal("%s: unknown state version %r"
                        % (path, doc.get("version")))
        st = cls(doc["vdi"], doc["vid"], doc["vdi_size"], doc["obj_size"],
                 doc["block_size"], doc["nonce"])
        st.next_seq = doc["next_seq"]
        st.blocks = {int(b): v for b, v in doc["blocks"].items()}
        return st


# ---- talking to the cluster with failover -------------------------------

class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}

    def add(self, key, n=1):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n

    def get(self, key):
        return self.c.get(key, 0)

    def kinds(self, prefix):
        return {k[len(prefix):]: v for k, v in sorted(self.c.items())
                if k.startswith(prefix)}


class Client:
    """One connection at a time to one of the ports; on a failure the
    connection is dropped and the next port is tried."""

    def __init__(self, args, counters, start=0):
        self.host, self.ports = args.host, args.ports
        self.timeout, self.retry_for = args.timeout, args.retry_for
        self.quiet = args.quiet
        self.counters = counters
        self.i = start % len(self.ports)
        self.conn = None
        self.switch_every = getattr(args, "switch_every", 0)
        self.served = 0

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def _fail_over(self):
        self.close()
        self.i = (self.i + 1) % len(self.ports)

    def _connect(self):
        if self.switch_every and self.served >= self.switch_every:
            self._fail_over()
        if self.conn is None:
            self.served = 0
            self.conn = sd.Conn(self.ports[self.i], self.host, self.timeout)
        return self.conn

    def call(self, make_req, what):
        """Send make_req() until some port answers SUCCESS: (True, rsp,
        data). (False, None, None) once --retry-for seconds have passed
        without that. Connection refusals (a port nobody listens on, a
        sheep that is down) are counted apart from errors. After each
        round of failures over all the ports the next round waits a little
        longer (50 ms doubling to 1 s), and failures are logged at most
        every 2 seconds."""
        deadline = time.monotonic() + self.retry_for
        failures = 0
        pause = 0.05
        last_log = 0.0
        while True:
            port = self.ports[self.i]
            try:
                conn = self._connect()
                rsp, data = conn.request(make_req())
                self.served += 1
                if rsp.result == sd.RES_SUCCESS:
                    return True, rsp, data
                kind = sd.result_name(rsp.result)
                why = kind
            except ConnectionRefusedError:
                kind, why = None, None
            except (sd.Timeout, sd.Closed, OSError) as e:
                kind = type(e).__name__
                why = "%s: %s" % (kind, e)
            if kind is None:
                self.counters.add("refused")
            else:
                self.counters.add("error:" + kind)
                if kind in sd.RESULTS and sd.RESULTS[kind] in PERMANENT:
                    raise Fatal("%s via port %d: %s" % (what, port, why))
                if not self.quiet and time.monotonic() - last_log > 2:
                    log("%s via port %d: %s" % (what, port, why))
                    last_log = time.monotonic()
            self._fail_over()
            if time.monotonic() > deadline:
                return False, None, None
            failures += 1
            if failures % len(self.ports) == 0:
                time.sleep(pause)
                pause = min(pause * 2, 1.0)


def open_vdi(args, counters):
    """(vid, vdi_size, obj_size) of the VDI; it must be preallocated."""
    client = Client(args, counters)
    ok, rsp, _ = client.call(
        lambda: sd.Request(sd.OP_GET_VDI_INFO,
                           sd.vdi_name_payload(args.vdi)),
        "GET_VDI_INFO %s" % args.vdi)
    if not ok:
        raise Fatal("cannot look up VDI %s through ports %s"
                    % (args.vdi, args.ports))
    vid = rsp.vdi_id
    ok, _, hdr = client.call(
        lambda: sd.obj_req(sd.OP_READ_OBJ, sd.vdi_oid(vid),
                           length=sd.INODE_HEADER_SIZE),
        "read inode of %s" % args.vdi)
    if not ok:
        raise Fatal("cannot read the inode of %s" % args.vdi)
    vdi_size = struct.unpack_from("<Q", hdr, 536)[0]
    store_policy, shift = hdr[553], hdr[555]
    obj_size = 1 << shift
    nr_objs = (vdi_size + obj_size - 1) // obj_size
    if store_policy != 0:
        raise Fatal("VDI %s is a hyper volume; use a flat, preallocated one"
                    % args.vdi)
    ok, _, index = client.call(
        lambda: sd.obj_req(sd.OP_READ_OBJ, sd.vdi_oid(vid),
                           length=4 * nr_objs, offset=sd.INODE_DATA_VDI_ID),
        "read index of %s" % args.vdi)
    if not ok:
        raise Fatal("cannot read the index of %s" % args.vdi)
    slots = struct.unpack("<%dI" % nr_objs, index)
    if any(s != vid for s in slots):
        raise Fatal("VDI %s is not preallocated (create it with "
                    "`dog vdi create -P`)" % args.vdi)
    client.close()
    return vid, vdi_size, obj_size


# ---- write mode -----------------------------------------------------------

class Writer:
    def __init__(self, args, state, counters):
        self.args, self.st, self.counters = args, state, counters
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.idle = threading.Semaphore(0)
        self.resume = threading.Event()
        self.fatal = None
        self.problems = []

    def _oid_off(self, blk):
        off = blk * self.st.bs
        return (sd.data_oid(self.st.vid, off // self.st.obj_size),
                off % self.st.obj_size)

    def write_block(self, client, blk):
        seq = self.st.new_seq()
        data = self.st.content(blk, seq)
        oid, off = self._oid_off(blk)
        ok, _, _ = client.call(
            lambda: sd.obj_req(sd.OP_WRITE_OBJ, oid, offset=off,
                               payload=data),
            "write block %d seq %d" % (blk, seq))
        if ok:
            self.st.acked(blk, seq)
            self.counters.add("acked")
        else:
            self.st.uncertain(blk, seq)
            self.counters.add("uncertain")
            log("write block %d seq %d: no port acknowledged it within "
                "%gs; outcome uncertain" % (blk, seq, self.args.retry_for))

    def check_block(self, client, blk):
        oid, off = self._oid_off(blk)
        ok, _, data = client.call(
            lambda: sd.obj_req(sd.OP_READ_OBJ, oid, length=self.st.bs,
                               offset=off),
            "read block %d" % blk)
        if not ok:
            self.counters.add("read_failed")
            log("read block %d: no port answered within %gs"
                % (blk, self.args.retry_for))
            return
        self.counters.add("checked")
        bad = self.st.judge(blk, data)
        if bad:
            self.counters.add("check_" + bad[0])
            msg = "block %d (%s): %s" % (blk, bad[0], bad[1])
            self.problems.append(msg)
            log("read-back check: " + msg)

    def worker(self, wid):
        rng = random.Random((self.args.seed or 0) * 1000003 + wid)
        jobs = self.args.jobs
        mine = list(range(wid, self.st.nr_blocks, jobs))
        written = []
        written_set = set()
        client = Client(self.args, self.counters, start=wid)
        n = 0
        try:
            while not self.stop.is_set():
                if self.pause.is_set():
                    client.close()
                    self.idle.release()
                    self.resume.wait()
                    continue
                blk = rng.choice(mine)
                self.write_block(client, blk)
                if blk not in written_set:
                    written_set.add(blk)
                    written.append(blk)
                n += 1
                if self.args.check_every and n % self.args.check_every == 0:
                    self.check_block(client, rng.choice(written))
        except Fatal as e:
            self.fatal = str(e)
            self.stop.set()
        finally:
            client.close()

    def run(self):
        args = self.args
        threads = [threading.Thread(target=self.worker, args=(i,),
                                    daemon=True) for i in range(args.jobs)]
        end = time.monotonic() + args.duration if args.duration else None
        for t in threads:
            t.start()
        ack = args.pause_file + ".ack" if args.pause_file else None
        last_progress = 0
        while not self.stop.is_set():
            if args.progress and time.monotonic() - last_progress > 0.2:
                self.write_progress()
                last_progress = time.monotonic()
            if end and time.monotonic() > end:
                break
            if args.stop_file and os.path.exists(args.stop_file):
                break
            if ack and os.path.exists(args.pause_file):
                self.do_pause(len(threads), ack)
                continue
            time.sleep(0.02)
        self.resume.set()
        self.stop.set()
        for t in threads:
            t.join()
        if args.progress:
            self.write_progress()

    def write_progress(self):
        """The counters so far, for a driver to wait on (atomic replace)."""
        c = self.counters
        doc = {k: c.get(k) for k in ("acked", "uncertain", "checked",
                                     "check_lost", "check_corrupt",
                                     "read_failed")}
        doc["errors"] = sum(c.kinds("error:").values())
        tmp = self.args.progress + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, self.args.progress)

    def do_pause(self, nr_threads, ack):
        """Stop writing, dump the state, acknowledge; resume when the pause
        file is gone."""
        self.resume.clear()
        self.pause.set()
        for _ in range(nr_threads):
            while not self.idle.acquire(timeout=0.1):
                if self.stop.is_set():
                    return
        if self.args.state:
            self.st.dump(self.args.state)
        open(ack, "w").close()
        while os.path.exists(self.args.pause_file):
            if self.args.stop_file and os.path.exists(self.args.stop_file):
                break
            time.sleep(0.02)
        os.unlink(ack)
        self.pause.clear()
        self.resume.set()


def cmd_write(args):
    counters = Counters()
    vid, vdi_size, obj_size = open_vdi(args, counters)
    if args.size:
        vdi_size = min(vdi_size, args.size)
    nonce = random.SystemRandom().getrandbits(63)
    st = State(args.vdi, vid, vdi_size, obj_size, args.block_size, nonce)
    if obj_size % args.block_size:
        raise Fatal("the block size %d does not divide the object size %d"
                    % (args.block_size, obj_size))
    if st.nr_blocks < args.jobs:
        raise Fatal("VDI %s has only %d blocks of %d bytes"
                    % (args.vdi, st.nr_blocks, args.block_size))
    log("writing %d-byte blocks to %s (vid %x, %d blocks) through ports %s"
        % (args.block_size, args.vdi, vid, st.nr_blocks,
           ",".join(map(str, args.ports))))
    w = Writer(args, st, counters)
    t0 = time.monotonic()
    w.run()
    elapsed = time.monotonic() - t0
    if args.state:
        st.dump(args.state)
    errors = counters.kinds("error:")
    print("writes acknowledged %d, uncertain %d, errors %d%s"
          % (counters.get("acked"), counters.get("uncertain"),
             sum(errors.values()),
             " (%s)" % ", ".join("%s %d" % kv for kv in errors.items())
             if errors else ""))
    print("blocks written %d in %.1fs; read-back checks %d, lost %d, "
          "corrupt %d, unreadable %d"
          % (len(st.blocks), elapsed, counters.get("checked"),
             counters.get("check_lost"), counters.get("check_corrupt"),
             counters.get("read_failed")))
    if w.fatal:
        print("stopped: %s" % w.fatal)
        return 2
    if counters.get("check_lost") or counters.get("check_corrupt"):
        return 1
    return 0


# ---- verify mode ----------------------------------------------------------

def cmd_verify(args):
    st = State.load(args.state)
    if args.vdi and args.vdi != st.vdi:
        raise Fatal("%s holds the state of VDI %s, not %s"
                    % (args.state, st.vdi, args.vdi))
    counters = Counters()
    client = Client(args, counters)
    by_obj = {}
    for blk in st.blocks:
        by_obj.setdefault(blk * st.bs // st.obj_size, []).append(blk)
    verified = lost = corrupt = unreadable = 0
    shown = 0

    def report(msg):
        nonlocal shown
        if shown < args.details:
            print(msg)
        shown += 1

    for idx in sorted(by_obj):
        blks = sorted(by_obj[idx])
        first = blks[0] * st.bs - idx * st.obj_size
        length = (blks[-1] + 1) * st.bs - idx * st.obj_size - first
        oid = sd.data_oid(st.vid, idx)
        ok, _, data = client.call(
            lambda: sd.obj_req(sd.OP_READ_OBJ, oid, length=length,
                               offset=first),
            "read object %016x" % oid)
        if not ok or len(data) != length:
            unreadable += len(blks)
            report("object %016x: unreadable through ports %s (%d blocks)"
                   % (oid, ",".join(map(str, args.ports)), len(blks)))
            continue
        for blk in blks:
            at = blk * st.bs - idx * st.obj_size - first
            bad = st.judge(blk, data[at:at + st.bs])
            verified += 1
            if bad:
                if bad[0] == "lost":
                    lost += 1
                else:
                    corrupt += 1
                report("block %d (object %016x): %s: %s"
                       % (blk, oid, bad[0], bad[1]))
    client.close()
    if shown > args.details:
        print("... and %d more problems" % (shown - args.details))
    print("verified %d blocks, lost %d, corrupt %d%s"
          % (verified, lost, corrupt,
             ", unreadable %d" % unreadable if unreadable else ""))
    return 1 if lost or corrupt or unreadable else 0


# ---- command line ---------------------------------------------------------

def ports_arg(s):
    ports = []
    for part in s.split(","):
        if "-" in part:
            lo, hi = (int(x) for x in part.split("-"))
            ports.extend(range(lo, hi + 1))
        elif part:
            ports.append(int(part))
    if not ports:
        raise argparse.ArgumentTypeError("no ports in %r" % s)
    return ports


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="seconds one request may take (20)")
    ap.add_argument("--retry-for", type=float, default=60.0,
                    help="seconds to keep retrying one request through "
                         "the ports before giving up (60)")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="do not log each failed attempt")
    sub = ap.add_subparsers(dest="cmd", required=True)

    w = sub.add_parser("write", help="write and check random blocks")
    w.add_argument("--vdi", required=True)
    w.add_argument("--ports", type=ports_arg, required=True,
                   help="comma-separated ports or ranges (7000-7004)")
    w.add_argument("--state", help="dump the expected state here (JSON)")
    w.add_argument("--duration", type=float, default=0,
                   help="seconds to write (default: until --stop-file)")
    w.add_argument("--stop-file", help="stop once this file exists")
    w.add_argument("--pause-file",
                   help="go idle and dump the state while this file exists")
    w.add_argument("--progress",
                   help="keep the counters here (JSON, rewritten 5 times "
                        "a second)")
    w.add_argument("--jobs", type=int, default=2,
                   help="concurrent writers, each on its own blocks (2)")
    w.add_argument("--block-size", type=int, default=4096)
    w.add_argument("--size", type=int, default=0,
                   help="use only the first SIZE bytes of the VDI")
    w.add_argument("--switch-every", type=int, default=64,
                   help="move to the next port after N requests, so that "
                        "every sheep serves as a gateway (64; 0: only on "
                        "failures)")
    w.add_argument("--check-every", type=int, default=4,
                   help="read back a random written block every N writes "
                        "(0: never; default 4)")
    w.add_argument("--seed", type=int, default=0)
    w.set_defaults(fn=cmd_write)

    v = sub.add_parser("verify", help="read back every block in a state")
    v.add_argument("--state", required=True)
    v.add_argument("--vdi", help="fail unless the state is of this VDI")
    v.add_argument("--ports", type=ports_arg, required=True)
    v.add_argument("--details", type=int, default=10,
                   help="print the first N problems (10)")
    v.set_defaults(fn=cmd_verify)

    args = ap.parse_args(argv)
    if args.cmd == "write":
        if not args.duration and not args.stop_file:
            ap.error("write needs --duration or --stop-file")
        if args.block_size < 128 or args.block_size % 512:
            ap.error("--block-size must be a multiple of 512")
        if args.jobs < 1:
            ap.error("--jobs must be at least 1")
    try:
        return args.fn(args)
    except Fatal as e:
        print("vwriter: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
