#!/usr/bin/env bash
# tests/tools/vwriter.py, the data oracle of the recovery tests: it writes
# through whichever listed port answers, reads back what it wrote, and its
# verify mode tells apart the acceptable contents of a block (the last
# acknowledged write, or an uncertain write after it) from a lost write
# (zeros or an older version) and corruption (garbage, another block's
# data). It refuses a VDI that is not preallocated.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

vwriter() { python3 "$SD_SOURCE_DIR/tests/tools/vwriter.py" "$@"; }

start_cluster 3
format_cluster 3
dog_p 0 vdi create pre 16M -P
dog_p 0 vdi create sparse 16M
state=$SD_TMP/state.json
# Port 5 has no sheep: the writer moves on to the next one.
ports="$(port_of 5),$(port_of 0)-$(port_of 2)"

assert_exit 2 vwriter write --vdi sparse --ports "$ports" --duration 1 2>"$SD_TMP/err"
grep -q "VDI sparse is not preallocated" "$SD_TMP/err" ||
	fail "no refusal of a sparse VDI: $(cat "$SD_TMP/err")"

vwriter write --vdi pre --ports "$ports" --state "$state" --duration 2 \
	--seed 1 >"$SD_TMP/out" || fail "vwriter write failed: $(cat "$SD_TMP/out")"
grep -qE '^writes acknowledged [1-9][0-9]*, uncertain 0, errors 0$' "$SD_TMP/out" ||
	fail "unexpected writer summary: $(cat "$SD_TMP/out")"
grep -qE 'read-back checks [1-9][0-9]*, lost 0, corrupt 0, unreadable 0$' "$SD_TMP/out" ||
	fail "unexpected read-back summary: $(cat "$SD_TMP/out")"
out=$(vwriter verify --vdi pre --ports "$ports" --state "$state") ||
	fail "verify of an intact VDI failed: $out"
written=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["blocks"]))' "$state")
assert_eq "verified $written blocks, lost 0, corrupt 0" "$out"

# Damage six written blocks behind the writer's back, and record two
# uncertain writes, one of which landed.
damaged=$(python3 - "$SD_SOURCE_DIR/tests" "$state" "$(port_of 1)" <<'PY'
import sys
sys.path[:0] = [sys.argv[1] + "/tools", sys.argv[1] + "/functional"]
import sdproto as sd
import vwriter as vw

st = vw.State.load(sys.argv[2])
acked = sorted(b for b, (a, u) in st.blocks.items() if a > 1)
a, b, c, d, e, f = acked[:6]
never = next(x for x in range(st.nr_blocks) if x not in st.blocks)

def put(blk, data):
    off = blk * st.bs
    req = sd.obj_req(sd.OP_WRITE_OBJ, sd.data_oid(st.vid, off // st.obj_size),
                     offset=off % st.obj_size, payload=data)
    rsp, _ = sd.call(int(sys.argv[3]), req)
    sd.expect(rsp, sd.RES_SUCCESS, "write block %d" % blk)

put(a, bytes(st.bs))                                    # lost: zeros
put(b, st.content(b, st.blocks[b][0] - 1))              # lost: older
put(c, st.content(d, st.blocks[d][0]))                  # corrupt: d's data
bad = bytearray(st.content(e, st.blocks[e][0]))
bad[100] ^= 1
put(e, bytes(bad))                                      # corrupt: garbage
seq = st.next_seq
st.uncertain(f, seq)                                    # landed: acceptable
put(f, st.content(f, seq))
st.uncertain(never, seq + 1)                            # did not land: zeros
st.next_seq = seq + 2
st.dump(sys.argv[2])
print(a, b, c, d, e)
PY
) || fail "could not damage the blocks"
read -r a b c d e <<<"$damaged"

assert_exit 1 vwriter verify --vdi pre --ports "$ports" --state "$state" >"$SD_TMP/out"
assert_eq "verified $((written + 1)) blocks, lost 2, corrupt 2" "$(tail -n 1 "$SD_TMP/out")"
for want in "block $a .*: lost: reads zeros, expected seq" \
	"block $b .*: lost: holds older seq" \
	"block $c .*: corrupt: holds block $d's seq" \
	"block $e .*: corrupt: not a block written by vwriter"; do
	grep -qx "$want.*" "$SD_TMP/out" || fail "no line '$want': $(cat "$SD_TMP/out")"
done
assert_exit 2 vwriter verify --vdi other --ports "$ports" --state "$state" 2>/dev/null
for i in 0 1 2; do assert_alive "$i"; done
pass
