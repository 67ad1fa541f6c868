/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* test-upload-stream: a stdio stream over an upload (upload_fopen), as a
 * publish writes its manifest.
 *
 * Into a directory store, with parts smaller than the text: what
 * the stream is given, in writes of every size (one byte, less than a
 * part, across parts, several parts at once, and stdio's own buffering
 * in between), is the object that appears, byte for byte; a text that
 * fits in one part is one put; an abandoned upload leaves no object.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "store.h"
#include "upload.h"
#include "util.h"

static int failures;

#define CHECK(cond) check ((cond), #cond, __LINE__)

static bool
check (bool ok, const char *what, int line)
{
  if (!ok) {
    fprintf (stderr, "test-upload-stream.c:%d: FAIL: %s (%s)\n", line, what,
             err_msg ());
    failures++;
  }
  return ok;
}

/* Write LEN bytes of TEXT to KEY through a stream in parts of PART, in
 * writes of sizes drawn at random up to MAXW; then read the object back
 * and compare.
 */
static void
round_trip (struct store *st, const char *key, const char *text, size_t len,
            size_t part, size_t maxw)
{
  struct upload *up = upload_new (st, key, part, 1, NULL, NULL, NULL);
  FILE *f = up ? upload_fopen (up) : NULL;
  char *back = NULL;
  size_t got = 0;

  if (!CHECK (f != NULL))
    return;
  for (size_t pos = 0; pos < len; ) {
    size_t n = 1 + random () % maxw;

    if (n > len - pos)
      n = len - pos;
    if (n == 1)
      CHECK (fputc (text[pos], f) == (unsigned char) text[pos]);
    else
      CHECK (fwrite (text + pos, 1, n, f) == n);
    pos += n;
  }
  CHECK (fclose (f) == 0);
  CHECK (upload_size (up) == len);
  CHECK (upload_finish (up) == 0);
  CHECK (store_get (st, key, len + 1, &back, &got, NULL) == 0);
  CHECK (got == len && memcmp (back, text, len) == 0);
  free (back);
}

int
main (void)
{
  char dir[] = "/tmp/test-upload-stream.XXXXXX";
  struct store_config cfg = { .backend = STORE_FILE, .bucket = dir,
                              .file_mode = 0600 };
  size_t part = STORE_PART_MIN, len = 3 * part + 123;
  char *text = malloc (len), *back = NULL;
  struct store *st;
  struct upload *up;
  size_t got;
  FILE *f;

  srandom (1);
  for (size_t i = 0; i < len; i++)
    text[i] = 'a' + random () % 26;
  if (mkdtemp (dir) == NULL || (st = store_open (&cfg)) == NULL) {
    fprintf (stderr, "test-upload-stream: %s\n", err_msg ());
    return 1;
  }
  /* Writes of a byte, of up to 400 bytes, of up to three parts; a text
   * of whole parts; one that fits in one.
   */
  round_trip (st, "a/one-byte", text, part + 100, part, 1);
  round_trip (st, "a/small", text, len, part, 400);
  round_trip (st, "a/large", text, len, part, 3 * part);
  round_trip (st, "a/exact", text, 2 * part, part, part);
  round_trip (st, "a/single", text, 1000, part, 100);

  /* Abandoned: no object. */
  up = upload_new (st, "a/abandoned", part, 1, NULL, NULL, NULL);
  f = up ? upload_fopen (up) : NULL;
  if (CHECK (f != NULL)) {
    CHECK (fwrite (text, 1, 2 * part, f) == 2 * part);
    CHECK (fclose (f) == 0);
    upload_abort (up);
    CHECK (store_get (st, "a/abandoned", 1 << 20, &back, &got, NULL) == -1 &&
           err_errno () == ENOENT);
  }
  store_close (st);
  free (text);
  {
    char cmd[sizeof dir + 16];
    snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
    if (system (cmd) != 0)
      fprintf (stderr, "test-upload-stream: could not remove %s\n", dir);
  }
  if (failures) {
    fprintf (stderr, "test-upload-stream: %d failures\n", failures);
    return 1;
  }
  printf ("test-upload-stream: passed\n");
  return 0;
}
