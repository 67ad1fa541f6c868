/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: an export's status as JSON (see status.h).
 *
 * The status is printed by hand into a memory stream, not built as a
 * json-c tree.  The list of every loaded export is about 1 KB of status
 * each, so a megabyte at 1,000 exports: as a tree that is some 60,000
 * objects to allocate, hash, print and free (17 ms), where printing
 * takes a few.  The reply that holds one status (status, open, create,
 * reset ...) parses the text back into its tree, which for one export
 * costs nothing that matters; the list goes into the reply as it was
 * printed (a json-c serializer that appends the text), so there is one
 * printer and no second copy of the fields.
 *
 * Every string is made valid UTF-8 first (an error may quote bytes from
 * the bucket) and escaped as RFC 8259 says, so the text is always valid
 * JSON: lazyvold checks it before passing it on.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <json-c/printbuf.h>

#include "err.h"
#include "format.h"
#include "registry.h"
#include "status.h"
#include "util.h"

/* An object being printed: its stream, and whether a member came yet. */
struct out {
  FILE *f;
  bool more;
};

/* Member KEY's name, after a comma unless it is the first. */
static void
key (struct out *o, const char *key)
{
  fputs (o->more ? ",\"" : "\"", o->f);
  fputs (key, o->f);
  fputs ("\":", o->f);
  o->more = true;
}

static void
put_u64 (struct out *o, const char *k, uint64_t v)
{
  key (o, k);
  fprintf (o->f, "%" PRIu64, v);
}

/* A limit in bytes, or null for none. */
static void
put_limit (struct out *o, const char *k, uint64_t v)
{
  if (v == CACHE_NO_LIMIT) {
    key (o, k);
    fputs ("null", o->f);
  }
  else
    put_u64 (o, k, v);
}

/* A string, or null if S is NULL or empty. */
static void
put_str (struct out *o, const char *k, const char *s)
{
  char buf[1024];

  key (o, k);
  if (s == NULL || s[0] == '\0') {
    fputs ("null", o->f);
    return;
  }
  snprintf (buf, sizeof buf, "%s", s);
  utf8_sanitize (buf);
  format_write_string (o->f, buf);
}

static void
put_bool (struct out *o, const char *k, bool b)
{
  key (o, k);
  fputs (b ? "true" : "false", o->f);
}

/* Seconds, from nanoseconds, or null if not STARTED. */
static void
put_secs (struct out *o, const char *k, uint64_t ns, bool started)
{
  key (o, k);
  if (started)
    fprintf (o->f, "%.6f", ns / 1e9);
  else
    fputs ("null", o->f);
}

/* Member K, an object printed into *IN until end. */
static void
begin (struct out *o, const char *k, struct out *in)
{
  key (o, k);
  fputc ('{', o->f);
  in->f = o->f;
  in->more = false;
}

static void
end (struct out *in)
{
  fputc ('}', in->f);
}

/* Member K: null. */
static void
put_null (struct out *o, const char *k)
{
  key (o, k);
  fputs ("null", o->f);
}

/* operation_progress: how far the running operation is, or the last one
 * went (zeros and nulls before the first), with its rate in bytes per
 * second.
 */
static void
put_progress (struct out *o, const struct volume_progress *p)
{
  struct out in;
  double secs = p->elapsed_ns / 1e9;

  begin (o, "operation_progress", &in);
  put_u64 (&in, "done", p->done);
  put_u64 (&in, "total", p->total);
  put_u64 (&in, "done_bytes", p->done_bytes);
  put_u64 (&in, "total_bytes", p->total_bytes);
  put_str (&in, "started_at", p->started_at);
  put_secs (&in, "elapsed_s", p->elapsed_ns, p->started_at[0] != '\0');
  put_u64 (&in, "bytes_per_s", secs > 0 ? p->done_bytes / secs : 0);
  end (&in);
}

/* last_operation: how the last operation to end ended, or null. */
static void
put_last_operation (struct out *o, const struct volume_outcome *l)
{
  struct out in;

  if (l->op == VOLUME_IDLE) {
    put_null (o, "last_operation");
    return;
  }
  begin (o, "last_operation", &in);
  put_str (&in, "kind", volume_op_kind (l->op));
  put_str (&in, "result", volume_result_name (l->result));
  put_str (&in, "error", l->result == VOLUME_FAILED ? l->error : NULL);
  put_str (&in, "warning", l->warning);
  put_str (&in, "started_at", l->started_at);
  put_str (&in, "finished_at", l->finished_at);
  put_secs (&in, "duration_s", l->ns, true);
  if (l->op == VOLUME_SNAPSHOT || l->op == VOLUME_COMPACT) {
    put_str (&in, "snapshot_id", l->snapshot_id);
    put_u64 (&in, "generation", l->generation);
    put_bool (&in, "snapshot_created", l->created);
  }
  end (&in);
}

/* cache_budget: what the process's caches may take and take, this
 * export's share and own limit, and whether no room can be made.
 */
static void
put_cache_budget (struct out *o, const struct cache_stats *c)
{
  struct out in;
  bool own = c->full == CACHE_FULL_LIMIT;
  char notice[256] = "";

  begin (o, "cache_budget", &in);
  put_limit (&in, "max_bytes", c->budget.max_bytes);
  put_u64 (&in, "used_bytes", c->budget.used_bytes);
  put_u64 (&in, "dirty_bytes", c->budget.dirty_bytes);
  put_u64 (&in, "evictions", c->budget.evictions);
  put_limit (&in, "export_max_bytes", c->max_bytes);
  put_u64 (&in, "export_used_bytes", c->used_bytes);
  put_u64 (&in, "export_dirty_bytes", c->dirty_bytes);
  put_u64 (&in, "export_evictions", c->evictions);
  put_u64 (&in, "bypass_reads", c->bypass_reads);
  put_u64 (&in, "refused_writes", c->refused_writes);
  put_bool (&in, "full", c->full != CACHE_ROOM);
  if (c->full != CACHE_ROOM)
    snprintf (notice, sizeof notice, "the %s of %ju bytes is full of "
              "unpublished writes: chunks not cached are read without "
              "keeping them, and writes to them fail (ENOSPC) until a "
              "snapshot publishes the writes", own
              ? "export's own cache limit" : "cache budget",
              (uintmax_t) (own ? c->max_bytes : c->budget.max_bytes));
  put_str (&in, "notice", notice);
  end (&in);
}

/* Who may write the export: "writable" and why not, the owner, this
 * host's lease, and what stale local writes are based on.
 */
static void
put_ownership (struct out *o, const struct volume_status *s,
               const struct volume_env *e)
{
  struct out in;

  put_bool (o, "writable", s->writable);
  put_str (o, "notice", s->notice);
  put_u64 (o, "epoch", s->epoch);
  if (s->owner.epoch > 0) {
    begin (o, "owner", &in);
    put_str (&in, "host_id", s->owner.host_id);
    put_str (&in, "cache_id", s->owner.cache_id);
    put_u64 (&in, "epoch", s->owner.epoch);
    put_str (&in, "since", s->owner.since);
    put_bool (&in, "this_host", s->owned);
    end (&in);
  }
  else
    put_null (o, "owner");
  if (s->lease_period_ms > 0) {
    begin (o, "lease", &in);
    put_str (&in, "host_id", e->host_id);
    put_str (&in, "cache_id", e->cache_id);
    put_u64 (&in, "period_ms", s->lease_period_ms);
    if (s->lease_age_ms != UINT64_MAX)
      put_u64 (&in, "age_ms", s->lease_age_ms);
    else
      put_null (&in, "age_ms");
    put_bool (&in, "valid", s->lease_valid);
    end (&in);
  }
  else
    put_null (o, "lease");
  put_bool (o, "stale", s->stale);
  if (s->stale) {
    begin (o, "based_on", &in);
    put_str (&in, "snapshot_id", s->base.snapshot_id);
    put_u64 (&in, "generation", s->base.generation);
    put_u64 (&in, "epoch", s->base.epoch);
    end (&in);
  }
  else
    put_null (o, "based_on");
  put_bool (o, "unsafe_no_conditional_puts", e->unconditional);
}

/* Print V's status, an object, into F. */
static void
print_status (FILE *f, struct volume *v, const struct volume_env *e)
{
  struct volume_status s;
  struct out o = { .f = f };

  volume_status (v, &s);
  fputc ('{', f);
  put_str (&o, "export_id", volume_name (v));
  put_str (&o, "snapshot_id", s.snapshot_id);
  put_bool (&o, "readonly", s.readonly);
  put_u64 (&o, "image_size", s.image_size);
  if (s.pending_image_size)
    put_u64 (&o, "pending_image_size", s.pending_image_size);
  else
    put_null (&o, "pending_image_size");
  put_u64 (&o, "chunk_size", s.chunk_size);
  put_u64 (&o, "chunk_count", s.cache.chunks);
  put_u64 (&o, "resident_chunks", s.cache.resident);
  put_u64 (&o, "dirty_chunks", s.cache.dirty);
  put_u64 (&o, "snapshot_generation", s.snapshot_generation);
  put_u64 (&o, "remote_head_generation", s.remote_head_generation);
  put_str (&o, "operation_state", volume_op_name (s.op));
  put_progress (&o, &s.progress);
  put_last_operation (&o, &s.last);
  put_u64 (&o, "connections", registry_connections (volume_name (v)));
  put_bool (&o, "failed_stop", s.cache.failed);
  put_u64 (&o, "suspect_chunks", s.cache.suspect);
  put_cache_budget (&o, &s.cache);
  put_str (&o, "last_error", s.last_error);
  put_ownership (&o, &s, e);
  fputc ('}', f);
}

int
status_add (json_object *res, struct volume *v, const struct volume_env *e)
{
  CLEANUP_FREE char *text = NULL;
  size_t len;
  FILE *f = memstream_open (&text, &len);
  json_object *o;

  if (f == NULL)
    return -1;
  print_status (f, v, e);
  if (memstream_close (f, &text) == -1)
    return -1;
  if ((o = json_tokener_parse (text)) == NULL)
    return err_set (ENOMEM, "status of %s: out of memory", volume_name (v));
  json_object_object_foreach (o, k, val)
    json_object_object_add (res, k, json_object_get (val));
  json_object_put (o);
  return 0;
}

/* The list's printer and its carrier's destructor (see status_list). */
static int
print_text (json_object *o, struct printbuf *pb, int level, int flags)
{
  const char *text = json_object_get_userdata (o);

  return printbuf_memappend (pb, text, strlen (text));
}

static void
free_text (json_object *o, void *text)
{
  free (text);
}

struct list {
  FILE *f;
  const struct volume_env *env;
  bool more;
};

static int
list_one (void *opaque, struct volume *v)
{
  struct list *l = opaque;

  if (l->more)
    fputc (',', l->f);
  l->more = true;
  print_status (l->f, v, l->env);
  return 0;
}

json_object *
status_list (const struct volume_env *e)
{
  char *text = NULL;
  size_t len;
  struct list l = { .f = memstream_open (&text, &len), .env = e };
  json_object *o;
  int r;

  if (l.f == NULL)
    return NULL;
  fputc ('[', l.f);
  r = registry_foreach (list_one, &l);
  fputc (']', l.f);
  if (memstream_close (l.f, &text) == -1 || r == -1) {
    free (text);
    return NULL;
  }
  if ((o = json_object_new_array ()) == NULL) {
    free (text);
    err_set (ENOMEM, "list of exports: out of memory");
    return NULL;
  }
  json_object_set_serializer (o, print_text, text, free_text);
  return o;
}
