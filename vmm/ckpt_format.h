/* Cluster checkpoints, the pure parts: the snapshot directory's manifest,
 * the page-file format and the barrier's state machine.  No I/O here (the
 * callers read and write the bytes), so every format is unit-tested with
 * corrupt input (tests/unit/test_ckpt_format.c, test_ckpt_barrier.c).
 *
 * A snapshot directory holds:
 *   MANIFEST        "KRG-SNAPSHOT <version> <crc64 hex>\n" then JSON: the
 *                   VM description, the frozen disk images, and every other
 *                   file with its size and CRC-64 (the header line's CRC
 *                   covers the JSON text after the line)
 *   devices.state   node 0's state blob: machine facts, CPUID, devices
 *   cpus-N.state    node N's vCPUs (state blob, sections vcpuI/lapicI/...)
 *   pages-N.bin     the guest pages node N wrote (format below)
 * HACKING.md ("Checkpoints") tells the whole story. */
#ifndef KRG_VMM_CKPT_FORMAT_H
#define KRG_VMM_CKPT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/vm_config.h"

#define CKPT_FORMAT_VERSION 1
#define CKPT_MANIFEST_NAME "MANIFEST"
#define CKPT_MANIFEST_MAGIC "KRG-SNAPSHOT"
/* The manifest never needs more; a larger file is not one. */
#define CKPT_MANIFEST_MAX (1u << 20)
#define CKPT_MAX_FILES (2 * VM_MAX_NODES + 2)
#define CKPT_NAME_MAX 32
#define CKPT_PAGE_SIZE 4096u

/* CRC-64 (ECMA-182, reflected: the polynomial of xz) of buf, continuing
 * from crc (0 to start). */
uint64_t ckpt__crc64(uint64_t crc, const void *buf, size_t len);

/* ---- The manifest ---- */

enum ckpt_file_kind {
	CKPT_FILE_DEVICES = 1,	/* devices.state */
	CKPT_FILE_CPUS,		/* cpus-N.state */
	CKPT_FILE_PAGES,	/* pages-N.bin */
};

struct ckpt_file {
	char name[CKPT_NAME_MAX];	/* derived from kind and node */
	uint32_t kind;			/* enum ckpt_file_kind */
	uint32_t node;			/* the node that wrote it */
	uint64_t size;
	uint64_t crc;			/* ckpt__crc64 of the whole file */
	uint64_t pages;			/* page files: pages it holds */
};

/* A disk as the snapshot left it: the image the VM wrote until the
 * checkpoint, never written again (the VM went on in an overlay).  size
 * and mtime_ns identify it: a restore refuses an image that changed. */
struct ckpt_drive {
	char file[VM_PATH_MAX];		/* absolute */
	char format[16];		/* "raw", "qcow2", ... */
	char cache[16];			/* drive_opts__cache_name */
	char serial[24];
	char id[64];
	bool read_only;
	bool discard_unmap;
	uint64_t size;
	int64_t mtime_ns;
};

struct ckpt_manifest {
	uint32_t version;		/* CKPT_FORMAT_VERSION */
	int64_t created_ns;		/* CLOCK_REALTIME */
	char name[256];			/* -name, may be empty */
	uint64_t ram_mib;
	uint32_t nr_vcpus;
	char cpu_model[512];
	char pvm_profile[8];		/* "auto", "on", "off" */
	bool numa_flat;
	/* The cluster the snapshot was taken on: cpus-N.state holds the
	 * vCPUs that ran on node N. */
	uint32_t nr_nodes;
	uint8_t vcpu_node[VM_MAX_VCPUS];
	uint64_t pages;			/* stored pages, all files */
	uint32_t nr_files;
	struct ckpt_file files[CKPT_MAX_FILES];
	uint32_t nr_drives;
	struct ckpt_drive drives[VM_MAX_DRIVES];
};

/* "pages-3.bin" etc. into name (CKPT_NAME_MAX bytes). */
void ckpt__file_name(char *name, enum ckpt_file_kind kind, unsigned node);

/* The manifest as text (malloc'd into *out, the caller frees it).  0, or
 * -1 with one line in err. */
int ckpt_manifest__encode(const struct ckpt_manifest *m, char **out,
			  size_t *len, char *err, size_t errlen);
/* Parses and validates len bytes: magic, version, the CRC, the JSON
 * shape, every value's range, file names matching their kind and node,
 * a devices file, a cpus file for every node that ran vCPUs, a page file
 * per node.  0, or -1 with one line in err (a wrong version says which). */
int ckpt_manifest__decode(struct ckpt_manifest *m, const char *buf,
			  size_t len, char *err, size_t errlen);
/* The file of kind written by node (node ignored for DEVICES), or NULL. */
const struct ckpt_file *ckpt_manifest__file(const struct ckpt_manifest *m,
					    enum ckpt_file_kind kind,
					    unsigned node);

/* ---- Page files (pages-N.bin) ----
 *
 *   [0, 4096)            header (little-endian, rest zero)
 *   [4096, data_off)     index: nr_runs x {u64 gpa, u64 pages}, sorted by
 *                        gpa, non-overlapping, zero-padded to 4 KiB
 *   [data_off, end)      the runs' pages back to back, in index order
 *
 * Everything is known before the first byte is written (the pages to
 * store are decided at the barrier), so the file is written in one
 * sequential pass and the manifest's CRC is computed on the way.  Data
 * is 4 KiB-aligned: a restore reads it straight into guest RAM. */
#define CKPT_PAGES_MAGIC "KRGPAGES"
#define CKPT_PAGES_VERSION 1
#define CKPT_PAGES_HEADER_SIZE 4096u
#define CKPT_RUN_SIZE 16u
/* A header claiming more runs than this is corrupt (one per page of
 * 1 TiB of RAM would be 2^28). */
#define CKPT_PAGES_MAX_RUNS (1u << 28)

struct ckpt_pages_header {
	uint32_t version;
	uint32_t page_size;
	uint32_t node;
	uint32_t nr_runs;
	uint64_t nr_pages;
	uint64_t data_off;
	uint32_t index_crc;	/* ckpt__crc64 of the index, low 32 bits */
};

struct ckpt_run {
	uint64_t gpa;
	uint64_t pages;
};

/* RAM as [gpa, gpa + size) ranges, sorted: the page file's runs must lie
 * inside them. */
struct ckpt_ram {
	unsigned nr;
	struct {
		uint64_t gpa, size;
	} r[4];
};

/* Where the data of a file with nr_runs runs starts. */
uint64_t ckpt_pages__data_off(uint32_t nr_runs);
/* The 4096-byte header block. */
void ckpt_pages__encode_header(uint8_t *block,
			       const struct ckpt_pages_header *h);
/* The index block(s): out must hold data_off - 4096 bytes. */
void ckpt_pages__encode_index(uint8_t *out, const struct ckpt_run *runs,
			      uint32_t nr_runs);
/* Checks a header block against the file size.  0, or -1 with one line. */
int ckpt_pages__decode_header(struct ckpt_pages_header *h,
			      const uint8_t *block, uint64_t file_size,
			      char *err, size_t errlen);
/* Decodes and checks the index (bytes = data_off - 4096 of them) into
 * runs[h->nr_runs]: CRC, order, alignment, inside ram, the page count. */
int ckpt_pages__decode_index(const struct ckpt_pages_header *h,
			     const uint8_t *bytes, const struct ckpt_ram *ram,
			     struct ckpt_run *runs, char *err, size_t errlen);

/* ---- The barrier ----
 *
 * Every vCPU of every node is parked first (PAUSE/PAUSED).  What can still
 * move is memory-coherence traffic that was under way (a request whose
 * vCPU parked before the grant came, messages held back by the minimum
 * hold time) and interrupts sent just before a vCPU parked.  Node 0 then
 * runs rounds: PROBE(r) to every node; each node releases its held
 * messages and sends MARK(r) to every other node on the latency channel
 * (FIFO per pair: everything it sent a peer before is delivered before the
 * mark); once a node has the probe and every peer's mark it REPORTs
 * (idle, DSM messages sent, DSM messages received).  The memory is quiet
 * when two consecutive rounds report every node idle, the same counters,
 * and as many messages received as sent (Mattern's four-counter rule: one
 * round alone can pair a send counted late with a receive counted early).
 * Nothing can start new traffic afterwards: vCPUs are parked and node 0's
 * devices are paused. */

#define CKPT_BARRIER_MAX_NODES VM_MAX_NODES

struct ckpt_report {
	bool idle;
	uint64_t sent, recv;
};

enum ckpt_barrier_result {
	CKPT_B_WAIT,		/* more reports are due this round */
	CKPT_B_AGAIN,		/* round complete, not quiet: run another */
	CKPT_B_QUIET,		/* memory is quiet */
	CKPT_B_IGNORED,		/* stale round or a duplicate: dropped */
	CKPT_B_BAD,		/* no such node */
};

struct ckpt_barrier {
	unsigned nr_nodes;
	uint32_t round;		/* current round, 0 before the first */
	unsigned pending;
	bool have[CKPT_BARRIER_MAX_NODES];
	bool prev_valid;
	struct ckpt_report cur[CKPT_BARRIER_MAX_NODES];
	struct ckpt_report prev[CKPT_BARRIER_MAX_NODES];
};

/* Round numbers go on across checkpoints (a late message of an earlier,
 * failed one is then recognisably stale): last_round is the last used. */
void ckpt_barrier__init(struct ckpt_barrier *b, unsigned nr_nodes,
			uint32_t last_round);
/* Starts the next round and returns its number (never 0). */
uint32_t ckpt_barrier__next_round(struct ckpt_barrier *b);
enum ckpt_barrier_result ckpt_barrier__report(struct ckpt_barrier *b,
					      unsigned node, uint32_t round,
					      const struct ckpt_report *r);

/* A node's side of a round: the probe from node 0 and the marks of its
 * peers, which may arrive before the probe (a peer probed earlier) but
 * never more than one round ahead (node 0 starts round r + 1 only after
 * this node reported r), so early marks are all of one round. */
struct ckpt_marks {
	unsigned nr_nodes, self;
	uint32_t round;		/* the latest probe */
	bool probed;
	bool reported;
	uint64_t got[2];	/* marks of round `round`, of early_round */
	uint32_t early_round;	/* the next probe's, from early marks */
};

void ckpt_marks__init(struct ckpt_marks *k, unsigned nr_nodes,
		      unsigned self);
/* Returns 1 when the round is complete (report now), 0 when marks are
 * still due, -1 for a probe that goes backwards. */
int ckpt_marks__probe(struct ckpt_marks *k, uint32_t round);
/* 1: complete (report now), 0: not yet (or a late mark of an older
 * round, dropped), -1: a mark that makes no sense (bad sender, early
 * marks of two different rounds, a duplicate). */
int ckpt_marks__mark(struct ckpt_marks *k, unsigned sender, uint32_t round);

#endif
