/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: readahead over a small table of sequential streams (see
 * readahead.h).
 *
 * Real readers interleave: nbdcopy copies with several connections,
 * each reading its own part of the image in order with many requests in
 * flight, and nbdkit's threads take those requests in a slightly shuffled
 * order.  A single "was this read after the previous one" test sees
 * only jumps there.  So each export keeps READAHEAD_STREAMS streams,
 * each where its latest read ended; a read that starts near a stream's
 * end (within four times its own length, either way, for the shuffle)
 * follows it on, and any other read starts a new stream in place of the
 * one unused for longest.  Random reads therefore only ever make new
 * streams, which fetch nothing: a stream starts reading ahead at its
 * second follow-on read.  Then its window starts at one step (one
 * fetch, a run of chunks: CACHE_RUN_BYTES) and doubles each time the
 * stream enters a new chunk, up to the most the export allows; the
 * window is kept scheduled ahead of the stream's chunk, a step at a
 * time, so several fetches of a stream run at once when the window
 * holds several steps.  A stream that jumps is a new stream, with no
 * window: that is the collapse.
 *
 * Cost: one mutex and a scan of eight entries per read; nothing is
 * allocated.
 */
#include <config.h>

#include <assert.h>
#include <string.h>

#include "lock.h"
#include "readahead.h"

/* Follow-on reads before a stream reads ahead. */
#define CONFIRM 2
#define HITS_CAP 1000

void
readahead_init (struct readahead *ra, uint32_t chunk_size, uint64_t step,
                uint64_t max_bytes)
{
  uint64_t w = (max_bytes + chunk_size - 1) / chunk_size;

  assert (chunk_size > 0 && step > 0);
  memset (ra, 0, sizeof *ra);
  pthread_mutex_init (&ra->lock, NULL);
  ra->chunk_size = chunk_size;
  ra->step = step;
  ra->max_window = w == 0 ? 0 : (w + step - 1) / step * step;
}

void
readahead_destroy (struct readahead *ra)
{
  pthread_mutex_destroy (&ra->lock);
}

void
readahead_forget (struct readahead *ra)
{
  LOCK_FOR_SCOPE (&ra->lock);
  memset (ra->s, 0, sizeof ra->s);
}

/* The stream that a read of COUNT bytes at OFFSET follows, or NULL. */
static struct readahead_stream *
find (struct readahead *ra, uint64_t offset, uint32_t count)
{
  uint64_t slack = 4 * (uint64_t) count;

  for (unsigned i = 0; i < READAHEAD_STREAMS; i++) {
    struct readahead_stream *s = &ra->s[i];

    if (s->used > 0 && offset + slack >= s->end && offset <= s->end + slack)
      return s;
  }
  return NULL;
}

/* Start a new stream at a read of COUNT bytes at OFFSET, in place of the
 * one unused for longest.
 */
static void
start (struct readahead *ra, uint64_t offset, uint32_t count)
{
  struct readahead_stream *s = &ra->s[0];

  for (unsigned i = 1; i < READAHEAD_STREAMS; i++)
    if (ra->s[i].used < s->used)
      s = &ra->s[i];
  *s = (struct readahead_stream) {
    .end = offset + count, .last = (offset + count - 1) / ra->chunk_size,
    .used = ++ra->clock,
  };
  s->next = s->last + 1;
}

bool
readahead_note (struct readahead *ra, uint64_t offset, uint32_t count,
                uint64_t chunks, uint64_t *from, uint64_t *n)
{
  struct readahead_stream *s;
  uint64_t end = offset + count, target;

  assert (count > 0);
  if (ra->max_window == 0)
    return false;
  LOCK_FOR_SCOPE (&ra->lock);
  if ((s = find (ra, offset, count)) == NULL) {
    start (ra, offset, count);
    return false;
  }
  s->used = ++ra->clock;
  if (s->hits < HITS_CAP)
    s->hits++;
  if (end > s->end) {
    uint64_t last = (end - 1) / ra->chunk_size;

    s->end = end;
    if (last > s->last) {
      s->last = last;
      if (s->window > 0)
        s->window = 2 * s->window < ra->max_window ? 2 * s->window
          : ra->max_window;
    }
  }
  if (s->hits < CONFIRM)
    return false;
  if (s->window == 0)
    s->window = ra->step < ra->max_window ? ra->step : ra->max_window;
  if (s->next <= s->last)
    s->next = s->last + 1;
  target = s->last + 1 + s->window;
  if (target > chunks)
    target = chunks;
  if (s->next >= target)
    return false;
  *from = s->next;
  *n = (target - s->next + ra->step - 1) / ra->step * ra->step;
  if (*n > chunks - s->next)
    *n = chunks - s->next;
  s->next += *n;
  return true;
}
