/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: the commands of the control socket (see commands.h).
 *
 * Requests are untrusted: JSON depth is limited, strings must be UTF-8,
 * every argument is type-checked and every id validated before it
 * reaches a path or an object key.  A bad request gets an error reply.
 * A command works on a registry reference, so an export cannot be
 * unloaded under it; reset and close take the export exclusively (see
 * registry.c), so they never overlap a request.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "commands.h"
#include "delete.h"
#include "err.h"
#include "fork.h"
#include "format.h"
#include "fsck.h"
#include "gc.h"
#include "jobs.h"
#include "owner.h"
#include "protocol.h"
#include "publish.h"
#include "registry.h"
#include "status.h"
#include "store.h"

static struct volume_env *env;

void
commands_init (struct volume_env *e)
{
  env = e;
}

/* Arguments. */

static int
arg_string (json_object *req, const char *key, bool required,
            const char **out)
{
  json_object *o;

  *out = NULL;
  if (!json_object_object_get_ex (req, key, &o) ||
      json_object_is_type (o, json_type_null)) {
    if (required)
      return err_set (EINVAL, "missing \"%s\"", key);
    return 0;
  }
  if (!json_object_is_type (o, json_type_string))
    return err_set (EINVAL, "\"%s\" must be a string", key);
  *out = json_object_get_string (o);
  return 0;
}

static int
arg_export_id (json_object *req, const char *key, const char **out)
{
  if (arg_string (req, key, true, out) == -1)
    return -1;
  return id_export_check (key, *out);
}

/* The export name for status-like commands: an export id, or E@S. */
static int
arg_name (json_object *req, const char **out)
{
  if (arg_string (req, "export_id", true, out) == -1)
    return -1;
  return id_name_check ("export_id", *out);
}

static int
arg_snapshot_id (json_object *req, const char *key, bool required,
                 const char **out)
{
  if (arg_string (req, key, required, out) == -1)
    return -1;
  return *out ? id_snapshot_check (key, *out) : 0;
}

/* The optional "label" of a new snapshot (id_label_check; a NUL inside
 * is refused too), or NULL.
 */
static int
arg_label (json_object *req, const char **out)
{
  json_object *o;

  if (arg_string (req, "label", false, out) == -1)
    return -1;
  if (*out == NULL)
    return 0;
  json_object_object_get_ex (req, "label", &o);
  if ((size_t) json_object_get_string_len (o) != strlen (*out))
    return err_set (EINVAL, "invalid label: contains a NUL character");
  return id_label_check ("label", *out);
}

/* Boolean KEY of REQ into *OUT, or DEFAULT_ if it is absent or null. */
static int
arg_bool (json_object *req, const char *key, bool default_, bool *out)
{
  json_object *o;

  *out = default_;
  if (!json_object_object_get_ex (req, key, &o) ||
      json_object_is_type (o, json_type_null))
    return 0;
  if (!json_object_is_type (o, json_type_boolean))
    return err_set (EINVAL, "\"%s\" must be true or false", key);
  *out = json_object_get_boolean (o);
  return 0;
}

static int
arg_u64 (json_object *req, const char *key, bool required, uint64_t *out)
{
  json_object *o;
  int64_t i;

  if (!json_object_object_get_ex (req, key, &o)) {
    if (required)
      return err_set (EINVAL, "missing \"%s\"", key);
    return 0;
  }
  if (!json_object_is_type (o, json_type_int))
    return err_set (EINVAL, "\"%s\" must be an integer", key);
  errno = 0;
  i = json_object_get_int64 (o);
  if (i < 0 || errno == ERANGE ||
      (i == INT64_MAX && json_object_get_uint64 (o) != (uint64_t) i))
    return err_set (EINVAL, "\"%s\" is out of range", key);
  *out = i;
  return 0;
}

/* "cache_max_size": the export's own cache limit in bytes, 0 for none
 * (CACHE_NO_LIMIT in *OUT); *GIVEN says whether REQ has one.
 */
static int
arg_cache_max (json_object *req, bool *given, uint64_t *out)
{
  *given = json_object_object_get_ex (req, "cache_max_size", NULL);
  *out = 0;
  if (arg_u64 (req, "cache_max_size", false, out) == -1)
    return -1;
  if (*out == 0)
    *out = CACHE_NO_LIMIT;
  return 0;
}

/* Replies. */

static void
add_u64 (json_object *o, const char *key, uint64_t v)
{
  json_object_object_add (o, key, json_object_new_uint64 (v));
}

static void
add_str (json_object *o, const char *key, const char *s)
{
  json_object_object_add (o, key, s && s[0] ? json_object_new_string (s)
                                             : NULL);
}

/* Commands: each fills RES and returns 0, or returns -1 with err_set. */

static int
cmd_ping (json_object *req, json_object *res)
{
  json_object_object_add (res, "version", json_object_new_string (VERSION));
  add_u64 (res, "pid", getpid ());
  return 0;
}

static int
cmd_list (json_object *req, json_object *res)
{
  json_object *a = status_list (env);

  if (a == NULL)
    return -1;
  json_object_object_add (res, "exports", a);
  return 0;
}

/* Reply with the status of loaded export NAME. */
static int
reply_status (json_object *res, const char *name)
{
  struct volume *v = registry_get (name, false, false);
  int r;

  if (v == NULL)
    return -1;
  r = status_add (res, v, env);
  registry_put (v, false);
  return r;
}

/* Load export NAME (TAKEOVER as for registry_load), or keep the view
 * NAME a client loaded (registry_keep_view), and, if GIVEN, set its own
 * cache limit to MAX (see volume_set_cache_max); if that fails, it is
 * unloaded again.  An export closed here before is discovered again
 * from now on.  0 or -1.
 */
static int
load_limited (const char *name, int takeover, bool given, uint64_t max)
{
  struct err_saved why;
  struct volume *v;
  int r;

  /* A view a client loaded stays from now on, as if opened here. */
  if (!registry_keep_view (name) && registry_load (name, takeover) == -1)
    return -1;
  if (!strchr (name, '@') && registry_set_closed (name, false) == -1)
    log_warn ("%s", err_msg ());
  if (!given)
    return 0;
  if ((v = registry_get (name, false, false)) == NULL)
    return -1;
  r = volume_set_cache_max (v, max);
  registry_put (v, false);
  if (r == 0)
    return 0;
  err_save (&why);
  if (registry_unload (name) == -1)
    log_warn ("%s", err_msg ());
  err_restore (&why);
  return -1;
}

/* Creating or cloning over a loaded export: say that it is loaded. */
static int
refuse_loaded (const char *id)
{
  if (registry_loaded (id))
    return err_set (EEXIST, "export %s already exists and is loaded", id);
  return 0;
}

static int
cmd_create (json_object *req, json_object *res)
{
  const char *id;
  uint64_t size, chunk_size = CHUNK_SIZE_DEFAULT, max;
  bool limited;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      arg_u64 (req, "size", true, &size) == -1 ||
      arg_u64 (req, "chunk_size", false, &chunk_size) == -1 ||
      arg_cache_max (req, &limited, &max) == -1)
    return -1;
  if (chunk_size > UINT32_MAX)
    return err_set (EINVAL, "invalid chunk size %ju", (uintmax_t) chunk_size);
  if (max < chunk_size)
    return err_set (EINVAL, "cache_max_size %ju is less than one chunk "
                    "(%ju bytes)", (uintmax_t) max, (uintmax_t) chunk_size);
  if (refuse_loaded (id) == -1 ||
      volume_create (env, id, size, chunk_size) == -1 ||
      load_limited (id, OWNER_TAKEOVER_NO, limited, max) == -1)
    return -1;
  log_info ("created export %s (%ju bytes, %ju-byte chunks)", id,
            (uintmax_t) size, (uintmax_t) chunk_size);
  return reply_status (res, id);
}

/* "takeover": false (the default), true (once the owner's lease has
 * expired) or "force".
 */
static int
arg_takeover (json_object *req, int *out)
{
  enum owner_takeover t = OWNER_TAKEOVER_NO;
  json_object *o;

  if (json_object_object_get_ex (req, "takeover", &o) &&
      !json_object_is_type (o, json_type_null)) {
    if (json_object_is_type (o, json_type_boolean))
      t = json_object_get_boolean (o) ? OWNER_TAKEOVER_WAIT : OWNER_TAKEOVER_NO;
    else if (!json_object_is_type (o, json_type_string) ||
             strcmp (json_object_get_string (o), "force") != 0)
      return err_set (EINVAL, "\"takeover\" must be true, false or \"force\"");
    else
      t = OWNER_TAKEOVER_FORCE;
  }
  *out = t;
  return 0;
}

static int
cmd_open (json_object *req, json_object *res)
{
  const char *name;
  int takeover = OWNER_TAKEOVER_NO;
  uint64_t max;
  bool limited;

  if (arg_name (req, &name) == -1 || arg_takeover (req, &takeover) == -1 ||
      arg_cache_max (req, &limited, &max) == -1)
    return -1;
  if (takeover != OWNER_TAKEOVER_NO && strchr (name, '@'))
    return err_set (EINVAL, "a snapshot view is read-only: nothing to take "
                    "over");
  /* Loaded read-only (found at start while another host owned it): a
   * takeover loads it again.
   */
  bool reload = takeover != OWNER_TAKEOVER_NO &&
    registry_loaded_read_only (name);

  if (reload && registry_unload (name) == -1)
    return err_prefix ("take over %s", name);
  if (load_limited (name, takeover, limited, max) == -1) {
    if (reload) {
      /* Not taken: back to read-only, as it was. */
      struct err_saved why;

      err_save (&why);
      if (registry_load (name, OWNER_TAKEOVER_NO) == -1)
        log_warn ("%s", err_msg ());
      err_restore (&why);
    }
    return -1;
  }
  return reply_status (res, name);
}

/* Unload NAME; an export (not a view) stays closed across restarts. */
static int
cmd_close (json_object *req, json_object *res)
{
  const char *name;

  if (arg_name (req, &name) == -1 || registry_unload (name) == -1)
    return -1;
  /* In direct mode the process serves this export alone, and loads it
   * at every start: a close there is not remembered.
   */
  return strchr (name, '@') || env->direct ? 0
    : registry_set_closed (name, true);
}

static int
cmd_status (json_object *req, json_object *res)
{
  const char *name;

  if (arg_name (req, &name) == -1)
    return -1;
  return reply_status (res, name);
}

/* Snapshot (or with COMPACT compact) the export named in REQ and reply
 * with the new generation and snapshot id; with "wait": false, start it
 * in the background and reply with the export's status at once.
 */
static int
run_publish (json_object *req, json_object *res, bool compact)
{
  struct publish_result pr;
  struct volume *v;
  const char *id, *label;
  bool wait;
  int r;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      arg_bool (req, "wait", true, &wait) == -1 ||
      arg_label (req, &label) == -1 ||
      (v = registry_get (id, false, false)) == NULL)
    return -1;
  if (publish_begin (v, compact ? VOLUME_COMPACT : VOLUME_SNAPSHOT) == -1) {
    registry_put (v, false);
    return -1;
  }
  if (!wait) {
    /* The status first: once the job runs, it may release V. */
    if (status_add (res, v, env) == -1) {
      volume_op_end (v, false);
      registry_put (v, false);
      return -1;
    }
    if (jobs_publish (v, compact, label) == 0)
      return 0;
    registry_put (v, false);
    return -1;
  }
  r = publish_run (v, compact, label, &pr);
  registry_put (v, false);
  if (r == -1)
    return -1;
  add_u64 (res, "generation", pr.generation);
  add_str (res, "snapshot_id", pr.snapshot_id);
  if (!compact)
    json_object_object_add (res, "snapshot_created",
                            json_object_new_boolean (pr.created));
  if (pr.created)
    registry_refresh_snapshots (id);
  return 0;
}

static int
cmd_snapshot (json_object *req, json_object *res)
{
  return run_publish (req, res, false);
}

static int
cmd_compact (json_object *req, json_object *res)
{
  return run_publish (req, res, true);
}

/* Grow the export to "size" bytes (volume_resize) and reply with its
 * status.
 */
static int
cmd_resize (json_object *req, json_object *res)
{
  struct volume *v;
  const char *id;
  uint64_t size = 0;
  int r;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      arg_u64 (req, "size", true, &size) == -1 ||
      (v = registry_get (id, false, false)) == NULL)
    return -1;
  r = volume_resize (v, size);
  registry_put (v, false);
  return r == -1 ? -1 : reply_status (res, id);
}

/* Would a rollback of loaded export ID to SNAP make it smaller (its
 * summary says)?  1, 0, or -1 (the snapshot cannot be read, or ID is not
 * loaded).
 */
static int
rollback_shrinks (const char *id, const char *snap)
{
  struct manifest *m;
  struct volume *v;
  int r;

  if ((m = publish_read_summary (env, id, snap, true)) == NULL)
    return -1;
  if ((v = registry_get (id, false, false)) == NULL) {
    manifest_free (m);
    return -1;
  }
  r = m->image_size < volume_size (v);
  registry_put (v, false);
  manifest_free (m);
  return r;
}

/* Roll the export back to "snapshot_id" (publish_rollback) and reply
 * with the new snapshot, as a snapshot does.
 */
static int
cmd_rollback (json_object *req, json_object *res)
{
  struct publish_result pr;
  struct volume *v;
  const char *id, *snap, *label;
  bool discard;
  int r, shrink;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      arg_snapshot_id (req, "snapshot_id", true, &snap) == -1 ||
      arg_bool (req, "discard_local", false, &discard) == -1 ||
      arg_label (req, &label) == -1 ||
      (shrink = rollback_shrinks (id, snap)) == -1)
    return -1;
  /* To a smaller image: no client may know the larger size. */
  v = shrink ? registry_get_exclusive (id, "rollback to a smaller snapshot")
    : registry_get (id, false, false);
  if (v == NULL)
    return -1;
  r = publish_begin (v, VOLUME_ROLLBACK);
  if (r == 0)
    r = publish_rollback (v, snap, discard, shrink, label, &pr);
  if (shrink)
    registry_put_exclusive (v);
  else
    registry_put (v, false);
  if (r == -1)
    return -1;
  add_u64 (res, "generation", pr.generation);
  add_str (res, "snapshot_id", pr.snapshot_id);
  add_str (res, "rolled_back_to", snap);
  registry_refresh_snapshots (id);
  return 0;
}

static int
cmd_clone (json_object *req, json_object *res)
{
  struct publish_result pr;
  const char *id, *src, *snap;
  uint64_t max;
  bool limited;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      arg_export_id (req, "source_export_id", &src) == -1 ||
      arg_snapshot_id (req, "source_snapshot_id", false, &snap) == -1 ||
      arg_cache_max (req, &limited, &max) == -1)
    return -1;
  if (refuse_loaded (id) == -1 ||
      publish_clone (env, id, src, snap, &pr) == -1 ||
      load_limited (id, OWNER_TAKEOVER_NO, limited, max) == -1)
    return -1;
  return reply_status (res, id);
}

/* Fork: the export's local state moves to a new export made from its
 * base (fork.c); the export itself loads again with no local state.
 */
struct fork_args {
  const char *id, *new_id;
};

static int
fork_before (void *opaque, struct volume *v)
{
  struct fork_args *a = opaque;
  struct volume_status s;

  volume_status (v, &s);
  if (s.readonly)
    return err_set (EINVAL, "%s is a snapshot view: it has no local writes "
                    "to fork", a->id);
  if (refuse_loaded (a->new_id) == -1)
    return -1;
  return fork_create (env, a->id, &s.base, s.image_size, s.chunk_size,
                      a->new_id);
}

static int
fork_after (void *opaque)
{
  struct fork_args *a = opaque;

  return fork_move_cache (env, a->id, a->new_id);
}

static int
cmd_fork (json_object *req, json_object *res)
{
  struct fork_args a;

  if (arg_export_id (req, "export_id", &a.id) == -1 ||
      arg_export_id (req, "new_export_id", &a.new_id) == -1)
    return -1;
  if (strcmp (a.id, a.new_id) == 0)
    return err_set (EINVAL, "an export cannot be forked onto itself");
  if (registry_unload_then (a.id, "fork", fork_before, fork_after, &a) == -1) {
    /* Unloaded before it failed: load it again, as it was. */
    if (!registry_loaded (a.id)) {
      struct err_saved why;

      err_save (&why);
      if (registry_load (a.id, OWNER_TAKEOVER_NO) == -1)
        log_warn ("%s", err_msg ());
      err_restore (&why);
    }
    return -1;
  }
  log_info ("forked the local writes of %s into export %s", a.id, a.new_id);
  if (registry_load (a.id, OWNER_TAKEOVER_NO) == -1)
    log_warn ("%s (after the fork into %s)", err_msg (), a.new_id);
  if (registry_load (a.new_id, OWNER_TAKEOVER_NO) == -1)
    return -1;
  return reply_status (res, a.new_id);
}

static const char *
kind_name (enum manifest_kind kind)
{
  return kind == MANIFEST_BASE ? "base"
    : kind == MANIFEST_CLONE ? "clone" : "delta";
}

static int
cmd_snapshots (json_object *req, json_object *res)
{
  CLEANUP_FREE struct snapshot_info *list = NULL;
  json_object *a;
  const char *id;
  size_t n;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      publish_list (env, id, &list, &n) == -1)
    return -1;
  a = json_object_new_array ();
  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_new_object ();
    add_str (o, "snapshot_id", list[i].snapshot_id);
    add_u64 (o, "generation", list[i].generation);
    add_str (o, "created", list[i].created);
    json_object_object_add (o, "kind",
                            json_object_new_string (kind_name (list[i].kind)));
    add_str (o, "parent", list[i].parent);
    add_u64 (o, "blob_size", list[i].blob_size);
    add_u64 (o, "chunks", list[i].chunks);
    add_u64 (o, "image_size", list[i].image_size);
    add_str (o, "label", list[i].label);
    json_object_object_add (o, "current",
                            json_object_new_boolean (list[i].current));
    json_object_array_add (a, o);
  }
  json_object_object_add (res, "snapshots", a);
  return 0;
}

static int
cmd_delete_snapshot (json_object *req, json_object *res)
{
  char view[EXPORT_ID_MAX + 2 + SNAPSHOT_ID_LEN];
  const char *id, *snap;
  bool kept;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      arg_snapshot_id (req, "snapshot_id", true, &snap) == -1)
    return -1;
  /* A loaded read-only view of the snapshot goes first (not while a
   * client uses it).
   */
  snprintf (view, sizeof view, "%s@%s", id, snap);
  if (registry_unload (view) == -1 && errno != ENOENT)
    return -1;
  if (publish_delete (env, id, snap, &kept) == -1)
    return -1;
  json_object_object_add (res, "blob_kept", json_object_new_boolean (kept));
  registry_refresh_snapshots (id);
  return 0;
}

static int
cmd_reset (json_object *req, json_object *res)
{
  struct volume *v;
  const char *id;
  int r;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      (v = registry_get_exclusive (id, "reset")) == NULL)
    return -1;
  r = volume_reset (v);
  if (r == 0)
    r = status_add (res, v, env);
  registry_put_exclusive (v);
  return r;
}

static int
cmd_hydrate (json_object *req, json_object *res)
{
  struct volume *v;
  const char *name;
  int r;

  if (arg_name (req, &name) == -1 ||
      (v = registry_get (name, false, false)) == NULL)
    return -1;
  r = volume_hydrate (v);
  if (r == 0)
    r = status_add (res, v, env);
  registry_put (v, false);
  return r;
}

static int
metrics_add (void *opaque, struct volume *v)
{
  json_object *o = json_object_new_object ();
  struct volume_status s;

  volume_status (v, &s);
  json_object_object_add (o, "export_id",
                          json_object_new_string (volume_name (v)));
  add_u64 (o, "resident_chunks", s.cache.resident);
  add_u64 (o, "dirty_chunks", s.cache.dirty);
  add_u64 (o, "read_hits", s.cache.read_hits);
  add_u64 (o, "read_misses", s.cache.read_misses);
  add_u64 (o, "fills", s.cache.fills);
  add_u64 (o, "fill_bytes", s.cache.fill_bytes);
  add_u64 (o, "fill_errors", s.cache.fill_errors);
  add_u64 (o, "cache_used_bytes", s.cache.used_bytes);
  add_u64 (o, "evictions", s.cache.evictions);
  add_u64 (o, "bypass_reads", s.cache.bypass_reads);
  add_u64 (o, "refused_writes", s.cache.refused_writes);
  add_u64 (o, "publishes", s.publishes);
  add_u64 (o, "publish_ns", s.publish_ns);
  add_u64 (o, "last_publish_ns", s.last_publish_ns);
  add_u64 (o, "connections", registry_connections (volume_name (v)));
  json_object_array_add (opaque, o);
  return 0;
}

/* Add the non-zero cells of counter table T as [{op, reason, count}]. */
static void
add_counter_table (json_object *o, const char *key,
                   const uint64_t t[STORE_OPS][STORE_WHYS])
{
  json_object *a = json_object_new_array ();

  for (int op = 0; op < STORE_OPS; op++)
    for (int why = 0; why < STORE_WHYS; why++)
      if (t[op][why]) {
        json_object *cell = json_object_new_object ();
        add_str (cell, "op", store_op_name (op));
        add_str (cell, "reason", store_why_name (why));
        add_u64 (cell, "count", t[op][why]);
        json_object_array_add (a, cell);
      }
  json_object_object_add (o, key, a);
}

/* The latency buckets of ranged GETs, as [{"le_ns": BOUND, "count": N}]
 * (N of them took at most BOUND and more than the bound before); the
 * last bucket's le_ns is null (above every bound).
 */
static json_object *
new_latency_buckets (const struct store_stats *ss)
{
  static const uint64_t bounds[] = STORE_LATENCY_BOUNDS_NS;
  json_object *a = json_object_new_array ();

  for (size_t b = 0; b < STORE_LATENCY_BUCKETS; b++) {
    json_object *o = json_object_new_object ();

    json_object_object_add (o, "le_ns", b < STORE_LATENCY_BUCKETS - 1
                            ? json_object_new_uint64 (bounds[b]) : NULL);
    add_u64 (o, "count", ss->range_get_buckets[b]);
    json_object_array_add (a, o);
  }
  return a;
}

static int
cmd_metrics (json_object *req, json_object *res)
{
  json_object *st = json_object_new_object ();
  json_object *cache = json_object_new_object ();
  json_object *a = json_object_new_array ();
  struct cache_budget_stats bs;
  struct store_stats ss;

  cache_budget_get_stats (env->budget, &bs);
  add_u64 (cache, "budget_bytes",
           bs.max_bytes == CACHE_NO_LIMIT ? 0 : bs.max_bytes);
  add_u64 (cache, "used_bytes", bs.used_bytes);
  add_u64 (cache, "dirty_bytes", bs.dirty_bytes);
  add_u64 (cache, "evictions", bs.evictions);
  json_object_object_add (res, "cache", cache);
  store_get_stats (env->st, &ss);
  add_u64 (st, "requests", ss.requests);
  add_counter_table (st, "errors", ss.errors);
  add_counter_table (st, "retries", ss.retries);
  add_u64 (st, "bytes_in", ss.bytes_in);
  add_u64 (st, "bytes_out", ss.bytes_out);
  add_u64 (st, "range_gets", ss.range_gets);
  add_u64 (st, "range_get_ns", ss.range_get_ns);
  json_object_object_add (st, "range_get_buckets", new_latency_buckets (&ss));
  json_object_object_add (res, "store", st);
  json_object_object_add (res, "exports", a);
  return registry_foreach (metrics_add, a);
}

/* registry_id_fn: add ID to array OPAQUE, unless closed here. */
static int
add_id (void *opaque, const char *id)
{
  if (!registry_skip_closed (id))
    json_object_array_add (opaque, json_object_new_string (id));
  return 0;
}

/* The export ids of the store, for lazyvold to open (discovery). */
static int
cmd_discover (json_object *req, json_object *res)
{
  json_object *a = json_object_new_array ();

  json_object_object_add (res, "export_ids", a);
  return registry_list_ids (add_id, a);
}

typedef int (*command_fn) (json_object *req, json_object *res);

/* What gc found (and did), as members of O. */
static void
add_gc_report (json_object *o, const struct gc_report *r)
{
  json_object *a = json_object_new_array ();

  for (size_t i = 0; i < r->n; i++) {
    json_object *obj = json_object_new_object ();

    add_str (obj, "key", r->objects[i].key);
    add_u64 (obj, "size", r->objects[i].size);
    json_object_object_add (obj, "deleted",
                            json_object_new_boolean (r->objects[i].deleted));
    json_object_array_add (a, obj);
  }
  json_object_object_add (o, "objects", a);
  add_u64 (o, "bytes", r->bytes);
  a = json_object_new_array ();
  for (size_t i = 0; i < r->nuploads; i++) {
    json_object *up = json_object_new_object ();
    char when[32];

    time_iso8601 (r->uploads[i].initiated_ms, when);
    add_str (up, "key", r->uploads[i].key);
    add_str (up, "upload_id", r->uploads[i].id);
    add_str (up, "initiated", when);
    json_object_object_add (up, "deleted",
                            json_object_new_boolean (r->uploads[i].deleted));
    json_object_array_add (a, up);
  }
  json_object_object_add (o, "uploads", a);
  add_u64 (o, "young", r->young);
  add_u64 (o, "busy", r->busy);
  add_u64 (o, "unexpected", r->unexpected);
  add_u64 (o, "used", r->used);
}

/* Delete: the export's local cache, and with "remote" its objects in
 * the store (delete.c), unloading it.  Checked once it is exclusive (no
 * client, no command, no publish): its owner only, for "remote"; no
 * unpublished writes unless "discard_local".  The head goes before the
 * unload, while this host owns the export, so that no other host can
 * take it in between; the rest after, while it is still listed, so that
 * an open meanwhile fails as for a loaded export (EEXIST), and after it
 * as for a missing one.
 */
struct delete_args {
  const char *id;
  bool remote, discard;
  bool cache_removed;           /* a local cache was there, and is gone */
  struct delete_report r;
};

static int
delete_before (void *opaque, struct volume *v)
{
  struct delete_args *a = opaque;
  struct volume_status s;

  volume_status (v, &s);
  /* The store has no conditional delete: the lease is what keeps another
   * host from taking the export (and fencing the head) until the head is
   * gone, as for a publish; a takeover by force is the admin's.
   */
  if (a->remote && (!s.owned || !s.lease_valid))
    return err_set (EROFS, "export %s is not this host's (%s): only its "
                    "owner can delete it from the store", a->id,
                    !s.owned ? (s.notice[0] ? s.notice : "another host owns "
                                "it") : "its lease has lapsed");
  if (s.cache.dirty > 0) {
    if (!a->discard)
      return err_set (EBUSY, "export %s has %ju unpublished dirty chunk%s: "
                      "snapshot it first, or delete with discard_local",
                      a->id, (uintmax_t) s.cache.dirty,
                      s.cache.dirty == 1 ? "" : "s");
    /* Dropped now, so that the unload gives the ownership back. */
    if (volume_reset (v) == -1)
      return -1;
  }
  return a->remote ? delete_head (env, a->id) : 0;
}

/* Remove the cache directory of A's export, if there is one. */
static int
delete_cache (struct delete_args *a)
{
  CLEANUP_FREE char *dir = str_printf ("%s/%s", env->cache_root, a->id);
  struct stat st;

  if (dir == NULL)
    return err_set (ENOMEM, "delete %s: out of memory", a->id);
  if (lstat (dir, &st) == -1 && errno == ENOENT)
    return 0;
  if (dir_remove (dir) == -1 || fsync_dir (env->cache_root) == -1)
    return err_prefix ("delete the local cache of %s", a->id);
  log_info ("%s: deleted the local cache %s", a->id, dir);
  a->cache_removed = true;
  return 0;
}

/* Once unloaded: the cache directory, then the remote rest. */
static int
delete_after (void *opaque)
{
  struct delete_args *a = opaque;

  /* A local delete records the close first: a crash before the cache
   * is gone must not bring the export back at the next start.
   */
  if ((!a->remote && registry_set_closed (a->id, true) == -1) ||
      delete_cache (a) == -1 ||
      (a->remote && delete_rest (env, a->id, &a->r) == -1))
    return -1;
  return a->remote ? registry_set_closed (a->id, false) : 0;
}

/* Finish the remote delete of A's export, not loaded here, which an
 * earlier one began (its head is gone).  A local cache left is removed
 * with "discard_local" only: it may hold writes never published (this
 * host lost the export, then another deleted it).
 */
static int
delete_finish (struct delete_args *a)
{
  if (delete_check_resume (env, a->id) == -1 ||
      delete_head (env, a->id) == -1 ||      /* refs/current.json, if left */
      delete_rest (env, a->id, &a->r) == -1 ||
      (a->discard && delete_cache (a) == -1))
    return -1;
  if (!a->r.found && !a->cache_removed)
    return err_set (ENOENT, "export %s does not exist", a->id);
  return registry_set_closed (a->id, false);
}

static int
cmd_delete (json_object *req, json_object *res)
{
  struct delete_args a = { 0 };
  json_object *o;
  int r;

  if (arg_export_id (req, "export_id", &a.id) == -1 ||
      arg_bool (req, "remote", false, &a.remote) == -1 ||
      arg_bool (req, "discard_local", false, &a.discard) == -1)
    return -1;
  /* The cache directory is the process's own there (it holds the cache
   * id and the views too), and the export could not be served again.
   */
  if (env->direct)
    return err_set (ENOTSUP, "delete %s: refused in direct mode, where "
                    "the process serves this one export from its own cache "
                    "directory: stop it, and delete the export from a "
                    "lazyvold serving the export root", a.id);
  if (registry_loaded (a.id))
    r = registry_unload_then (a.id, "delete", delete_before, delete_after,
                              &a);
  else if (!a.remote)
    return err_set (ENOENT, "no export named \"%s\" is loaded (open it, "
                    "then delete it)", a.id);
  else
    r = delete_finish (&a);
  if (r == 0) {
    add_str (res, "export_id", a.id);
    json_object_object_add (res, "remote", json_object_new_boolean (a.remote));
    json_object_object_add (res, "cache_removed",
                            json_object_new_boolean (a.cache_removed));
    if (a.remote) {
      o = json_object_new_object ();
      add_u64 (o, "snapshots", a.r.snapshots);
      add_gc_report (o, &a.r.gc);
      json_object_object_add (res, "store", o);
    }
  }
  delete_report_free (&a.r);
  return r;
}

/* Collect V's garbage: a dry run unless "delete" is true.  The export
 * is claimed as a long operation, so no publish runs meanwhile.
 */
static int
cmd_gc (json_object *req, json_object *res)
{
  struct gc_report r;
  struct volume *v;
  const char *id;
  uint64_t grace = GC_GRACE_DEFAULT_S;
  bool delete;
  int ret;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      arg_bool (req, "delete", false, &delete) == -1 ||
      arg_u64 (req, "grace_s", false, &grace) == -1 ||
      (v = registry_get (id, false, false)) == NULL)
    return -1;
  if (volume_op_begin (v, VOLUME_GC) == -1) {
    registry_put (v, false);
    return -1;
  }
  ret = gc_run (v, delete, grace, &r);
  volume_op_end (v, ret == 0);
  registry_put (v, false);
  add_gc_report (res, &r);
  json_object_object_add (res, "dry_run", json_object_new_boolean (!delete));
  gc_report_free (&r);
  return ret;
}

/* A marker as a reply object: its key relative to the export root and,
 * if WRITTEN is not NULL, whether fsck wrote it.
 */
static json_object *
new_marker (const struct ref *ref, const bool *written)
{
  CLEANUP_FREE char *key = key_ref ("", ref->writer, ref->snapshot,
                                    ref->user);
  json_object *o = json_object_new_object ();

  add_str (o, "key", key ? key : "?");
  if (written)
    json_object_object_add (o, "repaired",
                            json_object_new_boolean (*written));
  return o;
}

/* fsck's report as the reply RES. */
static void
add_fsck_report (json_object *res, const struct fsck_report *r, bool repair)
{
  json_object *a, *u = json_object_new_object ();

  json_object_object_add (res, "repair", json_object_new_boolean (repair));
  add_u64 (res, "snapshots", r->snapshots);
  a = json_object_new_array ();
  for (size_t i = 0; i < r->nbad; i++)
    json_object_array_add (a, json_object_new_string (r->bad_manifests[i]));
  json_object_object_add (res, "bad_manifests", a);
  a = json_object_new_array ();
  for (size_t i = 0; i < r->nsummaries; i++) {
    json_object *o = json_object_new_object ();

    add_str (o, "snapshot_id", r->summaries[i].snapshot_id);
    add_str (o, "problem", r->summaries[i].missing ? "missing" : "wrong");
    json_object_object_add (o, "repaired", json_object_new_boolean
                            (r->summaries[i].repaired));
    json_object_array_add (a, o);
  }
  json_object_object_add (res, "summaries", a);
  a = json_object_new_array ();
  for (size_t i = 0; i < r->nmissing; i++)
    json_object_array_add (a, new_marker (&r->missing[i].ref,
                                          &r->missing[i].written));
  json_object_object_add (res, "markers_missing", a);
  a = json_object_new_array ();
  for (size_t i = 0; i < r->stale.n; i++)
    json_object_array_add (a, new_marker (&r->stale.r[i], NULL));
  json_object_object_add (res, "markers_stale", a);
  add_gc_report (u, &r->unreferenced);
  json_object_object_add (res, "unreferenced", u);
  add_u64 (res, "problems", fsck_problems (r));
}

/* Check V's objects in the store; repair what can be with "repair".  The
 * export is claimed as a long operation, like gc.
 */
static int
cmd_fsck (json_object *req, json_object *res)
{
  struct fsck_report r;
  struct volume *v;
  const char *id;
  bool repair;
  int ret;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      arg_bool (req, "repair", false, &repair) == -1 ||
      (v = registry_get (id, false, false)) == NULL)
    return -1;
  if (volume_op_begin (v, VOLUME_FSCK) == -1) {
    registry_put (v, false);
    return -1;
  }
  ret = fsck_run (v, repair, &r);
  volume_op_end (v, ret == 0);
  registry_put (v, false);
  if (ret == 0)
    add_fsck_report (res, &r, repair);
  fsck_report_free (&r);
  return ret;
}

static const command_fn commands[CMD_COUNT] = {
#define HANDLER(name) [CMD_##name] = cmd_##name,
  PROTOCOL_COMMANDS (HANDLER)
#undef HANDLER
};

json_object *
commands_error_reply (void)
{
  json_object *res = json_object_new_object ();
  char msg[ERR_MSG_MAX];

  snprintf (msg, sizeof msg, "%s", err_msg ());
  utf8_sanitize (msg);
  json_object_object_add (res, "ok", json_object_new_boolean (false));
  json_object_object_add (res, "error", json_object_new_string (msg));
  json_object_object_add (res, "code",
                          json_object_new_string (err_code (err_errno ())));
  return res;
}

json_object *
commands_run (const char *line, size_t len)
{
  json_tokener *tok = json_tokener_new_ex (PROTOCOL_JSON_DEPTH);
  json_object *req = NULL, *res = json_object_new_object ();
  const char *cmd;
  int r = -1, i;

  err_clear ();
  /* "ok" first: lazyvold knows a success from the line's start. */
  json_object_object_add (res, "ok", json_object_new_boolean (true));
  if (tok == NULL) {
    err_set (ENOMEM, "out of memory");
    goto reply;
  }
  /* Strings must be UTF-8, so that an error quoting one is valid JSON. */
  json_tokener_set_flags (tok, JSON_TOKENER_VALIDATE_UTF8);
  req = json_tokener_parse_ex (tok, line, len);
  if (req == NULL || json_tokener_get_parse_end (tok) != len) {
    err_set (EINVAL, "malformed JSON request: %s",
             req ? "trailing data"
             : json_tokener_error_desc (json_tokener_get_error (tok)));
    goto reply;
  }
  if (!json_object_is_type (req, json_type_object)) {
    err_set (EINVAL, "a request must be a JSON object");
    goto reply;
  }
  if (arg_string (req, "cmd", true, &cmd) == -1)
    goto reply;
  if ((i = protocol_cmd_parse (cmd)) == -1)
    err_set (EINVAL, "unknown command \"%.40s\"", cmd);
  else
    r = commands[i] (req, res);

 reply:
  if (r == -1) {
    json_object_put (res);
    res = commands_error_reply ();
  }
  json_object_put (req);
  if (tok)
    json_tokener_free (tok);
  return res;
}
