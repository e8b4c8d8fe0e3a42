#!/usr/bin/env python3
"""Writes the seed corpora of the fuzzers (tests/fuzz/fuzz_*.c describe the
input layouts): well-formed virtio-blk queues and fw_cfg programs, so the
fuzzers start from inputs that reach deep into the parsers.

Usage: gen_corpus.py OUTDIR   (creates OUTDIR/virtq and OUTDIR/fw_cfg)"""
import os
import struct
import sys

# --- virtq: [size][flags][desc le16][avail le16][used le16] + RAM image
DESC, AVAIL, USED, HDRS, DATA = 0x100, 0x200, 0x280, 0x400, 0x800
F_INDIRECT, F_EVENT, F_FLUSH, F_DISCARD, F_WZ, F_RO, F_4K, F_DEFER = (
    1, 2, 4, 8, 16, 32, 64, 128)
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WZ = 0, 1, 4, 8, 11, 13
NEXT, WRITE, INDIRECT = 1, 2, 4


class Queue:
    def __init__(self, size_log2=4):
        # The fixed layout above leaves room for 16 entries per ring.
        assert size_log2 <= 4
        self.size = 1 << size_log2
        self.size_log2 = size_log2
        self.ram = bytearray(0x10000)
        self.next_desc = 0
        self.heads = []
        self.nreq = 0

    def desc(self, table, i, addr, length, flags, nxt):
        struct.pack_into("<QIHH", self.ram, table + 16 * i, addr, length,
                         flags, nxt)

    def chain(self, bufs, indirect_at=None):
        """bufs: (gpa, len, writable) in order; returns the head."""
        head = self.next_desc
        if indirect_at is not None:
            for i, (a, n, w) in enumerate(bufs):
                last = i == len(bufs) - 1
                self.desc(indirect_at, i, a, n,
                          (WRITE if w else 0) | (0 if last else NEXT),
                          0 if last else i + 1)
            self.desc(DESC, head, indirect_at, 16 * len(bufs), INDIRECT, 0)
            self.next_desc = (head + 1) % self.size
        else:
            idx = head
            for i, (a, n, w) in enumerate(bufs):
                last = i == len(bufs) - 1
                nxt = (idx + 1) % self.size
                self.desc(DESC, idx, a, n,
                          (WRITE if w else 0) | (0 if last else NEXT),
                          0 if last else nxt)
                idx = nxt
            self.next_desc = idx
        self.heads.append(head)
        return head

    def request(self, rtype, sector, data=None, data_len=0, data_write=False,
                indirect_at=None, data_at=DATA):
        hdr = HDRS + 32 * self.nreq
        self.nreq += 1
        struct.pack_into("<IIQ", self.ram, hdr, rtype, 0, sector)
        bufs = [(hdr, 16, False)]
        if data is not None:
            self.ram[data_at:data_at + len(data)] = data
            data_len = len(data)
        if data_len:
            bufs.append((data_at, data_len, data_write))
        bufs.append((hdr + 16, 1, True))
        return self.chain(bufs, indirect_at)

    def image(self, flags, used_event=0):
        for i, h in enumerate(self.heads):
            struct.pack_into("<H", self.ram, AVAIL + 4 + 2 * (i % self.size), h)
        struct.pack_into("<HH", self.ram, AVAIL, 0, len(self.heads))
        struct.pack_into("<H", self.ram, AVAIL + 4 + 2 * self.size, used_event)
        end = max(i for i, b in enumerate(self.ram) if b) + 1
        return (bytes([self.size_log2, flags]) +
                struct.pack("<HHH", DESC, AVAIL, USED) + bytes(self.ram[:end]))


def segs(*triples):
    return b"".join(struct.pack("<QII", s, n, f) for s, n, f in triples)


def virtq_seeds():
    all_f = F_INDIRECT | F_EVENT | F_FLUSH | F_DISCARD | F_WZ
    q = Queue()
    q.request(T_OUT, 2, data=bytes(range(256)) * 4)
    q.request(T_IN, 2, data_len=1024, data_write=True, data_at=DATA + 0x400)
    q.request(T_FLUSH, 0)
    q.request(T_GET_ID, 0, data_len=20, data_write=True, data_at=DATA + 0x800)
    yield "rw_flush_id", q.image(all_f)

    q = Queue()
    q.request(T_OUT, 8, data=b"\xab" * 1024, indirect_at=0x600)
    q.request(T_IN, 0, data_len=512, data_write=True, indirect_at=0x680,
              data_at=DATA + 0x400)
    yield "indirect", q.image(all_f | F_DEFER)

    q = Queue()
    q.request(T_DISCARD, 0, data=segs((0, 8, 0), (16, 8, 0)))
    q.request(T_WZ, 0, data=segs((32, 8, 1)), data_at=DATA + 0x100)
    q.request(T_DISCARD, 0, data=segs((0, 8, 1)), data_at=DATA + 0x200)
    yield "discard_wz", q.image(all_f)

    q = Queue()
    for i in range(5):
        q.request(T_OUT, i * 8, data=bytes([i + 1]) * 512, data_at=DATA + i * 512)
    yield "writethrough_deferred", q.image(F_EVENT | F_DEFER, used_event=3)

    q = Queue()
    q.request(T_OUT, 0, data=b"\x01" * 512)
    q.request(T_IN, 63, data_len=1024, data_write=True, data_at=DATA + 0x200)
    yield "ro_bounds", q.image(F_RO | F_FLUSH)

    q = Queue()
    q.request(T_IN, 8, data_len=4096, data_write=True)
    q.request(T_IN, 1, data_len=4096, data_write=True, data_at=DATA + 0x1000)
    yield "blocks_4k", q.image(F_4K | F_FLUSH | F_INDIRECT)


# --- fw_cfg: [n le16][RAM image n bytes] + ops (op, port offset, count, bytes)
def fw_write16(off, v):
    return bytes([0x03, off, 0]) + struct.pack("<H", v)


def fw_write32(off, v):
    return bytes([0x05, off, 0]) + struct.pack("<I", v)


def fw_read(off, count):
    return bytes([0x00, off, count - 1])


def fw_dma(desc_gpa):
    return (fw_write32(4, struct.unpack("<I", struct.pack(">I", desc_gpa >> 32))[0]) +
            fw_write32(8, struct.unpack("<I", struct.pack(">I", desc_gpa & 0xffffffff))[0]))


def fw_dma_op(at, control, length, addr, wide=False):
    """A DMA op (bit 6): descriptor written at RAM offset `at`, started."""
    return (bytes([0x40 | (0x20 if wide else 0), 0, 0]) + struct.pack("<H", at) +
            struct.pack(">IIQ", control, length, addr))


def fw_seeds():
    ram = bytearray(0x100)
    # DMA descriptors (big-endian): control, length, address
    struct.pack_into(">IIQ", ram, 0x00, (0x19 << 16) | 0x08 | 0x02, 64, 0x1000)
    struct.pack_into(">IIQ", ram, 0x10, (0x20 << 16) | 0x08 | 0x02, 300, 0x2000)
    struct.pack_into(">IIQ", ram, 0x20, 0x04, 8, 0)
    struct.pack_into(">IIQ", ram, 0x30, 0x10, 8, 0x3000)
    img = struct.pack("<H", len(ram)) + bytes(ram)
    yield "signature", img + fw_write16(0, 0) + fw_read(1, 4) + fw_read(4, 8)
    yield "dir_dma", img + fw_dma(0x00) + fw_dma(0x10) + fw_dma(0x20)
    yield "cmdline", (img + fw_write16(0, 0x14) + fw_read(1, 4) +
                      fw_write16(0, 0x15) + fw_read(1, 20) + fw_dma(0x30))
    # SeaBIOS's sequence: directory, a file by select+read, skip then
    # read, a write (refused), a destination outside RAM.
    yield "dma_ops", (img + fw_dma_op(0x100, (0x19 << 16) | 0x0A, 4, 0x1000) +
                      fw_dma_op(0x110, 0x02, 128, 0x1004) +
                      fw_dma_op(0x120, (0x21 << 16) | 0x0A, 16, 0x2000, True) +
                      fw_dma_op(0x130, (0x22 << 16) | 0x08, 0, 0) +
                      fw_dma_op(0x140, 0x04, 5, 0) +
                      fw_dma_op(0x150, 0x02, 32, 0x2100) +
                      fw_dma_op(0x160, 0x10, 4, 0x3000) +
                      fw_dma_op(0x170, 0x02, 64, 0xFFF0))


def main():
    out = sys.argv[1]
    for name, seeds in (("virtq", virtq_seeds()), ("fw_cfg", fw_seeds())):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        for fname, blob in seeds:
            with open(os.path.join(d, fname), "wb") as f:
                f.write(blob)


if __name__ == "__main__":
    main()
