/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: requests to an S3-compatible store, signed and retried.
 *
 * store-s3.c maps the store interface onto S3 operations; this module
 * sends one operation: where it goes (endpoint, addressing, bucket), how
 * it is signed (SigV4 with the credentials from the environment), when
 * it is tried again, and which errno and message a failure becomes.
 */
#ifndef LAZYVOL_S3_H
#define LAZYVOL_S3_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "sigv4.h"
#include "store-impl.h"

#define S3_MAX_QUERY 5
#define S3_MAX_HEADERS 3

/* One S3 operation, before signing. */
struct s3_op {
  enum store_op op;             /* what it counts as */
  const char *what;             /* "get KEY [0+4096]", for messages */
  const char *method;
  const char *key;              /* NULL: the bucket itself */
  struct sigv4_pair query[S3_MAX_QUERY];     /* up to a NULL name */
  struct sigv4_pair headers[S3_MAX_HEADERS]; /* likewise; all signed */
  const void *body;             /* NULL: none */
  size_t body_len;
  const char *payload_hash;     /* the body's SHA-256 in lowercase hex,
                                   or NULL: s3_call computes it */
  void *buf;                    /* ranged GET: a 2xx body goes here, */
  size_t buf_len;               /*   exactly BUF_LEN bytes */
  store_stream_fn sink;         /* streamed GET: a 2xx body goes here */
  void *sink_opaque;
  size_t max;                   /* but in BUF, the most a reply may hold */
  bool error_in_body;           /* a 200 may hold an <Error> (Complete) */
};

struct s3_client;

/* A client for store ST, configured by CFG: sets ST's description, and
 * counts every request in ST's counters.  NULL with err_set: EINVAL for
 * a bad bucket, region or endpoint, or missing credentials.
 */
struct s3_client *s3_client_open (const struct store_config *cfg,
                                  struct store *st)
  __attribute__ ((__nonnull__));
/* Close the connections and wipe the secret; NULL is allowed. */
void s3_client_close (struct s3_client *c);
/* Perform OP, trying again what may succeed later (a streamed GET tells
 * its sink to start over first; each try signs OP's headers afresh, so
 * the sink may then change the value of a header it owns, such as a
 * Range, to resume instead).  0 if the final reply is 2xx (free
 * *RESP with http_response_free); the sink's positive return if it
 * stopped; else -1 with err_set and the errno of store.h.
 */
int s3_call (struct s3_client *c, const struct s3_op *op,
             struct http_response *resp)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOL_S3_H */
