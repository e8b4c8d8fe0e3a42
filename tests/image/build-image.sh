#!/usr/bin/env bash
# Builds a Debian bookworm disk image from Debian's archive, with no loop
# device and no mount of the image: mmdebstrap fills a directory, sfdisk
# writes an MBR into the image file, mke2fs -d copies the directory into an
# ext4 filesystem written straight at the partition's offset, and GRUB's
# boot.img and core.img are copied into the MBR and the gap after it.
#
# Output, in ${KRG_IMAGE_DIR:-/var/cache/krg-vmm/images}:
#   debian-bookworm.raw    the disk (sparse)
#   debian-bookworm.qcow2  the same disk, converted by qemu-img
#   debian-bookworm.stamp  hash of this script and its settings; the image
#                          is rebuilt only when it changes or a file is
#                          missing
#   debian-bookworm.txt    what was built (kernel version, UUID, sizes)
# A fresh build is booted under QEMU TCG (SeaBIOS -> GRUB -> kernel ->
# systemd) before it replaces the cached one; see tests/image/README.md.
#
# Environment:
#   KRG_IMAGE_DIR      output directory (default /var/cache/krg-vmm/images)
#   KRG_IMAGE_FORCE=1  rebuild even if the stamp matches
#   KRG_IMAGE_VERIFY=0 skip the QEMU TCG boot of a fresh build
#   KRG_IMAGE_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   KRG_IMAGE_SECURITY security mirror (default
#                      http://deb.debian.org/debian-security)
#   KRG_IMAGE_SIZE_MIB disk size in MiB (default 2048)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${KRG_IMAGE_DIR:-/var/cache/krg-vmm/images}
name=debian-bookworm
suite=bookworm
mirror=${KRG_IMAGE_MIRROR:-http://deb.debian.org/debian}
security=${KRG_IMAGE_SECURITY:-http://deb.debian.org/debian-security}
size_mib=${KRG_IMAGE_SIZE_MIB:-2048}
# The root filesystem's UUID is fixed so that fstab, grub.cfg and anyone
# writing root=UUID=... agree without reading the image.
uuid=4b52472d-766d-4d00-8000-646562313200
part_start=2048 # sectors: 1 MiB, room for GRUB's core.img after the MBR

say() { printf 'image: %s\n' "$*" >&2; }
die() {
	printf 'image: %s\n' "$*" >&2
	exit 1
}

if ! [[ $size_mib =~ ^[0-9]+$ ]] || ((size_mib < 1024)); then
	die "KRG_IMAGE_SIZE_MIB must be a number of MiB, at least 1024"
fi

# The switches krg-vmm's PVM profile adds on its direct kernel path
# (vcpu/pvm_profile.h); a firmware boot goes through GRUB, which must pass
# them itself.  Read from the header so the two cannot drift apart.
pvm_header=$root/vcpu/pvm_profile.h
pvm_switches=$(sed -n 's/^#define PVM_SWITCHES *{\(.*\)}.*/\1/p' "$pvm_header" | tr -d '",')
pvm_clear=$(sed -n '/^#define PVM_CLEARCPUID_LIST/,/[^\\]$/p' "$pvm_header" |
	grep -o '"[^"]*"' | tr -d '"\n')
[[ -n $pvm_switches && $pvm_clear =~ ^[a-z0-9_,]+$ ]] ||
	die "cannot read the PVM switches from $pvm_header"
read -r -a pvm_words <<<"$pvm_switches"
# cryptomgr.notests=1: no crypto self-tests.  Under PVM the RSA ones (a
# private-key operation per test vector, emulated multi-precision
# arithmetic) run for tens of minutes, and every module load waits for
# them through its signature check.
pvm_append="${pvm_words[*]} clearcpuid=$pvm_clear cryptomgr.notests=1"

settings="suite=$suite mirror=$mirror security=$security size=$size_mib uuid=$uuid pvm=$pvm_append"
stamp_want=$({ cat "${BASH_SOURCE[0]}"; echo "$settings"; } | sha256sum | cut -d' ' -f1)

raw=$out/$name.raw
qcow=$out/$name.qcow2
stamp=$out/$name.stamp
if [[ ${KRG_IMAGE_FORCE:-0} != 1 && -s $raw && -s $qcow && -s $stamp &&
	$(cat "$stamp") == "$stamp_want" ]]; then
	say "$raw and $qcow are up to date"
	exit 0
fi

# Host tools, installed when missing (the build is not part of make check:
# it downloads ~200 MB).
need=(mmdebstrap grub-pc-bin e2fsprogs fdisk qemu-utils gzip cpio)
[[ ${KRG_IMAGE_VERIFY:-1} == 0 ]] || need+=(qemu-system-x86 seabios)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if ((${#missing[@]})); then
	[[ $(id -u) == 0 ]] || die "missing packages: ${missing[*]} (run as root)"
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
		die "cannot install ${missing[*]}"
fi
[[ $(id -u) == 0 ]] || die "mmdebstrap needs root here (it chroots into the new system)"

mkdir -p "$out"
exec 9>"$out/.$name.lock"
flock -n 9 || { say "another build holds $out/.$name.lock; waiting"; flock 9; }
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
t_start=$SECONDS

# --- 1. the root filesystem -------------------------------------------------
# Boot work is what the slow platform pays for (PLATFORM.md): units that do
# nothing useful in a VM are masked, the initramfs carries only the modules a
# virtio disk needs, and it is left uncompressed so the guest kernel copies
# it rather than running a decompressor in emulated kernel code.
masked=(
	apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer
	e2scrub_all.timer e2scrub_reap.service fstrim.timer
	systemd-tmpfiles-clean.timer systemd-networkd-wait-online.service
	getty@tty1.service systemd-pstore.service
	sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount
	modprobe@drm.service modprobe@efi_pstore.service modprobe@fuse.service
	modprobe@dm_mod.service modprobe@loop.service
	proc-sys-fs-binfmt_misc.automount
)
# Generators for setups the image does not have (encrypted, verity or
# integrity volumes, GPT auto-discovery, hibernation, SysV scripts,
# rc.local, offline updates, systemd.run=).  systemd runs all generators in
# parallel and kills the ones still running after a fixed 90 s (compiled in,
# no setting moves it); under PVM on 2 nodes a dozen parallel execs outlast
# that, and a killed systemd-fstab-generator never pulls in
# systemd-remount-fs.service: the root then stays read-only without any
# unit failing.  Kept: fstab, getty, debug.
masked_generators=(
	systemd-cryptsetup-generator systemd-gpt-auto-generator
	systemd-hibernate-resume-generator systemd-integritysetup-generator
	systemd-veritysetup-generator systemd-rc-local-generator
	systemd-run-generator systemd-system-update-generator
	systemd-sysv-generator
)
# Drivers a krg-vmm VM has no use for (QEMU's PC hardware, KVM in the
# guest, Wi-Fi that systemd-networkd's nl80211 query would load, the
# SSE4.2 crc32c the PVM switches hide), and what PID 1 loads for automount
# and firewall units the image does not have: under PVM each module load
# is seconds to minutes of emulated kernel code.
blacklist=(
	psmouse serio_raw pcspkr floppy parport_pc ppdev joydev i2c_piix4
	bochs qemu_fw_cfg fan cfg80211 rfkill kvm kvm_amd kvm_intel irqbypass
	ccp crc32c_intel autofs4 ip_tables x_tables
)

# Units whose own TimeoutSec= (30-90 s) a PVM boot outlasts.
short_timeout_units=(
	kmod.service procps.service systemd-binfmt.service systemd-journal-flush.service
	systemd-machine-id-commit.service systemd-modules-load.service systemd-rfkill.service
	systemd-sysctl.service systemd-sysusers.service systemd-random-seed.service
	systemd-backlight@.service
)

cat >"$work/customize.sh" <<EOF
#!/bin/sh
# Runs as mmdebstrap's customize hook: \$1 is the new root.
set -eu
r=\$1
echo krg-debian >"\$r/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tkrg-debian\n' >"\$r/etc/hosts"
# QEMU's user network (slirp) answers DNS on 10.0.2.3.
echo 'nameserver 10.0.2.3' >"\$r/etc/resolv.conf"
# Empty, not "uninitialized": no first-boot preset run; systemd makes a
# machine ID at boot and commits it once the root is writable.
: >"\$r/etc/machine-id"
rm -f "\$r/var/lib/dbus/machine-id"
printf 'UUID=$uuid\t/\text4\terrors=remount-ro\t0\t0\n' >"\$r/etc/fstab"
echo 'root:krg' | chroot "\$r" chpasswd

# Serial console: root logged in automatically on ttyS0.
d=\$r/etc/systemd/system/serial-getty@ttyS0.service.d
mkdir -p "\$d" "\$r/etc/systemd/system/getty.target.wants"
printf '%s\n' '[Service]' 'ExecStart=' \\
	'ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 - \$TERM' \\
	>"\$d/autologin.conf"
ln -sf /lib/systemd/system/serial-getty@.service \\
	"\$r/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"

# DHCP on any wired interface (virtio-net), without waiting for it.
mkdir -p "\$r/etc/systemd/network"
printf '%s\n' '[Match]' 'Name=en* eth*' '[Network]' 'DHCP=ipv4' \\
	>"\$r/etc/systemd/network/80-krg-dhcp.network"
chroot "\$r" systemctl enable systemd-networkd.service >/dev/null 2>&1

# The line the long tests wait for.
install -m 0755 /dev/stdin "\$r/usr/local/sbin/krg-report" <<'REPORT'
#!/bin/sh
# Prints the boot's outcome on the serial console (krg-report.service).
state=\$(systemctl is-system-running --wait 2>/dev/null)
failed=\$(systemctl list-units --failed --plain --no-legend 2>/dev/null | awk '{ print \$1 }' | tr '\n' ' ')
{
	echo "krg-image: \$(systemd-analyze time 2>/dev/null | head -n 1)"
	[ -z "\$failed" ] || echo "krg-image: failed-units=\$failed"
	# Why, in the units' own words: their last journal lines.
	for u in \$failed; do
		journalctl -u "\$u" -b -n 4 -o cat --no-pager 2>/dev/null |
			sed "s|^|krg-image: \$u: |"
	done
	echo "krg-image: net=\$(ip -4 -br addr show 2>/dev/null | grep -v '^lo ' | tr -s ' ' | tr '\n' ';')"
	echo "krg-image: system-running=\$state"
} >/dev/ttyS0
# The disk's part of the long test: a file kept across boots.  Each boot
# reads what the previous one left, then writes its own count and boot ID
# and syncs it, so a second boot proves the first one's write reached the
# image.
f=/var/lib/krg-image/boots
prev=\$(sed -n 's/^boots=\([0-9]*\) .*/\1/p' "\$f" 2>/dev/null)
prev_id=\$(sed -n 's/.* boot_id=\([0-9a-f-]*\).*/\1/p' "\$f" 2>/dev/null)
n=\$((\${prev:-0} + 1))
id=\$(cat /proc/sys/kernel/random/boot_id)
mkdir -p /var/lib/krg-image
# A failure says which step failed and how the root is mounted (a root left
# read-only, or remounted so by an ext4 error, is the likely cause).
if err=\$( { echo "boots=\$n boot_id=\$id" >"\$f.new" && sync "\$f.new" &&
	mv "\$f.new" "\$f" && sync -f "\$f"; } 2>&1); then
	written=ok
else
	written="failed: \$(echo "\$err" | tr '\n' ' ')(root mounted \$(findmnt -no OPTIONS / 2>&1))"
fi
# What the kernel said about the root's filesystem and disk (its mounts and
# remounts, I/O errors): below the console's log level with "quiet".
dmesg 2>/dev/null | grep -iE 'ext4|vda|i/o error|jbd2|blk_update' | tail -n 20 |
	sed 's/^/krg-image: dmesg: /' >/dev/ttyS0
# The unit that makes the root writable: how it ended and what it said.
if [ "\$written" != ok ]; then
	{
		systemctl show -p ActiveState,Result,ExecMainStatus,ExecMainStartTimestamp systemd-remount-fs.service
		journalctl -b -u systemd-remount-fs.service -o cat --no-pager
	} 2>&1 | tail -n 12 | sed 's/^/krg-image: remount-fs: /' >/dev/ttyS0
fi
{
	if [ -n "\$prev" ]; then
		echo "krg-image: disk-file found: boots=\$prev from boot_id=\$prev_id"
	else
		echo "krg-image: disk-file none (first boot of this disk)"
	fi
	echo "krg-image: disk-file boots=\$n boot_id=\$id write+sync \$written"
} >/dev/ttyS0
# krg.poweroff=1 on the kernel command line: power off once reported, after
# a pause in which the serial getty prints its prompt.
if grep -qw 'krg.poweroff=1' /proc/cmdline; then
	sleep 10
	echo "krg-image: powering off" >/dev/ttyS0
	systemctl --no-block poweroff
fi
REPORT
printf '%s\n' '[Unit]' \\
	'Description=Report the boot state on ttyS0 (krg-vmm image tests)' \\
	'After=multi-user.target' \\
	'[Service]' 'Type=simple' 'ExecStart=/usr/local/sbin/krg-report' \\
	'[Install]' 'WantedBy=multi-user.target' \\
	>"\$r/etc/systemd/system/krg-report.service"
chroot "\$r" systemctl enable krg-report.service >/dev/null 2>&1
for u in ${masked[*]}; do
	ln -sf /dev/null "\$r/etc/systemd/system/\$u"
done
mkdir -p "\$r/etc/systemd/system-generators" "\$r/etc/systemd/system/local-fs.target.wants"
for g in ${masked_generators[*]}; do
	ln -sf /dev/null "\$r/etc/systemd/system-generators/\$g"
done
# What systemd-fstab-generator would add for the root in /etc/fstab, made
# static so that a generator killed on its timeout cannot leave the root
# read-only (see masked_generators).
ln -sf /lib/systemd/system/systemd-remount-fs.service \
	"\$r/etc/systemd/system/local-fs.target.wants/systemd-remount-fs.service"
{
	echo '# krg-vmm test image (tests/image/build-image.sh): see its README.'
	for m in ${blacklist[*]}; do echo "blacklist \$m"; done
} >"\$r/etc/modprobe.d/krg-vmm.conf"
# The journal in RAM: no flush to disk at boot, no writes to the image.
mkdir -p "\$r/etc/systemd/journald.conf.d"
printf '%s\n' '[Journal]' 'Storage=volatile' \\
	>"\$r/etc/systemd/journald.conf.d/krg-vmm.conf"

# Under PVM every uevent and every service start runs emulated kernel code
# for minutes: systemd's 90 s defaults failed the serial console's device
# (so no getty, no login prompt) while udev was still coldplugging, and a
# 3-minute service watchdog would kill a daemon that is merely slow.  No
# effect on a machine where the boot takes seconds.
mkdir -p "\$r/etc/systemd/system.conf.d"
printf '%s\n' '[Manager]' 'DefaultTimeoutStartSec=2h' 'DefaultDeviceTimeoutSec=2h' \\
	'ServiceWatchdogs=no' >"\$r/etc/systemd/system.conf.d/krg-vmm.conf"
# Units with a short timeout of their own (systemd-machine-id-commit's 30 s
# failed it under PVM: the system came up "degraded"), and udevd's 180 s
# per-event limit, which a module load hashed in emulated code can outlast
# (udev.conf also goes into the initramfs, made below).
for u in ${short_timeout_units[*]}; do
	mkdir -p "\$r/etc/systemd/system/\$u.d"
	printf '%s\n' '[Service]' 'TimeoutSec=2h' >"\$r/etc/systemd/system/\$u.d/krg-vmm.conf"
done
echo 'event_timeout=7200' >>"\$r/etc/udev/udev.conf"
# login(1) gives up after LOGIN_TIMEOUT (60 s) between its start and a
# finished session: the serial console's automatic root login outlasted it
# on 2 PVM nodes ("Login timed out after 60 seconds").
sed -i 's/^LOGIN_TIMEOUT.*/LOGIN_TIMEOUT\t\t7200/' "\$r/etc/login.defs"

# ConditionNeedsUpdate= would rebuild the hwdb and ld.so.cache on the first
# boot: done here instead, and the stamps made newer than /usr.
chroot "\$r" systemd-hwdb update
chroot "\$r" ldconfig
t=\$((\$(stat -c %Y "\$r/usr") + 1))
touch -d "@\$t" "\$r/etc/.updated" "\$r/var/.updated"

# Milestones on the console for the long tests (a boot under PVM takes
# hours; these say how far it got): the initramfs starting and handing
# over, and systemd starting its first units.
for stage in init-top:started init-bottom:done; do
	f=\$r/etc/initramfs-tools/scripts/\${stage%%:*}/krg-vmm
	mkdir -p "\$(dirname "\$f")"
	printf '%s\n' '#!/bin/sh' 'PREREQ=""' \\
		'case "\$1" in prereqs) echo "\$PREREQ"; exit 0 ;; esac' \\
		"echo 'krg-image: initramfs \${stage#*:}'" >"\$f"
	chmod 0755 "\$f"
done
printf '%s\n' '[Unit]' 'Description=Say on ttyS0 that systemd runs (krg-vmm image tests)' \\
	'DefaultDependencies=no' 'Before=sysinit.target' \\
	'[Service]' 'Type=oneshot' \\
	"ExecStart=/bin/sh -c 'echo krg-image: systemd started >/dev/ttyS0'" \\
	'[Install]' 'WantedBy=sysinit.target' \\
	>"\$r/etc/systemd/system/krg-early.service"
chroot "\$r" systemctl enable krg-early.service >/dev/null 2>&1

# initramfs: the modules for a virtio disk and NIC and the root fs, no
# resume probing, gzip (undone below).
mkdir -p "\$r/etc/initramfs-tools/conf.d"
printf '%s\n' MODULES=list RESUME=none COMPRESS=gzip \\
	>"\$r/etc/initramfs-tools/conf.d/krg-vmm.conf"
mkdir -p "\$r/usr/share/initramfs-tools/modules.d"
printf '%s\n' virtio_pci virtio_blk virtio_net ext4 crc32c_generic \\
	>"\$r/usr/share/initramfs-tools/modules.d/krg-vmm"
chroot "\$r" update-initramfs -u -k all >/dev/null
for f in "\$r"/boot/initrd.img-*; do
	gzip -dc "\$f" >"\$f.cpio"
	mv "\$f.cpio" "\$f"
done

# GRUB's modules, for what grub.cfg's commands load on demand.
mkdir -p "\$r/boot/grub/i386-pc"
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst "\$r/boot/grub/i386-pc/"
rm -rf "\$r/var/cache/apt"/*.bin "\$r/var/lib/apt/lists"/*_Packages
EOF
chmod +x "$work/customize.sh"

say "mmdebstrap $suite from $mirror"
mmdebstrap --variant=minbase --mode=root --format=directory \
	--include=systemd-sysv,udev,linux-image-amd64,initramfs-tools,kmod,e2fsprogs,dbus,iproute2,procps \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--customize-hook="$work/customize.sh \"\$1\"" \
	"$suite" "$rootfs" \
	"deb $mirror $suite main" "deb $mirror $suite-updates main" \
	"deb $security $suite-security main" >"$work/mmdebstrap.log" 2>&1 ||
	{ tail -n 30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
kver=$(readlink "$rootfs/vmlinuz" | sed 's|.*/vmlinuz-||')
[[ -n $kver && -s $rootfs/boot/vmlinuz-$kver && -s $rootfs/boot/initrd.img-$kver ]] ||
	die "no kernel or initrd in the new system (vmlinuz -> $(readlink "$rootfs/vmlinuz"))"
say "root filesystem: $(du -sh "$rootfs" | cut -f1), kernel $kver, initrd $(($(stat -c %s "$rootfs/boot/initrd.img-$kver") >> 20)) MiB (uncompressed cpio)"

# --- 2. GRUB's configuration -------------------------------------------------
# /vmlinuz and /initrd.img are the symlinks Debian keeps pointing at the
# newest kernel; GRUB's ext2 driver follows them.  The first entry carries
# the PVM switches so a firmware boot under krg-vmm on a PVM host works; on
# a real server (or under TCG) they only hide CPU features.
# systemd.show_status=error: no progress spinner redrawn on the serial
# console while a unit starts slowly (all of them, under PVM).
common="root=UUID=$uuid ro console=ttyS0,115200 quiet systemd.show_status=error"
cat >"$rootfs/boot/grub/grub.cfg" <<EOF
# Written by krg-vmm's tests/image/build-image.sh.
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set default=0
set timeout=0
menuentry 'Debian $suite (krg-vmm: PVM switches)' {
	linux /vmlinuz $common $pvm_append
	initrd /initrd.img
}
menuentry 'Debian $suite' {
	linux /vmlinuz $common
	initrd /initrd.img
}
EOF

# --- 3. the disk --------------------------------------------------------------
img=$work/$name.raw
truncate -s "${size_mib}M" "$img"
sfdisk -q --no-reread --no-tell-kernel "$img" <<EOF
label: dos
label-id: 0x4b524731
unit: sectors
start=$part_start, type=83, bootable
EOF
part_sectors=$(sfdisk -d "$img" | sed -n 's/.*start= *'"$part_start"', size= *\([0-9]*\).*/\1/p')
[[ -n $part_sectors ]] || die "sfdisk did not create the partition"
fs_blocks=$((part_sectors / 8))
# Straight into the image at the partition's offset; nodiscard, so nothing
# punches holes around the partition table.
mke2fs -q -F -t ext4 -b 4096 -L krg-root -U "$uuid" \
	-E "offset=$((part_start * 512)),nodiscard" -d "$rootfs" "$img" "$fs_blocks" ||
	die "mke2fs failed"

# GRUB in the MBR and the post-MBR gap, as grub-bios-setup would: core.img
# at LBA 1, boot.img's first 440 bytes (the partition table stays).
grubdir=/usr/lib/grub/i386-pc
grub-mkimage -O i386-pc -o "$work/core.img" -p '(hd0,msdos1)/boot/grub' \
	biosdisk part_msdos ext2 normal linux serial terminal boot echo ||
	die "grub-mkimage failed"
core_bytes=$(stat -c %s "$work/core.img")
((core_bytes <= (part_start - 1) * 512)) ||
	die "core.img ($core_bytes bytes) does not fit before the partition"
dd if="$work/core.img" of="$img" bs=512 seek=1 conv=notrunc status=none
cp "$grubdir/boot.img" "$work/boot.img"
# kernel_sector (0x5c, 64-bit LBA of core.img) = 1; boot_drive (0x64) =
# 0xff (use the drive the BIOS passes in DL); the jump at 0x66 that skips
# the "DL is not a hard disk" fix-up becomes two NOPs, as grub-bios-setup
# does for disks.
printf '\x01\x00\x00\x00\x00\x00\x00\x00\xff' |
	dd of="$work/boot.img" bs=1 seek=$((0x5c)) conv=notrunc status=none
printf '\x90\x90' | dd of="$work/boot.img" bs=1 seek=$((0x66)) conv=notrunc status=none
dd if="$work/boot.img" of="$img" bs=440 count=1 conv=notrunc status=none

# A look from outside, without mounting: the table and the filesystem.
# (Output captured first: grep -q closing the pipe early would fail it.)
table=$(sfdisk -d "$img")
[[ $table =~ start=\ *$part_start,\ .*bootable ]] || die "partition table lost"
[[ $(od -An -tx1 -j510 -N2 "$img" | tr -d ' ') == 55aa ]] || die "MBR signature lost"
dd if="$img" of="$work/fs.probe" bs=1M skip=$((part_start / 2048)) count=64 status=none
sb=$(dumpe2fs -h "$work/fs.probe" 2>/dev/null) || true # 64 MiB of it: it complains
[[ $sb =~ Filesystem\ UUID:\ *$uuid ]] ||
	die "no ext4 filesystem with UUID $uuid at the partition's offset"
rm -f "$work/fs.probe"
rm -rf "$rootfs"

qemu-img convert -f raw -O qcow2 "$img" "$work/$name.qcow2" || die "qemu-img convert failed"

# --- 4. proof: boot it --------------------------------------------------------
if [[ ${KRG_IMAGE_VERIFY:-1} != 0 ]]; then
	say "booting the image under QEMU TCG (SeaBIOS, GRUB, initramfs, systemd)"
	"$here/qemu-boot.sh" "$img" "$work/qemu-boot.log" ||
		die "the image does not boot under QEMU TCG: see the log above"
	cp "$work/qemu-boot.log" "$out/$name.qemu-boot.log"
fi

cat >"$work/$name.txt" <<EOF
built $(date -u '+%Y-%m-%d %H:%M:%S UTC') by tests/image/build-image.sh in $((SECONDS - t_start)) s
suite $suite from $mirror (+ $suite-updates, $suite-security)
kernel $kver; /vmlinuz -> boot/vmlinuz-$kver, /initrd.img -> boot/initrd.img-$kver (uncompressed cpio)
disk ${size_mib} MiB, MBR, partition 1 at sector $part_start: ext4, UUID $uuid, label krg-root
root password: krg (autologin as root on ttyS0)
grub.cfg command line: $common $pvm_append
EOF
mv -f "$img" "$raw"
mv -f "$work/$name.qcow2" "$qcow"
mv -f "$work/$name.txt" "$out/$name.txt"
echo "$stamp_want" >"$stamp"
say "done in $((SECONDS - t_start)) s: $raw ($(du -h "$raw" | cut -f1) used), $qcow ($(du -h "$qcow" | cut -f1))"
