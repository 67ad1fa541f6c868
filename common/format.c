/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: volume.json, owner.json, lease records and reference
 * markers, and what every document's reader and writer share (see
 * format.h, format-impl.h and lazyvol-format(5)).  The object keys are
 * keys.c.
 *
 * The documents come from the object store, which is to say from anyone
 * who can write to the bucket, so a parser treats them as hostile.  These
 * small ones (at most VOLUME_JSON_MAX bytes) are read with json-c: the
 * bytes are checked before json-c sees them (size cap, no NUL, an object
 * at the top) and json-c runs strict, UTF-8 validating and with a small
 * nesting limit.  Then every field is fetched through one helper per type
 * that checks the JSON type first: json-c converts silently ("7" and 1.5
 * read as integers, 99999999999999999999 saturates to UINT64_MAX), so an
 * integer must be a JSON integer in [0, INT64_MAX], and nothing outside
 * that range can pass as a saturated value.  Strings must not hold a NUL
 * (json-c accepts "\u0000", and C would see a shorter, different string).
 * A failure is EBADMSG with the document, the element and the field:
 * "volume.json of vm01: snapshot_id: \"xyz\" is not a valid snapshot
 * id".  The checks of a field's value (format_check_*) are shared with
 * the streaming reader of manifest.json, so both say the same things.
 *
 * The writers print by hand into a memory stream (format_write_*): a
 * json-c tree costs several allocations and a few hundred bytes per
 * value, which for the manifest of a large image is seconds and half a
 * gigabyte, where printing takes a small fraction of a second.  Strings
 * are escaped as RFC 8259 says; every number is a non-negative integer.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "err.h"
#include "format-impl.h"
#include "jsontok.h"
#include "util.h"

#define JSON_PARSE_FLAGS (JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 | \
                          JSON_TOKENER_ALLOW_TRAILING_CHARS)

#define CLEANUP_JSON __attribute__ ((__cleanup__ (cleanup_json)))

static void
cleanup_json (struct json_object **obj)
{
  json_object_put (*obj);
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

/* The checks every reader shares. */

int
format_vbad (const struct format_doc *d, const char *fmt, va_list ap)
{
  char what[512];

  vsnprintf (what, sizeof what, fmt, ap);
  if (d->at[0])
    return err_set (EBADMSG, "%s: %s: %s", d->name, d->at, what);
  return err_set (EBADMSG, "%s: %s", d->name, what);
}

int
format_bad (const struct format_doc *d, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = format_vbad (d, fmt, ap);
  va_end (ap);
  return r;
}

const char *
format_printable (const char *s, char out[72])
{
  size_t i;

  for (i = 0; s[i] && i < 64; i++)
    out[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f || s[i] == '"' ||
      s[i] == '\\' ? '?' : s[i];
  strcpy (out + i, s[i] ? "..." : "");
  return out;
}

int
format_check_u64 (const struct format_doc *d, const char *name,
                  bool negative, uint64_t value, uint64_t min, uint64_t max)
{
  if (negative)
    return format_bad (d, "%s: must not be negative", name);
  if (value > INT64_MAX)
    return format_bad (d, "%s: number too large", name);
  if (value < min || value > max)
    return format_bad (d, "%s: %" PRIu64 " is out of range [%" PRIu64 ", %"
                       PRIu64 "]", name, value, min, max);
  return 0;
}

int
format_check_id (const struct format_doc *d, const char *name,
                 const char *s, bool (*valid) (const char *),
                 const char *expect)
{
  char p[72];

  if (s && !valid (s))
    return format_bad (d, "%s: \"%s\" is not a valid %s id", name,
                       format_printable (s, p),
                       valid == id_snapshot_valid ? "snapshot" : "export");
  if (expect && strcmp (s ? s : "", expect) != 0)
    return format_bad (d, "%s: \"%s\" is not the expected \"%s\"", name,
                       s ? s : "", expect);
  return 0;
}

int
format_check_time (const struct format_doc *d, const char *name,
                   const char *s)
{
  char p[72];

  if (!timestamp_valid (s))
    return format_bad (d, "%s: \"%s\" is not a UTC time like "
                       "2026-11-21T10:00:00Z", name,
                       format_printable (s, p));
  return 0;
}

int
format_check_format (const struct format_doc *d, const char *format,
                     const char *s)
{
  char p[72];

  if (strcmp (s, format) != 0)
    return format_bad (d, "not a %s document (format \"%s\")", format,
                       format_printable (s, p));
  return 0;
}

int
format_check_version (const struct format_doc *d, uint64_t version,
                      uint64_t newest)
{
  if (version > newest)
    return format_bad (d, "format version %" PRIu64 " is newer than this "
                       "lazyvol reads (%" PRIu64 "); use a newer lazyvol",
                       version, newest);
  return 0;
}

int
format_check_chunk_size (const struct format_doc *d, uint64_t cs)
{
  if (!chunk_size_valid (cs))
    return format_bad (d, "chunk_size: %" PRIu64 " is not a power of two",
                       cs);
  return 0;
}

/* Reading with json-c. */

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
member (const struct format_doc *d, struct json_object *obj,
        const char *name, enum json_type type, enum presence presence,
        struct json_object **out)
{
  struct json_object *v;

  *out = NULL;
  if (!json_object_object_get_ex (obj, name, &v)) {
    if (presence == OPTIONAL)
      return 0;
    return format_bad (d, "missing field \"%s\"", name);
  }
  if (v == NULL && presence != REQUIRED)
    return 0;
  if (!json_object_is_type (v, type))
    return format_bad (d, "%s: expected %s, got %s", name,
                       json_type_to_name (type),
                       json_type_to_name (json_object_get_type (v)));
  *out = v;
  return 0;
}

/* A string member (NULL if absent or null, as PRESENCE allows). */
static int
get_string (const struct format_doc *d, struct json_object *obj,
            const char *name, enum presence presence, const char **out)
{
  struct json_object *v;

  *out = NULL;
  if (member (d, obj, name, json_type_string, presence, &v) == -1)
    return -1;
  if (v == NULL)
    return 0;
  *out = json_object_get_string (v);
  if (strlen (*out) != (size_t) json_object_get_string_len (v))
    return format_bad (d, "%s: contains a NUL character", name);
  return 0;
}

/* An integer member in [MIN, MAX] (MAX <= INT64_MAX). */
static int
get_u64 (const struct format_doc *d, struct json_object *obj,
         const char *name, uint64_t min, uint64_t max, uint64_t *out)
{
  struct json_object *v;

  if (member (d, obj, name, json_type_int, REQUIRED, &v) == -1)
    return -1;
  *out = json_object_get_uint64 (v);
  return format_check_u64 (d, name, json_object_get_int64 (v) < 0, *out,
                           min, max);
}

/* An id member, which VALID accepts, copied to OUT ("" for null, if
 * PRESENCE allows it).  If EXPECT is not NULL the id must equal it.
 */
static int
get_id (const struct format_doc *d, struct json_object *obj,
        const char *name, bool (*valid) (const char *),
        enum presence presence, const char *expect, char *out)
{
  const char *s;

  if (get_string (d, obj, name, presence, &s) == -1 ||
      format_check_id (d, name, s, valid, expect) == -1)
    return -1;
  strcpy (out, s ? s : "");
  return 0;
}

/* A timestamp member ("2026-11-21T10:00:00Z"), copied to OUT. */
static int
get_time (const struct format_doc *d, struct json_object *obj,
          const char *name, char out[32])
{
  const char *s;

  if (get_string (d, obj, name, REQUIRED, &s) == -1 ||
      format_check_time (d, name, s) == -1)
    return -1;
  strcpy (out, s);
  return 0;
}

/* image_size and chunk_size. */
static int
get_geometry (const struct format_doc *d, struct json_object *obj,
              uint64_t *image_size, uint32_t *chunk_size)
{
  uint64_t cs;

  if (get_u64 (d, obj, "image_size", 1, IMAGE_SIZE_MAX, image_size) == -1 ||
      get_u64 (d, obj, "chunk_size", CHUNK_SIZE_MIN, CHUNK_SIZE_MAX,
               &cs) == -1 ||
      format_check_chunk_size (d, cs) == -1)
    return -1;
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
parse_object (const struct format_doc *d, const char *json, size_t len,
              size_t max)
{
  struct json_tokener *tok;
  struct json_object *obj;
  enum json_tokener_error jerr;
  const char *nul = memchr (json, '\0', len);
  size_t i, end;

  if (len > max) {
    format_bad (d, "%zu bytes is larger than the limit of %zu", len, max);
    return NULL;
  }
  if (nul) {
    format_bad (d, "NUL byte at offset %zu", (size_t) (nul - json));
    return NULL;
  }
  /* Anything but an object is wrong; checking here also spares json-c a
   * bare number, which it cannot tell complete from truncated.
   */
  for (i = 0; i < len && is_json_space (json[i]); i++)
    ;
  if (i == len || json[i] != '{') {
    format_bad (d, i == len ? "empty document" : "not a JSON object");
    return NULL;
  }

  tok = json_tokener_new_ex (JSONTOK_DEPTH_MAX);   /* counted alike */
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
      format_bad (d, "truncated JSON (%zu bytes)", len);
    else
      format_bad (d, "invalid JSON at byte %zu: %s", end,
                  json_tokener_error_desc (jerr));
    return NULL;
  }

  for (i = end; i < len && is_json_space (json[i]); i++)
    ;
  if (i < len) {
    json_object_put (obj);
    format_bad (d, "trailing data at byte %zu", i);
    return NULL;
  }
  return obj;
}

/* Parse a document that must have "format": FORMAT and a version this code
 * reads.  The version is checked before any other field, so that a newer
 * document says so instead of failing on a field that changed.
 */
static struct json_object *
parse_document (const struct format_doc *d, const char *json, size_t len,
                size_t max, const char *format, uint64_t newest,
                uint64_t *version_out)
{
  CLEANUP_JSON struct json_object *obj = parse_object (d, json, len, max);
  const char *s;
  uint64_t version;

  if (obj == NULL || get_string (d, obj, "format", REQUIRED, &s) == -1 ||
      format_check_format (d, format, s) == -1 ||
      get_u64 (d, obj, "version", 1, INT64_MAX, &version) == -1 ||
      format_check_version (d, version, newest) == -1)
    return NULL;
  if (version_out)
    *version_out = version;
  return json_object_get (obj);  /* the caller's reference */
}

int
volume_parse (const char *json, size_t len, const char *export_id,
              struct volume_head *out)
{
  struct format_doc d = { .at = "" };
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
    return format_bad (&d, "snapshot_id: must be null at generation 0");
  if (h.generation > 0 && h.snapshot_id[0] == '\0')
    return format_bad (&d, "snapshot_id: null at generation %" PRIu64,
                       h.generation);
  *out = h;
  return 0;
}

/* Writing. */

void
format_write_string (FILE *f, const char *s)
{
  const char *run;

  fputc ('"', f);
  while (*s) {
    /* The run of bytes that need no escape, in one write. */
    for (run = s; *s && *s != '"' && *s != '\\' &&
           (unsigned char) *s >= 0x20; s++)
      ;
    fwrite (run, 1, s - run, f);
    if (*s == '"' || *s == '\\')
      fprintf (f, "\\%c", *s++);
    else if (*s)
      fprintf (f, "\\u%04x", (unsigned char) *s++);
  }
  fputc ('"', f);
}

void
format_write_str (FILE *f, const char *key, const char *s)
{
  fprintf (f, "  \"%s\": ", key);
  if (s)
    format_write_string (f, s);
  else
    fputs ("null", f);
  fputs (",\n", f);
}

void
format_write_u64 (FILE *f, const char *key, uint64_t v)
{
  fprintf (f, "  \"%s\": %" PRIu64 ",\n", key, v);
}

char *
format_text (void (*write) (FILE *f, const void *arg), const void *arg)
{
  char *buf;
  size_t len;
  FILE *f = memstream_open (&buf, &len);

  if (f == NULL)
    return NULL;
  write (f, arg);
  memstream_close (f, &buf);
  return buf;
}

/* What format_write_document writes. */
struct document {
  const char *format;
  unsigned version;
  void (*body) (FILE *f, const void *arg);
  const void *arg;
};

static void
write_document (FILE *f, const void *arg)
{
  const struct document *d = arg;

  format_write_open (f, d->format, d->version);
  d->body (f, d->arg);
  /* Every member ends in ",\n": step back over the last one's and close
   * the object there (the size of a memory stream follows the position).
   */
  fseek (f, -2, SEEK_CUR);
  fputs ("\n}\n", f);
}

char *
format_write_document (const char *format, unsigned version,
                       void (*body) (FILE *f, const void *arg),
                       const void *arg)
{
  struct document d = {
    .format = format, .version = version, .body = body, .arg = arg,
  };

  return format_text (write_document, &d);
}

void
format_write_open (FILE *f, const char *format, unsigned version)
{
  fputs ("{\n", f);
  format_write_str (f, "format", format);
  format_write_u64 (f, "version", version);
}

void
format_write_geometry (FILE *f, uint64_t image_size, uint32_t chunk_size)
{
  format_write_u64 (f, "image_size", image_size);
  format_write_u64 (f, "chunk_size", chunk_size);
}

static void
write_volume (FILE *f, const void *arg)
{
  const struct volume_head *h = arg;

  format_write_str (f, "export_id", h->export_id);
  format_write_geometry (f, h->image_size, h->chunk_size);
  format_write_u64 (f, "generation", h->generation);
  format_write_str (f, "snapshot_id",
                    h->snapshot_id[0] ? h->snapshot_id : NULL);
  format_write_u64 (f, "epoch", h->epoch);
  format_write_str (f, "updated", h->updated);
}

char *
volume_format (const struct volume_head *h)
{
  return format_write_document ("lazyvol-volume", VOLUME_FORMAT_VERSION,
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
  struct format_doc d = { .at = "" };
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

  format_write_str (f, "export_id", o->export_id);
  format_write_str (f, "host_id", o->host_id[0] ? o->host_id : NULL);
  format_write_str (f, "cache_id", o->cache_id[0] ? o->cache_id : NULL);
  format_write_u64 (f, "epoch", o->epoch);
  format_write_str (f, "since", o->since);
}

char *
owner_format (const struct owner_record *o)
{
  return format_write_document ("lazyvol-owner", OWNER_FORMAT_VERSION, write_owner,
                         o);
}

/* The revocations of a lease record. */
static int
get_revocations (struct format_doc *d, struct json_object *obj,
                 struct lease_record *l)
{
  struct json_object *a;

  if (member (d, obj, "revoked", json_type_array, REQUIRED, &a) == -1)
    return -1;
  if (json_object_array_length (a) > LEASE_REVOKED_MAX)
    return format_bad (d, "revoked: more than %d entries", LEASE_REVOKED_MAX);
  l->nrevoked = json_object_array_length (a);
  for (size_t i = 0; i < l->nrevoked; i++) {
    struct json_object *r = json_object_array_get_idx (a, i);

    snprintf (d->at, sizeof d->at, "revoked[%zu].", i);
    if (!json_object_is_type (r, json_type_object))
      return format_bad (d, "not an object");
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
  struct format_doc d = { .at = "" };
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
        return format_bad (&d, "overflow: not true or false");
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

  format_write_str (f, "host_id", l->host_id);
  format_write_str (f, "cache_id", l->cache_id);
  format_write_u64 (f, "count", l->count);
  format_write_u64 (f, "period_ms", l->period_ms);
  format_write_str (f, "renewed", l->renewed);
  fputs ("  \"revoked\": [", f);
  for (size_t i = 0; i < l->nrevoked; i++) {
    fputs (i ? ", {\"export_id\": " : "{\"export_id\": ", f);
    format_write_string (f, l->revoked[i].export_id);
    fprintf (f, ", \"epoch\": %" PRIu64 "}", l->revoked[i].epoch);
  }
  fputs ("],\n", f);
  if (l->overflow)
    fputs ("  \"overflow\": true,\n", f);
}

char *
lease_format (const struct lease_record *l)
{
  return format_write_document ("lazyvol-lease", LEASE_FORMAT_VERSION, write_lease,
                         l);
}

/* The reference index. */

int
refs_index_parse (const char *json, size_t len)
{
  struct format_doc d = { .name = "the reference index, .refs/index.json",
                          .at = "" };
  CLEANUP_JSON struct json_object *obj = NULL;
  char created[32];

  obj = parse_document (&d, json, len, VOLUME_JSON_MAX, "lazyvol-refs",
                        REFS_INDEX_FORMAT_VERSION, NULL);
  if (obj == NULL || get_time (&d, obj, "created", created) == -1)
    return -1;
  return 0;
}

static void
write_created (FILE *f, const void *arg)
{
  format_write_str (f, "created", arg);
}

char *
refs_index_format (const char *created)
{
  return format_write_document ("lazyvol-refs", REFS_INDEX_FORMAT_VERSION,
                                write_created, created);
}

/* A marker's members. */
struct ref_doc {
  const char *user, *created;
};

static void
write_ref (FILE *f, const void *arg)
{
  const struct ref_doc *r = arg;

  format_write_str (f, "export_id", r->user);
  format_write_str (f, "created", r->created);
}

char *
ref_format (const char *user, const char *created)
{
  struct ref_doc r = { .user = user, .created = created };

  return format_write_document ("lazyvol-ref", REF_FORMAT_VERSION, write_ref,
                                &r);
}
