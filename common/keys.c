/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the object keys of the remote format (the layout is in
 * format.h and lazyvol-format(5)).
 *
 * Every key is made from ids that were checked before they came here,
 * and the id alphabets have no "/": a key cannot climb out of the export
 * root or name another export's objects.  The parsers go the other way,
 * from a key found in a listing or a manifest to the ids in it, and
 * check every id they return.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "format-impl.h"
#include "util.h"

char *
key_join (const char *root, const char *rel)
{
  size_t n = strlen (root);

  while (n > 0 && root[n - 1] == '/')
    n--;
  if (n == 0)
    return str_printf ("%s", rel);
  return str_printf ("%.*s/%s", (int) n, root, rel);
}

/* ROOT/EXPORT_ID/PATH. */
static char *
key_in_export (const char *root, const char *export_id, const char *path)
{
  CLEANUP_FREE char *rel = str_printf ("%s/%s", export_id, path);

  return rel ? key_join (root, rel) : NULL;
}

char *
key_volume (const char *root, const char *export_id)
{
  return key_in_export (root, export_id, "volume.json");
}

char *
key_owner (const char *root, const char *export_id)
{
  return key_in_export (root, export_id, "owner.json");
}

char *
key_lease (const char *root, const char *host_id, const char *cache_id)
{
  /* Not an export directory: export ids cannot start with a dot. */
  char *rel = str_printf (".hosts/%s.%s.json", host_id, cache_id);
  char *key = rel ? key_join (root, rel) : NULL;

  free (rel);
  return key;
}

char *
key_refs_current (const char *root, const char *export_id)
{
  return key_in_export (root, export_id, "refs/current.json");
}

char *
key_snapshots_prefix (const char *root, const char *export_id)
{
  return key_in_export (root, export_id, "snapshots/");
}

/* ROOT/EXPORT_ID/snapshots/SNAPSHOT_ID/NAME. */
static char *
key_in_snapshot (const char *root, const char *export_id,
                 const char *snapshot_id, const char *name)
{
  CLEANUP_FREE char *path = str_printf ("snapshots/%s/%s", snapshot_id,
                                        name);

  return path ? key_in_export (root, export_id, path) : NULL;
}

char *
key_manifest (const char *root, const char *export_id,
              const char *snapshot_id)
{
  return key_in_snapshot (root, export_id, snapshot_id, "manifest.json");
}

char *
key_summary (const char *root, const char *export_id,
             const char *snapshot_id)
{
  return key_in_snapshot (root, export_id, snapshot_id, "summary.json");
}

/* A clone writes no blob of its own (it references its source's), so
 * only a base is "base.blob"; everything a publish writes is a delta.
 */
char *
key_blob_rel (const char *export_id, const char *snapshot_id,
              enum manifest_kind kind)
{
  return key_blob_piece_rel (export_id, snapshot_id, kind, 0);
}

char *
key_blob_piece_rel (const char *export_id, const char *snapshot_id,
                    enum manifest_kind kind, unsigned piece)
{
  const char *name = kind == MANIFEST_BASE ? "base" : "delta";

  assert (piece < BLOB_PIECES_MAX);
  if (piece == 0)
    return str_printf ("%s/snapshots/%s/%s.blob", export_id, snapshot_id,
                       name);
  return str_printf ("%s/snapshots/%s/%s.%u.blob", export_id, snapshot_id,
                     name, piece);
}

bool
key_blob_is_own (const char *key, const char *export_id,
                 const char *snapshot_id)
{
  size_t e = strlen (export_id);

  return manifest_blob_kind (key, NULL) != -1 &&
    strncmp (key, export_id, e) == 0 &&
    strncmp (key + e, "/snapshots/", 11) == 0 &&
    strncmp (key + e + 11, snapshot_id, SNAPSHOT_ID_LEN) == 0 &&
    key[e + 11 + SNAPSHOT_ID_LEN] == '/';
}

/* Copy the N bytes at S into OUT (of N+1) as a string. */
static void
copy_id (char *out, const char *s, size_t n)
{
  memcpy (out, s, n);
  out[n] = '\0';
}

bool
key_snapshot_parse (const char *key, char export_id[EXPORT_ID_MAX + 1],
                    char snapshot_id[SNAPSHOT_ID_LEN + 1], const char **name)
{
  const char *slash = strchr (key, '/'), *sid, *tail = "/snapshots/";

  if (slash == NULL || slash - key > EXPORT_ID_MAX ||
      strncmp (slash, tail, strlen (tail)) != 0)
    return false;
  sid = slash + strlen (tail);
  if (strnlen (sid, SNAPSHOT_ID_LEN + 1) <= SNAPSHOT_ID_LEN ||
      sid[SNAPSHOT_ID_LEN] != '/')
    return false;
  copy_id (export_id, key, slash - key);
  copy_id (snapshot_id, sid, SNAPSHOT_ID_LEN);
  *name = sid + SNAPSHOT_ID_LEN + 1;
  return id_export_valid (export_id) && id_snapshot_valid (snapshot_id);
}

bool
key_blob_writer (const char *key, char writer[EXPORT_ID_MAX + 1],
                 char snapshot[SNAPSHOT_ID_LEN + 1])
{
  const char *name;

  return manifest_blob_kind (key, NULL) != -1 &&
    key_snapshot_parse (key, writer, snapshot, &name);
}

/* ROOT/.refs/REST. */
static char *
key_in_refs (const char *root, const char *rest)
{
  CLEANUP_FREE char *rel = str_printf (".refs/%s", rest);

  return rel ? key_join (root, rel) : NULL;
}

char *
key_ref (const char *root, const char *writer, const char *snapshot,
         const char *user)
{
  CLEANUP_FREE char *rest = str_printf ("%s/%s/%s", writer, snapshot, user);

  assert (id_export_valid (writer) && id_snapshot_valid (snapshot) &&
          id_export_valid (user));
  return rest ? key_in_refs (root, rest) : NULL;
}

char *
key_refs_prefix (const char *root, const char *writer, const char *snapshot)
{
  CLEANUP_FREE char *rest = writer ? str_printf ("%s/%s/", writer, snapshot)
    : strdup ("");

  assert (writer == NULL ||
          (id_export_valid (writer) && id_snapshot_valid (snapshot)));
  if (rest == NULL) {
    err_set (ENOMEM, "out of memory");
    return NULL;
  }
  return key_in_refs (root, rest);
}

char *
key_refs_index (const char *root)
{
  return key_in_refs (root, "index.json");
}

bool
key_ref_parse (const char *rel, char writer[EXPORT_ID_MAX + 1],
               char snapshot[SNAPSHOT_ID_LEN + 1],
               char user[EXPORT_ID_MAX + 1])
{
  const char *slash = strchr (rel, '/'), *sid, *u;

  if (slash == NULL || slash - rel > EXPORT_ID_MAX)
    return false;
  sid = slash + 1;
  if (strnlen (sid, SNAPSHOT_ID_LEN + 1) <= SNAPSHOT_ID_LEN ||
      sid[SNAPSHOT_ID_LEN] != '/')
    return false;
  u = sid + SNAPSHOT_ID_LEN + 1;
  if (strlen (u) > EXPORT_ID_MAX)
    return false;
  copy_id (writer, rel, slash - rel);
  copy_id (snapshot, sid, SNAPSHOT_ID_LEN);
  strcpy (user, u);
  return id_export_valid (writer) && id_snapshot_valid (snapshot) &&
    id_export_valid (user);
}
