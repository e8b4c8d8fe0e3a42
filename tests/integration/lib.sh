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
