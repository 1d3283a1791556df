#!/usr/bin/env bash
# Upstream's v1 backup stream (spec 10): `vdi backup -O v1` writes it
# exactly (checked by an independent parser that applies it to the older
# snapshot), `vdi restore` reads it back, and a stream this test builds
# byte by byte from the spec restores as the spec says; malformed v1
# streams are refused with nothing changed. Then the progress line: drawn
# on a terminal for read, write, backup, restore, verify and cluster
# snapshot save and load, absent otherwise.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

need_tools script

start_cluster 3
format_cluster 2
M=1048576
SIZE=$((20 * M))

# 1 MiB objects: 20 of them
assert_exit 0 dog_p 0 vdi create -z 20 vm $SIZE
head -c $((12 * M)) /dev/urandom >"$SD_TMP/s1"
truncate -s $SIZE "$SD_TMP/s1"
dog_p 0 vdi write vm <"$SD_TMP/s1" || fail "write failed"
assert_exit 0 dog_p 0 vdi snapshot -s s1 vm

cp "$SD_TMP/s1" "$SD_TMP/s2"
# a few sectors in one object, a whole object, one object zeroed, and data
# in an object that was a hole
python3 - "$SD_TMP/s2" <<'PY'
import os, sys
M = 1 << 20
with open(sys.argv[1], "r+b") as f:
    for off, n in ((3 * M + 512 * 7, 512 * 3), (5 * M, M), (15 * M + 4096, 8192)):
        f.seek(off)
        f.write(os.urandom(n))
    f.seek(9 * M)
    f.write(bytes(M))
PY
dog_p 1 vdi write vm <"$SD_TMP/s2" || fail "second write failed"
assert_exit 0 dog_p 0 vdi snapshot -s s2 vm

# ---- the stream dog writes is upstream's, exactly ----
assert_exit 64 dog_p 0 vdi backup -O v1 -s s2 vm "$SD_TMP/x"
dog_p 2 vdi backup -O v1 -F s1 -s s2 vm >"$SD_TMP/v1" || fail "v1 backup failed"
python3 - "$SD_TMP/v1" "$SD_TMP/s1" "$SD_TMP/s2" <<'PY' || fail "the v1 stream is not what spec 10 describes"
import struct, sys
data = open(sys.argv[1], "rb").read()
img = bytearray(open(sys.argv[2], "rb").read())
want = open(sys.argv[3], "rb").read()
M = 1 << 20
assert struct.unpack_from("<II", data, 0) == (1, 0x11921192), "header"
pos, idxs = 8, []
while True:
    idx, off, length, reserved = struct.unpack_from("<IIII", data, pos)
    pos += 16
    if idx == 0xFFFFFFFF:
        assert (off, length, reserved) == (0, 0, 0), "end marker"
        break
    assert reserved == 0 and off % 512 == 0 and length % 512 == 0, "record"
    assert length > 0 and off + length <= M, "record bounds"
    idxs.append(idx)
    img[idx * M + off: idx * M + off + length] = data[pos:pos + length]
    pos += length
assert pos == len(data), "bytes after the end marker"
assert img == want, "applying the stream to s1 does not give s2"
# one record per changed object, in order, trimmed to the changed sectors
assert idxs == [3, 5, 9, 15], idxs
first = struct.unpack_from("<IIII", data, 8)
assert first == (3, 512 * 7, 512 * 3, 0), first
PY

# ---- restoring it: upstream's semantics ----
"$DOG" backup verify "$SD_TMP/v1" | grep -q "v1 stream, 4 records" || fail "verify of v1"
assert_exit 64 dog_p 0 vdi restore vm <"$SD_TMP/v1"
assert_exit 0 dog_p 0 vdi restore -s s1 vm <"$SD_TMP/v1"
dog_p 1 vdi read vm | cmp -s - "$SD_TMP/s2" || fail "v1 round trip differs"
for s in s1 s2; do
	dog_p 2 vdi read -s $s vm | cmp -s - "$SD_TMP/$s" || fail "snapshot $s changed"
done

# ---- a stream built byte by byte from spec 10 ----
python3 - "$SD_TMP/hand" "$SD_TMP/s1" "$SD_TMP/hand.img" <<'PY'
import struct, sys
M = 1 << 20
img = bytearray(open(sys.argv[2], "rb").read())
out = bytearray(struct.pack("<II", 1, 0x11921192))
for idx, off, length, byte in ((0, 512, 1024, 0x41), (2, 0, 4096, 0x42),
                               (2, 8192, 512, 0x43), (19, M - 512, 512, 0x44)):
    out += struct.pack("<IIII", idx, off, length, 0) + bytes([byte]) * length
    img[idx * M + off: idx * M + off + length] = bytes([byte]) * length
out += struct.pack("<IIII", 0xFFFFFFFF, 0, 0, 0)
open(sys.argv[1], "wb").write(out)
open(sys.argv[3], "wb").write(img)
PY
assert_exit 0 dog_p 1 vdi restore -s s1 vm "$SD_TMP/hand"
dog_p 0 vdi read vm | cmp -s - "$SD_TMP/hand.img" || fail "hand-built v1 stream restored wrong"

# ---- malformed v1 streams change nothing ----
state() {
	dog_p 0 vdi list -r
	dog_p 0 vdi read vm | md5sum
	dog_p 0 vdi read -s s1 vm | md5sum
}
state >"$SD_TMP/before"
bad() { # bad NAME PYTHON-BYTES-EXPRESSION [MESSAGE]
	local pat=${3:-The backup file is corrupted}
	python3 -c "import struct,sys; sys.stdout.buffer.write($2)" >"$SD_TMP/$1"
	local got=0
	dog_p 0 vdi restore -s s1 vm <"$SD_TMP/$1" 2>"$SD_TMP/err" || got=$?
	[[ $got -eq 1 ]] || fail "v1 stream '$1' was not refused (exit $got)"
	grep -q "$pat" "$SD_TMP/err" ||
		fail "v1 stream '$1': $(cat "$SD_TMP/err")"
}
END='struct.pack("<IIII", 0xFFFFFFFF, 0, 0, 0)'
bad version 'struct.pack("<II", 2, 0x11921192) + '"$END"
bad no-end 'struct.pack("<II", 1, 0x11921192) + struct.pack("<IIII", 0, 0, 512, 0) + bytes(512)'
bad short-data 'struct.pack("<II", 1, 0x11921192) + struct.pack("<IIII", 0, 0, 1024, 0) + bytes(512)'
bad unaligned 'struct.pack("<II", 1, 0x11921192) + struct.pack("<IIII", 0, 100, 512, 0) + bytes(512) + '"$END"
bad past-object 'struct.pack("<II", 1, 0x11921192) + struct.pack("<IIII", 0, 1048064, 1024, 0) + bytes(1024) + '"$END"
bad past-vdi 'struct.pack("<II", 1, 0x11921192) + struct.pack("<IIII", 20, 0, 512, 0) + bytes(512) + '"$END" "beyond the end of snapshot"
state >"$SD_TMP/after"
cmp -s "$SD_TMP/before" "$SD_TMP/after" || fail "a refused v1 stream changed the cluster"

# ---- progress: on a terminal only ----
P=$((SD_PORT_BASE))
on_tty() { # run a shell command line with stderr on a pseudo-terminal
	script -qec "$1" /dev/null </dev/null >"$SD_TMP/tty.out" 2>&1 || true
}
on_tty "'$DOG' vdi read -p $P vm >'$SD_TMP/r' 2>/dev/tty"
grep -q "read .*100%.*/s" "$SD_TMP/tty.out" || fail "no progress on read: $(cat -v "$SD_TMP/tty.out")"
cmp -s "$SD_TMP/r" "$SD_TMP/hand.img" || fail "read under a terminal differs"
on_tty "'$DOG' vdi write -p $P vm <'$SD_TMP/s2'"
grep -q "write .*100%" "$SD_TMP/tty.out" || fail "no progress on write: $(cat -v "$SD_TMP/tty.out")"
on_tty "'$DOG' vdi backup -p $P -s s2 vm '$SD_TMP/full'"
grep -q "backup .*100%" "$SD_TMP/tty.out" || fail "no progress on backup: $(cat -v "$SD_TMP/tty.out")"
on_tty "'$DOG' vdi restore -p $P copy '$SD_TMP/full'"
grep -q "restore .*100%" "$SD_TMP/tty.out" || fail "no progress on restore: $(cat -v "$SD_TMP/tty.out")"
dog_p 0 vdi read copy | cmp -s - "$SD_TMP/s2" || fail "restore under a terminal differs"
on_tty "'$DOG' cluster snapshot save -p $P t1 '$SD_TMP/farm'"
grep -q "save .*100%" "$SD_TMP/tty.out" || fail "no progress on snapshot save: $(cat -v "$SD_TMP/tty.out")"
dog_p 0 vdi delete copy
dog_p 0 vdi delete -s s2 copy
! dog_p 0 vdi list -r copy | grep -q . || fail "copy is still listed"
on_tty "'$DOG' cluster snapshot load -p $P t1 '$SD_TMP/farm' copy"
grep -q "load .*100%" "$SD_TMP/tty.out" || fail "no progress on snapshot load: $(cat -v "$SD_TMP/tty.out")"
dog_p 0 vdi read -s s2 copy | cmp -s - "$SD_TMP/s2" || fail "copy loaded under a terminal differs"
on_tty "'$DOG' backup verify '$SD_TMP/full'"
grep -q "verify .*100%" "$SD_TMP/tty.out" || fail "no progress on verify: $(cat -v "$SD_TMP/tty.out")"
# not a terminal: stderr stays empty
dog_p 0 vdi read vm 2>"$SD_TMP/err" >/dev/null
dog_p 0 vdi backup -s s2 vm "$SD_TMP/full2" 2>>"$SD_TMP/err"
dog_p 0 vdi restore copy2 "$SD_TMP/full2" 2>>"$SD_TMP/err"
[[ ! -s $SD_TMP/err ]] || fail "output on stderr without a terminal: $(cat -v "$SD_TMP/err")"

pass
