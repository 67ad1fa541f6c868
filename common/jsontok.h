/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: a push tokenizer for JSON documents (RFC 8259), strict.
 *
 * Bytes are fed in pieces of any size (a token may straddle pieces) and
 * each token is handed to the caller's function as soon as it is
 * complete, so a document of any size is read in constant memory: no
 * buffer of the whole document, no tree.  json-c, which lazyvol uses for
 * its small documents, has no such interface (its tokener builds the
 * tree), which is why this module exists; it serves manifest.json, whose
 * size grows with the image (manifest-read.c).
 *
 * A document is one JSON object: anything else is refused at its first
 * byte.  Nothing beyond RFC 8259 is accepted: no trailing commas,
 * comments, leading zeros, NaN or Infinity, no control characters or
 * invalid UTF-8 in strings (overlong forms, surrogates and code points
 * above U+10FFFF included), no unpaired surrogate in a \u escape.
 * Values nest at most JSONTOK_DEPTH_MAX levels deep, the document being
 * the first (the last level can only be an empty container), and a NUL
 * byte is refused wherever it is.  Strings are decoded (escapes resolved); one
 * longer than JSONTOK_STRING_MAX bytes is still read and checked, but
 * handed over without its text, so a caller can skip what it does not
 * need without a limit and refuse what it needs.
 *
 * Errors are EBADMSG, recorded with err_set as "WHAT: invalid JSON at
 * byte N: why", "WHAT: NUL byte at offset N", "WHAT: not a JSON object",
 * "WHAT: trailing data at byte N", "WHAT: truncated JSON (N bytes)" or
 * "WHAT: empty document", byte offsets counted from 0.
 */
#ifndef LAZYVOL_JSONTOK_H
#define LAZYVOL_JSONTOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSONTOK_DEPTH_MAX 8
#define JSONTOK_STRING_MAX 4096

enum jsontok_type {
  JSONTOK_OBJECT, JSONTOK_OBJECT_END, JSONTOK_ARRAY, JSONTOK_ARRAY_END,
  JSONTOK_NAME,                 /* a member name; its value follows */
  JSONTOK_STRING, JSONTOK_INT, JSONTOK_DOUBLE,
  JSONTOK_TRUE, JSONTOK_FALSE, JSONTOK_NULL,
};

struct jsontok_token {
  enum jsontok_type type;
  unsigned depth;               /* containers open around the token (the
                                 * root object and its end: 0) */
  const char *str;              /* NAME, STRING: the decoded text, NUL-
                                 * terminated; NULL if over the limit */
  size_t len;                   /* its length, which counts any NUL that
                                 * a \u0000 put in it */
  uint64_t value;               /* INT: the magnitude (UINT64_MAX if it
                                 * does not fit) */
  bool negative;                /* INT: written with a minus sign */
};

/* Receives each token; 0 to go on, or -1 (with err_set) to stop. */
typedef int (*jsontok_fn) (void *opaque, const struct jsontok_token *t);

struct jsontok;

/* A tokenizer for one document, called WHAT in messages (the string must
 * outlive it), handing tokens to FN.  NULL with err_set (ENOMEM).
 */
struct jsontok *jsontok_new (const char *what, jsontok_fn fn, void *opaque)
  __attribute__ ((__nonnull__ (1, 2)));
/* Tokenize the next LEN bytes of the document.  0, or -1 with EBADMSG
 * (or FN's error); after a failure only jsontok_free may follow.
 */
int jsontok_feed (struct jsontok *t, const void *buf, size_t len)
  __attribute__ ((__nonnull__ (1)));
/* The document has ended: 0 if it was complete, else -1 with EBADMSG.
 * Then only jsontok_free may follow.
 */
int jsontok_finish (struct jsontok *t) __attribute__ ((__nonnull__));
/* Free T; NULL is allowed. */
void jsontok_free (struct jsontok *t);
/* The name json-c gives a value of type TYPE ("int", "double", "string",
 * "boolean", "null", "object", "array"): lazyvol's messages use them.
 */
const char *jsontok_type_name (enum jsontok_type type);

#endif /* LAZYVOL_JSONTOK_H */
