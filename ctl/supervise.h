/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: the nbdkit process behind the admin API.
 *
 * In spawn mode lazyvold adopts the nbdkit its pid file names if that
 * process answers on the control socket (a previous lazyvold left it
 * serving), or else starts one, and restarts it whenever it dies.  In
 * attach mode the user runs nbdkit and lazyvold only talks to its control
 * socket.  Either way the rest of the daemon asks supervise_unavailable()
 * whether to send commands at all.
 */
#ifndef LAZYVOLD_SUPERVISE_H
#define LAZYVOLD_SUPERVISE_H

#include <stdbool.h>
#include <sys/types.h>

#include <event2/event.h>

struct supervise_config {
  char **argv;                  /* the nbdkit command; argv[0] the program */
  const char *pidfile;          /* nbdkit's --pidfile */
  const char *control;          /* the plugin's control= socket */
  const char *nbd_socket;       /* nbdkit's -U socket, or NULL for TCP */
  gid_t nbd_socket_gid;         /* its group (mode 0660), or (gid_t) -1 */
  unsigned ready_timeout_s;     /* to answer after a start (0: 60 s) */
  const char *log_file;         /* nbdkit's output (keeper.c), or NULL:
                                   lazyvold's stderr */
  void (*up) (bool adopted);    /* called each time an nbdkit answers */
};

/* Called once: OK when the first nbdkit answers, else !OK with err_msg()
 * saying why it could not be started.
 */
typedef void (*supervise_ready_fn) (bool ok);

/* Adopt the running nbdkit named by CFG->pidfile, or spawn one; restart
 * it with backoff whenever it dies.  CFG must outlive the supervisor.
 * 0, or -1 with err_set if nothing could be started.
 */
int supervise_start (struct event_base *base,
                     const struct supervise_config *cfg,
                     supervise_ready_fn ready)
  __attribute__ ((__nonnull__));
/* Attach mode: nbdkit is someone else's; supervise nothing. */
void supervise_attach (void);

/* NULL when commands may be sent, else a sentence saying why not
 * ("nbdkit is starting", "nbdkit is not running: ...; restarting it").
 */
const char *supervise_unavailable (void);
/* Was the running nbdkit adopted from an earlier lazyvold? */
bool supervise_adopted (void);
/* "spawn" or "attach". */
const char *supervise_mode (void);
/* How many times nbdkit has been restarted after dying. */
unsigned supervise_restarts (void);

/* Send SIGTERM to the supervised nbdkit and call DONE once it has exited
 * (at once if none runs, or in attach mode).
 */
void supervise_stop (void (*done) (void)) __attribute__ ((__nonnull__));
/* Stop watching nbdkit and leave it serving; returns its pid (0 if none). */
pid_t supervise_detach (void);

#endif /* LAZYVOLD_SUPERVISE_H */
