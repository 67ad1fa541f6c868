/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the admin socket lazyvold listens on and lazyvolctl talks to
 * when none is named.
 *
 * One fixed default, shared by both programs so that "lazyvold serve"
 * and "lazyvolctl list" find each other with no option at all:
 * /run/lazyvol/admin.sock for root (systemd's RuntimeDirectory=lazyvol),
 * $XDG_RUNTIME_DIR/lazyvol/admin.sock for any other user.  lazyvolctl,
 * run by another user, falls back on root's socket when its own is
 * missing: a member of lazyvold.service's --admin-group finds the
 * system service with no option.
 */
#ifndef LAZYVOL_ADMINSOCK_H
#define LAZYVOL_ADMINSOCK_H

/* Where lazyvolctl looks when neither --socket nor LAZYVOL_SOCKET is
 * given; written in lazyvold(8) and lazyvolctl(8).
 */
#define ADMINSOCK_ENV "LAZYVOL_SOCKET"
#define ADMINSOCK_ROOT_DIR "/run/lazyvol"
#define ADMINSOCK_NAME "admin.sock"

/* The default admin socket for this user, malloc'd, or NULL with err_set
 * (ENOENT) when there is none: not root and XDG_RUNTIME_DIR unset or not
 * an absolute path.
 */
char *adminsock_default (void);
/* The socket lazyvolctl talks to when none is named, malloc'd: the
 * default of adminsock_default, or root's if that is missing (or there
 * is none) and root's exists or its directory refuses this user.  NULL
 * with err_set as adminsock_default.
 */
char *adminsock_find (void);
/* Create the directory of the default socket PATH (mode 0700) if it is
 * missing.  0 or -1 with err_set.
 */
int adminsock_make_dir (const char *path) __attribute__ ((__nonnull__));

#endif /* LAZYVOL_ADMINSOCK_H */
