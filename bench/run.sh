#!/usr/bin/env bash
# Microbenchmarks of the test guest under krg-vmm and under QEMU + KVM, in
# one run, as ratios (krg-vmm / QEMU).  QEMU keeps its LAPIC in the kernel;
# krg-vmm's is in userspace so that it can span hosts.
#
#   bench/run.sh [ROUNDS]        (default 5 rounds per VMM, alternating)
#
# Prints a table and appends it to bench/RESULTS.md with the date and the
# machine.  Not a test: nothing here fails on a slow number.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-5}
vmm=${KRG_VMM:-./krg-vmm}
guest=${KRG_TEST_GUEST:-build/guest/krg-test-guest}
qemu=${QEMU:-qemu-system-x86_64}
# -cpu host aborts on PVM hosts (MSR 0x10a): qemu64 plus x2APIC, as asked.
qemu_cpu=${QEMU_CPU:-qemu64,+x2apic}
work=$(mktemp -d /tmp/krg-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

[[ -x $vmm && -s $guest ]] || { echo "bench: build first (make)" >&2; exit 1; }
command -v "$qemu" >/dev/null || { echo "bench: $qemu not installed" >&2; exit 1; }

# Each VMM runs the guest twice: every benchmark in xAPIC mode (the LAPIC
# written from user mode), then the IPI round trip in x2APIC mode (the ICR
# is one WRMSR, as Linux sends IPIs; from user mode through a syscall).
run_krg() {
	timeout 120 "$vmm" launch -m 128 -smp 2 -kernel "$guest" \
		-append "test=bench" </dev/null >"$1" 2>&1 || true
	timeout 120 "$vmm" launch -m 128 -smp 2 -kernel "$guest" \
		-append "test=bench-ipi apic=x2apic" </dev/null >"$1.x2" 2>&1 || true
}

run_qemu() {
	local a
	for a in "test=bench" "test=bench-ipi apic=x2apic"; do
		timeout 120 "$qemu" -accel kvm -cpu "$qemu_cpu" -M pc -smp 2 -m 128 \
			-nographic -serial stdio -monitor none -no-reboot -nic none \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
			-kernel "$guest" -append "$a" </dev/null >>"$1" 2>&1 || true
	done
}

# KRG-BENCH <name> <value> <unit>  ->  "<name> <value>"
extract() {
	awk '$1 == "KRG-BENCH" { print $2, $3 }' "$1"
}

for ((i = 1; i <= rounds; i++)); do
	run_krg "$work/krg.$i"
	run_qemu "$work/qemu.$i"
	cat "$work/krg.$i.x2" >>"$work/krg.$i"
	[[ $(grep -c "KRG-TEST PASS" "$work/krg.$i") -eq 2 ]] || { echo "bench: krg-vmm round $i failed:" >&2; tail -5 "$work/krg.$i" >&2; exit 1; }
	[[ $(grep -c "KRG-TEST PASS" "$work/qemu.$i") -eq 2 ]] || { echo "bench: QEMU round $i failed:" >&2; tail -5 "$work/qemu.$i" >&2; exit 1; }
	extract "$work/krg.$i" >>"$work/krg.all"
	extract "$work/qemu.$i" >>"$work/qemu.all"
done

# Median over rounds of each metric.
median() {
	awk -v k="$1" '$1 == k { print $2 }' "$2" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "" }'
}

metrics=(pio-out pio-in lapic-mmio-write syscall ipi-rtt-median
	ipi-rtt-x2apic-median timer-oneshot-latency-median
	timer-deadline-latency-median)
targets=([0]="<= 1.1" [1]="<= 1.1" [2]="" [3]="" [4]="<= 2" [5]="<= 2" [6]="" [7]="")

# shellcheck source=lib.sh
. bench/lib.sh
bench_machine_facts
qver=$("$qemu" --version | head -1)
{
	echo
	echo "### $date: test-guest microbenchmarks, krg-vmm vs QEMU + KVM"
	echo
	echo "Machine: $(nproc) CPUs, $cpu; host kernel $(uname -r); KVM: $kvm_kind;"
	echo "$qver with \`-accel kvm -cpu $qemu_cpu\`. Guest: build/guest/krg-test-guest,"
	echo "\`-smp 2 -m 128 test=bench\` (xAPIC) and \`test=bench-ipi apic=x2apic\`; medians of"
	echo "$rounds alternating rounds (ns). The guest uses KVM's PV EOI where offered (\`pv-eoi\`"
	echo "in its banner: krg-vmm $(grep -ho 'pv-eoi o[nf]*' "$work/krg.1" | head -1 | cut -d' ' -f2), QEMU $(grep -ho 'pv-eoi o[nf]*' "$work/qemu.1" | head -1 | cut -d' ' -f2))."
	echo
	echo "| metric | krg-vmm | QEMU | ratio | target |"
	echo "|---|---|---|---|---|"
	for i in "${!metrics[@]}"; do
		m=${metrics[$i]}
		k=$(median "$m" "$work/krg.all")
		q=$(median "$m" "$work/qemu.all")
		[[ -n $k && -n $q ]] || continue
		r=$(awk -v a="$k" -v b="$q" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
		echo "| $m | $k | $q | $r | ${targets[$i]:-} |"
	done
} | tee -a bench/RESULTS.md
