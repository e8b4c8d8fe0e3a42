#!/usr/bin/env python3
"""stages.py LOG TIMEOUT -- COMMAND...: runs a VM (krg-vmm or QEMU), logs
everything it prints to LOG with the seconds since start, and reports when
each boot stage was first seen:

  seabios   "SeaBIOS (version"           the firmware's POST began
  boot      "Booting from Hard Disk"     POST done: the MBR (GRUB's boot.img)
  grub      "GRUB loading"               boot.img/diskboot.img load core.img
                                         (LZMA-compressed: its decompressor
                                         runs next, in protected mode)
  entry     "Booting `"                  GRUB's normal mode runs the menu
                                         entry: reads the kernel and initrd
  long64    krg-vmm only: the first vCPU status line (SIGQUIT, every
            --poll s) in long mode: the kernel (its decompressor) runs
  linux     "[    1.234567]": the kernel prints (quiet: late, if at all)
  report    "krg-image: system-running=": the image's report unit
  login     "login:": the serial getty

Stops the VM at "login:" or after TIMEOUT seconds; prints one line per stage
and, for the status lines, the last RIP/mode seen (where a stalled boot
sits).  Exit status 0 if "login:" was reached, 1 otherwise."""
import os
import re
import signal
import subprocess
import sys
import time

STAGES = [
    ("seabios", rb"SeaBIOS \(version"),
    ("boot", rb"Booting from Hard Disk"),
    ("grub", rb"GRUB loading"),
    ("entry", rb"Booting `"),
    ("linux", rb"Linux version|\[ +[0-9]+\.[0-9]{6}\]"),
    ("report", rb"krg-image: system-running="),
    ("login", rb"login:"),
]
STATUS = re.compile(rb"vCPU 0: [^,]*, RIP (0x[0-9a-f]+) \(([^,]*),")


def main():
    args = sys.argv[1:]
    poll = 0
    if args and args[0].startswith("--poll="):
        poll = float(args[0].split("=", 1)[1])
        args = args[1:]
    log, tmo = args[0], float(args[1])
    assert args[2] == "--"
    cmd = args[3:]
    t0 = time.time()
    seen = {}
    last_status = None
    buf = b""
    out = open(log, "wb")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    os.set_blocking(p.stdout.fileno(), False)
    next_poll = t0 + poll if poll else None
    while True:
        now = time.time()
        if now - t0 > tmo or "login" in seen:
            break
        if next_poll and now >= next_poll:
            p.send_signal(signal.SIGQUIT)
            next_poll = now + poll
        try:
            chunk = p.stdout.read(65536)
        except BlockingIOError:
            chunk = None
        if chunk is None:
            if p.poll() is not None:
                break
            time.sleep(0.05)
            continue
        if not chunk:
            break
        out.write(b"[%8.2f] " % (now - t0) + chunk.replace(b"\n", b"\n           "))
        out.write(b"\n")
        out.flush()
        buf = (buf + chunk)[-4096:]
        for name, pat in STAGES:
            if name not in seen and re.search(pat, buf):
                seen[name] = now - t0
        for m in STATUS.finditer(chunk):
            last_status = (now - t0, m.group(1).decode(), m.group(2).decode())
            mode = last_status[2]
            if "long mode" in mode and "long64" not in seen:
                seen["long64"] = now - t0
    end = time.time() - t0
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    out.close()
    order = ["seabios", "boot", "grub", "entry", "long64", "linux", "report",
             "login"]
    for name in order:
        print("  %-8s %s" % (name, "%8.1f s" % seen[name] if name in seen
                             else "   (not seen)"))
    if last_status:
        print("  last vCPU 0 status at %.1f s: RIP %s, %s" % last_status)
    print("  ran %.1f s, exit %s" % (end, p.returncode))
    return 0 if "login" in seen else 1


if __name__ == "__main__":
    sys.exit(main())
