/* Kernel mode of the test guest: per-CPU setup (GDT TSS slot, IDT, MSRs
 * for syscall), the syscall services user mode cannot do itself (MSRs,
 * hlt, x2APIC), and exception reports.  Every instruction here is
 * emulated under PVM, so there is no real work in this file. */
#include <stdbool.h>

#include "kernel.h"
#include "io.h"
#include "lib.h"

#define MSR_APIC_BASE	0x1b
#define MSR_SYSENTER_CS	0x174
#define MSR_STAR	0xc0000081
#define MSR_LSTAR	0xc0000082
#define MSR_SFMASK	0xc0000084
#define MSR_GS_BASE	0xc0000101
/* Cleared on syscall entry: TF, IF, DF, NT, AC. */
#define SFMASK_BITS	0x44700
#define MB_BOOT_MAGIC	0x2badb002
#define LAPIC_MMIO	0xfee00000ull

struct tss64 {
	uint32_t rsvd0;
	uint64_t rsp[3];
	uint64_t rsvd1;
	uint64_t ist[7];
	uint64_t rsvd2;
	uint16_t rsvd3;
	uint16_t iomap;
	/* All-zero I/O permission bitmap: every port open to CPL3 even when
	 * IOPL is not 3 (PVM does not let the guest's IOPL reach user
	 * mode).  The byte after the bitmap must be 0xff. */
	uint8_t iobitmap[8192];
	uint8_t iobitmap_end;
} __attribute__((packed, aligned(16)));

struct idt_gate {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, rsvd;
};

struct pcpu pcpu[MAXCPU];
uint8_t kstacks[MAXCPU][KSTACK_SIZE] __attribute__((aligned(4096)));
static uint8_t ustacks[MAXCPU][USTACK_SIZE] __attribute__((aligned(4096)));
static struct tss64 tss[MAXCPU];
static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct {
	uint16_t pad[3];
	uint16_t limit;
	uint64_t base;
} idt_ptr __attribute__((aligned(8)));
uint8_t uret_mode;
const char *volatile test_name = "boot";
const char *volatile cur_phase = "boot";

extern uint64_t gdt[];
extern char ipi_stubs[], exc_stubs[];
extern char isr_timer[], isr_lvt_error[], isr_pit[], isr_spurious[];
extern char isr_ud[], isr_int80[], isr_wake[], isr_bp[], isr_softint[];
extern char isr_sci[];
extern char isr_blk[];
extern char isr_probe[];

static inline struct pcpu *this_cpu(void)
{
	struct pcpu *p;

	__asm__ volatile("movq %%gs:0, %0" : "=r"(p));
	return p;
}

static void set_gate_dpl(unsigned vec, const void *fn, unsigned dpl)
{
	uint64_t a = (uint64_t)fn;

	idt[vec].off0 = (uint16_t)a;
	idt[vec].sel = SEL_KCODE;
	idt[vec].ist = 0;
	idt[vec].type = (uint8_t)(0x8e | dpl << 5);	/* 64-bit interrupt gate */
	idt[vec].off1 = (uint16_t)(a >> 16);
	idt[vec].off2 = (uint32_t)(a >> 32);
}

static void set_gate(unsigned vec, const void *fn)
{
	set_gate_dpl(vec, fn, 0);
}

/* Only the vectors in use get a gate; anything else arriving shows up as
 * #NP or #GP with the vector in the error code, which exception_report
 * prints. */
static void build_idt(void)
{
	for (unsigned i = 0; i < 32; i++)
		set_gate(i, exc_stubs + 16 * i);
	for (unsigned i = 0; i < MAXCPU; i++)
		set_gate(VEC_IPI_BASE + i, ipi_stubs + 16 * i);
	set_gate(VEC_TIMER, isr_timer);
	set_gate(VEC_LVT_ERROR, isr_lvt_error);
	set_gate(VEC_PIT, isr_pit);
	set_gate(VEC_WAKE, isr_wake);
	set_gate(VEC_SCI, isr_sci);
	set_gate(VEC_BLK, isr_blk);
	set_gate(VEC_PROBE, isr_probe);
	set_gate(VEC_SPURIOUS, isr_spurious);
	set_gate(6, isr_ud);
	set_gate(3, isr_bp);
	set_gate(VEC_SOFT_INT, isr_softint);
	set_gate_dpl(VEC_SYSCALL, isr_int80, 3);
	idt_ptr.limit = sizeof(idt) - 1;
	idt_ptr.base = (uint64_t)idt;
}

/* The multiboot command line, or NULL.  uret= and pveoi= have to be
 * known before the first return to user mode, so the kernel reads them
 * here itself. */
static const char *mb_cmdline(void)
{
	const char *c;

	if (mb_magic != MB_BOOT_MAGIC || mb_info >= (1u << 30))
		return NULL;
	if (!(*(volatile uint32_t *)(uint64_t)mb_info & 4))
		return NULL;
	c = (const char *)(uint64_t)((volatile uint32_t *)(uint64_t)mb_info)[4];
	return (uint64_t)c < (1u << 30) ? c : NULL;
}

/* The value after "key" (which ends in '='), or NULL. */
static const char *cmdline_value(const char *key, unsigned klen)
{
	const char *c = mb_cmdline();

	for (unsigned i = 0; c && c[i] && i < 4096; i++)
		if ((!i || c[i - 1] == ' ') && !strncmp(c + i, key, klen))
			return c + i + klen;
	return NULL;
}

/* iretq is the default: it is right after any way in (ud2, int $0x80,
 * syscall).  sysretq/sysexitq are for probing a platform: on PVM they
 * only work for the first entry, because the guest's syscall leaves it at
 * CPL3, and sysexitq is #UD in long mode on AMD-vendor models like qemu64. */
static uint8_t parse_uret(void)
{
	const char *v = cmdline_value("uret=", 5);

	if (v && !strncmp(v, "sysret", 6))
		return URET_SYSRET;
	if (v && !strncmp(v, "sysexit", 7))
		return URET_SYSEXIT;
	return URET_IRET;
}

/* KVM's PV EOI, used as Linux uses it, when the hypervisor offers it and
 * pveoi=off is not given. */
static bool pv_eoi_wanted;

static bool parse_pv_eoi(void)
{
	const char *v = cmdline_value("pveoi=", 6);
	uint32_t r[4];

	if (v && !strncmp(v, "off", 3))
		return false;
	cpuid(0x40000000, 0, r);
	if (r[1] != 0x4b4d564b || r[2] != 0x564b4d56 || r[3] != 0x4d ||
	    r[0] < 0x40000001)
		return false;
	cpuid(0x40000001, 0, r);
	return r[0] & (1u << 6);
}

void kmain(uint64_t cpu, uint64_t bsp)
{
	struct pcpu *p = &pcpu[cpu];
	uint64_t base = (uint64_t)&tss[cpu], limit = sizeof(struct tss64) - 1;

	if (bsp) {
		build_idt();
		uret_mode = parse_uret();
		pv_eoi_wanted = parse_pv_eoi();
	}
	p->self = p;
	p->cpu = cpu;
	p->kstack_top = (uint64_t)kstacks[cpu] + KSTACK_SIZE;
	wrmsr(MSR_GS_BASE, (uint64_t)p);
	if (pv_eoi_wanted) {
		p->pv_eoi = 0;
		wrmsr(MSR_KVM_PV_EOI_EN, (uint64_t)&p->pv_eoi | 1);
		p->pv_eoi_on = 1;
	}

	tss[cpu].rsp[0] = p->kstack_top;
	tss[cpu].iomap = offsetof(struct tss64, iobitmap);
	tss[cpu].iobitmap_end = 0xff;
	gdt[SEL_TSS0 / 8 + 2 * cpu] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
		(0x89ull << 40) | (((limit >> 16) & 0xf) << 48) |
		(((base >> 24) & 0xff) << 56);
	gdt[SEL_TSS0 / 8 + 2 * cpu + 1] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"(SEL_TSS0 + 16 * cpu) : "memory");
	__asm__ volatile("lidt %0" : : "m"(idt_ptr.limit) : "memory");

	wrmsr(MSR_STAR, ((uint64_t)SEL_UCODE32 << 48) | ((uint64_t)SEL_KCODE << 32));
	wrmsr(MSR_LSTAR, (uint64_t)syscall_entry);
	wrmsr(MSR_SFMASK, SFMASK_BITS);
	wrmsr(MSR_SYSENTER_CS, SEL_KCODE);

	enter_user((uint64_t)user_start,
		   (uint64_t)ustacks[cpu] + USTACK_SIZE - 8, cpu | (bsp << 8));
}

static int apic_reg_ok(uint64_t reg)
{
	return reg < 0x400 && !(reg & 0xf);
}

static uint64_t k_apic_read(struct pcpu *p, uint64_t reg)
{
	if (!apic_reg_ok(reg))
		return ~0ull;
	if (p->x2apic)
		return rdmsr(0x800 + (uint32_t)(reg >> 4));
	return mmio_read32(LAPIC_MMIO + reg);
}

static void k_apic_write(struct pcpu *p, uint64_t reg, uint64_t v)
{
	if (!apic_reg_ok(reg))
		return;
	if (p->x2apic)
		wrmsr(0x800 + (uint32_t)(reg >> 4), v);
	else
		mmio_write32(LAPIC_MMIO + reg, (uint32_t)v);
}

static void k_send_ipi(struct pcpu *p, uint64_t dest, uint64_t lo)
{
	if (p->x2apic) {
		wrmsr(0x830, (dest << 32) | (uint32_t)lo);
		return;
	}
	/* Delivery status: a real xAPIC wants the previous IPI sent first. */
	for (unsigned i = 0; i < 1000; i++)
		if (!(mmio_read32(LAPIC_MMIO + 0x300) & (1u << 12)))
			break;
	mmio_write32(LAPIC_MMIO + 0x310, (uint32_t)dest << 24);
	mmio_write32(LAPIC_MMIO + 0x300, (uint32_t)lo);
}

uint64_t sys_dispatch(uint64_t a0, uint64_t a1, uint64_t a2, uint64_t nr)
{
	struct pcpu *p = this_cpu();

	switch (nr) {
	case SYS_EXIT:
		outb(0xf4, (uint8_t)a0);
		for (;;)
			__asm__ volatile("cli; hlt");
	case SYS_PUTS:
		if (a0 < (1u << 30) && a1 <= 4096)
			serial_write((const char *)a0, a1);
		return 0;
	case SYS_CPUID:
		return p->cpu;
	case SYS_APIC_MODE:
		if (a0 && !p->x2apic) {
			wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | (3u << 10));
			p->x2apic = 1;
		}
		return p->x2apic;
	case SYS_APIC_READ:
		return k_apic_read(p, a0);
	case SYS_APIC_WRITE:
		k_apic_write(p, a0, a1);
		return 0;
	case SYS_SEND_IPI:
		k_send_ipi(p, a0, a1);
		return 0;
	case SYS_WAIT:
		/* Checked with IF=0: an interrupt between the caller's test
		 * and here would otherwise leave hlt waiting forever. */
		if (a0 && a0 < (1u << 30) && *(volatile uint64_t *)a0 != a1)
			return 1;
		k_wait_irq();
		return 0;
	case SYS_RDMSR:
		return rdmsr((uint32_t)a0);
	case SYS_WRMSR:
		wrmsr((uint32_t)a0, a1);
		return 0;
	case SYS_NOP:
		return 0;
	case SYS_FALLBACK:
		if (a0 && a0 < (1u << 30) && !(a0 & 7))
			k_fallback((uint64_t *)a0, a1);
		return 0;
	case SYS_TRIPLE:
		k_triple_fault();
	case SYS_IPI_HLT:
		/* The interrupt is pending before sti: hlt must not sleep. */
		k_send_ipi(p, 0, (a0 & 0xff) | (1u << 14) | (1u << 18));
		k_wait_irq();
		return 0;
	case SYS_FLUSH_TLB:
		if (a0)
			__asm__ volatile("invlpg (%0)" : : "r"(a0) : "memory");
		else
			__asm__ volatile("mov %%cr3, %%rax; mov %%rax, %%cr3"
					 : : : "rax", "memory");
		return 0;
	}
	(void)a2;
	return ~0ull;
}

/* VEC_PROBE: a CPU that stopped taking its interrupts may still take
 * this higher-class one; what its LAPIC says then tells a lost wake-up
 * from an in-service bit nobody will clear. */
void lapic_probe_snapshot(void)
{
	struct pcpu *p = this_cpu();

	for (unsigned i = 0; i < 8; i++) {
		p->probe_isr[i] = (uint32_t)k_apic_read(p, 0x100 + 0x10 * i);
		p->probe_irr[i] = (uint32_t)k_apic_read(p, 0x200 + 0x10 * i);
	}
	p->probe_ppr = (uint32_t)k_apic_read(p, 0xa0);
	p->probe_count++;
}

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "?9",
	"#TS", "#NP", "#SS", "#GP", "#PF", "?15", "#MF", "#AC", "#MC", "#XM",
	"#VE", "#CP", "?22", "?23", "?24", "?25", "?26", "?27", "?28", "?29",
	"#SX", "?31",
};

static void kprint(const char *f, ...)
{
	char buf[200];
	va_list ap;
	size_t n;

	va_start(ap, f);
	n = vfmt(buf, sizeof(buf), f, ap);
	va_end(ap);
	serial_write(buf, n);
}

/* Reached with a jmp from syscall_entry, still on the user stack and at
 * CPL3: port I/O works there through the TSS bitmap, nothing else. */
void syscall_not_cpl0(void)
{
	kprint("KRG-TEST FAIL %s: %s: the syscall instruction entered LSTAR at "
	       "CPL3, not CPL0 (seen under PVM); use sysc=ud2\n", test_name,
	       cur_phase);
	outb(0xf4, EXIT_FAIL);
	for (;;)
		;
}

/* frame: rax rbx rcx rdx rsi rdi rbp r8-r15, vector, error code, then the
 * CPU's frame rip cs rflags rsp ss. */
void exception_report(uint64_t *frame)
{
	uint64_t vec = frame[15] & 0xff, cr2;
	const char *name = vec < 32 ? exc_names[vec] : "unexpected int n";
	uint32_t r[4];

	__asm__ volatile("movq %%cr2, %0" : "=r"(cr2));
	cpuid(1, 0, r);
	kprint("\nkrg-test: cpu %u: exception %lu (%s) error %lx at rip %lx cs %lx "
	       "rflags %lx rsp %lx cr2 %lx\n", r[1] >> 24, vec, name, frame[16],
	       frame[17], frame[18], frame[19], frame[20], cr2);
	kprint("krg-test: rax %lx rbx %lx rcx %lx rdx %lx rsi %lx rdi %lx\n",
	       frame[0], frame[1], frame[2], frame[3], frame[4], frame[5]);
	if (vec == 6 && frame[17] < (1u << 30) &&
	    *(volatile uint16_t *)frame[17] == 0x80cd)
		kprint("krg-test: (int $0x80 from user mode raised #UD: the hypervisor "
		       "does not deliver software interrupts; use sysc=ud2)\n");
	if (frame[18] != SEL_KCODE && frame[18] != USER_CS &&
	    (frame[17] == SEL_KCODE || frame[17] == USER_CS))
		kprint("krg-test: (frame shifted by one: an external interrupt on "
		       "vector %lu, not the exception - 8259 or LVT misrouted?)\n", vec);
	kprint("KRG-TEST FAIL %s: %s: exception %lu (%s) on cpu %u at rip %lx\n",
	       test_name, cur_phase, vec, name, r[1] >> 24, frame[17]);
	outb(0xf4, EXIT_FAIL);
}
