/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: manifest.json as lazyvol writes it (see format.h and
 * lazyvol-format(5)), as a stream: a publish writes a large manifest
 * straight into its upload, with the hashes of the chunks it did not
 * change borrowed from the manifest before it (struct manifest_hashes),
 * so that neither a second copy of the hashes nor the text is ever
 * held whole.
 *
 * The text is printed by hand, as every document is (format.c says why),
 * in the current version, MANIFEST_FORMAT_VERSION: hashes in base64.
 * Members come in the order lazyvol-format(5) lists them; each blob
 * takes a line, each extent a line, then each of its hashes a line of
 * its own, so that grep finds a chunk's hash.  A contiguous manifest
 * takes 54 bytes a listed chunk.  The text is a function of the
 * manifest: format(parse(format(m))) is format(m).
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>

#include "format-impl.h"
#include "util.h"

static void
write_cloned_from (FILE *f, const struct manifest *m)
{
  fputs ("  \"cloned_from\": {\"export_id\": ", f);
  format_write_string (f, m->cloned_export);
  fputs (", \"snapshot_id\": ", f);
  format_write_string (f, m->cloned_snapshot);
  fputs ("},\n", f);
}

static void
write_blobs (FILE *f, const struct manifest *m)
{
  fputs ("  \"blobs\": [", f);
  for (size_t i = 0; i < m->nblobs; i++) {
    fputs (i ? ",\n    {\"key\": " : "\n    {\"key\": ", f);
    format_write_string (f, m->blobs[i].key);
    fprintf (f, ", \"size\": %" PRIu64 "}", m->blobs[i].size);
  }
  fputs (m->nblobs ? "\n  ],\n" : "],\n", f);
}

/* The extents, the manifest's last member, and the closing brace. */
static void
write_extents (FILE *f, const struct manifest *m,
               const struct manifest_hashes *h)
{
  char b64[45];

  fputs ("  \"extents\": [", f);
  for (size_t i = 0; i < m->nextents; i++) {
    const struct manifest_extent *e = &m->extents[i];

    fprintf (f, "%s\n    {\"chunk\": %" PRIu64 ", \"count\": %" PRIu64
             ", \"blob\": %" PRIu32 ", \"offset\": %" PRIu64
             ", \"sha256\": [", i ? "," : "", e->chunk, e->count, e->blob,
             e->offset);
    for (uint64_t j = 0; j < e->count; j++) {
      base64_encode (manifest_hash (m, h, e, j), 32, b64);
      fprintf (f, "%s\n      \"%s\"", j ? "," : "", b64);
    }
    fputs ("]}", f);
  }
  fputs (m->nextents ? "\n  ]\n}\n" : "]\n}\n", f);
}

/* The members a manifest and its summary share, but the blobs. */
static void
write_header (FILE *f, const struct manifest *m)
{
  format_write_str (f, "export_id", m->export_id);
  format_write_str (f, "snapshot_id", m->snapshot_id);
  format_write_str (f, "parent", m->parent[0] ? m->parent : NULL);
  format_write_str (f, "kind", manifest_kind_name (m->kind));
  format_write_u64 (f, "generation", m->generation);
  format_write_str (f, "created", m->created);
  format_write_geometry (f, m->image_size, m->chunk_size);
  if (m->base_ref)
    format_write_str (f, "base_ref", m->base_ref);
  if (m->cloned_export[0])
    write_cloned_from (f, m);
  if (m->label[0])
    format_write_str (f, "label", m->label);
}


static void
write_summary (FILE *f, const void *arg)
{
  const struct manifest *m = arg;

  write_header (f, m);
  write_blobs (f, m);
  format_write_u64 (f, "chunks", m->nsha);
  format_write_u64 (f, "bytes", manifest_own_bytes (m));
}

int
manifest_write (FILE *f, const struct manifest *m,
                const struct manifest_hashes *h)
{
  format_write_open (f, "lazyvol-manifest", MANIFEST_FORMAT_VERSION);
  write_header (f, m);
  write_blobs (f, m);
  write_extents (f, m, h);
  return ferror (f) ? -1 : 0;
}

/* format_text's writer of a manifest with its own hashes. */
static void
write_own (FILE *f, const void *arg)
{
  manifest_write (f, arg, NULL);
}

char *
manifest_format (const struct manifest *m)
{
  return format_text (write_own, m);
}

char *
manifest_summary_format (const struct manifest *m)
{
  return format_write_document ("lazyvol-summary", SUMMARY_FORMAT_VERSION,
                                write_summary, m);
}
