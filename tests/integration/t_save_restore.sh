#!/usr/bin/env bash
# Pause/save/restore round trip: the test guest's test=work (a long
# deterministic computation on every vCPU with the LAPIC timer and IPIs
# running) is saved mid-way with --save-after, continued in a fresh
# krg-vmm with --restore, and must print the same per-CPU digests as an
# uninterrupted run, with every IPI counted exactly.  Then bad state
# files: one flipped byte, and a VM shape (-smp, -m) that does not match.
source "$(dirname "$0")/lib.sh"
need_kvm
need_guest

SMP=2
# timeout=: the guest's watchdog, so a vCPU that stops taking interrupts
# ends in the guest's own diagnosis well before run_vmm's limit.
APPEND="test=work timeout=40"
state=$WORK/work.state
ref=$WORK/reference.log
saved=$WORK/save.log
restored=$WORK/restore.log

# An uninterrupted run: the reference digests.
t0=$(now_ms)
run_vmm "$ref" 120 launch -m 128 -smp $SMP -kernel "$GUEST" -append "$APPEND"
assert_no_sanitizer_report "$ref"
assert_rc 0 "$ref"
assert_log '^KRG-TEST PASS work$' "$ref"
assert_log "^krg-test: work: all $SMP digests match the closed form$" "$ref"
want=$(work_digests "$ref")
[[ $(wc -l <<<"$want") -eq $SMP ]] || fail "reference run printed $(wc -l <<<"$want") digest lines, expected $SMP"
ref_ms=$(($(now_ms) - t0))
echo "  ok: uninterrupted test=work -smp $SMP ($ref_ms ms)"

# test=work starts ~0.2 s after boot and lasts ~2-3 s here: half the
# reference run lands in its middle, also on a faster host.
SAVE_AFTER_MS=$((ref_ms / 2))
[[ $SAVE_AFTER_MS -ge 300 ]] || SAVE_AFTER_MS=300

# The same, paused and saved mid-work.
t0=$(now_ms)
run_vmm "$saved" 60 launch -m 128 -smp $SMP -kernel "$GUEST" -append "$APPEND" \
	--save-after $SAVE_AFTER_MS --save-to "$state"
assert_no_sanitizer_report "$saved"
assert_rc 0 "$saved"
assert_log "^krg-vmm: state saved to .* after $SAVE_AFTER_MS ms" "$saved"
assert_log '^krg-test: work: started' "$saved"
refute_log 'digest|^KRG-TEST' "$saved"
[[ -s $state ]] || fail "no state file written"
echo "  ok: saved mid-work after $SAVE_AFTER_MS ms ($(($(now_ms) - t0)) ms," \
	"$(($(stat -c %s "$state") >> 20)) MiB state)"

# Continued in a fresh VM: same digests, no second boot.
t0=$(now_ms)
run_vmm "$restored" 120 launch -m 128 -smp $SMP --restore "$state"
assert_no_sanitizer_report "$restored"
assert_rc 0 "$restored"
refute_log 'krg-test-guest starting|work: started|KRG-TEST FAIL' "$restored"
assert_log '^KRG-TEST PASS work$' "$restored"
got=$(work_digests "$restored")
if [[ $got != "$want" ]]; then
	diff <(echo "$want") <(echo "$got") >&2 || true
	fail "digests after save/restore differ from the uninterrupted run"
fi
echo "  ok: restored run finished with identical digests ($(($(now_ms) - t0)) ms):"
mapfile -t lines <<<"$got"
printf '      %s\n' "${lines[@]}"

# check_bad WHAT PATTERN ARGS... : exit status 2 and one line naming it.
check_bad() {
	local what=$1 pattern=$2 log=$WORK/bad.log
	shift 2
	run_vmm "$log" 60 "$@"
	assert_no_sanitizer_report "$log"
	[[ $RC -eq 2 ]] || { cat "$log" >&2; fail "$what: exit status $RC, expected 2"; }
	[[ $(wc -l <"$log") -eq 1 ]] || { cat "$log" >&2; fail "$what: expected exactly one line"; }
	grep -Eq "^krg-vmm: .*($pattern)" "$log" || { cat "$log" >&2; fail "$what: message lacks /$pattern/"; }
	echo "  ok: $what -> $(cat "$log")"
}

check_bad "restore with -smp 1" "vCPUs.*-smp|-smp" launch -m 128 -smp 1 --restore "$state"
check_bad "restore with -m 256" "MiB.*-m|-m" launch -m 256 -smp $SMP --restore "$state"

# One byte flipped in the middle of the file.
size=$(stat -c %s "$state")
off=$((size / 2))
byte=$(od -An -tu1 -j "$off" -N1 "$state" | tr -d ' ')
printf '%b' "\\$(printf '%03o' $((byte ^ 0xff)))" |
	dd of="$state" bs=1 seek="$off" conv=notrunc status=none
[[ $(od -An -tu1 -j "$off" -N1 "$state" | tr -d ' ') -eq $((byte ^ 0xff)) ]] ||
	fail "could not corrupt the state file"
check_bad "restore of a state file with byte $off flipped" "checksum" \
	launch -m 128 -smp $SMP --restore "$state"
pass "digests identical across save/restore; bad state files refused"
