/* lazyvol: upload one blob whose bytes are produced in order, in parts
 * uploaded in parallel by worker threads.
 *
 * The producer asks for space in the current part, writes into it and
 * commits what it keeps; full parts go to the workers.  A blob that fits
 * in one part is stored with a single put, so small publishes cost one
 * request.  Memory: (threads + 1) parts.
 */
#ifndef LAZYVOL_UPLOAD_H
#define LAZYVOL_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Called once, from the producer's thread, when a multipart upload starts
 * (so its id can be journaled).  0, or -1 to fail the upload.
 */
typedef int (*upload_begin_fn) (void *opaque, const char *upload_id);

struct upload;

/* Prepare to upload KEY in parts of PART_SIZE bytes with THREADS workers.
 * NULL with err_set.
 */
struct upload *upload_new (struct store *st, const char *key,
                           size_t part_size, unsigned threads,
                           upload_begin_fn on_begin, void *opaque);
/* Space for LEN (<= part size) more bytes; valid until upload_commit.
 * NULL with err_set if an earlier part failed.
 */
void *upload_reserve (struct upload *u, size_t len);
/* Keep the first LEN bytes written to the last reserved space. */
void upload_commit (struct upload *u, size_t len);
/* Bytes committed so far: the blob offset of the next commit. */
uint64_t upload_size (const struct upload *u);
/* Upload what is left and make the object appear (nothing is stored if
 * no byte was committed).  Frees U.  0 or -1.
 */
int upload_finish (struct upload *u);
/* Abandon the upload and free U; NULL is allowed. */
void upload_abort (struct upload *u);

#endif /* LAZYVOL_UPLOAD_H */
