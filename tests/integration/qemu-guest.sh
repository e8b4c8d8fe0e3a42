#!/bin/bash
# Run the project's test guest under QEMU, as the reference for what
# krg-vmm must do with the same image.
#
#   tests/integration/qemu-guest.sh [--accel tcg|kvm] [-smp N] [-m MIB]
#       [--cpu MODEL] [--timeout SEC] [--guest FILE] [--drive RAW]
#       [test=NAME] [key=value...]
#
# --drive gives the guest a raw image as QEMU's virtio-blk-pci (on the pc
# machine a transitional device, 1af4:1001), serial "qemu0".
# Every key=value word goes to the guest's command line (test=all when no
# test= is given).  Prints the guest's output, then one verdict line;
# exits 0 on "KRG-TEST PASS" with QEMU status 0 (ACPI power-off), 1 on a guest
# failure, 2 on a usage or setup error, 124 on timeout.
set -u

accel=tcg
smp=4
mem=128
cpu=
timeout=120
guest=
drive=
append=
have_test=no

usage() {
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--accel) [ $# -ge 2 ] || usage; accel=$2; shift 2 ;;
	-smp|--smp) [ $# -ge 2 ] || usage; smp=$2; shift 2 ;;
	-m) [ $# -ge 2 ] || usage; mem=$2; shift 2 ;;
	--cpu) [ $# -ge 2 ] || usage; cpu=$2; shift 2 ;;
	--timeout) [ $# -ge 2 ] || usage; timeout=$2; shift 2 ;;
	--guest) [ $# -ge 2 ] || usage; guest=$2; shift 2 ;;
	--drive) [ $# -ge 2 ] || usage; drive=$2; shift 2 ;;
	-h|--help) usage ;;
	test=*) have_test=yes; append="$append $1"; shift ;;
	*=*) append="$append $1"; shift ;;
	*) echo "qemu-guest.sh: unknown argument '$1'" >&2; usage ;;
	esac
done

case "$accel" in tcg|kvm) ;; *) echo "qemu-guest.sh: --accel tcg|kvm" >&2; exit 2 ;; esac
case "$smp" in ''|*[!0-9]*) echo "qemu-guest.sh: -smp wants a number" >&2; exit 2 ;; esac
[ "$have_test" = yes ] || append="test=all$append"
append=$(echo "$append" | sed 's/^ *//')

root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "$guest" ]; then
	guest=${KRG_TEST_GUEST:-$root/build/guest/krg-test-guest}
fi
if [ ! -f "$guest" ]; then
	echo "qemu-guest.sh: no guest image at $guest (run: make guest)" >&2
	exit 2
fi
command -v qemu-system-x86_64 >/dev/null 2>&1 ||
	{ echo "qemu-guest.sh: qemu-system-x86_64 not installed" >&2; exit 2; }
if [ -z "$cpu" ]; then
	# TCG in QEMU 7.2 has no x2APIC (it drops the flag with a warning).
	if [ "$accel" = kvm ]; then cpu=qemu64,+x2apic; else cpu=qemu64; fi
fi

out=$(mktemp "${TMPDIR:-/tmp}/qemu-guest.XXXXXX")
trap 'rm -f "$out"' EXIT INT TERM

disk=()
[ -z "$drive" ] || disk=(-drive "file=$drive,format=raw,if=none,id=d0"
	-device virtio-blk-pci,drive=d0,serial=qemu0)
start=$(date +%s%N)
timeout --foreground -k 5 "$timeout" \
	qemu-system-x86_64 -accel "$accel" -M pc -cpu "$cpu" -smp "$smp" -m "$mem" \
	-nographic -serial stdio -monitor none -no-reboot -nodefaults \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 "${disk[@]}" \
	-kernel "$guest" -append "$append" </dev/null 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
what="$append, accel=$accel, cpu=$cpu, smp=$smp, ${ms} ms, qemu status $status"

# A pass powers off through ACPI (status 0) or, where the PIIX4 PM block is
# not set up (multiboot under QEMU), reports through isa-debug-exit 0x10
# (status 33); a fail writes 0x11 (status 35).
if { [ "$status" = 0 ] || [ "$status" = 33 ]; } && grep -aq '^KRG-TEST PASS' "$out"; then
	echo "qemu-guest.sh: PASS ($what)"
	exit 0
fi
if grep -aq '^KRG-TEST FAIL' "$out"; then
	echo "qemu-guest.sh: FAIL ($what): $(grep -a -m1 '^KRG-TEST FAIL' "$out")"
	exit 1
fi
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
	echo "qemu-guest.sh: TIMEOUT after $timeout s ($what)"
	exit 124
fi
echo "qemu-guest.sh: FAIL ($what): no verdict line from the guest"
exit 1
