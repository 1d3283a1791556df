#!/usr/bin/env bash
# Consistency checks with repair. On 3 sheep with copies=3, a replica file
# overwritten on disk and another deleted are found by `dog vdi check`
# (GET_HASH on every holder, majority vote) and repaired from the majority
# (REPAIR_REPLICA): afterwards every replica is byte-identical and the data
# reads back unchanged. `-e` reports the missing replica before the repair
# and nothing after. Objects a VDI inherits from its snapshot are checked
# with it; `dog cluster check` walks every snapshot and VDI; copies that
# cannot out-vote each other are reported and left alone. Unknown VDIs and
# snapshots fail as upstream's dog does, and GET_HASH / REPAIR_REPLICA with
# bad fields are refused while the sheep keep serving.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

SDPROTO=$SD_SOURCE_DIR/tests/functional/sdproto.py

start_cluster 3
format_cluster 3
assert_exit 0 dog_p 0 vdi create test 64M

data=$SD_TMP/data
head -c 32M /dev/urandom >"$data"
dog_p 1 vdi write test <"$data" || fail "vdi write failed"
vid=$((16#$(dog_p 0 vdi list -r test | awk '{print $8}')))

oid_of() { printf '%016x' $(($1 << 32 | $2)); }
inode_of() { printf '%016x' $((1 << 63 | $1 << 32)); }
replica() { echo "$(node_dir "$1")/obj/$2"; }

# run_dog OUT ERR IDX ARGS...: dog's stdout and stderr to files; its status.
run_dog() {
	local out=$1 err=$2 rc=0
	shift 2
	dog_p "$@" >"$out" 2>"$err" || rc=$?
	return $rc
}

# replicas_identical OID: the three nodes hold byte-identical copies.
replicas_identical() {
	local f0
	f0=$(replica 0 "$1")
	[[ -f $f0 ]] || return 1
	cmp -s "$f0" "$(replica 1 "$1")" && cmp -s "$f0" "$(replica 2 "$1")"
}

all_replicas_identical() {
	local f
	for f in "$(node_dir 0)"/obj/*; do
		[[ -f $f ]] || continue
		replicas_identical "$(basename "$f")" ||
			fail "replicas of $(basename "$f") differ after repair"
	done
	for i in 1 2; do
		assert_eq "$(ls "$(node_dir 0)/obj")" "$(ls "$(node_dir "$i")/obj")" \
			"objects on node 0 and node $i"
	done
}

# corrupt IDX OID OFFSET: overwrite 4 KiB of one replica file in place.
corrupt() {
	local f
	f=$(replica "$1" "$2")
	[[ -f $f ]] || fail "no replica $2 on node $1"
	head -c 4096 /dev/urandom |
		dd of="$f" bs=4096 seek=$(($3 / 4096)) conv=notrunc status=none
}

out=$SD_TMP/out
err=$SD_TMP/err

# ---- a healthy VDI: nothing to fix ----
run_dog "$out" "$err" 0 vdi check test || fail "check of a healthy VDI failed: $(cat "$err")"
assert_eq "finish check&repair test" "$(cat "$out")" "check of a healthy VDI"
assert_eq "" "$(cat "$err")" "stderr of a healthy check"
run_dog "$out" "$err" 2 vdi check -e test || fail "-e of a healthy VDI failed"
assert_eq "test is fine, no object is missing." "$(cat "$out")" "-e of a healthy VDI"

# ---- one replica corrupted, another (of another object) deleted ----
bad=$(oid_of "$vid" 1)
lost=$(oid_of "$vid" 3)
cp "$(replica 1 "$bad")" "$SD_TMP/good-copy"
corrupt 0 "$bad" 8192
cmp -s "$(replica 0 "$bad")" "$SD_TMP/good-copy" && fail "corruption did not change the file"
rm "$(replica 1 "$lost")"

assert_exit 1 run_dog "$out" "$err" 0 vdi check -e test
assert_eq "[127.0.0.1:$(port_of 1)] oid $lost is missing.
test lost 1 object(s)." "$(cat "$out")" "-e with a missing replica"

run_dog "$out" "$err" 2 vdi check test || fail "repair failed: $(cat "$err")"
assert_eq "fixed replica $bad
fixed missing $lost
finish check&repair test" "$(cat "$out")" "repair output"
assert_eq "" "$(cat "$err")" "stderr of the repair"
cmp -s "$(replica 0 "$bad")" "$SD_TMP/good-copy" || fail "corrupted replica not restored"
all_replicas_identical
for i in 0 1 2; do
	dog_p "$i" vdi read test 0 32M | cmp -s - "$data" ||
		fail "data read through node $i after the repair differs"
done

run_dog "$out" "$err" 1 vdi check -e test || fail "-e after the repair failed"
assert_eq "test is fine, no object is missing." "$(cat "$out")" "-e after the repair"
run_dog "$out" "$err" 1 vdi check test || fail "second check failed"
assert_eq "finish check&repair test" "$(cat "$out")" "second check has nothing to fix"

# The inode is an object of the VDI too.
inode=$(inode_of "$vid")
corrupt 2 "$inode" 8388608
run_dog "$out" "$err" 0 vdi check test || fail "inode repair failed"
assert_eq "fixed replica $inode
finish check&repair test" "$(cat "$out")" "inode repair output"
replicas_identical "$inode" || fail "inode replicas differ after repair"

# ---- objects inherited from a snapshot are checked with the VDI ----
assert_exit 0 dog_p 0 vdi snapshot -s snap1 test
snapvid=$vid
vid=$((16#$(dog_p 0 vdi list -r test | awk '$1 == "=" {print $8}')))
((vid != snapvid)) || fail "the working VDI kept the snapshot's vid"
head -c 4M /dev/urandom >"$SD_TMP/patch"
dog_p 0 vdi write test 0 4M <"$SD_TMP/patch" || fail "write after snapshot failed"
dd if="$SD_TMP/patch" of="$data" conv=notrunc status=none
own=$(oid_of "$vid" 0)
[[ -f $(replica 0 "$own") ]] || fail "copy-on-write did not create $own"

inherited=$(oid_of "$snapvid" 5)
corrupt 2 "$inherited" 0
run_dog "$out" "$err" 1 vdi check test || fail "repair of an inherited object failed"
assert_eq "fixed replica $inherited
finish check&repair test" "$(cat "$out")" "inherited object repaired through the VDI"
replicas_identical "$inherited" || fail "inherited replicas differ after repair"

# A snapshot is checked by id or by tag.
for s in 1 snap1; do
	run_dog "$out" "$err" 0 vdi check -s "$s" test || fail "check -s $s failed"
	assert_eq "finish check&repair test" "$(cat "$out")" "check -s $s"
	run_dog "$out" "$err" 0 vdi check -e -s "$s" test || fail "check -e -s $s failed"
	assert_eq "test is fine, no object is missing." "$(cat "$out")" "check -e -s $s"
done

# ---- cluster check: every snapshot and VDI, in vid order ----
snapinode=$(inode_of "$snapvid")
corrupt 1 "$snapinode" 8388608
rm "$(replica 0 "$own")"
run_dog "$out" "$err" 2 cluster check || fail "cluster check failed: $(cat "$err")"
expected="fix snapshot test (id: 1, tag: \"snap1\")
fixed replica $snapinode
finish check&repair test
fix vdi test
fixed missing $own
finish check&repair test"
assert_eq "$expected" "$(cat "$out")" "cluster check output"
all_replicas_identical
for i in 0 1 2; do
	dog_p "$i" vdi read test 0 32M | cmp -s - "$data" ||
		fail "data read through node $i after cluster check differs"
done

# ---- a hyper volume's objects come from its B-tree index ----
assert_exit 0 dog_p 0 vdi create -y hyper 64M
head -c 12M /dev/urandom >"$SD_TMP/hdata"
dog_p 0 vdi write hyper <"$SD_TMP/hdata" || fail "write to the hyper volume failed"
hvid=$((16#$(dog_p 0 vdi list -r hyper | awk '{print $8}')))
hbad=$(oid_of "$hvid" 2)
corrupt 1 "$hbad" 4096
rm "$(replica 2 "$(oid_of "$hvid" 0)")"
run_dog "$out" "$err" 0 vdi check hyper || fail "hyper volume check failed"
assert_eq "fixed missing $(oid_of "$hvid" 0)
fixed replica $hbad
finish check&repair hyper" "$(cat "$out")" "hyper volume repair"
for i in 0 1 2; do
	dog_p "$i" vdi read hyper 0 12M | cmp -s - "$SD_TMP/hdata" ||
		fail "hyper volume read through node $i after repair differs"
done

# ---- copies that cannot out-vote each other are left alone ----
split=$(oid_of "$vid" 0)
corrupt 0 "$split" 0
rm "$(replica 1 "$split")"
cp "$(replica 0 "$split")" "$SD_TMP/split0"
run_dog "$out" "$err" 0 vdi check test || fail "check with no majority failed"
assert_eq "finish check&repair test" "$(cat "$out")" "no majority: stdout"
assert_eq "no majority of $split" "$(cat "$err")" "no majority: stderr"
cmp -s "$(replica 0 "$split")" "$SD_TMP/split0" || fail "a copy without majority was changed"
[[ -e $(replica 1 "$split") ]] && fail "a copy without majority was created"

gone=$(oid_of "$snapvid" 6)
for i in 0 1 2; do rm "$(replica "$i" "$gone")"; done
run_dog "$out" "$err" 0 vdi check test || fail "check with a lost object failed"
assert_eq "no majority of $split
no node has $gone" "$(cat "$err")" "lost object: stderr"
assert_exit 1 run_dog "$out" "$err" 0 vdi check -e test
assert_eq "[127.0.0.1:$(port_of 0)] oid $gone is missing.
[127.0.0.1:$(port_of 1)] oid $split is missing.
[127.0.0.1:$(port_of 1)] oid $gone is missing.
[127.0.0.1:$(port_of 2)] oid $gone is missing.
test lost 4 object(s)." "$(cat "$out")" "-e lists missing replicas node by node"

# ---- bad input ----
assert_exit 1 run_dog "$out" "$err" 0 vdi check nosuch
assert_eq "Failed to open VDI nosuch (snapshot id: 0 snapshot tag: ): No VDI found
FATAL: no inode objects" "$(cat "$err")" "unknown VDI"
assert_exit 1 run_dog "$out" "$err" 0 vdi check -s 7 test
assert_eq "Failed to open VDI test (snapshot id: 7 snapshot tag: ): Failed to find requested tag
FATAL: no inode objects" "$(cat "$err")" "unknown snapshot id"
assert_exit 1 run_dog "$out" "$err" 0 vdi check -s nosuch -e test
assert_eq "Failed to open VDI test (snapshot id: 0 snapshot tag: nosuch): Failed to find requested tag
FATAL: no inode objects" "$(cat "$err")" "unknown snapshot tag"
assert_exit 64 run_dog "$out" "$err" 0 vdi check
assert_exit 64 run_dog "$out" "$err" 0 cluster check -e

# ---- GET_HASH and REPAIR_REPLICA on the wire ----
python3 - "$SDPROTO" "$SD_PORT_BASE" "$(node_dir 0)/obj" "$snapvid" <<'PY' ||
import hashlib, importlib.util, os, sys

spec = importlib.util.spec_from_file_location("sdproto", sys.argv[1])
sd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sd)
base, objdir, snapvid = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
p0, p1 = base, base + 1
oid = sd.data_oid(snapvid, 2)
inode = sd.vdi_oid(snapvid)


def get_hash(port, oid, **kw):
    body = sd.obj_body(oid=oid, **kw)
    return sd.call(port, sd.Request(sd.OP_GET_HASH, body=body))[0]


def repair(port, oid, addr="127.0.0.1", src=p1, **kw):
    body = sd.forw_body(oid=oid, addr=addr, port=src)
    return sd.call(port, sd.Request(sd.OP_REPAIR_REPLICA, body=body, **kw))[0]


def file_sha1(oid):
    with open(os.path.join(objdir, "%016x" % oid), "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


# the digest is the SHA-1 of the whole stored object
for o in (oid, inode):
    rsp = get_hash(p0, o)
    sd.expect(rsp, sd.RES_SUCCESS, "GET_HASH %016x" % o)
    assert rsp.digest == file_sha1(o), "digest of %016x" % o

INVALID = sd.RES_INVALID_PARMS
sd.expect(get_hash(p0, sd.data_oid(snapvid, 999)), sd.RES_NO_OBJ,
          "GET_HASH of an absent object")
sd.expect(get_hash(p0, oid | (1 << 57)), INVALID, "GET_HASH, reserved bit")
sd.expect(get_hash(p0, sd.OID_VDI | sd.OID_VMSTATE | (snapvid << 32)),
          INVALID, "GET_HASH, two type bits")
sd.expect(get_hash(p0, 5), INVALID, "GET_HASH, vid 0")
sd.expect(get_hash(p0, oid, ec_index=1), INVALID, "GET_HASH, strip index")
with sd.Conn(p0) as c:
    rsp, _ = c.request(sd.Request(sd.OP_GET_HASH, payload=bytes(4096),
                                  body=sd.obj_body(oid=oid)))
    sd.expect(rsp, INVALID, "GET_HASH with a payload")
    rsp, _ = c.request(sd.Request(sd.OP_GET_HASH, body=sd.obj_body(oid=oid)))
    sd.expect(rsp, sd.RES_SUCCESS, "GET_HASH on the same connection")

# refused repairs leave the replica alone
path = os.path.join(objdir, "%016x" % oid)
with open(path, "r+b") as f:
    f.seek(4096)
    f.write(b"\xa5" * 512)
damaged = file_sha1(oid)
sd.expect(repair(p0, oid | (7 << 56)), INVALID, "REPAIR, reserved bits")
sd.expect(repair(p0, 0), INVALID, "REPAIR, oid 0")
sd.expect(repair(p0, oid, addr=bytes(16)), INVALID, "REPAIR, address 0")
sd.expect(repair(p0, oid, src=0), INVALID, "REPAIR, port 0")
sd.expect(repair(p0, oid, src=p0), INVALID, "REPAIR from itself")
sd.expect(repair(p0, oid, src=base + 15), INVALID, "REPAIR from a non-member")
sd.expect(repair(p0, oid, addr="10.255.255.1"), INVALID,
          "REPAIR from a foreign address")
sd.expect(repair(p0, oid, payload=bytes(64)), INVALID,
          "REPAIR with a payload")
assert file_sha1(oid) == damaged, "a refused repair changed the replica"

# a source without the object: nothing is stored
absent = sd.data_oid(snapvid, 999)
sd.expect(repair(p0, absent), sd.RES_NO_OBJ, "REPAIR of an absent object")
assert not os.path.exists(os.path.join(objdir, "%016x" % absent)), \
    "a failed repair left a file"

# a good repair restores the source's copy
sd.expect(repair(p0, oid), sd.RES_SUCCESS, "REPAIR")
assert get_hash(p0, oid).digest == get_hash(p1, oid).digest
assert file_sha1(oid) == get_hash(p1, oid).digest
PY
	fail "raw GET_HASH / REPAIR_REPLICA checks"
replicas_identical "$(oid_of "$snapvid" 2)" || fail "raw repair left replicas different"

for i in 0 1 2; do assert_alive "$i"; done
pass
