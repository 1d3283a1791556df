#!/usr/bin/env bash
# NBD reads on every path the server has, each checked byte for byte:
#   - 3 sheep, copies=2: a VDI written with a known pattern (with two
#     objects never written, which read as zeros) reads back exactly
#     through every sheep: local objects from the page cache, remote ones
#     pipelined to their holders, holes as zeros; one request spanning
#     objects goes the full way;
#   - a snapshot export keeps its bytes after the working VDI is
#     overwritten;
#   - 32 reads in flight with every answer checked, while a holder is
#     killed with SIGKILL (its reads in flight fail over to the other
#     holder: no error reaches the client) and while it comes back;
#   - a fourth sheep with direct I/O (-D), whose local reads cannot come
#     from the page cache, serves the same bytes.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

need_tools nbdcopy nbdinfo
need_python_nbd

M=1048576
SIZE=64 # MiB: 16 objects
T=${SD_NBD_CLIENT_TIMEOUT:-120}

# The pattern: 4 KiB block b holds 512 copies of the 8 bytes
# (b * 0x9E3779B97F4A7C15 + gen) mod 2^64, little-endian; objects 5 and 11
# are never written (zeros). "py expect GEN FILE" writes the image;
# "py write GEN URI" writes it through NBD.
py() {
	timeout "$T" "$PY" - "$@" <<'EOF'
import struct, sys

import nbd

M = 1048576
SIZE = 64 * M
HOLES = (5, 11)
cmd, gen = sys.argv[1], int(sys.argv[2])

def obj(i):
    buf = bytearray()
    for b in range(i * 1024, (i + 1) * 1024):
        v = (b * 0x9E3779B97F4A7C15 + gen) % (1 << 64)
        buf += struct.pack("<Q", v) * 512
    return bytes(buf)

if cmd == "expect":
    with open(sys.argv[3], "wb") as f:
        for i in range(SIZE // (4 * M)):
            f.write(bytes(4 * M) if i in HOLES else obj(i))
elif cmd == "write":
    h = nbd.NBD()
    h.connect_uri(sys.argv[3])
    for i in range(SIZE // (4 * M)):
        if i not in HOLES:
            h.pwrite(obj(i), i * 4 * M)
    h.flush()
    h.shutdown()
EOF
}

# A reader with 32 requests in flight: random 4 KiB reads (and every 16th
# a 12 KiB read across an object boundary), each answer compared with the
# expected image. Counts go to PROGRESS (rewritten every 500 reads); it
# stops when STOP exists and exits 1 on any error or mismatch.
# (reader.py URI EXPECT PROGRESS STOP)
cat >"$SD_TMP/reader.py" <<'EOF'
import os, random, sys

import nbd

uri, expect, progress, stop = sys.argv[1:5]
data = open(expect, "rb").read()
size = len(data)
h = nbd.NBD()
h.connect_uri(uri)
rng = random.Random(128)
done = bad = errors = 0
inflight = {}

def report():
    tmp = progress + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d %d\n" % (done, bad, errors))
    os.rename(tmp, progress)

def issue():
    n = len(inflight)
    if n % 16 == 0:
        off = rng.randrange(1, size // (4 << 20)) * (4 << 20) - 4096
        ln = 12288
    else:
        off = rng.randrange(size // 4096) * 4096
        ln = 4096
    buf = nbd.Buffer(ln)
    cookie = h.aio_pread(buf, off)
    inflight[cookie] = (buf, off, ln)

while not os.path.exists(stop) or inflight:
    while len(inflight) < 32 and not os.path.exists(stop):
        issue()
    h.poll(-1)
    for cookie in list(inflight):
        try:
            if not h.aio_command_completed(cookie):
                continue
        except nbd.Error as e:
            errors += 1
            print("read error: %s" % e, file=sys.stderr)
            del inflight[cookie]
            continue
        buf, off, ln = inflight.pop(cookie)
        if buf.to_bytearray() != data[off:off + ln]:
            bad += 1
            print("mismatch at %d+%d" % (off, ln), file=sys.stderr)
        done += 1
        if done % 500 == 0:
            report()
report()
h.shutdown()
print("reads %d, mismatches %d, errors %d" % (done, bad, errors))
sys.exit(1 if bad or errors else 0)
EOF
reads_done() { awk '{ print $1 }' "$SD_TMP/progress" 2>/dev/null || echo 0; }
reads_at_least() { (($(reads_done) >= $1)); }

# read_all IDX NAME EXPECT: the whole export through sheep IDX equals EXPECT.
read_all() {
	rm -f "$SD_TMP/got"
	timeout "$T" nbdcopy "$(nbd_uri "$1" "$2")" "$SD_TMP/got" ||
		fail "nbdcopy of $2 through sheep $1 failed"
	cmp "$SD_TMP/got" "$3" || fail "$2 read through sheep $1 differs from what was written"
}

start_cluster 3
format_cluster 2
wait_nbd 0
assert_exit 0 dog_p 0 vdi create vm ${SIZE}M
py expect 1 "$SD_TMP/gen1"
py write 1 "$(nbd_uri 0 vm)"

# --- every sheep serves the same bytes; holes are zeros ---------------------
for i in 0 1 2; do read_all $i vm "$SD_TMP/gen1"; done
# (twice: the second time from the page cache everywhere)
for i in 0 1 2; do read_all $i vm "$SD_TMP/gen1"; done

# --- a snapshot keeps its bytes -------------------------------------------
assert_exit 0 dog_p 0 vdi snapshot -s s1 vm
py expect 2 "$SD_TMP/gen2"
py write 2 "$(nbd_uri 1 vm)"
for i in 0 1 2; do
	read_all $i vm "$SD_TMP/gen2"
	read_all $i vm@s1 "$SD_TMP/gen1"
done

# --- reads in flight while a holder dies and comes back ---------------------
rm -f "$SD_TMP/stop" "$SD_TMP/progress"
setpriv --pdeathsig KILL timeout "$T" "$PY" "$SD_TMP/reader.py" "$(nbd_uri 0 vm)" "$SD_TMP/gen2" "$SD_TMP/progress" \
	"$SD_TMP/stop" >"$SD_TMP/reader.out" 2>&1 &
reader_pid=$!
wait_for "2000 reads checked" reads_at_least 2000
kill_sheep 1 KILL
n=$(reads_done)
wait_for "2000 more reads with sheep 1 dead" reads_at_least $((n + 2000))
start_sheep 1
wait_for_sheep 1
wait_for_nodes 0 3
n=$(reads_done)
wait_for "2000 more reads with sheep 1 back" reads_at_least $((n + 2000))
touch "$SD_TMP/stop"
status=0
wait "$reader_pid" || status=$?
((status == 0)) || fail "the reader saw errors or wrong bytes: $(tail -5 "$SD_TMP/reader.out")"
echo "$(tail -1 "$SD_TMP/reader.out")"
grep -q "mismatches 0, errors 0$" "$SD_TMP/reader.out" || fail "reader: $(cat "$SD_TMP/reader.out")"

# --- a sheep with direct I/O -----------------------------------------------
wait_placed 0 3
start_sheep 3 -D
wait_for_sheep 3
wait_for_nodes 0 4
wait_placed 0 4
read_all 3 vm "$SD_TMP/gen2"
read_all 3 vm@s1 "$SD_TMP/gen1"
read_all 0 vm "$SD_TMP/gen2"

for i in 0 1 2 3; do assert_alive $i; done
pass
