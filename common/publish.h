/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: publishing — snapshot, compact, clone, snapshot listing and
 * deletion, and recovery from a publish interrupted by a crash.
 *
 * Every publish writes its objects in one order: the blob, then
 * manifest.json, then the head (volume.json, then refs/current.json).  A
 * reader of the bucket never sees a head naming a snapshot whose objects
 * are incomplete, and a publish that stops at any point leaves the
 * previous head intact.  See publish.c for fencing and the journal.
 */
#ifndef LAZYVOL_PUBLISH_H
#define LAZYVOL_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "volume.h"

/* Test hook: sleep this many milliseconds before moving the head (to let
 * a test race another writer into that window).  -D lazyvol.publish_delay.
 */
extern int publish_delay_ms;
/* Test hook: a clone sleeps this many milliseconds after it has read its
 * source's manifest (to let a test delete the source snapshot in that
 * window).  -D lazyvol.clone_delay.
 */
extern int clone_delay_ms;

struct publish_result {
  bool created;                 /* false: nothing was dirty */
  uint64_t generation;
  char snapshot_id[SNAPSHOT_ID_LEN + 1];
};

/* Claim V for long operation OP (VOLUME_SNAPSHOT, VOLUME_COMPACT or
 * VOLUME_ROLLBACK): this host must own it (EROFS) and no other operation
 * may run (EBUSY).  0 or -1.
 */
int publish_begin (struct volume *v, enum volume_op op)
  __attribute__ ((__nonnull__));
/* Run the publish publish_begin claimed, then release V.  A snapshot
 * publishes the dirty chunks as a new snapshot (a delta over the current
 * one, or the first, sparse snapshot); a compact rewrites the whole image
 * into a fresh base blob and a manifest that needs no older blob.  LABEL
 * (NULL or "": none; id_label_valid) goes into the new snapshot's
 * manifest and summary.  0 or -1 (ESTALE if another writer moved the
 * head); either way the outcome is in V's status as its last operation.
 */
int publish_run (struct volume *v, bool compact, const char *label,
                 struct publish_result *out)
  __attribute__ ((__nonnull__ (1, 4)));
/* Create export EXPORT_ID whose first snapshot is SOURCE_SNAPSHOT_ID of
 * SOURCE_EXPORT_ID (NULL: the source's current snapshot).  Copies only
 * the manifest; the blobs are shared.  0 or -1.
 */
int publish_clone (struct volume_env *env, const char *export_id,
                   const char *source_export_id,
                   const char *source_snapshot_id,
                   struct publish_result *out);

/* Roll V back to its snapshot SNAPSHOT_ID: publish a new snapshot whose
 * image is SNAPSHOT_ID's (its manifest copied, naming the same blobs;
 * parent the current head, generation one more), move the head to it,
 * and drop the local cache, so that nothing of the old image is served;
 * the image takes the snapshot's size.  A smaller one needs SHRINK (no
 * client is connected, registry_get_exclusive), else EBUSY.  Writes are
 * refused (EBUSY) while it runs.  With unpublished writes it fails with
 * EBUSY unless DISCARD, which drops them first.  LABEL as for
 * publish_run.  V must be claimed (publish_begin with VOLUME_ROLLBACK);
 * it is released.  0 or -1.
 */
int publish_rollback (struct volume *v, const char *snapshot_id,
                      bool discard, bool shrink, const char *label,
                      struct publish_result *out)
  __attribute__ ((__nonnull__ (1, 2, 6)));
/* Is the manifest of snapshot SNAPSHOT_ID of EXPORT_ID, whose blobs a
 * clone or rollback is about to name, still there?  0, or -1: ENOENT if
 * it was deleted meanwhile (its blobs may be gone; the message says it
 * was being DOING: "cloned", "rolled back to"), or the store's error.
 */
int publish_source_there (struct volume_env *env, const char *export_id,
                          const char *snapshot_id, const char *doing)
  __attribute__ ((__nonnull__));

struct snapshot_info {
  char snapshot_id[SNAPSHOT_ID_LEN + 1];
  char parent[SNAPSHOT_ID_LEN + 1];
  uint64_t generation;
  char created[32];
  enum manifest_kind kind;
  uint64_t blob_size;           /* bytes of the blob this snapshot wrote */
  uint64_t chunks;              /* non-zero chunks of the image */
  uint64_t image_size;
  char label[LABEL_MAX + 1];    /* "" if none */
  bool current;                 /* named by volume.json */
};

/* The ids of EXPORT_ID's snapshots, oldest first, as one malloc'd array
 * of SNAPSHOT_ID_LEN+1 strings.  One listing request.  0 or -1.
 */
int publish_snapshot_ids (struct volume_env *env, const char *export_id,
                          char (**ids)[SNAPSHOT_ID_LEN + 1], size_t *n);
/* What snapshot SNAPSHOT_ID of EXPORT_ID says but its extents: its
 * summary, or if it has none (with SUMMARY false it is known to have
 * none, and not asked for) or one that does not read, its manifest, with
 * summary_chunks and summary_bytes counted from it.  NULL with err_set:
 * ENOENT if it has no manifest either, EBADMSG if that does not parse,
 * or the store's error.
 */
struct manifest *publish_read_summary (struct volume_env *env,
                                       const char *export_id,
                                       const char *snapshot_id,
                                       bool summary)
  __attribute__ ((__nonnull__));
/* Describe every snapshot of EXPORT_ID, oldest first (reads every
 * summary).  *OUT is malloc'd.  0 or -1.
 */
int publish_list (struct volume_env *env, const char *export_id,
                  struct snapshot_info **out, size_t *n);
/* Delete snapshot SNAPSHOT_ID of EXPORT_ID: its manifest, and its blob
 * (each piece) unless another snapshot (of any export under the root)
 * still uses it (refs_blobs_used).  The current snapshot cannot be
 * deleted (EBUSY).
 * *BLOB_KEPT tells whether the blob, or a piece of it, stayed.  0 or -1.
 */
int publish_delete (struct volume_env *env, const char *export_id,
                    const char *snapshot_id, bool *blob_kept);

/* The names of a snapshot's manifest and summary in its folder. */
#define PUBLISH_MANIFEST_NAME "manifest.json"
#define PUBLISH_SUMMARY_NAME "summary.json"

/* Write the summary of snapshot M (summary.json, after its manifest and
 * before the head moves).  0 or -1.
 */
int publish_put_summary (struct volume_env *env, const struct manifest *m)
  __attribute__ ((__nonnull__));

/* Blobs being deleted, the pieces of snapshots of one export: their
 * keys relative to the export root (as manifests name them), their full
 * keys, and whether a snapshot uses each (refs_blobs_used).
 */
struct publish_blobs {
  char **rels, **keys;
  bool *used;
  size_t n;
};
/* Add the blob REL to S.  0 or -1 (ENOMEM). */
int publish_blobs_add (struct publish_blobs *s, struct volume_env *env, const char *rel)
  __attribute__ ((__nonnull__));
/* Add the keys of pieces 0 to PIECES-1 of the blob that snapshot
 * SNAPSHOT_ID of EXPORT_ID writes.  0 or -1.
 */
int publish_blobs_own (struct publish_blobs *s, struct volume_env *env,
                  const char *export_id, const char *snapshot_id,
                  enum manifest_kind kind, unsigned pieces)
  __attribute__ ((__nonnull__));
/* Free the keys of S and empty it. */
void publish_blobs_free (struct publish_blobs *s) __attribute__ ((__nonnull__));
/* Delete the blobs of SET that no snapshot names (refs_blobs_used: one
 * scan for the whole set; a manifest that cannot be parsed names them
 * all).  Sets SET->used.  0, or -1 if a delete failed or nobody can tell
 * yet (the store failed to give a snapshot: nothing is deleted).
 */
int publish_delete_unused (struct volume_env *env, struct publish_blobs *set)
  __attribute__ ((__nonnull__));


#endif /* LAZYVOL_PUBLISH_H */
