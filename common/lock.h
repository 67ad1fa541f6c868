/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: locks held for the rest of a C scope.
 *
 * A lock taken with LOCK_FOR_SCOPE (or RDLOCK_/WRLOCK_FOR_SCOPE for a
 * rwlock) is released when control leaves the enclosing block, whichever
 * way it leaves: a return, a goto to a label outside the block, or the
 * end of the block.  So a function with several exits cannot forget one,
 * and a short critical section is a block of its own:
 *
 *   {
 *     LOCK_FOR_SCOPE (&c->lock);
 *     resident = bitmap_get (c->resident, chunk);
 *   }
 *
 * pthread_cond_wait on the scoped mutex is fine: it gives the mutex back
 * before it returns.  Failures of lock and unlock are bugs (a lock used
 * uninitialised, or released by a thread that does not hold it), hence
 * the asserts.
 */
#ifndef LAZYVOL_LOCK_H
#define LAZYVOL_LOCK_H

#include <assert.h>
#include <pthread.h>

/* Cleanup helpers behind the macros below. */
static inline void
lock_scope_release_mutex (pthread_mutex_t **m)
{
  int r = pthread_mutex_unlock (*m);
  assert (r == 0);
  (void) r;
}

static inline void
lock_scope_release_rwlock (pthread_rwlock_t **rw)
{
  int r = pthread_rwlock_unlock (*rw);
  assert (r == 0);
  (void) r;
}

static inline pthread_mutex_t *
lock_scope_mutex (pthread_mutex_t *m)
{
  int r = pthread_mutex_lock (m);
  assert (r == 0);
  (void) r;
  return m;
}

static inline pthread_rwlock_t *
lock_scope_rdlock (pthread_rwlock_t *rw)
{
  int r = pthread_rwlock_rdlock (rw);
  assert (r == 0);
  (void) r;
  return rw;
}

static inline pthread_rwlock_t *
lock_scope_wrlock (pthread_rwlock_t *rw)
{
  int r = pthread_rwlock_wrlock (rw);
  assert (r == 0);
  (void) r;
  return rw;
}

#define LOCK_SCOPE_CAT_(a, b) a##b
#define LOCK_SCOPE_CAT(a, b) LOCK_SCOPE_CAT_ (a, b)
#define LOCK_SCOPE_NAME LOCK_SCOPE_CAT (lock_scope_, __LINE__)

/* Hold mutex M until the end of the enclosing block. */
#define LOCK_FOR_SCOPE(m)                                               \
  __attribute__ ((__cleanup__ (lock_scope_release_mutex), __unused__))  \
  pthread_mutex_t *LOCK_SCOPE_NAME = lock_scope_mutex (m)
/* Hold rwlock RW shared until the end of the enclosing block. */
#define RDLOCK_FOR_SCOPE(rw)                                            \
  __attribute__ ((__cleanup__ (lock_scope_release_rwlock), __unused__)) \
  pthread_rwlock_t *LOCK_SCOPE_NAME = lock_scope_rdlock (rw)
/* Hold rwlock RW exclusively until the end of the enclosing block. */
#define WRLOCK_FOR_SCOPE(rw)                                            \
  __attribute__ ((__cleanup__ (lock_scope_release_rwlock), __unused__)) \
  pthread_rwlock_t *LOCK_SCOPE_NAME = lock_scope_wrlock (rw)

#endif /* LAZYVOL_LOCK_H */
