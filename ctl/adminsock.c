/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the default admin socket (see adminsock.h).
 *
 * The rule lives here alone: lazyvold listens where lazyvolctl looks.
 * The euid decides, not the uid, so that a set-uid wrapper or "sudo -E"
 * finds root's socket.  lazyvolctl alone falls back on root's socket,
 * which is the system service's: lazyvold must never listen anywhere but
 * where it was told.  The directory is created 0700 when lazyvold finds
 * it missing; one that exists (systemd's RuntimeDirectory, 0755 in
 * lazyvold.service, where the socket's own mode admits its group) is
 * left as it is.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adminsock.h"
#include "err.h"
#include "util.h"

char *
adminsock_default (void)
{
  const char *xdg = getenv ("XDG_RUNTIME_DIR");

  if (geteuid () == 0)
    return str_printf ("%s/%s", ADMINSOCK_ROOT_DIR, ADMINSOCK_NAME);
  if (xdg == NULL || xdg[0] != '/') {
    err_set (ENOENT, "no default admin socket: XDG_RUNTIME_DIR is %s",
             xdg ? "not an absolute path" : "not set");
    return NULL;
  }
  return str_printf ("%s/lazyvol/%s", xdg, ADMINSOCK_NAME);
}

char *
adminsock_find (void)
{
  static const char root[] = ADMINSOCK_ROOT_DIR "/" ADMINSOCK_NAME;
  char *own = adminsock_default ();
  struct stat st;

  /* Root's socket when it exists, or its directory cannot be entered:
   * "permission denied" then says more than "no socket" of one's own.
   */
  if (geteuid () == 0 || (own && (stat (own, &st) == 0 || errno != ENOENT)) ||
      (stat (root, &st) == -1 && errno != EACCES))
    return own;
  free (own);
  return str_printf ("%s", root);
}

int
adminsock_make_dir (const char *path)
{
  CLEANUP_FREE char *dir = strdup (path);
  char *slash = dir ? strrchr (dir, '/') : NULL;

  if (dir == NULL)
    return err_set (ENOMEM, "admin socket %s: out of memory", path);
  if (slash == NULL || slash == dir)
    return 0;
  *slash = '\0';
  if (mkdir_p (dir, 0700) == -1)
    return err_prefix ("admin socket %s", path);
  return 0;
}
