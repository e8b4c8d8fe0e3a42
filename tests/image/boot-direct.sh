#!/usr/bin/env bash
# The long test for the Debian image (make check-image, not in CI): boots
# the image built by build-image.sh under krg-vmm with the kernel and the
# initramfs read from the image itself,
#
#   krg-vmm launch -kernel drive:/vmlinuz -initrd drive:/initrd.img \
#       -append "root=/dev/vda1 ..." -drive file=<overlay>,if=virtio
#
# and waits for the guest's krg-image system-running line and the serial
# login prompt, recording when each boot milestone appeared.  The image's
# report unit then keeps a file on the disk (write + sync) and powers the
# guest off (krg.poweroff=1); the next boot of the same disk, on another
# node count, must find that file; qemu-img check ends the test.  The cached
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
#   KRG_IMAGE_PLAN       node counts of the boots, one after the other on
#                        the same disk (default "1 2": a boot on 1 node
#                        that writes the disk file and powers off, then one
#                        on 2 local nodes that must find it)
#   KRG_IMAGE_RESUME=K   keep work/overlay.qcow2 from an earlier run cut
#                        short and start at the plan's boot K (boot K must
#                        find the file of boot K-1)
#   KRG_IMAGE_NODES      N alone: the plan "N 2", or "N N" for N > 1
#   KRG_IMAGE_SMP        vCPUs (default: each boot's node count)
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
nice_level=${KRG_IMAGE_NICE:-10}
for v in tmo mem nodes nice_level; do
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
first=${KRG_IMAGE_RESUME:-1}
[[ $first =~ ^[1-9][0-9]*$ ]] || img_die "KRG_IMAGE_RESUME must be a boot number"
if ((first == 1)); then
	rm -f "$overlay"
	qemu-img create -q -f qcow2 -b "$raw" -F raw "$overlay"
else
	[[ -s $overlay ]] || img_die "KRG_IMAGE_RESUME=$first: no $overlay from the earlier boots"
	out "resuming at boot $first on the disk of the earlier boots ($overlay)"
fi

# root_fs_mounts: how often the root ext4 was mounted read-write, from its
# superblock in the overlay (s_mnt_count at byte 0x34, s_mtime at 0x2c):
# a boot that never wrote its root leaves both as they were.
root_start=$(sfdisk -d "$raw" 2>/dev/null | awk -F'start=' '/start=/ { split($2, a, ","); print a[1] + 0; exit }')
root_fs_mounts() {
	local sb
	[[ -n $root_start ]] || { echo "unknown (no partition table read)"; return; }
	sb=$(mktemp)
	# The disk's first sectors up to the superblock: qemu-img dd's skip=
	# has counted into count= in some QEMU versions.
	if qemu-img dd -f qcow2 -O raw bs=512 count=$((root_start + 4)) \
		if="$overlay" of="$sb" 2>/dev/null; then
		python3 - "$sb" "$root_start" <<'PY'
import struct, sys, time
b = open(sys.argv[1], 'rb').read()[int(sys.argv[2]) * 512 + 1024:]
if len(b) < 0x3a or b[0x38:0x3a] != b'\x53\xef':
    print("unknown (no ext4 superblock)")
else:
    mtime, = struct.unpack_from('<I', b, 0x2c)
    count, = struct.unpack_from('<H', b, 0x34)
    when = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(mtime)) if mtime else 'never'
    print(f"mounted read-write {count} times, last {when}")
PY
	else
		echo "unknown (qemu-img dd failed)"
	fi
	rm -f "$sb"
}
out "root fs before boot $first: $(root_fs_mounts)"

# boot_once INDEX NODES: one boot of the overlay on NODES local nodes (as
# many vCPUs unless KRG_IMAGE_SMP says otherwise), with krg.poweroff=1 so
# the image's report unit powers the guest off once it has reported.  Sets
# boot_ok=1 when the guest reached "running", printed its disk-file lines,
# and krg-vmm exited with status 0 after the power-off.
boot_once() {
	local i=$1 n=$2 s=${KRG_IMAGE_SMP:-$2} label log pid rc=0 state t_off
	local node_args=()
	boot_ok=0
	label=boot$i-krg-smp$s
	if ((n > 1)); then
		node_args=(--local-nodes "$n")
		label+=-nodes$n
	fi
	log=$work/$label.log
	local cmd=("$vmm" launch -m "$mem" -smp "$s" -no-reboot "${node_args[@]}"
		-kernel drive:/vmlinuz -initrd drive:/initrd.img -append "$append krg.poweroff=1"
		-drive "file=$overlay,format=qcow2,if=virtio")
	out "boot $i: ${cmd[*]}"
	img_say "boot $i under krg-vmm on $n node(s) (timeout ${tmo}s, log $log)"
	: >"$log"
	nice -n "$nice_level" "${cmd[@]}" </dev/null >"$log" 2>&1 &
	pid=$!
	# shellcheck disable=SC2064 # the pid of this boot
	trap "kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true" EXIT
	img_watch "$label" "$pid" "$log" "$tmo" 300
	local outcome=$IMG_OUTCOME elapsed=$IMG_ELAPSED seen=$IMG_SEEN
	if [[ $outcome == booted ]]; then
		# The report unit powers off 10 s after its lines; a power-off
		# under PVM runs emulated kernel code for minutes.
		t_off=$EPOCHREALTIME
		while kill -0 "$pid" 2>/dev/null && (($(printf '%.0f' "$(img_since "$t_off")") < 1800)); do
			sleep 2
		done
	fi
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		rc=killed
		wait "$pid" 2>/dev/null || true
	else
		wait "$pid" || rc=$?
	fi
	trap - EXIT
	state=$(img_state "$log")
	local line="boot $i: smp=$s nodes=$n krg-vmm: $outcome after ${elapsed}s"
	[[ -z $state ]] || line+=", system-running=$state"
	if [[ -n $qemu_time && $outcome == booted ]]; then
		line+=" (qemu-tcg ${qemu_time}s, x$(awk -v a="$elapsed" -v b="$qemu_time" 'BEGIN { printf "%.0f", a / b }'))"
	fi
	[[ $outcome != booted ]] || line+=", powered off: exit status $rc"
	out "$line"
	out "  milestones: ${seen:-none}"
	out "  $(grep -a '^krg-vmm: kernel drive:' "$log" | head -n 1)"
	out "  $(grep -a '^krg-vmm: initrd drive:' "$log" | head -n 1)"
	img_report "$log" | sed 's/^/  /' | tee -a "$summary.tmp"
	out "  root fs after boot $i: $(root_fs_mounts)"
	if [[ $outcome != booted ]]; then
		out "  last console lines:"
		tr -d '\r' <"$log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | grep -av '^[[:space:]]*$' |
			tail -n 15 | sed 's/^/    /' | tee -a "$summary.tmp"
		return
	fi
	# Boot i must find the file boot i-1 wrote, and write its own.
	local want_found="krg-image: disk-file none"
	((i == 1)) || want_found="krg-image: disk-file found: boots=$((i - 1)) "
	if [[ $state == running && $rc == 0 ]] &&
		tr -d '\r' <"$log" | grep -aqF -- "$want_found" &&
		tr -d '\r' <"$log" | grep -aqE -- "krg-image: disk-file boots=$i .* write\+sync ok"; then
		boot_ok=1
	else
		out "  boot $i: FAIL (want running, exit status 0, \"$want_found\" and boots=$i written)"
	fi
}

read -r -a plan <<<"${KRG_IMAGE_PLAN:-$nodes $((nodes > 1 ? nodes : 2))}"
for n in "${plan[@]}"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || img_die "bad node count '$n' in KRG_IMAGE_PLAN"
done
((first <= ${#plan[@]})) ||
	img_die "KRG_IMAGE_RESUME=$first: the plan (${plan[*]}) has ${#plan[@]} boots"
ok=1
i=0
for n in "${plan[@]}"; do
	i=$((i + 1))
	((i >= first)) || continue
	boot_once "$i" "$n"
	if ((!boot_ok)); then
		ok=0
		break
	fi
done
# The guest's writes went into the overlay through krg-vmm's qcow2 path
# (QEMU's block layer): it must be consistent afterwards.
if check=$(qemu-img check "$overlay" 2>&1); then
	out "qemu-img check $overlay: $(printf '%s\n' "$check" | tail -n 1)"
else
	ok=0
	out "qemu-img check $overlay: FAILED"
	printf '%s\n' "$check" | sed 's/^/  /' | tee -a "$summary.tmp"
fi
mv "$summary.tmp" "$summary"
((ok))
