#include "vcpu/vcpu_exit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu/pvm_syscall.h"
#include "vcpu/vcpu.h"
#include "vmm/io_bus.h"
#include "vmm/io_forward.h"
#include "vmm/machine.h"

static const char *exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_UNKNOWN: return "KVM_EXIT_UNKNOWN";
	case KVM_EXIT_EXCEPTION: return "KVM_EXIT_EXCEPTION";
	case KVM_EXIT_SHUTDOWN: return "KVM_EXIT_SHUTDOWN (triple fault)";
	case KVM_EXIT_FAIL_ENTRY: return "KVM_EXIT_FAIL_ENTRY";
	case KVM_EXIT_INTERNAL_ERROR: return "KVM_EXIT_INTERNAL_ERROR";
	case KVM_EXIT_DEBUG: return "KVM_EXIT_DEBUG";
	default: return NULL;
	}
}

/* A node without devices has the device node carry the access out.
 * Returns 0, or -1 when the VM must stop (said so already). */
static int forward_io(struct vcpu *v, enum io_space space, uint64_t addr,
		      uint32_t size, uint32_t count, bool is_write,
		      uint8_t *data)
{
	char err[256];
	bool claimed = false;
	int r = io_forward__request(v->m->io_client, (int)v->index, space, addr,
				    size, count, is_write, data, &claimed, err,
				    sizeof(err));

	if (r == 0 || r == -ECANCELED)
		return 0;
	if (r == -EINVAL) {
		/* Not a valid access: as an unclaimed local one. */
		if (!is_write)
			memset(data, 0xFF, (size_t)size * count);
		return 0;
	}
	machine__request_stop(v->m, KRG_EXIT_FAILURE, "vCPU %u: %s", v->index,
			      err);
	return -1;
}

static int handle_pio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	uint32_t i;

	v->stats.exits_io++;
	/* data_offset/size/count come from KVM, but stay inside the page. */
	if (run->io.data_offset + (uint64_t)run->io.size * run->io.count >
	    v->run_size)
		return 0;
	if (v->m->io_client)
		return forward_io(v, IO_SPACE_PIO, run->io.port, run->io.size,
				  run->io.count, is_write, data);
	for (i = 0; i < run->io.count; i++, data += run->io.size) {
		if (!io_bus__dispatch(v->m->bus, IO_SPACE_PIO, run->io.port,
				      data, run->io.size, is_write) &&
		    v->m->cfg->debug_io)
			machine__log(v->m, "unhandled port %s 0x%04x size %u%s",
				     is_write ? "write" : "read",
				     run->io.port, run->io.size,
				     is_write ? "" : " (reads all ones)");
	}
	return 0;
}

static int handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint64_t addr = run->mmio.phys_addr, base;
	uint32_t len = run->mmio.len;

	v->stats.exits_mmio++;
	if (len > sizeof(run->mmio.data))
		return 0;
	if (lapic__mmio_enabled(&v->lapic, &base) && addr >= base &&
	    addr - base < 4096) {
		lapic__mmio(&v->lapic, addr - base, run->mmio.data, len,
			    run->mmio.is_write);
		return 0;
	}
	/* A virtio-blk queue this node serves takes its doorbell here. */
	if (v->m->io_client &&
	    machine__local_mmio(v->m, addr, run->mmio.data, len,
				run->mmio.is_write))
		return 0;
	if (v->m->io_client)
		return forward_io(v, IO_SPACE_MMIO, addr, len, 1,
				  run->mmio.is_write, run->mmio.data);
	if (!io_bus__dispatch(v->m->bus, IO_SPACE_MMIO, addr, run->mmio.data,
			      len, run->mmio.is_write) &&
	    v->m->cfg->debug_io)
		machine__log(v->m, "unhandled MMIO %s 0x%llx size %u",
			     run->mmio.is_write ? "write" : "read",
			     (unsigned long long)addr, len);
	return 0;
}

static void handle_msr(struct vcpu *v, bool is_write)
{
	struct kvm_run *run = v->run;
	uint32_t idx = run->msr.index;
	int r = -1;

	v->stats.exits_msr++;
	if (idx == MSR_LSTAR && is_write) {
		/* Writes only are filtered, so we learn the guest's SYSCALL
		 * target: KVM keeps the value (a host write passes the filter). */
		struct {
			struct kvm_msrs hdr;
			struct kvm_msr_entry e;
		} b = { .hdr.nmsrs = 1, .e.index = idx, .e.data = run->msr.data };
		r = ioctl(v->fd, KVM_SET_MSRS, &b) == 1 ? 0 : -1;
		if (r == 0 && pvm_syscall__arm(v) < 0)
			machine__log(v->m, "vCPU %u: cannot watch for PVM's "
				     "half-done syscalls", v->index);
	} else if (idx == MSR_KVM_PV_EOI_EN) {
		r = 0;
		if (!is_write)
			run->msr.data = lapic__pv_eoi_msr(&v->lapic);
		else if ((run->msr.data & KVM_PV_EOI_MSR_ENABLED) &&
			 ((run->msr.data & 2) ||
			  !guest_mem__ptr(&v->m->mem,
					  run->msr.data & ~KVM_PV_EOI_MSR_ENABLED,
					  4)))
			r = -1; /* not a 4-byte word of guest RAM: #GP, as KVM */
		else
			lapic__set_pv_eoi_msr(&v->lapic, run->msr.data);
	} else if (lapic__owns_msr(idx)) {
		if (is_write)
			r = lapic__msr_write(&v->lapic, idx, run->msr.data);
		else {
			uint64_t val = 0;
			r = lapic__msr_read(&v->lapic, idx, &val);
			run->msr.data = val;
		}
	} else if (v->m->cfg->debug_io) {
		machine__log(v->m, "vCPU %u: %s of unknown MSR 0x%x -> #GP",
			     v->index, is_write ? "wrmsr" : "rdmsr", idx);
	}
	/* error = 1 makes KVM inject #GP, as hardware does. */
	run->msr.error = r < 0 ? 1 : 0;
}

int vcpu__handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	const char *name;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return handle_pio(v);
	case KVM_EXIT_MMIO:
		return handle_mmio(v);
	case KVM_EXIT_X86_RDMSR:
		handle_msr(v, false);
		return 0;
	case KVM_EXIT_X86_WRMSR:
		handle_msr(v, true);
		return 0;
	case KVM_EXIT_HLT:
		v->stats.exits_hlt++;
		v->halt_if = run->if_flag;
		v->state = VCPU_STATE_HALTED;
		return 0;
	case KVM_EXIT_DEBUG:
		return pvm_syscall__debug_exit(v);
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		v->stats.exits_window++;
		return 0;
	case KVM_EXIT_INTR:
		v->stats.exits_intr++;
		return 0;
	case KVM_EXIT_INTERNAL_ERROR:
		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION)
			return vcpu__handle_emulation_failure(v);
		vcpu__report(v, "KVM internal error", NULL, 0);
		fprintf(stderr, "  suberror %u, ndata %u\n",
			run->internal.suberror, run->internal.ndata);
		machine__request_stop(v->m, KRG_EXIT_FAILURE,
				      "vCPU %u: KVM internal error %u", v->index,
				      run->internal.suberror);
		return -1;
	case KVM_EXIT_SHUTDOWN:
		vcpu__report(v, "triple fault (KVM_EXIT_SHUTDOWN)", NULL, 0);
		machine__request_stop(v->m, KRG_EXIT_FAILURE,
				      "vCPU %u: triple fault", v->index);
		return -1;
	case KVM_EXIT_FAIL_ENTRY:
		vcpu__report(v, "VM entry failed", NULL, 0);
		fprintf(stderr, "  hardware entry failure reason 0x%llx\n",
			(unsigned long long)run->fail_entry
				.hardware_entry_failure_reason);
		machine__request_stop(v->m, KRG_EXIT_FAILURE,
				      "vCPU %u: VM entry failed", v->index);
		return -1;
	default:
		name = exit_name(run->exit_reason);
		if (name)
			vcpu__report(v, name, NULL, 0);
		else {
			char what[64];
			snprintf(what, sizeof(what), "unexpected exit reason %u",
				 run->exit_reason);
			vcpu__report(v, what, NULL, 0);
		}
		machine__request_stop(v->m, KRG_EXIT_FAILURE,
				      "vCPU %u: exit reason %u", v->index,
				      run->exit_reason);
		return -1;
	}
}
