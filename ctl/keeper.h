/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: the keeper, the parent of a spawned nbdkit (see keeper.c). */
#ifndef LAZYVOLD_KEEPER_H
#define LAZYVOLD_KEEPER_H

#include <stddef.h>

/* "lazyvold keep [--log FILE] NBDKIT-ARGV...": run nbdkit as its parent,
 * pass SIGTERM and SIGINT on to it, copy its output to FILE and syslog
 * (with --log), and end as it ended.  Returns the exit status for main,
 * or does not return if nbdkit was killed by a signal.
 */
int keeper_main (char **argv) __attribute__ ((__nonnull__));

/* The last lines of nbdkit's log FILE, joined by "; ", into OUT ("" if
 * there are none).
 */
void keeper_log_tail (const char *file, char *out, size_t size)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOLD_KEEPER_H */
