/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: discovery of the exports in the store, after nbdkit is up.
 * nbdkit starts with the plugin's own discovery off (discover=false) and
 * serves at once; lazyvold then asks the plugin for the export ids of the
 * store and opens each over the control channel, a few at a time, so
 * that a slow or large bucket never delays nbdkit's start, and an export
 * that fails to open is counted, with its error, without holding up the
 * others.  /v1/health shows how far it got.
 */
#ifndef LAZYVOLD_DISCOVER_H
#define LAZYVOLD_DISCOVER_H

#include <event2/event.h>
#include <json-c/json.h>

/* Run discoveries from loop BASE, opening exports with TAKEOVER (NULL,
 * "true" or "force", as lazyvold's --takeover).  HOLD_FILE (test hook,
 * NULL: none): while that file exists, a discovery waits before it asks
 * for anything.  0, or -1 with err_set (ENOMEM).
 */
int discover_init (struct event_base *base, const char *takeover,
                   const char *hold_file)
  __attribute__ ((__nonnull__ (1)));
/* Discover again each time nbdkit has started; the discovery running, if
 * any, is forgotten.  An ADOPTED nbdkit keeps the exports it has: none
 * is opened (an export the admin closed stays closed, and none is taken
 * over again).
 */
void discover_start (bool adopted);
/* Forget the discovery running: nbdkit is going away (at shutdown). */
void discover_stop (void);
/* Add "discovery" (state, discovered, loaded, failed, failures) to the
 * health reply O.
 */
void discover_add_health (json_object *o) __attribute__ ((__nonnull__));
/* Free what discover_init made (at exit). */
void discover_free (void);

#endif /* LAZYVOLD_DISCOVER_H */
