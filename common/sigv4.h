/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: AWS Signature Version 4, as pure functions (no network).
 *
 * The caller lists every header it will send (they are all signed, so
 * what travels is what was signed) and the raw, unencoded path and query
 * parameters.  sigv4_uri_encode() and sigv4_canonical_query() produce the
 * encoded forms, which are also what the caller puts in the URL: the bytes
 * on the wire and the bytes signed come from the same function.  If
 * memory runs out they fail with err_set (ENOMEM), like any other error.
 */
#ifndef LAZYVOL_SIGV4_H
#define LAZYVOL_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* A header or a query parameter, unencoded. */
struct sigv4_pair {
  const char *name;
  const char *value;
};

/* One request to sign. */
struct sigv4_request {
  const char *method;                  /* "GET", "PUT", ... */
  const char *path;                    /* unencoded, starts with "/" */
  const struct sigv4_pair *query;      /* in any order */
  size_t nquery;
  const struct sigv4_pair *headers;    /* must include Host and X-Amz-Date */
  size_t nheaders;
  const char *payload_hash;            /* lowercase hex SHA-256 of the body */
};

/* Who signs, and for what scope. */
struct sigv4_key {
  const char *access_key;
  const char *secret_key;
  const char *region;
  const char *service;                 /* "s3" */
};

/* The stages of a signature; each string is malloc'd. */
struct sigv4_signature {
  char *canonical_request;
  char *string_to_sign;
  char *authorization;                 /* the Authorization header's value */
};

/* URI-encode S the AWS way: only A-Z a-z 0-9 - _ . ~ stay, and "/" if
 * KEEP_SLASH; every other byte becomes %XX.  Returns a malloc'd string,
 * or NULL with err_set (ENOMEM).
 */
char *sigv4_uri_encode (const char *s, bool keep_slash)
  __attribute__ ((__nonnull__));
/* The canonical query string of N parameters: each name and value
 * encoded, sorted by name then value, joined with "&".  Malloc'd, or NULL
 * with err_set (ENOMEM).
 */
char *sigv4_canonical_query (const struct sigv4_pair *query, size_t n);
/* Sign REQ with KEY into *OUT.  -1 with err_set, and nothing in *OUT to
 * free: EINVAL if a header is malformed or X-Amz-Date is missing, ENOMEM
 * if out of memory.
 */
int sigv4_sign (const struct sigv4_request *req, const struct sigv4_key *key,
                struct sigv4_signature *out)
  __attribute__ ((__nonnull__));
/* Free the strings of SIG. */
void sigv4_signature_free (struct sigv4_signature *sig);
/* Lowercase hex SHA-256 of LEN bytes at DATA into OUT.  0, or -1 with
 * err_set (ENOMEM) if libcrypto cannot allocate.
 */
int sigv4_sha256_hex (const void *data, size_t len, char out[65]);
/* T as an X-Amz-Date, "20150830T123600Z", into OUT. */
void sigv4_amz_date (time_t t, char out[17]);

#endif /* LAZYVOL_SIGV4_H */
