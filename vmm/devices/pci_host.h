/* PCI host: configuration mechanism 1 on bus 0, an i440FX-like host
 * bridge (00:00.0) and a PIIX3-like ISA bridge (00:01.0), the reset
 * control register at 0xCF9, and a registry for more devices.
 *
 * Register: PIO base PCI_HOST_PORT (0xCF8), length PCI_HOST_PORT_LEN (8),
 * handler pci_host__io, opaque = the struct pci_host:
 *   0xCF8 dword        CONFIG_ADDRESS (reads back what was written)
 *   0xCF9 byte         reset control (bit 2 rising: MACHINE_REQ_RESET)
 *   0xCFC-0xCFF        CONFIG_DATA, any width within the dword
 *   other 0xCF8-0xCFB  ignored (0xCFB "config mechanism" included)
 *
 * INTx (QEMU's i440FX wiring, which SeaBIOS assumes when it fills in
 * PCI_INTERRUPT_LINE and which the ACPI _PRT repeats): pin P (0 = INTA) of
 * the device in slot S drives PIRQ pci_host__intx_pirq(S, P); PIRQ n is GSI
 * PCI_PIRQ_GSI0 + n (IOAPIC pins 16-19) and, while the PIIX3 route
 * register 0x60 + n enables it, also ISA IRQ (register & 0xF) of the 8259
 * pair.  Devices raise their line through pci_host__intx_sink().
 *
 * A device is a struct pci_dev: 256 bytes of config space (kept in the
 * owner's saved state), a mask of writable bits, a mask of write-1-to-
 * clear bits, BAR sizes, and callbacks.  All config accesses are
 * serialised by the host's lock; callbacks run with it held and must not
 * call back into pci_host. */
#ifndef KRG_VMM_DEVICES_PCI_HOST_H
#define KRG_VMM_DEVICES_PCI_HOST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/device.h"

#define PCI_HOST_PORT 0xCF8
#define PCI_HOST_PORT_LEN 8
#define PCI_HOST_STATE_VERSION 1
#define PCI_CONFIG_SIZE 256
#define PCI_NUM_BARS 6
#define PCI_DEVFN(dev, fn) ((uint8_t)(((dev) << 3) | (fn)))

/* Type 0 header offsets (PCI_CFG_ prefix: <linux/pci_regs.h> owns the
 * plain names). */
#define PCI_CFG_VENDOR_ID 0x00
#define PCI_CFG_DEVICE_ID 0x02
#define PCI_CFG_COMMAND 0x04
#define PCI_CFG_STATUS 0x06
#define PCI_CFG_REVISION 0x08
#define PCI_CFG_CLASS_PROG 0x09
#define PCI_CFG_CACHE_LINE 0x0C
#define PCI_CFG_LATENCY 0x0D
#define PCI_CFG_HEADER_TYPE 0x0E
#define PCI_CFG_BAR0 0x10
#define PCI_CFG_SUBSYS_VENDOR 0x2C
#define PCI_CFG_SUBSYS_ID 0x2E
#define PCI_CFG_ROM 0x30
#define PCI_CFG_CAP_PTR 0x34
#define PCI_CFG_INT_LINE 0x3C
#define PCI_CFG_INT_PIN 0x3D

#define PCI_COMMAND_IO 0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP_LIST 0x0010

#define PCI_CONFIG_ENABLE 0x80000000u
#define PCI_RCR_SYS_RST 0x02
#define PCI_RCR_RST_CPU 0x04

#define PCI_PIRQ_GSI0 16
#define PCI_NR_PIRQS 4
#define PIIX_PIRQ_ROUTE 0x60     /* PIRQA-D route registers, 0x60-0x63 */
#define PIIX_PIRQ_DISABLED 0x80
/* QEMU's subsystem ids on its chipset devices; SeaBIOS checks the host
 * bridge's to say "Running on QEMU". */
#define PCI_QEMU_SUBSYS_VENDOR 0x1AF4
#define PCI_QEMU_SUBSYS_ID 0x1100

/* The PIRQ (0-3) that INTx pin `pin` (0 = INTA) of slot `slot` drives. */
static inline unsigned pci_host__intx_pirq(unsigned slot, unsigned pin)
{
	return (slot + pin + PCI_NR_PIRQS - 1) % PCI_NR_PIRQS;
}

enum pci_bar_type {
	PCI_BAR_NONE = 0,
	PCI_BAR_IO,
	PCI_BAR_MEM32,
	PCI_BAR_MEM64, /* takes this BAR and the next */
};

struct pci_dev {
	uint8_t *config; /* PCI_CONFIG_SIZE bytes in the owner's state */
	uint8_t wmask[PCI_CONFIG_SIZE];   /* bits the guest may write */
	uint8_t w1cmask[PCI_CONFIG_SIZE]; /* bits a 1 clears (status) */
	uint64_t bar_size[PCI_NUM_BARS];
	uint8_t bar_type[PCI_NUM_BARS];
	/* Last decoding announced through bar_remap. */
	uint64_t bar_addr[PCI_NUM_BARS];
	bool bar_live[PCI_NUM_BARS];
	/* A BAR's decoded address or its decode enable (command register)
	 * changed.  The address may be anything the guest wrote (sizing
	 * with decoding on, overlaps): validate before mapping it. */
	void (*bar_remap)(struct pci_dev *dev, int bar, uint64_t addr,
			  bool enabled);
	/* Before a read of [reg, reg+len): refresh config if needed. */
	void (*config_read)(struct pci_dev *dev, uint32_t reg, uint32_t len);
	/* After a write of [reg, reg+len) went through the masks. */
	void (*config_write)(struct pci_dev *dev, uint32_t reg, uint32_t len);
	void *opaque;
};

struct pci_host_state {
	uint32_t config_address;
	uint8_t rcr;
	uint8_t pad[3];
	uint8_t host_bridge[PCI_CONFIG_SIZE];
	uint8_t isa_bridge[PCI_CONFIG_SIZE];
};
_Static_assert(sizeof(struct pci_host_state) == 8 + 2 * PCI_CONFIG_SIZE,
	       "pci_host_state is a saved format: bump PCI_HOST_STATE_VERSION");

/* The PIRQ lines: how many sources hold each one high (a device calls
 * its sink only when its own line changes), the route registers' copy, and
 * which ISA IRQs they drive.  Its own lock, taken after the host's and a
 * device's and before the interrupt controllers'. */
struct pci_pirq {
	pthread_mutex_t lock;
	struct irq_sink out;               /* the machine's GSI lines */
	uint8_t route[PCI_NR_PIRQS];
	uint16_t asserted[PCI_NR_PIRQS];
	uint16_t isa_level;                /* bit n: ISA IRQ n driven high */
};

struct pci_host {
	struct pci_host_state s;
	pthread_mutex_t lock;
	struct pci_pirq pirq;
	struct machine_control control;
	struct pci_dev *devs[256]; /* bus 0, indexed by devfn */
	struct pci_dev host_bridge, isa_bridge;
};

/* Fills a type 0 header: ids, class (base << 16 | sub << 8 | prog-if),
 * writable command bits, cache line, latency and interrupt line. */
void pci_dev__init(struct pci_dev *dev, uint8_t *config, uint16_t vendor,
		   uint16_t device, uint32_t class_code, uint8_t revision);
/* size: a power of two, >= 16 for memory and >= 4 for I/O BARs (sizing
 * by writing all ones then returns ~(size - 1) plus the type bits).
 * Returns 0, or -1 on a bad bar/size. */
int pci_dev__set_bar(struct pci_dev *dev, int bar, enum pci_bar_type type,
		     uint64_t size, bool prefetchable);
/* The address a BAR decodes (use from callbacks: no locking). */
uint64_t pci_dev__bar_addr(const struct pci_dev *dev, int bar);
/* Little-endian helpers on dev->config for device builders. */
void pci_dev__set_u8(struct pci_dev *dev, uint32_t reg, uint8_t v);
void pci_dev__set_u16(struct pci_dev *dev, uint32_t reg, uint16_t v);
void pci_dev__set_u32(struct pci_dev *dev, uint32_t reg, uint32_t v);
uint32_t pci_dev__get(const struct pci_dev *dev, uint32_t reg, uint32_t len);

void pci_host__init(struct pci_host *host,
		    const struct machine_control *control);
void pci_host__destroy(struct pci_host *host);
/* Machine reset: CONFIG_ADDRESS, 0xCF9 and the built-in bridges. */
void pci_host__reset(struct pci_host *host);
/* Where the PIRQ lines end: the machine's GSI sink (before any device
 * raises INTx). */
void pci_host__set_irq_out(struct pci_host *host, const struct irq_sink *out);
/* The sink devices on bus 0 raise INTx through: GSIs PCI_PIRQ_GSI0 to
 * PCI_PIRQ_GSI0 + 3 are the PIRQs (routed as above), any other GSI passes
 * through unchanged. */
struct irq_sink pci_host__intx_sink(struct pci_host *host);
/* Internal (pci_host.c -> pci_pirq.c): the ISA bridge's route registers
 * changed (reset, guest write, restore); called with host->lock held. */
void pci_host__pirq_sync(struct pci_host *host);
/* devfn 0x00 and 0x08 are the built-ins.  Returns 0, or -1 if taken. */
int pci_host__add_device(struct pci_host *host, uint8_t devfn,
			 struct pci_dev *dev);
/* io_handler_fn for 0xCF8-0xCFF. */
void pci_host__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		  bool is_write);
/* Config access by address (len 1, 2 or 4, within one dword).  Reads of
 * a missing device or a bad access return all ones. */
uint32_t pci_host__config_read(struct pci_host *host, uint8_t bus,
			       uint8_t devfn, uint32_t reg, uint32_t len);
void pci_host__config_write(struct pci_host *host, uint8_t bus, uint8_t devfn,
			    uint32_t reg, uint32_t len, uint32_t val);
/* After the host's and every device owner's config was restored:
 * announces every BAR of every device again through bar_remap. */
void pci_host__post_load(struct pci_host *host);

#endif
