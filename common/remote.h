/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: an export's documents in the store -- its head (volume.json
 * and refs/current.json), its snapshots' manifests and summaries -- read
 * and checked, or written (see remote.c).  Exports, publishes, deletes,
 * gc and fsck all go through these.
 */
#ifndef LAZYVOL_REMOTE_H
#define LAZYVOL_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "format.h"
#include "volume.h"

/* Tries of a GET whose body fails its check (SHA-256, or a document that
 * does not parse) before the object is called corrupt.
 */
#define REMOTE_FETCH_TRIES 3

/* GET and parse snapshot SNAPSHOT_ID's manifest of export EXPORT_ID for an
 * image of CHUNKS chunks (0: unknown, use the largest allowed).
 */
struct manifest *remote_fetch_manifest (struct volume_env *env,
                                        const char *export_id,
                                        const char *snapshot_id,
                                        uint64_t chunks);
/* GET and parse snapshot SNAPSHOT_ID's summary.json (a manifest without
 * extents, see summary_parse).  NULL with err_set (ENOENT if it has
 * none).
 */
struct manifest *remote_fetch_summary (struct volume_env *env,
                                       const char *export_id,
                                       const char *snapshot_id);
/* GET the manifest HEAD names and check that it is the one HEAD
 * describes: same geometry and generation.  NULL with err_set (EBADMSG if
 * they disagree).
 */
struct manifest *remote_fetch_current (struct volume_env *env,
                                       const struct volume_head *head);
/* Store HEAD as a new export's volume.json, failing with EEXIST if one
 * exists (checked by the store, or by a HEAD first where it cannot).
 */
int remote_put_new_head (struct volume_env *env,
                         const struct volume_head *head);
/* Write HEAD's copy, refs/current.json, after HEAD was put (or after a
 * crash that may have come between the two puts).  A failure is only
 * logged: the copy stays stale until the next head move.
 */
void remote_put_refs (struct volume_env *env, const struct volume_head *head);
/* Check that refs/current.json is a copy of HEAD, just read from
 * volume.json; if not (or it is missing or does not parse), rewrite it
 * from HEAD if REPAIR (the owner), else log that it disagrees.
 */
void remote_check_refs (struct volume_env *env,
                        const struct volume_head *head, bool repair)
  __attribute__ ((__nonnull__));
/* GET and parse EXPORT_ID's volume.json, with its etag if ETAG.  -1 with
 * err_set (ENOENT if there is none, saying so if refs/current.json is
 * there alone: it is never used as the head).
 */
int remote_fetch_head (struct volume_env *env, const char *export_id,
                       struct volume_head *head, char etag[128]);

#endif /* LAZYVOL_REMOTE_H */
