#!/usr/bin/env bash
# Booting through SeaBIOS (Debian's seabios package): a boot sector built
# here from tests/firmware/mbr.S on a virtio-blk -drive, found and started
# by the firmware, prints on COM1 (directly and through int 10h), reads
# LBA 1 through int 13h and ends the VM through the debug-exit port; the
# same with the 128 KiB image and 2 vCPUs, saved during POST and restored,
# and on two local nodes; a disk without a boot signature must end with "No bootable device"
# quickly; bad -bios files and -bios with -kernel are refused with one
# line.  Prints how long SeaBIOS took to reach the boot sector.
source "$(dirname "$0")/lib.sh"
need_kvm

BIOS256=/usr/share/seabios/bios-256k.bin
BIOS128=/usr/share/seabios/bios.bin
[[ -s $BIOS256 && -s $BIOS128 ]] || skip "needs Debian's seabios package ($BIOS256)"
for t in as ld objcopy; do
	command -v $t >/dev/null || skip "needs $t (binutils) to build the boot sector"
done

# The boot sector, and a disk with it in the MBR and a token in LBA 1.
as --32 -o "$WORK/mbr.o" "$ROOT/tests/firmware/mbr.S" ||
	fail "assembling tests/firmware/mbr.S"
ld -m elf_i386 -Ttext 0x7c00 -e _start -o "$WORK/mbr.elf" "$WORK/mbr.o" ||
	fail "linking the boot sector"
objcopy -O binary "$WORK/mbr.elf" "$WORK/mbr.bin"
[[ $(stat -c %s "$WORK/mbr.bin") -eq 512 ]] || fail "boot sector is not 512 bytes"
token="token-$RANDOM$RANDOM"
disk=$WORK/boot.raw
truncate -s 4M "$disk"
dd if="$WORK/mbr.bin" of="$disk" conv=notrunc status=none
printf '%s' "$token" | dd of="$disk" bs=512 seek=1 conv=notrunc status=none

# boot_ok LOG TIMEOUT ARGS...: the boot sector ran and reported its disk
# read; prints the seconds it took.  The console (stdout) and the debug log
# (stderr) are kept apart and then joined in LOG: written to one file, a
# debug line could land inside a console line (CI saw the banner split).
run_split() {
	local log=$1 tmo=$2
	shift 2
	RC=0
	timeout --kill-after=10 "$tmo" "$VMM" launch -m 128 "$@" </dev/null \
		>"$log.out" 2>"$log.err" || RC=$?
	# (the console may stop mid-line: a save)
	{ cat "$log.out"; echo; cat "$log.err"; } >"$log"
}

boot_ok() {
	local log=$1 tmo=$2 t0
	shift 2
	t0=$(now_ms)
	run_split "$log" "$tmo" "$@"
	BOOT_MS=$(($(now_ms) - t0))
	assert_no_sanitizer_report "$log"
	assert_rc 67 "$log"
	# Not anchored: the boot sector writes to COM1 directly while SeaBIOS's
	# serial console may still hold the end of "Booting from Hard Disk...",
	# which it sends later (seen on a loaded host: "Disk..krg-mbr: ...").
	assert_log 'krg-mbr: boot sector running, BIOS drive 0x80' "$log"
	assert_log 'krg-mbr: hello through int 10h' "$log"
	assert_log "krg-mbr: sector 1 says: $token" "$log"
	assert_log 'Booting from Hard Disk' "$log"
}

# banner_ok FILE...: SeaBIOS's own words on COM1 (its serial console), in
# the console output of one run or of a saved run and its restore (a save
# may land in the middle of the banner).
banner_ok() {
	cat "$@" | grep -aq 'SeaBIOS (version' || {
		tail -n 20 "$@" >&2
		fail "console output lacks SeaBIOS's banner"
	}
}

# 1. The default firmware (bios-256k.bin), chosen because there is a
# -drive and no -kernel; its debug log (port 0x402) on stderr.
log=$WORK/boot.log
boot_ok "$log" 240 -drive "file=$disk,format=raw"
banner_ok "$log.out"
assert_log "^krg-vmm: firmware: $BIOS256 \(256 KiB\)" "$log"
# ... and its debug log: our chipset and fw_cfg as SeaBIOS saw them.
assert_log '^Running on QEMU \(i440fx\)' "$log"
assert_log '^QEMU fw_cfg DMA interface supported' "$log"
assert_log '^1: /pci@i0cf8/scsi@2/disk@0,0' "$log"
assert_log '^PIIX3/PIIX4 init: elcr=00 0c' "$log"
assert_log '^table\(50434146\)=0x[0-9a-f]+ \(via xsdt\)' "$log"
assert_log '^sercon: using ioport 0x3f8' "$log"
refute_log 'fallback: refused|emulation failure' "$log"
first_ms=$BOOT_MS

# 2. -bios with the 128 KiB image, 2 vCPUs, the debug log hidden; saved
# in the middle of SeaBIOS's POST and restored: the restored VM maps the
# image again and finds the same fw_cfg files.
args=(-smp 2 -bios "$BIOS128" -debugcon none -drive "file=$disk,format=raw,readonly=on")
log=$WORK/save128.log
run_split "$log" 120 "${args[@]}" --save-after 1500 \
	--save-to "$WORK/fw.state"
assert_no_sanitizer_report "$log"
assert_log "^krg-vmm: firmware: $BIOS128 \(128 KiB\)" "$log"
refute_log '^Running on QEMU' "$log"
if [[ $RC -eq 67 ]]; then
	banner_ok "$log.out"
	echo "  (this host booted before the save: restore not tried)"
else
	assert_rc 0 "$log"
	assert_log 'state saved to' "$log"
	boot_ok "$WORK/restore128.log" 240 "${args[@]}" --restore "$WORK/fw.state"
	banner_ok "$log.out" "$WORK/restore128.log.out"
fi
rm -f "$WORK/fw.state"

# 3. Two local nodes, one vCPU each: SeaBIOS (on node 0) starts the AP on
# node 1; the firmware's RAM and the boot sector's are shared by the DSM.
log=$WORK/cluster.log
boot_ok "$log" 240 -smp 2 --local-nodes 2 -drive "file=$disk,format=raw"
banner_ok "$log.out"
assert_log '^Found 2 cpu\(s\) max supported 2 cpu\(s\)' "$log"

# 4. No boot signature: one clear line and status 1, not a wait forever.
empty=$WORK/empty.raw
truncate -s 1M "$empty"
log=$WORK/noboot.log
t0=$(now_ms)
run_vmm "$log" 240 launch -m 128 -debugcon none -drive "file=$empty,format=raw"
noboot_ms=$(($(now_ms) - t0))
assert_no_sanitizer_report "$log"
assert_rc 1 "$log"
assert_log 'krg-vmm: firmware: no bootable device' "$log"
assert_log 'Boot failed: not a bootable disk' "$log"
refute_log 'krg-mbr' "$log"

# 5. Bad firmware images and combinations: refused before the VM starts.
bad() {
	local what=$1 want=$2
	shift 2
	log=$WORK/bad.log
	run_vmm "$log" 30 launch -m 64 "$@"
	assert_no_sanitizer_report "$log"
	assert_rc 2 "$log"
	assert_log "^krg-vmm: .*$want" "$log"
	[[ $(wc -l <"$log") -eq 1 ]] || { cat "$log" >&2; fail "$what: more than one line"; }
}
bad "missing file" "cannot open BIOS image '$WORK/nope.bin'" \
	-bios "$WORK/nope.bin" -drive "file=$disk,format=raw"
head -c 131072 /dev/urandom >"$WORK/garbage.bin"
printf '\0' | dd of="$WORK/garbage.bin" bs=1 seek=$((131072 - 16)) conv=notrunc status=none
bad "garbage" "not a PC BIOS image: no jump at the reset vector" \
	-bios "$WORK/garbage.bin" -drive "file=$disk,format=raw"
head -c 100000 "$BIOS128" >"$WORK/short.bin"
bad "odd size" "multiple of 64 KiB" -bios "$WORK/short.bin"
bad "a directory" "is not a regular file" -bios "$WORK"
bad "with -kernel" "-bios and -kernel together" -bios "$BIOS128" -kernel "$WORK/mbr.bin"
bad "nothing to boot" "no kernel given"

pass "boot sector reached in $((first_ms / 1000)).$((first_ms % 1000 / 100)) s (SeaBIOS 256k), \"No bootable device\" after $((noboot_ms / 1000)).$((noboot_ms % 1000 / 100)) s"
