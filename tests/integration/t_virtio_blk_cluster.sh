#!/usr/bin/env bash
# virtio-blk queues served where their requests come from: two local nodes,
# -smp 2, the test guest's blk test on both vCPUs at once, each on its own
# queue (queue 1 is node 1's).  Checks the data host-side (raw and qcow2),
# that node 1 served queue 1 itself (its own doorbell exits, its own image
# handle, nothing forwarded to node 0 for it), flushes reaching every node
# when forced to, O_DIRECT reads through a bounce buffer, INTx, and measures
# node 1's vCPU with local serving against serve=node0 in the same run.
source "$(dirname "$0")/lib.sh"
need_kvm
need_guest

MIB=2
SIZE=16M
BENCH_MIB=6      # the measurement: 96 sequential 64 KiB requests per pass

# check_regions FILE LOG: the image holds what the guest wrote with
# blkmib=$MIB (lib.sh).
check_regions() {
	blk_check_image "$1" "$MIB" "$2"
}

# blk_cluster LOG TIMEOUT APPEND DRIVE: test=blk across 2 nodes must pass.
blk_cluster() {
	local log=$1 tmo=$2 append=$3 drive=$4
	run_vmm "$log" "$tmo" launch --stats -m 128 --local-nodes 2 -smp 2 \
		-kernel "$GUEST" -drive "$drive" \
		-append "test=blk blkmib=$MIB timeout=$((tmo - 10)) $append"
	assert_no_sanitizer_report "$log"
	assert_rc 0 "$log"
	assert_log '^KRG-TEST PASS blk$' "$log"
}

# served_locally LOG: node 1 served queue 1 itself, from its own exits.
served_locally() {
	local log=$1 served bells
	served=$(node_blk "$log" 1 "requests served here")
	bells=$(node_blk "$log" 1 "doorbells here")
	[[ ${served:-0} -ge 700 && ${bells:-0} -gt 0 ]] ||
		fail "node 1 served ${served:-0} requests from ${bells:-0} doorbells (expected its queue's ~738)"
	[[ $(node_blk "$log" 0 "handed to other nodes") -ge 1 ]] ||
		fail "node 0 handed no queue over"
	# The guest's writes on cpu 1 went out from node 1, none failed.
	[[ $(node_blk "$log" 1 "writes") -gt 0 ]] ||
		fail "node 1 served no write request"
	[[ $(node_blk "$log" 0 "failed") -eq 0 && $(node_blk "$log" 1 "failed") -eq 0 ]] ||
		fail "a node answered a request with an error"
	echo "  node 1 served $served requests itself ($bells doorbells taken locally)"
}

# 1. raw image, both vCPUs at once.
raw=$WORK/raw.img
truncate -s $SIZE "$raw"
log=$WORK/raw.log
t0=$(now_ms)
blk_cluster "$log" 90 "blkcpu=all" "file=$raw,format=raw,serial=mq"
assert_log '^krg-test: blk: I/O from all 2 cpus, one queue each' "$log"
assert_log '^krg-test: blk: .*2 queue\(s\) of 64, MSI-X' "$log"
assert_log '^krg-test: blk: cpu 0 queue 0: [0-9]+ requests' "$log"
assert_log '^krg-test: blk: cpu 1 queue 1: [0-9]+ requests' "$log"
assert_log '^krg-test: blk: msi-x: vector mask held' "$log"
check_regions "$raw" "$log"
served_locally "$log"
echo "  ok: raw image, 2 nodes, both vCPUs on their own queues ($(($(now_ms) - t0)) ms)"

# 2. qcow2: node 1 connects to node 0's qemu-storage-daemon export.
if command -v qemu-img >/dev/null && command -v qemu-storage-daemon >/dev/null; then
	qcow=$WORK/disk.qcow2
	qemu-img create -q -f qcow2 "$qcow" $SIZE
	log=$WORK/qcow2.log
	t0=$(now_ms)
	blk_cluster "$log" 90 "blkcpu=all" "file=$qcow,format=qcow2"
	qemu-img check -q "$qcow" || fail "qemu-img check fails on the qcow2 image"
	qemu-img convert -f qcow2 -O raw "$qcow" "$WORK/qcow2.raw"
	check_regions "$WORK/qcow2.raw" "$log"
	served_locally "$log"
	echo "  ok: qcow2 via qemu-storage-daemon, node 1 on its own NBD connection ($(($(now_ms) - t0)) ms)"
else
	echo "  skipped: qcow2 (no qemu-img / qemu-storage-daemon)"
fi

# 3. cache=none (O_DIRECT reads through a bounce buffer) with every flush
# forced to reach the other node.
raw3=$WORK/direct.img
truncate -s $SIZE "$raw3"
log=$WORK/fanout.log
KRG_VMM_BLK_FLUSH_FANOUT=1 blk_cluster "$log" 90 "blkcpu=all" \
	"file=$raw3,format=raw,cache=none"
check_regions "$raw3" "$log"
served_locally "$log"
for n in 0 1; do
	[[ $(node_blk "$log" $n "flushes sent") -ge 1 ]] ||
		fail "node $n sent no flush to the other node"
done
echo "  ok: cache=none, flushes reaching both nodes"

# 4. without MSI-X: node 1 serves, node 0 keeps the ISR and the INTx line.
raw4=$WORK/intx.img
truncate -s $SIZE "$raw4"
log=$WORK/intx.log
blk_cluster "$log" 90 "blkcpu=1 blkmsix=0" "file=$raw4,format=raw"
assert_log '^krg-test: blk: .*polling, capacity' "$log"
assert_log '^krg-test: blk: ISR 1 after the passes, 0 on the next read' "$log"
check_regions "$raw4" "$log"
served_locally "$log"
echo "  ok: INTx (no MSI-X), the ISR set through node 0"

# 5. node 1's vCPU alone: served on node 1, then on node 0 (serve=node0).
rate() {
	sed -nE "s/^krg-test: blk: cpu 1 queue 1: ([0-9]+) requests, ([0-9]+) KiB in ([0-9]+) ms: ([0-9]+) requests\/s, ([0-9]+) KiB\/s/\\$1/p" "$2"
}
declare -A rps kibs fwd
for mode in auto node0; do
	img=$WORK/$mode.img
	truncate -s $SIZE "$img"
	log=$WORK/$mode.log
	MIB=$BENCH_MIB blk_cluster "$log" 90 "blkcpu=1" \
		"file=$img,format=raw,serve=$mode"
	MIB=$BENCH_MIB check_regions "$img" "$log"
	rps[$mode]=$(rate 4 "$log")
	kibs[$mode]=$(rate 5 "$log")
	[[ -n ${rps[$mode]} ]] || fail "no throughput line in $log"
	fwd[$mode]=$(sed -nE '/^node 1 /,/^node [02-9]/s/.*I\/O forwarded ([0-9]+).*/\1/p' "$log" | head -1)
done
served_locally "$WORK/auto.log"
[[ $(node_blk "$WORK/node0.log" 1 "requests served here") -eq 0 ]] ||
	fail "serve=node0: node 1 served requests"
[[ $(node_blk "$WORK/node0.log" 0 "requests served here") -ge 700 ]] ||
	fail "serve=node0: node 0 did not serve queue 1"
echo "  node 1's vCPU, $BENCH_MIB MiB written and read in 64 KiB requests + 640 random of 1-8 sectors:"
awk -v a="${rps[auto]}" -v ak="${kibs[auto]}" -v af="${fwd[auto]}" \
    -v b="${rps[node0]}" -v bk="${kibs[node0]}" -v bf="${fwd[node0]}" 'BEGIN {
	printf "    served on node 1: %6d requests/s %7.1f MiB/s (node 1 forwarded %d I/O exits)\n", a, ak / 1024, af
	printf "    served on node 0: %6d requests/s %7.1f MiB/s (node 1 forwarded %d I/O exits)\n", b, bk / 1024, bf
	printf "    speed-up %.1fx\n", b ? a / b : 0 }'
[[ ${rps[auto]} -gt ${rps[node0]} ]] ||
	fail "serving on node 1 (${rps[auto]}/s) is not faster than on node 0 (${rps[node0]}/s)"
pass
