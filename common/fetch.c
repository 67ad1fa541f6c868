/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: fetching published chunks from the store (see volume-impl.h).
 *
 * The cache fills a run of chunks at a time (cache_prefetch, a read's
 * miss); a publish, a write merging into a chunk, or a read that cannot
 * keep it, want one chunk in a buffer.  Both come here: volume_fetch_run
 * hands the bytes of chunks [CHUNK, CHUNK+N) to a cache_run_sink, and a
 * single chunk into a buffer is a run of one whose sink copies.
 *
 * Why runs.  A publish packs its chunks into one blob in chunk order, so
 * the chunks a sequential reader wants next are mostly stored back to
 * back: one ranged GET of up to CACHE_RUN_BYTES fetches them instead of
 * one GET per chunk.  On a remote store every request costs a round trip
 * to its first byte (20-50 ms on S3), and a connection's rate only
 * reaches the wire's when a request is much larger than what travels in
 * that time, so the request size matters as much as the parallelism.
 *
 * How a run is fetched.  Each stretch of the run stored back to back is
 * one GET, streamed (store_get_range_stream): the bytes go on to the sink
 * as curl receives them, the cache writes them straight into cache.raw,
 * and each chunk's SHA-256 is updated on the way, while the bytes are
 * still in the processor's cache.  So every byte is copied once and
 * hashed once after it is received, and nothing is allocated per chunk
 * (one digest context per run).  A chunk is done as soon as its last
 * byte is in and its hash matches, so a reader waiting for the first
 * chunk of a 16 MiB GET does not wait for the rest.  A GET that fails
 * part way resumes where it stopped (store.c); if it fails for good, the
 * chunks not yet done fail with its error.
 *
 * A chunk whose bytes fail their hash is fetched again alone, after the
 * stretch, REMOTE_FETCH_TRIES times in all (as a document that does not
 * parse is), then it fails as corrupt: a log line names the key, and
 * bad bytes are never marked resident.  A chunk the manifest no longer
 * lists (a compact dropped an all-zero chunk meanwhile) is zeros.
 *
 * Locking: the manifest is looked up under v->mlock (read), and what a
 * stretch needs from it (key, offset, hashes, lengths) is copied out, so
 * no lock is held during a request.  A stretch holds at most
 * CACHE_RUN_CHUNKS_MAX hashes (8 KiB, on the stack; twice that while a
 * chunk is fetched again).
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "err.h"
#include "lock.h"
#include "volume-impl.h"

/* Bytes of CHUNK in V's cache (the image's last chunk may be short). */
static uint32_t
cache_len (struct volume *v, uint64_t chunk)
{
  return chunk_len (cache_size (v->cache), v->head.chunk_size, chunk);
}

/* One GET: chunks [FIRST, FIRST+N) stored back to back at OFFSET of KEY. */
struct stretch {
  struct volume *v;
  const struct cache_run_sink *sink;
  void *run;
  char *key;
  uint64_t offset, first, n, bytes;
  uint64_t image_size;          /* the manifest's: chunk lengths */
  uint32_t chunk_size;
  EVP_MD_CTX *md;
  uint64_t i;                   /* the chunk being received: FIRST + I */
  uint32_t pos, len;            /* its bytes received, its length */
  unsigned char want[CACHE_RUN_CHUNKS_MAX][32];
  bool bad[CACHE_RUN_CHUNKS_MAX];       /* its hash did not match */
};

/* Bytes of chunk FIRST + I of stretch S. */
static uint32_t
stretch_len (const struct stretch *s, uint64_t i)
{
  return chunk_len (s->image_size, s->chunk_size, s->first + i);
}

/* The store's sink: split the bytes into chunks, pass them on, and hash
 * them; a chunk whose last byte is in is done, or marked bad.
 */
static int
stretch_data (void *opaque, const void *buf, size_t len)
{
  struct stretch *s = opaque;
  const char *p = buf;

  while (len > 0) {
    uint32_t take = len < s->len - s->pos ? len : s->len - s->pos;
    unsigned char got[32];

    assert (s->i < s->n);
    if (s->pos == 0 && !EVP_DigestInit_ex (s->md, EVP_sha256 (), NULL))
      return err_set (EIO, "%s: SHA-256 failed", s->v->name), 1;
    if (s->sink->data (s->run, s->first + s->i, s->pos, p, take) == -1)
      return 1;
    if (!EVP_DigestUpdate (s->md, p, take))
      return err_set (EIO, "%s: SHA-256 failed", s->v->name), 1;
    s->pos += take;
    p += take;
    len -= take;
    if (s->pos < s->len)
      continue;
    if (!EVP_DigestFinal_ex (s->md, got, NULL))
      return err_set (EIO, "%s: SHA-256 failed", s->v->name), 1;
    if (memcmp (got, s->want[s->i], 32) == 0)
      s->sink->done (s->run, s->first + s->i, true);
    else
      s->bad[s->i] = true;
    s->i++;
    s->pos = 0;
    s->len = s->i < s->n ? stretch_len (s, s->i) : 0;
  }
  return 0;
}

/* GET stretch S from its chunk I on (S->I, which must be at a chunk's
 * start).  0, or -1 with the chunks from S->I on not done.
 */
static int
stretch_get (struct stretch *s)
{
  uint64_t skip = 0;

  assert (s->pos == 0);
  for (uint64_t j = 0; j < s->i; j++)
    skip += stretch_len (s, j);
  s->len = stretch_len (s, s->i);
  return store_get_range_stream (s->v->env->st, s->key, s->offset + skip,
                                 s->bytes - skip, stretch_data, s) == 0
    ? 0 : -1;
}

/* Fetch alone chunk I of S, which failed its hash once: up to
 * REMOTE_FETCH_TRIES tries in all.  True if it matched.
 */
static bool
refetch_bad (struct stretch *s, uint64_t i)
{
  struct volume *v = s->v;
  uint64_t chunk = s->first + i, off = s->offset;

  for (uint64_t j = 0; j < i; j++)
    off += stretch_len (s, j);
  for (unsigned tries = 2; ; tries++) {
    struct stretch one = {
      .v = v, .sink = s->sink, .run = s->run, .key = s->key, .offset = off,
      .first = chunk, .n = 1, .bytes = stretch_len (s, i),
      .image_size = s->image_size, .chunk_size = s->chunk_size, .md = s->md,
    };

    store_count_retry (v->env->st, STORE_OP_GET_RANGE, STORE_WHY_CORRUPT);
    log_warn ("%s: chunk %ju from %s [%ju+%u]: SHA-256 mismatch, fetching "
              "it again", v->name, (uintmax_t) chunk, s->key,
              (uintmax_t) off, stretch_len (s, i));
    memcpy (one.want[0], s->want[i], 32);
    if (stretch_get (&one) == -1)
      return false;
    if (!one.bad[0])
      return true;              /* done by stretch_data */
    if (tries == REMOTE_FETCH_TRIES)
      break;
  }
  store_count_failure (v->env->st, STORE_OP_GET_RANGE, STORE_WHY_CORRUPT);
  err_set (EIO, "%s: chunk %ju from %s [%ju+%u]: SHA-256 mismatch in %u "
           "tries, the object is corrupt", v->name, (uintmax_t) chunk,
           s->key, (uintmax_t) off, stretch_len (s, i), REMOTE_FETCH_TRIES);
  log_error ("%s", err_msg ());
  return false;
}

/* Hand zeros for CHUNK of LEN bytes to SINK: the manifest does not list
 * it (any more).  False if the sink failed.
 */
static bool
give_zeros (const struct cache_run_sink *sink, void *run, uint64_t chunk,
            uint32_t len)
{
  static const char zeros[65536];
  uint32_t off = 0;

  while (off < len) {
    uint32_t n = len - off < sizeof zeros ? len - off : sizeof zeros;

    if (sink->data (run, chunk, off, zeros, n) == -1) {
      sink->done (run, chunk, false);
      return false;
    }
    off += n;
  }
  sink->done (run, chunk, true);
  return true;
}

/* Look up the stretch of chunks stored back to back from CHUNK (at most
 * N) into S.  1 if it is one, 0 if the manifest does not list CHUNK, -1
 * with err_set.
 */
static int
stretch_find (struct volume *v, uint64_t chunk, uint64_t n,
              struct stretch *s)
{
  const unsigned char *sha;
  const char *rel;
  uint64_t count;

  RDLOCK_FOR_SCOPE (&v->mlock);
  if (v->base_gone)
    return err_set (EIO, "%s: chunk %ju was not written here, and the "
                    "snapshot it would come from was deleted", v->name,
                    (uintmax_t) chunk);
  if (!v->manifest || !manifest_find_run (v->manifest, chunk, &rel,
                                          &s->offset, &sha, &count))
    return 0;
  if ((s->key = key_join (v->env->root, rel)) == NULL)
    return err_prefix ("%s: chunk %ju", v->name, (uintmax_t) chunk);
  s->first = chunk;
  s->n = count < n ? count : n;
  s->image_size = v->manifest->image_size;
  s->chunk_size = v->manifest->chunk_size;
  memcpy (s->want, sha, s->n * 32);
  s->bytes = 0;
  for (uint64_t i = 0; i < s->n; i++) {
    uint32_t len = stretch_len (s, i);

    if (len != cache_len (v, chunk + i))
      return err_set (EIO, "%s: chunk %ju has %u bytes in the manifest but "
                      "%u in the cache", v->name, (uintmax_t) (chunk + i),
                      len, cache_len (v, chunk + i));
    s->bytes += len;
  }
  return 1;
}

/* Keep this thread's error in *FIRST if it is the first failure. */
static void
remember (struct err_saved *first, bool *failed)
{
  if (!*failed)
    err_save (first);
  *failed = true;
}

int
volume_fetch_run (struct volume *v, uint64_t chunk, uint64_t n,
                  const struct cache_run_sink *sink, void *run)
{
  const uint64_t end = chunk + n;
  EVP_MD_CTX *md = EVP_MD_CTX_new ();
  struct err_saved first = { 0 };
  bool failed = false;

  assert (n <= CACHE_RUN_CHUNKS_MAX);
  if (md == NULL)
    err_set (ENOMEM, "%s: no memory for a digest", v->name);
  while (chunk < end) {
    struct stretch s = { .v = v, .sink = sink, .run = run, .md = md };
    int found = md ? stretch_find (v, chunk, end - chunk, &s) : -1;
    bool ok = true;

    if (found == 0) {
      if (!give_zeros (sink, run, chunk, cache_len (v, chunk)))
        remember (&first, &failed);
      chunk++;
      continue;
    }
    if (found == 1 && stretch_get (&s) == -1 && s.i < s.n) {
      err_prefix ("%s: chunk %ju", v->name, (uintmax_t) (chunk + s.i));
      ok = false;
    }
    else if (found == -1) {
      s.n = 1;
      ok = false;
    }
    if (!ok)
      remember (&first, &failed);
    /* Hash failures get more tries; the rest fail with the GET. */
    for (uint64_t i = 0; i < s.n; i++) {
      if (i >= s.i && !ok)
        sink->done (run, chunk + i, false);
      else if (s.bad[i] && !refetch_bad (&s, i)) {
        sink->done (run, chunk + i, false);
        remember (&first, &failed);
      }
    }
    free (s.key);
    chunk += s.n;
  }
  EVP_MD_CTX_free (md);
  return failed ? err_restore (&first) : 0;
}

/* The sink of a fetch into one buffer. */
struct into_buffer {
  char *buf;
  uint32_t len;
};

static int
buffer_data (void *run, uint64_t chunk, uint32_t off, const void *buf,
             size_t len)
{
  struct into_buffer *b = run;

  assert (off <= b->len && len <= b->len - off);
  memcpy (b->buf + off, buf, len);
  return 0;
}

/* Nothing to do: volume_fetch_run's result says whether it was OK. */
static void
buffer_done (void *run, uint64_t chunk, bool ok)
{
}

int
volume_fetch_chunk (struct volume *v, uint64_t chunk, void *buf, uint32_t len)
{
  static const struct cache_run_sink into = { buffer_data, buffer_done };
  struct into_buffer b = { .buf = buf, .len = len };

  if (len != cache_len (v, chunk))
    return err_set (EINVAL, "%s: chunk %ju has %u bytes, not %u", v->name,
                    (uintmax_t) chunk, cache_len (v, chunk), len);
  return volume_fetch_run (v, chunk, 1, &into, &b);
}
