#!/usr/bin/env bash
# virtio-blk under load (in `make check`, ~20 s; alone: `make check-blk-load`):
# the test guest's test=blk on 4 vCPUs at once (blkcpu=all), each on its
# own queue and in its own part of a fresh disk, BLK_LOAD_MIB (64) MiB per
# pass: every CPU writes 2 x 64 MiB (sequential 64 KiB requests, then 384
# random writes of 1-8 sectors), flushes and reads every sector back, 512 MiB
# in all.  Raw on 1 node, raw on 2 local nodes (queues 2 and 3 served on
# node 1, where vCPUs 2 and 3 run), qcow2 on 1 node.  Each run: the guest
# passes and saw no bad sector, the image holds exactly the guest's pattern
# on the host, and the per-CPU throughput and the run's time are printed.
source "$(dirname "$0")/lib.sh"
need_kvm
need_guest

CPUS=4
MIB=${BLK_LOAD_MIB:-64}
# test_blk.c: CPU c's part starts at c * 2 * blkmib MiB; the disk needs
# all of them.
SIZE=$((CPUS * 2 * MIB))M
TMO=${BLK_LOAD_TIMEOUT:-300}

# blk_load NAME DRIVE [LAUNCH ARGS...]: one run, checked; output in
# $WORK/NAME.log, wall time in RUN_MS.
blk_load() {
	local name=$1 drive=$2 log=$WORK/$1.log t0 c n
	shift 2
	t0=$(now_ms)
	run_vmm "$log" "$TMO" launch --stats -m 128 -smp $CPUS "$@" \
		-kernel "$GUEST" -drive "$drive" \
		-append "test=blk blkcpu=all blkmib=$MIB timeout=$((TMO - 20))"
	RUN_MS=$(($(now_ms) - t0))
	assert_no_sanitizer_report "$log"
	assert_rc 0 "$log"
	assert_log '^KRG-TEST PASS blk$' "$log"
	assert_log "^krg-test: blk: I/O from all $CPUS cpus, one queue each" "$log"
	assert_log "^krg-test: blk: .*$CPUS queue\\(s\\) of [0-9]+, MSI-X, capacity $((CPUS * 2 * MIB * 2048)) sectors" "$log"
	refute_log 'MISMATCH|read back wrong|completed with status' "$log"
	# Each CPU read back both of its regions, every sector checked.
	n=$(awk -v min=$((2 * MIB * 2048)) '/^krg-test: blk: verified [0-9]+ sectors read back/ &&
		$4 >= min { n++ } END { print n + 0 }' "$log")
	[[ $n -eq $CPUS ]] || fail "$name: $n of $CPUS cpus verified >= $((2 * MIB * 2048)) sectors"
	for ((c = 0; c < CPUS; c++)); do
		assert_log "^krg-test: blk: cpu $c queue $c: [0-9]+ requests, [0-9]+ KiB in" "$log"
		[[ $(grep -c "^krg-test: blk: pass cpu $c queue $c " "$log") -eq 4 ]] ||
			fail "$name: cpu $c did not report its four passes"
	done
	echo "  $name: PASS in $RUN_MS ms (launch to exit), per CPU:"
	grep -E '^krg-test: blk: cpu [0-9]+ queue [0-9]+: [0-9]+ requests, ' "$log" |
		sed 's/^krg-test: blk: /    /' | sort
}

# Summed KiB/s of the four CPUs per pass (they run at about the same time).
pass_sums() {
	awk '/^krg-test: blk: pass cpu / {
		tag = $8; sub(":$", "", tag); kib[tag] += $(NF - 1) }
		END { printf "    all cpus:"
		      n = split("seq-write rnd-write seq-read rnd-read", t, " ")
		      for (i = 1; i <= n; i++) printf " %s %.1f MiB/s", t[i], kib[t[i]] / 1024
		      print "" }' "$1"
}

t_all=$(now_ms)
echo "  $CPUS vCPUs, blkcpu=all, blkmib=$MIB: $((CPUS * 2 * MIB)) MiB written and read back"

# 1. raw, 1 node.
img=$WORK/raw1.img
truncate -s "$SIZE" "$img"
blk_load raw-1node "file=$img,format=raw,serial=load1"
pass_sums "$WORK/raw-1node.log"
blk_check_image "$img" "$MIB" "$WORK/raw-1node.log"
rm -f "$img"

# 2. raw, 2 local nodes: vCPUs 2 and 3 run on node 1, which serves their
# queues itself.
img=$WORK/raw2.img
truncate -s "$SIZE" "$img"
blk_load raw-2nodes "file=$img,format=raw,serial=load2,queues=$CPUS,serve=auto" \
	--local-nodes 2
pass_sums "$WORK/raw-2nodes.log"
blk_check_image "$img" "$MIB" "$WORK/raw-2nodes.log"
log=$WORK/raw-2nodes.log
queues=$(node_blk "$log" 1 "queues served here")
[[ ${queues:-0} -eq 2 ]] || fail "node 1 serves ${queues:-0} queues, expected 2"
served=$(node_blk "$log" 1 "requests served here")
[[ ${served:-0} -ge $((2 * 3712)) ]] ||
	fail "node 1 served ${served:-0} requests, expected its 2 queues' >= $((2 * 3712))"
echo "    node 1 served $served requests itself ($(node_blk "$log" 1 "doorbells here") doorbells taken there)"
rm -f "$img"

# 3. qcow2, 1 node (qemu-storage-daemon): checked with qemu-img, and its
# contents converted to raw.
if command -v qemu-img >/dev/null && command -v qemu-storage-daemon >/dev/null; then
	img=$WORK/disk.qcow2
	qemu-img create -q -f qcow2 "$img" "$SIZE"
	blk_load qcow2-1node "file=$img,format=qcow2,serial=loadq"
	pass_sums "$WORK/qcow2-1node.log"
	qemu-img check -q "$img" || fail "qemu-img check fails on the qcow2 image"
	qemu-img convert -f qcow2 -O raw "$img" "$WORK/qcow2.raw"
	blk_check_image "$WORK/qcow2.raw" "$MIB" "$WORK/qcow2-1node.log"
	rm -f "$img" "$WORK/qcow2.raw"
else
	echo "  skipped: qcow2 (no qemu-img / qemu-storage-daemon)"
fi

pass "$((CPUS * 2 * MIB)) MiB per run on 4 vCPUs, raw (1 and 2 nodes) and qcow2, in $(($(now_ms) - t_all)) ms"
