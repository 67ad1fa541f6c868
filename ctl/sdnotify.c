/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: systemd's readiness protocol, without libsystemd.
 *
 * Under a Type=notify unit systemd names a datagram socket in
 * $NOTIFY_SOCKET and waits for "READY=1" before it starts what depends
 * on the service; "STOPPING=1" tells it a shutdown has begun, so a slow
 * flush of every export is not taken for a hang.  The protocol is one
 * datagram of newline-separated assignments to an AF_UNIX socket named
 * by an absolute path or, after '@', in the abstract namespace: a few
 * lines, where libsystemd would be one more dependency for every user.
 *
 * The address is read once and the variable removed, as
 * sd_notify(unset_environment) does: nbdkit and the keeper, which
 * lazyvold starts, must not speak for the service.  A notification that
 * cannot be sent is logged and otherwise changes nothing: lazyvold
 * serves either way, and systemd reports the start that never became
 * ready.
 */
#include <config.h>

#include <assert.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h"
#include "sdnotify.h"

static struct sockaddr_un addr;
static socklen_t addr_len;              /* 0: nobody listens */

void
sdnotify_init (void)
{
  const char *s = getenv ("NOTIFY_SOCKET");
  size_t len;

  if (s == NULL)
    return;
  len = strlen (s);
  if ((s[0] != '/' && s[0] != '@') || len < 2 || len >= sizeof addr.sun_path)
    log_warn ("NOTIFY_SOCKET=%s: neither an absolute socket path nor an "
              "abstract socket name: systemd will not be told when "
              "lazyvold is ready", s);
  else {
    addr.sun_family = AF_UNIX;
    memcpy (addr.sun_path, s, len);
    if (s[0] == '@')
      addr.sun_path[0] = '\0';
    addr_len = offsetof (struct sockaddr_un, sun_path) + len;
  }
  unsetenv ("NOTIFY_SOCKET");
}

void
sdnotify (const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  int fd, len;

  if (addr_len == 0)
    return;
  va_start (ap, fmt);
  len = vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  assert (len > 0);
  if ((size_t) len >= sizeof msg)               /* a long STATUS= is cut */
    len = sizeof msg - 1;
  fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd == -1 ||
      sendto (fd, msg, len, MSG_NOSIGNAL,
              (struct sockaddr *) &addr, addr_len) != len)
    log_warn ("cannot notify systemd through NOTIFY_SOCKET: %m");
  if (fd != -1)
    close (fd);
}
