/* State blobs on disk: written so that a crash or a full disk never leaves a
 * half-written file under the final name, read with a size cap so that a
 * wrong path (a disk image, /dev/zero) cannot exhaust memory. */
#include "vmm/state_blob.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/errf.h"
#include "vmm/file_io.h"

int state_blob__write_file(const char *path, const void *buf, size_t len,
			   char *err, size_t errlen)
{
	size_t plen = strlen(path);
	char *tmp;
	int fd, e;

	if (!plen) {
		errf(err, errlen, "state file path is empty");
		return -1;
	}
	tmp = malloc(plen + sizeof(".tmp-XXXXXX"));
	if (!tmp) {
		errf(err, errlen, "out of memory writing '%s'", path);
		return -1;
	}
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp-XXXXXX", sizeof(".tmp-XXXXXX"));
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		errf(err, errlen, "cannot create a file next to '%s': %s",
		     path, strerror(errno));
		free(tmp);
		return -1;
	}
	if (file_io__write_all(fd, buf, len)) {
		e = errno;
		close(fd);
		goto fail;
	}
	e = file_io__sync_close(fd);
	if (e)
		goto fail;
	if (rename(tmp, path)) {
		e = errno;
		goto fail;
	}
	free(tmp);
	/* makes the rename durable */
	file_io__sync_parent(path);
	return 0;
fail:
	unlink(tmp);
	free(tmp);
	errf(err, errlen, "cannot write state file '%s': %s", path,
	     strerror(e));
	return -1;
}

int state_blob__read_file(const char *path, uint8_t **buf, size_t *len,
			  size_t max, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *b, extra;
	size_t size, got = 0;
	ssize_t n;
	int fd;

	*buf = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errf(err, errlen, "cannot open state file '%s': %s", path,
		     strerror(errno));
		return -1;
	}
	if (fstat(fd, &st)) {
		errf(err, errlen, "cannot stat state file '%s': %s", path,
		     strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		errf(err, errlen, "state file '%s' is not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > max) {
		errf(err, errlen, "state file '%s' is %lld bytes, more than "
		     "the limit of %zu", path, (long long)st.st_size, max);
		close(fd);
		return -1;
	}
	size = (size_t)st.st_size;
	b = malloc(size ? size : 1);
	if (!b) {
		errf(err, errlen, "out of memory reading '%s' (%zu bytes)",
		     path, size);
		close(fd);
		return -1;
	}
	while (got < size) {
		n = read(fd, b + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			errf(err, errlen, "cannot read state file '%s': %s",
			     path, strerror(errno));
			goto fail;
		}
		if (!n)
			break;
		got += (size_t)n;
	}
	/* A file that shrank or grew under us is not the file we sized. */
	do
		n = read(fd, &extra, 1);
	while (n < 0 && errno == EINTR);
	if (got != size || n != 0) {
		errf(err, errlen, "state file '%s' changed while being read",
		     path);
		goto fail;
	}
	close(fd);
	*buf = b;
	*len = size;
	return 0;
fail:
	close(fd);
	free(b);
	return -1;
}
