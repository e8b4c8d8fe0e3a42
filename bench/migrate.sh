#!/usr/bin/env bash
# vCPU migration downtime: one guest on 2 krg-vmm nodes on loopback, its
# two vCPUs busy in user mode with their LAPIC timers running (the test
# guest's test=spin), moved back and forth between the nodes COUNT times
# over QMP (krg-migrate-vcpu).  Each reply carries the downtime the VMM
# measured: from the vCPU leaving the guest on the source to its release
# on the target (the source's pause-to-commit, plus the commit's one-way
# latency estimated as half its round trip less the target's own time,
# plus that time; no clock is shared).  The baseline, measured in the same
# run: the network floor of the same exchange with no VMM work around it
# (bench/migrate_floor.c: the state's size one way, 64 bytes back, half a
# 64-byte round trip).
#
#   bench/migrate.sh [COUNT]     (default 200)
#
# Prints a table and appends it to bench/RESULTS.md with the date, the
# machine and the load average at start and end.  Not a test and not in
# CI: nothing here fails on a slow number.
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-200}
vmm=${KRG_VMM:-./krg-vmm}
guest=${KRG_TEST_GUEST:-build/guest/krg-test-guest}
bindir=${KRG_BENCH_BIN:-build/bench}
results=${BENCH_RESULTS:-bench/RESULTS.md}
work=$(mktemp -d /tmp/krg-bench-migrate.XXXXXX)
vm_pid=
cleanup() {
	[[ -n $vm_pid ]] && kill "$vm_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

[[ -x $vmm && -s $guest ]] || { echo "bench: build first (make krg-vmm guest)" >&2; exit 1; }
[[ $count =~ ^[1-9][0-9]*$ ]] || { echo "bench: COUNT must be a positive number" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench: needs python3" >&2; exit 1; }

warn="-Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes
	-Wmissing-prototypes -Wno-unused-parameter -Wvla -Wpointer-arith"
mkdir -p "$bindir"
if [[ ! -x $bindir/migrate_floor || bench/migrate_floor.c -nt $bindir/migrate_floor ]]; then
	# shellcheck disable=SC2086
	${CC:-gcc} -std=c11 -D_GNU_SOURCE $warn -O2 -g -o "$bindir/migrate_floor" \
		bench/migrate_floor.c
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log=$work/vm.log
"$vmm" launch --local-nodes 2 -smp 2 -m 128 -kernel "$guest" \
	-append "test=spin" </dev/null >"$log" 2>&1 &
vm_pid=$!
sock=/run/krg-vmm/vm-$vm_pid.sock
for _ in $(seq 600); do
	grep -q 'spin: 1 s' "$log" 2>/dev/null && [[ -S $sock ]] && break
	kill -0 "$vm_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
	sleep 0.1
done
grep -q 'spin: 1 s' "$log" || { echo "bench: the guest did not start" >&2; exit 1; }

python3 - "$sock" "$count" >"$work/all" <<'EOF'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
f.readline()
def cmd(name, args=None):
    m = {"execute": name}
    if args is not None:
        m["arguments"] = args
    f.write((json.dumps(m) + "\n").encode())
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" not in r:
            if "return" not in r:
                sys.exit("bench: %s: %s" % (name, r))
            return r["return"]
cmd("qmp_capabilities")
where, down, total, size = [0, 1], [], [], 0
t0 = time.time()
for i in range(int(sys.argv[2])):
    v = i % 2
    r = cmd("krg-migrate-vcpu", {"vcpu": v, "node": 1 - where[v]})
    where[v] = 1 - where[v]
    down.append(r["downtime-ns"])
    total.append(r["total-ns"])
    size = r["state-bytes"]
secs = time.time() - t0
down.sort(); total.sort()
q = lambda a, p: a[min(len(a) - 1, int(len(a) * p))]
print("migrate-downtime-p50 %d" % q(down, 0.5))
print("migrate-downtime-p99 %d" % q(down, 0.99))
print("migrate-downtime-max %d" % down[-1])
print("migrate-total-p50 %d" % q(total, 0.5))
print("migrate-per-s %.0f" % (len(down) / secs))
print("migrate-state-bytes %d" % size)
cmd("quit")
EOF
wait "$vm_pid" || true
vm_pid=
grep -q 'spin:' "$log" || { cat "$log" >&2; exit 1; }
get() { awk -v k="$1" '$1 == k { print $2 }' "$work/all"; }
"$bindir/migrate_floor" 2000 "$(get migrate-state-bytes)" |
	awk '$1 == "KRG-BENCH" { print $2, $3 }' >>"$work/all"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

us() { awk -v n="$1" 'BEGIN { printf "%.0f", n / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b ? a / b : 0 }'; }
d50=$(get migrate-downtime-p50) d99=$(get migrate-downtime-p99)
f50=$(get migrate-floor-p50) f99=$(get migrate-floor-p99)
# shellcheck source=lib.sh
. bench/lib.sh
bench_machine_facts
{
	echo
	echo "### $date: vCPU migration downtime, 2 nodes on loopback (bench/migrate.sh)"
	echo
	if [[ -n ${BENCH_NOTE:-} ]]; then
		echo "$BENCH_NOTE"
		echo
	fi
	echo "Machine: $(nproc) CPUs, $cpu; host kernel $(uname -r); KVM: $kvm_kind."
	echo "Load average (1/5/15 min) at start $load_start, at end $load_end. Guest:"
	echo "\`test=spin\` (both vCPUs in user mode, LAPIC timers at 100 Hz), \`-m 128\`,"
	echo "\`--local-nodes 2 -smp 2\`; $count migrations, the vCPUs in turn, each to the other node;"
	echo "$(get migrate-state-bytes) bytes of state each. Times in us; floor = bench/migrate_floor: the state's size"
	echo "one way and 64 B back, then half a 64 B round trip, on one loopback TCP connection."
	echo
	echo "| metric | krg-vmm | floor (same run) | ratio | target |"
	echo "|---|---|---|---|---|"
	echo "| downtime p50 | $(us "$d50") | $(us "$f50") | $(ratio "$d50" "$f50") | <= 2000 |"
	echo "| downtime p99 | $(us "$d99") | $(us "$f99") | $(ratio "$d99" "$f99") | |"
	echo "| downtime max | $(us "$(get migrate-downtime-max)") | | | |"
	echo "| whole migration (QMP request to reply, p50) | $(us "$(get migrate-total-p50)") | state round trip $(us "$(get state-rtt-p50)") | | |"
	echo "| migrations per second, back to back | $(get migrate-per-s) | | | |"
} | tee -a "$results"
