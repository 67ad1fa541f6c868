/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the inside of the chunk cache, shared by cache.c (the data
 * path), cache-publish.c (freezing chunks for a publish; reset),
 * cache-open.c (the files, and what survives a restart) and
 * cache-budget.c (the bytes the caches may fill, and eviction).  The
 * chunk states, the locks and their order are described at the top of
 * cache.c.
 */
#ifndef LAZYVOL_CACHE_IMPL_H
#define LAZYVOL_CACHE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "cache.h"
#include "meta.h"
#include "util.h"

/* Reader pins are counted in this many stripes, chunk modulo PIN_STRIPES,
 * each on a cache line of its own so that readers of different chunks do
 * not bounce one line between cores.
 */
#define PIN_STRIPES 64

/* The budget of a process's caches; see the top of cache-budget.c. */
struct cache_budget {
  pthread_mutex_t lock;         /* the fields below, and each cache's
                                   max_bytes, used_bytes and evictors */
  pthread_cond_t cond;          /* an eviction ended */
  uint64_t max_bytes;
  uint64_t used_bytes;          /* the sum of the caches' used_bytes */
  uint64_t evictions;
  unsigned ncaches;
  struct cache *caches;         /* linked by budget_next */
  struct cache *hand;           /* the cache the CLOCK hand is in */
  _Atomic uint64_t dirty_bytes; /* of every cache (cache_count_dirty) */
};

struct cache {
  char *dir, *raw_path, *staging_path, *suspect_path;
  int raw_fd;
  int staging_fd;               /* -1 unless a publish is running */
  struct meta *meta;
  char *limit_path;             /* cache.limit: the cache's own limit */
  /* The geometry: changed (grow, reset) with the gate exclusive and
   * c->lock held; readers that take neither read it atomically.
   */
  _Atomic uint64_t size, chunks;
  uint32_t chunk_size;
  bool readonly;
  struct cache_source src;

  /* Held shared by every write, zero, trim, flush and extents request for
   * its whole length; held exclusively by a freeze (cache_publish_begin),
   * a reset and close, which therefore see no such request half done.
   */
  pthread_rwlock_t gate;
  /* Held by a flush from its copy of the changed dirty pages to their
   * sync, so two flushes cannot reorder their page writes.
   */
  pthread_mutex_t flush_lock;

  /* Protects every bitmap and counter below it, draining, failed_msg and
   * staging_users.  Held only for bookkeeping, never across I/O.
   */
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* BUSY cleared, a drain ended, a pin left */
  uint64_t *resident;           /* changed only with bitmap_*_atomic */
  uint64_t *referenced;         /* read since the CLOCK hand last passed:
                                   set without the lock (relaxed atomics) */
  uint64_t clock_hand;          /* the word of the bitmaps it is at */
  uint64_t *dirty, *busy;
  uint64_t *publishing, *frozen, *staged, *redirty;
  uint64_t *changed;            /* dirty-bitmap pages changed since flush */
  /* Chunks modified since the last good flush, in two generations: new
   * writes go to unflushed[cur], a flush switches cur and clears the
   * other once it is on disk.  After a write-back error both together
   * are the chunks the error may have hit (cache.suspect).
   */
  uint64_t *unflushed[2];
  unsigned unflushed_cur;
  uint64_t pages;
  uint64_t n_resident, n_dirty, n_busy;
  uint64_t n_suspect;           /* dirty chunks cache.suspect names */
  unsigned staging_users;       /* writers copying into snapshot.staging */
  bool draining;                /* a reset runs: no new fill or pin */
  /* A chunk was made clean (published) since the last good flush: its
   * dirty bit may still be on disk, and a crash would bring it back
   * dirty, so no chunk is evicted until the next flush.  Set holding
   * c->flush_lock (or the gate exclusively), so that the next flush to
   * begin covers it.
   */
  bool clean_unsynced;
  uint64_t writes;              /* modifications, to skip idle flushes */
  uint64_t flushed_writes;      /* c->writes at the last good flush */
  struct meta_base base;        /* what the local state is based on */
  _Atomic bool stale;           /* dirty over a base the head moved past:
                                   written with the gate exclusive */
  _Atomic bool rolling;         /* a rollback runs: writes are refused;
                                   written with the gate exclusive */
  char failed_msg[256];         /* why the cache failed stop, if it did */

  pthread_cond_t buf_cond;      /* a fill buffer was returned */
  void **free_bufs;
  unsigned nfree, nbufs, max_bufs;

  /* Under budget->lock (cache-budget.c). */
  struct cache_budget *budget;
  struct cache *budget_next;    /* the budget's list of caches */
  uint64_t max_bytes;           /* the cache's own limit */
  uint64_t used_bytes;          /* resident chunks, and fills reserved */
  unsigned evictors;            /* threads evicting from it now */

  /* Lock-free. */
  struct {
    _Atomic unsigned n;
    char pad[64 - sizeof (unsigned)];
  } pins[PIN_STRIPES];          /* readers inside cache.raw, by stripe */
  _Atomic unsigned pin_waiters; /* threads waiting for pins to drop */
  _Atomic int failed;           /* errno of the first write-back error */
  _Atomic uint64_t read_hits, read_misses, fills, fill_bytes, fill_errors;
  _Atomic uint64_t evictions, bypass_reads, refused_writes;
  _Atomic bool punch_warned;    /* a failed punch was logged */
};

/* Bytes of CHUNK (the image's last chunk may be short). */
static inline uint32_t
cache_chunk_bytes (const struct cache *c, uint64_t chunk)
{
  uint64_t start = chunk * c->chunk_size;

  return c->size - start < c->chunk_size ? c->size - start : c->chunk_size;
}

/* Bytes of N chunks, those set in bitmap W: N chunks of the full size,
 * less what the image's last chunk lacks if it is among them.
 */
static inline uint64_t
cache_bytes (const struct cache *c, uint64_t n, const uint64_t *w)
{
  uint64_t last = c->chunks - 1;
  uint64_t bytes = n * c->chunk_size;

  if (n > 0 && ((w[last / 64] >> (last % 64)) & 1))
    bytes -= c->chunk_size - cache_chunk_bytes (c, last);
  return bytes;
}

/* CHUNK became dirty (DELTA 1) or clean (-1): count it in n_dirty and in
 * the budget's dirty bytes.  Called with c->lock held.
 */
static inline void
cache_count_dirty (struct cache *c, uint64_t chunk, int delta)
{
  uint64_t len = cache_chunk_bytes (c, chunk);

  c->n_dirty += delta;
  if (delta > 0)
    atomic_fetch_add_explicit (&c->budget->dirty_bytes, len,
                               memory_order_relaxed);
  else
    atomic_fetch_sub_explicit (&c->budget->dirty_bytes, len,
                               memory_order_relaxed);
}

/* Mark CHUNK dirty (and resident), its bytes being in cache.raw (see
 * "Flush ordering" in cache.c).  Called with c->lock held.
 */
void cache_mark_dirty (struct cache *c, uint64_t chunk);
/* Take BUSY on CHUNK, waiting for its owner.  Called with c->lock held. */
void cache_busy_take (struct cache *c, uint64_t chunk);
/* Release BUSY on CHUNK and wake waiters.  Called with c->lock held. */
void cache_busy_release (struct cache *c, uint64_t chunk);
/* Wait until no reader holds a pin.  Called with c->lock held, after the
 * resident bits the readers could pin were cleared.
 */
void cache_pins_wait (struct cache *c);
/* Wait until no reader holds a pin on CHUNK's stripe, likewise. */
void cache_pins_wait_chunk (struct cache *c, uint64_t chunk);
/* Change the geometry to SIZE bytes (meta_size_fits), in memory and in
 * the header, after cache.raw (grown first if it grows, truncated after
 * if it shrinks: at open it is truncated to the header's size anyway).
 * Called with c->gate held exclusively.  0 or -1.
 */
int cache_set_geometry (struct cache *c, uint64_t size);
/* cache_flush for a caller that already holds c->gate. */
int cache_flush_gated (struct cache *c);
/* Make [OFFSET, OFFSET+LEN) of FD read as zeros; a hole if MAY_TRIM.
 * 0 or -1 with err_set (WHAT names the file).
 */
int cache_zero_range (int fd, uint64_t offset, uint64_t len, bool may_trim,
                      const char *what);
/* Punch out of cache.raw the chunks that are neither resident, dirty nor
 * BUSY: bytes nobody reads, which the budget does not count (see the top
 * of cache-open.c).  Only while nothing fills the cache: at open, or at
 * load.  A punch that fails is logged; its space stays allocated,
 * harmlessly.
 */
void cache_punch_unused (struct cache *c);
/* Record the write-back error just reported (err_msg) and fail stop:
 * from now on writes, flushes and publishes fail.  Returns -1.
 */
int cache_fail_stop (struct cache *c);
/* -1 with err_set (ENOTRECOVERABLE) if the cache has failed stop, else 0. */
int cache_check_failed (struct cache *c);
/* -1 with err_set (EROFS) if the cache refuses writes and publishes (a
 * read-only view, or stale), else cache_check_failed.
 */
int cache_check_writable (struct cache *c);


/* The budget (cache-budget.c).  Its lock is taken before any cache's
 * c->lock, never while one is held.
 */

/* Count C in BUDGET with the bytes of its resident chunks, take the
 * cache's own limit from cache.limit, and evict down to the limits
 * (logging what cannot be).  Called at open, before anything reads.
 */
void cache_budget_attach (struct cache *c, struct cache_budget *budget);
/* Stop counting C, once no eviction from it runs.  Before it closes. */
void cache_budget_detach (struct cache *c);
/* Reserve LEN bytes for a chunk about to become resident; if there is no
 * room and EVICT, evict clean chunks (of any cache of the budget, or of
 * C if its own limit is the one that is full) to make it.  0, or -1 with
 * err_set (ENOSPC, naming the limit) if there is no room.  Called
 * without c->lock, holding BUSY on the chunk.
 */
int cache_budget_reserve (struct cache *c, uint64_t len, bool evict);
/* Give back BYTES: reserved for a chunk that did not become resident, or
 * of chunks whose RESIDENT bit the caller cleared.  Without c->lock.
 */
void cache_budget_release (struct cache *c, uint64_t bytes);
/* Evict clean chunks of C (or of its budget) down to the limits, logging
 * what cannot be: dirty chunks stay, whatever the limit.  Without locks.
 */
void cache_budget_shrink (struct cache *c);
/* Fill the budget's part of *OUT (max_bytes ... budget), given its
 * dirty_bytes.
 */
void cache_budget_fill_stats (struct cache *c, struct cache_stats *out);

#endif /* LAZYVOL_CACHE_IMPL_H */
