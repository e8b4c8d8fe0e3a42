/* The guest's view of the cluster's NUMA layout: the ACPI SRAT (which
 * proximity domain each processor and each RAM range belongs to) and SLIT
 * (relative distances between domains).  Proximity domain = node number.
 *
 * acpi__build() emits both, listed in the XSDT/RSDT, when
 * acpi_config.numa is set and its layout is not flat; this file fills
 * their bodies (everything after the 36-byte table header, which acpi.c
 * writes like every other table's).  Pure functions, no KVM. */
#ifndef KRG_GUESTFW_ACPI_NUMA_H
#define KRG_GUESTFW_ACPI_NUMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/numa_layout.h"

#define ACPI_SRAT_REVISION 3
#define ACPI_SLIT_REVISION 1
#define ACPI_NUMA_LOCAL_DISTANCE 10
#define ACPI_NUMA_REMOTE_DISTANCE 20

/* SRAT structure types and sizes (ACPI 6.x, 5.2.16). */
#define ACPI_SRAT_HDR_LEN 48         /* table header + reserved fields */
#define ACPI_SRAT_LAPIC 0
#define ACPI_SRAT_LAPIC_LEN 16
#define ACPI_SRAT_MEMORY 1
#define ACPI_SRAT_MEMORY_LEN 40
#define ACPI_SRAT_X2APIC 2
#define ACPI_SRAT_X2APIC_LEN 24
#define ACPI_SRAT_ENABLED 0x1u
#define ACPI_SRAT_MEM_HOTPLUGGABLE 0x2u /* never set: no memory hotplug */
#define ACPI_SLIT_HDR_LEN 44         /* table header + locality count */

struct acpi_numa {
	const struct numa_layout *layout;
	/* nr_nodes * nr_nodes bytes, row-major (distance[i * nr_nodes + j]
	 * from node i to node j): 10 on the diagonal, 11-255 elsewhere.  NULL
	 * for 10 local and 20 remote. */
	const uint8_t *distance;
};

/* True if the guest gets SRAT and SLIT: numa is set and not flat. */
bool acpi_numa__enabled(const struct acpi_numa *numa);

/* Validates numa for a machine of nr_vcpus vCPUs with these APIC IDs
 * (NULL: APIC ID = vCPU index): a valid layout (numa_layout__check) for
 * exactly nr_vcpus vCPUs, and a valid distance matrix.  Returns 0, or -1
 * with one line in err. */
int acpi_numa__check(const struct acpi_numa *numa, unsigned nr_vcpus,
		     char *err, size_t errlen);

/* Body sizes, i.e. table length - 36, of a checked numa. */
size_t acpi_numa__srat_body_len(const struct acpi_numa *numa,
				const uint32_t *apic_ids);
size_t acpi_numa__slit_body_len(const struct acpi_numa *numa);

/* Write the bodies into p, which holds exactly the length above: the SRAT
 * has one processor structure per vCPU in vCPU order (Local APIC for APIC
 * IDs below 255, x2APIC otherwise), then one memory structure per range in
 * gpa order; all enabled, none hot-pluggable. */
void acpi_numa__srat_body(const struct acpi_numa *numa,
			  const uint32_t *apic_ids, uint8_t *p);
void acpi_numa__slit_body(const struct acpi_numa *numa, uint8_t *p);

#endif
