/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: Unix socket files — connecting to one, creating one with
 * the right mode, and telling a stale socket (its process died) from one
 * in use.
 */
#ifndef LAZYVOL_UNIXSOCK_H
#define LAZYVOL_UNIXSOCK_H

#include <sys/types.h>

/* A non-blocking socket connected to PATH, or -1 with err_set (ENOENT,
 * ECONNREFUSED when nobody listens).
 */
int unixsock_connect (const char *path) __attribute__ ((__nonnull__));

/* Remove PATH if it is a socket nobody listens on.  0 if PATH is free
 * now; -1 with err_set: EADDRINUSE if a process listens on it, EEXIST
 * if it is not a socket.
 */
int unixsock_clear_stale (const char *path) __attribute__ ((__nonnull__));

/* A listening socket bound to PATH (which must be free): mode 0600, or
 * 0660 owned by group GID unless GID is (gid_t) -1.  The mode is set
 * from the bind on, so no other user can connect in between.  The fd,
 * or -1 with err_set.
 */
int unixsock_listen (const char *path, gid_t gid)
  __attribute__ ((__nonnull__));

/* Give the socket at PATH (made by someone else) mode 0600, or 0660 and
 * group GID unless GID is (gid_t) -1.  0 or -1 with err_set.
 */
int unixsock_set_access (const char *path, gid_t gid)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOL_UNIXSOCK_H */
