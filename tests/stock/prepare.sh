#!/bin/bash
# Fetch and build what the stock-kernel boot needs, into tests/stock/work/:
#   vmlinuz            Debian's stock kernel (bzImage), from the package that
#                      linux-image-amd64 currently depends on
#   vmlinux            its decompressed payload (ELF), for loaders that take it
#   kernel-config, kernel-version (uname -r), kernel-package (apt name=version)
#   (Debian's boot/System.map is a placeholder: the real one is in the -dbg
#   package, ~1 GB, not fetched)
#   initramfs.cpio     busybox (from Debian's busybox-static) + initramfs-init.sh
#   initramfs.cpio.gz  the same, gzip -9
# Nothing is installed on the host except missing build tools (as root only).
# Idempotent: what exists is kept. Environment:
#   KRG_STOCK_REFRESH=1     re-resolve packages in the archive and re-fetch if
#                           linux-image-amd64 / busybox-static moved
#   KRG_STOCK_KERNEL_PKG=P  use package P (e.g. linux-image-6.1.0-56-cloud-amd64)
#   KRG_STOCK_WORK=DIR      output directory instead of tests/stock/work
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

DEBS=$STOCK_WORK/debs
REFRESH=${KRG_STOCK_REFRESH:-0}
APT_OPTS=()
# As root apt would drop to _apt for the download and then warn that _apt
# cannot write into the work dir.
((EUID == 0)) && APT_OPTS=(-o APT::Sandbox::User=root)

# command:package of every host tool used here.
need_tools() {
	local t cmd pkg missing=()
	for t in apt-get:apt apt-cache:apt dpkg-deb:dpkg cpio:cpio gzip:gzip \
		xz:xz-utils tar:tar od:coreutils; do
		cmd=${t%%:*}
		pkg=${t#*:}
		command -v "$cmd" >/dev/null || missing+=("$pkg")
	done
	((${#missing[@]} == 0)) && return 0
	((EUID == 0)) || stock_die "missing tools; install: ${missing[*]}"
	stock_say "prepare: installing host tools: ${missing[*]}"
	apt-get install -y --no-install-recommends "${missing[@]}"
}

# The archive's candidate version of package $1, or nothing.
candidate() {
	apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }' |
		grep -v '^(none)$' || true
}

# The linux-image-<abi>-<flavour> package linux-image-amd64 depends on.
resolve_kernel_pkg() {
	local meta=linux-image-amd64 ver
	if [[ -n ${KRG_STOCK_KERNEL_PKG:-} ]]; then
		echo "$KRG_STOCK_KERNEL_PKG"
		return
	fi
	ver=$(candidate "$meta")
	[[ -n $ver ]] || stock_die "apt knows no $meta (apt-get update?)"
	apt-cache show "$meta=$ver" | awk -F': ' '/^Depends:/ && !done { print $2; done = 1 }' |
		tr ',' '\n' | sed -n 's/^ *\(linux-image-[^ ]*\).*/\1/p' | head -n 1
}

# download PKG VERSION: the .deb's path in $DEBS (fetched once).
download() {
	local pkg=$1 ver=$2 deb
	mkdir -p "$DEBS"
	# dpkg-deb names files with the epoch's ':' escaped as %3a.
	deb=$DEBS/${pkg}_${ver//:/%3a}_amd64.deb
	if [[ ! -s $deb ]]; then
		stock_say "prepare: downloading $pkg=$ver"
		if ! (cd "$DEBS" && apt-get "${APT_OPTS[@]}" -q download "$pkg=$ver" >&2); then
			# A stale package list points at files the mirror dropped.
			((EUID == 0)) || stock_die "apt-get download $pkg failed"
			apt-get -q update >&2
			(cd "$DEBS" && apt-get "${APT_OPTS[@]}" -q download "$pkg=$ver" >&2)
		fi
	fi
	[[ -s $deb ]] || stock_die "expected $deb after apt-get download"
	echo "$deb"
}

# The bzImage payload decompressed: the vmlinux ELF. Boot protocol fields:
# setup_sects at 0x1f1, payload_offset/payload_length at 0x248/0x24c; the
# payload ends with its decompressed size (le32), which xz must not read as
# the start of a second stream.
extract_vmlinux() {
	local bz=$1 out=$2 sects off len magic size
	sects=$(od -An -tu1 -j $((0x1f1)) -N 1 "$bz" | tr -d ' ')
	((sects == 0)) && sects=4
	read -r off len < <(od -An -tu4 -j $((0x248)) -N 8 "$bz")
	off=$(((sects + 1) * 512 + off))
	magic=$(od -An -tx1 -j "$off" -N 6 "$bz" | tr -d ' ')
	if [[ $magic != fd377a585a00 ]]; then
		stock_say "prepare: payload is not xz (magic $magic), no vmlinux"
		return 0
	fi
	size=$(od -An -tu4 -j $((off + len - 4)) -N 4 "$bz" | tr -d ' ')
	head -c $((off + len)) "$bz" | tail -c "$len" | xz -dc --single-stream >"$out.tmp"
	[[ $(od -An -tx1 -N 4 "$out.tmp" | tr -d ' ') == 7f454c46 ]] ||
		stock_die "decompressed payload of $bz is not an ELF"
	[[ $(wc -c <"$out.tmp") == "$size" ]] ||
		stock_die "vmlinux is $(wc -c <"$out.tmp") bytes, the bzImage says $size"
	mv "$out.tmp" "$out"
}

prepare_kernel() {
	local w=$STOCK_WORK pkg ver deb tmp vmlinuz
	if [[ -s $w/vmlinuz && -s $w/kernel-version && $REFRESH != 1 ]]; then
		stock_say "prepare: kernel $(cat "$w/kernel-version") already there"
	else
		pkg=$(resolve_kernel_pkg)
		[[ -n $pkg ]] || stock_die "cannot resolve the kernel package"
		ver=$(candidate "$pkg")
		[[ -n $ver ]] || stock_die "no candidate version for $pkg"
		if [[ -s $w/vmlinuz && "$(cat "$w/kernel-package" 2>/dev/null)" == "$pkg=$ver" ]]; then
			stock_say "prepare: kernel $pkg=$ver already there"
		else
			deb=$(download "$pkg" "$ver")
			tmp=$(mktemp -d "$w/kernel.XXXXXX")
			# Only boot/ is needed; dpkg-deb -x would also write ~400 MB of modules.
			dpkg-deb --fsys-tarfile "$deb" |
				tar -x -C "$tmp" --wildcards './boot/*'
			vmlinuz=$(find "$tmp/boot" -name 'vmlinuz-*' | head -n 1)
			[[ -n $vmlinuz ]] || stock_die "no boot/vmlinuz-* in $deb"
			cp "$vmlinuz" "$w/vmlinuz.tmp"
			local kver=${vmlinuz##*/vmlinuz-}
			cp "$tmp/boot/config-$kver" "$w/kernel-config" 2>/dev/null || true
			rm -rf "$tmp"
			rm -f "$w/vmlinux"
			mv "$w/vmlinuz.tmp" "$w/vmlinuz"
			echo "$kver" >"$w/kernel-version"
			echo "$pkg=$ver" >"$w/kernel-package"
			stock_say "prepare: kernel $kver from $pkg=$ver"
		fi
	fi
	if [[ ! -s $w/vmlinux || $w/vmlinuz -nt $w/vmlinux ]]; then
		extract_vmlinux "$w/vmlinuz" "$w/vmlinux"
	fi
}

prepare_busybox() {
	local w=$STOCK_WORK ver deb tmp
	if [[ -x $w/busybox && $REFRESH != 1 ]]; then
		return 0
	fi
	ver=$(candidate busybox-static)
	[[ -n $ver ]] || stock_die "apt knows no busybox-static"
	if [[ -x $w/busybox && "$(cat "$w/busybox-package" 2>/dev/null)" == "busybox-static=$ver" ]]; then
		return 0
	fi
	deb=$(download busybox-static "$ver")
	tmp=$(mktemp -d "$w/busybox.XXXXXX")
	dpkg-deb -x "$deb" "$tmp"
	[[ -x $tmp/bin/busybox ]] || stock_die "no bin/busybox in $deb"
	# A dynamic busybox would need a libc the initramfs does not carry.
	if command -v readelf >/dev/null &&
		readelf -l "$tmp/bin/busybox" | grep -q 'Requesting program interpreter'; then
		stock_die "busybox from $deb is not static"
	fi
	mv "$tmp/bin/busybox" "$w/busybox"
	# Its mtime comes from the package; the initramfs is rebuilt when it is newer.
	touch "$w/busybox"
	rm -rf "$tmp"
	echo "busybox-static=$ver" >"$w/busybox-package"
	stock_say "prepare: busybox-static=$ver"
}

prepare_initramfs() {
	local w=$STOCK_WORK init=$STOCK_DIR/initramfs-init.sh root d
	if [[ -s $w/initramfs.cpio.gz && -s $w/initramfs.cpio &&
		$w/initramfs.cpio.gz -nt $init && $w/initramfs.cpio.gz -nt $w/busybox &&
		$w/initramfs.cpio.gz -nt $STOCK_DIR/prepare.sh ]]; then
		stock_say "prepare: initramfs up to date"
		return 0
	fi
	root=$w/initramfs-root
	rm -rf "$root"
	for d in bin sbin usr/bin usr/sbin dev proc sys tmp root; do
		mkdir -p "$root/$d"
	done
	cp "$w/busybox" "$root/bin/busybox"
	# busybox runs applets without links only once /proc/self/exe exists, so
	# link what /init runs; the interactive shell installs the rest.
	for d in sh mount nproc poweroff setsid cttyhack sleep; do
		ln -s busybox "$root/bin/$d"
	done
	cp "$init" "$root/init"
	chmod 0755 "$root/init" "$root/bin/busybox"
	# The kernel opens /dev/console for init before anything can mount
	# devtmpfs; non-root builds go without and /init reopens it later.
	if ((EUID == 0)); then
		mknod -m 600 "$root/dev/console" c 5 1
		mknod -m 666 "$root/dev/null" c 1 3
	fi
	# Same inputs, same bytes.
	find "$root" -exec touch -h -d @0 {} +
	(cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --reproducible --quiet) >"$w/initramfs.cpio.tmp"
	gzip -9 -n -c "$w/initramfs.cpio.tmp" >"$w/initramfs.cpio.gz.tmp"
	rm -rf "$root"
	mv "$w/initramfs.cpio.tmp" "$w/initramfs.cpio"
	mv "$w/initramfs.cpio.gz.tmp" "$w/initramfs.cpio.gz"
	stock_say "prepare: initramfs.cpio.gz $(wc -c <"$w/initramfs.cpio.gz") bytes" \
		"($(wc -c <"$w/initramfs.cpio") uncompressed)"
}

main() {
	local t0=$EPOCHREALTIME
	need_tools
	mkdir -p "$STOCK_WORK"
	prepare_kernel
	prepare_busybox
	prepare_initramfs
	stock_say "prepare: done in $(stock_since "$t0") s: kernel $(cat "$STOCK_WORK/kernel-version")," \
		"$(du -sh "$STOCK_WORK" | cut -f1) in $STOCK_WORK"
}

main "$@"
