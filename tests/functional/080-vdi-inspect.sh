#!/usr/bin/env bash
# The inspection commands of dog vdi against real sheep, checked to the
# byte (spec 11.3): tree and graph of plain VDIs (and of snapshots when the
# cluster can take them), object map, location and dump-inode (the holders
# it names are the ones with the file on disk), track across epochs that
# had fewer nodes than copies (each epoch printed once, spec 15.12), and the
# lock table with a forced unlock. Bad input gets upstream's messages and
# exit codes, and the sheep keep answering.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

sdproto() { python3 "$SD_SOURCE_DIR/tests/functional/sdproto.py" "$@"; }

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

vdi_field() { # NAME FIELD: a field of the raw vdi list row of NAME
	dog_p 0 vdi list -r "$1" | awk -v f="$2" '{print $f}'
}

# Nodes (host:port) whose store holds object OID (16 hex digits).
nodes_with_file() {
	local i
	for i in "$@"; do
		if [[ -f $(node_dir "$i")/obj/$OID ]]; then
			echo "127.0.0.1:$(port_of "$i")"
		fi
	done | sort
}

# One sheep first: epoch 1 has fewer nodes than the 2 copies. The VDIs are
# written once all three are members, so no object waits for recovery.
start_sheep 0
wait_for_sheep 0
dog_p 0 cluster format -c 2 -l </dev/null >/dev/null
wait_for "the cluster to run" cluster_running 0
for i in 1 2; do
	start_sheep "$i"
	wait_for_sheep "$i"
	wait_for_nodes 0 $((i + 1))
done
dog_p 0 vdi create alpha 12M
dog_p 0 vdi create beta 8M
head -c 4M /dev/urandom >"$SD_TMP/d0"
dog_p 0 vdi write alpha 0 4M <"$SD_TMP/d0"
dog_p 0 vdi write alpha 8M 4M <"$SD_TMP/d0"

avid=$(vdi_field alpha 8)
bvid=$(vdi_field beta 8)
[[ -n $avid && -n $bvid ]] || fail "no vids for alpha and beta"

# --- tree and graph --------------------------------------------------------

capture dog_p 0 vdi tree
expect_rc 0 "vdi tree"
if ((0x$avid < 0x$bvid)); then
	want_tree=$'alpha---(you are here)\nbeta---(you are here)'
else
	want_tree=$'beta---(you are here)\nalpha---(you are here)'
fi
assert_eq "$want_tree" "$OUT" "vdi tree of two plain VDIs"

graph_node() { # NAME VID SIZE
	local t
	t=$(vdi_field "$1" 7)
	printf '  "0" -> "%s";\n  "%s" [\n    group = "%s",\n    label = "' "$2" "$2" "$1"
	printf 'Name: %10s\\nTag:  %10x\\nSize: %10s\\nDate: %10s\\nTime: %10s' \
		"$1" 0 "$3" "$(date -d "@$t" +%Y-%m-%d)" "$(date -d "@$t" +%H:%M:%S)"
	printf '",\n    color="red"\n  ];\n\n'
}
{
	printf 'digraph G {\n  node [shape = "box", fontname = "Courier"];\n\n'
	printf '  "0" [shape = "ellipse", label = "root"];\n\n'
	if ((0x$avid < 0x$bvid)); then
		graph_node alpha "$avid" "12 MB"
		graph_node beta "$bvid" "8.0 MB"
	else
		graph_node beta "$bvid" "8.0 MB"
		graph_node alpha "$avid" "12 MB"
	fi
	printf '}\n'
} >"$SD_TMP/graph.want"
dog_p 0 vdi graph >"$SD_TMP/graph.got" || fail "vdi graph failed"
cmp -s "$SD_TMP/graph.want" "$SD_TMP/graph.got" ||
	fail "vdi graph: $(diff "$SD_TMP/graph.want" "$SD_TMP/graph.got")"

# A snapshot, if this build can take one: the tree then has a chain.
if dog_p 0 vdi snapshot -s first beta >/dev/null 2>&1; then
	t=$(dog_p 0 vdi list -r beta | awk '$1 == "s" {print $7}')
	capture dog_p 0 vdi tree
	expect_line() { grep -qxF -- "$1" <<<"$2" || fail "$3: no line '$1' in: $2"; }
	expect_line "beta---[$(date -d "@$t" '+%Y-%m-%d %H:%M')]---(you are here)" \
		"$OUT" "vdi tree with a snapshot"
	dog_p 0 vdi graph | grep -qF "color=\"red\"" || fail "graph lost the working VDI"
fi

# --- object map ---------------------------------------------------------------

capture dog_p 0 vdi object alpha map
expect_rc 0 "object map"
assert_eq "Index       VID
$(printf '%08u %8x' 0 "0x$avid")
$(printf '%08u %8x' 2 "0x$avid")" "$OUT" "object map"

capture dog_p 0 vdi object map alpha -i 1
expect_rc 0 "object map -i 1 (upstream word order)"
assert_eq "Index       VID
00000001        0" "$OUT" "object map -i 1"

capture dog_p 0 vdi object nosuch map
expect_rc 1 "object map of a missing VDI"
assert_eq "Failed to open VDI nosuch (snapshot id: 0 snapshot tag: ): No VDI found
FATAL: nosuch not found" "$ERR" "object map of a missing VDI"

capture dog_p 0 vdi object alpha
expect_rc 64 "object without location/map/dump-inode"

# --- object location ------------------------------------------------------------

# check_location OID: the output names exactly the nodes with the file,
# and the placement line names the same nodes.
check_location() {
	local has want expected
	has=$(grep ' has the object$' <<<"$OUT" | sed 's/ has the object$//' | sort)
	want=$(nodes_with_file 0 1 2)
	assert_eq "$want" "$has" "location of $OID: nodes that have it"
	[[ $(grep -c "the object$" <<<"$OUT") -eq 3 ]] || fail "location: not 3 node lines: $OUT"
	expected=$(tail -n 1 <<<"$OUT" | tr ' ' '\n' | sort)
	assert_eq "$want" "$expected" "location of $OID: expected holders"
	[[ $(wc -l <<<"$expected") -eq 2 ]] || fail "location: not 2 holders: $OUT"
	assert_eq "According to sheepdog algorithm, the object should be located at:" \
		"$(tail -n 2 <<<"$OUT" | head -n 1)" "location footer"
}

OID=$(printf '80%06x00000000' "0x$avid")
capture dog_p 0 vdi object alpha location
expect_rc 0 "location of the inode"
assert_eq "Looking for the inode object 0x$avid with 3 nodes" "$(head -n 1 <<<"$OUT")" \
	"location header"
assert_eq "" "$(sed -n 2p <<<"$OUT")" "location blank line"
check_location
inode_holders=$(tail -n 1 <<<"$OUT" | tr ' ' '\n' | sort)

OID=$(printf '00%06x00000002' "0x$avid")
capture dog_p 0 vdi object alpha location -i 2
expect_rc 0 "location -i 2"
assert_eq "Looking for the object $OID (vid 0x$avid idx 2, 2 copies) with 3 nodes" \
	"$(head -n 1 <<<"$OUT")" "location -i 2 header"
check_location

capture dog_p 0 vdi object alpha location -i 1
expect_rc 0 "location of an unallocated index"
assert_eq "The inode object 0x$avid idx 1 is not allocated" "$OUT" "location -i 1"

capture dog_p 0 vdi object alpha location -i 2000000
expect_rc 1 "location -i 2000000"
assert_eq "The offset is too large!" "$ERR" "location -i 2000000"

capture dog_p 0 vdi object nosuch location
expect_rc 1 "location of a missing VDI"
assert_eq "Failed to open VDI nosuch (snapshot id: 0 snapshot tag: ): No VDI found
FATAL: no inode objects" "$ERR" "location of a missing VDI"

capture dog_p 0 vdi object alpha location -i zz
expect_rc 64 "location -i zz"

# --- object dump-inode --------------------------------------------------------

ifile=$(find "$SD_TMP"/n*/obj -maxdepth 1 -name "$(printf '80%06x00000000' "0x$avid")" | head -n 1)
[[ -n $ifile ]] || fail "no inode file of alpha"
capture "$DOG" vdi object "$ifile" dump-inode
expect_rc 0 "dump-inode"
ctime=$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(528); print("%x %x" % struct.unpack_from("<QQ", d, 512))' "$ifile")
dec=$((0x$avid))
assert_eq "name: alpha
tag: 
create_time: ${ctime% *}
snap_ctime: 0
vm_clock_nsec: 0
copy_policy: 0
store_policy: 0
nr_copies: 2
block_size_shift: 22
snap_id: 1
vdi_id: $avid
parent_vdi_id: 0
btree_counter: 0
data_vdi_id:
0: $dec
2: $dec
gref:
0: $avid, 0, 0
2: $avid, 0, 0" "$OUT" "dump-inode"
capture "$DOG" vdi object dump-inode "$ifile"
expect_rc 0 "dump-inode, upstream word order"

capture "$DOG" vdi object "$SD_TMP/none" dump-inode
expect_rc 1 "dump-inode of a missing file"
assert_eq "failed to open inode object file: No such file or directory" "$ERR" \
	"dump-inode of a missing file"
cp "$SD_TMP/d0" "$SD_TMP/short"
capture "$DOG" vdi object "$SD_TMP/short" dump-inode
expect_rc 1 "dump-inode of a data object"
assert_eq "failed to read inode object file: $SD_TMP/short is not a 12587576-byte inode object file" \
	"$ERR" "dump-inode of a data object"
head -c 12587576 /dev/zero | tr '\0' '\377' >"$SD_TMP/ff"
capture "$DOG" vdi object "$SD_TMP/ff" dump-inode
expect_rc 1 "dump-inode of garbage"
assert_eq "$SD_TMP/ff is not an inode object: its name or tag is not NUL-terminated" \
	"$ERR" "dump-inode of garbage"

# --- track ------------------------------------------------------------------

capture dog_p 0 vdi track alpha
expect_rc 0 "track the inode"
assert_eq "Tracking the inode object 0x$avid with 3 nodes" "$(head -n 1 <<<"$OUT")" "track header"
OID=$(printf '80%06x00000000' "0x$avid")
epochs=$(grep -E '^obj ' <<<"$OUT")
assert_eq "obj $OID locations at epoch 3, copies = 2
obj $OID locations at epoch 2, copies = 2
obj $OID locations at epoch 1, copies = 2" "$epochs" "track: every epoch once, newest first"
section() { # EPOCH: the holder lines printed for that epoch
	awk -v e="$1" '/^obj /{on = ($6 == e ",")} on && /^127/' <<<"$OUT" | sort
}
assert_eq "$inode_holders" "$(section 3)" "track: epoch 3 holders"
assert_eq "127.0.0.1:$(port_of 0)" "$(section 1)" "track: epoch 1 had one node"
assert_eq "$(printf '127.0.0.1:%s\n' "$(port_of 0)" "$(port_of 1)")" "$(section 2)" \
	"track: epoch 2 had two nodes"
grep -qxF -- "---------------------------------------------------" <<<"$OUT" ||
	fail "track: no dashes line"

capture dog_p 0 vdi track alpha -i 2
expect_rc 0 "track -i 2"
OID=$(printf '00%06x00000002' "0x$avid")
assert_eq "Tracking the object $OID (the inode vid 0x$avid idx 2) with 3 nodes" \
	"$(head -n 1 <<<"$OUT")" "track -i 2 header"
assert_eq "$(nodes_with_file 0 1 2)" "$(section 3)" "track -i 2: epoch 3 holders"

capture dog_p 0 vdi track alpha -o "$OID"
expect_rc 0 "track -o"
assert_eq "Tracking the object $OID (the inode vid 0x$avid) with 3 nodes" \
	"$(head -n 1 <<<"$OUT")" "track -o header"

capture dog_p 0 vdi track alpha -i 1
expect_rc 1 "track of an unallocated index"
assert_eq "The inode object 0x$avid idx 1 is not allocated" "$ERR" "track -i 1"
capture dog_p 0 vdi track nosuch
expect_rc 1 "track of a missing VDI"
assert_eq "Failed to open VDI nosuch (snapshot id: 0 snapshot tag: ): No VDI found
FATAL: no inode objects" "$ERR" "track of a missing VDI"

# --- lock list / unlock -------------------------------------------------------

lock_header="  Name         Id  VDI id  Tag            Owner node(s)"
capture dog_p 0 vdi lock list
expect_rc 0 "lock list, nothing locked"
assert_eq "$lock_header" "$OUT" "empty lock list"

sdproto req "$(port_of 1)" LOCK_VDI --name alpha --expect SUCCESS >/dev/null ||
	fail "LOCK_VDI alpha through sheep 1"
want_row=$(printf '%c %-8s  %5u  %6x  %-13s  IPv4 ip:127.0.0.1 port:%s' ' ' alpha 0 "0x$avid" '' "$(port_of 1)")
for i in 0 2; do
	capture dog_p "$i" vdi lock list
	expect_rc 0 "lock list through sheep $i"
	assert_eq "$lock_header
$want_row" "$OUT" "lock list through sheep $i"
done

capture dog_p 2 vdi lock unlock alpha
expect_rc 0 "lock unlock alpha"
assert_eq "" "$OUT$ERR" "lock unlock output"
capture dog_p 0 vdi lock list
assert_eq "$lock_header" "$OUT" "lock list after unlock"
sdproto req "$(port_of 2)" LOCK_VDI --name alpha --expect SUCCESS >/dev/null ||
	fail "LOCK_VDI alpha through sheep 2 after the unlock"

capture dog_p 0 vdi lock unlock beta
expect_rc 2 "unlock of an unlocked VDI"
assert_eq "VDI: beta is not locked" "$ERR" "unlock of an unlocked VDI"
capture dog_p 0 vdi lock unlock nosuch
expect_rc 2 "unlock of a missing VDI"
assert_eq "VDI: nosuch not found" "$ERR" "unlock of a missing VDI"
capture dog_p 0 vdi lock foo
expect_rc 64 "vdi lock foo"
capture dog_p 0 vdi lock unlock
expect_rc 64 "vdi lock unlock without a VDI"

for i in 0 1 2; do assert_alive "$i"; done
pass
