#include "vmm/devices/pci_host.h"

#include <string.h>

#define DEVFN_HOST_BRIDGE PCI_DEVFN(0, 0)
#define DEVFN_ISA_BRIDGE PCI_DEVFN(1, 0)

void pci_dev__set_u8(struct pci_dev *dev, uint32_t reg, uint8_t v)
{
	if (reg < PCI_CONFIG_SIZE)
		dev->config[reg] = v;
}

void pci_dev__set_u16(struct pci_dev *dev, uint32_t reg, uint16_t v)
{
	pci_dev__set_u8(dev, reg, (uint8_t)v);
	pci_dev__set_u8(dev, reg + 1, (uint8_t)(v >> 8));
}

void pci_dev__set_u32(struct pci_dev *dev, uint32_t reg, uint32_t v)
{
	pci_dev__set_u16(dev, reg, (uint16_t)v);
	pci_dev__set_u16(dev, reg + 2, (uint16_t)(v >> 16));
}

uint32_t pci_dev__get(const struct pci_dev *dev, uint32_t reg, uint32_t len)
{
	uint32_t v = 0, i;

	for (i = 0; i < len && i < 4; i++)
		if (reg + i < PCI_CONFIG_SIZE)
			v |= (uint32_t)dev->config[reg + i] << (8 * i);
	return v;
}

static void set_mask(uint8_t *mask, uint32_t reg, uint32_t len, uint32_t v)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		mask[reg + i] = (uint8_t)(v >> (8 * i));
}

void pci_dev__init(struct pci_dev *dev, uint8_t *config, uint16_t vendor,
		   uint16_t device, uint32_t class_code, uint8_t revision)
{
	memset(dev, 0, sizeof(*dev));
	dev->config = config;
	memset(config, 0, PCI_CONFIG_SIZE);
	pci_dev__set_u16(dev, PCI_CFG_VENDOR_ID, vendor);
	pci_dev__set_u16(dev, PCI_CFG_DEVICE_ID, device);
	pci_dev__set_u8(dev, PCI_CFG_REVISION, revision);
	pci_dev__set_u8(dev, PCI_CFG_CLASS_PROG, (uint8_t)class_code);
	pci_dev__set_u16(dev, PCI_CFG_CLASS_PROG + 1,
			 (uint16_t)(class_code >> 8));
	/* I/O, memory, bus master, parity, SERR, INTx disable. */
	set_mask(dev->wmask, PCI_CFG_COMMAND, 2, 0x0547);
	/* Error bits of the status register are write-1-to-clear. */
	set_mask(dev->w1cmask, PCI_CFG_STATUS, 2, 0xF900);
	dev->wmask[PCI_CFG_CACHE_LINE] = 0xFF;
	dev->wmask[PCI_CFG_LATENCY] = 0xFF;
	dev->wmask[PCI_CFG_INT_LINE] = 0xFF;
}

int pci_dev__set_bar(struct pci_dev *dev, int bar, enum pci_bar_type type,
		     uint64_t size, bool prefetchable)
{
	uint32_t reg = PCI_CFG_BAR0 + 4 * (uint32_t)bar;
	uint64_t mask = ~(size - 1);
	uint32_t flags;

	if (bar < 0 || bar >= PCI_NUM_BARS || !size || (size & (size - 1)))
		return -1;
	switch (type) {
	case PCI_BAR_IO:
		if (size < 4 || size > 0x10000)
			return -1;
		flags = 0x1;
		set_mask(dev->wmask, reg, 4, (uint32_t)mask & ~0x3u);
		break;
	case PCI_BAR_MEM32:
		if (size < 16 || size > 0x80000000ull)
			return -1;
		flags = prefetchable ? 0x8 : 0;
		set_mask(dev->wmask, reg, 4, (uint32_t)mask & ~0xFu);
		break;
	case PCI_BAR_MEM64:
		if (bar == PCI_NUM_BARS - 1 || size < 16)
			return -1;
		flags = 0x4 | (prefetchable ? 0x8 : 0);
		set_mask(dev->wmask, reg, 4, (uint32_t)mask & ~0xFu);
		set_mask(dev->wmask, reg + 4, 4, (uint32_t)(mask >> 32));
		pci_dev__set_u32(dev, reg + 4, 0);
		dev->bar_type[bar + 1] = PCI_BAR_NONE;
		dev->bar_size[bar + 1] = 0;
		break;
	default:
		return -1;
	}
	pci_dev__set_u32(dev, reg, flags);
	dev->bar_type[bar] = (uint8_t)type;
	dev->bar_size[bar] = size;
	return 0;
}

uint64_t pci_dev__bar_addr(const struct pci_dev *dev, int bar)
{
	uint32_t reg = PCI_CFG_BAR0 + 4 * (uint32_t)bar;
	uint64_t lo;

	if (bar < 0 || bar >= PCI_NUM_BARS)
		return 0;
	lo = pci_dev__get(dev, reg, 4);
	switch (dev->bar_type[bar]) {
	case PCI_BAR_IO:
		return lo & ~0x3ull;
	case PCI_BAR_MEM32:
		return lo & ~0xFull;
	case PCI_BAR_MEM64:
		return (lo & ~0xFull) |
		       ((uint64_t)pci_dev__get(dev, reg + 4, 4) << 32);
	default:
		return 0;
	}
}

static void check_remap(struct pci_dev *dev)
{
	uint16_t cmd = (uint16_t)pci_dev__get(dev, PCI_CFG_COMMAND, 2);
	int i;

	for (i = 0; i < PCI_NUM_BARS; i++) {
		uint64_t addr;
		bool live;

		if (dev->bar_type[i] == PCI_BAR_NONE)
			continue;
		addr = pci_dev__bar_addr(dev, i);
		live = dev->bar_type[i] == PCI_BAR_IO
			       ? (cmd & PCI_COMMAND_IO)
			       : (cmd & PCI_COMMAND_MEMORY);
		if (addr == dev->bar_addr[i] && live == dev->bar_live[i])
			continue;
		dev->bar_addr[i] = addr;
		dev->bar_live[i] = live;
		if (dev->bar_remap)
			dev->bar_remap(dev, i, addr, live);
	}
}

/* The guest moved a PIRQ route (the host's lock is held). */
static void isa_config_write(struct pci_dev *dev, uint32_t reg, uint32_t len)
{
	if (reg < PIIX_PIRQ_ROUTE + PCI_NR_PIRQS &&
	    reg + len > PIIX_PIRQ_ROUTE)
		pci_host__pirq_sync(dev->opaque);
}

static void init_builtins(struct pci_host *host)
{
	struct pci_dev *hb = &host->host_bridge, *isa = &host->isa_bridge;
	int i;

	/* i440FX PMC: the ids SeaBIOS and Linux recognise. */
	pci_dev__init(hb, host->s.host_bridge, 0x8086, 0x1237, 0x060000, 0x02);
	pci_dev__set_u16(hb, PCI_CFG_COMMAND,
			 PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	pci_dev__set_u16(hb, PCI_CFG_SUBSYS_VENDOR, PCI_QEMU_SUBSYS_VENDOR);
	pci_dev__set_u16(hb, PCI_CFG_SUBSYS_ID, PCI_QEMU_SUBSYS_ID);
	/* PMCCFG..PAM6 (0x50-0x5F) and SMRAM (0x72) keep what is written:
	 * SeaBIOS programs the PAM registers to shadow itself. */
	for (i = 0x50; i <= 0x5F; i++)
		hb->wmask[i] = 0xFF;
	hb->wmask[0x72] = 0xFF;
	pci_dev__set_u8(hb, 0x72, 0x02);

	/* PIIX3 function 0: single-function here (no IDE/USB functions). */
	pci_dev__init(isa, host->s.isa_bridge, 0x8086, 0x7000, 0x060100, 0x00);
	pci_dev__set_u16(isa, PCI_CFG_COMMAND,
			 PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
				 PCI_COMMAND_MASTER);
	pci_dev__set_u16(isa, PCI_CFG_SUBSYS_VENDOR, PCI_QEMU_SUBSYS_VENDOR);
	pci_dev__set_u16(isa, PCI_CFG_SUBSYS_ID, PCI_QEMU_SUBSYS_ID);
	isa->config_write = isa_config_write;
	isa->opaque = host;
	/* PIRQA-D routing (0x80 = not routed), the motherboard IRQ/DMA
	 * registers and the misc control registers firmware writes. */
	for (i = 0x60; i <= 0x63; i++) {
		isa->wmask[i] = 0x8F;
		pci_dev__set_u8(isa, (uint32_t)i, 0x80);
	}
	isa->wmask[0x4C] = 0xFF;
	isa->wmask[0x4E] = 0xFF;
	isa->wmask[0x4F] = 0xFF;
	isa->wmask[0x69] = 0xFE;
	isa->wmask[0x6A] = 0xFF;
	isa->wmask[0x70] = 0xCF;
	pci_dev__set_u8(isa, 0x70, 0x80);
	isa->wmask[0x76] = 0x87;
	isa->wmask[0x77] = 0x87;
	pci_dev__set_u8(isa, 0x76, 0x0C);
	pci_dev__set_u8(isa, 0x77, 0x0C);
	isa->wmask[0x80] = 0x7F;
	isa->wmask[0x82] = 0x0F;
	for (i = 0xA0; i <= 0xAF; i++)
		isa->wmask[i] = 0xFF;
}

void pci_host__init(struct pci_host *host,
		    const struct machine_control *control)
{
	memset(host, 0, sizeof(*host));
	pthread_mutex_init(&host->lock, NULL);
	pthread_mutex_init(&host->pirq.lock, NULL);
	if (control)
		host->control = *control;
	init_builtins(host);
	memcpy(host->pirq.route, host->s.isa_bridge + PIIX_PIRQ_ROUTE,
	       PCI_NR_PIRQS);
	host->devs[DEVFN_HOST_BRIDGE] = &host->host_bridge;
	host->devs[DEVFN_ISA_BRIDGE] = &host->isa_bridge;
}

void pci_host__destroy(struct pci_host *host)
{
	pthread_mutex_destroy(&host->pirq.lock);
	pthread_mutex_destroy(&host->lock);
}

void pci_host__reset(struct pci_host *host)
{
	pthread_mutex_lock(&host->lock);
	host->s.config_address = 0;
	host->s.rcr = 0;
	init_builtins(host);
	pci_host__pirq_sync(host);
	pthread_mutex_unlock(&host->lock);
}

int pci_host__add_device(struct pci_host *host, uint8_t devfn,
			 struct pci_dev *dev)
{
	int ret = -1;

	pthread_mutex_lock(&host->lock);
	if (dev && dev->config && !host->devs[devfn]) {
		host->devs[devfn] = dev;
		ret = 0;
	}
	pthread_mutex_unlock(&host->lock);
	return ret;
}

static uint32_t ones(uint32_t len)
{
	return len >= 4 ? 0xFFFFFFFFu : (1u << (8 * len)) - 1;
}

static bool access_ok(uint32_t reg, uint32_t len)
{
	return (len == 1 || len == 2 || len == 4) && reg < PCI_CONFIG_SIZE &&
	       (reg & 3) + len <= 4;
}

static uint32_t config_read_locked(struct pci_host *host, uint8_t bus,
				   uint8_t devfn, uint32_t reg, uint32_t len)
{
	struct pci_dev *dev = bus == 0 ? host->devs[devfn] : NULL;

	if (!dev || !access_ok(reg, len))
		return ones(len);
	if (dev->config_read)
		dev->config_read(dev, reg, len);
	return pci_dev__get(dev, reg, len);
}

static void config_write_locked(struct pci_host *host, uint8_t bus,
				uint8_t devfn, uint32_t reg, uint32_t len,
				uint32_t val)
{
	struct pci_dev *dev = bus == 0 ? host->devs[devfn] : NULL;
	uint32_t i;

	if (!dev || !access_ok(reg, len))
		return;
	for (i = 0; i < len; i++) {
		uint32_t r = reg + i;
		uint8_t b = (uint8_t)(val >> (8 * i));
		uint8_t v = dev->config[r];

		v = (uint8_t)((v & ~dev->wmask[r]) | (b & dev->wmask[r]));
		v &= (uint8_t)~(b & dev->w1cmask[r]);
		dev->config[r] = v;
	}
	if (dev->config_write)
		dev->config_write(dev, reg, len);
	/* The command register (decode enables) or a BAR changed. */
	if ((reg < PCI_CFG_COMMAND + 2 && reg + len > PCI_CFG_COMMAND) ||
	    (reg < PCI_CFG_BAR0 + 4 * PCI_NUM_BARS && reg + len > PCI_CFG_BAR0))
		check_remap(dev);
}

uint32_t pci_host__config_read(struct pci_host *host, uint8_t bus,
			       uint8_t devfn, uint32_t reg, uint32_t len)
{
	uint32_t v;

	pthread_mutex_lock(&host->lock);
	v = config_read_locked(host, bus, devfn, reg, len);
	pthread_mutex_unlock(&host->lock);
	return v;
}

void pci_host__config_write(struct pci_host *host, uint8_t bus, uint8_t devfn,
			    uint32_t reg, uint32_t len, uint32_t val)
{
	pthread_mutex_lock(&host->lock);
	config_write_locked(host, bus, devfn, reg, len, val);
	pthread_mutex_unlock(&host->lock);
}

static uint32_t get_le(const uint8_t *data, uint32_t len)
{
	uint32_t v = 0, i;

	for (i = 0; i < len && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *data, uint32_t len, uint32_t v)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		data[i] = i < 4 ? (uint8_t)(v >> (8 * i)) : 0xFF;
}

/* CONFIG_DATA at 0xCFC + off (off 0-3). */
static void data_access(struct pci_host *host, uint32_t off, uint8_t *data,
			uint32_t len, bool is_write)
{
	uint32_t addr = host->s.config_address;
	uint8_t bus = (uint8_t)(addr >> 16), devfn = (uint8_t)(addr >> 8);
	uint32_t reg = (addr & 0xFC) + off;
	bool ok = (addr & PCI_CONFIG_ENABLE) && off + len <= 4;

	if (is_write) {
		if (ok)
			config_write_locked(host, bus, devfn, reg, len,
					    get_le(data, len));
		return;
	}
	put_le(data, len, ok ? config_read_locked(host, bus, devfn, reg, len)
			     : ones(len));
}

void pci_host__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		  bool is_write)
{
	struct pci_host *host = opaque;
	bool reset = false;

	pthread_mutex_lock(&host->lock);
	if (offset >= 4 && offset < 8) {
		data_access(host, (uint32_t)offset - 4, data, len, is_write);
	} else if (offset == 0 && len == 4) {
		if (is_write)
			/* Bits 30:24 and 1:0 are reserved (read as 0). */
			host->s.config_address = get_le(data, 4) & 0x80FFFFFCu;
		else
			put_le(data, 4, host->s.config_address);
	} else if (offset == 1 && len == 1) {
		if (is_write) {
			/* RST_CPU self-clears, so every write with it set is
			 * a 0 -> 1 transition; SYS_RST (hard vs soft) makes
			 * no difference to a VM. */
			reset = data[0] & PCI_RCR_RST_CPU;
			host->s.rcr = data[0] & (uint8_t)~PCI_RCR_RST_CPU;
		} else {
			data[0] = host->s.rcr;
		}
	} else if (!is_write) {
		memset(data, 0xFF, len);
	}
	pthread_mutex_unlock(&host->lock);
	if (reset)
		machine_control__request(&host->control, MACHINE_REQ_RESET, 0);
}

void pci_host__post_load(struct pci_host *host)
{
	int devfn;

	pthread_mutex_lock(&host->lock);
	host->s.config_address &= 0x80FFFFFCu;
	pci_host__pirq_sync(host);
	for (devfn = 0; devfn < 256; devfn++) {
		struct pci_dev *dev = host->devs[devfn];
		int i;

		if (!dev)
			continue;
		/* Forget what was announced: the restored config decides. */
		for (i = 0; i < PCI_NUM_BARS; i++) {
			dev->bar_addr[i] = ~0ull;
			dev->bar_live[i] = false;
		}
		check_remap(dev);
	}
	pthread_mutex_unlock(&host->lock);
}
