/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* test-ids: new snapshot ids (util.h).
 *
 * What must hold, because a delete finds the snapshots that may name a
 * snapshot's blob by their ids sorting after its own (refs.c):
 *  - every id is a valid UUIDv7 (version 7, variant 10) in lowercase hex,
 *    and the ids of one process only grow;
 *  - an id made after a floor sorts after it even when the floor is a
 *    day ahead of this clock (a host whose clock is ahead published it):
 *    the floor's millisecond with a higher sequence, or the next
 *    millisecond when the floor's sequence is the last, or its version
 *    digit is above 7; the floor's millisecond itself when its version
 *    digit is below 7;
 *  - many ids after one floor are all different and in order;
 *  - a floor in the last millisecond 48 bits hold is ignored: the id is
 *    still valid.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int failures;

#define CHECK(cond) check ((cond), #cond, __LINE__)

static bool
check (bool ok, const char *what, int line)
{
  if (!ok) {
    fprintf (stderr, "test-ids.c:%d: FAIL: %s\n", line, what);
    failures++;
  }
  return ok;
}

/* Is ID a valid UUIDv7 without dashes? */
static bool
uuidv7 (const char *id)
{
  return id_snapshot_valid (id) && id[12] == '7' &&
    strchr ("89ab", id[16]) != NULL;
}

/* The floor of time MS, version digit VERSION and sequence SEQ. */
static void
make_floor (char out[SNAPSHOT_ID_LEN + 1], uint64_t ms, int version,
            unsigned seq)
{
  snprintf (out, SNAPSHOT_ID_LEN + 1, "%012" PRIx64 "%x%03x%s", ms,
            version, seq, "8fffffffffffffff");
}

/* The sequence of a version 7 id. */
static unsigned
seq_of (const char *id)
{
  return strtoul ((char[4]) { id[13], id[14], id[15], '\0' }, NULL, 16);
}

int
main (void)
{
  char prev[SNAPSHOT_ID_LEN + 1], id[SNAPSHOT_ID_LEN + 1];
  char floor[SNAPSHOT_ID_LEN + 1];
  uint64_t ahead = time_real_ms () + 24 * 3600 * 1000;

  id_snapshot_new (prev);
  CHECK (uuidv7 (prev));
  for (int i = 0; i < 10000; i++) {
    id_snapshot_new (id);
    CHECK (uuidv7 (id) && strcmp (id, prev) > 0);
    memcpy (prev, id, sizeof id);
  }
  id_snapshot_new_after (id, "");
  CHECK (uuidv7 (id) && strcmp (id, prev) > 0);
  memcpy (prev, id, sizeof id);

  /* A day ahead, sequence 5: that millisecond, sequence 6. */
  make_floor (floor, ahead, 7, 5);
  id_snapshot_new_after (id, floor);
  CHECK (uuidv7 (id) && strcmp (id, floor) > 0);
  CHECK (id_snapshot_ms (id) == ahead && seq_of (id) == 6);
  /* Later ids follow it, with or without a floor, all different. */
  memcpy (prev, id, sizeof id);
  for (int i = 0; i < 10000; i++) {
    if (i % 2)
      id_snapshot_new (id);
    else
      id_snapshot_new_after (id, floor);
    CHECK (uuidv7 (id) && strcmp (id, prev) > 0);
    memcpy (prev, id, sizeof id);
  }

  /* The last sequence, or a version above 7: the next millisecond. */
  ahead += 1000;
  make_floor (floor, ahead, 7, 0xfff);
  id_snapshot_new_after (id, floor);
  CHECK (uuidv7 (id) && strcmp (id, floor) > 0);
  CHECK (id_snapshot_ms (id) == ahead + 1 && seq_of (id) == 0);
  ahead += 1000;
  make_floor (floor, ahead, 8, 0);
  id_snapshot_new_after (id, floor);
  CHECK (uuidv7 (id) && strcmp (id, floor) > 0);
  CHECK (id_snapshot_ms (id) == ahead + 1 && seq_of (id) == 0);
  /* A version below 7: that millisecond, sequence 0. */
  ahead += 1000;
  make_floor (floor, ahead, 4, 0xfff);
  id_snapshot_new_after (id, floor);
  CHECK (uuidv7 (id) && strcmp (id, floor) > 0);
  CHECK (id_snapshot_ms (id) == ahead && seq_of (id) == 0);

  /* A floor behind the last id changes nothing. */
  memcpy (prev, id, sizeof id);
  id_snapshot_new_after (id, "0180000000007000800000000000beef");
  CHECK (uuidv7 (id) && strcmp (id, prev) > 0);

  /* The end of time is not followed, but the id is valid. */
  make_floor (floor, ID_MS_MAX, 7, 0xfff);
  id_snapshot_new_after (id, floor);
  CHECK (uuidv7 (id) && id_snapshot_ms (id) < ID_MS_MAX);

  if (failures)
    fprintf (stderr, "test-ids: %d failures\n", failures);
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
