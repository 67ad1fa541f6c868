/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* test-format: volume.json and manifest.json (common/format.h).
 *
 * What must hold, because every reader of a snapshot depends on it:
 *  - a head and a manifest survive format and parse unchanged, and
 *    format(parse(format(m))) is the same text as format(m);
 *  - manifest_add_chunk merges contiguous chunks into one extent, and
 *    refuses chunks out of order, outside the image or outside their blob;
 *  - manifest_find answers at the edges of runs, in holes and for the
 *    short last chunk of an image;
 *  - object keys never contain "//", whatever the export root looks like;
 *  - every hostile document (truncated, mistyped, out of range,
 *    overlapping, escaping the export root, too large, too deep, with a
 *    NUL) is refused with EBADMSG and a message naming the problem, and
 *    unknown fields are ignored;
 *  - a manifest reads the same, to the byte of its error, whether it is
 *    fed whole or a byte at a time, and whatever the order of members;
 *  - manifests are written in version 2 (hashes in base64, strictly
 *    checked), and version 1 (hex) is read as ever; a version 3 is not;
 *  - a manifest listing 262144 chunks formats and parses in well under a
 *    second (the timings are printed) and stays within manifest_max_size.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "err.h"
#include "format.h"
#include "jsontok.h"
#include "util.h"

#define S1 "0195d4f0a1b24c3d8e4f5a6b7c8d9e0f"
#define S2 "0195d4f7a7c84b8d9a4cf59d1c4c7c9e"
#define HEX64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define KIB64 65536
#define PLACEHOLDER "@@value@@"

static int failures;

#define CHECK(cond) check ((cond), #cond, __LINE__)

static bool
check (bool ok, const char *what, int line)
{
  if (!ok) {
    fprintf (stderr, "test-format.c:%d: FAIL: %s\n", line, what);
    failures++;
  }
  return ok;
}

/* The call just made failed with ERRNUM and a message containing SUB. */
#define CHECK_ERROR(errnum, sub) check_error ((errnum), (sub), __LINE__)

static void
check_error (int errnum, const char *sub, int line)
{
  if (err_errno () != errnum || strstr (err_msg (), sub) == NULL) {
    fprintf (stderr, "test-format.c:%d: FAIL: expected errno %d and "
             "\"%s\"\n  got errno %d: %s\n", line, errnum, sub,
             err_errno (), err_msg ());
    failures++;
  }
}

/* A recognisable hash for chunk C. */
static const unsigned char *
sha_of (uint64_t c)
{
  static unsigned char sha[32];

  for (int i = 0; i < 32; i++)
    sha[i] = c * 31 + i;
  return sha;
}

/* Strings are written escaped as RFC 8259 says, in runs between the
 * bytes that need an escape, which may be first, last or adjacent.
 */
static void
test_write_string (void)
{
  static const char *const cases[][2] = {
    { "", "\"\"" },
    { "plain/text \xc3\xa9", "\"plain/text \xc3\xa9\"" },
    { "\"quoted\"", "\"\\\"quoted\\\"\"" },
    { "a\\b\\\\", "\"a\\\\b\\\\\\\\\"" },
    { "\x01\ttab\nline\x1f", "\"\\u0001\\u0009tab\\u000aline\\u001f\"" },
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *buf = NULL;
    size_t len;
    FILE *f = memstream_open (&buf, &len);

    if (!CHECK (f != NULL))
      return;
    format_write_string (f, cases[i][0]);
    if (CHECK (memstream_close (f, &buf) == 0) &&
        !CHECK (strcmp (buf, cases[i][1]) == 0))
      fprintf (stderr, "  wrote %s, not %s\n", buf, cases[i][1]);
    free (buf);
  }
}

static void
test_chunks (void)
{
  CHECK (chunk_size_valid (CHUNK_SIZE_MIN));
  CHECK (chunk_size_valid (CHUNK_SIZE_DEFAULT));
  CHECK (chunk_size_valid (CHUNK_SIZE_MAX));
  CHECK (!chunk_size_valid (0));
  CHECK (!chunk_size_valid (CHUNK_SIZE_MIN / 2));
  CHECK (!chunk_size_valid (CHUNK_SIZE_MAX * UINT64_C (2)));
  CHECK (!chunk_size_valid (CHUNK_SIZE_MIN + 1));
  CHECK (!chunk_size_valid (3 * CHUNK_SIZE_MIN));

  CHECK (chunk_count (10 * KIB64, KIB64) == 10);
  CHECK (chunk_count (10 * KIB64 + 1, KIB64) == 11);
  CHECK (chunk_count (1, KIB64) == 1);
  CHECK (chunk_count (IMAGE_SIZE_MAX, CHUNK_SIZE_MIN) ==
         IMAGE_SIZE_MAX / CHUNK_SIZE_MIN);

  CHECK (chunk_len (10 * KIB64 + 1000, KIB64, 0) == KIB64);
  CHECK (chunk_len (10 * KIB64 + 1000, KIB64, 9) == KIB64);
  CHECK (chunk_len (10 * KIB64 + 1000, KIB64, 10) == 1000);
  CHECK (chunk_len (10 * KIB64 + 1000, KIB64, 11) == 0);
  CHECK (chunk_len (10 * KIB64, KIB64, 9) == KIB64);
  CHECK (chunk_len (10 * KIB64, KIB64, 10) == 0);
  CHECK (chunk_len (10 * KIB64, KIB64, UINT64_MAX) == 0);
}

/* KEY is EXPECT; keys are compared, then freed. */
static void
check_key (char *key, const char *expect, int line)
{
  if (!check (strcmp (key, expect) == 0, expect, line))
    fprintf (stderr, "  got %s\n", key);
  check (strstr (key, "//") == NULL, "no // in the key", line);
  free (key);
}

static void
test_keys (void)
{
  static const char *roots[] = { "exports", "exports/", "exports//" };
  char *rel;

  for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
    check_key (key_volume (roots[i], "vm01"), "exports/vm01/volume.json",
               __LINE__);
    check_key (key_refs_current (roots[i], "vm01"),
               "exports/vm01/refs/current.json", __LINE__);
    check_key (key_snapshots_prefix (roots[i], "vm01"),
               "exports/vm01/snapshots/", __LINE__);
    check_key (key_manifest (roots[i], "vm01", S1),
               "exports/vm01/snapshots/" S1 "/manifest.json", __LINE__);
    check_key (key_join (roots[i], "vm00/snapshots/" S1 "/base.blob"),
               "exports/vm00/snapshots/" S1 "/base.blob", __LINE__);
  }
  check_key (key_volume ("", "vm01"), "vm01/volume.json", __LINE__);
  check_key (key_volume ("/", "vm01"), "vm01/volume.json", __LINE__);
  check_key (key_snapshots_prefix ("", "vm01"), "vm01/snapshots/", __LINE__);
  check_key (key_manifest ("a/b", "vm01", S2),
             "a/b/vm01/snapshots/" S2 "/manifest.json", __LINE__);

  rel = key_blob_rel ("vm01", S1, MANIFEST_DELTA);
  check_key (key_join ("", rel), "vm01/snapshots/" S1 "/delta.blob", __LINE__);
  free (rel);
  check_key (key_blob_rel ("vm01", S1, MANIFEST_BASE),
             "vm01/snapshots/" S1 "/base.blob", __LINE__);
  check_key (key_blob_rel ("vm01", S1, MANIFEST_CLONE),
             "vm01/snapshots/" S1 "/delta.blob", __LINE__);
}

/* Replace the value at POINTER in TEXT with the raw JSON text VALUE
 * (verbatim, so that literals json-c would rewrite, such as
 * 99999999999999999999 or 1e3, reach the parser as written), or delete
 * the member if VALUE is NULL.  Returns the new document (malloc'd).
 */
static char *
mutate (const char *text, const char *pointer, const char *value)
{
  struct json_object *doc = json_tokener_parse (text), *parent;
  CLEANUP_FREE char *path = strdup (pointer);
  char *last = strrchr (path, '/'), *out, *at;
  const char *s;

  *last++ = '\0';
  if (value)
    json_pointer_set (&doc, pointer, json_object_new_string (PLACEHOLDER));
  else if (json_pointer_get (doc, path, &parent) == 0)
    json_object_object_del (parent, last);
  s = json_object_to_json_string_ext (doc, JSON_C_TO_STRING_PRETTY);
  at = strstr (s, "\"" PLACEHOLDER "\"");
  if (at)
    out = xasprintf ("%.*s%s%s", (int) (at - s), s, value,
                     at + strlen ("\"" PLACEHOLDER "\""));
  else
    out = strdup (s);
  json_object_put (doc);
  return out;
}

struct mutation {
  const char *pointer;          /* JSON pointer into the document */
  const char *value;            /* its new JSON text, or NULL: delete it */
  const char *message;          /* expected in the error; NULL: valid */
};

/* DOC, printed by json-c (its members in their order), and freed.  The
 * text ends in a newline, as lazyvol's do.  Malloc'd.
 */
static char *
print_json (struct json_object *doc)
{
  char *out = xasprintf ("%s\n", json_object_to_json_string_ext
                         (doc, JSON_C_TO_STRING_PRETTY));

  json_object_put (doc);
  return out;
}

/* The manifest TEXT (version 2, as manifest_format writes it) as the first
 * lazyvol wrote it: version 1, hashes in hex.  Malloc'd.
 */
static char *
to_v1 (const char *text)
{
  struct json_object *doc = json_tokener_parse (text);
  struct json_object *extents = json_object_object_get (doc, "extents");

  json_object_object_add (doc, "version", json_object_new_int (1));
  for (size_t i = 0; i < json_object_array_length (extents); i++) {
    struct json_object *sha =
      json_object_object_get (json_object_array_get_idx (extents, i),
                              "sha256");

    for (size_t j = 0; j < json_object_array_length (sha); j++) {
      unsigned char d[32];
      char hex[65];

      CHECK (base64_decode (json_object_get_string
                            (json_object_array_get_idx (sha, j)), d, 32));
      hex_encode (d, 32, hex);
      json_object_array_put_idx (sha, j, json_object_new_string (hex));
    }
  }
  return print_json (doc);
}

/* V with the members of every object in reverse order (a new object). */
static struct json_object *
reverse (struct json_object *v)
{
  struct json_object *out;

  if (json_object_is_type (v, json_type_array)) {
    out = json_object_new_array ();
    for (size_t i = 0; i < json_object_array_length (v); i++)
      json_object_array_add (out, reverse (json_object_array_get_idx (v, i)));
    return out;
  }
  if (!json_object_is_type (v, json_type_object))
    return json_object_get (v);
  out = json_object_new_object ();
  {
    size_t n = json_object_object_length (v), i = n;
    CLEANUP_FREE const char **keys = calloc (n + 1, sizeof *keys);
    CLEANUP_FREE struct json_object **vals = calloc (n + 1, sizeof *vals);

    json_object_object_foreach (v, key, val) {
      i--;
      keys[i] = key;
      vals[i] = val;
    }
    for (i = 0; i < n; i++)
      json_object_object_add (out, keys[i], reverse (vals[i]));
  }
  return out;
}

/* TEXT with every object's members in reverse order: the manifest's
 * extents come first, its format and version last.  Malloc'd.
 */
static char *
reversed (const char *text)
{
  struct json_object *doc = json_tokener_parse (text);
  struct json_object *rev = reverse (doc);

  json_object_put (doc);
  return print_json (rev);
}

/* Parse manifest TEXT fed to a reader in pieces of PIECE bytes. */
static struct manifest *
parse_in_pieces (const char *text, size_t len, size_t piece,
                 const char *export_id, const char *snapshot_id)
{
  struct manifest_reader *r = manifest_reader_new (export_id, snapshot_id);
  struct manifest *m = NULL;
  size_t off;

  for (off = 0; off < len; off += piece)
    if (manifest_reader_feed (r, text + off,
                              len - off < piece ? len - off : piece) == -1)
      break;
  if (off >= len)
    m = manifest_reader_finish (r);
  manifest_reader_free (r);
  return m;
}

/* volume.json */

static const char volume_text[] =
  "{\n"
  "  \"format\": \"lazyvol-volume\",\n"
  "  \"version\": 2,\n"
  "  \"export_id\": \"vm01\",\n"
  "  \"image_size\": 1073741824,\n"
  "  \"chunk_size\": 4194304,\n"
  "  \"generation\": 3,\n"
  "  \"snapshot_id\": \"" S2 "\",\n"
  "  \"epoch\": 4,\n"
  "  \"updated\": \"2026-11-21T10:00:00Z\"\n"
  "}\n";

/* What the first lazyvol wrote: version 1, no epoch. */
static const char volume_v1_text[] =
  "{\"format\": \"lazyvol-volume\", \"version\": 1, \"export_id\": \"vm01\", "
  "\"image_size\": 65536, \"chunk_size\": 65536, \"generation\": 1, "
  "\"snapshot_id\": \"" S2 "\", \"updated\": \"2026-11-21T10:00:00Z\"}";

static const struct mutation volume_bad[] = {
  { "/format", "\"lazyvol-manifest\"", "not a lazyvol-volume document" },
  { "/format", NULL, "missing field \"format\"" },
  { "/version", "3", "format version 3 is newer than this lazyvol reads (2)" },
  { "/epoch", NULL, "missing field \"epoch\"" },
  { "/epoch", "-2", "epoch: must not be negative" },
  { "/version", "1.0", "version: expected int, got double" },
  { "/export_id", "\"vm02\"", "export_id: \"vm02\" is not the expected \"vm01\"" },
  { "/export_id", "\"a/b\"", "export_id: \"a/b\" is not a valid export id" },
  { "/export_id", "\"-vm01\"", "is not a valid export id" },
  { "/image_size", "-1", "image_size: must not be negative" },
  { "/image_size", "0", "image_size: 0 is out of range" },
  { "/image_size", "1.5", "image_size: expected int, got double" },
  { "/image_size", "\"7\"", "image_size: expected int, got string" },
  { "/chunk_size", "1000000", "chunk_size: 1000000 is not a power of two" },
  { "/chunk_size", NULL, "missing field \"chunk_size\"" },
  { "/generation", "0", "snapshot_id: must be null at generation 0" },
  { "/generation", "18446744073709551615", "generation: number too large" },
  { "/snapshot_id", "null", "snapshot_id: null at generation 3" },
  { "/snapshot_id", "\"xyz\"", "snapshot_id: \"xyz\" is not a valid snapshot id" },
  { "/snapshot_id", "{}", "snapshot_id: expected string, got object" },
  { "/updated", "5", "updated: expected string, got int" },
  { "/updated", "\"2026-11-21 10:00:00\"", "updated: \"2026-11-21 10:00:00\" is "
    "not a UTC time" },
  { "/updated", NULL, "missing field \"updated\"" },
  { "/comment", "{\"by\": [\"someone\", 2, null]}", NULL },
};

static void
test_volume (void)
{
  struct volume_head h, h2;
  CLEANUP_FREE char *text = NULL;
  CLEANUP_FREE char *text0 = NULL;

  CHECK (volume_parse (volume_text, strlen (volume_text), "vm01", &h) == 0);
  CHECK (strcmp (h.export_id, "vm01") == 0);
  CHECK (h.image_size == 1073741824 && h.chunk_size == 4194304);
  CHECK (h.generation == 3 && strcmp (h.snapshot_id, S2) == 0);
  CHECK (h.epoch == 4);
  CHECK (strcmp (h.updated, "2026-11-21T10:00:00Z") == 0);
  text = volume_format (&h);
  CHECK (strcmp (text, volume_text) == 0);
  CHECK (volume_parse (volume_v1_text, strlen (volume_v1_text), "vm01",
                       &h2) == 0 && h2.epoch == 0 && h2.generation == 1);

  /* Before the first publish: generation 0 and a null snapshot. */
  h.generation = 0;
  h.snapshot_id[0] = '\0';
  text0 = volume_format (&h);
  CHECK (strstr (text0, "\"snapshot_id\": null") != NULL);
  CHECK (volume_parse (text0, strlen (text0), NULL, &h2) == 0);
  CHECK (h2.generation == 0 && h2.snapshot_id[0] == '\0');

  for (size_t i = 0; i < sizeof volume_bad / sizeof volume_bad[0]; i++) {
    const struct mutation *t = &volume_bad[i];
    CLEANUP_FREE char *doc = mutate (volume_text, t->pointer, t->value);
    int r = volume_parse (doc, strlen (doc), "vm01", &h2);

    if (t->message == NULL)
      check (r == 0, t->pointer, __LINE__);
    else if (check (r == -1, t->message, __LINE__))
      check_error (EBADMSG, t->message, __LINE__);
  }
}

/* owner.json and lease records */

static void
test_owner_lease (void)
{
  struct owner_record o = { .export_id = "vm01", .host_id = "host-a",
                            .cache_id = S1, .epoch = 7,
                            .since = "2026-11-21T10:00:00Z" }, o2;
  struct lease_record l = { .host_id = "host-a", .cache_id = S1, .count = 9,
                            .period_ms = 30000,
                            .renewed = "2026-11-21T10:00:00Z",
                            .revoked = { { "vm01", 7 }, { "vm02", 1 } },
                            .nrevoked = 2 }, l2;
  CLEANUP_FREE char *ot = owner_format (&o);
  CLEANUP_FREE char *lt = lease_format (&l);
  CLEANUP_FREE char *free_text = NULL;
  CLEANUP_FREE char *bad_host = NULL;

  CHECK (owner_parse (ot, strlen (ot), "vm01", &o2) == 0);
  CHECK (strcmp (o2.host_id, "host-a") == 0 && o2.epoch == 7 &&
         strcmp (o2.cache_id, S1) == 0);
  CHECK (owner_parse (ot, strlen (ot), "vm02", &o2) == -1);
  o.host_id[0] = o.cache_id[0] = '\0';           /* released */
  free_text = owner_format (&o);
  CHECK (strstr (free_text, "\"host_id\": null") != NULL);
  CHECK (owner_parse (free_text, strlen (free_text), NULL, &o2) == 0 &&
         o2.host_id[0] == '\0' && o2.epoch == 7);
  bad_host = mutate (ot, "/host_id", "\"../h\"");
  CHECK (owner_parse (bad_host, strlen (bad_host), NULL, &o2) == -1);

  CHECK (lease_parse (lt, strlen (lt), "host-a", &l2) == 0);
  CHECK (l2.count == 9 && l2.period_ms == 30000 && l2.nrevoked == 2 &&
         strcmp (l2.revoked[1].export_id, "vm02") == 0 &&
         l2.revoked[0].epoch == 7);
  CHECK (lease_parse (lt, strlen (lt), "host-b", &l2) == -1);
  CHECK (host_id_valid ("h1.example-2") && !host_id_valid (".h") &&
         !host_id_valid ("a/b"));
}

/* manifest.json */

/* The manifest the hostile variations start from: 11 chunks of 64 KiB,
 * the last one 1000 bytes; chunks 0-1 in S1's base blob, 4-6 and the
 * short chunk 10 in S2's delta blob, which ends exactly after chunk 10.
 */
static struct manifest *
small_manifest (void)
{
  struct manifest *m = manifest_new ("vm01", S2, MANIFEST_DELTA, 3,
                                     10 * KIB64 + 1000, KIB64);

  strcpy (m->parent, S1);
  strcpy (m->created, "2026-11-21T10:00:00Z");
  m->base_ref = strdup ("vm01/snapshots/" S1 "/base.blob");
  CHECK (manifest_add_blob (m, "vm01/snapshots/" S1 "/base.blob",
                            2 * KIB64) == 0);
  CHECK (manifest_add_blob (m, "vm01/snapshots/" S2 "/delta.blob",
                            3 * KIB64 + 1000) == 1);
  CHECK (manifest_add_chunk (m, 0, 0, 0, sha_of (0)) == 0);
  CHECK (manifest_add_chunk (m, 1, 0, KIB64, sha_of (1)) == 0);
  for (uint64_t c = 4; c <= 6; c++)
    CHECK (manifest_add_chunk (m, c, 1, (c - 4) * KIB64, sha_of (c)) == 0);
  CHECK (manifest_add_chunk (m, 10, 1, 3 * KIB64, sha_of (10)) == 0);
  return m;
}

static bool
manifests_equal (const struct manifest *a, const struct manifest *b)
{
  if (strcmp (a->export_id, b->export_id) ||
      strcmp (a->snapshot_id, b->snapshot_id) ||
      strcmp (a->parent, b->parent) || a->kind != b->kind ||
      a->generation != b->generation || a->image_size != b->image_size ||
      a->chunk_size != b->chunk_size || strcmp (a->created, b->created) ||
      (a->base_ref == NULL) != (b->base_ref == NULL) ||
      (a->base_ref && strcmp (a->base_ref, b->base_ref)) ||
      strcmp (a->cloned_export, b->cloned_export) ||
      strcmp (a->cloned_snapshot, b->cloned_snapshot) ||
      a->nblobs != b->nblobs || a->nextents != b->nextents ||
      a->nsha != b->nsha ||
      (a->nsha && memcmp (a->sha, b->sha, a->nsha * sizeof *a->sha)))
    return false;
  for (size_t i = 0; i < a->nblobs; i++)
    if (strcmp (a->blobs[i].key, b->blobs[i].key) ||
        a->blobs[i].size != b->blobs[i].size)
      return false;
  for (size_t i = 0; i < a->nextents; i++) {
    const struct manifest_extent *x = &a->extents[i], *y = &b->extents[i];
    if (x->chunk != y->chunk || x->count != y->count || x->blob != y->blob ||
        x->offset != y->offset || x->hash != y->hash)
      return false;
  }
  return true;
}

/* Format M, parse it back, and check that nothing changed.  Returns the
 * text (malloc'd).
 */
static char *
check_round_trip (const struct manifest *m, int line)
{
  char *text = manifest_format (m);
  struct manifest *back = manifest_parse (text, strlen (text),
                                          m->export_id, m->snapshot_id);
  CLEANUP_FREE char *again = NULL;

  if (!check (back != NULL, "parse the formatted manifest", line)) {
    fprintf (stderr, "  %s\n", err_msg ());
    return text;
  }
  check (manifests_equal (m, back), "round trip keeps every field", line);
  again = manifest_format (back);
  check (strcmp (text, again) == 0, "round trip keeps the text", line);
  manifest_free (back);
  return text;
}

static void
test_add_chunk (void)
{
  struct manifest *m = manifest_new ("vm01", S2, MANIFEST_DELTA, 1,
                                     100 * KIB64, KIB64);

  CHECK (manifest_add_blob (m, "vm01/snapshots/" S2 "/delta.blob",
                            10 * KIB64) == 0);
  CHECK (manifest_add_blob (m, "vm00/snapshots/" S1 "/base.blob",
                            100 * KIB64) == 1);
  /* 0, 1, 2: one run. */
  for (uint64_t c = 0; c < 3; c++)
    CHECK (manifest_add_chunk (m, c, 0, c * KIB64, sha_of (c)) == 0);
  CHECK (m->nextents == 1 && m->extents[0].count == 3);
  /* 3 in another blob, 4 after a different offset, 6 after a hole. */
  CHECK (manifest_add_chunk (m, 3, 1, 3 * KIB64, sha_of (3)) == 0);
  CHECK (manifest_add_chunk (m, 4, 0, 4 * KIB64, sha_of (4)) == 0);
  CHECK (manifest_add_chunk (m, 6, 0, 5 * KIB64, sha_of (6)) == 0);
  CHECK (m->nextents == 4);
  CHECK (m->extents[1].chunk == 3 && m->extents[1].blob == 1);
  CHECK (m->extents[2].chunk == 4 && m->extents[2].offset == 4 * KIB64);
  CHECK (m->extents[3].chunk == 6 && m->extents[3].hash == 5);
  CHECK (m->nsha == 6);

  /* Refused, and nothing changes. */
  CHECK (manifest_add_chunk (m, 6, 0, 6 * KIB64, sha_of (6)) == -1);
  CHECK_ERROR (EINVAL, "chunk 6 added after chunk 6");
  CHECK (manifest_add_chunk (m, 2, 0, 6 * KIB64, sha_of (2)) == -1);
  CHECK_ERROR (EINVAL, "chunk 2 added after chunk 6");
  CHECK (manifest_add_chunk (m, 100, 0, 6 * KIB64, sha_of (0)) == -1);
  CHECK_ERROR (EINVAL, "chunk 100 is beyond the image (100 chunks)");
  CHECK (manifest_add_chunk (m, 7, 2, 0, sha_of (7)) == -1);
  CHECK_ERROR (EINVAL, "blob 2 does not exist (2 blobs)");
  CHECK (manifest_add_chunk (m, 7, 0, 9 * KIB64 + 1, sha_of (7)) == -1);
  CHECK_ERROR (EINVAL, "goes beyond the end of blob 0");
  CHECK (manifest_add_chunk (m, 7, 0, UINT64_MAX, sha_of (7)) == -1);
  CHECK_ERROR (EINVAL, "goes beyond the end of blob 0");
  CHECK (manifest_add_blob (m, "vm01/../x/snapshots/" S2 "/delta.blob",
                            1) == -1);
  CHECK_ERROR (EINVAL, "is not a blob key");
  CHECK (m->nextents == 4 && m->nsha == 6 && m->nblobs == 2);

  /* The last chunk that fits in blob 0 still merges. */
  CHECK (manifest_add_chunk (m, 7, 0, 6 * KIB64, sha_of (7)) == 0);
  CHECK (m->nextents == 4 && m->extents[3].count == 2);
  free (check_round_trip (m, __LINE__));
  manifest_free (m);
}

/* manifest_find agrees with a plain table of where every chunk went. */
static void
test_find (void)
{
  struct manifest *m = small_manifest ();
  struct manifest *empty = manifest_new ("vm01", S1, MANIFEST_DELTA, 1,
                                         KIB64, KIB64);
  static const struct { int blob; uint64_t offset; } where[11] = {
    { 0, 0 }, { 0, KIB64 }, { -1, 0 }, { -1, 0 }, { 1, 0 }, { 1, KIB64 },
    { 1, 2 * KIB64 }, { -1, 0 }, { -1, 0 }, { -1, 0 }, { 1, 3 * KIB64 },
  };
  const char *key;
  uint64_t offset;
  const unsigned char *sha;

  for (uint64_t c = 0; c < 11; c++) {
    bool found = manifest_find (m, c, &key, &offset, &sha);

    if (!check (found == (where[c].blob >= 0), "find: listed or a hole",
                __LINE__)) {
      fprintf (stderr, "  chunk %" PRIu64 "\n", c);
      continue;
    }
    if (found) {
      CHECK (strcmp (key, m->blobs[where[c].blob].key) == 0);
      CHECK (offset == where[c].offset);
      CHECK (memcmp (sha, sha_of (c), 32) == 0);
    }
  }
  CHECK (chunk_len (m->image_size, m->chunk_size, 10) == 1000);
  CHECK (!manifest_find (m, 11, &key, &offset, &sha));
  CHECK (!manifest_find (m, UINT64_MAX, &key, &offset, &sha));
  CHECK (!manifest_find (empty, 0, &key, &offset, &sha));
  manifest_free (m);
  manifest_free (empty);
}

static void
test_manifest_round_trip (void)
{
  struct manifest *m = small_manifest ();
  struct manifest *clone = manifest_new ("vm02", S2, MANIFEST_CLONE, 1,
                                         10 * KIB64 + 1000, KIB64);
  struct manifest *empty = manifest_new ("vm03", S1, MANIFEST_BASE, 7,
                                         IMAGE_SIZE_MAX, CHUNK_SIZE_MAX);
  CLEANUP_FREE char *text = check_round_trip (m, __LINE__);
  struct manifest *parsed;

  /* Human-readable: keys are not escaped, the base is named. */
  CHECK (strstr (text, "\"key\": \"vm01/snapshots/" S2 "/delta.blob\"") != NULL);
  CHECK (strstr (text, "\"base_ref\": \"vm01/snapshots/" S1 "/base.blob\"") != NULL);
  CHECK (strstr (text, "\"kind\": \"delta\"") != NULL);

  /* Ids are checked only when given. */
  parsed = manifest_parse (text, strlen (text), NULL, NULL);
  CHECK (parsed != NULL && manifests_equal (m, parsed));
  manifest_free (parsed);
  CHECK (manifest_parse (text, strlen (text), "vm01", S1) == NULL);
  CHECK_ERROR (EBADMSG, "manifest vm01/" S1 ": snapshot_id: \"" S2 "\" is "
               "not the expected \"" S1 "\"");

  /* A clone references its source's blobs and says where it came from. */
  strcpy (clone->cloned_export, "vm01");
  strcpy (clone->cloned_snapshot, S2);
  CHECK (manifest_add_blob (clone, "vm01/snapshots/" S2 "/delta.blob",
                            3 * KIB64 + 1000) == 0);
  CHECK (manifest_add_chunk (clone, 10, 0, 3 * KIB64, sha_of (10)) == 0);
  free (check_round_trip (clone, __LINE__));

  /* All zeros: no blobs, no extents, at the largest geometry. */
  free (check_round_trip (empty, __LINE__));

  manifest_free (m);
  manifest_free (clone);
  manifest_free (empty);
}

#define ID129 "a23456789012345678901234567890123456789012345678901234567890" \
  "1234567890123456789012345678901234567890123456789012345678901234567890"

static const struct mutation manifest_bad[] = {
  { "/format", "\"lazyvol-volume\"", "not a lazyvol-manifest document "
    "(format \"lazyvol-volume\")" },
  { "/format", NULL, "manifest vm01/" S2 ": missing field \"format\"" },
  { "/format", "7", "format: expected string, got int" },
  { "/version", "3", "format version 3 is newer than this lazyvol reads (2)" },
  { "/version", "0", "version: 0 is out of range" },
  { "/version", "\"1\"", "version: expected int, got string" },
  { "/export_id", "\"vm02\"", "export_id: \"vm02\" is not the expected \"vm01\"" },
  { "/export_id", "\"../etc\"", "export_id: \"../etc\" is not a valid export id" },
  { "/export_id", "\"" ID129 "\"", "is not a valid export id" },
  { "/export_id", "\"vm01\\u0000x\"", "export_id: contains a NUL character" },
  { "/export_id", "null", "export_id: expected string, got null" },
  { "/snapshot_id", "\"0195D4F7A7C84B8D9A4CF59D1C4C7C9E\"", "snapshot_id: "
    "\"0195D4F7A7C84B8D9A4CF59D1C4C7C9E\" is not a valid snapshot id" },
  { "/snapshot_id", NULL, "missing field \"snapshot_id\"" },
  { "/parent", "\"0195d4f0\"", "parent: \"0195d4f0\" is not a valid snapshot id" },
  { "/parent", "\"" S2 "\"", "parent: the snapshot is its own parent" },
  { "/parent", NULL, "missing field \"parent\"" },
  { "/kind", "\"full\"", "kind: \"full\" is not delta, base or clone" },
  { "/kind", "\"\\u001b[31mred\"", "kind: \"?[31mred\" is not delta" },
  { "/kind", "\"clone\"", "cloned_from: missing in a clone" },
  { "/cloned_from", "{\"export_id\": \"vm00\", \"snapshot_id\": \"" S1 "\"}",
    "cloned_from: only a clone has it, this is a delta" },
  { "/generation", "0", "generation: 0 is out of range [1, 9223372036854775807]" },
  { "/generation", "-1", "generation: must not be negative" },
  { "/generation", "-9223372036854775809", "generation: must not be negative" },
  { "/generation", "1.5", "generation: expected int, got double" },
  { "/generation", "1e3", "generation: expected int, got double" },
  /* json-c read these as doubles; they are not JSON (RFC 8259). */
  { "/generation", "NaN", "invalid JSON at byte" },
  { "/generation", "Infinity", "invalid JSON at byte" },
  { "/generation", "-Infinity", "invalid JSON at byte" },
  { "/generation", "01", "invalid JSON at byte" },
  { "/generation", "1.", "invalid JSON at byte" },
  { "/generation", "+1", "invalid JSON at byte" },
  { "/generation", "1e", "invalid JSON at byte" },
  { "/generation", "0x10", "invalid JSON at byte" },
  { "/generation", "-0", "generation: 0 is out of range" },
  { "/generation", "2E+1", "generation: expected int, got double" },
  { "/generation", "\"7\"", "generation: expected int, got string" },
  { "/generation", "true", "generation: expected int, got boolean" },
  { "/generation", "99999999999999999999999", "generation: number too large" },
  { "/generation", "9223372036854775808", "generation: number too large" },
  { "/created", "\"yesterday\"", "created: \"yesterday\" is not a UTC time" },
  { "/created", "\"2026-11-21T10:00:00Z \"", "is not a UTC time" },
  { "/image_size", "0", "image_size: 0 is out of range" },
  { "/image_size", "4611686018427387905", "image_size: 4611686018427387905 "
    "is out of range [1, 4611686018427387904]" },
  { "/chunk_size", "65537", "chunk_size: 65537 is not a power of two" },
  { "/chunk_size", "32768", "chunk_size: 32768 is out of range" },
  { "/chunk_size", "134217728", "chunk_size: 134217728 is out of range" },
  { "/base_ref", "\"vm01/snapshots/" S1 "/delta.blob\"", "base_ref: "
    "\"vm01/snapshots/" S1 "/delta.blob\" is not" },
  { "/base_ref", "\"../vm01/snapshots/" S1 "/base.blob\"", "base_ref: \"../vm01" },
  { "/base_ref", "[]", "base_ref: expected string, got array" },
  { "/blobs", "{}", "blobs: expected array, got object" },
  { "/blobs", NULL, "missing field \"blobs\"" },
  { "/blobs/0", "\"x\"", "blobs[0]: expected object, got string" },
  { "/blobs/0/key", NULL, "blobs[0]: missing field \"key\"" },
  { "/blobs/0/key", "\"../vm01/snapshots/" S1 "/base.blob\"",
    "blobs[0]: key: \"../vm01/snapshots/" S1 "/base.blob\" is not" },
  { "/blobs/1/key", "\"/abs/snapshots/" S1 "/base.blob\"", "blobs[1]: key: \"/abs" },
  { "/blobs/0/key", "\"vm01/../vm02/snapshots/" S1 "/base.blob\"", "blobs[0]: key:" },
  { "/blobs/0/key", "\"vm01/snapshots/" S1 "/base.blob/..\"", "blobs[0]: key:" },
  { "/blobs/0/key", "\"vm01/snapshots/../" S1 "/base.blob\"", "blobs[0]: key:" },
  { "/blobs/0/key", "\"vm01/snapshots/" S1 "/manifest.json\"", "blobs[0]: key:" },
  { "/blobs/0/key", "\"vm01/snapshots/" S1 "/base.blob\\n\"", "blobs[0]: key:" },
  { "/blobs/0/key", "\".vm01/snapshots/" S1 "/base.blob\"", "blobs[0]: key:" },
  { "/blobs/0/key", "\"vm01//snapshots/" S1 "/base.blob\"", "blobs[0]: key:" },
  { "/blobs/0/key", "\"vm01/snapshots/" S1 "0/base.blob\"", "blobs[0]: key:" },
  { "/blobs/0/key", "\"vm01/snapshots//base.blob\"", "blobs[0]: key:" },
  { "/blobs/0/key", "\"vm01/snapshot/" S1 "/base.blob\"", "blobs[0]: key:" },
  { "/blobs/0/key", "\"" ID129 "/snapshots/" S1 "/base.blob\"", "blobs[0]: key:" },
  { "/blobs/0/key", "\"vm01\"", "blobs[0]: key: \"vm01\" is not" },
  { "/blobs/0/key", "\"\"", "blobs[0]: key: \"\" is not" },
  { "/blobs/0/size", "-5", "blobs[0]: size: must not be negative" },
  { "/blobs/0/size", "131071", "extents[0]: 131072 bytes at offset 0 go beyond "
    "the end of blob 0 (131071 bytes)" },
  { "/blobs/1/size", "197607", "extents[2]: 1000 bytes at offset 196608 go "
    "beyond the end of blob 1 (197607 bytes)" },
  { "/extents", NULL, "missing field \"extents\"" },
  { "/extents", "null", "extents: expected array, got null" },
  { "/extents/0", "[]", "extents[0]: expected object, got array" },
  { "/extents/0/chunk", NULL, "extents[0]: missing field \"chunk\"" },
  { "/extents/1/chunk", "1", "extents[1]: chunk 1 overlaps the previous extent" },
  { "/extents/1/chunk", "0", "extents[1]: chunk 0 overlaps the previous extent" },
  { "/extents/0/chunk", "5", "extents[1]: chunk 4 comes before the previous "
    "extent's chunk 5 (extents must be sorted)" },
  { "/extents/2/chunk", "11", "extents[2]: chunk 11 is beyond the image (11 chunks)" },
  { "/extents/2/chunk", "18446744073709551615", "extents[2]: chunk: number too large" },
  { "/extents/1/count", "8", "extents[1]: chunks 4-11 go beyond the image (11 chunks)" },
  { "/extents/2/count", "2", "extents[2]: chunks 10-11 go beyond the image" },
  { "/extents/1/count", "0", "extents[1]: count: 0 is out of range" },
  { "/extents/1/count", "4", "extents[1]: 262144 bytes at offset 0 go beyond "
    "the end of blob 1" },
  { "/extents/1/count", "9223372036854775807", "extents[1]: chunks 4-" },
  { "/extents/0/blob", "2", "extents[0]: blob 2 does not exist (2 blobs)" },
  { "/extents/0/blob", "-1", "extents[0]: blob: must not be negative" },
  { "/extents/0/blob", "4294967296", "extents[0]: blob 4294967296 does not exist" },
  { "/extents/0/offset", "65537", "extents[0]: 131072 bytes at offset 65537 go "
    "beyond the end of blob 0" },
  { "/extents/0/offset", "9223372036854775807", "go beyond the end of blob 0" },
  { "/extents/0/offset", "-65536", "extents[0]: offset: must not be negative" },
  { "/extents/0/sha256", "[]", "extents[0]: sha256: 0 hashes for 2 chunks" },
  { "/extents/0/sha256", "[\"" HEX64 "\"]", "sha256: 1 hashes for 2 chunks" },
  { "/extents/1/sha256", "[\"" HEX64 "\", \"" HEX64 "\", \"" HEX64 "\", \""
    HEX64 "\"]", "extents[1]: sha256: 4 hashes for 3 chunks" },
  { "/extents/0/sha256", "\"" HEX64 "\"", "sha256: expected array, got string" },
  { "/extents/0/sha256/0", "\"zz112233445566778899aabbccddeeff00112233445566778899"
    "aabbccddeeff\"", "extents[0]: sha256[0]: not a string of 64 hexadecimal digits" },
  { "/extents/0/sha256/1", "\"abcd\"", "extents[0]: sha256[1]: not a string" },
  { "/extents/0/sha256/1", "\"" HEX64 "00\"", "sha256[1]: not a string" },
  { "/extents/0/sha256/1", "5", "extents[0]: sha256[1]: not a string" },
  { "/extents/2/sha256/0", "null", "extents[2]: sha256[0]: not a string" },
  { "/future", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "nesting too deep" },
  { "/future", "[[[[[[[1]]]]]]]", "nesting too deep" },       /* 9 levels */
  { "/future", "\"\\ud800\"", "invalid JSON at byte" },     /* lone surrogates */
  { "/future", "\"\\udc00\\ud800\"", "invalid JSON at byte" },
  { "/future", "\"\\ud800\\u0041\"", "invalid JSON at byte" },
  { "/future", "\"\xed\xa0\x80\"", "invalid JSON at byte" }, /* UTF-8 surrogate */
  { "/future", "\"\xc0\xaf\"", "invalid JSON at byte" },     /* overlong */
  { "/future", "\"\xf4\x90\x80\x80\"", "invalid JSON at byte" }, /* > U+10FFFF */
  { "/future", "\"\xe2\x82\"", "invalid JSON at byte" },     /* cut short */
  { "/future", "\"tab\there\"", "invalid JSON at byte" },
  { "/future", "\"\\x41\"", "invalid JSON at byte" },
  { "/future", "[1, 2,]", "invalid JSON at byte" },
  { "/future", "{\"a\": 1,}", "invalid JSON at byte" },
  { "/future", "[1 2]", "invalid JSON at byte" },
  { "/future", "/* no */ 1", "invalid JSON at byte" },
  { "/future", "tru", "invalid JSON at byte" },
  { "/future", "nulls", "invalid JSON at byte" },
  { "/kind", "\"delta\", \"kind\": \"base\"", "kind: given twice" },
  { "/extents/0/count", "2, \"count\": 2", "extents[0]: count: given twice" },
  /* Valid: forward compatibility and optional fields. */
  { "/future", "{\"nested\": [1, {\"x\": null}], \"s\": \"\\u00e9\"}", NULL },
  { "/future", "[[[[[[1]]]]]]", NULL },        /* 8 levels */
  { "/future", "[[[[[[[]]]]]]]", NULL },
  { "/future", "\"\\ud83d\\ude00 \xf0\x9f\x98\x80 \xe2\x82\xac \\u20ac \\/\"", NULL },
  { "/future", "[-0.5e-3, 1E+2, 0, -1, 18446744073709551616, true, false]", NULL },
  { "/future", "{\"format\": 1, \"version\": \"x\", \"extents\": {}}", NULL },
  { "/extents/0/sha256/0", "\"" HEX64 "\"", NULL },
  { "/extents/0/comment", "\"the boot sector\"", NULL },
  { "/blobs/1/storage_class", "\"GLACIER\"", NULL },
  { "/base_ref", "null", NULL },
  { "/base_ref", NULL, NULL },
  { "/parent", "null", NULL },
};

#define A42 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define NOT_B64 "sha256[0]: not a string of 44 base64 characters"

/* Version 2: hashes in base64, exactly as manifest_format writes them. */
static const struct mutation manifest_bad_v2[] = {
  { "/version", "3", "format version 3 is newer than this lazyvol reads (2)" },
  { "/version", "1", "extents[0]: sha256[0]: not a string of 64 hexadecimal "
    "digits" },
  { "/extents/0/sha256/1", "\"" HEX64 "\"", "extents[0]: sha256[1]: not a "
    "string of 44 base64 characters" },
  { "/extents/2/sha256/0", "\"" A42 "A\"", "extents[2]: " NOT_B64 },
  { "/extents/0/sha256/0", "\"" A42 "B=\"", NOT_B64 },    /* bits left */
  { "/extents/0/sha256/0", "\"" A42 "==\"", NOT_B64 },    /* 31 bytes */
  { "/extents/0/sha256/0", "\"" A42 "AAA\"", NOT_B64 },   /* 33 bytes */
  { "/extents/0/sha256/0", "\"" A42 "A=A=\"", NOT_B64 },
  { "/extents/0/sha256/0", "\"-" A42 "=\"", NOT_B64 },    /* base64url */
  { "/extents/0/sha256/0", "\"_" A42 "=\"", NOT_B64 },
  { "/extents/0/sha256/0", "\" " A42 "=\"", NOT_B64 },
  { "/extents/0/sha256/0", "\"" A42 "A=\\n\"", NOT_B64 },
  { "/extents/0/sha256/0", "\"" A42 "A=\\u0000\"", NOT_B64 },
  { "/extents/0/sha256/0", "\"" A42 "\\u0000=\"", NOT_B64 },
  { "/extents/0/sha256/0", "\"\"", NOT_B64 },
  { "/extents/0/sha256/0", "44", NOT_B64 },
  { "/extents/0/sha256", "[\"" A42 "A=\"]", "sha256: 1 hashes for 2 chunks" },
  /* Valid: any 32 bytes, and JSON escapes are JSON's business. */
  { "/extents/0/sha256/0", "\"" A42 "A=\"", NULL },
  { "/extents/0/sha256/0", "\"" A42 "A\\u003d\"", NULL },
  { "/extents/0/sha256/0", "\"//////////////////////////////////////////w=\"",
    NULL },
};

/* Does DOC parse as the manifest vm01/S2? */
static bool
manifest_ok (const char *doc, size_t len)
{
  struct manifest *m = manifest_parse (doc, len, "vm01", S2);
  bool ok = m != NULL;

  manifest_free (m);
  return ok;
}

/* Every cut of a valid document, and bytes around and inside it. */
static void
test_hostile_bytes (const char *text)
{
  size_t len = strlen (text), close = strrchr (text, '}') - text;
  CLEANUP_FREE char *buf = malloc (2 * len + 2);
  CLEANUP_FREE char *big = NULL;
  size_t max = manifest_max_size (11);
  struct volume_head h;

  /* Truncated anywhere before the closing brace. */
  for (size_t cut = 0; cut <= close; cut++) {
    if (!check (manifest_parse (text, cut, "vm01", S2) == NULL, "truncated",
                __LINE__))
      break;
    check_error (EBADMSG, cut == 0 ? "empty document" : "truncated JSON",
                 __LINE__);
  }
  /* Around it, whitespace only. */
  CHECK (manifest_ok (text, close + 1));
  memcpy (buf, text, len);
  strcpy (buf + len, " \t\r\n");
  CHECK (manifest_ok (buf, len + 4));
  buf[0] = '\n';
  memcpy (buf + 1, text, len);
  CHECK (manifest_ok (buf, len + 1));
  strcpy (buf + len, "x");
  CHECK (manifest_parse (buf, len + 1, "vm01", S2) == NULL);
  CHECK_ERROR (EBADMSG, "trailing data at byte");
  memcpy (buf + len, text, len + 1);
  CHECK (manifest_parse (buf, 2 * len, "vm01", S2) == NULL);
  CHECK_ERROR (EBADMSG, "trailing data at byte");

  /* A NUL inside, even where json-c would stop reading. */
  memcpy (buf, text, len + 1);
  buf[len / 2] = '\0';
  CHECK (manifest_parse (buf, len, "vm01", S2) == NULL);
  CHECK_ERROR (EBADMSG, "NUL byte at offset");
  memcpy (buf, text, len + 1);
  buf[len - 1] = '\0';
  CHECK (manifest_parse (buf, len, "vm01", S2) == NULL);
  CHECK_ERROR (EBADMSG, "NUL byte at offset");

  /* Not an object; not UTF-8. */
  CHECK (manifest_parse ("[1, 2]", 6, NULL, NULL) == NULL);
  CHECK_ERROR (EBADMSG, "manifest: not a JSON object");
  CHECK (manifest_parse (" 42", 3, NULL, NULL) == NULL);
  CHECK_ERROR (EBADMSG, "not a JSON object");
  CHECK (manifest_parse ("\"x\"", 3, NULL, NULL) == NULL);
  CHECK_ERROR (EBADMSG, "not a JSON object");
  CHECK (manifest_parse ("  \n", 3, NULL, NULL) == NULL);
  CHECK_ERROR (EBADMSG, "empty document");
  CHECK (manifest_parse ("{\"format\": \"\xff\"}", 15, NULL, NULL) == NULL);
  CHECK_ERROR (EBADMSG, "invalid JSON at byte");
  CHECK (manifest_parse ("{\"format\": \"lazyvol-manifest\",}", 31, NULL,
                         NULL) == NULL);
  CHECK_ERROR (EBADMSG, "invalid JSON at byte");

  /* Too large for this image, even if the excess is whitespace. */
  big = malloc (max + 2);
  memcpy (big, text, len);
  memset (big + len, ' ', max + 1 - len);
  CHECK (manifest_ok (big, max));
  CHECK (manifest_parse (big, max + 1, "vm01", S2) == NULL);
  CHECK_ERROR (EBADMSG, "bytes is larger than the limit of");
  CHECK (parse_in_pieces (big, max + 1, 4096, "vm01", S2) == NULL);
  CHECK_ERROR (EBADMSG, "bytes is larger than the limit of");
  memset (big, ' ', max + 1);
  memcpy (big, volume_text, strlen (volume_text));
  CHECK (volume_parse (big, VOLUME_JSON_MAX, NULL, &h) == 0);
  CHECK (volume_parse (big, VOLUME_JSON_MAX + 1, NULL, &h) == -1);
  CHECK_ERROR (EBADMSG, "volume.json: 65537 bytes is larger than the limit");
}

/* Parse each mutation of TEXT in TABLE (N of them).  Each is refused
 * with its message, or read; and read the same way a byte at a time.
 */
static void
check_mutations (const char *text, const struct mutation *table, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const struct mutation *t = &table[i];
    CLEANUP_FREE char *doc = mutate (text, t->pointer, t->value);
    struct manifest *whole = manifest_parse (doc, strlen (doc), "vm01", S2);
    struct manifest *bytes;
    char msg[ERR_MSG_MAX];

    if (t->message == NULL) {
      if (!check (whole != NULL, t->pointer, __LINE__))
        fprintf (stderr, "  %s\n", err_msg ());
    }
    else if (!check (whole == NULL, t->message, __LINE__))
      fprintf (stderr, "  read %s = %s\n", t->pointer, t->value);
    else
      check_error (EBADMSG, t->message, __LINE__);
    snprintf (msg, sizeof msg, "%s", err_msg ());
    bytes = parse_in_pieces (doc, strlen (doc), 1, "vm01", S2);
    if (!check (whole ? bytes && manifests_equal (whole, bytes)
                : !bytes && strcmp (msg, err_msg ()) == 0,
                "the same a byte at a time", __LINE__))
      fprintf (stderr, "  %s: %s\n  a byte at a time: %s\n", t->pointer,
               msg, bytes ? "read" : err_msg ());
    manifest_free (whole);
    manifest_free (bytes);
  }
}

/* The same mutations of TEXT with every object's members in reverse
 * order: the extents before the blobs and the geometry, the version
 * last.  The same verdict, and the same message where the checks need
 * not wait for the end of the manifest.
 */
static void
check_reversed (const char *text, const struct mutation *table, size_t n)
{
  CLEANUP_FREE char *rev = reversed (text);
  struct manifest *a = manifest_parse (text, strlen (text), NULL, NULL);
  struct manifest *b = manifest_parse (rev, strlen (rev), NULL, NULL);

  CHECK (a && b && manifests_equal (a, b));
  manifest_free (a);
  manifest_free (b);
  check_mutations (rev, table, n);
}

static void
test_manifest_hostile (void)
{
  struct manifest *m = small_manifest ();
  CLEANUP_FREE char *text = manifest_format (m);
  CLEANUP_FREE char *v1 = to_v1 (text);

  check_mutations (v1, manifest_bad, sizeof manifest_bad / sizeof *manifest_bad);
  check_mutations (text, manifest_bad_v2,
                   sizeof manifest_bad_v2 / sizeof *manifest_bad_v2);
  check_reversed (v1, manifest_bad, sizeof manifest_bad / sizeof *manifest_bad);
  check_reversed (text, manifest_bad_v2,
                  sizeof manifest_bad_v2 / sizeof *manifest_bad_v2);
  test_hostile_bytes (v1);
  test_hostile_bytes (text);
  manifest_free (m);
}

/* base64 as RFC 4648 has it (its test vectors), and only that. */
static void
test_base64 (void)
{
  static const char *const vectors[][2] = {
    { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
  };
  static const char *const refused[] = {
    "Zg=", "Zg", "Zh==", "Zm9=", "Zm8", "Zm9vYg=", "Zm9v\n", " Zm9v", "Zm-v",
    "Zm9vYg==Zg==", "=m9v",
  };
  unsigned char out[8];
  char text[16];

  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    size_t n = strlen (vectors[i][0]);

    base64_encode ((const unsigned char *) vectors[i][0], n, text);
    CHECK (strcmp (text, vectors[i][1]) == 0);
    CHECK (base64_decode (vectors[i][1], out, n) &&
           memcmp (out, vectors[i][0], n) == 0);
  }
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    for (size_t n = 0; n <= sizeof out; n++)
      if (!check (!base64_decode (refused[i], out, n), refused[i], __LINE__))
        fprintf (stderr, "  read as %zu bytes\n", n);
}

/* What the first lazyvol wrote: version 1, hashes in hex. */
static const char manifest_v1_text[] =
  "{\n"
  "  \"format\": \"lazyvol-manifest\",\n"
  "  \"version\": 1,\n"
  "  \"export_id\": \"vm01\",\n"
  "  \"snapshot_id\": \"" S2 "\",\n"
  "  \"parent\": null,\n"
  "  \"kind\": \"delta\",\n"
  "  \"generation\": 1,\n"
  "  \"created\": \"2026-11-21T10:00:00Z\",\n"
  "  \"image_size\": 131072,\n"
  "  \"chunk_size\": 65536,\n"
  "  \"blobs\": [\n"
  "    {\"key\": \"vm01/snapshots/" S2 "/delta.blob\", \"size\": 65536}\n"
  "  ],\n"
  "  \"extents\": [\n"
  "    {\"chunk\": 1, \"count\": 1, \"blob\": 0, \"offset\": 0, \"sha256\": [\n"
  "      \"" HEX64 "\"]}\n"
  "  ]\n"
  "}\n";

/* Parse DOC as vm01/S2: it must fail with MESSAGE. */
static void
check_refused (const char *doc, const char *message, int line)
{
  struct manifest *m = manifest_parse (doc, strlen (doc), "vm01", S2);

  if (check (m == NULL, message, line))
    check_error (EBADMSG, message, line);
  manifest_free (m);
}

/* Version 1 is read, and written again as version 2.  A newer version
 * says so even when it comes last, after something this code would
 * refuse; strings have a length limit only where they are read.
 */
static void
test_manifest_versions (void)
{
  struct manifest *m = manifest_parse (manifest_v1_text,
                                       strlen (manifest_v1_text), "vm01", S2);
  struct manifest *back;
  unsigned char want[32];
  CLEANUP_FREE char *v2 = NULL, *rev = NULL, *old = NULL, *newer = NULL;
  CLEANUP_FREE char *big = NULL, *longer = NULL, *comment = NULL;
  char *s;

  if (!CHECK (m != NULL)) {
    fprintf (stderr, "  %s\n", err_msg ());
    return;
  }
  CHECK (hex_decode (HEX64, want, 32));
  CHECK (m->nsha == 1 && memcmp (m->sha[0], want, 32) == 0);
  CHECK (m->nextents == 1 && m->extents[0].chunk == 1);
  v2 = manifest_format (m);
  CHECK (strstr (v2, "\"version\": 2,\n") != NULL);
  CHECK (strstr (v2, "\n      \"ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=\"]}")
         != NULL);
  back = manifest_parse (v2, strlen (v2), "vm01", S2);
  CHECK (back != NULL && manifests_equal (m, back));
  manifest_free (back);
  manifest_free (m);

  rev = reversed (v2);
  old = mutate (rev, "/generation", "0");
  check_refused (old, "generation: 0 is out of range", __LINE__);
  newer = mutate (old, "/version", "3");
  check_refused (newer, "format version 3 is newer than this lazyvol reads "
                 "(2)", __LINE__);

  big = malloc (JSONTOK_STRING_MAX + 4);         /* "a...a", 4097 a */
  memset (big, 'a', JSONTOK_STRING_MAX + 3);
  big[0] = big[JSONTOK_STRING_MAX + 2] = '"';
  big[JSONTOK_STRING_MAX + 3] = '\0';
  comment = mutate (v2, "/comment", big);
  CHECK (manifest_ok (comment, strlen (comment)));
  longer = mutate (v2, "/created", big);
  check_refused (longer, "created: longer than 4096 bytes", __LINE__);
  s = strstr (longer, "aaaa");
  memmove (s, s + 1, strlen (s));                /* 4096: just fits */
  check_refused (longer, "created: \"aaaa", __LINE__);
}

/* 1 TiB of 4 MiB chunks, every chunk listed.  With STRIDE > 0, runs of
 * STRIDE-1 chunks in a base blob alternate with one chunk in a delta blob
 * (a typical snapshot after a compact); with STRIDE 0 every chunk is its
 * own extent (the worst case for the size bound).
 */
static void
test_large (unsigned stride)
{
  const uint64_t size = UINT64_C (1) << 40, n = size / CHUNK_SIZE_DEFAULT;
  struct manifest *m = manifest_new ("vm01", S2, MANIFEST_DELTA, 9, size,
                                     CHUNK_SIZE_DEFAULT);
  struct manifest *back, *pieces;
  uint64_t t0, t1, t2, ndelta = 0;
  CLEANUP_FREE char *text = NULL;
  size_t len;

  CHECK (manifest_add_blob (m, "vm01/snapshots/" S1 "/base.blob", size) == 0);
  CHECK (manifest_add_blob (m, "vm01/snapshots/" S2 "/delta.blob", size) == 1);
  for (uint64_t c = 0; c < n; c++) {
    bool delta = stride && c % stride == stride - 1;
    uint64_t slot = stride ? (delta ? ndelta++ : c) : n - 1 - c;

    if (manifest_add_chunk (m, c, delta, slot * CHUNK_SIZE_DEFAULT,
                            sha_of (c)) == -1) {
      CHECK (!"add_chunk");
      break;
    }
  }

  t0 = time_mono_ns ();
  text = manifest_format (m);
  t1 = time_mono_ns ();
  len = strlen (text);
  back = manifest_parse (text, len, "vm01", S2);
  t2 = time_mono_ns ();
  pieces = parse_in_pieces (text, len, 65536 + 7, "vm01", S2);
  CHECK (pieces != NULL && manifests_equal (m, pieces));
  manifest_free (pieces);
  printf ("manifest of %" PRIu64 " chunks in %zu extents, %.1f MB "
          "(%.0f bytes a chunk, limit %zu): format %.3f s, parse %.3f s\n",
          n, m->nextents, len / 1e6, (double) len / n, manifest_max_size (n),
          (t1 - t0) / 1e9, (t2 - t1) / 1e9);
  CHECK (back != NULL && manifests_equal (m, back));
  CHECK (len <= manifest_max_size (n));
  /* Linear work takes a fraction of a second (a minute under valgrind);
   * quadratic work, hours.
   */
  CHECK (t1 - t0 < UINT64_C (60000000000) && t2 - t1 < UINT64_C (60000000000));
  manifest_free (back);
  manifest_free (m);
}

/* What a summary must not be (from the one of small_manifest). */
static const struct mutation summary_bad[] = {
  { "/version", "2", "format version 2 is newer than this lazyvol reads (1)" },
  { "/chunks", NULL, "missing field \"chunks\"" },
  { "/bytes", NULL, "missing field \"bytes\"" },
  /* Numbers its blobs and image do not allow; a negative one. */
  { "/bytes", "7", "bytes: 7, but the snapshot's own blobs hold 197608" },
  { "/chunks", "12", "chunks: 12 is more than the image's 11" },
  { "/bytes", "-1", "bytes: must not be negative" },
};

/* summary.json: the manifest's members but the extents, with chunks and
 * bytes, read back; and what a summary must not be.
 */
static void
test_summary (void)
{
  struct manifest *m = small_manifest ();
  CLEANUP_FREE char *text = manifest_summary_format (m);
  CLEANUP_FREE char *mtext = manifest_format (m);
  CLEANUP_FREE char *bad = NULL;
  struct manifest *s;

  CHECK (text != NULL && strstr (text, "\"extents\"") == NULL);
  CHECK (strstr (text, "\"format\": \"lazyvol-summary\"") != NULL);
  s = summary_parse (text, strlen (text), "vm01", S2);
  CHECK (s != NULL);
  if (s) {
    CHECK (s->nextents == 0 && s->nsha == 0 && s->nblobs == 2);
    CHECK (s->summary_chunks == 6);             /* 0, 1, 4, 5, 6, 10 */
    CHECK (s->summary_bytes == 3 * KIB64 + 1000);  /* S2's own blob */
    CHECK (strcmp (s->parent, S1) == 0 && s->generation == 3);
    CHECK (strcmp (s->blobs[1].key, "vm01/snapshots/" S2 "/delta.blob") == 0);
  }
  manifest_free (s);
  /* Not a summary; for another snapshot. */
  CHECK (summary_parse (mtext, strlen (mtext), "vm01", S2) == NULL);
  CHECK_ERROR (EBADMSG, "not a lazyvol-summary document");
  CHECK (summary_parse (text, strlen (text), "vm01", S1) == NULL);
  CHECK_ERROR (EBADMSG, "summary vm01/" S1 ": snapshot_id:");
  for (size_t i = 0; i < sizeof summary_bad / sizeof summary_bad[0]; i++) {
    const struct mutation *t = &summary_bad[i];
    CLEANUP_FREE char *doc = mutate (text, t->pointer, t->value);

    if (check (summary_parse (doc, strlen (doc), "vm01", S2) == NULL,
               t->message, __LINE__))
      check_error (EBADMSG, t->message, __LINE__);
  }
  /* An error before a newer version: the version is the error. */
  {
    CLEANUP_FREE char *kind = mutate (text, "/kind", "\"full\"");
    CLEANUP_FREE char *unversioned = mutate (kind, "/version", NULL);

    bad = mutate (unversioned, "/version", "3");     /* now last */
    CHECK (strstr (bad, "\"kind\"") < strstr (bad, "\"version\""));
  }
  CHECK (summary_parse (bad, strlen (bad), "vm01", S2) == NULL);
  CHECK_ERROR (EBADMSG, "format version 3 is newer than this lazyvol reads (1)");
  /* A manifest reader does not take a summary. */
  CHECK (manifest_parse (text, strlen (text), "vm01", S2) == NULL);
  CHECK_ERROR (EBADMSG, "not a lazyvol-manifest document");
  /* fsck: a summary agrees with its manifest, whatever its members'
   * order, and not once a member differs.
   */
  {
    static const struct { const char *pointer, *value; } changes[] = {
      { "/generation", "4" }, { "/created", "\"2026-11-21T10:00:01Z\"" },
      { "/parent", "null" }, { "/blobs/0/size", "1048576" },
      { "/chunks", "5" }, { "/base_ref", "null" },
    };
    CLEANUP_FREE char *moved = mutate (text, "/export_id", NULL);
    CLEANUP_FREE char *last = mutate (moved, "/export_id", "\"vm01\"");

    s = summary_parse (last, strlen (last), "vm01", S2);
    CHECK (s && strstr (last, "\"export_id\"") > strstr (last, "\"blobs\""));
    CHECK (s && manifest_summary_agrees (m, s));
    manifest_free (s);
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
      CLEANUP_FREE char *doc = mutate (text, changes[i].pointer,
                                       changes[i].value);

      s = summary_parse (doc, strlen (doc), "vm01", S2);
      if (check (s != NULL, changes[i].pointer, __LINE__))
        check (!manifest_summary_agrees (m, s), changes[i].pointer,
               __LINE__);
      manifest_free (s);
    }
  }
  manifest_free (m);
}

/* Reference markers, their keys and the index. */
static void
test_refs (void)
{
  char w[EXPORT_ID_MAX + 1], x[SNAPSHOT_ID_LEN + 1], u[EXPORT_ID_MAX + 1];
  CLEANUP_FREE char *marker = ref_format ("vm02", "2026-11-21T10:00:00Z");
  CLEANUP_FREE char *index = refs_index_format ("2026-11-21T10:00:00Z");
  CLEANUP_FREE char *newer = NULL;
  const char *name;

  check_key (key_ref ("exports/", "vm01", S1, "vm02"),
             "exports/.refs/vm01/" S1 "/vm02", __LINE__);
  check_key (key_ref ("", "vm01", S1, "vm02"), ".refs/vm01/" S1 "/vm02",
             __LINE__);
  check_key (key_refs_prefix ("exports", "vm01", S1),
             "exports/.refs/vm01/" S1 "/", __LINE__);
  check_key (key_refs_prefix ("exports//", NULL, NULL), "exports/.refs/",
             __LINE__);
  check_key (key_refs_index ("exports"), "exports/.refs/index.json",
             __LINE__);
  /* ".refs" is never an export. */
  CHECK (!id_export_valid (".refs"));

  CHECK (key_ref_parse ("vm01/" S1 "/vm02", w, x, u));
  CHECK (strcmp (w, "vm01") == 0 && strcmp (x, S1) == 0 &&
         strcmp (u, "vm02") == 0);
  CHECK (!key_ref_parse ("index.json", w, x, u));
  CHECK (!key_ref_parse ("vm01/" S1 "/", w, x, u));
  CHECK (!key_ref_parse ("vm01/" S1 "/.x", w, x, u));
  CHECK (!key_ref_parse ("vm01/" S1 "/vm02/more", w, x, u));
  CHECK (!key_ref_parse ("vm01/0195d4f0/vm02", w, x, u));
  CHECK (!key_ref_parse ("../" S1 "/vm02", w, x, u));

  CHECK (key_snapshot_parse ("vm01/snapshots/" S1 "/summary.json", w, x,
                             &name));
  CHECK (strcmp (w, "vm01") == 0 && strcmp (x, S1) == 0 &&
         strcmp (name, "summary.json") == 0);
  CHECK (!key_snapshot_parse (".refs/vm01/" S1 "/vm02", w, x, &name));
  CHECK (!key_snapshot_parse ("vm01/snapshots/" S1, w, x, &name));
  CHECK (!key_snapshot_parse ("vm01/volume.json", w, x, &name));
  CHECK (key_blob_writer ("vm01/snapshots/" S1 "/delta.2.blob", w, x));
  CHECK (strcmp (w, "vm01") == 0 && strcmp (x, S1) == 0);
  CHECK (!key_blob_writer ("vm01/snapshots/" S1 "/manifest.json", w, x));

  CHECK (marker && strstr (marker, "\"format\": \"lazyvol-ref\"") &&
         strstr (marker, "\"export_id\": \"vm02\""));
  CHECK (index && refs_index_parse (index, strlen (index)) == 0);
  CHECK (refs_index_parse (marker, strlen (marker)) == -1);
  CHECK_ERROR (EBADMSG, "not a lazyvol-refs document");
  newer = mutate (index, "/version", "2");
  CHECK (refs_index_parse (newer, strlen (newer)) == -1);
  CHECK_ERROR (EBADMSG, "format version 2 is newer than this lazyvol reads");
  free (newer);
  newer = mutate (index, "/created", NULL);
  CHECK (refs_index_parse (newer, strlen (newer)) == -1);
  CHECK_ERROR (EBADMSG, "missing field \"created\"");
}

int
main (void)
{
  test_write_string ();
  test_chunks ();
  test_keys ();
  test_volume ();
  test_owner_lease ();
  test_add_chunk ();
  test_find ();
  test_manifest_round_trip ();
  test_manifest_hostile ();
  test_manifest_versions ();
  test_summary ();
  test_refs ();
  test_base64 ();
  test_large (8);
  test_large (0);
  if (failures)
    fprintf (stderr, "test-format: %d failures\n", failures);
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
