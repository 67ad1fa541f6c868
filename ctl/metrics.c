/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: the Prometheus text exposition (see metrics.h).
 *
 * The plugin keeps the counters; lazyvold only renames them.  Each
 * metric is one row of a table naming the field of the plugin's reply it
 * comes from, so adding one is one line.  The format wants every sample
 * of a metric right after its HELP and TYPE lines, so the per-export
 * metrics loop over the exports inside the loop over the table.
 * Nanosecond fields are shown in seconds, exactly (integer arithmetic).
 * Per-export series are given for a bounded number of exports
 * (--metrics-exports), so that a process serving thousands does not
 * make every scrape a megabyte: the others are counted, not shown.
 * Every append is checked: out of memory fails the whole exposition
 * rather than serve one with metrics missing.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "metrics.h"
#include "util.h"

struct metric {
  const char *name;
  const char *type;             /* "counter" or "gauge" */
  const char *help;
  const char *field;            /* of the plugin's reply */
  bool ns;                      /* FIELD is nanoseconds: show seconds */
};

static const struct metric store_metrics[] = {
  { "lazyvol_store_requests_total", "counter",
    "Requests sent to the object store, retries included.",
    "requests", false },
  { "lazyvol_store_received_bytes_total", "counter",
    "Payload bytes received from the object store.",
    "bytes_in", false },
  { "lazyvol_store_sent_bytes_total", "counter",
    "Payload bytes sent to the object store.",
    "bytes_out", false },
};

static const struct metric cache_metrics[] = {
  { "lazyvol_cache_budget_bytes", "gauge",
    "Bytes all the exports' caches may take together (0: no limit).",
    "budget_bytes", false },
  { "lazyvol_cache_used_bytes", "gauge",
    "Bytes the exports' caches take (resident chunks and fills under way).",
    "used_bytes", false },
  { "lazyvol_cache_dirty_bytes", "gauge",
    "Bytes of the exports' caches written and not published yet.",
    "dirty_bytes", false },
  { "lazyvol_cache_evictions_total", "counter",
    "Clean chunks evicted from the caches to stay within the budget.",
    "evictions", false },
};

static const struct metric export_metrics[] = {
  { "lazyvol_export_cache_hits_total", "counter",
    "Chunk reads served from the local cache.",
    "read_hits", false },
  { "lazyvol_export_cache_misses_total", "counter",
    "Chunk reads that needed a fetch from the object store.",
    "read_misses", false },
  { "lazyvol_export_fills_total", "counter",
    "Chunks fetched into the local cache.",
    "fills", false },
  { "lazyvol_export_fill_bytes_total", "counter",
    "Bytes fetched into the local cache.",
    "fill_bytes", false },
  { "lazyvol_export_fill_errors_total", "counter",
    "Chunk fetches that failed.",
    "fill_errors", false },
  { "lazyvol_export_resident_chunks", "gauge",
    "Chunks present in the local cache, dirty ones included.",
    "resident_chunks", false },
  { "lazyvol_export_dirty_chunks", "gauge",
    "Chunks written locally and not published yet.",
    "dirty_chunks", false },
  { "lazyvol_export_cache_used_bytes", "gauge",
    "Bytes the export's cache takes in the budget.",
    "cache_used_bytes", false },
  { "lazyvol_export_evictions_total", "counter",
    "Clean chunks evicted from the export's cache.",
    "evictions", false },
  { "lazyvol_export_bypass_reads_total", "counter",
    "Chunks read without being kept: no room in the cache budget.",
    "bypass_reads", false },
  { "lazyvol_export_refused_writes_total", "counter",
    "Writes refused (ENOSPC): the cache budget is full of unpublished "
    "writes.", "refused_writes", false },
  { "lazyvol_export_connections", "gauge",
    "NBD clients connected to the export.",
    "connections", false },
  { "lazyvol_export_publishes_total", "counter",
    "Snapshots and compactions published.",
    "publishes", false },
  { "lazyvol_export_publish_seconds_total", "counter",
    "Time spent publishing snapshots and compactions.",
    "publish_ns", true },
  { "lazyvol_export_last_publish_seconds", "gauge",
    "Duration of the last snapshot or compaction.",
    "last_publish_ns", true },
};

static uint64_t
field (json_object *o, const char *key)
{
  json_object *v;

  return json_object_object_get_ex (o, key, &v) ? json_object_get_uint64 (v)
    : 0;
}

/* The functions below that append to the exposition return -1 if out of
 * memory (metrics_format reports it), else 0 or more.
 */

static int
header (struct evbuffer *out, const char *name, const char *type,
        const char *help)
{
  return evbuffer_add_printf (out, "# HELP %s %s\n# TYPE %s %s\n",
                              name, help, name, type);
}

/* One sample line; LABELS is "" or "{...}". */
static int
sample (struct evbuffer *out, const char *name, const char *labels,
        uint64_t v, bool ns)
{
  if (ns)
    return evbuffer_add_printf (out, "%s%s %" PRIu64 ".%09" PRIu64 "\n",
                                name, labels, v / 1000000000,
                                v % 1000000000);
  return evbuffer_add_printf (out, "%s%s %" PRIu64 "\n", name, labels, v);
}

/* {export="ID"} with ID escaped as the format requires, or NULL. */
static char *
export_labels (json_object *e)
{
  json_object *id;
  const char *s = json_object_object_get_ex (e, "export_id", &id)
    ? json_object_get_string (id) : "";
  char *labels = malloc (strlen (s) * 2 + sizeof "{export=\"\"}");
  char *p = labels;

  if (labels == NULL)
    return NULL;
  p = stpcpy (p, "{export=\"");
  for (; *s; s++) {
    if (*s == '\\' || *s == '"' || *s == '\n')
      *p++ = '\\';
    *p++ = *s == '\n' ? 'n' : *s;
  }
  strcpy (p, "\"}");
  return labels;
}

/* Counter NAME by operation and reason, from the plugin's list of
 * {op, reason, count} cells (only cells that are not zero are listed).
 */
static int
format_by_reason (struct evbuffer *out, const char *name, const char *help,
                  json_object *cells)
{
  if (header (out, name, "counter", help) == -1)
    return -1;
  for (size_t i = 0; json_object_is_type (cells, json_type_array) &&
         i < json_object_array_length (cells); i++) {
    json_object *cell = json_object_array_get_idx (cells, i), *op, *why;

    /* The labels come from the plugin's fixed vocabulary: no escaping. */
    if (json_object_object_get_ex (cell, "op", &op) &&
        json_object_object_get_ex (cell, "reason", &why) &&
        evbuffer_add_printf (out, "%s{op=\"%s\",reason=\"%s\"} %" PRIu64
                             "\n", name, json_object_get_string (op),
                             json_object_get_string (why),
                             field (cell, "count")) == -1)
      return -1;
  }
  return 0;
}

/* The buckets NAME{le="SECONDS"} of a histogram, cumulative as the format
 * wants, from the plugin's range_get_buckets ([{le_ns, count}], the last
 * with le_ns null: +Inf).
 */
static int
format_buckets (struct evbuffer *out, const char *name, json_object *store)
{
  json_object *buckets = NULL;
  uint64_t sum = 0;

  json_object_object_get_ex (store, "range_get_buckets", &buckets);
  for (size_t i = 0; json_object_is_type (buckets, json_type_array) &&
         i < json_object_array_length (buckets); i++) {
    json_object *b = json_object_array_get_idx (buckets, i), *le = NULL;
    char bound[32];

    sum += field (b, "count");
    json_object_object_get_ex (b, "le_ns", &le);
    if (le) {
      uint64_t ns = json_object_get_uint64 (le);
      int n = snprintf (bound, sizeof bound, "%" PRIu64 ".%09" PRIu64,
                        ns / 1000000000, ns % 1000000000);

      while (n > 2 && bound[n - 1] == '0' && bound[n - 2] != '.')
        bound[--n] = '\0';
    }
    else
      strcpy (bound, "+Inf");
    if (evbuffer_add_printf (out, "%s{le=\"%s\"} %" PRIu64 "\n", name, bound,
                             sum) == -1)
      return -1;
  }
  return 0;
}

/* The N metrics of TABLE without labels, from the fields of O. */
static int
format_plain (struct evbuffer *out, const struct metric *table, size_t n,
              json_object *o)
{
  for (size_t i = 0; i < n; i++) {
    const struct metric *m = &table[i];
    if (header (out, m->name, m->type, m->help) == -1 ||
        sample (out, m->name, "", field (o, m->field), m->ns) == -1)
      return -1;
  }
  return 0;
}

static int
format_store (struct evbuffer *out, json_object *store)
{
  json_object *errors = NULL, *retries = NULL;

  if (format_plain (out, store_metrics,
                    sizeof store_metrics / sizeof store_metrics[0],
                    store) == -1)
    return -1;
  json_object_object_get_ex (store, "errors", &errors);
  json_object_object_get_ex (store, "retries", &retries);
  if (format_by_reason (out, "lazyvol_store_errors_total",
                        "Object store operations that failed after their "
                        "retries (a missing object or a failed condition is "
                        "an answer, not a failure).", errors) == -1 ||
      format_by_reason (out, "lazyvol_store_retries_total",
                        "Object store requests tried again, by why the try "
                        "failed.", retries) == -1 ||
      header (out, "lazyvol_store_fetch_seconds", "histogram",
              "Latency of the ranged GETs that fetch chunks.") == -1 ||
      format_buckets (out, "lazyvol_store_fetch_seconds_bucket",
                      store) == -1 ||
      sample (out, "lazyvol_store_fetch_seconds_sum", "",
              field (store, "range_get_ns"), true) == -1 ||
      sample (out, "lazyvol_store_fetch_seconds_count", "",
              field (store, "range_gets"), false) == -1)
    return -1;
  return 0;
}

/* The per-export series of the first MAX exports of EXPORTS, then how
 * many exports there are and how many were left out.
 */
static int
format_exports (struct evbuffer *out, json_object *exports, unsigned max)
{
  size_t all = json_object_array_length (exports), j;
  size_t n = all < max ? all : max;
  CLEANUP_FREE char **labels = calloc (n ? n : 1, sizeof *labels);
  int r = -1;

  if (labels == NULL)
    return -1;
  for (j = 0; j < n; j++)
    if ((labels[j] = export_labels (json_object_array_get_idx (exports, j)))
        == NULL)
      goto out;
  for (size_t i = 0; i < sizeof export_metrics / sizeof export_metrics[0];
       i++) {
    const struct metric *m = &export_metrics[i];
    if (header (out, m->name, m->type, m->help) == -1)
      goto out;
    for (j = 0; j < n; j++)
      if (sample (out, m->name, labels[j],
                  field (json_object_array_get_idx (exports, j), m->field),
                  m->ns) == -1)
        goto out;
  }
  if (header (out, "lazyvol_exports", "gauge",
              "Exports and snapshot views loaded.") == -1 ||
      sample (out, "lazyvol_exports", "", all, false) == -1 ||
      header (out, "lazyvol_metrics_exports_omitted", "gauge",
              "Loaded exports whose series were left out "
              "(lazyvold --metrics-exports).") == -1 ||
      sample (out, "lazyvol_metrics_exports_omitted", "", all - n,
              false) == -1)
    goto out;
  r = 0;
 out:
  /* Labels after a failed one are still NULL (calloc). */
  for (j = 0; j < n; j++)
    free (labels[j]);
  return r;
}

int
metrics_format (struct evbuffer *out, json_object *reply, unsigned restarts,
                unsigned max_exports)
{
  json_object *store, *cache, *exports;

  if (header (out, "lazyvold_nbdkit_up", "gauge",
              "Whether nbdkit answers on its control socket.") == -1 ||
      sample (out, "lazyvold_nbdkit_up", "", reply != NULL, false) == -1 ||
      header (out, "lazyvold_nbdkit_restarts_total", "counter",
              "Times lazyvold restarted nbdkit after it died.") == -1 ||
      sample (out, "lazyvold_nbdkit_restarts_total", "", restarts,
              false) == -1)
    goto nomem;
  if (reply == NULL)
    return 0;
  if (json_object_object_get_ex (reply, "store", &store) &&
      format_store (out, store) == -1)
    goto nomem;
  if (json_object_object_get_ex (reply, "cache", &cache) &&
      format_plain (out, cache_metrics,
                    sizeof cache_metrics / sizeof cache_metrics[0],
                    cache) == -1)
    goto nomem;
  if (json_object_object_get_ex (reply, "exports", &exports) &&
      json_object_is_type (exports, json_type_array) &&
      format_exports (out, exports, max_exports) == -1)
    goto nomem;
  return 0;

 nomem:
  return err_set (ENOMEM, "metrics: out of memory");
}
