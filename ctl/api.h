/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: the admin API, HTTP/1.1 with JSON bodies on a Unix socket.
 *
 * Each endpoint becomes one command on the plugin's control socket
 * (GET /v1/exports/vm01/status -> {"cmd":"status","export_id":"vm01"}),
 * relayed without blocking; the reply becomes the response with the
 * plugin's error code mapped to an HTTP status.  See lazyvold(8).
 */
#ifndef LAZYVOLD_API_H
#define LAZYVOLD_API_H

#include <sys/types.h>

#include <event2/event.h>

/* Serve the API on Unix socket PATH: mode 0600, or 0660 owned by group
 * GID unless GID is (gid_t) -1.  A connection idle, or sending its
 * request, for TIMEOUT seconds is closed.  A stale socket at PATH is
 * replaced, one in use is EADDRINUSE.  0 or -1 with err_set.
 */
int api_start (struct event_base *base, const char *path, gid_t gid,
               unsigned timeout)
  __attribute__ ((__nonnull__));
/* Add "warning": WARNING (kept, not copied) to every successful snapshot
 * and compact reply: the publishes may miss writes (lazyvold.c).
 */
void api_warn_publishes (const char *warning) __attribute__ ((__nonnull__));
/* Give per-export metrics for at most MAX exports (METRICS_EXPORTS_DEFAULT
 * unless told).
 */
#define METRICS_EXPORTS_DEFAULT 256
void api_metrics_exports (unsigned max);
/* Stop accepting connections and remove the socket; requests in flight
 * still get their replies while the loop runs.
 */
void api_stop (void);
/* Free what api_start made (after the event loop ended). */
void api_free (void);

#endif /* LAZYVOLD_API_H */
