#!/usr/bin/env bash
# The operator's controls of recovery and placement (spec 11.2, 11.3, 12):
# the recovery throttle set by `sheep -R` and by the `recovery` config key
# (the flag wins) and read and changed with `dog node recovery
# get-throttle|set-throttle`; `dog node recovery` (with info, -r and -P);
# `dog node md info` (-A, -r); `dog cluster recover enable|disable|force`;
# `dog cluster alter-copy`; `dog node kill` (by id and with -l) really
# removing the node from the others' node lists, seen in `cluster info -d`;
# `dog cluster reweight` announcing a node whose recorded capacity was wrong;
# and every kind of bad input refused with a clear message, its exit code,
# and the daemons still answering.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

# capture CMD...: stdout in OUT, stderr in ERR, exit status in RC.
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

expect_line() {
	grep -qxF -- "$1" <<<"$2" ||
		fail "$3: no line '$1' in: $2"
}

# throttle_is IDX MAX INTERVAL: get-throttle of sheep IDX says so.
throttle_is() {
	capture dog_p "$1" node recovery get-throttle
	expect_rc 0 "get-throttle on sheep $1"
	assert_eq "max ($2), interval ($3)" "$ERR" "get-throttle on sheep $1"
	assert_eq "" "$OUT" "get-throttle stdout on sheep $1"
}

# The number of virtual nodes of node IDX in the list of sheep VIA.
vnodes_of() {
	dog_p "$2" node list -r | awk -v id="$1" '$1 == id { print $3 }'
}

# The latest epoch as sheep IDX reports it.
epoch_of() {
	dog_p "$1" cluster info -r | awk 'NR == 3 { print $2 }'
}

epoch_above() {
	(($(epoch_of "$1") > $2))
}

recovery_is() {
	[[ $(dog_p "$1" cluster info -r | head -n 1) == "running, auto-recovery $2" ]]
}

dead_port=$(aux_port 15)

# --- Bad -R values and config keys stop sheep before it starts. ------------

for bad in max=0,interval=100 max=5,interval=0 max=5 interval=100 \
	max=x,interval=100 max=5,interval=-1 max=4294967296,interval=1 \
	max=5,interval=100,speed=2 ""; do
	capture timeout 10 "$SHEEP" -f -p "$dead_port" -R "$bad" "$SD_TMP/never"
	expect_rc 1 "sheep -R '$bad'"
	expect_line "sheep: invalid -R '$bad': expected max=N,interval=MS, both positive (or both 0 for no limit)" \
		"$ERR" "sheep -R '$bad'"
	[[ ! -e $SD_TMP/never ]] || fail "sheep -R '$bad' created its store"
done
echo "recovery = max=1" >"$SD_TMP/bad.conf"
capture timeout 10 "$SHEEP" -f -p "$dead_port" --config "$SD_TMP/bad.conf" "$SD_TMP/never"
expect_rc 1 "config key recovery = max=1"
expect_line "sheep: $SD_TMP/bad.conf:1: invalid key or value for 'recovery'" \
	"$ERR" "config key recovery = max=1"

# --- dog's own checks need no cluster. --------------------------------------

capture "$DOG" node recovery -p "$dead_port"
expect_rc 2 "node recovery with no sheep"
expect_line "Failed to get node list" "$ERR" "node recovery with no sheep"

capture "$DOG" --help
for cmd in "node kill" "node recovery" "node md" "cluster recover" \
	"cluster reweight" "cluster alter-copy"; do
	grep -qE "^  $cmd +[a-z]" <<<"$OUT" || fail "dog --help lists no '$cmd'"
done

capture "$DOG" cluster recover -p "$dead_port"
expect_rc 64 "cluster recover without a subcommand"
[[ $(head -n 1 <<<"$OUT") == "Usage: dog cluster recover "*"force|enable|disable" ]] ||
	fail "cluster recover usage is '$(head -n 1 <<<"$OUT")'"
capture "$DOG" cluster recover foo -p "$dead_port"
expect_rc 64 "cluster recover foo"
expect_line "Invalid command 'cluster recover foo'" "$ERR" "cluster recover foo"
capture "$DOG" node md -p "$dead_port"
expect_rc 64 "node md without a subcommand"
capture "$DOG" node md plug /x -p "$dead_port"
expect_rc 64 "node md plug"
expect_line "Invalid command 'node md plug'" "$ERR" "node md plug"
capture "$DOG" node kill -P -p "$dead_port"
expect_rc 64 "node kill -P (not one of its options)"

# --- Three sheep: the throttle from -R, from the file, and from neither. ---

echo "recovery = max=3,interval=100" >"$SD_TMP/throttle.conf"
start_sheep 0 --config "$SD_TMP/throttle.conf" -R max=5,interval=250
wait_for_sheep 0
start_sheep 1 --config "$SD_TMP/throttle.conf"
wait_for_sheep 1
start_sheep 2
wait_for_sheep 2
wait_for_nodes 0 3
format_cluster 3
p0=$(port_of 0) p1=$(port_of 1) p2=$(port_of 2)

throttle_is 0 5 250
throttle_is 1 3 100
throttle_is 2 0 0

capture dog_p 2 node recovery set-throttle 10 1000
expect_rc 0 "set-throttle 10 1000"
assert_eq "" "$OUT$ERR" "set-throttle output"
throttle_is 2 10 1000
throttle_is 0 5 250 # set-throttle changes the addressed sheep only

# Bad numbers: refused by dog, nothing sent, the setting unchanged.
both_or_none="max and interval must both be positive, or both 0 to disable throttling"
declare -A bad_throttle=(
	["0 100"]=$both_or_none
	["5 0"]=$both_or_none
	["abc 100"]="Invalid max 'abc': expected a number of objects from 0 to 4294967295"
	["4294967296 100"]="Invalid max '4294967296': expected a number of objects from 0 to 4294967295"
	["5 1.5"]="Invalid interval '1.5': expected a number of milliseconds"
	["5 1e3"]="Invalid interval '1e3': expected a number of milliseconds"
	["5"]="Please specify the max number of objects and the interval in milliseconds"
	["5 100 7"]="Please specify the max number of objects and the interval in milliseconds"
)
for args in "${!bad_throttle[@]}"; do
	# shellcheck disable=SC2086 # the arguments are split on purpose
	capture dog_p 2 node recovery set-throttle $args
	expect_rc 64 "set-throttle $args"
	expect_line "${bad_throttle[$args]}" "$ERR" "set-throttle $args"
	[[ $(head -n 1 <<<"$OUT") == "Usage: dog node recovery "* ]] ||
		fail "set-throttle $args: no usage text in '$OUT'"
done
# A negative number reads as an option letter: a usage error all the same.
for args in "-1 100" "5 -1"; do
	# shellcheck disable=SC2086
	capture dog_p 2 node recovery set-throttle $args
	expect_rc 64 "set-throttle $args"
done
assert_alive 2
throttle_is 2 10 1000

# A request with the on/off byte set but a zero rate is refused by the
# daemon itself (an upstream dog would send it as it is).
python3 - "$p2" <<'PY' || fail "SET_RECOVERY 0 100 on: not refused with INVALID_PARMS"
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
payload = struct.pack("<IIQB7x", 0, 0, 100, 1)
hdr = struct.pack("<BBHIII", 0x0a, 0xcb, 0x01, 0, 1, len(payload)) + bytes(32)
s.sendall(hdr + payload)
rsp = b""
while len(rsp) < 48:
    rsp += s.recv(48 - len(rsp))
sys.exit(0 if struct.unpack_from("<I", rsp, 16)[0] == 0x05 else 1)
PY
assert_alive 2
throttle_is 2 10 1000

capture dog_p 2 node recovery set-throttle 0 0
expect_rc 0 "set-throttle 0 0"
throttle_is 2 0 0

capture dog_p 0 node recovery foo
expect_rc 64 "node recovery foo"
expect_line "Invalid command 'node recovery foo'" "$ERR" "node recovery foo"
assert_alive 0

# --- node recovery: the header; nodes in recovery are not asserted. --------

rec_header="Nodes In Recovery:
  Id   Host:Port         V-Nodes       Zone       Progress"
for sub in "" info; do
	# shellcheck disable=SC2086
	capture dog_p 1 node recovery $sub
	expect_rc 0 "node recovery $sub"
	assert_eq "$rec_header" "$(head -n 2 <<<"$OUT")" "node recovery $sub header"
done
capture dog_p 1 node recovery -r
expect_rc 0 "node recovery -r"
[[ $OUT != *"Nodes In Recovery"* ]] || fail "node recovery -r prints the header"
capture dog_p 1 node recovery -P
expect_rc 0 "node recovery -P"

# --- node md info. ----------------------------------------------------------

md_header=$'Id\tSize\tUsed\tAvail\tUse%\tPath'
capture dog_p 0 node md info
expect_rc 0 "node md info"
mapfile -t lines <<<"$OUT"
assert_eq 2 "${#lines[@]}" "node md info line count ($OUT)"
assert_eq "$md_header" "${lines[0]}" "node md info header"
obj0=$(realpath "$(node_dir 0)")/obj
[[ ${lines[1]} =~ ^\ 0$'\t'[0-9.]+\ [MGTPE]B$'\t'[0-9.]+\ [MGTPE]B$'\t'[0-9.]+\ [MGTPE]B$'\t'\ *[0-9]+%$'\t'(.*)$ ]] ||
	fail "node md info row is '${lines[1]}'"
assert_eq "$obj0" "${BASH_REMATCH[1]}" "node md info path"

capture dog_p 1 node md info -r
expect_rc 0 "node md info -r"
read -r who idx size used avail pct path <<<"$OUT"
assert_eq "127.0.0.1:$p1 0" "$who $idx" "node md info -r node and disk"
((size == used + avail && size > 0)) ||
	fail "node md info -r: size $size is not used $used + avail $avail"
pct=${pct%\%}
((pct >= used * 100 / size - 1 && pct <= used * 100 / size + 1)) ||
	fail "node md info -r: use $pct% for $used of $size bytes"
assert_eq "$(realpath "$(node_dir 1)")/obj" "$path" "node md info -r path"

capture dog_p 0 node md info -A
expect_rc 0 "node md info -A"
mapfile -t lines <<<"$OUT"
assert_eq 9 "${#lines[@]}" "node md info -A line count ($OUT)"
for i in 0 1 2; do
	assert_eq "Node $i:" "${lines[i * 3]}" "node md info -A node line"
	assert_eq "$md_header" "${lines[i * 3 + 1]}" "node md info -A header"
	[[ ${lines[i * 3 + 2]} == *$'\t'"$(realpath "$(node_dir "$i")")/obj" ]] ||
		fail "node md info -A: row of node $i is '${lines[i * 3 + 2]}'"
done
capture dog_p 0 node md info -A -r
expect_rc 0 "node md info -A -r"
assert_eq "127.0.0.1:$p0
127.0.0.1:$p1
127.0.0.1:$p2" "$(cut -d' ' -f1 <<<"$OUT")" "node md info -A -r nodes"

# --- cluster recover enable|disable|force. ----------------------------------

capture dog_p 0 cluster recover disable
expect_rc 0 "cluster recover disable"
assert_eq "Cluster recovery: disable" "$OUT" "cluster recover disable"
for i in 0 1 2; do
	wait_for "sheep $i to show recovery disabled" recovery_is "$i" disabled
done
capture dog_p 1 cluster recover enable
expect_rc 0 "cluster recover enable"
assert_eq "Cluster recovery: enable" "$OUT" "cluster recover enable"
for i in 0 1 2; do
	wait_for "sheep $i to show recovery enabled" recovery_is "$i" enabled
done

epoch=$(epoch_of 0)
force_prompt="    __
   ()'\`;
   /\\|\`  Caution! Forcing recovery starts a new epoch with only the
  /  |   nodes running now; data held only by the missing nodes may
(/_)_|_  be lost. Are you sure you want to continue? [yes/no]: "
RC=0
OUT=$(echo no | dog_p 0 cluster recover force) || RC=$?
expect_rc 0 "cluster recover force answered no"
assert_eq "$force_prompt" "$OUT" "cluster recover force prompt"
# A running cluster has nothing to force.
capture dog_p 0 cluster recover force -f
expect_rc 1 "cluster recover force -f on a running cluster"
assert_eq "Failed to force recovery: Cluster is running/halted and cannot be force recovered" \
	"$ERR" "cluster recover force -f on a running cluster"
assert_eq "$epoch" "$(epoch_of 0)" "epoch after refused force recovery"
for i in 0 1 2; do assert_alive "$i"; done

# --- node kill: bad ids, then a real kill. ----------------------------------

capture dog_p 0 node kill
expect_rc 64 "node kill without an id"
expect_line "Please specify the node id, or -l for the node given by -a and -p" \
	"$ERR" "node kill without an id"
for id in 3 99; do
	capture dog_p 0 node kill "$id"
	expect_rc 64 "node kill $id"
	expect_line "Invalid node id $id: the cluster has 3 nodes, numbered 0 to 2" \
		"$ERR" "node kill $id"
done
for id in x 1x ""; do
	capture dog_p 0 node kill "$id"
	expect_rc 64 "node kill '$id'"
	expect_line "Invalid node id '$id': expected a number from 'dog node list'" \
		"$ERR" "node kill '$id'"
done
capture dog_p 0 node kill -l 1
expect_rc 64 "node kill -l 1"
expect_line "Give either a node id or -l, not both" "$ERR" "node kill -l 1"
for i in 0 1 2; do assert_alive "$i"; done
wait_for_nodes 0 3

pid2=${SD_PIDS[2]}
capture dog_p 0 node kill 2
expect_rc 0 "node kill 2"
assert_eq "" "$OUT$ERR" "node kill 2 output"
wait_exit "$pid2" "$SD_WAIT_TIMEOUT" || fail "sheep 2 still runs after node kill 2"
status=0
wait "$pid2" || status=$?
assert_eq 0 "$status" "exit status of the killed sheep"
wait_for_nodes 0 2
wait_for_nodes 1 2
capture dog_p 1 node list -r
assert_eq "0 127.0.0.1:$p0 128 0
1 127.0.0.1:$p1 128 1" "$OUT" "node list after node kill 2"

# cluster info -d: the newest epoch lost sheep 2, the oldest is the format.
capture dog_p 0 cluster info -d
expect_rc 0 "cluster info -d"
mapfile -t lines <<<"$OUT"
[[ ${lines[5]} =~ ^[0-9-]+\ [0-9:]+\ +[0-9]+\ \[-127\.0\.0\.1:$p2\]$ ]] ||
	fail "cluster info -d newest epoch is '${lines[5]}'"
[[ ${lines[-1]} =~ ^[0-9-]+\ [0-9:]+\ +1\ \[formated\]$ ]] ||
	fail "cluster info -d oldest epoch is '${lines[-1]}'"

# --- reweight: sheep 2 comes back with half its real capacity on record. ---

python3 - "$(node_dir 2)/config" <<'PY'
import struct, sys
path = sys.argv[1]
with open(path, "r+b") as f:
    f.seek(32)
    space = struct.unpack("<Q", f.read(8))[0]
    f.seek(32)
    f.write(struct.pack("<Q", space // 2))
PY
start_sheep 2
wait_for_sheep 2
wait_for_nodes 0 3
v0=$(vnodes_of 0 0) v2=$(vnodes_of 2 0)
((v2 * 10 < v0 * 6)) ||
	fail "with half the capacity on record sheep 2 has $v2 vnodes, sheep 0 $v0"
capture dog_p 0 node recovery
expect_rc 0 "node recovery after a join"
assert_eq "$rec_header" "$(head -n 2 <<<"$OUT")" "node recovery header after a join"

epoch=$(epoch_of 0)
capture dog_p 1 cluster reweight
expect_rc 0 "cluster reweight"
assert_eq "" "$OUT$ERR" "cluster reweight output"
wait_for "a new epoch after reweight" epoch_above 0 "$epoch"
reweighted() {
	local a b
	a=$(vnodes_of 0 1) b=$(vnodes_of 2 1)
	((b * 10 >= a * 9 && b * 10 <= a * 11))
}
wait_for "sheep 2's vnodes to match its real capacity" reweighted
for i in 0 1 2; do assert_alive "$i"; done

# --- node kill -l: the addressed sheep kills itself. ------------------------

pid1=${SD_PIDS[1]}
capture dog_p 1 node kill -l
expect_rc 0 "node kill -l"
wait_exit "$pid1" "$SD_WAIT_TIMEOUT" || fail "sheep 1 still runs after node kill -l"
wait_for_nodes 0 2
wait_for_nodes 2 2
capture dog_p 2 node list -r
assert_eq "0 127.0.0.1:$p0 $(vnodes_of 0 2) 0
1 127.0.0.1:$p2 $(vnodes_of 1 2) 2" "$OUT" "node list after node kill -l"
start_sheep 1
wait_for_sheep 1
wait_for_nodes 0 3

# --- cluster alter-copy. ----------------------------------------------------

capture dog_p 0 cluster alter-copy
expect_rc 64 "alter-copy without -c"
expect_line "Please specify the redundancy level with -c" "$ERR" "alter-copy without -c"
capture dog_p 0 cluster alter-copy -c 4:2
expect_rc 64 "alter-copy -c 4:2"
expect_line "Changing the redundancy level to erasure coding is not supported yet." \
	"$ERR" "alter-copy -c 4:2"
capture dog_p 0 cluster alter-copy -c 3
expect_rc 1 "alter-copy to the current level"
expect_line "The cluster's redundancy level is already set to 3, nothing changed." \
	"$ERR" "alter-copy to the current level"
RC=0
OUT=$(echo no | dog_p 0 cluster alter-copy -c 5) || RC=$?
expect_rc 0 "alter-copy -c 5 answered no"
assert_eq "Number of copies (5) is larger than number of nodes (3).
Are you sure you want to continue? [yes/no]: " "$OUT" "alter-copy -c 5 prompt"

capture dog_p 0 cluster alter-copy -c 2
expect_rc 0 "alter-copy -c 2"
expect_line "The cluster's redundancy level is set to 2, the old one was 3." \
	"$ERR" "alter-copy -c 2"
copies_are() {
	dog_p "$1" cluster info -v | grep -qxF "Cluster store: plain with $2 redundancy policy"
}
for i in 0 1 2; do
	wait_for "sheep $i to have 2 copies by default" copies_are "$i" 2
done
capture dog_p 1 vdi create after 8M
expect_rc 0 "vdi create after alter-copy"
[[ $(dog_p 2 vdi list -r after) =~ ^=\ after\ 0\ 8388608\ .*\ 2\ \ 22$ ]] ||
	fail "a new VDI does not get the new default: $(dog_p 2 vdi list -r after)"

# --- recover force, for real: the cluster waits for a sheep that is gone. --

capture dog_p 0 cluster shutdown
expect_rc 0 "cluster shutdown"
for i in 0 1 2; do
	wait_exit "${SD_PIDS[$i]}" "$SD_WAIT_TIMEOUT" ||
		fail "sheep $i still runs after cluster shutdown"
done
start_sheep 0
wait_for_sheep 0
start_sheep 1
wait_for_sheep 1
wait_for_nodes 0 2
waiting() {
	[[ $(dog_p 0 cluster info -r | head -n 1) == "Waiting for other nodes to join cluster" ]]
}
wait_for "the cluster to wait for sheep 2" waiting
# A waiting sheep reports no history; its epoch log is on disk.
epoch=$(find "$(node_dir 0)/epoch" -name '[0-9]*' -printf '%f\n' | sort | tail -n 1)
epoch=$((10#$epoch))
capture dog_p 0 cluster recover force -f
expect_rc 0 "cluster recover force -f while waiting"
assert_eq "" "$OUT$ERR" "cluster recover force output"
wait_for "the cluster to run without sheep 2" cluster_running 0
wait_for "sheep 1 to run" cluster_running 1
wait_for "a new epoch after force recovery" epoch_above 0 "$epoch"
capture dog_p 1 cluster info -d
[[ $(sed -n 6p <<<"$OUT") =~ \[-127\.0\.0\.1:$p2\]$ ]] ||
	fail "cluster info -d after force recovery: $OUT"
cmp -s <(dog_p 1 vdi read after 0 4096) <(head -c 4096 /dev/zero) ||
	fail "the VDI is not readable after force recovery"

pass
