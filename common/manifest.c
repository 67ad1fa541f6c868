/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: a manifest in memory, and the geometry of chunks (see
 * format.h).  Reading and writing manifest.json are manifest-read.c and
 * manifest-write.c.
 *
 * A manifest satisfies what manifest_find relies on: extents are sorted
 * by chunk and disjoint, inside the image, their bytes inside their blob,
 * and sha[] holds one hash per listed chunk in extent order (extent.hash
 * is where its run starts).  The builder (manifest_add_chunk) checks
 * those things as it goes, and merges each chunk into the previous
 * extent when it continues that run, so a publish of N consecutive dirty
 * chunks is one extent; the reader checks them as it reads.
 *
 * Memory.  An export keeps its manifest for as long as it is loaded, so
 * a manifest costs what its arrays hold and little else: 32 bytes a
 * listed chunk and one struct an extent.  Arrays grow by doubling; one
 * of ARRAY_MAP_MIN bytes or more lives in a mapping of its own, which
 * mremap grows without copying (pages never written are never
 * resident), and munmap gives back to the system at once.  On the heap,
 * growing a large array would copy it (the old and the new copy both
 * resident, a peak of twice the array), and freeing it would leave its
 * pages to malloc's judgement: after a reload of an export, its process
 * would keep the old manifest's memory as well.  manifest_shrink fits
 * the arrays to their elements, for a manifest that is complete.
 *
 * A publish does not copy the hashes: the new manifest's extents borrow
 * them (struct manifest_hashes, manifest_add_run), and once the head
 * has moved it takes the old manifest's array over, rearranged in
 * place (manifest_take_hashes).  A snapshot of a few chunks of a
 * million-chunk export holds a few extents more, not 32 MB more.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "err.h"
#include "format-impl.h"
#include "util.h"

#define ARRAY_MAP_MIN (64 * 1024)

static const char *const kind_names[] = {
  [MANIFEST_DELTA] = "delta", [MANIFEST_BASE] = "base",
  [MANIFEST_CLONE] = "clone",
};

bool
chunk_size_valid (uint64_t chunk_size)
{
  return chunk_size >= CHUNK_SIZE_MIN && chunk_size <= CHUNK_SIZE_MAX &&
    (chunk_size & (chunk_size - 1)) == 0;
}

uint64_t
chunk_count (uint64_t image_size, uint32_t chunk_size)
{
  return image_size / chunk_size + (image_size % chunk_size != 0);
}

uint32_t
chunk_len (uint64_t image_size, uint32_t chunk_size, uint64_t chunk)
{
  uint64_t start;

  if (chunk >= chunk_count (image_size, chunk_size))
    return 0;
  start = chunk * chunk_size;
  return image_size - start < chunk_size ? image_size - start : chunk_size;
}

uint64_t
manifest_run_bytes (const struct manifest *m, uint64_t chunk, uint64_t count)
{
  return (count - 1) * m->chunk_size +
    chunk_len (m->image_size, m->chunk_size, chunk + count - 1);
}

const char *
manifest_kind_name (enum manifest_kind kind)
{
  return kind_names[kind];
}

/* The id alphabets exclude "/", so the key cannot climb out of the export
 * root or name another object.
 */
/* The piece number in NAME, "KIND.blob" (0) or "KIND.N.blob" (N in
 * [1, BLOB_PIECES_MAX), no leading zero), or -1.
 */
static long
blob_piece (const char *name, const char *kind)
{
  size_t n = strlen (kind);
  char *end;
  long piece;

  if (strncmp (name, kind, n) != 0 || name[n] != '.')
    return -1;
  name += n + 1;
  if (strcmp (name, "blob") == 0)
    return 0;
  if (name[0] < '1' || name[0] > '9')
    return -1;
  errno = 0;
  piece = strtol (name, &end, 10);
  if (errno || piece >= BLOB_PIECES_MAX || strcmp (end, ".blob") != 0)
    return -1;
  return piece;
}

int
manifest_blob_kind (const char *key, unsigned *piece)
{
  char buf[MANIFEST_BLOB_KEY_MAX];
  char *rest = buf, *export_id, *dir, *snapshot_id;
  long n;

  if (strlen (key) >= sizeof buf)
    return -1;
  strcpy (buf, key);
  export_id = strsep (&rest, "/");
  dir = strsep (&rest, "/");
  snapshot_id = strsep (&rest, "/");
  /* REST is the file name; once strsep runs out of "/" it stays NULL. */
  if (rest == NULL || !id_export_valid (export_id) ||
      strcmp (dir, "snapshots") != 0 || !id_snapshot_valid (snapshot_id))
    return -1;
  if ((n = blob_piece (rest, "delta")) >= 0 ||
      (n = blob_piece (rest, "base")) >= 0) {
    if (piece)
      *piece = n;
    return rest[0] == 'd' ? MANIFEST_DELTA : MANIFEST_BASE;
  }
  return -1;
}

uint64_t
manifest_own_bytes (const struct manifest *m)
{
  uint64_t bytes = 0;

  /* Sizes are at most INT64_MAX each: saturate on hostile ones. */
  for (size_t i = 0; m->kind != MANIFEST_CLONE && i < m->nblobs; i++)
    if (key_blob_is_own (m->blobs[i].key, m->export_id, m->snapshot_id))
      bytes = m->blobs[i].size > UINT64_MAX - bytes ? UINT64_MAX
        : bytes + m->blobs[i].size;
  return bytes;
}

bool
manifest_summary_agrees (const struct manifest *m, const struct manifest *s)
{
  if (strcmp (m->export_id, s->export_id) != 0 ||
      strcmp (m->snapshot_id, s->snapshot_id) != 0 ||
      strcmp (m->parent, s->parent) != 0 || m->kind != s->kind ||
      m->generation != s->generation || m->image_size != s->image_size ||
      m->chunk_size != s->chunk_size || strcmp (m->created, s->created) != 0 ||
      (m->base_ref == NULL) != (s->base_ref == NULL) ||
      (m->base_ref && strcmp (m->base_ref, s->base_ref) != 0) ||
      strcmp (m->cloned_export, s->cloned_export) != 0 ||
      strcmp (m->cloned_snapshot, s->cloned_snapshot) != 0 ||
      strcmp (m->label, s->label) != 0 || m->nblobs != s->nblobs || s->summary_chunks != m->nsha ||
      s->summary_bytes != manifest_own_bytes (m))
    return false;
  for (size_t i = 0; i < m->nblobs; i++)
    if (strcmp (m->blobs[i].key, s->blobs[i].key) != 0 ||
        m->blobs[i].size != s->blobs[i].size)
      return false;
  return true;
}

/* The arrays of a manifest. */

/* Free an array of CAP elements of SIZE bytes. */
static void
array_free (void *array, size_t cap, size_t size)
{
  if (cap * size >= ARRAY_MAP_MIN)
    munmap (array, cap * size);
  else
    free (array);
}

/* Move the N elements of ARRAY (of CAP elements of SIZE bytes) to an
 * array of NEWCAP (>= N, > 0).  The new array, or NULL with ENOMEM (then
 * ARRAY is unchanged).
 */
static void *
array_resize (void *array, size_t n, size_t cap, size_t newcap, size_t size)
{
  size_t old = cap * size, new;
  void *p;

  if (newcap > SIZE_MAX / size) {
    err_set (ENOMEM, "manifest: %zu elements of %zu bytes: too many",
             newcap, size);
    return NULL;
  }
  new = newcap * size;
  if (old >= ARRAY_MAP_MIN && new >= ARRAY_MAP_MIN) {
    p = mremap (array, old, new, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) {
      err_set (errno, "mremap: %m");
      return NULL;
    }
    return p;
  }
  if (old < ARRAY_MAP_MIN && new < ARRAY_MAP_MIN) {
    p = realloc (array, new);
    if (p == NULL)
      err_set (errno, "realloc: %m");
    return p;
  }
  if (new >= ARRAY_MAP_MIN) {
    p = mmap (NULL, new, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
              -1, 0);
    if (p == MAP_FAILED) {
      err_set (errno, "mmap: %m");
      return NULL;
    }
  }
  else if ((p = malloc (new)) == NULL) {
    err_set (errno, "malloc: %m");
    return NULL;
  }
  if (n > 0)
    memcpy (p, array, n * size);
  array_free (array, cap, size);
  return p;
}

/* Make room for element N of ARRAY (elements of SIZE bytes, *CAP of
 * them allocated), doubling it when it is full.  The array (perhaps
 * moved), or NULL with ENOMEM.
 */
static void *
grow (void *array, size_t n, size_t *cap, size_t size)
{
  void *p;

  if (n < *cap)
    return array;
  p = array_resize (array, n, *cap, *cap ? 2 * *cap : 1, size);
  if (p)
    *cap = *cap ? 2 * *cap : 1;
  return p;
}

/* Fit ARRAY (*CAP elements of SIZE bytes) to its N elements.  The array
 * (perhaps moved; NULL if N is 0), or NULL with ENOMEM.
 */
static void *
fit (void *array, size_t n, size_t *cap, size_t size)
{
  void *p;

  /* Arrays only grow, from nothing: no element, no allocation. */
  assert (n > 0 || *cap == 0);
  if (n == *cap)
    return array;
  p = array_resize (array, n, *cap, n, size);
  if (p)
    *cap = n;
  return p;
}

int
manifest_append_extent (struct manifest *m, const struct manifest_extent *e)
{
  struct manifest_extent *p = grow (m->extents, m->nextents, &m->extents_cap,
                                    sizeof *p);

  if (p == NULL)
    return -1;
  m->extents = p;
  m->extents[m->nextents++] = *e;
  return 0;
}

int
manifest_append_sha (struct manifest *m, const unsigned char sha[32])
{
  unsigned char (*p)[32] = grow (m->sha, m->nsha, &m->sha_cap, sizeof *p);

  if (p == NULL)
    return -1;
  m->sha = p;
  memcpy (m->sha[m->nsha++], sha, 32);
  return 0;
}

int
manifest_shrink (struct manifest *m)
{
  struct manifest_blob *b = fit (m->blobs, m->nblobs, &m->blobs_cap,
                                 sizeof *b);
  struct manifest_extent *e;
  unsigned char (*s)[32];

  if (b == NULL && m->nblobs)
    return -1;
  m->blobs = b;
  e = fit (m->extents, m->nextents, &m->extents_cap, sizeof *e);
  if (e == NULL && m->nextents)
    return -1;
  m->extents = e;
  s = fit (m->sha, m->nsha, &m->sha_cap, sizeof *s);
  if (s == NULL && m->nsha)
    return -1;
  m->sha = s;
  return 0;
}

/* Building and looking up. */

struct manifest *
manifest_new (const char *export_id, const char *snapshot_id,
              enum manifest_kind kind, uint64_t generation,
              uint64_t image_size, uint32_t chunk_size)
{
  struct manifest *m = calloc (1, sizeof *m);

  if (m == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  snprintf (m->export_id, sizeof m->export_id, "%s", export_id);
  snprintf (m->snapshot_id, sizeof m->snapshot_id, "%s", snapshot_id);
  m->kind = kind;
  m->generation = generation;
  m->image_size = image_size;
  m->chunk_size = chunk_size;
  time_now_iso8601 (m->created);
  return m;
}

int
manifest_add_blob (struct manifest *m, const char *key, uint64_t size)
{
  struct manifest_blob *p;
  char *k;

  if (manifest_blob_kind (key, NULL) == -1)
    return err_set (EINVAL, "manifest %s/%s: \"%s\" is not a blob key",
                    m->export_id, m->snapshot_id, key);
  p = grow (m->blobs, m->nblobs, &m->blobs_cap, sizeof *p);
  if (p == NULL)
    return -1;
  m->blobs = p;
  k = strdup (key);
  if (k == NULL)
    return err_set (errno, "strdup: %m");
  m->blobs[m->nblobs] = (struct manifest_blob) { .key = k, .size = size };
  return m->nblobs++;
}

/* Append the run X (sorted after the extents so far, inside the image
 * and its blob), merged into the last extent when it continues it: the
 * next chunks, in the same blob right after it, their hashes right after
 * its hashes.  The last extent's last chunk is then not the image's
 * last, so it is a full chunk and offsets step by chunk_size.  0, or -1
 * with EINVAL (ENOMEM).
 */
static int
add_extent (struct manifest *m, const struct manifest_extent *x)
{
  struct manifest_extent *last =
    m->nextents ? &m->extents[m->nextents - 1] : NULL;
  uint64_t nchunks = chunk_count (m->image_size, m->chunk_size);

  assert (x->count >= 1);
  if (x->chunk >= nchunks || x->count > nchunks - x->chunk)
    return err_set (EINVAL, "manifest %s/%s: chunk %" PRIu64 " is beyond "
                    "the image (%" PRIu64 " chunks)", m->export_id,
                    m->snapshot_id, x->chunk + x->count - 1, nchunks);
  if (last && x->chunk < last->chunk + last->count)
    return err_set (EINVAL, "manifest %s/%s: chunk %" PRIu64 " added after "
                    "chunk %" PRIu64, m->export_id, m->snapshot_id, x->chunk,
                    last->chunk + last->count - 1);
  if (x->blob >= m->nblobs)
    return err_set (EINVAL, "manifest %s/%s: blob %" PRIu32 " does not "
                    "exist (%zu blobs)", m->export_id, m->snapshot_id,
                    x->blob, m->nblobs);
  if (x->offset > m->blobs[x->blob].size ||
      manifest_run_bytes (m, x->chunk, x->count) >
      m->blobs[x->blob].size - x->offset)
    return err_set (EINVAL, "manifest %s/%s: chunk %" PRIu64 " at offset %"
                    PRIu64 " goes beyond the end of blob %" PRIu32 " (%"
                    PRIu64 " bytes)", m->export_id, m->snapshot_id,
                    x->chunk + x->count - 1, x->offset, x->blob,
                    m->blobs[x->blob].size);
  if (last && last->blob == x->blob &&
      x->chunk == last->chunk + last->count &&
      x->offset == last->offset + last->count * m->chunk_size &&
      x->hash == last->hash + last->count) {
    last->count += x->count;
    return 0;
  }
  return manifest_append_extent (m, x);
}

int
manifest_add_chunk (struct manifest *m, uint64_t chunk, uint32_t blob,
                    uint64_t offset, const unsigned char sha[32])
{
  assert (m->nsha == 0 || m->sha != NULL);      /* not borrowing hashes */
  if (add_extent (m, &(struct manifest_extent) {
        .chunk = chunk, .count = 1, .blob = blob, .offset = offset,
        .hash = m->nsha }) == -1)
    return -1;
  return manifest_append_sha (m, sha);
}

int
manifest_add_run (struct manifest *m, uint64_t chunk, uint64_t count,
                  uint32_t blob, uint64_t offset, uint64_t hash)
{
  assert (m->sha == NULL);
  if (count > UINT64_MAX - m->nsha)
    return err_set (EINVAL, "manifest %s/%s: too many chunks",
                    m->export_id, m->snapshot_id);
  if (add_extent (m, &(struct manifest_extent) {
        .chunk = chunk, .count = count, .blob = blob, .offset = offset,
        .hash = hash }) == -1)
    return -1;
  m->nsha += count;
  return 0;
}

bool *
manifest_own_blobs (const struct manifest *m)
{
  bool *own = malloc (m->nblobs + 1);

  if (own == NULL) {
    err_set (ENOMEM, "manifest %s/%s: out of memory", m->export_id,
             m->snapshot_id);
    return NULL;
  }
  for (size_t b = 0; b < m->nblobs; b++)
    own[b] = key_blob_is_own (m->blobs[b].key, m->export_id, m->snapshot_id);
  return own;
}

const unsigned char *
manifest_hash (const struct manifest *m, const struct manifest_hashes *h,
               const struct manifest_extent *e, uint64_t j)
{
  if (h == NULL)
    return m->sha[e->hash + j];
  if (h->own[e->blob])
    return h->own_sha (h->opaque, e->hash + j);
  return h->from->sha[e->hash + j];
}

int
manifest_reserve_hashes (struct manifest *m, size_t n)
{
  unsigned char (*p)[32];

  if (n <= m->sha_cap)
    return 0;
  /* A manifest that borrows its hashes (a first publish's, reserving
   * on itself) counts them in nsha but holds none: nothing to copy.
   */
  p = array_resize (m->sha, m->sha ? m->nsha : 0, m->sha_cap, n, sizeof *p);
  if (p == NULL)
    return -1;
  m->sha = p;
  m->sha_cap = n;
  return 0;
}

/* The hashes M borrows (from H) are moved into H->from's array, which M
 * takes.  An extent of M in a blob M did not write names a run of
 * from->sha, and those runs come in order; its place in M's array is
 * the sum of the counts before it, and all of M's own hashes come from
 * H->own_sha.  Two passes move each old hash at most twice and need no
 * second array: forward, the old runs M keeps are packed to the front
 * (each moves down); then backward, every run goes to its place (each
 * moves up, past the places not filled yet) and M's own hashes are
 * copied in between.
 */
void
manifest_take_hashes (struct manifest *m, struct manifest *from,
                      const struct manifest_hashes *h)
{
  struct manifest *arr = from ? from : m;
  const bool *own = h->own;
  uint64_t w = 0, f = m->nsha;

  /* manifest_reserve_hashes made the room: nothing here can fail. */
  assert (h->from == from && arr->sha_cap >= m->nsha);
  for (size_t i = 0; i < m->nextents; i++) {
    struct manifest_extent *e = &m->extents[i];

    if (own[e->blob])
      continue;
    assert (from && e->hash >= w && e->hash + e->count <= from->nsha);
    memmove (arr->sha[w], arr->sha[e->hash], e->count * 32);
    e->hash = w;
    w += e->count;
  }
  for (size_t i = m->nextents; i-- > 0; ) {
    struct manifest_extent *e = &m->extents[i];

    f -= e->count;
    if (own[e->blob])
      for (uint64_t j = 0; j < e->count; j++)
        memcpy (arr->sha[f + j], h->own_sha (h->opaque, e->hash + j), 32);
    else
      memmove (arr->sha[f], arr->sha[e->hash], e->count * 32);
    e->hash = f;
  }
  assert (f == 0);
  m->sha = arr->sha;
  m->sha_cap = arr->sha_cap;
  if (from) {
    from->sha = NULL;
    from->sha_cap = from->nsha = 0;
  }
  if (m->nsha == 0) {           /* every listed chunk became zeros */
    array_free (m->sha, m->sha_cap, sizeof *m->sha);
    m->sha = NULL;
    m->sha_cap = 0;
  }
  manifest_shrink (m);          /* a failure only keeps the room */
}

static int
extent_compare (const void *key, const void *elem)
{
  uint64_t chunk = *(const uint64_t *) key;
  const struct manifest_extent *e = elem;

  if (chunk < e->chunk)
    return -1;
  return chunk - e->chunk >= e->count;  /* 0 inside the run, 1 after it */
}

bool
manifest_find_run (const struct manifest *m, uint64_t chunk,
                   const char **blob_key, uint64_t *offset,
                   const unsigned char **sha, uint64_t *count)
{
  const struct manifest_extent *e;

  if (m->nextents == 0)
    return false;
  /* Extents are sorted and disjoint, so "inside the run" is an order. */
  e = bsearch (&chunk, m->extents, m->nextents, sizeof *e, extent_compare);
  if (e == NULL)
    return false;
  *blob_key = m->blobs[e->blob].key;
  *offset = e->offset + (chunk - e->chunk) * m->chunk_size;
  *sha = m->sha[e->hash + (chunk - e->chunk)];
  *count = e->chunk + e->count - chunk;
  return true;
}

bool
manifest_find (const struct manifest *m, uint64_t chunk,
               const char **blob_key, uint64_t *offset,
               const unsigned char **sha)
{
  uint64_t count;

  return manifest_find_run (m, chunk, blob_key, offset, sha, &count);
}

void
manifest_free (struct manifest *m)
{
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->nblobs; i++)
    free (m->blobs[i].key);
  array_free (m->blobs, m->blobs_cap, sizeof *m->blobs);
  array_free (m->extents, m->extents_cap, sizeof *m->extents);
  array_free (m->sha, m->sha_cap, sizeof *m->sha);
  free (m->base_ref);
  free (m);
}
