/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
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
 * Reads.  A reader of a resident chunk takes no lock: it pins the chunk
 * (an atomic count in the chunk's stripe of c->pins), then tests RESIDENT,
 * and reads cache.raw only if the bit was set; it unpins after the read.
 * Whoever takes bytes away from cache.raw (reset, eviction) clears
 * RESIDENT first and then waits for the pins to drop (cache_pins_wait).
 * Both sides are sequentially consistent, so either the reader sees the
 * bit cleared (and takes the slow path) or the remover sees the pin (and
 * waits): no read ever returns bytes that are being punched.  A missing
 * chunk the source lists is filled by the first reader (BUSY); other
 * readers of it wait, so it is fetched once.  A chunk the source does not
 * list reads as zeros without a fetch.
 *
 * Fills go straight into cache.raw, a run of chunks at a time
 * (fill_run): the filler takes BUSY on each chunk of the run (claim_run:
 * contiguous chunks that are neither resident nor BUSY, at most
 * CACHE_RUN_BYTES), reserves their bytes, and hands the run to the
 * source, which writes each chunk's bytes as they arrive and then says
 * whether they verified; each chunk then becomes RESIDENT (or gives its
 * reservation back, its partial bytes punched) and loses BUSY at once,
 * so a reader waiting for the first chunk of a run does not wait for
 * the rest (a chunk that failed its hash keeps BUSY until the source
 * has fetched it again, after the rest of the run).  The bytes of a chunk that is BUSY and not RESIDENT are never
 * read, so writing them unverified is safe.  Only a read that cannot
 * keep its chunk (no room, a full disk) goes through a fill buffer.  The slow path runs under c->lock
 * and waits while c->draining (a reset) is set, so no fill starts during
 * a reset.  A hit also sets the chunk's referenced bit for the CLOCK (a
 * relaxed load, and a write only if it was clear).
 *
 * Writes (and zero/trim) hold c->gate shared for the whole request.  The
 * fast path — RESIDENT, not FROZEN, not BUSY — pins the chunk, writes
 * cache.raw with no chunk lock, sets DIRTY and unpins.  Anything else
 * takes BUSY: a missing chunk is materialized (fetched, or zeroed) and
 * merged with a partial write in one pwrite; a whole-chunk write needs
 * no fetch.  Because a fill holds BUSY until the chunk is RESIDENT, and
 * writers to a non-resident chunk need BUSY, a fill can never land on
 * top of a write.
 *
 * The budget (cache-budget.c).  Every cache of a process counts in one
 * budget (cache-max-size) and perhaps a limit of its own: the bytes of
 * its resident chunks and of the fills under way.  Before a chunk becomes
 * resident (a fill, readahead, hydrate, or a write to a chunk that is
 * not) its bytes are reserved, under BUSY; a failure gives them back.
 * When there is no room, a read, a write or NBD_CMD_CACHE evicts clean
 * chunks by CLOCK, and then an eighth of the limit more, which readahead
 * uses: readahead and hydrate never evict.  A candidate is RESIDENT and
 * not DIRTY, BUSY, FROZEN or STAGED (a clean chunk a publish has already
 * read may go); at the hand, one whose referenced bit is set (read since
 * the hand passed, or just filled) loses the bit and stays for another
 * turn, one whose bit is clear is evicted.  The evictor takes BUSY on
 * it, clears RESIDENT, waits for the pins of its stripe, and punches it
 * out of cache.raw; a fast-path writer that pinned it first has made it
 * DIRTY meanwhile, and then it stays.  Dirty chunks are never evicted.
 * With no room to be made, a read is served from a fill buffer and not
 * kept (a bypass), readahead and hydrate fetch nothing, and a write that
 * needs a new chunk fails with ENOSPC ("full of unpublished writes"); a
 * trim is skipped.
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
 * Fail-stop.  Once an fdatasync (or a write of cache.raw or cache.meta)
 * has failed, the kernel may have dropped the unwritten pages and a later
 * fdatasync can succeed without them ("fsyncgate").  So the first such
 * error is final for this open: every later write, zero, flush and
 * publish fails naming it (ENOTRECOVERABLE: "failed_stop" on the control
 * socket, EIO for NBD clients; reads go on).  Closing leaves the
 * shutdown marked unclean; the next open syncs cache.raw and drops its
 * page cache, so what is served is what is on disk (see cache-open.c).
 *
 * Lock order: c->gate, then c->flush_lock, then c->lock, then the
 * source's own lock inside has().  A run's filler holds BUSY on several
 * chunks while it reserves room, which may evict; an eviction never
 * waits for a BUSY chunk (it takes only chunks that are not), so that
 * cannot deadlock either.  The budget's lock is never held with
 * a c->lock: a reservation takes it without any, and an eviction takes
 * the victim's c->lock only after dropping it.  BUSY holders may wait for
 * a fill buffer (c->buf_cond), or evict (waiting for pins, which nobody
 * holds while waiting for BUSY); buffer holders never wait for BUSY, so
 * none of these can deadlock.  A thread never takes c->gate twice (the
 * rwlock prefers writers, so a nested shared lock could wait behind a
 * freeze); an eviction needs no gate.
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
#include "lock.h"
#include "meta.h"
#include "util.h"

static void
count (_Atomic uint64_t *counter, uint64_t n)
{
  atomic_fetch_add_explicit (counter, n, memory_order_relaxed);
}

void
cache_busy_take (struct cache *c, uint64_t chunk)
{
  while (bitmap_get (c->busy, chunk))
    pthread_cond_wait (&c->cond, &c->lock);
  bitmap_set (c->busy, chunk);
  c->n_busy++;
}

void
cache_busy_release (struct cache *c, uint64_t chunk)
{
  assert (bitmap_get (c->busy, chunk));
  bitmap_clear (c->busy, chunk);
  c->n_busy--;
  pthread_cond_broadcast (&c->cond);
}

/* Pin CHUNK for a read of cache.raw without c->lock.  See "Reads". */
static _Atomic unsigned *
pin (struct cache *c, uint64_t chunk)
{
  _Atomic unsigned *p = &c->pins[chunk % PIN_STRIPES].n;

  atomic_fetch_add (p, 1);
  return p;
}

/* Drop a pin; wake a thread waiting for the pins to drop. */
static void
unpin (struct cache *c, _Atomic unsigned *p)
{
  if (atomic_fetch_sub (p, 1) == 1 && atomic_load (&c->pin_waiters) > 0) {
    LOCK_FOR_SCOPE (&c->lock);
    pthread_cond_broadcast (&c->cond);
  }
}

/* Wait until stripe I has no pin.  Called with c->lock held. */
static void
stripe_wait (struct cache *c, unsigned i)
{
  atomic_fetch_add (&c->pin_waiters, 1);
  while (atomic_load (&c->pins[i].n) > 0)
    pthread_cond_wait (&c->cond, &c->lock);
  atomic_fetch_sub (&c->pin_waiters, 1);
}

void
cache_pins_wait (struct cache *c)
{
  for (unsigned i = 0; i < PIN_STRIPES; i++)
    stripe_wait (c, i);
}

void
cache_pins_wait_chunk (struct cache *c, uint64_t chunk)
{
  stripe_wait (c, chunk % PIN_STRIPES);
}

int
cache_fail_stop (struct cache *c)
{
  int e = err_errno () ? err_errno () : EIO;
  int expected = 0;

  LOCK_FOR_SCOPE (&c->lock);
  if (atomic_compare_exchange_strong (&c->failed, &expected, e)) {
    snprintf (c->failed_msg, sizeof c->failed_msg, "%s", err_msg ());
    log_error ("%s: %s; the cache has failed stop: writes, flushes and "
               "publishes are refused until the export is reopened", c->dir,
               c->failed_msg);
  }
  return -1;
}

int
cache_check_failed (struct cache *c)
{
  if (atomic_load_explicit (&c->failed, memory_order_relaxed) == 0)
    return 0;
  LOCK_FOR_SCOPE (&c->lock);
  return err_set (ENOTRECOVERABLE, "%s: refused after a write-back error "
                  "(%s); reopen the export", c->dir, c->failed_msg);
}

int
cache_check_writable (struct cache *c)
{
  if (c->readonly)
    return err_set (EROFS, "this export is read-only");
  /* stale changes with the gate exclusive, in operations that never
   * overlap a publish; writers hold the gate shared.
   */
  if (atomic_load_explicit (&c->stale, memory_order_relaxed)) {
    LOCK_FOR_SCOPE (&c->lock);
    return err_set (EROFS, "%s: the local writes are based on snapshot %s "
                    "(generation %ju), which the export's head has moved "
                    "past: they are kept, but not written to nor published "
                    "(see status)", c->dir,
                    c->base.snapshot_id[0] ? c->base.snapshot_id : "(none)",
                    (uintmax_t) c->base.generation);
  }
  if (atomic_load_explicit (&c->rolling, memory_order_relaxed))
    return err_set (EBUSY, "%s: a rollback is under way: writes are refused "
                    "until it ends", c->dir);
  return cache_check_failed (c);
}

/* Record that CHUNK now holds local bytes.  Called with c->lock held. */
static void
mark_resident (struct cache *c, uint64_t chunk)
{
  if (!bitmap_get (c->resident, chunk)) {
    bitmap_set_atomic (c->resident, chunk);
    c->n_resident++;
  }
}

void
cache_mark_dirty (struct cache *c, uint64_t chunk)
{
  mark_resident (c, chunk);
  bitmap_mark_relaxed (c->referenced, chunk);
  if (!bitmap_get (c->dirty, chunk)) {
    bitmap_set (c->dirty, chunk);
    cache_count_dirty (c, chunk, 1);
    bitmap_set (c->changed, chunk / META_PAGE_BITS);
  }
  if (bitmap_get (c->publishing, chunk))
    bitmap_set (c->redirty, chunk);
  bitmap_set (c->unflushed[c->unflushed_cur], chunk);
  c->writes++;
}

static void *
buf_get (struct cache *c)
{
  void *b;

  {
    LOCK_FOR_SCOPE (&c->lock);
    while (c->nfree == 0 && c->nbufs >= c->max_bufs)
      pthread_cond_wait (&c->buf_cond, &c->lock);
    if (c->nfree > 0)
      return c->free_bufs[--c->nfree];
    c->nbufs++;
  }
  if ((b = malloc (c->chunk_size)) == NULL) {
    err_set (ENOMEM, "%s: no memory for a fill buffer", c->dir);
    LOCK_FOR_SCOPE (&c->lock);
    c->nbufs--;
    pthread_cond_signal (&c->buf_cond);
  }
  return b;
}

static void
buf_put (struct cache *c, void *b)
{
  if (b == NULL)
    return;
  LOCK_FOR_SCOPE (&c->lock);
  c->free_bufs[c->nfree++] = b;
  pthread_cond_signal (&c->buf_cond);
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

/* Write to cache.raw; an I/O error (not ENOSPC: nothing was written)
 * fails the cache stop, as the kernel may have lost earlier pages too.
 */
static int
raw_pwrite (struct cache *c, const void *buf, size_t n, uint64_t offset)
{
  if (full_pwrite (c->raw_fd, buf, n, offset, c->raw_path) == -1)
    return errno == EIO ? cache_fail_stop (c) : -1;
  return 0;
}

/* cache_zero_range on cache.raw, failing stop on an I/O error likewise. */
static int
raw_zero (struct cache *c, uint64_t offset, uint64_t len, bool may_trim)
{
  if (cache_zero_range (c->raw_fd, offset, len, may_trim, c->raw_path) == -1)
    return errno == EIO ? cache_fail_stop (c) : -1;
  return 0;
}

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

/* Fetch CHUNK, on which the caller holds BUSY, into a fill buffer, copy
 * its bytes [OFF, OFF+N) to OUT and release BUSY: a read served without
 * keeping the chunk.  0 or -1.
 */
static int
fill_bypass (struct cache *c, uint64_t chunk, void *out, uint32_t off,
             uint32_t n)
{
  void *fb = buf_get (c);
  int r = fb ? fetch (c, chunk, fb) : -1;

  if (r == 0)
    memcpy (out, (char *) fb + off, n);
  buf_put (c, fb);
  LOCK_FOR_SCOPE (&c->lock);
  cache_busy_release (c, chunk);
  return r;
}

/* A run of chunks [FIRST, FIRST+N) being fetched straight into cache.raw
 * (fill_run): the filling thread holds BUSY on each, and their bytes are
 * reserved in the budget, until the source says the chunk is done.
 */
struct fill {
  struct cache *c;
  uint64_t first, n;
  uint64_t chunk;               /* the chunk DATA was last given */
  uint64_t got;                 /* bytes of it written, in order */
  uint64_t ndone;               /* chunks done, either way */
};

static int
fill_data (void *run, uint64_t chunk, uint32_t off, const void *buf,
           size_t len)
{
  struct fill *f = run;
  struct cache *c = f->c;

  assert (chunk >= f->first && chunk < f->first + f->n);
  assert ((uint64_t) off + len <= cache_chunk_bytes (c, chunk));
  if (chunk != f->chunk || off == 0) {   /* a chunk's bytes (again) */
    f->chunk = chunk;
    f->got = 0;
  }
  assert (off == f->got);
  if (raw_pwrite (c, buf, len, chunk * c->chunk_size + off) == -1)
    return -1;
  f->got += len;
  return 0;
}

static void
fill_done (void *run, uint64_t chunk, bool ok)
{
  struct fill *f = run;
  struct cache *c = f->c;
  uint32_t len = cache_chunk_bytes (c, chunk);

  assert (chunk >= f->first && chunk < f->first + f->n);
  f->ndone++;
  assert (!ok || (chunk == f->chunk && f->got == len));
  if (ok) {
    count (&c->fills, 1);
    count (&c->fill_bytes, len);
  }
  else {
    /* What part of it was written is never read (it is not resident):
     * give the space back if the file system can; it is only space.
     */
    count (&c->fill_errors, 1);
    if (chunk == f->chunk && f->got > 0)
      (void) fallocate (c->raw_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        chunk * c->chunk_size, len);
  }
  {
    LOCK_FOR_SCOPE (&c->lock);
    if (ok) {
      mark_resident (c, chunk);
      bitmap_mark_relaxed (c->referenced, chunk);     /* about to be read */
    }
    cache_busy_release (c, chunk);
  }
  if (!ok)
    cache_budget_release (c, len);
}

static const struct cache_run_sink fill_sink = { fill_data, fill_done };

/* Fetch chunks [FIRST, FIRST+N) into cache.raw: the caller holds BUSY on
 * each and has reserved their bytes; each is marked resident (or its
 * reservation given back) and released as soon as its bytes are in.
 * 0, or -1 if any failed.
 */
static int
fill_run (struct cache *c, uint64_t first, uint64_t n)
{
  struct fill f = { .c = c, .first = first, .n = n, .chunk = UINT64_MAX };
  int r = c->src.fetch_run (c->src.opaque, first, n, &fill_sink, &f);

  assert (f.ndone == n);
  return r;
}

/* Wait until CHUNK is neither BUSY nor being drained.  With c->lock. */
static void
wait_settled (struct cache *c, uint64_t chunk)
{
  while (c->draining || bitmap_get (c->busy, chunk))
    pthread_cond_wait (&c->cond, &c->lock);
}

/* Read [OFF, OFF+N) of pinned chunk CHUNK from cache.raw and unpin it. */
static int
read_pinned (struct cache *c, _Atomic unsigned *p, uint64_t chunk,
             void *buf, uint32_t off, uint32_t n)
{
  int r = full_pread (c->raw_fd, buf, n, chunk * c->chunk_size + off,
                      c->raw_path);

  unpin (c, p);
  count (&c->read_hits, 1);
  return r;
}

/* Read part of one chunk: [OFF, OFF+N) relative to the chunk's start.
 * A miss fills the chunk into cache.raw and reads it from there; with no
 * room in the budget, even by evicting, or on a full cache disk, the
 * bytes are served from a fill buffer without keeping them.
 */
static int
read_chunk (struct cache *c, uint64_t chunk, void *buf, uint32_t off,
            uint32_t n)
{
  bool keep = true;

  for (;;) {
    _Atomic unsigned *p = pin (c, chunk);

    if (bitmap_get_atomic (c->resident, chunk)) {
      bitmap_mark_relaxed (c->referenced, chunk);
      return read_pinned (c, p, chunk, buf, off, n);
    }
    unpin (c, p);

    {
      LOCK_FOR_SCOPE (&c->lock);
      wait_settled (c, chunk);
      if (bitmap_get (c->resident, chunk))
        p = pin (c, chunk);     /* filled meanwhile; a remover waits for it */
      else if (!c->src.has (c->src.opaque, chunk)) {
        memset (buf, 0, n);
        return 0;
      }
      else {
        p = NULL;
        cache_busy_take (c, chunk);
      }
    }
    if (p)
      return read_pinned (c, p, chunk, buf, off, n);
    count (&c->read_misses, 1);
    if (keep &&
        cache_budget_reserve (c, cache_chunk_bytes (c, chunk), true) == -1) {
      keep = false;
      log_debug ("chunk %ju read without caching it: %s", (uintmax_t) chunk,
                 err_msg ());
    }
    if (!keep) {
      count (&c->bypass_reads, 1);
      return fill_bypass (c, chunk, buf, off, n);
    }
    if (fill_run (c, chunk, 1) == -1) {
      if (errno != ENOSPC)
        return -1;
      /* A full cache disk costs the caching, not the read. */
      log_debug ("%s: chunk %ju not cached: %s", c->dir, (uintmax_t) chunk,
                 err_msg ());
      keep = false;
    }
    /* Now resident (read it, unless already evicted: then again). */
  }
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

  {
    LOCK_FOR_SCOPE (&c->lock);
    resident = bitmap_get (c->resident, chunk);
    has = resident || c->src.has (c->src.opaque, chunk);
    frozen = bitmap_get (c->frozen, chunk);
    if (frozen)
      c->staging_users++;
  }

  if (frozen) {
    r = stage_chunk (c, chunk, resident, has, &fb);
    LOCK_FOR_SCOPE (&c->lock);
    if (r == 0) {
      bitmap_set (c->staged, chunk);
      bitmap_clear (c->frozen, chunk);
    }
    c->staging_users--;
    pthread_cond_broadcast (&c->cond);
  }
  if (r == -1)
    goto out;

  if (resident) {
    r = data ? raw_pwrite (c, data, n, pos + off)
      : raw_zero (c, pos + off, n, may_trim);
  }
  else if (whole || !has) {
    /* No fetch: the rest of the chunk is zeros (it may hold stale bytes
     * of a chunk dropped after a crash, so clear it first).
     */
    r = raw_zero (c, pos, len, may_trim || !whole);
    if (r == 0 && data)
      r = raw_pwrite (c, data, n, pos + off);
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
    r = raw_pwrite (c, fb, len, pos);
  }
 out:
  buf_put (c, fb);
  return r;
}

/* What modify_chunk does with a chunk, decided under c->lock. */
enum modify_path { MODIFY_FAST, MODIFY_SLOW, MODIFY_NOTHING, MODIFY_NOTSUP };

/* Choose the path, setting *RESIDENT; the fast path gets the chunk
 * pinned in *PIN.  Called with c->lock held.
 */
static enum modify_path
modify_choose (struct cache *c, uint64_t chunk, bool whole, bool zero,
               unsigned zflags, bool *resident, _Atomic unsigned **pinned)
{
  bool frozen, has;

  while (bitmap_get (c->busy, chunk))
    pthread_cond_wait (&c->cond, &c->lock);
  *resident = bitmap_get (c->resident, chunk);
  frozen = bitmap_get (c->frozen, chunk);
  if (*resident && !frozen) {
    /* No BUSY needed: c->gate keeps a freeze and a reset out, and an
     * eviction, the only other change, waits for the pin and then finds
     * the chunk dirty (see "The budget").
     */
    *pinned = pin (c, chunk);
    return MODIFY_FAST;
  }
  has = *resident || c->src.has (c->src.opaque, chunk);
  /* Zeroing zeros changes nothing, unless a publish still needs the
   * chunk: then the slow path keeps the freeze bookkeeping right (it
   * stages nothing, as there are no bytes to save).
   */
  if (zero && !has && !frozen)
    return MODIFY_NOTHING;
  /* A fast zero must not fetch: a partial zero needs the chunk's bytes to
   * merge with, and a frozen chunk's bytes must be staged first.
   */
  if (zero && (zflags & CACHE_ZERO_FAST) && !*resident && has &&
      (!whole || frozen))
    return MODIFY_NOTSUP;
  cache_busy_take (c, chunk);
  return MODIFY_SLOW;
}

/* Write DATA (or zeros if NULL) to part [OFF, OFF+N) of one chunk. */
static int
modify_chunk (struct cache *c, uint64_t chunk, uint32_t off, uint32_t n,
              const void *data, unsigned zflags)
{
  uint64_t pos = chunk * c->chunk_size;
  uint32_t len = cache_chunk_bytes (c, chunk);
  bool whole = off == 0 && n == len;
  bool may_trim = zflags & CACHE_ZERO_MAY_TRIM;
  bool trim = zflags & CACHE_ZERO_TRIM;
  _Atomic unsigned *p = NULL;
  enum modify_path path;
  bool resident, done;
  int r;

  if (trim && !whole)
    return 0;                   /* trims below a chunk are only advice */

  {
    LOCK_FOR_SCOPE (&c->lock);
    path = modify_choose (c, chunk, whole, data == NULL, zflags, &resident,
                          &p);
  }
  /* The chunk becomes resident: its bytes need room in the budget.  A
   * trim that finds none is skipped (it is only advice).
   */
  if (path == MODIFY_SLOW && !resident &&
      cache_budget_reserve (c, len, true) == -1) {
    if (!trim)
      count (&c->refused_writes, 1);
    LOCK_FOR_SCOPE (&c->lock);
    cache_busy_release (c, chunk);
    return trim ? 0 : -1;
  }
  switch (path) {
  case MODIFY_NOTHING:
    return 0;
  case MODIFY_NOTSUP:
    return err_set (ENOTSUP, "fast zero of chunk %ju would need a fetch",
                    (uintmax_t) chunk);
  case MODIFY_FAST:
    r = data ? raw_pwrite (c, data, n, pos + off)
      : raw_zero (c, pos + off, n, may_trim);
    break;
  case MODIFY_SLOW:
    r = modify_slow (c, chunk, off, n, data, may_trim);
    break;
  default:
    abort ();
  }

  {
    LOCK_FOR_SCOPE (&c->lock);
    /* A write that failed half way may have changed a resident chunk's
     * bytes: they are no longer the published image's, so the chunk is
     * dirty either way.  A chunk that is not resident is not read.
     */
    done = r == 0 || bitmap_get (c->resident, chunk);
    if (done)
      cache_mark_dirty (c, chunk);
    if (path == MODIFY_SLOW)
      cache_busy_release (c, chunk);
  }
  if (p)
    unpin (c, p);
  if (path == MODIFY_SLOW && !resident && !done)
    cache_budget_release (c, len);
  return r;
}

/* Apply a modification to [OFFSET, OFFSET+COUNT), chunk by chunk. */
static int
modify (struct cache *c, const void *data, uint32_t count_, uint64_t offset,
        unsigned zflags, bool fua)
{
  const char *p = data;
  int r = 0;

  {
    RDLOCK_FOR_SCOPE (&c->gate);
    if (cache_check_writable (c) == -1)
      return -1;
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
  }
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

/* The dirty-bitmap pages a flush writes, copied under c->lock. */
struct flush_pages {
  uint64_t n, writes;
  unsigned generation;          /* of unflushed[], which this flush covers */
  unsigned char *pages;
  uint64_t *which;
};

/* Copy the changed dirty pages into *FP.  Called with c->lock held.
 * 1 if there is something to flush, 0 if nothing was written since the
 * last good flush, -1 on error.
 */
static int
flush_copy (struct cache *c, struct flush_pages *fp)
{
  fp->writes = c->writes;
  if (fp->writes == c->flushed_writes)
    return 0;
  fp->generation = c->unflushed_cur;
  c->unflushed_cur ^= 1;
  fp->n = bitmap_count (c->changed, c->pages);
  if (fp->n == 0)
    return 1;
  fp->pages = malloc (fp->n * META_PAGE);
  fp->which = malloc (fp->n * sizeof *fp->which);
  if (fp->pages == NULL || fp->which == NULL)
    return err_set (ENOMEM, "flush %s: out of memory", c->dir);
  for (uint64_t i = 0, p = 0; i < fp->n; i++, p++) {
    p = bitmap_next (c->changed, p, c->pages);
    fp->which[i] = p;
    memcpy (fp->pages + i * META_PAGE, (char *) c->dirty + p * META_PAGE,
            META_PAGE);
    bitmap_clear (c->changed, p);
  }
  return 1;
}

/* Sync cache.raw, then write and sync the copied pages. */
static int
flush_write (struct cache *c, const struct flush_pages *fp)
{
  if (fdatasync (c->raw_fd) == -1) {
    err_set (errno, "fdatasync %s: %m", c->raw_path);
    return cache_fail_stop (c);
  }
  for (uint64_t i = 0; i < fp->n; i++)
    if (meta_write_dirty_page (c->meta, fp->which[i],
                               fp->pages + i * META_PAGE) == -1)
      return cache_fail_stop (c);
  if (fp->n > 0 && meta_sync (c->meta) == -1)
    return cache_fail_stop (c);
  return 0;
}

int
cache_flush_gated (struct cache *c)
{
  struct flush_pages fp = { 0 };
  int r;

  LOCK_FOR_SCOPE (&c->flush_lock);
  if (cache_check_failed (c) == -1)
    return -1;
  {
    LOCK_FOR_SCOPE (&c->lock);
    r = flush_copy (c, &fp);
  }
  if (r == 1) {
    r = flush_write (c, &fp);
    /* Writers only touch the other generation, and flushes take turns. */
    if (r == 0)
      memset (c->unflushed[fp.generation], 0, bitmap_words (c->chunks) * 8);
    LOCK_FOR_SCOPE (&c->lock);
    if (r == 0 && c->flushed_writes < fp.writes)
      c->flushed_writes = fp.writes;
    if (r == 0)
      c->clean_unsynced = false;        /* what was made clean is on disk */
    /* After a failure (which fails stop) the pages stay marked, so the
     * state in memory still says what the disk lacks.
     */
    for (uint64_t i = 0; r == -1 && i < fp.n; i++)
      bitmap_set (c->changed, fp.which[i]);
  }
  free (fp.pages);
  free (fp.which);
  return r == -1 ? -1 : 0;
}

int
cache_flush (struct cache *c)
{
  RDLOCK_FOR_SCOPE (&c->gate);
  return cache_flush_gated (c);
}

/* Can CHUNK be claimed for a prefetch: not resident, not being filled,
 * and listed by the source?  Called with c->lock held.
 */
static bool
claimable (struct cache *c, uint64_t chunk)
{
  return !bitmap_get (c->resident, chunk) && !bitmap_get (c->busy, chunk) &&
    c->src.has (c->src.opaque, chunk);
}

/* Chunks claim_run looks at under c->lock before it lets writers in. */
#define CLAIM_SCAN_MAX 1024

/* Claim the next run of claimable chunks in [*CHUNK, END): take BUSY on
 * them and reserve their bytes.  Sets *CHUNK past what was looked at
 * (at most CLAIM_SCAN_MAX chunks are skipped at a time), *FIRST to the
 * run's start.  The run's length: 0 if there is none yet (*DRAINING if
 * a reset is under way), or *NOROOM if the budget ran out.
 */
static uint64_t
claim_run (struct cache *c, uint64_t *chunk, uint64_t end, bool evict,
           uint64_t *first, bool *draining, bool *noroom)
{
  uint64_t max = cache_run_chunks (c), n = 0, kept = 0;

  {
    LOCK_FOR_SCOPE (&c->lock);
    if ((*draining = c->draining))
      return 0;
    for (unsigned k = 0; *chunk < end && !claimable (c, *chunk); k++) {
      if (k == CLAIM_SCAN_MAX)
        return 0;
      ++*chunk;
    }
    *first = *chunk;
    for (; *chunk < end && n < max && claimable (c, *chunk); ++*chunk, n++)
      cache_busy_take (c, *chunk);
  }
  while (kept < n && cache_budget_reserve
         (c, cache_chunk_bytes (c, *first + kept), evict) == 0)
    kept++;
  if (kept < n) {
    LOCK_FOR_SCOPE (&c->lock);
    for (uint64_t i = kept; i < n; i++)
      cache_busy_release (c, *first + i);
    *noroom = true;
  }
  return kept;
}

int
cache_prefetch (struct cache *c, uint64_t chunk, uint64_t count_,
                bool evict)
{
  uint64_t end = chunk < c->chunks && count_ < c->chunks - chunk
    ? chunk + count_ : c->chunks;
  int r = 0;

  while (r == 0 && chunk < end) {
    bool draining, noroom = false;
    uint64_t first, n = claim_run (c, &chunk, end, evict, &first, &draining,
                                   &noroom);
    struct err_saved why;

    if (draining)
      break;
    if (noroom)
      err_save (&why);          /* the budget's reason, for the caller */
    if (n > 0 && fill_run (c, first, n) == -1)
      r = -1;
    else if (noroom) {
      err_restore (&why);
      r = 1;
    }
  }
  return r;
}

uint64_t
cache_run_chunks (const struct cache *c)
{
  uint64_t n = CACHE_RUN_BYTES / c->chunk_size;

  return n < 1 ? 1 : n > CACHE_RUN_CHUNKS_MAX ? CACHE_RUN_CHUNKS_MAX : n;
}

bool
cache_is_resident (struct cache *c, uint64_t chunk)
{
  return chunk < c->chunks && bitmap_get_atomic (c->resident, chunk);
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

  /* Shared gate: a reset cannot punch cache.raw under the lseeks; a pin
   * keeps an eviction out likewise (see "Reads").
   */
  RDLOCK_FOR_SCOPE (&c->gate);
  while (offset < end) {
    uint64_t chunk = offset / c->chunk_size;
    uint64_t cend = chunk * c->chunk_size + cache_chunk_bytes (c, chunk);
    _Atomic unsigned *p = pin (c, chunk);
    bool resident = bitmap_get_atomic (c->resident, chunk), has;
    int r = 0;

    if (cend > end)
      cend = end;
    if (resident)
      r = raw_extents (c, offset, cend, fn, opaque);
    unpin (c, p);
    if (!resident) {
      {
        LOCK_FOR_SCOPE (&c->lock);
        has = c->src.has (c->src.opaque, chunk);
      }
      r = fn (opaque, offset, cend - offset,
              has ? CACHE_EXTENT_DATA : CACHE_EXTENT_HOLE);
    }
    if (r == -1)
      return -1;
    offset = cend;
  }
  return 0;
}

void
cache_get_stats (struct cache *c, struct cache_stats *out)
{
  {
    LOCK_FOR_SCOPE (&c->lock);
    out->chunks = c->chunks;
    out->resident = c->n_resident;
    out->dirty = c->n_dirty;
    out->dirty_bytes = cache_bytes (c, c->n_dirty, c->dirty);
    out->suspect = c->n_suspect;
  }
  out->failed = atomic_load (&c->failed) != 0;
  out->read_hits = atomic_load (&c->read_hits);
  out->read_misses = atomic_load (&c->read_misses);
  out->fills = atomic_load (&c->fills);
  out->fill_bytes = atomic_load (&c->fill_bytes);
  out->fill_errors = atomic_load (&c->fill_errors);
  out->evictions = atomic_load (&c->evictions);
  out->bypass_reads = atomic_load (&c->bypass_reads);
  out->refused_writes = atomic_load (&c->refused_writes);
  cache_budget_fill_stats (c, out);
}
