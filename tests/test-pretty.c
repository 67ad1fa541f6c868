/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* test-pretty: lazyvold passes large replies (the list of exports) on
 * without a json-c tree, indenting the plugin's compact text itself
 * (ctl/pretty.c).  What must hold: for every valid document, the text
 * is exactly what json-c's pretty printer makes of the same document
 * (so a large reply reads like every other), including empty containers,
 * nesting, and strings holding brackets, commas, colons, quotes and
 * backslashes; and anything that is not one valid JSON object is refused
 * with EBADMSG and adds nothing.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <json-c/json.h>

#include "../ctl/pretty.h"
#include "err.h"

static int failures;

/* pretty_json of TEXT must equal json-c's pretty print of its tree. */
static void
same_as_json_c (const char *text)
{
  struct evbuffer *out = evbuffer_new ();
  json_object *o = json_tokener_parse (text);
  const char *want;
  char *got;
  size_t len;

  if (o == NULL) {
    fprintf (stderr, "test-pretty: FAIL: json-c cannot parse %s\n", text);
    failures++;
    return;
  }
  want = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY |
                                         JSON_C_TO_STRING_SPACED |
                                         JSON_C_TO_STRING_NOSLASHESCAPE);
  if (pretty_json (out, text, strlen (text), "test") == -1) {
    fprintf (stderr, "test-pretty: FAIL: %s refused: %s\n", text, err_msg ());
    failures++;
  }
  else {
    len = evbuffer_get_length (out);
    got = (char *) evbuffer_pullup (out, -1);
    if (len != strlen (want) + 1 || memcmp (got, want, len - 1) != 0 ||
        got[len - 1] != '\n') {
      fprintf (stderr, "test-pretty: FAIL: %s\n  got:\n%.*s  want:\n%s\n",
               text, (int) len, got, want);
      failures++;
    }
  }
  json_object_put (o);
  evbuffer_free (out);
}

/* TEXT must be refused with EBADMSG, and nothing written. */
static void
refused (const char *text)
{
  struct evbuffer *out = evbuffer_new ();

  err_clear ();
  if (pretty_json (out, text, strlen (text), "test") != -1 ||
      err_errno () != EBADMSG || evbuffer_get_length (out) != 0) {
    fprintf (stderr, "test-pretty: FAIL: %s not refused (%s)\n", text,
             err_msg ());
    failures++;
  }
  evbuffer_free (out);
}

int
main (void)
{
  static const char *const valid[] = {
    "{}",
    "{\"a\":1}",
    "{\"exports\":[]}",
    "{\"exports\":[{}]}",
    "{\"exports\":[{\"export_id\":\"vm01\",\"n\":-12,\"x\":1.5e-07,"
    "\"t\":true,\"f\":false,\"z\":null,\"o\":{\"p\":{\"q\":[1,[2,[]]]}}},"
    "{\"export_id\":\"vm02\",\"e\":{}}]}",
    "{\"s\":\"[{,:}] \\\"quoted\\\" back\\\\slash\\\\\",\"t\":\"\\u0001\"}",
    "{\"u\":\"caf\xc3\xa9\",\"k\":\"a/b\"}",
    "{\"a\":[[[[[[]]]]]]}",
  };
  static const char *const invalid[] = {
    "", "[]", "{", "{\"a\":}", "{\"a\":1,}", "{\"a\":1} x", "{\"a\":01}",
    "{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}", "{\"a\":1}{\"b\":2}",
    "{\"a\":[[[[[[[[[]]]]]]]]]}",     /* too deep */
  };

  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
    same_as_json_c (valid[i]);
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
    refused (invalid[i]);
  if (failures)
    fprintf (stderr, "test-pretty: %d failures\n", failures);
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
