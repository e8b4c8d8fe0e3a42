#!/usr/bin/env bash
# What an idle stock guest costs a cluster VM: pages moved between nodes per
# second while the guest sleeps at its shell (krg.idle=N in the initramfs).
#
#   idle-watch.sh LOG KRG_VMM OUT
#
# Start it before the boot; LOG is the boot's console log (krg-vmm's
# stdout).  On "KRG-STOCK: idle-begin" it takes one `krg-vmm status`
# snapshot of node 0's control socket (the socket of the process whose
# stdout is LOG), on "idle-end" another, and writes to OUT one line:
#   idle: S s, P pages moved between nodes (R pages/s), per node: ...
# or "idle: not measured (reason)".  The caller kills it when the boot
# ends; it never stops a VM.
set -u
log=$(realpath -m "$1") vmm=$2 out=$3

say() { echo "$*" >"$out"; exit 0; }

# Node 0: the process writing LOG that has a control socket.
vmm_pid() {
	local s p
	for s in /run/krg-vmm/vm-*.sock; do
		p=${s##*/vm-}
		p=${p%.sock}
		[[ $(readlink "/proc/$p/fd/1" 2>/dev/null) == "$log" ]] && { echo "$p"; return; }
	done
}

# Sum over nodes of "pages ... received N" in a status text, and the
# per-node list.
received() {
	grep -o 'pages sent [0-9]* received [0-9]*' "$1" | awk '{ s += $5; l = l " " $5 } END { print s + 0, l }'
}

wait_for() {
	while :; do
		grep -q "KRG-STOCK: $1" "$log" 2>/dev/null && return 0
		grep -q "KRG-STOCK: poweroff" "$log" 2>/dev/null && return 1
		sleep 0.5
	done
}

snap() {
	local v sock
	v=$(vmm_pid)
	[[ -n $v ]] || return 1
	sock=/run/krg-vmm/vm-$v.sock
	"$vmm" status "$sock" >"$1" 2>&1 || return 1
	grep -q 'pages sent' "$1"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
wait_for idle-begin || say "idle: not measured (no idle phase: krg.idle=N missing?)"
t0=$EPOCHREALTIME
snap "$tmp/a" || say "idle: not measured (no status at idle-begin: $(head -c 200 "$tmp/a" 2>/dev/null))"
wait_for idle-end || say "idle: not measured (the guest never ended its idle phase)"
t1=$EPOCHREALTIME
snap "$tmp/b" || say "idle: not measured (no status at idle-end)"
# Per node: "interrupts halted_ms hlt_exits" from a status text.
vcpu_line() {
	sed -n 's/.*(\([0-9]*\) HLT), \([0-9]*\) interrupts injected, halted \([0-9]*\) ms.*/\2 \3 \1/p' "$1" | tr '\n' ' '
}
read -r a a_list < <(received "$tmp/a")
read -r b b_list < <(received "$tmp/b")
awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" -v al="$a_list" -v bl="$b_list" 'BEGIN {
	s = t1 - t0; d = b - a
	r = s > 0 ? d / s : 0
	printf "idle: %.1f s, %d pages moved between nodes (%.2f pages/s); pages received per node before: %s, after: %s\n", s, d, r, al, bl
}' >"$out"
# What the vCPUs did meanwhile: a guest whose tick work fills the tick
# period never halts, and so never stops its tick (NO_HZ idle).
awk -v s="$(awk -v t0="$t0" -v t1="$t1" 'BEGIN { print t1 - t0 }')" \
	-v va="$(vcpu_line "$tmp/a")" -v vb="$(vcpu_line "$tmp/b")" 'BEGIN {
	na = split(va, A, " "); split(vb, B, " ")
	for (i = 1; i + 2 <= na; i += 3) {
		n = (i - 1) / 3
		printf "idle: node %d: %.1f interrupts/s, %.1f HLT exits/s, halted %.0f%% of the time\n",
			n, (B[i] - A[i]) / s, (B[i + 2] - A[i + 2]) / s, (B[i + 1] - A[i + 1]) / 10 / s
	}
}' >>"$out"
# Which interrupts woke the vCPUs: per node, the most injected vectors at
# idle-end and how many of each arrived per second of the idle phase
# (a vector missing from idle-begin's top list counts from 0 there).
vectors() {
	grep 'most injected vectors' "$1" | sed 's/.*count)://'
}
paste -d'|' <(vectors "$tmp/a") <(vectors "$tmp/b") | awk -F'|' -v s="$(awk -v t0="$t0" -v t1="$t1" 'BEGIN { print t1 - t0 }')" '{
	delete A
	na = split($1, a, " ")
	for (i = 1; i <= na; i++) { split(a[i], kv, ":"); A[kv[1]] = kv[2] }
	nb = split($2, b, " ")
	line = ""
	for (i = 1; i <= nb; i++) {
		split(b[i], kv, ":")
		line = line sprintf(" %s %.1f/s", kv[1], (kv[2] - A[kv[1]]) / s)
	}
	printf "idle: node %d: interrupts by vector:%s\n", NR - 1, line
}' >>"$out"
