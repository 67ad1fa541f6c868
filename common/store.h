/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: one small interface for object stores.
 *
 * Backends: "file" (a local directory is the bucket; key K is the file
 * DIR/K), "s3" (any S3-compatible endpoint, SigV4 over libcurl) and "r2"
 * (s3 with Cloudflare's endpoint, region "auto", path-style).
 *
 * Every function is safe to call from many threads at once on one store.
 * Errors are reported with err_set() and these errno values, which callers
 * rely on:
 *   ENOENT        the object does not exist (404)
 *   ESTALE        a conditional write's precondition failed (412, 409)
 *   ENOTSUP       the store cannot evaluate that condition (501)
 *   EACCES        the store refused our credentials or signature (403)
 *   EBADMSG       the store's reply was malformed or short
 *   ELOOP         the file store met a symbolic link on the key's path
 *   ENOSPC        the file store's disk is full
 *   EFBIG         the object is larger than the caller's limit
 *   ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH   the store is unreachable
 *   EIO           any other failure (5xx after all retries, ...)
 * Messages name the key and the cause, never a credential.
 */
#ifndef LAZYVOL_STORE_H
#define LAZYVOL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_backend { STORE_FILE, STORE_S3, STORE_R2 };
enum store_addressing { STORE_ADDR_AUTO, STORE_ADDR_PATH, STORE_ADDR_VIRTUAL };

struct store_config {
  enum store_backend backend;
  const char *bucket;           /* file: a directory; s3/r2: bucket name */
  const char *endpoint_url;     /* s3/r2: optional, http://127.0.0.1:8080 */
  const char *region;           /* s3: default us-east-1; r2: auto */
  const char *r2_account_id;    /* r2: derives the endpoint */
  enum store_addressing addressing; /* auto: virtual on AWS, else path */
  unsigned retries;             /* tries after the first (default 5) */
  unsigned timeout_ms;          /* milliseconds without progress, or to
                                 * connect (default 30000) */
  unsigned file_mode;           /* file: mode of new objects (default 0600;
                                 * directories get x where r is set) */
};

/* Is KEY (or, with IS_PREFIX, a listing prefix) a valid object key:
 * relative, at most 1024 bytes, printable ASCII, no empty, "." or ".."
 * segment?
 */
bool store_key_valid (const char *key, bool is_prefix);
/* Parse "file", "s3" or "r2"; -1 if unknown. */
int store_parse_backend (const char *name);
/* Parse a timeout for store_config.timeout_ms: "1500ms", "2s" or a bare
 * number of seconds ("30"), from 1 ms to 1 hour, into *MS.  False if S is
 * not one.
 */
bool store_parse_timeout (const char *s, unsigned *ms)
  __attribute__ ((__nonnull__));
/* The name of a backend ("file", "s3", "r2"). */
const char *store_backend_name (enum store_backend backend);

struct store;

/* Open a store; credentials for s3/r2 come only from AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.  NULL with err_set.
 */
struct store *store_open (const struct store_config *cfg)
  __attribute__ ((__nonnull__ (1)));
/* Close a store and free it; NULL is allowed. */
void store_close (struct store *st);
/* A short human description for logs, e.g. "s3://bucket (http://…)". */
const char *store_describe (const struct store *st);

/* What HEAD, GET and PUT tell about an object. */
struct store_obj {
  uint64_t size;
  char etag[128];               /* opaque; changes whenever the object does */
};

/* Fetch a whole object of at most MAX bytes into a malloc'd, NUL-terminated
 * buffer *DATA of *LEN bytes; INFO may be NULL.  0 or -1.
 */
int store_get (struct store *st, const char *key, size_t max,
               char **data, size_t *len, struct store_obj *info);
/* Receives the body of an object from store_get_stream as it arrives,
 * LEN bytes at BUF a call.  BUF NULL (and LEN 0) means that the fetch
 * starts over (a try failed part way and the store tries again): forget
 * every byte received so far.  0 to go on, or a positive value to stop
 * the fetch, which store_get_stream then returns.
 */
typedef int (*store_stream_fn) (void *opaque, const void *buf, size_t len);
/* Fetch a whole object of at most MAX bytes, handing its body to FN in
 * pieces as it arrives (up to STORE_STREAM_PIECE bytes each from the file
 * store; as the network delivers it from S3), never holding all of it;
 * INFO may be NULL.  0, -1 (the store failed, counted as a failure of
 * a get), or FN's positive return (not the store's failure; the error
 * is whatever FN recorded).
 */
#define STORE_STREAM_PIECE (256 * 1024)
int store_get_stream (struct store *st, const char *key, size_t max,
                      store_stream_fn fn, void *opaque,
                      struct store_obj *info)
  __attribute__ ((__nonnull__ (1, 2, 4)));
/* Fetch exactly LEN bytes at OFFSET of KEY into BUF (a ranged GET).
 * An object that ends early is EBADMSG.  0 or -1.
 */
int store_get_range (struct store *st, const char *key,
                     uint64_t offset, size_t len, void *buf);
/* Fetch LEN bytes at OFFSET of KEY (a ranged GET), handing them to FN in
 * pieces as they arrive, in order; FN is never told to start over: a
 * try that fails part way is resumed from the first byte FN has not
 * had, so FN sees each byte once.  An object that ends early is
 * EBADMSG.  0, -1 (counted as a failure of a ranged get), or FN's
 * positive return (its error is whatever FN recorded).
 */
int store_get_range_stream (struct store *st, const char *key,
                            uint64_t offset, size_t len,
                            store_stream_fn fn, void *opaque)
  __attribute__ ((__nonnull__ (1, 2, 5)));
/* Size and etag of KEY.  0, or -1 (ENOENT if missing). */
int store_head (struct store *st, const char *key, struct store_obj *info);

/* Preconditions for store_put. */
enum store_cond { STORE_PUT_ANY, STORE_PUT_IF_ABSENT, STORE_PUT_IF_MATCH };

/* Store DATA as KEY atomically: readers see the old or the new object,
 * never a part.  IF_ABSENT fails with ESTALE if KEY exists; IF_MATCH fails
 * with ESTALE unless KEY's etag is ETAG.  ENOTSUP if the store cannot check
 * the condition (then nothing was written).  INFO (may be NULL) receives
 * the new object's etag.  0 or -1.
 */
int store_put (struct store *st, const char *key,
               const void *data, size_t len,
               enum store_cond cond, const char *etag,
               struct store_obj *info);
/* Delete KEY; a missing key is success.  0 or -1. */
int store_delete (struct store *st, const char *key);

/* Called by store_list for each key (IS_PREFIX false) or, with a
 * delimiter, each common prefix ending in the delimiter (IS_PREFIX true).
 * A non-zero return stops the listing and is returned by store_list.
 */
typedef int (*store_list_fn) (void *opaque, const char *key, uint64_t size,
                              bool is_prefix);
/* List keys starting with PREFIX in lexical order, all pages.  DELIMITER
 * may be NULL or "/".  0, -1, or the callback's non-zero return.
 */
int store_list (struct store *st, const char *prefix, const char *delimiter,
                store_list_fn fn, void *opaque);
/* Remove temporary objects under PREFIX whose writer is gone (file store;
 * a no-op that returns 0 on S3/R2, where an unfinished put leaves
 * nothing).  0 or -1.
 */
int store_sweep_temps (struct store *st, const char *prefix);

/* Multipart upload of a large object.  Parts are numbered from 1, are
 * at least STORE_PART_MIN bytes except the last, and may be uploaded from
 * several threads at once.  The object appears only at complete.
 */
#define STORE_PART_MIN (5 * 1024 * 1024)
#define STORE_PART_MAX_COUNT 10000
/* The largest object S3 stores (R2's limit too). */
#define STORE_OBJECT_MAX (UINT64_C (5) << 40)

/* The largest object lazyvol writes to any store, STORE_OBJECT_MAX (so
 * that a directory store's objects can be copied to S3), or less if the
 * environment variable LAZYVOL_TEST_OBJECT_MAX sets it: tests split
 * blobs with it on a small disk.
 */
uint64_t store_object_max (void);
struct store_upload;

/* Start a multipart upload of KEY.  NULL with err_set. */
struct store_upload *store_upload_begin (struct store *st, const char *key);
/* The upload's id, to record in a journal and abort after a crash. */
const char *store_upload_id (const struct store_upload *up);
/* Does the store check a SHA-256 of every part (S3 and R2 sign one)?
 * A caller that reads a part's bytes anyway can then hash them in the
 * same pass and give the hash to store_upload_part.
 */
bool store_wants_sha256 (const struct store *st) __attribute__ ((__nonnull__));
/* Upload part PARTNO, which holds bytes [OFFSET, OFFSET+LEN) of the object.
 * SHA256 is the SHA-256 of those bytes, or NULL: a store that wants one
 * (store_wants_sha256) then computes it.  A wrong one fails the part.
 */
int store_upload_part (struct store_upload *up, unsigned partno,
                       uint64_t offset, const void *data, size_t len,
                       const unsigned char *sha256);
/* Assemble the parts into the object and free UP.  0 or -1 (UP freed,
 * the upload aborted).
 */
int store_upload_complete (struct store_upload *up);
/* Abandon the upload and free UP; NULL is allowed. */
void store_upload_abort (struct store_upload *up);
/* Abandon an upload known only by KEY and id (from a journal).  0 or -1. */
int store_upload_abort_id (struct store *st, const char *key,
                           const char *upload_id);
/* Called by store_list_uploads for each multipart upload in progress
 * (begun, neither completed nor aborted): its KEY, its ID (for
 * store_upload_abort_id), and when it was INITIATED, in milliseconds
 * since the epoch by the store's clock (the file store: when its
 * temporary file was last written, never before it began).  A non-zero
 * return stops the listing and is returned by store_list_uploads.
 */
typedef int (*store_uploads_fn) (void *opaque, const char *key,
                                 const char *id, uint64_t initiated_ms);
/* List the uploads in progress whose keys start with PREFIX, all pages,
 * in no promised order.  0, -1, or the callback's non-zero return.
 */
int store_list_uploads (struct store *st, const char *prefix,
                        store_uploads_fn fn, void *opaque)
  __attribute__ ((__nonnull__ (1, 2, 3)));

/* Counting.  An operation is one call of the functions above; it may
 * send several requests (retries).  store_get_stream counts as a get,
 * store_list_uploads as a list.  A failure is an operation that failed
 * after its retries.  A missing object (ENOENT), a failed
 * condition (ESTALE) and a condition the store cannot evaluate (ENOTSUP,
 * after which the caller falls back) are answers, not failures; an
 * invalid key sends nothing.
 */
enum store_op {
  STORE_OP_GET, STORE_OP_GET_RANGE, STORE_OP_HEAD, STORE_OP_PUT,
  STORE_OP_DELETE, STORE_OP_LIST, STORE_OP_UPLOAD, STORE_OPS
};
/* Why a try or an operation failed. */
enum store_why {
  STORE_WHY_SERVER,             /* 5xx */
  STORE_WHY_THROTTLED,          /* 429 or 503: slow down */
  STORE_WHY_TIMEOUT,            /* no progress for the timeout */
  STORE_WHY_UNREACHABLE,        /* refused, no route, no such host */
  STORE_WHY_CUT_OFF,            /* the connection broke mid-reply */
  STORE_WHY_CORRUPT,            /* the body failed its check (SHA-256) */
  STORE_WHY_DENIED,             /* 403: credentials or signature */
  STORE_WHY_BAD_REPLY,          /* malformed or short reply, or (file
                                   store) not an object: a link */
  STORE_WHY_NO_SPACE,           /* the store (or file system) is full */
  STORE_WHY_NOT_SUPPORTED,      /* 501 */
  STORE_WHY_TOO_LARGE,          /* over the caller's limit */
  STORE_WHY_IO,                 /* other failures: 5xx after retries, disk */
  STORE_WHYS
};

/* The label of an operation ("get_range") or of a reason ("timeout"). */
const char *store_op_name (enum store_op op);
const char *store_why_name (enum store_why why);
/* The reason a failure with errno E falls under. */
enum store_why store_why_of_errno (int e);
/* Count a try of OP that failed for WHY and is tried again. */
void store_count_retry (struct store *st, enum store_op op,
                        enum store_why why) __attribute__ ((__nonnull__));
/* Count a failure of OP for WHY that the caller detected itself (the
 * store's own failures are counted by the store).
 */
void store_count_failure (struct store *st, enum store_op op,
                          enum store_why why) __attribute__ ((__nonnull__));

/* The upper bounds of the latency buckets of ranged GETs, in ns (the
 * last bucket, above them all, has none).
 */
#define STORE_LATENCY_BOUNDS_NS \
  { 1000000, 5000000, 10000000, 25000000, 50000000, 100000000, 250000000, \
    500000000, 1000000000, 2500000000, 5000000000, 10000000000 }
#define STORE_LATENCY_BUCKETS 13

/* Counters for metrics; every field only grows. */
struct store_stats {
  uint64_t requests;            /* every request sent, retries included */
  uint64_t bytes_in;            /* payload bytes received */
  uint64_t bytes_out;           /* payload bytes sent */
  uint64_t range_gets;          /* store_get_range calls that succeeded */
  uint64_t range_get_ns;        /* their total latency */
  /* How many took at most each bound of STORE_LATENCY_BOUNDS_NS and
   * above the one before; the last above them all.
   */
  uint64_t range_get_buckets[STORE_LATENCY_BUCKETS];
  uint64_t retries[STORE_OPS][STORE_WHYS];
  uint64_t errors[STORE_OPS][STORE_WHYS];       /* failures, see above */
};

/* Copy the store's counters into *OUT. */
void store_get_stats (const struct store *st, struct store_stats *out);

#endif /* LAZYVOL_STORE_H */
