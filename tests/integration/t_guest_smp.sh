#!/usr/bin/env bash
# The test guest's test=all (INIT/SIPI bring-up, user-mode work, IPIs in
# every destination mode, LAPIC timer modes) on 1, 2 and 4 vCPUs in xAPIC
# mode, and on 2 vCPUs in x2APIC mode (ICR and SELF IPI through MSRs).  A
# pass must end with the guest's ACPI power-off: exit status 0.
source "$(dirname "$0")/lib.sh"
need_kvm
need_guest

# run_all N APIC [PVEOI] : one run, judged from the guest's own lines.
# The guest ends interrupts through KVM's PV EOI (as Linux does) unless
# PVEOI is off.
run_all() {
	local n=$1 apic=$2 pveoi=${3:-on} log=$WORK/all-$1-$2-${3:-on}.log t0 c self
	t0=$(now_ms)
	run_vmm "$log" 120 launch -m 128 -smp "$n" -kernel "$GUEST" \
		-append "test=all apic=$apic pveoi=$pveoi"
	assert_no_sanitizer_report "$log"
	assert_rc 0 "$log"
	refute_log '^KRG-TEST FAIL' "$log"
	assert_log '^KRG-TEST PASS all$' "$log"
	assert_log '^krg-vmm: guest powered off' "$log"
	assert_log "^krg-test: $n cpus \\(fw_cfg $n\\), $apic,.*, pv-eoi $pveoi$" "$log"
	if [[ $pveoi == on ]]; then
		assert_log '^krg-test: pv-eoi: [1-9][0-9]* interrupts ended through shared memory$' "$log"
	else
		refute_log '^krg-test: pv-eoi:' "$log"
	fi
	for ((c = 1; c < n; c++)); do
		assert_log "^krg-test: cpu $c up$" "$log"
	done
	[[ $n -eq 1 ]] || assert_log "^krg-test: smp: all $n cpus up after" "$log"
	assert_log "^krg-test: smp: all $n cpus computed correct results$" "$log"
	# Exact IPI totals: all-including-self is n*n; self is one per CPU,
	# two in x2APIC mode (shorthand and the SELF IPI MSR).
	self=$n
	[[ $apic == x2apic ]] && self=$((2 * n))
	assert_log "^krg-test: ipi: all-including-self: ok, $((n * n)) IPIs counted exactly$" "$log"
	assert_log "^krg-test: ipi: self: ok, $self IPIs counted exactly$" "$log"
	for ((c = 0; c < n; c++)); do
		assert_log "^krg-test: timer: cpu $c: [0-9]+ Hz programmed, [0-9]+ measured" "$log"
		assert_log "^krg-test: timer: cpu $c: one-shot [0-9]+ us, fired after" "$log"
	done
	assert_log '^krg-test: timer: ok' "$log"
	echo "  ok: test=all -smp $n apic=$apic pveoi=$pveoi ($(($(now_ms) - t0)) ms," \
		"$(grep -c 'warning' "$log") warning lines)"
}

run_all 1 xapic
run_all 2 xapic
run_all 4 xapic
run_all 2 x2apic
run_all 2 xapic off

# An interrupt that became pending while IF=0 must end the sti;hlt that
# follows (every idle loop depends on it): 200 rounds on the AP.
log=$WORK/hltwake.log
run_vmm "$log" 60 launch -m 128 -smp 2 -kernel "$GUEST" -append "test=hltwake timeout=30"
assert_no_sanitizer_report "$log"
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS hltwake$' "$log"
assert_log '^krg-test: hltwake: 200 rounds of self-IPI with IF=0, then sti;hlt, on 1 cpus: ok$' "$log"
echo "  ok: test=hltwake -smp 2"
pass "test=all on 1, 2, 4 vCPUs (xAPIC), 2 (x2APIC), 2 without PV EOI; hltwake"
