#!/usr/bin/env bash
# Peer requests that claim a newer epoch than the receiver's wait for it to
# catch up without holding a worker: while 32 of them are parked on a sheep,
# another client's write through the cluster still completes, and its reply
# arrives before any of theirs. The parked ones are then refused with
# NEW_NODE_VER, and nothing they carried is written.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

start_cluster 3
format_cluster 3
dog_p 0 vdi create test 16M
head -c 4M /dev/urandom >"$SD_TMP/data"
dog_p 0 vdi write test 0 4M <"$SD_TMP/data"
vid=$(dog_p 0 vdi list -r test | awk '{print $8}')

python3 - "$(port_of 0)" "$(port_of 1)" "$vid" "$SD_SOURCE_DIR/tests/functional" <<'PY'
import sys
sys.path.insert(0, sys.argv[4])
import sdproto as sd

p0, p1, vid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3], 16)
oid = sd.data_oid(vid, 0)
epoch = sd.call(p1, sd.Request(sd.OP_GET_CLUSTER_DEFAULT))[0].epoch
conns = []
for k in range(2):
    c = sd.Conn(p1, timeout=30)
    for i in range(16):
        c.submit(sd.obj_req(sd.OP_WRITE_PEER, oid, payload=b"z" * 4096,
                            epoch=epoch + 100), 100 * k + i)
    conns.append(c)
rsp, _ = sd.call(p0, sd.obj_req(sd.OP_WRITE_OBJ, oid, payload=b"y" * 4096,
                                copies=3), timeout=60)
assert rsp.result == sd.RES_SUCCESS, rsp
# The write is done; none of the parked requests may have been answered yet.
for c in conns:
    assert not c.reply_ready(), "a parked request was answered before the bystander's write"
for c in conns:
    for i in range(16):
        r, _ = c.recv_reply(60)
        assert r.result == sd.RES_NEW_NODE_VER, r
PY

# Object 0 holds the bystander's bytes then the original data; no 'z'.
python3 - "$SD_TMP/data" <<'PY' >"$SD_TMP/expect"
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[0:4096] = b"y" * 4096
sys.stdout.buffer.write(d)
PY
for i in 0 1 2; do
	dog_p "$i" vdi read test 0 4M | cmp -s - "$SD_TMP/expect" ||
		fail "data through node $i is not what the bystander wrote"
	assert_alive "$i"
done
pass
