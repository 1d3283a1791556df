#!/usr/bin/env bash
# Clients cannot exhaust a sheep's memory: 32 connections each announce a
# 60 MiB write and push 48 MiB of it (1.5 GiB in all), then stall. The sheep
# holds at most its payload budget (512 MiB) of them, keeps answering small
# requests meanwhile, and once the clients go away serves large writes again.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

start_cluster 3
format_cluster 3
dog_p 0 vdi create test 16M
head -c 4M /dev/urandom >"$SD_TMP/data"
dog_p 0 vdi write test 0 4M <"$SD_TMP/data"
vid=$(dog_p 0 vdi list -r test | awk '{print $8}')
pid=${SD_PIDS[0]}

python3 - "$(port_of 0)" "$vid" "$pid" "$SD_SOURCE_DIR/tests/functional" \
	"$SD_TMP/data" <<'PY'
import socket, sys, threading
sys.path.insert(0, sys.argv[4])
import sdproto as sd

port, vid, pid = int(sys.argv[1]), int(sys.argv[2], 16), int(sys.argv[3])
data = open(sys.argv[5], 'rb').read()
announced, pushed = 60 << 20, 48 << 20
chunk = b"\xaa" * (1 << 20)
socks = []

def attack():
    s = socket.create_connection(("127.0.0.1", port))
    socks.append(s)
    hdr = sd.obj_req(sd.OP_WRITE_OBJ, sd.data_oid(vid, 0), payload=b"")
    hdr.flags |= 0x01
    raw = bytearray(hdr.encode(7))
    raw[12:16] = announced.to_bytes(4, "little")
    s.settimeout(5)
    try:
        s.sendall(raw)
        for _ in range(pushed >> 20):
            s.sendall(chunk)
    except (socket.timeout, OSError):
        pass  # the sheep stopped reading: that is the point

threads = [threading.Thread(target=attack) for _ in range(32)]
for t in threads:
    t.start()
for t in threads:
    t.join(60)

def rss_mib():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) >> 10

rss = rss_mib()
print("sheep RSS with 32 stalled 60 MiB writes: %d MiB" % rss)
assert rss < 1024, "sheep holds %d MiB for stalled clients" % rss

# Small requests still get answers, from a fresh connection.
rsp, got = sd.call(port, sd.obj_req(sd.OP_READ_OBJ, sd.data_oid(vid, 0),
                                    length=4096), timeout=20)
assert rsp.result == sd.RES_SUCCESS and got == data[:4096], rsp
for s in socks:
    s.close()
PY

# The memory comes back: a whole-object write and a read go through.
head -c 4M /dev/urandom >"$SD_TMP/data2"
dog_p 1 vdi write test 4M 4M <"$SD_TMP/data2"
dog_p 0 vdi read test 4M 4M | cmp -s - "$SD_TMP/data2" || fail "write after the stall differs"
dog_p 0 vdi read test 0 4M | cmp -s - "$SD_TMP/data" || fail "old data changed"
for i in 0 1 2; do assert_alive "$i"; done
pass
