/* lazyvol: HTTP requests over pooled libcurl handles (see http.h).
 *
 * The pool is a stack of idle CURL easy handles under pool->lock.  A
 * request pops one (or makes one), sets its options, performs, resets
 * it and pushes it back; the lock is never held during a transfer.  A handle
 * keeps its connection cache across curl_easy_reset, so a handle that
 * goes back to the pool carries its keep-alive connection to the next
 * request.  The stack grows to the peak number of concurrent requests.
 *
 * libcurl is initialised once per process (pthread_once) and never
 * cleaned up: other code in the same process (nbdkit, its other plugins)
 * may be using it too.
 *
 * Reply bodies: a 2xx body goes to the caller's buffer (which it must
 * fill exactly) or to a growing buffer limited to req->max; a body with
 * any other status is an error document and goes to the growing buffer,
 * keeping its first ERROR_BODY_MAX bytes, so an error never lands in the
 * caller's data buffer.
 *
 * Every request verifies TLS peers and hosts (libcurl's defaults, never
 * changed), follows no redirects, and gives up after pool->timeout
 * seconds to connect or without a byte moving.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "err.h"
#include "http.h"
#include "lock.h"

#define ERROR_BODY_MAX (64 * 1024)
#define BODY_START 16384

struct http_pool {
  pthread_mutex_t lock;         /* protects idle, nidle and cap */
  CURL **idle;
  size_t nidle, cap;
  long timeout;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_result;

static void
init_curl (void)
{
  init_result = curl_global_init (CURL_GLOBAL_DEFAULT);
}

struct http_pool *
http_pool_new (unsigned timeout)
{
  struct http_pool *pool;

  pthread_once (&init_once, init_curl);
  if (init_result != CURLE_OK) {
    err_set (EIO, "libcurl initialisation failed: %s",
             curl_easy_strerror (init_result));
    return NULL;
  }
  pool = calloc (1, sizeof *pool);
  if (pool == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  pthread_mutex_init (&pool->lock, NULL);
  pool->timeout = timeout;
  return pool;
}

void
http_pool_free (struct http_pool *pool)
{
  if (pool == NULL)
    return;
  for (size_t i = 0; i < pool->nidle; i++)
    curl_easy_cleanup (pool->idle[i]);
  free (pool->idle);
  pthread_mutex_destroy (&pool->lock);
  free (pool);
}

static CURL *
pool_take (struct http_pool *pool)
{
  CURL *h = NULL;

  {
    LOCK_FOR_SCOPE (&pool->lock);
    if (pool->nidle > 0)
      h = pool->idle[--pool->nidle];
  }
  return h ? h : curl_easy_init ();
}

/* Return H to the pool, or close it if the stack cannot grow.  Its
 * options are reset first, so no pointer into the finished request (its
 * error buffer, its sink) stays in it; its connections stay open.
 */
static void
pool_give (struct http_pool *pool, CURL *h)
{
  curl_easy_reset (h);
  {
    LOCK_FOR_SCOPE (&pool->lock);
    if (pool->nidle == pool->cap) {
      size_t cap = pool->cap ? 2 * pool->cap : 8;
      CURL **idle = realloc (pool->idle, cap * sizeof *idle);
      if (idle) {
        pool->idle = idle;
        pool->cap = cap;
      }
    }
    if (pool->nidle < pool->cap) {
      pool->idle[pool->nidle++] = h;
      h = NULL;
    }
  }
  if (h)
    curl_easy_cleanup (h);
}

/* Where curl's callbacks put the reply, and why one stopped it. */
struct sink {
  CURL *h;
  const struct http_request *req;
  struct http_response *resp;
  size_t cap;                   /* bytes allocated at resp->body */
  int err;                      /* 0, EFBIG, EBADMSG or ENOMEM */
};

/* Make room for LEN more bytes (plus a NUL) in the growing body, up to
 * MAX bytes in all.  False if that would pass MAX or memory ran out.
 */
static bool
sink_grow (struct sink *k, size_t len, size_t max)
{
  struct http_response *r = k->resp;
  size_t want = r->len + len, cap = k->cap;
  size_t limit = max < SIZE_MAX ? max + 1 : SIZE_MAX;
  char *p;

  if (len > max - r->len)
    return false;
  if (want < cap)
    return true;
  if (cap == 0)                 /* the size announced, if believable */
    cap = r->content_length < max ? r->content_length + 1 : BODY_START;
  while (cap <= want && cap < limit)
    cap = cap > limit / 2 ? limit : 2 * cap;
  if (cap > limit)
    cap = limit;
  p = realloc (r->body, cap);
  if (p == NULL) {
    k->err = ENOMEM;
    return false;
  }
  r->body = p;
  k->cap = cap;
  return true;
}

static size_t
on_body (char *data, size_t size, size_t n, void *opaque)
{
  struct sink *k = opaque;
  struct http_response *r = k->resp;
  const struct http_request *req = k->req;
  size_t len = size * n;
  long status = 0;
  bool ok;

  curl_easy_getinfo (k->h, CURLINFO_RESPONSE_CODE, &status);
  ok = status >= 200 && status < 300;
  if (ok && req->buf) {
    if (len > req->buf_len - r->len) {
      k->err = EBADMSG;
      return 0;
    }
    memcpy ((char *) req->buf + r->len, data, len);
  }
  else if (sink_grow (k, len, ok ? req->max : ERROR_BODY_MAX)) {
    memcpy (r->body + r->len, data, len);
    r->body[r->len + len] = '\0';
  }
  else if (!ok && k->err == 0)
    return len;                 /* the tail of a long error document */
  else {
    k->err = k->err ? k->err : EFBIG;
    return 0;
  }
  r->len += len;
  return len;
}

/* Copy the value of header line LINE into OUT if its name is NAME,
 * trimmed, truncated, and with anything but printable ASCII as '?'.
 */
static bool
header_value (const char *line, size_t len, const char *name,
              char *out, size_t outsize)
{
  size_t n = strlen (name);

  if (len <= n || line[n] != ':' || strncasecmp (line, name, n) != 0)
    return false;
  line += n + 1;
  len -= n + 1;
  while (len > 0 && (*line == ' ' || *line == '\t'))
    line++, len--;
  while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n' ||
                     line[len - 1] == ' ' || line[len - 1] == '\t'))
    len--;
  if (len >= outsize)
    len = outsize - 1;
  for (size_t i = 0; i < len; i++)
    out[i] = line[i] >= ' ' && line[i] <= '~' ? line[i] : '?';
  out[len] = '\0';
  return true;
}

static size_t
on_header (char *line, size_t size, size_t n, void *opaque)
{
  struct http_response *r = ((struct sink *) opaque)->resp;
  size_t len = size * n;
  char num[32];

  /* A status line starts a new reply (after "100 Continue"). */
  if (len >= 5 && memcmp (line, "HTTP/", 5) == 0) {
    r->etag[0] = r->content_range[0] = '\0';
    r->content_length = UINT64_MAX;
  }
  else if (header_value (line, len, "content-length", num, sizeof num)) {
    char *end;
    errno = 0;
    r->content_length = strtoull (num, &end, 10);
    if (errno || end == num || *end || num[0] == '-')
      r->content_length = UINT64_MAX;
  }
  else if (!header_value (line, len, "etag", r->etag, sizeof r->etag))
    header_value (line, len, "content-range", r->content_range,
                  sizeof r->content_range);
  return len;
}

/* The errno for a transfer that failed with C. */
static int
transfer_errno (CURL *h, CURLcode c)
{
  long os = 0;

  switch (c) {
  case CURLE_COULDNT_CONNECT:
    curl_easy_getinfo (h, CURLINFO_OS_ERRNO, &os);
    return os == EHOSTUNREACH || os == ENETUNREACH || os == ETIMEDOUT
      ? (int) os : ECONNREFUSED;
  case CURLE_OPERATION_TIMEDOUT:
    return ETIMEDOUT;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return EHOSTUNREACH;
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
    return ECONNRESET;
  default:
    return EIO;
  }
}

/* HEADERS as a curl list, plus "Expect:" to drop the 100-continue round
 * trip curl would add to every large PUT.  NULL if out of memory.
 */
static struct curl_slist *
header_list (const char *const *headers)
{
  struct curl_slist *list = NULL, *l;

  for (size_t i = 0; ; i++) {
    l = curl_slist_append (list, headers[i] ? headers[i] : "Expect:");
    if (l == NULL) {
      curl_slist_free_all (list);
      return NULL;
    }
    list = l;
    if (headers[i] == NULL)
      return list;
  }
}

/* Set the options of the fresh or reset handle H for REQ; HEADERS is
 * the list to send.
 */
static void
setup (CURL *h, long timeout, const struct http_request *req,
       struct curl_slist *headers, struct sink *k, char *errbuf)
{
  curl_easy_setopt (h, CURLOPT_URL, req->url);
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt (h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT, timeout);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_TIME, timeout);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, k);
  curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (h, CURLOPT_HEADERDATA, k);
  if (strcmp (req->method, "HEAD") == 0)
    curl_easy_setopt (h, CURLOPT_NOBODY, 1L);
  else if (strcmp (req->method, "GET") != 0)
    curl_easy_setopt (h, CURLOPT_CUSTOMREQUEST, req->method);
  if (req->body) {
    /* Not copied: the caller's buffer outlives the transfer. */
    curl_easy_setopt (h, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt (h, CURLOPT_POSTFIELDSIZE_LARGE,
                      (curl_off_t) req->body_len);
  }
}

int
http_send (struct http_pool *pool, const struct http_request *req,
           struct http_response *resp)
{
  struct sink k = { .req = req, .resp = resp };
  struct curl_slist *headers;
  char errbuf[CURL_ERROR_SIZE] = "";
  CURLcode c;
  int r = -1;

  memset (resp, 0, sizeof *resp);
  resp->content_length = UINT64_MAX;
  k.h = pool_take (pool);
  if (k.h == NULL)
    return err_set (ENOMEM, "cannot create a curl handle");
  headers = header_list (req->headers);
  if (headers == NULL) {
    err_set (ENOMEM, "out of memory for request headers");
    goto out;
  }
  setup (k.h, pool->timeout, req, headers, &k, errbuf);
  c = curl_easy_perform (k.h);
  curl_easy_getinfo (k.h, CURLINFO_RESPONSE_CODE, &resp->status);
  if (c == CURLE_WRITE_ERROR && k.err == EFBIG)
    err_set (EFBIG, "reply larger than the limit of %zu bytes", req->max);
  else if (c == CURLE_WRITE_ERROR && k.err == EBADMSG)
    err_set (EBADMSG, "reply longer than the %zu bytes asked for",
             req->buf_len);
  else if (c == CURLE_WRITE_ERROR && k.err == ENOMEM)
    err_set (ENOMEM, "out of memory for the reply");
  else if (c != CURLE_OK) {
    int e = transfer_errno (k.h, c);
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror (c);
    if (e == EIO)
      err_set (e, "%s", why);
    else
      err_set (e, "%m (%s)", why);
  }
  else if (req->buf && resp->status >= 200 && resp->status < 300 &&
           resp->len != req->buf_len)
    err_set (EBADMSG, "reply has %zu of the %zu bytes asked for",
             resp->len, req->buf_len);
  else
    r = 0;
 out:
  curl_slist_free_all (headers);
  pool_give (pool, k.h);
  if (r == -1)
    http_response_free (resp);
  return r;
}

void
http_response_free (struct http_response *resp)
{
  free (resp->body);
  resp->body = NULL;
}
