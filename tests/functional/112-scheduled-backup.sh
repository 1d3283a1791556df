#!/usr/bin/env bash
# The scheduled-backup tool (sheepdog-backup) as cron runs it: three runs
# with writes in between give a full stream, an incremental, then a full
# one again (full_every = 1), each verified and named in the manifest, with
# nothing printed and exit status 0. The second point restores into a new
# VDI with exactly the bytes the VDI held then. A smaller `keep` prunes
# the whole older chain (streams and snapshots) and leaves the chain of
# the kept points whole; the newest snapshot always stays. Overlapping
# runs meet the lock (exit 75, one line); bad configurations exit 2 with
# file:line; a damaged stream fails verify and its restore.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

TOOL=$SD_BUILD_DIR/sheepdog-backup
[[ -x $TOOL ]] || fail "no sheepdog-backup binary at $TOOL"

start_cluster 3
format_cluster 3
M=1048576
BK=$SD_TMP/backups
CONF=$SD_TMP/backup.conf

write_conf() { # write_conf KEEP KEEP_SNAPSHOTS [EXTRA LINES]
	cat >"$CONF" <<EOF
# test configuration
target = $BK
dog = $DOG
address = 127.0.0.1
port = $(port_of 1)
vdis = vm1
keep = $1
keep_snapshots = $2
full_every = 1
level = 1
dog_timeout = 120
${3:-}
EOF
}

# tool ARGS...: run the tool with the test's config; stdout and stderr go
# to $SD_TMP/out and $SD_TMP/err, the exit status to $st.
tool() {
	st=0
	timeout 300 "$TOOL" -c "$CONF" "$@" >"$SD_TMP/out" 2>"$SD_TMP/err" || st=$?
}

expect_quiet_ok() {
	((st == 0)) || fail "sheepdog-backup $* exited $st: $(cat "$SD_TMP/err")"
	[[ ! -s $SD_TMP/out ]] || fail "sheepdog-backup $* printed: $(cat "$SD_TMP/out")"
	[[ ! -s $SD_TMP/err ]] || fail "sheepdog-backup $* said: $(cat "$SD_TMP/err")"
}

put() { # put OBJ: 1 MiB of fresh random data at object OBJ of vm1
	head -c $M /dev/urandom >"$SD_TMP/piece"
	dog_p 0 vdi write vm1 $(($1 * M)) $M <"$SD_TMP/piece" ||
		fail "write of vm1 object $1 failed"
}

# The manifest's points (without comments): seq type from to file.
points() {
	grep -v '^#' "$BK/vm1/manifest" | awk '{print $1, $3, $5, $6, $4}'
}

snap_tags() {
	dog_p 0 vdi list -r vm1 | awk '$1 == "s" {print $10}'
}

assert_exit 0 dog_p 0 vdi create -z 20 vm1 8M
head -c 8M /dev/urandom >"$SD_TMP/piece8"
dog_p 0 vdi write vm1 <"$SD_TMP/piece8" || fail "initial write failed"

# --- three runs, a write between each: full, incr, full -------------------
write_conf 3 3
for k in 1 2 3; do
	((k == 1)) || put $((k * 3 % 8))
	dog_p 0 vdi read vm1 >"$SD_TMP/point$k"
	tool run
	expect_quiet_ok run $k
done
[[ -z $(find "$BK/vm1" -name '.tmp-*') ]] || fail "temporary files left behind"

mapfile -t rows < <(points)
assert_eq 3 "${#rows[@]}" "points after three runs"
read -r s1 t1 f1 to1 file1 <<<"${rows[0]}"
read -r s2 t2 f2 to2 file2 <<<"${rows[1]}"
read -r s3 t3 f3 to3 file3 <<<"${rows[2]}"
assert_eq "1 full -" "$s1 $t1 $f1" "point 1"
assert_eq "2 incr $to1" "$s2 $t2 $f2" "point 2 is incremental from point 1"
assert_eq "3 full -" "$s3 $t3 $f3" "point 3 (full_every = 1)"
for to in "$to1" "$to2" "$to3"; do
	[[ $to =~ ^backup-[0-9]{8}T[0-9]{6}Z(\.[0-9]+)?$ ]] || fail "bad tag '$to'"
done
for f in "$file1" "$file2" "$file3"; do
	[[ -f $BK/vm1/$f ]] || fail "stream $f missing"
	"$DOG" backup verify "$BK/vm1/$f" >/dev/null || fail "dog backup verify $f"
done
size1=$(stat -c %s "$BK/vm1/$file1")
size2=$(stat -c %s "$BK/vm1/$file2")
((size2 * 4 < size1)) || fail "incremental ($size2 bytes) not smaller than full ($size1)"
# Each point's size and XXH64 as the manifest says: verify checks them.
tool verify
expect_quiet_ok verify
assert_eq "$(printf '%s\n' "$to1" "$to2" "$to3")" "$(snap_tags)" "snapshots after three runs"
for k in 1 2 3; do
	to_var=to$k
	dog_p 1 vdi read -s "${!to_var}" vm1 | cmp -s - "$SD_TMP/point$k" ||
		fail "snapshot of point $k differs from what vm1 held"
done

tool list
assert_eq 0 "$st" "list exit status"
assert_eq "vm1 2 incr $to2 $size2 $file2" \
	"$(sed -n 2p "$SD_TMP/out" | awk '{print $1, $2, $4, $5, $6, $7}')" \
	"list row of point 2"

# --- restore the second point (full 1 + incremental 2) ------------------------
tool restore vm1 2 vm1-r2
expect_quiet_ok restore
dog_p 2 vdi read vm1-r2 | cmp -s - "$SD_TMP/point2" ||
	fail "vm1-r2 does not hold what vm1 held at point 2"
# By tag too, and an unknown point or an existing VDI changes nothing.
tool restore vm1 "$to1" vm1-r1
expect_quiet_ok restore by tag
dog_p 0 vdi read vm1-r1 | cmp -s - "$SD_TMP/point1" || fail "vm1-r1 differs from point 1"
tool restore vm1 9 vm1-r9
assert_eq 1 "$st" "restore of an unknown point"
grep -q "no restore point '9'" "$SD_TMP/err" || fail "unknown point message: $(cat "$SD_TMP/err")"
tool restore vm1 3 vm1-r2
assert_eq 1 "$st" "restore onto an existing VDI"
dog_p 2 vdi read vm1-r2 | cmp -s - "$SD_TMP/point2" || fail "vm1-r2 changed by a refused restore"

# --- pruning: keep 2 drops the whole first chain (points 1 and 2) -----------
put 5
dog_p 0 vdi read vm1 >"$SD_TMP/point4"
write_conf 2 2
tool run
expect_quiet_ok run 4
mapfile -t rows < <(points)
assert_eq 2 "${#rows[@]}" "points after pruning"
read -r s4 t4 f4 to4 file4 <<<"${rows[1]}"
assert_eq "3 full - $to3 $file3" "${rows[0]}" "point 3 kept whole"
assert_eq "4 incr $to3" "$s4 $t4 $f4" "point 4 is incremental from point 3"
[[ ! -e $BK/vm1/$file1 && ! -e $BK/vm1/$file2 ]] || fail "streams of the pruned chain remain"
assert_eq "$(printf '%s\n' "$to3" "$to4")" "$(snap_tags)" "snapshots after pruning"

# keep 1: point 4 still needs point 3, so no stream goes; only the snapshot
# of point 3 does, never the newest one (the base of the next run).
write_conf 1 1
tool prune
expect_quiet_ok prune
assert_eq 2 "$(points | wc -l)" "points kept for the chain of point 4"
[[ -f $BK/vm1/$file3 && -f $BK/vm1/$file4 ]] || fail "a stream of the kept chain is gone"
assert_eq "$to4" "$(snap_tags)" "only the newest snapshot stays"
tool restore vm1 4 vm1-r4
expect_quiet_ok restore 4
dog_p 0 vdi read vm1-r4 | cmp -s - "$SD_TMP/point4" || fail "vm1-r4 differs from point 4"

# --- overlapping runs --------------------------------------------------------
exec {lockfd}>>"$BK/.lock"
flock -n "$lockfd" || fail "cannot take the lock in the test"
tool run
assert_eq 75 "$st" "run while another holds the lock"
assert_eq 1 "$(wc -l <"$SD_TMP/err")" "lines on stderr when the lock is busy"
grep -q "^sheepdog-backup: $BK/.lock is held by another run; gave up after 0 s$" \
	"$SD_TMP/err" || fail "lock message: $(cat "$SD_TMP/err")"
[[ ! -s $SD_TMP/out ]] || fail "busy run printed on stdout"
write_conf 1 1 "lock_wait = 1"
tool prune
assert_eq 75 "$st" "prune that waited 1 s for the lock"
grep -q "gave up after 1 s" "$SD_TMP/err" || fail "lock_wait message: $(cat "$SD_TMP/err")"
# A shared holder (another verify or restore) still lets verify run.
flock -u "$lockfd"
flock -s -n "$lockfd" || fail "cannot take the shared lock in the test"
tool verify
expect_quiet_ok verify under a shared lock
tool run
assert_eq 75 "$st" "run while a verify holds the shared lock"
exec {lockfd}>&-
assert_eq 2 "$(points | wc -l)" "busy runs changed the manifest"

# --- configuration and usage errors ------------------------------------------
write_conf 1 1 "colour = blue"
tool run
assert_eq 2 "$st" "unknown key"
assert_eq "sheepdog-backup: $CONF:12: unknown key 'colour'" "$(cat "$SD_TMP/err")" "unknown key message"
write_conf 1 1 "keep = 0"
tool run
assert_eq 2 "$st" "keep set twice"
grep -q "^sheepdog-backup: $CONF:12: 'keep' is already set on line 7$" "$SD_TMP/err" ||
	fail "duplicate key message: $(cat "$SD_TMP/err")"
sed -i 's/^keep = 1$/keep = none/; /^keep = 0$/d' "$CONF"
tool run
assert_eq 2 "$st" "bad keep"
grep -q "$CONF:7: keep must be a whole number from 1 to 100000, not 'none'" "$SD_TMP/err" ||
	fail "bad keep message: $(cat "$SD_TMP/err")"
st=0
"$TOOL" -c "$SD_TMP/missing.conf" run 2>"$SD_TMP/err" || st=$?
assert_eq 2 "$st" "missing config file"
grep -q "cannot read $SD_TMP/missing.conf" "$SD_TMP/err" || fail "missing config message"
write_conf 1 1
tool frobnicate
assert_eq 2 "$st" "unknown subcommand"
tool restore vm1 2
assert_eq 2 "$st" "restore without NEWVDI"
tool run ../vm1
assert_eq 2 "$st" "a VDI name with '/'"
tool run nosuchvdi
assert_eq 1 "$st" "backup of a VDI that does not exist"
grep -q "nosuchvdi: no such VDI in the cluster" "$SD_TMP/err" || fail "missing VDI message"

# A dog that hangs is killed after dog_timeout; one that is missing fails.
printf '#!/bin/sh\nexec sleep 60\n' >"$SD_TMP/hung-dog"
chmod +x "$SD_TMP/hung-dog"
sed -i "s|^dog = .*|dog = $SD_TMP/hung-dog|; s|^dog_timeout = .*|dog_timeout = 1|" "$CONF"
tool run
assert_eq 1 "$st" "run with a hung dog"
grep -q "^sheepdog-backup: vm1: listing its snapshots failed: dog vdi list did not finish within 1 s; killed$" \
	"$SD_TMP/err" || fail "hung dog message: $(cat "$SD_TMP/err")"
sed -i "s|^dog = .*|dog = $SD_TMP/no-such-dog|" "$CONF"
tool run
assert_eq 1 "$st" "run without dog"
grep -q "cannot run $SD_TMP/no-such-dog: No such file or directory" "$SD_TMP/err" ||
	fail "missing dog message: $(cat "$SD_TMP/err")"
write_conf 1 1

# --- a damaged stream fails verify, and its restore creates nothing ----------
flip_byte "$BK/vm1/$file4" $(($(stat -c %s "$BK/vm1/$file4") / 2))
tool verify
assert_eq 1 "$st" "verify of a damaged stream"
grep -q "point 4" "$SD_TMP/err" || fail "verify does not name the damaged point"
tool restore vm1 4 vm1-bad
assert_eq 1 "$st" "restore of a damaged chain"
[[ -z $(dog_p 0 vdi list -r vm1-bad) ]] || fail "a failed restore created vm1-bad"

# --- the base snapshot deleted by hand: the next run writes a full stream,
# says so on stderr, and (keep 1) prunes the chain with the damaged stream.
# full_every = 0: only the missing base can make this stream full.
sed -i 's/^full_every = 1$/full_every = 0/' "$CONF"
dog_p 0 vdi delete -s "$to4" vm1
put 2
dog_p 0 vdi read vm1 >"$SD_TMP/point5"
tool -v run
assert_eq 0 "$st" "run after the base snapshot was deleted"
assert_eq "sheepdog-backup: vm1: snapshot $to4 of the last point is gone; writing a full stream" \
	"$(cat "$SD_TMP/err")" "message about the missing base"
grep -q "^vm1: point 5 full backup-" "$SD_TMP/out" || fail "-v does not report point 5: $(cat "$SD_TMP/out")"
grep -q "^vm1: pruned point 4 " "$SD_TMP/out" || fail "-v does not report the pruning"
mapfile -t rows < <(points)
assert_eq 1 "${#rows[@]}" "points after the full run with keep 1"
read -r s5 t5 f5 to5 file5 <<<"${rows[0]}"
assert_eq "5 full -" "$s5 $t5 $f5" "point 5"
assert_eq "$to5" "$(snap_tags)" "snapshots after point 5"
assert_eq "$file5 manifest" "$(find "$BK/vm1" -mindepth 1 -printf "%f\n" | sort | xargs)" "files of vm1"
tool restore vm1 5 vm1-r5
expect_quiet_ok restore 5
dog_p 1 vdi read vm1-r5 | cmp -s - "$SD_TMP/point5" || fail "vm1-r5 differs from point 5"

pass
