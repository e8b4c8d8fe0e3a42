/* Booting through firmware (SeaBIOS): the image mapped at the top of 4 GiB
 * and at 0xE0000, the fw_cfg files describing the machine, the boot vCPU at
 * the reset vector, and the firmware's debug log watched for "No bootable
 * device".  Chosen by -bios, or when there is a -drive and no -kernel. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guestfw/acpi.h"
#include "guestfw/acpi_numa.h"
#include "guestfw/e820.h"
#include "guestfw/firmware.h"
#include "vcpu/pvm_profile.h"
#include "vcpu/vcpu.h"
#include "vmm/bytes.h"
#include "vmm/devices/fw_cfg.h"
#include "vmm/devices/uart.h"
#include "vmm/errf.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"

/* Slots 0 and 1 are RAM (vmm/machine.c). */
#define ROM_SLOT 8
/* The ACPI tables' build area before they become fw_cfg files. */
#define ACPI_BUILD_LEN 0x20000
/* What SeaBIOS waits after "No bootable device." before it reboots: the
 * machine stops at the message already; this only bounds the wait should
 * a firmware not log it on the debug port. */
#define BOOT_FAIL_WAIT_MS 5000u
#define NO_BOOT_TEXT "No bootable device"

struct machine_firmware {
	char path[VM_PATH_MAX];
	uint8_t *image;
	size_t len;
	struct firmware_layout lay;
	void *rom;       /* the read-only copy KVM maps below 4 GiB */
};

bool machine__firmware_boot(const struct vm_config *cfg)
{
	return !cfg->kernel[0] && (cfg->bios[0] || cfg->nr_drives > 0);
}

static int read_image(struct machine_firmware *fw, char *err, size_t errlen)
{
	struct stat st;
	size_t done = 0;
	int fd = open(fw->path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		errf(err, errlen, "cannot open BIOS image '%s': %s%s", fw->path,
		     strerror(errno), errno == ENOENT && !strcmp(fw->path,
			     MACHINE_DEFAULT_BIOS) ? " (install Debian's "
			     "seabios package, or give -bios FILE)" : "");
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		errf(err, errlen, "BIOS image '%s' is not a regular file",
		     fw->path);
		goto fail;
	}
	if (st.st_size < FIRMWARE_MIN_SIZE || st.st_size > FIRMWARE_MAX_SIZE) {
		errf(err, errlen, "BIOS image '%s': a BIOS image must be a "
		     "multiple of 64 KiB between 64 KiB and 16 MiB (this one "
		     "is %lld bytes)", fw->path, (long long)st.st_size);
		goto fail;
	}
	fw->len = (size_t)st.st_size;
	fw->image = malloc(fw->len);
	if (!fw->image) {
		errf(err, errlen, "out of memory reading '%s'", fw->path);
		goto fail;
	}
	while (done < fw->len) {
		ssize_t n = read(fd, fw->image + done, fw->len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errf(err, errlen, "reading BIOS image '%s': %s",
			     fw->path, n ? strerror(errno) : "file shrank");
			goto fail;
		}
		done += (size_t)n;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

int machine__read_firmware(struct machine *m, char *err, size_t errlen)
{
	struct machine_firmware *fw = calloc(1, sizeof(*fw));
	char why[256];

	if (!fw) {
		errf(err, errlen, "out of memory");
		return KRG_EXIT_FAILURE;
	}
	m->firmware = fw;
	snprintf(fw->path, sizeof(fw->path), "%s",
		 m->cfg->bios[0] ? m->cfg->bios : MACHINE_DEFAULT_BIOS);
	if (read_image(fw, err, errlen) < 0)
		return KRG_EXIT_USAGE;
	if (firmware__check(fw->image, fw->len, &fw->lay, why,
			    sizeof(why)) < 0) {
		errf(err, errlen, "BIOS image '%s': %s", fw->path, why);
		return KRG_EXIT_USAGE;
	}
	return 0;
}

/* The image, read-only, at 4 GiB - size: writes there exit to us as MMIO
 * and nothing claims them, as with a real flash chip that is locked. */
static int map_rom(struct machine *m, char *err, size_t errlen)
{
	struct machine_firmware *fw = m->firmware;
	struct kvm_userspace_memory_region r;
	void *p;

	if (ioctl(m->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0) {
		errf(err, errlen, "this host's KVM cannot map read-only memory "
		     "(KVM_CAP_READONLY_MEM), which a BIOS image needs");
		return -1;
	}
	p = mmap(NULL, fw->len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		errf(err, errlen, "mapping the BIOS image: %s",
		     strerror(errno));
		return -1;
	}
	fw->rom = p;
	memcpy(p, fw->image, fw->len);
	mprotect(p, fw->len, PROT_READ);
	r = (struct kvm_userspace_memory_region){
		.slot = ROM_SLOT,
		.flags = KVM_MEM_READONLY,
		.guest_phys_addr = fw->lay.rom_gpa,
		.memory_size = fw->len,
		.userspace_addr = (uint64_t)(uintptr_t)p,
	};
	if (ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		errf(err, errlen, "mapping the BIOS image at 0x%llx: %s",
		     (unsigned long long)fw->lay.rom_gpa, strerror(errno));
		return -1;
	}
	return 0;
}

static int add_file(struct machine *m, const char *name, const void *data,
		    size_t len, char *err, size_t errlen)
{
	if (fw_cfg__add_file(m->fw_cfg, name, data, len) < 0) {
		errf(err, errlen, "fw_cfg: cannot add %s", name);
		return -1;
	}
	return 0;
}

static int add_u32_file(struct machine *m, const char *name, uint32_t v,
			char *err, size_t errlen)
{
	uint8_t b[4];

	put_le32(b, v);
	return add_file(m, name, b, sizeof(b), err, errlen);
}

/* The same tables a directly booted kernel gets, for the firmware to
 * place (guestfw/fw_loader.c). */
static int add_acpi(struct machine *m, char *err, size_t errlen)
{
	struct firmware_acpi_files f;
	struct acpi_config c;
	struct acpi_numa numa;
	struct acpi_layout lay;
	uint8_t *buf = calloc(1, ACPI_BUILD_LEN);
	int rc = -1;

	if (!buf) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	machine__acpi_config(m, &c, &numa);
	if (acpi__build(&c, buf, ACPI_BUILD_LEN, 0, &lay, err, errlen) < 0 ||
	    firmware__acpi_files(buf, &lay, &f, err, errlen) < 0)
		goto out;
	rc = add_file(m, FW_ACPI_TABLES_FILE, f.tables, f.tables_len, err,
		      errlen) ||
	     add_file(m, FW_ACPI_RSDP_FILE, f.rsdp, sizeof(f.rsdp), err,
		      errlen) ||
	     add_file(m, FW_TABLE_LOADER_FILE, f.loader, f.loader_len, err,
		      errlen) ? -1 : 0;
	firmware__acpi_files_free(&f);
out:
	free(buf);
	return rc;
}

static int add_fw_cfg(struct machine *m, char *err, size_t errlen)
{
	uint8_t e820_file[E820_MAX_ENTRIES * FW_E820_ENTRY_SIZE];
	unsigned slots[VM_MAX_DRIVES];
	struct e820_table e820;
	char order[VM_MAX_DRIVES * 40];
	size_t n;
	uint8_t b[2];

	/* A larger image than the usual 256 KiB reserves all it covers. */
	if (e820__build(&m->mem, &e820) < 0 ||
	    e820__add(&e820, m->firmware->lay.rom_gpa, m->firmware->lay.rom_len,
		      E820_TYPE_RESERVED) < 0 ||
	    e820__sanitize(&e820) < 0 ||
	    !(n = firmware__e820_file(&e820, e820_file, sizeof(e820_file)))) {
		errf(err, errlen, "cannot build the E820 map");
		return -1;
	}
	if (add_file(m, "etc/e820", e820_file, n, err, errlen))
		return -1;
	for (unsigned i = 0; i < m->cfg->nr_drives; i++)
		slots[i] = MACHINE_DRIVE_SLOT0 + i;
	n = firmware__bootorder(slots, m->cfg->nr_drives, order,
				sizeof(order));
	if ((m->cfg->nr_drives && !n) ||
	    (n && add_file(m, "bootorder", order, n + 1, err, errlen)))
		return -1;
	/* SeaBIOS mirrors its screen output (and int 10h text of boot
	 * loaders such as GRUB) on COM1: there is no display. */
	put_le16(b, UART_COM1_PORT);
	if (add_file(m, "etc/sercon-port", b, 2, err, errlen) ||
	    add_u32_file(m, "etc/boot-fail-wait", BOOT_FAIL_WAIT_MS, err,
			 errlen) ||
	    fw_cfg__add_u16(m->fw_cfg, FW_CFG_BOOT_MENU, 0) < 0 ||
	    fw_cfg__add_bytes(m->fw_cfg, FW_CFG_IRQ0_OVERRIDE, "\1", 1) < 0) {
		errf(err, errlen, "fw_cfg: out of memory");
		return -1;
	}
	return add_acpi(m, err, errlen);
}

/* Under the PVM profile the guest's kernel is most likely Linux, started by
 * a boot loader whose command line krg-vmm cannot amend: say what it
 * needs. */
static void pvm_note(struct machine *m)
{
	char line[VM_CMDLINE_MAX] = "";
	struct pvm_cmdline_result res;

	if (!m->pvm_profile ||
	    pvm_profile__amend_cmdline(line, sizeof(line), &res) < 0)
		return;
	machine__log(m, "PVM profile: firmware boot: the guest kernel's "
		     "command line comes from its boot loader; on this host a "
		     "Linux kernel needs: %s", line);
}

int machine__load_firmware(struct machine *m, bool restoring, char *err,
			   size_t errlen)
{
	struct machine_firmware *fw = m->firmware;
	struct boot_entry reset = { .mode = BOOT_MODE_REAL16 };
	uint8_t *low;

	/* fw_cfg is host configuration: a restored guest still in the
	 * firmware reads the same files again. */
	if (map_rom(m, err, errlen) < 0 || add_fw_cfg(m, err, errlen) < 0)
		return KRG_EXIT_FAILURE;
	if (restoring)
		return 0; /* RAM (with the shadowed copy) comes from the file */
	low = guest_mem__ptr(&m->mem, fw->lay.low_gpa, fw->lay.low_len);
	if (!low) {
		errf(err, errlen, "no RAM at 0x%llx for the BIOS",
		     (unsigned long long)fw->lay.low_gpa);
		return KRG_EXIT_FAILURE;
	}
	memcpy(low, fw->image + fw->lay.low_offset, fw->lay.low_len);
	if (cpu_state__enter_boot(m->vcpus[0]->fd, &reset) < 0) {
		errf(err, errlen, "setting the boot CPU state: %s",
		     strerror(errno));
		return KRG_EXIT_FAILURE;
	}
	machine__log(m, "firmware: %s (%zu KiB) at 0x%llx, booting from "
		     "%u disk%s", fw->path, fw->len >> 10,
		     (unsigned long long)fw->lay.rom_gpa, m->cfg->nr_drives,
		     m->cfg->nr_drives == 1 ? "" : "s");
	pvm_note(m);
	/* The image now lives in the ROM mapping and in RAM. */
	free(fw->image);
	fw->image = NULL;
	return 0;
}

void machine__free_firmware(struct machine *m)
{
	struct machine_firmware *fw = m->firmware;

	if (!fw)
		return;
	/* The VM (and its memory slot) is gone or going: KVM's MMU notifier
	 * drops what it had mapped. */
	if (fw->rom)
		munmap(fw->rom, fw->len);
	free(fw->image);
	free(fw);
	m->firmware = NULL;
}

void machine__firmware_log_line(void *ctx, const char *line)
{
	struct machine *m = ctx;

	if (!m->firmware || !strstr(line, NO_BOOT_TEXT))
		return;
	machine__request_stop(m, KRG_EXIT_FAILURE,
			      "firmware: no bootable device (SeaBIOS found no "
			      "boot sector on the %u -drive disk%s)",
			      m->cfg->nr_drives,
			      m->cfg->nr_drives == 1 ? "" : "s");
}
