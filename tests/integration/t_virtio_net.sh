#!/usr/bin/env bash
# virtio-net on the user-mode network and virtio-rng, with the test
# guest's own drivers (test=net, test=rng).  A host service
# (net_peer.py) answers UDP and TCP on 127.0.0.1, which the guest reaches
# as 10.0.2.2; then the host connects to the guest through a hostfwd
# rule.  Both sides check every byte and the host's log is checked here.
# Also: -netdev/-device spelling with a MAC, the traffic from the vCPU on
# node 1 of two, a save in the middle and a restore that goes on talking,
# and bad options ending in one clear line.
source "$(dirname "$0")/lib.sh"
need_kvm
need_guest
command -v python3 >/dev/null || skip "needs python3 for the host service"

PEER=$ROOT/tests/integration/net_peer.py
BYTES=65536
PEER_LOG=$WORK/peer.log

rm -f "$WORK/ports"
python3 "$PEER" serve "$WORK/ports" "$PEER_LOG" 600 &
for _ in $(seq 100); do [[ -s $WORK/ports ]] && break; sleep 0.05; done
[[ -s $WORK/ports ]] || fail "the host service did not start"
UDP=$(sed -E 's/.*udp=([0-9]+).*/\1/' "$WORK/ports")
TCP=$(sed -E 's/.*tcp=([0-9]+).*/\1/' "$WORK/ports")

# wait_vmm SECS: until the background krg-vmm exits; sets RC.
wait_vmm() {
	local end=$(($(now_ms) + $1 * 1000))
	while kill -0 "$VMM_PID" 2>/dev/null; do
		if [[ $(now_ms) -gt $end ]]; then
			kill_quietly "$VMM_PID"
			fail "krg-vmm still running after $1 s"
		fi
		sleep 0.05
	done
	RC=0
	wait "$VMM_PID" || RC=$?
}

# host_connects LOG HPORT: once the guest listens, the host's side of the
# hostfwd exchange; its nonce must show in the guest's log.
host_connects() {
	local log=$1 hport=$2 hnonce="h$RANDOM$RANDOM"
	wait_log '^krg-test: net: tcp: listening on 10.0.2.15:8080' "$log" 90
	python3 "$PEER" client "$hport" "$BYTES" "$hnonce" "$PEER_LOG" 40 ||
		{ tail -n 20 "$log" >&2; fail "hostfwd exchange failed: $(tail -n 1 "$PEER_LOG")"; }
	HNONCE=$hnonce
}

# check_net LOG: the guest passed, and the host saw what it said it sent.
check_net() {
	local log=$1 nonce crc
	assert_no_sanitizer_report "$log"
	assert_rc 0 "$log"
	assert_log '^KRG-TEST PASS net$' "$log"
	assert_log '^krg-test: net: arp: 10\.0\.2\.2 is at 52:55:0a:00:02:02' "$log"
	assert_log '^krg-test: net: icmp: echo reply from 10\.0\.2\.2' "$log"
	assert_log "^krg-test: net: udp: 3 datagrams echoed by 10\.0\.2\.2:$UDP" "$log"
	assert_log "^krg-test: net: tcp: the host sent $BYTES bytes \(\"KRG-HOST-HELLO $BYTES $HNONCE\"\), answered with $BYTES bytes, closed" "$log"
	nonce=$(sed -nE 's/^krg-test: net: traffic from cpu [0-9]+, nonce ([0-9a-f]+)$/\1/p' "$log")
	crc=$(sed -nE 's/^krg-test: net: tcp: sent [0-9]+ bytes \(crc32 ([0-9a-f]+),.*/\1/p' "$log")
	[[ -n $nonce && -n $crc ]] || fail "no nonce or crc line in $log"
	for seq in 1 2 3; do
		assert_log "^udp from=127\.0\.0\.1:[0-9]+ KRG-UDP-PING $seq $nonce$" "$PEER_LOG"
	done
	assert_log "^tcp hello nonce=$nonce bytes=$BYTES crc=$crc pattern=ok$" "$PEER_LOG"
	assert_log "^hostfwd reply KRG-GUEST-REPLY $BYTES [0-9a-f]{8} bytes=$BYTES pattern=ok$" "$PEER_LOG"
}

# guest_net LOG SECS APPEND NICARGS...: test=net with every part.
guest_net() {
	local log=$1 tmo=$2 append=$3 hport
	shift 3
	hport=$(python3 "$PEER" freeport)
	start_vmm "$log" launch -m 128 -kernel "$GUEST" "${@//HPORT/$hport}" \
		-append "test=net timeout=$((tmo - 10)) udpport=$UDP tcpport=$TCP fwdport=8080 netbytes=$BYTES $append"
	host_connects "$log" "$hport"
	wait_vmm "$tmo"
	check_net "$log"
}

# 1. -nic user with hostfwd, 1 vCPU.
t0=$(now_ms)
guest_net "$WORK/user.log" 60 "" -nic "user,hostfwd=tcp:127.0.0.1:HPORT-:8080"
assert_log '^krg-test: net: mac 52:54:00:12:34:56, link up' "$WORK/user.log"
echo "  ok: -nic user: ARP, ICMP, UDP, TCP out and in through hostfwd ($(($(now_ms) - t0)) ms)"
grep -E '^krg-test: net: (tcp: sent|done)' "$WORK/user.log" | sed 's/^/    /'

# 1b. the reference: the same guest under QEMU TCG (modern-only devices,
# as krg-vmm's); PASS is exit status 33 through isa-debug-exit there.  A
# loaded host can spoil the guest's TSC calibration under TCG: that run
# is repeated (twice at most), anything else fails.
qemu_net() {
	local log=$1 hport
	hport=$(python3 "$PEER" freeport)
	: >"$log"
	qemu-system-x86_64 -accel tcg -M pc -m 128 -nographic -no-reboot \
		-kernel "$GUEST" -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$hport-:8080" \
		-device virtio-net-pci,netdev=n0,disable-legacy=on,romfile= \
		-append "test=net timeout=80 udpport=$UDP tcpport=$TCP fwdport=8080 netbytes=$BYTES" \
		</dev/null >>"$log" 2>&1 &
	VMM_PID=$!
	wait_log 'tcp: listening on 10.0.2.15:8080|tsc calibration' "$log" 90
	if grep -q 'tsc calibration' "$log"; then
		wait_vmm 30
		return 1
	fi
	host_connects "$log" "$hport"
	wait_vmm 90
	[[ $RC -eq 33 ]] || { tail -n 20 "$log" >&2; fail "QEMU: exit status $RC, expected 33 (PASS)"; }
	RC=0
	check_net "$log"
}
if command -v qemu-system-x86_64 >/dev/null; then
	if qemu_net "$WORK/qemu.log" || qemu_net "$WORK/qemu.log" || qemu_net "$WORK/qemu.log"; then
		echo "  ok: the same test=net under QEMU TCG (the reference)"
	else
		echo "  skipped: QEMU cross-check ($(grep -m1 'tsc calibration' "$WORK/qemu.log"))"
	fi
else
	echo "  skipped: QEMU cross-check (no qemu-system-x86_64)"
fi

# 1c. the guest loses every 7th TCP segment it receives and every 7th it
# sends: retransmission on both sides (slirp's and the guest's TCP) must
# make up for it.  Usually ~5 s; slirp's backoff can stretch it.
log=$WORK/loss.log
t0=$(now_ms)
run_vmm "$log" 130 launch -m 128 -kernel "$GUEST" -nic user \
	-append "test=net timeout=120 tcpport=$TCP netloss=7 netbytes=16384"
assert_no_sanitizer_report "$log"
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS net$' "$log"
assert_log '^krg-test: net: tcp: sent 16384 bytes .* [1-9][0-9]* retransmissions\)$' "$log"
assert_log '[1-9][0-9]* out of order, [1-9][0-9]* lost on purpose' "$log"
echo "  ok: 1 in 7 TCP segments lost each way, made up for ($(($(now_ms) - t0)) ms)"

# 2. -netdev + -device, a MAC of our own, and virtio-rng beside it.
guest_net "$WORK/netdev.log" 60 "" -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:HPORT-:8080" \
	-device virtio-net-pci,netdev=n0,mac=52:54:00:ab:cd:ef -device virtio-rng-pci
assert_log '^krg-test: net: mac 52:54:00:ab:cd:ef, link up' "$WORK/netdev.log"
echo "  ok: -netdev user,id=n0 -device virtio-net-pci,netdev=n0,mac=..."

# 3. two nodes: the traffic from vCPU 1 on node 1 (MMIO forwarded to node
# 0, the device and slirp there, MSI-X not used: the driver polls).
t0=$(now_ms)
guest_net "$WORK/nodes.log" 120 "netcpu=1" --local-nodes 2 -smp 2 \
	-nic "user,hostfwd=tcp:127.0.0.1:HPORT-:8080"
assert_log '^krg-vmm: cluster of 2 nodes up:' "$WORK/nodes.log"
assert_log '^krg-test: net: traffic from cpu 1,' "$WORK/nodes.log"
echo "  ok: 2 nodes, traffic from the vCPU on node 1 ($(($(now_ms) - t0)) ms)"

# 4. test=rng.
log=$WORK/rng.log
run_vmm "$log" 60 launch -m 128 -kernel "$GUEST" -device virtio-rng-pci -append "test=rng timeout=50"
assert_no_sanitizer_report "$log"
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS rng$' "$log"
assert_log '^krg-test: rng: 4 requests filled' "$log"
assert_log '^krg-test: rng: 4096 bytes: [0-9]+ distinct byte values' "$log"
echo "  ok: virtio-rng: $(sed -nE 's/^krg-test: rng: 4096 bytes: //p' "$log")"

# 5. saved while the guest listens (rings set up, receive buffers posted),
# restored into a fresh krg-vmm with a new slirp: the host's connection
# must get through (slirp has to ARP for the guest first).
state=$WORK/net.state
log=$WORK/save.log
run_vmm "$log" 60 launch -m 128 -kernel "$GUEST" -nic user -device virtio-rng-pci \
	-append "test=net timeout=120 fwdport=8080 netbytes=$BYTES" \
	--save-after 4000 --save-to "$state"
assert_no_sanitizer_report "$log"
assert_rc 0 "$log"
assert_log '^krg-test: net: tcp: listening on 10.0.2.15:8080' "$log"
hport=$(python3 "$PEER" freeport)
log=$WORK/restore.log
start_vmm "$log" launch -m 128 -nic "user,hostfwd=tcp:127.0.0.1:$hport-:8080" \
	-device virtio-rng-pci --restore "$state"
sleep 0.5
HNONCE="r$RANDOM"
python3 "$PEER" client "$hport" "$BYTES" "$HNONCE" "$PEER_LOG" 40 ||
	{ tail -n 20 "$log" >&2; fail "after restore: hostfwd exchange failed: $(tail -n 1 "$PEER_LOG")"; }
wait_vmm 60
assert_no_sanitizer_report "$log"
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS net$' "$log"
assert_log "KRG-HOST-HELLO $BYTES $HNONCE" "$log"
assert_log '[1-9][0-9]* ARP requests answered' "$log"
refute_log 'krg-test-guest starting' "$log"
echo "  ok: saved while listening, restored: the host's connection got through"
run_vmm "$WORK/restore-bad.log" 30 launch -m 128 -nic user --restore "$state"
[[ $RC -ne 0 ]] && grep -q 'virtio-rng' "$WORK/restore-bad.log" ||
	fail "restore without the saved virtio-rng-pci: status $RC, $(cat "$WORK/restore-bad.log")"
echo "  ok: restore without the saved virtio-rng device refused: $(tail -n 1 "$WORK/restore-bad.log")"

# 6. a tap device, in a network namespace of our own: the namespace's
# kernel is the peer (10.0.2.2 on the tap), and connects to the guest
# directly.  Skipped where namespaces or tap devices cannot be made.
NS=krg-vnet-$$
if ip netns add "$NS" 2>/dev/null; then
	trap 'lib_cleanup; ip netns del "$NS" 2>/dev/null || true' EXIT
	if ip netns exec "$NS" sh -c 'ip link set lo up &&
		ip tuntap add dev ktap0 mode tap &&
		ip addr add 10.0.2.2/24 dev ktap0 && ip link set ktap0 up' 2>"$WORK/tap.err"; then
		rm -f "$WORK/tports"
		ip netns exec "$NS" python3 "$PEER" serve "$WORK/tports" "$WORK/tpeer.log" 120 10.0.2.2 &
		for _ in $(seq 100); do [[ -s $WORK/tports ]] && break; sleep 0.05; done
		tudp=$(sed -E 's/.*udp=([0-9]+).*/\1/' "$WORK/tports")
		ttcp=$(sed -E 's/.*tcp=([0-9]+).*/\1/' "$WORK/tports")
		log=$WORK/tap.log
		: >"$log"
		ip netns exec "$NS" "$VMM" launch -m 128 -kernel "$GUEST" -nic tap,ifname=ktap0 \
			-append "test=net timeout=50 udpport=$tudp tcpport=$ttcp fwdport=8080 netbytes=$BYTES" \
			</dev/null >>"$log" 2>&1 &
		VMM_PID=$!
		wait_log '^krg-test: net: tcp: listening on 10.0.2.15:8080' "$log" 60
		ip netns exec "$NS" python3 "$PEER" client 8080 "$BYTES" tapnonce "$WORK/tpeer.log" 30 10.0.2.15 ||
			{ tail -n 20 "$log" >&2; fail "tap: the host's connection failed: $(tail -n 1 "$WORK/tpeer.log")"; }
		wait_vmm 60
		assert_no_sanitizer_report "$log"
		assert_rc 0 "$log"
		assert_log '^KRG-TEST PASS net$' "$log"
		assert_log "KRG-HOST-HELLO $BYTES tapnonce" "$log"
		nonce=$(sed -nE 's/^krg-test: net: traffic from cpu [0-9]+, nonce ([0-9a-f]+)$/\1/p' "$log")
		assert_log "^udp from=10\.0\.2\.15:40000 KRG-UDP-PING 3 $nonce$" "$WORK/tpeer.log"
		assert_log "^tcp hello nonce=$nonce bytes=$BYTES crc=[0-9a-f]+ pattern=ok$" "$WORK/tpeer.log"
		assert_log "^hostfwd reply KRG-GUEST-REPLY $BYTES [0-9a-f]{8} bytes=$BYTES pattern=ok$" "$WORK/tpeer.log"
		echo "  ok: -nic tap,ifname=ktap0 in a network namespace: ARP, ICMP, UDP, TCP both ways"
	else
		echo "  skipped: tap (cannot make a tap device: $(head -n 1 "$WORK/tap.err"))"
	fi
else
	echo "  skipped: tap (cannot make a network namespace)"
fi

# 7. bad options: one line, the right status, within seconds.
bad_net() {
	local what=$1 pattern=$2 want=$3
	shift 3
	assert_refused "$what" "$pattern" "$want" launch -m 64 -kernel "$GUEST" -append test=net "$@"
}
bad_net "port out of range" "ports must be numbers from 1 to 65535" 2 -nic "user,hostfwd=tcp::70000-:22"
bad_net "hostfwd syntax" "expected \[tcp\|udp\]" 2 -nic "user,hostfwd=tcp:2222:22"
bad_net "unknown option" "unknown option 'frob'" 2 -nic user,frob=1
bad_net "unknown NIC type" "unknown type 'bridge'" 2 -nic bridge
bad_net "other NIC model" "model 'e1000' is not available" 2 -nic user,model=e1000
bad_net "multicast MAC" "bad mac" 2 -nic user,mac=01:00:5e:00:00:01
bad_net "device without netdev" "no -netdev with id 'nope'" 2 -device virtio-net-pci,netdev=nope
bad_net "netdev without device" "used by no NIC" 2 -netdev user,id=n0
bad_net "unknown device" "unsupported device 'e1000'" 2 -device e1000
bad_net "fifth NIC" "at most 4" 2 -nic user -nic user -nic user -nic user -nic user
bad_net "host port taken" "hostfwd=tcp:127.0.0.1:$TCP-10.0.2.15:22: cannot listen on host port $TCP" 1 \
	-nic "user,hostfwd=tcp:127.0.0.1:$TCP-:22"
bad_net "not a tap device" "tap device 'lo'" 1 -nic tap,ifname=lo
pass
