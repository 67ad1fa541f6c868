/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: the control socket, a Unix stream socket (mode 0600)
 * that speaks one JSON object per line in each direction:
 *
 *   -> {"cmd":"status","export_id":"vm01"}
 *   <- {"ok":true,"export_id":"vm01",...}
 *   <- {"ok":false,"error":"no export named \"vm9\" is loaded","code":"not_found"}
 *
 * Commands: ping, list, create, open, close, status, snapshot, compact,
 * clone, snapshots, delete_snapshot, reset, hydrate, metrics (see the
 * CONTROL PROTOCOL section of nbdkit-lazyvol-plugin(1)).  lazyvold is a
 * client of this socket; so is anyone with socat or nc -U.  This module
 * is the server; commands.c runs the commands.
 */
#ifndef LAZYVOL_CONTROL_H
#define LAZYVOL_CONTROL_H


/* Listen on PATH and serve the commands (commands.h, initialised first)
 * in background threads.  A stale socket is replaced; one in use is
 * EADDRINUSE, and a file that is not a socket EEXIST.  0 or -1.
 */
int control_start (const char *path) __attribute__ ((__nonnull__));
/* Stop listening and remove the socket; NULL-safe to call if not started. */
void control_stop (void);

#endif /* LAZYVOL_CONTROL_H */
