/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: JSON text indented for people, without a tree. */
#ifndef LAZYVOLD_PRETTY_H
#define LAZYVOLD_PRETTY_H

#include <stddef.h>

#include <event2/buffer.h>

/* Check that the LEN bytes at S are one JSON object (strict RFC 8259),
 * then add them to OUT indented as json-c's pretty printer does, and a
 * line break.  0, or -1 with err_set: EBADMSG naming WHAT, or ENOMEM.
 */
int pretty_json (struct evbuffer *out, const char *s, size_t len,
                 const char *what) __attribute__ ((__nonnull__));

#endif /* LAZYVOLD_PRETTY_H */
