/* I/O APIC: pins in, apic_msg out.  Edge pins send on the asserting edge
 * (and lose edges while masked, as the 82093AA does); level pins send
 * while asserted, then wait for the LAPIC's EOI (remote IRR), and send
 * again after the EOI if the line is still asserted.  Messages are sent
 * under the IOAPIC lock so remote IRR and delivery stay in order: the
 * router never calls back into the IOAPIC, and the LAPIC reports level
 * EOIs only after dropping its own lock. */
#include "vcpu/ioapic.h"

#include <string.h>

#define RTE_LOW_WRITABLE 0x0001AFFFull  /* delivery status, remote IRR ro */
#define RTE_HIGH_WRITABLE 0xFFFF0000ull /* dest 63:56, ext. dest 55:48 */

static bool asserted(const struct ioapic *io, unsigned pin)
{
	bool line = (io->s.lines >> pin) & 1;

	return line != !!(io->s.redir[pin] & IOAPIC_RTE_ACTIVE_LOW);
}

static int send(struct ioapic *io, unsigned pin)
{
	uint64_t rte = io->s.redir[pin];
	struct apic_msg m;

	memset(&m, 0, sizeof(m));
	/* Bits 55:48 (extended destination, Intel's remappable format bit
	 * 48) are stored for the guest but mean nothing without an IOMMU. */
	m.dest = (uint32_t)(rte >> 56);
	m.source = -1;
	m.vector = rte & 0xFF;
	m.delivery = (rte >> 8) & 7;
	m.dest_logical = !!(rte & IOAPIC_RTE_DEST_LOGICAL);
	m.shorthand = APIC_SH_NONE;
	m.level = 1;
	m.trigger_level = !!(rte & IOAPIC_RTE_LEVEL);
	return io->env.send ? io->env.send(io->env.ctx, &m) : 0;
}

/* A level pin: deliver if asserted, unmasked and not awaiting an EOI. */
static void service_level(struct ioapic *io, unsigned pin)
{
	uint64_t *rte = &io->s.redir[pin];

	if (!(*rte & IOAPIC_RTE_LEVEL) || (*rte & IOAPIC_RTE_MASKED) ||
	    (*rte & IOAPIC_RTE_REMOTE_IRR) || !asserted(io, pin))
		return;
	if (send(io, pin) > 0)
		*rte |= IOAPIC_RTE_REMOTE_IRR;
}

static void reset_locked(struct ioapic *io)
{
	for (unsigned i = 0; i < IOAPIC_NR_PINS; i++)
		io->s.redir[i] = IOAPIC_RTE_MASKED;
	io->s.ioregsel = 0;
}

void ioapic__init(struct ioapic *io, uint8_t id, const struct ioapic_env *env)
{
	memset(&io->s, 0, sizeof(io->s));
	memset(&io->env, 0, sizeof(io->env));
	if (env)
		io->env = *env;
	pthread_mutex_init(&io->lock, NULL);
	io->s.id = (uint32_t)(id & 0xF) << 24;
	reset_locked(io);
}

void ioapic__destroy(struct ioapic *io)
{
	pthread_mutex_destroy(&io->lock);
}

void ioapic__reset(struct ioapic *io)
{
	pthread_mutex_lock(&io->lock);
	reset_locked(io);
	pthread_mutex_unlock(&io->lock);
}

static uint32_t reg_read(struct ioapic *io)
{
	uint32_t sel = io->s.ioregsel;

	switch (sel) {
	case IOAPIC_REG_ID:
	case IOAPIC_REG_ARB:
		return io->s.id;
	case IOAPIC_REG_VERSION:
		return ((uint32_t)(IOAPIC_NR_PINS - 1) << 16) | IOAPIC_VERSION;
	}
	if (sel >= IOAPIC_REG_REDIR &&
	    sel < IOAPIC_REG_REDIR + 2 * IOAPIC_NR_PINS) {
		uint64_t rte = io->s.redir[(sel - IOAPIC_REG_REDIR) / 2];

		return (sel & 1) ? (uint32_t)(rte >> 32) : (uint32_t)rte;
	}
	return 0;
}

static void reg_write(struct ioapic *io, uint32_t val)
{
	uint32_t sel = io->s.ioregsel;
	unsigned pin;
	uint64_t *rte;

	if (sel == IOAPIC_REG_ID) {
		io->s.id = val & 0x0F000000;
		return;
	}
	if (sel < IOAPIC_REG_REDIR || sel >= IOAPIC_REG_REDIR + 2 * IOAPIC_NR_PINS)
		return; /* version, arbitration: read-only */
	pin = (sel - IOAPIC_REG_REDIR) / 2;
	rte = &io->s.redir[pin];
	if (sel & 1) {
		*rte = (*rte & 0xFFFFFFFFull) |
		       (((uint64_t)val << 32) & (RTE_HIGH_WRITABLE << 32));
		return;
	}
	*rte = (*rte & ~0xFFFFFFFFull) | (*rte & IOAPIC_RTE_REMOTE_IRR) |
	       (val & RTE_LOW_WRITABLE);
	/* Remote IRR only means something for level pins. */
	if (!(*rte & IOAPIC_RTE_LEVEL))
		*rte &= ~IOAPIC_RTE_REMOTE_IRR;
	/* Unmasking (or re-targeting) an asserted level pin delivers it. */
	service_level(io, pin);
}

static void eoi_locked(struct ioapic *io, uint8_t vector)
{
	for (unsigned pin = 0; pin < IOAPIC_NR_PINS; pin++) {
		uint64_t *rte = &io->s.redir[pin];

		if ((*rte & 0xFF) != vector || !(*rte & IOAPIC_RTE_REMOTE_IRR))
			continue;
		*rte &= ~IOAPIC_RTE_REMOTE_IRR;
		service_level(io, pin);
	}
}

void ioapic__mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		  bool is_write)
{
	struct ioapic *io = opaque;
	uint32_t val = 0;
	uint32_t n = len < 4 ? len : 4;

	if (!data || !len)
		return;
	if (!is_write)
		memset(data, 0, len);
	else
		memcpy(&val, data, n);
	pthread_mutex_lock(&io->lock);
	switch (offset) {
	case IOAPIC_IOREGSEL:
		if (is_write)
			io->s.ioregsel = val & 0xFF;
		else
			val = io->s.ioregsel;
		break;
	case IOAPIC_IOWIN:
		if (is_write)
			reg_write(io, val);
		else
			val = reg_read(io);
		break;
	case IOAPIC_EOI:
		if (is_write)
			eoi_locked(io, (uint8_t)val);
		else
			val = 0;
		break;
	default:
		val = 0;
		break;
	}
	pthread_mutex_unlock(&io->lock);
	if (!is_write)
		memcpy(data, &val, n);
}

void ioapic__set_irq(struct ioapic *io, unsigned pin, bool level)
{
	bool was;

	if (pin >= IOAPIC_NR_PINS)
		return;
	pthread_mutex_lock(&io->lock);
	was = asserted(io, pin);
	if (level)
		io->s.lines |= 1u << pin;
	else
		io->s.lines &= ~(1u << pin);
	if (io->s.redir[pin] & IOAPIC_RTE_LEVEL)
		service_level(io, pin);
	else if (!was && asserted(io, pin) &&
		 !(io->s.redir[pin] & IOAPIC_RTE_MASKED))
		send(io, pin);
	pthread_mutex_unlock(&io->lock);
}

void ioapic__eoi(struct ioapic *io, uint8_t vector)
{
	pthread_mutex_lock(&io->lock);
	eoi_locked(io, vector);
	pthread_mutex_unlock(&io->lock);
}

void ioapic__post_load(struct ioapic *io)
{
	pthread_mutex_lock(&io->lock);
	io->s.ioregsel &= 0xFF;
	io->s.id &= 0x0F000000;
	io->s.lines &= (1u << IOAPIC_NR_PINS) - 1;
	for (unsigned pin = 0; pin < IOAPIC_NR_PINS; pin++)
		service_level(io, pin);
	pthread_mutex_unlock(&io->lock);
}
