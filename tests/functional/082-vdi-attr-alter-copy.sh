#!/usr/bin/env bash
# VDI attributes and alter-copy on three sheep. setattr/getattr round-trip
# text and binary values (NULs kept, spec 15.18) up to 64 KiB, refuse -x on
# an existing key (exit 3), report missing keys and VDIs (exit 5), delete;
# the attribute object sits at bit61|hash<<32|attr_id (spec 4.7) on the
# VDI's number of nodes. alter-copy raises and lowers a VDI's replicas:
# afterwards every object of the VDI has exactly that many replica files,
# on the holders placement names, and the data reads back unchanged. Bad
# requests on the wire are refused and the sheep keep answering.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

capture() {
	RC=0
	"$@" >"$SD_TMP/out" 2>"$SD_TMP/err" || RC=$?
	OUT=$(<"$SD_TMP/out")
	ERR=$(<"$SD_TMP/err")
}

expect_rc() {
	[[ $RC -eq $1 ]] ||
		fail "$2: exit status $RC, expected $1 (stdout '$OUT', stderr '$ERR')"
}

# replicas OID: how many sheep store the object file.
replicas() {
	local i n=0
	for i in 0 1 2; do
		if [[ -f $(node_dir "$i")/obj/$1 ]]; then
			n=$((n + 1))
		fi
	done
	echo "$n"
}

# The raw wire requests of this test, in python (sdproto).
wire() {
	PYTHONPATH="$SD_SOURCE_DIR/tests/functional" python3 - "$@"
}

start_cluster 3
format_cluster 2

# --- setattr / getattr ------------------------------------------------------

dog_p 0 vdi create attrs 4M
capture dog_p 0 vdi setattr attrs color blue
expect_rc 0 "setattr color blue"
capture dog_p 1 vdi getattr attrs color
expect_rc 0 "getattr color"
assert_eq "blue" "$OUT" "getattr color"
[[ $(dog_p 2 vdi getattr attrs color | od -An -c | tr -d ' \n') == blue ]] ||
	fail "getattr adds bytes to the value"

capture dog_p 0 vdi setattr -x attrs color red
expect_rc 3 "setattr -x on an existing key"
assert_eq "The attribute 'color' already exists" "$ERR" "setattr -x message"
assert_eq "blue" "$(dog_p 0 vdi getattr attrs color)" "value after a refused -x"
capture dog_p 0 vdi setattr attrs color red
expect_rc 0 "overwrite color"
assert_eq "red" "$(dog_p 1 vdi getattr attrs color)" "overwritten value"
capture dog_p 0 vdi setattr -x attrs shape round
expect_rc 0 "setattr -x of a new key"

# The object: bit 61 | hash(name) << 32 | chained FNV-1a of the fields.
oid=$(python3 - attrs color <<'PY'
import sys
def fnv(data, h):
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h
name, key = (s.encode() for s in sys.argv[1:3])
h = fnv(name, 0xcbf29ce484222325)
vid = (h & 0xffffff) or 1
a = 0xcbf29ce484222325
for part in (name.ljust(256, b"\0"), bytes(256), bytes(4), key.ljust(256, b"\0")):
    a = fnv(part, a)
print("%016x" % ((1 << 61) | vid << 32 | (a & 0xffffffff)))
PY
)
assert_eq 2 "$(replicas "$oid")" "replicas of the attribute object $oid"

# Binary values keep their NULs; 64 KiB is the limit.
printf 'a\0b\0\0c' >"$SD_TMP/bin"
dog_p 0 vdi setattr attrs bin <"$SD_TMP/bin" || fail "setattr from stdin"
dog_p 1 vdi getattr attrs bin >"$SD_TMP/bin.got"
cmp -s "$SD_TMP/bin" "$SD_TMP/bin.got" || fail "binary value changed: $(od -c "$SD_TMP/bin.got")"
head -c 65536 /dev/urandom >"$SD_TMP/big"
dog_p 0 vdi setattr attrs big <"$SD_TMP/big" || fail "setattr of 64 KiB"
dog_p 2 vdi getattr attrs big >"$SD_TMP/big.got"
cmp -s "$SD_TMP/big" "$SD_TMP/big.got" || fail "64 KiB value changed"
head -c 65537 /dev/urandom >"$SD_TMP/huge"
capture dog_p 0 vdi setattr attrs huge <"$SD_TMP/huge"
expect_rc 1 "setattr of 64 KiB + 1"
assert_eq "The attribute value is larger than 65536 bytes" "$ERR" "setattr too large"
capture dog_p 0 vdi getattr attrs huge
expect_rc 5 "getattr of the refused value"

capture dog_p 0 vdi getattr attrs nokey
expect_rc 5 "getattr of a missing key"
assert_eq "Attribute 'nokey' not found" "$ERR" "getattr of a missing key"
capture dog_p 0 vdi getattr nosuch color
expect_rc 5 "getattr on a missing VDI"
assert_eq "VDI not found" "$ERR" "getattr on a missing VDI"
capture dog_p 0 vdi setattr nosuch color blue
expect_rc 5 "setattr on a missing VDI"
assert_eq "VDI not found" "$ERR" "setattr on a missing VDI"
capture dog_p 0 vdi getattr attrs
expect_rc 64 "getattr without a key"
capture dog_p 0 vdi setattr attrs "$(printf 'k%.0s' {1..256})" v
expect_rc 64 "setattr with a 256-byte key"

capture dog_p 0 vdi setattr -d attrs color
expect_rc 0 "setattr -d"
capture dog_p 0 vdi getattr attrs color
expect_rc 5 "getattr of a deleted key"
assert_eq "Attribute 'color' not found" "$ERR" "getattr of a deleted key"
capture dog_p 0 vdi setattr -d attrs color
expect_rc 5 "setattr -d of a deleted key"
assert_eq "Attribute 'color' not found" "$ERR" "setattr -d of a deleted key"
assert_eq "round" "$(dog_p 0 vdi getattr attrs shape)" "other keys survive a delete"
dog_p 0 vdi setattr attrs color green
assert_eq "green" "$(dog_p 0 vdi getattr attrs color)" "key set again after a delete"

# Malformed GET_VDI_ATTR requests.
wire "$(port_of 1)" <<'PY' || fail "GET_VDI_ATTR validation"
import struct, sys
import sdproto as sd
port = int(sys.argv[1])
CREAT = 0x100
def attr(name=b"attrs", key=b"k", value=b"", value_len=None):
    p = bytearray(66320)
    p[0:len(name)] = name
    p[528:528 + len(key)] = key
    struct.pack_into("<I", p, 524, len(value) if value_len is None else value_len)
    p[784:784 + len(value)] = value
    return bytes(p)
def call(payload, flags, want):
    rsp, _ = sd.call(port, sd.Request(0x89, payload, flags=0x01 | flags))
    sd.expect(rsp, want, "GET_VDI_ATTR")
call(attr()[:700], 0, sd.RES_INVALID_PARMS)             # shorter than the header
call(b"x" * 256 + attr()[256:], 0, sd.RES_INVALID_PARMS)  # name without NUL
call(attr(key=b""), 0, sd.RES_INVALID_PARMS)               # empty key
call(attr(value_len=70000), CREAT, sd.RES_INVALID_PARMS)    # value_len too big
call(attr(value=b"12")[:784], CREAT, sd.RES_INVALID_PARMS)  # value not sent
call(attr(), CREAT | 0x400, sd.RES_INVALID_PARMS)           # create and delete
call(attr(name=b"nosuch"), 0, sd.RES_NO_VDI)
call(attr(key=b"color"), 0, sd.RES_SUCCESS)
PY

# --- alter-copy -------------------------------------------------------------

dog_p 0 vdi create ac 12M
head -c 12M /dev/urandom >"$SD_TMP/ac"
dog_p 1 vdi write ac <"$SD_TMP/ac"
vid=$(dog_p 0 vdi list -r ac | awk '{print $8}')
objs=("$(printf '80%06x00000000' "0x$vid")")
for i in 0 1 2; do objs+=("$(printf '00%06x%08x' "0x$vid" "$i")"); done

# check_copies N: every object of ac has N replica files, on the nodes
# `vdi object location` names, and the data is unchanged.
check_copies() {
	local o idx
	for o in "${objs[@]}"; do
		assert_eq "$1" "$(replicas "$o")" "replicas of $o"
	done
	for idx in 0 1 2; do
		dog_p 0 vdi object ac location -i "$idx" >"$SD_TMP/loc"
		assert_eq "$1" "$(grep -c ' has the object$' "$SD_TMP/loc")" \
			"holders of index $idx"
		assert_eq "$(grep ' has the object$' "$SD_TMP/loc" | cut -d' ' -f1 | sort)" \
			"$(tail -n 1 "$SD_TMP/loc" | tr ' ' '\n' | sort)" \
			"holders of index $idx are the placement"
	done
	assert_eq "$1" "$(dog_p 2 vdi list -r ac | awk '{print $9}')" "vdi list copies"
	dog_p 2 vdi read ac | cmp -s - "$SD_TMP/ac" || fail "data changed at $1 copies"
}
check_copies 2

capture dog_p 0 vdi alter-copy -c 3 -f ac
expect_rc 0 "alter-copy -c 3"
assert_eq "ac's redundancy level is set to 3, the old one was 2." "$ERR" "alter-copy message"
check_copies 3
"$DOG" vdi object "$(node_dir 0)/obj/${objs[0]}" dump-inode | grep -qx "nr_copies: 3" ||
	fail "inode header does not say 3 copies"

capture dog_p 1 vdi alter-copy -c 1 -f ac
expect_rc 0 "alter-copy -c 1"
check_copies 1

capture dog_p 0 vdi alter-copy -c 1 -f ac
expect_rc 1 "alter-copy to the same level"
assert_eq "ac's redundancy level is already set to 1, nothing changed." "$ERR" \
	"alter-copy to the same level"
capture dog_p 0 vdi alter-copy -c 2:1 -f ac
expect_rc 64 "alter-copy -c 2:1"
[[ $ERR == "Changing redundancy level of erasure coded vdi is not supported yet."* ]] ||
	fail "alter-copy -c 2:1 said: $ERR"
capture dog_p 0 vdi alter-copy -c 2 -f nosuch
expect_rc 1 "alter-copy of a missing VDI"
assert_eq "Failed to open VDI nosuch (snapshot id: 0 snapshot tag: ): No VDI found
Reading nosuch's vdi object failure." "$ERR" "alter-copy of a missing VDI"
capture dog_p 0 vdi alter-copy -c 4 ac <<<"no"
expect_rc 0 "alter-copy -c 4 answered no"
[[ $OUT == "Number of copies (4) is larger than number of nodes (3)."* ]] ||
	fail "alter-copy -c 4 prompt: $OUT"
check_copies 1

capture dog_p 0 vdi alter-copy -c 2 ac <<<"yes"
expect_rc 0 "alter-copy -c 2 confirmed"
check_copies 2

# A snapshot (when this build takes them) makes the VDI not standalone.
if dog_p 0 vdi snapshot -s s1 ac >/dev/null 2>&1; then
	capture dog_p 0 vdi alter-copy -c 3 -f ac
	expect_rc 1 "alter-copy of a VDI with a snapshot"
	assert_eq "Only standalone vdi supports changing redundancy level.
Please clone ac with -n (--no-share) option first." "$ERR" "alter-copy with a snapshot"
fi

# Malformed ALTER_VDI_COPY requests: vdi_state.new_vid at 20, copies at 24,
# copy_policy at 26.
wire "$(port_of 2)" "$vid" <<'PY' || fail "ALTER_VDI_COPY validation"
import struct, sys
import sdproto as sd
port, vid = int(sys.argv[1]), int(sys.argv[2], 16)
def call(new_vid, copies, policy, want):
    body = struct.pack("<IIBBBB", 0, new_vid, copies, 0, policy, 0)
    rsp, _ = sd.call(port, sd.Request(0xc0, body=body))
    sd.expect(rsp, want, "ALTER_VDI_COPY")
call(vid, 0, 0, sd.RES_INVALID_PARMS)
call(vid, 32, 0, sd.RES_INVALID_PARMS)
call(vid, 2, 0x21, sd.RES_INVALID_PARMS)
call(0, 2, 0, sd.RES_INVALID_PARMS)
call(0xfffffff, 2, 0, sd.RES_INVALID_PARMS)
call(0x123456 if vid != 0x123456 else 0x123457, 2, 0, sd.RES_NO_VDI)
PY

for i in 0 1 2; do assert_alive "$i"; done
pass
