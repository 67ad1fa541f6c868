/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: references between snapshots -- which snapshots may name the
 * blob a snapshot wrote, and the markers that say so (see refs.c and
 * lazyvol-format(5), REFERENCES).
 */
#ifndef LAZYVOL_REFS_H
#define LAZYVOL_REFS_H

#include <stdbool.h>
#include <stddef.h>

#include "format.h"
#include "publish.h"
#include "volume.h"

/* A reference marker: export USER names blobs that snapshot SNAPSHOT of
 * export WRITER wrote (ROOT/.refs/WRITER/SNAPSHOT/USER).
 */
struct ref {
  char writer[EXPORT_ID_MAX + 1];
  char snapshot[SNAPSHOT_ID_LEN + 1];
  char user[EXPORT_ID_MAX + 1];
};

struct ref_list {
  struct ref *r;
  size_t n;
};

/* Does a delete of WRITER@SNAPSHOT find snapshot USER_SNAPSHOT of USER
 * without a marker: is it a later snapshot of the same export (or the
 * same one)?  Every other reference needs a marker.
 */
bool refs_covered (const char *user, const char *user_snapshot,
                   const char *writer, const char *snapshot)
  __attribute__ ((__nonnull__));
/* Add to L the markers that manifest (or summary) M needs, each once.
 * 0 or -1 (ENOMEM).
 */
int refs_needed (const struct manifest *m, struct ref_list *l)
  __attribute__ ((__nonnull__));
/* Is R in L? */
bool ref_list_has (const struct ref_list *l, const struct ref *r)
  __attribute__ ((__nonnull__));
/* Add R to L unless it is there.  0 or -1 (ENOMEM). */
int ref_list_add (struct ref_list *l, const struct ref *r)
  __attribute__ ((__nonnull__));
/* Free what L holds and empty it. */
void ref_list_free (struct ref_list *l) __attribute__ ((__nonnull__));
/* Every marker under the export root, into L (one listing; keys that
 * are not markers are skipped).  0 or -1.
 */
int refs_list (struct volume_env *env, struct ref_list *l)
  __attribute__ ((__nonnull__));
/* Write marker R.  0 or -1. */
int refs_put (struct volume_env *env, const struct ref *r)
  __attribute__ ((__nonnull__));
/* Write the markers M needs (refs_needed), before M itself is written:
 * a clone's first manifest.  0 or -1 (then M must not be written).
 */
int refs_mark (struct volume_env *env, const struct manifest *m)
  __attribute__ ((__nonnull__));
/* Mark the pieces of SET (all written by snapshots of one export) that
 * a snapshot names (SET->used), reading only the snapshots that may (see
 * refs.c); a manifest that cannot be parsed names them all.  Under a
 * root without a reference index, reads every snapshot's summary, and
 * writes the index and the markers it finds missing.  0 or -1 (also if
 * the store failed to give a snapshot: then nobody can tell yet).
 */
int refs_blobs_used (struct volume_env *env, struct publish_blobs *set)
  __attribute__ ((__nonnull__));
/* Export EXPORT_ID was just created: if the root has no reference
 * index and no other export, write one (nothing there needs a marker).
 * Failures are only logged: the root is indexed at its first delete.
 */
void refs_index_new_root (struct volume_env *env, const char *export_id)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOL_REFS_H */
