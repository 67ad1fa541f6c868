/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: GET /v1/metrics, the plugin's counters (the reply of its
 * "metrics" command) and lazyvold's own in the Prometheus text format.
 */
#ifndef LAZYVOLD_METRICS_H
#define LAZYVOLD_METRICS_H

#include <event2/buffer.h>
#include <json-c/json.h>

/* The media type of what metrics_format writes. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Append the exposition to OUT: the plugin's REPLY (NULL when nbdkit is
 * not answering: then only lazyvold's own metrics, with
 * lazyvold_nbdkit_up 0) and RESTARTS, nbdkit's restarts so far; the
 * per-export series of the first MAX_EXPORTS exports only.  0, or
 * -1 with err_set (ENOMEM), OUT then holding part of it.
 */
int metrics_format (struct evbuffer *out, json_object *reply,
                    unsigned restarts, unsigned max_exports)
  __attribute__ ((__nonnull__ (1)));

#endif /* LAZYVOLD_METRICS_H */
