/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: snapshot and compact (see publish.h), and crash recovery.
 *
 * A publish:
 *   1. re-reads volume.json: its generation and snapshot must still be the
 *      ones this export is based on, else another writer publishes here;
 *   2. freezes the chunks to publish (cache_publish_begin): the dirty ones,
 *      or for a compact every chunk with data;
 *   3. writes snapshot.journal.json locally (new id, blob key);
 *   4. packs the chunks' point-in-time bytes, in chunk order and skipping
 *      all-zero chunks, into one blob (delta.blob or base.blob), uploaded
 *      in parallel parts while writes to the export go on; each part's
 *      chunks are hashed by the thread that uploads it, and for S3 the
 *      part's own SHA-256 (its signature's) in the same pass.  The parts
 *      come from a fixed memory budget, whatever the image size; a blob
 *      that would pass the store's object limit or its part count is
 *      split into pieces (delta.1.blob, ...), uploaded one after another,
 *      each piece journaled before it starts;
 *   5. writes manifest.json: the new chunks, merged in chunk order with the
 *      previous manifest's chunks that were not republished, straight
 *      into its upload (the new manifest borrows the old one's hashes,
 *      see build_manifest); then its summary.json, which lists read
 *      instead of it;
 *   6. moves the head: volume.json with If-Match on the etag read in 1,
 *      then refs/current.json;
 *   7. swaps in the new manifest, which takes over the old one's hashes
 *      in place (room was made before 6, so this cannot fail), marks
 *      the published chunks clean (unless rewritten meanwhile) and
 *      removes the journal.
 *
 * Crash or failure before 6 leaves the old head, and dirty bits are
 * untouched, so the next publish repeats the work.  A failure cleans up its
 * objects at once; after a crash journal_recover does it from the journal.
 * Step 6 can land although it reports failure (a lost reply, whose retry
 * then fails against our own write): volume.json is re-read, and if it
 * names the new snapshot the publish succeeded.  If it cannot be read,
 * the outcome is unknown, so the objects and the journal stay and the
 * next publish (or a restart) settles them against the head.
 *
 * A rollback (publish_rollback) is a publish with no blob: the target's
 * manifest, copied with a new identity, becomes the new snapshot (steps
 * 3, 5, 6: journal, manifest and summary, head), after a check that the
 * target's manifest is still there, as a clone checks its source (see
 * snapshots.c for the race with a delete).  Writes are refused while it
 * runs (cache_freeze), so that no write made over the old image lands
 * after the cache is dropped for the new one.  A publish after a resize
 * writes the cache's size, with nothing dirty too.
 *
 * On the file store too the chunks are read into the parts and written
 * from there (read, hash, write), not copied from cache.raw into the blob
 * with copy_file_range: they must be read to be hashed anyway, and on a
 * file system without shared extents (ext4) copy_file_range is a copy
 * between page caches, where the file store writes parts with O_DIRECT
 * and copies nothing (see store-file.c for the figures).
 *
 * Fencing.  Two processes can never share a cache (cache.meta is locked),
 * and two writers of one export cannot both move its head: step 6 is a
 * compare-and-swap on volume.json's etag.  Stores that cannot evaluate a
 * conditional put (stock Swift answers 501) get a weaker read-check-write:
 * volume.json is re-read just before the put and the put is refused if it
 * changed, which leaves a window of one request.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "bitmap.h"
#include "crash.h"
#include "err.h"
#include "journal.h"
#include "lock.h"
#include "publish.h"
#include "upload.h"
#include "volume-impl.h"

#define PART_SIZE_MIN (8 * 1024 * 1024)
/* A blob of more than this many minimum parts has larger ones (up to a
 * share of UPLOAD_MEMORY): every part is a request, and a store spends
 * on each a cost of its own (a Swift proxy about 10 ms of CPU: 8 MiB
 * parts cost it a fifth more than 24 MiB ones).
 */
#define PARTS_SMALL 8
#define UPLOAD_THREADS 4
/* The parts of an upload in memory at once (threads + 1) take at most
 * this, unless a single chunk is larger than a share of it: then fewer
 * threads upload parts of one chunk.
 */
#define UPLOAD_MEMORY (128 * 1024 * 1024)
/* Bytes fed in turn to a chunk's hash and its part's (see hash_part):
 * few enough to stay in the CPU's cache between the two.
 */
#define HASH_BLOCK (64 * 1024)

int publish_delay_ms;

/* One chunk of the publish set, in chunk order. */
struct pchunk {
  uint64_t chunk;
  uint64_t offset;              /* in its piece */
  bool zero;                    /* all zeros: not listed */
  uint32_t piece;               /* of the new blob */
  unsigned char sha[32];
};

/* What a publish in progress needs to know. */
struct publish {
  struct volume *v;
  bool base;                    /* compact */
  const char *label;            /* of the new snapshot, or NULL */
  uint64_t size;                /* the image's: a resize's, if pending */
  struct journal j;             /* the new snapshot's id, generation ... */
  struct volume_head old_head;
  char etag[128];
  char *blob_rel, *manifest_key;     /* blob_rel: piece 0 */
  struct pchunk *list;
  uint64_t n;
  uint64_t *packed;             /* packed[K]: the list index of the Kth
                                   chunk in the blob, over every piece */
  size_t part_size;             /* bytes of a part, and parts in flight */
  unsigned threads;
  uint64_t piece_max;           /* bytes of a piece, whole chunks */
  uint64_t *piece_size;         /* [j.pieces]: bytes of each piece */
  uint64_t piece_first;         /* packed index of the current piece's
                                   first chunk */
  struct manifest_hashes hashes;  /* what the new manifest borrows */
  bool *own;                    /* [its blobs]: written by this publish */
};

static int
journal_upload_started (void *opaque, const char *upload_id)
{
  struct publish *p = opaque;

  snprintf (p->j.upload_id, sizeof p->j.upload_id, "%s", upload_id);
  return journal_write (p->v->cache_dir, &p->j);
}

/* Part size and upload threads.  Parts are whole chunks, at least
 * PART_SIZE_MIN, larger for a set of more than PARTS_SMALL of those, and
 * large enough for the publish set's P->N chunks to fit in the store's
 * part count -- but no more than a share of UPLOAD_MEMORY (threads + 1
 * parts are in memory): a larger blob is split into pieces instead.  A
 * chunk larger than a share fills a part alone, with as many threads as
 * the budget holds (at least one).  Then the largest piece: whole
 * chunks, no more than the store takes in one object or in its part
 * count.  With 4 MiB chunks: 8 MiB parts up to 64 MiB, 24 MiB parts
 * from 192 MiB.
 */
static int
upload_geometry (struct publish *p)
{
  uint32_t cs = p->v->head.chunk_size;
  uint64_t share = UPLOAD_MEMORY / (UPLOAD_THREADS + 1), max;
  uint64_t size = p->n * cs / (STORE_PART_MAX_COUNT - 1) + 1;

  if (size < p->n * cs / PARTS_SMALL)
    size = p->n * cs / PARTS_SMALL;
  if (size < PART_SIZE_MIN)
    size = PART_SIZE_MIN;
  if (size > share)
    size = share;
  size = (size + cs - 1) / cs * cs;
  if (size > share && size > cs)
    size -= cs;                 /* back within the share */
  p->part_size = size;
  p->threads = UPLOAD_THREADS;
  if (p->part_size > share) {
    uint64_t parts = UPLOAD_MEMORY / p->part_size;

    p->threads = parts > 1 ? parts - 1 : 1;
  }
  max = (uint64_t) p->part_size * STORE_PART_MAX_COUNT;
  if (store_object_max () < max)
    max = store_object_max ();
  p->piece_max = max >= cs ? max / cs * cs : cs;
  /* A blob of every chunk of the set needs this many pieces at most. */
  if (p->n / (p->piece_max / cs) >= BLOB_PIECES_MAX)
    return err_set (EFBIG, "publish %s: the blob would need more than %d "
                    "pieces of %ju bytes", p->v->name, BLOB_PIECES_MAX,
                    (uintmax_t) p->piece_max);
  return 0;
}

/* Upload hook: hash the chunks in one part of the blob, in the thread
 * that uploads the part, so that chunks are hashed in parallel.  Chunks
 * are packed back to back, each a whole chunk (only the image's last
 * chunk is shorter, and it comes last), and parts hold whole chunks, so
 * the Kth packed chunk starts at K * chunk_size.  The producer fills
 * p->packed and p->list for a part before handing it over.
 *
 * With PART_SHA (the store's hash of the whole part, for S3's signature)
 * both hashes are fed the same HASH_BLOCK bytes in turn, while they are
 * in the CPU's cache: the part is read from memory once, not twice.
 */
static int
hash_part (void *opaque, const void *buf, size_t len, uint64_t offset,
           unsigned char *part_sha)
{
  struct publish *p = opaque;
  uint32_t cs = p->v->head.chunk_size;
  EVP_MD_CTX *chunk_ctx = EVP_MD_CTX_new ();
  EVP_MD_CTX *part_ctx = part_sha ? EVP_MD_CTX_new () : NULL;
  bool ok = chunk_ctx && (part_sha == NULL || part_ctx) &&
    (part_sha == NULL || EVP_DigestInit_ex (part_ctx, EVP_sha256 (), NULL));
  size_t pos;

  assert (offset % cs == 0);
  for (pos = 0; ok && pos < len; pos += cs) {
    struct pchunk *pc = &p->list[p->packed[p->piece_first +
                                           (offset + pos) / cs]];
    size_t n = len - pos < cs ? len - pos : cs;

    assert (pc->offset == offset + pos);
    ok = EVP_DigestInit_ex (chunk_ctx, EVP_sha256 (), NULL);
    for (size_t b = 0; ok && b < n; b += HASH_BLOCK) {
      const char *at = (const char *) buf + pos + b;
      size_t m = n - b < HASH_BLOCK ? n - b : HASH_BLOCK;

      ok = EVP_DigestUpdate (chunk_ctx, at, m) &&
        (part_sha == NULL || EVP_DigestUpdate (part_ctx, at, m));
    }
    ok = ok && EVP_DigestFinal_ex (chunk_ctx, pc->sha, NULL);
  }
  ok = ok && (part_sha == NULL || EVP_DigestFinal_ex (part_ctx, part_sha,
                                                      NULL));
  EVP_MD_CTX_free (chunk_ctx);
  EVP_MD_CTX_free (part_ctx);
  if (!ok)
    return err_set (ENOMEM, "publish %s: SHA-256 of the blob at %ju failed "
                    "(out of memory)", p->v->name, (uintmax_t) offset);
  return 0;
}

/* Start the upload of the blob's next piece, whose first chunk will be
 * the Kth packed one.  Every piece but the first is journaled before it
 * starts, so that a crash leaves it to be removed.  NULL with err_set.
 */
static struct upload *
start_piece (struct publish *p, bool first, uint64_t k)
{
  struct volume *v = p->v;
  unsigned piece = first ? 0 : p->j.pieces;
  CLEANUP_FREE char *rel = key_blob_piece_rel (v->export_id,
                                               p->j.snapshot_id, p->j.kind,
                                               piece);
  CLEANUP_FREE char *key = rel ? key_join (v->env->root, rel) : NULL;
  uint64_t *sizes = reallocarray (p->piece_size, piece + 1, sizeof *sizes);

  if (sizes)
    p->piece_size = sizes;
  if (key == NULL || sizes == NULL) {
    err_set (ENOMEM, "publish %s: out of memory", v->name);
    return NULL;
  }
  sizes[piece] = 0;
  p->piece_first = k;
  if (!first) {
    p->j.pieces = piece + 1;
    p->j.upload_id[0] = '\0';
    if (journal_write (v->cache_dir, &p->j) == -1)
      return NULL;
  }
  return upload_new (v->env->st, key, p->part_size, p->threads,
                     journal_upload_started, hash_part, p);
}

/* Upload what is left of the current piece UP and record its size.
 * Frees UP.  0 or -1.
 */
static int
finish_piece (struct publish *p, struct upload *up)
{
  p->piece_size[p->j.pieces - 1] = upload_size (up);
  return upload_finish (up);
}

/* Step 4: read every frozen chunk and pack the non-zero ones into the
 * blob's pieces (hash_part hashes them).  Fills p->list, p->packed and
 * p->piece_size.
 */
static int
pack_blob (struct publish *p)
{
  struct volume *v = p->v;
  struct upload *up = NULL;
  uint64_t chunk, i = 0, k = 0, bytes = 0, total;
  uint64_t last = chunk_count (p->size, v->head.chunk_size) - 1;

  /* Every chunk of the set is whole, but perhaps the image's last. */
  total = p->n * v->head.chunk_size;
  if (p->n > 0 && cache_publish_next (v->cache, last, &chunk))
    total -= v->head.chunk_size - chunk_len (p->size, v->head.chunk_size,
                                             last);
  for (uint64_t from = 0; cache_publish_next (v->cache, from, &chunk);
       from = chunk + 1) {
    uint32_t len = chunk_len (p->size, v->head.chunk_size, chunk);
    struct pchunk *pc = &p->list[i++];
    void *buf;
    int r;

    if (up && upload_size (up) + len > p->piece_max) {
      r = finish_piece (p, up);
      up = NULL;
      if (r == -1)
        return -1;
      CRASH_POINT ("publish.between_pieces");
    }
    if (up == NULL && (up = start_piece (p, i == 1, k)) == NULL)
      return -1;
    if ((buf = upload_reserve (up, len)) == NULL)
      goto err;
    pc->chunk = chunk;
    r = cache_publish_read (v->cache, chunk, buf);
    if (r == 0)                 /* not local: the published bytes */
      r = volume_fetch_chunk (v, chunk, buf, len) == -1 ? -1 : 1;
    if (r == -1)
      goto err;
    pc->zero = is_zero (buf, len);
    if (!pc->zero) {
      pc->piece = p->j.pieces - 1;
      pc->offset = upload_size (up);
      p->packed[k++] = i - 1;
      upload_commit (up, len);
      if (pc->offset >= p->part_size)     /* a part is under way */
        CRASH_POINT ("publish.during_upload");
    }
    bytes += len;
    volume_op_progress (v, i, p->n, bytes, total);
  }
  p->n = i;
  return up ? finish_piece (p, up) : 0;

 err:
  upload_abort (up);
  return -1;
}

/* The hash of the Ith chunk packed into the new blob. */
static const unsigned char *
packed_sha (void *opaque, uint64_t i)
{
  const struct publish *p = opaque;

  return p->list[p->packed[i]].sha;
}

/* Step 5: the new manifest.  Chunks of the publish set come from the new
 * blob (or are zeros); every other chunk keeps its place in the old
 * manifest, in runs.  Old blobs are listed only if still used.  Its
 * hashes are borrowed (p->hashes): the new blob's from p->list, the
 * others from the old manifest, whose array the new one takes over when
 * the head has moved (manifest_take_hashes).  So a publish of a few
 * chunks of a large manifest holds a few extents more, not a second
 * copy of every hash.
 */
static struct manifest *
build_manifest (struct publish *p)
{
  struct volume *v = p->v;
  const struct manifest *old = p->base ? NULL : v->manifest;
  uint32_t cs = v->head.chunk_size;
  CLEANUP_FREE int *blob_map = NULL;
  CLEANUP_FREE int *piece_map = NULL;
  struct manifest *m;
  uint64_t i = 0, e = 0, k = 0, packed = 0;

  m = manifest_new (v->export_id, p->j.snapshot_id, p->base ? MANIFEST_BASE
                    : MANIFEST_DELTA, p->j.generation, p->size,
                    v->head.chunk_size);
  if (m == NULL)
    goto nomem;
  snprintf (m->parent, sizeof m->parent, "%s", p->old_head.snapshot_id);
  snprintf (m->label, sizeof m->label, "%s", p->label ? p->label : "");
  if (p->base || (v->manifest && v->manifest->base_ref)) {
    m->base_ref = strdup (p->base ? p->blob_rel : v->manifest->base_ref);
    if (m->base_ref == NULL)
      goto nomem;
  }
  if (old && (blob_map = malloc (old->nblobs * sizeof *blob_map + 1)) == NULL)
    goto nomem;
  for (size_t b = 0; old && b < old->nblobs; b++)
    blob_map[b] = -1;
  /* The new blob's pieces are listed as their first chunk comes. */
  if ((piece_map = malloc (p->j.pieces * sizeof *piece_map)) == NULL)
    goto nomem;
  for (unsigned b = 0; b < p->j.pieces; b++)
    piece_map[b] = -1;

  for (;;) {
    const struct manifest_extent *x = old && e < old->nextents
      ? &old->extents[e] : NULL;
    uint64_t next_new = i < p->n ? p->list[i].chunk : UINT64_MAX;
    uint64_t next_old = x ? x->chunk + k : UINT64_MAX;
    uint64_t run = 1;           /* old chunks consumed */
    int r = 0;

    if (next_new == UINT64_MAX && next_old == UINT64_MAX)
      break;
    if (next_new <= next_old) {
      const struct pchunk *pc = &p->list[i++];
      if (!pc->zero) {
        int *b = &piece_map[pc->piece];
        CLEANUP_FREE char *rel = NULL;

        if (*b == -1 &&
            ((rel = key_blob_piece_rel (v->export_id, p->j.snapshot_id,
                                        p->j.kind, pc->piece)) == NULL ||
             (*b = manifest_add_blob (m, rel,
                                      p->piece_size[pc->piece])) == -1))
          goto nomem;
        r = manifest_add_run (m, pc->chunk, 1, *b, pc->offset, packed++);
      }
      if (next_new != next_old) {
        if (r == -1)
          goto err;
        continue;
      }
    }
    else {
      /* The old run, up to the next chunk of the set. */
      run = x->count - k;
      if (next_new - next_old < run)
        run = next_new - next_old;
      if (blob_map[x->blob] == -1 &&
          (blob_map[x->blob] = manifest_add_blob (m, old->blobs[x->blob].key,
                                                  old->blobs[x->blob].size))
          == -1)
        goto nomem;
      r = manifest_add_run (m, next_old, run, blob_map[x->blob],
                            x->offset + k * cs, x->hash + k);
    }
    if (r == -1)
      goto err;
    if ((k += run) == x->count) {       /* the old extent is consumed */
      e++;
      k = 0;
    }
  }
  if ((p->own = manifest_own_blobs (m)) == NULL)
    goto err;
  p->hashes = (struct manifest_hashes) {
    .from = v->manifest, .own = p->own, .own_sha = packed_sha, .opaque = p,
  };
  return m;

 nomem:
  err_set (ENOMEM, "publish %s: out of memory", v->name);
 err:
  manifest_free (m);
  return NULL;
}

/* Step 5's upload: manifest M, written into its upload as it is
 * produced (its hashes borrowed, p->hashes): a manifest of a million
 * chunks is never held as text.  Parts of STORE_PART_MIN, one in flight.
 */
static int
put_manifest (struct publish *p, const struct manifest *m)
{
  struct upload *up = upload_new (p->v->env->st, p->manifest_key,
                                  STORE_PART_MIN, 1, NULL, NULL, NULL);
  FILE *f = up ? upload_fopen (up) : NULL;
  int r;

  if (f == NULL) {
    upload_abort (up);
    return -1;
  }
  r = manifest_write (f, m, &p->hashes);
  if (fclose (f) == EOF)
    r = -1;
  if (r == -1) {
    upload_abort (up);
    return err_prefix ("manifest %s", p->j.snapshot_id);
  }
  return upload_finish (up);
}

/* Room in the array the new manifest M will take its hashes into (the
 * old manifest's), so that nothing can fail once the head has moved.
 */
static int
reserve_hashes (struct publish *p, struct manifest *m)
{
  struct volume *v = p->v;
  WRLOCK_FOR_SCOPE (&v->mlock);         /* the array may move */

  return manifest_reserve_hashes (v->manifest ? v->manifest : m, m->nsha);
}

/* After a head put that failed, re-read volume.json: a put can land
 * although its reply was lost, and then a retried conditional put fails
 * with ESTALE against our own write.  Returns 1 if the head names P's
 * snapshot (sets *ETAG), 0 if it does not (the put's error stays this
 * thread's error), -1 if it cannot be read (with that error).
 */
static int
head_landed (struct publish *p, char etag[128])
{
  struct volume_head cur;
  struct err_saved why;
  int r;

  err_save (&why);
  r = remote_fetch_head (p->v->env, p->v->export_id, &cur, etag) == -1 ? -1
    : strcmp (cur.snapshot_id, p->j.snapshot_id) == 0;
  if (r == 0 && cur.epoch != p->old_head.epoch)
    atomic_store (&p->v->lost, true);   /* taken over: writes stop too */
  if (r == 0)
    err_restore (&why);
  return r;
}

/* Put HEAD as volume.json if it still is P's old head.  *TRIED tells
 * whether a put may have reached the store.
 */
static int
put_head (struct publish *p, const char *key, const char *json,
          struct store_obj *obj, bool *tried)
{
  struct volume_env *env = p->v->env;
  struct volume_head cur;
  static atomic_bool warned;
  int r;

  *tried = true;
  r = store_put (env->st, key, json, strlen (json), STORE_PUT_IF_MATCH,
                 p->etag, obj);
  if (r == 0 || errno != ENOTSUP)
    return r;
  /* Weak fencing: read, check, write. */
  *tried = false;
  if (!atomic_exchange (&warned, true))
    log_warn ("%s does not evaluate conditional puts: publishing falls "
              "back to re-reading volume.json just before replacing it, "
              "which leaves a window of one request between two writers",
              store_describe (env->st));
  if (remote_fetch_head (env, p->v->export_id, &cur, NULL) == -1)
    return -1;
  /* The epoch too: a new owner's fence changes only that. */
  if (cur.generation != p->old_head.generation ||
      cur.epoch != p->old_head.epoch ||
      strcmp (cur.snapshot_id, p->old_head.snapshot_id) != 0)
    return err_set (ESTALE, "changed");
  *tried = true;
  return store_put (env->st, key, json, strlen (json), STORE_PUT_ANY, NULL,
                    obj);
}

/* Step 6: write HEAD as volume.json if it still is P's old head, then
 * refs/current.json.  Sets *ETAG to the new etag.  On failure *UNKNOWN
 * tells that the head may nonetheless name the new snapshot (it could
 * not be re-read), so its objects must stay.
 */
static int
move_head (struct publish *p, const struct volume_head *head,
           char etag[128], bool *unknown)
{
  struct volume_env *env = p->v->env;
  CLEANUP_FREE char *json = volume_format (head);
  CLEANUP_FREE char *key = key_volume (env->root, head->export_id);
  struct store_obj obj = { 0 };
  bool tried;
  int r;

  *unknown = false;
  if (json == NULL || key == NULL)
    return err_set (ENOMEM, "out of memory");
  r = put_head (p, key, json, &obj, &tried);
  if (r == 0)
    memcpy (etag, obj.etag, 128);
  else if (tried) {
    int landed = head_landed (p, etag);
    if (landed == 1)
      r = 0;
    if ((*unknown = landed == -1))
      return err_prefix ("export %s: the put of volume.json failed, maybe "
                         "after it landed, and it cannot be read again",
                         head->export_id);
  }
  if (r == -1 && errno == ESTALE)
    return err_set (ESTALE, "export %s: volume.json changed during the "
                    "publish (%s); snapshot %s was not published",
                    head->export_id, atomic_load (&p->v->lost)
                    ? "another host has taken the export over: the local "
                    "writes are kept, and refused from now on"
                    : "another writer?", p->j.snapshot_id);
  if (r == -1)
    return -1;
  CRASH_POINT ("publish.after_head");
  remote_put_refs (env, head);
  return 0;
}

/* Step 1: the remote head must be the one the export is based on. */
static int
check_head (struct publish *p)
{
  struct volume *v = p->v;
  struct volume_head cur;

  if (remote_fetch_head (v->env, v->export_id, &cur, p->etag) == -1)
    return -1;
  {
    RDLOCK_FOR_SCOPE (&v->mlock);
    p->old_head = v->head;
  }
  if (cur.epoch != p->old_head.epoch) {
    atomic_store (&v->lost, true);      /* writes stop too */
    return err_set (ESTALE, "export %s: the head carries owner epoch %ju, "
                    "this host's is %ju: another host has taken the export "
                    "over.  Refusing to publish; the local writes are kept",
                    v->export_id, (uintmax_t) cur.epoch,
                    (uintmax_t) p->old_head.epoch);
  }
  if (cur.generation != p->old_head.generation ||
      strcmp (cur.snapshot_id, p->old_head.snapshot_id) != 0)
    return err_set (ESTALE, "export %s: the remote head is generation %ju "
                    "(snapshot %s) but this export is based on generation "
                    "%ju; another writer publishes it.  Refusing to publish",
                    v->export_id, (uintmax_t) cur.generation,
                    cur.snapshot_id[0] ? cur.snapshot_id : "none",
                    (uintmax_t) p->old_head.generation);
  return 0;
}

/* Steps 2 to 7. */
static int
publish_frozen (struct publish *p, int64_t n, struct publish_result *out)
{
  struct volume *v = p->v;
  struct volume_head head = p->old_head;
  struct manifest *m = NULL;
  struct meta_base published = { .generation = 0 };
  char etag[128];
  bool head_moved = false, unknown = false;

  p->n = n;
  p->list = calloc (n ? n : 1, sizeof *p->list);
  p->packed = calloc (n ? n : 1, sizeof *p->packed);
  if (p->list == NULL || p->packed == NULL) {
    err_set (ENOMEM, "publish %s: out of memory", v->name);
    goto err;
  }
  if (journal_write (v->cache_dir, &p->j) == -1)
    goto err;
  CRASH_POINT ("publish.after_journal");
  if (upload_geometry (p) == -1 || pack_blob (p) == -1)
    goto err;
  CRASH_POINT ("publish.after_blob");
  m = build_manifest (p);
  if (m == NULL || put_manifest (p, m) == -1)
    goto err;
  CRASH_POINT ("publish.after_manifest");
  if (publish_put_summary (v->env, m) == -1)
    goto err;
  CRASH_POINT ("publish.after_summary");

  head.generation = p->j.generation;
  head.image_size = p->size;
  memcpy (head.snapshot_id, p->j.snapshot_id, sizeof head.snapshot_id);
  time_now_iso8601 (head.updated);
  if (publish_delay_ms > 0)
    usleep (publish_delay_ms * 1000);
  /* Our lease must still hold: a host that lapsed may have lost the
   * export already (its fence would refuse the put anyway).
   */
  if (reserve_hashes (p, m) == -1 || volume_check_owner (v) == -1 ||
      move_head (p, &head, etag, &unknown) == -1)
    goto err;
  head_moved = true;
  CRASH_POINT ("publish.after_refs");
  volume_set_published (v, &head, etag, m, &p->hashes);
  m = NULL;
  published.generation = head.generation;
  published.epoch = head.epoch;
  memcpy (published.snapshot_id, head.snapshot_id,
          sizeof published.snapshot_id);
  if (cache_publish_end (v->cache, true, &published) == -1)
    log_warn ("%s: %s (the snapshot is published, but its chunks stay "
              "dirty on disk and are published again)", v->name,
              err_msg ());
  journal_remove (v->cache_dir);
  journal_sweep (v->env, v->export_id);
  out->created = true;
  out->generation = p->j.generation;
  memcpy (out->snapshot_id, p->j.snapshot_id, sizeof out->snapshot_id);
  return 0;

 err:
  manifest_free (m);
  if (head_moved)
    return -1;
  cache_publish_end (v->cache, false, NULL);
  if (unknown) {
    /* Keep the objects and the journal: the next publish (or restart)
     * settles it once volume.json can be read again.
     */
    log_error ("%s: %s; cannot tell whether volume.json now names snapshot "
               "%s, which is kept until that is known", v->name, err_msg (),
               p->j.snapshot_id);
    return -1;
  }
  if (journal_discard (v->env, &p->j))
    journal_remove (v->cache_dir);
  return -1;
}

/* A bitmap of the chunks the current manifest lists, built from its
 * extents.  No lock: only a publish replaces the manifest, and this is
 * the export's only publish.
 */
static uint64_t *
listed_chunks (struct volume *v)
{
  uint64_t chunks = chunk_count (cache_size (v->cache), v->head.chunk_size);
  uint64_t *map = calloc (bitmap_words (chunks) ? bitmap_words (chunks) : 1, 8);

  if (map == NULL) {
    err_set (ENOMEM, "compact %s: out of memory", v->name);
    return NULL;
  }
  for (size_t e = 0; v->manifest && e < v->manifest->nextents; e++)
    for (uint64_t k = 0; k < v->manifest->extents[e].count; k++)
      bitmap_set (map, v->manifest->extents[e].chunk + k);
  return map;
}

/* Settle a journal an earlier publish of this process left because it
 * could not tell whether its head move landed: now that volume.json can
 * be read, either adopt that snapshot or remove its objects.
 */
static int
settle_journal (struct volume *v)
{
  struct volume_head cur;
  struct manifest *m;
  char etag[128], landed[SNAPSHOT_ID_LEN + 1];

  if (!journal_exists (v->cache_dir))
    return 0;
  if (remote_fetch_head (v->env, v->export_id, &cur, etag) == -1 ||
      journal_recover (v->env, &cur, v->cache_dir, landed) == -1)
    return -1;
  /* Its objects could not all be removed: a new journal must not take
   * its place, or they would never be.
   */
  if (journal_exists (v->cache_dir))
    return err_set (EIO, "%s: the objects of an earlier failed publish "
                    "could not all be removed yet; try again", v->name);
  if (strcmp (landed, cur.snapshot_id) != 0)
    return 0;         /* not ours, or superseded: check_head refuses next */
  if ((m = remote_fetch_current (v->env, &cur)) == NULL)
    return -1;
  volume_set_published (v, &cur, etag, m, NULL);
  log_info ("%s: snapshot %s turned out to be published", v->name,
            cur.snapshot_id);
  /* It is the head: its chunks stay resident, so readers may go on. */
  return volume_settle_landed (v, landed);
}

static int
publish (struct volume *v, bool base, const char *label,
         struct publish_result *out)
{
  /* No resize runs with a publish (both are operations of V). */
  struct publish p = { .v = v, .base = base, .label = label,
                       .size = cache_size (v->cache) };
  CLEANUP_FREE uint64_t *listed = NULL;
  int64_t n;
  int r = -1;

  memset (out, 0, sizeof *out);
  if (settle_journal (v) == -1 || check_head (&p) == -1)
    return -1;
  if (base && (listed = listed_chunks (v)) == NULL)
    return -1;
  n = cache_publish_begin (v->cache, listed);
  if (n == -1)
    return -1;
  if (n == 0 && !base && p.size == p.old_head.image_size) {
    /* Nothing dirty, no resize: no new snapshot, no new object. */
    cache_publish_end (v->cache, false, NULL);
    out->generation = p.old_head.generation;
    memcpy (out->snapshot_id, p.old_head.snapshot_id, sizeof out->snapshot_id);
    return 0;
  }
  snprintf (p.j.export_id, sizeof p.j.export_id, "%s", v->export_id);
  id_snapshot_new_after (p.j.snapshot_id, p.old_head.snapshot_id);
  p.j.kind = base ? MANIFEST_BASE : MANIFEST_DELTA;
  p.j.generation = p.old_head.generation + 1;
  p.j.pieces = 1;
  memcpy (p.j.previous, p.old_head.snapshot_id, sizeof p.j.previous);
  p.blob_rel = key_blob_rel (v->export_id, p.j.snapshot_id, p.j.kind);
  p.manifest_key = key_manifest (v->env->root, v->export_id, p.j.snapshot_id);
  if (p.blob_rel && p.manifest_key)
    r = publish_frozen (&p, n, out);
  else
    cache_publish_end (v->cache, false, NULL);
  free (p.blob_rel);
  free (p.manifest_key);
  free (p.list);
  free (p.packed);
  free (p.piece_size);
  free (p.own);
  return r;
}

int
publish_begin (struct volume *v, enum volume_op op)
{
  assert (op == VOLUME_SNAPSHOT || op == VOLUME_COMPACT ||
          op == VOLUME_ROLLBACK);
  if (volume_check_owner (v) == -1)
    return -1;
  return volume_op_begin (v, op);
}

/* The rollback's new manifest: snapshot P->j's, a copy of M (the target's)
 * with the new identity.  It writes no blob, so it is a delta (a base's
 * base_ref stays: the blob it grew from), and a clone's first snapshot
 * loses cloned_from (the clone's markers cover every snapshot of it).
 */
static void
rollback_identity (struct publish *p, struct manifest *m)
{
  memcpy (m->snapshot_id, p->j.snapshot_id, sizeof m->snapshot_id);
  memcpy (m->parent, p->old_head.snapshot_id, sizeof m->parent);
  m->kind = MANIFEST_DELTA;
  m->cloned_export[0] = m->cloned_snapshot[0] = '\0';
  m->generation = p->j.generation;
  time_now_iso8601 (m->created);
  snprintf (m->label, sizeof m->label, "%s", p->label ? p->label : "");
}

/* The rollback's remote part, writes frozen: journal, manifest M (a copy
 * of TARGET's), summary, TARGET still there, head (into *HEAD, ETAG).
 * On failure *UNKNOWN tells whether the head may have moved.  0 or -1.
 */
static int
rollback_publish (struct publish *p, struct manifest *m, const char *target,
                  struct volume_head *head, char etag[128], bool *unknown)
{
  struct volume *v = p->v;
  CLEANUP_FREE char *json = manifest_format (m);
  CLEANUP_FREE char *key = key_manifest (v->env->root, v->export_id,
                                         m->snapshot_id);

  if (json == NULL || key == NULL)
    return err_set (ENOMEM, "out of memory");
  if (journal_write (v->cache_dir, &p->j) == -1)
    return -1;
  CRASH_POINT ("rollback.after_journal");
  if (store_put (v->env->st, key, json, strlen (json), STORE_PUT_ANY, NULL,
                 NULL) == -1)
    return -1;
  CRASH_POINT ("rollback.after_manifest");
  if (publish_put_summary (v->env, m) == -1)
    return -1;
  CRASH_POINT ("rollback.after_summary");
  /* A delete of the target racing us: see snapshots.c, as for a clone. */
  if (publish_source_there (v->env, v->export_id, target,
                            "rolled back to") == -1)
    return -1;
  *head = p->old_head;
  head->generation = p->j.generation;
  head->image_size = m->image_size;
  memcpy (head->snapshot_id, m->snapshot_id, sizeof head->snapshot_id);
  time_now_iso8601 (head->updated);
  if (volume_check_owner (v) == -1 ||
      move_head (p, head, etag, unknown) == -1)
    return -1;
  CRASH_POINT ("rollback.after_refs");
  return 0;
}

int
publish_rollback (struct volume *v, const char *snapshot_id, bool discard,
                  bool shrink, const char *label, struct publish_result *out)
{
  struct publish p = { .v = v, .label = label };
  struct manifest *m = NULL;
  struct volume_head head;
  struct meta_base old;
  char etag[128];
  bool unknown = false;
  uint64_t dirty;
  int r = -1;

  assert (volume_current_op (v) == VOLUME_ROLLBACK);
  memset (out, 0, sizeof *out);
  if (settle_journal (v) == -1 || check_head (&p) == -1 ||
      (m = remote_fetch_manifest (v->env, v->export_id, snapshot_id,
                                  0)) == NULL)
    goto out;
  /* After the settling, which may make dirty chunks clean. */
  dirty = cache_freeze (v->cache, true);
  /* Checked before the head moves: the cache takes the size after. */
  if (m->image_size < cache_size (v->cache) && !shrink) {
    err_set (EBUSY, "snapshot %s is smaller than the image (%ju bytes, not "
             "%ju): clients are connected, which know the larger size",
             snapshot_id, (uintmax_t) m->image_size,
             (uintmax_t) cache_size (v->cache));
    goto out;
  }
  if (!cache_fits (v->cache, m->image_size)) {
    err_set (EFBIG, "snapshot %s is %ju bytes, which this export's cache "
             "cannot hold (its bitmaps were sized for %ju bytes)",
             snapshot_id, (uintmax_t) m->image_size,
             (uintmax_t) cache_size (v->cache));
    goto out;
  }
  volume_head_base (&p.old_head, &old);
  if (dirty > 0 && !discard) {
    err_set (EBUSY, "%ju chunk%s written and not published: snapshot "
             "first, or roll back with discard_local (lazyvolctl "
             "--discard-local) to drop %s", (uintmax_t) dirty,
             dirty == 1 ? " is" : "s are", dirty == 1 ? "it" : "them");
    goto out;
  }
  /* Writes are frozen: dropping them now leaves none over the old head
   * when it moves, so that a crash after the move finds no dirty chunk
   * (clean ones are dropped at an unclean start).  A pending resize is
   * dropped with them, as a reset drops it: the old head's size, so that
   * if the rollback fails the cache is the old head's image again (the
   * resize made the old short last chunk dirty, whole; kept at the
   * larger size without that bit, it would be fetched whole from a blob
   * that holds its short version).
   */
  if (dirty > 0 && p.old_head.image_size < cache_size (v->cache) &&
      !shrink) {
    err_set (EBUSY, "a resize of %s to %ju bytes is not published, and "
             "clients that know that size are connected: disconnect them, "
             "or snapshot first", v->name, (uintmax_t) cache_size (v->cache));
    goto out;
  }
  if (dirty > 0) {
    if (cache_reset (v->cache, &old, p.old_head.image_size) == -1)
      goto out;
    log_info ("%s: %ju unpublished chunks discarded for the rollback",
              v->name, (uintmax_t) dirty);
  }
  snprintf (p.j.export_id, sizeof p.j.export_id, "%s", v->export_id);
  id_snapshot_new_after (p.j.snapshot_id, p.old_head.snapshot_id);
  p.j.kind = MANIFEST_DELTA;
  p.j.generation = p.old_head.generation + 1;
  p.j.pieces = 1;
  memcpy (p.j.previous, p.old_head.snapshot_id, sizeof p.j.previous);
  rollback_identity (&p, m);
  if (rollback_publish (&p, m, snapshot_id, &head, etag, &unknown) == -1) {
    if (unknown)
      /* The head may be the new snapshot: serve none of the old image
       * (at the old head's size, for the reason above).
       */
      cache_reset (v->cache, &old, p.old_head.image_size);
    else if (journal_discard (v->env, &p.j))
      journal_remove (v->cache_dir);
    goto out;
  }
  r = volume_adopt (v, &head, etag, m);
  m = NULL;
  journal_remove (v->cache_dir);
  out->created = true;
  out->generation = head.generation;
  memcpy (out->snapshot_id, head.snapshot_id, sizeof out->snapshot_id);
  log_info ("%s: rolled back to snapshot %s as snapshot %s (generation %ju)",
            v->name, snapshot_id, head.snapshot_id,
            (uintmax_t) head.generation);

 out:
  manifest_free (m);
  cache_freeze (v->cache, false);
  if (r == -1)
    err_prefix ("rollback %s", v->name);
  else
    volume_op_published (v, out->snapshot_id, out->generation, true);
  volume_op_end (v, r == 0);
  return r;
}

int
publish_run (struct volume *v, bool compact, const char *label,
             struct publish_result *out)
{
  uint64_t t0 = time_mono_ns ();
  int r;

  assert (volume_current_op (v) == (compact ? VOLUME_COMPACT
                                    : VOLUME_SNAPSHOT));
  r = publish (v, compact, label, out);
  if (r == -1)
    err_prefix ("%s %s", compact ? "compact" : "snapshot", v->name);
  else {
    volume_op_published (v, out->snapshot_id, out->generation, out->created);
    if (out->created) {
      uint64_t ns = time_mono_ns () - t0;

      volume_count_publish (v, ns);
      log_info ("%s: published %s snapshot %s (generation %ju) in %.3f s",
                v->name, compact ? "base" : "delta", out->snapshot_id,
                (uintmax_t) out->generation, ns / 1e9);
    }
  }
  volume_op_end (v, r == 0);
  return r;
}
