/* The PIIX3's PCI interrupt router: PIRQA-D to IOAPIC pins 16-19 always,
 * and to the ISA IRQs the firmware chose in the route registers (SeaBIOS:
 * 10, 10, 11, 11, level-triggered through the ELCR). */
#include <string.h>

#include "vmm/devices/pci_host.h"

/* IRQs a PIIX3 route register may name (0-2, 8 and 13 are reserved). */
#define PIRQ_ISA_OK 0xDEF8u

/* pirq->lock held.  Recomputes which ISA IRQs the PIRQs drive and moves
 * the lines that changed.  Like QEMU's PIIX3, the ISA line is the
 * machine's GSI < 16 line, so the IOAPIC's pin of that number follows it
 * too (what the MP table and ACPI say for a legacy IRQ). */
static void update_isa(struct pci_pirq *pr)
{
	uint16_t level = 0, changed;

	for (unsigned n = 0; n < PCI_NR_PIRQS; n++) {
		unsigned irq = pr->route[n] & 0x0F;

		if (pr->asserted[n] && !(pr->route[n] & PIIX_PIRQ_DISABLED) &&
		    (PIRQ_ISA_OK >> irq & 1))
			level |= (uint16_t)(1u << irq);
	}
	changed = level ^ pr->isa_level;
	pr->isa_level = level;
	for (unsigned irq = 0; irq < 16; irq++)
		if (changed >> irq & 1)
			irq_sink__set(&pr->out, irq, level >> irq & 1);
}

static void intx_set_level(void *ctx, unsigned gsi, bool level)
{
	struct pci_host *host = ctx;
	struct pci_pirq *pr = &host->pirq;
	unsigned n = gsi - PCI_PIRQ_GSI0;

	if (gsi < PCI_PIRQ_GSI0 || n >= PCI_NR_PIRQS) {
		irq_sink__set(&pr->out, gsi, level);
		return;
	}
	pthread_mutex_lock(&pr->lock);
	if (level && pr->asserted[n] < UINT16_MAX)
		pr->asserted[n]++;
	else if (!level && pr->asserted[n])
		pr->asserted[n]--;
	/* A shared line stays high while any source holds it. */
	irq_sink__set(&pr->out, gsi, pr->asserted[n] != 0);
	update_isa(pr);
	pthread_mutex_unlock(&pr->lock);
}

void pci_host__set_irq_out(struct pci_host *host, const struct irq_sink *out)
{
	pthread_mutex_lock(&host->pirq.lock);
	host->pirq.out = *out;
	pthread_mutex_unlock(&host->pirq.lock);
}

struct irq_sink pci_host__intx_sink(struct pci_host *host)
{
	return (struct irq_sink){ .set_level = intx_set_level, .ctx = host };
}

void pci_host__pirq_sync(struct pci_host *host)
{
	struct pci_pirq *pr = &host->pirq;

	pthread_mutex_lock(&pr->lock);
	memcpy(pr->route, host->s.isa_bridge + PIIX_PIRQ_ROUTE,
	       PCI_NR_PIRQS);
	update_isa(pr);
	pthread_mutex_unlock(&pr->lock);
}
