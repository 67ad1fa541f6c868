/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: the exports this nbdkit process serves, by name.
 *
 * Names are export ids ("vm01") for writable exports and
 * "<export_id>@<snapshot_id>" for read-only snapshot views, which are
 * loaded on first use and unloaded some time after their last (see
 * registry.c, "Idle views").  Every user of a volume (an NBD connection, a
 * control command) holds a reference, so an export is never unloaded
 * while in use.
 */
#ifndef LAZYVOL_REGISTRY_H
#define LAZYVOL_REGISTRY_H

#include <stdbool.h>

#include "volume.h"

/* How many views loaded by NBD clients stay loaded once unused, by
 * default (the idle-views parameter).
 */
#define IDLE_VIEWS_DEFAULT 8

/* Use ENV (which must outlive the registry) for every export; keep at
 * most IDLE_VIEWS unused views that NBD clients loaded.
 */
void registry_init (struct volume_env *env, unsigned idle_views);
/* The image size and chunk size of snapshot view NAME ("E@S"), read
 * from the store without loading it.  0, or -1 with err_set (ENOENT if
 * there is no such snapshot, EINVAL if NAME is no view's name).
 */
int registry_view_geometry (const char *name, uint64_t *image_size,
                            uint32_t *chunk_size)
  __attribute__ ((__nonnull__));
/* Load every export found under the export root (TAKEOVER as in
 * registry_load) but those closed on this host (registry_set_closed);
 * broken ones are logged and skipped.  Returns the number loaded.
 */
int registry_discover (int takeover);
/* Called with each export id found under the export root; non-zero stops
 * the listing.
 */
typedef int (*registry_id_fn) (void *opaque, const char *export_id);
/* Call FN for each "<root>/<id>/" folder of the store whose name is a
 * valid export id (it may hold no volume.json); in direct mode for the
 * one export id alone, without listing (none if only a snapshot of it
 * is served).  0 or -1 with err_set.
 */
int registry_list_ids (registry_id_fn fn, void *opaque)
  __attribute__ ((__nonnull__ (1)));
/* Load export NAME, taking it over from another host as TAKEOVER (enum
 * owner_takeover) allows.  EEXIST if it is already loaded (or loading).
 * 0 or -1.
 */
int registry_load (const char *name, int takeover);
/* If NAME is a view an NBD client loaded, keep it loaded until closed,
 * as if a control command had opened it, and return true.
 */
bool registry_keep_view (const char *name) __attribute__ ((__nonnull__));
/* Take a reference to export NAME.  A snapshot view that is not loaded
 * yet is loaded if LOAD_VIEW.  CONNECTION counts it as an NBD client.
 * NULL with err_set (ENOENT if not loaded).
 */
struct volume *registry_get (const char *name, bool load_view,
                             bool connection);
/* Drop a reference taken by registry_get. */
void registry_put (struct volume *v, bool connection);
/* Take loaded export NAME for a command that must run alone on it (WHAT,
 * e.g. "reset", names it in errors): refused with EBUSY while NBD clients
 * are connected; otherwise waits for the commands using it to finish and
 * holds every new user, connections included, until
 * registry_put_exclusive.  NULL with err_set.
 */
struct volume *registry_get_exclusive (const char *name, const char *what)
  __attribute__ ((__nonnull__));
/* End the exclusive use of V taken by registry_get_exclusive. */
void registry_put_exclusive (struct volume *v) __attribute__ ((__nonnull__));
/* Unload export NAME, exclusively as above (EBUSY while clients are
 * connected; new users wait until it is gone).  0 or -1.
 */
int registry_unload (const char *name);
/* Unload export NAME as registry_unload does, for WHAT ("fork"), with
 * BEFORE (if not NULL) called first, once the export is exclusive (its
 * failure cancels the unload), and AFTER (if not NULL) once it is
 * unloaded but still listed, so that nobody loads it meanwhile.  0 or -1.
 */
int registry_unload_then (const char *name, const char *what,
                          int (*before) (void *opaque, struct volume *v),
                          int (*after) (void *opaque), void *opaque)
  __attribute__ ((__nonnull__ (1, 2)));
/* Is export NAME loaded (or loading)? */
bool registry_loaded (const char *name) __attribute__ ((__nonnull__));
/* Is export NAME loaded, and not writable here (another host's, stale,
 * failed stop)?  Not a snapshot view.
 */
bool registry_loaded_read_only (const char *name)
  __attribute__ ((__nonnull__));
/* Number of NBD clients connected to export NAME. */
unsigned registry_connections (const char *name);
/* Called by registry_foreach for each loaded export, in load order. */
typedef int (*registry_fn) (void *opaque, struct volume *v);
/* Call FN for every loaded export (holding a reference).  Stops at the
 * first non-zero return and returns it.
 */
int registry_foreach (registry_fn fn, void *opaque);
/* Remember the snapshot ids of export EXPORT_ID, for listing views. */
void registry_set_snapshots (const char *export_id,
                             char (*ids)[SNAPSHOT_ID_LEN + 1], size_t n);
/* Call FN(OPAQUE, "E@S") for every known snapshot of every loaded
 * writable export that is not loaded as a view.
 */
void registry_foreach_view_name (void (*fn) (void *opaque, const char *name),
                                 void *opaque);
/* Copy the name of the only loaded writable export to OUT; false if
 * there are none or several.
 */
bool registry_default_name (char out[EXPORT_ID_MAX + 1]);
/* Refresh export EXPORT_ID's list of snapshot ids from the store. */
void registry_refresh_snapshots (const char *export_id);
/* Record that export EXPORT_ID was closed on this host, so that
 * registry_discover skips it (CLOSED true), or forget that (false):
 * CACHE_ROOT/.closed/EXPORT_ID, durable when this returns.  0 or -1.
 */
int registry_set_closed (const char *export_id, bool closed)
  __attribute__ ((__nonnull__));
/* For discovery: was export EXPORT_ID closed on this host
 * (registry_set_closed)?  If so, log that it is skipped.
 */
bool registry_skip_closed (const char *export_id)
  __attribute__ ((__nonnull__));
/* Unload everything (at shutdown). */
void registry_shutdown (void);

#endif /* LAZYVOL_REGISTRY_H */
