#!/usr/bin/env python3
"""Checks a raw disk image on the host against what the test guest's
test=blk says it wrote (tests/guest/test_blk.c).

    blk_image_check.py IMAGE MIB LOG

MIB is the run's blkmib=.  Every "blk: random pass: N distinct sectors in
[a, b)" line of LOG names one I/O CPU's part of the disk: [a - MIB MiB, a)
must hold the guest's pattern in every sector, [a, b) the pattern or
zeros with exactly N pattern sectors, and every other sector of the image
zeros (the harness gives the guest a fresh, zeroed disk).  Exit status 0
and one summary line when it does; else 1 and the first bad sector.
Streams the image, so a disk of several hundred MiB takes seconds."""
import re
import sys

SECTOR = 512
CHUNK = 2048                    # sectors read at once (1 MiB)
M = (1 << 64) - 1
# Word i of sector s is K ^ s * P ^ i (blk_pattern): the 64 words of one
# sector are X * REP ^ IDX as a 512-byte little-endian integer, X = K ^ s * P
# (X < 2^64, so the 64 copies never carry into each other).
K, P = 0x6b72672d626c6b00, 0x100000001b3
REP = sum(1 << (64 * i) for i in range(64))
IDX = sum(i << (64 * i) for i in range(64))
ZERO = bytes(SECTOR * CHUNK)


def pattern_int(s):
    return ((K ^ (s * P)) & M) * REP ^ IDX


def regions(log):
    with open(log, errors='replace') as f:
        text = f.read()
    found = [(int(a), int(b), int(n)) for n, a, b in re.findall(
        r'^krg-test: blk: random pass: (\d+) distinct sectors in '
        r'\[(\d+), (\d+)\)', text, re.M)]
    if not found:
        sys.exit('%s: no "random pass" lines' % log)
    return sorted(found)


def main():
    if len(sys.argv) != 4:
        sys.exit('usage: blk_image_check.py IMAGE MIB LOG')
    path, mib, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    seq = mib * 2048
    # (first, end, kind, region): sorted, disjoint, gaps are zeros.
    spans = []
    for lo, hi, n in regions(log):
        if lo < seq or hi <= lo or (spans and spans[-1][1] > lo - seq):
            sys.exit('%s: regions overlap or start below 0' % log)
        spans.append((lo - seq, lo, 'seq', None))
        spans.append((lo, hi, 'rnd', (lo, hi, n)))
    counted = {}
    with open(path, 'rb') as f:
        f.seek(0, 2)
        total = f.tell() // SECTOR
        if spans[-1][1] > total:
            sys.exit('%s: %d sectors, the guest wrote up to %d' %
                     (path, total, spans[-1][1]))
        f.seek(0)
        pos = 0
        # The gap after the last span has no region of its own.
        for first, end, kind, reg in spans + [(total, total, 'end', None)]:
            for a, b, k in ((pos, first, 'zero'), (first, end, kind)):
                s = a
                while s < b:
                    n = min(CHUNK, b - s)
                    data = f.read(n * SECTOR)
                    if len(data) != n * SECTOR:
                        sys.exit('%s: short read at sector %d' % (path, s))
                    if k == 'zero':
                        if data != ZERO[:len(data)]:
                            off = next(i for i in range(len(data)) if data[i])
                            sys.exit('sector %d holds the wrong data '
                                     '(nothing written there)' %
                                     (s + off // SECTOR))
                    else:
                        for i in range(n):
                            sec = data[i * SECTOR:(i + 1) * SECTOR]
                            if k == 'rnd' and sec == ZERO[:SECTOR]:
                                continue
                            v = int.from_bytes(sec, 'little')
                            if v != pattern_int(s + i):
                                sys.exit('sector %d holds the wrong data '
                                         '(%s region)' % (s + i, k))
                            if k == 'rnd':
                                counted[reg] = counted.get(reg, 0) + 1
                    s += n
            pos = end
    for first, end, kind, reg in spans:
        if kind == 'rnd' and counted.get(reg, 0) != reg[2]:
            sys.exit('[%d, %d): %d pattern sectors, the guest wrote %d' %
                     (reg[0], reg[1], counted.get(reg, 0), reg[2]))
    print('  image: %d regions as written (%d MiB checked)' %
          (len(spans) // 2, total * SECTOR >> 20))


if __name__ == '__main__':
    main()
