/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* test-readahead: the stream table that decides what to read ahead
 * (common/readahead.h), fed the read patterns of real clients.
 *
 * What must hold, because readahead is what makes a cold sequential read
 * run at the wire's speed, and what must not waste it on random reads:
 *  - one sequential stream is read ahead from its third read on, a step
 *    at a time, with a window that doubles up to the maximum, never past
 *    the image's end, and no chunk is scheduled twice;
 *  - four interleaved streams with shuffled requests (nbdcopy's
 *    connections, nbdkit's threads) are each read ahead the same way;
 *  - random 4 KiB reads schedule nothing;
 *  - a jump starts a new stream, which reads nothing ahead at once;
 *  - a maximum of 0 turns readahead off.
 */
#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readahead.h"

#define CS (4u << 20)           /* chunk size */
#define STEP 4                  /* chunks per fetch */
#define MAX ((uint64_t) 128 << 20)      /* window: 32 chunks */
#define CHUNKS 4096             /* a 16 GiB image */

static int failures;

#define CHECK(cond) check ((cond), #cond, __LINE__)

static void
check (bool ok, const char *what, int line)
{
  if (!ok) {
    fprintf (stderr, "test-readahead.c:%d: FAIL: %s\n", line, what);
    failures++;
  }
}

static unsigned char scheduled[CHUNKS];
static bool twice;

/* Feed one read; record what it schedules.  The number of chunks. */
static uint64_t
note (struct readahead *ra, uint64_t offset, uint32_t count, uint64_t chunks)
{
  uint64_t from, n;

  if (!readahead_note (ra, offset, count, chunks, &from, &n))
    return 0;
  CHECK (n > 0 && from + n <= chunks);
  CHECK (n % STEP == 0 || from + n == chunks);
  for (uint64_t c = from; c < from + n; c++)
    if (scheduled[c]++)
      twice = true;
  return n;
}

static void
clear (void)
{
  memset (scheduled, 0, sizeof scheduled);
  twice = false;
}

/* Are chunks [FROM, TO) all scheduled, and none else in [LO, HI)? */
static bool
exactly (uint64_t from, uint64_t to, uint64_t lo, uint64_t hi)
{
  for (uint64_t c = lo; c < hi; c++)
    if ((scheduled[c] != 0) != (c >= from && c < to))
      return false;
  return true;
}

/* Are chunks [FROM, TO + K) scheduled, and none else in [LO, HI), for
 * some K < STEP (a window is scheduled a whole step at a time)?
 */
static bool
about (uint64_t from, uint64_t to, uint64_t lo, uint64_t hi)
{
  for (uint64_t k = 0; k < STEP; k++)
    if (exactly (from, to + k, lo, hi))
      return true;
  return false;
}

static void
test_one_stream (void)
{
  struct readahead ra;
  const uint32_t rq = 256 << 10;
  uint64_t off = 0;

  clear ();
  readahead_init (&ra, CS, STEP, MAX);
  CHECK (note (&ra, off, rq, CHUNKS) == 0);
  off += rq;
  CHECK (note (&ra, off, rq, CHUNKS) == 0);
  off += rq;
  /* The third read starts it: one step after the stream's chunk. */
  CHECK (note (&ra, off, rq, CHUNKS) == STEP && exactly (1, 1 + STEP, 0, 64));
  for (off += rq; off < ((uint64_t) 64 << 20); off += rq)
    note (&ra, off, rq, CHUNKS);
  /* Read up to chunk 15: the window is 32 chunks ahead of it. */
  CHECK (about (1, 16 + 32, 0, CHUNKS));
  CHECK (!twice);
  /* At the image's end, nothing past it. */
  clear ();
  for (off = (uint64_t) (CHUNKS - 3) * CS; off < (uint64_t) CHUNKS * CS;
       off += rq)
    note (&ra, off, rq, CHUNKS);
  CHECK (!twice);
  readahead_destroy (&ra);

  readahead_init (&ra, CS, STEP, 0);
  for (off = 0; off < ((uint64_t) 64 << 20); off += rq)
    CHECK (note (&ra, off, rq, CHUNKS) == 0);
  readahead_destroy (&ra);
}

static void
test_interleaved (void)
{
  struct readahead ra;
  const uint32_t rq = 256 << 10;
  const uint64_t region = (uint64_t) 128 << 20;    /* 32 chunks apart */
  uint64_t pos[4] = { 0 };
  unsigned seed = 7;

  clear ();
  readahead_init (&ra, CS, STEP, MAX);
  /* Each stream reads 96 MiB of its 512 MiB region (128 chunks), the
   * four of them round robin, with neighbouring requests swapped now
   * and then.
   */
  for (int round = 0; round < 384; round++)
    for (int s = 0; s < 4; s++) {
      uint64_t base = (uint64_t) s * 4 * region;

      if (rand_r (&seed) % 4 == 0 && pos[s] + 2 * rq <= 384 * (uint64_t) rq) {
        note (&ra, base + pos[s] + rq, rq, CHUNKS);
        note (&ra, base + pos[s], rq, CHUNKS);
        pos[s] += 2 * rq;
      }
      else if (pos[s] < 384 * (uint64_t) rq) {
        note (&ra, base + pos[s], rq, CHUNKS);
        pos[s] += rq;
      }
    }
  for (int s = 0; s < 4; s++) {
    uint64_t first = (uint64_t) s * 4 * region / CS;

    /* 96 MiB read: up to chunk 23 of the region, 32 ahead of it. */
    CHECK (about (first + 1, first + 24 + 32, first, first + 128));
  }
  CHECK (!twice);
  readahead_destroy (&ra);
}

static void
test_random (void)
{
  struct readahead ra;
  unsigned seed = 42;
  uint64_t total = 0;

  clear ();
  readahead_init (&ra, CS, STEP, MAX);
  for (int i = 0; i < 100000; i++) {
    uint64_t off = (uint64_t) (rand_r (&seed) % (1u << 20)) * 4096 +
      ((uint64_t) (rand_r (&seed) % 16) << 32);

    total += note (&ra, off % ((uint64_t) CHUNKS * CS), 4096, CHUNKS);
  }
  CHECK (total == 0);
  readahead_destroy (&ra);
}

static void
test_jump (void)
{
  struct readahead ra;
  const uint32_t rq = 1 << 20;

  clear ();
  readahead_init (&ra, CS, STEP, MAX);
  for (uint64_t off = 0; off < ((uint64_t) 16 << 20); off += rq)
    note (&ra, off, rq, CHUNKS);
  CHECK (scheduled[4] == 1);
  /* Far away: a new stream, nothing read ahead for two reads. */
  CHECK (note (&ra, (uint64_t) 2048 * CS, rq, CHUNKS) == 0);
  CHECK (note (&ra, (uint64_t) 2048 * CS + rq, rq, CHUNKS) == 0);
  CHECK (note (&ra, (uint64_t) 2048 * CS + 2 * rq, rq, CHUNKS) == STEP);
  CHECK (scheduled[2049] == 1 && scheduled[2049 + STEP] == 0);
  /* The old stream is still followed: its window moves on. */
  {
    uint64_t n = 0;

    for (uint64_t off = (uint64_t) 16 << 20; off < ((uint64_t) 24 << 20);
         off += rq)
      n += note (&ra, off, rq, CHUNKS);
    CHECK (n > 0);
  }
  CHECK (!twice);
  /* Forgotten: it starts again from nothing. */
  readahead_forget (&ra);
  CHECK (note (&ra, (uint64_t) 17 << 20, rq, CHUNKS) == 0);
  readahead_destroy (&ra);
}

int
main (void)
{
  test_one_stream ();
  test_interleaved ();
  test_random ();
  test_jump ();
  if (failures) {
    fprintf (stderr, "test-readahead: %d failures\n", failures);
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
