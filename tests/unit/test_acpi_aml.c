/* AML byte-code emitter: PkgLength forms, known encodings checked
 * against iasl's output, error handling and bounds. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "guestfw/acpi_aml.h"

/* Decodes a PkgLength at p; returns its value and stores its size. */
static uint32_t pkglength_decode(const uint8_t *p, size_t *size)
{
	size_t follow = p[0] >> 6;

	*size = follow + 1;
	if (!follow)
		return p[0] & 0x3F;
	uint32_t v = p[0] & 0x0F;

	for (size_t i = 0; i < follow; i++)
		v |= (uint32_t)p[1 + i] << (4 + 8 * i);
	return v;
}

START_TEST(pkglength_boundaries)
{
	static const struct {
		uint32_t value;
		size_t size;
		uint8_t bytes[4];
	} cases[] = {
		{ 0, 1, { 0x00 } },
		{ 63, 1, { 0x3F } },
		{ 64, 2, { 0x40, 0x04 } },
		{ 4095, 2, { 0x4F, 0xFF } },
		{ 4096, 3, { 0x80, 0x00, 0x01 } },
		{ 0xFFFFF, 3, { 0x8F, 0xFF, 0xFF } },
		{ 0x100000, 4, { 0xC0, 0x00, 0x00, 0x01 } },
		{ 0x0FFFFFFF, 4, { 0xCF, 0xFF, 0xFF, 0xFF } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t out[4] = { 0 };
		size_t n = aml__pkglength_encode(cases[i].value, out);

		ck_assert_uint_eq(n, cases[i].size);
		ck_assert_mem_eq(out, cases[i].bytes, n);
	}
	uint8_t out[4];

	ck_assert_uint_eq(aml__pkglength_encode(0x10000000, out), 0);
}
END_TEST

START_TEST(pkglength_roundtrip)
{
	for (uint32_t v = 0; v < 0x2000000; v = v * 3 / 2 + 1) {
		uint8_t out[4];
		size_t n = aml__pkglength_encode(v, out), m;

		ck_assert_uint_ne(n, 0);
		ck_assert_uint_eq(pkglength_decode(out, &m), v);
		ck_assert_uint_eq(m, n);
	}
}
END_TEST

START_TEST(pkglength_size_counts_itself)
{
	/* value = body + size: 62+1 = 63 fits one byte, 63+1 = 64 does not. */
	ck_assert_uint_eq(aml__pkglength_size(0), 1);
	ck_assert_uint_eq(aml__pkglength_size(62), 1);
	ck_assert_uint_eq(aml__pkglength_size(63), 2);
	ck_assert_uint_eq(aml__pkglength_size(4093), 2);
	ck_assert_uint_eq(aml__pkglength_size(4094), 3);
	ck_assert_uint_eq(aml__pkglength_size(0xFFFFC), 3);
	ck_assert_uint_eq(aml__pkglength_size(0xFFFFD), 4);
	ck_assert_uint_eq(aml__pkglength_size(0x0FFFFFFB), 4);
	ck_assert_uint_eq(aml__pkglength_size(0x0FFFFFFC), 0);
}
END_TEST

/* A Package whose body is `body` bytes: the emitted PkgLength must use
 * the expected form and count exactly the bytes after the opcode. */
START_TEST(emitter_pkglength_forms)
{
	static const struct { size_t body; size_t size; } cases[] = {
		{ 1, 1 }, { 62, 1 }, { 63, 2 }, { 64, 2 },
		{ 4093, 2 }, { 4094, 3 }, { 5000, 3 },
	};
	static uint8_t mem[8192];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aml_buf a;
		size_t n;

		aml__init(&a, mem, sizeof(mem));
		aml__package_begin(&a, 0);   /* NumElements byte is body[0] */
		for (size_t j = 1; j < cases[i].body; j++)
			aml__byte(&a, (uint8_t)j);
		aml__end(&a);
		ck_assert_int_eq(aml__finish(&a), 0);
		ck_assert_uint_eq(mem[0], AML_PACKAGE_OP);
		uint32_t v = pkglength_decode(mem + 1, &n);

		ck_assert_uint_eq(n, cases[i].size);
		ck_assert_uint_eq(v, a.len - 1);
		ck_assert_uint_eq(a.len, 1 + n + cases[i].body);
		/* The body moved intact behind the PkgLength. */
		ck_assert_uint_eq(mem[1 + n], 0);
		ck_assert_uint_eq(mem[a.len - 1], (uint8_t)(cases[i].body - 1));
	}
}
END_TEST

START_TEST(emitter_known_encodings)
{
	uint8_t mem[256];
	struct aml_buf a;

	aml__init(&a, mem, sizeof(mem));
	aml__method_begin(&a, "_STA", 0, false);
	aml__return(&a);
	aml__integer(&a, 0x0F);
	aml__end(&a);
	static const uint8_t method[] = { 0x14, 0x09, '_', 'S', 'T', 'A', 0x00,
					  0xA4, 0x0A, 0x0F };
	ck_assert_int_eq(aml__finish(&a), 0);
	ck_assert_uint_eq(a.len, sizeof(method));
	ck_assert_mem_eq(mem, method, sizeof(method));

	aml__init(&a, mem, sizeof(mem));
	aml__device_begin(&a, "COM1");
	aml__name(&a, "_HID");
	aml__eisaid(&a, "PNP0501");
	aml__end(&a);
	static const uint8_t dev[] = { 0x5B, 0x82, 0x0F, 'C', 'O', 'M', '1',
				       0x08, '_', 'H', 'I', 'D', 0x0C, 0x41,
				       0xD0, 0x05, 0x01 };
	ck_assert_int_eq(aml__finish(&a), 0);
	ck_assert_uint_eq(a.len, sizeof(dev));
	ck_assert_mem_eq(mem, dev, sizeof(dev));

	/* ResourceTemplate(){IO(Decode16,0x3F8,0x3F8,1,8) IRQNoFlags(){4}} */
	aml__init(&a, mem, sizeof(mem));
	aml__rt_begin(&a);
	aml__rt_io(&a, 0x3F8, 0x3F8, 1, 8);
	aml__rt_irq_noflags(&a, 4);
	aml__rt_end(&a);
	static const uint8_t rt[] = { 0x11, 0x10, 0x0A, 0x0D, 0x47, 0x01, 0xF8,
				      0x03, 0xF8, 0x03, 0x01, 0x08, 0x22, 0x10,
				      0x00, 0x79, 0x00 };
	ck_assert_int_eq(aml__finish(&a), 0);
	ck_assert_uint_eq(a.len, sizeof(rt));
	ck_assert_mem_eq(mem, rt, sizeof(rt));

	/* Scope(\_SB.PCI0){} and a 3-segment and parent-relative path. */
	aml__init(&a, mem, sizeof(mem));
	aml__scope_begin(&a, "\\_SB.PCI0");
	aml__end(&a);
	aml__namestring(&a, "A.BC.D1");
	aml__namestring(&a, "^^X");
	static const uint8_t names[] = {
		0x10, 0x0B, 0x5C, 0x2E, '_', 'S', 'B', '_', 'P', 'C', 'I', '0',
		0x2F, 0x03, 'A', '_', '_', '_', 'B', 'C', '_', '_',
		'D', '1', '_', '_',
		0x5E, 0x5E, 'X', '_', '_', '_',
	};
	ck_assert_int_eq(aml__finish(&a), 0);
	ck_assert_uint_eq(a.len, sizeof(names));
	ck_assert_mem_eq(mem, names, sizeof(names));
}
END_TEST

START_TEST(emitter_integers)
{
	static const struct { uint64_t v; size_t n; uint8_t b[9]; } cases[] = {
		{ 0, 1, { 0x00 } },
		{ 1, 1, { 0x01 } },
		{ 2, 2, { 0x0A, 0x02 } },
		{ 0xFF, 2, { 0x0A, 0xFF } },
		{ 0x100, 3, { 0x0B, 0x00, 0x01 } },
		{ 0x10000, 5, { 0x0C, 0x00, 0x00, 0x01, 0x00 } },
		{ 0xFFFFFFFF, 5, { 0x0C, 0xFF, 0xFF, 0xFF, 0xFF } },
		{ 0x100000000ull, 9, { 0x0E, 0, 0, 0, 0, 1, 0, 0, 0 } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t mem[16];
		struct aml_buf a;

		aml__init(&a, mem, sizeof(mem));
		aml__integer(&a, cases[i].v);
		ck_assert_int_eq(aml__finish(&a), 0);
		ck_assert_uint_eq(a.len, cases[i].n);
		ck_assert_mem_eq(mem, cases[i].b, cases[i].n);
	}
}
END_TEST

START_TEST(emitter_rejects_bad_input)
{
	static const char *const bad_names[] = {
		"1ABC", "TOOLONG", "A..B", "A.", ".A", "_sb", "A-B",
	};
	uint8_t mem[64];
	struct aml_buf a;

	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		aml__init(&a, mem, sizeof(mem));
		aml__name(&a, bad_names[i]);
		ck_assert_msg(aml__finish(&a) < 0, "accepted %s", bad_names[i]);
	}
	const char *bad_ids[] = { "PNP0A0", "pnp0a03", "PNP0A0G", "PNP0A033" };

	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		aml__init(&a, mem, sizeof(mem));
		aml__eisaid(&a, bad_ids[i]);
		ck_assert_int_lt(aml__finish(&a), 0);
	}
	/* Unbalanced nesting, both ways. */
	aml__init(&a, mem, sizeof(mem));
	aml__package_begin(&a, 0);
	ck_assert_int_lt(aml__finish(&a), 0);
	aml__init(&a, mem, sizeof(mem));
	aml__end(&a);
	ck_assert_int_lt(aml__finish(&a), 0);
	/* Too deep. */
	aml__init(&a, mem, sizeof(mem));
	for (int i = 0; i <= AML_MAX_DEPTH; i++)
		aml__package_begin(&a, 0);
	for (int i = 0; i <= AML_MAX_DEPTH; i++)
		aml__end(&a);
	ck_assert_int_lt(aml__finish(&a), 0);
	/* Ranges the descriptors cannot hold. */
	aml__init(&a, mem, sizeof(mem));
	aml__rt_word_io(&a, 0, 0xFFFF);
	ck_assert_int_lt(aml__finish(&a), 0);
	aml__init(&a, mem, sizeof(mem));
	aml__rt_irq_noflags(&a, 16);
	ck_assert_int_lt(aml__finish(&a), 0);
	aml__init(&a, mem, sizeof(mem));
	aml__rt_dword_mem(&a, 0x2000, 0x1000);
	ck_assert_int_lt(aml__finish(&a), 0);
}
END_TEST

START_TEST(emitter_never_overruns)
{
	/* For every capacity, emitting a nested object either fits exactly
	 * or fails, and never touches a byte past the capacity. */
	uint8_t ref[128], mem[160];
	struct aml_buf a;
	size_t full;

	aml__init(&a, ref, sizeof(ref));
	aml__scope_begin(&a, "\\_SB");
	aml__device_begin(&a, "DEV0");
	aml__name(&a, "_CRS");
	aml__rt_begin(&a);
	aml__rt_io(&a, 0x60, 0x60, 1, 1);
	aml__rt_mem32_fixed(&a, true, 0xFED00000, 0x400);
	aml__rt_end(&a);
	aml__end(&a);
	aml__end(&a);
	ck_assert_int_eq(aml__finish(&a), 0);
	full = a.len;
	for (size_t cap = 0; cap <= full; cap++) {
		memset(mem, 0xA5, sizeof(mem));
		aml__init(&a, mem, cap);
		aml__scope_begin(&a, "\\_SB");
		aml__device_begin(&a, "DEV0");
		aml__name(&a, "_CRS");
		aml__rt_begin(&a);
		aml__rt_io(&a, 0x60, 0x60, 1, 1);
		aml__rt_mem32_fixed(&a, true, 0xFED00000, 0x400);
		aml__rt_end(&a);
		aml__end(&a);
		aml__end(&a);
		ck_assert_int_eq(aml__finish(&a), cap == full ? 0 : -1);
		for (size_t i = cap; i < sizeof(mem); i++)
			ck_assert_uint_eq(mem[i], 0xA5);
	}
	ck_assert_mem_eq(mem, ref, full);
}
END_TEST

static Suite *aml_suite(void)
{
	Suite *s = suite_create("acpi_aml");
	TCase *tc = tcase_create("aml");

	tcase_add_test(tc, pkglength_boundaries);
	tcase_add_test(tc, pkglength_roundtrip);
	tcase_add_test(tc, pkglength_size_counts_itself);
	tcase_add_test(tc, emitter_pkglength_forms);
	tcase_add_test(tc, emitter_known_encodings);
	tcase_add_test(tc, emitter_integers);
	tcase_add_test(tc, emitter_rejects_bad_input);
	tcase_add_test(tc, emitter_never_overruns);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(aml_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
