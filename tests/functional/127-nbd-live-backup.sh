#!/usr/bin/env bash
# The nightly backup of a running VM: a writer stays connected to vm over
# NBD (as QEMU would) while sheepdog-backup runs three times; every run
# snapshots the VDI under the writer and writes a stream. Between the runs
# the writer changes the first 20 MiB; all the while a second thread keeps
# writing into the last 4 MiB, also during the runs. Each restored point
# holds exactly the first 20 MiB the writer had when its snapshot was taken,
# the writer never sees an error and keeps its lock, and the working VDI
# holds everything.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

need_python_nbd
TOOL=$SD_BUILD_DIR/sheepdog-backup
[[ -x $TOOL ]] || fail "no sheepdog-backup binary at $TOOL"

start_cluster 3
format_cluster 2
wait_nbd 1
assert_exit 0 dog_p 0 vdi create vm 24M

cat >"$SD_TMP/backup.conf" <<EOF
target = $SD_TMP/backups
dog = $DOG
address = 127.0.0.1
port = $(port_of 2)
vdis = vm
keep = 5
keep_snapshots = 5
full_every = 0
EOF

# The writer: phases of scattered writes into the first 20 MiB, a backup
# run after each; a thread writes into the last 4 MiB all the time.
"$PY" - "nbd://127.0.0.1:$(nbd_port 1)/vm" "$SD_TMP" "$TOOL" <<'PY' ||
import nbd, random, subprocess, sys, threading
uri, tmp, tool = sys.argv[1:4]
M = 1 << 20
rnd = random.Random(127)
h = nbd.NBD()  # libnbd handles may be used from several threads
h.connect_uri(uri)
img = bytearray(24 * M)
stop = threading.Event()
noise = {"n": 0, "err": None}
def churn():
    r = random.Random(1)
    try:
        while not stop.is_set():
            off = 20 * M + r.randrange(0, 4 * M - 65536, 4096)
            data = r.randbytes(65536)
            h.pwrite(data, off)
            img[off:off + 65536] = data
            noise["n"] += 1
    except Exception as e:
        noise["err"] = e
t = threading.Thread(target=churn)
t.start()
for phase in range(3):
    for _ in range(40):
        n = rnd.choice((4096, 65536, M))
        off = rnd.randrange(0, 20 * M - n, 4096)
        data = rnd.randbytes(n)
        h.pwrite(data, off)
        img[off:off + n] = data
    open("%s/point%d" % (tmp, phase + 1), "wb").write(img[:20 * M])
    r = subprocess.run([tool, "-c", tmp + "/backup.conf", "run"],
                       capture_output=True, text=True)
    if r.returncode != 0 or r.stdout or r.stderr:
        stop.set()
        sys.exit("backup run %d: exit %d, %s %s" % (phase + 1, r.returncode,
                                                    r.stdout, r.stderr))
stop.set()
t.join()
if noise["err"] or noise["n"] < 10:
    sys.exit("the churning writer: %r after %d writes" % (noise["err"], noise["n"]))
print("churning writer: %d writes of 64 KiB during the runs" % noise["n"])
# the writer goes on after the last backup
h.pwrite(b"\xee" * M, 5 * M)
img[5 * M:6 * M] = b"\xee" * M
open("%s/final" % tmp, "wb").write(img)
h.shutdown()
PY
	fail "the writer or a backup run failed"

"$TOOL" -c "$SD_TMP/backup.conf" list >"$SD_TMP/list" || fail "list failed"
assert_eq 3 "$(grep -c '^vm ' "$SD_TMP/list")" "restore points: $(cat "$SD_TMP/list")"
for p in 1 2 3; do
	"$TOOL" -c "$SD_TMP/backup.conf" restore vm $p "r$p" ||
		fail "restoring point $p failed"
	dog_p $((p % 3)) vdi read "r$p" 0 20M | cmp -s - "$SD_TMP/point$p" ||
		fail "point $p does not hold what the writer had written before its snapshot"
done
dog_p 0 vdi read vm | cmp -s - "$SD_TMP/final" || fail "the working VDI differs from what was written"
wait_for "the writer's lock to go" bash -c "! '$DOG' vdi lock list -p $(port_of 0) | grep -qw vm"
for i in 0 1 2; do assert_alive $i; done
pass
