#!/bin/bash
# Boot the stock kernel + busybox initramfs under QEMU TCG: the fast reference
# for what the guest prints and how long a software-only CPU takes.
#   usage: tests/stock/qemu-reference.sh [NCPUS...]     (default: 1 2)
# Logs to work/qemu-tcg-smpN.log. Environment: KRG_STOCK_MEM (MiB, 512),
# KRG_QEMU_TIMEOUT (s, 300), KRG_QEMU_APPEND (kernel command line).
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

command -v qemu-system-x86_64 >/dev/null ||
	stock_die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
stock_need_artifacts || "$STOCK_DIR/prepare.sh"

status=0
cpus=("$@")
((${#cpus[@]})) || cpus=(1 2)
for n in "${cpus[@]}"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || stock_die "bad vCPU count '$n'"
	log=$STOCK_WORK/qemu-tcg-smp$n.log
	stock_qemu "$n" "$log"
	if fails=$(stock_check "$log" "$n" "$STOCK_MEM_MIB" "$STOCK_RC"); then
		verdict=PASS
	else
		verdict=FAIL
		status=1
	fi
	echo "qemu-tcg smp=$n: $verdict in ${STOCK_ELAPSED}s (exit $STOCK_RC), log $log"
	[[ -z $fails ]] || printf '  %s\n' "${fails//$'\n'/$'\n'  }"
	stock_markers "$log" | sed 's/^/  /'
	echo "  milestones: $STOCK_SEEN"
done
exit "$status"
