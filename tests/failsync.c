/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* failsync.so: an LD_PRELOAD shim for tests that need a write-back
 * error.  While the file named by $LAZYVOL_TEST_FAILSYNC exists,
 * fdatasync and fsync of a file whose name ends in "/cache.raw" fail
 * with EIO without syncing anything — what the kernel reports after it
 * dropped dirty pages it could not write.  Everything else passes
 * through.
 */
#define _GNU_SOURCE
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Should a sync of FD fail now? */
static bool
inject (int fd)
{
  const char *trigger = getenv ("LAZYVOL_TEST_FAILSYNC");
  static const char suffix[] = "/cache.raw";
  char link[64], path[PATH_MAX];
  ssize_t n;

  if (trigger == NULL || access (trigger, F_OK) == -1)
    return false;
  snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
  n = readlink (link, path, sizeof path - 1);
  if (n < (ssize_t) sizeof suffix - 1)
    return false;
  path[n] = '\0';
  return strcmp (path + n - (sizeof suffix - 1), suffix) == 0;
}

/* Fail a sync of FD, or pass it on to the real function NAME. */
static int
sync_or_fail (int fd, const char *name, int (**real) (int))
{
  if (inject (fd)) {
    errno = EIO;
    return -1;
  }
  if (*real == NULL)
    *real = (int (*) (int)) dlsym (RTLD_NEXT, name);
  return (*real) (fd);
}

int
fdatasync (int fd)
{
  static int (*real) (int);

  return sync_or_fail (fd, "fdatasync", &real);
}

int
fsync (int fd)
{
  static int (*real) (int);

  return sync_or_fail (fd, "fsync", &real);
}
