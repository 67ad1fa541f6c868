/* lazyvol: S3 and Cloudflare R2 as the object store ("s3", "r2").
 *
 * Every operation is one or more S3 REST requests made by s3_call: it
 * builds the URL once (path-style http(s)://HOST/BUCKET/KEY or
 * virtual-hosted http(s)://BUCKET.HOST/KEY), hashes the body once (the
 * real SHA-256 goes in x-amz-content-sha256, so a store that checks it
 * refuses a body damaged on the way), then for each try signs afresh
 * (new X-Amz-Date) and sends through the connection pool of http.c.
 *
 * Retries: 5xx other than 501, 429 (SlowDown), 400 RequestTimeout, a
 * 200 CompleteMultipartUpload whose body is an <Error>, and transfers
 * that were refused, timed out, cut off or could not resolve the host.
 * Up to cfg->retries tries after the first, each after a random sleep of
 * up to min(5 s, 100 ms * 2^n) ("full jitter", so that many clients
 * hitting one busy store spread out).  Any other 4xx is final at once.
 * A retried PUT is safe because PUTs replace whole objects; but a
 * conditional PUT whose first try succeeded without us seeing the reply
 * fails its retry with ESTALE: the caller, which re-reads the object to
 * resolve any conflict, sees its own write.
 *
 * Statuses become the errno values of store.h; messages carry the
 * operation, the key, the status, S3's error Code and Message, and the
 * number of tries, never a URL (the host may be a secret in some
 * deployments) nor a header.  The secret key is kept in memory only and
 * wiped at close.
 *
 * Etags are kept exactly as the server sent them, quotes included, and
 * sent back as given in If-Match.
 *
 * Multipart uploads keep each part's etag in a table indexed by part
 * number, under the upload's lock, as parts arrive from many threads;
 * complete sends them in order and aborts the upload if it fails.
 *
 * Test knob: LAZYVOL_S3_MAX_KEYS=N (1..1000) in the environment makes
 * listings ask for pages of N keys, so tests cover pagination without
 * thousands of objects.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/crypto.h>

#include "err.h"
#include "http.h"
#include "sigv4.h"
#include "store-impl.h"
#include "util.h"
#include "xml.h"

#define DEFAULT_TIMEOUT 30
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000
#define XML_REPLY_MAX (16 * 1024 * 1024)
#define MAX_OP_HEADERS 3

struct s3_store {
  struct store s;
  struct http_pool *pool;
  char *base;                   /* http(s)://host[:port] requests go to */
  char *host;                   /* the Host header */
  char *bucket_path;            /* "/BUCKET", or "" when virtual-hosted */
  struct sigv4_key key;         /* access key, secret, region, "s3" */
  char *token;                  /* AWS_SESSION_TOKEN, or NULL */
  unsigned retries;
  unsigned max_keys;            /* LAZYVOL_S3_MAX_KEYS, 0 = server's */
};

struct s3_upload {
  struct store_upload u;
  pthread_mutex_t lock;         /* protects etags and nparts */
  char **etags;                 /* [STORE_PART_MAX_COUNT], part N at N-1 */
  unsigned nparts;              /* the highest part number uploaded */
};

/* One S3 request, before signing. */
struct s3_op {
  const char *what;             /* "get KEY [0+4096]", for messages */
  const char *method;
  const char *key;              /* NULL: the bucket itself */
  struct sigv4_pair query[6];   /* ends at the first NULL name */
  struct sigv4_pair headers[MAX_OP_HEADERS];  /* likewise */
  const void *body;             /* NULL: none */
  size_t body_len;
  void *buf;                    /* ranged GET: the caller's buffer */
  size_t buf_len;
  size_t max;                   /* otherwise the most a reply may hold */
  bool error_in_body;           /* a 200 may carry an <Error> (Complete) */
};

static size_t
count_pairs (const struct sigv4_pair *p, size_t max)
{
  size_t n = 0;

  while (n < max && p[n].name)
    n++;
  return n;
}

/* Copy server text IN (LEN bytes) to OUT as printable ASCII, truncated. */
static void
copy_clean (char *out, size_t size, const char *in)
{
  size_t i;

  for (i = 0; in && in[i] && i + 1 < size; i++)
    out[i] = in[i] >= ' ' && in[i] <= '~' ? in[i] : '?';
  out[i] = '\0';
}

/* If RESP's body is an S3 <Error> document, copy its Code and Message,
 * cleaned, to CODE and MSG and return true.
 */
static bool
error_fields (const struct http_response *resp, char code[64], char msg[160])
{
  struct xml_span doc = { resp->body, resp->len }, err;
  size_t pos = 0;
  char *c, *m;

  if (resp->body == NULL || xml_next (doc, "Error", &pos, &err) != 1)
    return false;
  c = xml_child_text (err, "Code");
  m = xml_child_text (err, "Message");
  copy_clean (code, 64, c);
  copy_clean (msg, 160, m);
  free (c);
  free (m);
  return true;
}

static bool
transient_errno (int e)
{
  return e == ECONNREFUSED || e == ETIMEDOUT || e == EHOSTUNREACH ||
    e == ECONNRESET;
}

static bool
transient_status (long status, const char *code)
{
  return status == 429 || (status >= 500 && status != 501) ||
    (status == 400 && strcmp (code, "RequestTimeout") == 0);
}

/* Sleep before retry number N (from 1): full jitter, capped. */
static void
backoff (unsigned n)
{
  uint64_t ceiling = (uint64_t) BACKOFF_BASE_MS << (n < 16 ? n - 1 : 15);
  uint32_t rnd = 0;
  struct timespec ts;
  uint64_t ms;

  if (ceiling > BACKOFF_CAP_MS)
    ceiling = BACKOFF_CAP_MS;
  if (getrandom (&rnd, sizeof rnd, 0) != sizeof rnd)
    rnd = time_mono_ns ();
  ms = rnd % (ceiling + 1);
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000;
  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

/* Sign and send OP once.  0 with *RESP (any status), or -1 with err_set. */
static int
s3_try (struct s3_store *st, const struct s3_op *op, const char *path,
        const char *url, const char *hash, struct http_response *resp)
{
  struct sigv4_pair h[4 + MAX_OP_HEADERS];
  char *lines[4 + MAX_OP_HEADERS + 2];
  struct sigv4_signature sig;
  struct sigv4_request req = {
    .method = op->method, .path = path, .query = op->query,
    .nquery = count_pairs (op->query, 6), .headers = h,
    .payload_hash = hash,
  };
  char date[17];
  size_t n = 0;
  int r;

  sigv4_amz_date (time (NULL), date);
  h[n++] = (struct sigv4_pair) { "Host", st->host };
  h[n++] = (struct sigv4_pair) { "X-Amz-Date", date };
  h[n++] = (struct sigv4_pair) { "X-Amz-Content-SHA256", hash };
  if (st->token)
    h[n++] = (struct sigv4_pair) { "X-Amz-Security-Token", st->token };
  for (size_t i = 0; i < count_pairs (op->headers, MAX_OP_HEADERS); i++)
    h[n++] = op->headers[i];
  req.nheaders = n;
  if (sigv4_sign (&req, &st->key, &sig) == -1)
    return -1;
  for (size_t i = 0; i < n; i++)
    lines[i] = xasprintf ("%s: %s", h[i].name, h[i].value);
  lines[n] = xasprintf ("Authorization: %s", sig.authorization);
  lines[n + 1] = NULL;
  r = http_send (st->pool, &(struct http_request) {
      .method = op->method, .url = url,
      .headers = (const char *const *) lines,
      .body = op->body, .body_len = op->body_len,
      .buf = op->buf, .buf_len = op->buf_len, .max = op->max,
    }, resp);
  for (size_t i = 0; i <= n; i++)
    free (lines[i]);
  sigv4_signature_free (&sig);
  return r;
}

/* The errno for a final HTTP status. */
static int
status_errno (long status)
{
  switch (status) {
  case 404: return ENOENT;
  case 409: case 412: return ESTALE;
  case 403: return EACCES;
  case 416: return EBADMSG;
  case 501: return ENOTSUP;
  default: return EIO;
  }
}

/* Perform OP with retries.  0 if the final reply is 2xx (the caller
 * frees *RESP with http_response_free), else -1 with err_set and errno
 * as store.h lists.  Counts the request in the store's statistics.
 */
static int
s3_call (struct s3_store *st, const struct s3_op *op,
         struct http_response *resp)
{
  CLEANUP_FREE char *path = NULL, *url = NULL, *query = NULL;
  CLEANUP_FREE char *epath = NULL;
  char hash[65], code[64] = "", msg[160] = "", after[32] = "";
  unsigned tries;
  int r, e;

  path = op->key ? xasprintf ("%s/%s", st->bucket_path, op->key)
    : xasprintf ("%s", st->bucket_path[0] ? st->bucket_path : "/");
  epath = sigv4_uri_encode (path, true);
  query = sigv4_canonical_query (op->query, count_pairs (op->query, 6));
  url = xasprintf ("%s%s%s%s", st->base, epath, query[0] ? "?" : "", query);
  sigv4_sha256_hex (op->body ? op->body : "", op->body_len, hash);

  for (tries = 1; ; tries++) {
    bool retry;
    r = s3_try (st, op, path, url, hash, resp);
    if (r == -1)
      retry = transient_errno (errno);
    else {
      bool ok = resp->status / 100 == 2;
      code[0] = msg[0] = '\0';
      /* S3 says a 200 Complete holding an <Error> is to be taken as a 500. */
      if ((!ok || op->error_in_body) && error_fields (resp, code, msg) && ok)
        resp->status = 500;
      retry = transient_status (resp->status, code);
    }
    if (!retry || tries > st->retries)
      break;
    if (r == 0)
      http_response_free (resp);
    backoff (tries);
  }
  if (tries > 1)
    snprintf (after, sizeof after, " after %u tries", tries);

  if (r == -1) {
    char cause[512];
    e = errno == ECONNRESET ? EIO : errno;
    copy_clean (cause, sizeof cause, err_msg ());
    err_set (e, "%s: %s%s%s%s", op->what, cause, after[0] ? " (gave up" : "",
             after, after[0] ? ")" : "");
  }
  else if (resp->status / 100 == 2) {
    store_count (&st->s, tries - 1, op->buf ? op->buf_len : resp->len,
                 op->body_len, false);
    return 0;
  }
  else {
    e = status_errno (resp->status);
    err_set (e, "%s: %sHTTP %ld%s%s%s%s%s%s", op->what,
             e == EACCES ? "the store refused our credentials or signature: "
             : e == ENOTSUP ? "the store does not support this request: "
             : "", resp->status, after, code[0] ? " (" : "", code,
             msg[0] ? ": " : "", msg, code[0] ? ")" : "");
    http_response_free (resp);
  }
  store_count (&st->s, tries - 1, 0, 0, e != ENOENT && e != ESTALE);
  errno = e;
  return -1;
}

static int
s3_get (struct store *s, const char *key, size_t max,
        char **data, size_t *len, struct store_obj *info)
{
  CLEANUP_FREE char *what = xasprintf ("get %s", key);
  struct s3_op op = { .what = what, .method = "GET", .key = key, .max = max };
  struct http_response resp;

  if (s3_call ((struct s3_store *) s, &op, &resp) == -1)
    return -1;
  /* An empty object has no body buffer; the caller wants a string. */
  *data = resp.body ? resp.body : strdup ("");
  if (*data == NULL)
    return err_set (ENOMEM, "%s: out of memory", what);
  *len = resp.len;
  if (info) {
    info->size = resp.len;
    copy_clean (info->etag, sizeof info->etag, resp.etag);
  }
  return 0;
}

static int
s3_get_range (struct store *s, const char *key,
              uint64_t offset, size_t len, void *buf)
{
  CLEANUP_FREE char *what =
    xasprintf ("get %s [%ju+%zu]", key, (uintmax_t) offset, len);
  CLEANUP_FREE char *range =
    xasprintf ("bytes=%ju-%ju", (uintmax_t) offset,
               (uintmax_t) (offset + len - 1));
  CLEANUP_FREE char *want = xasprintf ("bytes %s/", range + 6);
  struct s3_op op = {
    .what = what, .method = "GET", .key = key,
    .headers = { { "Range", range } }, .buf = buf, .buf_len = len,
  };
  struct http_response resp;
  bool exact;

  if (s3_call ((struct s3_store *) s, &op, &resp) == -1)
    return -1;
  /* 206 for the range asked; 200 only if the range was the whole object
   * (http_send saw exactly LEN bytes, no more).
   */
  exact = resp.status == 206
    ? strncmp (resp.content_range, want, strlen (want)) == 0
    : resp.status == 200 && offset == 0;
  http_response_free (&resp);
  if (!exact)
    return err_set (EBADMSG, "%s: the store answered HTTP %ld for "
                    "another range (%.60s)", what, resp.status,
                    resp.content_range);
  return 0;
}

static int
s3_head (struct store *s, const char *key, struct store_obj *info)
{
  CLEANUP_FREE char *what = xasprintf ("head %s", key);
  struct s3_op op = { .what = what, .method = "HEAD", .key = key };
  struct http_response resp;

  if (s3_call ((struct s3_store *) s, &op, &resp) == -1)
    return -1;
  http_response_free (&resp);
  if (resp.content_length == UINT64_MAX)
    return err_set (EBADMSG, "%s: the reply has no Content-Length", what);
  info->size = resp.content_length;
  copy_clean (info->etag, sizeof info->etag, resp.etag);
  return 0;
}

static int
s3_put (struct store *s, const char *key, const void *data, size_t len,
        enum store_cond cond, const char *etag, struct store_obj *info)
{
  CLEANUP_FREE char *what = xasprintf ("put %s", key);
  struct s3_op op = {
    .what = what, .method = "PUT", .key = key,
    .headers = { { "Content-Type", "application/octet-stream" } },
    .body = data, .body_len = len,
  };
  struct http_response resp;

  if (cond == STORE_PUT_IF_ABSENT)
    op.headers[1] = (struct sigv4_pair) { "If-None-Match", "*" };
  else if (cond == STORE_PUT_IF_MATCH)
    op.headers[1] = (struct sigv4_pair) { "If-Match", etag };
  if (s3_call ((struct s3_store *) s, &op, &resp) == -1)
    return -1;
  http_response_free (&resp);
  if (info) {
    info->size = len;
    copy_clean (info->etag, sizeof info->etag, resp.etag);
  }
  return 0;
}

/* DELETE the object, or with ID its multipart upload; gone is fine. */
static int
delete_op (struct store *s, const char *what, const char *key, const char *id)
{
  struct s3_op op = {
    .what = what, .method = "DELETE", .key = key,
    .query = { { id ? "uploadId" : NULL, id } },
  };
  struct http_response resp;

  if (s3_call ((struct s3_store *) s, &op, &resp) == -1)
    return errno == ENOENT ? 0 : -1;
  http_response_free (&resp);
  return 0;
}

static int
s3_delete (struct store *s, const char *key)
{
  CLEANUP_FREE char *what = xasprintf ("delete %s", key);

  return delete_op (s, what, key, NULL);
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

/* Add the Contents (IS_PREFIX false) or CommonPrefixes of ROOT to PG.
 * NULL, or what is wrong.
 */
static const char *
page_add (struct xml_span root, bool is_prefix, const char *prefix,
          struct page *pg)
{
  const char *elem = is_prefix ? "CommonPrefixes" : "Contents";
  struct xml_span c;
  size_t pos = 0;
  int r;

  while ((r = xml_next (root, elem, &pos, &c)) == 1) {
    struct entry e = { .is_prefix = is_prefix };
    CLEANUP_FREE char *size = is_prefix ? NULL : xml_child_text (c, "Size");

    e.name = xml_child_text (c, is_prefix ? "Prefix" : "Key");
    if (e.name == NULL || strncmp (e.name, prefix, strlen (prefix)) != 0 ||
        e.name[0] == '\0' || (!is_prefix && !parse_u64 (size, &e.size))) {
      free (e.name);
      return "an entry without a key, a size, or the prefix";
    }
    if (pg->n == pg->cap) {
      size_t cap = pg->cap ? 2 * pg->cap : 64;
      struct entry *ne = realloc (pg->e, cap * sizeof *ne);
      if (ne == NULL) {
        free (e.name);
        return "out of memory";
      }
      pg->e = ne;
      pg->cap = cap;
    }
    pg->e[pg->n++] = e;
  }
  return r == -1 ? "malformed XML" : NULL;
}

/* Parse one ListObjectsV2 reply into PG.  -1 with err_set (EBADMSG). */
static int
page_parse (const char *what, const struct http_response *resp,
            const char *prefix, struct page *pg)
{
  struct xml_span doc = { resp->body, resp->len }, root;
  CLEANUP_FREE char *truncated = NULL;
  const char *bad = NULL;
  size_t pos = 0;

  if (resp->body == NULL || xml_next (doc, "ListBucketResult", &pos, &root) != 1)
    bad = "no ListBucketResult";
  else if ((bad = page_add (root, false, prefix, pg)) == NULL &&
           (bad = page_add (root, true, prefix, pg)) == NULL) {
    truncated = xml_child_text (root, "IsTruncated");
    if (truncated && strcmp (truncated, "true") == 0) {
      pg->next = xml_child_text (root, "NextContinuationToken");
      if (pg->next == NULL || pg->next[0] == '\0')
        bad = "truncated without a continuation token";
    }
  }
  if (bad)
    return err_set (EBADMSG, "%s: bad listing from the store: %s", what, bad);
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
  CLEANUP_FREE char *what = xasprintf ("list %s", prefix);
  CLEANUP_FREE char *last = NULL, *token = NULL;
  char max_keys[16];
  int r = 0;

  snprintf (max_keys, sizeof max_keys, "%u", st->max_keys);
  do {
    struct s3_op op = {
      .what = what, .method = "GET", .max = XML_REPLY_MAX,
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
    if (s3_call (st, &op, &resp) == -1)
      return -1;
    r = page_parse (what, &resp, prefix, &pg);
    http_response_free (&resp);
    /* Keys come sorted and prefixes come sorted, apart: merge them.
     * Pages follow each other in order; check it, so a confused store
     * cannot make us report a name twice or loop forever.
     */
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

static struct store_upload *
s3_upload_begin (struct store *s, const char *key)
{
  CLEANUP_FREE char *what = xasprintf ("begin upload of %s", key);
  struct s3_op op = {
    .what = what, .method = "POST", .key = key, .body = "",
    .query = { { "uploads", "" } }, .max = XML_REPLY_MAX,
    .headers = { { "Content-Type", "application/octet-stream" } },
  };
  struct http_response resp;
  struct s3_upload *up;
  struct xml_span doc, root;
  size_t pos = 0;
  char *id = NULL;

  if (s3_call ((struct s3_store *) s, &op, &resp) == -1)
    return NULL;
  doc = (struct xml_span) { resp.body, resp.len };
  if (resp.body &&
      xml_next (doc, "InitiateMultipartUploadResult", &pos, &root) == 1)
    id = xml_child_text (root, "UploadId");
  http_response_free (&resp);
  if (id == NULL || id[0] == '\0') {
    free (id);
    err_set (EBADMSG, "%s: the reply has no UploadId", what);
    return NULL;
  }
  up = calloc (1, sizeof *up);
  if (up == NULL || (up->etags = calloc (STORE_PART_MAX_COUNT,
                                         sizeof *up->etags)) == NULL ||
      (up->u.key = strdup (key)) == NULL) {
    if (up)
      free (up->etags);
    free (up);
    err_set (ENOMEM, "%s: out of memory", what);
    delete_op (s, what, key, id);
    free (id);
    return NULL;
  }
  pthread_mutex_init (&up->lock, NULL);
  up->u.st = s;
  up->u.id = id;
  return &up->u;
}

static int
s3_upload_part (struct store_upload *u, unsigned partno,
                uint64_t offset, const void *data, size_t len)
{
  struct s3_upload *up = (struct s3_upload *) u;
  CLEANUP_FREE char *what =
    xasprintf ("upload %s part %u [%ju+%zu]", u->key, partno,
               (uintmax_t) offset, len);
  char num[16];
  struct s3_op op = {
    .what = what, .method = "PUT", .key = u->key,
    .query = { { "partNumber", num }, { "uploadId", u->id } },
    .body = data, .body_len = len,
  };
  struct http_response resp;
  char *etag;

  snprintf (num, sizeof num, "%u", partno);
  if (s3_call ((struct s3_store *) u->st, &op, &resp) == -1)
    return -1;
  http_response_free (&resp);
  if (resp.etag[0] == '\0')
    return err_set (EBADMSG, "%s: the reply has no ETag", what);
  etag = xml_escape (resp.etag);
  /* A part uploaded twice (a caller's retry) keeps the later etag, as
   * S3 keeps the later part.
   */
  pthread_mutex_lock (&up->lock);
  free (up->etags[partno - 1]);
  up->etags[partno - 1] = etag;
  if (partno > up->nparts)
    up->nparts = partno;
  pthread_mutex_unlock (&up->lock);
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

static void
s3_upload_abort (struct store_upload *u)
{
  CLEANUP_FREE char *what = xasprintf ("abort upload of %s", u->key);

  if (delete_op (u->st, what, u->key, u->id) == -1)
    log_warn ("%s (its parts stay in the bucket until deleted)", err_msg ());
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
  f = open_memstream (&xml, &len);
  if (f == NULL) {
    err_set (errno, "%s: %m", what);
    return NULL;
  }
  fputs ("<CompleteMultipartUpload>", f);
  for (unsigned i = 0; i < up->nparts; i++)
    fprintf (f, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>",
             i + 1, up->etags[i]);
  fputs ("</CompleteMultipartUpload>", f);
  if (fclose (f) != 0) {
    free (xml);
    err_set (ENOMEM, "%s: out of memory", what);
    return NULL;
  }
  return xml;
}

static int
s3_upload_complete (struct store_upload *u)
{
  struct s3_upload *up = (struct s3_upload *) u;
  CLEANUP_FREE char *what = xasprintf ("complete upload of %s", u->key);
  CLEANUP_FREE char *xml = NULL;
  struct http_response resp;
  char msg[1024];
  int e;

  /* The caller has joined every part's thread: no lock needed. */
  xml = up->nparts ? complete_xml (up, what) : NULL;
  if (up->nparts == 0)
    err_set (EINVAL, "%s: no part was uploaded", what);
  if (xml) {
    struct s3_op op = {
      .what = what, .method = "POST", .key = u->key,
      .query = { { "uploadId", u->id } },
      .headers = { { "Content-Type", "application/xml" } },
      .body = xml, .body_len = strlen (xml), .max = XML_REPLY_MAX,
      .error_in_body = true,
    };
    if (s3_call ((struct s3_store *) u->st, &op, &resp) == 0) {
      http_response_free (&resp);
      upload_free (up);
      return 0;
    }
  }
  /* Keep the reason across the abort, which may set its own error. */
  e = err_errno ();
  snprintf (msg, sizeof msg, "%s", err_msg ());
  s3_upload_abort (u);
  return err_set (e, "%s", msg);
}

static int
s3_upload_abort_id (struct store *s, const char *key, const char *id)
{
  CLEANUP_FREE char *what = xasprintf ("abort upload of %s", key);

  if (id[0] == '\0')
    return err_set (EINVAL, "%s: empty upload id", what);
  return delete_op (s, what, key, id);
}

static void
s3_close (struct store *s)
{
  struct s3_store *st = (struct s3_store *) s;

  http_pool_free (st->pool);
  free (st->base);
  free (st->host);
  free (st->bucket_path);
  free ((char *) st->key.access_key);
  if (st->key.secret_key) {
    OPENSSL_cleanse ((char *) st->key.secret_key, strlen (st->key.secret_key));
    free ((char *) st->key.secret_key);
  }
  free ((char *) st->key.region);
  free (st->token);
  free (st->s.describe);
  free (st);
}

static const struct store_ops s3_ops = {
  .get = s3_get,
  .get_range = s3_get_range,
  .head = s3_head,
  .put = s3_put,
  .delete = s3_delete,
  .list = s3_list,
  .upload_begin = s3_upload_begin,
  .upload_part = s3_upload_part,
  .upload_complete = s3_upload_complete,
  .upload_abort = s3_upload_abort,
  .upload_abort_id = s3_upload_abort_id,
  .close = s3_close,
};

/* S3's naming rules: 3 to 63 of a-z 0-9 . -, a letter or digit at each
 * end, no "..", not an IPv4 address.
 */
static bool
bucket_valid (const char *b)
{
  size_t n = strlen (b);
  struct in_addr addr;

  if (n < 3 || n > 63 || strstr (b, "..") ||
      inet_pton (AF_INET, b, &addr) == 1)
    return false;
  for (size_t i = 0; i < n; i++) {
    bool alnum = (b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9');
    if (!alnum && ((b[i] != '.' && b[i] != '-') || i == 0 || i == n - 1))
      return false;
  }
  return true;
}

#define LOWER_DIGITS "abcdefghijklmnopqrstuvwxyz0123456789"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

/* Is S 1 to MAX characters, all from SET? */
static bool
chars_valid (const char *s, size_t max, const char *set)
{
  return s[0] && strlen (s) <= max && s[strspn (s, set)] == '\0';
}

/* Check that URL is "http[s]://HOST[:PORT][/]" and nothing more (no
 * path, query or credentials).  Sets *SCHEME_LEN to the length of
 * "http[s]://", *HOSTPORT to a copy of HOST[:PORT], and *IS_IP if HOST is
 * an address rather than a name.
 */
static int
parse_endpoint (const char *url, size_t *scheme_len, char **hostport,
                bool *is_ip)
{
  const char *h, *p;
  size_t digits;

  *scheme_len = strncmp (url, "https://", 8) == 0 ? 8
    : strncmp (url, "http://", 7) == 0 ? 7 : 0;
  if (*scheme_len == 0)
    return -1;
  h = p = url + *scheme_len;
  if (*p == '[') {               /* an IPv6 address */
    p += 1 + strspn (p + 1, "0123456789abcdefABCDEF:.");
    if (*p++ != ']')
      return -1;
    *is_ip = true;
  }
  else {
    CLEANUP_FREE char *name = NULL;
    struct in_addr addr;
    p += strspn (p, LOWER_DIGITS UPPER ".-");
    name = strndup (h, p - h);
    *is_ip = name && inet_pton (AF_INET, name, &addr) == 1;
  }
  if (p == h)
    return -1;
  if (*p == ':') {
    digits = strspn (p + 1, "0123456789");
    if (digits == 0 || digits > 5)
      return -1;
    p += 1 + digits;
  }
  *hostport = xasprintf ("%.*s", (int) (p - h), h);
  if (*p == '/')
    p++;
  return *p == '\0' ? 0 : -1;
}

/* Check CFG and work out where requests go.  -1 with err_set (EINVAL). */
static int
s3_configure (struct s3_store *st, const struct store_config *cfg)
{
  bool r2 = cfg->backend == STORE_R2, is_ip = false, virtual;
  const char *name = r2 ? "r2 store" : "s3 store";
  const char *region = cfg->region ? cfg->region : r2 ? "auto" : "us-east-1";
  CLEANUP_FREE char *endpoint = NULL, *hostport = NULL;
  size_t scheme_len;

  if (!bucket_valid (cfg->bucket))
    return err_set (EINVAL, "%s: invalid bucket name \"%.70s\"",
                    name, cfg->bucket);
  if (!chars_valid (region, 32, LOWER_DIGITS "-"))
    return err_set (EINVAL, "%s: invalid region \"%.40s\"", name, region);
  if (r2 && cfg->addressing == STORE_ADDR_VIRTUAL)
    return err_set (EINVAL, "r2 store: R2 is addressed path-style only");
  if (r2 && !cfg->endpoint_url == !cfg->r2_account_id)
    return err_set (EINVAL, "r2 store: give an account id or an endpoint "
                    "URL (one of them)");
  if (r2 && cfg->r2_account_id &&
      !chars_valid (cfg->r2_account_id, 64, LOWER_DIGITS UPPER))
    return err_set (EINVAL, "r2 store: invalid account id");
  endpoint = cfg->endpoint_url ? xasprintf ("%s", cfg->endpoint_url)
    : r2 ? xasprintf ("https://%s.r2.cloudflarestorage.com",
                      cfg->r2_account_id)
    : xasprintf ("https://s3.%s.amazonaws.com", region);
  if (parse_endpoint (endpoint, &scheme_len, &hostport, &is_ip) == -1)
    return err_set (EINVAL, "%s: endpoint URL \"%.100s\" is not "
                    "http[s]://HOST[:PORT]", name, endpoint);
  /* AWS itself: virtual-hosted, except for a dotted bucket name, which
   * the wildcard TLS certificate of s3.REGION.amazonaws.com cannot cover.
   */
  virtual = cfg->addressing == STORE_ADDR_VIRTUAL ||
    (cfg->addressing == STORE_ADDR_AUTO && !r2 && !cfg->endpoint_url &&
     !strchr (cfg->bucket, '.'));
  if (virtual && is_ip)
    return err_set (EINVAL, "%s: virtual-hosted addressing needs a host "
                    "name in the endpoint URL, not an address", name);
  st->host = virtual ? xasprintf ("%s.%s", cfg->bucket, hostport)
    : xasprintf ("%s", hostport);
  st->base = xasprintf ("%.*s%s", (int) scheme_len, endpoint, st->host);
  st->bucket_path = virtual ? xasprintf ("%s", "")
    : xasprintf ("/%s", cfg->bucket);
  st->key.region = xasprintf ("%s", region);
  st->s.describe = xasprintf ("%s://%s (%.*s%s, %s)", r2 ? "r2" : "s3",
                              cfg->bucket, (int) scheme_len, endpoint,
                              hostport, virtual ? "virtual-hosted"
                              : "path-style");
  return 0;
}

struct store *
store_s3_open (const struct store_config *cfg)
{
  const char *ak = getenv ("AWS_ACCESS_KEY_ID");
  const char *sk = getenv ("AWS_SECRET_ACCESS_KEY");
  const char *token = getenv ("AWS_SESSION_TOKEN");
  const char *max_keys = getenv ("LAZYVOL_S3_MAX_KEYS");
  struct s3_store *st = calloc (1, sizeof *st);

  if (st == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  st->s.ops = &s3_ops;
  if (s3_configure (st, cfg) == -1)
    goto err;
  if (ak == NULL || ak[0] == '\0' || sk == NULL || sk[0] == '\0') {
    err_set (EINVAL, "%s: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must "
             "be set in the environment", st->s.describe);
    goto err;
  }
  st->key.access_key = xasprintf ("%s", ak);
  st->key.secret_key = xasprintf ("%s", sk);
  st->key.service = "s3";
  st->token = token && token[0] ? xasprintf ("%s", token) : NULL;
  st->retries = cfg->retries;
  if (max_keys)
    st->max_keys = atoi (max_keys) >= 1 && atoi (max_keys) <= 1000
      ? atoi (max_keys) : 0;
  st->pool = http_pool_new (cfg->timeout ? cfg->timeout : DEFAULT_TIMEOUT);
  if (st->pool == NULL)
    goto err;
  return &st->s;
 err:
  s3_close (&st->s);
  return NULL;
}
