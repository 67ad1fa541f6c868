/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* The XML extractor reads what S3 sends (a ListObjectsV2 page with
 * repeated Contents and CommonPrefixes, entities, comments, a namespace
 * attribute) and treats anything malformed or hostile as an error: a
 * truncated reply at every length, mismatched or unclosed tags, a DTD,
 * unknown entities, invalid character references, NUL bytes, deep
 * nesting.  Each malformed case is read from a heap buffer of exactly its
 * length, so an overread is visible to valgrind or ASan.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xml.h"

static int failures;

#define CHECK(cond, ...)                                        \
  do {                                                          \
    if (!(cond)) {                                              \
      printf ("FAIL line %d: ", __LINE__);                      \
      printf (__VA_ARGS__);                                     \
      printf ("\n");                                            \
      failures++;                                               \
    }                                                           \
  } while (0)

static const char listing[] =
  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
  "<!-- a comment with <Contents> inside -->\n"
  "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
  "<Name>bucket</Name><Prefix>x/</Prefix><KeyCount>4</KeyCount>"
  "<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>"
  "<IsTruncated>true</IsTruncated>"
  "<NextContinuationToken>a&amp;b&#x3D;</NextContinuationToken>"
  "<Contents><Key>x/1</Key><LastModified>2024-01-01T00:00:00.000Z"
  "</LastModified><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>"
  "<Size>0</Size><Owner/><StorageClass>STANDARD</StorageClass></Contents>"
  "<Contents><Key>x/a&lt;b&gt;</Key><Size>1234</Size></Contents>\n"
  "<CommonPrefixes><Prefix>x/sub/</Prefix></CommonPrefixes>"
  "<CommonPrefixes ><Prefix>x/z/</Prefix></CommonPrefixes>"
  "</ListBucketResult>\n";

static struct xml_span
span (const char *s)
{
  return (struct xml_span) { s, strlen (s) };
}

static void
check_listing (void)
{
  static const char *keys[] = { "x/1", "x/a<b>" }, *sizes[] = { "0", "1234" };
  static const char *prefixes[] = { "x/sub/", "x/z/" };
  struct xml_span root, c;
  size_t pos = 0;
  char *s;
  int n = 0;

  CHECK (xml_next (span (listing), "ListBucketResult", &pos, &root) == 1,
         "root element not found");
  /* The top-level Prefix, not the one inside CommonPrefixes. */
  s = xml_child_text (root, "Prefix");
  CHECK (s && strcmp (s, "x/") == 0, "Prefix is %s", s);
  free (s);
  s = xml_child_text (root, "NextContinuationToken");
  CHECK (s && strcmp (s, "a&b=") == 0, "token is %s", s);
  free (s);
  for (pos = 0; xml_next (root, "Contents", &pos, &c) == 1; n++) {
    char *key = xml_child_text (c, "Key"), *size = xml_child_text (c, "Size");
    CHECK (n < 2 && key && strcmp (key, keys[n]) == 0, "key %d is %s", n, key);
    CHECK (n < 2 && size && strcmp (size, sizes[n]) == 0, "size %d", n);
    free (key);
    free (size);
  }
  CHECK (n == 2, "%d Contents", n);
  for (pos = 0, n = 0; xml_next (root, "CommonPrefixes", &pos, &c) == 1; n++) {
    s = xml_child_text (c, "Prefix");
    CHECK (n < 2 && s && strcmp (s, prefixes[n]) == 0, "prefix %d is %s", n, s);
    free (s);
  }
  CHECK (n == 2, "%d CommonPrefixes", n);
  pos = 0;
  CHECK (xml_next (root, "Owner", &pos, &c) == 0, "Owner is not a child");
  s = xml_child_text (root, "Missing");
  CHECK (s == NULL && errno == ENOENT, "missing element");

  /* Every truncation of the reply is an error or "not there", never the
   * root element; and reading it stays inside the buffer.
   */
  for (size_t len = 0; len < sizeof listing - 2; len++) {
    char *copy = malloc (len ? len : 1);
    struct xml_span r;
    memcpy (copy, listing, len);
    pos = 0;
    CHECK (xml_next ((struct xml_span) { copy, len }, "ListBucketResult",
                     &pos, &r) != 1, "truncated at %zu accepted", len);
    free (copy);
  }
}

/* Each document, asked for element A then child B's text, must fail. */
static void
check_malformed (void)
{
  static const char *bad[] = {
    "<A><B>x</A>", "<A>text", "<A", "<A><B>x</C></A>", "</A>", "<A></B>",
    "<A><B>x</B", "<A><B x='>'>v</A>", "<A><B x=\"unterminated></B></A>",
    "<!DOCTYPE A [<!ENTITY e 'boom'>]><A><B>&e;</B></A>",
    "<A><B>&e;</B></A>", "<A><B>&#0;</B></A>", "<A><B>&#xD800;</B></A>",
    "<A><B>&#x110000;</B></A>", "<A><B>&#99999999999;</B></A>",
    "<A><B>&;</B></A>", "<A><B>&#;</B></A>", "<A><B>&#x;</B></A>",
    "<A><B>&amp</B></A>", "<A><B>&#1;</B></A>", "<A><B>a<![CDATA[x]]></B></A>",
    "<A><B>x\0y</B></A>", "<A><B>x</B >< /A>", "<><A><B>x</B></A>",
    "<A><B>x</B ></A trailing>",
  };
  static const size_t bad_len[sizeof bad / sizeof bad[0]] = { [21] = 17 };

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t len = bad_len[i] ? bad_len[i] : strlen (bad[i]), pos = 0;
    char *copy = malloc (len), *text = NULL;
    struct xml_span a;
    memcpy (copy, bad[i], len);
    if (xml_next ((struct xml_span) { copy, len }, "A", &pos, &a) == 1)
      text = xml_child_text (a, "B");
    CHECK (text == NULL, "case %zu accepted: %s", i, text);
    free (text);
    free (copy);
  }
}

static void
check_text (void)
{
  const char *in = "<A> a&amp;b&lt;&gt;&quot;&apos;&#65;&#x42;&#xe9;&#x1F600;"
    "&#10; </A><A x='>' y=\"/>\"><!-- <A>no</A> --><?pi ?>v</A><A/>";
  const char *want[] = { " a&b<>\"'AB\xc3\xa9\xf0\x9f\x98\x80\n ", "v", "" };
  const char *odd = "<>&\"' plain \xc3\xa9";
  struct xml_span c;
  size_t pos = 0;
  char *s, *e;
  int n;

  for (n = 0; xml_next (span (in), "A", &pos, &c) == 1; n++) {
    s = n < 3 ? xml_text (c) : NULL;
    /* The second A holds a comment and a PI, which are markup. */
    if (n == 1) {
      size_t p2 = 0;
      struct xml_span none;
      CHECK (s == NULL, "markup read as text");
      CHECK (xml_next (c, "A", &p2, &none) == 0, "A inside a comment found");
    }
    else
      CHECK (s && strcmp (s, want[n]) == 0, "text %d is [%s]", n, s);
    free (s);
  }
  CHECK (n == 3, "%d elements", n);

  e = xml_escape (odd);
  CHECK (strcmp (e, "&lt;&gt;&amp;&quot;&apos; plain \xc3\xa9") == 0,
         "escape gave %s", e);
  s = xml_text (span (e));
  CHECK (s && strcmp (s, odd) == 0, "escape does not round-trip");
  free (s);
  free (e);
}

/* 200000 nested elements never closed: an error, no recursion. */
static void
check_deep (void)
{
  size_t n = 200000, pos = 0;
  char *doc = malloc (3 * n);
  struct xml_span c;

  for (size_t i = 0; i < n; i++)
    memcpy (doc + 3 * i, "<A>", 3);
  CHECK (xml_next ((struct xml_span) { doc, 3 * n }, "A", &pos, &c) == -1,
         "unclosed nesting accepted");
  free (doc);
}

int
main (void)
{
  check_listing ();
  check_malformed ();
  check_text ();
  check_deep ();
  if (failures) {
    printf ("%d failures\n", failures);
    return 1;
  }
  printf ("OK\n");
  return 0;
}
