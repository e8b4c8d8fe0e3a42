/* I/O forwarding: a vCPU on a node without devices has its port-I/O and
 * MMIO exits (not the LAPIC page, which stays local) carried out by the
 * node hosting the devices.  The vCPU thread sends IO_REQUEST and blocks
 * in its own slot until the matching IO_RESPONSE (filled in by the
 * transport's receive thread), a timeout, or an abort at VM stop.  The
 * server on the device node validates the request and runs it through
 * io_bus__dispatch on worker threads, never on the transport's receive
 * thread: a device may touch guest RAM (DSM faults need that thread) or
 * block, and must not stall the latency channel.
 *
 * Wire formats (little-endian, exact lengths, reserved bytes 0):
 *
 * IO_REQUEST (128), 24 bytes + data:
 *    0 u32 id (per vCPU, from 1)  4 u16 vcpu  6 u8 space (0 PIO, 1 MMIO)
 *    7 u8 size  8 u8 flags (bit 0: write)  9 u8 0  10 u16 count
 *   12 u32 0   16 u64 addr   24 data[count * size] for writes, none for
 *   reads.  PIO: size 1/2/4, port + size <= 0x10000, count >= 1 (a REP
 *   INS/OUTS batch: count elements at the same port, in order).  MMIO:
 *   size 1..8 (KVM splits an access crossing a page into fragments of any
 *   length, and the local path takes them too), count 1, addr + size <=
 *   2^52.  count * size <= IO_FORWARD_MAX_DATA; the client splits a
 *   longer REP batch into several requests.
 *
 * IO_RESPONSE (129), 8 bytes + data:
 *    0 u32 id  4 u16 vcpu  6 u8 status (0 OK, 1 REJECTED)
 *    7 u8 flags (bit 0: every element was claimed by a device)
 *    8 data[count * size] for an OK read, none otherwise.
 *
 * A response must match the vCPU's outstanding request exactly (sender is
 * the device node, vcpu, id, data length); anything else - a wrong id, a
 * duplicate, a response after a timeout - is a protocol error. */
#ifndef KRG_VMM_IO_FORWARD_H
#define KRG_VMM_IO_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net_types.h"
#include "vmm/io_bus.h"

#define IO_FORWARD_T_REQUEST (NET_TYPE_IO_FIRST + 0)
#define IO_FORWARD_T_RESPONSE (NET_TYPE_IO_FIRST + 1)
_Static_assert(IO_FORWARD_T_RESPONSE <= NET_TYPE_IO_LAST, "io type range");

#define IO_FORWARD_REQ_HDR 24
#define IO_FORWARD_RESP_HDR 8
#define IO_FORWARD_MAX_DATA 4096u
#define IO_FORWARD_MMIO_LIMIT (1ull << 52) /* x86 MAXPHYADDR */
#define IO_FORWARD_DEFAULT_TIMEOUT_MS 5000u
#define IO_FORWARD_MAX_VCPUS 65535

enum io_forward_status { IO_FORWARD_OK = 0, IO_FORWARD_REJECTED = 1 };

struct io_forward_req {
	uint32_t id;
	uint16_t vcpu;
	uint8_t space;    /* enum io_space */
	uint8_t size;     /* bytes per element */
	uint8_t is_write;
	uint16_t count;   /* elements */
	uint64_t addr;    /* port or guest-physical address */
};

struct io_forward_resp {
	uint32_t id;
	uint16_t vcpu;
	uint8_t status;   /* enum io_forward_status */
	uint8_t claimed;
};

/* How either side reaches the other, and how it reports. */
struct io_forward_ops {
	void *ctx;
	/* One message to node on the latency channel; 0 or -1.  Never waits
	 * for an answer (the server sends from its workers, the client from
	 * vCPU threads). */
	int (*send)(void *ctx, unsigned node, unsigned type, const void *buf,
		    size_t len);
	/* A protocol error, one line (the wiring logs it and stops the VM);
	 * may be NULL. */
	void (*error)(void *ctx, unsigned node, const char *what);
};

/* ---- wire (pure) ---- */

/* The access rules above; 0 or -EINVAL with a reason. */
int io_forward__check_access(unsigned space, uint64_t addr, uint32_t size,
			     uint32_t count, char *err, size_t errlen);
/* Encoders return the length written or -1 (buffer too small, invalid
 * access).  data: count * size bytes for a write request / an OK read
 * response, else ignored. */
int io_forward__encode_request(uint8_t *buf, size_t buflen,
			       const struct io_forward_req *req,
			       const uint8_t *data);
int io_forward__encode_response(uint8_t *buf, size_t buflen,
				const struct io_forward_resp *resp,
				const uint8_t *data, uint32_t data_len);
/* Decoders validate everything the message alone can tell; *data points
 * into buf (NULL when there is none).  0 or -EPROTO with a reason. */
int io_forward__decode_request(const uint8_t *buf, size_t len,
			       struct io_forward_req *req,
			       const uint8_t **data, char *err, size_t errlen);
int io_forward__decode_response(const uint8_t *buf, size_t len,
				struct io_forward_resp *resp,
				const uint8_t **data, uint32_t *data_len,
				char *err, size_t errlen);

/* ---- client: nodes without devices ---- */

struct io_forward_client_config {
	int nr_vcpus;
	unsigned server_node;    /* the device node */
	unsigned timeout_ms;     /* 0: IO_FORWARD_DEFAULT_TIMEOUT_MS */
	struct io_forward_ops ops;
};

struct io_forward_stats {
	uint64_t requests, timeouts, aborted, rejected, protocol_errors;
};

struct io_forward_client;

struct io_forward_client *
io_forward__client_new(const struct io_forward_client_config *cfg);
/* No request may be running (vCPU threads joined). */
void io_forward__client_free(struct io_forward_client *c);

/* Carries out count accesses of size bytes at addr on the device node, for
 * vcpu, from that vCPU's thread (one request per vCPU at a time); data
 * holds count * size bytes (written, or filled by a read).  *claimed (may
 * be NULL) tells whether a device took every element.  Returns 0, or:
 * -EINVAL bad access (err says why; nothing sent), -EBUSY the vCPU has a
 * request running, -EIO the send failed, -EPROTO the device node rejected
 * it, -ETIMEDOUT no answer in time, -ECANCELED aborted (VM stopping).
 * err names the device node for the last four. */
int io_forward__request(struct io_forward_client *c, int vcpu,
			enum io_space space, uint64_t addr, uint32_t size,
			uint32_t count, bool is_write, uint8_t *data,
			bool *claimed, char *err, size_t errlen);
/* An IO_RESPONSE from the transport (receive thread).  0, or -EPROTO
 * (reported through ops.error; no slot was touched). */
int io_forward__client_handle(struct io_forward_client *c, unsigned sender,
			      unsigned type, const void *payload, size_t len);
/* VM stop or the device node went down: every waiting request returns
 * -ECANCELED now, every later one at once.  Any thread, idempotent. */
void io_forward__client_abort(struct io_forward_client *c);
void io_forward__client_stats(struct io_forward_client *c,
			      struct io_forward_stats *out);

/* ---- server: the device node ---- */

struct io_forward_server_config {
	struct io_bus *bus;
	int nr_vcpus;
	unsigned self;
	/* Optional, nr_vcpus entries (copied): a request for vCPU i must come
	 * from node vcpu_node[i]. */
	const uint8_t *vcpu_node;
	unsigned workers;        /* threads running devices; 0: 2 */
	struct io_forward_ops ops;
};

struct io_forward_server;

/* Starts the workers; NULL on bad configuration or no resources. */
struct io_forward_server *
io_forward__server_new(const struct io_forward_server_config *cfg);
/* Stops the workers (queued requests are dropped: the VM is stopping). */
void io_forward__server_free(struct io_forward_server *s);
/* An IO_REQUEST from the transport (receive thread): validated, queued for
 * a worker, never dispatched here.  A malformed request whose vCPU and id
 * are readable is answered REJECTED so the vCPU does not wait for its
 * timeout.  0, or -EPROTO (reported through ops.error). */
int io_forward__server_handle(struct io_forward_server *s, unsigned sender,
			      unsigned type, const void *payload, size_t len);
void io_forward__server_stats(struct io_forward_server *s,
			      struct io_forward_stats *out);
/* vCPU migration: requests for vcpu come from node from now on (the vCPU
 * has none in flight while it moves).  Any thread. */
void io_forward__server_set_vcpu_node(struct io_forward_server *s, int vcpu,
				      unsigned node);

#endif
