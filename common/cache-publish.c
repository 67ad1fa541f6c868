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
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bitmap.h"
#include "cache-impl.h"
#include "err.h"

int64_t
cache_publish_begin (struct cache *c, const uint64_t *extra)
{
  uint64_t words = bitmap_words (c->chunks), n;

  if (c->readonly)
    return err_set (EROFS, "this export is read-only");
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
  pthread_rwlock_wrlock (&c->gate);
  pthread_mutex_lock (&c->lock);
  for (uint64_t w = 0; w < words; w++) {
    c->publishing[w] = c->dirty[w] | (extra ? extra[w] : 0);
    c->frozen[w] = c->publishing[w];
    c->staged[w] = c->redirty[w] = 0;
  }
  n = bitmap_count (c->publishing, c->chunks);
  pthread_mutex_unlock (&c->lock);
  pthread_rwlock_unlock (&c->gate);
  return n;
}

bool
cache_publish_next (struct cache *c, uint64_t from, uint64_t *chunk)
{
  pthread_mutex_lock (&c->lock);
  *chunk = bitmap_next (c->publishing, from, c->chunks);
  pthread_mutex_unlock (&c->lock);
  return *chunk < c->chunks;
}

int
cache_publish_read (struct cache *c, uint64_t chunk, void *buf)
{
  uint32_t len = cache_chunk_bytes (c, chunk);
  uint64_t pos = chunk * c->chunk_size;
  bool staged, resident;
  int r = 0;

  pthread_mutex_lock (&c->lock);
  assert (bitmap_get (c->publishing, chunk));
  cache_busy_take (c, chunk);
  staged = bitmap_get (c->staged, chunk);
  resident = bitmap_get (c->resident, chunk);
  pthread_mutex_unlock (&c->lock);

  if (staged)
    r = full_pread (c->staging_fd, buf, len, pos, c->staging_path);
  else if (resident)
    r = full_pread (c->raw_fd, buf, len, pos, c->raw_path);

  pthread_mutex_lock (&c->lock);
  bitmap_clear (c->frozen, chunk);
  cache_busy_release (c, chunk);
  pthread_mutex_unlock (&c->lock);
  if (r == -1)
    return -1;
  return staged || resident;
}

int
cache_publish_end (struct cache *c, bool success, const char *snapshot_id)
{
  uint64_t i;

  pthread_mutex_lock (&c->lock);
  /* A writer may still be copying into the staging file. */
  while (c->staging_users > 0)
    pthread_cond_wait (&c->cond, &c->lock);
  for (i = bitmap_next (c->publishing, 0, c->chunks); i < c->chunks;
       i = bitmap_next (c->publishing, i + 1, c->chunks)) {
    if (success && bitmap_get (c->dirty, i) && !bitmap_get (c->redirty, i)) {
      bitmap_clear (c->dirty, i);
      c->n_dirty--;
      bitmap_set (c->changed, i / META_PAGE_BITS);
      c->writes++;              /* so the next flush writes the page */
    }
    bitmap_clear (c->publishing, i);
    bitmap_clear (c->frozen, i);
    bitmap_clear (c->staged, i);
    bitmap_clear (c->redirty, i);
  }
  if (success)
    snprintf (c->snapshot_id, sizeof c->snapshot_id, "%s", snapshot_id);
  pthread_mutex_unlock (&c->lock);

  close (c->staging_fd);
  c->staging_fd = -1;
  unlink (c->staging_path);
  if (!success)
    return 0;
  /* Persist the cleared dirty bits, then the new snapshot id.  A crash in
   * between only re-publishes chunks or drops clean cache: both safe.
   */
  if (cache_flush (c) == -1 ||
      meta_set_header (c->meta, false, snapshot_id) == -1)
    return -1;
  return 0;
}

int
cache_reset (struct cache *c, const char *snapshot_id)
{
  uint64_t words = c->pages * (META_PAGE / 8);
  int r;

  pthread_rwlock_wrlock (&c->gate);
  pthread_mutex_lock (&c->lock);
  while (c->n_busy > 0)         /* background fills finishing */
    pthread_cond_wait (&c->cond, &c->lock);
  memset (c->resident, 0, words * 8);
  memset (c->dirty, 0, words * 8);
  memset (c->changed, 0, bitmap_words (c->pages) * 8);
  c->n_resident = c->n_dirty = 0;
  c->flushed_writes = c->writes;
  snprintf (c->snapshot_id, sizeof c->snapshot_id, "%s", snapshot_id);
  pthread_mutex_unlock (&c->lock);

  r = cache_zero_range (c->raw_fd, 0, c->size, true, c->raw_path);
  if (r == 0)
    r = meta_write_bitmaps (c->meta, c->resident, c->dirty);
  if (r == 0)
    r = meta_set_header (c->meta, false, snapshot_id);
  pthread_rwlock_unlock (&c->gate);
  return r;
}
