/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* test-cache: the chunk cache's state machine (common/cache.h), driven
 * directly with a fake published image, so that races can be forced.
 *
 * What must hold, because every byte an NBD client reads or writes goes
 * through it:
 *  - a chunk the image lists is fetched once however many readers want
 *    it at once, and reads return its bytes; a chunk it does not list
 *    reads as zeros without a fetch;
 *  - a prefetch of a range fills its listed chunks in runs, each chunk
 *    once, skips the ones resident or not listed, and a chunk that
 *    fails in a run stays missing while the others of the run are kept;
 *  - a write racing a fill of the same chunk is never lost;
 *  - a publish sees one point in time: a chunk rewritten while it runs
 *    is published with its old bytes and stays dirty;
 *  - a reset racing readers and fills never leaves a chunk RESIDENT over
 *    a hole: every read returns the image's bytes, before and after;
 *  - a fast zero never fetches: not for a partial zero, nor for a chunk
 *    a publish has frozen (ENOTSUP instead);
 *  - after a failed fdatasync every later write and flush fails, even
 *    once fdatasync works again, until the cache is reopened; reopening
 *    syncs cache.raw and drops its page cache, and keeps the dirty
 *    chunks of the last good flush;
 *  - crash ordering: a flush syncs cache.raw before it writes cache.meta's
 *    dirty pages, then syncs cache.meta; a reset writes and syncs the
 *    cleared bitmaps before it punches cache.raw; a new cache directory
 *    is synced into its parents, and its files into it;
 *  - under a budget, eviction racing lock-free reads never lets a read
 *    return punched zeros, and racing writes never loses one: a dirty
 *    chunk is never evicted; the bytes counted are exactly those of the
 *    resident chunks after any mix of operations, within the limits, and
 *    what cache.raw allocates; a budget full of dirty chunks refuses a
 *    write to a new chunk with ENOSPC, skips a trim, and still serves
 *    reads (without keeping them); caches share one budget, and a
 *    cache's own limit (kept in cache.limit) binds it alone; at open a
 *    cache over its budget evicts its clean chunks down to it (dirty ones
 *    stay), and what a crash or an eviction left in cache.raw is never
 *    resident again.
 *
 * fdatasync, fsync, pwrite, fallocate and posix_fadvise are wrapped at link time
 * (-Wl,--wrap), to inject a write-back error and to record the order in
 * which the cache's files are synced, written and punched.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <endian.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cache.h"
#include "err.h"
#include "util.h"

#define CS 65536                /* chunk size */
#define CHUNKS 256
#define SIZE ((uint64_t) CS * CHUNKS)

static int failures;

#define CHECK(cond) check ((cond), #cond, __LINE__)

static bool
check (bool ok, const char *what, int line)
{
  if (!ok) {
    fprintf (stderr, "test-cache.c:%d: FAIL: %s (last error: %s)\n", line,
             what, err_msg ());
    failures++;
  }
  return ok;
}

/* Wrapped system calls. */

int __real_fdatasync (int fd);
ssize_t __real_pread (int fd, void *buf, size_t n, off_t off);
int __real_fsync (int fd);
ssize_t __real_pwrite (int fd, const void *buf, size_t n, off_t off);
int __real_fallocate (int fd, int mode, off_t off, off_t len);
int __real_posix_fadvise (int fd, off_t off, off_t len, int advice);

static const char *_Atomic fail_sync;   /* fdatasync of this file: EIO */
static _Atomic unsigned pread_delay_us; /* before each pread of cache.raw */
static _Atomic bool recording;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char oplog[4096];                /* "sync raw, write meta, ..." */

/* The base name of the file FD is open on. */
static const char *
fd_name (int fd, char buf[PATH_MAX])
{
  char link[64];
  ssize_t n;

  snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
  n = readlink (link, buf, PATH_MAX - 1);
  buf[n > 0 ? n : 0] = '\0';
  return strrchr (buf, '/') ? strrchr (buf, '/') + 1 : buf;
}

static void
record (const char *op, int fd)
{
  char buf[PATH_MAX];

  if (!atomic_load (&recording))
    return;
  pthread_mutex_lock (&log_lock);
  snprintf (oplog + strlen (oplog), sizeof oplog - strlen (oplog), "%s%s %s",
            oplog[0] ? ", " : "", op, fd_name (fd, buf));
  pthread_mutex_unlock (&log_lock);
}

static void
record_start (void)
{
  oplog[0] = '\0';
  atomic_store (&recording, true);
}

static void
record_stop (void)
{
  atomic_store (&recording, false);
}

int
__wrap_fdatasync (int fd)
{
  char buf[PATH_MAX];

  record ("sync", fd);
  if (atomic_load (&fail_sync) &&
      strcmp (fd_name (fd, buf), atomic_load (&fail_sync)) == 0) {
    errno = EIO;
    return -1;
  }
  return __real_fdatasync (fd);
}

int
__wrap_fsync (int fd)
{
  record ("fsync", fd);
  return __real_fsync (fd);
}

ssize_t
__wrap_pread (int fd, void *buf, size_t n, off_t off)
{
  char name[PATH_MAX];

  if (atomic_load (&pread_delay_us) &&
      strcmp (fd_name (fd, name), "cache.raw") == 0)
    usleep (atomic_load (&pread_delay_us));
  return __real_pread (fd, buf, n, off);
}

ssize_t
__wrap_pwrite (int fd, const void *buf, size_t n, off_t off)
{
  record ("write", fd);
  return __real_pwrite (fd, buf, n, off);
}

int
__wrap_fallocate (int fd, int mode, off_t off, off_t len)
{
  record (mode & FALLOC_FL_PUNCH_HOLE ? "punch" : "zero", fd);
  return __real_fallocate (fd, mode, off, len);
}

int
__wrap_posix_fadvise (int fd, off_t off, off_t len, int advice)
{
  record (advice == POSIX_FADV_DONTNEED ? "dontneed" : "fadvise", fd);
  return __real_posix_fadvise (fd, off, len, advice);
}

/* The fake published image: every chunk but each fourth is listed, and
 * byte I of chunk C is PATTERN (C, I), never zero.
 */
static _Atomic unsigned fetches[CHUNKS];
static _Atomic unsigned fetch_delay_us;

static unsigned char
pattern (uint64_t chunk, uint32_t i)
{
  return (chunk * 31 + i / 512) % 255 + 1;
}

static bool
listed (uint64_t chunk)
{
  return chunk % 4 != 3;
}

static bool
fake_has (void *opaque, uint64_t chunk)
{
  return listed (chunk);
}

static int
fake_fetch (void *opaque, uint64_t chunk, void *buf, uint32_t len)
{
  unsigned delay = atomic_load (&fetch_delay_us);

  if (delay)
    usleep (delay);
  for (uint32_t i = 0; i < len; i++)
    ((unsigned char *) buf)[i] = pattern (chunk, i);
  atomic_fetch_add (&fetches[chunk], 1);
  return 0;
}

/* A fetch of chunk CHUNK fails while this is CHUNK + 1 (0: none). */
static _Atomic uint64_t fail_fetch;

/* A source's fetch_run: each chunk fetched alone with FETCH and handed
 * over in two pieces, as a network would split it.
 */
static int
run_via (int (*fetch) (void *, uint64_t, void *, uint32_t), uint64_t chunk,
         uint64_t n, const struct cache_run_sink *sink, void *run)
{
  static __thread unsigned char buf[CS];
  int r = 0;

  for (uint64_t i = chunk; i < chunk + n; i++) {
    bool ok = atomic_load (&fail_fetch) != i + 1;

    if (!ok)
      err_set (EIO, "chunk %ju: refused", (uintmax_t) i);
    ok = ok && fetch (NULL, i, buf, CS) == 0 &&
      sink->data (run, i, 0, buf, CS / 3) == 0 &&
      sink->data (run, i, CS / 3, buf + CS / 3, CS - CS / 3) == 0;
    sink->done (run, i, ok);
    if (!ok)
      r = -1;
  }
  return r;
}

static int
fake_fetch_run (void *opaque, uint64_t chunk, uint64_t n,
                const struct cache_run_sink *sink, void *run)
{
  return run_via (fake_fetch, chunk, n, sink, run);
}

static const struct cache_source source = {
  fake_has, fake_fetch, fake_fetch_run, NULL
};

/* A base naming snapshot SNAPSHOT_ID (a static: one at a time). */
static const struct meta_base *
base (const char *snapshot_id)
{
  static struct meta_base b;

  memset (&b, 0, sizeof b);
  snprintf (b.snapshot_id, sizeof b.snapshot_id, "%s", snapshot_id);
  return &b;
}
static char dir[] = "/tmp/test-cache.XXXXXX";
static struct cache_budget *unlimited;  /* the budget of most tests */

static struct cache *
open_cache (void)
{
  struct cache *c = cache_open (dir, SIZE, CS, base (""), CACHE_CREATE,
                                &source, unlimited);

  if (c == NULL) {
    fprintf (stderr, "test-cache: cache_open: %s\n", err_msg ());
    exit (EXIT_FAILURE);
  }
  return c;
}

static void
reset_fetches (void)
{
  for (int i = 0; i < CHUNKS; i++)
    atomic_store (&fetches[i], 0);
}

/* Do LEN bytes at OFF of chunk CHUNK read as the image's bytes? */
static bool
reads_image (struct cache *c, uint64_t chunk, uint32_t off, uint32_t len)
{
  unsigned char buf[CS];

  if (cache_pread (c, buf, len, chunk * CS + off) == -1)
    return false;
  for (uint32_t i = 0; i < len; i++)
    if (buf[i] != (listed (chunk) ? pattern (chunk, off + i) : 0))
      return false;
  return true;
}

struct reader {
  struct cache *c;
  uint64_t chunk;
  uint64_t chunks;              /* read_randomly: chunks below (0: all) */
  unsigned seed;
  _Atomic bool *stop;
  bool ok;
};

/* Read bytes [30000, 35000) of one chunk (writers stay below). */
static void *
read_one (void *arg)
{
  struct reader *r = arg;

  r->ok = reads_image (r->c, r->chunk, 30000, 5000);
  return NULL;
}

static void
test_fill_once (void)
{
  struct cache *c = open_cache ();
  struct reader r[8];
  pthread_t th[8];

  reset_fetches ();
  atomic_store (&fetch_delay_us, 20000);
  for (int i = 0; i < 8; i++) {
    r[i] = (struct reader) { .c = c, .chunk = 5 };
    pthread_create (&th[i], NULL, read_one, &r[i]);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join (th[i], NULL);
    CHECK (r[i].ok);
  }
  atomic_store (&fetch_delay_us, 0);
  CHECK (atomic_load (&fetches[5]) == 1);
  CHECK (cache_is_resident (c, 5));
  CHECK (reads_image (c, 3, 0, CS));            /* not listed: zeros */
  CHECK (atomic_load (&fetches[3]) == 0);
  CHECK (cache_close (c) == 0);
}

/* Prefetch in runs: [102, 140) holds listed runs of three between
 * unlisted chunks, and chunk 109 is resident already; then a run with a
 * failure.  (Chunks no other test uses: the cache is reopened as it was.)
 */
static void
test_prefetch_runs (void)
{
  struct cache *c = open_cache ();

  reset_fetches ();
  CHECK (reads_image (c, 109, 0, CS));
  CHECK (cache_prefetch (c, 102, 38, false) == 0);
  for (uint64_t chunk = 100; chunk < 144; chunk++) {
    bool want = (chunk >= 102 && chunk < 140 && listed (chunk)) ||
      chunk == 109;

    CHECK (cache_is_resident (c, chunk) == want);
    CHECK (atomic_load (&fetches[chunk]) == want);
    CHECK (reads_image (c, chunk, 0, CS));
  }
  CHECK (cache_close (c) == 0);

  c = open_cache ();
  reset_fetches ();
  atomic_store (&fail_fetch, 150 + 1);
  CHECK (cache_prefetch (c, 148, 4, false) == -1 &&
         strstr (err_msg (), "chunk 150: refused") != NULL);
  atomic_store (&fail_fetch, 0);
  CHECK (cache_is_resident (c, 148) && cache_is_resident (c, 149));
  CHECK (!cache_is_resident (c, 150) && atomic_load (&fetches[150]) == 0);
  CHECK (reads_image (c, 150, 0, CS) && atomic_load (&fetches[150]) == 1);
  CHECK (cache_close (c) == 0);
}

struct writer {
  struct cache *c;
  uint64_t chunk;
  bool ok;
};

static void *
write_one (void *arg)
{
  struct writer *w = arg;
  unsigned char data[100];

  memset (data, 0xee, sizeof data);
  w->ok = cache_pwrite (w->c, data, sizeof data, w->chunk * CS + 1000,
                        false) == 0;
  return NULL;
}

static void
test_write_races_fill (void)
{
  struct cache *c = open_cache ();

  CHECK (cache_reset (c, base (""), SIZE) == 0);
  atomic_store (&fetch_delay_us, 5000);
  for (uint64_t chunk = 16; chunk < 32; chunk++) {
    struct reader r = { .c = c, .chunk = chunk };
    struct writer w = { .c = c, .chunk = chunk };
    pthread_t rt, wt;
    unsigned char buf[CS];
    bool merged = true;

    /* Alternate who starts first. */
    if (chunk % 2) {
      pthread_create (&rt, NULL, read_one, &r);
      pthread_create (&wt, NULL, write_one, &w);
    }
    else {
      pthread_create (&wt, NULL, write_one, &w);
      pthread_create (&rt, NULL, read_one, &r);
    }
    pthread_join (rt, NULL);
    pthread_join (wt, NULL);
    CHECK (w.ok);
    CHECK (cache_pread (c, buf, CS, chunk * CS) == 0);
    for (uint32_t i = 0; i < CS; i++)
      merged &= buf[i] == (i >= 1000 && i < 1100 ? 0xee
                           : listed (chunk) ? pattern (chunk, i) : 0);
    CHECK (merged);
  }
  atomic_store (&fetch_delay_us, 0);
  CHECK (cache_close (c) == 0);
}

static void
fill_chunk (struct cache *c, uint64_t chunk, unsigned char byte)
{
  static unsigned char data[CS];

  memset (data, byte, CS);
  CHECK (cache_pwrite (c, data, CS, chunk * CS, false) == 0);
}

static bool
chunk_is (struct cache *c, uint64_t chunk, unsigned char byte)
{
  unsigned char buf[CS];

  if (cache_pread (c, buf, CS, chunk * CS) == -1)
    return false;
  for (uint32_t i = 0; i < CS; i++)
    if (buf[i] != byte)
      return false;
  return true;
}

static void
test_freeze (void)
{
  struct cache *c = open_cache ();
  struct cache_stats st;
  unsigned char buf[CS];
  uint64_t chunk;

  CHECK (cache_reset (c, base (""), SIZE) == 0);
  fill_chunk (c, 7, 0xaa);
  CHECK (cache_publish_begin (c, NULL) == 1);
  fill_chunk (c, 7, 0xbb);                      /* staged first */
  CHECK (cache_publish_next (c, 0, &chunk) && chunk == 7);
  CHECK (cache_publish_read (c, 7, buf) == 1);
  CHECK (buf[0] == 0xaa && buf[CS - 1] == 0xaa);
  CHECK (!cache_publish_next (c, 8, &chunk));
  CHECK (cache_publish_end (c, true, base ("s1")) == 0);
  cache_get_stats (c, &st);
  CHECK (st.dirty == 1);                        /* rewritten: stays dirty */
  CHECK (chunk_is (c, 7, 0xbb));
  CHECK (cache_publish_begin (c, NULL) == 1);
  CHECK (cache_publish_read (c, 7, buf) == 1 && buf[0] == 0xbb);
  CHECK (cache_publish_end (c, true, base ("s2")) == 0);
  cache_get_stats (c, &st);
  CHECK (st.dirty == 0);
  CHECK (cache_close (c) == 0);
}

static void
test_fast_zero (void)
{
  struct cache *c = open_cache ();
  uint64_t extra[CHUNKS / 64] = { 0 };

  CHECK (cache_reset (c, base (""), SIZE) == 0);
  reset_fetches ();
  extra[0] = UINT64_C (1) << 9;                 /* a compact freezes 9 */
  CHECK (cache_publish_begin (c, extra) == 1);
  CHECK (cache_zero (c, CS, 9 * CS, CACHE_ZERO_FAST, false) == -1 &&
         err_errno () == ENOTSUP);
  CHECK (atomic_load (&fetches[9]) == 0);
  CHECK (cache_zero (c, 512, 10 * CS, CACHE_ZERO_FAST, false) == -1 &&
         err_errno () == ENOTSUP);              /* partial: would fetch */
  CHECK (cache_zero (c, CS, 10 * CS, CACHE_ZERO_FAST, false) == 0);
  CHECK (atomic_load (&fetches[10]) == 0);
  CHECK (chunk_is (c, 10, 0));
  CHECK (cache_publish_end (c, false, NULL) == 0);
  CHECK (cache_close (c) == 0);
}

static void *
read_randomly (void *arg)
{
  struct reader *r = arg;

  r->ok = true;
  while (!atomic_load (r->stop)) {
    uint64_t chunk = rand_r (&r->seed) % (r->chunks ? r->chunks : CHUNKS);
    uint32_t off = rand_r (&r->seed) % (CS - 4096);

    if (!reads_image (r->c, chunk, off, 4096)) {
      r->ok = false;
      break;
    }
  }
  return NULL;
}

static void
test_reset_races_readers (void)
{
  struct cache *c = open_cache ();
  _Atomic bool stop = false;
  struct reader r[4];
  pthread_t th[4];

  CHECK (cache_reset (c, base (""), SIZE) == 0);
  /* Slow reads of cache.raw: a reader is inside one when a reset comes,
   * which must wait for it (the pins) before it punches.
   */
  atomic_store (&pread_delay_us, 300);
  for (int i = 0; i < 4; i++) {
    r[i] = (struct reader) { .c = c, .seed = 7 + i, .stop = &stop };
    pthread_create (&th[i], NULL, read_randomly, &r[i]);
  }
  for (int round = 0; round < 300; round++) {
    usleep (2000);
    if (!CHECK (cache_reset (c, base (""), SIZE) == 0))
      break;
  }
  atomic_store (&stop, true);
  for (int i = 0; i < 4; i++) {
    pthread_join (th[i], NULL);
    CHECK (r[i].ok);
  }
  atomic_store (&pread_delay_us, 0);
  for (uint64_t chunk = 0; chunk < CHUNKS; chunk++)
    if (!CHECK (reads_image (c, chunk, 0, CS)))
      break;
  CHECK (cache_close (c) == 0);
}

static void
test_fail_stop (void)
{
  struct cache *c = open_cache ();
  struct cache_stats st;

  CHECK (cache_reset (c, base (""), SIZE) == 0);
  fill_chunk (c, 1, 0x11);
  fill_chunk (c, 6, 0x66);
  CHECK (cache_flush (c) == 0);
  atomic_store (&fail_sync, "cache.raw");
  fill_chunk (c, 2, 0x22);
  CHECK (cache_pwrite (c, "y", 1, 6 * CS + 9, false) == 0);
  CHECK (cache_flush (c) == -1);
  atomic_store (&fail_sync, NULL);
  /* fdatasync works again; the cache does not believe it. */
  CHECK (cache_flush (c) == -1);
  CHECK (cache_pwrite (c, "x", 1, 5 * CS, false) == -1);
  CHECK (cache_publish_begin (c, NULL) == -1);
  cache_get_stats (c, &st);
  CHECK (st.failed);
  CHECK (chunk_is (c, 1, 0x11));                /* reads go on */
  CHECK (cache_close (c) == 0);                 /* the way out */

  record_start ();
  c = open_cache ();
  record_stop ();
  CHECK (strstr (oplog, "sync cache.raw, dontneed cache.raw") != NULL);
  cache_get_stats (c, &st);
  CHECK (!st.failed);
  CHECK (st.dirty == 2);                        /* as of the good flush */
  CHECK (st.suspect == 1);      /* chunk 6, written since: maybe torn */
  CHECK (chunk_is (c, 1, 0x11));
  CHECK (reads_image (c, 2, 0, CS));            /* the image again */
  fill_chunk (c, 2, 0x22);
  CHECK (cache_flush (c) == 0);
  CHECK (cache_publish_begin (c, NULL) == 3);
  CHECK (cache_publish_end (c, true, base ("s3")) == 0);
  cache_get_stats (c, &st);
  CHECK (st.suspect == 0);                      /* published: forgotten */
  CHECK (cache_close (c) == 0);
}

static void
test_fail_stop_meta (void)
{
  struct cache *c = open_cache ();
  struct cache_stats st;

  CHECK (cache_reset (c, base (""), SIZE) == 0);
  fill_chunk (c, 3, 0x33);
  CHECK (cache_flush (c) == 0);
  fill_chunk (c, 4, 0x44);
  atomic_store (&fail_sync, "cache.meta");
  CHECK (cache_flush (c) == -1);                /* the dirty bits' sync */
  atomic_store (&fail_sync, NULL);
  CHECK (cache_flush (c) == -1);
  CHECK (cache_close (c) == 0);

  record_start ();
  c = open_cache ();
  /* cache.meta is read from the disk, and its first flush rewrites the
   * dirty bitmap whole, with no write since.
   */
  CHECK (cache_flush (c) == 0);
  record_stop ();
  if (!CHECK (strstr (oplog, "sync cache.meta, dontneed cache.meta") != NULL &&
              strstr (oplog, "sync cache.raw, write cache.meta") != NULL))
    fprintf (stderr, "reopen and flush did: %s\n", oplog);
  cache_get_stats (c, &st);
  CHECK (!st.failed);
  CHECK (chunk_is (c, 3, 0x33));
  CHECK (cache_close (c) == 0);
}

static void
test_crash_order (void)
{
  struct cache *c = open_cache ();

  fill_chunk (c, 40, 0x40);
  record_start ();
  CHECK (cache_flush (c) == 0);
  record_stop ();
  if (!CHECK (strcmp (oplog, "sync cache.raw, write cache.meta, "
                      "sync cache.meta") == 0))
    fprintf (stderr, "flush did: %s\n", oplog);

  record_start ();
  CHECK (cache_reset (c, base (""), SIZE) == 0);
  record_stop ();
  /* The bitmaps (and header) are written and synced, then the punch,
   * and nothing after it.
   */
  if (!CHECK (strstr (oplog, "write cache.meta") != NULL &&
              strstr (oplog, "sync cache.meta, punch cache.raw") != NULL &&
              strstr (oplog, "punch cache.raw") > strstr (oplog,
                                                          "write cache.meta") &&
              strstr (strstr (oplog, "punch cache.raw"), "cache.meta") == NULL))
    fprintf (stderr, "reset did: %s\n", oplog);
  CHECK (cache_close (c) == 0);
}

static void
test_new_dirs (void)
{
  char sub[sizeof dir + 16];
  struct cache *c;

  snprintf (sub, sizeof sub, "%s/a/b", dir);
  record_start ();
  c = cache_open (sub, SIZE, CS, base (""), CACHE_CREATE, &source,
                  unlimited);
  record_stop ();
  CHECK (c != NULL);
  /* Each new directory is synced into its parent: a crash after create
   * must not lose the cache a flush promised durable.
   */
  if (!CHECK (strstr (oplog, "fsync a") != NULL &&
              strstr (oplog, "fsync test-cache.") != NULL &&
              strstr (oplog, "fsync b") != NULL))
    fprintf (stderr, "cache_open did: %s\n", oplog);
  if (c)
    CHECK (cache_close (c) == 0);
}

static struct cache *
open_at (const char *snapshot_id)
{
  return cache_open (dir, SIZE, CS, base (snapshot_id), CACHE_CREATE,
                     &source, unlimited);
}

/* Rewrite cache.meta's header as version 1 wrote it: no base generation
 * or epoch.
 */
static void
make_version_1 (void)
{
  char path[sizeof dir + 16];
  unsigned char h[512];
  uint32_t one = htole32 (1);
  int fd;

  snprintf (path, sizeof path, "%s/cache.meta", dir);
  fd = open (path, O_RDWR);
  CHECK (fd >= 0 && pread (fd, h, sizeof h, 0) == sizeof h);
  memcpy (h + 8, &one, 4);
  memset (h + 80, 0, 24);
  EVP_Digest (h, 104, h + 104, NULL, EVP_sha256 (), NULL);
  CHECK (pwrite (fd, h, sizeof h, 0) == sizeof h);
  close (fd);
}

/* Dirty chunks over a base the head has moved past are kept and read,
 * but neither written to nor published, until a reset; a version 1
 * header is read the same way.
 */
static void
test_stale (void)
{
  struct cache *c = open_cache ();
  struct meta_base b;
  struct cache_stats st;

  CHECK (cache_reset (c, base ("s1"), SIZE) == 0);
  fill_chunk (c, 3, 0x33);
  CHECK (cache_close (c) == 0);
  for (int v1 = 0; v1 <= 1; v1++) {
    if (v1)
      make_version_1 ();
    c = open_at ("s2");
    if (!CHECK (c != NULL))
      return;
    CHECK (cache_stale (c, &b) && strcmp (b.snapshot_id, "s1") == 0);
    CHECK (chunk_is (c, 3, 0x33));
    CHECK (cache_pwrite (c, "x", 1, 0, false) == -1 && err_errno () == EROFS);
    CHECK (cache_zero (c, CS, 0, 0, false) == -1 && err_errno () == EROFS);
    CHECK (cache_publish_begin (c, NULL) == -1 && err_errno () == EROFS);
    CHECK (cache_close (c) == 0);
  }
  c = open_at ("s1");                           /* the base is the head */
  CHECK (c && !cache_stale (c, &b));
  fill_chunk (c, 4, 0x44);
  CHECK (chunk_is (c, 3, 0x33));
  CHECK (cache_close (c) == 0);
  c = open_at ("s2");
  CHECK (c && cache_stale (c, &b));
  CHECK (cache_reset (c, base ("s2"), SIZE) == 0);
  cache_get_stats (c, &st);
  CHECK (!cache_stale (c, &b) && st.dirty == 0);
  fill_chunk (c, 3, 0x55);
  CHECK (cache_close (c) == 0);
}


/* Budgets.  Evicted chunks are fetched again, so these tests read
 * through a published image that a publish updates, as a real one does:
 * every chunk is listed, the fake image's bytes at first.
 */
static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *pub_image;

static bool
pub_has (void *opaque, uint64_t chunk)
{
  return true;
}

static int
pub_fetch (void *opaque, uint64_t chunk, void *buf, uint32_t len)
{
  pthread_mutex_lock (&pub_lock);
  memcpy (buf, pub_image + chunk * CS, len);
  pthread_mutex_unlock (&pub_lock);
  atomic_fetch_add (&fetches[chunk], 1);
  return 0;
}

static int
pub_fetch_run (void *opaque, uint64_t chunk, uint64_t n,
               const struct cache_run_sink *sink, void *run)
{
  return run_via (pub_fetch, chunk, n, sink, run);
}

static const struct cache_source pub_source = {
  pub_has, pub_fetch, pub_fetch_run, NULL
};

/* Make the published image the fake image again, for a new test. */
static void
pub_reset (void)
{
  pthread_mutex_lock (&pub_lock);
  for (uint64_t k = 0; k < CHUNKS; k++)
    for (uint32_t j = 0; j < CS; j++)
      pub_image[k * CS + j] = listed (k) ? pattern (k, j) : 0;
  pthread_mutex_unlock (&pub_lock);
}

/* Copy the published image into EXPECT (SIZE bytes). */
static void
pub_copy (unsigned char *expect)
{
  pthread_mutex_lock (&pub_lock);
  memcpy (expect, pub_image, SIZE);
  pthread_mutex_unlock (&pub_lock);
}

/* A cache in directory DIR/NAME with BUDGET, reading pub_image. */
static struct cache *
open_in (const char *name, struct cache_budget *budget)
{
  char sub[sizeof dir + 32];
  struct cache *c;

  snprintf (sub, sizeof sub, "%s/%s", dir, name);
  c = cache_open (sub, SIZE, CS, base (""), CACHE_CREATE, &pub_source,
                  budget);
  if (c == NULL) {
    fprintf (stderr, "test-cache: cache_open %s: %s\n", sub, err_msg ());
    exit (EXIT_FAILURE);
  }
  return c;
}

/* The bytes cache.raw of DIR/NAME allocates. */
static uint64_t
allocated (const char *name)
{
  char path[sizeof dir + 64];
  struct stat st;

  snprintf (path, sizeof path, "%s/%s/cache.raw", dir, name);
  if (stat (path, &st) == -1)
    return UINT64_MAX;
  return (uint64_t) st.st_blocks * 512;
}

/* Is C's accounting exact while nothing is in flight: the bytes counted
 * are its resident chunks' (all whole), cache.raw of DIR/NAME allocates
 * no more (but the file system's own blocks for its extents), and they
 * are within LIMIT (in chunks) unless dirty ones are over it?
 */
static bool
accounting_exact (struct cache *c, const char *name, uint64_t limit)
{
  struct cache_stats st;

  cache_get_stats (c, &st);
  if (st.used_bytes == st.resident * CS &&
      allocated (name) <= st.used_bytes + 16384 &&
      (st.used_bytes <= limit * CS || st.dirty > limit))
    return true;
  fprintf (stderr, "test-cache: %s: used %ju, resident %ju, dirty %ju, "
           "allocated %ju, limit %ju chunks\n", name,
           (uintmax_t) st.used_bytes, (uintmax_t) st.resident,
           (uintmax_t) st.dirty, (uintmax_t) allocated (name),
           (uintmax_t) limit);
  return false;
}

/* Publish every dirty chunk of C into pub_image as snapshot SNAP: the
 * image changes before the chunks become clean, as a publish's manifest
 * does.
 */
static bool
publish_all (struct cache *c, const char *snap)
{
  CLEANUP_FREE unsigned char *bytes = malloc (SIZE);
  CLEANUP_FREE uint64_t *chunks = malloc (CHUNKS * sizeof *chunks);
  uint64_t chunk, n = 0;

  if (cache_publish_begin (c, NULL) == -1)
    return false;
  for (uint64_t from = 0; cache_publish_next (c, from, &chunk);
       from = chunk + 1) {
    int r = cache_publish_read (c, chunk, bytes + n * CS);

    if (r == -1)
      return false;
    if (r == 1)
      chunks[n++] = chunk;
  }
  pthread_mutex_lock (&pub_lock);
  for (uint64_t i = 0; i < n; i++)
    memcpy (pub_image + chunks[i] * CS, bytes + i * CS, CS);
  pthread_mutex_unlock (&pub_lock);
  return cache_publish_end (c, true, base (snap)) == 0;
}

/* cache_extent_fn: count the bytes reported as holes in *OPAQUE. */
static int
count_holes (void *opaque, uint64_t offset, uint64_t length, unsigned type)
{
  if (type == CACHE_EXTENT_HOLE)
    *(uint64_t *) opaque += length;
  return 0;
}

/* Ask for the extents of random listed chunks: none has a hole. */
static void *
extents_randomly (void *arg)
{
  struct reader *r = arg;

  r->ok = true;
  while (!atomic_load (r->stop)) {
    uint64_t chunk = rand_r (&r->seed) % CHUNKS, holes = 0;

    if (listed (chunk) &&
        (cache_extents (r->c, CS, chunk * CS, count_holes, &holes) == -1 ||
         holes > 0)) {
      r->ok = false;
      break;
    }
  }
  return NULL;
}

struct limiter {
  struct cache *c;
  _Atomic bool *stop;
  unsigned rounds;
};

/* Shrink C's own limit to 2 chunks and let it grow again, repeatedly: an
 * eviction of whatever is resident, racing the readers.
 */
static void *
limit_toggle (void *arg)
{
  struct limiter *l = arg;

  while (!atomic_load (l->stop)) {
    CHECK (cache_set_max_size (l->c, 2 * CS) == 0);
    CHECK (cache_set_max_size (l->c, CACHE_NO_LIMIT) == 0);
    l->rounds++;
  }
  return NULL;
}

/* Readers of a few hot chunks, which are resident most of the time, and
 * of all of them, which keeps a budget of 16 chunks evicting, a reader
 * of extents, and a thread that evicts the lot now and then: every read
 * returns the image's bytes (never zeros: listed chunks have no zero
 * byte), and no listed chunk has a hole.
 */
static void
test_evict_races_reads (void)
{
  struct cache_budget *b = cache_budget_new (16 * CS);
  struct cache *c = open_in ("evict-reads", b);
  _Atomic bool stop = false;
  struct limiter l = { .c = c, .stop = &stop };
  struct reader r[5];
  pthread_t th[5], lt;
  struct cache_stats st;

  pub_reset ();
  atomic_store (&pread_delay_us, 100);
  for (int i = 0; i < 5; i++) {
    r[i] = (struct reader) { .c = c, .seed = 11 + i, .stop = &stop,
                             .chunks = i < 3 ? 8 : 0 };
    pthread_create (&th[i], NULL, i < 4 ? read_randomly : extents_randomly,
                    &r[i]);
  }
  pthread_create (&lt, NULL, limit_toggle, &l);
  usleep (1500000);
  atomic_store (&stop, true);
  pthread_join (lt, NULL);
  for (int i = 0; i < 5; i++) {
    pthread_join (th[i], NULL);
    CHECK (r[i].ok);
  }
  atomic_store (&pread_delay_us, 0);
  cache_get_stats (c, &st);
  CHECK (st.evictions > 0 && st.budget.evictions == st.evictions);
  CHECK (l.rounds > 0);
  CHECK (accounting_exact (c, "evict-reads", 16));
  for (uint64_t chunk = 0; chunk < CHUNKS; chunk += 7)
    CHECK (reads_image (c, chunk, 0, CS));
  CHECK (cache_close (c) == 0);
  cache_budget_free (b);
}

/* The bytes a writer expects in its chunks. */
struct writer_set {
  struct cache *c;
  uint64_t first;               /* its 8 chunks */
  unsigned seed;
  _Atomic bool *stop;
  unsigned char *expect;        /* 8 chunks */
  bool ok;
  unsigned writes;
};

/* Write 100 bytes at random places of the writer's chunks, remembering
 * them; a write that finds no room may fail, and then changes nothing.
 */
static void *
write_randomly (void *arg)
{
  struct writer_set *w = arg;

  w->ok = true;
  while (!atomic_load (w->stop)) {
    unsigned k = rand_r (&w->seed) % 8;
    uint32_t off = rand_r (&w->seed) % (CS - 100);
    unsigned char data[100];

    memset (data, rand_r (&w->seed) % 255 + 1, sizeof data);
    if (cache_pwrite (w->c, data, sizeof data, (w->first + k) * CS + off,
                      false) == 0) {
      memcpy (w->expect + k * CS + off, data, sizeof data);
      w->writes++;
    }
    else if (err_errno () != ENOSPC) {
      w->ok = false;
      break;
    }
  }
  return NULL;
}

/* Writers of chunks that publishes keep making clean (so that they can
 * be evicted between writes), readers of the other chunks keeping the
 * budget evicting: no write is lost (a dirty chunk is never evicted, and
 * a write racing the eviction of its chunk lands in it or keeps it).
 */
static void
test_evict_races_writes (void)
{
  struct cache_budget *b = cache_budget_new (24 * CS);
  struct cache *c = open_in ("evict-writes", b);
  _Atomic bool stop = false;
  struct writer_set w[2];
  struct reader r[3];
  pthread_t wt[2], rt[3];
  char snap[16];

  pub_reset ();
  for (int i = 0; i < 2; i++) {
    w[i] = (struct writer_set) { .c = c, .first = 128 + 8 * i, .seed = 5 + i,
                                 .stop = &stop, .expect = malloc (8 * CS) };
    memcpy (w[i].expect, pub_image + w[i].first * CS, 8 * CS);
    pthread_create (&wt[i], NULL, write_randomly, &w[i]);
  }
  for (int i = 0; i < 3; i++) {
    r[i] = (struct reader) { .c = c, .seed = 21 + i, .stop = &stop,
                             .chunks = 128 };
    pthread_create (&rt[i], NULL, read_randomly, &r[i]);
  }
  for (int round = 0; round < 60; round++) {
    usleep (20000);
    snprintf (snap, sizeof snap, "w%d", round);
    if (!CHECK (publish_all (c, snap)))
      break;
  }
  atomic_store (&stop, true);
  for (int i = 0; i < 3; i++) {
    pthread_join (rt[i], NULL);
    CHECK (r[i].ok);
  }
  for (int i = 0; i < 2; i++) {
    unsigned char buf[CS];

    pthread_join (wt[i], NULL);
    CHECK (w[i].ok && w[i].writes > 0);
    for (uint64_t k = 0; k < 8; k++)
      CHECK (cache_pread (c, buf, CS, (w[i].first + k) * CS) == 0 &&
             memcmp (buf, w[i].expect + k * CS, CS) == 0);
    free (w[i].expect);
  }
  CHECK (accounting_exact (c, "evict-writes", 24));
  CHECK (cache_close (c) == 0);
  cache_budget_free (b);
}

/* Random operations, one at a time, under a budget of 12 chunks and an
 * own limit that comes and goes: the data is what was written, and the
 * accounting is exact after every operation.
 */
static void
test_budget_accounting (void)
{
  struct cache_budget *b = cache_budget_new (12 * CS);
  struct cache *c = open_in ("accounting", b);
  unsigned char *expect = malloc (SIZE), buf[CS];
  unsigned seed = 3, limit = 12;
  bool ok = true;

  pub_reset ();
  pub_copy (expect);
  for (int i = 0; i < 3000 && ok; i++) {
    uint64_t chunk = rand_r (&seed) % 40;
    uint32_t off = rand_r (&seed) % (CS - 512);
    unsigned op = rand_r (&seed) % 100;
    char snap[16];

    if (op < 40) {
      ok = cache_pread (c, buf, CS, chunk * CS) == 0 &&
        memcmp (buf, expect + chunk * CS, CS) == 0;
    }
    else if (op < 60 || op < 70) {
      unsigned char data[512];
      bool zero = op >= 60;
      int r;

      memset (data, zero ? 0 : rand_r (&seed) % 255 + 1, sizeof data);
      r = zero ? cache_zero (c, sizeof data, chunk * CS + off, 0, false)
        : cache_pwrite (c, data, sizeof data, chunk * CS + off, false);
      if (r == 0)
        memcpy (expect + chunk * CS + off, data, sizeof data);
      else
        ok = err_errno () == ENOSPC;
    }
    else if (op < 85)
      ok = cache_prefetch (c, chunk, 1, op < 78) != -1;
    else if (op < 92) {
      snprintf (snap, sizeof snap, "a%d", i);
      ok = publish_all (c, snap);
    }
    else if (op < 94) {
      ok = cache_reset (c, base (""), SIZE) == 0;
      pub_copy (expect);
    }
    else {
      limit = limit == 12 ? 5 : 12;
      ok = cache_set_max_size (c, limit == 12 ? CACHE_NO_LIMIT
                               : limit * CS) == 0;
    }
    if (!CHECK (ok) || !CHECK (accounting_exact (c, "accounting", limit)))
      fprintf (stderr, "test-cache: operation %d (%u) on chunk %ju\n", i, op,
               (uintmax_t) chunk);
  }
  free (expect);
  CHECK (cache_close (c) == 0);
  cache_budget_free (b);          /* asserts that nothing is counted */
}

/* A budget full of dirty chunks: a write to a new chunk fails with
 * ENOSPC saying why, a trim of one is skipped, reads are served without
 * being kept, prefetches fetch nothing; a snapshot makes room.
 */
static void
test_budget_full_of_dirty (void)
{
  struct cache_budget *b = cache_budget_new (8 * CS);
  struct cache *c = open_in ("full", b);
  struct cache_stats st;

  pub_reset ();
  for (uint64_t chunk = 0; chunk < 8; chunk++)
    fill_chunk (c, chunk, 0x40 + chunk);
  CHECK (cache_pwrite (c, "x", 1, 9 * CS, false) == -1 &&
         err_errno () == ENOSPC &&
         strstr (err_msg (), "full of unpublished writes") != NULL);
  CHECK (cache_zero (c, CS, 10 * CS, CACHE_ZERO_TRIM | CACHE_ZERO_MAY_TRIM,
                     false) == 0);
  CHECK (!cache_is_resident (c, 10));
  reset_fetches ();
  CHECK (reads_image (c, 12, 0, CS) && reads_image (c, 12, 0, CS));
  CHECK (atomic_load (&fetches[12]) == 2 && !cache_is_resident (c, 12));
  CHECK (cache_prefetch (c, 13, 1, true) == 1 && !cache_is_resident (c, 13));
  cache_get_stats (c, &st);
  CHECK (st.full == CACHE_FULL_BUDGET);
  CHECK (st.refused_writes == 1 && st.bypass_reads == 2);
  CHECK (st.dirty_bytes == 8 * CS && st.budget.dirty_bytes == 8 * CS);
  for (uint64_t chunk = 0; chunk < 8; chunk++)
    CHECK (chunk_is (c, chunk, 0x40 + chunk));

  CHECK (publish_all (c, "f1"));
  cache_get_stats (c, &st);
  CHECK (st.full == CACHE_ROOM);
  CHECK (cache_pwrite (c, "x", 1, 9 * CS, false) == 0);
  CHECK (reads_image (c, 12, 0, CS) && cache_is_resident (c, 12));
  cache_get_stats (c, &st);
  CHECK (st.evictions == 2);
  CHECK (accounting_exact (c, "full", 8));
  CHECK (cache_close (c) == 0);
  cache_budget_free (b);
}

/* Chunks a publish made clean may still be dirty on disk until the next
 * flush: they are not evicted meanwhile, nor ever if that flush fails,
 * so the dirty chunks found at the next open still hold their bytes.
 */
static void
test_budget_unsynced (void)
{
  struct cache_budget *b = cache_budget_new (4 * CS);
  struct cache *c = open_in ("unsynced", b);
  unsigned char buf[CS];
  struct cache_stats st;
  uint64_t chunk;

  pub_reset ();
  for (chunk = 0; chunk < 4; chunk++)
    fill_chunk (c, chunk, 0x70 + chunk);
  CHECK (cache_flush (c) == 0);
  CHECK (cache_publish_begin (c, NULL) == 4);
  for (uint64_t from = 0; cache_publish_next (c, from, &chunk);
       from = chunk + 1)
    CHECK (cache_publish_read (c, chunk, buf) == 1);
  atomic_store (&fail_sync, "cache.raw");
  CHECK (cache_publish_end (c, true, base ("u1")) == -1);
  atomic_store (&fail_sync, NULL);
  CHECK (reads_image (c, 10, 0, CS) && !cache_is_resident (c, 10));
  cache_get_stats (c, &st);
  CHECK (st.dirty == 0 && st.evictions == 0 && st.bypass_reads == 1);
  CHECK (cache_close (c) == 0);
  cache_budget_free (b);

  c = open_in ("unsynced", unlimited);
  cache_get_stats (c, &st);
  CHECK (st.dirty == 4);
  for (chunk = 0; chunk < 4; chunk++)
    CHECK (chunk_is (c, chunk, 0x70 + chunk));
  CHECK (cache_close (c) == 0);
}

/* Two caches share one budget; a cache's own limit binds it alone, and
 * comes back at its next open.
 */
static void
test_budget_shared (void)
{
  struct cache_budget *b = cache_budget_new (8 * CS);
  struct cache *x = open_in ("shared-x", b), *y = open_in ("shared-y", b);
  struct cache_stats sx, sy;

  pub_reset ();
  for (uint64_t chunk = 0; chunk < 8; chunk++)
    CHECK (cache_prefetch (x, chunk, 1, true) == 0);
  for (uint64_t chunk = 0; chunk < 4; chunk++)
    CHECK (reads_image (y, chunk, 0, CS));
  cache_get_stats (x, &sx);
  cache_get_stats (y, &sy);
  CHECK (sy.resident == 4 && sx.resident == 4);
  CHECK (sx.budget.used_bytes == 8 * CS && sx.evictions == 4);

  CHECK (cache_set_max_size (y, CS - 1) == -1 && err_errno () == EINVAL);
  CHECK (cache_set_max_size (y, 2 * CS) == 0);
  cache_get_stats (y, &sy);
  CHECK (sy.resident == 2 && sy.max_bytes == 2 * CS);
  for (uint64_t chunk = 10; chunk < 20; chunk++)
    CHECK (reads_image (y, chunk, 0, CS));
  cache_get_stats (x, &sx);
  cache_get_stats (y, &sy);
  CHECK (sy.resident == 2 && sx.resident == 4);
  CHECK (cache_close (y) == 0);
  y = open_in ("shared-y", b);
  cache_get_stats (y, &sy);
  CHECK (sy.max_bytes == 2 * CS && sy.resident == 2);
  CHECK (cache_set_max_size (y, CACHE_NO_LIMIT) == 0);
  CHECK (cache_close (y) == 0);
  y = open_in ("shared-y", b);
  cache_get_stats (y, &sy);
  CHECK (sy.max_bytes == CACHE_NO_LIMIT);
  CHECK (cache_close (x) == 0);
  CHECK (cache_close (y) == 0);
  cache_budget_free (b);
}

/* Reopening over a smaller budget evicts clean chunks down to it and
 * keeps dirty ones over it; what eviction punched and what a crash left
 * in cache.raw never reads as resident again.
 */
static void
test_budget_restart (void)
{
  struct cache_budget *b = cache_budget_new (6 * CS);
  struct cache *c = open_in ("restart", unlimited);
  struct cache_stats st;
  pid_t pid;
  int status;

  pub_reset ();
  for (uint64_t chunk = 0; chunk < 16; chunk++)
    CHECK (cache_prefetch (c, chunk, 1, true) == 0);
  for (uint64_t chunk = 20; chunk < 23; chunk++)
    fill_chunk (c, chunk, 0x20 + chunk);
  CHECK (cache_close (c) == 0);

  c = open_in ("restart", b);
  cache_get_stats (c, &st);
  CHECK (st.resident == 6 && st.dirty == 3 && st.evictions == 13);
  CHECK (accounting_exact (c, "restart", 6));
  CHECK (cache_close (c) == 0);
  cache_budget_free (b);

  b = cache_budget_new (2 * CS);
  c = open_in ("restart", b);
  cache_get_stats (c, &st);
  CHECK (st.resident == 3 && st.dirty == 3);
  CHECK (st.full == CACHE_FULL_BUDGET);
  for (uint64_t chunk = 20; chunk < 23; chunk++)
    CHECK (chunk_is (c, chunk, 0x20 + chunk));
  CHECK (cache_close (c) == 0);
  cache_budget_free (b);

  /* A crash after filling chunks: they are dropped and punched out. */
  fflush (NULL);
  if ((pid = fork ()) == 0) {
    c = open_in ("restart", unlimited);
    for (uint64_t chunk = 30; chunk < 40; chunk++)
      cache_prefetch (c, chunk, 1, true);
    _exit (0);
  }
  CHECK (pid > 0 && waitpid (pid, &status, 0) == pid && status == 0);
  c = open_in ("restart", unlimited);
  cache_get_stats (c, &st);
  CHECK (st.resident == 3 && st.dirty == 3);
  CHECK (accounting_exact (c, "restart", CHUNKS));
  reset_fetches ();
  for (uint64_t chunk = 0; chunk < 40; chunk++)
    if (chunk < 20 || chunk >= 23)
      CHECK (reads_image (c, chunk, 0, CS));
  CHECK (atomic_load (&fetches[0]) == 1);       /* evicted: fetched again */
  CHECK (cache_close (c) == 0);
}

int
main (void)
{
  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    return EXIT_FAILURE;
  }
  unlimited = cache_budget_new (CACHE_NO_LIMIT);
  pub_image = malloc (SIZE);
  test_fill_once ();
  test_prefetch_runs ();
  test_write_races_fill ();
  test_freeze ();
  test_fast_zero ();
  test_reset_races_readers ();
  test_fail_stop ();
  test_fail_stop_meta ();
  test_crash_order ();
  test_new_dirs ();
  test_stale ();
  test_evict_races_reads ();
  test_evict_races_writes ();
  test_budget_accounting ();
  test_budget_full_of_dirty ();
  test_budget_unsynced ();
  test_budget_shared ();
  test_budget_restart ();
  cache_budget_free (unlimited);
  free (pub_image);
  {
    char cmd[sizeof dir + 16];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system (cmd) != 0)
      fprintf (stderr, "test-cache: could not remove %s\n", dir);
  }
  if (failures)
    fprintf (stderr, "test-cache: %d failures\n", failures);
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
