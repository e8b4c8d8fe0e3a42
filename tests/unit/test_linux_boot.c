/* Linux loader: synthetic bzImages (each payload compression) and raw
 * vmlinux ELFs built in memory, loaded into a fake guest RAM; checks where
 * everything lands, boot_params, the entry state and the page tables, and
 * that bad images are refused with a clear reason. */
#include <bzlib.h>
#include <check.h>
#include <elf.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>
#include <zstd.h>

#include "guestfw/boot.h"
#include "guestfw/boot_tables.h"
#include "guestfw/decompress.h"
#include "guestfw/e820.h"
#include "guestfw/linux_boot.h"
#include "vmm/guest_mem.h"

#define MiB (1ull << 20)
#define KPHYS 0x1000000ull
#define KVIRT 0xffffffff81000000ull
#define SETUP_SECTS 3
#define PM_OFF ((SETUP_SECTS + 1) * 512)
#define PAYLOAD_REL 0x100

struct blob {
	uint8_t *p;
	size_t n;
};

static const uint8_t code[] = "\x48\x31\xc0\xf4 startup_64 of a tiny kernel";

/* ---- guest RAM double: one low region over an anonymous mapping ---- */

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
	m->region[0].gpa = 0;
	m->region[0].size = size;
	m->region[0].hva = p;
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

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
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

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- image builders ---- */

struct elf_spec {
	int is64;
	uint16_t machine;
	uint64_t entry, vaddr, paddr, memsz;
};

static struct blob build_elf(const struct elf_spec *s)
{
	size_t off = 0x100;
	struct blob b = { calloc(1, off + sizeof(code)), off + sizeof(code) };

	memcpy(b.p + off, code, sizeof(code));
	if (s->is64) {
		Elf64_Ehdr eh = { .e_type = ET_EXEC, .e_machine = s->machine,
				  .e_version = EV_CURRENT, .e_entry = s->entry,
				  .e_phoff = sizeof(Elf64_Ehdr),
				  .e_ehsize = sizeof(Elf64_Ehdr),
				  .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 2 };
		Elf64_Phdr ph[2] = {
			{ .p_type = PT_LOAD, .p_flags = PF_R | PF_X,
			  .p_offset = off, .p_vaddr = s->vaddr,
			  .p_paddr = s->paddr, .p_filesz = sizeof(code),
			  .p_memsz = s->memsz, .p_align = 0x200000 },
			{ .p_type = PT_NOTE, .p_offset = 0, .p_filesz = 4 },
		};

		memcpy(eh.e_ident, ELFMAG, SELFMAG);
		eh.e_ident[EI_CLASS] = ELFCLASS64;
		eh.e_ident[EI_DATA] = ELFDATA2LSB;
		eh.e_ident[EI_VERSION] = EV_CURRENT;
		memcpy(b.p, &eh, sizeof(eh));
		memcpy(b.p + sizeof(eh), ph, sizeof(ph));
	} else {
		Elf32_Ehdr eh = { .e_type = ET_EXEC, .e_machine = s->machine,
				  .e_version = EV_CURRENT,
				  .e_entry = (uint32_t)s->entry,
				  .e_phoff = sizeof(Elf32_Ehdr),
				  .e_ehsize = sizeof(Elf32_Ehdr),
				  .e_phentsize = sizeof(Elf32_Phdr), .e_phnum = 1 };
		Elf32_Phdr ph = { .p_type = PT_LOAD, .p_offset = (uint32_t)off,
				  .p_vaddr = (uint32_t)s->vaddr,
				  .p_paddr = (uint32_t)s->paddr,
				  .p_filesz = sizeof(code),
				  .p_memsz = (uint32_t)s->memsz };

		memcpy(eh.e_ident, ELFMAG, SELFMAG);
		eh.e_ident[EI_CLASS] = ELFCLASS32;
		eh.e_ident[EI_DATA] = ELFDATA2LSB;
		eh.e_ident[EI_VERSION] = EV_CURRENT;
		memcpy(b.p, &eh, sizeof(eh));
		memcpy(b.p + sizeof(eh), &ph, sizeof(ph));
	}
	return b;
}

/* The usual vmlinux under test: virtual entry 0x10 into the text. */
static struct blob vmlinux(uint64_t memsz)
{
	struct elf_spec s = { 1, EM_X86_64, KVIRT + 0x10, KVIRT, KPHYS, memsz };

	return build_elf(&s);
}

/* Each compressor's output with the kernel's appended size word. */
static struct blob with_trailer(uint8_t *p, size_t n, size_t usize)
{
	struct blob b = { realloc(p, n + 4), n + 4 };

	wr32(b.p + n, (uint32_t)usize);
	return b;
}

static struct blob z_xz(const struct blob *in)
{
	lzma_options_lzma opt;
	lzma_filter f[3] = { { LZMA_FILTER_X86, NULL },
			     { LZMA_FILTER_LZMA2, &opt },
			     { LZMA_VLI_UNKNOWN, NULL } };
	size_t cap = lzma_stream_buffer_bound(in->n), pos = 0;
	uint8_t *o = malloc(cap);

	ck_assert(!lzma_lzma_preset(&opt, 6));
	ck_assert_int_eq(lzma_stream_buffer_encode(f, LZMA_CHECK_CRC32, NULL,
						   in->p, in->n, o, &pos, cap),
			 LZMA_OK);
	return with_trailer(o, pos, in->n);
}

static struct blob z_gzip(const struct blob *in)
{
	uLongf n = compressBound(in->n) + 64;
	uint8_t *o = malloc(n);
	z_stream zs;

	memset(&zs, 0, sizeof(zs));
	ck_assert_int_eq(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8,
				      Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = in->p;
	zs.avail_in = (uInt)in->n;
	zs.next_out = o;
	zs.avail_out = (uInt)n;
	ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
	n = zs.total_out;
	deflateEnd(&zs);
	/* gzip's own trailer already ends with the size: no extra word. */
	return (struct blob){ o, n };
}

static struct blob z_zstd(const struct blob *in)
{
	size_t cap = ZSTD_compressBound(in->n);
	uint8_t *o = malloc(cap);
	size_t n = ZSTD_compress(o, cap, in->p, in->n, 19);

	ck_assert(!ZSTD_isError(n));
	return with_trailer(o, n, in->n);
}

static struct blob z_bzip2(const struct blob *in)
{
	unsigned n = (unsigned)(in->n * 2 + 1024);
	uint8_t *o = malloc(n);

	ck_assert_int_eq(BZ2_bzBuffToBuffCompress((char *)o, &n, (char *)in->p,
						  (unsigned)in->n, 9, 0, 0),
			 BZ_OK);
	return with_trailer(o, n, in->n);
}

static struct blob z_lzma(const struct blob *in)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_options_lzma opt;
	size_t cap = in->n * 2 + 4096, n;
	uint8_t *o = malloc(cap);

	ck_assert(!lzma_lzma_preset(&opt, 6));
	ck_assert_int_eq(lzma_alone_encoder(&s, &opt), LZMA_OK);
	s.next_in = in->p;
	s.avail_in = in->n;
	s.next_out = o;
	s.avail_out = cap;
	ck_assert_int_eq(lzma_code(&s, LZMA_FINISH), LZMA_STREAM_END);
	n = s.total_out;
	lzma_end(&s);
	return with_trailer(o, n, in->n);
}

static struct blob z_none(const struct blob *in)
{
	uint8_t *o = malloc(in->n);

	memcpy(o, in->p, in->n);
	return with_trailer(o, in->n, in->n);
}

static struct blob build_bzimage(uint16_t version, const struct blob *payload)
{
	struct blob b;

	b.n = PM_OFF + PAYLOAD_REL + payload->n;
	b.p = calloc(1, b.n);
	b.p[0x1F1] = SETUP_SECTS;
	wr16(b.p + 0x1FA, 0xFFFF);            /* vid_mode */
	wr16(b.p + 0x1FE, 0xAA55);
	b.p[0x200] = 0xEB;                    /* jmp over the header ... */
	b.p[0x201] = 0x66;                    /* ... which ends at 0x268 */
	memcpy(b.p + 0x202, "HdrS", 4);
	wr16(b.p + 0x206, version);
	b.p[0x211] = 0x01;                    /* LOADED_HIGH */
	wr32(b.p + 0x214, 0x100000);          /* code32_start */
	wr32(b.p + 0x22C, 0x7FFFFFFF);        /* initrd_addr_max */
	wr32(b.p + 0x230, 0x200000);
	b.p[0x234] = 1;
	wr16(b.p + 0x236, 0x3);               /* XLF_KERNEL_64 | ABOVE_4G */
	wr32(b.p + 0x238, 2047);
	wr32(b.p + 0x248, PAYLOAD_REL);
	wr32(b.p + 0x24C, (uint32_t)payload->n);
	wr32(b.p + 0x258, (uint32_t)KPHYS);   /* pref_address */
	wr32(b.p + 0x260, 0x400000);          /* init_size */
	/* Beyond the header: must not be copied into boot_params. */
	memset(b.p + 0x268, 0xEE, 0x20);
	memcpy(b.p + PM_OFF + PAYLOAD_REL, payload->p, payload->n);
	return b;
}

static struct blob bzimage_with(struct blob (*z)(const struct blob *),
				uint64_t memsz)
{
	struct blob elf = vmlinux(memsz), pl = z(&elf), bz;

	bz = build_bzimage(0x020F, &pl);
	free(elf.p);
	free(pl.p);
	return bz;
}

/* ---- checks ---- */

/* Four-level walk with 2 MiB pages, as the CPU would do it. */
static int translate(const struct guest_mem *m, uint64_t cr3, uint64_t va,
		     uint64_t *pa)
{
	uint64_t e = rd64(gp(m, (cr3 & ~0xFFFull) + 8 * ((va >> 39) & 511)));

	if (!(e & 1))
		return -1;
	e = rd64(gp(m, (e & 0xFFFFFFFFF000ull) + 8 * ((va >> 30) & 511)));
	if (!(e & 1) || (e & 0x80))
		return -1;
	e = rd64(gp(m, (e & 0xFFFFFFFFF000ull) + 8 * ((va >> 21) & 511)));
	if (!(e & 1) || !(e & 0x80) || !(e & 2))
		return -1;
	*pa = (e & 0xFFFFFFE00000ull) | (va & 0x1FFFFF);
	return 0;
}

static void expect_identity(const struct guest_mem *m, uint64_t cr3,
			    uint64_t a)
{
	uint64_t pa = ~0ull;

	ck_assert_msg(translate(m, cr3, a, &pa) == 0, "0x%llx not mapped",
		      (unsigned long long)a);
	ck_assert_uint_eq(pa, a);
}

static void check_entry_state(const struct guest_mem *m,
			      const struct boot_entry *e)
{
	uint64_t code64 = rd64(gp(m, e->gdt_base + e->cs_sel));
	uint64_t data = rd64(gp(m, e->gdt_base + e->ds_sel));

	ck_assert_int_eq(e->mode, BOOT_MODE_LONG64);
	ck_assert_uint_eq(e->rip, KPHYS + 0x10);
	ck_assert_uint_eq(e->rsi, BOOT_ZERO_PAGE_GPA);
	ck_assert_uint_eq(e->cs_sel, 0x10);
	ck_assert_uint_eq(e->ds_sel, 0x18);
	ck_assert_uint_ge(e->gdt_limit, 0x1F);
	/* __BOOT_CS: present, code, L=1, D=0; __BOOT_DS: present, writable
	 * data, 4 GiB. */
	ck_assert(code64 & (1ull << 47));
	ck_assert(code64 & (1ull << 43));
	ck_assert(code64 & (1ull << 53));
	ck_assert(!(code64 & (1ull << 54)));
	ck_assert(data & (1ull << 47));
	ck_assert(!(data & (1ull << 43)));
	ck_assert(data & (1ull << 41));
	ck_assert_uint_eq(data & 0xFFFF, 0xFFFF);
	ck_assert(e->rsp > 0x1000 && e->rsp < E820_LOW_RAM_END);
	/* Paging covers what startup_64 touches, and no more than 4 GiB. */
	expect_identity(m, e->cr3, e->rip);
	expect_identity(m, e->cr3, e->rsi);
	expect_identity(m, e->cr3, BOOT_CMDLINE_GPA);
	expect_identity(m, e->cr3, e->rsp - 8);
	expect_identity(m, e->cr3, e->gdt_base);
	expect_identity(m, e->cr3, 0xFFFFFFFFull);
	{
		uint64_t pa;

		ck_assert_int_eq(translate(m, e->cr3, 0x100000000ull, &pa), -1);
	}
}

static const char *cmdline = "console=ttyS0 quiet root=/dev/vda";

static void check_boot_params(const struct guest_mem *m,
			      const struct e820_table *t, uint64_t rsdp)
{
	const uint8_t *bp = gp(m, BOOT_ZERO_PAGE_GPA);
	uint64_t cl = rd32(bp + 0x228) | (uint64_t)rd32(bp + 0x0C8) << 32;

	ck_assert(!memcmp(bp + 0x202, "HdrS", 4));
	ck_assert_uint_eq(bp[0x210], 0xFF);
	ck_assert_uint_eq(bp[0x211] & 0x81, 0x81);
	ck_assert_uint_eq(rd16(bp + 0x224), 0xFE00);
	ck_assert_uint_eq(cl, BOOT_CMDLINE_GPA);
	ck_assert_str_eq((const char *)gp(m, cl), cmdline);
	ck_assert_uint_eq(rd64(bp + 0x070), rsdp);
	ck_assert_uint_eq(bp[0x1EF], 0);     /* sentinel */
	ck_assert_uint_eq(bp[0x1E8], t->nr_entries);
	for (unsigned i = 0; i < t->nr_entries; i++) {
		const uint8_t *e = bp + 0x2D0 + 20 * i;

		ck_assert_uint_eq(rd64(e), t->entries[i].addr);
		ck_assert_uint_eq(rd64(e + 8), t->entries[i].size);
		ck_assert_uint_eq(rd32(e + 16), t->entries[i].type);
	}
	ck_assert_uint_eq(rd64(bp + 0x2D0 + 20 * t->nr_entries), 0);
}

static struct blob make_initrd(size_t n)
{
	struct blob b = { malloc(n), n };

	for (size_t i = 0; i < n; i++)
		b.p[i] = (uint8_t)(i * 7 + (i >> 12));
	return b;
}

static struct blob (*const zs[])(const struct blob *) = {
	z_xz, z_gzip, z_zstd, z_bzip2, z_lzma, z_none,
};
static const char *const znames[] = {
	"xz", "gzip", "zstd", "bzip2", "lzma", "none",
};

START_TEST(bzimage_loads)
{
	struct guest_mem m;
	struct e820_table t;
	struct boot_entry e;
	struct linux_boot_result r;
	struct blob bz = bzimage_with(zs[_i], 0x300000);
	struct blob rd = make_initrd(3 * MiB + 123);
	struct linux_boot_params_in in = {
		.kernel = bz.p, .kernel_len = bz.n, .initrd = rd.p,
		.initrd_len = rd.n, .cmdline = cmdline, .rsdp_gpa = 0xF5A40,
	};
	char err[256] = "";
	const uint8_t *bp;
	uint64_t ird;

	mem_init(&m, 64 * MiB);
	memset(m.base, 0xCC, m.ram_size);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_msg(linux_boot__load(&m, &in, &t, &e, &r, err, sizeof(err)) == 0,
		      "%s: %s", znames[_i], err);

	/* The vmlinux segment at p_paddr, its bss zeroed. */
	ck_assert(!memcmp(gp(&m, KPHYS), code, sizeof(code)));
	for (uint64_t a = KPHYS + sizeof(code); a < KPHYS + 0x300000; a += 4093)
		ck_assert_uint_eq(*gp(&m, a), 0);
	ck_assert_uint_eq(*gp(&m, KPHYS + 0x300000), 0xCC);
	ck_assert_uint_eq(r.kernel_lo, KPHYS);
	ck_assert_uint_eq(r.kernel_hi, KPHYS + 0x300000);
	ck_assert_str_eq(linux_boot__compression_name(&r.info), znames[_i]);
	ck_assert_uint_eq(r.info.version, 0x020F);

	check_entry_state(&m, &e);
	check_boot_params(&m, &t, 0xF5A40);
	bp = gp(&m, BOOT_ZERO_PAGE_GPA);
	/* The kernel's header came along, and nothing past its end. */
	ck_assert_uint_eq(rd32(bp + 0x260), 0x400000);
	ck_assert_uint_eq(rd16(bp + 0x206), 0x020F);
	ck_assert_uint_eq(rd32(bp + 0x22C), 0x7FFFFFFF);
	ck_assert_uint_eq(bp[0x268], 0);

	/* initrd: page aligned, at the top of RAM, clear of the kernel and
	 * its init_size, copied intact. */
	ird = rd32(bp + 0x218) | (uint64_t)rd32(bp + 0x0C0) << 32;
	ck_assert_uint_eq(ird, r.initrd_gpa);
	ck_assert_uint_eq(ird & 0xFFF, 0);
	ck_assert_uint_eq(ird, (64 * MiB - rd.n) & ~0xFFFull);
	ck_assert_uint_ge(ird, KPHYS + 0x400000);
	ck_assert_uint_eq(rd32(bp + 0x21C), rd.n);
	ck_assert_uint_eq(rd32(bp + 0x0C4), 0);
	ck_assert(!memcmp(gp(&m, ird), rd.p, rd.n));
	expect_identity(&m, e.cr3, ird);
	expect_identity(&m, e.cr3, ird + rd.n - 1);

	mem_fini(&m);
	free(bz.p);
	free(rd.p);
}
END_TEST

START_TEST(vmlinux_loads_with_synthesized_header)
{
	struct guest_mem m;
	struct e820_table t;
	struct boot_entry e;
	struct linux_boot_result r;
	/* Like a real vmlinux: e_entry is already physical. */
	struct elf_spec s = { 1, EM_X86_64, KPHYS + 0x10, KVIRT, KPHYS, 0x2000 };
	struct blob elf = build_elf(&s);
	struct linux_boot_params_in in = {
		.kernel = elf.p, .kernel_len = elf.n, .cmdline = cmdline,
	};
	char err[256] = "";
	const uint8_t *bp;

	mem_init(&m, 32 * MiB);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_msg(linux_boot__load(&m, &in, &t, &e, &r, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_int_eq(r.info.format, LINUX_IMAGE_ELF);
	ck_assert_str_eq(linux_boot__compression_name(&r.info), "-");
	ck_assert(!memcmp(gp(&m, KPHYS), code, sizeof(code)));
	check_entry_state(&m, &e);
	check_boot_params(&m, &t, 0);
	bp = gp(&m, BOOT_ZERO_PAGE_GPA);
	ck_assert_uint_eq(rd16(bp + 0x1FE), 0xAA55);
	ck_assert_uint_eq(rd16(bp + 0x206), LINUX_SYNTH_PROTOCOL);
	ck_assert_uint_eq(rd16(bp + 0x236) & 1, 1);
	ck_assert_uint_eq(rd32(bp + 0x238), 2047);
	ck_assert_uint_eq(rd32(bp + 0x260), 0x2000);
	/* No initrd. */
	ck_assert_uint_eq(rd32(bp + 0x218), 0);
	ck_assert_uint_eq(rd32(bp + 0x21C), 0);
	mem_fini(&m);
	free(elf.p);
}
END_TEST

/* A header claiming to run past boot_params' header area must not spill
 * into the fields after it. */
START_TEST(header_copy_is_bounded)
{
	struct guest_mem m;
	struct e820_table t;
	struct boot_entry e;
	struct blob bz = bzimage_with(z_gzip, 0x1000);
	struct linux_boot_params_in in = { .kernel = bz.p, .kernel_len = bz.n };
	char err[256] = "";
	const uint8_t *bp;

	bz.p[0x201] = 0xFF;                   /* header "ends" at 0x301 */
	memset(bz.p + 0x268, 0xEE, 0x301 - 0x268);
	mem_init(&m, 32 * MiB);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_msg(linux_boot__load(&m, &in, &t, &e, NULL, err, sizeof(err)) == 0,
		      "%s", err);
	bp = gp(&m, BOOT_ZERO_PAGE_GPA);
	ck_assert_uint_eq(bp[0x28F], 0xEE);
	for (unsigned i = 0x290; i < 0x2D0; i++)
		ck_assert_uint_eq(bp[i], 0);
	ck_assert_uint_eq(rd64(bp + 0x2D0), 0);          /* e820[0].addr */
	ck_assert_uint_eq(rd64(bp + 0x2D8), 0x9FC00);    /* e820[0].size */
	mem_fini(&m);
	free(bz.p);
}
END_TEST

START_TEST(initrd_goes_below_a_large_kernel)
{
	struct guest_mem m;
	struct e820_table t;
	struct boot_entry e;
	struct linux_boot_result r;
	struct blob bz = bzimage_with(z_zstd, 40 * MiB); /* 16..56 MiB */
	struct blob rd = make_initrd(10 * MiB);
	struct linux_boot_params_in in = {
		.kernel = bz.p, .kernel_len = bz.n, .initrd = rd.p,
		.initrd_len = rd.n,
	};
	char err[256] = "";

	mem_init(&m, 64 * MiB);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_msg(linux_boot__load(&m, &in, &t, &e, &r, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_uint_eq(r.initrd_gpa, KPHYS - 10 * MiB);
	ck_assert(!memcmp(gp(&m, r.initrd_gpa), rd.p, rd.n));
	/* Empty command line is a valid string. */
	ck_assert_uint_eq(*gp(&m, BOOT_CMDLINE_GPA), 0);
	mem_fini(&m);
	free(bz.p);
	free(rd.p);
}
END_TEST

START_TEST(initrd_respects_initrd_addr_max)
{
	struct guest_mem m;
	struct e820_table t;
	struct boot_entry e;
	struct linux_boot_result r;
	struct blob bz = bzimage_with(z_gzip, 0x1000);
	struct blob rd = make_initrd(5000);
	struct linux_boot_params_in in = {
		.kernel = bz.p, .kernel_len = bz.n, .initrd = rd.p,
		.initrd_len = rd.n,
	};
	char err[256] = "";

	wr32(bz.p + 0x22C, 0x2FFFFFF);        /* last byte the initrd may use */
	mem_init(&m, 64 * MiB);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_msg(linux_boot__load(&m, &in, &t, &e, &r, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_uint_eq(r.initrd_gpa, 48 * MiB - 0x2000);
	mem_fini(&m);
	free(bz.p);
	free(rd.p);
}
END_TEST

START_TEST(probe_reports_format)
{
	struct blob bz = bzimage_with(z_xz, 0x1000);
	struct linux_kernel_info info;
	uint8_t *v;
	size_t vn;
	char err[256] = "";

	ck_assert_int_eq(linux_boot__probe(bz.p, bz.n, &info, err, sizeof(err)), 0);
	ck_assert_int_eq(info.format, LINUX_IMAGE_BZIMAGE);
	ck_assert_int_eq(info.compression, DECOMP_XZ);
	ck_assert_uint_eq(info.payload_off, PM_OFF + PAYLOAD_REL);
	ck_assert_uint_eq(info.setup_sects, SETUP_SECTS);
	ck_assert_uint_eq(info.init_size, 0x400000);
	ck_assert_uint_eq(info.pref_address, KPHYS);
	ck_assert_int_eq(linux_boot__extract(bz.p, bz.n, &info, &v, &vn, err,
					     sizeof(err)), 0);
	ck_assert_uint_eq(vn, info.payload_usize);
	ck_assert(!memcmp(v, ELFMAG, SELFMAG));
	{
		/* Loading from the pre-extracted vmlinux gives the same. */
		struct guest_mem m;
		struct e820_table t;
		struct boot_entry e;
		struct linux_boot_params_in in = {
			.kernel = bz.p, .kernel_len = bz.n, .vmlinux = v,
			.vmlinux_len = vn,
		};

		mem_init(&m, 32 * MiB);
		ck_assert_int_eq(e820__build(&m, &t), 0);
		ck_assert_int_eq(linux_boot__load(&m, &in, &t, &e, NULL, err,
						  sizeof(err)), 0);
		ck_assert(!memcmp(gp(&m, KPHYS), code, sizeof(code)));
		check_entry_state(&m, &e);
		mem_fini(&m);
	}
	free(v);
	free(bz.p);
}
END_TEST

/* Loads `k` into 64 MiB and expects failure with `msg` in the reason. */
static void expect_fail(const uint8_t *k, size_t n, const struct blob *initrd,
			const char *cl, const char *msg)
{
	struct guest_mem m;
	struct e820_table t;
	struct boot_entry e;
	struct linux_boot_params_in in = {
		.kernel = k, .kernel_len = n, .cmdline = cl,
		.initrd = initrd ? initrd->p : NULL,
		.initrd_len = initrd ? initrd->n : 0,
	};
	char err[256] = "";
	uint8_t *copy = malloc(n ? n : 1);

	/* Exact-size copy so ASan sees any read past the end. */
	memcpy(copy, k, n);
	in.kernel = copy;
	mem_init(&m, 64 * MiB);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_int_eq(linux_boot__load(&m, &in, &t, &e, NULL, err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, msg) != NULL, "expected \"%s\", got \"%s\"", msg,
		      err);
	ck_assert(strchr(err, '\n') == NULL);
	mem_fini(&m);
	free(copy);
}

START_TEST(rejects_truncated)
{
	struct blob bz = bzimage_with(z_xz, 0x1000);

	expect_fail(bz.p, bz.n - 10, NULL, NULL, "truncated");
	expect_fail(bz.p, 0x240, NULL, NULL, "truncated");
	expect_fail(bz.p, 100, NULL, NULL, "truncated");
	expect_fail(bz.p, 0, NULL, NULL, "truncated");
	free(bz.p);
}
END_TEST

START_TEST(rejects_garbage)
{
	uint8_t g[65536];
	uint32_t x = 99;

	for (size_t i = 0; i < sizeof(g); i++) {
		x = x * 1664525u + 1013904223u;
		g[i] = (uint8_t)(x >> 24);
	}
	expect_fail(g, sizeof(g), NULL, NULL, "neither a bzImage");
}
END_TEST

START_TEST(rejects_old_protocol)
{
	struct blob elf = vmlinux(0x1000), pl = z_gzip(&elf);
	struct blob bz = build_bzimage(0x0209, &pl);

	expect_fail(bz.p, bz.n, NULL, NULL,
		    "kernel boot protocol 2.09 is too old for the 64-bit entry (need 2.12)");
	free(bz.p);
	free(pl.p);
	free(elf.p);
}
END_TEST

START_TEST(rejects_non_x86_64_elf)
{
	struct elf_spec s32 = { 0, EM_386, 0x100000, 0x100000, 0x100000, 0x1000 };
	struct elf_spec arm = { 1, EM_AARCH64, KPHYS, KPHYS, KPHYS, 0x1000 };
	struct blob a = build_elf(&s32), b = build_elf(&arm);

	expect_fail(a.p, a.n, NULL, NULL, "32-bit");
	expect_fail(b.p, b.n, NULL, NULL, "not x86-64");
	free(a.p);
	free(b.p);
}
END_TEST

START_TEST(rejects_what_does_not_fit)
{
	struct blob big = bzimage_with(z_xz, 60 * MiB); /* 16..76 MiB */
	struct blob ok = bzimage_with(z_xz, 0x1000);
	struct blob rd = make_initrd(60 * MiB);
	struct elf_spec low = { 1, EM_X86_64, 0x8000, 0x8000, 0x8000, 0x1000 };
	struct elf_spec noent = { 1, EM_X86_64, 0x5000000, KVIRT, KPHYS, 0x1000 };
	struct blob l = build_elf(&low), ne = build_elf(&noent);
	char longcl[3000];

	expect_fail(big.p, big.n, NULL, NULL, "does not fit in guest RAM");
	expect_fail(ok.p, ok.n, &rd, NULL, "initrd");
	expect_fail(l.p, l.n, NULL, NULL, "outside the loadable range");
	expect_fail(ne.p, ne.n, NULL, NULL, "entry point");
	memset(longcl, 'x', sizeof(longcl) - 1);
	longcl[sizeof(longcl) - 1] = 0;
	expect_fail(ok.p, ok.n, NULL, longcl, "command line");
	free(big.p);
	free(ok.p);
	free(rd.p);
	free(l.p);
	free(ne.p);
}
END_TEST

START_TEST(rejects_bad_payloads)
{
	struct blob bz = bzimage_with(z_xz, 0x1000);
	size_t po = PM_OFF + PAYLOAD_REL, pn = bz.n - po;

	/* Corrupt compressed data. */
	bz.p[po + pn / 2] ^= 0xFF;
	bz.p[po + pn / 2 + 1] ^= 0xFF;
	expect_fail(bz.p, bz.n, NULL, NULL, "corrupt");
	bz.p[po + pn / 2] ^= 0xFF;
	bz.p[po + pn / 2 + 1] ^= 0xFF;
	/* Size trailer disagreeing with the data. */
	wr32(bz.p + bz.n - 4, rd32(bz.p + bz.n - 4) + 1);
	expect_fail(bz.p, bz.n, NULL, NULL, "trailer");
	wr32(bz.p + bz.n - 4, rd32(bz.p + bz.n - 4) - 2);
	expect_fail(bz.p, bz.n, NULL, NULL, "exceeds");
	wr32(bz.p + bz.n - 4, 0xF0000000u);
	expect_fail(bz.p, bz.n, NULL, NULL, "limit");
	/* Unknown compression magic. */
	memcpy(bz.p + po, "ABCD", 4);
	expect_fail(bz.p, bz.n, NULL, NULL, "unknown compression");
	/* A 32-bit-only kernel. */
	free(bz.p);
	bz = bzimage_with(z_xz, 0x1000);
	wr16(bz.p + 0x236, 0);
	expect_fail(bz.p, bz.n, NULL, NULL, "XLF_KERNEL_64");
	/* Payload length pointing past the file. */
	wr16(bz.p + 0x236, 1);
	wr32(bz.p + 0x24C, (uint32_t)bz.n);
	expect_fail(bz.p, bz.n, NULL, NULL, "truncated");
	free(bz.p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("linux_boot");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, bzimage_loads, 0, (int)(sizeof(zs) / sizeof(zs[0])));
	tcase_add_test(tc, vmlinux_loads_with_synthesized_header);
	tcase_add_test(tc, header_copy_is_bounded);
	tcase_add_test(tc, initrd_goes_below_a_large_kernel);
	tcase_add_test(tc, initrd_respects_initrd_addr_max);
	tcase_add_test(tc, probe_reports_format);
	tcase_add_test(tc, rejects_truncated);
	tcase_add_test(tc, rejects_garbage);
	tcase_add_test(tc, rejects_old_protocol);
	tcase_add_test(tc, rejects_non_x86_64_elf);
	tcase_add_test(tc, rejects_what_does_not_fit);
	tcase_add_test(tc, rejects_bad_payloads);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
