#!/usr/bin/env bash
# dog's command line against a real three-node cluster, checked to the byte:
# the usage and error messages with their exit codes (spec 3.4, 11.1), the
# output of cluster info, node list, node info and vdi list (spec 11.3), the
# size limits and offsets of vdi create/resize/read/write, vdi delete (also of
# a VDI that does not exist) and a cluster shutdown followed by a restart that
# finds the same VDIs, data and epoch history.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

# capture CMD...: run CMD, leaving its stdout in OUT, stderr in ERR and exit
# status in RC (trailing newlines stripped, as $(...) does).
capture() {
	RC=0
	"$@" >"$SD_TMP/out" 2>"$SD_TMP/err" || RC=$?
	OUT=$(<"$SD_TMP/out")
	ERR=$(<"$SD_TMP/err")
}

# expect_rc CODE DESCRIPTION: the last capture exited with CODE.
expect_rc() {
	[[ $RC -eq $1 ]] ||
		fail "$2: exit status $RC, expected $1 (stdout '$OUT', stderr '$ERR')"
}

# expect_line TEXT WHAT DESCRIPTION: WHAT ("$OUT" or "$ERR") has the exact line TEXT.
expect_line() {
	grep -qxF -- "$1" <<<"$2" ||
		fail "$3: no line '$1' in: $2"
}

# The VDI id of a name: FNV-1a 64 over its bytes, low 24 bits (spec 4.2).
vid_of() {
	python3 - "$1" <<'PY'
import sys
h = 0xcbf29ce484222325
for b in sys.argv[1].encode():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print("%x" % ((h & 0xffffff) or 1))
PY
}

# A VDI's data objects on sheep IDX: files named 00<vid>xxxxxxxx in obj/.
data_objects() {
	find "$(node_dir "$1")/obj" -maxdepth 1 -name "$(printf '00%06x' "0x$2")*" |
		sort
}

no_data_objects() {
	local i
	for i in 0 1 2; do
		[[ -z $(data_objects "$i" "$1") ]] || return 1
	done
}

dead_port=$(aux_port 15)

# --- Usage and command-line errors need no cluster. ------------------------

for args in "" help --help; do
	# shellcheck disable=SC2086 # the empty case means no argument at all
	capture "$DOG" $args
	expect_rc 0 "dog $args"
	[[ $(head -n 1 <<<"$OUT") =~ ^Sheepdog\ administrator\ utility\ \(version\ [^\)]+\)$ ]] ||
		fail "dog $args: first line is '$(head -n 1 <<<"$OUT")'"
	expect_line "Usage: dog <command> <subcommand> [options]" "$OUT" "dog $args"
	expect_line "Available commands:" "$OUT" "dog $args"
	grep -qE '^  vdi create +[a-z]' <<<"$OUT" ||
		fail "dog $args: no '  vdi create' line in: $OUT"
done

capture "$DOG" foo
expect_rc 64 "dog foo"
assert_eq "Invalid command 'foo'
Try 'dog --help' for more information." "$ERR" "dog foo stderr"

capture "$DOG" vdi foo
expect_rc 64 "dog vdi foo"
expect_line "Invalid command 'vdi foo'" "$ERR" "dog vdi foo"
expect_line "Available vdi commands:" "$ERR" "dog vdi foo"
for sub in create delete list resize read write; do
	expect_line "  vdi $sub" "$ERR" "dog vdi foo"
done

# Each subcommand accepts only its own option letters.
capture "$DOG" vdi list -P -p "$dead_port"
expect_rc 64 "vdi list -P"
capture "$DOG" node list -c 3 -p "$dead_port"
expect_rc 64 "node list -c 3"
capture "$DOG" cluster shutdown -r -p "$dead_port"
expect_rc 64 "cluster shutdown -r"

capture "$DOG" vdi create -h
expect_rc 0 "vdi create -h"
[[ $(head -n 1 <<<"$OUT") == "Usage: dog vdi create "*"<vdiname> <size>" ]] ||
	fail "vdi create -h: first line is '$(head -n 1 <<<"$OUT")'"

for bad in x 0 65536 12ab; do
	capture "$DOG" node list -p "$bad"
	expect_rc 64 "node list -p $bad"
	expect_line "Invalid port number '$bad'" "$ERR" "node list -p $bad"
done

# Commands that need the node list fail with status 2 when no sheep answers.
for cmd in "node list" "node info" "cluster info" "vdi create x 1M"; do
	# shellcheck disable=SC2086
	capture "$DOG" $cmd -p "$dead_port"
	expect_rc 2 "$cmd against a port with no sheep"
	expect_line "Failed to get node list" "$ERR" "$cmd against a port with no sheep"
done

# --- A fresh cluster, before and after format. -----------------------------

start_cluster 3
p0=$(port_of 0) p1=$(port_of 1) p2=$(port_of 2)

capture dog_p 0 cluster info
expect_rc 0 "cluster info before format"
assert_eq "Cluster status: Waiting for cluster to be formatted" \
	"$(head -n 1 <<<"$OUT")" "cluster info before format"
[[ $OUT != *"Cluster created at"* ]] ||
	fail "cluster info before format shows a history: $OUT"
capture dog_p 0 cluster info -r
assert_eq "Waiting for cluster to be formatted" "$(head -n 1 <<<"$OUT")" \
	"cluster info -r before format"

t_before=$(date +%s)
capture dog_p 0 cluster format -c 3
t_after=$(date +%s)
expect_rc 0 "cluster format"
expect_line "using backend plain store" "$OUT$ERR" "cluster format"
wait_for "the cluster to run" cluster_running 0

# cluster info: raw first, and the formatted form must say the same.
nodes_bracket="[127.0.0.1:$p0:128, 127.0.0.1:$p1:128, 127.0.0.1:$p2:128]"
capture dog_p 0 cluster info -r
expect_rc 0 "cluster info -r"
mapfile -t lines <<<"$OUT"
assert_eq 3 "${#lines[@]}" "cluster info -r line count ($OUT)"
assert_eq "running, auto-recovery enabled" "${lines[0]}" "cluster info -r line 1"
assert_eq "" "${lines[1]}" "cluster info -r line 2"
[[ ${lines[2]} =~ ^([0-9]+)\ 1\ (.*)$ ]] ||
	fail "cluster info -r epoch line is '${lines[2]}'"
epoch1_time=${BASH_REMATCH[1]}
assert_eq "$nodes_bracket" "${BASH_REMATCH[2]}" "cluster info -r members"
((epoch1_time >= t_before - 1 && epoch1_time <= t_after + 1)) ||
	fail "epoch 1 time $epoch1_time is outside the format ($t_before..$t_after)"

capture dog_p 1 cluster info
expect_rc 0 "cluster info"
mapfile -t lines <<<"$OUT"
assert_eq 6 "${#lines[@]}" "cluster info line count ($OUT)"
assert_eq "Cluster status: running, auto-recovery enabled" "${lines[0]}" \
	"cluster info line 1"
assert_eq "" "${lines[1]}" "cluster info line 2"
created_ok=false
for ((t = t_before - 1; t <= t_after + 1; t++)); do
	[[ ${lines[2]} == "Cluster created at $(LC_ALL=C date -d "@$t" '+%a %b %e %H:%M:%S %Y')" ]] &&
		created_ok=true
done
$created_ok || fail "cluster info line 3 is '${lines[2]}', not the format time"
assert_eq "" "${lines[3]}" "cluster info line 4"
assert_eq "Epoch Time           Version [Host:Port:V-Nodes,,,]" "${lines[4]}" \
	"cluster info header"
assert_eq "$(date -d "@$epoch1_time" '+%Y-%m-%d %H:%M:%S')      1 $nodes_bracket" \
	"${lines[5]}" "cluster info epoch line"

# node list: zone = index, because the harness passes -z IDX.
expected=$(
	echo "  Id   Host:Port         V-Nodes       Zone"
	for i in 0 1 2; do
		printf '%4d   %-20s\t%2d%11u\n' "$i" "127.0.0.1:$(port_of "$i")" 128 "$i"
	done
)
for i in 0 2; do
	capture dog_p "$i" node list
	expect_rc 0 "node list via sheep $i"
	assert_eq "$expected" "$OUT" "node list via sheep $i"
done
capture dog_p 1 node list -r
assert_eq "0 127.0.0.1:$p0 128 0
1 127.0.0.1:$p1 128 1
2 127.0.0.1:$p2 128 2" "$OUT" "node list -r"

# --- VDIs. -----------------------------------------------------------------

vid=$(vid_of test)
capture dog_p 0 vdi create test 100M
expect_rc 0 "vdi create test 100M"
assert_eq "" "$OUT$ERR" "vdi create output"

capture dog_p 1 vdi list -r
expect_rc 0 "vdi list -r"
[[ $OUT =~ ^=\ test\ 0\ 104857600\ 0\ 0\ ([0-9]+)\ $vid\ 3\ \ 22$ ]] ||
	fail "vdi list -r: '$OUT'"
ctime=${BASH_REMATCH[1]}
((ctime >= t_before - 1 && ctime <= $(date +%s) + 1)) ||
	fail "vdi creation time $ctime is not now"

vdi_header="  Name        Id    Size    Used  Shared    Creation time   VDI id  Copies  Tag   Block Size Shift"
vdi_row() { # NAME SIZE USED
	printf '%c %-8s %5d %7s %7s %7s %s  %7x %6s %13s %3u' ' ' "$1" 0 "$2" "$3" \
		"0.0 MB" "$(date -d "@$ctime" '+%Y-%m-%d %H:%M')" "0x$vid" 3 "" 22
}
capture dog_p 2 vdi list
expect_rc 0 "vdi list"
assert_eq "$vdi_header
$(vdi_row test "100 MB" "0.0 MB")" "$OUT" "vdi list"
capture dog_p 2 vdi list test
assert_eq "$vdi_header
$(vdi_row test "100 MB" "0.0 MB")" "$OUT" "vdi list test"

# node info: the header, one row per node, the totals and the virtual size.
capture dog_p 0 node info
expect_rc 0 "node info"
mapfile -t lines <<<"$OUT"
assert_eq 7 "${#lines[@]}" "node info line count ($OUT)"
assert_eq $'Id\tSize\tUsed\tAvail\tUse%' "${lines[0]}" "node info header"
size_re='[0-9]+(\.[0-9])? [MGTPEZY]B'
for i in 0 1 2; do
	[[ ${lines[i + 1]} =~ ^\ $i$'\t'$size_re$'\t'$size_re$'\t'$size_re$'\t'[\ 0-9]{2}[0-9]%$ ]] ||
		fail "node info row $i is '${lines[i + 1]}'"
done
[[ ${lines[4]} =~ ^Total$'\t'$size_re$'\t'$size_re$'\t'$size_re$'\t'[\ 0-9]{2}[0-9]%$ ]] ||
	fail "node info total is '${lines[4]}'"
assert_eq "" "${lines[5]}" "node info line 6"
assert_eq $'Total virtual image size\t100 MB' "${lines[6]}" "node info virtual size"

# Raw node info is self-consistent: used + avail = size, totals are sums.
capture dog_p 0 node info -r
expect_rc 0 "node info -r"
python3 - "$OUT" <<'PY' || fail "node info -r is inconsistent: $OUT"
import sys
lines = sys.argv[1].split("\n")
assert len(lines) == 4, lines
tot = [0, 0, 0]
for i, l in enumerate(lines[:3]):
    f = l.split(" ")
    assert len(f) == 5 and f[0] == str(i), f
    size, used, avail = map(int, f[1:4])
    assert used + avail == size and size > 0, f
    assert f[4] == "%d%%" % int(used / size * 100), f
    tot = [tot[0] + size, tot[1] + used, tot[2] + avail]
f = lines[3].split(" ")
assert f[0] == "Total" and list(map(int, f[1:4])) == tot, f
assert f[4] == "%d%%" % int(tot[1] / tot[0] * 100), f
assert f[5] == str(100 << 20), f
PY

# Creation errors.
capture dog_p 1 vdi create test 10M
expect_rc 1 "vdi create of an existing name"
assert_eq "Failed to create VDI test: VDI exists already" "$ERR" \
	"vdi create of an existing name"

capture dog_p 1 vdi create bad 10Q
expect_rc 64 "vdi create with a bad size"
expect_line "Invalid size '10Q'" "$ERR" "vdi create with a bad size"
expect_line "You may use B, K, M, G, T or P suffixes for bytes, kilobytes, megabytes, gigabytes, terabytes and petabytes." \
	"$ERR" "vdi create with a bad size"

capture dog_p 1 vdi create huge 5T
expect_rc 64 "vdi create above 4 TiB"
expect_line "VDI size is larger than 4.0 TB bytes, please use '-y' to create a hyper volume with size up to 16 PB bytes or use '-z' to create larger object size volume" \
	"$ERR" "vdi create above 4 TiB"
capture dog_p 1 vdi list huge -r
assert_eq "" "$OUT" "a refused VDI is listed"

# Exactly 4 TiB is the limit, not beyond it.
capture dog_p 2 vdi create big 4T
expect_rc 0 "vdi create of exactly 4 TiB"
capture dog_p 0 vdi list big -r
[[ $OUT =~ ^=\ big\ 0\ 4398046511104\ 0\ 0\  ]] || fail "vdi list big -r: '$OUT'"

# Resize grows, never shrinks.
capture dog_p 0 vdi resize test 200M
expect_rc 0 "vdi resize test 200M"
capture dog_p 1 vdi list test
assert_eq "$vdi_header
$(vdi_row test "200 MB" "0.0 MB")" "$OUT" "vdi list after resize"
capture dog_p 0 vdi resize test 20M
expect_rc 64 "vdi resize to a smaller size"
expect_line "Shrinking VDIs is not implemented" "$ERR" "vdi resize to a smaller size"
capture dog_p 2 vdi list test -r
[[ $OUT == "= test 0 209715200 "* ]] || fail "size after a refused shrink: '$OUT'"

# Offsets beyond the end.
capture dog_p 0 vdi read test 201M 1
expect_rc 1 "vdi read beyond the end"
assert_eq "Read offset is beyond the end of the VDI" "$ERR" "vdi read beyond the end"
capture dog_p 0 vdi write test 201M 1 <<<"x"
expect_rc 1 "vdi write beyond the end"
assert_eq "Write offset is beyond the end of the VDI" "$ERR" "vdi write beyond the end"

# Read and write with offset and length touch exactly those bytes: a write
# across the first object boundary with more input than its length, then a
# small write inside an object.
obj=$((4 << 20))
head -c $((3 * obj)) /dev/urandom >"$SD_TMP/random"
head -c $((3 * obj)) /dev/zero >"$SD_TMP/model"
# model_write OFFSET LEN: apply the write of random[0:LEN] at OFFSET to the model.
model_write() {
	python3 - "$SD_TMP/model" "$SD_TMP/random" "$1" "$2" <<'PY'
import sys
model, src, off, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = open(src, "rb").read(n)
with open(model, "r+b") as f:
    f.seek(off)
    f.write(data)
PY
}
off1=$((obj - 1000)) len1=5000
dog_p 1 vdi write test "$off1" "$len1" <"$SD_TMP/random" ||
	fail "vdi write test $off1 $len1 failed"
model_write "$off1" "$len1"
off2=$((2 * obj + 12345)) len2=777
head -c "$len2" "$SD_TMP/random" | dog_p 2 vdi write test "$off2" "$len2" ||
	fail "vdi write test $off2 $len2 failed"
model_write "$off2" "$len2"

dog_p 0 vdi read test 0 $((3 * obj)) >"$SD_TMP/back" || fail "vdi read test failed"
cmp "$SD_TMP/model" "$SD_TMP/back" || fail "vdi read does not match what was written"
dog_p 2 vdi read test "$off1" "$len1" >"$SD_TMP/back" || fail "vdi read of a range failed"
cmp <(head -c "$len1" "$SD_TMP/random") "$SD_TMP/back" ||
	fail "vdi read test $off1 $len1 returns other bytes"
dog_p 1 vdi read test $((off2 + 100)) 10 >"$SD_TMP/back" || fail "vdi read of 10 bytes failed"
cmp <(tail -c +101 "$SD_TMP/random" | head -c 10) "$SD_TMP/back" ||
	fail "vdi read test $((off2 + 100)) 10 returns other bytes"
# From an offset to the end of the VDI.
size=$((200 << 20))
dog_p 0 vdi read test $((size - 10)) >"$SD_TMP/back" || fail "vdi read of the tail failed"
assert_eq 10 "$(stat -c %s "$SD_TMP/back")" "length of a read to the end"

# Three objects were written: Used shows them.
capture dog_p 0 vdi list test
assert_eq "$vdi_header
$(vdi_row test "200 MB" "12 MB")" "$OUT" "vdi list after writes"
for i in 0 1 2; do
	assert_eq 3 "$(data_objects "$i" "$vid" | wc -l)" "data objects of test on sheep $i"
done

# Deleting a missing VDI prints the error but exits 0 (upstream quirk).
capture dog_p 0 vdi delete nosuch
expect_rc 0 "vdi delete of a missing VDI"
assert_eq "Failed to open VDI nosuch (snapshot id: 0 snapshot tag: ): No VDI found" \
	"$ERR" "vdi delete of a missing VDI"

# A second VDI that goes away with its objects; test stays.
gone_vid=$(vid_of gone)
dog_p 1 vdi create gone 12M >/dev/null || fail "vdi create gone failed"
head -c $((2 * obj)) /dev/urandom | dog_p 1 vdi write gone ||
	fail "vdi write gone failed"
for i in 0 1 2; do
	assert_eq 2 "$(data_objects "$i" "$gone_vid" | wc -l)" "data objects of gone on sheep $i"
done
capture dog_p 2 vdi delete gone
expect_rc 0 "vdi delete gone"
assert_eq "" "$OUT$ERR" "vdi delete output"
capture dog_p 0 vdi list -r gone
assert_eq "" "$OUT" "vdi list of a deleted VDI"
capture dog_p 0 vdi list -r
[[ $OUT != *" gone "* ]] || fail "deleted VDI still listed: $OUT"
wait_for "the data objects of a deleted VDI to go" no_data_objects "$gone_vid"
capture dog_p 1 vdi read gone
expect_rc 1 "vdi read of a deleted VDI"

# --- Shutdown and restart. -------------------------------------------------

list_before=$(dog_p 0 vdi list -r)
info_before=$(dog_p 0 cluster info -r)
capture dog_p 0 cluster shutdown
expect_rc 0 "cluster shutdown"
for i in 0 1 2; do
	pid=${SD_PIDS[$i]}
	wait_exit "$pid" "$SD_WAIT_TIMEOUT" ||
		fail "sheep $i (pid $pid) still runs after cluster shutdown"
	status=0
	wait "$pid" || status=$?
	assert_eq 0 "$status" "exit status of sheep $i after cluster shutdown"
done

# The first sheep back waits for the other members of the last epoch.
start_sheep 0
wait_for_sheep 0
capture dog_p 0 cluster info
assert_eq "Cluster status: Waiting for other nodes to join cluster" \
	"$(head -n 1 <<<"$OUT")" "cluster info with one of three sheep back"
start_sheep 1
start_sheep 2
wait_for_sheep 1
wait_for_sheep 2
wait_for "the cluster to run again" cluster_running 0
wait_for_nodes 0 3
assert_eq "$info_before" "$(dog_p 1 cluster info -r)" \
	"cluster info -r after restart (status and epochs)"
assert_eq "$list_before" "$(dog_p 2 vdi list -r)" "vdi list -r after restart"
dog_p 2 vdi read test 0 $((3 * obj)) >"$SD_TMP/back" || fail "vdi read after restart failed"
cmp "$SD_TMP/model" "$SD_TMP/back" || fail "data changed across shutdown and restart"
for i in 0 1 2; do
	assert_alive "$i"
done

pass
