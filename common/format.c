/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: volume.json and manifest.json (see format.h and
 * lazyvol-format(5)).
 *
 * Both documents come from the object store, which is to say from anyone
 * who can write to the bucket, so a parser treats them as hostile.  The
 * bytes are checked before json-c sees them (size cap, no NUL, an object
 * at the top) and json-c runs strict, UTF-8 validating and with a small
 * nesting limit.  Then every field is fetched through one helper per type
 * that checks the JSON type first: json-c converts silently ("7" and 1.5
 * read as integers, 99999999999999999999 saturates to UINT64_MAX), so an
 * integer must be a JSON integer in [0, INT64_MAX], and nothing outside
 * that range can pass as a saturated value.  Strings must not hold a NUL
 * (json-c accepts "\u0000", and C would see a shorter, different string).
 * A failure is EBADMSG with the document, the element and the field:
 * "manifest vm01/0195…: extents[3]: chunk 17 overlaps the previous extent".
 *
 * A parsed manifest satisfies what manifest_find relies on: extents are
 * sorted by chunk and disjoint, inside the image, their bytes inside their
 * blob, and sha[] holds one hash per listed chunk in extent order
 * (extent.hash is where its run starts).  Contiguous extents are legal and
 * are kept as they are, so format(parse(text)) reproduces the document.
 * The builder (manifest_add_chunk) checks the same things as it goes, and
 * merges each chunk into the previous extent when it continues that run,
 * so a publish of N consecutive dirty chunks is one extent.
 *
 * The arrays of a manifest grow only through grow(), which doubles them
 * when their element count reaches a power of two: the capacity is
 * implied by the count, and the struct need not carry it.
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

#include <json-c/json.h>

#include "err.h"
#include "format.h"
#include "util.h"

/* A manifest needs 4 levels: root, extents, extent, sha256. */
#define JSON_DEPTH_MAX 8
#define JSON_PARSE_FLAGS (JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 | \
                          JSON_TOKENER_ALLOW_TRAILING_CHARS)
/* manifest_max_size: a fixed part, and bytes per chunk of the image.  A
 * chunk in an extent of its own, in a blob of its own, with the longest
 * ids and numbers, takes about 400 bytes as manifest_format writes it.
 */
#define MANIFEST_FIXED_MAX (1024 * 1024)
#define MANIFEST_CHUNK_MAX 512

static const char *const kind_names[] = {
  [MANIFEST_DELTA] = "delta", [MANIFEST_BASE] = "base",
  [MANIFEST_CLONE] = "clone",
};

#define CLEANUP_JSON __attribute__ ((__cleanup__ (cleanup_json)))

static void
cleanup_json (struct json_object **obj)
{
  json_object_put (*obj);
}

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

/* Bytes of the run of COUNT (>= 1) chunks from CHUNK, packed back to back:
 * only the image's last chunk can be short.
 */
static uint64_t
run_bytes (const struct manifest *m, uint64_t chunk, uint64_t count)
{
  return (count - 1) * m->chunk_size +
    chunk_len (m->image_size, m->chunk_size, chunk + count - 1);
}

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

/* The kind of blob KEY names, if it is "E/snapshots/S/delta.blob" or
 * "E/snapshots/S/base.blob" (or a further piece, "delta.N.blob") with
 * valid ids: MANIFEST_DELTA or MANIFEST_BASE.  -1 for anything else.
 * The id alphabets exclude "/", so the key cannot climb out of the
 * export root or name another object.
 */
static int
blob_key_kind (const char *key)
{
  char buf[EXPORT_ID_MAX + SNAPSHOT_ID_LEN + sizeof "/snapshots//delta.blob"
           + 8];
  char *rest = buf, *export_id, *dir, *snapshot_id;

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
  if (blob_piece (rest, "delta") >= 0)
    return MANIFEST_DELTA;
  if (blob_piece (rest, "base") >= 0)
    return MANIFEST_BASE;
  return -1;
}

static bool
timestamp_valid (const char *s)
{
  static const char pattern[] = "0000-00-00T00:00:00Z";  /* 0: any digit */
  size_t i;

  for (i = 0; i < sizeof pattern - 1; i++)
    if (pattern[i] == '0' ? s[i] < '0' || s[i] > '9' : s[i] != pattern[i])
      return false;
  return s[i] == '\0';
}

/* The arrays of a manifest. */

/* Make room for element N of ARRAY (elements of SIZE bytes): arrays grow
 * only here, doubling when N reaches a power of two, so N implies the
 * capacity.  The array (perhaps moved), or NULL with ENOMEM.
 */
static void *
grow (void *array, size_t n, size_t size)
{
  void *p;

  if (n & (n - 1))              /* not 0 or a power of two: room left */
    return array;
  p = reallocarray (array, n ? 2 * n : 1, size);
  if (p == NULL)
    err_set (errno, "realloc: %m");
  return p;
}

static int
append_extent (struct manifest *m, uint64_t chunk, uint64_t count,
               uint32_t blob, uint64_t offset)
{
  struct manifest_extent *p = grow (m->extents, m->nextents, sizeof *p);

  if (p == NULL)
    return -1;
  m->extents = p;
  m->extents[m->nextents++] = (struct manifest_extent) {
    .chunk = chunk, .count = count, .blob = blob, .offset = offset,
    .hash = m->nsha,
  };
  return 0;
}

static int
append_sha (struct manifest *m, const unsigned char sha[32])
{
  unsigned char (*p)[32] = grow (m->sha, m->nsha, sizeof *p);

  if (p == NULL)
    return -1;
  m->sha = p;
  memcpy (m->sha[m->nsha++], sha, 32);
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

  if (blob_key_kind (key) == -1)
    return err_set (EINVAL, "manifest %s/%s: \"%s\" is not a blob key",
                    m->export_id, m->snapshot_id, key);
  p = grow (m->blobs, m->nblobs, sizeof *p);
  if (p == NULL)
    return -1;
  m->blobs = p;
  k = strdup (key);
  if (k == NULL)
    return err_set (errno, "strdup: %m");
  m->blobs[m->nblobs] = (struct manifest_blob) { .key = k, .size = size };
  return m->nblobs++;
}

int
manifest_add_chunk (struct manifest *m, uint64_t chunk, uint32_t blob,
                    uint64_t offset, const unsigned char sha[32])
{
  struct manifest_extent *last =
    m->nextents ? &m->extents[m->nextents - 1] : NULL;
  uint64_t nchunks = chunk_count (m->image_size, m->chunk_size);
  uint32_t len = chunk_len (m->image_size, m->chunk_size, chunk);

  if (chunk >= nchunks)
    return err_set (EINVAL, "manifest %s/%s: chunk %" PRIu64 " is beyond "
                    "the image (%" PRIu64 " chunks)",
                    m->export_id, m->snapshot_id, chunk, nchunks);
  if (last && chunk < last->chunk + last->count)
    return err_set (EINVAL, "manifest %s/%s: chunk %" PRIu64 " added after "
                    "chunk %" PRIu64, m->export_id, m->snapshot_id, chunk,
                    last->chunk + last->count - 1);
  if (blob >= m->nblobs)
    return err_set (EINVAL, "manifest %s/%s: blob %" PRIu32 " does not "
                    "exist (%zu blobs)", m->export_id, m->snapshot_id,
                    blob, m->nblobs);
  if (offset > m->blobs[blob].size || len > m->blobs[blob].size - offset)
    return err_set (EINVAL, "manifest %s/%s: chunk %" PRIu64 " at offset %"
                    PRIu64 " goes beyond the end of blob %" PRIu32 " (%"
                    PRIu64 " bytes)", m->export_id, m->snapshot_id, chunk,
                    offset, blob, m->blobs[blob].size);

  /* The chunk continues the last run if it is the next chunk, in the same
   * blob, right after it.  The run's last chunk is then not the image's
   * last, so it is a full chunk and offsets step by chunk_size.
   */
  if (last && last->blob == blob && chunk == last->chunk + last->count &&
      offset == last->offset + last->count * m->chunk_size)
    last->count++;
  else if (append_extent (m, chunk, 1, blob, offset) == -1)
    return -1;
  return append_sha (m, sha);
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
manifest_find (const struct manifest *m, uint64_t chunk,
               const char **blob_key, uint64_t *offset,
               const unsigned char **sha)
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
  return true;
}

void
manifest_free (struct manifest *m)
{
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->nblobs; i++)
    free (m->blobs[i].key);
  free (m->blobs);
  free (m->extents);
  free (m->sha);
  free (m->base_ref);
  free (m);
}

/* Parsing. */

/* A document being parsed: what to call it in messages, and the element
 * the checks are in ("extents[3]", or "" at the top level).
 */
struct doc {
  char name[EXPORT_ID_MAX + SNAPSHOT_ID_LEN + 32];
  char at[64];
};

/* Record "NAME: AT: what is wrong" as EBADMSG.  Returns -1. */
static int __attribute__ ((__format__ (__printf__, 2, 3)))
bad (const struct doc *d, const char *fmt, ...)
{
  char what[512];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (what, sizeof what, fmt, ap);
  va_end (ap);
  if (d->at[0])
    return err_set (EBADMSG, "%s: %s: %s", d->name, d->at, what);
  return err_set (EBADMSG, "%s: %s", d->name, what);
}

/* S, shortened and with quotes, backslashes and control characters
 * replaced by '?', so that a hostile string is safe in a message.
 */
static const char *
printable (const char *s, char out[72])
{
  size_t i;

  for (i = 0; s[i] && i < 64; i++)
    out[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f || s[i] == '"' ||
      s[i] == '\\' ? '?' : s[i];
  strcpy (out + i, s[i] ? "..." : "");
  return out;
}

/* Whether a member must be there, and whether it may be null. */
enum presence {
  REQUIRED,                     /* present, of its type */
  NULLABLE,                     /* present, of its type or null */
  OPTIONAL,                     /* absent, null or of its type */
};

/* Member NAME of OBJ, which must have type TYPE.  Sets *OUT to the member,
 * or to NULL for an absent or null one that PRESENCE allows.
 */
static int
member (const struct doc *d, struct json_object *obj, const char *name,
        enum json_type type, enum presence presence,
        struct json_object **out)
{
  struct json_object *v;

  *out = NULL;
  if (!json_object_object_get_ex (obj, name, &v)) {
    if (presence == OPTIONAL)
      return 0;
    return bad (d, "missing field \"%s\"", name);
  }
  if (v == NULL && presence != REQUIRED)
    return 0;
  if (!json_object_is_type (v, type))
    return bad (d, "%s: expected %s, got %s", name, json_type_to_name (type),
                json_type_to_name (json_object_get_type (v)));
  *out = v;
  return 0;
}

/* A string member (NULL if absent or null, as PRESENCE allows). */
static int
get_string (const struct doc *d, struct json_object *obj, const char *name,
            enum presence presence, const char **out)
{
  struct json_object *v;

  *out = NULL;
  if (member (d, obj, name, json_type_string, presence, &v) == -1)
    return -1;
  if (v == NULL)
    return 0;
  *out = json_object_get_string (v);
  if (strlen (*out) != (size_t) json_object_get_string_len (v))
    return bad (d, "%s: contains a NUL character", name);
  return 0;
}

/* An integer member in [MIN, MAX] (MAX <= INT64_MAX). */
static int
get_u64 (const struct doc *d, struct json_object *obj, const char *name,
         uint64_t min, uint64_t max, uint64_t *out)
{
  struct json_object *v;

  if (member (d, obj, name, json_type_int, REQUIRED, &v) == -1)
    return -1;
  if (json_object_get_int64 (v) < 0)
    return bad (d, "%s: must not be negative", name);
  *out = json_object_get_uint64 (v);
  if (*out > INT64_MAX)
    return bad (d, "%s: number too large", name);
  if (*out < min || *out > max)
    return bad (d, "%s: %" PRIu64 " is out of range [%" PRIu64 ", %" PRIu64 "]",
                name, *out, min, max);
  return 0;
}

/* An id member, which VALID accepts, copied to OUT ("" for null, if
 * PRESENCE allows it).  If EXPECT is not NULL the id must equal it.
 */
static int
get_id (const struct doc *d, struct json_object *obj, const char *name,
        bool (*valid) (const char *), enum presence presence,
        const char *expect, char *out)
{
  const char *s;
  char p[72];

  if (get_string (d, obj, name, presence, &s) == -1)
    return -1;
  if (s == NULL)
    s = "";
  else if (!valid (s))
    return bad (d, "%s: \"%s\" is not a valid %s id", name, printable (s, p),
                valid == id_snapshot_valid ? "snapshot" : "export");
  if (expect && strcmp (s, expect) != 0)
    return bad (d, "%s: \"%s\" is not the expected \"%s\"", name, s, expect);
  strcpy (out, s);
  return 0;
}

/* A timestamp member ("2026-11-21T10:00:00Z"), copied to OUT. */
static int
get_time (const struct doc *d, struct json_object *obj, const char *name,
          char out[32])
{
  const char *s;
  char p[72];

  if (get_string (d, obj, name, REQUIRED, &s) == -1)
    return -1;
  if (!timestamp_valid (s))
    return bad (d, "%s: \"%s\" is not a UTC time like 2026-11-21T10:00:00Z",
                name, printable (s, p));
  strcpy (out, s);
  return 0;
}

/* image_size and chunk_size, shared by both documents. */
static int
get_geometry (const struct doc *d, struct json_object *obj,
              uint64_t *image_size, uint32_t *chunk_size)
{
  uint64_t cs;

  if (get_u64 (d, obj, "image_size", 1, IMAGE_SIZE_MAX, image_size) == -1 ||
      get_u64 (d, obj, "chunk_size", CHUNK_SIZE_MIN, CHUNK_SIZE_MAX, &cs) == -1)
    return -1;
  if (!chunk_size_valid (cs))
    return bad (d, "chunk_size: %" PRIu64 " is not a power of two", cs);
  *chunk_size = cs;
  return 0;
}

static bool
is_json_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Check the raw bytes and parse them into a JSON object.  NULL with
 * EBADMSG if that fails.
 */
static struct json_object *
parse_object (const struct doc *d, const char *json, size_t len, size_t max)
{
  struct json_tokener *tok;
  struct json_object *obj;
  enum json_tokener_error jerr;
  const char *nul = memchr (json, '\0', len);
  size_t i, end;

  if (len > max) {
    bad (d, "%zu bytes is larger than the limit of %zu", len, max);
    return NULL;
  }
  if (nul) {
    bad (d, "NUL byte at offset %zu", (size_t) (nul - json));
    return NULL;
  }
  /* Anything but an object is wrong; checking here also spares json-c a
   * bare number, which it cannot tell complete from truncated.
   */
  for (i = 0; i < len && is_json_space (json[i]); i++)
    ;
  if (i == len || json[i] != '{') {
    bad (d, i == len ? "empty document" : "not a JSON object");
    return NULL;
  }

  tok = json_tokener_new_ex (JSON_DEPTH_MAX);
  if (tok == NULL) {
    err_set (ENOMEM, "json_tokener_new: %m");
    return NULL;
  }
  json_tokener_set_flags (tok, JSON_PARSE_FLAGS);
  obj = json_tokener_parse_ex (tok, json, (int) len); /* max <= INT_MAX */
  jerr = json_tokener_get_error (tok);
  end = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  if (obj == NULL) {
    if (jerr == json_tokener_continue)
      bad (d, "truncated JSON (%zu bytes)", len);
    else
      bad (d, "invalid JSON at byte %zu: %s", end,
           json_tokener_error_desc (jerr));
    return NULL;
  }

  for (i = end; i < len && is_json_space (json[i]); i++)
    ;
  if (i < len) {
    json_object_put (obj);
    bad (d, "trailing data at byte %zu", i);
    return NULL;
  }
  return obj;
}

/* Parse a document that must have "format": FORMAT and a version this code
 * reads.  The version is checked before any other field, so that a newer
 * document says so instead of failing on a field that changed.
 */
static struct json_object *
parse_document (const struct doc *d, const char *json, size_t len,
                size_t max, const char *format, uint64_t newest,
                uint64_t *version_out)
{
  CLEANUP_JSON struct json_object *obj = parse_object (d, json, len, max);
  const char *s;
  uint64_t version;
  char p[72];

  if (obj == NULL || get_string (d, obj, "format", REQUIRED, &s) == -1)
    return NULL;
  if (strcmp (s, format) != 0) {
    bad (d, "not a %s document (format \"%s\")", format, printable (s, p));
    return NULL;
  }
  if (get_u64 (d, obj, "version", 1, INT64_MAX, &version) == -1)
    return NULL;
  if (version > newest) {
    bad (d, "format version %" PRIu64 " is newer than this lazyvol "
         "reads (%" PRIu64 "); use a newer lazyvol", version, newest);
    return NULL;
  }
  if (version_out)
    *version_out = version;
  return json_object_get (obj);  /* the caller's reference */
}

int
volume_parse (const char *json, size_t len, const char *export_id,
              struct volume_head *out)
{
  struct doc d = { .at = "" };
  CLEANUP_JSON struct json_object *obj = NULL;
  struct volume_head h = { .epoch = 0 };
  uint64_t version = 0;

  snprintf (d.name, sizeof d.name, "volume.json%s%s",
            export_id ? " of " : "", export_id ? export_id : "");
  obj = parse_document (&d, json, len, VOLUME_JSON_MAX, "lazyvol-volume",
                        VOLUME_FORMAT_VERSION, &version);
  if (obj == NULL ||
      get_id (&d, obj, "export_id", id_export_valid, REQUIRED, export_id,
              h.export_id) == -1 ||
      get_geometry (&d, obj, &h.image_size, &h.chunk_size) == -1 ||
      get_u64 (&d, obj, "generation", 0, INT64_MAX, &h.generation) == -1 ||
      get_id (&d, obj, "snapshot_id", id_snapshot_valid, NULLABLE, NULL,
              h.snapshot_id) == -1 ||
      (version >= 2 &&
       get_u64 (&d, obj, "epoch", 0, INT64_MAX, &h.epoch) == -1) ||
      get_time (&d, obj, "updated", h.updated) == -1)
    return -1;
  /* Generation 0 is "never published", and only it has no snapshot. */
  if (h.generation == 0 && h.snapshot_id[0])
    return bad (&d, "snapshot_id: must be null at generation 0");
  if (h.generation > 0 && h.snapshot_id[0] == '\0')
    return bad (&d, "snapshot_id: null at generation %" PRIu64, h.generation);
  *out = h;
  return 0;
}

size_t
manifest_max_size (uint64_t chunk_count)
{
  /* json-c takes the length as an int, so INT_MAX caps every image. */
  if (chunk_count > (INT_MAX - MANIFEST_FIXED_MAX) / MANIFEST_CHUNK_MAX)
    return INT_MAX;
  return MANIFEST_FIXED_MAX + chunk_count * MANIFEST_CHUNK_MAX;
}

static int
get_kind (const struct doc *d, struct json_object *obj,
          enum manifest_kind *kind)
{
  const char *s;
  char p[72];

  if (get_string (d, obj, "kind", REQUIRED, &s) == -1)
    return -1;
  for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++)
    if (strcmp (s, kind_names[i]) == 0) {
      *kind = i;
      return 0;
    }
  return bad (d, "kind: \"%s\" is not delta, base or clone", printable (s, p));
}

/* cloned_from, which a clone must have and nothing else may. */
static int
get_cloned_from (struct doc *d, struct json_object *obj, struct manifest *m)
{
  struct json_object *from;

  if (member (d, obj, "cloned_from", json_type_object, OPTIONAL, &from) == -1)
    return -1;
  if ((from != NULL) != (m->kind == MANIFEST_CLONE))
    return bad (d, from ? "cloned_from: only a clone has it, this is a %s" :
                "cloned_from: missing in a %s", kind_names[m->kind]);
  if (from == NULL)
    return 0;
  strcpy (d->at, "cloned_from");
  if (get_id (d, from, "export_id", id_export_valid, REQUIRED, NULL,
              m->cloned_export) == -1 ||
      get_id (d, from, "snapshot_id", id_snapshot_valid, REQUIRED, NULL,
              m->cloned_snapshot) == -1)
    return -1;
  d->at[0] = '\0';
  return 0;
}

/* Array member NAME; sets *N to its length. */
static int
get_array (const struct doc *d, struct json_object *obj, const char *name,
           struct json_object **arr, size_t *n)
{
  if (member (d, obj, name, json_type_array, REQUIRED, arr) == -1)
    return -1;
  *n = json_object_array_length (*arr);
  return 0;
}

/* Element I of array ARR, which must be an object; sets d->at to
 * "NAME[I]" for the messages about its fields.
 */
static struct json_object *
get_element (struct doc *d, struct json_object *arr, const char *name,
             size_t i)
{
  struct json_object *v = json_object_array_get_idx (arr, i);

  snprintf (d->at, sizeof d->at, "%s[%zu]", name, i);
  if (!json_object_is_type (v, json_type_object)) {
    bad (d, "expected object, got %s",
         json_type_to_name (json_object_get_type (v)));
    return NULL;
  }
  return v;
}

static int
get_blobs (struct doc *d, struct json_object *obj, struct manifest *m)
{
  struct json_object *arr, *blob;
  const char *key;
  uint64_t size;
  size_t n;
  char p[72];

  if (get_array (d, obj, "blobs", &arr, &n) == -1)
    return -1;
  for (size_t i = 0; i < n; i++) {
    blob = get_element (d, arr, "blobs", i);
    if (blob == NULL || get_string (d, blob, "key", REQUIRED, &key) == -1)
      return -1;
    if (blob_key_kind (key) == -1)
      return bad (d, "key: \"%s\" is not EXPORT/snapshots/SNAPSHOT/"
                  "delta.blob or base.blob", printable (key, p));
    if (get_u64 (d, blob, "size", 0, INT64_MAX, &size) == -1 ||
        manifest_add_blob (m, key, size) == -1)
      return -1;
  }
  d->at[0] = '\0';
  return 0;
}

/* The sha256 array of extent E: one hash per chunk. */
static int
get_hashes (const struct doc *d, struct json_object *ext, struct manifest *m,
            uint64_t count)
{
  struct json_object *arr, *v;
  unsigned char sha[32];
  size_t n;

  if (get_array (d, ext, "sha256", &arr, &n) == -1)
    return -1;
  if (n != count)
    return bad (d, "sha256: %zu hashes for %" PRIu64 " chunks", n, count);
  for (size_t i = 0; i < n; i++) {
    v = json_object_array_get_idx (arr, i);
    if (!json_object_is_type (v, json_type_string) ||
        json_object_get_string_len (v) != 64 ||
        !hex_decode (json_object_get_string (v), sha, 32))
      return bad (d, "sha256[%zu]: not a string of 64 hexadecimal digits", i);
    if (append_sha (m, sha) == -1)
      return -1;
  }
  return 0;
}

/* One extent: a run inside the image, after the previous extent, its
 * bytes inside its blob.  Every bound is checked by subtraction from a
 * value already known to be larger, so nothing can overflow.
 */
static int
get_extent (const struct doc *d, struct json_object *ext, struct manifest *m)
{
  const struct manifest_extent *prev =
    m->nextents ? &m->extents[m->nextents - 1] : NULL;
  uint64_t nchunks = chunk_count (m->image_size, m->chunk_size);
  uint64_t chunk, count, blob, offset, bytes, blob_size;

  if (get_u64 (d, ext, "chunk", 0, INT64_MAX, &chunk) == -1)
    return -1;
  if (prev && chunk < prev->chunk)
    return bad (d, "chunk %" PRIu64 " comes before the previous extent's "
                "chunk %" PRIu64 " (extents must be sorted)",
                chunk, prev->chunk);
  if (prev && chunk - prev->chunk < prev->count)
    return bad (d, "chunk %" PRIu64 " overlaps the previous extent", chunk);
  if (chunk >= nchunks)
    return bad (d, "chunk %" PRIu64 " is beyond the image (%" PRIu64
                " chunks)", chunk, nchunks);
  if (get_u64 (d, ext, "count", 1, INT64_MAX, &count) == -1)
    return -1;
  if (count > nchunks - chunk)
    return bad (d, "chunks %" PRIu64 "-%" PRIu64 " go beyond the image (%"
                PRIu64 " chunks)", chunk, chunk + count - 1, nchunks);
  if (get_u64 (d, ext, "blob", 0, INT64_MAX, &blob) == -1)
    return -1;
  if (blob >= m->nblobs)
    return bad (d, "blob %" PRIu64 " does not exist (%zu blobs)",
                blob, m->nblobs);
  if (get_u64 (d, ext, "offset", 0, INT64_MAX, &offset) == -1)
    return -1;
  bytes = run_bytes (m, chunk, count);
  blob_size = m->blobs[blob].size;
  if (offset > blob_size || bytes > blob_size - offset)
    return bad (d, "%" PRIu64 " bytes at offset %" PRIu64 " go beyond the "
                "end of blob %" PRIu64 " (%" PRIu64 " bytes)",
                bytes, offset, blob, blob_size);
  if (append_extent (m, chunk, count, blob, offset) == -1)
    return -1;
  return get_hashes (d, ext, m, count);
}

static int
get_extents (struct doc *d, struct json_object *obj, struct manifest *m)
{
  struct json_object *arr, *ext;
  size_t n;

  if (get_array (d, obj, "extents", &arr, &n) == -1)
    return -1;
  for (size_t i = 0; i < n; i++) {
    ext = get_element (d, arr, "extents", i);
    if (ext == NULL || get_extent (d, ext, m) == -1)
      return -1;
  }
  d->at[0] = '\0';
  return 0;
}

/* base_ref, if present, names a base blob: its first piece. */
static int
get_base_ref (const struct doc *d, struct json_object *obj,
              struct manifest *m)
{
  const char *s;
  char p[72];

  if (get_string (d, obj, "base_ref", OPTIONAL, &s) == -1)
    return -1;
  if (s == NULL)
    return 0;
  if (blob_key_kind (s) != MANIFEST_BASE ||
      strcmp (s + strlen (s) - strlen ("/base.blob"), "/base.blob") != 0)
    return bad (d, "base_ref: \"%s\" is not EXPORT/snapshots/SNAPSHOT/"
                "base.blob", printable (s, p));
  m->base_ref = strdup (s);
  if (m->base_ref == NULL)
    return err_set (errno, "strdup: %m");
  return 0;
}

static int
get_manifest (struct doc *d, struct json_object *obj, size_t len,
              const char *export_id, const char *snapshot_id,
              struct manifest *m)
{
  uint64_t nchunks;

  if (get_id (d, obj, "export_id", id_export_valid, REQUIRED, export_id,
              m->export_id) == -1 ||
      get_id (d, obj, "snapshot_id", id_snapshot_valid, REQUIRED, snapshot_id,
              m->snapshot_id) == -1 ||
      get_id (d, obj, "parent", id_snapshot_valid, NULLABLE, NULL,
              m->parent) == -1 ||
      get_kind (d, obj, &m->kind) == -1 ||
      get_u64 (d, obj, "generation", 1, INT64_MAX, &m->generation) == -1 ||
      get_time (d, obj, "created", m->created) == -1 ||
      get_geometry (d, obj, &m->image_size, &m->chunk_size) == -1)
    return -1;
  if (strcmp (m->parent, m->snapshot_id) == 0)
    return bad (d, "parent: the snapshot is its own parent");
  nchunks = chunk_count (m->image_size, m->chunk_size);
  if (len > manifest_max_size (nchunks))
    return bad (d, "%zu bytes is larger than the limit of %zu for %" PRIu64
                " chunks", len, manifest_max_size (nchunks), nchunks);
  if (get_base_ref (d, obj, m) == -1 ||
      get_cloned_from (d, obj, m) == -1 ||
      get_blobs (d, obj, m) == -1)
    return -1;
  return get_extents (d, obj, m);
}

struct manifest *
manifest_parse (const char *json, size_t len, const char *export_id,
                const char *snapshot_id)
{
  struct doc d = { .at = "" };
  CLEANUP_JSON struct json_object *obj = NULL;
  struct manifest *m;

  snprintf (d.name, sizeof d.name, "manifest%s%s%s%s",
            export_id || snapshot_id ? " " : "", export_id ? export_id : "",
            export_id && snapshot_id ? "/" : "",
            snapshot_id ? snapshot_id : "");
  /* The limit for this image is known only once image_size is read;
   * until then, the largest of all.
   */
  obj = parse_document (&d, json, len, manifest_max_size (UINT64_MAX),
                        "lazyvol-manifest", MANIFEST_FORMAT_VERSION, NULL);
  if (obj == NULL)
    return NULL;
  m = calloc (1, sizeof *m);
  if (m == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  if (get_manifest (&d, obj, len, export_id, snapshot_id, m) == -1) {
    manifest_free (m);
    return NULL;
  }
  return m;
}

/* Formatting.  The text is written by hand into a memory stream: a json-c
 * tree costs several allocations and a few hundred bytes per value, which
 * for the manifest of a large image is seconds and half a gigabyte, where
 * printing takes a small fraction of a second.  Strings are escaped as
 * RFC 8259 says; every number is a non-negative integer.  Each extent
 * takes one line, then one line per hash, so a chunk's hash is easy to
 * find with grep.
 */

static void
write_string (FILE *f, const char *s)
{
  fputc ('"', f);
  for (; *s; s++) {
    unsigned char c = *s;

    if (c == '"' || c == '\\')
      fprintf (f, "\\%c", c);
    else if (c < 0x20)
      fprintf (f, "\\u%04x", c);
    else
      fputc (c, f);
  }
  fputc ('"', f);
}

/* A top-level member with a string value, or null if S is NULL. */
static void
write_str (FILE *f, const char *key, const char *s)
{
  fprintf (f, "  \"%s\": ", key);
  if (s)
    write_string (f, s);
  else
    fputs ("null", f);
  fputs (",\n", f);
}

static void
write_u64 (FILE *f, const char *key, uint64_t v)
{
  fprintf (f, "  \"%s\": %" PRIu64 ",\n", key, v);
}

/* A document: its "format" and "version", the members BODY writes for
 * ARG, then the closing brace.  The text (malloc'd), or NULL with ENOMEM.
 */
static char *
write_document (const char *format, unsigned version,
                void (*body) (FILE *f, const void *arg), const void *arg)
{
  char *buf;
  size_t len;
  FILE *f = memstream_open (&buf, &len);

  if (f == NULL)
    return NULL;
  fputs ("{\n", f);
  write_str (f, "format", format);
  write_u64 (f, "version", version);
  body (f, arg);
  /* Every member ends in ",\n": step back over the last one's and close
   * the object there (the size of a memory stream follows the position).
   */
  fseek (f, -2, SEEK_CUR);
  fputs ("\n}\n", f);
  memstream_close (f, &buf);
  return buf;
}

static void
write_geometry (FILE *f, uint64_t image_size, uint32_t chunk_size)
{
  write_u64 (f, "image_size", image_size);
  write_u64 (f, "chunk_size", chunk_size);
}

static void
write_volume (FILE *f, const void *arg)
{
  const struct volume_head *h = arg;

  write_str (f, "export_id", h->export_id);
  write_geometry (f, h->image_size, h->chunk_size);
  write_u64 (f, "generation", h->generation);
  write_str (f, "snapshot_id", h->snapshot_id[0] ? h->snapshot_id : NULL);
  write_u64 (f, "epoch", h->epoch);
  write_str (f, "updated", h->updated);
}

char *
volume_format (const struct volume_head *h)
{
  return write_document ("lazyvol-volume", VOLUME_FORMAT_VERSION,
                         write_volume, h);
}

bool
host_id_valid (const char *s)
{
  return id_export_valid (s) && strlen (s) <= HOST_ID_MAX;
}

int
owner_parse (const char *json, size_t len, const char *export_id,
             struct owner_record *out)
{
  struct doc d = { .at = "" };
  CLEANUP_JSON struct json_object *obj = NULL;
  struct owner_record o;

  snprintf (d.name, sizeof d.name, "owner.json%s%s",
            export_id ? " of " : "", export_id ? export_id : "");
  obj = parse_document (&d, json, len, VOLUME_JSON_MAX, "lazyvol-owner",
                        OWNER_FORMAT_VERSION, NULL);
  if (obj == NULL ||
      get_id (&d, obj, "export_id", id_export_valid, REQUIRED, export_id,
              o.export_id) == -1 ||
      get_id (&d, obj, "host_id", host_id_valid, NULLABLE, NULL,
              o.host_id) == -1 ||
      get_id (&d, obj, "cache_id", id_snapshot_valid, NULLABLE, NULL,
              o.cache_id) == -1 ||
      get_u64 (&d, obj, "epoch", 0, INT64_MAX, &o.epoch) == -1 ||
      get_time (&d, obj, "since", o.since) == -1)
    return -1;
  *out = o;
  return 0;
}

static void
write_owner (FILE *f, const void *arg)
{
  const struct owner_record *o = arg;

  write_str (f, "export_id", o->export_id);
  write_str (f, "host_id", o->host_id[0] ? o->host_id : NULL);
  write_str (f, "cache_id", o->cache_id[0] ? o->cache_id : NULL);
  write_u64 (f, "epoch", o->epoch);
  write_str (f, "since", o->since);
}

char *
owner_format (const struct owner_record *o)
{
  return write_document ("lazyvol-owner", OWNER_FORMAT_VERSION, write_owner,
                         o);
}

/* The revocations of a lease record. */
static int
get_revocations (struct doc *d, struct json_object *obj,
                 struct lease_record *l)
{
  struct json_object *a;

  if (member (d, obj, "revoked", json_type_array, REQUIRED, &a) == -1)
    return -1;
  if (json_object_array_length (a) > LEASE_REVOKED_MAX)
    return bad (d, "revoked: more than %d entries", LEASE_REVOKED_MAX);
  l->nrevoked = json_object_array_length (a);
  for (size_t i = 0; i < l->nrevoked; i++) {
    struct json_object *r = json_object_array_get_idx (a, i);

    snprintf (d->at, sizeof d->at, "revoked[%zu].", i);
    if (!json_object_is_type (r, json_type_object))
      return bad (d, "not an object");
    if (get_id (d, r, "export_id", id_export_valid, REQUIRED, NULL,
                l->revoked[i].export_id) == -1 ||
        get_u64 (d, r, "epoch", 0, INT64_MAX, &l->revoked[i].epoch) == -1)
      return -1;
  }
  d->at[0] = '\0';
  return 0;
}

int
lease_parse (const char *json, size_t len, const char *host_id,
             struct lease_record *out)
{
  struct doc d = { .at = "" };
  CLEANUP_JSON struct json_object *obj = NULL;
  struct lease_record l;

  snprintf (d.name, sizeof d.name, "lease of host %s",
            host_id ? host_id : "?");
  obj = parse_document (&d, json, len, VOLUME_JSON_MAX, "lazyvol-lease",
                        LEASE_FORMAT_VERSION, NULL);
  if (obj == NULL ||
      get_id (&d, obj, "host_id", host_id_valid, REQUIRED, host_id,
              l.host_id) == -1 ||
      get_id (&d, obj, "cache_id", id_snapshot_valid, REQUIRED, NULL,
              l.cache_id) == -1 ||
      get_u64 (&d, obj, "count", 0, INT64_MAX, &l.count) == -1 ||
      get_u64 (&d, obj, "period_ms", 1, LEASE_PERIOD_MAX_MS,
               &l.period_ms) == -1 ||
      get_time (&d, obj, "renewed", l.renewed) == -1 ||
      get_revocations (&d, obj, &l) == -1)
    return -1;
  {
    struct json_object *o;

    l.overflow = false;
    if (json_object_object_get_ex (obj, "overflow", &o)) {
      if (!json_object_is_type (o, json_type_boolean))
        return bad (&d, "overflow: not true or false");
      l.overflow = json_object_get_boolean (o);
    }
  }
  *out = l;
  return 0;
}

static void
write_lease (FILE *f, const void *arg)
{
  const struct lease_record *l = arg;

  write_str (f, "host_id", l->host_id);
  write_str (f, "cache_id", l->cache_id);
  write_u64 (f, "count", l->count);
  write_u64 (f, "period_ms", l->period_ms);
  write_str (f, "renewed", l->renewed);
  fputs ("  \"revoked\": [", f);
  for (size_t i = 0; i < l->nrevoked; i++) {
    fputs (i ? ", {\"export_id\": " : "{\"export_id\": ", f);
    write_string (f, l->revoked[i].export_id);
    fprintf (f, ", \"epoch\": %" PRIu64 "}", l->revoked[i].epoch);
  }
  fputs ("],\n", f);
  if (l->overflow)
    fputs ("  \"overflow\": true,\n", f);
}

char *
lease_format (const struct lease_record *l)
{
  return write_document ("lazyvol-lease", LEASE_FORMAT_VERSION, write_lease,
                         l);
}

static void
write_cloned_from (FILE *f, const struct manifest *m)
{
  fputs ("  \"cloned_from\": {\"export_id\": ", f);
  write_string (f, m->cloned_export);
  fputs (", \"snapshot_id\": ", f);
  write_string (f, m->cloned_snapshot);
  fputs ("},\n", f);
}

static void
write_blobs (FILE *f, const struct manifest *m)
{
  fputs ("  \"blobs\": [", f);
  for (size_t i = 0; i < m->nblobs; i++) {
    fputs (i ? ",\n    {\"key\": " : "\n    {\"key\": ", f);
    write_string (f, m->blobs[i].key);
    fprintf (f, ", \"size\": %" PRIu64 "}", m->blobs[i].size);
  }
  fputs (m->nblobs ? "\n  ],\n" : "],\n", f);
}

static void
write_extents (FILE *f, const struct manifest *m)
{
  char hex[65];

  fputs ("  \"extents\": [", f);
  for (size_t i = 0; i < m->nextents; i++) {
    const struct manifest_extent *e = &m->extents[i];

    fprintf (f, "%s\n    {\"chunk\": %" PRIu64 ", \"count\": %" PRIu64
             ", \"blob\": %" PRIu32 ", \"offset\": %" PRIu64
             ", \"sha256\": [", i ? "," : "", e->chunk, e->count, e->blob,
             e->offset);
    for (uint64_t j = 0; j < e->count; j++) {
      hex_encode (m->sha[e->hash + j], 32, hex);
      fprintf (f, "%s\n      \"%s\"", j ? "," : "", hex);
    }
    fputs ("]}", f);
  }
  fputs (m->nextents ? "\n  ],\n" : "],\n", f);
}

static void
write_manifest (FILE *f, const void *arg)
{
  const struct manifest *m = arg;

  write_str (f, "export_id", m->export_id);
  write_str (f, "snapshot_id", m->snapshot_id);
  write_str (f, "parent", m->parent[0] ? m->parent : NULL);
  write_str (f, "kind", kind_names[m->kind]);
  write_u64 (f, "generation", m->generation);
  write_str (f, "created", m->created);
  write_geometry (f, m->image_size, m->chunk_size);
  if (m->base_ref)
    write_str (f, "base_ref", m->base_ref);
  if (m->cloned_export[0])
    write_cloned_from (f, m);
  write_blobs (f, m);
  write_extents (f, m);
}

char *
manifest_format (const struct manifest *m)
{
  return write_document ("lazyvol-manifest", MANIFEST_FORMAT_VERSION,
                         write_manifest, m);
}

/* Object keys. */

char *
key_join (const char *root, const char *rel)
{
  size_t n = strlen (root);

  while (n > 0 && root[n - 1] == '/')
    n--;
  if (n == 0)
    return str_printf ("%s", rel);
  return str_printf ("%.*s/%s", (int) n, root, rel);
}

/* ROOT/EXPORT_ID/PATH. */
static char *
key_in_export (const char *root, const char *export_id, const char *path)
{
  CLEANUP_FREE char *rel = str_printf ("%s/%s", export_id, path);

  return rel ? key_join (root, rel) : NULL;
}

char *
key_volume (const char *root, const char *export_id)
{
  return key_in_export (root, export_id, "volume.json");
}

char *
key_owner (const char *root, const char *export_id)
{
  return key_in_export (root, export_id, "owner.json");
}

char *
key_lease (const char *root, const char *host_id, const char *cache_id)
{
  /* Not an export directory: export ids cannot start with a dot. */
  char *rel = str_printf (".hosts/%s.%s.json", host_id, cache_id);
  char *key = rel ? key_join (root, rel) : NULL;

  free (rel);
  return key;
}

char *
key_refs_current (const char *root, const char *export_id)
{
  return key_in_export (root, export_id, "refs/current.json");
}

char *
key_snapshots_prefix (const char *root, const char *export_id)
{
  return key_in_export (root, export_id, "snapshots/");
}

char *
key_manifest (const char *root, const char *export_id,
              const char *snapshot_id)
{
  CLEANUP_FREE char *path = str_printf ("snapshots/%s/manifest.json",
                                        snapshot_id);

  return path ? key_in_export (root, export_id, path) : NULL;
}

/* A clone writes no blob of its own (it references its source's), so
 * only a base is "base.blob"; everything a publish writes is a delta.
 */
char *
key_blob_rel (const char *export_id, const char *snapshot_id,
              enum manifest_kind kind)
{
  return key_blob_piece_rel (export_id, snapshot_id, kind, 0);
}

char *
key_blob_piece_rel (const char *export_id, const char *snapshot_id,
                    enum manifest_kind kind, unsigned piece)
{
  const char *name = kind == MANIFEST_BASE ? "base" : "delta";

  assert (piece < BLOB_PIECES_MAX);
  if (piece == 0)
    return str_printf ("%s/snapshots/%s/%s.blob", export_id, snapshot_id,
                       name);
  return str_printf ("%s/snapshots/%s/%s.%u.blob", export_id, snapshot_id,
                     name, piece);
}

bool
key_blob_is_own (const char *key, const char *export_id,
                 const char *snapshot_id)
{
  size_t e = strlen (export_id);

  return blob_key_kind (key) != -1 && strncmp (key, export_id, e) == 0 &&
    strncmp (key + e, "/snapshots/", 11) == 0 &&
    strncmp (key + e + 11, snapshot_id, SNAPSHOT_ID_LEN) == 0 &&
    key[e + 11 + SNAPSHOT_ID_LEN] == '/';
}
