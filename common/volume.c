/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: an export (see volume.h and volume-impl.h).
 *
 * The export is the cache's source: has() looks a chunk up in the current
 * manifest; fetch() and fetch_run() get a chunk's bytes, or a run's, with
 * ranged GETs of the blobs the manifest names, checked against its
 * SHA-256s (fetch.c).  A mismatch is an I/O error and a log line naming
 * the key; bad bytes are never marked resident, so the next read
 * fetches again.
 *
 * Readahead: readahead.c follows the export's sequential streams of
 * reads and says which chunks to fetch ahead of each (up to
 * env->readahead bytes); they are queued on the shared pool a run
 * (cache_run_chunks) per job, so several fetches run in parallel ahead
 * of each reader, each one ranged GET where the chunks are stored back
 * to back.
 *
 * Hydrate fetches every chunk the manifest lists with HYDRATE_WORKERS
 * threads of its own, claiming one extent at a time, a run at a time;
 * unload cancels it.
 * It evicts nothing: once the cache budget (or the export's own limit)
 * has no room left, it stops and ends done, with a warning that says so.
 * Readahead evicts nothing either: it takes the room that reads leave
 * free when they evict (see "The budget" in cache.c), and without room
 * it fetches nothing.  NBD_CMD_CACHE evicts as reads do.
 *
 * The export's documents in the store (head, manifests, summaries) are
 * read and written by remote.c.  A chunk whose bytes fail their SHA-256
 * is fetched again, REMOTE_FETCH_TRIES times in all, as a document that
 * does not parse is, before it is called corrupt.
 *
 * Direct mode (env->direct): the process serves one export, named by a
 * remote prefix ROOT/ID, from a cache directory the admin names.  That
 * directory is the cache root (it holds the cache id, the size probe and
 * the views' directories) and the export's own cache directory at once:
 * cache.raw, cache.meta and the journal are in it, a view's cache in
 * DIR/ID@SNAPSHOT_ID.  No other export can be created, cloned, forked
 * into or loaded; with env->direct_snapshot only that snapshot's view
 * loads.  The head rule is serve mode's: volume.json is the head; its
 * copy refs/current.json is checked at load and rewritten from it when
 * it disagrees (remote_check_refs), never the other way round.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "err.h"
#include "journal.h"
#include "lease.h"
#include "lock.h"
#include "owner.h"
#include "meta.h"
#include "pool.h"
#include "refs.h"
#include "volume-impl.h"

const char *
volume_op_name (enum volume_op op)
{
  switch (op) {
  case VOLUME_IDLE: return "idle";
  case VOLUME_SNAPSHOT: return "snapshotting";
  case VOLUME_COMPACT: return "compacting";
  case VOLUME_HYDRATE: return "hydrating";
  case VOLUME_RESET: return "resetting";
  case VOLUME_GC: return "collecting";
  case VOLUME_FSCK: return "checking";
  case VOLUME_ROLLBACK: return "rolling back";
  case VOLUME_RESIZE: return "resizing";
  }
  abort ();
}

const char *
volume_op_kind (enum volume_op op)
{
  switch (op) {
  case VOLUME_IDLE: return "none";
  case VOLUME_SNAPSHOT: return "snapshot";
  case VOLUME_COMPACT: return "compact";
  case VOLUME_HYDRATE: return "hydrate";
  case VOLUME_RESET: return "reset";
  case VOLUME_GC: return "gc";
  case VOLUME_FSCK: return "fsck";
  case VOLUME_ROLLBACK: return "rollback";
  case VOLUME_RESIZE: return "resize";
  }
  abort ();
}

const char *
volume_result_name (enum volume_result r)
{
  switch (r) {
  case VOLUME_DONE: return "done";
  case VOLUME_FAILED: return "failed";
  case VOLUME_CANCELLED: return "cancelled";
  }
  abort ();
}

static bool
source_has (void *opaque, uint64_t chunk)
{
  struct volume *v = opaque;
  const char *key;
  uint64_t off;
  const unsigned char *sha;

  RDLOCK_FOR_SCOPE (&v->mlock);
  if (v->base_gone)
    return true;                /* unknown: volume_fetch_chunk refuses */
  return v->manifest && manifest_find (v->manifest, chunk, &key, &off, &sha);
}

static int
source_fetch (void *opaque, uint64_t chunk, void *buf, uint32_t len)
{
  return volume_fetch_chunk (opaque, chunk, buf, len);
}

static int
source_fetch_run (void *opaque, uint64_t chunk, uint64_t n,
                  const struct cache_run_sink *sink, void *run)
{
  return volume_fetch_run (opaque, chunk, n, sink, run);
}

/* Can this host hold the local cache of an image of SIZE bytes in
 * CHUNK_SIZE chunks?  Its chunk state lives in memory (8 bits a chunk),
 * cache.raw is a sparse file of SIZE bytes under the cache root, which
 * the file system must allow (ext4 stops at 16 TiB), and cache.meta is
 * allocated whole, which needs the space now.  Refusing at create beats
 * an export that exists remotely but can never be loaded.
 */
static int
probe_cache (struct volume_env *env, uint64_t size, uint32_t chunk_size)
{
  uint64_t chunks = chunk_count (size, chunk_size);
  uint64_t state = chunks + 8;
  uint64_t ram = (uint64_t) sysconf (_SC_PHYS_PAGES) * sysconf (_SC_PAGESIZE);
  CLEANUP_FREE char *probe = NULL;
  int fd, e = 0;

  if (state > ram / 4)
    return err_set (EFBIG, "an image of %ju bytes in %u-byte chunks needs "
                    "%ju MiB of memory for its cache state, more than a "
                    "quarter of this host's %ju MiB; use larger chunks",
                    (uintmax_t) size, chunk_size, (uintmax_t) (state >> 20),
                    (uintmax_t) (ram >> 20));
  if ((probe = str_printf ("%s/.size-probe.XXXXXX", env->cache_root)) == NULL)
    return -1;
  if ((fd = mkostemp (probe, O_CLOEXEC)) == -1)
    return err_set (errno, "probe the cache root: create %s: %m", probe);
  if (ftruncate (fd, size) == -1)
    e = errno;
  else
    e = posix_fallocate (fd, 0, meta_file_size (chunks));
  close (fd);
  unlink (probe);
  if (e == EFBIG || e == EINVAL)
    return err_set (EFBIG, "the file system of %s cannot hold a %ju-byte "
                    "cache.raw (its largest file is smaller)",
                    env->cache_root, (uintmax_t) size);
  if (e == ENOSPC)
    return err_set (ENOSPC, "no space under %s for the cache of a new "
                    "export", env->cache_root);
  if (e)
    return err_set (e, "probe the cache root %s: %m", env->cache_root);
  return 0;
}

char *
volume_cache_dir (const struct volume_env *env, const char *name)
{
  char *dir = env->direct && strcmp (name, env->direct) == 0
    ? strdup (env->cache_root) : str_printf ("%s/%s", env->cache_root, name);

  if (dir == NULL)
    err_set (ENOMEM, "%s: out of memory", name);
  return dir;
}

/* In direct mode, may this process load EXPORT_ID (the view of
 * SNAPSHOT_ID, or with SNAPSHOT_ID NULL the writable export)?  0, or -1
 * with err_set (EINVAL).
 */
static int
direct_check (const struct volume_env *env, const char *export_id,
              const char *snapshot_id)
{
  if (env->direct == NULL)
    return 0;
  if (strcmp (export_id, env->direct) != 0)
    return err_set (EINVAL, "this process serves export %s alone (direct "
                    "mode), not %s", env->direct, export_id);
  if (env->direct_snapshot &&
      (snapshot_id == NULL || strcmp (snapshot_id, env->direct_snapshot)))
    return err_set (EINVAL, "this process serves the read-only snapshot "
                    "%s@%s alone (direct mode)", env->direct,
                    env->direct_snapshot);
  return 0;
}

int
volume_no_cache (struct volume_env *env, const char *export_id)
{
  CLEANUP_FREE char *dir = NULL;
  struct stat st;

  /* Direct mode: the one export only, and the cache directory exists
   * (it is the cache root): its cache is there if cache.meta is.
   */
  if (direct_check (env, export_id, NULL) == -1)
    return -1;
  dir = env->direct ? str_printf ("%s/cache.meta", env->cache_root)
    : volume_cache_dir (env, export_id);
  if (dir == NULL)
    return -1;
  /* A cache left by an earlier export of that name would resurrect its
   * dirty chunks on top of the new image; and it may be the only copy
   * of writes never published.  Refuse, and say so.
   */
  if (lstat (dir, &st) == 0)
    return err_set (EEXIST, "export %s has a local cache at %s, which may "
                    "hold writes that were never published: open the "
                    "export instead (remove that directory only if you are "
                    "sure nothing in it is needed)", export_id, dir);
  return 0;
}

int
volume_create (struct volume_env *env, const char *export_id,
               uint64_t size, uint32_t chunk_size)
{
  struct volume_head head = { .image_size = size, .chunk_size = chunk_size };

  if (!id_export_valid (export_id))
    return err_set (EINVAL, "invalid export id \"%.140s\" (want "
                    "[A-Za-z0-9][A-Za-z0-9._-]{0,127})", export_id);
  if (size == 0 || size > IMAGE_SIZE_MAX)
    return err_set (EINVAL, "invalid size %ju (want 1 to %ju bytes)",
                    (uintmax_t) size, (uintmax_t) IMAGE_SIZE_MAX);
  if (!chunk_size_valid (chunk_size))
    return err_set (EINVAL, "invalid chunk size %u (want a power of two "
                    "from %u to %u)", chunk_size, CHUNK_SIZE_MIN,
                    CHUNK_SIZE_MAX);
  if (volume_no_cache (env, export_id) == -1 ||
      probe_cache (env, size, chunk_size) == -1)
    return -1;

  snprintf (head.export_id, sizeof head.export_id, "%s", export_id);
  time_now_iso8601 (head.updated);
  if (remote_put_new_head (env, &head) == -1)
    return -1;
  refs_index_new_root (env, export_id);
  return 0;
}

static void
volume_free (struct volume *v)
{
  if (v->ra.chunk_size)
    readahead_destroy (&v->ra);
  manifest_free (v->manifest);
  pthread_rwlock_destroy (&v->mlock);
  pthread_mutex_destroy (&v->oplock);
  free (v->name);
  free (v->cache_dir);
  free (v);
}

static struct volume *
volume_new (struct volume_env *env, const char *export_id,
            const char *snapshot_id)
{
  struct volume *v = calloc (1, sizeof *v);

  if (v == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  v->env = env;
  snprintf (v->export_id, sizeof v->export_id, "%s", export_id);
  v->readonly = snapshot_id != NULL;
  pthread_rwlock_init (&v->mlock, NULL);
  pthread_mutex_init (&v->oplock, NULL);
  v->name = snapshot_id ? str_printf ("%s@%s", export_id, snapshot_id)
    : strdup (export_id);
  v->cache_dir = v->name ? volume_cache_dir (env, v->name) : NULL;
  if (v->cache_dir == NULL) {
    err_set (ENOMEM, "load %s: out of memory", export_id);
    volume_free (v);
    return NULL;
  }
  return v;
}

/* The base a head gives the local state. */
void
volume_head_base (const struct volume_head *head, struct meta_base *b)
{
  memset (b, 0, sizeof *b);
  memcpy (b->snapshot_id, head->snapshot_id, sizeof b->snapshot_id);
  b->generation = head->generation;
  b->epoch = head->epoch;
}

/* Settle the journal of a crashed publish, and serve a stale cache's
 * base.  Called at load, holding the cache's lock, before anything reads.
 */
static int
settle_local (struct volume *v)
{
  char landed[SNAPSHOT_ID_LEN + 1];
  struct meta_base base;

  if (journal_recover (v->env, &v->head, v->cache_dir, landed) == -1 ||
      (landed[0] && volume_settle_landed (v, landed) == -1))
    return -1;
  if (!cache_stale (v->cache, &base))
    return 0;
  /* A fork (fork.c): a cache moved onto a clone of its base, which is the
   * same image.
   */
  if (v->manifest && v->manifest->kind == MANIFEST_CLONE &&
      strcmp (v->manifest->cloned_snapshot, base.snapshot_id) == 0) {
    struct meta_base head;

    volume_head_base (&v->head, &head);
    log_info ("%s: the local writes over snapshot %s now belong to this "
              "export, a clone of it", v->name, base.snapshot_id);
    return cache_rebase (v->cache, &head, false, true);
  }
  /* What this host wrote is over BASE: serve BASE with it, a consistent
   * image, rather than the new head's chunks mixed with old writes.
   */
  log_warn ("%s: the local writes are based on snapshot %s (generation "
            "%ju), but the export's head is now %s (generation %ju): they "
            "are kept and served with their base, never published over the "
            "new head (see \"stale\" in lazyvold(8))", v->name,
            base.snapshot_id[0] ? base.snapshot_id : "(none)",
            (uintmax_t) base.generation,
            v->head.snapshot_id[0] ? v->head.snapshot_id : "(none)",
            (uintmax_t) v->head.generation);
  manifest_free (v->manifest);
  v->manifest = NULL;
  if (base.snapshot_id[0] &&
      (v->manifest = remote_fetch_manifest (v->env, v->export_id,
                                            base.snapshot_id, 0)) == NULL) {
    if (errno != ENOENT)
      return -1;
    v->base_gone = true;
    log_warn ("%s: the snapshot %s its unpublished writes are based on was "
              "deleted: only the written chunks can be read; save them with "
              "\"lazyvold dump-dirty\" (lazyvold(8)), then reset the cache",
              v->name, base.snapshot_id);
  }
  return 0;
}

/* Become the owner of the export just read, if we may (see owner.c). */
static int
take_ownership (struct volume *v, int takeover)
{
  int r = owner_acquire (v->env, &v->head, v->head_etag, takeover, &v->lost,
                         &v->owned, &v->owner, v->owner_why);

  if (r == -1) {
    if (errno != ENOTSUP)
      return -1;
    /* No conditional puts: read-only, and say why. */
    snprintf (v->owner_why, sizeof v->owner_why, "%s", err_msg ());
    log_warn ("%s", v->owner_why);
  }
  v->took = r == 1;
  return 0;
}

struct volume *
volume_load (struct volume_env *env, const char *export_id,
             const char *snapshot_id, int takeover)
{
  struct cache_source src = {
    source_has, source_fetch, source_fetch_run, NULL
  };
  struct meta_base head;
  struct volume *v;

  if (id_export_check ("export id", export_id) == -1 ||
      (snapshot_id && id_snapshot_check ("snapshot id", snapshot_id) == -1) ||
      direct_check (env, export_id, snapshot_id) == -1)
    return NULL;
  v = volume_new (env, export_id, snapshot_id);
  if (v == NULL)
    return NULL;
  src.opaque = v;

  if (snapshot_id == NULL) {
    if (remote_fetch_head (env, export_id, &v->head, v->head_etag) == -1 ||
        take_ownership (v, takeover) == -1)
      goto err;
    if (env->direct)
      remote_check_refs (env, &v->head, v->owned);
    if (v->head.snapshot_id[0] &&
        (v->manifest = remote_fetch_current (env, &v->head)) == NULL)
      goto err;
  }
  else {
    v->manifest = remote_fetch_manifest (env, export_id, snapshot_id, 0);
    if (v->manifest == NULL)
      goto err;
    /* A view's "head" is the snapshot itself. */
    snprintf (v->head.export_id, sizeof v->head.export_id, "%s", export_id);
    memcpy (v->head.snapshot_id, snapshot_id, SNAPSHOT_ID_LEN + 1);
    v->head.image_size = v->manifest->image_size;
    v->head.chunk_size = v->manifest->chunk_size;
    v->head.generation = v->manifest->generation;
  }
  volume_head_base (&v->head, &head);
  v->cache = cache_open (v->cache_dir, v->head.image_size,
                         v->head.chunk_size, &head,
                         CACHE_CREATE | (v->readonly ? CACHE_READONLY
                                         : CACHE_GROWN),
                         &src, env->budget);
  if (v->cache == NULL)
    goto err;
  readahead_init (&v->ra, v->head.chunk_size, cache_run_chunks (v->cache),
                  env->readahead);
  /* Only now, holding the cache's lock: a second process opening the same
   * cache root must fail above, not clean up the live publisher's journal,
   * staging file and objects first.
   */
  if (!v->readonly && settle_local (v) == -1) {
    struct err_saved why;

    err_save (&why);
    cache_close (v->cache);
    err_restore (&why);
    goto err;
  }
  return v;

 err:
  err_prefix ("load %s", v->name);
  if (v->owned) {
    /* Taken only for this load: give it back.  Owned before, it may
     * have unpublished writes here: keep it.
     */
    struct err_saved why;

    err_save (&why);
    if (v->took && owner_release (env, v->export_id, v->owner.epoch) == -1)
      log_warn ("%s", err_msg ());
    lease_drop (env->lease, v->export_id);
    err_restore (&why);
  }
  volume_free (v);
  return NULL;
}

/* Stop the hydrate workers, if any.  Called without v->oplock. */
static void
hydrate_stop (struct volume *v)
{
  unsigned n;

  {
    LOCK_FOR_SCOPE (&v->oplock);
    v->hydrate_cancel = true;
    n = v->hydrate_running;
    v->hydrate_running = 0;
  }
  for (unsigned i = 0; i < n; i++)
    pthread_join (v->hydrate_threads[i], NULL);
}

/* Stop the fills that hydrate and readahead would start. */
static void
quiesce (struct volume *v)
{
  hydrate_stop (v);
  if (v->env->pool)
    pool_cancel (v->env->pool, v);
  readahead_forget (&v->ra);
}

int
volume_unload (struct volume *v)
{
  struct cache_stats st;
  bool resized;
  int r;

  quiesce (v);
  cache_get_stats (v->cache, &st);
  resized = cache_size (v->cache) != v->head.image_size;
  r = cache_close (v->cache);
  if (r == -1)
    err_prefix ("unload %s", v->name);
  /* Another host may take the export at once, unless it would make our
   * unpublished writes stale (a resize not published is one): then the
   * ownership stays (and lapses with the lease if this host does not
   * come back).
   */
  if (v->owned && !atomic_load (&v->lost)) {
    if (st.dirty > 0 || resized)
      log_info ("%s: kept owned by this host: %ju unpublished dirty "
                "chunks%s", v->name, (uintmax_t) st.dirty,
                resized ? " and a resize" : "");
    else if (owner_release (v->env, v->export_id, v->owner.epoch) == -1)
      log_warn ("%s: %s", v->name, err_msg ());
  }
  if (v->owned)
    lease_drop (v->env->lease, v->export_id);
  /* A view's cache is only a copy of its snapshot: it goes with it. */
  if (v->readonly && r == 0 && dir_remove (v->cache_dir) == -1)
    log_warn ("unload %s: %s", v->name, err_msg ());
  volume_free (v);
  return r;
}

const char *
volume_name (const struct volume *v)
{
  return v->name;
}

uint64_t
volume_size (const struct volume *v)
{
  return cache_size (v->cache);         /* the head's, or a resize's */
}

uint32_t
volume_chunk_size (const struct volume *v)
{
  return v->head.chunk_size;
}

bool
volume_readonly (const struct volume *v)
{
  return v->readonly;
}

bool
volume_writable (struct volume *v)
{
  struct meta_base base;

  return !v->readonly && v->owned && !atomic_load (&v->lost) &&
    !cache_stale (v->cache, &base);
}

void
volume_status (struct volume *v, struct volume_status *out)
{
  memset (out, 0, sizeof *out);
  {
    RDLOCK_FOR_SCOPE (&v->mlock);
    memcpy (out->export_id, v->export_id, sizeof out->export_id);
    memcpy (out->snapshot_id, v->head.snapshot_id, sizeof out->snapshot_id);
    out->image_size = v->head.image_size;
    out->chunk_size = v->head.chunk_size;
    out->snapshot_generation = v->manifest ? v->manifest->generation : 0;
    out->remote_head_generation = v->head.generation;
    out->epoch = v->head.epoch;
  }
  out->readonly = v->readonly;
  cache_get_stats (v->cache, &out->cache);
  if (cache_size (v->cache) != out->image_size)
    out->image_size = out->pending_image_size = cache_size (v->cache);
  out->stale = cache_stale (v->cache, &out->base);
  out->owned = v->owned && !atomic_load (&v->lost);
  out->owner = v->owner;
  /* Lost: name the new owner, not the record as it was at load. */
  if (v->owned && !out->owned) {
    struct owner_record now;

    if (owner_read (v->env, v->export_id, &now) == 0)
      out->owner = now;
  }
  out->writable = volume_check_owner (v) == 0 && !out->stale &&
    !out->cache.failed;
  if (!v->readonly && !out->writable)
    snprintf (out->notice, sizeof out->notice, "%s", v->base_gone
              ? "the local writes are based on a snapshot that was deleted: "
              "only they can be read; close the export, save them with "
              "lazyvold dump-dirty, open it and reset the cache"
              : out->stale
              ? "the local writes are based on an older snapshot than the "
              "head: they are kept, but neither written to nor published; "
              "reset the cache to drop them, or fork them into a new export"
              : out->cache.failed ? "the cache failed stop after a "
              "write-back error; close and open the export" : err_msg ());
  if (!v->readonly) {
    out->lease_age_ms = lease_age_ms (v->env->lease);
    out->lease_period_ms = lease_period_ms (v->env->lease);
    out->lease_valid = lease_remaining_ms (v->env->lease) > 0;
  }
  LOCK_FOR_SCOPE (&v->oplock);
  out->op = v->op;
  out->progress = v->progress;
  if (v->op != VOLUME_IDLE)
    out->progress.elapsed_ns = time_mono_ns () - v->op_ns;
  out->last = v->last;
  memcpy (out->last_error, v->last_error, sizeof out->last_error);
  out->publishes = v->publishes;
  out->publish_ns = v->publish_ns;
  out->last_publish_ns = v->last_publish_ns;
}

void
volume_set_published (struct volume *v, const struct volume_head *head,
                      const char *etag, struct manifest *m,
                      const struct manifest_hashes *h)
{
  struct manifest *old;

  {
    WRLOCK_FOR_SCOPE (&v->mlock);
    if (h)
      manifest_take_hashes (m, v->manifest, h);
    v->head = *head;
    snprintf (v->head_etag, sizeof v->head_etag, "%s", etag);
    old = v->manifest;
    v->manifest = m;
    v->base_gone = false;
  }
  manifest_free (old);
}

/* A readahead job: one run of chunks from CHUNK on. */
static void
readahead_job (void *owner, uint64_t chunk)
{
  struct volume *v = owner;

  if (cache_prefetch (v->cache, chunk, cache_run_chunks (v->cache), false) == -1)
    log_debug ("readahead %s chunk %ju: %s", v->name, (uintmax_t) chunk,
               err_msg ());
}

/* Is any of chunks [FROM, FROM+N) missing (lock-free, like a hit)? */
static bool
any_missing (struct volume *v, uint64_t from, uint64_t n)
{
  for (uint64_t c = from; c < from + n; c++)
    if (!cache_is_resident (v->cache, c))
      return true;
  return false;
}

/* Queue the runs that readahead wants after a read of COUNT bytes at
 * OFFSET, but for those already resident (a warm sequential read queues
 * nothing); a full queue drops them (the reader will fetch what it
 * needs).
 */
static void
schedule_readahead (struct volume *v, uint32_t count, uint64_t offset)
{
  uint64_t chunks = chunk_count (cache_size (v->cache), v->head.chunk_size);
  uint64_t from, n, step = cache_run_chunks (v->cache);

  if (v->env->pool == NULL ||
      !readahead_note (&v->ra, offset, count, chunks, &from, &n))
    return;
  for (uint64_t c = from; c < from + n; c += step)
    if (any_missing (v, c, from + n - c < step ? from + n - c : step) &&
        pool_submit (v->env->pool, readahead_job, v, c, false) == -1)
      break;
}

/* A read over several chunks fills those that are missing a run at a
 * time first, instead of one GET per chunk (a failure is the read's to
 * report, chunk by chunk).
 */
static void
fill_read (struct volume *v, uint32_t count, uint64_t offset)
{
  uint32_t cs = v->head.chunk_size;
  uint64_t first = offset / cs, last = (offset + count - 1) / cs;

  for (uint64_t c = first; c <= last && first < last; c++)
    if (!cache_is_resident (v->cache, c)) {
      cache_prefetch (v->cache, c, last - c + 1, true);
      return;
    }
}

int
volume_pread (struct volume *v, void *buf, uint32_t count, uint64_t offset)
{
  if (count == 0)
    return 0;
  schedule_readahead (v, count, offset);
  fill_read (v, count, offset);
  return cache_pread (v->cache, buf, count, offset);
}

int
volume_check_owner (struct volume *v)
{
  if (v->readonly)
    return err_set (EROFS, "%s is a read-only snapshot view", v->name);
  if (!v->owned)
    return err_set (EROFS, "%s is read-only on this host: %s", v->name,
                    v->owner_why[0] ? v->owner_why : "not owned");
  if (atomic_load_explicit (&v->lost, memory_order_relaxed))
    return err_set (EROFS, "%s: another host has taken it over: writes are "
                    "refused, unpublished writes are kept", v->name);
  if (lease_remaining_ms (v->env->lease) == 0)
    return err_set (EROFS, "%s: this host's lease has lapsed (no renewal for "
                    "%ju ms): writes are refused until it is renewed",
                    v->name, (uintmax_t) lease_age_ms (v->env->lease));
  return 0;
}

int
volume_pwrite (struct volume *v, const void *buf, uint32_t count,
               uint64_t offset, bool fua)
{
  if (volume_check_owner (v) == -1)
    return -1;
  return cache_pwrite (v->cache, buf, count, offset, fua);
}

int
volume_zero (struct volume *v, uint32_t count, uint64_t offset,
             unsigned flags, bool fua)
{
  if (volume_check_owner (v) == -1)
    return -1;
  return cache_zero (v->cache, count, offset, flags, fua);
}

int
volume_flush (struct volume *v)
{
  return cache_flush (v->cache);
}

int
volume_extents (struct volume *v, uint32_t count, uint64_t offset,
                cache_extent_fn fn, void *opaque)
{
  return cache_extents (v->cache, count, offset, fn, opaque);
}

int
volume_prefetch (struct volume *v, uint32_t count, uint64_t offset)
{
  uint32_t cs = v->head.chunk_size;
  uint64_t first = offset / cs;

  if (count == 0)
    return 0;
  /* Only advice: with no room left, the rest is not fetched. */
  return cache_prefetch (v->cache, first, (offset + count - 1) / cs - first + 1,
                         true) == -1 ? -1 : 0;
}

enum volume_op
volume_current_op (struct volume *v)
{
  LOCK_FOR_SCOPE (&v->oplock);
  return v->op;
}

int
volume_op_begin (struct volume *v, enum volume_op op)
{
  LOCK_FOR_SCOPE (&v->oplock);
  if (v->op != VOLUME_IDLE)
    return err_set (EBUSY, "%s is busy %s", v->name, volume_op_name (v->op));
  v->op = op;
  memset (&v->progress, 0, sizeof v->progress);
  time_now_iso8601 (v->progress.started_at);
  v->op_ns = time_mono_ns ();
  memset (&v->outcome, 0, sizeof v->outcome);
  return 0;
}

void
volume_op_progress (struct volume *v, uint64_t done, uint64_t total,
                    uint64_t done_bytes, uint64_t total_bytes)
{
  LOCK_FOR_SCOPE (&v->oplock);
  v->progress.done = done;
  v->progress.total = total;
  v->progress.done_bytes = done_bytes;
  v->progress.total_bytes = total_bytes;
}

void
volume_op_published (struct volume *v, const char *snapshot_id,
                     uint64_t generation, bool created)
{
  LOCK_FOR_SCOPE (&v->oplock);
  snprintf (v->outcome.snapshot_id, sizeof v->outcome.snapshot_id, "%s",
            snapshot_id);
  v->outcome.generation = generation;
  v->outcome.created = created;
}

/* End the running operation with RESULT; if it failed, ERROR says why
 * (NULL: outcome.error does already).  Called with oplock held.
 */
static void
op_finish (struct volume *v, enum volume_result result, const char *error)
{
  struct volume_outcome *o = &v->outcome;

  o->op = v->op;
  o->result = result;
  if (result == VOLUME_FAILED) {
    if (error)
      snprintf (o->error, sizeof o->error, "%s", error);
    snprintf (v->last_error, sizeof v->last_error, "%s: %.200s",
              volume_op_name (v->op), o->error);
  }
  memcpy (o->started_at, v->progress.started_at, sizeof o->started_at);
  time_now_iso8601 (o->finished_at);
  o->ns = v->progress.elapsed_ns = time_mono_ns () - v->op_ns;
  v->last = *o;
  v->op = VOLUME_IDLE;
}

void
volume_op_end (struct volume *v, bool ok)
{
  LOCK_FOR_SCOPE (&v->oplock);
  op_finish (v, ok ? VOLUME_DONE : VOLUME_FAILED, err_msg ());
}

/* cache_match_fn: do BUF's bytes of CHUNK match manifest OPAQUE? */
static bool
matches_manifest (void *opaque, uint64_t chunk, const void *buf,
                  uint32_t len)
{
  const struct manifest *m = opaque;
  const unsigned char *sha;
  unsigned char got[32];
  const char *key;
  uint64_t off;

  if (!manifest_find (m, chunk, &key, &off, &sha))
    return is_zero (buf, len);
  return EVP_Digest (buf, len, got, NULL, EVP_sha256 (), NULL) &&
    memcmp (got, sha, 32) == 0;
}

int
volume_settle_landed (struct volume *v, const char *landed)
{
  struct manifest *m = NULL;
  bool head;
  int64_t n;

  {
    RDLOCK_FOR_SCOPE (&v->mlock);
    head = strcmp (v->head.snapshot_id, landed) == 0;
  }
  if (!head &&
      (m = remote_fetch_manifest (v->env, v->export_id, landed, 0)) == NULL)
    return -1;
  {
    /* The head's manifest is only replaced by a publish, and none runs
     * while the caller has the export to itself.
     */
    n = cache_settle_published (v->cache, matches_manifest,
                                head ? v->manifest : m, head);
  }
  if (n > 0)
    log_info ("%s: %jd dirty chunks were published in snapshot %s before "
              "a crash; they are clean now", v->name, (intmax_t) n, landed);
  if (n >= 0) {
    /* What is still dirty was written over LANDED: if the head has moved
     * past it, those writes are stale (see cache_open).
     */
    struct cache_stats st;
    struct meta_base base;

    cache_get_stats (v->cache, &st);
    volume_head_base (&v->head, &base);
    if (!head && st.dirty > 0) {
      memcpy (base.snapshot_id, landed, sizeof base.snapshot_id);
      base.generation = m->generation;
      base.epoch = 0;
    }
    if (cache_rebase (v->cache, &base, !head && st.dirty > 0, head) == -1)
      n = -1;
  }
  manifest_free (m);
  return n == -1 ? -1 : 0;
}

/* Account one publish (for metrics and status). */
void
volume_count_publish (struct volume *v, uint64_t ns)
{
  LOCK_FOR_SCOPE (&v->oplock);
  v->publishes++;
  v->publish_ns += ns;
  v->last_publish_ns = ns;
}

/* The last hydrate worker has finished: end the operation.  Called with
 * oplock held.
 */
static void
hydrate_finish (struct volume *v)
{
  struct volume_outcome *o = &v->outcome;

  if (v->hydrate_full) {
    char why[sizeof o->warning];

    memcpy (why, o->warning, sizeof why);
    snprintf (o->warning, sizeof o->warning, "stopped after %ju of %ju "
              "chunks, evicting nothing: %.150s",
              (uintmax_t) v->progress.done,
              (uintmax_t) v->progress.total, why);
  }
  op_finish (v, v->hydrate_failed ? VOLUME_FAILED : v->hydrate_cancel
             ? VOLUME_CANCELLED : VOLUME_DONE, NULL);
}

/* A hydrate worker: claim the next extent of the manifest, fetch its
 * chunks, until none is left, one failed, the cache has no room left, or
 * the hydrate is cancelled.  The last worker to finish ends the
 * operation.
 */
static void *
hydrate_worker (void *arg)
{
  struct volume *v = arg;
  const uint64_t step = cache_run_chunks (v->cache);
  bool stop = false;

  while (!stop) {
    uint64_t e, first = 0, n = 0;

    {
      LOCK_FOR_SCOPE (&v->oplock);
      e = v->hydrate_next++;
    }
    {
      RDLOCK_FOR_SCOPE (&v->mlock);
      if (v->manifest && e < v->manifest->nextents) {
        first = v->manifest->extents[e].chunk;
        n = v->manifest->extents[e].count;
      }
    }
    if (n == 0)
      break;
    for (uint64_t c = first, k; c < first + n && !stop; c += k) {
      int r;

      k = first + n - c < step ? first + n - c : step;
      r = cache_prefetch (v->cache, c, k, false);
      LOCK_FOR_SCOPE (&v->oplock);

      if (r == 1 && !v->hydrate_full) {
        v->hydrate_full = true;
        snprintf (v->outcome.warning, sizeof v->outcome.warning, "%s",
                  err_msg ());
      }
      if (r == 0) {
        v->progress.done += k;
        for (uint64_t i = c; i < c + k; i++)
          v->progress.done_bytes += chunk_len (v->head.image_size,
                                               v->head.chunk_size, i);
      }
      if (r == -1 && !v->hydrate_failed) {
        v->hydrate_failed = true;
        snprintf (v->outcome.error, sizeof v->outcome.error, "%s",
                  err_msg ());
      }
      stop = v->hydrate_cancel || v->hydrate_failed || v->hydrate_full;
    }
  }
  LOCK_FOR_SCOPE (&v->oplock);
  if (--v->hydrate_active == 0)
    hydrate_finish (v);
  return NULL;
}

/* The bytes of the chunks the manifest lists (all full but perhaps the
 * image's last).  Called with mlock held.
 */
static uint64_t
listed_bytes (struct volume *v)
{
  uint64_t chunks = chunk_count (v->head.image_size, v->head.chunk_size);
  uint64_t bytes, off;
  const unsigned char *sha;
  const char *key;

  if (v->manifest == NULL || chunks == 0)
    return 0;
  bytes = v->manifest->nsha * v->head.chunk_size;
  if (manifest_find (v->manifest, chunks - 1, &key, &off, &sha))
    bytes -= v->head.chunk_size - chunk_len (v->head.image_size,
                                             v->head.chunk_size, chunks - 1);
  return bytes;
}

int
volume_hydrate (struct volume *v)
{
  unsigned started = 0;

  if (volume_op_begin (v, VOLUME_HYDRATE) == -1)
    return -1;
  hydrate_stop (v);             /* join the workers of an earlier hydrate */
  {
    RDLOCK_FOR_SCOPE (&v->mlock);
    LOCK_FOR_SCOPE (&v->oplock);
    v->progress.total = v->manifest ? v->manifest->nsha : 0;
    v->progress.total_bytes = listed_bytes (v);
    v->hydrate_next = 0;
    v->hydrate_cancel = v->hydrate_failed = v->hydrate_full = false;
    v->hydrate_active = HYDRATE_WORKERS;
  }

  for (; started < HYDRATE_WORKERS; started++) {
    int e = pthread_create (&v->hydrate_threads[started], NULL,
                            hydrate_worker, v);
    if (e) {
      err_set (e, "hydrate %s: pthread_create: %m", v->name);
      break;
    }
  }
  LOCK_FOR_SCOPE (&v->oplock);
  v->hydrate_running = started;
  /* The last worker to finish ends the operation; only if some never
   * started, and the others are all done, does that fall to us (else a
   * later operation could already be running).
   */
  if (started < HYDRATE_WORKERS) {
    v->hydrate_active -= HYDRATE_WORKERS - started;
    if (v->hydrate_active == 0 && started == 0) {
      v->hydrate_failed = true;
      snprintf (v->outcome.error, sizeof v->outcome.error, "%s", err_msg ());
    }
    if (v->hydrate_active == 0)
      hydrate_finish (v);
  }
  return started > 0 ? 0 : -1;
}

int
volume_set_cache_max (struct volume *v, uint64_t max_bytes)
{
  return cache_set_max_size (v->cache, max_bytes);
}

int
volume_adopt (struct volume *v, const struct volume_head *head,
              const char *etag, struct manifest *m)
{
  struct meta_base base;

  quiesce (v);
  /* Fills started before the swap finish before the reset's drain and
   * are dropped by it; fills after it read M.
   */
  volume_set_published (v, head, etag, m, NULL);
  volume_head_base (head, &base);
  return cache_reset (v->cache, &base, head->image_size);
}

int
volume_resize (struct volume *v, uint64_t size)
{
  uint32_t cs = v->head.chunk_size;
  int r = -1;

  if (v->readonly)
    return err_set (EROFS, "%s is a read-only snapshot view: it cannot be "
                    "resized", v->name);
  if (size == 0 || size > IMAGE_SIZE_MAX)
    return err_set (EINVAL, "size %ju is out of range (1 to 2^62)",
                    (uintmax_t) size);
  if (volume_check_owner (v) == -1 ||
      volume_op_begin (v, VOLUME_RESIZE) == -1)
    return -1;
  /* The short last chunk must be cached to be extended; an eviction may
   * take it again before the gate is held (EAGAIN): a few tries.  A
   * read of it first waits for a fill under way (readahead's run may
   * hold it), which the prefetch would skip.
   */
  for (int tries = 0; r == -1 && tries < 3; tries++) {
    uint64_t last = chunk_count (cache_size (v->cache), cs) - 1;
    char byte;

    if (cache_pread (v->cache, &byte, 1, last * cs) == -1 ||
        cache_prefetch (v->cache, last, 1, true) != 0)
      break;                    /* failed, or no room in the budget */
    r = cache_grow (v->cache, size);
    if (r == -1 && errno != EAGAIN)
      break;
  }
  if (r == -1)
    err_prefix ("resize %s", v->name);
  else
    log_info ("%s: resized to %ju bytes (published with the next snapshot)",
              v->name, (uintmax_t) size);
  volume_op_end (v, r == 0);
  return r;
}

int
volume_reset (struct volume *v)
{
  struct meta_base base;
  struct volume_head head;
  char etag[128];
  bool stale;
  int r;

  if (v->readonly)
    return err_set (EROFS, "%s is a read-only snapshot view", v->name);
  if (volume_op_begin (v, VOLUME_RESET) == -1)
    return -1;
  quiesce (v);
  {
    RDLOCK_FOR_SCOPE (&v->mlock);
    head = v->head;
    memcpy (etag, v->head_etag, sizeof etag);
  }
  stale = cache_stale (v->cache, &base);
  volume_head_base (&head, &base);
  /* A resize not published yet is undone: the image is the head's. */
  r = cache_reset (v->cache, &base, head.image_size);
  /* A stale cache served its old base: now it is the head's. */
  if (r == 0 && stale) {
    struct manifest *m = NULL;

    if (head.snapshot_id[0] && (m = remote_fetch_current (v->env, &head)) == NULL)
      r = -1;
    else
      volume_set_published (v, &head, etag, m, NULL);
  }
  if (r == -1)
    err_prefix ("reset %s", v->name);
  else
    log_info ("%s: local cache reset to snapshot %s", v->name,
              head.snapshot_id[0] ? head.snapshot_id : "(none)");
  volume_op_end (v, r == 0);
  return r;
}
