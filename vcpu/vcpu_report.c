/* The report a fatal guest exit prints: enough to debug it from a CI log. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu/vcpu.h"
#include "vmm/machine.h"

static void print_seg(const char *n, const struct kvm_segment *s)
{
	fprintf(stderr,
		"  %-3s sel=%04x base=%016llx limit=%08x type=%x dpl=%u "
		"p=%u l=%u db=%u\n",
		n, s->selector, (unsigned long long)s->base, s->limit, s->type,
		s->dpl, s->present, s->l, s->db);
}

void vcpu__report(struct vcpu *v, const char *what, const uint8_t *insn,
		  size_t insn_len)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	size_t i;

	fprintf(stderr, "krg-vmm: vCPU %u stopped: %s\n", v->index, what);
	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
		fprintf(stderr, "  (registers unavailable)\n");
		return;
	}
	fprintf(stderr, "  RIP %016llx  mode: %s, CPL %u\n",
		(unsigned long long)r.rip, cpu_state__mode_name(&s),
		s.cs.dpl);
	if (insn && insn_len) {
		fprintf(stderr, "  instruction bytes:");
		for (i = 0; i < insn_len; i++)
			fprintf(stderr, " %02x", insn[i]);
		fprintf(stderr, "\n");
	}
	fprintf(stderr,
		"  RAX %016llx RBX %016llx RCX %016llx RDX %016llx\n"
		"  RSI %016llx RDI %016llx RBP %016llx RSP %016llx\n"
		"  R8  %016llx R9  %016llx R10 %016llx R11 %016llx\n"
		"  R12 %016llx R13 %016llx R14 %016llx R15 %016llx\n"
		"  RFLAGS %016llx\n",
		(unsigned long long)r.rax, (unsigned long long)r.rbx,
		(unsigned long long)r.rcx, (unsigned long long)r.rdx,
		(unsigned long long)r.rsi, (unsigned long long)r.rdi,
		(unsigned long long)r.rbp, (unsigned long long)r.rsp,
		(unsigned long long)r.r8, (unsigned long long)r.r9,
		(unsigned long long)r.r10, (unsigned long long)r.r11,
		(unsigned long long)r.r12, (unsigned long long)r.r13,
		(unsigned long long)r.r14, (unsigned long long)r.r15,
		(unsigned long long)r.rflags);
	fprintf(stderr,
		"  CR0 %016llx CR2 %016llx CR3 %016llx CR4 %016llx\n"
		"  EFER %016llx APIC_BASE %016llx\n",
		(unsigned long long)s.cr0, (unsigned long long)s.cr2,
		(unsigned long long)s.cr3, (unsigned long long)s.cr4,
		(unsigned long long)s.efer, (unsigned long long)s.apic_base);
	print_seg("CS", &s.cs);
	print_seg("DS", &s.ds);
	print_seg("SS", &s.ss);
	print_seg("TR", &s.tr);
	fprintf(stderr, "  GDT %016llx/%04x IDT %016llx/%04x\n",
		(unsigned long long)s.gdt.base, s.gdt.limit,
		(unsigned long long)s.idt.base, s.idt.limit);
}
