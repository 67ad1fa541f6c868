/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: the handle of one NBD connection to an export or a
 * snapshot view, which loads a view only when it is read (see handle.c).
 */
#ifndef LAZYVOL_HANDLE_H
#define LAZYVOL_HANDLE_H

#include <stdbool.h>
#include <stdint.h>

#include "volume.h"

struct handle;

/* A connection to export or view NAME: a loaded export is referenced at
 * once; a view that is not loaded only has its sizes read.  NULL with
 * err_set (ENOENT if there is no such export or view).
 */
struct handle *handle_open (const char *name) __attribute__ ((__nonnull__));
/* End the connection: drop its reference, if it took one; free H. */
void handle_close (struct handle *h) __attribute__ ((__nonnull__));
/* The volume behind H, loading the view first if it is not loaded yet.
 * NULL with err_set.
 */
struct volume *handle_volume (struct handle *h) __attribute__ ((__nonnull__));
/* The image size and chunk size of H's export or view. */
uint64_t handle_size (const struct handle *h) __attribute__ ((__nonnull__));
uint32_t handle_chunk_size (const struct handle *h)
  __attribute__ ((__nonnull__));
/* May H's client write?  (A view never; an export while it is owned.) */
bool handle_writable (struct handle *h) __attribute__ ((__nonnull__));

#endif /* LAZYVOL_HANDLE_H */
