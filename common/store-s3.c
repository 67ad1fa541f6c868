/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: S3 and Cloudflare R2 as the object store ("s3", "r2").
 *
 * Each store operation is one or more S3 REST operations, sent by
 * s3_call (s3.c, which signs, retries and maps errors):
 *   get        GET; the reply grows up to the caller's limit (EFBIG)
 *   get_stream GET, the body handed on as curl receives it (s3_call
 *              tells the consumer to start over before a retry)
 *   get_range_stream  GET with Range, the body handed on as it arrives:
 *              a 206 for exactly that range, or a 200 if it is the whole
 *              object; before a retry, the Range is moved past the bytes
 *              already handed on (the sink, told to start over, rewrites
 *              the header s3_call signs on each try), so a try that fails
 *              part way resumes there instead of starting over
 *   head, put, delete (a missing key is fine)
 *   list       ListObjectsV2 pages, following continuation tokens; keys
 *              and common prefixes of a page are merged in order, and the
 *              order across pages is checked, so a confused store cannot
 *              make us report a name twice or page for ever
 *   uploads    CreateMultipartUpload, UploadPart, CompleteMultipartUpload
 *              (aborted if it fails), AbortMultipartUpload; and
 *              ListMultipartUploads pages, following the markers, never
 *              back to a page already listed
 * Conditional puts send If-None-Match: * or If-Match: ETAG; etags are
 * kept exactly as the store sent them, quotes included, so they go back
 * as they came.
 *
 * Parts of an upload arrive from many threads: each part's etag goes in
 * a table indexed by part number, under the upload's lock.  Complete
 * runs after every part's thread is done (the caller joins them).
 *
 * Test knob: LAZYVOL_S3_MAX_KEYS=N (1..1000) in the environment makes
 * listings ask for pages of N keys (or N uploads), so tests cover
 * pagination cheaply.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "lock.h"
#include "s3.h"
#include "util.h"
#include "xml.h"

#define XML_REPLY_MAX (16 * 1024 * 1024)

struct s3_store {
  struct store s;
  struct s3_client *client;
  unsigned max_keys;            /* LAZYVOL_S3_MAX_KEYS, 0 = the store's */
};

struct s3_upload {
  struct store_upload u;
  pthread_mutex_t lock;         /* protects etags and nparts */
  char **etags;                 /* [STORE_PART_MAX_COUNT], part N at N-1 */
  unsigned nparts;              /* the highest part number uploaded */
};

static struct s3_client *
client (struct store *s)
{
  return ((struct s3_store *) s)->client;
}

static int
s3_get (struct store *s, const char *key, size_t max,
        char **data, size_t *len, struct store_obj *info)
{
  CLEANUP_FREE char *what = str_printf ("get %s", key);
  struct s3_op op = {
    .op = STORE_OP_GET, .what = what, .method = "GET", .key = key, .max = max,
  };
  struct http_response resp;

  if (what == NULL || s3_call (client (s), &op, &resp) == -1)
    return -1;
  /* An empty object has no body buffer; the caller wants a string. */
  *data = resp.body ? resp.body : strdup ("");
  if (*data == NULL)
    return err_set (ENOMEM, "%s: out of memory", what);
  *len = resp.len;
  if (info) {
    info->size = resp.len;
    snprintf (info->etag, sizeof info->etag, "%s", resp.etag);
  }
  return 0;
}

static int
s3_get_stream (struct store *s, const char *key, size_t max,
               store_stream_fn fn, void *opaque, struct store_obj *info)
{
  CLEANUP_FREE char *what = str_printf ("get %s", key);
  struct s3_op op = {
    .op = STORE_OP_GET, .what = what, .method = "GET", .key = key, .max = max,
    .sink = fn, .sink_opaque = opaque,
  };
  struct http_response resp;
  int r;

  if (what == NULL)
    return -1;
  if ((r = s3_call (client (s), &op, &resp)) != 0)
    return r;
  http_response_free (&resp);
  if (info) {
    info->size = resp.len;
    snprintf (info->etag, sizeof info->etag, "%s", resp.etag);
  }
  return 0;
}

/* The Range header for [OFFSET, OFFSET+LEN) into RANGE (48 bytes: 20
 * digits each side).
 */
static void
range_header (char *range, size_t size, uint64_t offset, size_t len)
{
  snprintf (range, size, "bytes=%ju-%ju", (uintmax_t) offset,
            (uintmax_t) (offset + len - 1));
}

/* Did RESP answer header RANGE, which starts at OFFSET?  A 206 for that
 * range, or a 200 only if the range was the whole object (http_send saw
 * no more bytes than asked).  Frees RESP; -1 with err_set if not.
 */
static int
range_answered (const char *what, const char *range, uint64_t offset,
                struct http_response *resp)
{
  char want[80];
  bool exact;

  snprintf (want, sizeof want, "bytes %s/", range + 6);
  exact = resp->status == 206
    ? strncmp (resp->content_range, want, strlen (want)) == 0
    : resp->status == 200 && offset == 0;
  http_response_free (resp);
  if (!exact)
    return err_set (EBADMSG, "%s: the store answered HTTP %ld for "
                    "another range (%.60s)", what, resp->status,
                    resp->content_range);
  return 0;
}

/* A streamed ranged GET under way: the Range its next try asks for. */
struct range_stream {
  uint64_t offset;              /* of the whole range */
  size_t len, done;             /* bytes handed to FN so far */
  uint64_t asked;               /* where the current try starts */
  char range[48];               /* the header s3_call signs and sends */
  bool overrun;                 /* the store sent more than asked */
  bool complete;                /* every byte came, then the try failed */
  store_stream_fn fn;
  void *opaque;
};

/* The sink of a streamed ranged GET: pass the bytes on; told to start
 * over (s3_call is about to try again), ask for the rest only.
 */
static int
range_sink (void *opaque, const void *buf, size_t len)
{
  struct range_stream *rs = opaque;
  int r;

  if (buf == NULL && rs->done == rs->len) {
    rs->complete = true;        /* nothing left to try again for */
    return 1;
  }
  if (buf == NULL) {
    rs->asked = rs->offset + rs->done;
    range_header (rs->range, sizeof rs->range, rs->asked,
                  rs->len - rs->done);
    return 0;
  }
  if (len > rs->len - rs->done) {
    rs->overrun = true;
    return 1;
  }
  if ((r = rs->fn (rs->opaque, buf, len)) == 0)
    rs->done += len;
  return r;
}

static int
s3_get_range_stream (struct store *s, const char *key,
                     uint64_t offset, size_t len,
                     store_stream_fn fn, void *opaque)
{
  CLEANUP_FREE char *what =
    str_printf ("get %s [%ju+%zu]", key, (uintmax_t) offset, len);
  struct range_stream rs = {
    .offset = offset, .len = len, .asked = offset, .fn = fn,
    .opaque = opaque,
  };
  struct s3_op op = {
    .op = STORE_OP_GET_RANGE, .what = what, .method = "GET", .key = key,
    .headers = { { "Range", rs.range } }, .sink = range_sink,
    .sink_opaque = &rs, .max = len,
  };
  struct http_response resp;
  int r;

  range_header (rs.range, sizeof rs.range, offset, len);
  if (what == NULL)
    return -1;
  if ((r = s3_call (client (s), &op, &resp)) != 0) {
    if (rs.complete)
      return 0;
    return rs.overrun ? err_set (EBADMSG, "%s: the store sent more than "
                                 "the range", what) : r;
  }
  if (range_answered (what, rs.range, rs.asked, &resp) == -1)
    return -1;
  if (rs.done != len)
    return err_set (EBADMSG, "%s: the object ended after %zu bytes", what,
                    rs.done);
  return 0;
}

static int
s3_head (struct store *s, const char *key, struct store_obj *info)
{
  CLEANUP_FREE char *what = str_printf ("head %s", key);
  struct s3_op op = {
    .op = STORE_OP_HEAD, .what = what, .method = "HEAD", .key = key,
  };
  struct http_response resp;

  if (what == NULL || s3_call (client (s), &op, &resp) == -1)
    return -1;
  http_response_free (&resp);
  if (resp.content_length == UINT64_MAX)
    return err_set (EBADMSG, "%s: the reply has no Content-Length", what);
  info->size = resp.content_length;
  snprintf (info->etag, sizeof info->etag, "%s", resp.etag);
  return 0;
}

static int
s3_put (struct store *s, const char *key, const void *data, size_t len,
        enum store_cond cond, const char *etag, struct store_obj *info)
{
  CLEANUP_FREE char *what = str_printf ("put %s", key);
  struct s3_op op = {
    .op = STORE_OP_PUT, .what = what, .method = "PUT", .key = key,
    .headers = { { "Content-Type", "application/octet-stream" } },
    .body = data, .body_len = len,
  };
  struct http_response resp;

  if (cond == STORE_PUT_IF_ABSENT)
    op.headers[1] = (struct sigv4_pair) { "If-None-Match", "*" };
  else if (cond == STORE_PUT_IF_MATCH)
    op.headers[1] = (struct sigv4_pair) { "If-Match", etag };
  if (what == NULL || s3_call (client (s), &op, &resp) == -1)
    return -1;
  http_response_free (&resp);
  if (info) {
    info->size = len;
    snprintf (info->etag, sizeof info->etag, "%s", resp.etag);
  }
  return 0;
}

/* DELETE the object, or with ID its multipart upload; gone is fine. */
static int
delete_op (struct store *s, const char *what, const char *key, const char *id)
{
  struct s3_op op = {
    .op = id ? STORE_OP_UPLOAD : STORE_OP_DELETE,
    .what = what, .method = "DELETE", .key = key,
    .query = { { id ? "uploadId" : NULL, id } },
  };
  struct http_response resp;

  if (s3_call (client (s), &op, &resp) == -1)
    return errno == ENOENT ? 0 : -1;
  http_response_free (&resp);
  return 0;
}

static int
s3_delete (struct store *s, const char *key)
{
  CLEANUP_FREE char *what = str_printf ("delete %s", key);

  return what ? delete_op (s, what, key, NULL) : -1;
}

/* One name of a listing page. */
struct entry {
  char *name;
  uint64_t size;
  bool is_prefix;
};

struct page {
  struct entry *e;
  size_t n, cap;
  char *next;                   /* continuation token; NULL on the last */
};

static void
page_free (struct page *pg)
{
  for (size_t i = 0; i < pg->n; i++)
    free (pg->e[i].name);
  free (pg->e);
  free (pg->next);
  memset (pg, 0, sizeof *pg);
}

static bool
parse_u64 (const char *s, uint64_t *out)
{
  char *end;

  if (s == NULL || *s < '0' || *s > '9')
    return false;
  errno = 0;
  *out = strtoull (s, &end, 10);
  return errno == 0 && *end == '\0';
}

/* The text of child NAME of IN into *TEXT (NULL if there is none or it
 * is malformed).  0, or -1 with err_set (ENOMEM) if out of memory.
 */
static int
child_text (const char *what, struct xml_span in, const char *name,
            char **text)
{
  *text = xml_child_text (in, name);
  if (*text == NULL && errno == ENOMEM)
    return err_set (ENOMEM, "%s: out of memory", what);
  return 0;
}

/* -1 with err_set (EBADMSG): the listing WHAT is wrong because of WHY. */
static int
bad_listing (const char *what, const char *why)
{
  return err_set (EBADMSG, "%s: bad listing from the store: %s", what, why);
}

/* Add the Contents (IS_PREFIX false) or CommonPrefixes of ROOT to PG.
 * 0, or -1 with err_set (EBADMSG, or ENOMEM).
 */
static int
page_add (const char *what, struct xml_span root, bool is_prefix,
          const char *prefix, struct page *pg)
{
  const char *elem = is_prefix ? "CommonPrefixes" : "Contents";
  struct xml_span c;
  size_t pos = 0;
  int r;

  while ((r = xml_next (root, elem, &pos, &c)) == 1) {
    struct entry e = { .is_prefix = is_prefix };
    CLEANUP_FREE char *size = NULL;

    if ((!is_prefix && child_text (what, c, "Size", &size) == -1) ||
        child_text (what, c, is_prefix ? "Prefix" : "Key", &e.name) == -1)
      return -1;
    if (e.name == NULL || strncmp (e.name, prefix, strlen (prefix)) != 0 ||
        e.name[0] == '\0' || (!is_prefix && !parse_u64 (size, &e.size))) {
      free (e.name);
      return bad_listing (what, "an entry without a key, a size, or the "
                          "prefix");
    }
    if (pg->n == pg->cap) {
      size_t cap = pg->cap ? 2 * pg->cap : 64;
      struct entry *ne = realloc (pg->e, cap * sizeof *ne);
      if (ne == NULL) {
        free (e.name);
        return err_set (ENOMEM, "%s: out of memory", what);
      }
      pg->e = ne;
      pg->cap = cap;
    }
    pg->e[pg->n++] = e;
  }
  return r == -1 ? bad_listing (what, "malformed XML") : 0;
}

/* Parse one ListObjectsV2 reply into PG.  -1 with err_set (EBADMSG, or
 * ENOMEM).
 */
static int
page_parse (const char *what, const struct http_response *resp,
            const char *prefix, struct page *pg)
{
  struct xml_span doc = { resp->body, resp->len }, root;
  CLEANUP_FREE char *truncated = NULL;
  size_t pos = 0;

  if (resp->body == NULL ||
      xml_next (doc, "ListBucketResult", &pos, &root) != 1)
    return bad_listing (what, "no ListBucketResult");
  if (page_add (what, root, false, prefix, pg) == -1 ||
      page_add (what, root, true, prefix, pg) == -1 ||
      child_text (what, root, "IsTruncated", &truncated) == -1)
    return -1;
  if (truncated && strcmp (truncated, "true") == 0) {
    if (child_text (what, root, "NextContinuationToken", &pg->next) == -1)
      return -1;
    if (pg->next == NULL || pg->next[0] == '\0')
      return bad_listing (what, "truncated without a continuation token");
  }
  return 0;
}

static int
compare_entries (const void *a, const void *b)
{
  return strcmp (((const struct entry *) a)->name,
                 ((const struct entry *) b)->name);
}

static int
s3_list (struct store *s, const char *prefix, const char *delimiter,
         store_list_fn fn, void *opaque)
{
  struct s3_store *st = (struct s3_store *) s;
  CLEANUP_FREE char *what = str_printf ("list %s", prefix);
  CLEANUP_FREE char *last = NULL, *token = NULL;
  char max_keys[16];
  int r = 0;

  if (what == NULL)
    return -1;
  snprintf (max_keys, sizeof max_keys, "%u", st->max_keys);
  do {
    struct s3_op op = {
      .op = STORE_OP_LIST, .what = what, .method = "GET",
      .max = XML_REPLY_MAX,
      .query = { { "list-type", "2" }, { "prefix", prefix } },
    };
    struct http_response resp;
    struct page pg = { 0 };
    size_t q = 2;

    if (delimiter)
      op.query[q++] = (struct sigv4_pair) { "delimiter", delimiter };
    if (st->max_keys)
      op.query[q++] = (struct sigv4_pair) { "max-keys", max_keys };
    if (token)
      op.query[q++] = (struct sigv4_pair) { "continuation-token", token };
    if (s3_call (st->client, &op, &resp) == -1)
      return -1;
    r = page_parse (what, &resp, prefix, &pg);
    http_response_free (&resp);
    /* Keys come sorted and prefixes come sorted, apart: merge them.
     * Pages follow each other in order; check it, so a confused store
     * cannot make us report a name twice or loop forever.
     */
    if (pg.n > 0)
      qsort (pg.e, pg.n, sizeof *pg.e, compare_entries);
    for (size_t i = 0; r == 0 && i < pg.n; i++) {
      if (last && strcmp (pg.e[i].name, last) <= 0)
        r = err_set (EBADMSG, "%s: the store listed %.100s out of order",
                     what, pg.e[i].name);
      else {
        r = fn (opaque, pg.e[i].name, pg.e[i].size, pg.e[i].is_prefix);
        free (last);
        last = pg.e[i].name;
        pg.e[i].name = NULL;
      }
    }
    if (r == 0 && pg.next && token && strcmp (pg.next, token) == 0)
      r = err_set (EBADMSG, "%s: the store repeated a continuation token",
                   what);
    free (token);
    token = pg.next;
    pg.next = NULL;
    page_free (&pg);
  } while (r == 0 && token);
  return r;
}

/* One upload of a ListMultipartUploads page. */
struct upload_entry {
  char *key, *id;
  uint64_t initiated_ms;
};

struct upload_page {
  struct upload_entry *e;
  size_t n, cap;
  char *next_key, *next_id;     /* where the next page starts; NULL on the
                                   last */
};

static void
upload_page_free (struct upload_page *pg)
{
  for (size_t i = 0; i < pg->n; i++) {
    free (pg->e[i].key);
    free (pg->e[i].id);
  }
  free (pg->e);
  free (pg->next_key);
  free (pg->next_id);
  memset (pg, 0, sizeof *pg);
}

/* Append E to PG, which takes its strings (freed if out of memory).
 * 0, or -1 with err_set (ENOMEM).
 */
static int
upload_page_push (const char *what, struct upload_page *pg,
                  struct upload_entry e)
{
  if (pg->n == pg->cap) {
    size_t cap = pg->cap ? 2 * pg->cap : 64;
    struct upload_entry *ne = reallocarray (pg->e, cap, sizeof *ne);

    if (ne == NULL) {
      free (e.key);
      free (e.id);
      return err_set (ENOMEM, "%s: out of memory", what);
    }
    pg->e = ne;
    pg->cap = cap;
  }
  pg->e[pg->n++] = e;
  return 0;
}

/* Milliseconds since the epoch of an S3 time stamp in UTC,
 * "2006-02-03T16:45:09.000Z" (the fraction optional).  False if S is
 * not one.
 */
static bool
parse_s3_time (const char *s, uint64_t *ms)
{
  struct tm tm = { .tm_isdst = 0 };
  const char *p = *s >= '0' && *s <= '9'
    ? strptime (s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
  unsigned frac = 0, scale = 1000;
  time_t t;

  if (p == NULL)
    return false;
  if (*p == '.') {
    if (p[1] < '0' || p[1] > '9')
      return false;
    for (p++; *p >= '0' && *p <= '9'; p++) {
      scale /= 10;
      frac += (*p - '0') * scale;
    }
  }
  if (strcmp (p, "Z") != 0 || (t = timegm (&tm)) < 0)
    return false;
  *ms = (uint64_t) t * 1000 + frac;
  return true;
}

/* Is ID an upload id we can keep and send back: 1 to 1024 printable
 * characters?
 */
static bool
upload_id_ok (const char *id)
{
  size_t n = id ? strlen (id) : 0;

  if (n == 0 || n > 1024)
    return false;
  for (size_t i = 0; i < n; i++)
    if (id[i] <= ' ' || id[i] > '~')
      return false;
  return true;
}

/* Add the Upload children of ROOT to PG.  0, or -1 with err_set
 * (EBADMSG, or ENOMEM).
 */
static int
uploads_add (const char *what, struct xml_span root, const char *prefix,
             struct upload_page *pg)
{
  struct xml_span u;
  size_t pos = 0;
  int r;

  while ((r = xml_next (root, "Upload", &pos, &u)) == 1) {
    struct upload_entry e = { NULL };
    CLEANUP_FREE char *initiated = NULL;

    r = child_text (what, u, "Key", &e.key) == -1 ||
      child_text (what, u, "UploadId", &e.id) == -1 ||
      child_text (what, u, "Initiated", &initiated) == -1 ? -1 : 0;
    if (r == 0 && (e.key == NULL || e.key[0] == '\0' ||
                   strncmp (e.key, prefix, strlen (prefix)) != 0 ||
                   !upload_id_ok (e.id) || initiated == NULL ||
                   !parse_s3_time (initiated, &e.initiated_ms)))
      r = bad_listing (what, "an upload without a key in the prefix, a "
                       "valid id, or the time it was initiated");
    if (r == -1) {
      free (e.key);
      free (e.id);
      return -1;
    }
    if (upload_page_push (what, pg, e) == -1)
      return -1;
  }
  return r == -1 ? bad_listing (what, "malformed XML") : 0;
}

/* Parse one ListMultipartUploads reply into PG.  A truncated page goes
 * on after NextKeyMarker and NextUploadIdMarker, or, if the store leaves
 * them empty (Swift does on a page of one upload), after its last
 * upload.  -1 with err_set (EBADMSG, or ENOMEM).
 */
static int
uploads_page_parse (const char *what, const struct http_response *resp,
                    const char *prefix, struct upload_page *pg)
{
  struct xml_span doc = { resp->body, resp->len }, root;
  CLEANUP_FREE char *truncated = NULL;
  size_t pos = 0;
  int r = resp->body
    ? xml_next (doc, "ListMultipartUploadsResult", &pos, &root) : 0;

  if (r != 1)
    return bad_listing (what, r == -1 ? "malformed XML"
                        : "no ListMultipartUploadsResult");
  if (uploads_add (what, root, prefix, pg) == -1 ||
      child_text (what, root, "IsTruncated", &truncated) == -1)
    return -1;
  if (truncated == NULL || strcmp (truncated, "true") != 0)
    return 0;
  if (child_text (what, root, "NextKeyMarker", &pg->next_key) == -1 ||
      child_text (what, root, "NextUploadIdMarker", &pg->next_id) == -1)
    return -1;
  if (pg->next_key == NULL || pg->next_key[0] == '\0') {
    free (pg->next_key);
    free (pg->next_id);
    pg->next_key = pg->next_id = NULL;
    if (pg->n == 0)
      return bad_listing (what, "truncated without a marker");
    pg->next_key = strdup (pg->e[pg->n - 1].key);
    pg->next_id = strdup (pg->e[pg->n - 1].id);
  }
  else if (pg->next_id == NULL)
    pg->next_id = strdup ("");
  if (pg->next_key == NULL || pg->next_id == NULL)
    return err_set (ENOMEM, "%s: out of memory", what);
  return 0;
}

/* Uploads are listed in the store's order, which is not the keys' (AWS
 * orders a key's uploads by time, Swift by "KEY/ID"), so the order is not
 * checked; instead a page must not start where an earlier one did, so
 * that a confused store cannot make us page for ever.
 */
static int
s3_list_uploads (struct store *s, const char *prefix,
                 store_uploads_fn fn, void *opaque)
{
  struct s3_store *st = (struct s3_store *) s;
  CLEANUP_FREE char *what = str_printf ("list uploads %s", prefix);
  struct upload_page seen = { 0 };      /* the markers of the pages */
  char max_uploads[16];
  bool more = true;
  int r = 0;

  if (what == NULL)
    return -1;
  snprintf (max_uploads, sizeof max_uploads, "%u", st->max_keys);
  while (r == 0 && more) {
    struct s3_op op = {
      .op = STORE_OP_LIST, .what = what, .method = "GET",
      .max = XML_REPLY_MAX,
      .query = { { "uploads", "" }, { "prefix", prefix } },
    };
    const struct upload_entry *from = seen.n ? &seen.e[seen.n - 1] : NULL;
    struct http_response resp;
    struct upload_page pg = { 0 };
    size_t q = 2;

    if (st->max_keys)
      op.query[q++] = (struct sigv4_pair) { "max-uploads", max_uploads };
    if (from)
      op.query[q++] = (struct sigv4_pair) { "key-marker", from->key };
    if (from && from->id[0])
      op.query[q++] = (struct sigv4_pair) { "upload-id-marker", from->id };
    if (s3_call (st->client, &op, &resp) == -1) {
      r = -1;
      break;
    }
    r = uploads_page_parse (what, &resp, prefix, &pg);
    http_response_free (&resp);
    for (size_t i = 0; r == 0 && i < pg.n; i++)
      r = fn (opaque, pg.e[i].key, pg.e[i].id, pg.e[i].initiated_ms);
    more = pg.next_key != NULL;
    for (size_t i = 0; r == 0 && more && i < seen.n; i++)
      if (strcmp (seen.e[i].key, pg.next_key) == 0 &&
          strcmp (seen.e[i].id, pg.next_id) == 0)
        r = err_set (EBADMSG, "%s: the store went back to a page it listed "
                     "(after %.100s)", what, pg.next_key);
    if (r == 0 && more) {
      r = upload_page_push (what, &seen, (struct upload_entry) {
          .key = pg.next_key, .id = pg.next_id });
      pg.next_key = pg.next_id = NULL;
    }
    upload_page_free (&pg);
  }
  upload_page_free (&seen);
  return r;
}

static struct store_upload *
s3_upload_begin (struct store *s, const char *key)
{
  CLEANUP_FREE char *what = str_printf ("begin upload of %s", key);
  struct s3_op op = {
    .op = STORE_OP_UPLOAD, .what = what, .method = "POST", .key = key,
    .body = "",
    .query = { { "uploads", "" } }, .max = XML_REPLY_MAX,
    .headers = { { "Content-Type", "application/octet-stream" } },
  };
  struct http_response resp;
  struct s3_upload *up;
  struct xml_span doc, root;
  size_t pos = 0;
  char *id = NULL;
  int r = 0;

  if (what == NULL || s3_call (client (s), &op, &resp) == -1)
    return NULL;
  doc = (struct xml_span) { resp.body, resp.len };
  if (resp.body &&
      xml_next (doc, "InitiateMultipartUploadResult", &pos, &root) == 1)
    r = child_text (what, root, "UploadId", &id);
  http_response_free (&resp);
  if (r == -1)
    return NULL;
  if (id == NULL || id[0] == '\0') {
    free (id);
    err_set (EBADMSG, "%s: the reply has no UploadId", what);
    return NULL;
  }
  up = calloc (1, sizeof *up);
  if (up) {
    up->etags = calloc (STORE_PART_MAX_COUNT, sizeof *up->etags);
    up->u.key = strdup (key);
  }
  if (up == NULL || up->etags == NULL || up->u.key == NULL) {
    if (up) {
      free (up->etags);
      free (up->u.key);
      free (up);
    }
    delete_op (s, what, key, id);
    free (id);
    err_set (ENOMEM, "%s: out of memory", what);
    return NULL;
  }
  pthread_mutex_init (&up->lock, NULL);
  up->u.st = s;
  up->u.id = id;
  return &up->u;
}

static int
s3_upload_part (struct store_upload *u, unsigned partno,
                uint64_t offset, const void *data, size_t len,
                const unsigned char *sha256)
{
  struct s3_upload *up = (struct s3_upload *) u;
  CLEANUP_FREE char *what =
    str_printf ("upload %s part %u [%ju+%zu]", u->key, partno,
                (uintmax_t) offset, len);
  char num[16], hash[65];
  struct s3_op op = {
    .op = STORE_OP_UPLOAD, .what = what, .method = "PUT", .key = u->key,
    .query = { { "partNumber", num }, { "uploadId", u->id } },
    .body = data, .body_len = len, .payload_hash = sha256 ? hash : NULL,
  };
  struct http_response resp;
  char *etag;

  snprintf (num, sizeof num, "%u", partno);
  if (sha256)
    hex_encode (sha256, 32, hash);
  if (what == NULL || s3_call (client (u->st), &op, &resp) == -1)
    return -1;
  http_response_free (&resp);
  if (resp.etag[0] == '\0')
    return err_set (EBADMSG, "%s: the reply has no ETag", what);
  if ((etag = xml_escape (resp.etag)) == NULL)
    return err_set (ENOMEM, "%s: out of memory", what);
  /* A part uploaded twice (a caller's retry) keeps the later etag, as
   * S3 keeps the later part.
   */
  LOCK_FOR_SCOPE (&up->lock);
  free (up->etags[partno - 1]);
  up->etags[partno - 1] = etag;
  if (partno > up->nparts)
    up->nparts = partno;
  return 0;
}

static void
upload_free (struct s3_upload *up)
{
  for (unsigned i = 0; i < up->nparts; i++)
    free (up->etags[i]);
  free (up->etags);
  pthread_mutex_destroy (&up->lock);
  free (up->u.key);
  free (up->u.id);
  free (up);
}

/* Abandon an upload after a failure, keeping the error that caused it.
 * An upload the store no longer knows (404: a complete that landed but
 * whose reply was lost, or an abort retried) has nothing left to drop.
 */
static void
s3_upload_abort (struct store_upload *u)
{
  CLEANUP_FREE char *what = str_printf ("abort upload of %s", u->key);
  struct err_saved why;

  err_save (&why);
  if (what == NULL ||
      (delete_op (u->st, what, u->key, u->id) == -1 && errno != ENOENT))
    log_warn ("abort upload of %s: %s (its parts stay in the bucket until "
              "deleted)", u->key, err_msg ());
  err_restore (&why);
  upload_free ((struct s3_upload *) u);
}

/* The CompleteMultipartUpload document listing parts 1..N, or NULL with
 * err_set if a part is missing.
 */
static char *
complete_xml (struct s3_upload *up, const char *what)
{
  char *xml = NULL;
  size_t len;
  FILE *f;

  for (unsigned i = 0; i < up->nparts; i++)
    if (up->etags[i] == NULL) {
      err_set (EINVAL, "%s: part %u was never uploaded", what, i + 1);
      return NULL;
    }
  if ((f = memstream_open (&xml, &len)) == NULL) {
    err_prefix ("%s", what);
    return NULL;
  }
  fputs ("<CompleteMultipartUpload>", f);
  for (unsigned i = 0; i < up->nparts; i++)
    fprintf (f, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>",
             i + 1, up->etags[i]);
  fputs ("</CompleteMultipartUpload>", f);
  if (memstream_close (f, &xml) == -1)
    err_prefix ("%s", what);
  return xml;
}

static int
s3_upload_complete (struct store_upload *u)
{
  struct s3_upload *up = (struct s3_upload *) u;
  CLEANUP_FREE char *what = str_printf ("complete upload of %s", u->key);
  CLEANUP_FREE char *xml = NULL;
  struct http_response resp;

  /* The caller has joined every part's thread: no lock needed. */
  if (what == NULL)
    err_prefix ("complete upload of %s", u->key);
  else if (up->nparts == 0)
    err_set (EINVAL, "%s: no part was uploaded", what);
  else
    xml = complete_xml (up, what);
  if (xml) {
    struct s3_op op = {
      .op = STORE_OP_UPLOAD, .what = what, .method = "POST", .key = u->key,
      .query = { { "uploadId", u->id } },
      .headers = { { "Content-Type", "application/xml" } },
      .body = xml, .body_len = strlen (xml), .max = XML_REPLY_MAX,
      .error_in_body = true,
    };
    if (s3_call (client (u->st), &op, &resp) == 0) {
      http_response_free (&resp);
      upload_free (up);
      return 0;
    }
  }
  s3_upload_abort (u);
  return -1;
}

static int
s3_upload_abort_id (struct store *s, const char *key, const char *id)
{
  CLEANUP_FREE char *what = str_printf ("abort upload of %s", key);

  if (what == NULL)
    return -1;
  if (id[0] == '\0')
    return err_set (EINVAL, "%s: empty upload id", what);
  return delete_op (s, what, key, id);
}

static void
s3_close (struct store *s)
{
  s3_client_close (client (s));
  free (s->describe);
  free (s);
}

static const struct store_ops s3_ops = {
  .wants_sha256 = true,         /* x-amz-content-sha256 */
  .get = s3_get,
  .get_stream = s3_get_stream,
  .get_range_stream = s3_get_range_stream,
  .head = s3_head,
  .put = s3_put,
  .delete = s3_delete,
  .list = s3_list,
  .upload_begin = s3_upload_begin,
  .upload_part = s3_upload_part,
  .upload_complete = s3_upload_complete,
  .upload_abort = s3_upload_abort,
  .upload_abort_id = s3_upload_abort_id,
  .list_uploads = s3_list_uploads,
  .close = s3_close,
};

struct store *
store_s3_open (const struct store_config *cfg)
{
  const char *max_keys = getenv ("LAZYVOL_S3_MAX_KEYS");
  struct s3_store *st = calloc (1, sizeof *st);

  if (st == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  st->s.ops = &s3_ops;
  st->client = s3_client_open (cfg, &st->s);
  if (st->client == NULL) {
    s3_close (&st->s);
    return NULL;
  }
  if (max_keys && atoi (max_keys) >= 1 && atoi (max_keys) <= 1000)
    st->max_keys = atoi (max_keys);
  return &st->s;
}
