/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: what a store backend implements (private to common/store*.c).
 *
 * store.c owns the public functions: it validates arguments, counts
 * requests and bytes, and dispatches to these operations.  A backend
 * reports errors with err_set() using the errno values listed in store.h.
 */
#ifndef LAZYVOL_STORE_IMPL_H
#define LAZYVOL_STORE_IMPL_H

#include <stdatomic.h>

#include "store.h"

struct store_ops {
  bool wants_sha256;            /* see store_wants_sha256 */
  int (*get) (struct store *, const char *key, size_t max,
              char **data, size_t *len, struct store_obj *info);
  int (*get_stream) (struct store *, const char *key, size_t max,
                     store_stream_fn fn, void *opaque,
                     struct store_obj *info);
  int (*get_range_stream) (struct store *, const char *key,
                           uint64_t offset, size_t len,
                           store_stream_fn fn, void *opaque);
  int (*head) (struct store *, const char *key, struct store_obj *info);
  int (*put) (struct store *, const char *key, const void *data, size_t len,
              enum store_cond cond, const char *etag, struct store_obj *info);
  int (*delete) (struct store *, const char *key);
  int (*list) (struct store *, const char *prefix, const char *delimiter,
               store_list_fn fn, void *opaque);
  /* NULL where an unfinished put leaves nothing behind (S3, R2). */
  int (*sweep_temps) (struct store *, const char *prefix);
  struct store_upload *(*upload_begin) (struct store *, const char *key);
  int (*upload_part) (struct store_upload *, unsigned partno,
                      uint64_t offset, const void *data, size_t len,
                      const unsigned char *sha256);
  int (*upload_complete) (struct store_upload *);
  void (*upload_abort) (struct store_upload *);
  int (*upload_abort_id) (struct store *, const char *key, const char *id);
  int (*list_uploads) (struct store *, const char *prefix,
                       store_uploads_fn fn, void *opaque);
  void (*close) (struct store *);
};

/* Counters, updated with relaxed atomics from any thread. */
struct store_counters {
  _Atomic uint64_t requests, bytes_in, bytes_out;
  _Atomic uint64_t range_gets, range_get_ns;
  _Atomic uint64_t range_get_buckets[STORE_LATENCY_BUCKETS];
  _Atomic uint64_t retries[STORE_OPS][STORE_WHYS];
  _Atomic uint64_t errors[STORE_OPS][STORE_WHYS];
};

/* The common head of every backend's store; backends embed it first. */
struct store {
  const struct store_ops *ops;
  char *describe;
  struct store_counters stats;
};

/* The common head of every backend's upload; backends embed it first. */
struct store_upload {
  struct store *st;
  char *key;
  char *id;
};

/* Open a file-backed store rooted at directory CFG->bucket. */
struct store *store_file_open (const struct store_config *cfg);
/* Open an S3 (or R2) store. */
struct store *store_s3_open (const struct store_config *cfg);

/* A backend that knows better than errno why an operation failed (an
 * S3 503 after every retry is "throttled", where EIO would say
 * "io_error") says so just before returning -1; store.c counts the
 * failure under that reason.  Per thread.
 */
void store_fail_why (enum store_why why);

/* Count TRIES requests sent for one operation and its payload bytes in
 * and out (failures are counted by store.c, retries by store_count_retry).
 */
void store_count (struct store *st, unsigned tries,
                  uint64_t bytes_in, uint64_t bytes_out);

#endif /* LAZYVOL_STORE_IMPL_H */
