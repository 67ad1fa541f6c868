/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the public face of the object stores (see store.h).
 *
 * This file checks what every backend would otherwise check again (keys
 * are relative, bounded and free of "..", control characters and empty
 * segments), keeps the metrics counters, and dispatches to the backend's
 * store_ops.  Keys are built by lazyvol from validated ids, so a key that
 * fails here is a bug or a hostile manifest, and is refused with EINVAL.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store-impl.h"
#include "util.h"

#define KEY_MAX 1024

int
store_parse_backend (const char *name)
{
  if (strcmp (name, "file") == 0) return STORE_FILE;
  if (strcmp (name, "s3") == 0) return STORE_S3;
  if (strcmp (name, "r2") == 0) return STORE_R2;
  return -1;
}

bool
store_parse_timeout (const char *s, unsigned *ms)
{
  unsigned long long n;
  char *end;

  if (*s < '0' || *s > '9')
    return false;
  errno = 0;
  n = strtoull (s, &end, 10);
  if (errno)
    return false;
  if (*end == '\0' || strcmp (end, "s") == 0)
    n = n <= 3600 ? n * 1000 : 0;       /* seconds */
  else if (strcmp (end, "ms") != 0)
    return false;
  if (n < 1 || n > 3600 * 1000)
    return false;
  *ms = n;
  return true;
}

const char *
store_backend_name (enum store_backend backend)
{
  switch (backend) {
  case STORE_FILE: return "file";
  case STORE_S3: return "s3";
  case STORE_R2: return "r2";
  }
  abort ();
}

/* A key or prefix is relative, at most KEY_MAX bytes, printable ASCII, and
 * has no empty, "." or ".." segment.  A prefix may end with "/" or be "".
 */
bool
store_key_valid (const char *key, bool is_prefix)
{
  const char *seg = key;
  size_t n = strlen (key);

  if ((n == 0 && !is_prefix) || n > KEY_MAX || key[0] == '/')
    return false;
  for (const char *p = key; ; p++) {
    if (*p == '/' || *p == '\0') {
      size_t len = p - seg;
      if ((len == 0 && !(*p == '\0' && (is_prefix || p == key))) ||
          (len == 1 && seg[0] == '.') ||
          (len == 2 && seg[0] == '.' && seg[1] == '.'))
        return false;
      if (*p == '\0')
        break;
      seg = p + 1;
    }
    else if (*p <= ' ' || *p > '~' || *p == '\\')
      return false;
  }
  return true;
}

static int
check_key (const char *key, bool is_prefix)
{
  if (!store_key_valid (key, is_prefix))
    return err_set (EINVAL, "invalid object key \"%.100s\"", key);
  return 0;
}

struct store *
store_open (const struct store_config *cfg)
{
  if (cfg->bucket == NULL || cfg->bucket[0] == '\0') {
    err_set (EINVAL, "no bucket given");
    return NULL;
  }
  switch (cfg->backend) {
  case STORE_FILE:
    return store_file_open (cfg);
  case STORE_S3:
  case STORE_R2:
    return store_s3_open (cfg);
  }
  err_set (EINVAL, "unknown storage backend");
  return NULL;
}

uint64_t
store_object_max (void)
{
  const char *s = getenv ("LAZYVOL_TEST_OBJECT_MAX");
  uint64_t max;

  if (s && parse_size (s, &max) && max > 0 && max < STORE_OBJECT_MAX)
    return max;
  return STORE_OBJECT_MAX;
}

void
store_close (struct store *st)
{
  if (st)
    st->ops->close (st);
}

const char *
store_describe (const struct store *st)
{
  return st->describe;
}

static void
add (_Atomic uint64_t *counter, uint64_t n)
{
  atomic_fetch_add_explicit (counter, n, memory_order_relaxed);
}

void
store_count (struct store *st, unsigned tries,
             uint64_t bytes_in, uint64_t bytes_out)
{
  add (&st->stats.requests, tries);
  add (&st->stats.bytes_in, bytes_in);
  add (&st->stats.bytes_out, bytes_out);
}

const char *
store_op_name (enum store_op op)
{
  static const char *const names[STORE_OPS] = {
    "get", "get_range", "head", "put", "delete", "list", "upload",
  };

  assert (op < STORE_OPS);
  return names[op];
}

const char *
store_why_name (enum store_why why)
{
  static const char *const names[STORE_WHYS] = {
    "server_error", "throttled", "timeout", "unreachable", "cut_off",
    "corrupt", "denied", "bad_reply", "no_space", "not_supported",
    "too_large", "io_error",
  };

  assert (why < STORE_WHYS);
  return names[why];
}

enum store_why
store_why_of_errno (int e)
{
  switch (e) {
  case ETIMEDOUT: return STORE_WHY_TIMEOUT;
  case ECONNREFUSED: case EHOSTUNREACH: case ENETUNREACH: case EAGAIN:
    return STORE_WHY_UNREACHABLE;
  case ECONNRESET: return STORE_WHY_CUT_OFF;
  case EACCES: case EPERM: return STORE_WHY_DENIED;
  case EBADMSG: case ELOOP: return STORE_WHY_BAD_REPLY;
  case ENOSPC: case EDQUOT: return STORE_WHY_NO_SPACE;
  case ENOTSUP: return STORE_WHY_NOT_SUPPORTED;
  case EFBIG: return STORE_WHY_TOO_LARGE;
  default: return STORE_WHY_IO;
  }
}

void
store_count_retry (struct store *st, enum store_op op, enum store_why why)
{
  assert (op < STORE_OPS && why < STORE_WHYS);
  add (&st->stats.retries[op][why], 1);
}

void
store_count_failure (struct store *st, enum store_op op, enum store_why why)
{
  assert (op < STORE_OPS && why < STORE_WHYS);
  add (&st->stats.errors[op][why], 1);
}

/* The reason a backend gave for the failure it is returning, or -1. */
static __thread int fail_why = -1;

void
store_fail_why (enum store_why why)
{
  fail_why = why;
}

/* Count the result R of operation OP if it is a failure (see store.h). */
static int
counted (struct store *st, enum store_op op, int r)
{
  int e = errno, why = fail_why;

  fail_why = -1;
  if (r == -1 && e != ENOENT && e != ESTALE && e != ENOTSUP)
    store_count_failure (st, op, why >= 0 ? (enum store_why) why
                         : store_why_of_errno (e));
  errno = e;
  return r;
}

int
store_get (struct store *st, const char *key, size_t max,
           char **data, size_t *len, struct store_obj *info)
{
  if (check_key (key, false) == -1)
    return -1;
  return counted (st, STORE_OP_GET,
                  st->ops->get (st, key, max, data, len, info));
}

int
store_get_stream (struct store *st, const char *key, size_t max,
                  store_stream_fn fn, void *opaque, struct store_obj *info)
{
  int r;

  if (check_key (key, false) == -1)
    return -1;
  r = st->ops->get_stream (st, key, max, fn, opaque, info);
  /* The consumer's own stop is not the store's failure. */
  return r == -1 || r == 0 ? counted (st, STORE_OP_GET, r) : r;
}

/* Count a ranged GET that took NS. */
static void
count_latency (struct store *st, uint64_t ns)
{
  static const uint64_t bounds[] = STORE_LATENCY_BOUNDS_NS;
  size_t b = 0;

  _Static_assert (sizeof bounds / sizeof bounds[0] + 1 ==
                  STORE_LATENCY_BUCKETS, "one bucket above the bounds");
  while (b < STORE_LATENCY_BUCKETS - 1 && ns > bounds[b])
    b++;
  add (&st->stats.range_gets, 1);
  add (&st->stats.range_get_ns, ns);
  add (&st->stats.range_get_buckets[b], 1);
}

int
store_get_range_stream (struct store *st, const char *key,
                        uint64_t offset, size_t len,
                        store_stream_fn fn, void *opaque)
{
  uint64_t t0 = time_mono_ns ();
  int r;

  if (check_key (key, false) == -1)
    return -1;
  if (len == 0)
    return 0;
  r = st->ops->get_range_stream (st, key, offset, len, fn, opaque);
  if (r > 0)
    return r;                   /* the consumer's stop, not the store's */
  if (counted (st, STORE_OP_GET_RANGE, r) == -1)
    return -1;
  count_latency (st, time_mono_ns () - t0);
  return 0;
}

/* store_get_range's consumer: copy into the caller's buffer. */
struct into {
  char *buf;
  size_t done;
};

static int
copy_in (void *opaque, const void *buf, size_t len)
{
  struct into *in = opaque;

  memcpy (in->buf + in->done, buf, len);
  in->done += len;
  return 0;
}

int
store_get_range (struct store *st, const char *key,
                 uint64_t offset, size_t len, void *buf)
{
  struct into in = { .buf = buf };

  /* The stream hands over no more than LEN bytes, and all of them. */
  return store_get_range_stream (st, key, offset, len, copy_in, &in);
}

int
store_head (struct store *st, const char *key, struct store_obj *info)
{
  if (check_key (key, false) == -1)
    return -1;
  return counted (st, STORE_OP_HEAD, st->ops->head (st, key, info));
}

int
store_put (struct store *st, const char *key, const void *data, size_t len,
           enum store_cond cond, const char *etag, struct store_obj *info)
{
  if (check_key (key, false) == -1)
    return -1;
  if (cond == STORE_PUT_IF_MATCH && (etag == NULL || etag[0] == '\0'))
    return err_set (EINVAL, "put %s: If-Match without an etag", key);
  return counted (st, STORE_OP_PUT,
                  st->ops->put (st, key, data, len, cond, etag, info));
}

int
store_delete (struct store *st, const char *key)
{
  if (check_key (key, false) == -1)
    return -1;
  return counted (st, STORE_OP_DELETE, st->ops->delete (st, key));
}

int
store_list (struct store *st, const char *prefix, const char *delimiter,
            store_list_fn fn, void *opaque)
{
  int r;

  if (check_key (prefix, true) == -1)
    return -1;
  if (delimiter && strcmp (delimiter, "/") != 0)
    return err_set (EINVAL, "list %s: only \"/\" is a delimiter", prefix);
  r = st->ops->list (st, prefix, delimiter, fn, opaque);
  /* A callback's own non-zero return is not the store's failure. */
  return r == -1 ? counted (st, STORE_OP_LIST, r) : r;
}

int
store_sweep_temps (struct store *st, const char *prefix)
{
  if (check_key (prefix, true) == -1)
    return -1;
  return st->ops->sweep_temps ? st->ops->sweep_temps (st, prefix) : 0;
}

struct store_upload *
store_upload_begin (struct store *st, const char *key)
{
  struct store_upload *up;

  if (check_key (key, false) == -1)
    return NULL;
  up = st->ops->upload_begin (st, key);
  if (up == NULL)
    counted (st, STORE_OP_UPLOAD, -1);
  return up;
}

const char *
store_upload_id (const struct store_upload *up)
{
  return up->id;
}

bool
store_wants_sha256 (const struct store *st)
{
  return st->ops->wants_sha256;
}

int
store_upload_part (struct store_upload *up, unsigned partno,
                   uint64_t offset, const void *data, size_t len,
                   const unsigned char *sha256)
{
  if (partno < 1 || partno > STORE_PART_MAX_COUNT)
    return err_set (EINVAL, "upload %s: part number %u out of range",
                    up->key, partno);
  return counted (up->st, STORE_OP_UPLOAD,
                  up->st->ops->upload_part (up, partno, offset, data, len,
                                            sha256));
}

int
store_upload_complete (struct store_upload *up)
{
  struct store *st = up->st;

  return counted (st, STORE_OP_UPLOAD, st->ops->upload_complete (up));
}

void
store_upload_abort (struct store_upload *up)
{
  if (up)
    up->st->ops->upload_abort (up);
}

int
store_upload_abort_id (struct store *st, const char *key,
                       const char *upload_id)
{
  if (check_key (key, false) == -1)
    return -1;
  return counted (st, STORE_OP_UPLOAD,
                  st->ops->upload_abort_id (st, key, upload_id));
}

int
store_list_uploads (struct store *st, const char *prefix,
                    store_uploads_fn fn, void *opaque)
{
  int r;

  if (check_key (prefix, true) == -1)
    return -1;
  r = st->ops->list_uploads (st, prefix, fn, opaque);
  /* A callback's own non-zero return is not the store's failure. */
  return r == -1 ? counted (st, STORE_OP_LIST, r) : r;
}

void
store_get_stats (const struct store *st, struct store_stats *out)
{
  const struct store_counters *c = &st->stats;

  for (int op = 0; op < STORE_OPS; op++)
    for (int why = 0; why < STORE_WHYS; why++) {
      out->retries[op][why] = atomic_load_explicit (&c->retries[op][why],
                                                    memory_order_relaxed);
      out->errors[op][why] = atomic_load_explicit (&c->errors[op][why],
                                                   memory_order_relaxed);
    }
  out->requests = atomic_load_explicit (&c->requests, memory_order_relaxed);
  out->bytes_in = atomic_load_explicit (&c->bytes_in, memory_order_relaxed);
  out->bytes_out = atomic_load_explicit (&c->bytes_out, memory_order_relaxed);
  out->range_gets =
    atomic_load_explicit (&c->range_gets, memory_order_relaxed);
  out->range_get_ns =
    atomic_load_explicit (&c->range_get_ns, memory_order_relaxed);
  for (size_t b = 0; b < STORE_LATENCY_BUCKETS; b++)
    out->range_get_buckets[b] =
      atomic_load_explicit (&c->range_get_buckets[b], memory_order_relaxed);
}
