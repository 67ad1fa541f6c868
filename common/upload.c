/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: ordered, parallel blob upload (see upload.h).
 *
 * u->lock guards the queue of full parts, the free buffers and the first
 * worker error.  The producer owns the part it fills; a worker owns the
 * part it uploads.  An error in a worker is kept (errno and message) and
 * handed to the producer at its next reserve or at finish, so it is
 * reported once, by the caller.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "lock.h"
#include "upload.h"
#include "util.h"

#define THREADS_MAX 16
#define PART_ALIGN 4096

struct part {
  char *buf;
  size_t len;
  unsigned partno;
  uint64_t offset;
};

struct upload {
  struct store *st;
  char *key;
  size_t part_size;
  unsigned threads;
  upload_begin_fn on_begin;
  upload_part_fn on_part;
  void *opaque;

  struct store_upload *up;      /* NULL until a second part is needed */
  struct part cur;              /* being filled by the producer */
  uint64_t committed;           /* bytes committed in earlier parts */
  unsigned next_partno;
  pthread_t th[THREADS_MAX];
  unsigned started;

  pthread_mutex_t lock;         /* protects queue, queued, free_bufs, nfree,
                                   nbufs, closing, err_num and err_text */
  pthread_cond_t cond;
  struct part queue[THREADS_MAX];
  unsigned queued;
  char *free_bufs[THREADS_MAX + 1];
  unsigned nfree, nbufs;
  bool closing;
  int err_num;                  /* first worker error */
  char err_text[512];
};

/* Hand part P to the caller's hook (which hashes it for the store, if
 * the store wants a hash), then upload it.
 */
static int
send_part (struct upload *u, const struct part *p)
{
  unsigned char sha[32];
  bool hashed = u->on_part && store_wants_sha256 (u->st);

  if (u->on_part && u->on_part (u->opaque, p->buf, p->len, p->offset,
                                hashed ? sha : NULL) == -1)
    return -1;
  return store_upload_part (u->up, p->partno, p->offset, p->buf, p->len,
                            hashed ? sha : NULL);
}

/* Wait for a queued part and take it into *P; *SKIP if an earlier part
 * failed (then don't bother sending it).  False once closing with no part
 * left.  Called with u->lock held.
 */
static bool
take_part (struct upload *u, struct part *p, bool *skip)
{
  while (u->queued == 0 && !u->closing)
    pthread_cond_wait (&u->cond, &u->lock);
  if (u->queued == 0)
    return false;
  *p = u->queue[--u->queued];
  *skip = u->err_num != 0;
  return true;
}

static void *
worker (void *arg)
{
  struct upload *u = arg;
  struct part p;
  bool more, skip;

  {
    LOCK_FOR_SCOPE (&u->lock);
    more = take_part (u, &p, &skip);
  }
  while (more) {
    int r = skip ? -1 : send_part (u, &p);

    LOCK_FOR_SCOPE (&u->lock);
    if (r == -1 && !skip && u->err_num == 0) {
      u->err_num = err_errno ();
      snprintf (u->err_text, sizeof u->err_text, "%s", err_msg ());
    }
    u->free_bufs[u->nfree++] = p.buf;
    pthread_cond_broadcast (&u->cond);
    more = take_part (u, &p, &skip);
  }
  return NULL;
}

struct upload *
upload_new (struct store *st, const char *key, size_t part_size,
            unsigned threads, upload_begin_fn on_begin,
            upload_part_fn on_part, void *opaque)
{
  struct upload *u = calloc (1, sizeof *u);

  assert (part_size >= STORE_PART_MIN);
  if (u == NULL || (u->key = strdup (key)) == NULL) {
    free (u);
    err_set (ENOMEM, "upload %s: out of memory", key);
    return NULL;
  }
  u->st = st;
  u->part_size = part_size;
  u->threads = threads < 1 ? 1 : threads > THREADS_MAX ? THREADS_MAX : threads;
  u->on_begin = on_begin;
  u->on_part = on_part;
  u->opaque = opaque;
  u->next_partno = 1;
  pthread_mutex_init (&u->lock, NULL);
  pthread_cond_init (&u->cond, NULL);
  return u;
}

/* The upload's recorded worker error, as this thread's error.  -1. */
static int
worker_error (struct upload *u)
{
  return err_set (u->err_num, "%s", u->err_text);
}

/* Start the multipart upload and its workers (on the second part). */
static int
start_multipart (struct upload *u)
{
  u->up = store_upload_begin (u->st, u->key);
  if (u->up == NULL)
    return -1;
  if (u->on_begin && u->on_begin (u->opaque, store_upload_id (u->up)) == -1)
    return -1;
  for (; u->started < u->threads; u->started++) {
    int e = pthread_create (&u->th[u->started], NULL, worker, u);
    if (e)
      return u->started ? 0 : err_set (e, "upload %s: pthread_create: %m",
                                       u->key);
  }
  return 0;
}

/* Hand the full current part to the workers. */
static int
queue_part (struct upload *u)
{
  if (u->up == NULL && start_multipart (u) == -1)
    return -1;
  u->cur.partno = u->next_partno++;
  u->cur.offset = u->committed;
  u->committed += u->cur.len;
  {
    LOCK_FOR_SCOPE (&u->lock);
    while (u->queued == u->threads && u->err_num == 0)
      pthread_cond_wait (&u->cond, &u->lock);
    u->queue[u->queued++] = u->cur;
    pthread_cond_broadcast (&u->cond);
  }
  u->cur.buf = NULL;
  u->cur.len = 0;
  return 0;
}

void *
upload_reserve (struct upload *u, size_t len)
{
  assert (len <= u->part_size);
  if (u->cur.buf && u->cur.len + len > u->part_size &&
      queue_part (u) == -1)
    return NULL;
  if (u->cur.buf == NULL) {
    {
      LOCK_FOR_SCOPE (&u->lock);
      while (u->nfree == 0 && u->nbufs == u->threads + 1 && u->err_num == 0)
        pthread_cond_wait (&u->cond, &u->lock);
      if (u->err_num) {
        worker_error (u);
        return NULL;
      }
      if (u->nfree)
        u->cur.buf = u->free_bufs[--u->nfree];
      else
        u->nbufs++;
    }
    /* Page-aligned, so that the file store can write parts with
     * O_DIRECT.
     */
    if (u->cur.buf == NULL &&
        (errno = posix_memalign ((void **) &u->cur.buf, PART_ALIGN,
                                 u->part_size)) != 0) {
      u->cur.buf = NULL;
      err_set (errno, "upload %s: posix_memalign: %m", u->key);
      return NULL;
    }
  }
  return u->cur.buf + u->cur.len;
}

void
upload_commit (struct upload *u, size_t len)
{
  assert (u->cur.buf && u->cur.len + len <= u->part_size);
  u->cur.len += len;
}

/* fopencookie's write: fill the current part, then the next ... */
static ssize_t
stream_write (void *cookie, const char *buf, size_t len)
{
  struct upload *u = cookie;
  size_t done = 0;

  while (done < len) {
    size_t room = u->cur.len < u->part_size ? u->part_size - u->cur.len
      : u->part_size;
    size_t n = len - done < room ? len - done : room;
    char *p = upload_reserve (u, n);

    if (p == NULL) {
      errno = EIO;              /* the reason is this thread's error */
      return done > 0 ? (ssize_t) done : -1;
    }
    memcpy (p, buf + done, n);
    upload_commit (u, n);
    done += n;
  }
  return done;
}

FILE *
upload_fopen (struct upload *u)
{
  FILE *f = fopencookie (u, "w", (cookie_io_functions_t) {
      .write = stream_write });

  if (f == NULL)
    err_set (errno, "upload %s: fopencookie: %m", u->key);
  return f;
}

uint64_t
upload_size (const struct upload *u)
{
  return u->committed + u->cur.len;
}

/* Let the workers finish the queued parts, then join them. */
static void
stop_workers (struct upload *u)
{
  {
    LOCK_FOR_SCOPE (&u->lock);
    u->closing = true;
    pthread_cond_broadcast (&u->cond);
  }
  for (unsigned i = 0; i < u->started; i++)
    pthread_join (u->th[i], NULL);
  u->started = 0;
}

/* Stop the workers and free everything but the store upload. */
static void
upload_free (struct upload *u)
{
  stop_workers (u);
  for (unsigned i = 0; i < u->nfree; i++)
    free (u->free_bufs[i]);
  free (u->cur.buf);
  pthread_mutex_destroy (&u->lock);
  pthread_cond_destroy (&u->cond);
  free (u->key);
  free (u);
}

int
upload_finish (struct upload *u)
{
  int r = 0;

  if (u->up == NULL) {
    /* Everything fits in one part: a single put (or nothing at all),
     * which hashes the part itself if the store wants a hash.
     */
    if (u->cur.len > 0 && u->on_part)
      r = u->on_part (u->opaque, u->cur.buf, u->cur.len, 0, NULL);
    if (u->cur.len > 0 && r == 0)
      r = store_put (u->st, u->key, u->cur.buf, u->cur.len, STORE_PUT_ANY,
                     NULL, NULL);
    upload_free (u);
    return r;
  }
  if (u->cur.len > 0 && queue_part (u) == -1) {
    upload_abort (u);
    return -1;
  }
  stop_workers (u);
  if (u->err_num) {
    worker_error (u);
    upload_abort (u);
    return -1;
  }
  r = store_upload_complete (u->up);    /* frees u->up, even on error */
  u->up = NULL;
  upload_free (u);
  return r;
}

void
upload_abort (struct upload *u)
{
  if (u == NULL)
    return;
  /* Drop the queued parts, let running ones finish, then abandon the
   * store's upload: no worker may still be using it.
   */
  {
    LOCK_FOR_SCOPE (&u->lock);
    if (u->err_num == 0)
      u->err_num = ECANCELED;
    while (u->queued > 0)
      free (u->queue[--u->queued].buf);
  }
  stop_workers (u);
  store_upload_abort (u->up);
  u->up = NULL;
  upload_free (u);
}
