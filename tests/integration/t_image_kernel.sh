#!/usr/bin/env bash
# -kernel drive:/PATH: the test guest read from an ext4 filesystem inside
# a partitioned disk image (made here with sfdisk and mke2fs -d), through a
# symlink, booted on 1 node and on 2 nodes, from a raw image and from a
# qcow2 copy, from the second drive with an explicit partition, and from a
# config file; then bad input, each one clear line and a non-zero exit
# before any guest runs.
source "$(dirname "$0")/lib.sh"
need_kvm
need_guest
for tool in mke2fs sfdisk; do
	command -v $tool >/dev/null || skip "needs $tool (e2fsprogs / fdisk)"
done

# The disk: MBR, partition 1 from 1 MiB, ext4 holding the guest as
# /boot/guest, /guest -> boot/guest, a symlink loop and a file larger
# than a 16 MiB guest's RAM.
src=$WORK/src
mkdir -p "$src/boot" "$src/etc"
cp "$GUEST" "$src/boot/guest"
ln -s boot/guest "$src/guest"
ln -s /boot/guest "$src/etc/abs-guest"
ln -s loop2 "$src/loop1"
ln -s loop1 "$src/loop2"
head -c $((17 << 20)) /dev/zero >"$src/big"
raw=$WORK/disk.raw
truncate -s 48M "$raw"
printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$raw" >/dev/null
mke2fs -q -F -t ext4 -E offset=1048576 -d "$src" "$raw" 40M >/dev/null ||
	fail "mke2fs -d failed"
guest_bytes=$(stat -c %s "$GUEST")

# boot LABEL ARGS...: the guest's test=smp must pass, read from the image.
boot() {
	local label=$1
	shift
	local log=$WORK/$label.log t0
	t0=$(now_ms)
	run_vmm "$log" 90 launch -m 128 "$@"
	assert_no_sanitizer_report "$log"
	assert_rc 0 "$log"
	assert_log '^KRG-TEST PASS smp$' "$log"
	assert_log "^krg-vmm: kernel drive[0-9]*:(p1:)?/[a-z/-]+: -drive [01] partition 1 \(ext4, /boot/guest\), $guest_bytes bytes$" "$log"
	echo "  ok: $label ($(($(now_ms) - t0)) ms)"
}

boot raw-1node -smp 2 -kernel drive:/guest -drive "file=$raw,format=raw" \
	-append "test=smp"
assert_log '^krg-test: smp: all 2 cpus computed correct results' "$WORK/raw-1node.log"
boot raw-2nodes --local-nodes 2 -smp 2 -kernel drive:/etc/abs-guest \
	-drive "file=$raw,format=raw" -append "test=smp"
assert_log '^krg-vmm: cluster of 2 nodes up:' "$WORK/raw-2nodes.log"
if command -v qemu-img >/dev/null && command -v qemu-storage-daemon >/dev/null; then
	qemu-img convert -f raw -O qcow2 "$raw" "$WORK/disk.qcow2"
	boot qcow2 -kernel drive:/guest -drive "file=$WORK/disk.qcow2" \
		-append "test=smp"
	boot qcow2-2nodes --local-nodes 2 -smp 2 -kernel drive:/guest \
		-drive "file=$WORK/disk.qcow2,format=qcow2" -append "test=smp"
else
	echo "  skipped: qcow2 (no qemu-img / qemu-storage-daemon)"
fi
truncate -s 8M "$WORK/blank.raw"
boot second-drive -kernel drive1:p1:/boot/guest \
	-drive "file=$WORK/blank.raw,format=raw" -drive "file=$raw,format=raw" \
	-append "test=smp"
# A config file elsewhere: drive:/ is not a path relative to it.
mkdir -p "$WORK/conf"
printf 'kernel = drive:/guest\ndrive = file=%s,format=raw\nappend = test=smp\n' \
	"$raw" >"$WORK/conf/vm.conf"
boot config-file --config "$WORK/conf/vm.conf"

# Bad input: exactly one line, status 2, quickly; the image unchanged.
sum=$(md5sum <"$raw")
bad() {
	local what=$1 pattern=$2
	shift 2
	local log=$WORK/bad.log t0 ms
	t0=$(now_ms)
	run_vmm "$log" 30 launch -m 128 "$@"
	ms=$(($(now_ms) - t0))
	assert_no_sanitizer_report "$log"
	[[ $RC -eq 2 ]] || { cat "$log" >&2; fail "$what: exit status $RC, expected 2"; }
	# (A kernel read before a failing module says where it came from.)
	[[ $(grep -cv '^krg-vmm: kernel drive:/[a-z]*: .* bytes$' "$log") -eq 1 ]] ||
		{ cat "$log" >&2; fail "$what: expected exactly one line"; }
	grep -Eq "^krg-vmm: ($pattern)" "$log" || { cat "$log" >&2; fail "$what: message lacks /$pattern/"; }
	[[ $ms -lt 15000 ]] || fail "$what: took $ms ms"
	echo "  ok: $what -> $(tail -n 1 "$log") ($ms ms)"
}
d=(-drive "file=$raw,format=raw")
bad "no such drive" "kernel 'drive1:/guest': there is no -drive 1 \(1 given\)" \
	-kernel drive1:/guest "${d[@]}"
bad "no drive at all" "kernel 'drive:/guest': there is no -drive 0 \(0 given\)" \
	-kernel drive:/guest
bad "no such file" "kernel 'drive:/boot/nope': -drive 0: partition 1: /boot/nope: no such file" \
	-kernel drive:/boot/nope "${d[@]}"
bad "no such partition" "kernel 'drive:p2:/guest': -drive 0: there is no partition 2 \(MBR with 1 partition\)" \
	-kernel drive:p2:/guest "${d[@]}"
bad "a directory" "kernel 'drive:/boot': -drive 0: partition 1: /boot is a directory" \
	-kernel drive:/boot "${d[@]}"
bad "a symlink loop" "kernel 'drive:/loop1': .*too many levels of symbolic links" \
	-kernel drive:/loop1 "${d[@]}"
bad "over the size limit" "multiboot module 'drive:/big': .*/big is 17825792 bytes, more than the limit of 16777216" \
	-m 16 -kernel drive:/guest -initrd drive:/big "${d[@]}"
bad "relative path" "kernel 'drive:guest': the path inside the filesystem must be absolute" \
	-kernel drive:guest "${d[@]}"
bad "no filesystem" "kernel 'drive:/guest': -drive 0: no partition table, and the whole disk is not an ext2/3/4 filesystem" \
	-kernel drive:/guest -drive "file=$WORK/blank.raw,format=raw"
# A corrupt superblock (its checksum, at 1 MiB + 1024 + 0x3fc).
cp "$raw" "$WORK/corrupt.raw"
printf '\xde\xad' | dd of="$WORK/corrupt.raw" bs=1 seek=$((1048576 + 1024 + 0x3fc)) conv=notrunc status=none
bad "corrupt filesystem" "kernel 'drive:/guest': -drive 0: partition 1: corrupt ext2/3/4 filesystem: .*checksum" \
	-kernel drive:/guest -drive "file=$WORK/corrupt.raw,format=raw"
[[ $(md5sum <"$raw") == "$sum" ]] || fail "the image changed"
pass
