/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: HTTP requests over pooled libcurl handles (see http.h).
 *
 * The pool is a stack of idle handles under pool->lock, each a CURL easy
 * handle and the multi handle that runs it.  A request pops one (or makes
 * one), sets its options, runs the transfer, resets the easy handle and
 * pushes the pair back; the lock is never held during a transfer.  The
 * multi handle keeps the connection cache, so a pair that goes back to
 * the pool carries its keep-alive connection to the next request.  The
 * stack grows to the peak number of concurrent requests.
 *
 * libcurl is initialised once per process (pthread_once) and never
 * cleaned up: other code in the same process (nbdkit, its other plugins)
 * may be using it too.
 *
 * Reply bodies: a 2xx body goes to the caller's buffer (which it must
 * fill exactly), to the caller's sink piece by piece (req->max bytes at
 * most in all), or to a growing buffer limited to req->max; a body with
 * any other status is an error document and goes to the growing buffer,
 * keeping its first ERROR_BODY_MAX bytes, so an error never lands in the
 * caller's data buffer or sink.
 *
 * Every request verifies TLS peers and hosts (libcurl's defaults, never
 * changed), follows no redirects, and gives up after pool->timeout_ms
 * milliseconds to connect or without a byte moving.  That stall timeout
 * is kept by this file's own loop around curl_multi_perform, which wakes
 * up at the deadline: CURLOPT_LOW_SPEED_TIME counts whole seconds, and
 * a progress callback is called only about once a second while nothing
 * moves, so neither could time out a stall of 300 ms in 300 ms.
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
#include "util.h"

#define ERROR_BODY_MAX (64 * 1024)
#define BODY_START 16384
#define SINK_BUFFER (256 * 1024)

/* A transfer handle: EASY, run by MULTI, which keeps its connections. */
struct handle {
  CURL *easy;
  CURLM *multi;
};

struct http_pool {
  pthread_mutex_t lock;         /* protects idle, nidle and cap */
  struct handle *idle;
  size_t nidle, cap;
  unsigned timeout_ms;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_result;

static void
init_curl (void)
{
  init_result = curl_global_init (CURL_GLOBAL_DEFAULT);
}

struct http_pool *
http_pool_new (unsigned timeout_ms)
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
  pool->timeout_ms = timeout_ms;
  return pool;
}

static void
handle_close (struct handle *hd)
{
  curl_multi_cleanup (hd->multi);     /* closes its connections */
  curl_easy_cleanup (hd->easy);
}

void
http_pool_free (struct http_pool *pool)
{
  if (pool == NULL)
    return;
  for (size_t i = 0; i < pool->nidle; i++)
    handle_close (&pool->idle[i]);
  free (pool->idle);
  pthread_mutex_destroy (&pool->lock);
  free (pool);
}

/* An idle handle from the pool, or a new one.  0, or -1 if out of memory. */
static int
pool_take (struct http_pool *pool, struct handle *hd)
{
  {
    LOCK_FOR_SCOPE (&pool->lock);
    if (pool->nidle > 0) {
      *hd = pool->idle[--pool->nidle];
      return 0;
    }
  }
  hd->easy = curl_easy_init ();
  hd->multi = curl_multi_init ();
  if (hd->easy && hd->multi)
    return 0;
  handle_close (hd);
  return -1;
}

/* Return HD to the pool, or close it if the stack cannot grow.  The easy
 * handle's options are reset first, so no pointer into the finished
 * request (its error buffer, its sink) stays in it; the multi handle's
 * connections stay open.
 */
static void
pool_give (struct http_pool *pool, struct handle *hd)
{
  bool kept = false;

  curl_easy_reset (hd->easy);
  {
    LOCK_FOR_SCOPE (&pool->lock);
    if (pool->nidle == pool->cap) {
      size_t cap = pool->cap ? 2 * pool->cap : 8;
      struct handle *idle = realloc (pool->idle, cap * sizeof *idle);
      if (idle) {
        pool->idle = idle;
        pool->cap = cap;
      }
    }
    if (pool->nidle < pool->cap) {
      pool->idle[pool->nidle++] = *hd;
      kept = true;
    }
  }
  if (!kept)
    handle_close (hd);
}

/* Where curl's callbacks put the reply, and why one stopped it. */
struct sink {
  CURL *h;
  const struct http_request *req;
  struct http_response *resp;
  size_t cap;                   /* bytes allocated at resp->body */
  int err;                      /* 0, EFBIG, EBADMSG or ENOMEM */
  int stop;                     /* the sink's, if it stopped the transfer */
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
  else if (ok && req->sink) {
    if (len > req->max - r->len) {
      k->err = EFBIG;
      return 0;
    }
    if ((k->stop = req->sink (req->sink_opaque, data, len)) != 0)
      return 0;
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
setup (CURL *h, unsigned timeout_ms, const struct http_request *req,
       struct curl_slist *headers, struct sink *k, char *errbuf)
{
  curl_easy_setopt (h, CURLOPT_URL, req->url);
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt (h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT_MS, (long) timeout_ms);
  if (req->sink)
    curl_easy_setopt (h, CURLOPT_BUFFERSIZE, (long) SINK_BUFFER);
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

/* Bytes moved so far by the transfer on H: headers and body received,
 * body sent.
 */
static uint64_t
bytes_moved (CURL *h)
{
  curl_off_t down = 0, up = 0;
  long headers = 0;

  curl_easy_getinfo (h, CURLINFO_SIZE_DOWNLOAD_T, &down);
  curl_easy_getinfo (h, CURLINFO_SIZE_UPLOAD_T, &up);
  curl_easy_getinfo (h, CURLINFO_HEADER_SIZE, &headers);
  return (uint64_t) down + (uint64_t) up + (uint64_t) headers;
}

/* Run the transfer set up on HD to its end, or until no byte has moved
 * for TIMEOUT_MS (then *STALLED).  Its result, CURLE_OPERATION_TIMEDOUT
 * when stalled.
 */
static CURLcode
perform (struct handle *hd, unsigned timeout_ms, bool *stalled)
{
  const uint64_t timeout_ns = (uint64_t) timeout_ms * 1000000;
  uint64_t moved = 0, last = time_mono_ns (), now;
  CURLcode result = CURLE_FAILED_INIT;
  CURLMsg *msg;
  int running, left;

  *stalled = false;
  if (curl_multi_add_handle (hd->multi, hd->easy) != CURLM_OK)
    return CURLE_OUT_OF_MEMORY;
  while (curl_multi_perform (hd->multi, &running) == CURLM_OK && running) {
    uint64_t m = bytes_moved (hd->easy);
    now = time_mono_ns ();
    if (m != moved) {
      moved = m;
      last = now;
    }
    else if (now - last >= timeout_ns) {
      *stalled = true;
      result = CURLE_OPERATION_TIMEDOUT;
      break;
    }
    /* Wakes up at socket activity, curl's own timers, or the deadline. */
    if (curl_multi_poll (hd->multi, NULL, 0,
                         (timeout_ns - (now - last) + 999999) / 1000000,
                         NULL) != CURLM_OK)
      break;
  }
  while ((msg = curl_multi_info_read (hd->multi, &left)) != NULL)
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == hd->easy)
      result = msg->data.result;
  curl_multi_remove_handle (hd->multi, hd->easy);
  return result;
}

int
http_send (struct http_pool *pool, const struct http_request *req,
           struct http_response *resp)
{
  struct sink k = { .req = req, .resp = resp };
  struct curl_slist *headers;
  char errbuf[CURL_ERROR_SIZE] = "";
  struct handle hd;
  bool stalled;
  CURLcode c;
  int r = -1;

  memset (resp, 0, sizeof *resp);
  resp->content_length = UINT64_MAX;
  if (pool_take (pool, &hd) == -1)
    return err_set (ENOMEM, "cannot create a curl handle");
  k.h = hd.easy;
  headers = header_list (req->headers);
  if (headers == NULL) {
    err_set (ENOMEM, "out of memory for request headers");
    goto out;
  }
  setup (k.h, pool->timeout_ms, req, headers, &k, errbuf);
  c = perform (&hd, pool->timeout_ms, &stalled);
  curl_easy_getinfo (k.h, CURLINFO_RESPONSE_CODE, &resp->status);
  if (c == CURLE_WRITE_ERROR && k.stop)
    r = k.stop;                 /* the sink said why */
  else if (stalled)
    err_set (ETIMEDOUT, "%m (no progress for %u ms)", pool->timeout_ms);
  else if (c == CURLE_WRITE_ERROR && k.err == EFBIG)
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
  pool_give (pool, &hd);
  if (r != 0)
    http_response_free (resp);
  return r;
}

void
http_response_free (struct http_response *resp)
{
  free (resp->body);
  resp->body = NULL;
}
