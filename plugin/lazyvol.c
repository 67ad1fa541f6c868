/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* nbdkit-lazyvol-plugin: block devices whose durable home is an object
 * store, with a lazily filled local cache.
 *
 * This file only translates nbdkit callbacks into calls to the core in
 * common/: configuration, the export list, and the data path of one
 * connection (handle.c: a connection's volume, a view loaded lazily).  Everything with
 * state — the cache, fills, publishing — lives in common/ and is shared
 * with lazyvold.
 *
 * Thread model PARALLEL: the cache is safe for concurrent requests on any
 * number of connections, and all connections to an export share one
 * state, so multi-conn is advertised (a flush on one connection makes
 * every connection's acknowledged writes durable).
 *
 * Block sizes: minimum 1, because every byte offset works; preferred 4096,
 * because read-modify-write only happens on the first partial write to a
 * chunk that is not cached (afterwards any size costs the same), so
 * asking clients for chunk-sized I/O would only inflate small writes;
 * maximum 32 MiB, the most nbdkit accepts for a read or write.
 *
 * Direct mode (cache-dir=DIR remote-prefix=ROOT/ID, see volume.c): one
 * export, or with snapshot=S only its view ID@S, loaded at start (after
 * the fork, as discovery would be) and served under its name and as
 * the default export "", so that clients that send no name reach it.
 * The prefix's last component is the export id, the rest the export
 * root, both checked as export-root and export ids are.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "commands.h"
#include "control.h"
#include "crash.h"
#include "err.h"
#include "format.h"
#include "handle.h"
#include "jobs.h"
#include "lease.h"
#include "owner.h"
#include "pool.h"
#include "publish.h"
#include "registry.h"
#include "store.h"
#include "util.h"

#define POOL_QUEUE 1024

static struct store_config cfg = { .backend = STORE_S3, .retries = 5,
                                   .timeout_ms = 30000,
                                   .file_mode = 0600 };
static bool backend_given;
static char *cache_root;
static char *export_root;
static char *cache_dir;         /* direct mode */
static char *remote_prefix;
static char *direct_snapshot;
static char direct_id[EXPORT_ID_MAX + 1];
static char *direct_name;       /* "ID" or "ID@S" */
static bool discover_given;
static char *bucket;
static char *control_path;
static uint64_t cache_max_size = CACHE_NO_LIMIT;
static uint64_t readahead = 128 * 1024 * 1024;
static unsigned fetch_threads = 16;
static unsigned idle_views = IDLE_VIEWS_DEFAULT;
static bool discover = true;
static char host_id[HOST_ID_MAX + 1];
static char cache_id[SNAPSHOT_ID_LEN + 1];
static unsigned lease_secs = 30;
static enum owner_takeover takeover = OWNER_TAKEOVER_NO;
static bool unconditional;

static struct store *st;
static struct volume_env env;

/* Debug flags, set with nbdkit -D lazyvol.FLAG=N (see the man page). */
NBDKIT_DLL_PUBLIC int lazyvol_debug_publish_delay = 0;
NBDKIT_DLL_PUBLIC int lazyvol_debug_clone_delay = 0;

static void
log_sink (enum log_level level, const char *msg)
{
  switch (level) {
  case LOG_LV_ERROR: nbdkit_error ("%s", msg); break;
  case LOG_LV_WARN: nbdkit_error ("warning: %s", msg); break;
  default: nbdkit_debug ("%s", msg); break;
  }
}

/* Report this thread's recorded error to nbdkit and return -1. */
static int
fail (void)
{
  int e = err_errno ();

  nbdkit_error ("%s", err_msg ());
  /* Store failures reach the client as EIO. */
  nbdkit_set_error (e == EROFS || e == ENOTSUP || e == EINVAL ||
                    e == ENOSPC || e == ENOMEM ? e : EIO);
  return -1;
}

static void
lazyvol_load (void)
{
  log_set_sink (log_sink);
  log_set_level (LOG_LV_DEBUG);   /* nbdkit filters debug output itself */
}

static void
lazyvol_unload (void)
{
  free (cache_root);
  free (export_root);
  free (cache_dir);
  free (remote_prefix);
  free (direct_snapshot);
  free (direct_name);
  free (bucket);
  free (control_path);
}

static int
parse_unsigned (const char *key, const char *value, unsigned *out,
                unsigned min, unsigned max)
{
  if (nbdkit_parse_unsigned (key, value, out) == -1)
    return -1;
  if (*out < min || *out > max) {
    nbdkit_error ("%s must be between %u and %u", key, min, max);
    return -1;
  }
  return 0;
}

static int
replace (char **dst, char *value)
{
  if (value == NULL)
    return -1;
  free (*dst);
  *dst = value;
  return 0;
}

/* VALUE without its trailing slashes (a prefix), or NULL. */
static char *
strip_slashes (const char *value)
{
  size_t n = strlen (value);

  while (n > 0 && value[n - 1] == '/')
    n--;
  return strndup (value, n);
}

/* Direct mode: check the parameters and split remote-prefix into the
 * export root and the export id.  0 or -1.
 */
static int
config_direct (void)
{
  int at;
  const char *id;

  if (cache_dir == NULL || remote_prefix == NULL) {
    nbdkit_error ("direct mode needs both cache-dir=DIR and "
                  "remote-prefix=PREFIX");
    return -1;
  }
  if (cache_root || export_root) {
    nbdkit_error ("cache-dir and remote-prefix (direct mode: one export) "
                  "replace cache-root and export-root; give one pair");
    return -1;
  }
  if (discover_given) {
    nbdkit_error ("discover does not apply to direct mode: its one export "
                  "is opened at start");
    return -1;
  }
  if ((at = id_prefix_split (remote_prefix)) == -1) {
    nbdkit_error ("remote-prefix must be an export root and an export id "
                  "([A-Za-z0-9][A-Za-z0-9._-]{0,127}), as in exports/vm01, "
                  "or the id alone, not \"%.200s\"", remote_prefix);
    return -1;
  }
  id = remote_prefix + at;
  snprintf (direct_id, sizeof direct_id, "%s", id);
  direct_name = direct_snapshot ? xasprintf ("%s@%s", id, direct_snapshot)
    : xasprintf ("%s", id);
  export_root = strndup (remote_prefix, at > 0 ? at - 1 : 0);
  cache_root = cache_dir;
  cache_dir = NULL;
  return export_root ? 0 : -1;
}

static int
lazyvol_config (const char *key, const char *value)
{
  int b;

  if (strcmp (key, "cache-root") == 0)
    return replace (&cache_root, nbdkit_absolute_path (value));
  if (strcmp (key, "export-root") == 0)
    return replace (&export_root, strip_slashes (value));
  if (strcmp (key, "cache-dir") == 0)
    return replace (&cache_dir, nbdkit_absolute_path (value));
  if (strcmp (key, "remote-prefix") == 0)
    return replace (&remote_prefix, strip_slashes (value));
  if (strcmp (key, "snapshot") == 0) {
    if (!id_snapshot_valid (value)) {
      nbdkit_error ("snapshot must be a snapshot id (32 lowercase hex "
                    "digits), not \"%.80s\"", value);
      return -1;
    }
    return replace (&direct_snapshot, strdup (value));
  }
  if (strcmp (key, "bucket") == 0)
    return replace (&bucket, strdup (value));
  if (strcmp (key, "storage-backend") == 0) {
    if ((b = store_parse_backend (value)) == -1) {
      nbdkit_error ("storage-backend must be file, s3 or r2, not %s", value);
      return -1;
    }
    cfg.backend = b;
    backend_given = true;
    return 0;
  }
  if (strcmp (key, "endpoint-url") == 0)
    return (cfg.endpoint_url = nbdkit_strdup_intern (value)) ? 0 : -1;
  if (strcmp (key, "region") == 0)
    return (cfg.region = nbdkit_strdup_intern (value)) ? 0 : -1;
  if (strcmp (key, "r2-account-id") == 0)
    return (cfg.r2_account_id = nbdkit_strdup_intern (value)) ? 0 : -1;
  if (strcmp (key, "s3-addressing") == 0) {
    if (strcmp (value, "path") == 0)
      cfg.addressing = STORE_ADDR_PATH;
    else if (strcmp (value, "virtual") == 0)
      cfg.addressing = STORE_ADDR_VIRTUAL;
    else {
      nbdkit_error ("s3-addressing must be path or virtual, not %s", value);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "control") == 0)
    return replace (&control_path, nbdkit_absolute_path (value));
  if (strcmp (key, "cache-max-size") == 0) {
    if (size_check (key, value, &cache_max_size) == -1) {
      nbdkit_error ("%s", err_msg ());
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "readahead") == 0) {
    if (!parse_size (value, &readahead) || readahead > (UINT64_C (1) << 40)) {
      nbdkit_error ("readahead must be a size from 0 to 1T (128M, 1G), "
                    "not %s", value);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "fetch-threads") == 0)
    return parse_unsigned (key, value, &fetch_threads, 1, 256);
  if (strcmp (key, "idle-views") == 0)
    return parse_unsigned (key, value, &idle_views, 0, 100000);
  if (strcmp (key, "file-mode") == 0) {
    char *end;
    errno = 0;
    cfg.file_mode = strtoul (value, &end, 8);
    if (errno || value[0] < '0' || value[0] > '7' || *end != '\0') {
      nbdkit_error ("file-mode must be an octal mode such as 0640, not %s",
                    value);
      return -1;
    }
    return 0;                   /* the file store checks the bits */
  }
  if (strcmp (key, "retries") == 0)
    return parse_unsigned (key, value, &cfg.retries, 0, 100);
  if (strcmp (key, "timeout") == 0) {
    if (!store_parse_timeout (value, &cfg.timeout_ms)) {
      nbdkit_error ("timeout must be seconds (30, 2s) or milliseconds "
                    "(1500ms), from 1ms to 3600s, not %s", value);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "discover") == 0) {
    if ((b = nbdkit_parse_bool (value)) == -1)
      return -1;
    discover = b;
    discover_given = true;
    return 0;
  }
  if (strcmp (key, "host-id") == 0) {
    if (!host_id_valid (value)) {
      nbdkit_error ("host-id must be 1 to %d letters, digits, '.', '_' or "
                    "'-', starting with a letter or digit, not \"%.80s\"",
                    HOST_ID_MAX, value);
      return -1;
    }
    snprintf (host_id, sizeof host_id, "%s", value);
    return 0;
  }
  if (strcmp (key, "lease") == 0)
    return parse_unsigned (key, value, &lease_secs, 3, 3600);
  if (strcmp (key, "takeover") == 0) {
    if (owner_parse_takeover (value, &takeover) == -1) {
      nbdkit_error ("%s", err_msg ());
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "unsafe-no-conditional-puts") == 0) {
    if ((b = nbdkit_parse_bool (value)) == -1)
      return -1;
    unconditional = b;
    return 0;
  }
  nbdkit_error ("unknown parameter '%s' (see nbdkit-lazyvol-plugin(1))", key);
  return -1;
}

static int
lazyvol_config_complete (void)
{
  if (cache_dir || remote_prefix) {
    if (config_direct () == -1)
      return -1;
  }
  else if (direct_snapshot) {
    nbdkit_error ("snapshot=ID needs direct mode (cache-dir, remote-prefix)");
    return -1;
  }
  if (cache_root == NULL) {
    nbdkit_error ("cache-root=DIR is required (or, for direct mode, "
                  "cache-dir=DIR remote-prefix=ROOT/ID)");
    return -1;
  }
  if (export_root == NULL && (export_root = strdup ("exports")) == NULL)
    return -1;
  /* No bucket and no backend: the embedded store under the cache root,
   * so the plugin works with nothing else installed.
   */
  if (bucket == NULL && !backend_given) {
    cfg.backend = STORE_FILE;
    bucket = xasprintf ("%s/.store", cache_root);
  }
  if (bucket == NULL) {
    nbdkit_error ("bucket=BUCKET is required with storage-backend=%s",
                  store_backend_name (cfg.backend));
    return -1;
  }
  if (cfg.backend == STORE_FILE) {
    char *abs = nbdkit_absolute_path (bucket);
    if (replace (&bucket, abs) == -1)
      return -1;
  }
  cfg.bucket = bucket;
  return 0;
}

#define lazyvol_config_help \
  "cache-root=DIR          Local cache directory (required, unless\n" \
  "                        direct mode).\n" \
  "cache-dir=DIR remote-prefix=ROOT/ID  Direct mode: serve export ID alone,\n" \
  "                        its cache in DIR (both, instead of cache-root\n" \
  "                        and export-root).\n" \
  "snapshot=ID             Direct mode: serve only that snapshot, read-only.\n" \
  "bucket=BUCKET           Bucket, or directory for storage-backend=file.\n" \
  "storage-backend=file|s3|r2  Object store (default s3 with a bucket,\n" \
  "                        else file under CACHE-ROOT/.store).\n" \
  "export-root=PREFIX      Prefix of the exports in the bucket (exports).\n" \
  "endpoint-url=URL        S3-compatible endpoint.\n" \
  "region=REGION           S3 region (us-east-1; auto for r2).\n" \
  "r2-account-id=ID        Cloudflare account id for storage-backend=r2.\n" \
  "s3-addressing=path|virtual  S3 URL style.\n" \
  "control=SOCKET          Control socket (mode 0600).\n" \
  "cache-max-size=SIZE     Bytes all the exports' caches may take together;\n" \
  "                        clean chunks are evicted (no limit).\n" \
  "readahead=SIZE          Most read ahead of a sequential stream (128M).\n" \
  "fetch-threads=N         Background fetch threads (16).\n" \
  "idle-views=N            Unused snapshot views kept loaded (8).\n" \
  "file-mode=MODE          Mode of new file-store objects (0600).\n" \
  "retries=N               Object store retries (5).\n" \
  "timeout=30|2s|1500ms    Object store stall timeout, seconds or ms (30).\n" \
  "discover=false          Do not load the exports found at start (not\n" \
  "                        in direct mode).\n" \
  "host-id=ID              This host's name in owner records (host name).\n" \
  "lease=SECS              Lease period: a host that loses an export stops\n" \
  "                        writing to it within this time (30).\n" \
  "takeover=true|force     Take discovered exports from an owner whose lease\n" \
  "                        expired (true) or at once (force: dangerous).\n" \
  "unsafe-no-conditional-puts=true  Own exports on a store without\n" \
  "                        conditional puts (two hosts may both write)."

static int
lazyvol_get_ready (void)
{
  CLEANUP_FREE char *probe = NULL;

  if (mkdir_p (cache_root, 0700) == -1)
    return fail ();
  /* The export root becomes part of every key: check it once here. */
  probe = xasprintf ("%s%sx", export_root, export_root[0] ? "/" : "");
  if (!store_key_valid (probe, false)) {
    nbdkit_error ("invalid %s \"%s\"",
                  direct_name ? "remote-prefix" : "export-root",
                  direct_name ? remote_prefix : export_root);
    return -1;
  }
  st = store_open (&cfg);
  if (st == NULL || owner_cache_id (cache_root, cache_id) == -1 ||
      (env.budget = cache_budget_new (cache_max_size)) == NULL)
    return fail ();
  if (host_id[0] == '\0')
    owner_default_host_id (host_id);
  env.st = st;
  env.root = export_root;
  env.cache_root = cache_root;
  if (direct_name) {
    env.direct = direct_id;
    env.direct_snapshot = direct_snapshot;
  }
  env.readahead = readahead;
  env.host_id = host_id;
  env.cache_id = cache_id;
  env.unconditional = unconditional;
  publish_delay_ms = lazyvol_debug_publish_delay;
  clone_delay_ms = lazyvol_debug_clone_delay;
  return 0;
}

/* Every loaded export holds two descriptors (cache.raw, cache.meta) and
 * every connection one: the usual soft limit of 1,024 would stop a
 * process near 500 exports.  Raise it to the hard limit, which the
 * administrator chose (nbdkit and lazyvol use poll, never select).
 */
static void
raise_fd_limit (void)
{
  struct rlimit rl;
  rlim_t was;

  if (getrlimit (RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= rl.rlim_max)
    return;
  was = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit (RLIMIT_NOFILE, &rl) == 0)
    nbdkit_debug ("lazyvol: descriptor limit raised from %ju to %ju",
                  (uintmax_t) was, (uintmax_t) rl.rlim_max);
}

/* Direct mode: load the one export or view.  An export not created yet
 * is created over the control socket; any other failure ends nbdkit
 * (a supervisor starts it again).  0 or -1.
 */
static int
load_direct (void)
{
  if (registry_load (direct_name, takeover) == 0)
    return 0;
  if (errno == ENOENT && direct_snapshot == NULL) {
    nbdkit_error ("warning: %s; create it over the control socket",
                  err_msg ());
    return 0;
  }
  return fail ();
}

static int
lazyvol_after_fork (void)
{
  raise_fd_limit ();
  /* Threads only after nbdkit has forked. */
  env.pool = pool_new (fetch_threads, POOL_QUEUE);
  if (env.pool == NULL)
    return fail ();
  {
    struct lease_config lc = {
      .root = export_root, .host_id = host_id, .cache_id = cache_id,
      .period_ms = lease_secs * 1000, .unconditional = unconditional,
    };
    env.lease = lease_start (st, &lc);
    if (env.lease == NULL)
      return fail ();
  }
  registry_init (&env, idle_views);
  if (direct_name) {
    if (load_direct () == -1)
      return -1;
  }
  else if (discover)
    registry_discover (takeover);
  commands_init (&env);
  if (control_path && control_start (control_path) == -1)
    return fail ();
  return 0;
}

static void
lazyvol_cleanup (void)
{
  control_stop ();
  jobs_wait ();
  registry_shutdown ();
  lease_stop (env.lease);
  pool_free (env.pool);
  cache_budget_free (env.budget);
  store_close (st);
}

static void
add_view (void *opaque, const char *name)
{
  nbdkit_add_export (opaque, name, "read-only snapshot");
}

static int
add_export (void *opaque, struct volume *v)
{
  return nbdkit_add_export (opaque, volume_name (v),
                            volume_readonly (v) ? "read-only snapshot"
                            : "lazyvol export");
}

static int
lazyvol_list_exports (int readonly, int is_tls, struct nbdkit_exports *exps)
{
  if (registry_foreach (add_export, exps) == -1)
    return -1;
  registry_foreach_view_name (add_view, exps);
  return 0;
}

static const char *
lazyvol_default_export (int readonly, int is_tls)
{
  char name[EXPORT_ID_MAX + 1];

  /* "" means the only export, if there is exactly one; in direct mode
   * the export or view this process serves.
   */
  if (direct_name)
    return direct_name;
  if (!registry_default_name (name))
    return NULL;
  return nbdkit_strdup_intern (name);
}

static void *
lazyvol_open (int readonly)
{
  const char *name = nbdkit_export_name ();
  struct handle *h;

  if (name == NULL || name[0] == '\0') {
    nbdkit_error ("no export name given and no single default export");
    nbdkit_set_error (ENOENT);
    return NULL;
  }
  h = handle_open (name);
  if (h == NULL) {
    nbdkit_error ("%s", err_msg ());
    nbdkit_set_error (ENOENT);
  }
  return h;
}

static void
lazyvol_close (void *handle)
{
  handle_close (handle);
}

static int64_t
lazyvol_get_size (void *handle)
{
  return handle_size (handle);
}

static int
lazyvol_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                    uint32_t *maximum)
{
  *minimum = 1;
  *preferred = 4096;
  *maximum = 32 * 1024 * 1024;
  return 0;
}

static int
lazyvol_can_write (void *handle)
{
  return handle_writable (handle);
}

static int
lazyvol_true (void *handle)
{
  return 1;
}

static int
lazyvol_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
lazyvol_can_cache (void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

static int
lazyvol_is_rotational (void *handle)
{
  return 0;
}

static int
lazyvol_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
               uint32_t flags)
{
  struct volume *v = handle_volume (handle);

  if (v == NULL)
    return fail ();
  return volume_pread (v, buf, count, offset) == -1 ? fail () : 0;
}

static int
lazyvol_pwrite (void *handle, const void *buf, uint32_t count,
                uint64_t offset, uint32_t flags)
{
  struct volume *v = handle_volume (handle);

  if (v == NULL)
    return fail ();
  return volume_pwrite (v, buf, count, offset,
                        flags & NBDKIT_FLAG_FUA) == -1 ? fail () : 0;
}

static int
lazyvol_flush (void *handle, uint32_t flags)
{
  struct volume *v = handle_volume (handle);

  if (v == NULL)
    return fail ();
  return volume_flush (v) == -1 ? fail () : 0;
}

static int
lazyvol_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct volume *v = handle_volume (handle);

  if (v == NULL)
    return fail ();
  return volume_zero (v, count, offset,
                      CACHE_ZERO_TRIM | CACHE_ZERO_MAY_TRIM,
                      flags & NBDKIT_FLAG_FUA) == -1 ? fail () : 0;
}

static int
lazyvol_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  unsigned zflags = (flags & NBDKIT_FLAG_MAY_TRIM ? CACHE_ZERO_MAY_TRIM : 0) |
    (flags & NBDKIT_FLAG_FAST_ZERO ? CACHE_ZERO_FAST : 0);
  struct volume *v = handle_volume (handle);

  if (v == NULL)
    return fail ();

  if (volume_zero (v, count, offset, zflags,
                   flags & NBDKIT_FLAG_FUA) == -1) {
    /* A fast zero that would be slow is not an error to log. */
    if (err_errno () == ENOTSUP && (flags & NBDKIT_FLAG_FAST_ZERO)) {
      nbdkit_set_error (ENOTSUP);
      return -1;
    }
    return fail ();
  }
  return 0;
}

static int
add_extent (void *opaque, uint64_t offset, uint64_t length, unsigned type)
{
  return nbdkit_add_extent (opaque, offset, length,
                            type == CACHE_EXTENT_HOLE
                            ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0);
}

static int
lazyvol_extents (void *handle, uint32_t count, uint64_t offset,
                 uint32_t flags, struct nbdkit_extents *extents)
{
  uint32_t cs = handle_chunk_size (handle);
  struct volume *v = handle_volume (handle);

  if (v == NULL)
    return fail ();

  /* With REQ_ONE nbdkit needs only the first extent; one chunk gives it. */
  if ((flags & NBDKIT_FLAG_REQ_ONE) && count > cs)
    count = cs - offset % cs;
  return volume_extents (v, count, offset, add_extent,
                         extents) == -1 ? fail () : 0;
}

static int
lazyvol_cache (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct volume *v = handle_volume (handle);

  if (v == NULL)
    return fail ();
  return volume_prefetch (v, count, offset) == -1 ? fail () : 0;
}

static void
lazyvol_dump_plugin (void)
{
  printf ("lazyvol_version=%s\n", VERSION);
  printf ("lazyvol_backends=file,s3,r2\n");
  printf ("lazyvol_crash_points=%s\n", crash_points_enabled () ? "yes" : "no");
}

static struct nbdkit_plugin plugin = {
  .name = "lazyvol",
  .longname = "lazyvol: block devices over object storage",
  .version = VERSION,
  .description = "Serve exports whose durable home is an object store, "
  "with a lazily filled local cache and published snapshots.",
  .load = lazyvol_load,
  .unload = lazyvol_unload,
  .config = lazyvol_config,
  .config_complete = lazyvol_config_complete,
  .config_help = lazyvol_config_help,
  .dump_plugin = lazyvol_dump_plugin,
  .get_ready = lazyvol_get_ready,
  .after_fork = lazyvol_after_fork,
  .cleanup = lazyvol_cleanup,
  .list_exports = lazyvol_list_exports,
  .default_export = lazyvol_default_export,
  .open = lazyvol_open,
  .close = lazyvol_close,
  .get_size = lazyvol_get_size,
  .block_size = lazyvol_block_size,
  .can_write = lazyvol_can_write,
  .can_flush = lazyvol_true,
  .is_rotational = lazyvol_is_rotational,
  .can_trim = lazyvol_can_write,
  .can_zero = lazyvol_can_write,
  .can_fast_zero = lazyvol_true,
  .can_extents = lazyvol_true,
  .can_fua = lazyvol_can_fua,
  .can_multi_conn = lazyvol_true,
  .can_cache = lazyvol_can_cache,
  .pread = lazyvol_pread,
  .pwrite = lazyvol_pwrite,
  .flush = lazyvol_flush,
  .trim = lazyvol_trim,
  .zero = lazyvol_zero,
  .extents = lazyvol_extents,
  .cache = lazyvol_cache,
  .errno_is_preserved = 0,
};

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
NBDKIT_REGISTER_PLUGIN (plugin)
