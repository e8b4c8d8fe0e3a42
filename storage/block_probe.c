/* Image format probing from the first bytes of a file, as QEMU probes:
 * only magics, never heuristics on contents, so a raw disk is raw unless it
 * starts with another format's signature.  Pure: buffers in, verdicts out.
 * It decides which driver opens the image; QEMU itself parses it. */
#include <inttypes.h>
#include <string.h>

#include "storage/block_priv.h"
#include "vmm/errf.h"

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[1] << 8 | p[0];
}

static bool starts(const uint8_t *buf, size_t len, const char *magic,
		   size_t mlen)
{
	return len >= mlen && !memcmp(buf, magic, mlen);
}

enum probe_result block__probe(const uint8_t *buf, size_t len)
{
	if (starts(buf, len, "QFI\xfb", 4)) {
		if (len >= 8 && be32(buf + 4) == 1)
			return PROBE_QCOW1;
		return PROBE_QCOW2;
	}
	if (starts(buf, len, "QED\0", 4))
		return PROBE_QED;
	if (len >= 0x44 && le32(buf + 0x40) == 0xbeda107f)
		return PROBE_VDI;
	if (starts(buf, len, "KDMV", 4) || starts(buf, len, "COWD", 4) ||
	    starts(buf, len, "# Disk DescriptorFile", 21))
		return PROBE_VMDK;
	if (starts(buf, len, "conectix", 8))
		return PROBE_VPC;
	if (starts(buf, len, "vhdxfile", 8))
		return PROBE_VHDX;
	if (starts(buf, len, "LUKS\xba\xbe", 6))
		return PROBE_LUKS;
	if (starts(buf, len, "Bochs Virtual HD Image", 22) ||
	    starts(buf, len, "#!/bin/sh\n#V2.0 Format\n", 23) ||
	    starts(buf, len, "WithoutFreeSpace", 16) ||
	    starts(buf, len, "WithouFreSpacExt", 16))
		return PROBE_OTHER_QEMU;
	return PROBE_RAW;
}

const char *block__probe_name(enum probe_result r)
{
	switch (r) {
	case PROBE_RAW: return "raw";
	case PROBE_QCOW2: return "qcow2";
	case PROBE_VMDK: return "vmdk";
	case PROBE_VDI: return "vdi";
	case PROBE_VPC: return "vpc";
	case PROBE_VHDX: return "vhdx";
	case PROBE_QED: return "qed";
	case PROBE_QCOW1: return "qcow (version 1)";
	case PROBE_LUKS: return "LUKS";
	case PROBE_OTHER_QEMU: return "bochs/cloop/parallels";
	}
	return "?";
}

enum drive_format block__probe_format(enum probe_result r)
{
	switch (r) {
	case PROBE_RAW: return DRIVE_FORMAT_RAW;
	case PROBE_QCOW2: return DRIVE_FORMAT_QCOW2;
	case PROBE_VMDK: return DRIVE_FORMAT_VMDK;
	case PROBE_VDI: return DRIVE_FORMAT_VDI;
	case PROBE_VPC: return DRIVE_FORMAT_VPC;
	case PROBE_VHDX: return DRIVE_FORMAT_VHDX;
	case PROBE_QED: return DRIVE_FORMAT_QED;
	default: return DRIVE_FORMAT_PROBE;
	}
}

/* QEMU opens a qcow2 file cut short after its header without complaint
 * (the missing tables read as zeros) and would then allocate clusters over
 * nothing; a sanity check on two offsets catches the common case, a
 * download or copy cut short.  Only starts are checked: QEMU may leave the
 * last cluster of the file partly unwritten. */
int block__qcow2_fits(const uint8_t *hdr, size_t len, uint64_t file_size,
		      char *err, size_t errlen)
{
	uint32_t cluster_bits, l1_size;
	uint64_t l1_off, rt_off;

	if (len < 72 || block__probe(hdr, len) != PROBE_QCOW2)
		return 0;       /* QEMU names what is wrong with it */
	cluster_bits = be32(hdr + 20);
	l1_size = be32(hdr + 36);
	l1_off = be64(hdr + 40);
	rt_off = be64(hdr + 48);
	if (cluster_bits < 9 || cluster_bits > 21)
		return 0;
	if (rt_off >= file_size) {
		errf(err, errlen, "truncated qcow2 image: its refcount table "
		     "is at offset %" PRIu64 " but the file has %" PRIu64
		     " bytes", rt_off, file_size);
		return -1;
	}
	if (l1_size && l1_off >= file_size) {
		errf(err, errlen, "truncated qcow2 image: its L1 table is at "
		     "offset %" PRIu64 " but the file has %" PRIu64 " bytes",
		     l1_off, file_size);
		return -1;
	}
	return 0;
}
