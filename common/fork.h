/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: fork local writes that cannot be published where they are
 * into a new export (see fork.c).
 */
#ifndef LAZYVOL_FORK_H
#define LAZYVOL_FORK_H

#include "meta.h"
#include "volume.h"

/* Create export NEW_ID holding the image BASE of EXPORT_ID: a clone of
 * snapshot BASE, or an empty export of the geometry given if BASE names
 * none.  0 or -1 with err_set (EEXIST if NEW_ID exists, here or in the
 * store).
 */
int fork_create (struct volume_env *env, const char *export_id,
                 const struct meta_base *base, uint64_t image_size,
                 uint32_t chunk_size, const char *new_id)
  __attribute__ ((__nonnull__));
/* Move EXPORT_ID's local cache (not loaded) to NEW_ID's.  0 or -1. */
int fork_move_cache (struct volume_env *env, const char *export_id,
                     const char *new_id) __attribute__ ((__nonnull__));

#endif /* LAZYVOL_FORK_H */
