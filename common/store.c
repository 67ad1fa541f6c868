/* lazyvol: the public face of the object stores (see store.h).
 *
 * This file checks what every backend would otherwise check again (keys
 * are relative, bounded and free of "..", control characters and empty
 * segments), keeps the metrics counters, and dispatches to the backend's
 * store_ops.  Keys are built by lazyvol from validated ids, so a key that
 * fails here is a bug or a hostile manifest, and is refused with EINVAL.
 */
#include <config.h>

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

void
store_count (struct store *st, unsigned retries,
             uint64_t bytes_in, uint64_t bytes_out, bool failed)
{
  struct store_counters *c = &st->stats;

  atomic_fetch_add_explicit (&c->requests, 1 + retries, memory_order_relaxed);
  atomic_fetch_add_explicit (&c->retries, retries, memory_order_relaxed);
  atomic_fetch_add_explicit (&c->bytes_in, bytes_in, memory_order_relaxed);
  atomic_fetch_add_explicit (&c->bytes_out, bytes_out, memory_order_relaxed);
  if (failed)
    atomic_fetch_add_explicit (&c->errors, 1, memory_order_relaxed);
}

int
store_get (struct store *st, const char *key, size_t max,
           char **data, size_t *len, struct store_obj *info)
{
  if (check_key (key, false) == -1)
    return -1;
  return st->ops->get (st, key, max, data, len, info);
}

int
store_get_range (struct store *st, const char *key,
                 uint64_t offset, size_t len, void *buf)
{
  uint64_t t0 = time_mono_ns ();

  if (check_key (key, false) == -1)
    return -1;
  if (len == 0)
    return 0;
  if (st->ops->get_range (st, key, offset, len, buf) == -1)
    return -1;
  atomic_fetch_add_explicit (&st->stats.range_gets, 1, memory_order_relaxed);
  atomic_fetch_add_explicit (&st->stats.range_get_ns, time_mono_ns () - t0,
                             memory_order_relaxed);
  return 0;
}

int
store_head (struct store *st, const char *key, struct store_obj *info)
{
  if (check_key (key, false) == -1)
    return -1;
  return st->ops->head (st, key, info);
}

int
store_put (struct store *st, const char *key, const void *data, size_t len,
           enum store_cond cond, const char *etag, struct store_obj *info)
{
  if (check_key (key, false) == -1)
    return -1;
  if (cond == STORE_PUT_IF_MATCH && (etag == NULL || etag[0] == '\0'))
    return err_set (EINVAL, "put %s: If-Match without an etag", key);
  return st->ops->put (st, key, data, len, cond, etag, info);
}

int
store_delete (struct store *st, const char *key)
{
  if (check_key (key, false) == -1)
    return -1;
  return st->ops->delete (st, key);
}

int
store_list (struct store *st, const char *prefix, const char *delimiter,
            store_list_fn fn, void *opaque)
{
  if (check_key (prefix, true) == -1)
    return -1;
  if (delimiter && strcmp (delimiter, "/") != 0)
    return err_set (EINVAL, "list %s: only \"/\" is a delimiter", prefix);
  return st->ops->list (st, prefix, delimiter, fn, opaque);
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
  if (check_key (key, false) == -1)
    return NULL;
  return st->ops->upload_begin (st, key);
}

const char *
store_upload_id (const struct store_upload *up)
{
  return up->id;
}

int
store_upload_part (struct store_upload *up, unsigned partno,
                   uint64_t offset, const void *data, size_t len)
{
  if (partno < 1 || partno > STORE_PART_MAX_COUNT)
    return err_set (EINVAL, "upload %s: part number %u out of range",
                    up->key, partno);
  return up->st->ops->upload_part (up, partno, offset, data, len);
}

int
store_upload_complete (struct store_upload *up)
{
  return up->st->ops->upload_complete (up);
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
  return st->ops->upload_abort_id (st, key, upload_id);
}

void
store_get_stats (const struct store *st, struct store_stats *out)
{
  const struct store_counters *c = &st->stats;

  out->requests = atomic_load_explicit (&c->requests, memory_order_relaxed);
  out->errors = atomic_load_explicit (&c->errors, memory_order_relaxed);
  out->retries = atomic_load_explicit (&c->retries, memory_order_relaxed);
  out->bytes_in = atomic_load_explicit (&c->bytes_in, memory_order_relaxed);
  out->bytes_out = atomic_load_explicit (&c->bytes_out, memory_order_relaxed);
  out->range_gets =
    atomic_load_explicit (&c->range_gets, memory_order_relaxed);
  out->range_get_ns =
    atomic_load_explicit (&c->range_get_ns, memory_order_relaxed);
}
