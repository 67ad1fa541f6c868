/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the inside of an export, shared by volume.c and publish.c only.
 *
 * Locks: v->mlock (rwlock) guards the head, its etag and the manifest:
 * the data path takes it shared for a lookup (never across a fetch);
 * a publish takes it exclusively to swap in the new head and manifest.
 * v->oplock guards the long-operation state, the statistics and the
 * hydrate workers.  Order: cache locks, then v->mlock; v->oplock is never
 * held while taking another lock.
 */
#ifndef LAZYVOL_VOLUME_IMPL_H
#define LAZYVOL_VOLUME_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "format.h"
#include "readahead.h"
#include "remote.h"
#include "volume.h"

#define HYDRATE_WORKERS 8

struct volume {
  struct volume_env *env;
  char *name;                   /* "E" or "E@S" */
  char export_id[EXPORT_ID_MAX + 1];
  bool readonly;                /* a snapshot view */
  char *cache_dir;
  struct cache *cache;

  /* Ownership: set at load, then only LOST changes (from the lease
   * thread, when another host takes the export or our lease lapses and
   * owner.json names someone else).
   */
  bool owned;
  bool took;                    /* owned since this load */
  _Atomic bool lost;
  struct owner_record owner;
  char owner_why[256];          /* why not owned, if not */

  pthread_rwlock_t mlock;
  struct volume_head head;      /* the remote head, as last read or written */
  char head_etag[128];
  struct manifest *manifest;    /* the published image; NULL if none */
  bool base_gone;               /* a stale cache's base was deleted */

  pthread_mutex_t oplock;
  enum volume_op op;
  struct volume_progress progress;      /* elapsed_ns: set at the end */
  uint64_t op_ns;                       /* when OP began (monotonic) */
  struct volume_outcome outcome;        /* OP's, filled in as it goes */
  struct volume_outcome last;           /* of the last operation to end */
  char last_error[256];
  uint64_t publishes, publish_ns, last_publish_ns;
  pthread_t hydrate_threads[HYDRATE_WORKERS];
  unsigned hydrate_running;     /* workers not yet joined */
  unsigned hydrate_active;      /* workers not yet finished */
  uint64_t hydrate_next;        /* next extent index to claim */
  bool hydrate_cancel;
  bool hydrate_failed;
  bool hydrate_full;            /* stopped: no room in the cache budget */

  struct readahead ra;          /* its own lock; set up once the chunk
                                   size is known (chunk_size > 0) */
};

/* Replace the head and manifest after a publish (takes v->mlock); M
 * takes the hashes it borrows from H (built from v->manifest), if H is
 * not NULL.
 */
void volume_set_published (struct volume *v, const struct volume_head *head,
                           const char *etag, struct manifest *m,
                           const struct manifest_hashes *h);
/* Fetch chunk CHUNK (LEN bytes, as the cache counts them) of the current
 * manifest into BUF and verify its SHA-256 (zeros if the manifest does
 * not list it).  0 or -1.  (fetch.c)
 */
int volume_fetch_chunk (struct volume *v, uint64_t chunk, void *buf,
                        uint32_t len);
/* The cache's fetch_run: chunks [CHUNK, CHUNK+N) of the current manifest
 * into SINK, verified, a stretch stored back to back per request (see
 * fetch.c).  0, or -1 with the first failure's error.
 */
int volume_fetch_run (struct volume *v, uint64_t chunk, uint64_t n,
                      const struct cache_run_sink *sink, void *run);
/* After a crash, the chunks that snapshot LANDED (published, found by
 * journal_recover) holds are still dirty: clear DIRTY on those whose local
 * bytes LANDED's manifest has, and drop them from the cache unless
 * LANDED is still the head (a later head may have other bytes there).
 * Writes wait meanwhile.  If LANDED is not the head, nothing may be
 * reading the export (at load).  0 or -1.
 */
int volume_settle_landed (struct volume *v, const char *landed);
/* The meta_base (what local state is based on) of HEAD. */
void volume_head_base (const struct volume_head *head, struct meta_base *b)
  __attribute__ ((__nonnull__));
/* After a rollback moved the head to HEAD (manifest M, taken over):
 * stop hydrate and readahead, serve M, and drop every resident and
 * dirty chunk (cache_reset to HEAD), so that no chunk of the old image
 * is served.  0 or -1 (the head has moved all the same).
 */
int volume_adopt (struct volume *v, const struct volume_head *head,
                  const char *etag, struct manifest *m)
  __attribute__ ((__nonnull__ (1, 2, 3)));
/* 0 if this host may write to V and publish it now (it owns it, has not
 * lost it, its lease holds), else -1 with err_set (EROFS) saying why.
 */
int volume_check_owner (struct volume *v);
/* Account one publish that took NS nanoseconds (status, metrics). */
void volume_count_publish (struct volume *v, uint64_t ns);
/* -1 with err_set (EEXIST, saying what to do instead) if EXPORT_ID has
 * a local cache, which creating or cloning over would endanger, or
 * (EINVAL) if this process may not make it (direct mode); else 0.
 */
int volume_no_cache (struct volume_env *env, const char *export_id);
/* The cache directory of export or view NAME ("E" or "E@S"), or NULL
 * with err_set.
 */
char *volume_cache_dir (const struct volume_env *env, const char *name)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOL_VOLUME_IMPL_H */
