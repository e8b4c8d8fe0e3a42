#!/bin/bash
# Boot the stock kernel + busybox initramfs under QEMU TCG: the fast reference
# for what the guest prints and how long a software-only CPU takes.
#   usage: tests/stock/qemu-reference.sh [NCPUS...]     (default: 1 2)
# Logs to work/qemu-tcg-smpN.log (work/qemu-tcg-pvh-smpN.log with vmlinux).
# Environment: KRG_QEMU_KERNEL=vmlinuz|vmlinux (default vmlinuz; vmlinux boots
# through QEMU's PVH entry and skips the in-guest decompressor, as krg-vmm
# does), KRG_STOCK_MEM (MiB, 512), KRG_QEMU_TIMEOUT (s, 300), KRG_QEMU_APPEND.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

command -v qemu-system-x86_64 >/dev/null ||
	stock_die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
stock_need_artifacts || "$STOCK_DIR/prepare.sh"

case ${KRG_QEMU_KERNEL:-vmlinuz} in
vmlinuz) kernel=$STOCK_WORK/vmlinuz tag=qemu-tcg ;;
vmlinux) kernel=$STOCK_WORK/vmlinux tag=qemu-tcg-pvh ;;
*) stock_die "KRG_QEMU_KERNEL must be vmlinuz or vmlinux" ;;
esac
[[ -s $kernel ]] || stock_die "$kernel missing: run tests/stock/prepare.sh"

cpus=("$@")
((${#cpus[@]})) || cpus=(1 2)
status=0
for n in "${cpus[@]}"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || stock_die "bad vCPU count '$n'"
	log=$STOCK_WORK/$tag-smp$n.log
	stock_qemu "$n" "$kernel" "$log"
	stock_verdict "$log" "$n"
	[[ $STOCK_VERDICT == PASS ]] || status=1
	echo "$tag smp=$n: $STOCK_VERDICT in ${STOCK_ELAPSED}s (exit $STOCK_RC), log $log"
	[[ -z $STOCK_FAILS ]] || printf '%s\n' "$STOCK_FAILS" | sed 's/^/  /'
	stock_markers "$log" | sed 's/^/  /'
	echo "  milestones: $STOCK_SEEN"
done
exit "$status"
