/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: opening and closing the chunk cache (see cache.h): its files,
 * and which chunk state survives a restart.
 *
 * Dirty chunks always survive: their bits reach cache.meta on every flush
 * (see "Flush ordering" in cache.c).  Resident bits are written only at a
 * clean close, which also sets the CLEAN mark; opening clears the mark
 * before anything changes.  So after a crash, or when the published
 * snapshot is not the one the cache was filled from, clean resident
 * chunks are dropped: they are only cache and will be fetched again.
 *
 * After an unclean shutdown cache.raw is synced and its page cache
 * dropped (POSIX_FADV_DONTNEED) before anything is read (cache.meta's,
 * every time, before its header is read; see meta.c): if the last
 * session failed stop on a write-back error, the kernel may still hold
 * pages marked clean whose bytes never reached the disk, and serving
 * them now would show data that a later crash takes back.  Reads then
 * come from the disk.  The chunks such an error can have hit are those
 * written since the last good flush: those that were not dirty before
 * are not dirty on disk either, so they read as the published image
 * again (fetched and checked against their SHA-256); those that were
 * dirty keep what the disk holds.
 *
 * Whatever cache.raw holds outside the resident and dirty chunks (clean
 * chunks just dropped, fills a crash cut short) is never read: it is
 * punched out at open, so that the file takes what the budget counts.
 * Then the cache joins its budget, and clean chunks over it (or over the
 * cache's own limit, kept in cache.limit) are evicted before anything
 * reads; dirty ones are kept, whatever the limit.
 *
 * The image grows in place (cache_grow, a resize): the bitmaps are whole
 * pages of 32768 chunks, in memory and in cache.meta, so an image grows
 * up to that many chunks without moving them, and lock-free readers
 * never see them move; the size and chunk count are atomics, changed
 * with the gate exclusive.  Order on disk: cache.raw is extended (a
 * crash leaves it longer than the header says, and open truncates it
 * back), then the short last chunk's dirty bit is flushed, then the
 * header's new size, one sector, is written and synced.  The header's
 * size is the cache's at open: a larger one than the head's, over the
 * same base, is a resize not published yet; over another base (the head
 * moved: a rollback, another host) the head's is taken, nothing being
 * resident then (adopt_size).
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitmap.h"
#include "cache-impl.h"
#include "crash.h"
#include "err.h"
#include "lock.h"

/* Memory for fill buffers is bounded by this many bytes, at least
 * BUFS_MIN and at most BUFS_MAX buffers of one chunk each.
 */
#define BUF_BYTES (256 * 1024 * 1024)
#define BUFS_MIN 4
#define BUFS_MAX 64

static void
cache_free (struct cache *c)
{
  if (c->raw_fd >= 0)
    close (c->raw_fd);
  meta_close (c->meta);
  for (unsigned i = 0; i < c->nfree; i++)
    free (c->free_bufs[i]);
  free (c->free_bufs);
  free (c->resident);
  free (c->referenced);
  free (c->dirty);
  free (c->busy);
  free (c->publishing);
  free (c->frozen);
  free (c->staged);
  free (c->redirty);
  free (c->changed);
  free (c->unflushed[0]);
  free (c->unflushed[1]);
  free (c->suspect_path);
  free (c->limit_path);
  free (c->dir);
  free (c->raw_path);
  free (c->staging_path);
  pthread_rwlock_destroy (&c->gate);
  pthread_mutex_destroy (&c->flush_lock);
  pthread_mutex_destroy (&c->lock);
  pthread_cond_destroy (&c->cond);
  pthread_cond_destroy (&c->buf_cond);
  free (c);
}

/* Allocate the bitmaps, each rounded up to whole meta pages. */
static int
alloc_bitmaps (struct cache *c)
{
  uint64_t words = c->pages * (META_PAGE / 8);
  uint64_t **maps[] = { &c->resident, &c->referenced, &c->dirty, &c->busy,
                        &c->publishing, &c->frozen, &c->staged, &c->redirty };

  for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
    if ((*maps[i] = calloc (words, 8)) == NULL)
      return err_set (ENOMEM, "cache bitmaps: out of memory");
  c->changed = calloc (bitmap_words (c->pages), 8);
  c->unflushed[0] = calloc (words, 8);
  c->unflushed[1] = calloc (words, 8);
  c->free_bufs = calloc (c->max_bufs, sizeof (void *));
  if (c->changed == NULL || c->unflushed[0] == NULL ||
      c->unflushed[1] == NULL || c->free_bufs == NULL)
    return err_set (ENOMEM, "cache bitmaps: out of memory");
  return 0;
}

/* After a write-back error: list the chunks it may have hit, those
 * written since the last good flush, in cache.suspect (best effort).
 */
static void
write_suspects (struct cache *c)
{
  CLEANUP_FREE char *text = NULL;
  size_t len = 0;
  FILE *f = memstream_open (&text, &len);

  if (f) {
    for (uint64_t i = 0; i < c->chunks; i++)
      if (bitmap_get (c->unflushed[0], i) || bitmap_get (c->unflushed[1], i))
        fprintf (f, "%ju\n", (uintmax_t) i);
  }
  if (f == NULL || memstream_close (f, &text) == -1 ||
      file_write_atomic (c->suspect_path, text, len) == -1)
    log_warn ("%s: cannot list the suspect chunks: %s", c->dir, err_msg ());
}

/* Read cache.suspect: the dirty chunks among them may hold writes cut
 * short by a write-back error of an earlier session (the others are not
 * resident now, so they are fetched and checked again).
 */
static void
read_suspects (struct cache *c)
{
  CLEANUP_FREE char *text = NULL;
  char *p, *end;

  if (file_read_all (c->suspect_path, SIZE_MAX / 2, &text, NULL) == -1)
    return;
  for (p = text; *p; p = end) {
    unsigned long long i = strtoull (p, &end, 10);
    if (end == p || *end != '\n')
      break;
    end++;
    if (i < c->chunks && bitmap_get (c->dirty, i))
      c->n_suspect++;
  }
  if (c->n_suspect)
    log_warn ("%s: %ju dirty chunks (listed in %s) were written after the "
              "last good flush of a session that failed stop: they may hold "
              "parts of writes that were reported as failed", c->dir,
              (uintmax_t) c->n_suspect, c->suspect_path);
}

/* Open or create cache.raw at the image's size. */
static int
open_raw (struct cache *c, bool create)
{
  struct stat st;

  c->raw_fd = open (c->raw_path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0),
                    0600);
  if (c->raw_fd == -1)
    return err_set (errno, "open %s: %m", c->raw_path);
  if (fstat (c->raw_fd, &st) == -1)
    return err_set (errno, "stat %s: %m", c->raw_path);
  if ((uint64_t) st.st_size != c->size &&
      ftruncate (c->raw_fd, c->size) == -1)
    return err_set (errno, "truncate %s to %ju bytes: %m", c->raw_path,
                    (uintmax_t) c->size);
  return 0;
}

/* After an unclean shutdown: serve cache.raw from the disk, not from
 * pages that may never have reached it (see the top of this file).
 */
static int
drop_page_cache (struct cache *c)
{
  int e;

  if (fdatasync (c->raw_fd) == -1)
    return err_set (errno, "fdatasync %s: %m", c->raw_path);
  e = posix_fadvise (c->raw_fd, 0, 0, POSIX_FADV_DONTNEED);
  if (e)
    return err_set (e, "drop the page cache of %s: %m", c->raw_path);
  return 0;
}

/* Drop the clean resident chunks (their bits).  At open or load only.
 * The number of chunks dropped; *BYTES gets their bytes.
 */
static uint64_t
drop_clean (struct cache *c, uint64_t *bytes)
{
  uint64_t before = cache_bytes (c, c->n_resident, c->resident);
  uint64_t dropped = 0;

  for (uint64_t w = 0; w < bitmap_words (c->chunks); w++) {
    dropped += __builtin_popcountll (c->resident[w] & ~c->dirty[w]);
    bitmap_store_word_atomic (c->resident, w, c->dirty[w]);
  }
  c->n_resident = bitmap_count (c->resident, c->chunks);
  *bytes = before - cache_bytes (c, c->n_resident, c->resident);
  return dropped;
}

/* The first chunk at or after FROM that is resident, dirty or BUSY if
 * USED (else one that is none of these), or c->chunks.  With c->lock.
 */
static uint64_t
next_used (struct cache *c, uint64_t from, bool used)
{
  while (from < c->chunks) {
    uint64_t w = from / 64;
    uint64_t word = c->resident[w] | c->dirty[w] | c->busy[w];

    word = (used ? word : ~word) >> (from % 64);
    if (word)
      return from + __builtin_ctzll (word) < c->chunks
        ? from + __builtin_ctzll (word) : c->chunks;
    from = (w + 1) * 64;
  }
  return c->chunks;
}

void
cache_punch_unused (struct cache *c)
{
  for (uint64_t first = 0, end; ; first = end) {
    {
      LOCK_FOR_SCOPE (&c->lock);
      first = next_used (c, first, false);
      end = next_used (c, first, true);
    }
    if (first >= c->chunks)
      return;
    if (fallocate (c->raw_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                   first * c->chunk_size,
                   end * c->chunk_size - first * c->chunk_size) == -1) {
      log_warn ("%s: punch the unused chunks %ju-%ju out of %s: %m (their "
                "space stays allocated)", c->dir, (uintmax_t) first,
                (uintmax_t) end - 1, c->raw_path);
      return;
    }
  }
}

/* Choose what the cache is based on, given the export's HEAD (see the
 * top of this file), and keep only the resident chunks that may be
 * trusted; log what changed.
 */
static void
choose_base (struct cache *c, const struct meta_base *head)
{
  const struct meta_base *disk = meta_base (c->meta);
  unsigned flags = meta_flags (c->meta);
  bool same = strcmp (disk->snapshot_id, head->snapshot_id) == 0;
  uint64_t dropped = 0, bytes;

  c->n_dirty = bitmap_count (c->dirty, c->chunks);
  c->stale = c->n_dirty > 0 && !same && !c->readonly;
  c->base = c->stale ? *disk : *head;
  /* Clean resident chunks are trusted only after a clean shutdown and if
   * they belong to the image served now: the head, or a stale base.
   */
  if (!(flags & META_CLEAN) || (!same && !c->stale))
    dropped = drop_clean (c, &bytes);
  else
    c->n_resident = bitmap_count (c->resident, c->chunks);
  if (flags & META_WRITEBACK_ERROR)
    log_warn ("%s: the last session failed stop after a write-back error: "
              "kept %ju dirty chunks as the disk holds them (writes after "
              "its last good flush may be missing from them), dropped %ju "
              "clean cached chunks", c->dir, (uintmax_t) c->n_dirty,
              (uintmax_t) dropped);
  else if (dropped > 0 || (c->n_dirty > 0 && !(flags & META_CLEAN)))
    log_info ("%s: %s: kept %ju dirty chunks, dropped %ju clean cached "
              "chunks", c->dir, flags & META_CLEAN
              ? "the published snapshot changed" : "unclean shutdown",
              (uintmax_t) c->n_dirty, (uintmax_t) dropped);
}

/* The image's size, given the head's, HEAD_SIZE (after choose_base): a
 * larger one of the cache's own base is a resize not yet published, and
 * stays; a stale cache keeps its base's; otherwise the head's, which
 * nothing resident is in the way of (another base: clean chunks were
 * dropped, and there are no dirty ones).  0 or -1.
 */
static int
adopt_size (struct cache *c, const struct meta_base *head, uint64_t head_size)
{
  bool same = strcmp (meta_base (c->meta)->snapshot_id, head->snapshot_id) == 0;

  if (c->size == head_size || c->stale || (same && c->size > head_size))
    return 0;
  if (c->n_dirty > 0 || !meta_size_fits (c->meta, head_size))
    return err_set (EINVAL, "%s holds a %ju-byte image%s, and cannot take "
                    "the export's %ju bytes (reset the cache by removing "
                    "it)", c->dir, (uintmax_t) c->size,
                    c->n_dirty > 0 ? " with unpublished writes" : "",
                    (uintmax_t) head_size);
  log_info ("%s: the image is now %ju bytes (it was %ju)", c->dir,
            (uintmax_t) head_size, (uintmax_t) c->size);
  drop_clean (c, &(uint64_t) { 0 });
  meta_set_size (c->meta, head_size);    /* written with the header next */
  c->size = head_size;
  c->chunks = (head_size + c->chunk_size - 1) / c->chunk_size;
  if (ftruncate (c->raw_fd, head_size) == -1)
    return err_set (errno, "truncate %s to %ju bytes: %m", c->raw_path,
                    (uintmax_t) head_size);
  return 0;
}

struct cache *
cache_open (const char *dir, uint64_t image_size, uint32_t chunk_size,
            const struct meta_base *head, unsigned flags,
            const struct cache_source *src, struct cache_budget *budget)
{
  struct cache *c = calloc (1, sizeof *c);
  bool create = flags & CACHE_CREATE;

  assert (budget);
  if (c == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  c->budget = budget;           /* counted in it only once opened */
  c->raw_fd = c->staging_fd = -1;
  c->chunk_size = chunk_size;
  c->readonly = flags & CACHE_READONLY;
  c->src = *src;
  c->max_bufs = BUF_BYTES / chunk_size;
  c->max_bufs = c->max_bufs < BUFS_MIN ? BUFS_MIN
    : c->max_bufs > BUFS_MAX ? BUFS_MAX : c->max_bufs;
  c->dir = strdup (dir);
  c->raw_path = str_printf ("%s/cache.raw", dir);
  c->staging_path = str_printf ("%s/snapshot.staging", dir);
  c->suspect_path = str_printf ("%s/cache.suspect", dir);
  c->limit_path = str_printf ("%s/cache.limit", dir);
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init (&attr);
  /* A freeze must not starve behind a stream of writes. */
  pthread_rwlockattr_setkind_np (&attr,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&c->gate, &attr);
  pthread_rwlockattr_destroy (&attr);
  pthread_mutex_init (&c->flush_lock, NULL);
  pthread_mutex_init (&c->lock, NULL);
  pthread_cond_init (&c->cond, NULL);
  pthread_cond_init (&c->buf_cond, NULL);

  if (c->dir == NULL || c->raw_path == NULL || c->staging_path == NULL ||
      c->suspect_path == NULL || c->limit_path == NULL) {
    err_set (ENOMEM, "open cache %s: out of memory", dir);
    goto err;
  }
  if (create && mkdir_p (dir, 0700) == -1)
    goto err;
  c->meta = meta_open (dir, image_size, chunk_size, create,
                       flags & CACHE_GROWN);
  if (c->meta == NULL)
    goto err;
  /* The image's size is the header's: a resize may have grown it. */
  c->size = meta_image_size (c->meta);
  c->chunks = (c->size + chunk_size - 1) / chunk_size;
  c->pages = (bitmap_words (c->chunks) * 8 + META_PAGE - 1) / META_PAGE;
  if (alloc_bitmaps (c) == -1 || open_raw (c, create) == -1 ||
      meta_load (c->meta, c->resident, c->dirty) == -1)
    goto err;
  if (!(meta_flags (c->meta) & META_CLEAN)) {
    if (drop_page_cache (c) == -1)
      goto err;
    /* What was read is what the disk holds; the first flush writes the
     * dirty bitmap whole, so no page is left to a failed session's luck.
     */
    for (uint64_t p = 0; p < c->pages; p++)
      bitmap_set (c->changed, p);
    c->writes++;
  }
  choose_base (c, head);
  if (adopt_size (c, head, image_size) == -1)
    goto err;
  read_suspects (c);
  /* From now on the state on disk is unclean until cache_close; the
   * directory sync makes new cache files durable with it.
   */
  if (meta_set_header (c->meta, 0, &c->base) == -1 ||
      (create && fsync_dir (dir) == -1))
    goto err;
  cache_punch_unused (c);
  cache_budget_attach (c, budget);
  return c;

 err:
  cache_free (c);
  return NULL;
}

/* Mark the shutdown clean after writing everything.  Called with
 * c->gate held exclusively.  After a write-back error nothing is written
 * but the WRITEBACK_ERROR mark (best effort): the disk keeps the state of
 * the last good flush, and the next open drops the page cache.  That
 * close is how the admin gets out of the fail-stop, so it succeeds.
 */
static int
close_gated (struct cache *c)
{
  if (atomic_load (&c->failed)) {
    write_suspects (c);
    if (meta_set_header (c->meta, META_WRITEBACK_ERROR, &c->base) == -1)
      log_warn ("%s", err_msg ());
    log_warn ("%s: closed after a write-back error; it reopens as of its "
              "last good flush", c->dir);
    return 0;
  }
  if (cache_flush_gated (c) == -1)
    return -1;
  if (fdatasync (c->raw_fd) == -1)
    return err_set (errno, "fdatasync %s: %m", c->raw_path);
  if (meta_write_bitmaps (c->meta, c->resident, c->dirty) == -1 ||
      meta_sync (c->meta) == -1 ||
      meta_set_header (c->meta, META_CLEAN, &c->base) == -1)
    return -1;
  return 0;
}

bool
cache_fits (struct cache *c, uint64_t size)
{
  return meta_size_fits (c->meta, size);
}

uint64_t
cache_size (struct cache *c)
{
  return atomic_load (&c->size);
}

int
cache_set_geometry (struct cache *c, uint64_t size)
{
  bool grow = size > c->size;

  if (grow && ftruncate (c->raw_fd, size) == -1)
    return err_set (errno, "extend %s to %ju bytes: %m", c->raw_path,
                    (uintmax_t) size);
  meta_set_size (c->meta, size);
  if (meta_set_header (c->meta, 0, &c->base) == -1)
    return cache_fail_stop (c);
  {
    LOCK_FOR_SCOPE (&c->lock);
    c->size = size;
    c->chunks = (size + c->chunk_size - 1) / c->chunk_size;
  }
  if (!grow && ftruncate (c->raw_fd, size) == -1)
    log_warn ("%s: truncate %s to %ju bytes: %m (the bytes past the image "
              "are never read)", c->dir, c->raw_path, (uintmax_t) size);
  return 0;
}

int
cache_grow (struct cache *c, uint64_t size)
{
  WRLOCK_FOR_SCOPE (&c->gate);  /* no write in flight, none starts */
  uint64_t last = c->chunks - 1, old_len, ext;
  bool extend = false;

  if (cache_check_writable (c) == -1)
    return -1;
  if (size <= c->size)
    return err_set (EINVAL, "%ju bytes is not larger than the image's %ju: "
                    "an export only grows", (uintmax_t) size,
                    (uintmax_t) c->size);
  if (!meta_size_fits (c->meta, size))
    return err_set (EFBIG, "%s: its cache holds the bitmaps of %ju chunks "
                    "at most, %ju bytes: a larger image is not supported",
                    c->dir, (uintmax_t) c->pages * META_PAGE_BITS,
                    (uintmax_t) (c->pages * META_PAGE_BITS * c->chunk_size));
  old_len = cache_chunk_bytes (c, last);
  ext = ((size - last * c->chunk_size) < c->chunk_size
         ? size - last * c->chunk_size : c->chunk_size) - old_len;
  if (ext > 0) {
    /* The short last chunk, if it holds data: the published blob holds
     * it short, so it is zero-extended and made dirty, to be republished
     * whole, before the size grows.
     */
    LOCK_FOR_SCOPE (&c->lock);
    extend = bitmap_get (c->resident, last);
    if (!extend && c->src.has (c->src.opaque, last))
      return err_set (EAGAIN, "%s: chunk %ju, the image's last, must be "
                      "cached to be extended", c->dir, (uintmax_t) last);
  }
  if (extend && cache_budget_reserve (c, ext, true) == -1)
    return -1;
  if (extend) {
    /* Past the old end: outside the image until the header says so.  A
     * shrink may have left old bytes there (its truncate is best effort).
     */
    int r = ftruncate (c->raw_fd, size) == -1
      ? err_set (errno, "extend %s to %ju bytes: %m", c->raw_path,
                 (uintmax_t) size)
      : cache_zero_range (c->raw_fd, c->size, ext, false, c->raw_path);

    if (r == -1) {
      cache_budget_release (c, ext);
      return -1;
    }
    {
      LOCK_FOR_SCOPE (&c->lock);
      cache_mark_dirty (c, last);
    }
    /* The dirty bit reaches the disk before the new size does. */
    if (cache_flush_gated (c) == -1) {
      cache_budget_release (c, ext);
      return -1;
    }
    CRASH_POINT ("resize.after_dirty");
  }
  if (cache_set_geometry (c, size) == -1) {
    if (extend)
      cache_budget_release (c, ext);
    return -1;
  }
  /* The last chunk was counted short, dirty; it is whole now. */
  if (extend)
    atomic_fetch_add (&c->budget->dirty_bytes, ext);
  return 0;
}

bool
cache_stale (struct cache *c, struct meta_base *base)
{
  LOCK_FOR_SCOPE (&c->lock);
  *base = c->base;
  return c->stale;
}

int
cache_rebase (struct cache *c, const struct meta_base *base, bool stale,
              bool keep)
{
  uint64_t dropped = 0;

  WRLOCK_FOR_SCOPE (&c->gate);
  {
    LOCK_FOR_SCOPE (&c->lock);
    if (!keep && strcmp (c->base.snapshot_id, base->snapshot_id) != 0)
      drop_clean (c, &dropped);
    c->base = *base;
    c->stale = stale;
  }
  if (dropped > 0) {
    cache_punch_unused (c);
    cache_budget_release (c, dropped);
  }
  return meta_set_header (c->meta, 0, base) == -1 ? cache_fail_stop (c) : 0;
}

int
cache_close (struct cache *c)
{
  int r;

  cache_budget_detach (c);      /* no eviction from it from now on */
  {
    WRLOCK_FOR_SCOPE (&c->gate);
    assert (c->n_busy == 0 && c->staging_fd == -1);
    r = close_gated (c);
  }
  cache_free (c);
  return r;
}
