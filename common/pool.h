/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: a small pool of background threads for chunk fetches
 * (readahead, hydrate), shared by every export of a process.
 *
 * A job is a function, an owner (the export) and a number (the chunk), so
 * submitting allocates nothing.  The queue is bounded: readahead drops
 * work when it is full, hydrate waits.  pool_cancel drops an owner's
 * queued jobs and waits for its running ones, before the owner goes away.
 */
#ifndef LAZYVOL_POOL_H
#define LAZYVOL_POOL_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*pool_fn) (void *owner, uint64_t n);

struct pool;

/* Start THREADS workers with a queue of QUEUE_MAX jobs.  NULL with err_set. */
struct pool *pool_new (unsigned threads, unsigned queue_max);
/* Queue FN(OWNER, N).  If the queue is full: wait if WAIT, else return -1
 * (EAGAIN).  0 on success.
 */
int pool_submit (struct pool *p, pool_fn fn, void *owner, uint64_t n,
                 bool wait);
/* Drop OWNER's queued jobs and wait until none of its jobs runs. */
void pool_cancel (struct pool *p, void *owner);
/* Stop the workers (queued jobs are dropped) and free; NULL is allowed. */
void pool_free (struct pool *p);

#endif /* LAZYVOL_POOL_H */
