# shellcheck shell=bash disable=SC2034 # STOCK_ globals are read by the callers
# Helpers shared by the stock-kernel scripts (sourced, not run).
#
# Callers set -euo pipefail themselves. Globals are prefixed STOCK_.

STOCK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STOCK_ROOT=$(cd "$STOCK_DIR/../.." && pwd)
STOCK_WORK=${KRG_STOCK_WORK:-$STOCK_DIR/work}
STOCK_MEM_MIB=${KRG_STOCK_MEM:-512}
# MemTotal is RAM minus what the kernel keeps for itself (its image, memmap,
# reserved ranges): 512 MiB gives 457 MiB (89 %) under QEMU, so 85..100 % of -m.
STOCK_MEM_MIN_PCT=${KRG_STOCK_MEM_MIN_PCT:-85}

# Console lines the tests time, as name|extended regex, in boot order. With
# "quiet" the kernel prints only warnings and worse (and its power-off line),
# so mostly the /init markers show.
STOCK_MILESTONES=(
	"linux_version|\] Linux version |^Linux version "
	"memory|\] Memory: |^Memory: "
	"smp_up|smp: Brought up"
	"run_init|Run /init as init process"
	"shell_ready|KRG-STOCK: shell-ready"
	"power_down|reboot: Power down"
)

# Complaints of a kernel whose clock runs at wall speed while its code runs
# emulated, 10^4 times slower under PVM: reported, not failures.
STOCK_SLOW='soft lockup|rcu: INFO: .* stall|self-detected stall|blocked for more than|clocksource .* unstable|Marking clocksource'

# Console lines after which a guest will not finish by itself.
STOCK_FATAL='KRG-STOCK: poweroff-failed|Kernel panic - not syncing'

stock_say() {
	printf '%s\n' "$*" >&2
}

stock_die() {
	printf 'stock: %s\n' "$*" >&2
	exit 1
}

# stdin without CRs, terminal escape sequences (firmware clears the screen)
# and other control characters.
stock_clean() {
	tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1b[A-Za-z]//g' | tr -cd '[:print:]\t\n'
}

# Seconds since an $EPOCHREALTIME value, one decimal.
stock_since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

stock_need_artifacts() {
	local f
	for f in vmlinuz initramfs.cpio.gz kernel-version; do
		[[ -s $STOCK_WORK/$f ]] || return 1
	done
}

# stock_boot LABEL TIMEOUT_S POLL_S LOG CMD...
# Runs CMD with stdin from /dev/null and stdout+stderr into LOG, under timeout.
# Sets STOCK_RC (124 = timed out), STOCK_ELAPSED (s) and STOCK_SEEN
# ("name=seconds ..." for the milestones seen, to POLL_S precision). Every
# KRG_STOCK_HEARTBEAT seconds (default 60) prints how far the guest got.
stock_boot() {
	local label=$1 tmo=$2 poll=$3 log=$4
	shift 4
	local heartbeat=${KRG_STOCK_HEARTBEAT:-60}
	local t0=$EPOCHREALTIME next_beat=$heartbeat
	local -A seen=()
	local pid now m name pat last size fatal_at=""

	timeout -k 10 "$tmo" "$@" </dev/null >"$log" 2>&1 &
	pid=$!
	STOCK_SEEN=""
	while :; do
		local alive=1
		kill -0 "$pid" 2>/dev/null || alive=0
		now=$(stock_since "$t0")
		# Match every milestone against the same prefix of the growing log.
		size=$(wc -c <"$log")
		for m in "${STOCK_MILESTONES[@]}"; do
			name=${m%%|*}
			pat=${m#*|}
			if [[ -z ${seen[$name]:-} ]] && (($(head -c "$size" "$log" | grep -cE -- "$pat"))); then
				seen[$name]=$now
				STOCK_SEEN+="$name=${now}s "
			fi
		done
		((alive)) || break
		# A guest that panicked without rebooting or failed to power off
		# never ends by itself: give it a moment, then stop it.
		if [[ -z $fatal_at ]] && grep -qE -- "$STOCK_FATAL" "$log"; then
			fatal_at=${now%.*}
		fi
		if [[ -n $fatal_at ]] && ((${now%.*} >= fatal_at + 15)); then
			stock_say "  [$label] stopping: $(tr -d '\r' <"$log" | grep -m1 -oE -- "$STOCK_FATAL")"
			kill "$pid" 2>/dev/null || true
			fatal_at=999999999
		fi
		if ((${now%.*} >= next_beat)); then
			last=$(stock_clean <"$log" | { grep -v '^[[:space:]]*$' || true; } | tail -n 1 | cut -c1-100)
			stock_say "  [$label] ${now}s, log $(wc -c <"$log") bytes, last: ${last:-<nothing yet>}"
			next_beat=$((next_beat + heartbeat))
		fi
		sleep "$poll"
	done
	STOCK_RC=0
	wait "$pid" || STOCK_RC=$?
	STOCK_ELAPSED=$(stock_since "$t0")
	STOCK_SEEN=${STOCK_SEEN% }
}

# The value of the first "KRG-STOCK: KEY=value" line of LOG (CR stripped).
stock_marker() {
	# awk reads to the end: an early exit would SIGPIPE tr under pipefail.
	tr -d '\r' <"$1" | awk -v k="KRG-STOCK: $2=" \
		'!done && (i = index($0, k)) { print substr($0, i + length(k)); done = 1 }'
}

# stock_check LOG NCPUS MEM_MIB RC
# Prints one line per failed expectation and returns non-zero if any failed.
# RC is the VMM's exit status; QEMU exits 0 on a reboot too (-no-reboot), so
# the power-off is also asserted from the kernel's own line.
stock_check() {
	local log=$1 n=$2 mem_mib=$3 rc=$4
	local fail=0 v want lo hi

	if ((rc == 124)); then
		echo "FAIL: timed out"
		fail=1
	elif ((rc != 0)); then
		echo "FAIL: exit status $rc"
		fail=1
	fi
	grep -qF "Linux version" "$log" || { echo "FAIL: no 'Linux version'"; fail=1; }
	v=$(tr -d '\r' <"$log" | grep -E 'Kernel panic|BUG: |Oops: ' | grep -vE "$STOCK_SLOW" || true)
	if [[ -n $v ]]; then
		echo "FAIL: ${v%%$'\n'*}"
		fail=1
	fi

	want=$(cat "$STOCK_WORK/kernel-version" 2>/dev/null || true)
	v=$(stock_marker "$log" uname)
	if [[ -z $v ]]; then
		echo "FAIL: no uname marker"
		fail=1
	elif [[ -n $want && $v != "$want" ]]; then
		echo "FAIL: uname=$v, expected $want"
		fail=1
	fi

	v=$(stock_marker "$log" nproc)
	[[ $v == "$n" ]] || { echo "FAIL: nproc='$v', expected $n"; fail=1; }

	want="0"
	((n > 1)) && want="0-$((n - 1))"
	v=$(stock_marker "$log" online)
	[[ $v == "$want" ]] || { echo "FAIL: online='$v', expected $want"; fail=1; }

	v=$(stock_marker "$log" memtotal_kb)
	hi=$((mem_mib * 1024))
	lo=$((hi * STOCK_MEM_MIN_PCT / 100))
	if ! [[ $v =~ ^[0-9]+$ ]] || ((v < lo || v > hi)); then
		echo "FAIL: memtotal_kb='$v', expected $lo..$hi"
		fail=1
	fi

	grep -qF "KRG-STOCK: shell-ready" "$log" || { echo "FAIL: no shell-ready"; fail=1; }
	grep -qF "KRG-STOCK: poweroff-failed" "$log" && { echo "FAIL: poweroff -f returned"; fail=1; }
	grep -qF "reboot: Power down" "$log" || { echo "FAIL: no 'reboot: Power down'"; fail=1; }
	return "$fail"
}

# Kernel warnings in LOG, "count  first line" per kind, for summaries.
stock_warnings() {
	local pat skip
	for pat in "$STOCK_SLOW" 'WARNING: CPU: ' 'BUG: |Oops: |Kernel panic'; do
		# Soft lockups say "BUG:" too; count them once, as slowness.
		skip=$STOCK_SLOW
		[[ $pat != "$STOCK_SLOW" ]] || skip='^$'
		tr -d '\r' <"$1" | { grep -E -- "$pat" || true; } | { grep -vE -- "$skip" || true; } |
			awk -v OFS='  ' 'NR == 1 { first = $0 } END { if (NR) print NR, first }'
	done
}

# The marker lines of LOG, for summaries.
stock_markers() {
	tr -d '\r' <"$1" | grep -o 'KRG-STOCK: [a-z_]*=.*' | grep -v 'KRG-STOCK: banner=' || true
}

# stock_qemu N KERNEL LOG: boot KERNEL (vmlinuz, or vmlinux through QEMU's PVH
# entry, which skips the in-guest decompressor) with the initramfs under QEMU
# TCG; sets what stock_boot sets. No NIC: its option ROM only costs time.
stock_qemu() {
	local n=$1 kernel=$2 log=$3
	stock_boot "qemu-tcg smp$n" "${KRG_QEMU_TIMEOUT:-300}" 0.2 "$log" \
		qemu-system-x86_64 -accel tcg -M pc -m "$STOCK_MEM_MIB" -smp "$n" \
		-nographic -serial stdio -monitor none -no-reboot -nic none \
		-kernel "$kernel" -initrd "$STOCK_WORK/initramfs.cpio.gz" \
		-append "${KRG_QEMU_APPEND:-console=ttyS0 panic=-1 krg.autotest=1}"
}

# stock_verdict LOG NCPUS: runs stock_check on the last stock_boot; sets
# STOCK_VERDICT (PASS/FAIL) and STOCK_FAILS (the failure lines).
stock_verdict() {
	if STOCK_FAILS=$(stock_check "$1" "$2" "$STOCK_MEM_MIB" "$STOCK_RC"); then
		STOCK_VERDICT=PASS
	else
		STOCK_VERDICT=FAIL
	fi
}

# The markers of LOG on one line: "uname=... nproc=... ...".
stock_marker_line() {
	stock_markers "$1" | sed 's/^KRG-STOCK: //' | paste -sd ' ' -
}
