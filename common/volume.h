/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: an export — the head and manifest read from the store, the
 * local chunk cache, readahead, and the one long operation that may run on
 * it.  Both the plugin (data path, control socket) and the publish code
 * use it; the plugin never sees inside.
 *
 * An export is either writable (named by its export id, based on the
 * remote head) or a read-only view of one published snapshot (named
 * "<export_id>@<snapshot_id>", with its own cache directory).
 */
#ifndef LAZYVOL_VOLUME_H
#define LAZYVOL_VOLUME_H

#include <stdbool.h>
#include <stdint.h>

#include "cache.h"
#include "format.h"
#include "store.h"
#include "util.h"

/* What every export of a process shares. */
struct volume_env {
  struct store *st;
  const char *root;             /* export root in the bucket ("" = top) */
  const char *cache_root;       /* absolute local directory */
  /* Direct mode (see "Direct mode" in volume.c): the one export id the
   * process serves, whose cache directory is cache_root itself, and the
   * snapshot id if it serves only that snapshot's read-only view.  NULL
   * in serve mode.
   */
  const char *direct;
  const char *direct_snapshot;
  struct pool *pool;            /* background fetches */
  struct cache_budget *budget;  /* of every export's cache (cache-max-size) */
  uint64_t readahead;           /* the most bytes read ahead of a
                                 * sequential stream (0: none) */
  /* Ownership (owner.c, lease.c). */
  struct lease *lease;          /* this host's */
  const char *host_id;
  const char *cache_id;         /* of the cache root */
  bool unconditional;           /* no conditional puts: the admin knows */
};

/* The long operations; at most one runs on an export at a time. */
enum volume_op {
  VOLUME_IDLE, VOLUME_SNAPSHOT, VOLUME_COMPACT, VOLUME_HYDRATE, VOLUME_RESET,
  VOLUME_GC, VOLUME_FSCK, VOLUME_ROLLBACK, VOLUME_RESIZE,
};

/* How far the running long operation is, or how far the last one got. */
struct volume_progress {
  uint64_t done, total;                   /* chunks */
  uint64_t done_bytes, total_bytes;
  char started_at[32];                    /* ISO 8601, UTC */
  uint64_t elapsed_ns;
};

/* How the last long operation to end ended. */
struct volume_outcome {
  enum volume_op op;                      /* VOLUME_IDLE: none has ended */
  enum volume_result {
    VOLUME_DONE, VOLUME_FAILED, VOLUME_CANCELLED,
  } result;
  char error[256];                        /* why, if it failed */
  char warning[256];                      /* what it left undone, if done */
  char started_at[32], finished_at[32];   /* ISO 8601, UTC */
  uint64_t ns;                            /* how long it ran */
  /* A snapshot's or compact's: the snapshot it left as the head, and
   * whether it made that snapshot (a snapshot with nothing to publish
   * makes none).
   */
  char snapshot_id[SNAPSHOT_ID_LEN + 1];
  uint64_t generation;
  bool created;
};

struct volume_status {
  char export_id[EXPORT_ID_MAX + 1];
  char snapshot_id[SNAPSHOT_ID_LEN + 1];  /* the published image's, or "" */
  bool readonly;                          /* a snapshot view */
  bool writable;                          /* writes and publishes accepted */
  char notice[256];                       /* if a writable export is not */
  struct owner_record owner;              /* owner.json as last seen */
  bool owned;                             /* by this host */
  bool stale;                             /* see cache_open */
  struct meta_base base;                  /* of the local state */
  uint64_t epoch;                         /* of the head, as last read */
  uint64_t lease_age_ms, lease_period_ms; /* this host's lease */
  bool lease_valid;
  uint64_t image_size;                    /* what new clients get */
  uint64_t pending_image_size;            /* the same, if it is a
                                             resize's not published
                                             yet; else 0 */
  uint32_t chunk_size;
  struct cache_stats cache;
  uint64_t snapshot_generation;           /* of the local state's base */
  uint64_t remote_head_generation;        /* as last read or written */
  enum volume_op op;
  struct volume_progress progress;        /* of OP */
  struct volume_outcome last;
  char last_error[256];                   /* of the last failed operation */
  uint64_t publishes;                     /* snapshots and compacts */
  uint64_t publish_ns;                    /* their total time */
  uint64_t last_publish_ns;
};

struct volume;

/* The name of an operation as shown in status ("idle", "snapshotting"...). */
const char *volume_op_name (enum volume_op op);
/* Its kind, as in last_operation ("snapshot", "hydrate"...). */
const char *volume_op_kind (enum volume_op op);
/* The name of a result ("done", "failed", "cancelled"). */
const char *volume_result_name (enum volume_result r);

/* Create export EXPORT_ID: write its volume.json (no snapshot yet; fails
 * with EEXIST if it exists) and its empty local cache.  0 or -1.
 */
int volume_create (struct volume_env *env, const char *export_id,
                   uint64_t size, uint32_t chunk_size);
/* Load export EXPORT_ID from its remote head, or with SNAPSHOT_ID the
 * read-only view of that snapshot.  A writable export becomes this host's
 * if nobody else owns it, or as TAKEOVER allows (owner.h); else it loads
 * read-only, saying why in status.  Resolves a publish journal left by a
 * crash.  NULL with err_set.
 */
struct volume *volume_load (struct volume_env *env, const char *export_id,
                            const char *snapshot_id, int takeover);
/* Stop background work, close the cache cleanly and free.  0 or -1 (the
 * volume is freed either way).
 */
int volume_unload (struct volume *v);

/* "vm01" or "vm01@<snapshot_id>". */
const char *volume_name (const struct volume *v);
/* The image size in bytes. */
uint64_t volume_size (const struct volume *v);
/* Grow V to SIZE bytes (see cache_grow): new connections see SIZE at
 * once, open ones keep their size; the next snapshot publishes it.  This
 * host must own V (EROFS), no operation may run (EBUSY), SIZE must be
 * larger (EINVAL: shrinking is refused) and at most IMAGE_SIZE_MAX.  0
 * or -1.
 */
int volume_resize (struct volume *v, uint64_t size) __attribute__ ((__nonnull__));
/* The chunk size in bytes. */
uint32_t volume_chunk_size (const struct volume *v);
/* Is this a read-only snapshot view? */
bool volume_readonly (const struct volume *v);
/* Is the export writable on this host for a client connecting now: owned
 * by it and not stale?  (A lapse of the lease refuses single writes.)
 */
bool volume_writable (struct volume *v);
/* Fill *OUT with the export's state; no I/O. */
void volume_status (struct volume *v, struct volume_status *out);

/* Read, with readahead when reads are sequential (see cache_pread). */
int volume_pread (struct volume *v, void *buf, uint32_t count,
                  uint64_t offset);
/* Write (see cache_pwrite). */
int volume_pwrite (struct volume *v, const void *buf, uint32_t count,
                   uint64_t offset, bool fua);
/* Zero or trim (see cache_zero). */
int volume_zero (struct volume *v, uint32_t count, uint64_t offset,
                 unsigned flags, bool fua);
/* Make acknowledged writes durable locally (see cache_flush). */
int volume_flush (struct volume *v);
/* Report extents (see cache_extents). */
int volume_extents (struct volume *v, uint32_t count, uint64_t offset,
                    cache_extent_fn fn, void *opaque);
/* Prefetch the chunks of [OFFSET, OFFSET+COUNT) (NBD_CMD_CACHE). */
int volume_prefetch (struct volume *v, uint32_t count, uint64_t offset);

/* The long operation running on the export (VOLUME_IDLE if none). */
enum volume_op volume_current_op (struct volume *v)
  __attribute__ ((__nonnull__));
/* Claim the export for long operation OP.  EBUSY naming the running
 * operation if another one runs.  0 or -1.
 */
int volume_op_begin (struct volume *v, enum volume_op op);
/* Report progress of the running operation: DONE of TOTAL chunks, and
 * the same in bytes.
 */
void volume_op_progress (struct volume *v, uint64_t done, uint64_t total,
                         uint64_t done_bytes, uint64_t total_bytes);
/* Record what the running publish leaves as the head (last_operation). */
void volume_op_published (struct volume *v, const char *snapshot_id,
                          uint64_t generation, bool created)
  __attribute__ ((__nonnull__));
/* Release the export and record how the operation ended; on failure keep
 * err_msg() as the last error.
 */
void volume_op_end (struct volume *v, bool ok);

/* Limit the bytes V's cache may take to MAX_BYTES (CACHE_NO_LIMIT: only
 * the budget's), from now on and at later loads (see cache_set_max_size).
 * 0 or -1.
 */
int volume_set_cache_max (struct volume *v, uint64_t max_bytes)
  __attribute__ ((__nonnull__));
/* Start fetching every chunk of the published image in the background
 * (progress in status); it stops, done with a warning, when the cache
 * budget has no room left without evicting.  0 or -1 (EBUSY if an
 * operation runs).
 */
int volume_hydrate (struct volume *v);
/* Drop all local state (destructive).  The caller has the export to
 * itself (registry_get_exclusive), so no client is connected.  0 or -1
 * (EBUSY if an operation runs).
 */
int volume_reset (struct volume *v);

#endif /* LAZYVOL_VOLUME_H */
