/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the publish journal, snapshot.journal.json in an export's
 * cache directory, and what a publish that did not move the head leaves
 * behind.  See journal.c for the format's use and the recovery rules.
 */
#ifndef LAZYVOL_JOURNAL_H
#define LAZYVOL_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "format.h"
#include "volume.h"

/* What a running publish records. */
struct journal {
  char export_id[EXPORT_ID_MAX + 1];
  char snapshot_id[SNAPSHOT_ID_LEN + 1];        /* being published */
  enum manifest_kind kind;                      /* DELTA or BASE */
  uint64_t generation;                          /* it will have */
  char previous[SNAPSHOT_ID_LEN + 1];           /* the head it builds on */
  unsigned pieces;              /* blob pieces it may have written (1..) */
  char upload_id[512];          /* of the last piece; "" until one starts */
};

/* Write J as CACHE_DIR's journal, atomically and durably (on a full disk
 * the reserved space is given up for it).  0 or -1.
 */
int journal_write (const char *cache_dir, const struct journal *j)
  __attribute__ ((__nonnull__));
/* Does CACHE_DIR hold a journal (a publish was interrupted)? */
bool journal_exists (const char *cache_dir) __attribute__ ((__nonnull__));
/* Remove CACHE_DIR's journal, durably, and reserve space for the next
 * one.  Failures are logged.
 */
void journal_remove (const char *cache_dir) __attribute__ ((__nonnull__));
/* Resolve a journal left in CACHE_DIR by a publish that a crash (or a
 * head move of unknown outcome) interrupted, given the export's current
 * remote HEAD: remove staging and temporary files; if the journaled
 * snapshot never landed, abort and delete the unfinished upload's
 * objects (never a blob a manifest names; if some cannot be deleted now,
 * the journal stays, to try again later); if it is the head, repair
 * refs/current.json.  See journal.c for how it is decided.  Dirty bits
 * are not touched here.  The caller holds the cache's lock.  LANDED (may
 * be NULL) receives the journaled snapshot's id if it was published,
 * whether or not it is still the head, else "".  0 or -1.
 */
int journal_recover (struct volume_env *env, const struct volume_head *head,
                     const char *cache_dir, char *landed)
  __attribute__ ((__nonnull__ (1, 2, 3)));
/* Remove the store's temporary objects under EXPORT_ID that crashed
 * writers left (store_sweep_temps).  Failures are logged.
 */
void journal_sweep (struct volume_env *env, const char *export_id)
  __attribute__ ((__nonnull__));
/* Remove the objects of journaled publish J, which did not move the
 * head: the upload under way, the manifest, and the blob unless some
 * manifest names it.  Failures are logged, and the caller's error is
 * kept.  True if none is left (but a blob kept on purpose): the journal
 * may go; false: keep it, so that they are removed later.
 */
bool journal_discard (struct volume_env *env, const struct journal *j)
  __attribute__ ((__nonnull__));
/* The snapshot that the journal in CACHE_DIR (of EXPORT_ID) names, into
 * SNAPSHOT_ID: a publish under way, or one interrupted and not settled.
 * 1, 0 if there is no journal (SNAPSHOT_ID is then ""), or -1.
 */
int journal_pending (const char *cache_dir, const char *export_id,
                     char snapshot_id[SNAPSHOT_ID_LEN + 1])
  __attribute__ ((__nonnull__));

#endif /* LAZYVOL_JOURNAL_H */
