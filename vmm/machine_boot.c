/* Guest material: the kernel (Linux bzImage/vmlinux or multiboot), its
 * initrd or modules, the ACPI tables, E820, and the BSP's entry state. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guestfw/acpi.h"
#include "guestfw/acpi_numa.h"
#include "guestfw/e820.h"
#include "guestfw/linux_boot.h"
#include "guestfw/multiboot.h"
#include "storage/ext4_image.h"
#include "vcpu/pvm_profile.h"
#include "vcpu/vcpu.h"
#include "vmm/devices/fw_cfg.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"

#define KERNEL_MAX_BYTES (512ull << 20)
#define ACPI_AREA_GPA 0xE0000ull
#define ACPI_AREA_LEN 0x20000ull

enum guest_kind { GUEST_LINUX, GUEST_MULTIBOOT };

struct guest_files {
	enum guest_kind kind;
	uint8_t *kernel;
	size_t kernel_len;
	uint8_t *vmlinux; /* a bzImage's payload, decompressed */
	size_t vmlinux_len;
	struct linux_kernel_info linux_info;
	uint8_t *initrd;
	size_t initrd_len;
	struct multiboot_module_spec *mod_specs;
	struct multiboot_module *mods;
	unsigned nr_mods;
};

static int read_whole(const char *what, const char *path, uint64_t max,
		      uint8_t **out, size_t *out_len, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf;
	size_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s '%s': %s", what, path,
			 strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s '%s' is not a regular file", what,
			 path);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > max || st.st_size == 0) {
		snprintf(err, errlen, "%s '%s' is %s (%lld bytes)", what, path,
			 st.st_size ? "too large" : "empty",
			 (long long)st.st_size);
		close(fd);
		return -1;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		snprintf(err, errlen, "out of memory reading %s", path);
		close(fd);
		return -1;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
		if (n <= 0) {
			snprintf(err, errlen, "reading %s '%s': %s", what, path,
				 n ? strerror(errno) : "file shrank");
			free(buf);
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	close(fd);
	*out = buf;
	*out_len = done;
	return 0;
}

/* A host file, or with the drive:/PATH spelling a file inside a -drive's
 * ext2/3/4 filesystem (storage/ext4_image.h), read before the drives
 * open. */
static int read_boot_file(const struct machine *m, const char *what,
			  const char *path, uint64_t max, uint8_t **out,
			  size_t *out_len, char *err, size_t errlen)
{
	char info[768];

	if (!ext4_image__is_spec(path))
		return read_whole(what, path, max, out, out_len, err, errlen);
	if (ext4_image__read_spec(m->cfg->drives, m->cfg->nr_drives, what,
				  path, max, out, out_len, info, sizeof(info),
				  err, errlen) < 0)
		return -1;
	machine__log(m, "%s %s: %s, %zu bytes", what, path, info, *out_len);
	return 0;
}

static int read_multiboot_modules(const struct machine *m,
				  struct guest_files *f, const char *list,
				  uint64_t max, char *err, size_t errlen)
{
	unsigned i;

	if (!list[0])
		return 0;
	if (multiboot__parse_modules(list, &f->mod_specs, &f->nr_mods, err,
				     errlen) < 0)
		return -1;
	f->mods = calloc(f->nr_mods, sizeof(*f->mods));
	if (!f->mods) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < f->nr_mods; i++) {
		uint8_t *data;
		size_t len;
		if (read_boot_file(m, "multiboot module",
				   f->mod_specs[i].path, max, &data, &len,
				   err, errlen) < 0)
			return -1;
		f->mods[i] = (struct multiboot_module){
			data, len, f->mod_specs[i].string };
	}
	return 0;
}

int machine__read_guest_files(struct machine *m, char *err, size_t errlen)
{
	const struct vm_config *cfg = m->cfg;
	struct guest_files *f;
	struct multiboot_header_info mb;
	int mbr;

	if (machine__firmware_boot(cfg))
		return machine__read_firmware(m, err, errlen);
	if (cfg->state_in[0] && !cfg->kernel[0])
		return 0; /* a restore brings its RAM along */
	f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return KRG_EXIT_FAILURE;
	}
	m->files = f;
	if (read_boot_file(m, "kernel", cfg->kernel, KERNEL_MAX_BYTES,
			   &f->kernel, &f->kernel_len, err, errlen) < 0)
		return KRG_EXIT_USAGE;
	/* A Linux setup header wins: bzImages carry no multiboot header, and
	 * a kernel that had both would want the Linux protocol. */
	mbr = f->kernel_len > 0x206 && !memcmp(f->kernel + 0x202, "HdrS", 4) ?
		      0 :
		      multiboot__probe(f->kernel, f->kernel_len, &mb, err,
				       errlen);
	if (mbr < 0)
		return KRG_EXIT_USAGE;
	if (mbr == 1) {
		f->kind = GUEST_MULTIBOOT;
		return read_multiboot_modules(m, f, cfg->initrd,
					      cfg->ram_mib << 20, err,
					      errlen) < 0 ?
			       KRG_EXIT_USAGE :
			       0;
	}
	f->kind = GUEST_LINUX;
	if (linux_boot__probe(f->kernel, f->kernel_len, &f->linux_info, err,
			      errlen) < 0) {
		char why[256];
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "kernel '%s': %s", cfg->kernel, why);
		return KRG_EXIT_USAGE;
	}
	if (f->linux_info.format == LINUX_IMAGE_BZIMAGE &&
	    linux_boot__extract(f->kernel, f->kernel_len, &f->linux_info,
				&f->vmlinux, &f->vmlinux_len, err, errlen) < 0)
		return KRG_EXIT_USAGE;
	if (cfg->initrd[0] &&
	    read_boot_file(m, "initrd", cfg->initrd, cfg->ram_mib << 20,
			   &f->initrd, &f->initrd_len, err, errlen) < 0)
		return KRG_EXIT_USAGE;
	return 0;
}

void machine__free_guest_files(struct machine *m)
{
	struct guest_files *f = m->files;
	unsigned i;

	if (!f)
		return;
	free(f->kernel);
	free(f->vmlinux);
	free(f->initrd);
	if (f->mods)
		for (i = 0; i < f->nr_mods; i++)
			free((void *)f->mods[i].data);
	free(f->mods);
	multiboot__free_modules(f->mod_specs, f->nr_mods);
	free(f);
	m->files = NULL;
}

void machine__acpi_config(struct machine *m, struct acpi_config *c_out,
			  struct acpi_numa *numa)
{
	struct acpi_config c;

	*numa = (struct acpi_numa){ .layout = &m->layout };
	acpi__config_init(&c, m->nr_vcpus);
	c.rtc_century = 0x32;
	/* vmm/devices/acpi_pm.c has the fixed power button (QMP
	 * system_powerdown presses it). */
	c.power_button = true;
	/* INTx of PCI slots (virtio-pci disks): pin P of slot S on PIRQ
	 * (S - 1 + P) % 4 (vmm/devices/pci_host.h), GSI
	 * MACHINE_PCI_INTX_GSI0 + PIRQ, IOAPIC pins of their own. */
	c.pci_prt = m->cfg->nr_drives > 0;
	for (unsigned i = 0; i < 4; i++)
		c.pci_intx_gsi[i] = (uint8_t)(MACHINE_PCI_INTX_GSI0 + i);
	/* A cluster VM: one guest NUMA node per cluster node (SRAT/SLIT). */
	if (m->cluster)
		c.numa = numa;
	*c_out = c;
}

static int build_acpi(struct machine *m, uint64_t *rsdp, char *err,
		      size_t errlen)
{
	struct acpi_config c;
	struct acpi_layout lay;
	struct acpi_numa numa;
	uint8_t *area = guest_mem__ptr(&m->mem, ACPI_AREA_GPA, ACPI_AREA_LEN);

	if (!area) {
		snprintf(err, errlen, "no RAM for the ACPI tables");
		return -1;
	}
	machine__acpi_config(m, &c, &numa);
	if (acpi__build(&c, area, ACPI_AREA_LEN, ACPI_AREA_GPA, &lay, err,
			errlen) < 0)
		return -1;
	*rsdp = lay.rsdp_gpa;
	return 0;
}

static void print_pvm_summary(struct machine *m,
			      const struct pvm_cmdline_result *res)
{
	struct pvm_host host;
	char line[1024];

	if (!m->pvm_host && m->cfg->pvm_profile != VM_ON)
		return;
	pvm_profile__detect(NULL, NULL, &host);
	pvm_profile__summary(&host, m->cfg->pvm_profile, res, line,
			     sizeof(line));
	fprintf(stderr, "%s\n", line);
}

/* Adds sw to the kernel command line, before " -- " (what follows belongs
 * to init); false when it does not fit. */
static bool cmdline_add(struct machine *m, const char *sw)
{
	size_t len = strlen(m->kernel_cmdline), n = strlen(sw);
	char *init_args = strstr(m->kernel_cmdline, " -- ");

	if (len + n + 2 > sizeof(m->kernel_cmdline))
		return false;
	if (init_args) {
		memmove(init_args + n + 1, init_args,
			len - (size_t)(init_args - m->kernel_cmdline) + 1);
		init_args[0] = ' ';
		memcpy(init_args + 1, sw, n);
	} else {
		snprintf(m->kernel_cmdline + len,
			 sizeof(m->kernel_cmdline) - len, "%s%s",
			 len ? " " : "", sw);
	}
	return true;
}

/* A cluster guest has no kvmclock (vmm/machine_cluster.c) and keeps time
 * with the TSC, which is the same on every node of a host.  Linux would
 * otherwise distrust it (its clocksource watchdog misjudges emulated,
 * slow kernel code as TSC skew) and fall back to the ACPI PM timer: a port
 * read per clock read, forwarded to node 0 from every other node. */
static void cluster_time_switch(struct machine *m)
{
	static const char sw[] = "tsc=reliable";

	if (strstr(m->kernel_cmdline, "tsc=") || !cmdline_add(m, sw))
		return;
	machine__log(m, "cluster VM: kernel command line += %s (guest time "
		     "from the TSC, the same on every node of a host)", sw);
}

/* Linux's housekeeping - the timekeeping duty (jiffies, the timekeeper),
 * unbound work, RCU callbacks, idle load balancing - otherwise goes to
 * whichever CPU wakes, and every wake-up of an idle guest then moves those
 * pages between nodes (bench/RESULTS.md: 169 pages/s idle, 75 with this).
 * nohz_full= keeps it on node 0's vCPUs, where the devices are too.  A
 * command line with its own nohz_full= or isolcpus= decides for itself. */
static void cluster_housekeeping_switch(struct machine *m)
{
	char list[256], sw[sizeof(list) + 16];

	if (strstr(m->kernel_cmdline, "nohz_full=") ||
	    strstr(m->kernel_cmdline, "isolcpus=") ||
	    numa_layout__vcpu_node(&m->layout, 0) != 0 ||
	    numa_layout__vcpus_off_node(&m->layout, 0, list,
					sizeof(list)) <= 0)
		return;
	snprintf(sw, sizeof(sw), "nohz_full=%s", list);
	if (!cmdline_add(m, sw))
		return;
	machine__log(m, "cluster VM: kernel command line += %s (the guest "
		     "kernel's housekeeping stays on node 0's vCPUs)", sw);
}

/* Proactive compaction wakes every NUMA node's kcompactd twice a second
 * (on the node's own vCPUs: a cross-node wake-up each time) to move guest
 * pages around, which across nodes means moving them between hosts.  Off,
 * an idle stock kernel's 71 pages/s became 0.1 (bench/RESULTS.md). */
static void cluster_compaction_switch(struct machine *m)
{
	static const char sw[] = "sysctl.vm.compaction_proactiveness=0";

	if (strstr(m->kernel_cmdline, "compaction_proactiveness=") ||
	    !cmdline_add(m, sw))
		return;
	machine__log(m, "cluster VM: kernel command line += %s (no "
		     "background page moves between nodes)", sw);
}

static int load_linux(struct machine *m, const struct e820_table *e820,
		      uint64_t rsdp, char *err, size_t errlen)
{
	struct guest_files *f = m->files;
	struct pvm_cmdline_result res;
	struct linux_boot_result out;
	struct linux_boot_params_in in = {
		.kernel = f->kernel,
		.kernel_len = f->kernel_len,
		.initrd = f->initrd,
		.initrd_len = f->initrd_len,
		.cmdline = m->kernel_cmdline,
		.rsdp_gpa = rsdp,
		.vmlinux = f->vmlinux,
		.vmlinux_len = f->vmlinux_len,
	};

	if (m->pvm_profile) {
		m->timer_min_gap_ns = PVM_TIMER_MIN_GAP_NS;
		m->syscall_fix = true;
		if (pvm_profile__amend_cmdline(m->kernel_cmdline,
					       sizeof(m->kernel_cmdline),
					       &res) < 0) {
			snprintf(err, errlen, "kernel command line too long "
				 "for the PVM profile's switches");
			return KRG_EXIT_USAGE;
		}
		print_pvm_summary(m, &res);
		machine__log(m, "PVM profile: LAPIC timer interrupts at least "
			     "%llu ms apart (each costs milliseconds of emulated "
			     "guest kernel code)",
			     (unsigned long long)(PVM_TIMER_MIN_GAP_NS / 1000000));
	}
	if (m->cluster) {
		cluster_time_switch(m);
		cluster_housekeeping_switch(m);
		cluster_compaction_switch(m);
	}
	if (linux_boot__load(&m->mem, &in, e820, &m->boot, &out, err, errlen) <
	    0)
		return KRG_EXIT_USAGE;
	machine__log(m, "Linux kernel: boot protocol %u.%02u, %s payload, "
		     "entry 0x%llx%s", out.info.version >> 8,
		     out.info.version & 0xFF,
		     linux_boot__compression_name(&out.info),
		     (unsigned long long)out.entry,
		     f->initrd ? ", initrd loaded" : "");
	return 0;
}

static int load_multiboot(struct machine *m, const struct e820_table *e820,
			  char *err, size_t errlen)
{
	struct guest_files *f = m->files;
	struct multiboot_params_in in = {
		.kernel = f->kernel,
		.kernel_len = f->kernel_len,
		.kernel_name = m->cfg->kernel,
		.cmdline = m->kernel_cmdline,
		.mods = f->mods,
		.nr_mods = f->nr_mods,
	};

	if (m->pvm_profile)
		print_pvm_summary(m, NULL);
	return multiboot__load(&m->mem, &in, e820, &m->boot, err, errlen) < 0 ?
		       KRG_EXIT_USAGE :
		       0;
}

bool machine__guest_is_linux(const struct machine *m)
{
	return m->files && m->files->kind == GUEST_LINUX;
}

int machine__load_guest(struct machine *m, char *err, size_t errlen)
{
	struct e820_table e820;
	uint64_t rsdp = 0;
	int status;

	if (m->firmware)
		return machine__load_firmware(m, m->cfg->state_in[0] != 0, err,
					      errlen);
	if (!m->files)
		return 0; /* restoring: RAM and registers come from the file */
	snprintf(m->kernel_cmdline, sizeof(m->kernel_cmdline), "%s",
		 m->cfg->append);
	if (e820__build(&m->mem, &e820) < 0) {
		snprintf(err, errlen, "cannot build the E820 map");
		return KRG_EXIT_FAILURE;
	}
	if (build_acpi(m, &rsdp, err, errlen) < 0)
		return KRG_EXIT_FAILURE;
	status = m->files->kind == GUEST_LINUX ?
			 load_linux(m, &e820, rsdp, err, errlen) :
			 load_multiboot(m, &e820, err, errlen);
	if (status)
		return status;
	fw_cfg__add_cmdline(m->fw_cfg, m->kernel_cmdline);
	if (cpu_state__enter_boot(m->vcpus[0]->fd, &m->boot) < 0) {
		snprintf(err, errlen, "setting the boot CPU state: %s",
			 strerror(errno));
		return KRG_EXIT_FAILURE;
	}
	/* The loaders' data now lives in guest RAM. */
	machine__free_guest_files(m);
	return 0;
}
