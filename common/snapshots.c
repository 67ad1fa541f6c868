/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: clones, and listing and deleting snapshots (see publish.h).
 *
 * A clone is a metadata operation: the new export's first manifest is a
 * copy of the source snapshot's manifest, with the new identity and a
 * "cloned_from" note.  Its blob keys still name the source export's blobs,
 * which are never deleted while any manifest uses them, so the clone keeps
 * working whatever the source does later (publish, compact, close).
 *
 * Every snapshot has a summary.json beside its manifest (written after
 * it, before the head moves): a list reads those, so that it does not
 * grow with the image, and falls back to the manifest for a snapshot
 * without one (written before summaries) or with a bad one.  Deletes
 * read manifests: a summary, which anyone who writes to the bucket can
 * forge, never decides what is deleted.
 *
 * Deleting a snapshot removes its manifest first, then looks at every
 * other manifest under the export root (all exports: clones included);
 * each piece of the snapshot's own blob goes only if none of them names
 * it (one scan for all the pieces).  A manifest
 * that cannot be read counts as a user, so a blob is never deleted on a
 * guess.
 *
 * A clone racing the delete of its source snapshot.  The rule: a delete
 * removes the manifest first and scans after; a clone writes its own
 * manifest first and then checks that the source's manifest is still
 * there, and moves its head only if it is.  If the clone's check comes
 * after the delete's removal, the clone fails (and removes its
 * manifest); if it comes before, the clone's manifest was written
 * before the removal, so the delete's scan, which comes after it, sees
 * the clone's manifest and keeps the blobs.  Either the clone fails or
 * the blobs stay; a clone never names a deleted blob.  (The store must
 * read its own writes and list them, as S3 and the directory store do.)
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

/* What a list shows of snapshot SID: its summary, or the manifest of a
 * snapshot written before summaries (or whose summary does not read),
 * counted the same way.
 */
static struct manifest *
list_entry (struct volume_env *env, const char *export_id, const char *sid)
{
  struct manifest *m = volume_fetch_summary (env, export_id, sid);
  int e = err_errno ();

  if (m != NULL)
    return m;
  /* No summary, or a bad one: the manifest says it.  A store that fails
   * would fail the manifest's far larger read too.
   */
  if (e != ENOENT && e != EBADMSG && e != EFBIG)
    return NULL;
  if (e != ENOENT)
    log_warn ("%s; reading the manifest instead", err_msg ());
  m = volume_fetch_manifest (env, export_id, sid, 0);
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

  if (volume_fetch_head (env, export_id, &head, NULL) == -1 ||
      publish_snapshot_ids (env, export_id, &ids, &count) == -1)
    return -1;
  list = calloc (count ? count : 1, sizeof *list);
  if (list == NULL)
    return err_set (ENOMEM, "list snapshots: out of memory");
  for (size_t i = 0; i < count; i++) {
    struct manifest *m = list_entry (env, export_id, ids[i]);
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

/* Scan state for "does any manifest still use these blobs?". */
struct blob_users {
  struct volume_env *env;
  size_t plen;                  /* length of "<root>/" */
  struct publish_blobs *set;
  size_t unused;                /* blobs of the set no manifest names yet */
  bool vanished;                /* a listed manifest was gone when read */
};

/* store_list callback over every key under the root: for each
 * "<E>/snapshots/<S>/manifest.json", mark the blobs of the set it names.
 * A manifest that cannot be parsed counts as naming them all; one the
 * store fails to give stops the scan (-1): counting it as a user would
 * orphan the blobs for good, since nothing looks again, so the caller
 * keeps what it would have deleted and says why (a journal kept retries
 * at the next start).
 */
static int
check_manifest (void *opaque, const char *key, uint64_t size, bool is_prefix)
{
  struct blob_users *b = opaque;
  struct publish_blobs *set = b->set;
  char export_id[EXPORT_ID_MAX + 1], sid[SNAPSHOT_ID_LEN + 1];
  const char *rel = key + b->plen, *slash = strchr (rel, '/');
  const char *tail = "/snapshots/";
  struct manifest *m;

  if (b->unused == 0 || slash == NULL || slash - rel > EXPORT_ID_MAX ||
      strncmp (slash, tail, strlen (tail)) != 0 ||
      strlen (slash + strlen (tail)) != SNAPSHOT_ID_LEN + 1 +
      strlen (PUBLISH_MANIFEST_NAME) ||
      strcmp (slash + strlen (tail) + SNAPSHOT_ID_LEN + 1,
              PUBLISH_MANIFEST_NAME))
    return 0;
  memcpy (export_id, rel, slash - rel);
  export_id[slash - rel] = '\0';
  memcpy (sid, slash + strlen (tail), SNAPSHOT_ID_LEN);
  sid[SNAPSHOT_ID_LEN] = '\0';
  if (!id_export_valid (export_id) || !id_snapshot_valid (sid))
    return 0;
  m = volume_fetch_manifest (b->env, export_id, sid, 0);
  if (m == NULL && err_errno () == ENOENT) {
    /* Deleted since the listing.  A clone of it made meanwhile wrote
     * its own manifest before the removal (the rule at the top), maybe
     * after the listing: the caller lists again.
     */
    b->vanished = true;
    return 0;
  }
  if (m == NULL && err_errno () == EBADMSG) {
    /* It will not read better later: keep what it may name. */
    log_warn ("%s: %s; keeping the blob it may use", key, err_msg ());
    for (size_t i = 0; i < set->n; i++)
      set->used[i] = true;
    b->unused = 0;
    return 0;
  }
  if (m == NULL)                /* the store failed: nobody knows yet */
    return err_prefix ("cannot tell whether %s names %s%s", key,
                       set->rels[0], set->n > 1 ? " (and the others)" : "");
  for (size_t i = 0; i < m->nblobs; i++)
    for (size_t j = 0; j < set->n; j++)
      if (!set->used[j] && strcmp (m->blobs[i].key, set->rels[j]) == 0) {
        set->used[j] = true;
        b->unused--;
      }
  manifest_free (m);
  return 0;
}

/* Scans when manifests keep vanishing under one (deletes running). */
#define SCAN_TRIES 4

int
publish_blobs_used (struct volume_env *env, struct publish_blobs *set)
{
  CLEANUP_FREE char *root = env->root[0] ? str_printf ("%s/", env->root)
    : strdup ("");
  struct blob_users b = { .env = env, .set = set, .unused = set->n };

  if (root == NULL)
    return err_set (ENOMEM, "out of memory");
  b.plen = strlen (root);
  for (size_t i = 0; i < set->n; i++)
    set->used[i] = false;
  /* A blob marked used stays so; a scan in which a manifest vanished is
   * repeated for the others, as a clone may have been listed too late.
   */
  for (unsigned tries = 1; b.unused > 0; tries++) {
    b.vanished = false;
    if (store_list (env->st, root, NULL, check_manifest, &b) != 0)
      return -1;
    if (!b.vanished)
      return 0;
    if (tries == SCAN_TRIES)
      return err_set (EAGAIN, "cannot tell whether %s is used: manifests "
                      "were deleted during %d scans", set->rels[0],
                      SCAN_TRIES);
  }
  return 0;
}

int
publish_delete_unused (struct volume_env *env, struct publish_blobs *set)
{
  int r = 0;

  if (publish_blobs_used (env, set) == -1)
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
  struct manifest *m;
  int r = -1;

  if (!id_export_valid (export_id) || !id_snapshot_valid (snapshot_id))
    return err_set (EINVAL, "invalid export or snapshot id");
  if (volume_fetch_head (env, export_id, &head, NULL) == -1)
    return -1;
  if (strcmp (head.snapshot_id, snapshot_id) == 0)
    return err_set (EBUSY, "snapshot %s is the current snapshot of %s and "
                    "cannot be deleted", snapshot_id, export_id);
  m = volume_fetch_manifest (env, export_id, snapshot_id, 0);
  if (m == NULL)
    return -1;
  /* Its own blob's pieces are those it names (a clone wrote none). */
  for (size_t i = 0; i < m->nblobs; i++)
    if (key_blob_is_own (m->blobs[i].key, export_id, snapshot_id) &&
        publish_blobs_add (&own, env, m->blobs[i].key) == -1)
      goto out;
  manifest_free (m);
  m = NULL;
  if ((manifest_key = key_manifest (env->root, export_id,
                                    snapshot_id)) == NULL ||
      (summary_key = key_summary (env->root, export_id,
                                  snapshot_id)) == NULL ||
      store_delete (env->st, manifest_key) == -1)
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

/* Is the manifest of the snapshot being cloned still there?  0, or -1:
 * ENOENT if it was deleted meanwhile (its blobs may be gone), or the
 * store's error.
 */
static int
source_still_there (struct volume_env *env, const char *export_id,
                    const char *snapshot_id)
{
  CLEANUP_FREE char *key = key_manifest (env->root, export_id, snapshot_id);
  struct store_obj obj;

  if (key == NULL)
    return err_set (ENOMEM, "out of memory");
  if (store_head (env->st, key, &obj) == 0)
    return 0;
  if (err_errno () == ENOENT)
    return err_set (ENOENT, "snapshot %s of %s was deleted while it was "
                    "being cloned", snapshot_id, export_id);
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
    if (volume_fetch_head (env, source_export_id, &src, NULL) == -1)
      return -1;
    if (src.snapshot_id[0] == '\0')
      return err_set (EINVAL, "export %s has no published snapshot to clone "
                      "(take a snapshot first)", source_export_id);
    source_snapshot_id = src.snapshot_id;
  }
  if (volume_no_cache (env, export_id) == -1)
    return -1;
  m = volume_fetch_manifest (env, source_export_id, source_snapshot_id, 0);
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

  /* Manifest and summary first, then the source's manifest must still be
   * there (the rule at the top), head last; the head must not exist yet.
   */
  if (store_put (env->st, manifest_key, json, strlen (json), STORE_PUT_ANY,
                 NULL, NULL) == -1) {
    manifest_free (m);
    return -1;
  }
  CRASH_POINT ("clone.after_manifest");
  r = publish_put_summary (env, m);
  manifest_free (m);
  if (r == -1 ||
      source_still_there (env, source_export_id, source_snapshot_id) == -1 ||
      volume_put_new_head (env, &head) == -1) {
    struct err_saved why;

    /* Keep the reason; a failed clean-up only leaves an orphan. */
    err_save (&why);
    if (store_delete (env->st, manifest_key) == -1 ||
        store_delete (env->st, summary_key) == -1)
      log_warn ("%s", err_msg ());
    return err_restore (&why);
  }
  CRASH_POINT ("clone.after_head");
  volume_put_refs (env, &head);
  log_info ("cloned %s@%s as %s", source_export_id, source_snapshot_id,
            export_id);
  out->created = true;
  out->generation = 1;
  memcpy (out->snapshot_id, head.snapshot_id, sizeof out->snapshot_id);
  return 0;
}
