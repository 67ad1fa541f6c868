/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the budget of the chunk caches (see cache.h, and "The budget"
 * in cache.c): how many bytes of cache.raw the caches of one process may
 * fill together, each cache's own limit, and the eviction of clean
 * chunks that keeps them within both.
 *
 * Accounting.  A cache's used_bytes are the bytes of its resident chunks
 * and of the chunks about to become resident: a fill, a prefetch or a
 * write to a chunk that is not resident reserves the chunk's bytes first
 * (cache_budget_reserve, under BUSY), and gives them back if it fails.
 * The budget's used_bytes are their sum.  What keeps both exact: whoever
 * makes a chunk resident spent a reservation, and whoever clears a
 * RESIDENT bit gives the chunk's bytes back (an eviction once the chunk
 * is punched, a reset, dropping clean chunks at load).  The one other
 * way a bit is set, a fast-path write that sets RESIDENT again under an
 * eviction, makes the eviction give up without giving anything back.
 * Dirty bytes are counted too (cache_count_dirty), for status only.
 *
 * Room.  A reservation fits if the cache's used_bytes stay within its own
 * limit and the budget's within the budget.  If not, and eviction is
 * allowed, clean chunks are evicted: from the cache itself if its own
 * limit is the one that is full, else from whichever cache the budget's
 * CLOCK hand is in.  A reservation that had to evict goes on evicting
 * until an eighth of the limit is free as well (the headroom), if there
 * is that much to evict.  Readahead and hydrate do not evict: readahead
 * takes the headroom, so it goes on under a full budget without evicting
 * chunks fetched ahead for other readers (several sequential readers
 * fetching ahead of each other would otherwise evict what the others
 * fetched before they read it, and fetch each chunk several times);
 * hydrate stops at the budget.
 *
 * CLOCK.  Each cache has a hand, a word of its bitmaps.  A candidate is a
 * chunk that is RESIDENT and not DIRTY, BUSY, FROZEN or STAGED.  At the
 * hand's word a candidate whose referenced bit is clear is the victim;
 * if there is none, the candidates' referenced bits are cleared and the
 * hand moves on.  A fill and every read hit set the bit: a chunk used
 * since the hand last passed it stays for one more turn.  The budget's
 * hand goes round the caches: a cache whose hand reaches the end of its
 * image without a victim sends the budget's hand to the next cache (its
 * own starts again at 0).  Two rounds of every cache clear every bit, so
 * after them (or two rounds of its own image, for a cache's own limit)
 * there is nothing to evict, and the reservation fails.
 *
 * Evicting a victim: under its cache's c->lock take BUSY (no fill, write
 * or publish read starts on it), clear RESIDENT, wait for the pins of its
 * stripe to drop (readers in cache.raw, fast-path writers, extents).  A
 * fast-path writer that pinned the chunk before the clear has made it
 * DIRTY (and RESIDENT again) by then: the eviction gives that chunk up
 * and picks another.  Else the lock is dropped, the chunk punched out of
 * cache.raw (PUNCH_HOLE | KEEP_SIZE), BUSY released, and only then are its
 * bytes given back.  cache.meta is not written: resident bits reach it
 * only at a clean close, from memory, where the chunk is no longer
 * resident; after a crash every clean chunk is dropped anyway.  So an
 * evicted chunk never comes back resident over a hole.  Nor dirty: a
 * chunk a publish has just made clean may still be dirty on disk until
 * the next flush, so nothing is evicted from a cache in that window
 * (clean_unsynced), nor ever after a failed flush.
 *
 * Locks: budget->lock protects the list of caches, the hands' cache,
 * and each cache's max_bytes, used_bytes and evictors; it is never held
 * while a c->lock is taken, nor taken while one is held.  An eviction
 * holds no lock across its punch, only BUSY on the victim.  A cache
 * leaves the list before it closes, once the evictions from it are over
 * (evictors, budget->cond).
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
#include <unistd.h>

#include "bitmap.h"
#include "cache-impl.h"
#include "err.h"
#include "lock.h"

struct cache_budget *
cache_budget_new (uint64_t max_bytes)
{
  struct cache_budget *b = calloc (1, sizeof *b);

  if (b == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  b->max_bytes = max_bytes;
  pthread_mutex_init (&b->lock, NULL);
  pthread_cond_init (&b->cond, NULL);
  return b;
}

void
cache_budget_free (struct cache_budget *b)
{
  if (b == NULL)
    return;
  assert (b->caches == NULL && b->used_bytes == 0);
  pthread_mutex_destroy (&b->lock);
  pthread_cond_destroy (&b->cond);
  free (b);
}

/* The cache after C in B's list, going round.  With b->lock. */
static struct cache *
next_cache (struct cache_budget *b, struct cache *c)
{
  return c->budget_next ? c->budget_next : b->caches;
}

/* A victim at or after C's CLOCK hand (see the top of this file): up to
 * the end of the image, or with WRAP two rounds of it.  With c->lock.
 */
static bool
clock_pick (struct cache *c, bool wrap, uint64_t *victim)
{
  uint64_t words = bitmap_words (c->chunks);
  uint64_t steps = wrap ? 2 * words + 1 : words - c->clock_hand;

  for (uint64_t s = 0; s < steps; s++) {
    uint64_t w = c->clock_hand;
    uint64_t cand = c->resident[w] &
      ~(c->dirty[w] | c->busy[w] | c->frozen[w] | c->staged[w]);
    uint64_t ref = bitmap_word_relaxed (c->referenced, w);

    if (cand & ~ref) {
      *victim = w * 64 + __builtin_ctzll (cand & ~ref);
      return true;
    }
    if (cand)
      bitmap_clear_word_relaxed (c->referenced, w, cand);
    c->clock_hand = w + 1 == words ? 0 : w + 1;
  }
  return false;
}

/* Evict one clean chunk of C (WRAP as for clock_pick); see the top of
 * this file.  The bytes to give back, or 0 if there was no victim.
 */
static uint64_t
evict_one (struct cache *c, bool wrap)
{
  uint64_t chunk, len;
  bool evicted = false;

  while (!evicted) {
    LOCK_FOR_SCOPE (&c->lock);

    if (c->draining || c->clean_unsynced || !clock_pick (c, wrap, &chunk))
      return 0;
    cache_busy_take (c, chunk);
    bitmap_clear_atomic (c->resident, chunk);
    c->n_resident--;
    cache_pins_wait_chunk (c, chunk);
    /* A fast-path write that pinned it first has dirtied it: it stays. */
    evicted = !bitmap_get (c->dirty, chunk);
    if (!evicted)
      cache_busy_release (c, chunk);
  }
  len = cache_chunk_bytes (c, chunk);
  if (fallocate (c->raw_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 chunk * c->chunk_size, len) == -1 &&
      !atomic_exchange (&c->punch_warned, true))
    log_warn ("%s: evict chunk %ju: punch it out of %s: %m (the space of "
              "evicted chunks stays allocated; this is logged once)",
              c->dir, (uintmax_t) chunk, c->raw_path);
  {
    LOCK_FOR_SCOPE (&c->lock);
    cache_busy_release (c, chunk);
  }
  atomic_fetch_add_explicit (&c->evictions, 1, memory_order_relaxed);
  return len;
}

/* Which limit LEN more bytes of C would pass, with HEADROOM (an eighth
 * of each limit) left free: OVER_NONE, OVER_OWN (C's own limit) or
 * OVER_BUDGET.  With b->lock.
 */
enum over { OVER_NONE, OVER_OWN, OVER_BUDGET };

static enum over
over (struct cache_budget *b, struct cache *c, uint64_t len, bool headroom)
{
  uint64_t own = headroom && c->max_bytes != CACHE_NO_LIMIT
    ? c->max_bytes / 8 : 0;
  uint64_t all = headroom && b->max_bytes != CACHE_NO_LIMIT
    ? b->max_bytes / 8 : 0;

  if (c->used_bytes + len + own > c->max_bytes)
    return OVER_OWN;
  if (b->used_bytes + len + all > b->max_bytes)
    return OVER_BUDGET;
  return OVER_NONE;
}

/* Take BYTES off C's and its budget's count.  With b->lock. */
static void
uncount (struct cache_budget *b, struct cache *c, uint64_t bytes)
{
  assert (c->used_bytes >= bytes && b->used_bytes >= bytes);
  c->used_bytes -= bytes;
  b->used_bytes -= bytes;
}

int
cache_budget_reserve (struct cache *c, uint64_t len, bool evict)
{
  struct cache_budget *b = c->budget;
  unsigned misses = 0;
  bool evicted = false, own;
  enum over o;

  LOCK_FOR_SCOPE (&b->lock);
  for (;;) {
    struct cache *victim;
    uint64_t freed;

    /* Once a chunk's reservation has had to evict, it goes on until
     * the headroom is free too, or nothing more can be evicted.
     */
    o = over (b, c, len, false);
    if (o == OVER_NONE &&
        (!evicted || misses > 0 || len == 0 ||
         (o = over (b, c, len, true)) == OVER_NONE)) {
      c->used_bytes += len;
      b->used_bytes += len;
      return 0;
    }
    /* A miss of its own image is two rounds of it; in the budget, one
     * cache's image to its end: two rounds of every cache, and the one
     * the hand started in again.
     */
    if (!evict || misses > (o == OVER_OWN ? 0 : 2 * b->ncaches))
      break;
    victim = o == OVER_OWN ? c : b->hand;
    victim->evictors++;
    pthread_mutex_unlock (&b->lock);
    freed = evict_one (victim, o == OVER_OWN);
    pthread_mutex_lock (&b->lock);
    victim->evictors--;
    pthread_cond_broadcast (&b->cond);
    if (freed) {
      uncount (b, victim, freed);
      b->evictions++;
      evicted = true;
      misses = 0;
    }
    else {
      misses++;
      if (o == OVER_BUDGET && b->hand == victim)
        b->hand = next_cache (b, victim);
    }
  }

  own = o == OVER_OWN;
  if (!evict)
    return err_set (ENOSPC, "%s: no room for %ju bytes in the cache %s of "
                    "%ju bytes", c->dir, (uintmax_t) len,
                    own ? "limit" : "budget",
                    (uintmax_t) (own ? c->max_bytes : b->max_bytes));
  return err_set (ENOSPC, "%s: the %s of %ju bytes is full of unpublished "
                  "writes (and chunks in use): take a snapshot to publish "
                  "them", c->dir,
                  own ? "export's own cache limit (cache_max_size)"
                  : "cache budget (cache-max-size)",
                  (uintmax_t) (own ? c->max_bytes : b->max_bytes));
}

void
cache_budget_release (struct cache *c, uint64_t bytes)
{
  struct cache_budget *b = c->budget;

  if (bytes == 0)
    return;
  LOCK_FOR_SCOPE (&b->lock);
  uncount (b, c, bytes);
}

/* The cache's own limit from cache.limit: CACHE_NO_LIMIT if there is
 * none, or if it does not hold a number of bytes of at least one chunk
 * (logged).
 */
static uint64_t
read_limit (struct cache *c)
{
  CLEANUP_FREE char *text = NULL;
  unsigned long long n;
  char *end;

  if (file_read_all (c->limit_path, 64, &text, NULL) == -1) {
    if (errno != ENOENT)
      log_warn ("%s (the cache has no limit of its own)", err_msg ());
    return CACHE_NO_LIMIT;
  }
  errno = 0;
  n = strtoull (text, &end, 10);
  if (errno || text[0] < '0' || text[0] > '9' || strcmp (end, "\n") != 0 ||
      n < c->chunk_size) {
    utf8_sanitize (text);
    log_warn ("%s: \"%.40s\" is not a number of bytes of at least one chunk "
              "(%u): the cache has no limit of its own", c->limit_path,
              text, c->chunk_size);
    return CACHE_NO_LIMIT;
  }
  return n;
}

void
cache_budget_shrink (struct cache *c)
{
  if (cache_budget_reserve (c, 0, true) == -1)
    log_warn ("%s (they are kept: unpublished writes are never evicted)",
              err_msg ());
}

void
cache_budget_attach (struct cache *c, struct cache_budget *b)
{
  uint64_t max = read_limit (c);

  assert (c->budget == b);
  {
    LOCK_FOR_SCOPE (&b->lock);
    c->max_bytes = max;
    c->used_bytes = cache_bytes (c, c->n_resident, c->resident);
    b->used_bytes += c->used_bytes;
    c->budget_next = b->caches;
    b->caches = c;
    if (b->hand == NULL)
      b->hand = c;
    b->ncaches++;
  }
  atomic_fetch_add (&b->dirty_bytes, cache_bytes (c, c->n_dirty, c->dirty));
  cache_budget_shrink (c);
}

void
cache_budget_detach (struct cache *c)
{
  struct cache_budget *b = c->budget;
  struct cache **p;

  LOCK_FOR_SCOPE (&b->lock);
  for (p = &b->caches; *p != c; p = &(*p)->budget_next)
    assert (*p);
  *p = c->budget_next;
  if (b->hand == c)
    b->hand = b->caches ? next_cache (b, c) : NULL;
  b->ncaches--;
  while (c->evictors > 0)
    pthread_cond_wait (&b->cond, &b->lock);
  uncount (b, c, c->used_bytes);
  atomic_fetch_sub (&b->dirty_bytes, cache_bytes (c, c->n_dirty, c->dirty));
}

int
cache_set_max_size (struct cache *c, uint64_t max_bytes)
{
  if (max_bytes < c->chunk_size)
    return err_set (EINVAL, "%s: a cache limit of %ju bytes is less than "
                    "one chunk (%u bytes)", c->dir, (uintmax_t) max_bytes,
                    c->chunk_size);
  if (max_bytes == CACHE_NO_LIMIT) {
    if (unlink (c->limit_path) == -1 && errno != ENOENT)
      return err_set (errno, "remove %s: %m", c->limit_path);
  }
  else {
    CLEANUP_FREE char *text = str_printf ("%ju\n", (uintmax_t) max_bytes);

    if (text == NULL ||
        file_write_atomic (c->limit_path, text, strlen (text)) == -1)
      return -1;
  }
  {
    LOCK_FOR_SCOPE (&c->budget->lock);
    c->max_bytes = max_bytes;
  }
  cache_budget_shrink (c);
  return 0;
}

void
cache_budget_fill_stats (struct cache *c, struct cache_stats *out)
{
  struct cache_budget *b = c->budget;

  {
    LOCK_FOR_SCOPE (&b->lock);
    out->max_bytes = c->max_bytes;
    out->used_bytes = c->used_bytes;
    out->budget.max_bytes = b->max_bytes;
    out->budget.used_bytes = b->used_bytes;
    out->budget.evictions = b->evictions;
  }
  out->budget.dirty_bytes = atomic_load (&b->dirty_bytes);
  /* No room for one more chunk, even by evicting every clean one. */
  out->full =
    out->max_bytes != CACHE_NO_LIMIT &&
    out->dirty_bytes + c->chunk_size > out->max_bytes ? CACHE_FULL_LIMIT
    : out->budget.max_bytes != CACHE_NO_LIMIT &&
    out->budget.dirty_bytes + c->chunk_size > out->budget.max_bytes
    ? CACHE_FULL_BUDGET : CACHE_ROOM;
}

void
cache_budget_get_stats (struct cache_budget *b,
                        struct cache_budget_stats *out)
{
  {
    LOCK_FOR_SCOPE (&b->lock);
    out->max_bytes = b->max_bytes;
    out->used_bytes = b->used_bytes;
    out->evictions = b->evictions;
  }
  out->dirty_bytes = atomic_load (&b->dirty_bytes);
}
