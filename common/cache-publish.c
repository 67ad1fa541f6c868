/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: freezing the chunk cache for a point-in-time publish, and
 * resetting it (see cache.h; states and locks in cache.c).
 *
 * cache_publish_begin takes c->gate exclusively, so no write is half done, and
 * marks the chunks to publish PUBLISHING and FROZEN: a word-wise OR of bitmaps,
 * so the pause does not grow with the manifest.  Writes go on at once: a write
 * to a FROZEN chunk first copies the chunk's bytes (fetching them if need be)
 * to snapshot.staging, sets STAGED and clears FROZEN, then proceeds; it also
 * sets REDIRTY.  The uploader reads each chunk with cache_publish_read under
 * BUSY: from staging if STAGED, else from cache.raw if RESIDENT (not rewritten
 * since the freeze), else it is the published image's and the caller fetches
 * it.  So a snapshot holds exactly the writes acknowledged before the request,
 * and a write that raced it is either wholly in or wholly out.  The pause for
 * writers is the time to drain the writes in flight.  On success, PUBLISHING
 * chunks without REDIRTY become clean; on failure nothing changes, so the next
 * publish retries.
 *
 * The staging file exists only while a publish runs; writers copying
 * into it are counted (staging_users) so that cache_publish_end closes it
 * only after the last copy.
 *
 * A reset must not race the data path: a fill landing after the punch
 * would leave RESIDENT over a hole, and a later partial write would then
 * publish zeros over real data.  So cache_reset holds c->gate exclusively
 * (no write, flush or extents request is in flight or can start), sets
 * c->draining (no fill, eviction or slow-path read starts), waits for the
 * fills and evictions in flight, clears the bitmaps, waits for the readers
 * still pinning chunks (see "Reads" in cache.c), and only then touches the
 * disk: the cleared bitmaps and the new snapshot id are written and synced
 * first, cache.raw punched after, and the budget gets the bytes back
 * last.  A crash in between leaves clean bitmaps over bytes that are
 * never read (a chunk that is not resident is written whole, or zeroed
 * first, before it becomes resident again).
 *
 * A rollback (publish.c) sets c->rolling with the gate exclusive, so that
 * no write is in flight and every later one is refused (EBUSY) until it
 * ends: the dirty count it reads then cannot change under it, and no
 * write made over the old head can land after the reset to the new one.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitmap.h"
#include "cache-impl.h"
#include "crash.h"
#include "err.h"
#include "lock.h"

int64_t
cache_publish_begin (struct cache *c, const uint64_t *extra)
{
  uint64_t words = bitmap_words (c->chunks);

  if (cache_check_writable (c) == -1)
    return -1;
  assert (c->staging_fd == -1);
  c->staging_fd = open (c->staging_path,
                        O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (c->staging_fd == -1)
    return err_set (errno, "create %s: %m", c->staging_path);
  if (ftruncate (c->staging_fd, c->size) == -1) {
    err_set (errno, "truncate %s: %m", c->staging_path);
    close (c->staging_fd);
    c->staging_fd = -1;
    return -1;
  }

  /* Exclusive gate: no write is in flight while the set is chosen. */
  WRLOCK_FOR_SCOPE (&c->gate);
  LOCK_FOR_SCOPE (&c->lock);
  for (uint64_t w = 0; w < words; w++) {
    c->publishing[w] = c->dirty[w] | (extra ? extra[w] : 0);
    c->frozen[w] = c->publishing[w];
    c->staged[w] = c->redirty[w] = 0;
  }
  return bitmap_count (c->publishing, c->chunks);
}

bool
cache_publish_next (struct cache *c, uint64_t from, uint64_t *chunk)
{
  LOCK_FOR_SCOPE (&c->lock);
  *chunk = bitmap_next (c->publishing, from, c->chunks);
  return *chunk < c->chunks;
}

int
cache_publish_read (struct cache *c, uint64_t chunk, void *buf)
{
  uint32_t len = cache_chunk_bytes (c, chunk);
  uint64_t pos = chunk * c->chunk_size;
  bool staged, resident;
  int r = 0;

  {
    LOCK_FOR_SCOPE (&c->lock);
    assert (bitmap_get (c->publishing, chunk));
    cache_busy_take (c, chunk);
    staged = bitmap_get (c->staged, chunk);
    resident = bitmap_get (c->resident, chunk);
  }

  if (staged)
    r = full_pread (c->staging_fd, buf, len, pos, c->staging_path);
  else if (resident)
    r = full_pread (c->raw_fd, buf, len, pos, c->raw_path);

  {
    LOCK_FOR_SCOPE (&c->lock);
    bitmap_clear (c->frozen, chunk);
    cache_busy_release (c, chunk);
  }
  if (r == -1)
    return -1;
  return staged || resident;
}

/* Once the suspect chunks are published (and the warning was given at
 * every open until then), they are the image: stop reporting them.
 */
static void
forget_suspects (struct cache *c)
{
  {
    LOCK_FOR_SCOPE (&c->lock);
    if (c->n_suspect == 0)
      return;
    c->n_suspect = 0;
  }
  unlink (c->suspect_path);
}

/* End the publish's bookkeeping under c->lock; see cache_publish_end.
 * Holding c->flush_lock, so that the next flush to begin covers the
 * chunks made clean (see clean_unsynced).
 */
static void
publish_settle (struct cache *c, bool success,
                const struct meta_base *published)
{
  LOCK_FOR_SCOPE (&c->flush_lock);
  LOCK_FOR_SCOPE (&c->lock);
  /* A writer may still be copying into the staging file. */
  while (c->staging_users > 0)
    pthread_cond_wait (&c->cond, &c->lock);
  for (uint64_t i = bitmap_next (c->publishing, 0, c->chunks); i < c->chunks;
       i = bitmap_next (c->publishing, i + 1, c->chunks)) {
    if (success && bitmap_get (c->dirty, i) && !bitmap_get (c->redirty, i)) {
      bitmap_clear (c->dirty, i);
      cache_count_dirty (c, i, -1);
      bitmap_set (c->changed, i / META_PAGE_BITS);
      c->writes++;              /* so the next flush writes the page */
      c->clean_unsynced = true;
    }
    bitmap_clear (c->publishing, i);
    bitmap_clear (c->frozen, i);
    bitmap_clear (c->staged, i);
    bitmap_clear (c->redirty, i);
  }
  if (success)
    c->base = *published;
}

int
cache_publish_end (struct cache *c, bool success,
                   const struct meta_base *published)
{
  publish_settle (c, success, published);
  close (c->staging_fd);
  c->staging_fd = -1;
  unlink (c->staging_path);
  if (!success)
    return 0;
  /* Persist the cleared dirty bits, then the new snapshot id.  A crash in
   * between only re-publishes chunks or drops clean cache: both safe.
   */
  if (cache_flush (c) == -1)
    return -1;
  if (meta_set_header (c->meta, 0, published) == -1)
    return cache_fail_stop (c);
  forget_suspects (c);
  cache_budget_shrink (c);      /* dirty chunks over a limit are clean now */
  return 0;
}

int64_t
cache_settle_published (struct cache *c, cache_match_fn match, void *opaque,
                        bool keep)
{
  CLEANUP_FREE void *buf = malloc (c->chunk_size);
  uint64_t dropped = 0;
  int64_t n = 0;
  int r = 0;

  if (buf == NULL)
    return err_set (ENOMEM, "%s: out of memory", c->dir);
  /* Exclusive gate: a write landing between the read and the clear of a
   * chunk would lose its dirty bit.
   */
  WRLOCK_FOR_SCOPE (&c->gate);
  for (uint64_t i = 0; ; i++) {
    uint32_t len;

    {
      LOCK_FOR_SCOPE (&c->lock);
      i = bitmap_next (c->dirty, i, c->chunks);
    }
    if (i >= c->chunks)
      break;
    len = cache_chunk_bytes (c, i);
    if ((r = full_pread (c->raw_fd, buf, len, i * c->chunk_size,
                         c->raw_path)) == -1)
      break;
    if (!match (opaque, i, buf, len))
      continue;
    LOCK_FOR_SCOPE (&c->lock);
    bitmap_clear (c->dirty, i);
    cache_count_dirty (c, i, -1);
    bitmap_set (c->changed, i / META_PAGE_BITS);
    c->writes++;
    c->clean_unsynced = true;   /* no flush before ours: the gate */
    if (!keep) {
      bitmap_clear_atomic (c->resident, i);
      c->n_resident--;
      dropped += len;
    }
    n++;
  }
  if (r == 0 && n > 0)
    r = cache_flush_gated (c);
  /* Punched only once their clean bits are on disk: a crash must not
   * leave a dirty chunk over a hole.
   */
  if (r == 0 && dropped > 0)
    cache_punch_unused (c);
  cache_budget_release (c, dropped);
  return r == -1 ? -1 : n;
}

/* Clear every chunk's state for a reset; see the top of this file.
 * Called with c->gate held exclusively and c->lock held.  Returns the
 * bytes of the chunks that were resident, for the budget.
 */
static uint64_t
reset_bitmaps (struct cache *c, const struct meta_base *head)
{
  uint64_t words = c->pages * (META_PAGE / 8);
  uint64_t resident;

  c->draining = true;
  while (c->n_busy > 0)         /* fills and evictions in flight finishing */
    pthread_cond_wait (&c->cond, &c->lock);
  resident = cache_bytes (c, c->n_resident, c->resident);
  atomic_fetch_sub (&c->budget->dirty_bytes,
                    cache_bytes (c, c->n_dirty, c->dirty));
  for (uint64_t w = 0; w < words; w++) {
    bitmap_store_word_atomic (c->resident, w, 0);
    bitmap_store_word_atomic (c->referenced, w, 0);
  }
  c->clock_hand = 0;
  memset (c->dirty, 0, words * 8);
  memset (c->changed, 0, bitmap_words (c->pages) * 8);
  memset (c->unflushed[0], 0, words * 8);
  memset (c->unflushed[1], 0, words * 8);
  c->n_resident = c->n_dirty = c->n_suspect = 0;
  c->flushed_writes = c->writes;
  c->base = *head;
  c->stale = false;
  cache_pins_wait (c);          /* readers that saw a chunk resident */
  return resident;
}

int
cache_reset (struct cache *c, const struct meta_base *head, uint64_t size)
{
  uint64_t dropped;
  int r;

  WRLOCK_FOR_SCOPE (&c->gate);
  if (c->readonly)
    return err_set (EROFS, "this export is read-only");
  if (cache_check_failed (c) == -1)
    return -1;
  if (!meta_size_fits (c->meta, size))
    return err_set (EFBIG, "%s: an image of %ju bytes does not fit its "
                    "cache's bitmaps: reset it by removing the cache",
                    c->dir, (uintmax_t) size);
  {
    LOCK_FOR_SCOPE (&c->lock);
    dropped = reset_bitmaps (c, head);
  }
  /* The cleared state reaches the disk before any byte is dropped. */
  r = meta_write_bitmaps (c->meta, c->resident, c->dirty);
  if (r == 0)
    r = meta_set_header (c->meta, 0, head);
  /* Nothing is resident: the size (a resize not published is undone,
   * a rollback takes its snapshot's) can change at once.
   */
  if (r == 0 && size != c->size)
    r = cache_set_geometry (c, size);
  unlink (c->suspect_path);     /* what it named is gone */
  if (r == -1)
    cache_fail_stop (c);
  else {
    CRASH_POINT ("reset.after_meta");
    if (cache_zero_range (c->raw_fd, 0, c->size, true, c->raw_path) == -1)
      /* Harmless: no chunk is resident, so these bytes are never read. */
      log_warn ("%s (the space is reclaimed as chunks are written again)",
                err_msg ());
  }
  cache_budget_release (c, dropped);    /* once punched, as an eviction */
  {
    LOCK_FOR_SCOPE (&c->lock);
    c->draining = false;
    pthread_cond_broadcast (&c->cond);
  }
  return r;
}

uint64_t
cache_freeze (struct cache *c, bool on)
{
  WRLOCK_FOR_SCOPE (&c->gate);  /* no write is half done */
  LOCK_FOR_SCOPE (&c->lock);

  atomic_store (&c->rolling, on);
  return c->n_dirty;
}
