/* Multiboot v1: a.out-kludge and ELF32 kernels built in memory, modules,
 * the info structure and its memory map, header validation, and QEMU's
 * -initrd list syntax. */
#include <check.h>
#include <elf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "guestfw/boot.h"
#include "guestfw/boot_tables.h"
#include "guestfw/e820.h"
#include "guestfw/multiboot.h"
#include "vmm/guest_mem.h"

#define MiB (1ull << 20)
#define RAM (32 * MiB)

struct blob {
	uint8_t *p;
	size_t n;
};

static void mem_init(struct guest_mem *m, uint64_t size)
{
	uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ck_assert(p != MAP_FAILED);
	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	m->base = p;
	m->ram_size = size;
	m->nr_regions = 1;
	m->region[0].size = size;
	m->region[0].hva = p;
	memset(p, 0xCC, size);
}

static void mem_fini(struct guest_mem *m)
{
	munmap(m->base, m->ram_size);
}

static uint8_t *gp(const struct guest_mem *m, uint64_t gpa)
{
	ck_assert_uint_lt(gpa, m->ram_size);
	return m->base + gpa;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

struct aout {
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry;
};

static void put_header(uint8_t *p, uint32_t flags, const struct aout *a)
{
	wr32(p, MULTIBOOT_HEADER_MAGIC);
	wr32(p + 4, flags);
	wr32(p + 8, (uint32_t)-(MULTIBOOT_HEADER_MAGIC + flags));
	if (a) {
		wr32(p + 12, a->header_addr);
		wr32(p + 16, a->load_addr);
		wr32(p + 20, a->load_end_addr);
		wr32(p + 24, a->bss_end_addr);
		wr32(p + 28, a->entry);
	}
}

/* 0x300-byte flat image loaded at 1 MiB, header at offset 0x40, the last
 * 0x100 bytes not loaded, bss up to +0x3000. */
#define AOUT_HDR_OFF 0x40
static struct blob aout_image(const struct aout *a, uint32_t flags)
{
	struct blob b = { malloc(0x300), 0x300 };

	for (size_t i = 0; i < b.n; i++)
		b.p[i] = (uint8_t)(i ^ 0x5A);
	put_header(b.p + AOUT_HDR_OFF, flags, a);
	return b;
}

static const struct aout std_aout = {
	0x100000 + AOUT_HDR_OFF, 0x100000, 0x100200, 0x103000, 0x100080,
};

/* ELF32 (or ELF64) with text at `paddr` holding the header, and data plus
 * bss one page higher. */
static struct blob elf_image(int is64, uint32_t flags, uint64_t vaddr,
			     uint64_t paddr, uint64_t entry)
{
	size_t n = 0x3000;
	struct blob b = { calloc(1, n), n };

	for (size_t i = 0x1000; i < n; i++)
		b.p[i] = (uint8_t)(i * 3);
	put_header(b.p + 0x1000, flags, NULL);
	if (is64) {
		Elf64_Ehdr eh = { .e_type = ET_EXEC, .e_machine = EM_X86_64,
				  .e_version = EV_CURRENT, .e_entry = entry,
				  .e_phoff = sizeof(eh), .e_ehsize = sizeof(eh),
				  .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 1 };
		Elf64_Phdr ph = { .p_type = PT_LOAD, .p_offset = 0x1000,
				  .p_vaddr = vaddr, .p_paddr = paddr,
				  .p_filesz = 0x2000, .p_memsz = 0x2000 };

		memcpy(eh.e_ident, ELFMAG, SELFMAG);
		eh.e_ident[EI_CLASS] = ELFCLASS64;
		eh.e_ident[EI_DATA] = ELFDATA2LSB;
		memcpy(b.p, &eh, sizeof(eh));
		memcpy(b.p + sizeof(eh), &ph, sizeof(ph));
	} else {
		Elf32_Ehdr eh = { .e_type = ET_EXEC, .e_machine = EM_386,
				  .e_version = EV_CURRENT,
				  .e_entry = (uint32_t)entry,
				  .e_phoff = sizeof(eh), .e_ehsize = sizeof(eh),
				  .e_phentsize = sizeof(Elf32_Phdr), .e_phnum = 2 };
		Elf32_Phdr ph[2] = {
			{ .p_type = PT_LOAD, .p_offset = 0x1000,
			  .p_vaddr = (uint32_t)vaddr, .p_paddr = (uint32_t)paddr,
			  .p_filesz = 0x1000, .p_memsz = 0x1000 },
			{ .p_type = PT_LOAD, .p_offset = 0x2000,
			  .p_vaddr = (uint32_t)vaddr + 0x1000,
			  .p_paddr = (uint32_t)paddr + 0x1000,
			  .p_filesz = 0x800, .p_memsz = 0x4000 },
		};

		memcpy(eh.e_ident, ELFMAG, SELFMAG);
		eh.e_ident[EI_CLASS] = ELFCLASS32;
		eh.e_ident[EI_DATA] = ELFDATA2LSB;
		memcpy(b.p, &eh, sizeof(eh));
		memcpy(b.p + sizeof(eh), ph, sizeof(ph));
	}
	return b;
}

static void check_mmap(const struct guest_mem *m, const uint8_t *mbi,
		       const struct e820_table *t)
{
	uint32_t len = rd32(mbi + MBI_MMAP_LENGTH);
	uint32_t addr = rd32(mbi + MBI_MMAP_ADDR);
	unsigned i = 0;

	ck_assert_uint_eq(len, 24 * t->nr_entries);
	/* Walk it the way a kernel does: by each entry's size field. */
	for (uint32_t off = 0; off < len; i++) {
		const uint8_t *e = gp(m, addr + off);

		ck_assert_uint_eq(rd32(e), 20);
		ck_assert_uint_eq(rd64(e + 4), t->entries[i].addr);
		ck_assert_uint_eq(rd64(e + 12), t->entries[i].size);
		ck_assert_uint_eq(rd32(e + 20), t->entries[i].type);
		off += rd32(e) + 4;
	}
	ck_assert_uint_eq(i, t->nr_entries);
}

START_TEST(aout_kludge_with_modules)
{
	struct guest_mem m;
	struct e820_table t;
	struct boot_entry e;
	struct blob k = aout_image(&std_aout, MB_FLAG_PAGE_ALIGN |
				   MB_FLAG_MEMORY_INFO | MB_FLAG_AOUT_KLUDGE);
	uint8_t mod0[5000], mod1[3] = { 1, 2, 3 };
	struct multiboot_module mods[2] = {
		{ mod0, sizeof(mod0), "mod0.bin arg=1" },
		{ mod1, sizeof(mod1), "mod1.bin" },
	};
	struct multiboot_params_in in = {
		.kernel = k.p, .kernel_len = k.n, .kernel_name = "kern.bin",
		.cmdline = "console=1", .mods = mods, .nr_mods = 2,
	};
	char err[256] = "";
	const uint8_t *mbi, *mt;
	uint64_t code;

	memset(mod0, 0x42, sizeof(mod0));
	mem_init(&m, RAM);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_msg(multiboot__load(&m, &in, &t, &e, err, sizeof(err)) == 0,
		      "%s", err);

	/* Image at load_addr, bss zeroed (the modules follow right after). */
	ck_assert(!memcmp(gp(&m, 0x100000), k.p, 0x200));
	for (uint64_t a = 0x100200; a < 0x103000; a++)
		ck_assert_uint_eq(*gp(&m, a), 0);
	ck_assert_uint_eq(*gp(&m, 0x105003), 0xCC);

	ck_assert_int_eq(e.mode, BOOT_MODE_PROT32);
	ck_assert_uint_eq(e.rip, 0x100080);
	ck_assert_uint_eq(e.rax, 0x2BADB002);
	ck_assert_uint_eq(e.cs_sel, BOOT_SEL_CODE32);
	ck_assert_uint_eq(e.ds_sel, BOOT_SEL_DATA);
	code = rd64(gp(&m, e.gdt_base + e.cs_sel));
	ck_assert(code & (1ull << 43));        /* code */
	ck_assert(code & (1ull << 54));        /* D: 32-bit */
	ck_assert(!(code & (1ull << 53)));     /* not long mode */
	ck_assert_uint_eq(e.gdt_limit, BOOT_GDT_LIMIT);

	mbi = gp(&m, e.rbx);
	ck_assert_uint_eq(rd32(mbi + MBI_FLAGS),
			  MBI_FLAG_MEM | MBI_FLAG_CMDLINE | MBI_FLAG_MODS |
			  MBI_FLAG_MMAP | MBI_FLAG_LOADER);
	ck_assert_uint_eq(rd32(mbi + MBI_MEM_LOWER), 639);
	ck_assert_uint_eq(rd32(mbi + MBI_MEM_UPPER), (RAM - MiB) / 1024);
	ck_assert_str_eq((const char *)gp(&m, rd32(mbi + MBI_CMDLINE)),
			 "kern.bin console=1");
	ck_assert_str_eq((const char *)gp(&m, rd32(mbi + MBI_BOOT_LOADER)),
			 "krg-vmm");
	check_mmap(&m, mbi, &t);

	ck_assert_uint_eq(rd32(mbi + MBI_MODS_COUNT), 2);
	mt = gp(&m, rd32(mbi + MBI_MODS_ADDR));
	/* Page aligned, after the kernel's bss, back to back. */
	ck_assert_uint_eq(rd32(mt), 0x103000);
	ck_assert_uint_eq(rd32(mt + 4), 0x103000 + sizeof(mod0));
	ck_assert(!memcmp(gp(&m, rd32(mt)), mod0, sizeof(mod0)));
	ck_assert_str_eq((const char *)gp(&m, rd32(mt + 8)), "mod0.bin arg=1");
	ck_assert_uint_eq(rd32(mt + 16), 0x105000);
	ck_assert_uint_eq(rd32(mt + 20), 0x105003);
	ck_assert(!memcmp(gp(&m, rd32(mt + 16)), mod1, 3));
	ck_assert_str_eq((const char *)gp(&m, rd32(mt + 24)), "mod1.bin");
	ck_assert_uint_eq(rd32(mt + 12), 0);
	mem_fini(&m);
	free(k.p);
}
END_TEST

START_TEST(elf32_image)
{
	struct guest_mem m;
	struct e820_table t;
	struct boot_entry e;
	/* Higher-half style: entry given as a virtual address. */
	struct blob k = elf_image(0, MB_FLAG_MEMORY_INFO, 0xC0200000, 0x200000,
				  0xC0200010);
	struct multiboot_params_in in = { .kernel = k.p, .kernel_len = k.n };
	char err[256] = "";
	const uint8_t *mbi;

	mem_init(&m, RAM);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_msg(multiboot__load(&m, &in, &t, &e, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert(!memcmp(gp(&m, 0x200000), k.p + 0x1000, 0x1800));
	for (uint64_t a = 0x201800; a < 0x205000; a++)
		ck_assert_uint_eq(*gp(&m, a), 0);
	ck_assert_uint_eq(*gp(&m, 0x205000), 0xCC);
	ck_assert_uint_eq(e.rip, 0x200010);
	mbi = gp(&m, e.rbx);
	ck_assert_uint_eq(rd32(mbi + MBI_FLAGS) & MBI_FLAG_MODS, 0);
	ck_assert_uint_eq(rd32(mbi + MBI_MODS_COUNT), 0);
	ck_assert_str_eq((const char *)gp(&m, rd32(mbi + MBI_CMDLINE)), "");
	check_mmap(&m, mbi, &t);
	mem_fini(&m);
	free(k.p);
}
END_TEST

/* mem_lower/mem_upper come from the map: lower is capped at 640 KiB, upper
 * is the RAM entry starting at 1 MiB (none here). */
START_TEST(mem_fields_from_custom_map)
{
	struct guest_mem m;
	struct e820_table t;
	struct boot_entry e;
	struct blob k = aout_image(&std_aout, MB_FLAG_AOUT_KLUDGE);
	struct multiboot_params_in in = { .kernel = k.p, .kernel_len = k.n };
	char err[256] = "";
	const uint8_t *mbi;

	mem_init(&m, RAM);
	e820__init(&t);
	ck_assert_int_eq(e820__add(&t, 0, RAM, E820_TYPE_RAM), 0);
	ck_assert_msg(multiboot__load(&m, &in, &t, &e, err, sizeof(err)) == 0,
		      "%s", err);
	mbi = gp(&m, e.rbx);
	ck_assert_uint_eq(rd32(mbi + MBI_MEM_LOWER), 640);
	ck_assert_uint_eq(rd32(mbi + MBI_MEM_UPPER), 0);
	ck_assert_uint_eq(rd32(mbi + MBI_MMAP_LENGTH), 24);
	mem_fini(&m);
	free(k.p);
}
END_TEST

START_TEST(elf64_needs_address_fields)
{
	struct guest_mem m;
	struct e820_table t;
	struct boot_entry e;
	struct blob k = elf_image(1, 0, 0x200000, 0x200000, 0x200000);
	struct multiboot_params_in in = { .kernel = k.p, .kernel_len = k.n };
	/* The header sits at file offset 0x1000, which is loaded at 2 MiB. */
	struct aout a = { 0x200000, 0x200000 - 0x1000, 0, 0, 0x200040 };
	char err[256] = "";

	mem_init(&m, RAM);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_int_eq(multiboot__load(&m, &in, &t, &e, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "multiboot: 64-bit ELF images are not supported, use the address fields (flag 16)");
	/* Same file with flag 16: loaded through the address fields. */
	put_header(k.p + 0x1000, MB_FLAG_AOUT_KLUDGE, &a);
	ck_assert_msg(multiboot__load(&m, &in, &t, &e, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert(!memcmp(gp(&m, 0x1FF000), k.p, k.n));
	ck_assert_uint_eq(e.rip, 0x200040);
	mem_fini(&m);
	free(k.p);
}
END_TEST

static void expect_fail(const struct blob *k, const struct multiboot_module *mods,
			unsigned nr_mods, const char *cmdline, const char *msg)
{
	struct guest_mem m;
	struct e820_table t;
	struct boot_entry e;
	struct multiboot_params_in in = {
		.kernel = k->p, .kernel_len = k->n, .cmdline = cmdline,
		.mods = mods, .nr_mods = nr_mods,
	};
	char err[256] = "";

	mem_init(&m, RAM);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_int_eq(multiboot__load(&m, &in, &t, &e, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, msg) != NULL, "expected \"%s\", got \"%s\"", msg,
		      err);
	mem_fini(&m);
}

START_TEST(header_validation)
{
	struct blob k = aout_image(&std_aout, MB_FLAG_AOUT_KLUDGE);
	struct multiboot_header_info h;
	char err[256] = "";

	ck_assert_int_eq(multiboot__probe(k.p, k.n, &h, err, sizeof(err)), 1);
	ck_assert_uint_eq(h.offset, AOUT_HDR_OFF);
	ck_assert_uint_eq(h.load_end_addr, 0x100200);
	/* Checksum off by one. */
	wr32(k.p + AOUT_HDR_OFF + 8, rd32(k.p + AOUT_HDR_OFF + 8) + 1);
	ck_assert_int_eq(multiboot__probe(k.p, k.n, &h, err, sizeof(err)), -1);
	ck_assert(strstr(err, "bad checksum") != NULL);
	expect_fail(&k, NULL, 0, NULL, "bad checksum");
	/* No magic at all. */
	memset(k.p + AOUT_HDR_OFF, 0, 12);
	ck_assert_int_eq(multiboot__probe(k.p, k.n, &h, err, sizeof(err)), 0);
	expect_fail(&k, NULL, 0, NULL, "no multiboot header");
	/* Unknown required feature bit. */
	put_header(k.p + AOUT_HDR_OFF, MB_FLAG_AOUT_KLUDGE | (1u << 3), &std_aout);
	expect_fail(&k, NULL, 0, NULL, "unsupported features");
	/* Address fields cut off by the end of the file. */
	put_header(k.p + AOUT_HDR_OFF, MB_FLAG_AOUT_KLUDGE, &std_aout);
	{
		struct blob cut = { k.p, AOUT_HDR_OFF + 20 };

		expect_fail(&cut, NULL, 0, NULL, "truncated");
	}
	/* Not ELF and no address fields. */
	put_header(k.p + AOUT_HDR_OFF, 0, NULL);
	expect_fail(&k, NULL, 0, NULL, "flag 16");
	free(k.p);
}
END_TEST

START_TEST(header_beyond_8k_is_ignored)
{
	struct blob b = { calloc(1, 12000), 12000 };
	struct multiboot_header_info h;
	char err[256] = "";

	put_header(b.p + 8192, 0, NULL);
	ck_assert_int_eq(multiboot__probe(b.p, b.n, &h, err, sizeof(err)), 0);
	put_header(b.p + 8180, 0, NULL);
	ck_assert_int_eq(multiboot__probe(b.p, b.n, &h, err, sizeof(err)), 1);
	ck_assert_uint_eq(h.offset, 8180);
	/* Misaligned magic does not count. */
	memset(b.p + 8180, 0, 12);
	put_header(b.p + 102, 0, NULL);
	ck_assert_int_eq(multiboot__probe(b.p, b.n, &h, err, sizeof(err)), 0);
	free(b.p);
}
END_TEST

START_TEST(address_field_errors)
{
	struct aout a;
	struct blob k;
	uint8_t big_mod[16];
	struct multiboot_module huge = { big_mod, RAM, "huge" };
	char longcl[30000];

#define TRY(field, value, msg) do {                                      \
		a = std_aout;                                             \
		a.field = value;                                          \
		k = aout_image(&a, MB_FLAG_AOUT_KLUDGE);                  \
		expect_fail(&k, NULL, 0, NULL, msg);                      \
		free(k.p);                                                \
	} while (0)
	TRY(load_end_addr, 0x100000, "load_end_addr");
	TRY(header_addr, 0xFFFF0, "before the file start");
	TRY(header_addr, 0x100000 + AOUT_HDR_OFF + 4, "before the file start");
	TRY(load_end_addr, 0x100400, "truncated");
	TRY(bss_end_addr, 0x1001FF, "bss_end_addr");
	TRY(entry, 0x7FFFFFF0, "entry point");
	a = std_aout;
	a.header_addr = 0x8000 + AOUT_HDR_OFF;
	a.load_addr = 0x8000;
	a.load_end_addr = 0x8200;
	a.bss_end_addr = 0;
	k = aout_image(&a, MB_FLAG_AOUT_KLUDGE);
	expect_fail(&k, NULL, 0, NULL, "does not fit");
	free(k.p);
	a = std_aout;
	a.header_addr = (uint32_t)RAM - 0x100 + AOUT_HDR_OFF;
	a.load_addr = (uint32_t)RAM - 0x100;
	a.load_end_addr = 0;
	a.bss_end_addr = 0;
	k = aout_image(&a, MB_FLAG_AOUT_KLUDGE);
	expect_fail(&k, NULL, 0, NULL, "does not fit in guest RAM");
	free(k.p);
#undef TRY
	/* A module bigger than the RAM left, a command line bigger than the
	 * info area. */
	k = aout_image(&std_aout, MB_FLAG_AOUT_KLUDGE);
	expect_fail(&k, &huge, 1, NULL, "module 0");
	memset(longcl, 'c', sizeof(longcl) - 1);
	longcl[sizeof(longcl) - 1] = 0;
	expect_fail(&k, NULL, 0, longcl, "info area");
	free(k.p);
}
END_TEST

START_TEST(parse_modules)
{
	struct multiboot_module_spec *m;
	unsigned n;
	char err[256] = "";
	char many[400] = "";

	ck_assert_int_eq(multiboot__parse_modules("a.bin args x=1,b.bin", &m, &n,
						  err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(m[0].path, "a.bin");
	ck_assert_str_eq(m[0].string, "a.bin args x=1");
	ck_assert_str_eq(m[1].path, "b.bin");
	ck_assert_str_eq(m[1].string, "b.bin");
	multiboot__free_modules(m, n);

	ck_assert_int_eq(multiboot__parse_modules("we,,ird.bin a,,b,c,,", &m, &n,
						  err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(m[0].path, "we,ird.bin");
	ck_assert_str_eq(m[0].string, "we,ird.bin a,b");
	ck_assert_str_eq(m[1].path, "c,");
	ck_assert_str_eq(m[1].string, "c,");
	multiboot__free_modules(m, n);

	ck_assert_int_eq(multiboot__parse_modules("x,,,y", &m, &n, err,
						  sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(m[0].path, "x,");
	ck_assert_str_eq(m[1].path, "y");
	multiboot__free_modules(m, n);

	ck_assert_int_eq(multiboot__parse_modules("", &m, &n, err, sizeof(err)), -1);
	ck_assert_int_eq(multiboot__parse_modules("a,", &m, &n, err, sizeof(err)), -1);
	ck_assert(strstr(err, "empty") != NULL);
	ck_assert_int_eq(multiboot__parse_modules(",a", &m, &n, err, sizeof(err)), -1);
	ck_assert_int_eq(multiboot__parse_modules(" args", &m, &n, err,
						  sizeof(err)), -1);
	ck_assert_ptr_null(m);
	ck_assert_uint_eq(n, 0);
	for (int i = 0; i < MULTIBOOT_MAX_MODULES + 1; i++)
		strcat(many, i ? ",m" : "m");
	ck_assert_int_eq(multiboot__parse_modules(many, &m, &n, err, sizeof(err)),
			 -1);
	ck_assert(strstr(err, "modules") != NULL);
	many[strlen(many) - 2] = 0;
	ck_assert_int_eq(multiboot__parse_modules(many, &m, &n, err, sizeof(err)),
			 0);
	ck_assert_uint_eq(n, MULTIBOOT_MAX_MODULES);
	multiboot__free_modules(m, n);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("multiboot");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, aout_kludge_with_modules);
	tcase_add_test(tc, elf32_image);
	tcase_add_test(tc, mem_fields_from_custom_map);
	tcase_add_test(tc, elf64_needs_address_fields);
	tcase_add_test(tc, header_validation);
	tcase_add_test(tc, header_beyond_8k_is_ignored);
	tcase_add_test(tc, address_field_errors);
	tcase_add_test(tc, parse_modules);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
