/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: cache.meta, the on-disk state of a chunk cache.
 *
 * Layout (all integers little-endian):
 *   [0, 4096)         header: magic, format version, flags (CLEAN),
 *                     chunk size, image size, chunk count, the base (the
 *                     published snapshot the local state is based on: its
 *                     id, generation and owner epoch), a SHA-256 of the
 *                     header.  Under 512 bytes, so one sector write.
 *
 * The base is what the dirty chunks were written over, and what the clean
 * resident chunks hold.  It changes only when the dirty chunks are
 * published, dropped (reset), or there are none: so a cache whose base is
 * not the export's head any more holds writes over an older history,
 * which must not be published over the new one (see cache-open.c).
 * Version 1 caches did not keep it reliably (the base was rewritten at
 * every open): they read as LEGACY.
 *   [4096, +B)        resident bitmap (B = bitmap bytes rounded to 4096)
 *   [4096+B, +B)      dirty bitmap
 *
 * The resident bitmap is only trusted after a clean shutdown (CLEAN set):
 * it is written whole at close.  WRITEBACK_ERROR says that the cache
 * failed stop after an fdatasync or write error (see cache.c).  The dirty bitmap is written page by page
 * on every flush, after cache.raw is synced, so a dirty bit on disk always
 * covers data that is on disk.  The header is rewritten (and synced) to
 * clear CLEAN before the first change after open.  The file is allocated
 * whole at open, so writing a page never needs space: a full disk cannot
 * fail a flush of dirty bits.  The file also carries
 * the cache's exclusive lock (flock), so two processes never share a cache.
 */
#ifndef LAZYVOL_META_H
#define LAZYVOL_META_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

#define META_PAGE 4096
#define META_PAGE_BITS (META_PAGE * 8)

/* What the local state is based on. */
struct meta_base {
  char snapshot_id[SNAPSHOT_ID_LEN + 1];  /* "" for none (never published) */
  uint64_t generation;
  uint64_t epoch;                         /* of the owner that published it */
  bool legacy;                            /* read from a version 1 header */
};

/* Header flags. */
#define META_CLEAN 1            /* shut down cleanly: bitmaps are whole */
#define META_WRITEBACK_ERROR 2  /* failed stop after a write-back error */

struct meta;

/* The size of cache.meta for an image of CHUNKS chunks. */
uint64_t meta_file_size (uint64_t chunks);
/* Open (CREATE: create if missing) DIR/cache.meta for an image of the
 * given geometry and lock it.  EBUSY if another process holds it, EINVAL
 * if it describes a different geometry, EBADMSG if it is corrupt.  An
 * IMAGE_SIZE of 0 (with CREATE false) takes the header's geometry; with
 * GROWN so does a header of the same chunk size and another image size
 * (a resize not yet published, or a head that changed size since).
 */
struct meta *meta_open (const char *dir, uint64_t image_size,
                        uint32_t chunk_size, bool create, bool grown);
/* Would an image of IMAGE_SIZE fit the bitmaps of the file as it is? */
bool meta_size_fits (const struct meta *m, uint64_t image_size)
  __attribute__ ((__nonnull__));
/* Make IMAGE_SIZE (meta_size_fits) the image's size; the header says so
 * from the next meta_set_header on, which rewrites one sector: after a
 * crash it says the old size or the new one.
 */
void meta_set_size (struct meta *m, uint64_t image_size)
  __attribute__ ((__nonnull__));
/* The image size and chunk size the header states. */
uint64_t meta_image_size (const struct meta *m) __attribute__ ((__nonnull__));
uint32_t meta_chunk_size (const struct meta *m) __attribute__ ((__nonnull__));
/* The header's flags as found at open (META_CLEAN, ...). */
unsigned meta_flags (const struct meta *m);
/* The base recorded in the header. */
const struct meta_base *meta_base (const struct meta *m);
/* Read the resident and dirty bitmaps into the caller's word arrays. */
int meta_load (struct meta *m, uint64_t *resident, uint64_t *dirty);
/* Rewrite the header with FLAGS and BASE (version 2), and sync it. */
int meta_set_header (struct meta *m, unsigned flags,
                     const struct meta_base *base);
/* Write dirty-bitmap page PAGE (META_PAGE bytes of BITS) without syncing. */
int meta_write_dirty_page (struct meta *m, uint64_t page, const void *bits);
/* Write both bitmaps whole, without syncing. */
int meta_write_bitmaps (struct meta *m, const uint64_t *resident,
                        const uint64_t *dirty);
/* fdatasync cache.meta. */
int meta_sync (struct meta *m);
/* Unlock and close; NULL is allowed. */
void meta_close (struct meta *m);

#endif /* LAZYVOL_META_H */
