#!/bin/sh
# /init of the stock-kernel test initramfs (copied there by prepare.sh), run by
# busybox ash as PID 1.
#
# Under PVM every process the guest starts costs seconds of emulated kernel
# work (fork, exec, page faults). So this script uses shell builtins wherever
# it can, and the automatic test runs few processes (mount x3, nproc,
# poweroff). prepare.sh links those applets into /bin.
#
# The host scripts (tests/stock/lib.sh) parse the "KRG-STOCK: key=value" lines.

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Without a /dev/console node in the archive (built as non-root) the kernel could
# not give us stdio, so reopen the console now that devtmpfs has it.
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1

read -r cmdline </proc/cmdline
read -r release </proc/sys/kernel/osrelease
read -r banner </proc/version
read -r online </sys/devices/system/cpu/online
memtotal_kb=unknown
while read -r key value _; do
	if [ "$key" = "MemTotal:" ]; then
		memtotal_kb=$value
		break
	fi
done </proc/meminfo
read -r uptime _ </proc/uptime

echo "KRG-STOCK: banner=$banner"
echo "KRG-STOCK: uname=$release"
echo "KRG-STOCK: nproc=$(nproc)"
echo "KRG-STOCK: memtotal_kb=$memtotal_kb"
echo "KRG-STOCK: online=$online"
# NUMA nodes the kernel sees (a cluster VM shows one per cluster node);
# a glob, not ls: no process.
set -- /sys/devices/system/node/node[0-9]*
[ -e "$1" ] || set --
echo "KRG-STOCK: numa_nodes=$#"
clocksource=unknown
read -r clocksource </sys/devices/system/clocksource/clocksource0/current_clocksource
echo "KRG-STOCK: clocksource=$clocksource"
echo "KRG-STOCK: uptime_s=$uptime"
echo "KRG-STOCK: shell-ready"

# krg.idle=N: stay idle N seconds first, between two markers, so the host
# can count what an idle guest costs (pages moved between cluster nodes).
for word in $cmdline; do
	case $word in
	krg.idle=[0-9]*)
		echo "KRG-STOCK: idle-begin seconds=${word#krg.idle=}"
		sleep "${word#krg.idle=}"
		echo "KRG-STOCK: idle-end"
		;;
	esac
done

# Kernel parameters with a dot are not handed to init, so look at /proc/cmdline.
case " $cmdline " in
*" krg.autotest=1 "*)
	echo "KRG-STOCK: poweroff"
	# -f: reboot(RB_POWER_OFF) straight away (ACPI S5 when the VMM offers it).
	poweroff -f
	echo "KRG-STOCK: poweroff-failed"
	while :; do
		sleep 3600
	done
	;;
esac

# Interactive: give the console a shell with job control; power off after it.
busybox --install -s 2>/dev/null
echo "KRG-STOCK: interactive shell (exit to power off)"
setsid cttyhack sh -l
echo "KRG-STOCK: poweroff"
poweroff -f
echo "KRG-STOCK: poweroff-failed"
# PID 1 must never exit: the kernel would panic.
while :; do
	sleep 3600
done
