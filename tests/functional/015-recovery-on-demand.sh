#!/usr/bin/env bash
# A node that comes back after missing writes never serves or keeps old
# data: with background recovery held back (DISABLE_RECOVER), a write that
# reaches it for an object it has not fetched yet makes it fetch the latest
# copy first and then apply the write; once recovery is enabled again it
# fetches everything else, and every replica matches.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

sdproto() { python3 "$SD_SOURCE_DIR/tests/functional/sdproto.py" "$@"; }

start_cluster 3
format_cluster 3
dog_p 0 vdi create test 16M
head -c 16M /dev/urandom >"$SD_TMP/data"
dog_p 0 vdi write test <"$SD_TMP/data"
vid=$(dog_p 0 vdi list -r test | awk '{print $8}')

sdproto req "$(port_of 0)" DISABLE_RECOVER --expect SUCCESS >/dev/null

kill_sheep 2 KILL
wait_for_nodes 0 2
# Objects 0 and 1 change while node 2 is away.
head -c 8M /dev/urandom >"$SD_TMP/new"
dog_p 1 vdi write test 0 8M <"$SD_TMP/new"
python3 - "$SD_TMP/data" "$SD_TMP/new" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[0:8 << 20] = open(sys.argv[2], 'rb').read()
open(sys.argv[1], 'wb').write(d)
PY

start_sheep 2
wait_for_sheep 2
wait_for_nodes 0 3
obj0=00${vid}00000000
obj1=00${vid}00000001
[[ ! -e $(node_dir 2)/obj/$obj0 ]] || fail "node 2 serves its old copy of object 0"

# A 4 KiB write into object 0 reaches node 2 as a holder.
head -c 4096 /dev/urandom >"$SD_TMP/small"
dog_p 0 vdi write test 4096 4096 <"$SD_TMP/small"
python3 - "$SD_TMP/data" "$SD_TMP/small" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[4096:8192] = open(sys.argv[2], 'rb').read()
open(sys.argv[1], 'wb').write(d)
PY
head -c 4M "$SD_TMP/data" | cmp -s - "$(node_dir 2)/obj/$obj0" ||
	fail "node 2's object 0 is not the latest data plus the write"
[[ ! -e $(node_dir 2)/obj/$obj1 ]] || fail "node 2 fetched object 1 although recovery is disabled"

sdproto req "$(port_of 1)" ENABLE_RECOVER --expect SUCCESS >/dev/null
all_recovered() {
	local f
	for f in "$(node_dir 0)"/obj/00"${vid}"*; do
		cmp -s "$f" "$(node_dir 2)/obj/$(basename "$f")" || return 1
	done
}
wait_for "node 2 to recover every object" all_recovered
for i in 0 1 2; do
	dog_p "$i" vdi read test | cmp -s - "$SD_TMP/data" || fail "data through node $i differs"
	assert_alive "$i"
done
pass
