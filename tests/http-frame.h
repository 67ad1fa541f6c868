/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* http-frame: the HTTP/1.1 framing that tests/store-proxy parses, and no
 * more: a message's head (request or status line, headers kept as
 * received) and where its body ends (Content-Length, chunked, or the
 * close of the connection).  A body is moved between libevent buffers
 * as it arrives, and on the way its data bytes (not the chunk framing)
 * can be hashed, have one byte flipped, or be cut short.
 */
#ifndef LAZYVOL_HTTP_FRAME_H
#define LAZYVOL_HTTP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#define FRAME_HEAD_MAX (64 * 1024)      /* the longest head taken */

/* A request or reply head, as received. */
struct frame_head {
  char *head;                   /* NUL-terminated, CRLFs kept */
  size_t len;                   /* up to and including the blank line */
  char method[16];              /* a request's */
  char *path;                   /* a request's target, up to any '?' */
  int status;                   /* a reply's */
  int minor;                    /* HTTP/1.MINOR */
};

/* Parse the head at the start of IN into M (a request's if REQUEST,
 * else a reply's), leaving its bytes in IN.  1; 0 if the head is not all
 * there yet; -1 if it is malformed, longer than FRAME_HEAD_MAX, or memory
 * ran out.  Clear M with frame_head_clear in any case.
 */
int frame_head_take (struct frame_head *m, struct evbuffer *in, bool request)
  __attribute__ ((__nonnull__));
/* Free what M holds, and zero it. */
void frame_head_clear (struct frame_head *m) __attribute__ ((__nonnull__));
/* The value of header NAME in M, trimmed, its length in *LEN; NULL if M
 * has no such header.
 */
const char *frame_header (const struct frame_head *m, const char *name,
                          size_t *len) __attribute__ ((__nonnull__));
/* Does header NAME of M hold TOKEN (case-insensitive)? */
bool frame_has (const struct frame_head *m, const char *name,
                const char *token) __attribute__ ((__nonnull__));

/* Where a body ends, and where its reader is. */
enum frame_body_state {
  FRAME_B_DONE, FRAME_B_LENGTH, FRAME_B_CLOSE, FRAME_B_CHUNK_SIZE,
  FRAME_B_CHUNK_DATA, FRAME_B_CHUNK_CRLF, FRAME_B_TRAILER,
};

struct frame_body {
  enum frame_body_state state;
  uint64_t length;              /* FRAME_B_LENGTH: the whole body's */
  uint64_t left;                /* FRAME_B_LENGTH, _CHUNK_DATA: to go */
  uint64_t seen;                /* data bytes passed so far */
  /* Set by the caller after frame_body_start: */
  uint64_t flip_at;             /* data offset of the byte to flip */
  uint64_t cut_at;              /* data offset where the body stops */
  bool eof;                     /* FRAME_B_CLOSE: the connection ended */
  EVP_MD_CTX *sha;              /* if set, hashes the data passed */
  struct evbuffer *held;        /* if set, gets the bytes that complete
                                 * the body, instead of the output */
};

/* Set B up for the body that follows head M; NO_BODY for the reply to a
 * HEAD.  Nothing is flipped, cut, hashed or held.  0, or -1 if M's
 * Content-Length is malformed.
 */
int frame_body_start (struct frame_body *b, const struct frame_head *m,
                      bool no_body) __attribute__ ((__nonnull__));

enum frame_pump {
  FRAME_MORE,                   /* B needs more input (or, FRAME_B_CLOSE,
                                 * its eof) */
  FRAME_DONE,                   /* B is complete */
  FRAME_CUT,                    /* B reached its cut_at */
  FRAME_BAD,                    /* B's chunk framing is malformed */
};
/* Move what IN holds of body B to OUT (or drop it if OUT is NULL). */
enum frame_pump frame_body_pump (struct frame_body *b, struct evbuffer *in,
                                 struct evbuffer *out)
  __attribute__ ((__nonnull__ (1, 2)));

#endif /* LAZYVOL_HTTP_FRAME_H */
