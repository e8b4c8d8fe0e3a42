#!/usr/bin/env bash
# Installs what krg-vmm needs to build, test and run, from Debian's archive.
# Used by `make deps` (and so by `make run` / `make check`) and by CI.
set -euo pipefail

packages=(
	# build
	build-essential pkg-config
	# unit tests
	check libsubunit-dev
	# libFuzzer targets (make fuzz / check-fuzz)
	clang libclang-rt-14-dev
	# x86 decoder for the emulation fallback
	libzydis-dev
	# the distro kernel compressions, decompressed on the host
	liblzma-dev libzstd-dev zlib1g-dev liblz4-dev libbz2-dev
	# cluster transport: peer authentication (libsodium), CRC32C (ISA-L)
	libsodium-dev libisal-dev libjansson-dev
	# guest material (busybox initramfs) and the QEMU cross-check/baseline
	cpio busybox-static qemu-system-x86 qemu-utils seabios
	# network namespaces for the two-host cluster test
	iproute2
	# storage/: raw images (io_uring), other formats through
	# qemu-storage-daemon (qemu-system-common) and NBD (libnbd)
	liburing-dev libnbd-dev qemu-system-common
	# -kernel drive:/PATH: files read from an image's ext2/3/4 filesystem
	# (libext2fs); the test disks are made with mke2fs -d and sfdisk
	libext2fs-dev e2fsprogs fdisk
	# guest networking: user-mode network stack (vmm/devices/netdev_slirp.c)
	libslirp-dev
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "krg-vmm: missing packages: ${missing[*]} (run as root, or apt-get install them)" >&2
	exit 1
fi
echo "krg-vmm: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
