/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: a minimal extractor for S3's XML replies (see xml.h).
 *
 * Why not a parser: the dependencies are fixed (libcurl, OpenSSL, json-c,
 * libevent), and the replies we read are flat and small: ListBucketResult,
 * InitiateMultipartUploadResult, CompleteMultipartUploadResult, Error.
 * What we need is "the text of child X of element Y", and "each child X".
 *
 * The scanner knows four kinds of markup: start tags (with attributes,
 * whose quoted values may hold '>'), empty-element tags, end tags, and
 * things to step over (comments, processing instructions, CDATA).  A
 * DOCTYPE is refused, so no entity is ever defined by the document.  To
 * find a child it counts depth; the element it returns must close with
 * its own name.  Offsets are checked against the span before every read.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "xml.h"

enum tag_kind { TAG_START, TAG_EMPTY, TAG_END, TAG_OTHER };

struct tag {
  enum tag_kind kind;
  const char *name;
  size_t namelen;
  size_t end;                   /* offset just past the closing '>' */
};

static bool
is_name_char (unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
    c == ':' || c >= 0x80;
}

static bool
starts_with (struct xml_span s, size_t i, const char *lit)
{
  size_t n = strlen (lit);

  return s.len - i >= n && memcmp (s.p + i, lit, n) == 0;
}

/* Offset just past the first LIT at or after I, or 0 if there is none. */
static size_t
past (struct xml_span s, size_t i, const char *lit)
{
  const char *hit = memmem (s.p + i, s.len - i, lit, strlen (lit));

  return hit ? (size_t) (hit - s.p) + strlen (lit) : 0;
}

/* Read the markup starting at S[I] == '<' into *T.  -1 if malformed. */
static int
read_tag (struct xml_span s, size_t i, struct tag *t)
{
  char quote = 0;
  size_t j;

  t->kind = TAG_OTHER;
  if (starts_with (s, i, "<!--"))
    t->end = past (s, i + 4, "-->");
  else if (starts_with (s, i, "<![CDATA["))
    t->end = past (s, i + 9, "]]>");
  else if (starts_with (s, i, "<?"))
    t->end = past (s, i + 2, "?>");
  else if (starts_with (s, i, "<!"))
    return -1;                  /* DOCTYPE and friends */
  else {
    bool end_tag = starts_with (s, i, "</");

    j = i + 1 + end_tag;
    t->name = s.p + j;
    while (j < s.len && is_name_char (s.p[j]))
      j++;
    t->namelen = s.p + j - t->name;
    if (t->namelen == 0)
      return -1;
    /* Attributes (start tags only): anything up to '>' outside quotes. */
    for (; j < s.len && (quote || s.p[j] != '>'); j++) {
      char c = s.p[j];
      if (end_tag && c != ' ' && c != '\t' && c != '\r' && c != '\n')
        return -1;
      if (quote)
        quote = c == quote ? 0 : quote;
      else if (c == '"' || c == '\'')
        quote = c;
      else if (c == '<')
        return -1;
    }
    if (j == s.len)
      return -1;
    t->end = j + 1;
    t->kind = end_tag ? TAG_END : s.p[j - 1] == '/' ? TAG_EMPTY : TAG_START;
  }
  return t->end == 0 ? -1 : 0;
}

static bool
name_is (const struct tag *t, const char *name)
{
  return t->namelen == strlen (name) && memcmp (t->name, name, t->namelen) == 0;
}

int
xml_next (struct xml_span in, const char *name, size_t *pos,
          struct xml_span *content)
{
  size_t i = *pos, depth = 0, start = 0;
  bool inside = false;          /* inside the element we return */
  struct tag t;

  while (i < in.len) {
    const char *lt = memchr (in.p + i, '<', in.len - i);

    if (lt == NULL)
      break;
    i = lt - in.p;
    if (read_tag (in, i, &t) == -1)
      return -1;
    if (t.kind == TAG_START || t.kind == TAG_EMPTY) {
      if (depth == 0 && name_is (&t, name)) {
        if (t.kind == TAG_EMPTY) {
          *content = (struct xml_span) { in.p + t.end, 0 };
          *pos = t.end;
          return 1;
        }
        inside = true;
        start = t.end;
      }
      if (t.kind == TAG_START)
        depth++;
    }
    else if (t.kind == TAG_END) {
      if (depth == 0)
        return -1;              /* closes something outside IN */
      if (--depth == 0 && inside) {
        if (!name_is (&t, name))
          return -1;
        *content = (struct xml_span) { in.p + start, i - start };
        *pos = t.end;
        return 1;
      }
    }
    i = t.end;
  }
  return depth == 0 ? 0 : -1;
}

/* Append the UTF-8 encoding of code point C at *OUT. */
static void
put_utf8 (unsigned long c, char **out)
{
  unsigned char *o = (unsigned char *) *out;

  if (c < 0x80)
    *o++ = c;
  else if (c < 0x800) {
    *o++ = 0xc0 | (c >> 6);
    *o++ = 0x80 | (c & 0x3f);
  }
  else if (c < 0x10000) {
    *o++ = 0xe0 | (c >> 12);
    *o++ = 0x80 | ((c >> 6) & 0x3f);
    *o++ = 0x80 | (c & 0x3f);
  }
  else {
    *o++ = 0xf0 | (c >> 18);
    *o++ = 0x80 | ((c >> 12) & 0x3f);
    *o++ = 0x80 | ((c >> 6) & 0x3f);
    *o++ = 0x80 | (c & 0x3f);
  }
  *out = (char *) o;
}

/* Decode the reference REF (between '&' and ';', LEN bytes) at *OUT.
 * A reference is never shorter than what it decodes to.
 */
static bool
decode_ref (const char *ref, size_t len, char **out)
{
  static const struct { const char *name; char c; } named[] = {
    { "lt", '<' }, { "gt", '>' }, { "amp", '&' }, { "quot", '"' },
    { "apos", '\'' },
  };
  unsigned long c = 0;
  bool hex = len >= 2 && ref[0] == '#' && ref[1] == 'x';
  size_t i = hex ? 2 : 1;

  for (size_t k = 0; k < sizeof named / sizeof named[0]; k++)
    if (strlen (named[k].name) == len &&
        memcmp (ref, named[k].name, len) == 0) {
      *(*out)++ = named[k].c;
      return true;
    }
  if (len <= i || ref[0] != '#' || len - i > 8)
    return false;
  for (; i < len; i++) {
    char d = ref[i];
    int v = d >= '0' && d <= '9' ? d - '0'
      : hex && d >= 'a' && d <= 'f' ? d - 'a' + 10
      : hex && d >= 'A' && d <= 'F' ? d - 'A' + 10 : -1;
    if (v < 0)
      return false;
    c = c * (hex ? 16 : 10) + v;
  }
  /* XML 1.0 characters only: no NUL, C0 controls or surrogates. */
  if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
      (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
    return false;
  put_utf8 (c, out);
  return true;
}

char *
xml_text (struct xml_span s)
{
  char *out = malloc (s.len + 1), *o = out;

  if (out == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  for (size_t i = 0; i < s.len; i++) {
    const char *semi;

    if (s.p[i] == '<' || s.p[i] == '\0')
      goto bad;
    if (s.p[i] != '&') {
      *o++ = s.p[i];
      continue;
    }
    semi = memchr (s.p + i, ';', s.len - i);
    if (semi == NULL || !decode_ref (s.p + i + 1, semi - s.p - i - 1, &o))
      goto bad;
    i = semi - s.p;
  }
  *o = '\0';
  return out;
 bad:
  free (out);
  errno = EBADMSG;
  return NULL;
}

char *
xml_child_text (struct xml_span in, const char *name)
{
  struct xml_span content;
  size_t pos = 0;
  int r = xml_next (in, name, &pos, &content);

  if (r == 1)
    return xml_text (content);
  errno = r == 0 ? ENOENT : EBADMSG;
  return NULL;
}

char *
xml_escape (const char *s)
{
  char *out = malloc (6 * strlen (s) + 1), *o = out;

  if (out == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  for (; *s; s++) {
    const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;"
      : *s == '>' ? "&gt;" : *s == '"' ? "&quot;" : *s == '\'' ? "&apos;"
      : NULL;
    if (e) {
      strcpy (o, e);
      o += strlen (e);
    }
    else
      *o++ = *s;
  }
  *o = '\0';
  return out;
}
