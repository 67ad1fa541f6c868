/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: open files beneath a directory fd without following links
 * (see beneath.h).
 *
 * The file store's directory is shared with every local user who can
 * write to it, so its contents are as untrusted as an S3 bucket's: a
 * symbolic link planted where a blob, a manifest or a directory of keys
 * belongs must not make lazyvol read or write anything outside.  Checking
 * with lstat first and opening after would race with the link being
 * made, so the check and the open are one step:
 *
 *  - openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (Linux 5.6)
 *    resolves the whole path in the kernel and fails with ELOOP at any
 *    link (and with EXDEV at anything escaping the directory);
 *  - where the kernel lacks it (ENOSYS, remembered for the rest of the
 *    process), the path is walked one component at a time, each
 *    directory opened with openat(O_DIRECTORY | O_NOFOLLOW) relative to
 *    the previous one and the last component with O_NOFOLLOW.  For a link
 *    where a directory is wanted, openat reports ENOTDIR; a fstatat of
 *    the name tells a link from a file, so both ways say ELOOP.
 *
 * Directories are created the same way, one mkdirat relative to the fd
 * of their parent at a time (mkdirat never follows a link: a link in the
 * way is EEXIST, and the open that follows refuses it).  A new directory
 * is given its mode with fchmod, so the umask of whoever runs nbdkit
 * cannot change what the file store promises, and its parent is fsynced
 * so that the directory survives a crash together with what is put in it.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "beneath.h"
#include "util.h"

/* Set once openat2 has answered ENOSYS: the kernel will not grow it. */
static atomic_bool no_openat2;

/* Close FD, leaving errno alone (it says why FD is no longer wanted). */
static void
close_quietly (int fd)
{
  int saved = errno;

  close (fd);
  errno = saved;
}

/* openat the single component NAME of DIRFD without following a link,
 * which is ELOOP whatever FLAGS ask for.
 */
static int
open_component (int dirfd, const char *name, int flags, mode_t mode)
{
  int fd = openat (dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
  struct stat st;

  if (fd == -1 && errno == ENOTDIR) {
    bool link = fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISLNK (st.st_mode);
    errno = link ? ELOOP : ENOTDIR;
  }
  return fd;
}

/* Open directory NAME of DIRFD; if it is missing and MKDIR_MODE is not 0,
 * create it first (durably, with exactly that mode).
 */
static int
open_dir (int dirfd, const char *name, mode_t mkdir_mode)
{
  int fd = open_component (dirfd, name, O_RDONLY | O_DIRECTORY, 0);
  bool made;

  if (fd >= 0 || errno != ENOENT || mkdir_mode == 0)
    return fd;
  made = mkdirat (dirfd, name, mkdir_mode) == 0;
  if (!made && errno != EEXIST)    /* EEXIST: made meanwhile, or a link */
    return -1;
  fd = open_component (dirfd, name, O_RDONLY | O_DIRECTORY, 0);
  if (fd >= 0 && made &&
      (fchmod (fd, mkdir_mode) == -1 || fsync (dirfd) == -1)) {
    close_quietly (fd);
    return -1;
  }
  return fd;
}

/* The fallback: walk PATH from DIRFD one directory at a time, creating
 * missing ones if MKDIR_MODE is not 0, then open the last component with
 * FLAGS and MODE (with MKDIR_MODE, as a directory too).
 */
static int
walk (int dirfd, const char *path, int flags, mode_t mode, mode_t mkdir_mode)
{
  CLEANUP_FREE char *copy = strdup (path);
  char *comp = copy, *slash;
  int fd = dirfd, next;

  if (copy == NULL)
    return -1;
  while ((slash = strchr (comp, '/')) != NULL) {
    *slash = '\0';
    next = open_dir (fd, comp, mkdir_mode);
    if (fd != dirfd)
      close_quietly (fd);
    if (next == -1)
      return -1;
    fd = next;
    comp = slash + 1;
  }
  next = mkdir_mode ? open_dir (fd, comp, mkdir_mode)
    : open_component (fd, comp, flags, mode);
  if (fd != dirfd)
    close_quietly (fd);
  return next;
}

int
beneath_open (int dirfd, const char *path, int flags, mode_t mode)
{
  /* No O_NOFOLLOW: with it, a link where O_DIRECTORY is asked for would
   * be ENOTDIR; RESOLVE_NO_SYMLINKS makes every link ELOOP.
   */
  struct open_how how = {
    .flags = flags | O_CLOEXEC,
    .mode = flags & O_CREAT ? mode : 0,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
  };
  int fd;

  if (path[0] == '\0')
    path = ".";
  if (!atomic_load_explicit (&no_openat2, memory_order_relaxed)) {
    fd = syscall (SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS)
      return fd;
    atomic_store_explicit (&no_openat2, true, memory_order_relaxed);
  }
  return walk (dirfd, path, flags, mode, 0);
}

int
beneath_mkdirs (int dirfd, const char *path, mode_t mode)
{
  int fd = beneath_open (dirfd, path, O_RDONLY | O_DIRECTORY, 0);

  if (fd >= 0 || errno != ENOENT || path[0] == '\0')
    return fd;
  return walk (dirfd, path, 0, 0, mode);
}

int
beneath_mkstemp (int dirfd, char *name, mode_t mode)
{
  static const char chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  size_t n = strlen (name);
  char *x = name + n - 6;

  if (n < 6 || strcmp (x, "XXXXXX") != 0) {
    errno = EINVAL;
    return -1;
  }
  for (int tries = 0; tries < 100; tries++) {
    unsigned char r[6];
    int fd;

    if (getrandom (r, sizeof r, 0) != sizeof r)
      return -1;
    for (int i = 0; i < 6; i++)
      x[i] = chars[r[i] % (sizeof chars - 1)];
    fd = open_component (dirfd, name, O_RDWR | O_CREAT | O_EXCL, mode);
    if (fd >= 0 && fchmod (fd, mode) == -1) {
      int saved = errno;
      close (fd);
      unlinkat (dirfd, name, 0);
      errno = saved;
      return -1;
    }
    if (fd >= 0 || errno != EEXIST)
      return fd;
  }
  return -1;                    /* EEXIST a hundred times */
}
