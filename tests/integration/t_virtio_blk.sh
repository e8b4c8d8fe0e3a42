#!/usr/bin/env bash
# virtio-blk over virtio-pci with the test guest's own driver (test=blk):
# a raw image (the host-side file is checked sector by sector), a qcow2
# image through qemu-storage-daemon (qemu-img check passes afterwards), a
# read-only disk that refuses writes, the I/O done by a vCPU on node 1 of
# two, and bad -drive input that must end in one clear line, quickly.
source "$(dirname "$0")/lib.sh"
need_kvm
need_guest

MIB=2            # blkmib=: MiB per pass (sequential, then random)
SIZE=16M

# check_image FILE LOG: the image holds exactly what the guest says it
# wrote (the pattern, the random sectors, zeros elsewhere; lib.sh).
check_image() {
	blk_check_image "$1" "$MIB" "$2"
}

# guest_blk LOG TIMEOUT ARGS... -- APPEND: test=blk must pass.
guest_blk() {
	local log=$1 tmo=$2 append=$3
	shift 3
	run_vmm "$log" "$tmo" launch -m 128 -kernel "$GUEST" "$@" \
		-append "test=blk blkmib=$MIB timeout=$((tmo - 10)) $append"
	assert_no_sanitizer_report "$log"
	assert_rc 0 "$log"
	assert_log '^KRG-TEST PASS blk$' "$log"
}

# 1. raw image, 1 vCPU, MSI-X.
raw=$WORK/disk.raw
truncate -s $SIZE "$raw"
log=$WORK/raw.log
t0=$(now_ms)
guest_blk "$log" 60 "" -drive "file=$raw,format=raw,if=virtio,serial=krgdisk0"
assert_log '^krg-test: blk: .*MSI-X, capacity 32768 sectors' "$log"
assert_log '^krg-test: blk: flush ok' "$log"
assert_log '^krg-test: blk: id "krgdisk0"' "$log"
assert_log '^krg-test: blk: verified [0-9]+ sectors read back' "$log"
assert_log '^krg-test: blk: msi-x: function mask held' "$log"
assert_log '^krg-test: blk: msi-x: vector mask held' "$log"
check_image "$raw" "$log"
echo "  ok: raw image, 1 vCPU ($(($(now_ms) - t0)) ms)"

# 1b. the same without MSI-X: the driver polls, the ISR byte shows the
# queue interrupt and reading it clears it (INTx's path).
raw1=$WORK/disk1.raw
truncate -s $SIZE "$raw1"
log=$WORK/intx.log
guest_blk "$log" 60 "blkmsix=0" -drive "file=$raw1,format=raw"
assert_log '^krg-test: blk: .*polling, capacity' "$log"
assert_log '^krg-test: blk: ISR 1 after the passes, 0 on the next read' "$log"
check_image "$raw1" "$log"
echo "  ok: raw image without MSI-X (ISR read-to-clear)"

# 2. qcow2 through qemu-storage-daemon.
if command -v qemu-img >/dev/null && command -v qemu-storage-daemon >/dev/null; then
	qcow=$WORK/disk.qcow2
	qemu-img create -q -f qcow2 "$qcow" $SIZE
	log=$WORK/qcow2.log
	t0=$(now_ms)
	guest_blk "$log" 90 "" -drive "file=$qcow,format=qcow2"
	assert_log 'verified [0-9]+ sectors' "$log"
	qemu-img check -q "$qcow" || fail "qemu-img check fails on the qcow2 image"
	qemu-img convert -f qcow2 -O raw "$qcow" "$WORK/qcow2.raw"
	check_image "$WORK/qcow2.raw" "$log"
	echo "  ok: qcow2 via qemu-storage-daemon, qemu-img check clean ($(($(now_ms) - t0)) ms)"
else
	echo "  skipped: qcow2 (no qemu-img / qemu-storage-daemon)"
fi

# 3. read-only: the write is refused with IOERR and the file is untouched.
ro=$WORK/ro.raw
head -c 1048576 /dev/urandom >"$ro"
sum=$(md5sum <"$ro")
log=$WORK/ro.log
guest_blk "$log" 60 "blkro=1" -drive "file=$ro,format=raw,readonly=on"
assert_log '^krg-test: blk: read-only: write refused with IOERR' "$log"
[[ $(md5sum <"$ro") == "$sum" ]] || fail "read-only image changed"
echo "  ok: read-only disk refuses writes"

# 4. two nodes, the I/O from vCPU 1 on node 1 (its MMIO forwarded to node
# 0, its MSI-X routed back).
raw2=$WORK/disk2.raw
truncate -s $SIZE "$raw2"
log=$WORK/nodes.log
t0=$(now_ms)
guest_blk "$log" 120 "blkcpu=1" --local-nodes 2 -smp 2 \
	-drive "file=$raw2,format=raw,serial=node1"
assert_log '^krg-vmm: cluster of 2 nodes up:' "$log"
assert_log '^krg-test: blk: I/O from cpu 1' "$log"
assert_log '^krg-test: blk: msi-x: vector mask held' "$log"
check_image "$raw2" "$log"
echo "  ok: 2 nodes, I/O from the vCPU on node 1 ($(($(now_ms) - t0)) ms)"

# 5. bad -drive input: one line, non-zero, within seconds.
bad_drive() {
	local what=$1 pattern=$2 want=$3
	shift 3
	assert_refused "$what" "$pattern" "$want" launch -m 64 -kernel "$GUEST" -append test=blk "$@"
}
printf 'QFI\xfb\0\0\0\3garbage' >"$WORK/broken.qcow2"
qemu-img create -q -f qcow2 "$WORK/full.qcow2" 64M
head -c 1024 "$WORK/full.qcow2" >"$WORK/trunc.qcow2"
bad_drive "missing file" "-drive 0: .*(No such file|cannot open|does-not-exist)" 1 \
	-drive "file=$WORK/does-not-exist,format=raw"
bad_drive "truncated qcow2 image" "-drive 0: .*truncated" 1 \
	-drive "file=$WORK/trunc.qcow2"
bad_drive "broken qcow2 header" "-drive 0: .*(qcow2|header|image)" 1 \
	-drive "file=$WORK/broken.qcow2,format=qcow2"
bad_drive "bad option" "-drive 0: .*(frob|unknown|option)" 2 \
	-drive "file=$raw,frob=1"
bad_drive "ninth drive" "at most 8|too many" 2 \
	$(for i in 1 2 3 4 5 6 7 8 9; do printf -- '-drive file=%s,format=raw ' "$raw"; done)
pass
