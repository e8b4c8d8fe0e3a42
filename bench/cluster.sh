#!/usr/bin/env bash
# Cluster benchmarks: one guest on 2 krg-vmm nodes on loopback, each result
# beside a baseline measured in the same run (bench/README.md):
#  (a) remote read / write fault latency, p50 and p99, against the floor:
#      a raw TCP 64-byte request / 4 KiB reply round trip on loopback
#      (bench/tcp_floor.c) + a local userfaultfd fault in guest memory
#      (measured in the guest: a first touch of a page its own node homes;
#      also measured from a host thread by bench/uffd_floor.c);
#  (b) pages/s when vCPU 1 streams through memory homed on node 0, against
#      raw TCP 4 KiB messages/s on one connection;
#  (c) a compute-bound user-mode job split over 2 nodes x 1 vCPU against
#      the same job on 1 node x 1 vCPU: speedup;
#  (d) pages moved per second between the nodes of an idle guest, from the
#      DSM's own counters (`krg-vmm status`).
#
#   bench/cluster.sh [ROUNDS]    (default 3; (d) runs once)
#
# Prints a table and appends it to bench/RESULTS.md with the date, the
# machine and the load average at start and end.  Not a test and not in
# CI: nothing here fails on a slow number.  Guest times are read as TSC
# cycles and converted with the host's TSC rate (the guest's own PIT
# calibration drifts on a loaded host).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
vmm=${KRG_VMM:-./krg-vmm}
guest=${KRG_TEST_GUEST:-build/guest/krg-test-guest}
bindir=${KRG_BENCH_BIN:-build/bench}
lat_pages=${BENCH_DSM_PAGES:-1000}	# pages per fault kind (<= 2048)
compute_msteps=${BENCH_COMPUTE_MSTEPS:-3000}
idle_window=${BENCH_IDLE_SECONDS:-10}
results=${BENCH_RESULTS:-bench/RESULTS.md}
work=$(mktemp -d /tmp/krg-bench-cluster.XXXXXX)
vm_pid=
cleanup() {
	[[ -n $vm_pid ]] && kill "$vm_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

[[ -x $vmm && -s $guest ]] || { echo "bench: build first (make krg-vmm guest)" >&2; exit 1; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench: ROUNDS must be a positive number" >&2; exit 1; }

# The floor programs, built with the project's warnings into $bindir.
warn="-Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes
	-Wmissing-prototypes -Wno-unused-parameter -Wvla -Wpointer-arith"
mkdir -p "$bindir"
for p in tcp_floor uffd_floor; do
	if [[ ! -x $bindir/$p || bench/$p.c -nt $bindir/$p ]]; then
		# shellcheck disable=SC2086
		${CC:-gcc} -std=c11 -D_GNU_SOURCE $warn -O2 -g -o "$bindir/$p" "bench/$p.c" -lpthread
	fi
done

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
tsc_khz=$("$bindir/uffd_floor" tsc | awk '$2 == "host-tsc-khz" { print $3 }')

# KRG-BENCH <name> <value> <unit>  ->  "<name> <value>"
extract() {
	awk '$1 == "KRG-BENCH" { print $2, $3 }' "$1"
}

# cycles -> ns with the host TSC rate
to_ns() {
	awk -v c="$1" -v k="$tsc_khz" 'BEGIN { printf "%.0f", c * 1e6 / k }'
}

# run_guest LOG TEST "KEY=V.." VMM-OPTIONS..: one guest run in the
# foreground; fails the benchmark if the guest did.
run_guest() {
	local log=$1 test=$2 extra=$3
	shift 3
	timeout 600 "$vmm" launch "$@" -m 128 -kernel "$guest" \
		-append "test=$test $extra timeout=500" </dev/null >"$log" 2>&1 || true
	grep -q "^KRG-TEST PASS $test\$" "$log" ||
		{ echo "bench: $test failed:" >&2; tail -5 "$log" >&2; exit 1; }
}

# The remote-fault run: guest cycles converted to ns, the stream to pages/s.
dsm_round() {
	local log=$1 k v pages cycles
	# --dsm-track-writes: the guest's local reads map read-only, so its
	# writes to them take the local write-protect fault an upgrade's
	# floor is made of (dsm-local-upgrade).
	run_guest "$log" bench-dsm "iters=$lat_pages" --local-nodes 2 -smp 2 --stats \
		--dsm-track-writes
	while read -r k v; do
		case $k in
		dsm-*-p50 | dsm-*-p99) echo "$k $(to_ns "$v")" ;;
		dsm-stream-read-pages) pages=$v ;;
		dsm-stream-read-cycles) cycles=$v ;;
		esac
	done < <(extract "$log")
	awk -v p="$pages" -v c="$cycles" -v k="$tsc_khz" \
		'BEGIN { printf "dsm-stream-pages-per-s %.0f\n", p / (c / (k * 1e3)) }'
	# The homes are what the guest planned: node 1 served its two local
	# regions without a message, node 0 sent every remote page.
	awk -v n="$lat_pages" -v s="$pages" '
		/^node 1 .*vCPUs/ { node = 1 } /^node 0 .*vCPUs/ { node = 0 }
		/^krg-vmm: stats at exit/ { on = 1 }
		on && node == 1 && /dsm fault latency/ {
			match($0, /p50 <= [0-9]+/); p50 = substr($0, RSTART + 7, RLENGTH - 7)
			match($0, /p99 <= [0-9]+/); p99 = substr($0, RSTART + 7, RLENGTH - 7)
		}
		on && /dsm: faults/ {
			match($0, /local [0-9]+/); loc[node] = substr($0, RSTART + 6, RLENGTH - 6)
			match($0, /pages sent [0-9]+/); sent[node] = substr($0, RSTART + 11, RLENGTH - 11)
		}
		END {
			if (loc[1] < 2 * n || sent[0] < 2 * n + s)
				printf "bench: warning: node 1 local faults %d (want >= %d), node 0 pages sent %d (want >= %d): the homes are not as planned\n", loc[1], 2 * n, sent[0], 2 * n + s > "/dev/stderr"
			printf "dsm-node1-local-faults %d\ndsm-node0-pages-sent %d\n", loc[1], sent[0]
			printf "dsm-node1-internal-p50-le-us %d\ndsm-node1-internal-p99-le-us %d\n", p50, p99
		}' "$log"
}

# Pages and interrupts of an idle guest, from two `krg-vmm status`
# snapshots idle_window seconds apart (the DSM's own counters).
status_totals() {
	"$vmm" status "$1" | awk '
		/^node [0-9]+ .*vCPUs, up/ { nodes++; match($0, /up [0-9]+/); up = substr($0, RSTART + 3, RLENGTH - 3)
			match($0, /[0-9]+ interrupts injected/); irq += substr($0, RSTART, RLENGTH - 20) + 0 }
		/dsm: faults/ { match($0, /pages sent [0-9]+/); pages += substr($0, RSTART + 11, RLENGTH - 11) }
		END { print up, pages, irq, nodes }'
}

idle_run() {
	local log=$1 test=$2 sock a b i n1
	: >"$log"
	"$vmm" launch --local-nodes 2 -smp 2 -m 128 -kernel "$guest" \
		-append "test=$test iters=$((idle_window * 4 + 20)) timeout=900" \
		</dev/null >"$log" 2>&1 &
	vm_pid=$!
	sock=/run/krg-vmm/vm-$vm_pid.sock
	for ((i = 0; i < 600; i++)); do
		grep -q "^krg-test: bench-idle: idling" "$log" && break
		kill -0 "$vm_pid" 2>/dev/null || break
		sleep 0.1
	done
	grep -q "^krg-test: bench-idle: idling" "$log" ||
		{ echo "bench: $test did not start:" >&2; tail -5 "$log" >&2; exit 1; }
	sleep 2	# the first ticks fetch the handler's pages
	a=$(status_totals "$sock")
	sleep "$idle_window"
	b=$(status_totals "$sock")
	grep -q "bench-idle: done" "$log" &&
		{ echo "bench: $test ended inside the window" >&2; exit 1; }
	# After the window: which pages moved (memfd offset = guest-physical
	# address below the PCI hole), from the preads that send them.
	n1=$(pgrep -P "$vm_pid" | head -1 || true)
	if command -v strace >/dev/null && [[ -n $n1 ]]; then
		timeout 2 strace -f -qq -e trace=pread64 -o "$log.st" -p "$vm_pid" -p "$n1" \
			2>/dev/null || true
		sed -n 's/.*pread64([0-9]*, .*, 4096, \([0-9]*\)).*/\1/p' "$log.st" 2>/dev/null |
			sort -n | uniq -c | sort -rn | head -3 |
			awk -v t="$test" '{ printf "%s-moved 0x%x:%d\n", t, $2, $1 }'
	fi
	kill -TERM "$vm_pid"
	wait "$vm_pid" || true
	vm_pid=
	read -r ua pa ia na <<<"$a"
	read -r ub pb ib nb <<<"$b"
	[[ $na == 2 && $nb == 2 ]] ||
		{ echo "bench: $test: krg-vmm status did not answer for both nodes" >&2; exit 1; }
	awk -v t="$test" -v du=$((ub - ua)) -v dp=$((pb - pa)) -v di=$((ib - ia)) 'BEGIN {
		printf "%s-pages-per-s %.1f\n%s-irqs-per-s %.1f\n%s-window-ms %d\n",
			t, dp * 1000 / du, t, di * 1000 / du, t, du }'
}

for ((r = 1; r <= rounds; r++)); do
	echo "bench: round $r of $rounds" >&2
	"$bindir/tcp_floor" rtt 20000 | awk '{ print $2, $3 }' >>"$work/all"
	"$bindir/uffd_floor" fault 2000 | awk '{ print $2, $3 }' >>"$work/all"
	dsm_round "$work/dsm.$r" >>"$work/all"
	"$bindir/tcp_floor" stream 3 | awk '{ print $2, $3 }' >>"$work/all"
	run_guest "$work/c1.$r" bench-compute "iters=$compute_msteps" -smp 1
	run_guest "$work/c2.$r" bench-compute "iters=$compute_msteps" --local-nodes 2 -smp 2
	run_guest "$work/c3.$r" bench-compute "iters=$compute_msteps" -smp 2
	for n in 1 2 3; do
		awk -v n=$n -v k="$tsc_khz" '$1 == "KRG-BENCH" && $2 == "compute-wall" {
			printf "compute-wall-%d %.3f\n", n, $3 / (k * 1e3) }' "$work/c$n.$r"
	done >>"$work/all"
done
echo "bench: idle guests, ${idle_window} s windows" >&2
idle_run "$work/idle-quiet" bench-idle-quiet >>"$work/all"
idle_run "$work/idle" bench-idle >>"$work/all"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# Median over rounds of each metric.
med() {
	awk -v k="$1" '$1 == k { print $2 }' "$work/all" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "" }'
}
us() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'; }
add() { awk -v a="$1" -v b="$2" 'BEGIN { print a + b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

rtt50=$(med tcp-rtt-p50) rtt99=$(med tcp-rtt-p99)
lr50=$(med dsm-local-read-p50) lr99=$(med dsm-local-read-p99)
lw50=$(med dsm-local-write-p50) lw99=$(med dsm-local-write-p99)
lu50=$(med dsm-local-upgrade-p50) lu99=$(med dsm-local-upgrade-p99)
hu50=$(med uffd-read-fault-p50) hu99=$(med uffd-read-fault-p99)
hw50=$(med uffd-wp-fault-p50) hw99=$(med uffd-wp-fault-p99)
# row NAME KRG_NS FLOOR_NS FLOOR_TEXT HOST_FLOOR_NS TARGET
row() {
	echo "| $1 | $(us "$2") | $(us "$3") ($4) | $(ratio "$2" "$3") | $(ratio "$2" "$5") | $6 |"
}

# shellcheck source=lib.sh
. bench/lib.sh
bench_machine_facts
{
	echo
	echo "### $date: cluster benchmarks, 2 nodes on loopback (bench/cluster.sh)"
	echo
	if [[ -n ${BENCH_NOTE:-} ]]; then
		echo "$BENCH_NOTE"
		echo
	fi
	echo "Machine: $(nproc) CPUs, $cpu; host kernel $(uname -r); KVM: $kvm_kind;"
	echo "host TSC $(awk -v k="$tsc_khz" 'BEGIN { printf "%.1f", k / 1000 }') MHz. Load average (1/5/15 min) at start $load_start,"
	echo "at end $load_end. Guest: build/guest/krg-test-guest, \`-m 128\`, \`--local-nodes 2 -smp 2\`"
	echo "(vCPU i on node i; node 0 homes 0-64 MiB, from the guest's SRAT); medians of $rounds rounds;"
	echo "$lat_pages pages per fault kind. Times in us; floor = TCP 64 B / 4 KiB round trip + a local"
	echo "userfaultfd fault taken by the guest (first touch of a page its own node homes); floor' = the"
	echo "same with the fault taken by a host thread (bench/uffd_floor, no KVM)."
	echo
	echo "| metric | krg-vmm | floor (TCP RTT + guest local fault) | ratio | ratio to floor' | target |"
	echo "|---|---|---|---|---|---|"
	row "remote read fault p50" "$(med dsm-remote-read-p50)" "$(add "$rtt50" "$lr50")" \
		"$(us "$rtt50") + $(us "$lr50")" "$(add "$rtt50" "$hu50")" "<= 1.5"
	row "remote read fault p99" "$(med dsm-remote-read-p99)" "$(add "$rtt99" "$lr99")" \
		"$(us "$rtt99") + $(us "$lr99")" "$(add "$rtt99" "$hu99")" ""
	# An upgrade's fault is a write-protect fault: its floor has the
	# guest's local write-protect fault (and floor' the host thread's).
	row "remote write fault (upgrade S->M) p50" "$(med dsm-remote-upgrade-p50)" \
		"$(add "$rtt50" "$lu50")" "$(us "$rtt50") + $(us "$lu50") WP" "$(add "$rtt50" "$hw50")" "<= 1.5"
	row "remote write fault (upgrade S->M) p99" "$(med dsm-remote-upgrade-p99)" \
		"$(add "$rtt99" "$lu99")" "$(us "$rtt99") + $(us "$lu99") WP" "$(add "$rtt99" "$hw99")" ""
	row "remote write fault (miss: owner + data) p50" "$(med dsm-remote-write-p50)" \
		"$(add "$rtt50" "$lw50")" "$(us "$rtt50") + $(us "$lw50")" "$(add "$rtt50" "$hu50")" "<= 1.5"
	row "remote write fault (miss: owner + data) p99" "$(med dsm-remote-write-p99)" \
		"$(add "$rtt99" "$lw99")" "$(us "$rtt99") + $(us "$lw99")" "$(add "$rtt99" "$hu99")" ""
	row "home takes back a page (read) p50" "$(med dsm-home-recall-p50)" \
		"$(add "$rtt50" "$lr50")" "$(us "$rtt50") + $(us "$lr50")" "$(add "$rtt50" "$hu50")" ""
	echo
	echo "Floor parts (us, p50 / p99): TCP round trip $(us "$rtt50") / $(us "$rtt99");"
	echo "guest local read fault $(us "$lr50") / $(us "$lr99"), write fault $(us "$lw50") / $(us "$lw99"),"
	echo "write-protect fault (--dsm-track-writes) $(us "$lu50") / $(us "$lu99");"
	echo "host-thread uffd read fault $(us "$hu50") / $(us "$hu99"), write-protect fault"
	echo "$(us "$(med uffd-wp-fault-p50)") / $(us "$(med uffd-wp-fault-p99)"); guest read of a mapped page $(us "$(med dsm-mapped-read-p50)")."
	echo "Home check (round medians): node 1 served $(med dsm-node1-local-faults) faults locally (>= $((2 * lat_pages)) expected),"
	echo "node 0 sent $(med dsm-node0-pages-sent) pages."
	echo
	echo "| metric | krg-vmm | baseline (same run) | ratio | target |"
	echo "|---|---|---|---|---|"
	s=$(med dsm-stream-pages-per-s)
	echo "| stream through remote memory, pages/s | $s | $(med tcp-stream-4k-msgs-per-s) (TCP 4 KiB msgs/s, one stream) | $(ratio "$s" "$(med tcp-stream-4k-msgs-per-s)") | |"
	echo "| stream, against serial TCP fetch | $s | $(med tcp-serial-fetch-per-s) (64 B / 4 KiB round trips/s) | $(ratio "$s" "$(med tcp-serial-fetch-per-s)") | |"
	w1=$(med compute-wall-1) w2=$(med compute-wall-2) w3=$(med compute-wall-3)
	echo "| compute ${compute_msteps}M LCG steps, wall s: 2 nodes x 1 vCPU | $w2 | $w1 (1 node x 1 vCPU) | speedup $(ratio "$w1" "$w2") | >= 1.8 |"
	echo "| compute, control without the DSM: 1 node x 2 vCPUs | $w3 | $w1 (1 node x 1 vCPU) | speedup $(ratio "$w1" "$w3") | |"
	echo "| idle, no timers: pages moved/s | $(med bench-idle-quiet-pages-per-s) | $(med bench-idle-quiet-irqs-per-s) interrupts/s | | < 50 |"
	echo "| idle, LAPIC timers periodic (hz=100): pages moved/s | $(med bench-idle-pages-per-s) | $(med bench-idle-irqs-per-s) interrupts/s | | < 50 |"
	echo
	echo "DSM's own fault latency on node 1 (uffd event read to wake, --stats buckets, round medians):"
	echo "p50 <= $(med dsm-node1-internal-p50-le-us) us, p99 <= $(med dsm-node1-internal-p99-le-us) us."
	mq=$(awk '$1 == "bench-idle-quiet-moved" { printf " %s", $2 }' "$work/all")
	mt=$(awk '$1 == "bench-idle-moved" { printf " %s", $2 }' "$work/all")
	echo "Pages that moved most in 2 s after each idle window (guest-physical:count, strace of the"
	echo "preads that send them): no timers:${mq:- none}; timers:${mt:- none}."
} | tee -a "$results"
