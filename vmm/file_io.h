/* File-writing helpers shared by the writers of state files and
 * checkpoints: whole writes across short writes and EINTR, a close that
 * does not lose the data's fsync error, and directory syncs that make a
 * create or rename durable. */
#ifndef KRG_VMM_FILE_IO_H
#define KRG_VMM_FILE_IO_H

#include <stddef.h>

/* Writes all of buf[0..len); -1 with errno set (EIO if the file takes
 * nothing more). */
int file_io__write_all(int fd, const void *buf, size_t len);
/* fsync then close fd (always closed); 0, or the first call's errno. */
int file_io__sync_close(int fd);
/* fsync the directory dir.  Best effort: a failure only weakens crash
 * safety, so it is not reported. */
void file_io__sync_dir(const char *dir);
/* The same for the directory that holds path ("." without a slash). */
void file_io__sync_parent(const char *path);

#endif
