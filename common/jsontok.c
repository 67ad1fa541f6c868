/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: a push tokenizer for JSON (see jsontok.h).
 *
 * One state machine over bytes.  Its state says what may come next: the
 * structural states (START before the root, VALUE, the first element or
 * member of a container, a NAME after a comma, the COLON after a name,
 * AFTER a value, DONE after the root) or a state inside a token (a
 * STRING, an ESCAPE, the hex digits of a \u UNICODE escape, the \u of the
 * LOW half a high surrogate needs, the continuation bytes of a UTF8
 * character, a NUMBER, a LITERAL).  Whatever a token has read so far
 * lives in the struct, so a piece may end anywhere.  A number ends at the
 * first byte that cannot continue it, which must be one that may follow
 * a value and is then read again in the AFTER state; so does a literal
 * (true, false, null).  Nothing else needs to look ahead.
 *
 * The open containers are a stack of JSONTOK_DEPTH_MAX flags (object or
 * array): whether a comma leads to a name or to a value, and which
 * bracket closes.  A value inside JSONTOK_DEPTH_MAX open containers is
 * one level too deep, as json-c counts (so every document json-c's
 * tokener read with that depth, this one reads).  A string's bytes go to a buffer of JSONTOK_STRING_MAX
 * bytes; past it they are still checked and counted, not kept.
 *
 * Speed matters, as a manifest of a million chunks is 60 MB: the runs of
 * bytes that need no decision (printable ASCII in a string, whitespace,
 * digits) are crossed by tight loops, and a token costs one call.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jsontok.h"
#include "util.h"

enum state {
  S_START, S_VALUE, S_ARRAY_FIRST, S_OBJECT_FIRST, S_NAME, S_COLON,
  S_AFTER, S_DONE,
  S_STRING, S_ESCAPE, S_UNICODE, S_LOW_BACKSLASH, S_LOW_U, S_UTF8,
  S_NUMBER, S_LITERAL,
  S_FAILED,
};

/* Where a number is: after its '-', its leading '0', in its integer
 * digits, after '.', in its fraction, after 'e', after the exponent's
 * sign, in the exponent's digits.
 */
enum number_state {
  N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_EXP, N_EXP_SIGN, N_EXP_DIGITS,
};

struct jsontok {
  const char *what;
  jsontok_fn fn;
  void *opaque;
  enum state state;
  uint64_t pos;                 /* bytes fed before the current piece */
  unsigned depth;
  bool in_object[JSONTOK_DEPTH_MAX];    /* each open container's kind */

  /* The token being read. */
  bool is_name;                 /* STRING: a member name */
  size_t len;                   /* STRING: decoded bytes so far */
  unsigned need;                /* UTF8: continuation bytes to come;
                                 * UNICODE: hex digits to come */
  unsigned char lo, hi;         /* UTF8: the range of the next byte */
  uint32_t unit;                /* UNICODE: the code unit so far */
  uint32_t high;                /* a high surrogate awaiting its low half */
  enum number_state num;
  bool is_double, negative;
  uint64_t value;
  const char *literal;          /* LITERAL: what remains to match */
  enum jsontok_type literal_type;
  char buf[JSONTOK_STRING_MAX + 1];
};

const char *
jsontok_type_name (enum jsontok_type type)
{
  switch (type) {
  case JSONTOK_OBJECT: case JSONTOK_OBJECT_END: return "object";
  case JSONTOK_ARRAY: case JSONTOK_ARRAY_END: return "array";
  case JSONTOK_NAME: case JSONTOK_STRING: return "string";
  case JSONTOK_INT: return "int";
  case JSONTOK_DOUBLE: return "double";
  case JSONTOK_TRUE: case JSONTOK_FALSE: return "boolean";
  case JSONTOK_NULL: return "null";
  }
  abort ();
}

struct jsontok *
jsontok_new (const char *what, jsontok_fn fn, void *opaque)
{
  struct jsontok *t = malloc (sizeof *t);

  if (t == NULL) {
    err_set (errno, "%s: malloc: %m", what);
    return NULL;
  }
  *t = (struct jsontok) { .what = what, .fn = fn, .opaque = opaque,
                          .state = S_START };
  return t;
}

void
jsontok_free (struct jsontok *t)
{
  free (t);
}

/* Refuse the byte at offset AT because of WHY.  Returns -1. */
static int
reject (struct jsontok *t, uint64_t at, const char *why)
{
  t->state = S_FAILED;
  return err_set (EBADMSG, "%s: invalid JSON at byte %" PRIu64 ": %s",
                  t->what, at, why);
}

/* Refuse a NUL byte at offset AT, wherever it is.  Returns -1. */
static int
reject_nul (struct jsontok *t, uint64_t at)
{
  t->state = S_FAILED;
  return err_set (EBADMSG, "%s: NUL byte at offset %" PRIu64, t->what, at);
}

static bool
is_space (unsigned char c)
{
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* A byte a string holds as it is: printable ASCII but '"' and '\\'. */
static bool
is_plain (unsigned char c)
{
  return c >= 0x20 && c < 0x7f ? c != '"' && c != '\\' : c == 0x7f;
}

static bool
is_digit (unsigned char c)
{
  return c >= '0' && c <= '9';
}

/* Hand token TYPE at DEPTH, with the string or number just read, to the
 * caller.  0 or -1.
 */
static int
emit (struct jsontok *t, enum jsontok_type type, unsigned depth)
{
  struct jsontok_token tok = { .type = type, .depth = depth };

  if (type == JSONTOK_NAME || type == JSONTOK_STRING) {
    tok.len = t->len;
    if (t->len <= JSONTOK_STRING_MAX) {
      t->buf[t->len] = '\0';
      tok.str = t->buf;
    }
  }
  else if (type == JSONTOK_INT) {
    tok.value = t->value;
    tok.negative = t->negative;
  }
  if (t->fn (t->opaque, &tok) == -1) {
    t->state = S_FAILED;
    return -1;
  }
  return 0;
}

/* Hand the token of TYPE that completes a value to the caller; then a
 * comma or an end may follow, or nothing after the root's end.  0 or -1.
 */
static int
emit_value (struct jsontok *t, enum jsontok_type type)
{
  if (emit (t, type, t->depth) == -1)
    return -1;
  t->state = t->depth == 0 ? S_DONE : S_AFTER;
  return 0;
}

static int
open_container (struct jsontok *t, bool object)
{
  if (emit (t, object ? JSONTOK_OBJECT : JSONTOK_ARRAY, t->depth) == -1)
    return -1;
  t->in_object[t->depth++] = object;
  t->state = object ? S_OBJECT_FIRST : S_ARRAY_FIRST;
  return 0;
}

static int
close_container (struct jsontok *t)
{
  t->depth--;
  return emit_value (t, t->in_object[t->depth] ? JSONTOK_OBJECT_END
                     : JSONTOK_ARRAY_END);
}

/* Append N decoded bytes to the string; past the limit they are only
 * counted.
 */
static void
append (struct jsontok *t, const void *p, size_t n)
{
  if (t->len < JSONTOK_STRING_MAX)
    memcpy (t->buf + t->len, p,
            n < JSONTOK_STRING_MAX - t->len ? n : JSONTOK_STRING_MAX - t->len);
  t->len += n < SIZE_MAX - t->len ? n : SIZE_MAX - t->len;
}

/* Append code point CP (a scalar value: no surrogate) in UTF-8. */
static void
append_code_point (struct jsontok *t, uint32_t cp)
{
  unsigned char u[4];
  size_t n;

  if (cp < 0x80) {
    u[0] = cp;
    n = 1;
  }
  else if (cp < 0x800) {
    u[0] = 0xc0 | cp >> 6;
    u[1] = 0x80 | (cp & 0x3f);
    n = 2;
  }
  else if (cp < 0x10000) {
    u[0] = 0xe0 | cp >> 12;
    u[1] = 0x80 | (cp >> 6 & 0x3f);
    u[2] = 0x80 | (cp & 0x3f);
    n = 3;
  }
  else {
    u[0] = 0xf0 | cp >> 18;
    u[1] = 0x80 | (cp >> 12 & 0x3f);
    u[2] = 0x80 | (cp >> 6 & 0x3f);
    u[3] = 0x80 | (cp & 0x3f);
    n = 4;
  }
  append (t, u, n);
}

static void
string_begin (struct jsontok *t, bool is_name)
{
  t->is_name = is_name;
  t->len = 0;
  t->high = 0;
  t->state = S_STRING;
}

/* The first byte C (at AT) of a value. */
static int
value_begin (struct jsontok *t, unsigned char c, uint64_t at)
{
  if (t->depth == JSONTOK_DEPTH_MAX)
    return reject (t, at, "nesting too deep");
  switch (c) {
  case '{': return open_container (t, true);
  case '[': return open_container (t, false);
  case '"':
    string_begin (t, false);
    return 0;
  case 't': case 'f': case 'n':
    t->literal = c == 't' ? "rue" : c == 'f' ? "alse" : "ull";
    t->literal_type = c == 't' ? JSONTOK_TRUE
      : c == 'f' ? JSONTOK_FALSE : JSONTOK_NULL;
    t->state = S_LITERAL;
    return 0;
  }
  if (c != '-' && !is_digit (c))
    return reject (t, at, "unexpected character");
  t->negative = c == '-';
  t->is_double = false;
  t->value = c == '-' ? 0 : c - '0';
  t->num = c == '-' ? N_MINUS : c == '0' ? N_ZERO : N_INT;
  t->state = S_NUMBER;
  return 0;
}

/* The lead byte C (at AT) of a UTF-8 sequence in a string: the bytes
 * that may follow exclude overlong forms, surrogates and anything above
 * U+10FFFF (RFC 3629).
 */
static int
utf8_begin (struct jsontok *t, unsigned char c, uint64_t at)
{
  t->lo = 0x80;
  t->hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf)
    t->need = 1;
  else if (c >= 0xe0 && c <= 0xef) {
    t->need = 2;
    if (c == 0xe0)
      t->lo = 0xa0;
    else if (c == 0xed)
      t->hi = 0x9f;
  }
  else if (c >= 0xf0 && c <= 0xf4) {
    t->need = 3;
    if (c == 0xf0)
      t->lo = 0x90;
    else if (c == 0xf4)
      t->hi = 0x8f;
  }
  else
    return reject (t, at, "invalid UTF-8");
  append (t, &c, 1);
  t->state = S_UTF8;
  return 0;
}

/* A string's closing quote. */
static int
string_end (struct jsontok *t)
{
  if (t->is_name) {
    t->state = S_COLON;
    return emit (t, JSONTOK_NAME, t->depth);
  }
  return emit_value (t, JSONTOK_STRING);
}

/* The character C (at AT) after a backslash. */
static int
escape (struct jsontok *t, unsigned char c, uint64_t at)
{
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  const char *p = strchr (from, c);     /* C is not NUL */

  if (c == 'u') {
    t->need = 4;
    t->unit = 0;
    t->state = S_UNICODE;
    return 0;
  }
  if (p == NULL)
    return reject (t, at, "invalid escape in a string");
  append (t, &to[p - from], 1);
  t->state = S_STRING;
  return 0;
}

/* The hex digit C (at AT) of a \u escape. */
static int
unicode (struct jsontok *t, unsigned char c, uint64_t at)
{
  int d = hex_value (c);
  uint32_t u;

  if (d == -1)
    return reject (t, at, "invalid \\u escape");
  t->unit = t->unit << 4 | d;
  if (--t->need > 0)
    return 0;
  u = t->unit;
  t->state = S_STRING;
  if (t->high) {
    if (u < 0xdc00 || u > 0xdfff)
      return reject (t, at, "unpaired surrogate in a \\u escape");
    append_code_point (t, 0x10000 + ((t->high - 0xd800) << 10) +
                       (u - 0xdc00));
    t->high = 0;
  }
  else if (u >= 0xd800 && u <= 0xdbff) {
    t->high = u;
    t->state = S_LOW_BACKSLASH;
  }
  else if (u >= 0xdc00 && u <= 0xdfff)
    return reject (t, at, "unpaired surrogate in a \\u escape");
  else
    append_code_point (t, u);
  return 0;
}

/* A number or a literal of TYPE ended at byte C (at AT), which must be
 * one that can follow a value: "1x" and "nullx" are one invalid token,
 * not a value and a stray byte.  Returns 1 (C is to be read again), or
 * -1.
 */
static int
scalar_end (struct jsontok *t, enum jsontok_type type, unsigned char c,
            uint64_t at)
{
  if (!is_space (c) && c != ',' && c != '}' && c != ']')
    return reject (t, at, type == JSONTOK_INT || type == JSONTOK_DOUBLE
                   ? "invalid number" : "invalid literal");
  return emit_value (t, type) == -1 ? -1 : 1;
}

/* The byte C (at AT) in a number.  Returns 1 if C ended the number (and
 * is to be read again), 0 if it was part of it, -1 on error.
 */
static int
number (struct jsontok *t, unsigned char c, uint64_t at)
{
  bool digit = is_digit (c), exp = c == 'e' || c == 'E';

  switch (t->num) {
  case N_MINUS:
    if (!digit)
      return reject (t, at, "a digit must follow '-'");
    t->value = c - '0';
    t->num = c == '0' ? N_ZERO : N_INT;
    return 0;
  case N_ZERO:
  case N_INT:
    if (digit && t->num == N_ZERO)
      return reject (t, at, "leading zero in a number");
    if (digit) {
      unsigned d = c - '0';
      t->value = t->value > (UINT64_MAX - d) / 10 ? UINT64_MAX
        : t->value * 10 + d;
      return 0;
    }
    if (c == '.' || exp) {
      t->is_double = true;
      t->num = c == '.' ? N_DOT : N_EXP;
      return 0;
    }
    break;
  case N_DOT:
    if (!digit)
      return reject (t, at, "a digit must follow '.'");
    t->num = N_FRAC;
    return 0;
  case N_FRAC:
    if (digit)
      return 0;
    if (exp) {
      t->num = N_EXP;
      return 0;
    }
    break;
  case N_EXP:
    if (c == '+' || c == '-') {
      t->num = N_EXP_SIGN;
      return 0;
    }
    /* fall through */
  case N_EXP_SIGN:
    if (!digit)
      return reject (t, at, "a digit must follow the exponent");
    t->num = N_EXP_DIGITS;
    return 0;
  case N_EXP_DIGITS:
    if (digit)
      return 0;
    break;
  }
  return scalar_end (t, t->is_double ? JSONTOK_DOUBLE : JSONTOK_INT, c, at);
}

/* Read the bytes [*PP, END) of a string, whose first is at offset AT:
 * its plain run, then the first byte that needs a decision.
 */
static int
string_bytes (struct jsontok *t, const unsigned char **pp,
              const unsigned char *end, uint64_t at)
{
  const unsigned char *p = *pp, *q = p;
  unsigned char c;

  while (q < end && is_plain (*q))
    q++;
  append (t, p, q - p);
  *pp = q;
  if (q == end)
    return 0;
  c = *q;
  at += q - p;
  (*pp)++;
  if (c == '"')
    return string_end (t);
  if (c == '\\') {
    t->state = S_ESCAPE;
    return 0;
  }
  if (c >= 0x80)
    return utf8_begin (t, c, at);
  if (c == '\0')
    return reject_nul (t, at);
  return reject (t, at, "control character in a string");
}

int
jsontok_feed (struct jsontok *t, const void *buf, size_t len)
{
  const unsigned char *start = buf, *p = start, *end = p + len;

  assert (t->state != S_FAILED);
  while (p < end) {
    unsigned char c;
    uint64_t at;
    int r = 0;

    if (t->state == S_STRING) {
      if (string_bytes (t, &p, end, t->pos + (p - start)) == -1)
        return -1;
      continue;
    }
    if (t->state <= S_DONE) {
      while (p < end && is_space (*p))
        p++;
      if (p == end)
        break;
    }
    c = *p;
    at = t->pos + (p - start);
    p++;
    if (c == '\0')
      return reject_nul (t, at);
    switch (t->state) {
    case S_START:
      if (c != '{') {
        t->state = S_FAILED;
        return err_set (EBADMSG, "%s: not a JSON object", t->what);
      }
      r = open_container (t, true);
      break;
    case S_ARRAY_FIRST:
      if (c == ']') {
        r = close_container (t);
        break;
      }
      /* fall through */
    case S_VALUE:
      r = value_begin (t, c, at);
      break;
    case S_OBJECT_FIRST:
      if (c == '}') {
        r = close_container (t);
        break;
      }
      /* fall through */
    case S_NAME:
      if (c != '"')
        return reject (t, at, "expected a member name");
      string_begin (t, true);
      break;
    case S_COLON:
      if (c != ':')
        return reject (t, at, "expected ':'");
      t->state = S_VALUE;
      break;
    case S_AFTER:
      if (c == ',')
        t->state = t->in_object[t->depth - 1] ? S_NAME : S_VALUE;
      else if (c == (t->in_object[t->depth - 1] ? '}' : ']'))
        r = close_container (t);
      else
        return reject (t, at, "expected ',' or the end of the container");
      break;
    case S_DONE:
      t->state = S_FAILED;
      return err_set (EBADMSG, "%s: trailing data at byte %" PRIu64,
                      t->what, at);
    case S_ESCAPE:
      r = escape (t, c, at);
      break;
    case S_UNICODE:
      r = unicode (t, c, at);
      break;
    case S_LOW_BACKSLASH:
      if (c != '\\')
        return reject (t, at, "unpaired surrogate in a \\u escape");
      t->state = S_LOW_U;
      break;
    case S_LOW_U:
      if (c != 'u')
        return reject (t, at, "unpaired surrogate in a \\u escape");
      t->need = 4;
      t->unit = 0;
      t->state = S_UNICODE;
      break;
    case S_UTF8:
      if (c < t->lo || c > t->hi)
        return reject (t, at, "invalid UTF-8");
      append (t, &c, 1);
      t->lo = 0x80;
      t->hi = 0xbf;
      if (--t->need == 0)
        t->state = S_STRING;
      break;
    case S_NUMBER:
      r = number (t, c, at);
      break;
    case S_LITERAL:
      if (*t->literal == '\0')
        r = scalar_end (t, t->literal_type, c, at);
      else if (c != (unsigned char) *t->literal++)
        return reject (t, at, "invalid literal");
      break;
    case S_STRING:
    case S_FAILED:
      abort ();
    }
    if (r == -1)
      return -1;
    if (r == 1)
      p--;                      /* C ended a number or literal: again */
  }
  t->pos += len;
  return 0;
}

int
jsontok_finish (struct jsontok *t)
{
  enum state s = t->state;

  assert (s != S_FAILED);
  t->state = S_FAILED;
  if (s == S_DONE)
    return 0;
  if (s == S_START)
    return err_set (EBADMSG, "%s: empty document", t->what);
  return err_set (EBADMSG, "%s: truncated JSON (%" PRIu64 " bytes)",
                  t->what, t->pos);
}
