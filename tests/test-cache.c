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
 *    is synced into its parents, and its files into it.
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

static const struct cache_source source = { fake_has, fake_fetch, NULL };

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

static struct cache *
open_cache (void)
{
  struct cache *c = cache_open (dir, SIZE, CS, base (""), CACHE_CREATE, &source);

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
  unsigned rounds;
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

  CHECK (cache_reset (c, base ("")) == 0);
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

  CHECK (cache_reset (c, base ("")) == 0);
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

  CHECK (cache_reset (c, base ("")) == 0);
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
    uint64_t chunk = rand_r (&r->seed) % CHUNKS;
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

  CHECK (cache_reset (c, base ("")) == 0);
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
    if (!CHECK (cache_reset (c, base ("")) == 0))
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

  CHECK (cache_reset (c, base ("")) == 0);
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

  CHECK (cache_reset (c, base ("")) == 0);
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
  CHECK (cache_reset (c, base ("")) == 0);
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
  c = cache_open (sub, SIZE, CS, base (""), CACHE_CREATE, &source);
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
                     &source);
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

  CHECK (cache_reset (c, base ("s1")) == 0);
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
  CHECK (cache_reset (c, base ("s2")) == 0);
  cache_get_stats (c, &st);
  CHECK (!cache_stale (c, &b) && st.dirty == 0);
  fill_chunk (c, 3, 0x55);
  CHECK (cache_close (c) == 0);
}

int
main (void)
{
  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    return EXIT_FAILURE;
  }
  test_fill_once ();
  test_write_races_fill ();
  test_freeze ();
  test_fast_zero ();
  test_reset_races_readers ();
  test_fail_stop ();
  test_fail_stop_meta ();
  test_crash_order ();
  test_new_dirs ();
  test_stale ();
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
