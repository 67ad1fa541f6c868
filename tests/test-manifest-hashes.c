/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* test-manifest-hashes: a manifest that borrows its hashes (format.h,
 * struct manifest_hashes), as a publish builds it.
 *
 * Random old manifests (runs in several blobs, gaps, a short last chunk)
 * and random publish sets (chunks rewritten into the new blob's pieces,
 * chunks made zero, chunks new) are merged twice: chunk by chunk with
 * manifest_add_chunk, copying every hash (the reference), and with
 * manifest_add_run, borrowing them.  What must hold:
 *  - manifest_write of the borrowing manifest is the reference's text;
 *  - after manifest_reserve_hashes and manifest_take_hashes, which move
 *    the hashes in place into the old manifest's array, the manifest is
 *    the reference (same text), and the old one has no hashes left;
 *  - the same with no old manifest (a first publish or a compact);
 *  - the same with thousands of hashes, whose array is a mapping of its
 *    own (64 KiB or more): a first publish of that many chunks once
 *    copied hashes from the borrowing manifest's empty array.
 * The seed is printed; LAZYVOL_TEST_SEED replays one.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "format.h"
#include "util.h"

#define ROUNDS 2000
#define BIG_ROUNDS 8
#define CS CHUNK_SIZE_MIN

static int failures;

#define CHECK(cond) check ((cond), #cond, __LINE__)

static bool
check (bool ok, const char *what, int line)
{
  if (!ok) {
    fprintf (stderr, "test-manifest-hashes.c:%d: FAIL: %s\n", line, what);
    failures++;
  }
  return ok;
}

/* One chunk of a publish set. */
struct change {
  uint64_t chunk;
  bool zero;
  unsigned piece;
  uint64_t offset;
  unsigned char sha[32];
};

struct set {
  struct change *c;
  size_t n;
  size_t *packed;               /* packed[K]: index in c of the Kth non-zero */
  size_t npacked;
};

static const unsigned char *
set_sha (void *opaque, uint64_t i)
{
  const struct set *s = opaque;

  return s->c[s->packed[i]].sha;
}

static void
random_sha (unsigned char sha[32])
{
  for (int i = 0; i < 32; i++)
    sha[i] = random ();
}

/* An old manifest of NCHUNKS chunks: runs in three blobs, with gaps. */
static struct manifest *
old_manifest (uint64_t image_size, uint64_t nchunks)
{
  char sid[SNAPSHOT_ID_LEN + 1];
  struct manifest *m;
  uint64_t used[3] = { 0 };
  int b = 0;

  id_snapshot_new (sid);
  m = manifest_new ("e", sid, MANIFEST_DELTA, 3, image_size, CS);
  for (int i = 0; i < 3; i++) {
    char old[SNAPSHOT_ID_LEN + 1];
    CLEANUP_FREE char *key = NULL;

    id_snapshot_new (old);
    key = key_blob_rel ("e", old, MANIFEST_DELTA);
    if (manifest_add_blob (m, key, nchunks * CS) != i)
      abort ();
  }
  for (uint64_t c = 0; c < nchunks; c++) {
    unsigned char sha[32];

    if (random () % 4 == 0)
      continue;                 /* a gap: zeros */
    if (random () % 5 == 0)
      b = random () % 3;        /* a new run, often in another blob */
    random_sha (sha);
    if (manifest_add_chunk (m, c, b, used[b] * CS, sha) == -1)
      abort ();
    used[b]++;
  }
  return m;
}

/* A publish set: about a chunk in DENSITY, each new data or zeros, the
 * data packed into pieces of PIECE_CHUNKS chunks.
 */
static void
publish_set (uint64_t nchunks, unsigned density, unsigned piece_chunks,
             struct set *s)
{
  s->c = calloc (nchunks + 1, sizeof *s->c);
  s->packed = calloc (nchunks + 1, sizeof *s->packed);
  s->n = s->npacked = 0;
  for (uint64_t c = 0; c < nchunks; c++) {
    struct change *x = &s->c[s->n];

    if (random () % density)
      continue;
    x->chunk = c;
    x->zero = random () % 4 == 0;
    if (!x->zero) {
      x->piece = s->npacked / piece_chunks;
      x->offset = (s->npacked % piece_chunks) * CS;
      random_sha (x->sha);
      s->packed[s->npacked++] = s->n;
    }
    s->n++;
  }
}

/* The merge into snapshot SID, chunk by chunk: OLD's chunks but those
 * of the set, the set's non-zero chunks from the new pieces.  BORROW:
 * with manifest_add_run, the hashes borrowed; else copied.
 */
static struct manifest *
merge (const char *sid, const struct manifest *old, const struct set *s,
       uint64_t image_size, bool borrow, unsigned piece_chunks)
{
  uint64_t nchunks = chunk_count (image_size, CS), k = 0;
  int *blob_map = calloc (4, sizeof *blob_map), *piece_map;
  struct manifest *m;
  size_t i = 0;

  m = manifest_new ("e", sid, MANIFEST_DELTA, 4, image_size, CS);
  snprintf (m->created, sizeof m->created, "2026-01-01T00:00:00Z");
  piece_map = calloc (s->npacked / piece_chunks + 1, sizeof *piece_map);
  for (int b = 0; b < 4; b++)
    blob_map[b] = -1;
  for (size_t b = 0; b <= s->npacked / piece_chunks; b++)
    piece_map[b] = -1;
  for (uint64_t c = 0; c < nchunks; c++) {
    const char *key;
    const unsigned char *sha;
    uint64_t off;
    int r;

    if (i < s->n && s->c[i].chunk == c) {
      const struct change *x = &s->c[i++];
      uint64_t size;

      if (x->zero)
        continue;
      if (piece_map[x->piece] == -1) {
        CLEANUP_FREE char *rel = key_blob_piece_rel ("e", m->snapshot_id,
                                                     MANIFEST_DELTA,
                                                     x->piece);
        size = (s->npacked - (uint64_t) x->piece * piece_chunks);
        size = (size < piece_chunks ? size : piece_chunks) * CS;
        piece_map[x->piece] = manifest_add_blob (m, rel, size);
      }
      r = borrow ? manifest_add_run (m, c, 1, piece_map[x->piece], x->offset,
                                     k++)
        : manifest_add_chunk (m, c, piece_map[x->piece], x->offset, x->sha);
    }
    else if (old && manifest_find (old, c, &key, &off, &sha)) {
      int b = 0;

      while (strcmp (old->blobs[b].key, key) != 0)
        b++;
      if (blob_map[b] == -1)
        blob_map[b] = manifest_add_blob (m, key, old->blobs[b].size);
      r = borrow ? manifest_add_run (m, c, 1, blob_map[b], off,
                                     (const unsigned char (*)[32]) sha
                                     - old->sha)
        : manifest_add_chunk (m, c, blob_map[b], off, sha);
    }
    else
      continue;
    if (!CHECK (r == 0))
      fprintf (stderr, "  %s\n", err_msg ());
  }
  free (blob_map);
  free (piece_map);
  return m;
}

/* The text manifest_write gives for M borrowing from H. */
static char *
written (const struct manifest *m, const struct manifest_hashes *h)
{
  char *buf;
  size_t len;
  FILE *f = memstream_open (&buf, &len);

  CHECK (manifest_write (f, m, h) == 0);
  memstream_close (f, &buf);
  return buf;
}

/* One merge of an image of NCHUNKS chunks, with or without an old
 * manifest.
 */
static void
round_trip (bool with_old, uint64_t nchunks)
{
  uint64_t image_size = nchunks * CS - (random () % 2 ? random () % CS : 0);
  unsigned density = 1 + random () % 40, piece_chunks = 1 + random () % 50;
  struct manifest *old = with_old ? old_manifest (image_size, nchunks) : NULL;
  struct manifest *ref, *m;
  struct manifest_hashes h;
  char sid[SNAPSHOT_ID_LEN + 1];
  struct set s;
  char *want, *got;

  id_snapshot_new (sid);
  publish_set (nchunks, density, piece_chunks, &s);
  ref = merge (sid, old, &s, image_size, false, piece_chunks);
  m = merge (sid, old, &s, image_size, true, piece_chunks);
  h = (struct manifest_hashes) {
    .from = old, .own = manifest_own_blobs (m), .own_sha = set_sha,
    .opaque = &s,
  };
  want = manifest_format (ref);
  got = written (m, &h);
  CHECK (strcmp (want, got) == 0);
  CHECK (m->nsha == ref->nsha && m->nextents == ref->nextents);
  free (got);

  CHECK (manifest_reserve_hashes (old ? old : m, m->nsha) == 0);
  manifest_take_hashes (m, old, &h);
  got = manifest_format (m);
  CHECK (strcmp (want, got) == 0);
  CHECK (old == NULL || (old->sha == NULL && old->nsha == 0));
  free (got);
  free (want);
  free ((bool *) h.own);
  free (s.c);
  free (s.packed);
  manifest_free (ref);
  manifest_free (m);
  manifest_free (old);
}

int
main (void)
{
  const char *env = getenv ("LAZYVOL_TEST_SEED");
  unsigned seed = env ? strtoul (env, NULL, 10) : (unsigned) time_real_ms ();

  printf ("seed %u (LAZYVOL_TEST_SEED=%u replays it)\n", seed, seed);
  srandom (seed);
  for (int i = 0; i < ROUNDS; i++)
    round_trip (i % 8 != 0, 1 + random () % 300);
  /* 1 in 40 chunks at least, 3 of 4 of them not zero: 3,750 hashes of
   * 32 bytes or more, over 64 KiB.
   */
  for (int i = 0; i < BIG_ROUNDS; i++)
    round_trip (i % 2 != 0, 200000);
  if (failures) {
    fprintf (stderr, "test-manifest-hashes: %d failures\n", failures);
    return 1;
  }
  printf ("test-manifest-hashes: %d rounds passed\n", ROUNDS + BIG_ROUNDS);
  return 0;
}
