/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: reading manifest.json as it arrives (see format.h and
 * lazyvol-format(5)).
 *
 * A manifest grows with the image (a million listed chunks is 60 MB of
 * text), so it is never held whole: the bytes go through the push
 * tokenizer of jsontok.c as the store delivers them, and each token
 * lands in the manifest being built (manifest.c), which keeps 32 bytes a
 * listed chunk and one struct an extent.  There is no buffer of the
 * document and no tree.
 *
 * The document is hostile input.  What is checked, and when:
 *  - size: at most manifest_max_size of the image's chunks, checked
 *    against the bytes fed so far as soon as they exceed the limit known
 *    so far (the largest of all, until image_size and chunk_size came);
 *  - each value as it arrives: its JSON type (named as json-c names
 *    them), integers in [0, INT64_MAX] and their field's range, strings
 *    without NUL, ids, times, kinds and blob keys valid, each hash 32
 *    bytes in the version's encoding; a known member given twice;
 *  - at the end of each object, what needs the whole object: its
 *    required members, and for an extent what needs other members of the
 *    manifest (sorted after the previous extent and disjoint from it,
 *    inside the image, its blob one of the blobs, its bytes inside that
 *    blob, one hash per chunk), once image_size, chunk_size and blobs
 *    have come; at the end of the manifest, the members it requires, its
 *    parent not itself, cloned_from exactly for a clone, and the extents
 *    still unchecked.  lazyvol writes those members before the extents,
 *    so a bad extent fails where it is; members may come in any order.
 * Unknown members, at any level, are skipped whatever their value.
 *
 * The messages are those lazyvol gave when it read manifests with json-c:
 * "manifest vm01/0195…: extents[3]: chunk 17 overlaps the previous
 * extent".  A document whose version is newer than this code reads must
 * say so, rather than fail on something the new version changed: an
 * error found before the version is known is kept, and the rest of the
 * document only scanned for its version; a newer one is the error, else
 * the first.  Until the version is known a hash is read by its length
 * (64 hex digits in version 1, 44 base64 characters in version 2); the
 * version then says whether the encodings met were its own.
 *
 * Extents' checks compare an extent with the one before it, so they run
 * in order, from the model: nchecked counts those done.  The model keeps
 * a blob index in 32 bits; the first extent whose index is larger (never
 * a valid index) keeps the real value here, for its message.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "format-impl.h"
#include "jsontok.h"
#include "util.h"

/* manifest_max_size: a fixed part, and bytes per chunk of the image.  A
 * chunk in an extent of its own, in a blob of its own, with the longest
 * ids and numbers, takes about 400 bytes as manifest_format writes it.
 */
#define MANIFEST_FIXED_MAX (1024 * 1024)
#define MANIFEST_CHUNK_MAX 512

/* The members the reader knows. */
enum field {
  F_SKIP,                       /* any other: its value is skipped */
  F_FORMAT, F_VERSION, F_EXPORT_ID, F_SNAPSHOT_ID, F_PARENT, F_KIND,
  F_GENERATION, F_CREATED, F_IMAGE_SIZE, F_CHUNK_SIZE, F_BASE_REF,
  F_CLONED_FROM, F_LABEL, F_BLOBS, F_EXTENTS,
  F_FROM_EXPORT_ID, F_FROM_SNAPSHOT_ID,         /* in cloned_from */
  F_KEY, F_SIZE,                                /* in a blob */
  F_CHUNK, F_COUNT, F_BLOB, F_OFFSET, F_SHA256, /* in an extent */
  F_CHUNKS, F_BYTES,                            /* of a summary */
  F_END
};

#define BIT(f) (UINT32_C (1) << (f))

/* Where the reader is: in the innermost container it knows. */
enum where {
  W_NONE, W_ROOT, W_FROM, W_BLOBS, W_BLOB, W_EXTENTS, W_EXTENT, W_SHA,
  W_DONE,
};

static const struct field_info {
  const char *name;
  enum where in;                /* the object it is a member of */
  enum jsontok_type type;
  bool nullable;                /* null is allowed (absent for cloned_from) */
  uint64_t min, max;            /* an integer's range */
} fields[F_END] = {
  [F_FORMAT] = { "format", W_ROOT, JSONTOK_STRING },
  [F_VERSION] = { "version", W_ROOT, JSONTOK_INT, false, 1, INT64_MAX },
  [F_EXPORT_ID] = { "export_id", W_ROOT, JSONTOK_STRING },
  [F_SNAPSHOT_ID] = { "snapshot_id", W_ROOT, JSONTOK_STRING },
  [F_PARENT] = { "parent", W_ROOT, JSONTOK_STRING, true },
  [F_KIND] = { "kind", W_ROOT, JSONTOK_STRING },
  [F_GENERATION] = { "generation", W_ROOT, JSONTOK_INT, false, 1,
                     INT64_MAX },
  [F_CREATED] = { "created", W_ROOT, JSONTOK_STRING },
  [F_IMAGE_SIZE] = { "image_size", W_ROOT, JSONTOK_INT, false, 1,
                     IMAGE_SIZE_MAX },
  [F_CHUNK_SIZE] = { "chunk_size", W_ROOT, JSONTOK_INT, false,
                     CHUNK_SIZE_MIN, CHUNK_SIZE_MAX },
  [F_BASE_REF] = { "base_ref", W_ROOT, JSONTOK_STRING, true },
  [F_CLONED_FROM] = { "cloned_from", W_ROOT, JSONTOK_OBJECT, true },
  [F_LABEL] = { "label", W_ROOT, JSONTOK_STRING, true },
  [F_BLOBS] = { "blobs", W_ROOT, JSONTOK_ARRAY },
  [F_EXTENTS] = { "extents", W_ROOT, JSONTOK_ARRAY },
  [F_FROM_EXPORT_ID] = { "export_id", W_FROM, JSONTOK_STRING },
  [F_FROM_SNAPSHOT_ID] = { "snapshot_id", W_FROM, JSONTOK_STRING },
  [F_KEY] = { "key", W_BLOB, JSONTOK_STRING },
  [F_SIZE] = { "size", W_BLOB, JSONTOK_INT, false, 0, INT64_MAX },
  [F_CHUNK] = { "chunk", W_EXTENT, JSONTOK_INT, false, 0, INT64_MAX },
  [F_COUNT] = { "count", W_EXTENT, JSONTOK_INT, false, 1, INT64_MAX },
  [F_BLOB] = { "blob", W_EXTENT, JSONTOK_INT, false, 0, INT64_MAX },
  [F_OFFSET] = { "offset", W_EXTENT, JSONTOK_INT, false, 0, INT64_MAX },
  [F_SHA256] = { "sha256", W_EXTENT, JSONTOK_ARRAY },
  [F_CHUNKS] = { "chunks", W_ROOT, JSONTOK_INT, false, 0, INT64_MAX },
  [F_BYTES] = { "bytes", W_ROOT, JSONTOK_INT, false, 0, INT64_MAX },
};

/* A summary.json is read by the same reader: the manifest's members but
 * the extents, and its own chunks and bytes.
 */
static bool
field_known (enum field f, bool summary)
{
  if (f == F_EXTENTS)
    return !summary;
  if (f == F_CHUNKS || f == F_BYTES)
    return summary;
  return true;
}

/* Where the first hash in an encoding was, while the version is unknown. */
struct hash_at {
  bool met;
  size_t extent, hash;
};

struct manifest_reader {
  struct format_doc doc;        /* doc.at is filled in for a message */
  const char *export_id, *snapshot_id;  /* expected, or NULL */
  struct jsontok *tok;
  bool summary;                 /* a summary.json, not a manifest */
  struct manifest *m;           /* being built */
  uint64_t fed;                 /* bytes fed so far */
  bool failed;

  enum where where;
  enum field pending;           /* the member whose value comes next */
  unsigned skip;                /* containers open in a skipped value */
  uint32_t seen;                /* BIT (F): member F of the manifest met */
  uint32_t elem_seen;           /* the same in the object being read */
  size_t index;                 /* which blob or extent is being read */
  size_t nhash;                 /* hashes in the sha256 being read */
  uint64_t version;             /* 0 until read */
  bool has_from;                /* cloned_from is an object */
  bool blobs_done;              /* the blobs array has ended */
  bool foreign;                 /* "format" is not lazyvol-manifest */

  char key[MANIFEST_BLOB_KEY_MAX];      /* the blob being read */
  uint64_t size;
  uint64_t chunk, count, blob, offset;  /* the extent being read */
  size_t hash_start;            /* its first hash in m->sha */

  size_t nchecked;              /* extents checked against the others */
  bool wide;                    /* an extent's blob did not fit 32 bits: */
  size_t wide_index;            /*   the first such extent */
  uint64_t wide_blob;           /*   and its blob */
  struct hash_at hex, b64;      /* hashes met before the version */
  struct hash_at bad;           /* not a hash, met before the version */

  bool deferred;                /* an error waits for the version: */
  struct err_saved saved;       /*   this one */
};

/* The newest version of the document this code reads. */
static uint64_t
newest_version (const struct manifest_reader *r)
{
  return r->summary ? SUMMARY_FORMAT_VERSION : MANIFEST_FORMAT_VERSION;
}

size_t
manifest_max_size (uint64_t chunk_count)
{
  /* At most 2 GiB: at 54 bytes a chunk, 40 million chunks. */
  if (chunk_count > (INT_MAX - MANIFEST_FIXED_MAX) / MANIFEST_CHUNK_MAX)
    return INT_MAX;
  return MANIFEST_FIXED_MAX + chunk_count * MANIFEST_CHUNK_MAX;
}

/* Messages. */

/* The document, its element AT set for a message about element INDEX of
 * what W is in.
 */
static const struct format_doc *
doc_at (struct manifest_reader *r, enum where w, size_t index)
{
  switch (w) {
  case W_FROM:
    strcpy (r->doc.at, "cloned_from");
    break;
  case W_BLOBS: case W_BLOB:
    snprintf (r->doc.at, sizeof r->doc.at, "blobs[%zu]", index);
    break;
  case W_EXTENTS: case W_EXTENT: case W_SHA:
    snprintf (r->doc.at, sizeof r->doc.at, "extents[%zu]", index);
    break;
  default:
    r->doc.at[0] = '\0';
  }
  return &r->doc;
}

static const struct format_doc *
doc (struct manifest_reader *r)
{
  return doc_at (r, r->where, r->index);
}

/* Record what is wrong with element INDEX of W, or with where the reader
 * is, as EBADMSG.  Return -1.
 */
static int __attribute__ ((__format__ (__printf__, 4, 5)))
fail_at (struct manifest_reader *r, enum where w, size_t index,
         const char *fmt, ...)
{
  va_list ap;
  int ret;

  va_start (ap, fmt);
  ret = format_vbad (doc_at (r, w, index), fmt, ap);
  va_end (ap);
  return ret;
}

static int __attribute__ ((__format__ (__printf__, 2, 3)))
fail (struct manifest_reader *r, const char *fmt, ...)
{
  va_list ap;
  int ret;

  va_start (ap, fmt);
  ret = format_vbad (doc (r), fmt, ap);
  va_end (ap);
  return ret;
}

/* Member F must be among SEEN, in element INDEX of W. */
static int
require (struct manifest_reader *r, enum where w, size_t index,
         uint32_t seen, enum field f)
{
  if (seen & BIT (f))
    return 0;
  return fail_at (r, w, index, "missing field \"%s\"", fields[f].name);
}

/* Hash J of extent I is not one, as VERSION (0: unknown) writes them. */
static int
bad_hash (struct manifest_reader *r, size_t i, size_t j, uint64_t version)
{
  if (version == 0)
    r->bad = (struct hash_at) { .met = true, .extent = i, .hash = j };
  return fail_at (r, W_EXTENT, i, "sha256[%zu]: not a string of %s", j,
                  version == 1 ? "64 hexadecimal digits"
                  : version == 2 ? "44 base64 characters"
                  : "64 hexadecimal digits or 44 base64 characters");
}

/* Checks that need more than one member. */

/* Have image_size and chunk_size been read?  (Neither can be 0.) */
static bool
geometry_known (const struct manifest_reader *r)
{
  return r->m->image_size && r->m->chunk_size;
}

/* The size cap: once the geometry is known, that of this image. */
static int
check_size (struct manifest_reader *r)
{
  bool geometry = geometry_known (r);
  uint64_t n = geometry ? chunk_count (r->m->image_size, r->m->chunk_size)
    : UINT64_MAX;
  size_t max = manifest_max_size (n);   /* a summary is never larger */

  if (r->fed <= max)
    return 0;
  if (!geometry)
    return fail_at (r, W_ROOT, 0, "%" PRIu64 " bytes is larger than the "
                    "limit of %zu", r->fed, max);
  return fail_at (r, W_ROOT, 0, "%" PRIu64 " bytes is larger than the limit "
                  "of %zu for %" PRIu64 " chunks", r->fed, max, n);
}

/* Extent I of the model: a run inside the image, after the previous
 * extent, its bytes inside its blob, one hash a chunk.  Every bound is
 * checked by subtraction from a value already known to be larger, so
 * nothing can overflow.
 */
static int
check_extent (struct manifest_reader *r, size_t i)
{
  const struct manifest *m = r->m;
  const struct manifest_extent *e = &m->extents[i];
  const struct manifest_extent *prev = i ? &m->extents[i - 1] : NULL;
  uint64_t nchunks = chunk_count (m->image_size, m->chunk_size);
  uint64_t blob = r->wide && r->wide_index == i ? r->wide_blob : e->blob;
  uint64_t bytes, blob_size;
  size_t nhash = (i + 1 < m->nextents ? e[1].hash : m->nsha) - e->hash;

  if (prev && e->chunk < prev->chunk)
    return fail_at (r, W_EXTENT, i, "chunk %" PRIu64 " comes before the "
                    "previous extent's chunk %" PRIu64 " (extents must be "
                    "sorted)", e->chunk, prev->chunk);
  if (prev && e->chunk - prev->chunk < prev->count)
    return fail_at (r, W_EXTENT, i, "chunk %" PRIu64 " overlaps the "
                    "previous extent", e->chunk);
  if (e->chunk >= nchunks)
    return fail_at (r, W_EXTENT, i, "chunk %" PRIu64 " is beyond the image "
                    "(%" PRIu64 " chunks)", e->chunk, nchunks);
  if (e->count > nchunks - e->chunk)
    return fail_at (r, W_EXTENT, i, "chunks %" PRIu64 "-%" PRIu64 " go "
                    "beyond the image (%" PRIu64 " chunks)", e->chunk,
                    e->chunk + e->count - 1, nchunks);
  if (blob >= m->nblobs)
    return fail_at (r, W_EXTENT, i, "blob %" PRIu64 " does not exist (%zu "
                    "blobs)", blob, m->nblobs);
  bytes = manifest_run_bytes (m, e->chunk, e->count);
  blob_size = m->blobs[blob].size;
  if (e->offset > blob_size || bytes > blob_size - e->offset)
    return fail_at (r, W_EXTENT, i, "%" PRIu64 " bytes at offset %" PRIu64
                    " go beyond the end of blob %" PRIu64 " (%" PRIu64
                    " bytes)", bytes, e->offset, blob, blob_size);
  if (nhash != e->count)
    return fail_at (r, W_EXTENT, i, "sha256: %zu hashes for %" PRIu64
                    " chunks", nhash, e->count);
  return 0;
}

/* Check the extents read so far, if the image and the blobs are known. */
static int
catch_up (struct manifest_reader *r)
{
  if (!r->blobs_done || !geometry_known (r))
    return 0;
  for (; r->nchecked < r->m->nextents; r->nchecked++)
    if (check_extent (r, r->nchecked) == -1)
      return -1;
  return 0;
}

/* The end of a blob: it joins the model. */
static int
blob_end (struct manifest_reader *r)
{
  if (require (r, W_BLOB, r->index, r->elem_seen, F_KEY) == -1 ||
      require (r, W_BLOB, r->index, r->elem_seen, F_SIZE) == -1 ||
      manifest_add_blob (r->m, r->key, r->size) == -1)
    return -1;
  r->where = W_BLOBS;
  r->index++;
  return 0;
}

/* The end of an extent: it joins the model, to be checked. */
static int
extent_end (struct manifest_reader *r)
{
  static const enum field required[] = {
    F_CHUNK, F_COUNT, F_BLOB, F_OFFSET, F_SHA256,
  };

  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
    if (require (r, W_EXTENT, r->index, r->elem_seen, required[i]) == -1)
      return -1;
  if (r->blob > UINT32_MAX && !r->wide) {
    r->wide = true;
    r->wide_index = r->index;
    r->wide_blob = r->blob;
  }
  if (manifest_append_extent (r->m, &(struct manifest_extent) {
        .chunk = r->chunk, .count = r->count,
        .blob = r->blob > UINT32_MAX ? UINT32_MAX : r->blob,
        .offset = r->offset, .hash = r->hash_start }) == -1)
    return -1;
  r->where = W_EXTENTS;
  r->index++;
  return catch_up (r);
}

/* The end of the manifest. */
static int
manifest_end (struct manifest_reader *r)
{
  static const enum field required[] = {
    F_FORMAT, F_VERSION, F_EXPORT_ID, F_SNAPSHOT_ID, F_PARENT, F_KIND,
    F_GENERATION, F_CREATED, F_IMAGE_SIZE, F_CHUNK_SIZE,
  };
  const struct manifest *m = r->m;

  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
    if (require (r, W_ROOT, 0, r->seen, required[i]) == -1)
      return -1;
  if (strcmp (m->parent, m->snapshot_id) == 0)
    return fail (r, "parent: the snapshot is its own parent");
  if (r->has_from != (m->kind == MANIFEST_CLONE))
    return fail (r, r->has_from ? "cloned_from: only a clone has it, this "
                 "is a %s" : "cloned_from: missing in a %s",
                 manifest_kind_name (m->kind));
  if (require (r, W_ROOT, 0, r->seen, F_BLOBS) == -1 ||
      (!r->summary &&
       require (r, W_ROOT, 0, r->seen, F_EXTENTS) == -1) ||
      (r->summary &&
       (require (r, W_ROOT, 0, r->seen, F_CHUNKS) == -1 ||
        require (r, W_ROOT, 0, r->seen, F_BYTES) == -1)) ||
      catch_up (r) == -1)
    return -1;
  /* What a summary says must be what its blobs and image allow. */
  if (r->summary &&
      m->summary_chunks > chunk_count (m->image_size, m->chunk_size))
    return fail (r, "chunks: %" PRIu64 " is more than the image's %" PRIu64,
                 m->summary_chunks,
                 chunk_count (m->image_size, m->chunk_size));
  if (r->summary && m->summary_bytes != manifest_own_bytes (m))
    return fail (r, "bytes: %" PRIu64 ", but the snapshot's own blobs hold "
                 "%" PRIu64, m->summary_bytes, manifest_own_bytes (m));
  r->where = W_DONE;
  return 0;
}

/* Values. */

/* A hash, element R->nhash of the sha256 of extent R->index. */
static int
hash (struct manifest_reader *r, const struct jsontok_token *t)
{
  size_t j = r->nhash++;
  unsigned char sha[32];
  struct hash_at *at;
  bool ok;

  /* The length first: a \u0000 would end the text for the decoders. */
  if (t->type != JSONTOK_STRING || t->str == NULL)
    return bad_hash (r, r->index, j, r->version);
  if (r->version == 1 || (r->version == 0 && t->len == 64)) {
    ok = t->len == 64 && hex_decode (t->str, sha, 32);
    at = &r->hex;
  }
  else {
    ok = t->len == 44 && base64_decode (t->str, sha, 32);
    at = &r->b64;
  }
  if (!ok)
    return bad_hash (r, r->index, j, r->version);
  if (r->version == 0 && !at->met)
    *at = (struct hash_at) { .met = true, .extent = r->index, .hash = j };
  return manifest_append_sha (r->m, sha);
}

/* The version: this code must read it, and so the hashes met before it. */
static int
version (struct manifest_reader *r, uint64_t v)
{
  const struct hash_at *other = v == 1 ? &r->b64 : &r->hex;

  if (format_check_version (doc (r), v, newest_version (r)) == -1)
    return -1;
  if (other->met)
    return bad_hash (r, other->extent, other->hash, v);
  r->version = v;
  return 0;
}

/* An integer V of field F, already in its range. */
static int
integer (struct manifest_reader *r, enum field f, uint64_t v)
{
  struct manifest *m = r->m;

  switch (f) {
  case F_VERSION: return version (r, v);
  case F_GENERATION: m->generation = v; return 0;
  case F_CHUNKS: m->summary_chunks = v; return 0;
  case F_BYTES: m->summary_bytes = v; return 0;
  case F_SIZE: r->size = v; return 0;
  case F_CHUNK: r->chunk = v; return 0;
  case F_COUNT: r->count = v; return 0;
  case F_BLOB: r->blob = v; return 0;
  case F_OFFSET: r->offset = v; return 0;
  case F_IMAGE_SIZE:
    m->image_size = v;
    break;
  case F_CHUNK_SIZE:
    if (format_check_chunk_size (doc (r), v) == -1)
      return -1;
    m->chunk_size = v;
    break;
  default:
    abort ();
  }
  /* image_size or chunk_size: the limit may be known now. */
  if (check_size (r) == -1)
    return -1;
  return catch_up (r);
}

/* An id S of field F, copied to OUT. */
static int
id (struct manifest_reader *r, enum field f, const char *s,
    bool (*valid) (const char *), const char *expect, char *out)
{
  if (format_check_id (doc (r), fields[f].name, s, valid, expect) == -1)
    return -1;
  strcpy (out, s);
  return 0;
}

/* A string S of field F, without NUL. */
static int
string (struct manifest_reader *r, enum field f, const char *s)
{
  struct manifest *m = r->m;
  unsigned piece;
  char p[72];

  switch (f) {
  case F_FORMAT:
    if (format_check_format (doc (r), r->summary ? "lazyvol-summary"
                             : "lazyvol-manifest", s) == -1) {
      r->foreign = true;
      return -1;
    }
    return 0;
  case F_EXPORT_ID:
    return id (r, f, s, id_export_valid, r->export_id, m->export_id);
  case F_SNAPSHOT_ID:
    return id (r, f, s, id_snapshot_valid, r->snapshot_id, m->snapshot_id);
  case F_PARENT:
    return id (r, f, s, id_snapshot_valid, NULL, m->parent);
  case F_FROM_EXPORT_ID:
    return id (r, f, s, id_export_valid, NULL, m->cloned_export);
  case F_FROM_SNAPSHOT_ID:
    return id (r, f, s, id_snapshot_valid, NULL, m->cloned_snapshot);
  case F_KIND:
    for (int k = MANIFEST_DELTA; k <= MANIFEST_CLONE; k++)
      if (strcmp (s, manifest_kind_name (k)) == 0) {
        m->kind = k;
        return 0;
      }
    return fail (r, "kind: \"%s\" is not delta, base or clone",
                 format_printable (s, p));
  case F_CREATED:
    if (format_check_time (doc (r), "created", s) == -1)
      return -1;
    strcpy (m->created, s);
    return 0;
  case F_BASE_REF:
    /* A base, and its first piece. */
    if (manifest_blob_kind (s, &piece) != MANIFEST_BASE || piece != 0)
      return fail (r, "base_ref: \"%s\" is not EXPORT/snapshots/SNAPSHOT/"
                   "base.blob", format_printable (s, p));
    m->base_ref = strdup (s);
    if (m->base_ref == NULL)
      return err_set (errno, "strdup: %m");
    return 0;
  case F_LABEL:
    if (!id_label_valid (s))
      return fail (r, "label: \"%s\" is not at most %d bytes of UTF-8 "
                   "without control characters", format_printable (s, p),
                   LABEL_MAX);
    strcpy (m->label, s);
    return 0;
  case F_KEY:
    if (manifest_blob_kind (s, NULL) == -1)
      return fail (r, "key: \"%s\" is not EXPORT/snapshots/SNAPSHOT/"
                   "delta.blob or base.blob (or a piece: KIND.N.blob)",
                   format_printable (s, p));
    strcpy (r->key, s);         /* a blob key fits */
    return 0;
  default:
    abort ();
  }
}

/* The value T of member F of the object being read. */
static int
member_value (struct manifest_reader *r, enum field f,
              const struct jsontok_token *t)
{
  const struct field_info *fi = &fields[f];
  bool negative = t->negative && t->value != 0;

  if (f == F_SKIP) {
    if (t->type == JSONTOK_OBJECT || t->type == JSONTOK_ARRAY)
      r->skip = 1;
    return 0;
  }
  if (t->type == JSONTOK_NULL && fi->nullable)
    return 0;                   /* as if absent: "" or NULL in the model */
  if (t->type != fi->type)
    return fail (r, "%s: expected %s, got %s", fi->name,
                 jsontok_type_name (fi->type), jsontok_type_name (t->type));
  switch (t->type) {
  case JSONTOK_INT:
    if (negative || t->value < fi->min || t->value > fi->max)
      return format_check_u64 (doc (r), fi->name, negative, t->value,
                               fi->min, fi->max);
    return integer (r, f, t->value);
  case JSONTOK_STRING:
    if (t->str == NULL)
      return fail (r, "%s: longer than %d bytes", fi->name,
                   JSONTOK_STRING_MAX);
    if (strlen (t->str) != t->len)
      return fail (r, "%s: contains a NUL character", fi->name);
    return string (r, f, t->str);
  case JSONTOK_OBJECT:          /* cloned_from */
    r->has_from = true;
    r->where = W_FROM;
    r->elem_seen = 0;
    return 0;
  case JSONTOK_ARRAY:
    r->where = f == F_BLOBS ? W_BLOBS : f == F_EXTENTS ? W_EXTENTS : W_SHA;
    r->index = f == F_SHA256 ? r->index : 0;
    r->nhash = 0;
    return 0;
  default:
    abort ();
  }
}

/* A member name T in the object being read. */
static int
name (struct manifest_reader *r, const struct jsontok_token *t)
{
  uint32_t *seen = r->where == W_ROOT ? &r->seen : &r->elem_seen;

  r->pending = F_SKIP;
  for (enum field f = F_FORMAT; f < F_END; f++)
    if (fields[f].in == r->where && field_known (f, r->summary) && t->str &&
        t->len == strlen (fields[f].name) &&
        memcmp (t->str, fields[f].name, t->len) == 0) {
      if (*seen & BIT (f))
        return fail (r, "%s: given twice", fields[f].name);
      *seen |= BIT (f);
      r->pending = f;
      break;
    }
  return 0;
}

/* A value T: a member's, or an element of an array. */
static int
value (struct manifest_reader *r, const struct jsontok_token *t)
{
  enum field f = r->pending;

  switch (r->where) {
  case W_NONE:                  /* the tokenizer's first: the object */
    r->where = W_ROOT;
    return 0;
  case W_BLOBS:
  case W_EXTENTS:
    if (t->type != JSONTOK_OBJECT)
      return fail (r, "expected object, got %s", jsontok_type_name (t->type));
    r->elem_seen = 0;
    r->hash_start = r->m->nsha;
    r->where = r->where == W_BLOBS ? W_BLOB : W_EXTENT;
    return 0;
  case W_SHA:
    return hash (r, t);
  default:
    r->pending = F_SKIP;
    return member_value (r, f, t);
  }
}

/* A token of the document. */
static int
token (struct manifest_reader *r, const struct jsontok_token *t)
{
  if (r->skip) {
    if (t->type == JSONTOK_OBJECT || t->type == JSONTOK_ARRAY)
      r->skip++;
    else if (t->type == JSONTOK_OBJECT_END || t->type == JSONTOK_ARRAY_END)
      r->skip--;
    return 0;
  }
  switch (t->type) {
  case JSONTOK_NAME:
    return name (r, t);
  case JSONTOK_OBJECT_END:
    switch (r->where) {
    case W_ROOT: return manifest_end (r);
    case W_FROM:
      if (require (r, W_FROM, 0, r->elem_seen, F_FROM_EXPORT_ID) == -1 ||
          require (r, W_FROM, 0, r->elem_seen, F_FROM_SNAPSHOT_ID) == -1)
        return -1;
      r->where = W_ROOT;
      return 0;
    case W_BLOB: return blob_end (r);
    case W_EXTENT: return extent_end (r);
    default: abort ();
    }
  case JSONTOK_ARRAY_END:
    if (r->where == W_SHA) {
      r->where = W_EXTENT;
      return 0;
    }
    if (r->where == W_BLOBS)
      r->blobs_done = true;
    r->where = W_ROOT;
    return catch_up (r);
  default:
    return value (r, t);
  }
}

/* After an error that waits for the version: only the root's "version"
 * matters now.  A newer version is the error; any other, the first one.
 */
static int
scan (struct manifest_reader *r, const struct jsontok_token *t)
{
  if (t->depth != 1)
    return 0;
  if (t->type == JSONTOK_NAME) {
    r->pending = t->str && strcmp (t->str, "version") == 0 &&
      t->len == strlen ("version") ? F_VERSION : F_SKIP;
    return 0;
  }
  if (r->pending != F_VERSION)
    return 0;
  r->deferred = false;          /* the error is decided here */
  if (t->type != JSONTOK_INT || t->negative || t->value == 0 ||
      t->value > INT64_MAX)
    return err_restore (&r->saved);
  if (format_check_version (doc_at (r, W_ROOT, 0), t->value,
                            newest_version (r)) == -1)
    return -1;
  /* A bad hash can now be named in the version's own terms. */
  if (r->bad.met)
    return bad_hash (r, r->bad.extent, r->bad.hash, t->value);
  return err_restore (&r->saved);
}

static int
on_token (void *opaque, const struct jsontok_token *t)
{
  struct manifest_reader *r = opaque;

  if (r->deferred)
    return scan (r, t);
  if (token (r, t) == 0)
    return 0;
  /* Keep a bad value's error until the version says whether this code
   * can read the document at all.
   */
  if (r->version == 0 && !(r->seen & BIT (F_VERSION)) && !r->foreign &&
      err_errno () == EBADMSG) {
    err_save (&r->saved);
    r->deferred = true;
    r->pending = F_SKIP;
    return 0;
  }
  return -1;
}

/* The reader failed: the first error, if one waited for the version. */
static int
stop (struct manifest_reader *r)
{
  r->failed = true;
  if (r->deferred)
    err_restore (&r->saved);
  return -1;
}

/* A reader of a manifest, or of a SUMMARY. */
static struct manifest_reader *
reader_new (const char *export_id, const char *snapshot_id, bool summary)
{
  struct manifest_reader *r = calloc (1, sizeof *r);

  if (r == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  r->summary = summary;
  snprintf (r->doc.name, sizeof r->doc.name, "%s%s%s%s%s",
            summary ? "summary" : "manifest",
            export_id || snapshot_id ? " " : "", export_id ? export_id : "",
            export_id && snapshot_id ? "/" : "",
            snapshot_id ? snapshot_id : "");
  r->export_id = export_id;
  r->snapshot_id = snapshot_id;
  r->m = calloc (1, sizeof *r->m);
  if (r->m == NULL)
    err_set (errno, "calloc: %m");
  else
    r->tok = jsontok_new (r->doc.name, on_token, r);
  if (r->tok == NULL) {
    manifest_reader_free (r);
    return NULL;
  }
  return r;
}

struct manifest_reader *
manifest_reader_new (const char *export_id, const char *snapshot_id)
{
  return reader_new (export_id, snapshot_id, false);
}

struct manifest_reader *
summary_reader_new (const char *export_id, const char *snapshot_id)
{
  return reader_new (export_id, snapshot_id, true);
}

int
manifest_reader_feed (struct manifest_reader *r, const void *buf, size_t len)
{
  assert (!r->failed);
  r->fed += len;
  if ((!r->deferred && check_size (r) == -1) ||
      jsontok_feed (r->tok, buf, len) == -1)
    return stop (r);
  return 0;
}

struct manifest *
manifest_reader_finish (struct manifest_reader *r)
{
  struct manifest *m;

  assert (!r->failed);
  if (jsontok_finish (r->tok) == -1 || r->deferred ||
      manifest_shrink (r->m) == -1) {
    stop (r);
    return NULL;
  }
  assert (r->where == W_DONE);
  m = r->m;
  r->m = NULL;
  r->failed = true;             /* done: nothing more to read */
  return m;
}

void
manifest_reader_free (struct manifest_reader *r)
{
  if (r == NULL)
    return;
  jsontok_free (r->tok);
  manifest_free (r->m);
  free (r);
}

/* Parse a whole document with a new reader. */
static struct manifest *
parse_whole (const char *json, size_t len, const char *export_id,
             const char *snapshot_id, bool summary)
{
  struct manifest_reader *r = reader_new (export_id, snapshot_id, summary);
  struct manifest *m = NULL;

  if (r && manifest_reader_feed (r, json, len) == 0)
    m = manifest_reader_finish (r);
  manifest_reader_free (r);
  return m;
}

struct manifest *
manifest_parse (const char *json, size_t len, const char *export_id,
                const char *snapshot_id)
{
  return parse_whole (json, len, export_id, snapshot_id, false);
}

struct manifest *
summary_parse (const char *json, size_t len, const char *export_id,
               const char *snapshot_id)
{
  return parse_whole (json, len, export_id, snapshot_id, true);
}
