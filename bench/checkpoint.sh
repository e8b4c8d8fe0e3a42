#!/usr/bin/env bash
# Checkpoint benchmark (bench/README.md): a guest whose RAM holds MIB MiB
# of random data (a multiboot module of the test guest: every page touched,
# none compressible), checkpointed on 1 node and on 2 local nodes, each
# write throughput beside `dd conv=fsync` of the same number of bytes to
# the same disk in the same run; then the time from `krg-vmm restore` to a
# running guest (its control socket answers), on 1 and 2 nodes.
#
#   bench/checkpoint.sh [MIB] [ROUNDS]     (default 512 MiB, 3 rounds)
#
# Results go to the terminal and to bench/RESULTS.md.  Not a test: nothing
# fails on a slow number.  SNAPDIR (default: a directory under /var/tmp,
# the same disk as the dd target) chooses where snapshots are written.
set -euo pipefail
cd "$(dirname "$0")/.."

mib=${1:-512}
rounds=${2:-3}
vmm=${KRG_VMM:-./krg-vmm}
guest=${KRG_TEST_GUEST:-build/guest/krg-test-guest}
results=${BENCH_RESULTS:-bench/RESULTS.md}
base=${SNAPDIR:-/var/tmp}
work=$(mktemp -d "$base/krg-bench-ckpt.XXXXXX")
vm_pid=
cleanup() {
	[[ -n $vm_pid ]] && kill -KILL "$vm_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

[[ -x $vmm && -s $guest ]] || { echo "bench: build first (make krg-vmm guest)" >&2; exit 1; }
[[ $mib =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] ||
	{ echo "usage: bench/checkpoint.sh [MIB] [ROUNDS]" >&2; exit 1; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }
med() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# MiB/s from bytes and ms.
rate() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.0f", ms ? b / 1048576 / (ms / 1000) : 0 }'; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
head -c $((mib << 20)) /dev/urandom >"$work/data.bin"
ram=$((mib + 256))

# start NODES: a spinning guest with the data in its RAM; sets vm_pid.
start() {
	local nodes=$1 opts=()
	[[ $nodes -gt 1 ]] && opts=(--local-nodes "$nodes")
	"$vmm" launch "${opts[@]}" -m $ram -smp "$nodes" -kernel "$guest" \
		-initrd "$work/data.bin" -append "test=spin" \
		</dev/null >"$work/vm.log" 2>&1 &
	vm_pid=$!
	wait_socket "$vm_pid"
	for _ in $(seq 600); do
		grep -q 'spin: running' "$work/vm.log" && return 0
		sleep 0.1
	done
	echo "bench: the guest did not start" >&2
	tail "$work/vm.log" >&2
	exit 1
}

wait_socket() {
	for _ in $(seq 6000); do
		[[ -S /run/krg-vmm/vm-$1.sock ]] && "$vmm" status "/run/krg-vmm/vm-$1.sock" \
			>/dev/null 2>&1 && return 0
		sleep 0.01
	done
	echo "bench: no control socket" >&2
	exit 1
}

stop() {
	kill "$vm_pid" 2>/dev/null || true
	wait "$vm_pid" 2>/dev/null || true
	vm_pid=
}

: >"$work/all"
for nodes in 1 2; do
	for r in $(seq "$rounds"); do
		start "$nodes"
		snap=$work/snap-$nodes
		rm -rf "$snap"
		sync
		t0=$(now_ms)
		out=$("$vmm" checkpoint --socket "/run/krg-vmm/vm-$vm_pid.sock" "$snap")
		ck_ms=$(($(now_ms) - t0))
		bytes=$(du -sb "$snap" | cut -f1)
		stop
		# The same bytes through dd, fsync'd, to the same disk.
		sync
		t0=$(now_ms)
		dd if=/dev/zero of="$work/dd.bin" bs=4M count="$bytes" \
			iflag=count_bytes conv=fsync status=none
		dd_ms=$(($(now_ms) - t0))
		rm -f "$work/dd.bin"
		{
			echo "ckpt-ms-$nodes $ck_ms"
			echo "ckpt-bytes-$nodes $bytes"
			echo "dd-ms-$nodes $dd_ms"
		} >>"$work/all"
		echo "  $nodes node(s), round $r: $out; client saw $ck_ms ms; dd $dd_ms ms" >&2
		# Restore to a running guest.
		t0=$(now_ms)
		opts=()
		[[ $nodes -gt 1 ]] && opts=(--local-nodes "$nodes")
		"$vmm" restore "$snap" "${opts[@]}" </dev/null >"$work/restore.log" 2>&1 &
		vm_pid=$!
		wait_socket "$vm_pid"
		echo "restore-ms-$nodes $(($(now_ms) - t0))" >>"$work/all"
		stop
		rm -rf "$snap"
	done
done

get() { awk -v k="$1" '$1 == k { print $2 }' "$work/all" | med; }
{
	echo
	echo "## Checkpoint, $(date -u +%Y-%m-%d) ($(uname -n), $(nproc) cores, load $load_start -> $(cut -d' ' -f1-3 /proc/loadavg))"
	echo
	echo "Guest RAM $ram MiB holding $mib MiB of random data; snapshot in $base; $rounds rounds, medians."
	echo
	echo "| nodes | snapshot MiB | checkpoint ms | MiB/s | dd conv=fsync ms | dd MiB/s | ratio (target >= 0.5) | restore to running ms |"
	echo "|---|---|---|---|---|---|---|---|"
	for nodes in 1 2; do
		b=$(get "ckpt-bytes-$nodes") c=$(get "ckpt-ms-$nodes") d=$(get "dd-ms-$nodes")
		echo "| $nodes | $((b >> 20)) | $c | $(rate "$b" "$c") | $d | $(rate "$b" "$d") |" \
			"$(awk -v c="$c" -v d="$d" 'BEGIN { printf "%.2f", c ? d / c : 0 }') | $(get "restore-ms-$nodes") |"
	done
	echo
	echo "Checkpoint ms is the whole command as its client sees it: pause, barrier, disk"
	echo "freeze, every file written and fsync'd, the manifest, the rename, the resume."
	echo "Restore ms: from \`krg-vmm restore\` (which first verifies every file's CRC) to"
	echo "the restored VM's control socket answering, its vCPUs running."
} | tee -a "$results"
