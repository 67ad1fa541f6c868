/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: open files beneath a directory fd without following links.
 *
 * For the file store, whose directory may hold anything a local user
 * put there: a path handed to these functions is resolved component by
 * component inside the directory, and a symbolic link anywhere on it is
 * refused with ELOOP instead of being followed.
 *
 * PATH is relative, with no empty, "." or ".." component (a valid object
 * key or the directory part of one); "" means the directory itself.
 * Like system calls, these return -1 with errno set and do not call
 * err_set: the caller knows which key it was working on.  Every fd they
 * return is O_CLOEXEC.
 */
#ifndef LAZYVOL_BENEATH_H
#define LAZYVOL_BENEATH_H

#include <sys/types.h>

/* openat PATH beneath DIRFD with FLAGS (and MODE, with O_CREAT), never
 * following a symbolic link: ELOOP if a component is one.  An fd or -1.
 */
int beneath_open (int dirfd, const char *path, int flags, mode_t mode)
  __attribute__ ((__nonnull__ (2)));
/* Open directory PATH beneath DIRFD, creating the missing ones with mode
 * MODE (exactly, whatever the umask), each new one fsynced into its
 * parent.  A directory fd or -1.
 */
int beneath_mkdirs (int dirfd, const char *path, mode_t mode)
  __attribute__ ((__nonnull__ (2)));
/* Create a new file in directory DIRFD as mkostemp does: NAME ends in
 * "XXXXXX", replaced in place by the name chosen; the file has mode MODE
 * (exactly) and is open O_RDWR.  An fd or -1.
 */
int beneath_mkstemp (int dirfd, char *name, mode_t mode)
  __attribute__ ((__nonnull__ (2)));

#endif /* LAZYVOL_BENEATH_H */
