#!/usr/bin/env bash
# The long firmware test (make check-firmware-long, not in CI): the Debian
# bookworm disk image of tests/image/build-image.sh booted the way a PC
# boots it -- SeaBIOS, GRUB from the MBR, the kernel and initramfs from the
# ext4 root -- under krg-vmm, and for comparison under QEMU TCG with the
# same SeaBIOS and image.  Reports when each stage was reached in both
# (tests/firmware/stages.py) and where krg-vmm's vCPU was when it stopped.
# On a PVM host all of it up to the kernel's user space is emulated by
# KVM (PLATFORM.md): expect hours, or a stop, rather than seconds.
#
#   KRG_IMAGE             the image (default
#                         /var/cache/krg-vmm/images/debian-bookworm.raw)
#   KRG_FW_LONG_TIMEOUT   seconds krg-vmm gets (default 3600)
#   KRG_FW_QEMU_TIMEOUT   seconds QEMU TCG gets (default 300; 0 skips it)
#   KRG_FW_LONG_MEM       guest RAM in MiB (default 1024)
#   KRG_VMM               the krg-vmm binary (default ./krg-vmm)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vmm=${KRG_VMM:-$root/krg-vmm}
img=${KRG_IMAGE:-/var/cache/krg-vmm/images/debian-bookworm.raw}
tmo=${KRG_FW_LONG_TIMEOUT:-3600}
qtmo=${KRG_FW_QEMU_TIMEOUT:-300}
mem=${KRG_FW_LONG_MEM:-1024}
bios=/usr/share/seabios/bios-256k.bin
work=$(mktemp -d /tmp/krg-fw-long.XXXXXX)
trap 'rm -f "$work/disk.raw"' EXIT

say() { printf 'firmware-long: %s\n' "$*" >&2; }
[[ -s $img ]] || {
	say "no image at $img: build it first (tests/image/build-image.sh, or make image)"
	exit 1
}
[[ -s $bios ]] || { say "needs Debian's seabios package ($bios)"; exit 1; }
[[ -x $vmm ]] || { say "no krg-vmm at $vmm (make krg-vmm)"; exit 1; }

# The guest writes its disk: give it a sparse copy, never the cached image.
cp --sparse=always "$img" "$work/disk.raw"
say "logs in $work"

if [[ $qtmo != 0 ]] && command -v qemu-system-x86_64 >/dev/null; then
	# No VGA, as under krg-vmm: SeaBIOS's serial console shows its screen.
	say "QEMU TCG, the same SeaBIOS and image (what the guest should print):"
	python3 "$root/tests/firmware/stages.py" "$work/qemu.log" "$qtmo" -- \
		qemu-system-x86_64 -accel tcg -m "$mem" -smp 1 -nodefaults \
		-vga none -nographic -serial stdio -no-reboot -snapshot \
		-bios "$bios" \
		-drive "file=$img,format=raw,if=virtio" || true
fi

say "krg-vmm (timeout ${tmo}s; a vCPU status line every 10 s):"
rc=0
python3 "$root/tests/firmware/stages.py" --poll=10 "$work/krg-vmm.log" "$tmo" -- \
	"$vmm" launch -m "$mem" -drive "file=$work/disk.raw,format=raw" || rc=$?
grep -a -E 'krg-vmm: (fallback|vCPU [0-9]+: unsupported|KVM emulation)' "$work/krg-vmm.log" | head -5 >&2 || true
exit $rc
