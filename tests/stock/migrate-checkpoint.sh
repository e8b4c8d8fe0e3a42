#!/usr/bin/env bash
# The long test of issue 5 on Debian's stock kernel: a 2-node cluster VM
# boots to the initramfs shell; a shell loop runs while vCPU 1 moves to
# node 0 and back; a checkpoint is taken and the VM stopped; the snapshot
# is restored (on 2 nodes, then on 1) and the shell answers again, its loop
# still counting.  Every step is timed; the summary goes to
# $KRG_STOCK_WORK/migrate-checkpoint.txt.
#
# The snapshot of the idle shell taken on the way (idle.snap) is kept: it
# lets later experiments on the booted stock kernel start in seconds
# instead of a 30-60 minute boot here (KRG_STOCK_REUSE=1 restores it instead
# of booting, when it exists and this krg-vmm accepts it).
#
#   KRG_VMM             the binary (default ./krg-vmm)
#   KRG_STOCK_TIMEOUT   seconds the boot may take (default 5400)
#   KRG_STOCK_REUSE     1: start from idle.snap when it is there
set -euo pipefail

. "$(dirname "$0")/lib.sh"

KRG_VMM=${KRG_VMM:-$STOCK_ROOT/krg-vmm}
[[ -x $KRG_VMM ]] || stock_die "$KRG_VMM is missing: make krg-vmm"
tmo=${KRG_STOCK_TIMEOUT:-5400}
"$STOCK_DIR/prepare.sh" >&2
initrd=$STOCK_WORK/initramfs.cpio
out=$STOCK_WORK/migrate-checkpoint.txt
idle_snap=$STOCK_WORK/idle.snap
work=$(mktemp -d /tmp/krg-stock-mc.XXXXXX)
vm_pid=
trap 'exec 9>&- 2>/dev/null || true; [[ -z $vm_pid ]] || kill "$vm_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

: >"$out"
say() { printf '%s\n' "$*" | tee -a "$out" >&2; }
fail() { say "FAIL: $*"; exit 1; }

say "stock migrate+checkpoint test, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
say "guest: kernel $(cat "$STOCK_WORK/kernel-version"), busybox initramfs, 512 MiB, 2 vCPUs"

# start_vm LOG ARGS...: krg-vmm with its console input on a FIFO (fd 9).
start_vm() {
	local log=$1
	shift
	rm -f "$work/in"
	mkfifo "$work/in"
	"$KRG_VMM" "$@" <"$work/in" >"$log" 2>&1 &
	vm_pid=$!
	exec 9>"$work/in"
}

# stop_vm: SIGTERM, then wait for the exit.
stop_vm() {
	kill "$vm_pid" 2>/dev/null || true
	wait "$vm_pid" 2>/dev/null || true
	vm_pid=
	exec 9>&-
}

sock() {
	echo "/run/krg-vmm/vm-$vm_pid.sock"
}

# wait_for LOG REGEX SECONDS: the console shows REGEX (after the CRs and
# escapes are gone) within SECONDS; fails the test otherwise.
wait_for() {
	local log=$1 re=$2 limit=$3 t0=$SECONDS
	while ! stock_clean <"$log" | grep -Eq -- "$re"; do
		kill -0 "$vm_pid" 2>/dev/null || { tail -n 20 "$log" >&2; fail "krg-vmm exited while waiting for /$re/"; }
		((SECONDS - t0 < limit)) || { tail -n 20 "$log" >&2; fail "no /$re/ within ${limit}s"; }
		sleep 1
	done
}

# type LINE: one line of input to the guest's shell.
type_line() {
	printf '%s\n' "$1" >&9
}

# Highest "mc-loop N" the console shows.
last_loop() {
	stock_clean <"$1" | sed -n 's/.*mc-loop \([0-9][0-9]*\).*/\1/p' | sort -n | tail -n 1
}

append="console=ttyS0 quiet panic=-1"
log=$work/boot.log
reused=0
t_boot=$EPOCHREALTIME
if [[ ${KRG_STOCK_REUSE:-0} == 1 && -d $idle_snap ]] &&
	start_vm "$log" restore "$idle_snap" --local-nodes 2 --stats && sleep 3 &&
	kill -0 "$vm_pid" 2>/dev/null; then
	reused=1
	type_line "echo mc-reused-\$((20+3))"
	wait_for "$log" 'mc-reused-23' 600
	say "restored the idle shell from $idle_snap in $(stock_since "$t_boot") s"
else
	start_vm "$log" launch -m 512 -smp 2 --local-nodes 2 --stats -no-reboot \
		-kernel "$STOCK_WORK/vmlinuz" -initrd "$initrd" -append "$append"
	wait_for "$log" 'KRG-STOCK: interactive shell' "$tmo"
	say "boot to the interactive shell: $(stock_since "$t_boot") s"
	say "  markers: $(stock_clean <"$log" | grep -o 'KRG-STOCK: [a-z_]*=[^ ]*' | sed 's/KRG-STOCK: //' | grep -E '^(nproc|online|numa_nodes|clocksource)=' | tr '\n' ' ')"
	# The shell is idle: keep a snapshot of it for later experiments.
	t=$EPOCHREALTIME
	rm -rf "$idle_snap"
	"$KRG_VMM" checkpoint --socket "$(sock)" "$idle_snap" >"$work/ck0" 2>&1 ||
		fail "checkpoint of the idle shell: $(cat "$work/ck0")"
	say "checkpoint of the idle shell: $(stock_since "$t") s ($(du -sh "$idle_snap" | cut -f1))"
fi

# A loop in the background: one line every 2 s or so (sleep is a process
# here, seconds of emulated kernel work).
type_line 'i=0; while :; do i=$((i+1)); echo mc-loop $i; sleep 2; done &'
wait_for "$log" 'mc-loop 2' 900
say "shell loop running (mc-loop $(last_loop "$log"))"

# vCPU 1 to node 0 and back while the loop runs.
for node in 0 1; do
	t=$EPOCHREALTIME
	"$KRG_VMM" migrate-vcpu 1 "$node" "$(sock)" >"$work/mig" 2>&1 ||
		fail "migrate-vcpu 1 $node: $(cat "$work/mig")"
	before=$(last_loop "$log")
	say "vCPU 1 -> node $node: $(stock_since "$t") s ($(tr '\n' ' ' <"$work/mig"))"
	wait_for "$log" "mc-loop $((before + 2))" 900
	say "  the loop went on: mc-loop $(last_loop "$log")"
done
"$KRG_VMM" status "$(sock)" >"$work/status" 2>&1 || true
grep -E 'placement|migrat' "$work/status" | sed 's/^/  /' | tee -a "$out" >&2 || true

# Checkpoint with the loop running, stop the VM, restore.
snap=$work/loop.snap
t=$EPOCHREALTIME
"$KRG_VMM" checkpoint --socket "$(sock)" "$snap" >"$work/ck1" 2>&1 ||
	fail "checkpoint: $(cat "$work/ck1")"
at=$(last_loop "$log")
say "checkpoint with the loop at mc-loop $at: $(stock_since "$t") s ($(du -sh "$snap" | cut -f1))"
stop_vm

for nodes in 2 1; do
	rlog=$work/restore-$nodes.log
	t=$EPOCHREALTIME
	start_vm "$rlog" restore "$snap" --local-nodes "$nodes" --stats
	type_line "echo mc-answer-\$((6*7))"
	wait_for "$rlog" 'mc-answer-42' 900
	say "restore on $nodes node(s): the shell answered after $(stock_since "$t") s"
	wait_for "$rlog" "mc-loop $((at + 2))" 900
	first=$(stock_clean <"$rlog" | sed -n 's/.*mc-loop \([0-9][0-9]*\).*/\1/p' | head -n 1)
	[[ -n $first && $first -ge $at ]] ||
		fail "after restore the loop restarted at mc-loop $first (checkpoint at $at)"
	say "  the loop went on from the checkpoint: first mc-loop $first, now $(last_loop "$rlog")"
	type_line 'kill %1; poweroff -f'
	wait "$vm_pid" && rc=0 || rc=$?
	vm_pid=
	exec 9>&-
	[[ $rc == 0 ]] || fail "restored VM on $nodes node(s) exited with status $rc"
done
say "PASS (boot $([[ $reused == 1 ]] && echo 'reused from idle.snap' || echo 'from scratch'))"
