/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: fixed-size bitmaps of chunk state, one bit per chunk, stored as
 * 64-bit words so that scans skip 64 clean chunks at a time.  Callers do
 * their own locking.
 */
#ifndef LAZYVOL_BITMAP_H
#define LAZYVOL_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

/* Words needed for N bits. */
static inline uint64_t
bitmap_words (uint64_t n)
{
  return (n + 63) / 64;
}

/* Is bit I set? */
static inline bool
bitmap_get (const uint64_t *w, uint64_t i)
{
  return (w[i / 64] >> (i % 64)) & 1;
}

/* Set bit I. */
static inline void
bitmap_set (uint64_t *w, uint64_t i)
{
  w[i / 64] |= UINT64_C (1) << (i % 64);
}

/* Clear bit I. */
static inline void
bitmap_clear (uint64_t *w, uint64_t i)
{
  w[i / 64] &= ~(UINT64_C (1) << (i % 64));
}

/* Atomic variants, for a bitmap that one thread reads without the lock
 * its writers hold (the cache's resident bits): every change to such a
 * bitmap goes through these, so the lock-free reader never races a plain
 * read-modify-write.  Setting is a release, so a reader that sees a bit
 * also sees what was done before it was set; testing and clearing are
 * sequentially consistent, as the reader-pin handshake in cache.c needs
 * (a pin, then this test, against a clear, then a look at the pins: with
 * anything weaker both sides could miss the other).
 */

/* Is bit I set?  (sequentially consistent) */
static inline bool
bitmap_get_atomic (const uint64_t *w, uint64_t i)
{
  return (__atomic_load_n (&w[i / 64], __ATOMIC_SEQ_CST) >> (i % 64)) & 1;
}

/* Set bit I.  (release) */
static inline void
bitmap_set_atomic (uint64_t *w, uint64_t i)
{
  __atomic_fetch_or (&w[i / 64], UINT64_C (1) << (i % 64), __ATOMIC_RELEASE);
}

/* Clear bit I.  (sequentially consistent) */
static inline void
bitmap_clear_atomic (uint64_t *w, uint64_t i)
{
  __atomic_fetch_and (&w[i / 64], ~(UINT64_C (1) << (i % 64)),
                      __ATOMIC_SEQ_CST);
}

/* Store word K.  (sequentially consistent) */
static inline void
bitmap_store_word_atomic (uint64_t *w, uint64_t k, uint64_t value)
{
  __atomic_store_n (&w[k], value, __ATOMIC_SEQ_CST);
}

/* Relaxed variants, for hints that threads set without a lock and one
 * thread holding it clears (the cache's referenced bits): a bit lost or
 * seen late only makes a worse eviction choice, never a wrong one.
 */

/* Set bit I unless it is set: only a load if it is.  (relaxed) */
static inline void
bitmap_mark_relaxed (uint64_t *w, uint64_t i)
{
  uint64_t bit = UINT64_C (1) << (i % 64);

  if (!(__atomic_load_n (&w[i / 64], __ATOMIC_RELAXED) & bit))
    __atomic_fetch_or (&w[i / 64], bit, __ATOMIC_RELAXED);
}

/* Word K.  (relaxed) */
static inline uint64_t
bitmap_word_relaxed (const uint64_t *w, uint64_t k)
{
  return __atomic_load_n (&w[k], __ATOMIC_RELAXED);
}

/* Clear the bits MASK of word K.  (relaxed) */
static inline void
bitmap_clear_word_relaxed (uint64_t *w, uint64_t k, uint64_t mask)
{
  __atomic_fetch_and (&w[k], ~mask, __ATOMIC_RELAXED);
}

/* The first set bit at or after FROM, below N; N if there is none. */
static inline uint64_t
bitmap_next (const uint64_t *w, uint64_t from, uint64_t n)
{
  while (from < n) {
    uint64_t word = w[from / 64] >> (from % 64);
    if (word)
      return from + __builtin_ctzll (word) < n
        ? from + __builtin_ctzll (word) : n;
    from = (from / 64 + 1) * 64;
  }
  return n;
}

/* Number of set bits among the first N. */
static inline uint64_t
bitmap_count (const uint64_t *w, uint64_t n)
{
  uint64_t c = 0;

  for (uint64_t i = 0; i < n / 64; i++)
    c += __builtin_popcountll (w[i]);
  if (n % 64)
    c += __builtin_popcountll (w[n / 64] & ((UINT64_C (1) << (n % 64)) - 1));
  return c;
}

#endif /* LAZYVOL_BITMAP_H */
