/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: Unix socket files (see unixsock.h).
 *
 * A socket file outlives a process killed with SIGKILL, and bind() on it
 * then fails with EADDRINUSE.  Only a socket that refuses connections
 * (ECONNREFUSED: nobody listens) is removed; a file that is not a socket
 * is never touched, so a mistyped path cannot delete user data.
 */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h"
#include "unixsock.h"

/* Fill *SUN with PATH; -1 with err_set if it does not fit. */
static int
unixsock_addr (const char *path, struct sockaddr_un *sun)
{
  memset (sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  if (strlen (path) >= sizeof sun->sun_path)
    return err_set (ENAMETOOLONG, "socket path %s is longer than %zu bytes",
                    path, sizeof sun->sun_path - 1);
  strcpy (sun->sun_path, path);
  return 0;
}

int
unixsock_connect (const char *path)
{
  struct sockaddr_un sun;
  int fd;

  if (unixsock_addr (path, &sun) == -1)
    return -1;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return err_set (errno, "socket: %m");
  if (connect (fd, (struct sockaddr *) &sun, sizeof sun) == -1) {
    err_set (errno, "%s: %m", path);
    close (fd);
    return -1;
  }
  return fd;
}

int
unixsock_clear_stale (const char *path)
{
  struct stat sb;
  int fd;

  if (lstat (path, &sb) == -1)
    return errno == ENOENT ? 0 : err_set (errno, "%s: %m", path);
  if (!S_ISSOCK (sb.st_mode))
    return err_set (EEXIST, "%s exists and is not a socket", path);
  fd = unixsock_connect (path);
  if (fd >= 0) {
    close (fd);
    return err_set (EADDRINUSE, "%s is in use by another process", path);
  }
  if (errno != ECONNREFUSED)
    return -1;
  if (unlink (path) == -1 && errno != ENOENT)
    return err_set (errno, "remove stale socket %s: %m", path);
  log_debug ("removed stale socket %s", path);
  return 0;
}

int
unixsock_listen (const char *path, gid_t gid)
{
  struct sockaddr_un sun;
  mode_t old;
  int fd, r;

  if (unixsock_addr (path, &sun) == -1)
    return -1;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return err_set (errno, "socket: %m");
  old = umask (0177);           /* created 0600: nobody else gets in */
  r = bind (fd, (struct sockaddr *) &sun, sizeof sun);
  umask (old);
  if (r == -1) {
    err_set (errno, "bind %s: %m", path);
    close (fd);
    return -1;
  }
  if ((gid != (gid_t) -1 && unixsock_set_access (path, gid) == -1) ||
      (listen (fd, SOMAXCONN) == -1 && err_set (errno, "%s: %m", path))) {
    close (fd);
    unlink (path);
    return -1;
  }
  return fd;
}

int
unixsock_set_access (const char *path, gid_t gid)
{
  if (gid != (gid_t) -1 && chown (path, (uid_t) -1, gid) == -1)
    return err_set (errno, "chown %s: %m", path);
  if (chmod (path, gid != (gid_t) -1 ? 0660 : 0600) == -1)
    return err_set (errno, "chmod %s: %m", path);
  return 0;
}
