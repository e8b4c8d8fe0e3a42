# shellcheck shell=bash
# Helpers for the integration tests (sourced by each t_*.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VMM=${KRG_VMM:-$ROOT/krg-vmm}
GUEST=${KRG_TEST_GUEST:-$ROOT/build/guest/krg-test-guest}
WORK=${KRG_TEST_WORK:-$(mktemp -d /tmp/krg-it.XXXXXX)}
TEST_NAME=$(basename "$0" .sh)
# ASan: leaks are reported by the unit tests; here the process exit paths
# matter, and abort on error makes a sanitizer report a test failure.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

fail() {
	echo "FAIL $TEST_NAME: $*" >&2
	exit 1
}

skip() {
	echo "SKIP $TEST_NAME: $*"
	exit 77
}

pass() {
	echo "PASS $TEST_NAME${1:+: $1}"
	exit 0
}

need_kvm() {
	[[ -r /dev/kvm && -w /dev/kvm ]] || skip "needs /dev/kvm (not accessible here)"
}

need_guest() {
	[[ -s $GUEST ]] || fail "test guest $GUEST is missing (make guest)"
}

# run_vmm LOG TIMEOUT ARGS... : runs krg-vmm, stdin closed, output in LOG;
# sets RC (124 if it timed out).
run_vmm() {
	local log=$1 tmo=$2
	shift 2
	RC=0
	timeout --kill-after=10 "$tmo" "$VMM" "$@" </dev/null >"$log" 2>&1 || RC=$?
}

assert_rc() {
	local want=$1 log=$2
	[[ $RC -eq $want ]] || {
		tail -n 40 "$log" >&2
		fail "exit status $RC, expected $want"
	}
}

assert_log() {
	local pattern=$1 log=$2
	grep -Eq -- "$pattern" "$log" || {
		tail -n 40 "$log" >&2
		fail "output lacks /$pattern/"
	}
}

refute_log() {
	local pattern=$1 log=$2
	if grep -Eq -- "$pattern" "$log"; then
		grep -E -- "$pattern" "$log" | head -5 >&2
		fail "output has /$pattern/"
	fi
}

# Sanitizer reports mean a crash we must not have, whatever the status.
assert_no_sanitizer_report() {
	refute_log 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' "$1"
}

# On exit: no krg-vmm started by start_vmm outlives the test (only this
# shell's own background jobs are killed), and a work directory we
# created (state files are as large as guest RAM) goes away.
lib_cleanup() {
	local pid
	for pid in $(jobs -p); do
		kill_quietly "$pid"
	done
	[[ -n ${KRG_TEST_WORK:-} ]] || rm -rf "$WORK"
}
trap lib_cleanup EXIT

# SIGKILL without bash's "Killed" job report.
kill_quietly() {
	{ kill -KILL "$1" && wait "$1"; } 2>/dev/null || true
}

is_pvm() {
	[[ -d /sys/module/kvm_pvm ]]
}

# now_ms: monotonic enough for durations of a few seconds.
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# assert_refused WHAT PATTERN STATUS ARGS... : krg-vmm ARGS must refuse
# bad input the way users are promised: exit status STATUS, exactly one
# line /^krg-vmm: .*(PATTERN)/, no sanitizer report, within 15 s.
assert_refused() {
	local what=$1 pattern=$2 want=$3
	shift 3
	local log=$WORK/bad.log t0 ms
	t0=$(now_ms)
	run_vmm "$log" 30 "$@"
	ms=$(($(now_ms) - t0))
	assert_no_sanitizer_report "$log"
	[[ $RC -eq $want ]] || { cat "$log" >&2; fail "$what: exit status $RC, expected $want"; }
	[[ $(wc -l <"$log") -eq 1 ]] || { cat "$log" >&2; fail "$what: expected exactly one line"; }
	grep -Eq "^krg-vmm: .*($pattern)" "$log" || { cat "$log" >&2; fail "$what: message lacks /$pattern/"; }
	[[ $ms -lt 15000 ]] || fail "$what: took $ms ms"
	echo "  ok: $what -> $(cat "$log") ($ms ms)"
}

# start_vmm LOG ARGS... : krg-vmm in the background, stdin closed, output
# in LOG; sets VMM_PID.  Killed at exit if still running.
start_vmm() {
	local log=$1
	shift
	: >"$log"	# exists before wait_log first looks at it
	"$VMM" "$@" </dev/null >>"$log" 2>&1 &
	VMM_PID=$!
}

# wait_log PATTERN LOG SECS [COUNT] : until LOG has COUNT (default 1)
# lines matching PATTERN; fails if krg-vmm exits first or SECS pass.
# Polls every WAIT_POLL seconds (default 0.05).
wait_log() {
	local pattern=$1 log=$2 secs=$3 count=${4:-1} end n
	end=$(($(now_ms) + secs * 1000))
	while :; do
		n=$(grep -Ec -- "$pattern" "$log" || true)
		[[ $n -ge $count ]] && return 0
		if ! kill -0 "$VMM_PID" 2>/dev/null; then
			tail -n 40 "$log" >&2
			fail "krg-vmm exited before printing /$pattern/ $count times (seen $n)"
		fi
		if [[ $(now_ms) -gt $end ]]; then
			tail -n 40 "$log" >&2
			fail "/$pattern/ seen $n of $count times within $secs s"
		fi
		sleep "${WAIT_POLL:-0.05}"
	done
}

# stop_vmm SIGNAL SECS : sends SIGNAL to the background krg-vmm and waits
# at most SECS for it to exit (else SIGKILL and fail); sets RC and
# STOP_MS (signal to exit).
stop_vmm() {
	local sig=$1 secs=$2 t0
	t0=$(now_ms)
	kill -"$sig" "$VMM_PID"
	while kill -0 "$VMM_PID" 2>/dev/null; do
		if [[ $(($(now_ms) - t0)) -gt $((secs * 1000)) ]]; then
			kill_quietly "$VMM_PID"
			fail "krg-vmm still running $secs s after SIG$sig"
		fi
		sleep 0.02
	done
	# shellcheck disable=SC2034 # read by the tests
	STOP_MS=$(($(now_ms) - t0))
	RC=0
	wait "$VMM_PID" || RC=$?
}

# The guest's per-CPU digest lines (test=work), sorted by CPU.
work_digests() {
	grep -E '^krg-test: work: cpu [0-9]+ digest 0x[0-9a-f]{16}$' "$1" | sort -t' ' -k4,4n || true
}

# blk_check_image FILE MIB LOG: the raw image FILE holds exactly what the
# guest's test=blk (blkmib=MIB) says in LOG it wrote, zeros elsewhere
# (blk_image_check.py).
blk_check_image() {
	python3 "$ROOT/tests/integration/blk_image_check.py" "$1" "$2" "$3" ||
		fail "host-side image check failed ($1)"
}

# node_blk LOG NODE FIELD: a number from node NODE's virtio-blk --stats line
# ("requests served here", "doorbells here", "flushes sent", ...).
node_blk() {
	awk -v node="$2" -v field="$3" '
		/^node [0-9]+ \(/ { cur = $2 }
		cur == node && /^  virtio-blk:/ {
			i = index($0, field " ")
			if (i) { s = substr($0, i + length(field) + 1); print s + 0; exit }
		}' "$1"
}
