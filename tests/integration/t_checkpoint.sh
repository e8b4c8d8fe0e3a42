#!/usr/bin/env bash
# Cluster checkpoints (krg-vmm checkpoint / restore):
#  1. test=work on 4 vCPUs across 2 local nodes is checkpointed mid-way
#     and runs on to the end; the snapshot is restored on 2, 1 and 4
#     nodes, and every restored run continues from the checkpoint (no
#     second start) to the digests of an uninterrupted run.
#  2. test=blk on a raw disk across 2 nodes, checkpointed mid-way: the
#     image stays as it was at the checkpoint while the VM goes on in an
#     overlay, and the restored guest reads back exactly what its memory
#     says it wrote.
#  3. Damaged snapshots (a flipped byte, a truncated file, another format
#     version, a missing file) are refused with one line, exit status 2,
#     and nothing starts.
#  4. A checkpoint replaces an earlier one in the same directory; one
#     whose boot node is killed (-9) while it writes leaves the previous
#     snapshot in place and restorable.
source "$(dirname "$0")/lib.sh"
need_kvm
need_guest
command -v qemu-img >/dev/null || skip "needs qemu-img (qemu-utils)"

SMP=4
ROUNDS=${CKPT_ROUNDS:-600000}
# The guest watchdog counts from boot by the TSC, which on PVM runs on
# while a snapshot waits for its restore (krg-vmm says how far): generous.
APPEND="test=work rounds=$ROUNDS timeout=1000"
LAUNCH=(launch --local-nodes 2 -m 128 -smp "$SMP" -kernel "$GUEST")
SNAP=$WORK/snap

sock_of() {
	echo "/run/krg-vmm/vm-$1.sock"
}

# checkpoint DIR [ARGS...] : on the background VM; sets CK_OUT and CK_RC.
checkpoint() {
	local dir=$1
	shift
	CK_RC=0
	CK_OUT=$(timeout 120 "$VMM" checkpoint --socket "$(sock_of "$VMM_PID")" \
		"$@" "$dir" 2>&1) || CK_RC=$?
}

wait_vmm() {
	local secs=$1 t0
	t0=$(now_ms)
	while kill -0 "$VMM_PID" 2>/dev/null; do
		[[ $(($(now_ms) - t0)) -lt $((secs * 1000)) ]] ||
			fail "krg-vmm still running after $secs s"
		sleep 0.1
	done
	RC=0
	wait "$VMM_PID" || RC=$?
}

check_digests() {
	local log=$1 what=$2 got
	got=$(work_digests "$log")
	if [[ $got != "$want" ]]; then
		diff <(echo "$want") <(echo "$got") >&2 || true
		grep -v ' net: ' "$log" | tail -25 >&2
		fail "$what: digests differ from the uninterrupted run"
	fi
}

# ---- 1. test=work ----
t0=$(now_ms)
run_vmm "$WORK/ref.log" 200 "${LAUNCH[@]}" -append "$APPEND"
assert_no_sanitizer_report "$WORK/ref.log"
assert_rc 0 "$WORK/ref.log"
assert_log '^KRG-TEST PASS work$' "$WORK/ref.log"
want=$(work_digests "$WORK/ref.log")
[[ $(wc -l <<<"$want") -eq $SMP ]] || fail "reference run printed no $SMP digests"
ref_ms=$(($(now_ms) - t0))
echo "  ok: uninterrupted test=work, $SMP vCPUs on 2 nodes ($ref_ms ms)"

log=$WORK/orig.log
start_vmm "$log" "${LAUNCH[@]}" -append "$APPEND"
wait_log '^krg-test: work: started' "$log" 120
sleep 0.5
checkpoint "$SNAP"
digests_before=$(grep -c 'digest' "$log" || true)
[[ $CK_RC -eq 0 ]] || { cat "$log" >&2; fail "checkpoint failed: $CK_OUT"; }
[[ $CK_OUT == "checkpoint $SNAP: "* ]] || fail "checkpoint said: $CK_OUT"
[[ $digests_before -eq 0 ]] || fail "the work had finished before the checkpoint"
wait_vmm 200
assert_no_sanitizer_report "$log"
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS work$' "$log"
check_digests "$log" "the checkpointed run"
[[ -s $SNAP/MANIFEST && -s $SNAP/pages-0.bin && -s $SNAP/pages-1.bin &&
	-s $SNAP/cpus-0.state && -s $SNAP/cpus-1.state ]] || fail "snapshot files missing: $(ls "$SNAP")"
ls -d "$SNAP".tmp-* >/dev/null 2>&1 && fail "a temporary directory was left behind"
echo "  ok: checkpointed mid-work and ran on: $CK_OUT"

for nodes in 2 1 4; do
	opts=()
	[[ $nodes -gt 1 ]] && opts=(--local-nodes "$nodes")
	rlog=$WORK/restore-$nodes.log
	t0=$(now_ms)
	run_vmm "$rlog" 200 restore "$SNAP" "${opts[@]}"
	assert_no_sanitizer_report "$rlog"
	assert_rc 0 "$rlog"
	refute_log 'krg-test-guest starting|work: started|KRG-TEST FAIL' "$rlog"
	assert_log '^KRG-TEST PASS work$' "$rlog"
	check_digests "$rlog" "restored on $nodes node(s)"
	[[ $nodes -gt 1 ]] && assert_log "cluster of $nodes nodes up" "$rlog"
	echo "  ok: restored on $nodes node(s): same digests ($(($(now_ms) - t0)) ms)"
done

# ---- 2. a disk ----
disk=$WORK/disk.raw
truncate -s 64M "$disk"
log=$WORK/blk.log
BLK=(launch --local-nodes 2 -m 64 -smp 2 -kernel "$GUEST"
	-append "test=blk blkmib=16 blkcpu=1 timeout=1000"
	-drive "file=$disk,format=raw,serial=ckpt0")
start_vmm "$log" "${BLK[@]}"
wait_log '^krg-test: blk: features' "$log" 60
checkpoint "$WORK/snapblk"
[[ $CK_RC -eq 0 ]] || { cat "$log" >&2; fail "checkpoint with a disk failed: $CK_OUT"; }
frozen=$(md5sum <"$disk")
overlays=$( (compgen -G "$disk.krg-*.qcow2" || true) | wc -l)
[[ $overlays -eq 1 ]] || fail "expected one overlay after the checkpoint, found $overlays"
qemu-img info -U "$(ls "$disk".krg-*.qcow2)" | grep -q "backing file: $disk" ||
	fail "the overlay is not backed by the frozen image"
wait_vmm 120
assert_no_sanitizer_report "$log"
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS blk$' "$log"
[[ $(md5sum <"$disk") == "$frozen" ]] ||
	fail "the frozen image changed after the checkpoint"
rlog=$WORK/blk-restore.log
run_vmm "$rlog" 120 restore "$WORK/snapblk"
assert_no_sanitizer_report "$rlog"
assert_rc 0 "$rlog"
refute_log 'krg-test-guest starting|KRG-TEST FAIL' "$rlog"
assert_log '^krg-test: blk: verified [0-9]+ sectors read back' "$rlog"
assert_log '^krg-test: blk: id "ckpt0"' "$rlog"
assert_log '^KRG-TEST PASS blk$' "$rlog"
[[ $(md5sum <"$disk") == "$frozen" ]] ||
	fail "the restored VM wrote into the frozen image"
echo "  ok: disk frozen at the checkpoint; the restored guest read back what it wrote"

# ---- 3. damaged snapshots ----
# bad WHAT PATTERN : restoring $WORK/bad must fail with one line.
bad() {
	local what=$1 pattern=$2 blog=$WORK/bad.log
	run_vmm "$blog" 60 restore "$WORK/bad" --local-nodes 2
	assert_no_sanitizer_report "$blog"
	[[ $RC -eq 2 ]] || { cat "$blog" >&2; fail "$what: exit status $RC, expected 2"; }
	[[ $(wc -l <"$blog") -eq 1 ]] || { cat "$blog" >&2; fail "$what: expected one line"; }
	grep -Eq "^krg-vmm: .*($pattern)" "$blog" || { cat "$blog" >&2; fail "$what: message lacks /$pattern/"; }
	echo "  ok: $what -> $(cat "$blog")"
}
fresh() {
	rm -rf "$WORK/bad"
	cp -a "$SNAP" "$WORK/bad"
}
flip() {
	local f=$1 off=$2 byte
	byte=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
	printf '%b' "\\$(printf '%03o' $((byte ^ 0x55)))" |
		dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}
fresh
flip "$WORK/bad/pages-0.bin" $(($(stat -c %s "$WORK/bad/pages-0.bin") / 2))
bad "a flipped byte in pages-0.bin" "checksum"
fresh
truncate -s -4096 "$WORK/bad/pages-1.bin"
bad "pages-1.bin truncated by a page" "truncated"
fresh
sed -i '1s/^KRG-SNAPSHOT 1 /KRG-SNAPSHOT 9 /' "$WORK/bad/MANIFEST"
bad "format version 9" "version 9"
fresh
rm "$WORK/bad/cpus-1.state"
bad "cpus-1.state missing" "missing"
fresh
flip "$WORK/bad/MANIFEST" 200
bad "a flipped byte in the manifest" "checksum|JSON"
rm -rf "$WORK/bad"
mkdir "$WORK/bad"
bad "an empty directory" "not a snapshot"

# ---- 4. a checkpoint killed midway ----
log=$WORK/kill.log
export KRG_CKPT_TEST_STALL_MS=1500
start_vmm "$log" "${LAUNCH[@]}" -append "$APPEND"
wait_log '^krg-test: work: started' "$log" 120
sleep 0.3
checkpoint "$WORK/snapk"
[[ $CK_RC -eq 0 ]] || fail "first checkpoint failed: $CK_OUT"
first=$(md5sum <"$WORK/snapk/MANIFEST")
# A second one replaces it (an atomic exchange), leaving nothing behind.
checkpoint "$WORK/snapk"
[[ $CK_RC -eq 0 ]] || fail "second checkpoint failed: $CK_OUT"
good=$(md5sum <"$WORK/snapk/MANIFEST")
[[ $good != "$first" ]] || fail "the second checkpoint did not replace the first"
compgen -G "$WORK/snapk.tmp-*" >/dev/null && fail "a replaced snapshot was left behind"
checkpoint_bg() {
	timeout 120 "$VMM" checkpoint --socket "$(sock_of "$VMM_PID")" "$WORK/snapk" \
		>"$WORK/ck2.log" 2>&1 || true
}
checkpoint_bg &
ckpid=$!
for _ in $(seq 200); do
	compgen -G "$WORK/snapk.tmp-*/pages-0.bin" >/dev/null && break
	sleep 0.02
done
compgen -G "$WORK/snapk.tmp-*/pages-0.bin" >/dev/null || fail "the second checkpoint never started writing"
kill -KILL "$VMM_PID"
wait "$VMM_PID" 2>/dev/null || true
wait "$ckpid" 2>/dev/null || true
unset KRG_CKPT_TEST_STALL_MS
sleep 0.5
[[ $(md5sum <"$WORK/snapk/MANIFEST") == "$good" ]] || fail "the killed checkpoint replaced the previous snapshot"
rlog=$WORK/kill-restore.log
run_vmm "$rlog" 200 restore "$WORK/snapk" --local-nodes 2
assert_no_sanitizer_report "$rlog"
assert_rc 0 "$rlog"
refute_log 'work: started' "$rlog"
assert_log '^KRG-TEST PASS work$' "$rlog"
check_digests "$rlog" "the snapshot before the killed checkpoint"
echo "  ok: boot node killed mid-checkpoint; the previous snapshot restored"
pass "checkpoint mid-work, restored on 2, 1 and 4 nodes; disk consistent; bad snapshots refused; killed checkpoint harmless"
