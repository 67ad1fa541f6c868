/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the inside of the chunk cache, shared by cache.c (the data
 * path), cache-publish.c (freezing chunks for a publish; reset) and
 * cache-open.c (the files, and what survives a restart).  The chunk
 * states, the locks and their order are described at the top of cache.c.
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

struct cache {
  char *dir, *raw_path, *staging_path, *suspect_path;
  int raw_fd;
  int staging_fd;               /* -1 unless a publish is running */
  struct meta *meta;
  uint64_t size, chunks;
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
  uint64_t writes;              /* modifications, to skip idle flushes */
  uint64_t flushed_writes;      /* c->writes at the last good flush */
  struct meta_base base;        /* what the local state is based on */
  _Atomic bool stale;           /* dirty over a base the head moved past:
                                   written with the gate exclusive */
  char failed_msg[256];         /* why the cache failed stop, if it did */

  pthread_cond_t buf_cond;      /* a fill buffer was returned */
  void **free_bufs;
  unsigned nfree, nbufs, max_bufs;

  /* Lock-free. */
  struct {
    _Atomic unsigned n;
    char pad[64 - sizeof (unsigned)];
  } pins[PIN_STRIPES];          /* readers inside cache.raw, by stripe */
  _Atomic unsigned pin_waiters; /* threads waiting for pins to drop */
  _Atomic int failed;           /* errno of the first write-back error */
  _Atomic uint64_t read_hits, read_misses, fills, fill_bytes, fill_errors;
};

/* Bytes of CHUNK (the image's last chunk may be short). */
static inline uint32_t
cache_chunk_bytes (const struct cache *c, uint64_t chunk)
{
  uint64_t start = chunk * c->chunk_size;

  return c->size - start < c->chunk_size ? c->size - start : c->chunk_size;
}

/* Take BUSY on CHUNK, waiting for its owner.  Called with c->lock held. */
void cache_busy_take (struct cache *c, uint64_t chunk);
/* Release BUSY on CHUNK and wake waiters.  Called with c->lock held. */
void cache_busy_release (struct cache *c, uint64_t chunk);
/* Wait until no reader holds a pin.  Called with c->lock held, after the
 * resident bits the readers could pin were cleared.
 */
void cache_pins_wait (struct cache *c);
/* cache_flush for a caller that already holds c->gate. */
int cache_flush_gated (struct cache *c);
/* Make [OFFSET, OFFSET+LEN) of FD read as zeros; a hole if MAY_TRIM.
 * 0 or -1 with err_set (WHAT names the file).
 */
int cache_zero_range (int fd, uint64_t offset, uint64_t len, bool may_trim,
                      const char *what);
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

#endif /* LAZYVOL_CACHE_IMPL_H */
