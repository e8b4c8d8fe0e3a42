#!/usr/bin/env bash
# qemu-boot.sh IMAGE [LOG]: boots a disk image built by build-image.sh under
# QEMU's TCG the way a PC does (SeaBIOS -> GRUB in the MBR -> kernel and
# initramfs from the ext4 root -> systemd), with -snapshot so the image is
# not changed, and waits for krg-report.service's line and the serial
# getty's login prompt.  This proves the bootloader, the initramfs (virtio
# modules) and the root filesystem; it is also the reference time for the
# long test.  A virtio-net NIC on QEMU's user network shows whether DHCP
# works.  Exit 0 when the system reached "running".
#
#   KRG_IMAGE_QEMU_TIMEOUT  seconds to wait (default 900)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

img=${1:?usage: qemu-boot.sh IMAGE [LOG]}
log=${2:-$(mktemp /tmp/krg-image-qemu.XXXXXX.log)}
tmo=${KRG_IMAGE_QEMU_TIMEOUT:-900}
fmt=raw
[[ $img == *.qcow2 ]] && fmt=qcow2
command -v qemu-system-x86_64 >/dev/null || img_die "qemu-system-x86_64 not found"

: >"$log"
qemu-system-x86_64 -accel tcg -m 512 -smp 1 -display none -monitor none \
	-serial "file:$log" -no-reboot -snapshot \
	-drive "file=$img,format=$fmt,if=virtio" \
	-nic user,model=virtio-net-pci </dev/null >"$log.qemu" 2>&1 &
qpid=$!
trap 'kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true' EXIT

img_watch qemu-tcg "$qpid" "$log" "$tmo" 60
img_report "$log" | sed 's/^/  /' >&2
state=$(img_state "$log")
img_say "QEMU TCG: $IMG_OUTCOME after ${IMG_ELAPSED}s, system-running=${state:-?}; milestones: ${IMG_SEEN:-none}"
if [[ $IMG_OUTCOME != booted ]]; then
	tr -d '\r' <"$log" | tail -n 30 >&2
	cat "$log.qemu" >&2
	exit 1
fi
[[ $state == running ]] || img_die "the system is '$state', not 'running'"
