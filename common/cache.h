/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the chunk cache of one export — cache.raw, cache.meta and the
 * per-chunk state machine that makes lazy fills, local writes, flushes and
 * point-in-time publishes safe under nbdkit's PARALLEL thread model.
 *
 * The cache knows nothing about object stores or manifests: the published
 * image behind it is a cache_source that says whether a chunk holds data
 * and fetches its bytes.  See cache.c for the states and locking rules.
 */
#ifndef LAZYVOL_CACHE_H
#define LAZYVOL_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "meta.h"

/* The most chunks, and bytes, that one fill of a run of chunks asks the
 * source for (cache_prefetch; the source may need several requests if
 * they are not stored back to back).
 */
#define CACHE_RUN_BYTES (16 * 1024 * 1024)
#define CACHE_RUN_CHUNKS_MAX 256

/* Where a source puts the bytes of a run of chunks (fetch_run). */
struct cache_run_sink {
  /* LEN bytes at offset OFF of chunk CHUNK, each chunk's in order.  0, or
   * -1 with err_set: the run stops.
   */
  int (*data) (void *run, uint64_t chunk, uint32_t off, const void *buf,
               size_t len);
  /* CHUNK is complete and its bytes verified (OK), or it failed (with
   * err_set).  Once for each chunk of the run, after its last data.
   */
  void (*done) (void *run, uint64_t chunk, bool ok);
};

/* The published image behind the cache. */
struct cache_source {
  /* Does the published image hold data for CHUNK?  false: all zeros. */
  bool (*has) (void *opaque, uint64_t chunk);
  /* Fill BUF with LEN bytes, chunk CHUNK of the published image.  0, or
   * -1 with err_set.  Called without any cache lock held.
   */
  int (*fetch) (void *opaque, uint64_t chunk, void *buf, uint32_t len);
  /* Fetch chunks [CHUNK, CHUNK+N) of the published image (N at most
   * CACHE_RUN_CHUNKS_MAX) into SINK with as few requests as their
   * layout allows; a chunk done OK had all its bytes given (its length
   * in the cache), in order.  0 if every chunk was done OK, else -1 with
   * the first failure's error.  Called without any cache lock held.
   */
  int (*fetch_run) (void *opaque, uint64_t chunk, uint64_t n,
                    const struct cache_run_sink *sink, void *run);
  void *opaque;
};

enum {
  CACHE_CREATE = 1,             /* create the cache files if missing */
  CACHE_READONLY = 2,           /* refuse writes (snapshot exports) */
  CACHE_GROWN = 4,              /* it may hold a larger image (a resize
                                   not yet published): open it at that */
};

/* Flags for cache_zero. */
enum {
  CACHE_ZERO_MAY_TRIM = 1,      /* the range may become a hole */
  CACHE_ZERO_FAST = 2,          /* fail with ENOTSUP rather than fetch */
  CACHE_ZERO_TRIM = 4,          /* a TRIM: whole chunks only, advisory */
};

/* Extent types reported by cache_extents. */
enum { CACHE_EXTENT_DATA = 0, CACHE_EXTENT_HOLE = 3 /* hole and zero */ };

struct cache;

/* Bytes of cache.raw that the caches of a process may fill, shared by
 * every cache opened with it; clean chunks are evicted to stay within
 * it (see "The budget" in cache.c).
 */
struct cache_budget;

/* No limit: what cache_budget_new and cache_set_max_size take for none. */
#define CACHE_NO_LIMIT UINT64_MAX

/* A budget of MAX_BYTES (CACHE_NO_LIMIT: none).  NULL with err_set. */
struct cache_budget *cache_budget_new (uint64_t max_bytes);
/* Free B, which no open cache uses any more.  NULL is allowed. */
void cache_budget_free (struct cache_budget *b);

struct cache_budget_stats {
  uint64_t max_bytes;           /* CACHE_NO_LIMIT: none */
  uint64_t used_bytes;          /* resident and being filled, every cache */
  uint64_t dirty_bytes;         /* unpublished, every cache */
  uint64_t evictions;           /* chunks evicted since the start */
};

/* Copy B's counters into *OUT. */
void cache_budget_get_stats (struct cache_budget *b,
                             struct cache_budget_stats *out)
  __attribute__ ((__nonnull__));

/* Open the cache in DIR for an image of IMAGE_SIZE bytes split into
 * CHUNK_SIZE chunks, read through SRC, whose export's published head is
 * HEAD (snapshot id "" if none).  Its cached bytes count in BUDGET, and
 * in its own limit if cache.limit names one (see cache_set_max_size):
 * clean chunks over either are evicted at once, dirty ones are kept.
 * Dirty chunks are kept across any restart; clean resident chunks only
 * after a clean shutdown with the same base.  If the cache holds dirty chunks written over another base
 * (the head moved on since), it opens stale: its base stays, its image is
 * that base (SRC must serve it), and it refuses writes and publishes
 * (cache_stale).  NULL with err_set (EBUSY if another process has the
 * cache open).
 */
struct cache *cache_open (const char *dir, uint64_t image_size,
                          uint32_t chunk_size, const struct meta_base *head,
                          unsigned flags, const struct cache_source *src,
                          struct cache_budget *budget);
/* Limit the bytes of this cache's own chunks to MAX_BYTES (CACHE_NO_LIMIT:
 * only the budget's), for this open and later ones (cache.limit), and
 * evict clean chunks down to it.  The smaller of it and the budget
 * applies.  0 or -1 with err_set (EINVAL if MAX_BYTES is below a chunk).
 */
int cache_set_max_size (struct cache *c, uint64_t max_bytes)
  __attribute__ ((__nonnull__));
/* Is the cache stale (see cache_open)?  *BASE gets its base. */
bool cache_stale (struct cache *c, struct meta_base *base)
  __attribute__ ((__nonnull__));
/* Make BASE what the local state is based on, STALE or not.  With KEEP
 * the resident chunks hold BASE's bytes (the publish of BASE came from
 * them), and readers may go on; otherwise the clean ones are dropped if
 * BASE is another snapshot, which is only for while nothing reads the
 * cache (at load).  0 or -1.
 */
int cache_rebase (struct cache *c, const struct meta_base *base, bool stale,
                  bool keep) __attribute__ ((__nonnull__));
/* Flush everything and mark the shutdown clean, then free.  0 or -1 (the
 * cache is freed either way, and an unclean mark stays on disk).
 */
int cache_close (struct cache *c);

/* Read COUNT bytes at OFFSET, fetching missing chunks.  0 or -1. */
int cache_pread (struct cache *c, void *buf, uint32_t count, uint64_t offset);
/* Write COUNT bytes at OFFSET; the chunks become dirty.  With FUA the
 * write is durable on return.  0 or -1.
 */
int cache_pwrite (struct cache *c, const void *buf, uint32_t count,
                  uint64_t offset, bool fua);
/* Zero (or trim) COUNT bytes at OFFSET; whole chunks become holes.
 * FLAGS from CACHE_ZERO_*.  0 or -1.
 */
int cache_zero (struct cache *c, uint32_t count, uint64_t offset,
                unsigned flags, bool fua);
/* Make every acknowledged write and its dirty bit durable.  0 or -1;
 * after the first write-back error every later call fails too
 * (ENOTRECOVERABLE), as
 * do writes and publishes, until the cache is closed and opened again.
 */
int cache_flush (struct cache *c);
/* Fetch the chunks of [CHUNK, CHUNK+COUNT) that are not resident (CACHE,
 * readahead, hydrate), a run of contiguous ones at a time (at most
 * CACHE_RUN_CHUNKS_MAX chunks and CACHE_RUN_BYTES), evicting clean
 * chunks for room if EVICT.  Chunks being filled by others are skipped.
 * 0, 1 if there was no room left in the budget (the rest not fetched),
 * or -1.
 */
int cache_prefetch (struct cache *c, uint64_t chunk, uint64_t count,
                    bool evict);
/* Chunks in one fill of a run: CACHE_RUN_BYTES of them, at least one,
 * at most CACHE_RUN_CHUNKS_MAX.
 */
uint64_t cache_run_chunks (const struct cache *c) __attribute__ ((__nonnull__));
/* Is CHUNK resident (no fetch needed to read it)? */
bool cache_is_resident (struct cache *c, uint64_t chunk);

/* Called by cache_extents for each extent, in order. */
typedef int (*cache_extent_fn) (void *opaque, uint64_t offset,
                                uint64_t length, unsigned type);
/* Report data/hole extents covering [OFFSET, OFFSET+COUNT).  0 or -1. */
int cache_extents (struct cache *c, uint32_t count, uint64_t offset,
                   cache_extent_fn fn, void *opaque);

/* Publishing (see cache.c, "Point-in-time publish").  One at a time. */

/* Freeze the chunks a publish needs, atomically with respect to writes:
 * every dirty chunk, plus those set in the bitmap EXTRA if not NULL (a
 * compact passes every chunk the published image lists).  Returns the
 * number of frozen chunks, or -1.
 */
int64_t cache_publish_begin (struct cache *c, const uint64_t *extra);
/* The next chunk of the publish set at or after FROM; false at the end. */
bool cache_publish_next (struct cache *c, uint64_t from, uint64_t *chunk);
/* Read the point-in-time bytes of publish chunk CHUNK into BUF and thaw
 * it.  Returns 1 if BUF was filled, 0 if the chunk is not local (its
 * bytes are the published image's: fetch them, or zeros if it has none),
 * -1 on error.
 */
int cache_publish_read (struct cache *c, uint64_t chunk, void *buf);
/* End the publish.  On SUCCESS the published chunks not rewritten since
 * cache_publish_begin become clean and PUBLISHED becomes the cache's
 * base; otherwise every dirty bit stays.  0 or -1.
 */
int cache_publish_end (struct cache *c, bool success,
                       const struct meta_base *published);

/* Does BUF (LEN bytes) hold what the published image has for CHUNK? */
typedef bool (*cache_match_fn) (void *opaque, uint64_t chunk,
                                const void *buf, uint32_t len);
/* For each dirty chunk whose bytes MATCH says a publish holds, clear
 * DIRTY, and RESIDENT too unless KEEP; then flush.  For bookkeeping a
 * crash cut short.  Writes wait meanwhile; without KEEP, nothing may be
 * reading the cache (chunks stop being resident without a drain).  The
 * number of chunks settled, or -1.
 */
int64_t cache_settle_published (struct cache *c, cache_match_fn match,
                                void *opaque, bool keep);

/* Drop all resident and dirty state (destructive), as of snapshot HEAD
 * of SIZE bytes (which may differ from the cache's: no client may then
 * use the cache, and SIZE must fit its bitmaps, else EFBIG and nothing
 * changes).  Waits for the requests in flight and holds new ones until
 * done; the cleared state is on disk before any byte is dropped.  0 or
 * -1.
 */
int cache_reset (struct cache *c, const struct meta_base *head,
                 uint64_t size) __attribute__ ((__nonnull__));
/* Would an image of SIZE bytes fit the cache's bitmaps (cache_reset)? */
bool cache_fits (struct cache *c, uint64_t size) __attribute__ ((__nonnull__));
/* The image's size now (cache_grow and cache_reset change it). */
uint64_t cache_size (struct cache *c) __attribute__ ((__nonnull__));
/* Grow the image to SIZE bytes, which must be larger and fit the
 * cache's bitmaps (EFBIG: they hold a whole number of 4 KiB pages of
 * chunks).  If the last chunk was short and holds data, it must be
 * resident (else EAGAIN: prefetch it): it is zero-extended and becomes
 * dirty, so that the next publish writes it whole.  Crash-safe: after a
 * crash the cache has the old size or the new one, and that chunk is
 * dirty before the new size is on disk.  Requests in flight finish
 * first; those of clients that know the old size stay inside it.  0 or
 * -1.
 */
int cache_grow (struct cache *c, uint64_t size) __attribute__ ((__nonnull__));
/* Refuse writes (EBUSY) while ON, for a rollback: waits for the writes
 * in flight.  Returns the dirty chunks (those left when writes stopped).
 */
uint64_t cache_freeze (struct cache *c, bool on) __attribute__ ((__nonnull__));

struct cache_stats {
  uint64_t chunks;              /* chunks in the image */
  uint64_t resident;            /* resident chunks (dirty ones included) */
  uint64_t dirty;
  bool failed;                  /* failed stop after a write-back error */
  uint64_t suspect;             /* dirty chunks such an error may have hit */
  uint64_t read_hits;           /* chunk reads served from cache.raw */
  uint64_t read_misses;         /* chunk reads that needed a fetch */
  uint64_t fills;               /* chunks fetched */
  uint64_t fill_bytes;
  uint64_t fill_errors;
  /* The budget (see cache_open). */
  uint64_t max_bytes;           /* this cache's own limit, or CACHE_NO_LIMIT */
  uint64_t used_bytes;          /* its resident chunks and fills under way */
  uint64_t dirty_bytes;
  /* Can room be made for one more chunk?  Not if the dirty bytes fill
   * the cache's own limit, or those of every cache fill the budget.
   */
  enum { CACHE_ROOM, CACHE_FULL_LIMIT, CACHE_FULL_BUDGET } full;
  uint64_t evictions;           /* chunks evicted from this cache */
  uint64_t bypass_reads;        /* chunks read without keeping them */
  uint64_t refused_writes;      /* writes that found no room (ENOSPC) */
  struct cache_budget_stats budget;     /* the process's */
};

/* Copy the cache's counters into *OUT. */
void cache_get_stats (struct cache *c, struct cache_stats *out);

#endif /* LAZYVOL_CACHE_H */
