#include "vmm/guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void *guest_mem__ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	int i;

	for (i = 0; i < mem->nr_regions; i++) {
		const struct guest_mem_region *r = &mem->region[i];
		/* Written so that no sum can overflow on hostile gpa/len. */
		if (gpa >= r->gpa && gpa - r->gpa < r->size &&
		    len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

int guest_mem__read(const struct guest_mem *mem, uint64_t gpa, void *buf,
		    size_t len)
{
	void *p = guest_mem__ptr(mem, gpa, len);

	if (!p)
		return -1;
	memcpy(buf, p, len);
	return 0;
}

int guest_mem__write(const struct guest_mem *mem, uint64_t gpa,
		     const void *buf, size_t len)
{
	void *p = guest_mem__ptr(mem, gpa, len);

	if (!p)
		return -1;
	memcpy(p, buf, len);
	return 0;
}

uint64_t guest_mem__end(const struct guest_mem *mem)
{
	const struct guest_mem_region *r = &mem->region[mem->nr_regions - 1];

	return r->gpa + r->size;
}

int guest_mem__create(struct guest_mem *mem, uint64_t ram_size)
{
	uint64_t low = ram_size < GUEST_PCI_HOLE_START ? ram_size
						       : GUEST_PCI_HOLE_START;

	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
	/* A memfd, not anonymous memory: the DSM maps the same pages a second
	 * time (one view for KVM, one for the coherence engine) and a
	 * checkpoint can write it out directly. */
	mem->memfd = memfd_create("krg-guest-ram", MFD_CLOEXEC);
	if (mem->memfd < 0)
		return -1;
	if (ftruncate(mem->memfd, (off_t)ram_size) < 0)
		goto fail;
	mem->base = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_NORESERVE, mem->memfd, 0);
	if (mem->base == MAP_FAILED) {
		mem->base = NULL;
		goto fail;
	}
	madvise(mem->base, ram_size, MADV_HUGEPAGE);
	mem->ram_size = ram_size;
	mem->region[0] = (struct guest_mem_region){ 0, low, mem->base, 0 };
	mem->nr_regions = 1;
	if (ram_size > low) {
		mem->region[1] = (struct guest_mem_region){
			GUEST_HIGH_RAM_START, ram_size - low, mem->base + low,
			low
		};
		mem->nr_regions = 2;
	}
	return 0;
fail:;
	int saved = errno;
	guest_mem__destroy(mem);
	errno = saved;
	return -1;
}

void guest_mem__destroy(struct guest_mem *mem)
{
	if (mem->base)
		munmap(mem->base, mem->ram_size);
	if (mem->memfd >= 0)
		close(mem->memfd);
	mem->base = NULL;
	mem->memfd = -1;
	mem->nr_regions = 0;
}
