/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: telling systemd that the service is ready or stopping
 * (sd_notify(3)'s protocol, see sdnotify.c).
 */
#ifndef LAZYVOL_SDNOTIFY_H
#define LAZYVOL_SDNOTIFY_H

/* Take the address in $NOTIFY_SOCKET, if any, and remove the variable
 * from the environment so that the processes lazyvold starts do not
 * speak for it.  Call before the first fork.
 */
void sdnotify_init (void);
/* Send one notification, newline-separated assignments such as
 * "READY=1\nSTATUS=...", if systemd listens; a failure is logged.
 */
void sdnotify (const char *fmt, ...)
  __attribute__ ((__format__ (__printf__, 1, 2), __nonnull__ (1)));

#endif /* LAZYVOL_SDNOTIFY_H */
