#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_vnet (tests/fuzz/fuzz_vnet.c describes
the layout): a receive queue with posted buffers and a transmit queue with
frames, direct, split over descriptors and indirect.

Usage: gen_vnet_corpus.py OUTDIR   (creates OUTDIR/vnet)"""
import os
import struct
import sys

RX_DESC, RX_AVAIL, RX_USED = 0x100, 0x200, 0x280
TX_DESC, TX_AVAIL, TX_USED = 0x400, 0x500, 0x580
BUFS, TABLES = 0x1000, 0x800
NEXT, WRITE, INDIRECT = 1, 2, 4
SIZE_LOG2 = 3  # 8 entries: the rings above have room for them


def image(flags, tx_frames, rx_bufs, indirect=False, sel=1):
    ram = bytearray(0x8000)
    size = 1 << SIZE_LOG2
    # receive: one buffer per descriptor, all writable
    for i, n in enumerate(rx_bufs):
        struct.pack_into('<QIHH', ram, RX_DESC + 16 * i, BUFS + 0x800 * i, n,
                         WRITE, 0)
        struct.pack_into('<H', ram, RX_AVAIL + 4 + 2 * i, i)
    struct.pack_into('<HH', ram, RX_AVAIL, 0, len(rx_bufs))
    # transmit: header + frame, in one or two descriptors, or indirect
    d = 0
    for i, (n, split) in enumerate(tx_frames):
        at = BUFS + 0x4000 + 0x800 * i
        ram[at + 12:at + 12 + n] = bytes((k * 7) & 255 for k in range(n))
        head = d
        if indirect:
            t = TABLES + 0x40 * i
            struct.pack_into('<QIHH', ram, t, at, 12, NEXT, 1)
            struct.pack_into('<QIHH', ram, t + 16, at + 12, n, 0, 0)
            struct.pack_into('<QIHH', ram, TX_DESC + 16 * d, t, 32, INDIRECT,
                             0)
            d += 1
        elif split:
            struct.pack_into('<QIHH', ram, TX_DESC + 16 * d, at, 12, NEXT,
                             d + 1)
            struct.pack_into('<QIHH', ram, TX_DESC + 16 * (d + 1), at + 12,
                             n, 0, 0)
            d += 2
        else:
            struct.pack_into('<QIHH', ram, TX_DESC + 16 * d, at, 12 + n, 0, 0)
            d += 1
        struct.pack_into('<H', ram, TX_AVAIL + 4 + 2 * i, head)
    struct.pack_into('<HH', ram, TX_AVAIL, 0, len(tx_frames))
    assert d <= size
    hdr = struct.pack('<BBBHHHHHHB', flags, SIZE_LOG2, SIZE_LOG2, RX_DESC,
                      RX_AVAIL, RX_USED, TX_DESC, TX_AVAIL, TX_USED, sel)
    assert len(hdr) == 16
    return hdr + bytes(ram)


def main(out):
    d = os.path.join(out, 'vnet')
    os.makedirs(d, exist_ok=True)
    seeds = {
        'plain': image(0, [(60, False), (1514, False)], [2048, 2048, 100]),
        'split': image(2, [(60, True), (14, True), (10, False)],
                       [1526, 1526]),
        'indirect': image(1 | 8, [(100, False), (1514, False)], [2048] * 4,
                          indirect=True, sel=3),
    }
    for name, blob in seeds.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(blob)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'tests/fuzz/corpus')
