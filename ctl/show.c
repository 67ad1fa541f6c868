/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvolctl: replies as text for people (see show.h).
 *
 * Tables are built whole, then printed with each column as wide as its
 * widest cell: names left-aligned, numbers right-aligned.  A status is
 * one "name  value" line per fact, with sizes both in chunks and in
 * bytes, since people think in bytes and lazyvol counts in chunks.
 * lazyvolctl is a short-lived command: running out of memory aborts it
 * (xasprintf) rather than printing half a table.
 */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "show.h"
#include "util.h"

const char *
show_str (json_object *o, const char *key)
{
  json_object *v;

  if (o && json_object_object_get_ex (o, key, &v) &&
      json_object_is_type (v, json_type_string))
    return json_object_get_string (v);
  return NULL;
}

uint64_t
show_u64 (json_object *o, const char *key)
{
  json_object *v;

  if (o && json_object_object_get_ex (o, key, &v) &&
      json_object_is_type (v, json_type_int))
    return json_object_get_uint64 (v);
  return 0;
}

double
show_f64 (json_object *o, const char *key)
{
  json_object *v;

  if (o && json_object_object_get_ex (o, key, &v) &&
      (json_object_is_type (v, json_type_double) ||
       json_object_is_type (v, json_type_int)))
    return json_object_get_double (v);
  return 0;
}

bool
show_bool (json_object *o, const char *key)
{
  json_object *v;

  return o && json_object_object_get_ex (o, key, &v) &&
    json_object_get_boolean (v);
}

const char *
show_bytes (uint64_t n, char buf[SHOW_BUF])
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
                                       "PiB", "EiB" };
  unsigned u = 0;
  double v = n;

  while (v >= 1024 && u < sizeof units / sizeof units[0] - 1) {
    v /= 1024;
    u++;
  }
  if (u == 0 || v >= 100 || v == (uint64_t) v)
    snprintf (buf, SHOW_BUF, "%.0f %s", v, units[u]);
  else
    snprintf (buf, SHOW_BUF, "%.1f %s", v, units[u]);
  return buf;
}

const char *
show_duration (double secs, char buf[SHOW_BUF])
{
  uint64_t s = secs < 0 ? 0 : (uint64_t) (secs + 0.5);

  if (s < 60)
    snprintf (buf, SHOW_BUF, "%" PRIu64 " s", s);
  else if (s < 3600)
    snprintf (buf, SHOW_BUF, "%" PRIu64 " min %" PRIu64 " s", s / 60, s % 60);
  else if (s < 86400)
    snprintf (buf, SHOW_BUF, "%" PRIu64 " h %" PRIu64 " min", s / 3600,
              s % 3600 / 60);
  else
    snprintf (buf, SHOW_BUF, "%" PRIu64 " days %" PRIu64 " h", s / 86400,
              s % 86400 / 3600);
  return buf;
}

const char *
show_ago (const char *iso, char buf[SHOW_BUF])
{
  struct tm tm = { 0 };
  const char *end = strptime (iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
  double secs;

  if (end == NULL || *end) {
    snprintf (buf, SHOW_BUF, "%s", iso);
    return buf;
  }
  secs = difftime (time (NULL), timegm (&tm));
  if (secs < 0)                 /* the daemon's clock is ahead */
    snprintf (buf, SHOW_BUF, "%s", iso);
  else if (secs < 5)
    snprintf (buf, SHOW_BUF, "just now");
  else if (secs < 60)
    snprintf (buf, SHOW_BUF, "%.0f s ago", secs);
  else if (secs < 3600)
    snprintf (buf, SHOW_BUF, "%.0f min ago", secs / 60);
  else if (secs < 2 * 86400)
    snprintf (buf, SHOW_BUF, "%.0f h ago", secs / 3600);
  else
    snprintf (buf, SHOW_BUF, "%.0f days ago", secs / 86400);
  return buf;
}

/* A table: NCOLS columns, a header row, then rows of cells. */
struct table {
  size_t ncols, ncells;
  const char *align;            /* 'l' or 'r' per column */
  char **cells;
};

/* Add one row of T.NCOLS cells, each a string, copied. */
static void
table_row (struct table *t, ...)
{
  va_list ap;

  t->cells = realloc (t->cells, (t->ncells + t->ncols) * sizeof *t->cells);
  if (t->cells == NULL)
    abort ();
  va_start (ap, t);
  for (size_t i = 0; i < t->ncols; i++)
    t->cells[t->ncells++] = xasprintf ("%s", va_arg (ap, const char *));
  va_end (ap);
}

/* Print T aligned, and free its cells. */
static void
table_print (struct table *t)
{
  size_t width[16] = { 0 };

  for (size_t i = 0; i < t->ncells; i++) {
    size_t len = strlen (t->cells[i]);
    if (len > width[i % t->ncols])
      width[i % t->ncols] = len;
  }
  for (size_t i = 0; i < t->ncells; i++) {
    size_t col = i % t->ncols;
    bool last = col == t->ncols - 1;
    /* No trailing blanks after a left-aligned last column. */
    int w = last && t->align[col] == 'l' ? 0 : (int) width[col];

    printf (t->align[col] == 'r' ? "%*s%s" : "%-*s%s", w, t->cells[i],
            last ? "\n" : "  ");
    free (t->cells[i]);
  }
  free (t->cells);
}

/* Print one "name  value" line of a status; VALUE is printf's. */
static void __attribute__ ((__format__ (__printf__, 2, 3)))
line (const char *name, const char *fmt, ...)
{
  va_list ap;

  printf ("%-12s", name);
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  putchar ('\n');
}

/* "N chunks (SIZE, P%)" of STATUS's chunks into BUF. */
static const char *
chunks (json_object *status, uint64_t n, char buf[2 * SHOW_BUF])
{
  uint64_t size = n * show_u64 (status, "chunk_size");
  uint64_t image = show_u64 (status, "image_size");
  uint64_t count = show_u64 (status, "chunk_count");
  char b[SHOW_BUF];

  if (size > image)
    size = image;               /* the last chunk may be short */
  if (n == 0)
    return strcpy (buf, "none");
  snprintf (buf, 2 * SHOW_BUF, "%" PRIu64 " chunk%s, %s (%.0f%%)", n,
            n == 1 ? "" : "s", show_bytes (size, b),
            count ? 100.0 * n / count : 0.0);
  return buf;
}

/* The operation of STATUS ("idle", "snapshotting 29%") into BUF. */
static const char *
operation (json_object *status, char buf[SHOW_BUF])
{
  json_object *p = NULL;
  const char *state = show_str (status, "operation_state");
  uint64_t done, total;

  json_object_object_get_ex (status, "operation_progress", &p);
  done = show_u64 (p, "done");
  total = show_u64 (p, "total");
  if (state && strcmp (state, "idle") != 0 && total > 0) {
    char d[SHOW_BUF], t[SHOW_BUF], r[SHOW_BUF];

    snprintf (buf, SHOW_BUF, "%s %.0f%%: %s of %s, %s/s", state,
              100.0 * done / total, show_bytes (show_u64 (p, "done_bytes"), d),
              show_bytes (show_u64 (p, "total_bytes"), t),
              show_bytes (show_u64 (p, "bytes_per_s"), r));
  }
  else
    snprintf (buf, SHOW_BUF, "%s", state ? state : "-");
  return buf;
}

/* How STATUS's last operation ended ("snapshot done 2 min ago in 1.2 s,
 * snapshot ...", "hydrate failed 5 s ago: ...", or with its warning)
 * into BUF, or NULL if none has ended.
 */
static const char *
last_operation (json_object *status, char buf[2 * SHOW_BUF])
{
  json_object *l = NULL;
  const char *result, *snap;
  char ago[SHOW_BUF], took[SHOW_BUF];
  int n;

  json_object_object_get_ex (status, "last_operation", &l);
  if (l == NULL)
    return NULL;
  result = show_str (l, "result") ?: "-";
  snap = show_str (l, "snapshot_id");
  n = snprintf (buf, 2 * SHOW_BUF, "%s %s %s in %s",
                show_str (l, "kind") ?: "-", result,
                show_ago (show_str (l, "finished_at") ?: "-", ago),
                show_duration (show_f64 (l, "duration_s"), took));
  if (strcmp (result, "failed") == 0)
    snprintf (buf + n, 2 * SHOW_BUF - n, ": %s",
              show_str (l, "error") ?: "-");
  else if (show_str (l, "warning"))
    snprintf (buf + n, 2 * SHOW_BUF - n, ": %s", show_str (l, "warning"));
  else if (snap && show_bool (l, "snapshot_created"))
    snprintf (buf + n, 2 * SHOW_BUF - n, ": snapshot %s (generation %"
              PRIu64 ")", snap, show_u64 (l, "generation"));
  else if (snap)
    snprintf (buf + n, 2 * SHOW_BUF - n, ": nothing to publish");
  return buf;
}

/* The cache budget of STATUS ("12 MiB of its own limit of 64 MiB, 3
 * chunks evicted; all exports: 40 MiB of the budget of 1 GiB") into BUF.
 */
static const char *
cache_budget (json_object *status, char buf[4 * SHOW_BUF])
{
  json_object *b = NULL, *own = NULL, *max = NULL;
  char used[SHOW_BUF], lim[SHOW_BUF], all[SHOW_BUF], budget[SHOW_BUF];
  int n;

  json_object_object_get_ex (status, "cache_budget", &b);
  json_object_object_get_ex (b, "export_max_bytes", &own);
  json_object_object_get_ex (b, "max_bytes", &max);
  n = snprintf (buf, 4 * SHOW_BUF, "%s",
                show_bytes (show_u64 (b, "export_used_bytes"), used));
  if (own)
    n += snprintf (buf + n, 4 * SHOW_BUF - n, " of its own limit of %s",
                   show_bytes (json_object_get_uint64 (own), lim));
  if (show_u64 (b, "export_evictions"))
    n += snprintf (buf + n, 4 * SHOW_BUF - n, ", %" PRIu64 " chunks evicted",
                   show_u64 (b, "export_evictions"));
  snprintf (buf + n, 4 * SHOW_BUF - n, "; all exports: %s%s%s",
            show_bytes (show_u64 (b, "used_bytes"), all),
            max ? " of the budget of " : ", no budget",
            max ? show_bytes (json_object_get_uint64 (max), budget) : "");
  return buf;
}

/* Why STATUS's export is not an ordinary writable one, or "". */
static const char *
note (json_object *status)
{
  if (show_bool (status, "failed_stop"))
    return "failed stop";
  if (show_bool (status, "readonly"))
    return "snapshot view";
  if (show_bool (status, "stale"))
    return "stale writes";
  if (!show_bool (status, "writable"))
    return "read-only here";
  return "";
}

void
show_status (json_object *st)
{
  const char *snap = show_str (st, "snapshot_id"), *s;
  json_object *owner = NULL, *lease = NULL, *base = NULL, *budget = NULL;
  char b1[SHOW_BUF], b2[SHOW_BUF], c[4 * SHOW_BUF];

  json_object_object_get_ex (st, "owner", &owner);
  json_object_object_get_ex (st, "lease", &lease);
  json_object_object_get_ex (st, "based_on", &base);
  json_object_object_get_ex (st, "cache_budget", &budget);
  line ("export", "%s", show_str (st, "export_id") ?: "-");
  if (snap)
    line ("snapshot", "%s (generation %" PRIu64 ")", snap,
          show_u64 (st, "snapshot_generation"));
  else
    line ("snapshot", "none yet");
  if (show_u64 (st, "remote_head_generation") !=
      show_u64 (st, "snapshot_generation"))
    line ("head", "generation %" PRIu64 " in the store",
          show_u64 (st, "remote_head_generation"));
  line ("size", "%s in %" PRIu64 " chunk%s of %s%s",
        show_bytes (show_u64 (st, "image_size"), b1),
        show_u64 (st, "chunk_count"),
        show_u64 (st, "chunk_count") == 1 ? "" : "s",
        show_bytes (show_u64 (st, "chunk_size"), b2),
        show_u64 (st, "pending_image_size")
        ? " (resized: the next snapshot publishes it)" : "");
  line ("resident", "%s", chunks (st, show_u64 (st, "resident_chunks"), c));
  line ("dirty", "%s", chunks (st, show_u64 (st, "dirty_chunks"), c));
  line ("cache", "%s", cache_budget (st, c));
  if (show_bool (budget, "full"))
    line ("cache full", "%s", show_str (budget, "notice") ?: "-");
  line ("operation", "%s", operation (st, b1));
  if (last_operation (st, c))
    line ("last op", "%s", c);
  line ("clients", "%" PRIu64, show_u64 (st, "connections"));
  if (show_bool (st, "readonly"))
    line ("writable", "no: a read-only view of a snapshot");
  else if (show_bool (st, "writable"))
    line ("writable", "yes");
  else
    line ("writable", "no: %s", show_str (st, "notice") ?: "-");
  if (show_str (owner, "host_id"))
    line ("owner", "%s%s, epoch %" PRIu64 ", since %s",
          show_str (owner, "host_id"),
          show_bool (owner, "this_host") ? " (this host)" : "",
          show_u64 (owner, "epoch"),
          show_ago (show_str (owner, "since") ?: "-", b1));
  if (lease) {
    json_object *age = NULL;

    json_object_object_get_ex (lease, "age_ms", &age);
    line ("lease", "%s, renewed %s%s, period %s",
          show_bool (lease, "valid") ? "valid" : "LAPSED",
          age ? show_duration (json_object_get_int64 (age) / 1000.0, b1)
          : "never", age ? " ago" : "",
          show_duration (show_u64 (lease, "period_ms") / 1000.0, b2));
  }
  if (show_bool (st, "stale"))
    line ("stale", "local writes are based on snapshot %s (generation %"
          PRIu64 ")", show_str (base, "snapshot_id") ?: "-",
          show_u64 (base, "generation"));
  if (show_bool (st, "failed_stop"))
    line ("failed stop", "yes: close and open the export");
  if (show_u64 (st, "suspect_chunks"))
    line ("suspect", "%" PRIu64 " chunks", show_u64 (st, "suspect_chunks"));
  if ((s = show_str (st, "last_error")) != NULL)
    line ("last error", "%s", s);
  if (show_bool (st, "unsafe_no_conditional_puts"))
    line ("unsafe", "no conditional puts: ownership is not enforced");
}

/* The array KEY of REPLY, and its length; if it is empty, say EMPTY
 * (unless it is NULL).
 */
static size_t
array (json_object *reply, const char *key, const char *empty,
       json_object **a)
{
  size_t n;

  *a = NULL;
  json_object_object_get_ex (reply, key, a);
  n = json_object_is_type (*a, json_type_array)
    ? json_object_array_length (*a) : 0;
  if (n == 0 && empty)
    printf ("%s\n", empty);
  return n;
}

/* The integer field KEY of O, in decimal, into BUF. */
static const char *
number (json_object *o, const char *key, char buf[SHOW_BUF])
{
  snprintf (buf, SHOW_BUF, "%" PRIu64, show_u64 (o, key));
  return buf;
}

void
show_list (json_object *reply)
{
  struct table t = { .ncols = 8, .align = "lrrrrrll" };
  json_object *a;
  size_t n = array (reply, "exports", "no exports are loaded", &a);

  if (n == 0)
    return;
  table_row (&t, "EXPORT", "SIZE", "CHUNK", "RESIDENT", "DIRTY", "GEN",
             "OPERATION", "NOTE");
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (a, i);
    char size[SHOW_BUF], chunk[SHOW_BUF], res[SHOW_BUF], dirty[SHOW_BUF],
      gen[SHOW_BUF], op[SHOW_BUF];

    snprintf (res, sizeof res, "%" PRIu64 "/%" PRIu64,
              show_u64 (e, "resident_chunks"), show_u64 (e, "chunk_count"));
    table_row (&t, show_str (e, "export_id") ?: "-",
               show_bytes (show_u64 (e, "image_size"), size),
               show_bytes (show_u64 (e, "chunk_size"), chunk), res,
               number (e, "dirty_chunks", dirty),
               number (e, "snapshot_generation", gen), operation (e, op),
               note (e));
  }
  table_print (&t);
}

void
show_snapshots (json_object *reply)
{
  json_object *a;
  size_t n = array (reply, "snapshots", "no snapshots are published", &a);
  bool labels = false;
  struct table t = { .align = "lrlrrll" };

  if (n == 0)
    return;
  /* A column of labels only if a snapshot has one. */
  for (size_t i = 0; i < n; i++)
    labels |= show_str (json_object_array_get_idx (a, i), "label") != NULL;
  t.ncols = labels ? 7 : 6;
  table_row (&t, "SNAPSHOT", "GEN", "CREATED", "SIZE", "CHUNKS", "KIND",
             "LABEL");
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (a, i);
    char gen[SHOW_BUF], ago[SHOW_BUF], size[SHOW_BUF], nchunks[SHOW_BUF],
      kind[SHOW_BUF];

    snprintf (kind, sizeof kind, "%s%s", show_str (e, "kind") ?: "-",
              show_bool (e, "current") ? " (current)" : "");
    table_row (&t, show_str (e, "snapshot_id") ?: "-",
               number (e, "generation", gen),
               show_ago (show_str (e, "created") ?: "-", ago),
               show_bytes (show_u64 (e, "blob_size"), size),
               number (e, "chunks", nchunks), kind,
               show_str (e, "label") ?: "");
  }
  table_print (&t);
}

void
show_unused (json_object *reply, const char *hint)
{
  json_object *a;
  size_t n = array (reply, "objects", NULL, &a);
  char b[SHOW_BUF];

  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_array_get_idx (a, i);

    printf ("%s  %s%s\n", show_str (o, "key") ?: "-",
            show_bytes (show_u64 (o, "size"), b),
            show_bool (o, "deleted") ? "  deleted" : "");
  }
  printf ("%zu unused object%s, %s%s\n", n, n == 1 ? "" : "s",
          show_bytes (show_u64 (reply, "bytes"), b), n ? hint : "");
  n = array (reply, "uploads", NULL, &a);
  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_array_get_idx (a, i);
    const char *when = show_str (o, "initiated");

    printf ("%s  upload %s, begun %s%s\n", show_str (o, "key") ?: "-",
            show_str (o, "upload_id") ?: "-",
            when ? show_ago (when, b) : "-",
            show_bool (o, "deleted") ? "  aborted" : "");
  }
  if (n)
    printf ("%zu unfinished upload%s%s\n", n, n == 1 ? "" : "s", hint);
  if (show_u64 (reply, "young") || show_u64 (reply, "busy"))
    printf ("not looked at: %" PRIu64 " younger than the grace period "
            "(perhaps still in use), %" PRIu64 " of the publish under way\n",
            show_u64 (reply, "young"), show_u64 (reply, "busy"));
  if (show_u64 (reply, "unexpected"))
    printf ("%" PRIu64 " object%s that lazyvol does not write (see "
            "lazyvold's log), left alone\n", show_u64 (reply, "unexpected"),
            show_u64 (reply, "unexpected") == 1 ? "" : "s");
}

void
show_fsck (json_object *reply)
{
  json_object *a, *u = NULL;
  size_t n = show_u64 (reply, "snapshots");

  printf ("%zu snapshot%s checked; bad manifests %zu, summaries missing or "
          "wrong %zu, markers missing %zu, stale markers %zu\n", n,
          n == 1 ? "" : "s", array (reply, "bad_manifests", NULL, &a),
          array (reply, "summaries", NULL, &a),
          array (reply, "markers_missing", NULL, &a),
          array (reply, "markers_stale", NULL, &a));
  n = array (reply, "bad_manifests", NULL, &a);
  for (size_t i = 0; i < n; i++)
    printf ("manifest of snapshot %s: does not parse (fsck cannot repair "
            "it)\n", json_object_get_string (json_object_array_get_idx (a, i)));
  n = array (reply, "summaries", NULL, &a);
  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_array_get_idx (a, i);

    printf ("summary of snapshot %s: %s%s\n",
            show_str (o, "snapshot_id") ?: "-", show_str (o, "problem") ?: "-",
            show_bool (o, "repaired") ? " (written again)" : "");
  }
  n = array (reply, "markers_missing", NULL, &a);
  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_array_get_idx (a, i);

    printf ("marker %s: missing%s\n", show_str (o, "key") ?: "-",
            show_bool (o, "repaired") ? " (written)" : "");
  }
  n = array (reply, "markers_stale", NULL, &a);
  for (size_t i = 0; i < n; i++)
    printf ("marker %s: stale (names no blob the export uses; left)\n",
            show_str (json_object_array_get_idx (a, i), "key") ?: "-");
  json_object_object_get_ex (reply, "unreferenced", &u);
  show_unused (u, " (lazyvolctl gc --delete deletes them)");
}

void
show_health (json_object *reply)
{
  char up[SHOW_BUF];

  printf ("lazyvold %s: %s, %s mode, nbdkit pid %" PRIu64 "%s, "
          "%" PRIu64 " nbdkit restarts, up %s\n",
          show_str (reply, "version") ?: "-",
          show_str (reply, "status") ?: "-",
          show_str (reply, "mode") ?: "-", show_u64 (reply, "nbdkit_pid"),
          show_bool (reply, "adopted") ? " (adopted)" : "",
          show_u64 (reply, "nbdkit_restarts"),
          show_duration (show_u64 (reply, "uptime_s"), up));
}
