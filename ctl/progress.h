/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvolctl: the progress of a long operation (snapshot, compact,
 * hydrate), from the export's status, while it runs.
 */
#ifndef LAZYVOLCTL_PROGRESS_H
#define LAZYVOLCTL_PROGRESS_H

#include <stdbool.h>

#include "client.h"

/* What to follow. */
struct progress_op {
  const char *sock;             /* lazyvold's socket */
  const char *export_id;
  const char *verb;             /* "snapshot", "compact", "hydrate" */
  const char *state;            /* its operation_state: "snapshotting" */
  bool quiet;                   /* --json: show nothing */
};

/* Wait for CALL (a long operation's request, consumed), or with CALL
 * NULL for OP's state to end on the export, polling its status every
 * 200 ms on a second connection and showing the progress on stderr: a
 * bar on a terminal, a line now and then otherwise.  0 with *REPLY (the
 * request's reply, or the last status), -1 with err_set if lazyvold
 * could not be asked, or 1 if the user pressed Ctrl-C: then the
 * operation goes on in lazyvold, and a message has said so.
 */
int progress_wait (const struct progress_op *op, struct client_call *call,
                   struct client_reply *reply)
  __attribute__ ((__nonnull__ (1, 3)));

#endif /* LAZYVOLCTL_PROGRESS_H */
