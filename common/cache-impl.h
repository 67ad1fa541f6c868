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

struct cache {
  char *dir, *raw_path, *staging_path;
  int raw_fd;
  int staging_fd;               /* -1 unless a publish is running */
  struct meta *meta;
  uint64_t size, chunks;
  uint32_t chunk_size;
  bool readonly;
  struct cache_source src;

  pthread_rwlock_t gate;        /* writes shared; freeze and reset exclusive */
  pthread_mutex_t flush_lock;   /* one flush at a time */

  pthread_mutex_t lock;         /* everything below */
  pthread_cond_t cond;          /* a BUSY bit was cleared */
  uint64_t *resident, *dirty, *busy;
  uint64_t *publishing, *frozen, *staged, *redirty;
  uint64_t *changed;            /* dirty-bitmap pages changed since flush */
  uint64_t pages;
  uint64_t n_resident, n_dirty, n_busy;
  unsigned staging_users;       /* writers copying into snapshot.staging */
  uint64_t writes;              /* modifications, to skip idle flushes */
  uint64_t flushed_writes;      /* c->writes at the last good flush */
  char snapshot_id[SNAPSHOT_ID_LEN + 1];

  pthread_cond_t buf_cond;      /* a fill buffer was returned */
  void **free_bufs;
  unsigned nfree, nbufs, max_bufs;

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
/* Make [OFFSET, OFFSET+LEN) of FD read as zeros; a hole if MAY_TRIM.
 * 0 or -1 with err_set (WHAT names the file).
 */
int cache_zero_range (int fd, uint64_t offset, uint64_t len, bool may_trim,
                      const char *what);

#endif /* LAZYVOL_CACHE_IMPL_H */
