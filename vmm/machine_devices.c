/* The PC platform: interrupt controllers and device models, their traps
 * in the io registry, their timers, and their state sections. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vcpu/ioapic.h"
#include "vcpu/irq_lines.h"
#include "vcpu/irq_route.h"
#include "vcpu/pic.h"
#include "vcpu/vcpu.h"
#include "vmm/console.h"
#include "vmm/devices/acpi_pm.h"
#include "vmm/devices/debug_exit.h"
#include "vmm/devices/debugcon.h"
#include "vmm/devices/dev_clock.h"
#include "vmm/devices/fw_cfg.h"
#include "vmm/devices/i8042.h"
#include "vmm/devices/pci_host.h"
#include "vmm/devices/pit.h"
#include "vmm/devices/rtc.h"
#include "vmm/devices/uart.h"
#include "vmm/io_bus.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"
#include "vmm/state_blob.h"

#define POST_CODE_PORT 0x80

/* One allocation for the whole platform; the machine keeps pointers. */
struct platform {
	struct pic pic;
	struct ioapic ioapic;
	struct irq_lines lines;
	struct uart uart;
	struct rtc rtc;
	struct i8042 i8042;
	struct pci_host pci;
	struct acpi_pm acpi_pm;
	struct debug_exit debug_exit;
	struct debugcon debugcon;
	struct fw_cfg fw_cfg;
	struct pit pit;
	struct vtimer pit_timer, rtc_timer;
	struct dev_clock pit_clock, rtc_clock, pm_clock;
	bool built;
};

static struct platform *platform_of(struct machine *m)
{
	/* pic is the first member: the platform starts there. */
	return (struct platform *)(void *)m->pic;
}

static int ioapic_send(void *ctx, const struct apic_msg *msg)
{
	struct machine *m = ctx;

	return irq_router__deliver(m->router, msg);
}

static void bsp_lint0(void *ctx, bool level)
{
	struct machine *m = ctx;

	if (m->vcpus && m->vcpus[0])
		lapic__set_lint0(&m->vcpus[0]->lapic, level);
}

/* Port 0x80 (POST codes, and the classic I/O delay): accepted silently. */
static void post_code_io(void *opaque, uint64_t offset, uint8_t *data,
			 uint32_t len, bool is_write)
{
	if (!is_write)
		memset(data, 0xFF, len);
}

struct trap {
	enum io_space space;
	uint64_t base, len;
	io_handler_fn fn;
	void *dev;
	const char *name;
};

static int register_traps(struct machine *m, struct platform *p, char *err,
			  size_t errlen)
{
	const struct trap traps[] = {
		{ IO_SPACE_PIO, PIC_MASTER_BASE, 2, pic__io_master, &p->pic, "pic-master" },
		{ IO_SPACE_PIO, PIC_SLAVE_BASE, 2, pic__io_slave, &p->pic, "pic-slave" },
		{ IO_SPACE_PIO, PIC_ELCR_BASE, 2, pic__io_elcr, &p->pic, "pic-elcr" },
		{ IO_SPACE_MMIO, IOAPIC_DEFAULT_BASE, 0x1000, ioapic__mmio, &p->ioapic, "ioapic" },
		{ IO_SPACE_PIO, UART_COM1_PORT, UART_PORT_LEN, uart__io, &p->uart, "com1" },
		{ IO_SPACE_PIO, RTC_PORT, RTC_PORT_LEN, rtc__io, &p->rtc, "rtc" },
		{ IO_SPACE_PIO, 0x60, 1, i8042__io_data, &p->i8042, "i8042-data" },
		{ IO_SPACE_PIO, 0x64, 1, i8042__io_cmd, &p->i8042, "i8042-cmd" },
		{ IO_SPACE_PIO, PCI_HOST_PORT, PCI_HOST_PORT_LEN, pci_host__io, &p->pci, "pci-host" },
		{ IO_SPACE_PIO, ACPI_PM_EVT_PORT, ACPI_PM_EVT_LEN, acpi_pm__io_evt, &p->acpi_pm, "acpi-pm1-evt" },
		{ IO_SPACE_PIO, ACPI_PM_CNT_PORT, ACPI_PM_CNT_LEN, acpi_pm__io_cnt, &p->acpi_pm, "acpi-pm1-cnt" },
		{ IO_SPACE_PIO, ACPI_PM_TIMER_PORT, ACPI_PM_TIMER_LEN, acpi_pm__io_tmr, &p->acpi_pm, "acpi-pm-tmr" },
		{ IO_SPACE_PIO, ACPI_PM_GPE_PORT, ACPI_PM_GPE_LEN, acpi_pm__io_gpe, &p->acpi_pm, "acpi-gpe0" },
		{ IO_SPACE_PIO, DEBUG_EXIT_PORT, DEBUG_EXIT_LEN, debug_exit__io, &p->debug_exit, "debug-exit" },
		{ IO_SPACE_PIO, DEBUGCON_PORT, DEBUGCON_LEN, debugcon__io, &p->debugcon, "debugcon" },
		{ IO_SPACE_PIO, FW_CFG_PORT, FW_CFG_PORT_LEN, fw_cfg__io, &p->fw_cfg, "fw_cfg" },
		{ IO_SPACE_PIO, PIT_PORT, PIT_PORT_LEN, pit__io, &p->pit, "pit" },
		{ IO_SPACE_PIO, PIT_PORT61, PIT_PORT61_LEN, pit__io_port61, &p->pit, "port61" },
		{ IO_SPACE_PIO, POST_CODE_PORT, 1, post_code_io, NULL, "post-code" },
	};
	size_t i;

	for (i = 0; i < sizeof(traps) / sizeof(traps[0]); i++) {
		const struct trap *t = &traps[i];
		if (io_bus__register(m->bus, t->space, t->base, t->len, t->fn,
				     t->dev, t->name) < 0) {
			snprintf(err, errlen, "io registry: %s at 0x%llx clashes",
				 t->name, (unsigned long long)t->base);
			return -1;
		}
	}
	return 0;
}

int machine__build_devices(struct machine *m, char *err, size_t errlen)
{
	struct platform *p = calloc(1, sizeof(*p));
	uint64_t below = m->mem.region[0].size;
	uint64_t above = m->mem.ram_size - below;
	uint8_t ioapic_id = (uint8_t)(m->nr_vcpus < 255 ? m->nr_vcpus : 0);
	struct ioapic_env ioenv = { .ctx = m, .send = ioapic_send };

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->pic = &p->pic;
	m->ioapic = &p->ioapic;
	m->irq_lines = &p->lines;
	m->uart = &p->uart;
	m->rtc = &p->rtc;
	m->i8042 = &p->i8042;
	m->pci = &p->pci;
	m->acpi_pm = &p->acpi_pm;
	m->debug_exit = &p->debug_exit;
	m->debugcon = &p->debugcon;
	m->fw_cfg = &p->fw_cfg;
	m->pit = &p->pit;

	ioapic__init(&p->ioapic, ioapic_id, &ioenv);
	irq_lines__init(&p->lines, &p->pic, &p->ioapic, bsp_lint0, m);
	pic__init(&p->pic, irq_lines__pic_output, &p->lines);
	m->irq = irq_lines__sink(&p->lines);

	vtimer__init(&p->pit_timer, m->timers, pit__timer_fire, &p->pit);
	vtimer__init(&p->rtc_timer, m->timers, rtc__timer_fire, &p->rtc);
	p->pit_clock = dev_clock__vtimer(&p->pit_timer);
	p->rtc_clock = dev_clock__vtimer(&p->rtc_timer);
	p->pm_clock = (struct dev_clock){ .now_ns = dev_clock__vclock_now };

	uart__init(&p->uart, &m->irq, UART_COM1_IRQ,
		   m->cfg->serial_stdio ? STDOUT_FILENO : -1);
	rtc__init(&p->rtc, below, above, m->nr_vcpus, &m->irq, &p->rtc_clock);
	i8042__init(&p->i8042, &m->irq, &m->control);
	pci_host__init(&p->pci, &m->control);
	pci_host__set_irq_out(&p->pci, &m->irq);
	acpi_pm__init(&p->acpi_pm, &m->irq, &m->control, &p->pm_clock);
	debug_exit__init(&p->debug_exit, &m->control);
	debugcon__init(&p->debugcon, m->cfg->debugcon_off ? -1 : STDERR_FILENO,
		       machine__firmware_log_line, m);
	pit__init(&p->pit, &m->irq, &p->pit_clock);
	p->built = true;
	if (fw_cfg__init(&p->fw_cfg, &m->mem) < 0 ||
	    fw_cfg__add_u64(&p->fw_cfg, FW_CFG_RAM_SIZE, m->mem.ram_size) < 0 ||
	    fw_cfg__add_u16(&p->fw_cfg, FW_CFG_NOGRAPHIC, 1) < 0 ||
	    fw_cfg__add_u16(&p->fw_cfg, FW_CFG_NB_CPUS,
			    (uint16_t)m->nr_vcpus) < 0 ||
	    fw_cfg__add_u16(&p->fw_cfg, FW_CFG_MAX_CPUS,
			    (uint16_t)m->nr_vcpus) < 0) {
		snprintf(err, errlen, "fw_cfg: out of memory");
		return -1;
	}
	if (register_traps(m, p, err, errlen) < 0)
		return -1;
	if (machine__build_drives(m, err, errlen) < 0)
		return -1;
	return machine__build_net(m, err, errlen);
}

void machine__start_devices(struct machine *m)
{
	char err[256];

	/* Only the boot node has devices (and the user's terminal). */
	machine__start_net(m);
	if (!m->cfg->serial_stdio || !m->uart)
		return;
	m->console = console__start(STDIN_FILENO, STDERR_FILENO, m->uart,
				    &m->control, err, sizeof(err));
	if (!m->console)
		machine__log(m, "no console input: %s", err);
}

void machine__stop_devices(struct machine *m)
{
	console__stop(m->console);
	m->console = NULL;
	if (m->uart)
		uart__flush(m->uart, 1000);
	if (m->debugcon)
		debugcon__flush(m->debugcon);
	machine__stop_net(m);
	machine__stop_drives(m);
}

void machine__destroy_devices(struct machine *m)
{
	struct platform *p = m->pic ? platform_of(m) : NULL;

	if (!p)
		return;
	console__stop(m->console);
	m->console = NULL;
	/* The NICs decode through the drives' PCI window: first. */
	machine__destroy_net(m);
	machine__destroy_drives(m);
	if (p->built) {
		/* The timer service is gone by now (machine__destroy frees it
		 * first), so no callback can run into these. */
		p->pit_timer.svc = p->rtc_timer.svc = NULL;
		pit__destroy(&p->pit);
		fw_cfg__destroy(&p->fw_cfg);
		acpi_pm__destroy(&p->acpi_pm);
		debugcon__destroy(&p->debugcon);
		pci_host__destroy(&p->pci);
		i8042__destroy(&p->i8042);
		rtc__destroy(&p->rtc);
		uart__destroy(&p->uart);
		pic__destroy(&p->pic);
		ioapic__destroy(&p->ioapic);
	}
	free(p);
	m->pic = NULL;
}

/* Every device's state section: a plain struct under the device's lock. */
struct dev_section {
	const char *name;
	uint32_t version;
	void *state;
	size_t size;
	pthread_mutex_t *lock;
};

#define DEV_SECTION(n, ver, dev) { n, ver, &(dev).s, sizeof((dev).s), &(dev).lock }

static size_t dev_sections(struct platform *p, struct dev_section *out)
{
	const struct dev_section all[] = {
		DEV_SECTION("pic", PIC_STATE_VERSION, p->pic),
		DEV_SECTION("ioapic", IOAPIC_STATE_VERSION, p->ioapic),
		DEV_SECTION("uart0", UART_STATE_VERSION, p->uart),
		DEV_SECTION("rtc", RTC_STATE_VERSION, p->rtc),
		DEV_SECTION("i8042", I8042_STATE_VERSION, p->i8042),
		DEV_SECTION("pci", PCI_HOST_STATE_VERSION, p->pci),
		DEV_SECTION("acpi_pm", ACPI_PM_STATE_VERSION, p->acpi_pm),
		DEV_SECTION("fw_cfg", FW_CFG_STATE_VERSION, p->fw_cfg),
		DEV_SECTION("pit", PIT_STATE_VERSION, p->pit),
	};
	memcpy(out, all, sizeof(all));
	return sizeof(all) / sizeof(all[0]);
}

int machine__save_devices(struct machine *m, struct state_writer *w,
			  char *err, size_t errlen)
{
	struct dev_section s[16];
	size_t i, n = dev_sections(platform_of(m), s);
	int r;

	for (i = 0; i < n; i++) {
		pthread_mutex_lock(s[i].lock);
		r = state_writer__add(w, s[i].name, s[i].version, s[i].state,
				      s[i].size);
		pthread_mutex_unlock(s[i].lock);
		if (r < 0) {
			snprintf(err, errlen, "saving %s: out of memory",
				 s[i].name);
			return -1;
		}
	}
	if (machine__save_drives(m, w, err, errlen) < 0)
		return -1;
	return machine__save_net(m, w, err, errlen);
}

int machine__load_devices(struct machine *m, struct state_reader *r,
			  char *err, size_t errlen)
{
	struct platform *p = platform_of(m);
	struct dev_section s[16];
	size_t i, n = dev_sections(p, s);
	int rc;

	for (i = 0; i < n; i++) {
		pthread_mutex_lock(s[i].lock);
		rc = state_reader__get(r, s[i].name, s[i].version, s[i].state,
				       s[i].size, err, errlen);
		pthread_mutex_unlock(s[i].lock);
		if (rc < 0)
			return -1;
	}
	if (machine__load_drives(m, r, err, errlen) < 0 ||
	    machine__load_net(m, r, err, errlen) < 0)
		return -1;
	pic__post_load(&p->pic);
	ioapic__post_load(&p->ioapic);
	uart__post_load(&p->uart);
	rtc__post_load(&p->rtc);
	i8042__post_load(&p->i8042);
	pci_host__post_load(&p->pci);
	machine__post_load_drives(m);
	machine__post_load_net(m);
	acpi_pm__post_load(&p->acpi_pm);
	fw_cfg__post_load(&p->fw_cfg);
	pit__post_load(&p->pit);
	return 0;
}
