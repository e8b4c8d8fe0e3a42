#!/bin/bash
# The long test (make check-stock, not in CI): boot Debian's stock kernel with
# the busybox initramfs under krg-vmm for 1 and 2 vCPUs, check what the guest
# reports, and time it against QEMU TCG booting the same files. Under PVM a
# boot takes minutes to tens of minutes; on a VT-x/AMD-V host, seconds.
# Results: work/summary.txt; logs: work/krg-smpN.log, work/qemu-tcg*-smpN.log.
#
# Environment:
#   KRG_VMM             the binary (default: ./krg-vmm at the top of the tree)
#   KRG_STOCK_SMP       vCPU counts to boot (default "1 2")
#   KRG_STOCK_TIMEOUT   seconds per krg-vmm boot (default 3600)
#   KRG_STOCK_MEM       guest MiB (default 512)
#   KRG_STOCK_APPEND    kernel command line for krg-vmm
#   KRG_STOCK_INITRD    initramfs (default work/initramfs.cpio: uncompressed, so
#                       the guest kernel does not gunzip it in emulated code)
#   KRG_STOCK_QEMU=0    skip the QEMU reference (also skipped without QEMU)
#   KRG_STOCK_HEARTBEAT seconds between progress lines (default 60)
#   KRG_STOCK_NODES     run each boot as a cluster VM of that many local
#                       nodes (--local-nodes; default 1 = one process); the
#                       guest must then see as many NUMA nodes
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

KRG_VMM=${KRG_VMM:-$STOCK_ROOT/krg-vmm}
[[ -x $KRG_VMM ]] ||
	stock_die "$KRG_VMM does not exist or is not executable: build it first (make krg-vmm)"
read -r -a cpus <<<"${KRG_STOCK_SMP:-1 2}"
for n in "${cpus[@]}"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || stock_die "bad vCPU count '$n' in KRG_STOCK_SMP"
done
tmo=${KRG_STOCK_TIMEOUT:-3600}
[[ $tmo =~ ^[1-9][0-9]*$ ]] || stock_die "KRG_STOCK_TIMEOUT must be seconds"
append=${KRG_STOCK_APPEND:-console=ttyS0 quiet panic=-1 krg.autotest=1}
# prepare.sh is cheap when everything is fresh, and rebuilds the initramfs
# when its init script changed.
"$STOCK_DIR/prepare.sh"
initrd=${KRG_STOCK_INITRD:-$STOCK_WORK/initramfs.cpio}
[[ -s $initrd ]] || stock_die "$initrd missing"

qemu=1
if [[ ${KRG_STOCK_QEMU:-1} == 0 ]]; then
	qemu=0
elif ! command -v qemu-system-x86_64 >/dev/null; then
	stock_say "stock: qemu-system-x86_64 not found, no reference timings"
	qemu=0
fi

summary=$STOCK_WORK/summary.txt
tmp_summary=$summary.tmp
: >"$tmp_summary"
out() {
	printf '%s\n' "$*" | tee -a "$tmp_summary"
}

# ratio A B: A/B as "x12.3", or "n/a".
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "x%.1f", a / b; else print "n/a" }'
}

out "krg-vmm stock-kernel test, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
out "host: $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
out "guest: kernel $(cat "$STOCK_WORK/kernel-version") ($(cat "$STOCK_WORK/kernel-package" 2>/dev/null || echo '?'))," \
	"$(cat "$STOCK_WORK/busybox-package" 2>/dev/null || echo busybox), ${STOCK_MEM_MIB} MiB"
out "krg-vmm: $KRG_VMM launch -m $STOCK_MEM_MIB -smp N -no-reboot ... -append \"$append\""

# QEMU first: it takes seconds, and if it cannot boot these files the long
# runs would only measure broken artifacts.
declare -A q_bz=() q_pvh=()
if ((qemu)); then
	for n in "${cpus[@]}"; do
		stock_qemu "$n" "$STOCK_WORK/vmlinuz" "$STOCK_WORK/qemu-tcg-smp$n.log"
		stock_verdict "$STOCK_WORK/qemu-tcg-smp$n.log" "$n"
		if [[ $STOCK_VERDICT != PASS ]]; then
			printf '%s\n' "$STOCK_FAILS" >&2
			stock_die "QEMU cannot boot the artifacts (smp=$n): see $STOCK_WORK/qemu-tcg-smp$n.log"
		fi
		q_bz[$n]=$STOCK_ELAPSED
		if [[ -s $STOCK_WORK/vmlinux ]]; then
			stock_qemu "$n" "$STOCK_WORK/vmlinux" "$STOCK_WORK/qemu-tcg-pvh-smp$n.log"
			stock_verdict "$STOCK_WORK/qemu-tcg-pvh-smp$n.log" "$n"
			if [[ $STOCK_VERDICT == PASS ]]; then
				q_pvh[$n]=$STOCK_ELAPSED
			fi
		fi
		out "qemu-tcg smp=$n: bzImage ${q_bz[$n]}s, vmlinux via PVH ${q_pvh[$n]:-n/a}s"
	done
fi

status=0
nodes=${KRG_STOCK_NODES:-1}
[[ $nodes =~ ^[1-9][0-9]*$ ]] || stock_die "KRG_STOCK_NODES must be a node count"
node_args=()
suffix=
boot_append=$append
idle=${KRG_STOCK_IDLE:-60}
[[ $idle =~ ^[0-9]+$ ]] || stock_die "KRG_STOCK_IDLE must be seconds"
if ((nodes > 1)); then
	node_args=(--local-nodes "$nodes" --stats)
	suffix=-nodes$nodes
	# An idle phase at the shell: what an idle guest costs in pages moved
	# between nodes (tests/stock/idle-watch.sh counts them).
	((idle == 0)) || boot_append+=" krg.idle=$idle"
fi
for n in "${cpus[@]}"; do
	log=$STOCK_WORK/krg-smp$n$suffix.log
	stock_say "stock: booting under krg-vmm, smp=$n, $nodes node(s) (timeout ${tmo}s, log $log)"
	# -no-reboot as for QEMU: with panic=-1 a panicking guest resets, and a
	# reset must end the run rather than boot again for the rest of the hour.
	watcher=
	if ((nodes > 1 && idle > 0)); then
		rm -f "$log.idle"
		: >"$log"
		"$STOCK_DIR/idle-watch.sh" "$log" "$KRG_VMM" "$log.idle" &
		watcher=$!
	fi
	stock_boot "krg-vmm smp$n$suffix" "$tmo" 2 "$log" \
		"$KRG_VMM" launch -m "$STOCK_MEM_MIB" -smp "$n" -no-reboot \
		"${node_args[@]}" \
		-kernel "$STOCK_WORK/vmlinuz" -initrd "$initrd" -append "$boot_append"
	if [[ -n $watcher ]]; then
		sleep 1
		kill "$watcher" 2>/dev/null || true
		wait "$watcher" 2>/dev/null || true
	fi
	stock_verdict "$log" "$n"
	if ((nodes > 1)) && [[ $(stock_marker "$log" numa_nodes) != "$nodes" ]]; then
		STOCK_VERDICT=FAIL
		STOCK_FAILS+=$'\n'"FAIL: numa_nodes='$(stock_marker "$log" numa_nodes)', expected $nodes"
	fi
	[[ $STOCK_VERDICT == PASS ]] || status=1

	line="smp=$n nodes=$nodes krg-vmm: $STOCK_VERDICT in ${STOCK_ELAPSED}s (exit $STOCK_RC)"
	if ((qemu)); then
		line+="; qemu-tcg bzImage ${q_bz[$n]}s ($(ratio "$STOCK_ELAPSED" "${q_bz[$n]}"))"
		line+=", vmlinux/PVH ${q_pvh[$n]:-n/a}s ($(ratio "$STOCK_ELAPSED" "${q_pvh[$n]:-0}"))"
	fi
	out "$line"
	[[ -z $STOCK_FAILS ]] || out "$(printf '%s\n' "$STOCK_FAILS" | sed 's/^/  /')"
	out "  markers: $(stock_marker_line "$log")"
	out "  milestones: ${STOCK_SEEN:-none}"
	[[ -z $watcher ]] || out "  $(cat "$log.idle" 2>/dev/null || echo "idle: not measured (the boot ended first)")"
	warn=$(stock_warnings "$log")
	[[ -z $warn ]] || out "$(printf 'kernel complaints (count, first):\n%s' "$warn" | sed 's/^/  /')"
	# The VMM's own account of the instructions it had to complete for KVM's
	# emulator; its output may share lines with the guest's console.
	mapfile -t fb < <(tr -d '\r' <"$log" | grep -o 'krg-vmm: fallback:.*' || true)
	out "  fallback lines: ${#fb[@]}"
	for l in "${fb[@]}"; do
		printf '    %s\n' "$l" >>"$tmp_summary"
	done
	for l in "${fb[@]:0:20}"; do
		printf '    %s\n' "$l"
	done
	((${#fb[@]} <= 20)) || echo "    ... $((${#fb[@]} - 20)) more in $summary"
done
out "result: $([[ $status == 0 ]] && echo PASS || echo FAIL)"
mv "$tmp_summary" "$summary"
exit "$status"
