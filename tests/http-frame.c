/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* http-frame: HTTP/1.1 framing for tests/store-proxy (see http-frame.h).
 *
 * Nothing is copied that need not be: body bytes move between evbuffers
 * by chains (evbuffer_remove_buffer), and the hash reads them in place
 * (evbuffer_peek) before they move.  The one byte flipped is taken out,
 * changed and put back, as a peeked chain may be read-only memory.
 *
 * A head is found by its blank line and copied once, NUL-terminated, so
 * that headers are looked up with string functions; a head of which no
 * blank line shows in the first FRAME_HEAD_MAX bytes is malformed.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http-frame.h"

#define FRAME_LINE_MAX 4096     /* a chunk-size or trailer line */

void
frame_head_clear (struct frame_head *m)
{
  free (m->head);
  free (m->path);
  memset (m, 0, sizeof *m);
}

const char *
frame_header (const struct frame_head *m, const char *name, size_t *len)
{
  size_t n = strlen (name);

  for (const char *line = strstr (m->head, "\r\n") + 2; line[0] != '\r';
       line = strstr (line, "\r\n") + 2) {
    if (strncasecmp (line, name, n) == 0 && line[n] == ':') {
      const char *v = line + n + 1, *end = strstr (v, "\r\n");
      while (v < end && (*v == ' ' || *v == '\t'))
        v++;
      while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
      *len = end - v;
      return v;
    }
  }
  return NULL;
}

bool
frame_has (const struct frame_head *m, const char *name, const char *token)
{
  size_t len;
  const char *v = frame_header (m, name, &len);
  char copy[256];

  if (v == NULL)
    return false;
  snprintf (copy, sizeof copy, "%.*s", (int) len, v);
  return strcasestr (copy, token) != NULL;
}

int
frame_head_take (struct frame_head *m, struct evbuffer *in, bool request)
{
  struct evbuffer_ptr end = evbuffer_search (in, "\r\n\r\n", 4, NULL);
  char target[FRAME_HEAD_MAX], method[sizeof m->method];
  int n = 0;

  if (end.pos == -1)
    return evbuffer_get_length (in) > FRAME_HEAD_MAX ? -1 : 0;
  if (end.pos + 4 > FRAME_HEAD_MAX)
    return -1;
  m->len = end.pos + 4;
  if ((m->head = malloc (m->len + 1)) == NULL)
    return -1;
  evbuffer_copyout (in, m->head, m->len);
  m->head[m->len] = '\0';
  if (request) {                /* TARGET holds a whole head */
    if (sscanf (m->head, "%15[A-Z] %65535s HTTP/1.%d%n", method, target,
                &m->minor, &n) != 3 || strncmp (m->head + n, "\r\n", 2))
      return -1;
    strcpy (m->method, method);
    if ((m->path = strndup (target, strcspn (target, "?"))) == NULL)
      return -1;
  }
  else if (sscanf (m->head, "HTTP/1.%d %3d%n", &m->minor, &m->status,
                   &n) != 2 || m->status < 100 || m->status > 599)
    return -1;
  return 1;
}

int
frame_body_start (struct frame_body *b, const struct frame_head *m,
                  bool no_body)
{
  size_t len;
  const char *cl = frame_header (m, "Content-Length", &len);
  char *end;

  *b = (struct frame_body) { .flip_at = UINT64_MAX, .cut_at = UINT64_MAX };
  if (no_body || m->status / 100 == 1 || m->status == 204 ||
      m->status == 304)
    b->state = FRAME_B_DONE;
  else if (frame_has (m, "Transfer-Encoding", "chunked"))
    b->state = FRAME_B_CHUNK_SIZE;
  else if (cl) {
    if (len == 0 || cl[0] < '0' || cl[0] > '9')
      return -1;
    errno = 0;
    b->length = b->left = strtoull (cl, &end, 10);
    if (errno || end != cl + len)
      return -1;
    b->state = b->length ? FRAME_B_LENGTH : FRAME_B_DONE;
  }
  else
    b->state = m->status ? FRAME_B_CLOSE : FRAME_B_DONE;
  return 0;
}

/* Move N bytes from IN to OUT, or drop them if OUT is NULL. */
static void
move (struct evbuffer *in, struct evbuffer *out, size_t n)
{
  if (out)
    evbuffer_remove_buffer (in, out, n);
  else
    evbuffer_drain (in, n);
}

static void
hash_run (struct frame_body *b, struct evbuffer *in, size_t n)
{
  struct evbuffer_ptr p;
  struct evbuffer_iovec v;

  evbuffer_ptr_set (in, &p, 0, EVBUFFER_PTR_SET);
  while (n > 0 && evbuffer_peek (in, n, &p, &v, 1) >= 1) {
    size_t k = v.iov_len < n ? v.iov_len : n;
    EVP_DigestUpdate (b->sha, v.iov_base, k);
    n -= k;
    evbuffer_ptr_set (in, &p, k, EVBUFFER_PTR_ADD);
  }
}

/* Pass N data bytes of B from IN to OUT, hashing them, flipping the one
 * at B->flip_at.
 */
static void
pass_data (struct frame_body *b, struct evbuffer *in, struct evbuffer *out,
           size_t n)
{
  while (n > 0) {
    size_t run = n;
    if (b->flip_at >= b->seen && b->flip_at - b->seen < n)
      run = b->flip_at - b->seen;
    if (run == 0) {
      unsigned char c;
      evbuffer_remove (in, &c, 1);
      c ^= 0xff;
      if (b->sha)
        EVP_DigestUpdate (b->sha, &c, 1);
      if (out)
        evbuffer_add (out, &c, 1);
      run = 1;
    }
    else {
      if (b->sha)
        hash_run (b, in, run);
      move (in, out, run);
    }
    b->seen += run;
    n -= run;
  }
}

/* The cut is checked before each step, so no byte at or past cut_at
 * moves; with HELD, the last data byte of a Content-Length body and a
 * chunked body's last chunk and trailers go there instead of to OUT.
 */
enum frame_pump
frame_body_pump (struct frame_body *b, struct evbuffer *in,
                 struct evbuffer *out)
{
  struct evbuffer *end = b->held && out ? b->held : out;

  for (;;) {
    size_t avail = evbuffer_get_length (in), eol;
    uint64_t n;
    struct evbuffer_ptr p;
    char line[32], *e;
    bool last;

    if (b->seen >= b->cut_at)
      return FRAME_CUT;
    switch (b->state) {
    case FRAME_B_DONE:
      return FRAME_DONE;
    case FRAME_B_LENGTH:
    case FRAME_B_CHUNK_DATA:
      if (b->left == 0) {
        b->state = b->state == FRAME_B_LENGTH ? FRAME_B_DONE
          : FRAME_B_CHUNK_CRLF;
        continue;
      }
      n = avail < b->left ? avail : b->left;
      if (n > b->cut_at - b->seen)
        n = b->cut_at - b->seen;
      if (n == 0)
        return FRAME_MORE;
      last = b->state == FRAME_B_LENGTH && n == b->left;
      pass_data (b, in, out, n - last);
      if (last)
        pass_data (b, in, end, 1);
      b->left -= n;
      continue;
    case FRAME_B_CLOSE:
      n = avail < b->cut_at - b->seen ? avail : b->cut_at - b->seen;
      if (n == 0 && b->eof)
        b->state = FRAME_B_DONE;
      if (n == 0)
        return b->eof ? FRAME_DONE : FRAME_MORE;
      pass_data (b, in, out, n);
      continue;
    case FRAME_B_CHUNK_CRLF:
      if (avail < 2)
        return FRAME_MORE;
      evbuffer_copyout (in, line, 2);
      if (memcmp (line, "\r\n", 2) != 0)
        return FRAME_BAD;
      move (in, out, 2);
      b->state = FRAME_B_CHUNK_SIZE;
      continue;
    case FRAME_B_CHUNK_SIZE:
    case FRAME_B_TRAILER:
      p = evbuffer_search_eol (in, NULL, &eol, EVBUFFER_EOL_CRLF_STRICT);
      if (p.pos == -1)
        return avail > FRAME_LINE_MAX ? FRAME_BAD : FRAME_MORE;
      if (b->state == FRAME_B_TRAILER) {
        move (in, end, p.pos + eol);
        if (p.pos == 0)
          b->state = FRAME_B_DONE;
        continue;
      }
      memset (line, 0, sizeof line);
      evbuffer_copyout (in, line, p.pos < 31 ? p.pos : 31);
      errno = 0;
      n = strtoull (line, &e, 16);
      if (e == line || errno || n > UINT64_MAX / 2 ||
          (*e && *e != ';' && *e != ' ' && *e != '\t'))
        return FRAME_BAD;
      move (in, n ? out : end, p.pos + eol);
      b->left = n;
      b->state = n ? FRAME_B_CHUNK_DATA : FRAME_B_TRAILER;
      continue;
    }
  }
}

