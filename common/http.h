/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: a small HTTP client on libcurl, for the S3 backend.
 *
 * One request at a time per call, any number of calls at once: each takes
 * a curl handle from a pool and gives it back, so keep-alive connections
 * are reused.  Replies go to a growing buffer with a cap, straight into
 * the caller's buffer (ranged GETs), or to the caller's function as they
 * arrive (streamed GETs).  The caller signs; this module
 * never logs, and its error messages never hold a URL or a header.
 */
#ifndef LAZYVOL_HTTP_H
#define LAZYVOL_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct http_pool;

/* Receives a 2xx body as it arrives; 0 to go on, or a positive value to
 * stop the transfer (http_send returns it).
 */
typedef int (*http_sink_fn) (void *opaque, const void *buf, size_t len);

struct http_request {
  const char *method;           /* GET, HEAD, PUT, POST, DELETE */
  const char *url;
  const char *const *headers;   /* "Name: value" ..., NULL */
  const void *body;             /* NULL: no body; else BODY_LEN bytes */
  size_t body_len;
  void *buf;                    /* if set, a 2xx body must be exactly */
  size_t buf_len;               /*   BUF_LEN bytes and lands here */
  http_sink_fn sink;            /* else if set, a 2xx body goes here */
  void *sink_opaque;
  size_t max;                   /* the most a 2xx body may hold (not
                                 * with BUF) */
};

struct http_response {
  long status;
  char *body;                   /* malloc'd, NUL-terminated; NULL if none
                                 * or if it went to the request's BUF or
                                 * SINK */
  size_t len;                   /* body bytes received (also after a
                                 * failure) */
  char etag[128];               /* the ETag header, or "" (headers are
                                 * kept as printable ASCII) */
  uint64_t content_length;      /* UINT64_MAX if absent */
  char content_range[96];       /* the Content-Range header, or "" */
};

/* A pool of connections whose requests give up after TIMEOUT_MS
 * milliseconds without progress (or to connect).  NULL with err_set.
 */
struct http_pool *http_pool_new (unsigned timeout_ms);
/* Close every connection and free POOL; NULL is allowed. */
void http_pool_free (struct http_pool *pool);
/* Send REQ and fill *RESP, whatever the HTTP status.  -1 with err_set if
 * no complete reply came: ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH,
 * ECONNRESET (cut off: worth retrying), EFBIG (over MAX), EBADMSG (not
 * BUF_LEN bytes), EIO (anything else, e.g. TLS verification); or the
 * positive value with which the sink stopped the transfer (its error
 * recorded by the sink).
 */
int http_send (struct http_pool *pool, const struct http_request *req,
               struct http_response *resp)
  __attribute__ ((__nonnull__));
/* Free the body of RESP. */
void http_response_free (struct http_response *resp);

#endif /* LAZYVOL_HTTP_H */
