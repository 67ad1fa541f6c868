/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: one S3 operation, signed, sent and retried (see s3.h).
 *
 * Where requests go: the endpoint URL (http[s]://HOST[:PORT], nothing
 * more), else https://s3.REGION.amazonaws.com, or for R2
 * https://ACCOUNT.r2.cloudflarestorage.com.  Path-style puts the bucket
 * in the path (HOST/BUCKET/KEY); virtual-hosted in the host name
 * (BUCKET.HOST/KEY).  AUTO is virtual-hosted on AWS itself, path-style
 * with an endpoint URL (most S3-compatible stores), and R2 is always
 * path-style.
 *
 * s3_call builds the URL once from the same encoder that signs it, so
 * the bytes sent are the bytes signed; hashes the body once, unless the
 * caller did (a publish hashes each upload part in the same pass as its
 * chunks, see publish.c); then for each try signs afresh (a new
 * X-Amz-Date) and sends through the connection pool of http.c.
 *
 * The body's real SHA-256 always goes in x-amz-content-sha256, never
 * UNSIGNED-PAYLOAD, over TLS too.  Over plain http it is the only check
 * that the store keeps the bytes we sent: a body damaged on the way is
 * refused (and sent again, see below).  Over https TLS protects the
 * connection, but only up to where it ends (a load balancer, a CDN's
 * edge in front of R2); the store checks the signed hash where the
 * bytes are stored, and a publish marks its chunks clean on the strength
 * of that.  What it costs is one SHA-256 pass over the bytes in the
 * upload threads (about half a CPU-second a GiB on a CPU with SHA
 * instructions), made while they are in the CPU's cache for the chunk
 * hashes anyway.
 *
 * A streamed GET hands its 2xx body to the caller's sink as it arrives;
 * a try that fails after part of it was handed over is tried again from
 * the start, so the sink is told first to forget what it received.  Its
 * own stop (a positive return) ends the call at once, not retried, its
 * error recorded by the sink.
 *
 * What is tried again: 5xx other than 501, 429 (SlowDown), 400
 * RequestTimeout, 400 XAmzContentSHA256Mismatch, BadDigest and
 * IncompleteBody (the body was damaged or cut on its way: it is sent
 * again from our copy), a 200 whose body is an <Error> where S3 documents that
 * (CompleteMultipartUpload), and transfers that were refused, timed out,
 * cut off or could not resolve the host.  Up to "retries" tries after
 * the first, each after a random sleep of up to min(5 s, 100 ms * 2^n)
 * ("full jitter": clients hitting one busy store spread out).  Any other
 * 4xx is final at once.  Retrying a PUT is safe, as PUTs replace whole
 * objects; but a conditional PUT whose first try succeeded unseen fails
 * its retry with ESTALE, and the caller, which re-reads the object to
 * resolve a conflict, finds its own write.
 *
 * Failures become the errno values of store.h, with messages naming the
 * operation and key, the HTTP status or transfer error, S3's error Code
 * and Message, and the number of tries: never a header, so never a
 * credential.  The secret key lives in this struct only, and is wiped at
 * close.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/crypto.h>

#include "err.h"
#include "s3.h"
#include "util.h"
#include "xml.h"

#define DEFAULT_TIMEOUT_MS 30000
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000
#define LOWER_DIGITS "abcdefghijklmnopqrstuvwxyz0123456789"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

struct s3_client {
  struct store *st;             /* whose counters s3_call updates */
  struct http_pool *pool;
  char *base;                   /* http(s)://host[:port] requests go to */
  char *host;                   /* the Host header */
  char *bucket_path;            /* "/BUCKET", or "" when virtual-hosted */
  struct sigv4_key key;         /* access key, secret, region, "s3" */
  char *token;                  /* AWS_SESSION_TOKEN, or NULL */
  unsigned retries;
};

static size_t
count_pairs (const struct sigv4_pair *p, size_t max)
{
  size_t n = 0;

  while (n < max && p[n].name)
    n++;
  return n;
}

/* Copy server text IN (may be NULL) to OUT as printable ASCII. */
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
  static const char *const again[] = {
    "RequestTimeout", "XAmzContentSHA256Mismatch", "BadDigest",
    "IncompleteBody",
  };

  if (status == 429 || (status >= 500 && status != 501))
    return true;
  if (status == 400)
    for (size_t i = 0; i < sizeof again / sizeof again[0]; i++)
      if (strcmp (code, again[i]) == 0)
        return true;
  return false;
}

/* Why a transient status is retried, for the retry counters. */
static enum store_why
status_why (long status, const char *code)
{
  if (status == 429 || status == 503)
    return STORE_WHY_THROTTLED;
  if (status == 400)
    return strcmp (code, "RequestTimeout") == 0 ? STORE_WHY_TIMEOUT
      : strcmp (code, "IncompleteBody") == 0 ? STORE_WHY_CUT_OFF
      : STORE_WHY_CORRUPT;
  return STORE_WHY_SERVER;
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
try_once (struct s3_client *c, const struct s3_op *op, const char *path,
          const char *url, const char *hash, struct http_response *resp)
{
  struct sigv4_pair h[5 + S3_MAX_HEADERS];  /* signed ones, Authorization */
  char *lines[5 + S3_MAX_HEADERS + 1];
  struct sigv4_signature sig;
  struct sigv4_request req = {
    .method = op->method, .path = path, .query = op->query,
    .nquery = count_pairs (op->query, S3_MAX_QUERY), .headers = h,
    .payload_hash = hash,
  };
  char date[17];
  size_t n = 0, i;
  int r = -1;

  sigv4_amz_date (time (NULL), date);
  h[n++] = (struct sigv4_pair) { "Host", c->host };
  h[n++] = (struct sigv4_pair) { "X-Amz-Date", date };
  h[n++] = (struct sigv4_pair) { "X-Amz-Content-SHA256", hash };
  if (c->token)
    h[n++] = (struct sigv4_pair) { "X-Amz-Security-Token", c->token };
  for (i = 0; i < count_pairs (op->headers, S3_MAX_HEADERS); i++)
    h[n++] = op->headers[i];
  req.nheaders = n;
  if (sigv4_sign (&req, &c->key, &sig) == -1)
    return -1;
  h[n] = (struct sigv4_pair) { "Authorization", sig.authorization };
  for (i = 0; i <= n; i++)
    if ((lines[i] = str_printf ("%s: %s", h[i].name, h[i].value)) == NULL)
      break;
  lines[i] = NULL;
  if (i > n)
    r = http_send (c->pool, &(struct http_request) {
        .method = op->method, .url = url,
        .headers = (const char *const *) lines,
        .body = op->body, .body_len = op->body_len,
        .buf = op->buf, .buf_len = op->buf_len, .max = op->max,
        .sink = op->sink, .sink_opaque = op->sink_opaque,
      }, resp);
  while (i > 0)
    free (lines[--i]);
  sigv4_signature_free (&sig);
  return r;
}

int
s3_call (struct s3_client *c, const struct s3_op *op,
         struct http_response *resp)
{
  CLEANUP_FREE char *path = NULL, *epath = NULL, *query = NULL;
  CLEANUP_FREE char *url = NULL;
  char hash[65], code[64] = "", msg[160] = "", tries_str[40] = "";
  unsigned tries;
  int r, e;

  path = op->key ? str_printf ("%s/%s", c->bucket_path, op->key)
    : str_printf ("%s", c->bucket_path[0] ? c->bucket_path : "/");
  if (path == NULL || (epath = sigv4_uri_encode (path, true)) == NULL ||
      (query = sigv4_canonical_query
       (op->query, count_pairs (op->query, S3_MAX_QUERY))) == NULL ||
      (url = str_printf ("%s%s%s%s", c->base, epath, query[0] ? "?" : "",
                         query)) == NULL ||
      (op->payload_hash == NULL &&
       sigv4_sha256_hex (op->body ? op->body : "", op->body_len, hash) == -1))
    return err_prefix ("%s", op->what);
  if (op->payload_hash)
    snprintf (hash, sizeof hash, "%s", op->payload_hash);

  for (tries = 1; ; tries++) {
    enum store_why why;
    bool retry;

    r = try_once (c, op, path, url, hash, resp);
    if (r > 0)
      break;                    /* the sink stopped it: its error stands */
    if (r == -1) {
      retry = transient_errno (errno);
      why = store_why_of_errno (errno);
    }
    else {
      bool ok = resp->status / 100 == 2;
      code[0] = msg[0] = '\0';
      if ((!ok || op->error_in_body) && error_fields (resp, code, msg) && ok)
        resp->status = 500;     /* as S3 says to take it */
      retry = transient_status (resp->status, code);
      why = status_why (resp->status, code);
    }
    if (!retry || tries > c->retries)
      break;
    store_count_retry (c->st, op->op, why);
    if (r == 0)
      http_response_free (resp);
    /* Part of a streamed body may have reached the sink: the next try
     * sends it all again.
     */
    if (op->sink && (r = op->sink (op->sink_opaque, NULL, 0)) != 0)
      break;
    backoff (tries);
  }

  if (r > 0) {
    store_count (c->st, tries, resp->len, op->body_len);
    return r;
  }

  if (r == 0 && resp->status / 100 == 2) {
    store_count (c->st, tries, op->buf ? op->buf_len : resp->len,
                 op->body_len);
    return 0;
  }
  if (r == -1) {
    char cause[512];
    /* A connection cut off, every time, is no longer "unreachable". */
    e = errno == ECONNRESET ? EIO : errno;
    copy_clean (cause, sizeof cause, err_msg ());
    if (tries > 1)
      snprintf (tries_str, sizeof tries_str, " (gave up after %u tries)",
                tries);
    err_set (e, "%s: %s%s", op->what, cause, tries_str);
  }
  else {
    e = status_errno (resp->status);
    if (transient_status (resp->status, code))
      store_fail_why (status_why (resp->status, code));
    if (tries > 1)
      snprintf (tries_str, sizeof tries_str, " after %u tries", tries);
    err_set (e, "%s: %sHTTP %ld%s%s%s%s%s%s", op->what,
             e == EACCES ? "the store refused our credentials or signature: "
             : e == ENOTSUP ? "the store does not support this request: "
             : "", resp->status, tries_str, code[0] ? " (" : "", code,
             msg[0] ? ": " : "", msg, code[0] ? ")" : "");
    http_response_free (resp);
  }
  store_count (c->st, tries, 0, 0);
  errno = e;
  return -1;
}

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

/* Is S 1 to MAX characters, all from SET? */
static bool
chars_valid (const char *s, size_t max, const char *set)
{
  return s[0] && strlen (s) <= max && s[strspn (s, set)] == '\0';
}

/* Check that URL is "http[s]://HOST[:PORT][/]" and nothing more (no
 * path, query or credentials).  Sets *SCHEME_LEN to the length of
 * "http[s]://", *HOSTPORT_LEN to the length of the HOST[:PORT] after it,
 * and *IS_IP if HOST is an address rather than a name.
 */
static int
parse_endpoint (const char *url, size_t *scheme_len, size_t *hostport_len,
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
    char name[INET_ADDRSTRLEN];
    struct in_addr addr;
    p += strspn (p, LOWER_DIGITS UPPER ".-");
    snprintf (name, sizeof name, "%.*s", (int) (p - h), h);
    *is_ip = (size_t) (p - h) < sizeof name &&
      inet_pton (AF_INET, name, &addr) == 1;
  }
  if (p == h)
    return -1;
  if (*p == ':') {
    digits = strspn (p + 1, "0123456789");
    if (digits == 0 || digits > 5)
      return -1;
    p += 1 + digits;
  }
  *hostport_len = p - h;
  if (*p == '/')
    p++;
  return *p == '\0' ? 0 : -1;
}

/* Check CFG and work out where requests go.  -1 with err_set (EINVAL,
 * or ENOMEM).
 */
static int
configure (struct s3_client *c, const struct store_config *cfg)
{
  bool r2 = cfg->backend == STORE_R2, is_ip = false, virtual;
  const char *name = r2 ? "r2 store" : "s3 store";
  const char *region = cfg->region ? cfg->region : r2 ? "auto" : "us-east-1";
  CLEANUP_FREE char *endpoint = NULL;
  const char *hostport;
  size_t scheme_len, hp_len;

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
  endpoint = cfg->endpoint_url ? str_printf ("%s", cfg->endpoint_url)
    : r2 ? str_printf ("https://%s.r2.cloudflarestorage.com",
                       cfg->r2_account_id)
    : str_printf ("https://s3.%s.amazonaws.com", region);
  if (endpoint == NULL)
    return err_prefix ("%s", name);
  if (parse_endpoint (endpoint, &scheme_len, &hp_len, &is_ip) == -1)
    return err_set (EINVAL, "%s: endpoint URL \"%.100s\" is not "
                    "http[s]://HOST[:PORT]", name, endpoint);
  hostport = endpoint + scheme_len;
  /* On AWS, a dotted bucket name goes path-style: the wildcard TLS
   * certificate of s3.REGION.amazonaws.com covers one label only.
   */
  virtual = cfg->addressing == STORE_ADDR_VIRTUAL ||
    (cfg->addressing == STORE_ADDR_AUTO && !r2 && !cfg->endpoint_url &&
     !strchr (cfg->bucket, '.'));
  if (virtual && is_ip)
    return err_set (EINVAL, "%s: virtual-hosted addressing needs a host "
                    "name in the endpoint URL, not an address", name);
  c->host = virtual
    ? str_printf ("%s.%.*s", cfg->bucket, (int) hp_len, hostport)
    : str_printf ("%.*s", (int) hp_len, hostport);
  if (c->host == NULL ||
      (c->base = str_printf ("%.*s%s", (int) scheme_len, endpoint,
                             c->host)) == NULL ||
      (c->bucket_path = virtual ? str_printf ("%s", "")
       : str_printf ("/%s", cfg->bucket)) == NULL ||
      (c->key.region = str_printf ("%s", region)) == NULL ||
      (c->st->describe = str_printf ("%s://%s (%.*s, %s)",
                                     r2 ? "r2" : "s3", cfg->bucket,
                                     (int) (scheme_len + hp_len), endpoint,
                                     virtual ? "virtual-hosted"
                                     : "path-style")) == NULL)
    return err_prefix ("%s", name);
  return 0;
}

struct s3_client *
s3_client_open (const struct store_config *cfg, struct store *st)
{
  const char *ak = getenv ("AWS_ACCESS_KEY_ID");
  const char *sk = getenv ("AWS_SECRET_ACCESS_KEY");
  const char *token = getenv ("AWS_SESSION_TOKEN");
  struct s3_client *c = calloc (1, sizeof *c);

  if (c == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  c->st = st;
  if (configure (c, cfg) == -1)
    goto err;
  if (ak == NULL || ak[0] == '\0' || sk == NULL || sk[0] == '\0') {
    err_set (EINVAL, "%s: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must "
             "be set in the environment", st->describe);
    goto err;
  }
  c->key.service = "s3";
  if ((c->key.access_key = str_printf ("%s", ak)) == NULL ||
      (c->key.secret_key = str_printf ("%s", sk)) == NULL ||
      (token && token[0] && (c->token = str_printf ("%s", token)) == NULL)) {
    err_prefix ("%s", st->describe);
    goto err;
  }
  c->retries = cfg->retries;
  c->pool = http_pool_new (cfg->timeout_ms ? cfg->timeout_ms
                           : DEFAULT_TIMEOUT_MS);
  if (c->pool == NULL)
    goto err;
  return c;
 err:
  s3_client_close (c);
  return NULL;
}

void
s3_client_close (struct s3_client *c)
{
  if (c == NULL)
    return;
  http_pool_free (c->pool);
  free (c->base);
  free (c->host);
  free (c->bucket_path);
  free ((char *) c->key.access_key);
  if (c->key.secret_key) {
    OPENSSL_cleanse ((char *) c->key.secret_key, strlen (c->key.secret_key));
    free ((char *) c->key.secret_key);
  }
  free ((char *) c->key.region);
  free (c->token);
  free (c);
}
