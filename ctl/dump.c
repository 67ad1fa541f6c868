/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold dump-dirty: save an export's unpublished writes to a file.
 *
 * The last way out for local writes that cannot be published (lazyvold(8),
 * OWNERSHIP): when the snapshot they are based on was deleted, they can
 * be neither published nor forked into a new export, but they are still
 * the only copy of what the clients wrote.  This copies every dirty chunk
 * of the export's cache, as the disk holds it, to the same offset of a
 * sparse file as large as the image, and prints the byte ranges it
 * wrote, as JSON, on stdout.  It works on a cache no process has open
 * (the cache's lock says so) and never changes it.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bitmap.h"
#include "dump.h"
#include "err.h"
#include "format.h"
#include "meta.h"
#include "util.h"

static void
usage (FILE *f)
{
  fprintf (f,
"Usage: lazyvold dump-dirty --cache-root DIR EXPORT FILE\n"
"\n"
"Copy the unpublished writes of EXPORT (the dirty chunks of its cache in\n"
"DIR) to the same offsets of FILE, a new sparse file as large as the\n"
"image, and print the byte ranges written as JSON.  The export must not\n"
"be loaded (close it first).  See lazyvold(8).\n");
}

/* Add [OFF, OFF+LEN) to RANGES, merging with the last range. */
static void
add_range (json_object *ranges, uint64_t off, uint64_t len)
{
  size_t n = json_object_array_length (ranges);
  json_object *last = n ? json_object_array_get_idx (ranges, n - 1) : NULL;

  if (last) {
    json_object *o, *l;
    json_object_object_get_ex (last, "offset", &o);
    json_object_object_get_ex (last, "length", &l);
    if ((uint64_t) json_object_get_uint64 (o) + json_object_get_uint64 (l)
        == off) {
      json_object_object_add (last, "length",
          json_object_new_uint64 (json_object_get_uint64 (l) + len));
      return;
    }
  }
  last = json_object_new_object ();
  json_object_object_add (last, "offset", json_object_new_uint64 (off));
  json_object_object_add (last, "length", json_object_new_uint64 (len));
  json_object_array_add (ranges, last);
}

/* Copy the dirty chunks of M (cache.raw: RAW) to OUT; fill REPORT. */
static int
copy_dirty (struct meta *m, int raw, const char *raw_path, int out,
            const char *out_path, json_object *ranges, uint64_t *chunks_out)
{
  uint64_t size = meta_image_size (m), cs = meta_chunk_size (m);
  uint64_t chunks = (size + cs - 1) / cs, words = bitmap_words (chunks);
  CLEANUP_FREE uint64_t *resident = calloc (words, 8);
  CLEANUP_FREE uint64_t *dirty = calloc (words, 8);
  CLEANUP_FREE char *buf = malloc (cs);

  *chunks_out = 0;
  if (resident == NULL || dirty == NULL || buf == NULL)
    return err_set (ENOMEM, "out of memory");
  if (meta_load (m, resident, dirty) == -1)
    return -1;
  for (uint64_t c = bitmap_next (dirty, 0, chunks); c < chunks;
       c = bitmap_next (dirty, c + 1, chunks)) {
    uint64_t off = c * cs, len = size - off < cs ? size - off : cs;

    if (full_pread (raw, buf, len, off, raw_path) == -1 ||
        full_pwrite (out, buf, len, off, out_path) == -1)
      return -1;
    add_range (ranges, off, len);
    ++*chunks_out;
  }
  if (fsync (out) == -1)
    return err_set (errno, "fsync %s: %m", out_path);
  return 0;
}

int
dump_dirty_main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "cache-root", required_argument, NULL, 'c' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *cache_root = NULL, *export_id, *file;
  CLEANUP_FREE char *dir = NULL, *raw_path = NULL;
  json_object *report = NULL, *ranges, *base;
  struct meta *m = NULL;
  int raw = -1, out = -1, c, status = 1;
  uint64_t n = 0;

  while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
    if (c == 'c')
      cache_root = optarg;
    else if (c == 'h') {
      usage (stdout);
      return 0;
    }
    else {
      usage (stderr);
      return 2;
    }
  }
  if (cache_root == NULL || argc - optind != 2) {
    usage (stderr);
    return 2;
  }
  export_id = argv[optind];
  file = argv[optind + 1];
  if (id_export_check ("export id", export_id) == -1)
    goto err;
  dir = str_printf ("%s/%s", cache_root, export_id);
  raw_path = str_printf ("%s/%s/cache.raw", cache_root, export_id);
  if (dir == NULL || raw_path == NULL)
    goto err;
  if ((m = meta_open (dir, 0, 0, false, false)) == NULL) {
    if (errno == EBUSY)
      err_prefix ("close the export first");
    goto err;
  }
  raw = open (raw_path, O_RDONLY | O_CLOEXEC);
  if (raw == -1) {
    err_set (errno, "open %s: %m", raw_path);
    goto err;
  }
  out = open (file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out == -1) {
    err_set (errno, "create %s: %m", file);
    goto err;
  }
  if (ftruncate (out, meta_image_size (m)) == -1) {
    err_set (errno, "truncate %s: %m", file);
    goto err;
  }
  report = json_object_new_object ();
  ranges = json_object_new_array ();
  base = json_object_new_object ();
  json_object_object_add (report, "export_id",
                          json_object_new_string (export_id));
  json_object_object_add (report, "file", json_object_new_string (file));
  json_object_object_add (report, "image_size",
                          json_object_new_uint64 (meta_image_size (m)));
  json_object_object_add (report, "chunk_size",
                          json_object_new_uint64 (meta_chunk_size (m)));
  json_object_object_add (base, "snapshot_id",
                          meta_base (m)->snapshot_id[0]
                          ? json_object_new_string (meta_base (m)->snapshot_id)
                          : NULL);
  json_object_object_add (base, "generation",
                          json_object_new_uint64 (meta_base (m)->generation));
  json_object_object_add (report, "based_on", base);
  json_object_object_add (report, "ranges", ranges);
  if (copy_dirty (m, raw, raw_path, out, file, ranges, &n) == -1)
    goto err;
  json_object_object_add (report, "dirty_chunks", json_object_new_uint64 (n));
  printf ("%s\n", json_object_to_json_string_ext
          (report, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
  fprintf (stderr, "lazyvold: wrote %ju dirty chunks of %s to %s\n",
           (uintmax_t) n, export_id, file);
  status = 0;
  goto out;

 err:
  fprintf (stderr, "lazyvold: dump-dirty: %s\n", err_msg ());
  if (out >= 0)
    unlink (file);
 out:
  json_object_put (report);
  if (out >= 0)
    close (out);
  if (raw >= 0)
    close (raw);
  meta_close (m);
  return status;
}
