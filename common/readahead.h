/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: readahead that follows several sequential streams of reads
 * at once, as nbdcopy's and qemu's connections make them (see
 * readahead.c).  It only decides what to fetch; the export queues the
 * fetches (volume.c).
 */
#ifndef LAZYVOL_READAHEAD_H
#define LAZYVOL_READAHEAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Streams followed at once per export. */
#define READAHEAD_STREAMS 8

struct readahead_stream {
  uint64_t end;                 /* the byte after its latest read */
  uint64_t last;                /* the chunk of its latest read's end */
  uint64_t next;                /* the first chunk not yet scheduled */
  uint64_t window;              /* chunks kept scheduled ahead of LAST */
  unsigned hits;                /* reads that followed on (capped) */
  uint64_t used;                /* when it last matched, for replacement */
};

struct readahead {
  pthread_mutex_t lock;         /* protects everything below */
  uint32_t chunk_size;
  uint64_t step;                /* chunks per fetch (a run) */
  uint64_t max_window;          /* chunks, a multiple of STEP; 0: off */
  uint64_t clock;
  struct readahead_stream s[READAHEAD_STREAMS];
};

/* Start with no stream: chunks of CHUNK_SIZE bytes, fetched STEP (>= 1)
 * at a time, at most MAX_BYTES ahead of a stream (rounded up to whole
 * steps; 0: never).
 */
void readahead_init (struct readahead *ra, uint32_t chunk_size,
                     uint64_t step, uint64_t max_bytes)
  __attribute__ ((__nonnull__));
/* Free what readahead_init made. */
void readahead_destroy (struct readahead *ra) __attribute__ ((__nonnull__));
/* Note a read of COUNT (> 0) bytes at OFFSET of an image of CHUNKS
 * chunks.  True if chunks [*FROM, *FROM + *N) should be fetched now
 * (*N a multiple of the step, but for the image's end).
 */
bool readahead_note (struct readahead *ra, uint64_t offset, uint32_t count,
                     uint64_t chunks, uint64_t *from, uint64_t *n)
  __attribute__ ((__nonnull__));
/* Forget every stream (the image behind them changed). */
void readahead_forget (struct readahead *ra) __attribute__ ((__nonnull__));

#endif /* LAZYVOL_READAHEAD_H */
