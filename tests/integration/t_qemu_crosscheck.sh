#!/usr/bin/env bash
# QEMU (TCG) as the reference for the test guest: test=all on 2 vCPUs and
# test=fallback must pass there too (TCG runs the kernel-mode instructions
# itself, with the features the CPU model shows), and test=work must
# print the same per-CPU digests under QEMU and krg-vmm; test=blk drives
# QEMU's virtio-blk-pci.
source "$(dirname "$0")/lib.sh"
need_guest
command -v qemu-system-x86_64 >/dev/null 2>&1 || skip "qemu-system-x86_64 is not installed"

QEMU_GUEST=$ROOT/tests/integration/qemu-guest.sh
# TCG in QEMU 7.2 implements all of these; plain qemu64 lacks them.
FALLBACK_CPU=qemu64,+popcnt,+abm,+bmi1,+smap
WORK_ROUNDS=20000	# ~1 s on 2 vCPUs under TCG here

# qemu LOG ARGS... : one QEMU run; sets RC (qemu-guest.sh's status).
qemu() {
	local log=$1
	shift
	RC=0
	KRG_TEST_GUEST=$GUEST timeout -k 5 180 "$QEMU_GUEST" --timeout 150 "$@" \
		</dev/null >"$log" 2>&1 || RC=$?
}

log=$WORK/qemu-all.log
t0=$(now_ms)
qemu "$log" -smp 2 test=all
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS all' "$log"
assert_log '^krg-test: smp: all 2 cpus computed correct results' "$log"
echo "  ok: QEMU TCG test=all -smp 2 ($(($(now_ms) - t0)) ms)"

log=$WORK/qemu-fallback.log
t0=$(now_ms)
qemu "$log" -smp 1 --cpu "$FALLBACK_CPU" test=fallback
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS fallback' "$log"
assert_log '^krg-test: fallback: CPUID popcnt 1 abm\(lzcnt\) 1 bmi1\(tzcnt\) 1 smap 1' "$log"
assert_log '^krg-test: fallback: stac set RFLAGS.AC' "$log"
refute_log 'MISMATCH|fallback: warning' "$log"
echo "  ok: QEMU TCG test=fallback with $FALLBACK_CPU, no warnings ($(($(now_ms) - t0)) ms)"

if [[ -r /dev/kvm && -w /dev/kvm ]]; then
	# popcnt, int3 and int $0x41 have one meaning whatever CPUID says: the
	# lines krg-vmm's run prints for them must equal QEMU's.
	kvm_log=$WORK/krg-fallback.log
	run_vmm "$kvm_log" 60 launch -m 128 -smp 1 -kernel "$GUEST" -append "test=fallback"
	assert_no_sanitizer_report "$kvm_log"
	assert_rc 0 "$kvm_log"
	# shellcheck disable=SC2016 # a regular expression: \$ is literal
	same='^krg-test: fallback: (popcnt .*: ok in kernel and user mode|int3 .*|int \$0x41 .*)$'
	if ! diff <(grep -E "$same" "$log") <(grep -E "$same" "$kvm_log") >&2; then
		fail "test=fallback: popcnt/int3/int \$0x41 lines differ between QEMU and krg-vmm"
	fi
	[[ $(grep -cE "$same" "$log") -eq 6 ]] || fail "expected 4 popcnt and 2 trap lines from the guest"
	echo "  ok: krg-vmm's popcnt/int3/int \$0x41 results equal QEMU's ($(grep -cE "$same" "$log") lines)"
fi

log=$WORK/qemu-work.log
t0=$(now_ms)
qemu "$log" -smp 2 test=work "rounds=$WORK_ROUNDS"
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS work' "$log"
want=$(work_digests "$log")
[[ $(wc -l <<<"$want") -eq 2 ]] || fail "QEMU's test=work printed no digests for 2 cpus"
echo "  ok: QEMU TCG test=work rounds=$WORK_ROUNDS -smp 2 ($(($(now_ms) - t0)) ms)"
if [[ -r /dev/kvm && -w /dev/kvm ]]; then
	kvm_log=$WORK/krg-work.log
	run_vmm "$kvm_log" 60 launch -m 128 -smp 2 -kernel "$GUEST" \
		-append "test=work rounds=$WORK_ROUNDS timeout=30"
	assert_no_sanitizer_report "$kvm_log"
	assert_rc 0 "$kvm_log"
	got=$(work_digests "$kvm_log")
	if [[ $got != "$want" ]]; then
		diff <(echo "$want") <(echo "$got") >&2 || true
		fail "test=work digests differ between QEMU and krg-vmm"
	fi
	echo "  ok: krg-vmm's test=work digests equal QEMU's"
else
	echo "  (no /dev/kvm: krg-vmm side of the comparisons skipped)"
fi

# The test guest's virtio-blk driver against QEMU's device (transitional,
# 1af4:1001 on the pc machine): the guest's own read-back passes and the
# image holds what it says it wrote.
disk=$WORK/qemu-blk.raw
truncate -s 16M "$disk"
log=$WORK/qemu-blk.log
t0=$(now_ms)
qemu "$log" -smp 1 --drive "$disk" test=blk blkmib=2
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS blk' "$log"
blk_check_image "$disk" 2 "$log"
echo "  ok: QEMU TCG test=blk on QEMU's virtio-blk-pci, image checked on the host ($(($(now_ms) - t0)) ms)"
pass "QEMU TCG agrees (test=all, test=fallback, test=work digests, test=blk on QEMU's virtio-blk)"
