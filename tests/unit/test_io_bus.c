/* The io-trap registry and the CPUID policy (pure parts of the core). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/cpuid.h"
#include "vmm/guest_mem.h"
#include "vmm/io_bus.h"

struct rec {
	uint64_t offset;
	uint32_t len;
	bool write;
	unsigned calls;
};

static void handler(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		    bool is_write)
{
	struct rec *r = opaque;

	r->offset = offset;
	r->len = len;
	r->write = is_write;
	r->calls++;
	if (!is_write)
		memset(data, 0x5A, len);
}

START_TEST(registry_dispatch)
{
	struct io_bus *bus = io_bus__new();
	struct rec a = { 0 }, b = { 0 };
	uint8_t data[4] = { 0 };

	ck_assert_int_eq(io_bus__register(bus, IO_SPACE_PIO, 0x3F8, 8, handler, &a, "com1"), 0);
	ck_assert_int_eq(io_bus__register(bus, IO_SPACE_PIO, 0x60, 1, handler, &b, "kbd"), 0);
	/* overlaps and empty ranges are refused */
	ck_assert_int_eq(io_bus__register(bus, IO_SPACE_PIO, 0x3FF, 2, handler, &b, "x"), -1);
	ck_assert_int_eq(io_bus__register(bus, IO_SPACE_PIO, 0x3F0, 9, handler, &b, "x"), -1);
	ck_assert_int_eq(io_bus__register(bus, IO_SPACE_PIO, 0x100, 0, handler, &b, "x"), -1);
	ck_assert_int_eq(io_bus__register(bus, IO_SPACE_MMIO, UINT64_MAX, 2, handler, &b, "x"), -1);
	/* the same range in the other space is independent */
	ck_assert_int_eq(io_bus__register(bus, IO_SPACE_MMIO, 0x3F8, 8, handler, &b, "m"), 0);

	ck_assert(io_bus__dispatch(bus, IO_SPACE_PIO, 0x3FD, data, 1, false));
	ck_assert_uint_eq(a.offset, 5);
	ck_assert_uint_eq(data[0], 0x5A);
	ck_assert(io_bus__dispatch(bus, IO_SPACE_PIO, 0x3F8, data, 1, true));
	ck_assert(a.write);
	ck_assert_uint_eq(a.calls, 2);
	ck_assert_uint_eq(b.calls, 0);

	/* unclaimed: reads all ones, writes dropped, nobody called */
	ck_assert(!io_bus__dispatch(bus, IO_SPACE_PIO, 0x400, data, 4, false));
	ck_assert_uint_eq(data[0] & data[1] & data[2] & data[3], 0xFF);
	ck_assert(!io_bus__dispatch(bus, IO_SPACE_PIO, 0x3F7, data, 1, true));
	ck_assert_uint_eq(a.calls + b.calls, 2);
	ck_assert_str_eq(io_bus__owner(bus, IO_SPACE_PIO, 0x60), "kbd");
	ck_assert_ptr_null(io_bus__owner(bus, IO_SPACE_PIO, 0x61));
	io_bus__free(bus);
}
END_TEST

START_TEST(guest_mem_bounds)
{
	struct guest_mem m;

	ck_assert_int_eq(guest_mem__create(&m, 64 << 20), 0);
	ck_assert_int_eq(m.nr_regions, 1);
	ck_assert_ptr_nonnull(guest_mem__ptr(&m, 0, 64 << 20));
	ck_assert_ptr_null(guest_mem__ptr(&m, 1, 64 << 20));
	ck_assert_ptr_null(guest_mem__ptr(&m, (64 << 20) - 1, 2));
	ck_assert_ptr_null(guest_mem__ptr(&m, UINT64_MAX, 2));
	ck_assert_ptr_null(guest_mem__ptr(&m, 4096, UINT64_MAX));
	ck_assert_uint_eq(guest_mem__end(&m), 64 << 20);
	guest_mem__destroy(&m);

	/* 4 GiB: 3 GiB below the PCI hole, 1 GiB above 4 GiB */
	ck_assert_int_eq(guest_mem__create(&m, 4ull << 30), 0);
	ck_assert_int_eq(m.nr_regions, 2);
	ck_assert_uint_eq(m.region[0].size, GUEST_PCI_HOLE_START);
	ck_assert_uint_eq(m.region[1].gpa, GUEST_HIGH_RAM_START);
	ck_assert_uint_eq(m.region[1].size, 1ull << 30);
	ck_assert_ptr_null(guest_mem__ptr(&m, GUEST_PCI_HOLE_START, 1));
	ck_assert_ptr_null(guest_mem__ptr(&m, GUEST_PCI_HOLE_START - 1, 2));
	ck_assert_ptr_eq(guest_mem__ptr(&m, GUEST_HIGH_RAM_START, 1),
			 m.base + GUEST_PCI_HOLE_START);
	ck_assert_uint_eq(guest_mem__end(&m), GUEST_HIGH_RAM_START + (1ull << 30));
	guest_mem__destroy(&m);
}
END_TEST

static struct kvm_cpuid2 *table(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 8 * sizeof(c->entries[0]));

	c->nent = 6;
	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 1, .ecx = 1u << 26 | 1u << 28, .ebx = 0x12345678 };
	c->entries[1] = (struct kvm_cpuid_entry2){ .function = 7, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = 1u << 5 };
	c->entries[2] = (struct kvm_cpuid_entry2){ .function = 0xB, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	c->entries[3] = (struct kvm_cpuid_entry2){ .function = 0xB, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	c->entries[4] = (struct kvm_cpuid_entry2){ .function = 0x40000001, .eax = 0xFFFFFFFF };
	c->entries[5] = (struct kvm_cpuid_entry2){ .function = 0xD, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 7 };
	return c;
}

START_TEST(cpuid_policy_and_topology)
{
	struct kvm_cpuid2 *c = table();
	struct cpuid_bits xsave = { 1, 0, CPUID_ECX, 1u << 26 };
	struct cpuid_bits x2apic = { 1, 0, CPUID_ECX, 1u << 21 };
	struct cpuid_bits deadline = { 1, 0, CPUID_ECX, 1u << 24 };
	struct cpuid_bits avx2 = { 7, 0, CPUID_EBX, 1u << 5 };

	cpuid__apply_policy(c);
	ck_assert(cpuid__test(c, &x2apic));
	ck_assert(cpuid__test(c, &deadline));
	ck_assert(cpuid__test(c, &avx2));
	/* KVM paravirt features that need KVM's LAPIC are gone (PV send-IPI,
	 * PV unhalt); kvmclock and PV EOI (our LAPIC does it) stay */
	ck_assert_uint_eq(c->entries[4].eax & (1u << 11 | 1u << 7), 0);
	ck_assert_uint_ne(c->entries[4].eax & (1u << 3), 0);
	ck_assert_uint_ne(c->entries[4].eax & (1u << 6), 0);

	/* no XSAVE: AVX family and leaf 0xD follow */
	cpuid__clear(c, &xsave);
	cpuid__apply_policy(c);
	ck_assert(!cpuid__test(c, &avx2));
	ck_assert_uint_eq(c->entries[0].ecx & (1u << 28), 0);
	ck_assert_uint_eq(c->entries[5].eax, 0);

	cpuid__for_vcpu(c, 5, 6);
	ck_assert_uint_eq(c->entries[0].ebx >> 24, 5);
	ck_assert_uint_eq((c->entries[0].ebx >> 16) & 0xFF, 6);
	ck_assert_uint_eq(c->entries[0].ebx & 0xFFFF, 0x5678);
	ck_assert_uint_eq(c->entries[2].edx, 5);
	ck_assert_uint_eq(c->entries[3].ebx, 6);
	ck_assert_uint_eq(c->entries[3].eax, 3); /* 2^3 >= 6 */
	free(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("core");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, registry_dispatch);
	tcase_add_test(tc, guest_mem_bounds);
	tcase_add_test(tc, cpuid_policy_and_topology);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
