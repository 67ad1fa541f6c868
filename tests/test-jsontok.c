/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* test-jsontok: the push tokenizer of JSON (common/jsontok.h).
 *
 * What must hold, because the reader of manifests stands on it:
 *  - the tokens of a document, and its error, are the same however its
 *    bytes are cut into pieces (whole, at every point in two, a byte at a
 *    time): a token may straddle any boundary;
 *  - strings are decoded (escapes, surrogate pairs, \u0000 counted in
 *    the length), and one longer than JSONTOK_STRING_MAX is reported with
 *    its length but no text;
 *  - integers carry their magnitude and sign, saturated when too large;
 *    fractions and exponents are doubles;
 *  - anything RFC 8259 refuses is refused, at the byte where it goes
 *    wrong, and so is a document that is not one object, or nests deeper
 *    than JSONTOK_DEPTH_MAX levels, or holds a NUL byte;
 *  - an error of the caller's function stops the tokenizer.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jsontok.h"
#include "util.h"

static int failures;

#define CHECK(cond) check ((cond), #cond, __LINE__)

static bool
check (bool ok, const char *what, int line)
{
  if (!ok) {
    fprintf (stderr, "test-jsontok.c:%d: FAIL: %s\n", line, what);
    failures++;
  }
  return ok;
}

/* The tokens seen, written out: "{0 n:a i:1 }0" and so on. */
struct record {
  FILE *f;
  char *text;
  size_t len;
  int stop_at;                  /* fail at this token (from 1), or 0 */
  int count;
};

static int
on_token (void *opaque, const struct jsontok_token *t)
{
  static const char *const marks[] = {
    [JSONTOK_OBJECT] = "{", [JSONTOK_OBJECT_END] = "}",
    [JSONTOK_ARRAY] = "[", [JSONTOK_ARRAY_END] = "]",
    [JSONTOK_NAME] = "n:", [JSONTOK_STRING] = "s:", [JSONTOK_INT] = "i:",
    [JSONTOK_DOUBLE] = "d", [JSONTOK_TRUE] = "t", [JSONTOK_FALSE] = "f",
    [JSONTOK_NULL] = "z",
  };
  struct record *rec = opaque;

  if (++rec->count == rec->stop_at)
    return err_set (ECANCELED, "stopped at token %d", rec->count);
  fputs (marks[t->type], rec->f);
  switch (t->type) {
  case JSONTOK_NAME:
  case JSONTOK_STRING:
    if (t->str == NULL)
      fprintf (rec->f, "(%zu bytes)", t->len);
    for (size_t i = 0; t->str && i < t->len; i++)
      fprintf (rec->f, t->str[i] > ' ' && t->str[i] < 0x7f ? "%c" : "\\%02x",
               (unsigned char) t->str[i]);
    break;
  case JSONTOK_INT:
    fprintf (rec->f, "%s%" PRIu64, t->negative ? "-" : "", t->value);
    break;
  default:
    fprintf (rec->f, "%u", t->depth);
  }
  fputc (' ', rec->f);
  return 0;
}

/* Tokenize the LEN bytes of DOC cut at CUT (and, with BYTES, a byte at a
 * time).  Returns the tokens then "OK" or "ERR: message" (malloc'd).
 */
static char *
tokenize (const char *doc, size_t len, size_t cut, bool bytes, int stop_at)
{
  struct record rec = { .stop_at = stop_at };
  struct jsontok *t;
  int r = 0;

  rec.f = open_memstream (&rec.text, &rec.len);
  t = jsontok_new ("doc", on_token, &rec);
  if (bytes)
    for (size_t i = 0; r == 0 && i < len; i++)
      r = jsontok_feed (t, doc + i, 1);
  else {
    r = jsontok_feed (t, doc, cut);
    if (r == 0)
      r = jsontok_feed (t, doc + cut, len - cut);
  }
  if (r == 0)
    r = jsontok_finish (t);
  if (r == 0)
    fputs ("OK", rec.f);
  else
    fprintf (rec.f, "ERR: %s", err_msg ());
  jsontok_free (t);
  fclose (rec.f);
  return rec.text;
}

/* DOC (LEN bytes) gives EXPECT whole, cut anywhere, a byte at a time. */
static void
check_doc (const char *doc, size_t len, const char *expect, int line)
{
  CLEANUP_FREE char *whole = tokenize (doc, len, len, false, 0);

  if (!check (strcmp (whole, expect) == 0, expect, line)) {
    fprintf (stderr, "  got %s\n", whole);
    return;
  }
  for (size_t cut = 0; cut <= len; cut++) {
    CLEANUP_FREE char *two = tokenize (doc, len, cut, false, 0);

    if (!check (strcmp (two, whole) == 0, "the same in two pieces", line)) {
      fprintf (stderr, "  cut at %zu: %s\n", cut, two);
      return;
    }
  }
  {
    CLEANUP_FREE char *one = tokenize (doc, len, 0, true, 0);
    if (!check (strcmp (one, whole) == 0, "the same a byte at a time", line))
      fprintf (stderr, "  %s\n", one);
  }
}

#define DOC(text, expect) check_doc (text, sizeof text - 1, expect, __LINE__)

static void
test_tokens (void)
{
  DOC ("{}", "{0 }0 OK");
  DOC (" \t\r\n{ } \n", "{0 }0 OK");
  DOC ("{\"a\": [1, -2, 0, -0, 3.5, 1e9, -2E-3, true, false, null, \"x\"],"
       " \"b\": {\"c\": {}}, \"\": []}",
       "{0 n:a [1 i:1 i:-2 i:0 i:-0 d2 d2 d2 t2 f2 z2 s:x ]1 n:b {1 n:c "
       "{2 }2 }1 n: [1 ]1 }0 OK");
  DOC ("{\"n\": 18446744073709551615, \"m\": 18446744073709551616,"
       " \"k\": 99999999999999999999999, \"l\": -9223372036854775809}",
       "{0 n:n i:18446744073709551615 n:m i:18446744073709551615 "
       "n:k i:18446744073709551615 n:l i:-9223372036854775809 }0 OK");
  DOC ("{\"s\": \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\u0000x\"}",
       "{0 n:s s:\"\\/\\08\\0c\\0a\\0d\\09\\c3\\a9\\f0\\9f\\98\\80\\00x "
       "}0 OK");
  DOC ("{\"u\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\x7f\"}",
       "{0 n:u s:\\c3\\a9\\e2\\82\\ac\\f0\\9f\\98\\80\\f4\\8f\\bf\\bf\\7f "
       "}0 OK");
  DOC ("{\"d\": [[[[[[[]]]]]]]}", "{0 n:d [1 [2 [3 [4 [5 [6 [7 ]7 ]6 ]5 ]4 "
       "]3 ]2 ]1 }0 OK");
}

static void
test_errors (void)
{
  DOC ("", "ERR: doc: empty document");
  DOC ("  \n", "ERR: doc: empty document");
  DOC ("{", "{0 ERR: doc: truncated JSON (1 bytes)");
  DOC ("{\"a\": 1", "{0 n:a ERR: doc: truncated JSON (7 bytes)");
  DOC ("{\"a\": \"x", "{0 n:a ERR: doc: truncated JSON (8 bytes)");
  DOC ("[]", "ERR: doc: not a JSON object");
  DOC ("42", "ERR: doc: not a JSON object");
  DOC ("{} x", "{0 }0 ERR: doc: trailing data at byte 3");
  DOC ("{}{}", "{0 }0 ERR: doc: trailing data at byte 2");
  DOC ("\0{}", "ERR: doc: NUL byte at offset 0");
  DOC ("{\"a\": \"\0\"}", "{0 n:a ERR: doc: NUL byte at offset 7");
  DOC ("{\"a\": 1\0}", "{0 n:a ERR: doc: NUL byte at offset 7");
  DOC ("{}\0", "{0 }0 ERR: doc: NUL byte at offset 2");
  DOC ("{\"a\": 01}", "{0 n:a ERR: doc: invalid JSON at byte 7: leading zero "
       "in a number");
  DOC ("{\"a\": 1.}", "{0 n:a ERR: doc: invalid JSON at byte 8: a digit must "
       "follow '.'");
  DOC ("{\"a\": -}", "{0 n:a ERR: doc: invalid JSON at byte 7: a digit must "
       "follow '-'");
  DOC ("{\"a\": 1e+}", "{0 n:a ERR: doc: invalid JSON at byte 9: a digit "
       "must follow the exponent");
  DOC ("{\"a\": +1}", "{0 n:a ERR: doc: invalid JSON at byte 6: unexpected "
       "character");
  DOC ("{\"a\": 1x}", "{0 n:a ERR: doc: invalid JSON at byte 7: invalid "
       "number");
  DOC ("{\"a\": NaN}", "{0 n:a ERR: doc: invalid JSON at byte 6: unexpected "
       "character");
  DOC ("{\"a\": nul}", "{0 n:a ERR: doc: invalid JSON at byte 9: invalid "
       "literal");
  DOC ("{\"a\": truex}", "{0 n:a ERR: doc: invalid JSON at byte 10: invalid "
       "literal");
  DOC ("{\"a\": 1,}", "{0 n:a i:1 ERR: doc: invalid JSON at byte 8: expected "
       "a member name");
  DOC ("{\"a\": [1,]}", "{0 n:a [1 i:1 ERR: doc: invalid JSON at byte 9: "
       "unexpected character");
  DOC ("{\"a\" 1}", "{0 n:a ERR: doc: invalid JSON at byte 5: expected ':'");
  DOC ("{\"a\": 1]", "{0 n:a i:1 ERR: doc: invalid JSON at byte 7: expected "
       "',' or the end of the container");
  DOC ("{a: 1}", "{0 ERR: doc: invalid JSON at byte 1: expected a member "
       "name");
  DOC ("{\"a\": 1 // no\n}", "{0 n:a i:1 ERR: doc: invalid JSON at byte 8: "
       "expected ',' or the end of the container");
  DOC ("{\"a\": \"\t\"}", "{0 n:a ERR: doc: invalid JSON at byte 7: control "
       "character in a string");
  DOC ("{\"a\": \"\\x\"}", "{0 n:a ERR: doc: invalid JSON at byte 8: invalid "
       "escape in a string");
  DOC ("{\"a\": \"\\u12g4\"}", "{0 n:a ERR: doc: invalid JSON at byte 11: "
       "invalid \\u escape");
  DOC ("{\"a\": \"\\ud800\"}", "{0 n:a ERR: doc: invalid JSON at byte 13: "
       "unpaired surrogate in a \\u escape");
  DOC ("{\"a\": \"\\ud800\\n\"}", "{0 n:a ERR: doc: invalid JSON at byte 14: "
       "unpaired surrogate in a \\u escape");
  DOC ("{\"a\": \"\\ud800\\u0041\"}", "{0 n:a ERR: doc: invalid JSON at byte "
       "18: unpaired surrogate in a \\u escape");
  DOC ("{\"a\": \"\\udc00\"}", "{0 n:a ERR: doc: invalid JSON at byte 12: "
       "unpaired surrogate in a \\u escape");
  DOC ("{\"a\": \"\x80\"}", "{0 n:a ERR: doc: invalid JSON at byte 7: "
       "invalid UTF-8");
  DOC ("{\"a\": \"\xc1\xbf\"}", "{0 n:a ERR: doc: invalid JSON at byte 7: "
       "invalid UTF-8");
  DOC ("{\"a\": \"\xe0\x9f\xbf\"}", "{0 n:a ERR: doc: invalid JSON at byte "
       "8: invalid UTF-8");
  DOC ("{\"a\": \"\xed\xa0\x80\"}", "{0 n:a ERR: doc: invalid JSON at byte "
       "8: invalid UTF-8");
  DOC ("{\"a\": \"\xf4\x90\x80\x80\"}", "{0 n:a ERR: doc: invalid JSON at "
       "byte 8: invalid UTF-8");
  DOC ("{\"a\": \"\xf5\x80\x80\x80\"}", "{0 n:a ERR: doc: invalid JSON at "
       "byte 7: invalid UTF-8");
  DOC ("{\"a\": \"\xe2\x82\"}", "{0 n:a ERR: doc: invalid JSON at byte 9: "
       "invalid UTF-8");
  DOC ("{\"a\": \xc3\xa9}", "{0 n:a ERR: doc: invalid JSON at byte 6: "
       "unexpected character");
  DOC ("{\"d\": [[[[[[[[]]]]]]]]}", "{0 n:d [1 [2 [3 [4 [5 [6 [7 ERR: doc: "
       "invalid JSON at byte 13: nesting too deep");
  DOC ("{\"d\": [[[[[[[1]]]]]]]}", "{0 n:d [1 [2 [3 [4 [5 [6 [7 ERR: doc: "
       "invalid JSON at byte 13: nesting too deep");
  DOC ("{\"d\": [[[[[[[\"\"]]]]]]]}", "{0 n:d [1 [2 [3 [4 [5 [6 [7 ERR: "
       "doc: invalid JSON at byte 13: nesting too deep");
}

/* Strings up to the limit keep their text; longer ones only a length. */
static void
test_long_strings (void)
{
  size_t n = JSONTOK_STRING_MAX + 1;
  CLEANUP_FREE char *doc = malloc (n + 32);
  CLEANUP_FREE char *fits = NULL, *over = NULL;

  for (size_t k = 0; k < 2; k++) {
    size_t len = n - 1 + k;
    char *p = doc + sprintf (doc, "{\"");

    memset (p, 'x', len);
    strcpy (p + len, "\": \"\\u00e9\"}");
    if (k == 0)
      fits = tokenize (doc, strlen (doc), 0, true, 0);
    else
      over = tokenize (doc, strlen (doc), 0, true, 0);
  }
  CHECK (strncmp (fits, "{0 n:xxxxxxxx", 13) == 0 &&
         strstr (fits, "x s:\\c3\\a9 }0 OK") != NULL);
  CHECK (strcmp (over, "{0 n:(4097 bytes) s:\\c3\\a9 }0 OK") == 0);
}

/* The caller's error stops the tokenizer and stays the error. */
static void
test_stop (void)
{
  static const char doc[] = "{\"a\": [1, 2, 3]}";
  CLEANUP_FREE char *text = tokenize (doc, strlen (doc), 5, false, 4);

  CHECK (strcmp (text, "{0 n:a [1 ERR: stopped at token 4") == 0);
  CHECK (err_errno () == ECANCELED);
}

int
main (void)
{
  test_tokens ();
  test_errors ();
  test_long_strings ();
  test_stop ();
  if (failures)
    fprintf (stderr, "test-jsontok: %d failures\n", failures);
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
