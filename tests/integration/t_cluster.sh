#!/usr/bin/env bash
# One guest across several krg-vmm processes (nodes) joined by TCP:
#  - the test guest's test=all (INIT/SIPI to vCPUs on other nodes, IPIs in
#    every destination mode, LAPIC timers, user-mode work in RAM homed all
#    over the cluster) on 2 and 4 nodes on loopback, one vCPU each;
#  - the coherence workloads across 2 nodes (lock-prefixed increments, a
#    spinlock around a plain counter, message passing, store buffering
#    with MFENCE, false sharing) and page tables changed across nodes
#    (with and, on PVM, without dropping KVM's shadow page tables);
#  - a node killed mid-run: the others stop within 10 s, naming it;
#  - garbage sent to a node's port: refused, the guest runs on;
#  - 2 nodes in two network namespaces joined by a veth pair, the second
#    started by "krg-vmm agent" (needs ip netns; skipped by name if not).
# CLUSTER_ITERS (default 100000) sets the coherence iterations; the long
# run (make check-cluster-long) uses 1000000.
source "$(dirname "$0")/lib.sh"
need_kvm
need_guest
iters=${CLUSTER_ITERS:-100000}

# all_on N : test=all with N nodes x 1 vCPU.
all_on() {
	local n=$1 log=$WORK/all-$1.log t0
	t0=$(now_ms)
	run_vmm "$log" 300 launch --local-nodes "$n" -smp "$n" -m 128 \
		-kernel "$GUEST" -append "test=all timeout=240"
	assert_no_sanitizer_report "$log"
	assert_rc 0 "$log"
	assert_log "^krg-vmm: cluster of $n nodes up:" "$log"
	if [[ -d /sys/module/kvm_pvm ]]; then
		assert_log "^krg-vmm: cluster VM: KVM uses PVM \(kvm_pvm\): its shadow page tables are dropped whenever a node gives up pages" "$log"
	fi
	assert_log '^KRG-TEST PASS all$' "$log"
	assert_log "^krg-test: smp: all $n cpus up after" "$log"
	assert_log "^krg-test: smp: all $n cpus computed correct results$" "$log"
	assert_log "^krg-test: ipi: all-including-self: ok, $((n * n)) IPIs counted exactly$" "$log"
	assert_log '^krg-test: timer: ok' "$log"
	for ((c = 1; c < n; c++)); do
		assert_log "^krg-vmm: node $c: guest powered off" "$log"
	done
	echo "  ok: test=all on $n nodes ($(($(now_ms) - t0)) ms)"
}

all_on 2
all_on 4

# Coherence across 2 nodes, pattern by pattern (store buffering moves
# pages every round: fewer rounds).
for p in atomic spinlock mp falseshare sb; do
	log=$WORK/coh-$p.log
	it=$iters
	[[ $p == sb ]] && it=$((iters / 20))
	t0=$(now_ms)
	run_vmm "$log" 900 launch --local-nodes 2 -smp 2 -m 128 -kernel "$GUEST" \
		-append "test=coh-$p iters=$it timeout=800"
	assert_no_sanitizer_report "$log"
	assert_rc 0 "$log"
	assert_log "^KRG-TEST PASS coh-$p$" "$log"
	assert_log "^krg-test: coherence: $p: ok, 2 cpus x $it iterations" "$log"
	echo "  ok: coherence $p across 2 nodes, $it iterations ($(($(now_ms) - t0)) ms)"
done

# Page tables across nodes: a PTE/PDE changed on one node is seen on the
# other after its TLB flush.  On a shadow-paging host (PVM) that needs the
# DSM's shadow-page drop; without it the same run must fail.
log=$WORK/coh-pt.log
t0=$(now_ms)
run_vmm "$log" 300 launch --local-nodes 2 -smp 2 -m 128 -kernel "$GUEST" \
	-append "test=coh-pt iters=2000 timeout=240"
assert_no_sanitizer_report "$log"
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS coh-pt$' "$log"
assert_log '^krg-test: coherence: pt: ok, cpus 0 and 1 x 2000 rounds, 1000 PDE and 1000 PTE changes seen after a TLB flush$' "$log"
echo "  ok: coherence pt across 2 nodes, 2000 rounds ($(($(now_ms) - t0)) ms)"
if [[ -d /sys/module/kvm_pvm ]]; then
	log=$WORK/coh-pt-noflush.log
	run_vmm "$log" 120 launch --local-nodes 2 -smp 2 -m 128 \
		--dsm-shadow-flush off -kernel "$GUEST" -append "test=coh-pt timeout=60"
	assert_log '^krg-vmm: warning: KVM uses shadow paging here \(PVM \(kvm_pvm\)\) and --dsm-shadow-flush is off' "$log"
	assert_log '^KRG-TEST FAIL coh-pt: coherence: pt: round [0-9]+: cpu [01] still reads data page' "$log"
	echo "  ok: without the shadow-page drop the same test fails on this PVM host"
fi

# A node dies: the others stop, non-zero, naming it, within 10 s.
log=$WORK/kill.log
start_vmm "$log" launch --local-nodes 3 -smp 3 -m 128 -kernel "$GUEST" \
	-append "test=coh-atomic iters=100000000 timeout=600"
wait_log '^krg-test: smp: all 3 cpus up' "$log" 60
# Only this test's processes: other clusters may run on the machine.
nodes_of() { pgrep -P "$1" -f -- "--node-id" || true; }
victim=$(pgrep -P "$VMM_PID" -f -- "--node-id 2 --nodes" || true)
[[ -n $victim ]] || fail "node 2's process not found"
others=$(nodes_of "$VMM_PID")
t0=$(now_ms)
kill -9 $victim
for ((i = 0; i < 100; i++)); do
	kill -0 "$VMM_PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$VMM_PID" 2>/dev/null && fail "node 0 still runs 10 s after node 2 died"
RC=0
wait "$VMM_PID" || RC=$?
dt=$(($(now_ms) - t0))
assert_rc 1 "$log"
assert_log '^krg-vmm: node 2 stopped answering' "$log"
assert_log '^krg-vmm: node 1: node 2 stopped answering' "$log"
sleep 1
for p in $others; do
	kill -0 "$p" 2>/dev/null && fail "node process $p outlived the cluster"
done
echo "  ok: node 2 killed: the others stopped in $dt ms naming it"

# Garbage at a node's port: refused and logged, the guest finishes.
log=$WORK/garbage.log
start_vmm "$log" launch --local-nodes 2 -smp 2 -m 128 -kernel "$GUEST" \
	-append "test=coh-atomic iters=$((iters * 20)) timeout=600"
wait_log '^krg-test: smp: all 2 cpus up' "$log" 60
port=$(sed -n 's/^krg-vmm: cluster of 2 nodes up:.* node 1 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
[[ -n $port ]] || fail "node 1's port not in the log"
head -c 4096 /dev/urandom >"/dev/tcp/127.0.0.1/$port" 2>/dev/null || true
printf 'KRGN\001\000\040\000garbage-with-a-plausible-magic' >"/dev/tcp/127.0.0.1/$port" 2>/dev/null || true
RC=0
wait "$VMM_PID" || RC=$?
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS coh-atomic$' "$log"
assert_log 'krg-vmm: net: node 1: .*127\.0\.0\.1' "$log"
echo "  ok: garbage to node 1's port refused ($(grep -c 'krg-vmm: net: node 1:' "$log") log lines), the guest passed"

# A guest reset (port 0xcf9) with --on-reset reboot restarts every node;
# SIGTERM to node 0 then ends them all with status 0.
log=$WORK/reset.log
start_vmm "$log" launch --local-nodes 2 -smp 2 -m 128 -kernel "$GUEST" \
	-append "test=reset reset_delay=1000" --on-reset reboot
wait_log '^krg-test: reset: in 1000 ms' "$log" 60 2
others=$(nodes_of "$VMM_PID")
kill -TERM "$VMM_PID"
RC=0
wait "$VMM_PID" || RC=$?
assert_rc 0 "$log"
[[ $(grep -c '^krg-test: cpu 1 up$' "$log") -ge 2 ]] || fail "vCPU 1 (node 1) did not come up again after the reset"
assert_log '^krg-vmm: rebooting the cluster VM$' "$log"
sleep 1
for p in $others; do
	kill -0 "$p" 2>/dev/null && fail "node process $p outlived the cluster"
done
echo "  ok: reset with reboot restarts both nodes (vCPU 1 up again); SIGTERM -> exit 0"

# Two network namespaces, a veth pair, an agent in the second one.
if ! ip netns add krg-t0-$$ 2>/dev/null; then
	echo "  SKIP t_cluster/netns: cannot create network namespaces here"
	pass "test=all on 2 and 4 nodes; coherence across 2 nodes; node death; garbage"
fi
nsa=krg-t0-$$ nsb=krg-t1-$$
cleanup_ns() {
	[[ -n ${agent:-} ]] && kill "$agent" 2>/dev/null
	ip netns del "$nsa" 2>/dev/null
	ip netns del "$nsb" 2>/dev/null
}
trap cleanup_ns EXIT
ip netns add "$nsb"
ip link add krgv0-$$ type veth peer name krgv1-$$
ip link set krgv0-$$ netns "$nsa"
ip link set krgv1-$$ netns "$nsb"
ip -n "$nsa" addr add 10.77.0.1/24 dev krgv0-$$
ip -n "$nsb" addr add 10.77.0.2/24 dev krgv1-$$
ip -n "$nsa" link set krgv0-$$ up
ip -n "$nsb" link set krgv1-$$ up
ip -n "$nsa" link set lo up
ip -n "$nsb" link set lo up
key=$WORK/cluster.key
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$key"
chmod 600 "$key"
ip netns exec "$nsb" "$VMM" agent --listen 10.77.0.2:7700 --cluster-key "$key" \
	>"$WORK/agent.log" 2>&1 &
agent=$!
for ((i = 0; i < 50; i++)); do
	grep -q "listening" "$WORK/agent.log" && break
	sleep 0.1
done
# A launcher with another key is refused and logged by the agent.
badkey=$WORK/bad.key
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$badkey"
chmod 600 "$badkey"
log=$WORK/netns-badkey.log
RC=0
timeout 60 ip netns exec "$nsa" "$VMM" launch --nodes local,10.77.0.2:7700 \
	--cluster-key "$badkey" -smp 2 -m 128 -kernel "$GUEST" -append "test=smp" \
	</dev/null >"$log" 2>&1 || RC=$?
[[ $RC -ne 0 ]] || fail "a launcher with the wrong key was accepted"
grep -q "krg-vmm agent: refused 10.77.0.1" "$WORK/agent.log" ||
	fail "the agent did not log the refused launcher"
log=$WORK/netns.log
t0=$(now_ms)
RC=0
timeout 300 ip netns exec "$nsa" "$VMM" launch --nodes local,10.77.0.2:7700 \
	--cluster-key "$key" -smp 2 -m 128 -kernel "$GUEST" \
	-append "test=all timeout=240" </dev/null >"$log" 2>&1 || RC=$?
assert_no_sanitizer_report "$log"
assert_rc 0 "$log"
assert_log '^krg-vmm: cluster of 2 nodes up:.* node 1 10\.77\.0\.2:' "$log"
assert_log '^KRG-TEST PASS all$' "$log"
assert_log '^krg-test: smp: all 2 cpus computed correct results$' "$log"
grep -q "starting node 1 of cluster" "$WORK/agent.log" || fail "the agent did not start node 1"
echo "  ok: test=all on 2 nodes in two network namespaces over veth, node 1 started by an agent ($(($(now_ms) - t0)) ms)"
pass "test=all on 2 and 4 nodes; coherence across 2 nodes; node death; garbage; netns + agent"
