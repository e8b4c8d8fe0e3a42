#!/usr/bin/env python3
"""The host side of test=net (tests/guest/test_net.c), for t_virtio_net.sh.

  net_peer.py serve PORTFILE LOG SECONDS [ADDR]
      UDP echo and TCP service on ADDR (127.0.0.1), ephemeral ports written to
      PORTFILE as "udp=P tcp=Q"; every exchange is logged to LOG; exits
      after SECONDS.
  net_peer.py client PORT BYTES NONCE LOG SECONDS [ADDR]
      connects to ADDR:PORT (127.0.0.1: a hostfwd rule to the guest), sends
      "KRG-HOST-HELLO BYTES NONCE" and BYTES pattern bytes (seed 3),
      checks "KRG-GUEST-REPLY BYTES CRC" and BYTES bytes (seed 4); exit 0
      when everything matched.
  net_peer.py freeport
      prints a TCP port free on 127.0.0.1 right now.

Pattern byte k of seed s: (s*37 + k*131 + (k>>8)*7 + (k>>16)*13) & 255,
as the guest computes it.  Everything is bounded in time.
"""
import os
import select
import socket
import sys
import time
import zlib


def pattern(seed, start, n):
    return bytes((seed * 37 + k * 131 + (k >> 8) * 7 + (k >> 16) * 13) & 255
                 for k in range(start, start + n))


def log(path, line):
    with open(path, 'a') as f:
        f.write(line + '\n')


def read_line(conn, deadline):
    buf = b''
    while not buf.endswith(b'\n'):
        conn.settimeout(max(0.1, deadline - time.time()))
        b = conn.recv(1)
        if not b:
            raise EOFError('connection closed before a full line')
        buf += b
        if len(buf) > 200:
            raise ValueError('line too long')
    return buf[:-1].decode('ascii', 'replace')


def read_exact(conn, n, deadline):
    out = bytearray()
    while len(out) < n:
        conn.settimeout(max(0.1, deadline - time.time()))
        b = conn.recv(min(65536, n - len(out)))
        if not b:
            raise EOFError('closed after %d of %d bytes' % (len(out), n))
        out += b
    return bytes(out)


def serve_tcp(conn, logf):
    deadline = time.time() + 60
    line = read_line(conn, deadline)
    f = line.split()
    if len(f) != 3 or f[0] != 'KRG-NET-HELLO' or not f[1].isdigit():
        log(logf, 'tcp bad-hello %r' % line)
        return
    n = int(f[1])
    data = read_exact(conn, n, deadline)
    crc = zlib.crc32(data) & 0xffffffff
    ok = data == pattern(1, 0, n)
    log(logf, 'tcp hello nonce=%s bytes=%d crc=%08x pattern=%s' %
        (f[2], n, crc, 'ok' if ok else 'BAD'))
    conn.sendall(b'KRG-NET-OK %d %08x\n' % (n, crc) + pattern(2, 0, n))
    conn.close()


def serve(portfile, logf, seconds, addr):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((addr, 0))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, 0))
    t.listen(4)
    with open(portfile + '.tmp', 'w') as f:
        f.write('udp=%d tcp=%d\n' % (u.getsockname()[1], t.getsockname()[1]))
    os.rename(portfile + '.tmp', portfile)
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([u, t], [], [], 0.5)
        if u in r:
            msg, addr = u.recvfrom(2048)
            text = msg.decode('ascii', 'replace')
            log(logf, 'udp from=%s:%d %s' % (addr[0], addr[1], text))
            if text.startswith('KRG-UDP-PING '):
                u.sendto(b'KRG-UDP-PONG ' + msg[13:], addr)
        if t in r:
            conn, addr = t.accept()
            try:
                serve_tcp(conn, logf)
            except (OSError, EOFError, ValueError) as e:
                log(logf, 'tcp error %s' % e)
            finally:
                conn.close()


def client(port, n, nonce, logf, seconds, addr):
    end = time.time() + seconds
    data = pattern(3, 0, n)
    want_crc = zlib.crc32(data) & 0xffffffff
    last = None
    while time.time() < end:
        try:
            c = socket.create_connection((addr, port), timeout=5)
            c.sendall(b'KRG-HOST-HELLO %d %s\n' % (n, nonce.encode()) + data)
            line = read_line(c, end)
            f = line.split()
            if f != ['KRG-GUEST-REPLY', str(n), '%08x' % want_crc]:
                log(logf, 'hostfwd bad-reply %r' % line)
                return 1
            back = read_exact(c, n, end)
            c.settimeout(max(0.1, end - time.time()))
            if c.recv(1) != b'':
                log(logf, 'hostfwd extra bytes after the reply')
                return 1
            c.close()
            ok = back == pattern(4, 0, n)
            log(logf, 'hostfwd reply %s bytes=%d pattern=%s' %
                (line, len(back), 'ok' if ok else 'BAD'))
            return 0 if ok else 1
        except (OSError, EOFError, ValueError) as e:
            last = e
            time.sleep(0.5)
    log(logf, 'hostfwd gave up: %s' % last)
    return 1


def main(argv):
    if len(argv) in (5, 6) and argv[1] == 'serve':
        serve(argv[2], argv[3], float(argv[4]),
              argv[5] if len(argv) == 6 else '127.0.0.1')
        return 0
    if len(argv) in (7, 8) and argv[1] == 'client':
        return client(int(argv[2]), int(argv[3]), argv[4], argv[5],
                      float(argv[6]), argv[7] if len(argv) == 8 else
                      '127.0.0.1')
    if len(argv) == 2 and argv[1] == 'freeport':
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        print(s.getsockname()[1])
        s.close()
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
