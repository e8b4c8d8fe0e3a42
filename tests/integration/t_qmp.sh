#!/usr/bin/env bash
# The QMP control socket, driven as a QEMU client would drive it (python3,
# stdlib only):
#  - 1 node, test=spin: greeting, negotiation first, query-status, stop
#    (the guest's output halts, both clients get STOP), cont (it goes on),
#    malformed / oversized JSON, unknown commands and bad arguments get
#    errors and the VM runs on, a client sending garbage changes nothing,
#    `krg-vmm status` still prints its text, system_reset (RESET, the
#    guest boots again, the connection stays), quit (SHUTDOWN, exit 0);
#  - 2 nodes: query-krg-cluster shows both with their vCPU, stop parks
#    the vCPU on node 1 too (its interrupt count freezes), cont, quit;
#  - test=powerbtn: system_powerdown presses the ACPI power button, the
#    guest sees the SCI and powers off (POWERDOWN, SHUTDOWN, exit 0).
source "$(dirname "$0")/lib.sh"
need_kvm
need_guest
command -v python3 >/dev/null || skip "needs python3"

cat >"$WORK/qmp.py" <<'EOF'
import json, os, random, re, socket, sys, time

def die(msg):
    print("qmp: " + msg, file=sys.stderr)
    sys.exit(1)

class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(20)
        self.s.connect(path)
        self.f = self.s.makefile("rwb")
        self.events = []
        self.greeting = self.line()

    def line(self):
        raw = self.f.readline()
        if not raw:
            raise EOFError
        if not raw.endswith(b"\r\n"):
            die("line without CRLF: %r" % raw[:200])
        return json.loads(raw)

    def send(self, text):
        self.f.write(text if isinstance(text, bytes) else text.encode())
        self.f.flush()

    def reply(self):
        while True:
            r = self.line()
            if "event" not in r:
                return r
            self.events.append(r)

    def cmd(self, name, args=None, id=None):
        m = {"execute": name}
        if args is not None:
            m["arguments"] = args
        if id is not None:
            m["id"] = id
        self.send(json.dumps(m) + "\n")
        r = self.reply()
        if "return" not in r:
            die("%s: %s" % (name, r))
        if id is not None and r.get("id") != id:
            die("%s: id %r not echoed: %s" % (name, id, r))
        return r["return"]

    def error(self, text, cls, part):
        self.send(text)
        r = self.reply()
        e = r.get("error", {})
        if e.get("class") != cls or part not in e.get("desc", ""):
            die("%r: want %s '%s', got %s" % (text[:60], cls, part, r))

    def event(self, name):
        end = time.time() + 15
        while time.time() < end:
            for e in self.events:
                if e["event"] == name:
                    self.events.remove(e)
                    return e
            self.events.append(self.line())
        die("no %s event" % name)

    def eof(self):
        try:
            while True:
                r = self.line()
                if "event" not in r:
                    die("after quit: %s" % r)
        except (EOFError, ConnectionResetError):
            return

def count(log, pattern=r"^krg-test: spin: \d+ s,"):
    with open(log, errors="replace") as f:
        return sum(1 for l in f if re.match(pattern, l))

def wait_more(what, fn, than, secs=10):
    end = time.time() + secs
    while fn() <= than:
        if time.time() > end:
            die("%s did not go on within %d s" % (what, secs))
        time.sleep(0.1)

def status(q):
    return q.cmd("query-status")

def expect_state(q, state):
    st = status(q)
    if st["status"] != state or st["running"] != (state == "running") \
            or st["singlestep"] is not False:
        die("query-status: want %s, got %s" % (state, st))

def paused_output_halts(q, log):
    q.cmd("stop", id="stop-1")
    q.event("STOP")
    expect_state(q, "paused")
    time.sleep(0.3)
    before = count(log)
    time.sleep(2.5)
    if count(log) != before:
        die("the guest printed while paused")
    q.cmd("cont")
    q.event("RESUME")
    expect_state(q, "running")
    wait_more("the guest after cont", lambda: count(log), before)

def single(sock, log):
    q = Qmp(sock)
    v = q.greeting["QMP"]
    if v["capabilities"] != [] or "major" not in v["version"]["qemu"]:
        die("greeting: %s" % q.greeting)
    q.error('{"execute": "query-status"}', "CommandNotFound",
            "qmp_capabilities")
    q.cmd("qmp_capabilities")
    q.error('{"execute": "qmp_capabilities"}', "CommandNotFound",
            "already")
    expect_state(q, "running")
    names = [c["name"] for c in q.cmd("query-commands")]
    for n in ("stop", "cont", "quit", "system_reset", "query-krg-cluster"):
        if n not in names:
            die("query-commands lacks %s" % n)
    other = Qmp(sock)           # a second client sees the events too
    other.cmd("qmp_capabilities")
    wait_more("the guest", lambda: count(log), 1)
    paused_output_halts(q, log)
    other.event("STOP")
    other.event("RESUME")
    q.error('{"execute": "stop" "id": 1}', "GenericError", "JSON parse")
    q.error('{"execute": "no-such-command", "id": 2}', "CommandNotFound",
            "no-such-command")
    q.error('{"execute": "stop", "arguments": 5}', "GenericError",
            "must be an object")
    q.error('{"execute": "cont", "arguments": {"now": true}}',
            "GenericError", "'now' is unexpected")
    q.error('[1, 2]', "GenericError", "must be a JSON object")
    q.error('{"execute": "stop", "id": "%s"}' % ("x" * 70000),
            "GenericError", "exceeds")
    q.error('{"execute": "stop", "arguments": {\x01', "GenericError",
            "reset")
    g = Qmp(sock)               # garbage from a client that then leaves
    g.send(random.Random(5).randbytes(200000))
    g.s.close()
    expect_state(q, "running")
    n = count(log)
    wait_more("the guest after bad input", lambda: count(log), n)
    print("ok")

def reset_and_quit(sock, log):
    q = Qmp(sock)
    q.cmd("qmp_capabilities")
    boots = count(log, r"krg-test: krg-test-guest starting")
    q.cmd("system_reset")
    e = q.event("RESET")
    if e["data"] != {"guest": False, "reason": "host-qmp-system-reset"}:
        die("RESET: %s" % e)
    wait_more("the guest's second boot",
              lambda: count(log, r"krg-test: krg-test-guest starting"),
              boots, 30)
    n = count(log)
    wait_more("the guest after the reset", lambda: count(log), n, 30)
    expect_state(q, "running")
    q.cmd("quit")
    e = q.event("SHUTDOWN")
    if e["data"] != {"guest": False, "reason": "host-qmp-quit"}:
        die("SHUTDOWN: %s" % e)
    q.eof()
    print("ok")

def cluster(sock, log):
    q = Qmp(sock)
    q.cmd("qmp_capabilities")
    c = q.cmd("query-krg-cluster")
    nodes = c["nodes"]
    if len(nodes) != 2 or [n["vcpus"] for n in nodes] != [[0], [1]] or \
            c["vcpus"] != [{"vcpu": 0, "node": 0}, {"vcpu": 1, "node": 1}]:
        die("query-krg-cluster: %s" % c)
    for n in nodes:
        d = n.get("dsm", {})
        if not n["answered"] or not re.match(r".+:\d+$", n["address"]) or \
                not all(isinstance(d.get(k), int) for k in (
                    "read-faults", "write-faults", "invalidations",
                    "pages-sent", "pages-received", "bytes-sent",
                    "held-messages")):
            die("node: %s" % n)
    if nodes[1]["dsm"]["pages-received"] <= 0:
        die("node 1 received no pages: %s" % nodes[1])

    def injected():
        return q.cmd("query-krg-cluster")["nodes"][1]["interrupts-injected"]
    wait_more("node 1's vCPU", injected, injected())
    q.cmd("stop")
    q.event("STOP")
    a = injected()
    time.sleep(1.5)
    if injected() != a:
        die("node 1's vCPU took interrupts while paused")
    q.cmd("cont")
    wait_more("node 1's vCPU after cont", injected, a)
    q.cmd("quit")
    q.event("SHUTDOWN")
    q.eof()
    print("ok")

def powerdown(sock, log):
    q = Qmp(sock)
    q.cmd("qmp_capabilities")
    q.cmd("system_powerdown")
    q.event("POWERDOWN")
    e = q.event("SHUTDOWN")
    if e["data"] != {"guest": True, "reason": "guest-shutdown"}:
        die("SHUTDOWN: %s" % e)
    q.eof()
    print("ok")

globals()[sys.argv[1]](sys.argv[2], sys.argv[3])
EOF

# wait_socket : the VM's control socket (node 0 is this test's krg-vmm).
wait_socket() {
	SOCK=/run/krg-vmm/vm-$VMM_PID.sock
	for ((i = 0; i < 200; i++)); do
		[[ -S $SOCK ]] && return 0
		kill -0 "$VMM_PID" 2>/dev/null || break
		sleep 0.05
	done
	fail "no control socket $SOCK"
}

# qmp SCENARIO LOG : runs a part of qmp.py against the socket.
qmp() {
	local out
	out=$(timeout 120 python3 "$WORK/qmp.py" "$1" "$SOCK" "$2" 2>&1) || {
		echo "$out" >&2
		tail -n 20 "$2" >&2
		fail "$1: the QMP client failed"
	}
}

# finish LOG : krg-vmm must end by itself with status 0.
finish() {
	local t0
	t0=$(now_ms)
	while kill -0 "$VMM_PID" 2>/dev/null; do
		[[ $(($(now_ms) - t0)) -lt 15000 ]] || fail "krg-vmm still runs 15 s later"
		sleep 0.05
	done
	RC=0
	wait "$VMM_PID" || RC=$?
	assert_no_sanitizer_report "$1"
	assert_rc 0 "$1"
	[[ ! -e $SOCK ]] || fail "$SOCK left behind"
}

# --- one node -------------------------------------------------------------
log=$WORK/single.log
t0=$(now_ms)
start_vmm "$log" launch -smp 1 -m 64 -kernel "$GUEST" -append "test=spin timeout=120"
wait_log '^krg-test: spin: running' "$log" 30
wait_socket
qmp single "$log"
# `krg-vmm status` is a QMP client now; its text is what it always was.
"$VMM" status "$SOCK" >"$WORK/status.txt" 2>&1 || { cat "$WORK/status.txt" >&2; fail "krg-vmm status failed"; }
grep -Eq '^VM: 1 vCPUs, 64 MiB, 1 node; vCPU placement: 0->0$' "$WORK/status.txt" &&
	grep -Eq '^node 0 \(local\): 1 vCPUs, up [0-9]+ ms' "$WORK/status.txt" &&
	grep -Eq 'pages sent [0-9]+ received [0-9]+' "$WORK/status.txt" ||
	{ cat "$WORK/status.txt" >&2; fail "krg-vmm status: unexpected text"; }
# A socket left by a VM that was killed (SIGKILL: no clean-up): refused,
# its process gone.  Looking for "the" VM removes it and never names it.
true & dead=$!
wait "$dead" || true
stale=/run/krg-vmm/vm-$dead.sock
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$stale"
[[ -S $stale ]] || fail "could not make a stale socket $stale"
"$VMM" status >"$WORK/status-find.txt" 2>&1 || true
[[ ! -e $stale ]] || fail "krg-vmm status left the dead VM's socket $stale"
! grep -q "vm-$dead.sock" "$WORK/status-find.txt" ||
	{ cat "$WORK/status-find.txt" >&2; fail "krg-vmm status named a dead VM's socket"; }
qmp reset_and_quit "$log"
finish "$log"
# Not anchored: krg-vmm's lines may follow a guest line cut short.
assert_log 'krg-vmm: system_reset \(QMP\)$' "$log"
assert_log 'krg-vmm: quit \(QMP\)$' "$log"
echo "  ok: 1 node: negotiation, stop/cont, errors, status text, reset, quit ($(($(now_ms) - t0)) ms)"

# --- two nodes ------------------------------------------------------------
log=$WORK/cluster.log
t0=$(now_ms)
start_vmm "$log" launch --local-nodes 2 -smp 2 -m 128 -kernel "$GUEST" \
	-append "test=spin timeout=120"
wait_log '^krg-test: spin: 1 s' "$log" 60
wait_socket
qmp cluster "$log"
finish "$log"
assert_log 'krg-vmm: node 1: quit \(QMP\)$' "$log"
echo "  ok: 2 nodes: query-krg-cluster, stop/cont across nodes, quit ($(($(now_ms) - t0)) ms)"

# --- the power button -------------------------------------------------------
log=$WORK/powerbtn.log
t0=$(now_ms)
start_vmm "$log" launch -smp 1 -m 64 -kernel "$GUEST" -append "test=powerbtn timeout=60"
wait_log '^krg-test: powerbtn: armed' "$log" 30
wait_socket
qmp powerdown "$log"
finish "$log"
assert_log '^krg-test: powerbtn: power button pressed \(SCI 1, PM1_STS 100\)' "$log"
assert_log '^KRG-TEST PASS powerbtn$' "$log"
assert_log 'krg-vmm: guest powered off$' "$log"
echo "  ok: system_powerdown -> ACPI power button -> guest powered off ($(($(now_ms) - t0)) ms)"
pass
