/* lazyvol: the chunk cache (see cache.h).
 *
 * Files, in the export's cache directory:
 *   cache.raw          the live image, a sparse file of the image's size
 *   cache.meta         resident/dirty bitmaps and the clean marker (meta.h)
 *   snapshot.staging   pre-images of chunks rewritten during a publish
 *
 * Chunk state (one bit each in memory, under c->lock):
 *   RESIDENT    cache.raw holds the chunk's current bytes.  Otherwise they
 *               are the published image's: fetched on demand, or zeros if
 *               the source does not list the chunk.
 *   DIRTY       written since the last publish; implies RESIDENT.  Dirty
 *               chunks are authoritative and survive every restart.
 *   BUSY        one thread owns the chunk: it is filling it, writing a
 *               chunk that is not plainly resident, or reading it for a
 *               publish.  Others wait on c->cond.  This is the only lock
 *               held across a network request, and only on its own chunk.
 *   PUBLISHING  the chunk belongs to the running publish.
 *   FROZEN      the publish still needs the chunk's point-in-time bytes.
 *   STAGED      those bytes were saved to snapshot.staging first.
 *   REDIRTY     written after the publish began: stays dirty after it.
 *
 * Reads.  A resident chunk is read from cache.raw with no lock held.  A
 * missing chunk the source lists is filled by the first reader (BUSY);
 * other readers of it wait, so it is fetched once.  A chunk the source
 * does not list reads as zeros without a fetch.
 *
 * Writes (and zero/trim) hold c->gate shared for the whole request.  The
 * fast path — RESIDENT, not FROZEN, not BUSY — writes cache.raw with no
 * chunk lock and then sets DIRTY.  Anything else takes BUSY: a missing
 * chunk is materialized (fetched, or zeroed) and merged with a partial
 * write in one pwrite; a whole-chunk write needs no fetch.  Because a
 * fill holds BUSY until the chunk is RESIDENT, and writers to a non-
 * resident chunk need BUSY, a fill can never land on top of a write.
 *
 * Point-in-time publish: see cache-publish.c.  Writes to a FROZEN chunk
 * first save its bytes to snapshot.staging (stage_chunk), set STAGED and
 * clear FROZEN; they set REDIRTY on PUBLISHING chunks.
 *
 * Flush ordering.  A chunk's DIRTY bit is set only after its bytes were
 * written to cache.raw.  cache_flush copies the changed dirty-bitmap pages
 * under c->lock, then fdatasyncs cache.raw, then writes and fdatasyncs the
 * copied pages.  So every dirty bit on disk covers bytes on disk, and a
 * chunk dirtied after the copy (whose fill may not be synced) is not
 * marked on disk until the next flush.  Resident bits reach the disk only
 * at a clean close; after a crash the clean resident chunks are dropped
 * (they are only cache) and the dirty ones kept.
 *
 * Lock order: c->gate, then c->flush_lock, then c->lock, then the
 * source's own lock inside has().  BUSY holders may wait for a fill
 * buffer (c->buf_cond); buffer holders never wait for BUSY, so the two
 * cannot deadlock.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitmap.h"
#include "cache-impl.h"
#include "err.h"
#include "meta.h"
#include "util.h"

static void
count (_Atomic uint64_t *counter, uint64_t n)
{
  atomic_fetch_add_explicit (counter, n, memory_order_relaxed);
}

/* Take BUSY on CHUNK, waiting for its owner.  Called with c->lock held. */
void
cache_busy_take (struct cache *c, uint64_t chunk)
{
  while (bitmap_get (c->busy, chunk))
    pthread_cond_wait (&c->cond, &c->lock);
  bitmap_set (c->busy, chunk);
  c->n_busy++;
}

/* Release BUSY on CHUNK.  Called with c->lock held. */
void
cache_busy_release (struct cache *c, uint64_t chunk)
{
  assert (bitmap_get (c->busy, chunk));
  bitmap_clear (c->busy, chunk);
  c->n_busy--;
  pthread_cond_broadcast (&c->cond);
}

/* Record that CHUNK now holds local bytes.  Called with c->lock held. */
static void
mark_resident (struct cache *c, uint64_t chunk)
{
  if (!bitmap_get (c->resident, chunk)) {
    bitmap_set (c->resident, chunk);
    c->n_resident++;
  }
}

/* Record a modification of CHUNK.  Called with c->lock held, after the
 * bytes were written to cache.raw (see "Flush ordering").
 */
static void
mark_dirty (struct cache *c, uint64_t chunk)
{
  mark_resident (c, chunk);
  if (!bitmap_get (c->dirty, chunk)) {
    bitmap_set (c->dirty, chunk);
    c->n_dirty++;
    bitmap_set (c->changed, chunk / META_PAGE_BITS);
  }
  if (bitmap_get (c->publishing, chunk))
    bitmap_set (c->redirty, chunk);
  c->writes++;
}

static void *
buf_get (struct cache *c)
{
  void *b = NULL;

  pthread_mutex_lock (&c->lock);
  while (c->nfree == 0 && c->nbufs >= c->max_bufs)
    pthread_cond_wait (&c->buf_cond, &c->lock);
  if (c->nfree > 0)
    b = c->free_bufs[--c->nfree];
  else
    c->nbufs++;
  pthread_mutex_unlock (&c->lock);
  if (b == NULL && (b = malloc (c->chunk_size)) == NULL) {
    err_set (errno, "malloc fill buffer: %m");
    pthread_mutex_lock (&c->lock);
    c->nbufs--;
    pthread_cond_signal (&c->buf_cond);
    pthread_mutex_unlock (&c->lock);
  }
  return b;
}

static void
buf_put (struct cache *c, void *b)
{
  if (b == NULL)
    return;
  pthread_mutex_lock (&c->lock);
  c->free_bufs[c->nfree++] = b;
  pthread_cond_signal (&c->buf_cond);
  pthread_mutex_unlock (&c->lock);
}

/* Fetch CHUNK's published bytes into BUF.  The caller holds BUSY. */
static int
fetch (struct cache *c, uint64_t chunk, void *buf)
{
  uint32_t len = cache_chunk_bytes (c, chunk);

  if (c->src.fetch (c->src.opaque, chunk, buf, len) == -1) {
    count (&c->fill_errors, 1);
    return -1;
  }
  count (&c->fills, 1);
  count (&c->fill_bytes, len);
  return 0;
}

/* Make [OFFSET, OFFSET+LEN) of FD read as zeros; a hole if MAY_TRIM. */
int
cache_zero_range (int fd, uint64_t offset, uint64_t len, bool may_trim,
                  const char *what)
{
  static const char zeros[65536];
  int mode = FALLOC_FL_KEEP_SIZE |
    (may_trim ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE);

  if (fallocate (fd, mode, offset, len) == 0)
    return 0;
  if (errno != EOPNOTSUPP)
    return err_set (errno, "zero %s [%ju+%ju]: %m", what,
                    (uintmax_t) offset, (uintmax_t) len);
  while (len > 0) {                     /* file system without fallocate */
    uint64_t n = len < sizeof zeros ? len : sizeof zeros;
    if (full_pwrite (fd, zeros, n, offset, what) == -1)
      return -1;
    offset += n;
    len -= n;
  }
  return 0;
}

/* Fetch CHUNK, on which the caller holds BUSY, into cache.raw, mark it
 * resident and release BUSY.  If OUT is not NULL, also copy its bytes
 * [OFF, OFF+N) there.  0 or -1.
 */
static int
fill_and_release (struct cache *c, uint64_t chunk, void *out, uint32_t off,
                  uint32_t n)
{
  void *fb = buf_get (c);
  int r = fb ? fetch (c, chunk, fb) : -1;

  if (r == 0)
    r = full_pwrite (c->raw_fd, fb, cache_chunk_bytes (c, chunk),
                     chunk * c->chunk_size, c->raw_path);
  if (r == 0 && out)
    memcpy (out, (char *) fb + off, n);
  buf_put (c, fb);

  pthread_mutex_lock (&c->lock);
  if (r == 0)
    mark_resident (c, chunk);
  cache_busy_release (c, chunk);
  pthread_mutex_unlock (&c->lock);
  return r;
}

/* Read part of one chunk: [OFF, OFF+N) relative to the chunk's start. */
static int
read_chunk (struct cache *c, uint64_t chunk, void *buf, uint32_t off,
            uint32_t n)
{
  uint64_t pos = chunk * c->chunk_size;

  pthread_mutex_lock (&c->lock);
  for (;;) {
    if (bitmap_get (c->resident, chunk)) {
      pthread_mutex_unlock (&c->lock);
      count (&c->read_hits, 1);
      return full_pread (c->raw_fd, buf, n, pos + off, c->raw_path);
    }
    if (!bitmap_get (c->busy, chunk))
      break;
    pthread_cond_wait (&c->cond, &c->lock);
  }
  if (!c->src.has (c->src.opaque, chunk)) {
    pthread_mutex_unlock (&c->lock);
    memset (buf, 0, n);
    return 0;
  }
  cache_busy_take (c, chunk);
  pthread_mutex_unlock (&c->lock);
  count (&c->read_misses, 1);
  return fill_and_release (c, chunk, buf, off, n);
}

int
cache_pread (struct cache *c, void *buf, uint32_t count_, uint64_t offset)
{
  char *p = buf;

  while (count_ > 0) {
    uint64_t chunk = offset / c->chunk_size;
    uint32_t off = offset % c->chunk_size;
    uint32_t n = cache_chunk_bytes (c, chunk) - off;

    if (n > count_)
      n = count_;
    if (read_chunk (c, chunk, p, off, n) == -1)
      return -1;
    p += n;
    offset += n;
    count_ -= n;
  }
  return 0;
}

/* Save the point-in-time bytes of FROZEN chunk CHUNK to the staging file
 * before it is modified.  The caller holds BUSY and counted itself in
 * staging_users.  If the chunk is not resident, its bytes are fetched
 * into *FB (allocated here) so the caller can merge into them.
 */
static int
stage_chunk (struct cache *c, uint64_t chunk, bool resident, bool has,
             void **fb)
{
  uint64_t pos = chunk * c->chunk_size;
  uint32_t len = cache_chunk_bytes (c, chunk);

  if (!resident && !has)
    return 0;                   /* zeros: the staging file is sparse */
  if ((*fb = buf_get (c)) == NULL)
    return -1;
  if (resident)
    return full_pread (c->raw_fd, *fb, len, pos, c->raw_path) == -1 ||
      full_pwrite (c->staging_fd, *fb, len, pos, c->staging_path) == -1
      ? -1 : 0;
  if (fetch (c, chunk, *fb) == -1)
    return -1;
  return full_pwrite (c->staging_fd, *fb, len, pos, c->staging_path);
}

/* Write DATA (or zeros if NULL) to [OFF, OFF+N) of CHUNK, which the
 * caller holds BUSY on and which is not plainly resident.
 */
static int
modify_slow (struct cache *c, uint64_t chunk, uint32_t off, uint32_t n,
             const void *data, bool may_trim)
{
  uint64_t pos = chunk * c->chunk_size;
  uint32_t len = cache_chunk_bytes (c, chunk);
  bool whole = off == 0 && n == len;
  bool resident, has, frozen;
  void *fb = NULL;
  int r = 0;

  pthread_mutex_lock (&c->lock);
  resident = bitmap_get (c->resident, chunk);
  has = resident || c->src.has (c->src.opaque, chunk);
  frozen = bitmap_get (c->frozen, chunk);
  if (frozen)
    c->staging_users++;
  pthread_mutex_unlock (&c->lock);

  if (frozen) {
    r = stage_chunk (c, chunk, resident, has, &fb);
    pthread_mutex_lock (&c->lock);
    if (r == 0) {
      bitmap_set (c->staged, chunk);
      bitmap_clear (c->frozen, chunk);
    }
    c->staging_users--;
    pthread_cond_broadcast (&c->cond);
    pthread_mutex_unlock (&c->lock);
    if (r == -1)
      goto out;
  }

  if (resident) {
    r = data ? full_pwrite (c->raw_fd, data, n, pos + off, c->raw_path)
      : cache_zero_range (c->raw_fd, pos + off, n, may_trim, c->raw_path);
  }
  else if (whole || !has) {
    /* No fetch: the rest of the chunk is zeros (it may hold stale bytes
     * of a chunk dropped after a crash, so clear it first).
     */
    r = cache_zero_range (c->raw_fd, pos, len, may_trim || !whole, c->raw_path);
    if (r == 0 && data)
      r = full_pwrite (c->raw_fd, data, n, pos + off, c->raw_path);
  }
  else {
    /* Partial write to a chunk the source lists: materialize, merge,
     * write the whole chunk once.
     */
    if (fb == NULL && ((fb = buf_get (c)) == NULL ||
                       fetch (c, chunk, fb) == -1)) {
      r = -1;
      goto out;
    }
    if (data)
      memcpy ((char *) fb + off, data, n);
    else
      memset ((char *) fb + off, 0, n);
    r = full_pwrite (c->raw_fd, fb, len, pos, c->raw_path);
  }
 out:
  buf_put (c, fb);
  return r;
}

/* Write DATA (or zeros if NULL) to part [OFF, OFF+N) of one chunk. */
static int
modify_chunk (struct cache *c, uint64_t chunk, uint32_t off, uint32_t n,
              const void *data, unsigned zflags)
{
  uint64_t pos = chunk * c->chunk_size;
  bool whole = off == 0 && n == cache_chunk_bytes (c, chunk);
  bool may_trim = zflags & CACHE_ZERO_MAY_TRIM;
  int r;

  if ((zflags & CACHE_ZERO_TRIM) && !whole)
    return 0;                   /* trims below a chunk are only advice */

  pthread_mutex_lock (&c->lock);
  while (bitmap_get (c->busy, chunk))
    pthread_cond_wait (&c->cond, &c->lock);
  if (bitmap_get (c->resident, chunk) && !bitmap_get (c->frozen, chunk)) {
    /* Fast path.  No BUSY needed: nothing else changes a resident,
     * unfrozen chunk's state, and c->gate keeps a freeze out.
     */
    pthread_mutex_unlock (&c->lock);
    if (data)
      r = full_pwrite (c->raw_fd, data, n, pos + off, c->raw_path);
    else
      r = cache_zero_range (c->raw_fd, pos + off, n, may_trim, c->raw_path);
    pthread_mutex_lock (&c->lock);
    if (r == 0)
      mark_dirty (c, chunk);
    pthread_mutex_unlock (&c->lock);
    return r;
  }
  if (!data && !bitmap_get (c->resident, chunk) &&
      !bitmap_get (c->frozen, chunk) &&
      !c->src.has (c->src.opaque, chunk)) {
    pthread_mutex_unlock (&c->lock);
    return 0;                   /* zeroing a chunk that is zeros */
  }
  if (!data && !whole && (zflags & CACHE_ZERO_FAST) &&
      !bitmap_get (c->resident, chunk)) {
    pthread_mutex_unlock (&c->lock);
    return err_set (ENOTSUP, "fast zero of part of chunk %ju would need "
                    "a fetch", (uintmax_t) chunk);
  }
  cache_busy_take (c, chunk);
  pthread_mutex_unlock (&c->lock);

  r = modify_slow (c, chunk, off, n, data, may_trim);

  pthread_mutex_lock (&c->lock);
  if (r == 0)
    mark_dirty (c, chunk);
  cache_busy_release (c, chunk);
  pthread_mutex_unlock (&c->lock);
  return r;
}

/* Apply a modification to [OFFSET, OFFSET+COUNT), chunk by chunk. */
static int
modify (struct cache *c, const void *data, uint32_t count_, uint64_t offset,
        unsigned zflags, bool fua)
{
  const char *p = data;
  int r = 0;

  if (c->readonly)
    return err_set (EROFS, "this export is read-only");
  pthread_rwlock_rdlock (&c->gate);
  while (r == 0 && count_ > 0) {
    uint64_t chunk = offset / c->chunk_size;
    uint32_t off = offset % c->chunk_size;
    uint32_t n = cache_chunk_bytes (c, chunk) - off;

    if (n > count_)
      n = count_;
    r = modify_chunk (c, chunk, off, n, p, zflags);
    if (p)
      p += n;
    offset += n;
    count_ -= n;
  }
  pthread_rwlock_unlock (&c->gate);
  if (r == 0 && fua)
    r = cache_flush (c);
  return r;
}

int
cache_pwrite (struct cache *c, const void *buf, uint32_t count_,
              uint64_t offset, bool fua)
{
  return modify (c, buf, count_, offset, 0, fua);
}

int
cache_zero (struct cache *c, uint32_t count_, uint64_t offset,
            unsigned flags, bool fua)
{
  return modify (c, NULL, count_, offset, flags, fua);
}

int
cache_flush (struct cache *c)
{
  CLEANUP_FREE unsigned char *pages = NULL;
  CLEANUP_FREE uint64_t *which = NULL;
  uint64_t n = 0, writes;
  int r = -1;

  pthread_mutex_lock (&c->flush_lock);
  pthread_mutex_lock (&c->lock);
  writes = c->writes;
  if (writes == c->flushed_writes) {
    pthread_mutex_unlock (&c->lock);
    pthread_mutex_unlock (&c->flush_lock);
    return 0;                   /* nothing written since the last flush */
  }
  n = bitmap_count (c->changed, c->pages);
  if (n > 0) {
    pages = malloc (n * META_PAGE);
    which = malloc (n * sizeof *which);
    if (pages == NULL || which == NULL) {
      pthread_mutex_unlock (&c->lock);
      err_set (ENOMEM, "flush: out of memory");
      goto out;
    }
    for (uint64_t i = 0, p = 0; i < n; i++, p++) {
      p = bitmap_next (c->changed, p, c->pages);
      which[i] = p;
      memcpy (pages + i * META_PAGE, (char *) c->dirty + p * META_PAGE,
              META_PAGE);
      bitmap_clear (c->changed, p);
    }
  }
  pthread_mutex_unlock (&c->lock);

  if (fdatasync (c->raw_fd) == -1) {
    err_set (errno, "fdatasync %s: %m", c->raw_path);
    goto restore;
  }
  for (uint64_t i = 0; i < n; i++)
    if (meta_write_dirty_page (c->meta, which[i],
                               pages + i * META_PAGE) == -1)
      goto restore;
  if (n > 0 && meta_sync (c->meta) == -1)
    goto restore;
  pthread_mutex_lock (&c->lock);
  if (c->flushed_writes < writes)
    c->flushed_writes = writes;
  pthread_mutex_unlock (&c->lock);
  r = 0;
  goto out;

 restore:
  /* The pages did not reach the disk: write them at the next flush. */
  pthread_mutex_lock (&c->lock);
  for (uint64_t i = 0; i < n; i++)
    bitmap_set (c->changed, which[i]);
  pthread_mutex_unlock (&c->lock);
 out:
  pthread_mutex_unlock (&c->flush_lock);
  return r;
}

int
cache_prefetch (struct cache *c, uint64_t chunk)
{
  if (chunk >= c->chunks)
    return 0;
  pthread_mutex_lock (&c->lock);
  if (bitmap_get (c->resident, chunk) || bitmap_get (c->busy, chunk) ||
      !c->src.has (c->src.opaque, chunk)) {
    pthread_mutex_unlock (&c->lock);
    return 0;                   /* resident, being filled, or zeros */
  }
  cache_busy_take (c, chunk);
  pthread_mutex_unlock (&c->lock);
  return fill_and_release (c, chunk, NULL, 0, 0);
}

bool
cache_is_resident (struct cache *c, uint64_t chunk)
{
  bool r;

  pthread_mutex_lock (&c->lock);
  r = chunk < c->chunks && bitmap_get (c->resident, chunk);
  pthread_mutex_unlock (&c->lock);
  return r;
}

/* Report the data and holes of resident range [POS, END) of cache.raw. */
static int
raw_extents (struct cache *c, uint64_t pos, uint64_t end,
             cache_extent_fn fn, void *opaque)
{
  while (pos < end) {
    off_t data = lseek (c->raw_fd, pos, SEEK_DATA), hole;

    if (data == -1 && errno != ENXIO)
      return err_set (errno, "seek %s: %m", c->raw_path);
    if (data == -1 || (uint64_t) data >= end)
      return fn (opaque, pos, end - pos, CACHE_EXTENT_HOLE);
    if ((uint64_t) data > pos && fn (opaque, pos, data - pos,
                                     CACHE_EXTENT_HOLE) == -1)
      return -1;
    hole = lseek (c->raw_fd, data, SEEK_HOLE);
    if (hole == -1)
      return err_set (errno, "seek %s: %m", c->raw_path);
    if ((uint64_t) hole > end)
      hole = end;
    if (fn (opaque, data, hole - data, CACHE_EXTENT_DATA) == -1)
      return -1;
    pos = hole;
  }
  return 0;
}

int
cache_extents (struct cache *c, uint32_t count_, uint64_t offset,
               cache_extent_fn fn, void *opaque)
{
  uint64_t end = offset + count_;

  while (offset < end) {
    uint64_t chunk = offset / c->chunk_size;
    uint64_t cend = chunk * c->chunk_size + cache_chunk_bytes (c, chunk);
    bool resident, has;
    int r;

    if (cend > end)
      cend = end;
    pthread_mutex_lock (&c->lock);
    resident = bitmap_get (c->resident, chunk);
    has = !resident && c->src.has (c->src.opaque, chunk);
    pthread_mutex_unlock (&c->lock);
    if (resident)
      r = raw_extents (c, offset, cend, fn, opaque);
    else
      r = fn (opaque, offset, cend - offset,
              has ? CACHE_EXTENT_DATA : CACHE_EXTENT_HOLE);
    if (r == -1)
      return -1;
    offset = cend;
  }
  return 0;
}

void
cache_get_stats (struct cache *c, struct cache_stats *out)
{
  pthread_mutex_lock (&c->lock);
  out->chunks = c->chunks;
  out->resident = c->n_resident;
  out->dirty = c->n_dirty;
  pthread_mutex_unlock (&c->lock);
  out->read_hits = atomic_load (&c->read_hits);
  out->read_misses = atomic_load (&c->read_misses);
  out->fills = atomic_load (&c->fills);
  out->fill_bytes = atomic_load (&c->fill_bytes);
  out->fill_errors = atomic_load (&c->fill_errors);
}

