#!/usr/bin/env bash
# The long test for the Debian image (make check-image, not in CI): boots
# the image built by build-image.sh under krg-vmm with the kernel and the
# initramfs read from the image itself,
#
#   krg-vmm launch -kernel drive:/vmlinuz -initrd drive:/initrd.img \
#       -append "root=/dev/vda1 ..." -drive file=<overlay>,if=virtio
#
# and waits for the guest's krg-image system-running line and the serial
# login prompt, recording when each boot milestone appeared.  The cached
# image is never written: the guest writes into a qcow2 overlay in the
# work directory.  Under PVM (PLATFORM.md) a systemd boot takes hours;
# QEMU TCG booting the same image through SeaBIOS and GRUB is the
# reference time (on a VT-x/AMD-V host krg-vmm takes seconds).
# Results: work/summary.txt; logs: work/krg-*.log, work/qemu-tcg.log.
#
# Environment:
#   KRG_VMM              the binary (default: ./krg-vmm at the top of the tree)
#   KRG_IMAGE_DIR        where the image is (default /var/cache/krg-vmm/images)
#   KRG_IMAGE_BUILD=0    do not run build-image.sh first (it is quick when the
#                        image is up to date)
#   KRG_IMAGE_TIMEOUT    seconds for the krg-vmm boot (default 14400)
#   KRG_IMAGE_MEM        guest MiB (default 512)
#   KRG_IMAGE_NODES      local nodes (default 1; N > 1 also gives N vCPUs)
#   KRG_IMAGE_SMP        vCPUs (default: the node count)
#   KRG_IMAGE_APPEND     kernel command line (the VMM adds the PVM CPU switches)
#   KRG_IMAGE_QEMU=0     skip the QEMU TCG reference boot
#   KRG_IMAGE_NICE       nice level of the krg-vmm run (default 10)
#   KRG_IMAGE_WORK       work directory (default tests/image/work)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

vmm=${KRG_VMM:-$root/krg-vmm}
[[ -x $vmm ]] || img_die "$vmm does not exist or is not executable: build it first (make krg-vmm)"
tmo=${KRG_IMAGE_TIMEOUT:-14400}
mem=${KRG_IMAGE_MEM:-512}
nodes=${KRG_IMAGE_NODES:-1}
smp=${KRG_IMAGE_SMP:-$nodes}
nice_level=${KRG_IMAGE_NICE:-10}
for v in tmo mem nodes smp nice_level; do
	[[ ${!v} =~ ^[0-9]+$ ]] || img_die "bad value '${!v}' for $v"
done
# cryptomgr.notests=1: see build-image.sh (the PVM profile adds the CPU
# switches itself, not this one).
append=${KRG_IMAGE_APPEND:-root=/dev/vda1 ro console=ttyS0 quiet systemd.show_status=error cryptomgr.notests=1}
work=${KRG_IMAGE_WORK:-$here/work}
mkdir -p "$work"

[[ ${KRG_IMAGE_BUILD:-1} == 0 ]] || "$here/build-image.sh"
raw=$IMG_DIR/$IMG_NAME.raw
[[ -s $raw ]] || img_die "$raw missing: run tests/image/build-image.sh"

summary=$work/summary.txt
: >"$summary.tmp"
out() {
	printf '%s\n' "$*" | tee -a "$summary.tmp"
}
out "krg-vmm Debian image boot, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
out "host: $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
out "image: $(head -n 3 "$IMG_DIR/$IMG_NAME.txt" 2>/dev/null | tr '\n' ';')"

qemu_time=
if [[ ${KRG_IMAGE_QEMU:-1} != 0 ]] && command -v qemu-system-x86_64 >/dev/null; then
	if "$here/qemu-boot.sh" "$raw" "$work/qemu-tcg.log" 2>"$work/qemu-tcg.summary"; then
		qemu_time=$(sed -n 's/.*QEMU TCG: booted after \([0-9.]*\)s.*/\1/p' "$work/qemu-tcg.summary")
	fi
	out "qemu-tcg (SeaBIOS + GRUB, 1 vCPU): $(grep 'QEMU TCG:' "$work/qemu-tcg.summary" | sed 's/^image: QEMU TCG: //')"
fi

overlay=$work/overlay.qcow2
rm -f "$overlay"
qemu-img create -q -f qcow2 -b "$raw" -F raw "$overlay"
node_args=()
label=krg-smp$smp
if ((nodes > 1)); then
	node_args=(--local-nodes "$nodes")
	label+=-nodes$nodes
fi
log=$work/$label.log
cmd=("$vmm" launch -m "$mem" -smp "$smp" -no-reboot "${node_args[@]}"
	-kernel drive:/vmlinuz -initrd drive:/initrd.img -append "$append"
	-drive "file=$overlay,format=qcow2,if=virtio")
out "krg-vmm: ${cmd[*]}"
img_say "booting under krg-vmm (timeout ${tmo}s, log $log)"
: >"$log"
nice -n "$nice_level" "${cmd[@]}" </dev/null >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
img_watch "$label" "$pid" "$log" "$tmo" 300
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
trap - EXIT

state=$(img_state "$log")
line="smp=$smp nodes=$nodes krg-vmm: $IMG_OUTCOME after ${IMG_ELAPSED}s"
[[ -z $state ]] || line+=", system-running=$state"
if [[ -n $qemu_time && $IMG_OUTCOME == booted ]]; then
	line+=" (qemu-tcg ${qemu_time}s, x$(awk -v a="$IMG_ELAPSED" -v b="$qemu_time" 'BEGIN { printf "%.0f", a / b }'))"
fi
out "$line"
out "  milestones: ${IMG_SEEN:-none}"
out "  $(grep -a '^krg-vmm: kernel drive:' "$log" | head -n 1)"
out "  $(grep -a '^krg-vmm: initrd drive:' "$log" | head -n 1)"
img_report "$log" | sed 's/^/  /' | tee -a "$summary.tmp"
if [[ $IMG_OUTCOME != booted ]]; then
	out "  last console lines:"
	tr -d '\r' <"$log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | grep -av '^[[:space:]]*$' |
		tail -n 15 | sed 's/^/    /' | tee -a "$summary.tmp"
fi
mv "$summary.tmp" "$summary"
[[ $IMG_OUTCOME == booted && $state == running ]]
