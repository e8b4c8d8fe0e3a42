/* SRAT and SLIT bodies from a NUMA layout.
 *
 * Linux (drivers/acpi/numa/srat.c, arch/x86/mm/numa.c) is the consumer kept
 * in mind: revision >= 2 so proximity domains are 32 bits wide; memory
 * entries not hot-pluggable (those are ignored or kept movable); the first
 * range starts at 0, so the RAM below 1 MiB belongs to node 0 and every
 * e820 RAM byte is in some node (Linux drops NUMA altogether when more than
 * 1 MiB of RAM is left without a node); a SLIT with a diagonal other than
 * 10 or an off-diagonal entry <= 10 is thrown away. */
#include "guestfw/acpi_numa.h"

#include <inttypes.h>
#include <string.h>

#include "vmm/bytes.h"
#include "vmm/errf.h"

#define SDT_HDR_LEN 36

bool acpi_numa__enabled(const struct acpi_numa *numa)
{
	return numa && numa->layout &&
	       !(numa->layout->flags & NUMA_LAYOUT_FLAT);
}

static uint8_t distance(const struct acpi_numa *numa, unsigned i, unsigned j)
{
	if (numa->distance)
		return numa->distance[i * numa->layout->nr_nodes + j];
	return i == j ? ACPI_NUMA_LOCAL_DISTANCE : ACPI_NUMA_REMOTE_DISTANCE;
}

int acpi_numa__check(const struct acpi_numa *numa, unsigned nr_vcpus,
		     char *err, size_t errlen)
{
	const struct numa_layout *l = numa->layout;

	if (!l) {
		errf(err, errlen, "acpi: NUMA tables asked for without a layout");
		return -1;
	}
	if (numa_layout__check(l, NULL, 0, err, errlen))
		return -1;
	if (l->nr_vcpus != nr_vcpus) {
		errf(err, errlen,
		     "acpi: the NUMA layout has %" PRIu32 " vCPUs, the machine %u",
		     l->nr_vcpus, nr_vcpus);
		return -1;
	}
	for (unsigned i = 0; i < l->nr_nodes; i++) {
		for (unsigned j = 0; j < l->nr_nodes; j++) {
			uint8_t d = distance(numa, i, j);

			if (i == j ? d == ACPI_NUMA_LOCAL_DISTANCE :
				     d > ACPI_NUMA_LOCAL_DISTANCE)
				continue;
			errf(err, errlen,
			     "acpi: NUMA distance %u from node %u to %u, must be %s",
			     d, i, j, i == j ? "10" : "11-255");
			return -1;
		}
	}
	return 0;
}

static uint32_t apic_id_of(const uint32_t *apic_ids, unsigned i)
{
	return apic_ids ? apic_ids[i] : i;
}

/* The Local APIC structure's ID field is a byte and 0xFF means broadcast,
 * so larger IDs need the x2APIC form. */
static bool uses_lapic_entry(uint32_t apic_id)
{
	return apic_id < 0xFF;
}

size_t acpi_numa__srat_body_len(const struct acpi_numa *numa,
				const uint32_t *apic_ids)
{
	const struct numa_layout *l = numa->layout;
	size_t len = ACPI_SRAT_HDR_LEN - SDT_HDR_LEN;

	for (unsigned i = 0; i < l->nr_vcpus; i++)
		len += uses_lapic_entry(apic_id_of(apic_ids, i)) ?
		       ACPI_SRAT_LAPIC_LEN : ACPI_SRAT_X2APIC_LEN;
	return len + (size_t)l->nr_ranges * ACPI_SRAT_MEMORY_LEN;
}

size_t acpi_numa__slit_body_len(const struct acpi_numa *numa)
{
	size_t n = numa->layout->nr_nodes;

	return ACPI_SLIT_HDR_LEN - SDT_HDR_LEN + n * n;
}

/* Clock domain stays 0: every vCPU runs off the same virtual clock. */
static uint8_t *lapic_affinity(uint8_t *e, uint32_t domain, uint32_t apic_id)
{
	memset(e, 0, ACPI_SRAT_LAPIC_LEN);
	e[0] = ACPI_SRAT_LAPIC;
	e[1] = ACPI_SRAT_LAPIC_LEN;
	e[2] = (uint8_t)domain;             /* bits 7:0 */
	e[3] = (uint8_t)apic_id;
	put_le32(e + 4, ACPI_SRAT_ENABLED);
	e[9] = (uint8_t)(domain >> 8);      /* bits 31:8 */
	e[10] = (uint8_t)(domain >> 16);
	e[11] = (uint8_t)(domain >> 24);
	return e + ACPI_SRAT_LAPIC_LEN;
}

static uint8_t *x2apic_affinity(uint8_t *e, uint32_t domain, uint32_t apic_id)
{
	memset(e, 0, ACPI_SRAT_X2APIC_LEN);
	e[0] = ACPI_SRAT_X2APIC;
	e[1] = ACPI_SRAT_X2APIC_LEN;
	put_le32(e + 4, domain);
	put_le32(e + 8, apic_id);
	put_le32(e + 12, ACPI_SRAT_ENABLED);
	return e + ACPI_SRAT_X2APIC_LEN;
}

static uint8_t *memory_affinity(uint8_t *e, const struct numa_range *g)
{
	memset(e, 0, ACPI_SRAT_MEMORY_LEN);
	e[0] = ACPI_SRAT_MEMORY;
	e[1] = ACPI_SRAT_MEMORY_LEN;
	put_le32(e + 2, g->node);
	put_le64(e + 8, g->gpa);            /* base low, base high */
	put_le64(e + 16, g->size);          /* length low, length high */
	put_le32(e + 28, ACPI_SRAT_ENABLED);
	return e + ACPI_SRAT_MEMORY_LEN;
}

void acpi_numa__srat_body(const struct acpi_numa *numa,
			  const uint32_t *apic_ids, uint8_t *p)
{
	const struct numa_layout *l = numa->layout;

	/* Offset 36: a reserved field that must read 1, then 8 reserved. */
	memset(p, 0, ACPI_SRAT_HDR_LEN - SDT_HDR_LEN);
	put_le32(p, 1);
	p += ACPI_SRAT_HDR_LEN - SDT_HDR_LEN;
	for (unsigned i = 0; i < l->nr_vcpus; i++) {
		uint32_t id = apic_id_of(apic_ids, i);

		if (uses_lapic_entry(id))
			p = lapic_affinity(p, l->vcpu_node[i], id);
		else
			p = x2apic_affinity(p, l->vcpu_node[i], id);
	}
	for (unsigned i = 0; i < l->nr_ranges; i++)
		p = memory_affinity(p, &l->range[i]);
}

void acpi_numa__slit_body(const struct acpi_numa *numa, uint8_t *p)
{
	unsigned n = numa->layout->nr_nodes;

	put_le64(p, n);
	p += ACPI_SLIT_HDR_LEN - SDT_HDR_LEN;
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < n; j++)
			*p++ = distance(numa, i, j);
}
