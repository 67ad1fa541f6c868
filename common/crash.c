/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: named crash points (see crash.h). */
#include <config.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"
#include "err.h"

bool
crash_points_enabled (void)
{
#ifdef ENABLE_CRASH_POINTS
  return true;
#else
  return false;
#endif
}

#ifdef ENABLE_CRASH_POINTS
void
crash_point (const char *name)
{
  static _Atomic unsigned hits;
  const char *at = getenv ("LAZYVOL_CRASH_AT");
  size_t n = strlen (name);
  unsigned long nth = 1;

  if (at == NULL || strncmp (at, name, n) != 0 ||
      (at[n] != '\0' && at[n] != ':'))
    return;
  if (at[n] == ':')
    nth = strtoul (at + n + 1, NULL, 10);
  /* Only the named point counts, so N counts its hits. */
  if (atomic_fetch_add (&hits, 1) + 1 != nth)
    return;
  log_error ("crash point %s: killing the process", name);
  raise (SIGKILL);
}
#endif
