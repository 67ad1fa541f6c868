/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold dump-dirty (see dump.c). */
#ifndef LAZYVOLD_DUMP_H
#define LAZYVOLD_DUMP_H

/* Run "lazyvold dump-dirty ARGS..." (ARGV[0] is "dump-dirty"); the exit
 * status.
 */
int dump_dirty_main (int argc, char **argv) __attribute__ ((__nonnull__));

#endif /* LAZYVOLD_DUMP_H */
