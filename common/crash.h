/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: named crash points, for tests of crash recovery.
 *
 * CRASH_POINT ("publish.after_manifest") marks a step after which a
 * crash must leave a usable state.  In a build configured with
 * --enable-crash-points, the process kills itself there (SIGKILL, as a
 * power cut or kill -9 would: no clean-up runs) when the environment
 * variable LAZYVOL_CRASH_AT names the point, as NAME (the first time it
 * is reached) or NAME:N (the Nth time).  In other builds the points
 * compile to nothing, so a production binary cannot be made to crash
 * this way.  The points are listed in nbdkit-lazyvol-plugin(1).
 */
#ifndef LAZYVOL_CRASH_H
#define LAZYVOL_CRASH_H

#include <stdbool.h>

/* Are crash points compiled in? */
bool crash_points_enabled (void);

#ifdef ENABLE_CRASH_POINTS
/* Kill the process if LAZYVOL_CRASH_AT names point NAME (see above). */
void crash_point (const char *name) __attribute__ ((__nonnull__));
#define CRASH_POINT(name) crash_point (name)
#else
#define CRASH_POINT(name) ((void) 0)
#endif

#endif /* LAZYVOL_CRASH_H */
