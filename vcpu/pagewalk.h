/* Guest page-table walk in software, for the emulation-failure fallback.
 *
 * When KVM gives up on a guest instruction the VMM may have to read a memory
 * operand itself, and only has the guest's virtual address.  This walks the
 * guest's own page tables (read through a guest-physical reader the caller
 * provides, which bounds every access to guest RAM) the way the CPU would for
 * a supervisor data read: paging off, 32-bit (with PSE 4 MiB pages), PAE,
 * 4-level and 5-level long mode with 1 GiB / 2 MiB / 4 KiB pages.
 *
 * Pure: no KVM, no global state.  Accessed/dirty bits are not set (the VMM
 * only reads), protection keys, SMAP and U/S are not checked, and PAE PDPTEs
 * are read from memory as a CR3 load would rather than from the CPU's cache.
 */
#ifndef KRG_VMM_PAGEWALK_H
#define KRG_VMM_PAGEWALK_H

#include <stddef.h>
#include <stdint.h>

#define PW_CR0_PE (1ull << 0)
#define PW_CR0_PG (1ull << 31)
#define PW_CR4_PSE (1ull << 4)
#define PW_CR4_PAE (1ull << 5)
#define PW_CR4_LA57 (1ull << 12)
#define PW_EFER_LME (1ull << 8)
#define PW_EFER_LMA (1ull << 10)
#define PW_EFER_NXE (1ull << 11)

/* Reads guest-physical memory: 0 on success, -1 when [gpa, gpa+len) is not
 * (entirely) guest RAM. */
typedef int (*pagewalk_read_gpa_fn)(void *ctx, uint64_t gpa, void *buf,
				    size_t len);

enum pagewalk_status {
	PAGEWALK_OK = 0,
	PAGEWALK_NOT_PRESENT,      /* a paging entry has P=0 (guest #PF) */
	PAGEWALK_NON_CANONICAL,    /* long mode address not canonical (#GP) */
	PAGEWALK_RESERVED,         /* reserved bit set in an entry (#PF) */
	PAGEWALK_TABLE_UNREADABLE, /* a paging structure is not in RAM */
	PAGEWALK_DATA_UNREADABLE,  /* the translated data is not in RAM */
	PAGEWALK_BAD_ARG,
};

struct pagewalk_cpu {
	uint64_t cr0, cr3, cr4, efer;
	unsigned maxphyaddr; /* guest CPUID 0x80000008 EAX[7:0]; 0 means 52 */
};

struct pagewalk_env {
	struct pagewalk_cpu cpu;
	pagewalk_read_gpa_fn read_gpa;
	void *ctx;
	/* Written by pagewalk__read_guest(), which can only return -1, so
	 * that the vCPU loop can still say why a read failed. */
	enum pagewalk_status last_status;
	uint64_t last_gva;
};

struct pagewalk_result {
	uint64_t gpa;       /* valid when PAGEWALK_OK */
	uint64_t page_size; /* 4 KiB, 2 MiB, 4 MiB or 1 GiB; 0 when paging off */
	unsigned level;     /* level of the last entry read (1 = PTE) */
	uint64_t entry;     /* that entry's value, for fault reports */
};

/* Translates one linear address.  In legacy (non long) modes only the low
 * 32 bits of @gva are used, as the CPU does. */
enum pagewalk_status pagewalk__translate(const struct pagewalk_env *env,
					 uint64_t gva,
					 struct pagewalk_result *res);

/* Reads @len bytes at linear address @gva, translating each 4 KiB piece
 * separately (a read may span pages mapped anywhere).  On failure
 * *@fault_gva (optional) is the first address that did not translate. */
enum pagewalk_status pagewalk__read_virt(const struct pagewalk_env *env,
					 uint64_t gva, void *buf, size_t len,
					 uint64_t *fault_gva);

/* Adapter with the emulator's read_guest signature; @ctx is a
 * struct pagewalk_env *, whose last_status/last_gva it updates. */
int pagewalk__read_guest(void *ctx, uint64_t gva, void *buf, size_t len);

const char *pagewalk__strerror(enum pagewalk_status status);

#endif
