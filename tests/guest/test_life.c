/* Machine life-cycle events the VMM must handle; neither test ends with a
 * verdict of its own when the VMM does its job, the harness judges
 * krg-vmm's exit status and output.
 *
 * test=triplefault: the kernel loads an empty IDT (limit 0) and executes
 * ud2: the #UD cannot be delivered, nor the #GP and #DF that follow, so
 * the CPU shuts down (KVM_EXIT_SHUTDOWN); krg-vmm must report it.
 * test=reset: 0x06 to port 0xcf9 (PCI reset control: hard reset, do it);
 * krg-vmm either exits (--on-reset exit) or boots the guest again, which
 * then resets again (reset_delay=MS waits first, so a harness can act
 * between resets). */
#include "user.h"

#define RESET_WAIT_US	2000000

void test_triplefault(unsigned cpu)
{
	if (cpu != 0)
		return;
	say("triplefault: empty IDT, then ud2 in kernel mode at rip %lx with rbx "
	    "4b52472d54524950: expect the VMM's triple-fault report",
	    (uint64_t)k_triple_ud2);
	sys0(SYS_TRIPLE);
	fail("triplefault: the guest still runs after the triple fault");
}

void test_reset(unsigned cpu)
{
	if (cpu != 0)
		return;
	if (opts.reset_delay_ms) {
		say("reset: in %lu ms: 0x06 to port 0xcf9", opts.reset_delay_ms);
		delay_us(opts.reset_delay_ms * 1000);
	}
	say("reset: writing 0x06 to port 0xcf9 (PCI reset control)");
	outb(0xcf9, 0x06);
	delay_us(RESET_WAIT_US);
	fail("reset: no reset %u ms after the write to port 0xcf9",
	     RESET_WAIT_US / 1000);
}
