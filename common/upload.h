/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: upload one blob whose bytes are produced in order, in parts
 * uploaded in parallel by worker threads.
 *
 * The producer asks for space in the current part, writes into it and
 * commits what it keeps; full parts go to the workers.  A blob that fits
 * in one part is stored with a single put, so small publishes cost one
 * request.  Memory: (threads + 1) parts.
 *
 * The caller may also work on each part in the thread that uploads
 * it, just before it is sent (upload_part_fn): publish hashes its chunks
 * there, so hashing runs in parallel instead of in the producer.  If
 * the store checks a hash of each part (store_wants_sha256), the hook
 * computes it too, in the same pass over the bytes, and the store does
 * not read them again to hash them.
 */
#ifndef LAZYVOL_UPLOAD_H
#define LAZYVOL_UPLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

/* Called once, from the producer's thread, when a multipart upload starts
 * (so its id can be journaled).  0, or -1 to fail the upload.
 */
typedef int (*upload_begin_fn) (void *opaque, const char *upload_id);

/* Called for every part, by the thread that uploads it, before the upload:
 * BUF holds bytes [OFFSET, OFFSET+LEN) of the blob.  If SHA256 is not
 * NULL, the hook stores there the SHA-256 of those LEN bytes, for the
 * store.  0, or -1 with err_set to fail the upload.
 */
typedef int (*upload_part_fn) (void *opaque, const void *buf, size_t len,
                               uint64_t offset, unsigned char *sha256);

struct upload;

/* Prepare to upload KEY in parts of PART_SIZE bytes with THREADS workers;
 * ON_BEGIN and ON_PART (each may be NULL) get OPAQUE.  NULL with err_set.
 */
struct upload *upload_new (struct store *st, const char *key,
                           size_t part_size, unsigned threads,
                           upload_begin_fn on_begin, upload_part_fn on_part,
                           void *opaque);
/* Space for LEN (<= part size) more bytes; valid until upload_commit.
 * NULL with err_set if an earlier part failed.
 */
void *upload_reserve (struct upload *u, size_t len);
/* Keep the first LEN bytes written to the last reserved space. */
void upload_commit (struct upload *u, size_t len);
/* A stream whose bytes are committed to U as they are written (fclose
 * writes what is buffered; U stays the caller's, to finish or abort
 * after).  NULL with err_set.
 */
FILE *upload_fopen (struct upload *u) __attribute__ ((__nonnull__));
/* Bytes committed so far: the blob offset of the next commit. */
uint64_t upload_size (const struct upload *u);
/* Upload what is left and make the object appear (nothing is stored if
 * no byte was committed).  Frees U.  0 or -1.
 */
int upload_finish (struct upload *u);
/* Abandon the upload and free U; NULL is allowed. */
void upload_abort (struct upload *u);

#endif /* LAZYVOL_UPLOAD_H */
