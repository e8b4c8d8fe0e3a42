#!/usr/bin/env bash
# Live vCPU migration (krg-vmm migrate-vcpu, QMP krg-migrate-vcpu):
#  - the test guest's test=migrate (deterministic user-mode work on every
#    vCPU, LAPIC timers periodic and TSC-deadline, an IPI ping-pong whose
#    counts must match exactly, the TSC checked for going back on a CPU
#    and across CPUs) on 2 local nodes, -smp 2, while the vCPUs are moved
#    back and forth between the nodes 100 times (QMP) and a few times
#    with `krg-vmm migrate-vcpu`: it must pass and print the digests of
#    the same run on one node;
#  - in the same run, failed migrations leave the guest running and
#    correct: a vCPU or node that does not exist, a move to where it is
#    (nothing to do), and a failure injected at every step (the target
#    refuses before and after the vCPU stopped, the capture fails, the
#    target's answer never comes, the target never confirms the resume);
#  - query-krg-cluster and `krg-vmm status` show the placement;
#  - the target node killed while a vCPU is on its way: the migration
#    fails with a clear error and the VM stops naming the node.
# MIGRATE_COUNT (default 100) sets the number of back-and-forth moves.
source "$(dirname "$0")/lib.sh"
need_kvm
need_guest
command -v python3 >/dev/null || skip "needs python3"

COUNT=${MIGRATE_COUNT:-100}
# ~2 s of work per vCPU on an idle host (the guest slows down with the
# host, as the migrations do): every migration lands mid-run.
ROUNDS=${MIGRATE_ROUNDS:-3000000}
APPEND="test=migrate rounds=$ROUNDS timeout=200"

cat >"$WORK/mig.py" <<'EOF'
import json, os, socket, subprocess, sys, time

def die(msg):
    print("mig: " + msg, file=sys.stderr)
    sys.exit(1)

class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(60)
        self.s.connect(path)
        self.f = self.s.makefile("rwb")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def call(self, name, args=None):
        m = {"execute": name}
        if args is not None:
            m["arguments"] = args
        self.f.write((json.dumps(m) + "\n").encode())
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "event" not in r:
                return r

    def cmd(self, name, args=None):
        r = self.call(name, args)
        if "return" not in r:
            die("%s %s: %s" % (name, args, r))
        return r["return"]

    def error(self, name, args, part):
        r = self.call(name, args)
        desc = r.get("error", {}).get("desc", "")
        if part not in desc:
            die("%s %s: want an error with '%s', got %s" % (name, args, part, r))
        return desc

def placement(q):
    return [v["node"] for v in q.cmd("query-krg-cluster")["vcpus"]]

def move(q, vcpu, node, **kw):
    a = {"vcpu": vcpu, "node": node}
    a.update(kw)
    return q.cmd("krg-migrate-vcpu", a)

def single(sock, log):
    q = Qmp(sock)
    r = move(q, 1, 0)
    if r["moved"] or r["from"] != 0:
        die("one node: %s" % r)
    q.error("krg-migrate-vcpu", {"vcpu": 1, "node": 1}, "node 1 does not exist")
    print("ok")

def guest_lines(log, what):
    with open(log, errors="replace") as f:
        return [l for l in f if what in l]

def cluster(sock, log, count, vmm):
    q = Qmp(sock)
    if placement(q) != [0, 1]:
        die("start placement %s" % placement(q))
    # Refused at once; the VM runs on.
    q.error("krg-migrate-vcpu", {"vcpu": 2, "node": 0}, "vCPU 2 does not exist")
    q.error("krg-migrate-vcpu", {"vcpu": -1, "node": 0}, "vCPU -1 does not exist")
    q.error("krg-migrate-vcpu", {"vcpu": 0, "node": 2}, "node 2 does not exist")
    q.error("krg-migrate-vcpu", {"vcpu": 0, "node": 1, "x-fault": "nope"},
            "unknown x-fault")
    q.error("krg-migrate-vcpu", {"vcpu": "0", "node": 1}, "vcpu")
    r = move(q, 0, 0)
    if r["moved"]:
        die("a move to where it is: %s" % r)
    # A failure at every step: it stays where it was (the two that wait
    # for a timeout run in the test=spin VM below).
    for fault, part in (("refuse-prepare", "refuse-prepare"),
                        ("fail-capture", "fail-capture"),
                        ("refuse-load", "refuse-load")):
        for vcpu, to in ((0, 1), (1, 0)):
            t0 = time.time()
            d = q.error("krg-migrate-vcpu",
                        {"vcpu": vcpu, "node": to, "x-fault": fault}, part)
            if placement(q) != [0, 1]:
                die("after %s of vCPU %d: placement %s" %
                    (fault, vcpu, placement(q)))
            print("  failed as asked (%s, vCPU %d, %.0f ms): %s" %
                  (fault, vcpu, (time.time() - t0) * 1000, d))
    # The command line client, and the status text.
    out = subprocess.run([vmm, "migrate-vcpu", "1", "0", sock],
                         capture_output=True, text=True)
    if out.returncode != 0 or "vCPU 1 moved from node 1 to node 0" not in out.stdout:
        die("migrate-vcpu 1 0: %d %r %r" % (out.returncode, out.stdout, out.stderr))
    print("  cli: " + out.stdout.strip())
    st = subprocess.run([vmm, "status", sock], capture_output=True, text=True)
    if "placement: 0->0 1->0" not in st.stdout:
        die("status after the move: %r" % st.stdout[:300])
    out = subprocess.run([vmm, "migrate-vcpu", "1", "5", sock],
                         capture_output=True, text=True)
    if out.returncode != 1 or not out.stderr.startswith("krg-vmm: ") or \
            "node 5 does not exist" not in out.stderr:
        die("migrate-vcpu 1 5: %d %r" % (out.returncode, out.stderr))
    out = subprocess.run([vmm, "migrate-vcpu", "1"], capture_output=True, text=True)
    if out.returncode != 2 or "usage" not in out.stderr:
        die("migrate-vcpu 1: %d %r" % (out.returncode, out.stderr))
    if placement(q) != [0, 0]:
        die("placement %s" % placement(q))
    if guest_lines(log, "digest"):
        die("the guest finished before the migrations (host too slow?)")
    # Back and forth: each vCPU in turn to the other node.
    where = [0, 0]
    down = []
    t0 = time.time()
    for i in range(count):
        v = i % 2
        to = 1 - where[v]
        r = move(q, v, to)
        if not r["moved"] or r["from"] != where[v] or r["node"] != to:
            die("move %d: %s" % (i, r))
        where[v] = to
        down.append(r["downtime-ns"] / 1e3)
        if i % 10 == 9 and placement(q) != where:
            die("move %d: placement %s, expected %s" % (i, placement(q), where))
    secs = time.time() - t0
    if guest_lines(log, "digest"):
        die("the guest finished before the last migration")
    down.sort()
    print("  %d migrations in %.2f s: downtime p50 %.0f us, p99 %.0f us, "
          "max %.0f us" % (count, secs, down[len(down) // 2],
                           down[min(len(down) - 1, int(len(down) * 0.99))],
                           down[-1]))
    print("ok")

def spins(log):
    return len(guest_lines(log, "krg-test: spin:"))

def timeouts(sock, log):
    q = Qmp(sock)
    # The target's LOADED never comes: the source gives up, the vCPU
    # runs on where it was.
    t0 = time.time()
    d = q.error("krg-migrate-vcpu", {"vcpu": 0, "node": 1,
                                     "x-fault": "silent-load"}, "did not load")
    if placement(q) != [0, 1]:
        die("after silent-load: placement %s" % placement(q))
    print("  failed as asked (silent-load, %.0f ms): %s" %
          ((time.time() - t0) * 1000, d))
    # Moved, but the target never says so: reported, and it did move.
    d = q.error("krg-migrate-vcpu", {"vcpu": 1, "node": 0,
                                     "x-fault": "silent-resume"},
                "did not confirm")
    if placement(q) != [0, 0]:
        die("after silent-resume: placement %s" % placement(q))
    print("  failed as asked (silent-resume): %s" % d)
    n = spins(log)
    move(q, 1, 1)
    end = time.time() + 20
    while spins(log) < n + 2:
        if time.time() > end:
            die("the guest stopped printing after the failed migrations")
        time.sleep(0.1)
    print("ok")

def killed(sock, pid):
    q = Qmp(sock)
    # vCPU 0 on its way to node 1, which never answers LOADED ...
    q.f.write((json.dumps({"execute": "krg-migrate-vcpu", "arguments":
                           {"vcpu": 0, "node": 1, "x-fault": "silent-load"}})
               + "\n").encode())
    q.f.flush()
    time.sleep(0.3)
    os.kill(pid, 9)   # ... and dies.
    t0 = time.time()
    while True:
        line = q.f.readline()
        if not line:
            die("the VM closed the socket without answering")
        r = json.loads(line)
        if "event" not in r:
            break
    desc = r.get("error", {}).get("desc", "")
    if "was not moved" not in desc or "node 1" not in desc:
        die("reply after the target died: %s" % r)
    print("  %.0f ms after the kill: %s" % ((time.time() - t0) * 1000, desc))
    print("ok")

what = sys.argv[1]
if what == "single":
    single(sys.argv[2], sys.argv[3])
elif what == "cluster":
    cluster(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
elif what == "timeouts":
    timeouts(sys.argv[2], sys.argv[3])
else:
    killed(sys.argv[2], int(sys.argv[3]))
EOF

wait_socket() {
	SOCK=/run/krg-vmm/vm-$VMM_PID.sock
	for _ in $(seq 200); do
		[[ -S $SOCK ]] && return 0
		sleep 0.05
	done
	fail "no control socket $SOCK"
}

# mig SCENARIO ARGS... : a part of mig.py; its output indented.
mig() {
	local out
	out=$(timeout 300 python3 "$WORK/mig.py" "$@" 2>&1) || {
		echo "$out" >&2
		fail "mig.py $1 failed"
	}
	grep -v '^ok$' <<<"$out" || true
	[[ $(tail -n1 <<<"$out") == ok ]] || fail "mig.py $1: no ok"
}

digests() {
	grep -E '^krg-test: migrate: cpu [0-9]+ digest 0x[0-9a-f]{16}$' "$1" |
		sort -t' ' -k4,4n || true
}

# The reference: the same guest on one node (a migration has nowhere to
# go there: to node 0 does nothing, to node 1 is refused).
ref=$WORK/single.log
t0=$(now_ms)
start_vmm "$ref" launch -m 128 -smp 2 -kernel "$GUEST" -append "$APPEND"
wait_socket
wait_log '^krg-test: migrate: started' "$ref" 60
mig single "$SOCK" "$ref"
RC=0
wait "$VMM_PID" || RC=$?
assert_no_sanitizer_report "$ref"
assert_rc 0 "$ref"
assert_log '^KRG-TEST PASS migrate$' "$ref"
want=$(digests "$ref")
[[ $(wc -l <<<"$want") -eq 2 ]] || fail "the single-node run printed no digests"
echo "  ok: reference on one node ($(($(now_ms) - t0)) ms)"

# The cluster run, migrated while it works.
log=$WORK/cluster.log
t0=$(now_ms)
start_vmm "$log" launch --local-nodes 2 -smp 2 -m 128 -kernel "$GUEST" \
	-append "$APPEND"
wait_socket
wait_log '^krg-test: migrate: started' "$log" 120
mig cluster "$SOCK" "$log" "$COUNT" "$VMM"
wait_log '^KRG-TEST (PASS|FAIL)' "$log" 240
stop_wait=$(($(now_ms) + 30000))
while kill -0 "$VMM_PID" 2>/dev/null && [[ $(now_ms) -lt $stop_wait ]]; do
	sleep 0.1
done
RC=0
wait "$VMM_PID" || RC=$?
assert_no_sanitizer_report "$log"
assert_rc 0 "$log"
assert_log '^KRG-TEST PASS migrate$' "$log"
assert_log '^krg-test: migrate: all 2 digests match the closed form$' "$log"
refute_log 'dropped an interrupt' "$log"
got=$(digests "$log")
if [[ $got != "$want" ]]; then
	diff <(echo "$want") <(echo "$got") >&2 || true
	fail "digests after the migrations differ from the single-node run"
fi
grep -E '^krg-test: migrate: cpu [0-9]+: ' "$log" | sed 's/^/      /'
echo "  ok: $COUNT migrations mid-run, digests equal the single-node run's" \
	"($(($(now_ms) - t0)) ms)"

# The failures that wait for a timeout, then the target dies while a
# vCPU moves to it.
log=$WORK/killed.log
start_vmm "$log" launch --local-nodes 2 -smp 2 -m 128 -kernel "$GUEST" \
	-append "test=spin"
wait_socket
wait_log '^krg-test: spin: 1 s' "$log" 120
mig timeouts "$SOCK" "$log"
echo "  ok: the guest runs on after both"
victim=$(pgrep -P "$VMM_PID" -f -- "--node-id 1 --nodes" || true)
[[ -n $victim ]] || fail "no node 1 process"
mig killed "$SOCK" "$victim"
end=$(($(now_ms) + 15000))
while kill -0 "$VMM_PID" 2>/dev/null && [[ $(now_ms) -lt $end ]]; do
	sleep 0.1
done
kill -0 "$VMM_PID" 2>/dev/null && fail "node 0 still runs 15 s after node 1 died"
RC=0
wait "$VMM_PID" || RC=$?
assert_no_sanitizer_report "$log"
assert_rc 1 "$log"
assert_log 'node 1' "$log"
echo "  ok: the target killed mid-migration: the VM stopped naming it"
pass "vCPUs moved $COUNT times mid-run with identical results; every failure left the guest running"
