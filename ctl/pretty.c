/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: compact JSON text indented for people (see pretty.h).
 *
 * Large replies (the list of every export: a megabyte at 1,000) are
 * passed on as the plugin printed them instead of being parsed into a
 * json-c tree and printed again, which cost more than the plugin's whole
 * work.  The text is checked first by the strict streaming tokenizer
 * (jsontok), so nothing that is not one valid JSON object reaches a
 * client; then one pass copies it, adding the line breaks and the
 * two-space indentation json-c's pretty printer adds (JSON_C_TO_STRING_
 * PRETTY | SPACED), so a large reply reads like every other.  The pass
 * only needs to know whether it is inside a string (and after a
 * backslash there): the text is known to be valid, and compact (the
 * plugin prints no whitespace between tokens; any it did is dropped).
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "err.h"
#include "jsontok.h"
#include "pretty.h"

#define OUT_BUF (64 * 1024)
#define INDENT_MAX (2 * JSONTOK_DEPTH_MAX)

/* The text being written: a buffer, added to the evbuffer when full. */
struct out {
  struct evbuffer *evb;
  size_t n;
  bool failed;
  char buf[OUT_BUF];
};

static void
flush (struct out *o)
{
  if (o->n > 0 && evbuffer_add (o->evb, o->buf, o->n) == -1)
    o->failed = true;
  o->n = 0;
}

static void
put (struct out *o, const char *s, size_t len)
{
  if (o->n + len > OUT_BUF)
    flush (o);
  if (len > OUT_BUF) {
    if (evbuffer_add (o->evb, s, len) == -1)
      o->failed = true;
    return;
  }
  memcpy (o->buf + o->n, s, len);
  o->n += len;
}

/* A line break, then the indentation of LEVEL. */
static void
newline (struct out *o, unsigned level)
{
  static const char spaces[] = "\n                ";   /* INDENT_MAX */

  assert (level <= INDENT_MAX / 2);

  put (o, spaces, 1 + 2 * level);
}

static int
ignore (void *opaque, const struct jsontok_token *t)
{
  return 0;
}

int
pretty_json (struct evbuffer *out, const char *s, size_t len,
             const char *what)
{
  struct jsontok *t = jsontok_new (what, ignore, NULL);
  struct out *o;
  unsigned level = 0;
  size_t i, run;

  if (t == NULL)
    return -1;
  if (jsontok_feed (t, s, len) == -1 || jsontok_finish (t) == -1) {
    jsontok_free (t);
    return -1;
  }
  jsontok_free (t);
  if ((o = malloc (sizeof *o)) == NULL)
    return err_set (ENOMEM, "%s: out of memory", what);
  o->evb = out;
  o->n = 0;
  o->failed = false;
  for (i = 0; i < len; i++) {
    switch (s[i]) {
    case '"':
      /* The string, escapes and all, to its closing quote. */
      for (run = i + 1; s[run] != '"'; run++)
        if (s[run] == '\\')
          run++;
      put (o, s + i, run + 1 - i);
      i = run;
      break;
    case '{': case '[':
      if (s[i + 1] == '}' || s[i + 1] == ']') {
        put (o, s + i, 1);              /* empty: its close on a line */
        newline (o, level);
        put (o, s + ++i, 1);
        break;
      }
      put (o, s + i, 1);
      newline (o, ++level);
      break;
    case '}': case ']':
      newline (o, --level);
      put (o, s + i, 1);
      break;
    case ',':
      put (o, ",", 1);
      newline (o, level);
      break;
    case ':':
      put (o, ": ", 2);
      break;
    case ' ': case '\t': case '\n': case '\r':
      break;
    default:
      /* A number or a literal, to the byte that ends it. */
      for (run = i; run + 1 < len && strchr (",}]: \t\n\r", s[run + 1]) == NULL;
           run++)
        ;
      put (o, s + i, run + 1 - i);
      i = run;
    }
  }
  put (o, "\n", 1);
  flush (o);
  if (o->failed) {
    free (o);
    return err_set (ENOMEM, "%s: out of memory", what);
  }
  free (o);
  return 0;
}
