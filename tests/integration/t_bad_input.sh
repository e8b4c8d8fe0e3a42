#!/usr/bin/env bash
# Bad input: one clear line on stderr, exit status 2, no crash.  These fail
# before KVM is touched, so they run without /dev/kvm too.
source "$(dirname "$0")/lib.sh"

garbage=$WORK/garbage.bin
head -c 65536 /dev/urandom >"$garbage"
truncated=$WORK/truncated.bin
if [[ -s $GUEST ]]; then head -c 100 "$GUEST" >"$truncated"; else printf 'x' >"$truncated"; fi

check() {
	local what=$1 pattern=$2
	shift 2
	local log=$WORK/bad.log
	run_vmm "$log" 30 "$@"
	[[ $RC -eq 2 ]] || { cat "$log" >&2; fail "$what: exit status $RC, expected 2"; }
	[[ $(wc -l <"$log") -eq 1 ]] || { cat "$log" >&2; fail "$what: expected exactly one line on stderr"; }
	grep -Eq "^krg-vmm: .*($pattern)" "$log" || { cat "$log" >&2; fail "$what: message lacks /$pattern/"; }
	assert_no_sanitizer_report "$log"
	echo "  ok: $what -> $(cat "$log")"
}

check "missing kernel" "cannot open kernel" launch -kernel "$WORK/does-not-exist"
check "garbage kernel" "kernel" launch -kernel "$garbage"
check "truncated kernel" "kernel|multiboot|truncated" launch -kernel "$truncated"
check "-m 1" "too small" launch -m 1 -kernel "$garbage"
check "-smp 0" "smp|vCPU" launch -smp 0 -kernel "$garbage"
check "-smp 65" "64" launch -smp 65 -kernel "$garbage"
check "unknown option" "unknown option" launch -frobnicate
check "missing value" "needs a value" launch -m
check "bad -cpu feature" "feature|cpu" launch -cpu host,+nosuchfeature -kernel "$garbage"
check "unknown verb" "unknown|command" frobnicate
check "missing restore file" "cannot|No such" launch --restore "$WORK/nothing.state"
pass
