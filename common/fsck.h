/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: checking, and repairing, an export's objects in the store
 * (see fsck.c).
 */
#ifndef LAZYVOL_FSCK_H
#define LAZYVOL_FSCK_H

#include <stdbool.h>
#include <stddef.h>

#include "gc.h"
#include "refs.h"
#include "volume.h"

/* A summary that is missing, or does not say what its manifest says. */
struct fsck_summary {
  char snapshot_id[SNAPSHOT_ID_LEN + 1];
  bool missing;                 /* else wrong: does not read, or disagrees */
  bool repaired;                /* rewritten from the manifest */
};

/* A marker the export needs that is missing. */
struct fsck_marker {
  struct ref ref;
  bool written;                 /* repaired */
};

/* What a run of fsck found, and did. */
struct fsck_report {
  size_t snapshots;                     /* manifests read */
  char (*bad_manifests)[SNAPSHOT_ID_LEN + 1];   /* do not parse */
  size_t nbad;
  struct fsck_summary *summaries;
  size_t nsummaries;
  struct fsck_marker *missing;
  size_t nmissing;
  struct ref_list stale;                /* markers it no longer needs */
  struct gc_report unreferenced;        /* gc's dry run */
};

/* Check export V: read every manifest of it, one at a time, and its
 * summary; the markers of its references to other exports' blobs, and
 * those that name it; and the objects of its folder that nothing names
 * (gc_run's dry run).  With REPAIR, rewrite the summaries that are
 * missing or wrong and write the markers that are missing.  V must be
 * claimed for VOLUME_FSCK.  0, or -1 with err_set (the store failed, or
 * this host does not own V); *R is filled in either case, to free with
 * fsck_report_free.
 */
int fsck_run (struct volume *v, bool repair, struct fsck_report *r)
  __attribute__ ((__nonnull__));
/* The problems R leaves: manifests that do not parse, and summaries and
 * markers not repaired (stale markers and unreferenced objects cost
 * only reads and room, and are not problems).
 */
size_t fsck_problems (const struct fsck_report *r)
  __attribute__ ((__nonnull__));
/* Free what R holds. */
void fsck_report_free (struct fsck_report *r) __attribute__ ((__nonnull__));

#endif /* LAZYVOL_FSCK_H */
