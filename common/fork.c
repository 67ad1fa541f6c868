/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: a way out for local writes that cannot be published where
 * they are (see fork.h).
 *
 * Writes over a base the head has moved past (a stale cache), or on an
 * export another host now owns, must never be published over that head.
 * They are still a consistent image: the base snapshot plus the writes.
 * A fork makes that image an export of its own: a clone of the base
 * snapshot (or, if the writes were over an export never published, a new
 * empty export of the same geometry), onto which the local cache
 * directory is moved as it is.  The clone's first snapshot is the same
 * image as the base, so every dirty chunk keeps its meaning; when the new
 * export loads, its cache is based on the snapshot the clone was made
 * from, which volume.c accepts as the clone's own (settle_local), and the
 * writes are published with the new export's next snapshot.
 *
 * Order, for crashes: the new head first (a crash after it leaves an
 * export with no local state, which loads as a plain clone, and the old
 * one untouched), then the rename of the directory (atomic; the parent
 * is synced).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"
#include "err.h"
#include "fork.h"
#include "publish.h"
#include "volume-impl.h"

int
fork_create (struct volume_env *env, const char *export_id,
             const struct meta_base *base, uint64_t image_size,
             uint32_t chunk_size, const char *new_id)
{
  struct publish_result pr;

  if (id_export_check ("new export id", new_id) == -1)
    return -1;
  if (base->snapshot_id[0] == '\0')
    return volume_create (env, new_id, image_size, chunk_size);
  if (publish_clone (env, new_id, export_id, base->snapshot_id, &pr) == -1)
    return errno == ENOENT
      ? err_set (ENOENT, "the snapshot %s the local writes of %s are based "
                 "on is gone: save them with \"lazyvold dump-dirty\" "
                 "(lazyvold(8))", base->snapshot_id, export_id)
      : -1;
  return 0;
}

int
fork_move_cache (struct volume_env *env, const char *export_id,
                 const char *new_id)
{
  CLEANUP_FREE char *from = volume_cache_dir (env, export_id);
  CLEANUP_FREE char *to = volume_cache_dir (env, new_id);

  if (from == NULL || to == NULL)
    return -1;
  CRASH_POINT ("fork.after_create");
  if (rename (from, to) == -1)
    return err_set (errno, "export %s was created, but the local writes "
                    "could not be moved into it (rename %s to %s: %m): they "
                    "stay with export %s", new_id, from, to, export_id);
  return fsync_dir (env->cache_root);
}
