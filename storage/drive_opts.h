/* -drive options in QEMU's spelling, parsed by a pure function (no I/O), so
 * the CLI, the config file and the unit tests share one grammar:
 *
 *   file=PATH|nbd://HOST[:PORT]/EXPORT|nbd+unix:///EXPORT?socket=PATH
 *   format=raw|qcow2|vmdk|vdi|vpc|vhdx|qed     (default: probed, see below)
 *   if=virtio                                   (the only interface)
 *   media=disk                                  (cdrom is not supported)
 *   readonly=on|off  (also read-only=)
 *   cache=writeback|none|writethrough|directsync|unsafe   (default writeback)
 *   discard=ignore|unmap  (also off|on, as QEMU)          (default ignore)
 *   aio=io_uring|threads  (default: io_uring, threads if the host forbids it)
 *   serial=TEXT  (at most 20 bytes: virtio-blk's ID field)
 *   id=NAME      (a letter, then letters, digits, '-', '.', '_')
 *   queues=N     (also num-queues=; 1..16 virtio-blk request queues.
 *                Default: one per vCPU, at most 4 on one node and at most
 *                8 in a cluster VM; QEMU spells it -device
 *                virtio-blk-pci,num-queues=N)
 *   serve=auto|node0  (cluster VMs: auto serves queue q on the node running
 *                vCPU q mod vCPUs; node0 serves every queue on node 0,
 *                as a single-node device does.  Default auto)
 *
 * As in QEMU, options are separated by ',' and a ',,' inside a value is a
 * literal comma; booleans take on|off|yes|no|true|false and a bare "readonly"
 * means readonly=on.  Unlike QEMU, an option given twice is an error (QEMU
 * silently keeps the last one, which hides typos in long command lines).
 *
 * Without format=, block__open probes the file as QEMU does: a known image
 * magic selects that format, anything else is raw.  Probed raw images get
 * QEMU's protection: a guest write to the first 512 bytes that would make
 * the image look like another format is refused, and block__warning() says
 * so; format=raw removes both.
 *
 * cache= maps to QEMU's three switches exactly:
 *   mode          O_DIRECT  guest sees a write cache  flush reaches disk
 *   writeback     no        yes                       yes
 *   none          yes       yes                       yes
 *   writethrough  no        no (every write is FUA)   yes
 *   directsync    yes       no (every write is FUA)   yes
 *   unsafe        no        yes                       no: flush is a no-op
 */
#ifndef KRG_VMM_STORAGE_DRIVE_OPTS_H
#define KRG_VMM_STORAGE_DRIVE_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#define DRIVE_FILE_MAX 4096
#define DRIVE_SERIAL_MAX 20     /* VIRTIO_BLK_ID_BYTES */
#define DRIVE_ID_MAX 63
#define DRIVE_QUEUES_LIMIT 16   /* VIRTIO_BLK_MAX_QUEUES */

enum drive_format {
	DRIVE_FORMAT_PROBE,     /* not given: decided by block__open */
	DRIVE_FORMAT_RAW,
	DRIVE_FORMAT_QCOW2,
	DRIVE_FORMAT_VMDK,
	DRIVE_FORMAT_VDI,
	DRIVE_FORMAT_VPC,
	DRIVE_FORMAT_VHDX,
	DRIVE_FORMAT_QED,
};

enum drive_cache {
	DRIVE_CACHE_WRITEBACK,
	DRIVE_CACHE_NONE,
	DRIVE_CACHE_WRITETHROUGH,
	DRIVE_CACHE_DIRECTSYNC,
	DRIVE_CACHE_UNSAFE,
};

enum drive_aio {
	DRIVE_AIO_AUTO,         /* io_uring, else the thread pool */
	DRIVE_AIO_IO_URING,     /* io_uring or fail */
	DRIVE_AIO_THREADS,
};

struct drive_opts {
	char file[DRIVE_FILE_MAX];
	enum drive_format format;
	bool read_only;
	enum drive_cache cache;
	bool discard_unmap;     /* discard=unmap: guest discards punch holes */
	enum drive_aio aio;
	char serial[DRIVE_SERIAL_MAX + 1];
	char id[DRIVE_ID_MAX + 1];
	unsigned num_queues;    /* queues=; 0: the machine's default */
	bool serve_node0;       /* serve=node0 */
	/* Not settable from the text: how long block__open waits for
	 * qemu-storage-daemon to start (0: 10 s).  Tests shorten it. */
	unsigned start_timeout_ms;
};

/* Parses TEXT (without the "-drive" itself) into *out, which is fully
 * (re)initialised first.  Returns 0, or -1 with one line in err. */
int drive_opts__parse(const char *text, struct drive_opts *out, char *err,
		      size_t errlen);

/* The defaults the parser starts from (file empty). */
void drive_opts__init(struct drive_opts *o);

/* The derived cache switches of o->cache (table above). */
bool drive_opts__direct(const struct drive_opts *o);
bool drive_opts__write_cache(const struct drive_opts *o);
bool drive_opts__no_flush(const struct drive_opts *o);

/* "raw", "qcow2", ... and "probe"; QEMU's driver names. */
const char *drive_opts__format_name(enum drive_format f);
const char *drive_opts__cache_name(enum drive_cache c);

/* True if file= names an NBD URI rather than a host file. */
bool drive_opts__is_uri(const char *file);

#endif
