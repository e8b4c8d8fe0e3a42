#!/usr/bin/env bash
# virtio-blk throughput of the test guest under krg-vmm (1 node) and under
# QEMU + KVM with virtio-blk-pci, in one run, as ratios (krg-vmm / QEMU).
#
#   bench/blk.sh [ROUNDS]        (default 5 rounds per VMM, alternating)
#
# Each run: -smp 1 -m 128, test=blk blkcpu=0 blkmib=BENCH_BLK_MIB (64) on a
# fresh sparse raw image of 2 x that size: sequential 64 KiB writes over
# MIB MiB, 384 random writes of 1-8 sectors, FLUSH, the sequential read-back
# of both regions and 256 random reads, 8 requests in flight, every sector
# checked by the guest.  Both VMMs open the image the same way: cache=
# BENCH_BLK_CACHE (writeback: buffered, flushes reach the disk; krg-vmm's
# default), krg-vmm with its default engine for that cache mode (a thread
# pool for writeback, io_uring for none) or aio=BENCH_KRG_AIO,
# QEMU with aio=BENCH_QEMU_AIO (io_uring).
# Medians over rounds of each pass's KiB/s and requests/s
# ("blk: pass ..." lines).  Prints a table and appends it to
# bench/RESULTS.md with the date and the machine.  Not a test: nothing here
# fails on a slow number.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-5}
mib=${BENCH_BLK_MIB:-64}
cache=${BENCH_BLK_CACHE:-writeback}
aio=${BENCH_QEMU_AIO:-io_uring}
krg_aio=${BENCH_KRG_AIO:-}
vmm=${KRG_VMM:-./krg-vmm}
guest=${KRG_TEST_GUEST:-build/guest/krg-test-guest}
qemu=${QEMU:-qemu-system-x86_64}
# -cpu host aborts on PVM hosts (MSR 0x10a).
qemu_cpu=${QEMU_CPU:-qemu64,+x2apic}
results=${BENCH_RESULTS:-bench/RESULTS.md}
work=$(mktemp -d /tmp/krg-bench-blk.XXXXXX)
trap 'rm -rf "$work"' EXIT

[[ -x $vmm && -s $guest ]] || { echo "bench: build first (make)" >&2; exit 1; }
command -v "$qemu" >/dev/null || { echo "bench: $qemu not installed" >&2; exit 1; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench: ROUNDS must be a number" >&2; exit 1; }
if ! [[ $mib =~ ^[0-9]+$ ]] || ((mib < 1 || mib > 64)); then
	echo "bench: BENCH_BLK_MIB must be 1..64" >&2
	exit 1
fi

append="test=blk blkcpu=0 blkmib=$mib"
img=$work/disk.img

# A fresh zeroed image, and no dirty pages of the last run left for the
# kernel to write back during this one.
fresh() {
	rm -f "$img"
	truncate -s $((2 * mib))M "$img"
	sync -f "$work"
}

run_krg() {
	fresh
	timeout 300 "$vmm" launch -m 128 -smp 1 -kernel "$guest" \
		-drive "file=$img,format=raw,cache=$cache,serial=bench${krg_aio:+,aio=$krg_aio}" \
		-append "$append timeout=280" </dev/null >"$1" 2>&1 || true
}

run_qemu() {
	fresh
	timeout 300 "$qemu" -accel kvm -cpu "$qemu_cpu" -M pc -smp 1 -m 128 \
		-nographic -serial stdio -monitor none -no-reboot -nodefaults \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-drive "file=$img,format=raw,if=none,id=d0,cache=$cache,aio=$aio" \
		-device virtio-blk-pci,drive=d0,serial=bench \
		-kernel "$guest" -append "$append timeout=280" </dev/null >"$1" 2>&1 || true
}

# "blk: pass cpu 0 queue 0 TAG: N requests, K KiB in U us: R requests/s,
# B KiB/s" -> "TAG-kib B" and "TAG-rps R"; the four passes together
# ("blk: cpu 0 queue 0: ...") -> "all-kib", "all-rps".
extract() {
	awk '/^krg-test: blk: pass cpu / { t = $8; sub(":$", "", t)
			print t "-kib", $(NF - 1); print t "-rps", $(NF - 3) }
	     /^krg-test: blk: cpu [0-9]+ queue [0-9]+: [0-9]+ requests, / {
			print "all-kib", $(NF - 1); print "all-rps", $(NF - 3) }' "$1"
}

check() {
	if ! grep -q '^KRG-TEST PASS blk' "$2" ||
	   [[ $(grep -c '^krg-test: blk: pass cpu ' "$2") -ne 4 ]]; then
		echo "bench: $1 round $i failed:" >&2
		tail -5 "$2" >&2
		exit 1
	fi
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((i = 1; i <= rounds; i++)); do
	run_krg "$work/krg.$i"
	run_qemu "$work/qemu.$i"
	check krg-vmm "$work/krg.$i"
	check QEMU "$work/qemu.$i"
	extract "$work/krg.$i" >>"$work/krg.all"
	extract "$work/qemu.$i" >>"$work/qemu.all"
	echo "round $i/$rounds done" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

median() {
	awk -v k="$1" '$1 == k { print $2 }' "$2" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "" }'
}

# krg-vmm / QEMU of each round (the two ran back to back, under about
# the same load): "min-max".
spread() {
	paste <(awk -v k="$1" '$1 == k { print $2 }' "$work/krg.all") \
	      <(awk -v k="$1" '$1 == k { print $2 }' "$work/qemu.all") |
		awk '$2 > 0 { r = $1 / $2; if (!n++ || r < lo) lo = r; if (r > hi) hi = r }
		     END { if (n) printf "%.2f-%.2f", lo, hi; else print "-" }'
}

# The guest's features line (what was negotiated), from both VMMs.
features() {
	sed -nE 's/^krg-test: blk: features ([0-9a-f]+) .*/\1/p' "$1" | head -1
}

passes=(seq-write rnd-write seq-read rnd-read all)
# shellcheck source=lib.sh
. bench/lib.sh
bench_machine_facts
qver=$("$qemu" --version | head -1)
{
	echo
	echo "### $date: virtio-blk throughput (test=blk), krg-vmm vs QEMU + KVM"
	echo
	[[ -z ${BENCH_NOTE:-} ]] || { echo "$BENCH_NOTE"; echo; }
	echo "Machine: $(nproc) CPUs, $cpu; host kernel $(uname -r); KVM: $kvm_kind;"
	echo "load average $load_before before, $load_after after. $qver with"
	echo "\`-accel kvm -cpu $qemu_cpu -device virtio-blk-pci\` on"
	echo "\`-drive format=raw,cache=$cache,aio=$aio\`; krg-vmm 1 node,"
	echo "\`-drive format=raw,cache=$cache${krg_aio:+,aio=$krg_aio}\` (${krg_aio:-io_uring, its default}). Guest: build/guest/krg-test-guest"
	echo "\`-smp 1 -m 128 $append\` on a fresh sparse raw image of $((2 * mib)) MiB"
	echo "(features negotiated: krg-vmm $(features "$work/krg.1"), QEMU $(features "$work/qemu.1"));"
	echo "\`bench/blk.sh $rounds\`: medians of $rounds alternating rounds; \`all\` is the four"
	echo "passes together. Higher is better; target >= 0.9x."
	echo
	echo "| pass | krg-vmm KiB/s | QEMU KiB/s | ratio | krg-vmm req/s | QEMU req/s | ratio | ratio per round, min-max |"
	echo "|---|---|---|---|---|---|---|---|"
	for p in "${passes[@]}"; do
		row="| $p"
		for u in kib rps; do
			k=$(median "$p-$u" "$work/krg.all")
			q=$(median "$p-$u" "$work/qemu.all")
			r=$(awk -v a="$k" -v b="$q" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
			row="$row | $k | $q | $r"
		done
		echo "$row | $(spread "$p-kib") |"
	done
} | tee -a "$results"
