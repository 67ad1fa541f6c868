/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: background thread pool (see pool.h).
 *
 * One mutex protects the ring of queued jobs and the table of running
 * jobs' owners; "changed" is broadcast whenever a job is queued, taken or
 * finished, which is what submitters, workers and cancellers wait for.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "err.h"
#include "lock.h"
#include "pool.h"

struct job {
  pool_fn fn;
  void *owner;
  uint64_t n;
};

struct pool {
  pthread_mutex_t lock;         /* protects ring, head, len, running and
                                   stop; threads and nthreads while
                                   pool_new fills them in */
  pthread_cond_t changed;
  struct job *ring;             /* queued jobs, head..head+len */
  unsigned cap, head, len;
  void **running;               /* running[i]: owner of worker i's job */
  pthread_t *threads;
  unsigned nthreads;
  bool stop;
};

/* Wait for a job and take it into *J as worker SELF's; false once the
 * pool stops.  Called with p->lock held.
 */
static bool
take_job (struct pool *p, unsigned self, struct job *j)
{
  while (p->len == 0 && !p->stop)
    pthread_cond_wait (&p->changed, &p->lock);
  if (p->stop)
    return false;
  *j = p->ring[p->head];
  p->head = (p->head + 1) % p->cap;
  p->len--;
  p->running[self] = j->owner;
  pthread_cond_broadcast (&p->changed);
  return true;
}

static void *
worker (void *arg)
{
  struct pool *p = arg;
  unsigned self;
  struct job j;
  bool more;

  {
    LOCK_FOR_SCOPE (&p->lock);
    for (self = 0; !pthread_equal (p->threads[self], pthread_self ());
         self++)
      ;
    more = take_job (p, self, &j);
  }
  while (more) {
    j.fn (j.owner, j.n);

    LOCK_FOR_SCOPE (&p->lock);
    p->running[self] = NULL;
    pthread_cond_broadcast (&p->changed);
    more = take_job (p, self, &j);
  }
  return NULL;
}

struct pool *
pool_new (unsigned threads, unsigned queue_max)
{
  struct pool *p = calloc (1, sizeof *p);
  int e = 0;

  if (p == NULL)
    goto nomem;
  p->cap = queue_max;
  p->ring = calloc (queue_max, sizeof *p->ring);
  p->running = calloc (threads, sizeof *p->running);
  p->threads = calloc (threads, sizeof *p->threads);
  if (p->ring == NULL || p->running == NULL || p->threads == NULL)
    goto nomem;
  pthread_mutex_init (&p->lock, NULL);
  pthread_cond_init (&p->changed, NULL);
  /* Workers look themselves up in p->threads, so hold the lock until the
   * table is complete.
   */
  {
    LOCK_FOR_SCOPE (&p->lock);
    while (p->nthreads < threads &&
           (e = pthread_create (&p->threads[p->nthreads], NULL, worker,
                                p)) == 0)
      p->nthreads++;
  }
  if (e) {
    err_set (e, "pthread_create: %m");
    pool_free (p);
    return NULL;
  }
  return p;

 nomem:
  if (p) {
    free (p->ring);
    free (p->running);
    free (p->threads);
    free (p);
  }
  err_set (ENOMEM, "thread pool: out of memory");
  return NULL;
}

int
pool_submit (struct pool *p, pool_fn fn, void *owner, uint64_t n, bool wait)
{
  LOCK_FOR_SCOPE (&p->lock);

  while (p->len == p->cap && wait && !p->stop)
    pthread_cond_wait (&p->changed, &p->lock);
  if (p->len == p->cap || p->stop)
    return err_set (EAGAIN, "background queue is full");
  p->ring[(p->head + p->len) % p->cap] = (struct job) { fn, owner, n };
  p->len++;
  pthread_cond_broadcast (&p->changed);
  return 0;
}

/* Is a job of OWNER running?  Called with p->lock held. */
static bool
owner_running (struct pool *p, void *owner)
{
  for (unsigned i = 0; i < p->nthreads; i++)
    if (p->running[i] == owner)
      return true;
  return false;
}

void
pool_cancel (struct pool *p, void *owner)
{
  unsigned kept = 0;
  LOCK_FOR_SCOPE (&p->lock);

  /* Compact the ring, keeping other owners' jobs in order. */
  for (unsigned i = 0; i < p->len; i++) {
    struct job j = p->ring[(p->head + i) % p->cap];
    if (j.owner != owner)
      p->ring[(p->head + kept++) % p->cap] = j;
  }
  p->len = kept;
  pthread_cond_broadcast (&p->changed);
  while (owner_running (p, owner))
    pthread_cond_wait (&p->changed, &p->lock);
}

void
pool_free (struct pool *p)
{
  if (p == NULL)
    return;
  {
    LOCK_FOR_SCOPE (&p->lock);
    p->stop = true;
    pthread_cond_broadcast (&p->changed);
  }
  for (unsigned i = 0; i < p->nthreads; i++)
    pthread_join (p->threads[i], NULL);
  pthread_mutex_destroy (&p->lock);
  pthread_cond_destroy (&p->changed);
  free (p->ring);
  free (p->running);
  free (p->threads);
  free (p);
}
