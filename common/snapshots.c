/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: clones, and listing and deleting snapshots (see publish.h).
 *
 * A clone is a metadata operation: the new export's first manifest is a
 * copy of the source snapshot's manifest, with the new identity and a
 * "cloned_from" note.  Its blob keys still name the source export's blobs
 * (a clone of a clone: their first owner's), which are never deleted
 * while any manifest uses them, so the clone keeps working whatever the
 * source does later (publish, compact, close).  Before its manifest, a
 * clone writes a reference marker for each snapshot whose blobs it names
 * (refs.c).
 *
 * Every snapshot has a summary.json beside its manifest (written after
 * it, before the head moves): a list reads those, so that it does not
 * grow with the image, and falls back to the manifest for a snapshot
 * without one (written before summaries) or with a bad one.  The scan of
 * a delete reads them the same way.
 *
 * Who can name the pieces of snapshot X of export E (refs.c): (a) the
 * snapshots of E made after X, which are those listed after it (an id
 * sorts after its parent's); (b) the snapshots of the exports F that
 * have a marker R/.refs/E/X/F.  Nothing else.  Deleting a snapshot
 * removes its manifest first, then lists the snapshots of (a), then the
 * markers of (b) and the snapshots of the exports they name, and reads
 * them; each piece of the snapshot's own blob goes only if none of them
 * names it (one scan for all the pieces).  A manifest that cannot be
 * read counts as a user, so a blob is never deleted on a guess.
 *
 * A clone racing the delete of its source snapshot.  The rule: a delete
 * removes the manifest first and lists after, (a) before (b); a clone
 * writes its markers, then its own manifest and summary, then checks
 * that the source's manifest is still there, and moves its head only if
 * it is.  If the clone's check comes after the delete's removal, the
 * clone fails (and removes its manifest; its markers stay, which only
 * costs a later delete a listing); if it comes before, the clone's
 * markers and manifest were written before the removal, so the delete's
 * listings, which come after it, see them, and the blobs stay.
 *
 * A clone of E@Y also names the pieces of an older X of E that Y names,
 * and the deletes of X and of Y may race it.  While Y exists it names
 * them, and a delete of X that lists Y reads it (Y gone by the time it is
 * read: the scan starts over).  If the delete of X lists E's snapshots
 * after Y's removal, the clone's check came before that removal (or the
 * clone fails), and its markers, X's among them, were written before its
 * check: they are there when that delete lists the markers, after E's
 * snapshots.  Either way the clone fails or the blobs stay; a clone
 * never names a deleted blob.  (The store must read its own writes and
 * list them, as S3 and the directory store do.)
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash.h"
#include "err.h"
#include "publish.h"
#include "refs.h"
#include "volume-impl.h"

int clone_delay_ms;

struct id_list {
  size_t plen;                  /* length of the listing prefix */
  char (*ids)[SNAPSHOT_ID_LEN + 1];
  size_t n, cap;
};

/* store_list callback: keep "<prefix><sid>/manifest.json". */
static int
collect_id (void *opaque, const char *key, uint64_t size, bool is_prefix)
{
  struct id_list *l = opaque;
  const char *rest = key + l->plen;

  if (strlen (rest) !=
      SNAPSHOT_ID_LEN + 1 + strlen (PUBLISH_MANIFEST_NAME) ||
      rest[SNAPSHOT_ID_LEN] != '/' ||
      strcmp (rest + SNAPSHOT_ID_LEN + 1, PUBLISH_MANIFEST_NAME) != 0)
    return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    void *p = realloc (l->ids, cap * sizeof *l->ids);
    if (p == NULL)
      return err_set (ENOMEM, "list snapshots: out of memory");
    l->ids = p;
    l->cap = cap;
  }
  memcpy (l->ids[l->n], rest, SNAPSHOT_ID_LEN);
  l->ids[l->n][SNAPSHOT_ID_LEN] = '\0';
  if (id_snapshot_valid (l->ids[l->n]))
    l->n++;
  return 0;
}

int
publish_snapshot_ids (struct volume_env *env, const char *export_id,
                      char (**ids)[SNAPSHOT_ID_LEN + 1], size_t *n)
{
  CLEANUP_FREE char *prefix = NULL;
  struct id_list l = { 0 };

  if (!id_export_valid (export_id))
    return err_set (EINVAL, "invalid export id \"%.140s\"", export_id);
  if ((prefix = key_snapshots_prefix (env->root, export_id)) == NULL)
    return -1;
  l.plen = strlen (prefix);
  /* Keys sort by snapshot id, and ids sort by time. */
  if (store_list (env->st, prefix, NULL, collect_id, &l) != 0) {
    free (l.ids);
    return -1;
  }
  *ids = l.ids;
  *n = l.n;
  return 0;
}

int
publish_put_summary (struct volume_env *env, const struct manifest *m)
{
  CLEANUP_FREE char *key = key_summary (env->root, m->export_id,
                                        m->snapshot_id);
  CLEANUP_FREE char *json = manifest_summary_format (m);

  if (key == NULL || json == NULL)
    return err_set (ENOMEM, "summary of %s: out of memory", m->snapshot_id);
  return store_put (env->st, key, json, strlen (json), STORE_PUT_ANY, NULL,
                    NULL);
}

struct manifest *
publish_read_summary (struct volume_env *env, const char *export_id,
                      const char *snapshot_id, bool summary)
{
  struct manifest *m = NULL;
  int e = ENOENT;

  if (summary) {
    m = remote_fetch_summary (env, export_id, snapshot_id);
    e = err_errno ();
  }
  if (m != NULL)
    return m;
  /* No summary, or a bad one: the manifest says it.  A store that fails
   * would fail the manifest's far larger read too.
   */
  if (e != ENOENT && e != EBADMSG && e != EFBIG)
    return NULL;
  if (e != ENOENT)
    log_warn ("%s; reading the manifest instead", err_msg ());
  m = remote_fetch_manifest (env, export_id, snapshot_id, 0);
  if (m != NULL) {
    m->summary_chunks = m->nsha;
    m->summary_bytes = manifest_own_bytes (m);
  }
  return m;
}

int
publish_list (struct volume_env *env, const char *export_id,
              struct snapshot_info **out, size_t *n)
{
  CLEANUP_FREE char (*ids)[SNAPSHOT_ID_LEN + 1] = NULL;
  struct snapshot_info *list;
  struct volume_head head;
  size_t count;

  if (remote_fetch_head (env, export_id, &head, NULL) == -1 ||
      publish_snapshot_ids (env, export_id, &ids, &count) == -1)
    return -1;
  list = calloc (count ? count : 1, sizeof *list);
  if (list == NULL)
    return err_set (ENOMEM, "list snapshots: out of memory");
  for (size_t i = 0; i < count; i++) {
    struct manifest *m = publish_read_summary (env, export_id, ids[i], true);
    if (m == NULL) {
      free (list);
      return -1;
    }
    memcpy (list[i].snapshot_id, m->snapshot_id, sizeof list[i].snapshot_id);
    memcpy (list[i].parent, m->parent, sizeof list[i].parent);
    memcpy (list[i].created, m->created, sizeof list[i].created);
    list[i].generation = m->generation;
    list[i].kind = m->kind;
    list[i].blob_size = m->summary_bytes;
    list[i].chunks = m->summary_chunks;
    list[i].image_size = m->image_size;
    memcpy (list[i].label, m->label, sizeof list[i].label);
    list[i].current = strcmp (ids[i], head.snapshot_id) == 0;
    manifest_free (m);
  }
  *out = list;
  *n = count;
  return 0;
}

int
publish_blobs_add (struct publish_blobs *s, struct volume_env *env, const char *rel)
{
  char **rels = reallocarray (s->rels, s->n + 1, sizeof *s->rels);
  char **keys = rels ? reallocarray (s->keys, s->n + 1, sizeof *s->keys)
    : NULL;
  bool *used = keys ? reallocarray (s->used, s->n + 1, sizeof *s->used)
    : NULL;

  if (rels)
    s->rels = rels;
  if (keys)
    s->keys = keys;
  if (used)
    s->used = used;
  if (used == NULL)
    return err_set (ENOMEM, "out of memory");
  s->rels[s->n] = strdup (rel);
  s->keys[s->n] = key_join (env->root, rel);
  s->used[s->n] = false;
  if (s->rels[s->n] == NULL || s->keys[s->n] == NULL) {
    free (s->rels[s->n]);
    free (s->keys[s->n]);
    return err_set (ENOMEM, "out of memory");
  }
  s->n++;
  return 0;
}

int
publish_blobs_own (struct publish_blobs *s, struct volume_env *env,
              const char *export_id, const char *snapshot_id,
              enum manifest_kind kind, unsigned pieces)
{
  for (unsigned i = 0; i < pieces; i++) {
    CLEANUP_FREE char *rel = key_blob_piece_rel (export_id, snapshot_id,
                                                 kind, i);

    if (rel == NULL || publish_blobs_add (s, env, rel) == -1)
      return err_set (ENOMEM, "out of memory");
  }
  return 0;
}

void
publish_blobs_free (struct publish_blobs *s)
{
  for (size_t i = 0; i < s->n; i++) {
    free (s->rels[i]);
    free (s->keys[i]);
  }
  free (s->rels);
  free (s->keys);
  free (s->used);
  memset (s, 0, sizeof *s);
}

int
publish_delete_unused (struct volume_env *env, struct publish_blobs *set)
{
  int r = 0;

  if (refs_blobs_used (env, set) == -1)
    return -1;
  for (size_t i = 0; i < set->n; i++) {
    if (set->used[i])
      log_info ("blob %s kept: another snapshot uses it", set->rels[i]);
    else if (store_delete (env->st, set->keys[i]) == -1)
      r = -1;
  }
  return r;
}

int
publish_delete (struct volume_env *env, const char *export_id,
                const char *snapshot_id, bool *blob_kept)
{
  CLEANUP_FREE char *manifest_key = NULL;
  CLEANUP_FREE char *summary_key = NULL;
  struct publish_blobs own = { 0 };
  struct volume_head head;
  struct store_obj obj;
  struct manifest *m;
  int r = -1;

  if (!id_export_valid (export_id) || !id_snapshot_valid (snapshot_id))
    return err_set (EINVAL, "invalid export or snapshot id");
  if (remote_fetch_head (env, export_id, &head, NULL) == -1)
    return -1;
  if (strcmp (head.snapshot_id, snapshot_id) == 0)
    return err_set (EBUSY, "snapshot %s is the current snapshot of %s and "
                    "cannot be deleted", snapshot_id, export_id);
  if ((manifest_key = key_manifest (env->root, export_id,
                                    snapshot_id)) == NULL ||
      (summary_key = key_summary (env->root, export_id,
                                  snapshot_id)) == NULL)
    return -1;
  if (store_head (env->st, manifest_key, &obj) == -1)
    return err_errno () == ENOENT
      ? err_set (ENOENT, "snapshot %s of export %s does not exist (no %s)",
                 snapshot_id, export_id, manifest_key) : -1;
  /* Its own blob's pieces are those it names (a clone wrote none), which
   * its summary lists without the extents.  A summary that lied could
   * only leave a piece of this snapshot's for gc, or name another one
   * of this snapshot's own.
   */
  m = publish_read_summary (env, export_id, snapshot_id, true);
  if (m == NULL)
    return -1;
  for (size_t i = 0; i < m->nblobs; i++)
    if (key_blob_is_own (m->blobs[i].key, export_id, snapshot_id) &&
        publish_blobs_add (&own, env, m->blobs[i].key) == -1)
      goto out;
  manifest_free (m);
  m = NULL;
  if (store_delete (env->st, manifest_key) == -1)
    goto out;
  log_info ("%s: deleted snapshot %s", export_id, snapshot_id);
  /* A summary left behind is ignored (lists go by manifests), and gc
   * collects it.
   */
  if (store_delete (env->st, summary_key) == -1)
    log_warn ("%s", err_msg ());
  r = publish_delete_unused (env, &own);
  *blob_kept = r == -1;
  for (size_t i = 0; i < own.n; i++)
    *blob_kept |= own.used[i];
  if (r == -1)
    err_prefix ("snapshot %s deleted, but its blob was kept", snapshot_id);
 out:
  manifest_free (m);
  publish_blobs_free (&own);
  return r;
}

int
publish_source_there (struct volume_env *env, const char *export_id,
                      const char *snapshot_id, const char *doing)
{
  CLEANUP_FREE char *key = key_manifest (env->root, export_id, snapshot_id);
  struct store_obj obj;

  if (key == NULL)
    return err_set (ENOMEM, "out of memory");
  if (store_head (env->st, key, &obj) == 0)
    return 0;
  if (err_errno () == ENOENT)
    return err_set (ENOENT, "snapshot %s of %s was deleted while it was "
                    "being %s", snapshot_id, export_id, doing);
  return -1;
}

int
publish_clone (struct volume_env *env, const char *export_id,
               const char *source_export_id, const char *source_snapshot_id,
               struct publish_result *out)
{
  CLEANUP_FREE char *json = NULL;
  CLEANUP_FREE char *manifest_key = NULL;
  CLEANUP_FREE char *summary_key = NULL;
  struct volume_head src, head = { .generation = 1 };
  struct manifest *m;
  int r;

  if (!id_export_valid (export_id) || !id_export_valid (source_export_id))
    return err_set (EINVAL, "invalid export id");
  if (strcmp (export_id, source_export_id) == 0)
    return err_set (EINVAL, "an export cannot be cloned onto itself");
  if (source_snapshot_id == NULL) {
    if (remote_fetch_head (env, source_export_id, &src, NULL) == -1)
      return -1;
    if (src.snapshot_id[0] == '\0')
      return err_set (EINVAL, "export %s has no published snapshot to clone "
                      "(take a snapshot first)", source_export_id);
    source_snapshot_id = src.snapshot_id;
  }
  if (volume_no_cache (env, export_id) == -1)
    return -1;
  m = remote_fetch_manifest (env, source_export_id, source_snapshot_id, 0);
  if (m == NULL)
    return -1;
  if (clone_delay_ms > 0)
    usleep (clone_delay_ms * 1000);

  /* The clone's first snapshot: the same chunks and blobs, a new identity. */
  snprintf (m->cloned_export, sizeof m->cloned_export, "%s", source_export_id);
  snprintf (m->cloned_snapshot, sizeof m->cloned_snapshot, "%s",
            source_snapshot_id);
  snprintf (m->export_id, sizeof m->export_id, "%s", export_id);
  id_snapshot_new (m->snapshot_id);
  m->parent[0] = '\0';
  m->kind = MANIFEST_CLONE;
  m->generation = 1;
  time_now_iso8601 (m->created);

  snprintf (head.export_id, sizeof head.export_id, "%s", export_id);
  memcpy (head.snapshot_id, m->snapshot_id, sizeof head.snapshot_id);
  head.image_size = m->image_size;
  head.chunk_size = m->chunk_size;
  memcpy (head.updated, m->created, sizeof head.updated);
  json = manifest_format (m);
  manifest_key = key_manifest (env->root, export_id, m->snapshot_id);
  summary_key = key_summary (env->root, export_id, m->snapshot_id);
  if (json == NULL || manifest_key == NULL || summary_key == NULL) {
    manifest_free (m);
    return err_set (ENOMEM, "clone: out of memory");
  }

  /* Markers, manifest and summary first, then the source's manifest
   * must still be there (the rule at the top), head last; the head must
   * not exist yet.
   */
  if (refs_mark (env, m) == -1 ||
      store_put (env->st, manifest_key, json, strlen (json), STORE_PUT_ANY,
                 NULL, NULL) == -1) {
    manifest_free (m);
    return -1;
  }
  CRASH_POINT ("clone.after_manifest");
  r = publish_put_summary (env, m);
  CRASH_POINT ("clone.after_summary");
  manifest_free (m);
  if (r == -1 ||
      publish_source_there (env, source_export_id, source_snapshot_id,
                            "cloned") == -1 ||
      remote_put_new_head (env, &head) == -1) {
    struct err_saved why;

    /* Keep the reason; a failed clean-up only leaves an orphan. */
    err_save (&why);
    if (store_delete (env->st, manifest_key) == -1 ||
        store_delete (env->st, summary_key) == -1)
      log_warn ("%s", err_msg ());
    return err_restore (&why);
  }
  CRASH_POINT ("clone.after_head");
  remote_put_refs (env, &head);
  log_info ("cloned %s@%s as %s", source_export_id, source_snapshot_id,
            export_id);
  out->created = true;
  out->generation = 1;
  memcpy (out->snapshot_id, head.snapshot_id, sizeof out->snapshot_id);
  return 0;
}
