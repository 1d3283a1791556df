#!/usr/bin/env bash
# A writable NBD export owns its VDI's lock, cluster-wide:
#   - while a writer (a libnbd client holding its connection open) is
#     connected through sheep 0, `dog vdi lock list` shows the VDI locked by
#     sheep 0, and a second writer is refused, through the same sheep and
#     through the others, with an error naming the holder (qemu-img,
#     nbdinfo and libnbd are checked for what they print);
#   - nbdinfo --list still lists the exports meanwhile;
#   - a snapshot's read-only export is served meanwhile with the snapshot's
#     bytes, and the server refuses a write to it with EPERM (libnbd's
#     client-side checks off);
#   - a clean disconnect (NBD_CMD_DISC) and an abrupt one (kill -9 of an
#     idle client, and of fio with 32 writes in flight) release the lock,
#     and a new writer gets in;
#   - `dog vdi lock unlock` breaks a connected writer's lock: the server
#     keeps that connection but refuses its writes with EPERM from then on,
#     and a new writer can connect (through another sheep) and write;
#   - `dog vdi snapshot` taken while a writer is connected and writing: the
#     writer's later writes land in the new working VDI, the snapshot keeps
#     the bytes it had.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

need_tools qemu-img nbdinfo nbdcopy fio
need_python_nbd
declare -F nbd_port >/dev/null || fail "lib.sh has no nbd_port: this tree has no NBD server"

M=1048576
T=${SD_NBD_CLIENT_TIMEOUT:-60}

# A client that keeps one NBD connection open and obeys commands, one per
# line on stdin: "SEQ write OFF LEN BYTE" (BYTE in hex), "SEQ read OFF LEN"
# (answers the md5 of the bytes), "SEQ flush", "SEQ quit" (NBD_CMD_DISC,
# then exit). Every command is answered "SEQ ok [...]" or "SEQ err ERRNAME
# MESSAGE". After connecting it prints "READY PID ro=0|1"; if the server
# refuses the connection, "REFUSED ERRNAME MESSAGE" and exit 3. With
# NBD_NOSTRICT=1 libnbd's client-side checks are off, so a write to a
# read-only export reaches the server.
cat >"$SD_TMP/holder.py" <<'PY'
import hashlib, os, sys
import nbd

h = nbd.NBD()
if os.environ.get("NBD_NOSTRICT") == "1":
    h.set_strict_mode(0)
try:
    h.connect_uri(sys.argv[1])
except nbd.Error as e:
    print("REFUSED", e.errno, e.string, flush=True)
    sys.exit(3)
print("READY", os.getpid(), "ro=%d" % h.is_read_only(), flush=True)
for line in sys.stdin:
    w = line.split()
    seq, cmd, args = w[0], w[1], w[2:]
    try:
        if cmd == "write":
            off, n, byte = int(args[0]), int(args[1]), int(args[2], 16)
            h.pwrite(bytes([byte]) * n, off)
            print(seq, "ok", flush=True)
        elif cmd == "read":
            buf = h.pread(int(args[1]), int(args[0]))
            print(seq, "ok", hashlib.md5(buf).hexdigest(), flush=True)
        elif cmd == "flush":
            h.flush()
            print(seq, "ok", flush=True)
        elif cmd == "quit":
            h.shutdown()
            print(seq, "ok", flush=True)
            sys.exit(0)
    except nbd.Error as e:
        print(seq, "err", e.errno, e.string, flush=True)
PY

declare -A H_FD H_PID H_SEQ
# holder_start NAME URI [ENV=VAL...]: start client NAME on URI; leaves its
# first line (READY... or REFUSED...) in HOLDER_STATE.
holder_start() {
	local name=$1 u=$2 fd
	shift 2
	rm -f "$SD_TMP/$name.in" "$SD_TMP/$name.out"
	mkfifo "$SD_TMP/$name.in"
	# The client must not inherit the other clients' fifo ends, or they
	# would never see the end of their input.
	(
		for fd in "${H_FD[@]}"; do exec {fd}>&-; done
		exec env "$@" setpriv --pdeathsig KILL "$PY" "$SD_TMP/holder.py" "$u" \
			<"$SD_TMP/$name.in" >"$SD_TMP/$name.out" 2>&1
	) &
	H_PID[$name]=$!
	exec {fd}>"$SD_TMP/$name.in"
	H_FD[$name]=$fd
	H_SEQ[$name]=0
	wait_for "client $name to connect or be refused" \
		grep -qE '^(READY|REFUSED)' "$SD_TMP/$name.out"
	HOLDER_STATE=$(head -1 "$SD_TMP/$name.out")
}
# holder_cmd NAME CMD...: send one command, wait for its answer, leave it
# (without the sequence number) in REPLY.
holder_cmd() {
	local name=$1 seq
	shift
	seq=$((H_SEQ[$name] + 1))
	H_SEQ[$name]=$seq
	echo "$seq $*" >&"${H_FD[$name]}" || fail "client $name is gone (command $*)"
	wait_for "client $name to answer '$*'" grep -q "^$seq " "$SD_TMP/$name.out"
	REPLY=$(grep "^$seq " "$SD_TMP/$name.out" | head -1)
	REPLY=${REPLY#"$seq "}
}
holder_ok() { # holder_ok NAME CMD...: the command must succeed
	holder_cmd "$@"
	[[ $REPLY == ok* ]] || fail "client $1: '${*:2}' answered '$REPLY'"
}
holder_close() { # holder_close NAME: close its stdin, wait for it to exit
	local name=$1 fd=${H_FD[$1]}
	exec {fd}>&-
	unset "H_FD[$name]"
	wait_exit "${H_PID[$name]}" "$SD_WAIT_TIMEOUT" || fail "client $name did not exit"
	wait "${H_PID[$name]}" 2>/dev/null || true
}
md5_of_byte() { head -c "$2" /dev/zero | tr '\0' "\\$(printf %03o "0x$1")" | md5sum | cut -d' ' -f1; }

lock_row() { dog_p 0 vdi lock list | awk '$1 == "vm" && $2 == 0'; }
locked_by() { # locked_by IDX: vm's lock is held by sheep IDX
	[[ $(lock_row) == *"ip:127.0.0.1 port:$(port_of "$1")" ]]
}
unlocked() { [[ -z $(lock_row) ]]; }

start_cluster 3
format_cluster 2
wait_nbd 0 1 2

assert_exit 0 dog_p 0 vdi create vm 16M
head -c $((8 * M)) /dev/zero | tr '\0' '\1' | dog_p 0 vdi write vm 0 $((8 * M)) ||
	fail "initial dog vdi write failed"
assert_exit 0 dog_p 0 vdi snapshot -s base vm
unlocked || fail "vm locked before any NBD client: $(lock_row)"

# A writer through sheep 0 holds the lock.
holder_start a "$(nbd_uri 0 vm)"
[[ $HOLDER_STATE == "READY "*" ro=0" ]] || fail "first writer: $HOLDER_STATE"
holder_ok a write $((4 * M)) 65536 aa
locked_by 0 || fail "lock list does not show vm locked by sheep 0: '$(dog_p 0 vdi lock list)'"
row=$(dog_p 1 vdi lock list | awk '$1 == "vm"')
[[ -n $row ]] || fail "lock list through sheep 1 does not show vm"

# Second writers are refused, through every sheep, with an error naming the lock.
# The server's message says who holds it: "VDI vm is in use by a writer on
# ADDR:PORT" through another sheep, "... by another NBD writer on this
# sheep" through the holder's; qemu prints it as "server reported: ...".
for i in 0 1 2; do
	qout=$(timeout "$T" qemu-img info "$(nbd_uri "$i" vm)" 2>&1) &&
		fail "qemu-img info through sheep $i opened the locked vm: $qout"
	want="VDI vm is in use by a writer on 127.0.0.1:$(port_of 0)"
	((i == 0)) && want="VDI vm is in use by another NBD writer on this sheep"
	[[ $qout == *"$want"* ]] ||
		fail "qemu-img's refusal through sheep $i does not say '$want': $qout"
done
out=$(timeout "$T" nbdinfo "$(nbd_uri 1 vm)" 2>&1) && fail "nbdinfo opened the locked vm: $out"
holder_start b "$(nbd_uri 2 vm)"
[[ $HOLDER_STATE == REFUSED* ]] || fail "second libnbd writer was not refused: $HOLDER_STATE"
holder_close b
echo "refused: qemu-img said: $(tr '\n' ' ' <<<"$qout")"
echo "refused: nbdinfo said: $(tr '\n' ' ' <<<"$out")"
echo "refused: libnbd said: $HOLDER_STATE"
locked_by 0 || fail "the refused writers changed the lock: '$(lock_row)'"

# A VDI in use is not deleted, rolled back or restored over under its
# writer: each is refused, naming the lock, before anything changes.
dog_p 0 vdi backup -s base vm "$SD_TMP/base.full" || fail "backup of vm@base failed"
before=$(dog_p 0 vdi list -r)
out=$(dog_p 1 vdi delete vm 2>&1)
[[ $out == *"Failed to delete vm: it is in use, locked by 127.0.0.1:$(port_of 0)"* ]] ||
	fail "vdi delete of the locked vm said: $out"
out=$(dog_p 2 vdi rollback -f -s base vm 2>&1) && fail "rollback of the locked vm succeeded: $out"
[[ $out == *"Failed to rollback VDI vm: it is in use"* ]] || fail "rollback of the locked vm said: $out"
assert_exit 1 dog_p 1 vdi restore -s base vm "$SD_TMP/base.full"
# The sheep itself refuses DEL_VDI of a locked VDI, whoever sends it.
python3 - "$SD_SOURCE_DIR/tests/functional" "$(port_of 2)" <<'PY' ||
import sys
sys.path.insert(0, sys.argv[1])
import sdproto as sd
with sd.Conn(int(sys.argv[2])) as c:
    rsp, _ = c.request(sd.Request(sd.OP_DEL_VDI, sd.vdi_name_payload("vm"),
                                  flags=sd.FLAG_WRITE, body=sd.vdi_body()))
    if rsp.result != sd.RES_VDI_LOCKED:
        sys.exit("DEL_VDI of the locked vm answered %s" % sd.result_name(rsp.result))
PY
	fail "a raw DEL_VDI of the locked vm was not refused with VDI_LOCKED"
assert_eq "$before" "$(dog_p 0 vdi list -r)" "vdi list after the refused delete, rollback and restore"
holder_ok a read $((4 * M)) 65536
assert_eq "ok $(md5_of_byte aa 65536)" "$REPLY" "the writer's data after the refusals"
locked_by 0 || fail "the refusals changed the lock: '$(lock_row)'"

# Listing the exports while one is in use still works: NBD_OPT_INFO (which
# nbdinfo --list sends for every export) only looks and needs no lock. (Bug
# found here: nbd.c's open_export opened the export for writing, taking the
# lock, for INFO too, so the listing failed while any VDI had a writer.)
list=$(timeout "$T" nbdinfo --list --json "nbd://127.0.0.1:$(nbd_port 1)" 2>&1) ||
	fail "nbdinfo --list fails while vm has a writer: $list"
names=$(python3 -c 'import json, sys
print(" ".join(sorted(e["export-name"] for e in json.loads(sys.argv[1])["exports"])))' "$list")
assert_eq "vm" "$names" "exports listed while vm has a writer"
locked_by 0 || fail "nbdinfo --list changed the lock: '$(lock_row)'"

# The snapshot is served read-only meanwhile, with its own bytes, and the
# server itself refuses a write to it.
info=$(timeout "$T" nbdinfo --json "$(nbd_uri 1 vm@base)") || fail "nbdinfo vm@base while locked"
[[ $(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["exports"][0]["is_read_only"])' "$info") == True ]] ||
	fail "vm@base is not read-only: $info"
head -c $((8 * M)) /dev/zero | tr '\0' '\1' >"$SD_TMP/base"
head -c $((8 * M)) /dev/zero >>"$SD_TMP/base"
timeout "$T" nbdcopy "$(nbd_uri 2 vm@base)" "$SD_TMP/base.raw" || fail "nbdcopy of vm@base failed"
cmp "$SD_TMP/base" "$SD_TMP/base.raw" || fail "vm@base over NBD differs from the snapshot"
holder_start ro "$(nbd_uri 1 vm@base)" NBD_NOSTRICT=1
[[ $HOLDER_STATE == "READY "*" ro=1" ]] || fail "snapshot export: $HOLDER_STATE"
# proto.md: a write to a read-only export SHOULD fail with EPERM. (Bug
# found here: refused requests answered EIO, because refuse_request passed
# validate_request's negative errno on to nbd_errno.)
holder_cmd ro write 0 4096 ee
[[ $REPLY == "err EPERM "* ]] || fail "a write to vm@base was not refused with EPERM: $REPLY"
echo "write to a snapshot export: $REPLY"
holder_ok ro read 0 4096
assert_eq "ok $(md5_of_byte 01 4096)" "$REPLY" "vm@base after the refused write"
holder_ok ro quit
holder_close ro

# The first writer still works; a clean disconnect releases the lock.
holder_ok a read $((4 * M)) 65536
assert_eq "ok $(md5_of_byte aa 65536)" "$REPLY" "first writer reads its write"
holder_ok a quit
holder_close a
wait_for "the lock to go after a clean disconnect" unlocked

# Next writer through sheep 2; kill -9 of it releases the lock too.
holder_start c "$(nbd_uri 2 vm)"
[[ $HOLDER_STATE == READY* ]] || fail "writer after a clean disconnect: $HOLDER_STATE"
holder_ok c write 0 4096 cc
holder_ok c flush
locked_by 2 || fail "lock list does not show vm locked by sheep 2: '$(lock_row)'"
disown "${H_PID[c]}" # no "Killed" job report
kill -KILL "${H_PID[c]}"
holder_close c
wait_for "the lock to go after the client was killed" unlocked
dog_p 1 vdi read vm 0 4096 | cmp - <(head -c 4096 /dev/zero | tr '\0' '\314') ||
	fail "the killed writer's flushed write is lost"

# kill -9 of a writer with 32 writes in flight (fio, one process: --thread)
# releases the lock too, and the sheep carries on.
(
	cd "$SD_TMP"
	exec setpriv --pdeathsig KILL fio --thread --name=busy --ioengine=nbd \
		--uri="$(nbd_uri 2 vm)" --rw=randwrite --bs=64k --iodepth=32 --size=16M \
		--time_based --runtime=120 --verify_state_save=0 >"$SD_TMP/fio.out" 2>&1
) &
fio_pid=$!
wait_for "fio to hold vm's lock" locked_by 2
# fio is writing once the working VDI owns all 4 objects of its range.
owns_16m() { [[ $(dog_p 0 vdi list -r vm | awk '$1 == "=" { print $5 }') == $((16 * M)) ]]; }
wait_for "fio's writes to allocate vm's objects" owns_16m
disown "$fio_pid"
kill -KILL "$fio_pid"
wait_exit "$fio_pid" "$SD_WAIT_TIMEOUT" || fail "fio outlived kill -9"
wait_for "the lock to go after fio was killed mid-write" unlocked
for i in 0 1 2; do assert_alive "$i"; done

# dog vdi lock unlock breaks a connected writer's lock.
holder_start d "$(nbd_uri 1 vm)"
[[ $HOLDER_STATE == READY* ]] || fail "writer after an abrupt disconnect: $HOLDER_STATE"
holder_ok d write 0 4096 dd
locked_by 1 || fail "lock list does not show vm locked by sheep 1: '$(lock_row)'"
assert_exit 0 dog_p 2 vdi lock unlock vm
unlocked || fail "vm still locked after dog vdi lock unlock: '$(lock_row)'"
# A new writer gets in, through another sheep.
holder_start e "$(nbd_uri 0 vm)"
[[ $HOLDER_STATE == READY* ]] || fail "writer after dog vdi lock unlock: $HOLDER_STATE"
holder_ok e write 0 4096 ee
locked_by 0 || fail "the new writer does not hold the lock: '$(lock_row)'"
# The writer whose lock was broken keeps its connection, but the server
# refuses its every write with EPERM (nbd_export.c: lock_lost), so nothing
# of it lands over the new writer's data.
holder_cmd d write 0 4096 0d
[[ $REPLY == "err EPERM "* ]] || fail "the writer whose lock was broken was not refused with EPERM: $REPLY"
echo "writer after its lock was broken: $REPLY"
holder_close d
holder_ok e read 0 4096
assert_eq "ok $(md5_of_byte ee 4096)" "$REPLY" "new writer's data after the broken writer's attempt"
holder_ok e quit
holder_close e
wait_for "the lock to go" unlocked

# A snapshot taken while a writer is connected and writing.
holder_start f "$(nbd_uri 2 vm)"
[[ $HOLDER_STATE == READY* ]] || fail "writer f: $HOLDER_STATE"
holder_ok f write 0 $((4 * M)) 0a
holder_ok f write $((12 * M)) 65536 0a
holder_ok f flush
dog_p 0 vdi read vm >"$SD_TMP/mid"
assert_exit 0 dog_p 1 vdi snapshot -s mid vm
holder_ok f write 0 $M 0b
holder_ok f write $((8 * M)) $M 0c
holder_ok f write $((12 * M)) 4096 0d
holder_ok f flush
holder_ok f read 0 $M
assert_eq "ok $(md5_of_byte 0b $M)" "$REPLY" "writer reads its post-snapshot write"
dog_p 2 vdi read -s mid vm | cmp - "$SD_TMP/mid" || fail "snapshot 'mid' changed after writes"
cp "$SD_TMP/mid" "$SD_TMP/now"
head -c $M /dev/zero | tr '\0' '\13' | dd of="$SD_TMP/now" bs=$M seek=0 conv=notrunc status=none
head -c $M /dev/zero | tr '\0' '\14' | dd of="$SD_TMP/now" bs=$M seek=8 conv=notrunc status=none
head -c 4096 /dev/zero | tr '\0' '\15' |
	dd of="$SD_TMP/now" bs=4096 seek=$((12 * M / 4096)) conv=notrunc status=none
dog_p 0 vdi read vm | cmp - "$SD_TMP/now" || fail "the working VDI lacks the writes made after the snapshot"
timeout "$T" nbdcopy "$(nbd_uri 0 vm@mid)" "$SD_TMP/mid.raw" || fail "nbdcopy of vm@mid failed"
cmp "$SD_TMP/mid.raw" "$SD_TMP/mid" || fail "vm@mid over NBD differs"
locked_by 2 || fail "the writer lost the lock across the snapshot: '$(lock_row)'"
holder_ok f quit
holder_close f
wait_for "the lock to go" unlocked

for i in 0 1 2; do assert_alive "$i"; done
pass
