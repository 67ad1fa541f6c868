/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: garbage collection of an export's folder (see gc.c). */
#ifndef LAZYVOL_GC_H
#define LAZYVOL_GC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "volume.h"

/* The default grace period: objects of a snapshot younger than this are
 * never collected.
 */
#define GC_GRACE_DEFAULT_S (24 * 3600)

/* One object gc found unused. */
struct gc_object {
  char *key;                    /* relative to the export root */
  uint64_t size;
  bool deleted;
};

/* One multipart upload gc found unfinished. */
struct gc_upload {
  char *key;                    /* relative to the export root */
  char *id;                     /* the store's upload id */
  uint64_t initiated_ms;        /* when it began, ms since the epoch */
  bool deleted;                 /* aborted */
};

/* What a run of gc found, and did.  YOUNG, BUSY and UNEXPECTED count
 * objects and uploads alike.
 */
struct gc_report {
  struct gc_object *objects;
  size_t n;
  uint64_t bytes;               /* of the objects */
  struct gc_upload *uploads;
  size_t nuploads;
  size_t young;                 /* unused, but inside the grace period */
  size_t busy;                  /* of the publish under way or journaled */
  size_t unexpected;            /* not lazyvol's: listed in the log, kept */
  size_t used;                  /* blobs of deleted snapshots another
                                   snapshot still names: kept */
};

/* Find the objects in V's folder that no reachable manifest or live
 * journal names, and the uploads there that were never completed and
 * are not the journal's, older than GRACE_S seconds; with DELETE, delete
 * the objects and abort the uploads.  V must be claimed for VOLUME_GC
 * (no publish runs meanwhile), or for VOLUME_FSCK without DELETE.  0,
 * or -1 with err_set (a delete or abort that failed, or a store failure
 * that leaves gc unable to tell: then nothing is deleted).  *R is filled
 * in either case; free it with gc_report_free.
 */
int gc_run (struct volume *v, bool delete, uint64_t grace_s,
            struct gc_report *r) __attribute__ ((__nonnull__));
/* Collect the folder of export EXPORT_ID, whose head a delete removed
 * (delete.c): delete every object of a snapshot without a manifest that
 * no snapshot under the root names, with no grace period, and abort
 * every upload there.  0 or -1 as gc_run; *R as gc_run's.
 */
int gc_deleted (struct volume_env *env, const char *export_id,
                struct gc_report *r) __attribute__ ((__nonnull__));
/* Free what a gc_report holds. */
void gc_report_free (struct gc_report *r) __attribute__ ((__nonnull__));

#endif /* LAZYVOL_GC_H */
