/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the publish journal and recovery from an interrupted publish
 * (see journal.h).
 *
 * snapshot.journal.json exists while a publish runs.  It names the
 * snapshot S being published, the generation G it will have, the head it
 * builds on and the multipart upload under way, so that after a crash,
 * or after a head move whose outcome was unknown, the next publish or
 * process can tell what happened to S and clean up.  It is replaced
 * atomically (temporary file, fsync, rename, directory fsync) before the
 * first object is uploaded and when the upload starts, and removed once
 * the head has moved or S's objects are gone.  Object keys are always
 * derived from the export and snapshot ids, never read from the journal.
 *
 * Deciding from the remote head H (recovery runs holding the cache's
 * lock, so no live publisher of this cache can be racing it):
 *   - H names S: S landed; refs/current.json is repaired.
 *   - H's generation is below G: S never landed (generations only grow,
 *     and a landed S would have made H at least G), so its objects are
 *     orphans and are removed.
 *   - H's generation is G or more and H is not S: another writer moved
 *     the head after us.  If S had landed first, H may build on S and
 *     read chunks from S's blob, so deleting them would lose data.  H's
 *     parents are walked back to generation G (at most CHAIN_MAX
 *     manifests): if the snapshot there is S, S landed and everything is
 *     kept; if it is another snapshot, S is an orphan.  If the walk
 *     cannot tell (a parent deleted or unreadable, too far back), S's
 *     objects are kept: an orphan costs space, a wrong delete costs data.
 * And whatever the case, a blob that some manifest names is not deleted
 * (a clone can be made from a snapshot listed while still in flight).
 *
 * Dirty chunks are the caller's business: a snapshot that landed leaves
 * the chunks it published dirty (the crash came before its bookkeeping),
 * and volume_settle_landed() clears those whose bytes it holds.
 *
 * A full disk must not be what stops a publish that could succeed: the
 * journal's temporary file is the only new block a publish needs (the
 * staging file is sparse, and only writers to frozen chunks fill it).
 * So RESERVE_BYTES are kept allocated in snapshot.journal.reserve; when
 * the journal cannot be written for lack of space, the reserve is
 * removed and the write tried once more.  It is taken again after each
 * publish.  Journal temporary files left by a crash (the cache's lock
 * says their writer is gone) are removed at recovery, and so are the
 * store's temporary objects under the export whose writer is gone (the
 * file store keeps them while a put or upload runs; see store-file.c),
 * then and after every publish.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "crash.h"
#include "err.h"
#include "journal.h"
#include "publish.h"
#include "volume-impl.h"

#define JOURNAL "snapshot.journal.json"
#define RESERVE "snapshot.journal.reserve"
#define STAGING "snapshot.staging"
#define RESERVE_BYTES (64 * 1024)
#define JOURNAL_MAX (64 * 1024)
#define CHAIN_MAX 64

/* Keep RESERVE_BYTES allocated in CACHE_DIR's reserve file. */
static void
reserve_take (const char *cache_dir)
{
  CLEANUP_FREE char *path = str_printf ("%s/" RESERVE, cache_dir);
  int fd, e;

  if (path == NULL)
    return;
  fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1) {
    log_debug ("%s: %m", path);
    return;
  }
  e = posix_fallocate (fd, 0, RESERVE_BYTES);
  if (e)
    log_debug ("reserve %d bytes in %s: %s", RESERVE_BYTES, path,
               strerror (e));
  close (fd);
}

/* Give up the reserve, so the journal fits on a full disk. */
static void
reserve_give_up (const char *cache_dir)
{
  CLEANUP_FREE char *path = str_printf ("%s/" RESERVE, cache_dir);

  if (path && unlink (path) == 0)
    log_warn ("%s: the disk is full; using the space reserved for the "
              "publish journal", cache_dir);
}

int
journal_write (const char *cache_dir, const struct journal *j)
{
  CLEANUP_FREE char *path = str_printf ("%s/" JOURNAL, cache_dir);
  json_object *o = json_object_new_object ();
  const char *s;
  int r = -1;

  if (path == NULL || o == NULL) {
    json_object_put (o);
    return err_set (ENOMEM, "write the publish journal: out of memory");
  }
  json_object_object_add (o, "export_id",
                          json_object_new_string (j->export_id));
  json_object_object_add (o, "snapshot_id",
                          json_object_new_string (j->snapshot_id));
  json_object_object_add (o, "kind", json_object_new_string
                          (j->kind == MANIFEST_BASE ? "base" : "delta"));
  json_object_object_add (o, "generation",
                          json_object_new_uint64 (j->generation));
  json_object_object_add (o, "previous_snapshot_id",
                          json_object_new_string (j->previous));
  json_object_object_add (o, "pieces", json_object_new_uint64 (j->pieces));
  json_object_object_add (o, "upload_id", j->upload_id[0]
                          ? json_object_new_string (j->upload_id) : NULL);
  s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY);
  if (s) {
    r = file_write_atomic (path, s, strlen (s));
    if (r == -1 && errno == ENOSPC) {
      reserve_give_up (cache_dir);
      r = file_write_atomic (path, s, strlen (s));
    }
  }
  else
    err_set (ENOMEM, "write the publish journal: out of memory");
  json_object_put (o);
  return r;
}

bool
journal_exists (const char *cache_dir)
{
  CLEANUP_FREE char *path = str_printf ("%s/" JOURNAL, cache_dir);

  /* Out of memory: say yes, so the caller goes on to read it. */
  return path == NULL || access (path, F_OK) == 0;
}

void
journal_remove (const char *cache_dir)
{
  CLEANUP_FREE char *path = str_printf ("%s/" JOURNAL, cache_dir);

  if (path && unlink (path) == 0 && fsync_dir (cache_dir) == -1)
    log_warn ("%s", err_msg ());
  reserve_take (cache_dir);
}

void
journal_sweep (struct volume_env *env, const char *export_id)
{
  CLEANUP_FREE char *prefix = str_printf ("%s%s%s/", env->root,
                                         env->root[0] ? "/" : "", export_id);

  if (prefix == NULL || store_sweep_temps (env->st, prefix) == -1)
    log_warn ("%s: temporary objects left by crashes not removed: %s",
              export_id, err_msg ());
}

/* journal_discard, but for keeping the caller's error. */
static bool
discard_objects (struct volume_env *env, const struct journal *j)
{
  CLEANUP_FREE char *manifest = key_manifest (env->root, j->export_id,
                                              j->snapshot_id);
  CLEANUP_FREE char *summary = key_summary (env->root, j->export_id,
                                            j->snapshot_id);
  struct publish_blobs blobs = { 0 };
  bool done = true;

  if (manifest == NULL || summary == NULL ||
      publish_blobs_own (&blobs, env, j->export_id, j->snapshot_id, j->kind,
                    j->pieces) == -1) {
    log_warn ("%s: %s; the objects of snapshot %s are left", j->export_id,
              err_msg (), j->snapshot_id);
    publish_blobs_free (&blobs);
    return false;
  }
  /* The upload under way is the last piece's. */
  if (j->upload_id[0] &&
      store_upload_abort_id (env->st, blobs.keys[j->pieces - 1],
                             j->upload_id) == -1) {
    log_warn ("%s", err_msg ());
    done = false;
  }
  if (store_delete (env->st, manifest) == -1 ||
      store_delete (env->st, summary) == -1) {
    log_warn ("%s", err_msg ());
    done = false;
  }
  if (publish_delete_unused (env, &blobs) == -1) {
    log_warn ("%s", err_msg ());
    done = false;
  }
  publish_blobs_free (&blobs);
  return done;
}

bool
journal_discard (struct volume_env *env, const struct journal *j)
{
  struct err_saved why;
  bool done;

  /* Its requests may fail, or set an error and succeed (a 404 is fine):
   * the error of the publish it cleans up after is the one to report.
   */
  err_save (&why);
  done = discard_objects (env, j);
  err_restore (&why);
  if (!done)
    log_warn ("%s: the journal of snapshot %s stays until its objects are "
              "removed (at the next publish, or start)", j->export_id,
              j->snapshot_id);
  return done;
}

/* Read the string field KEY of journal object O, or "" if absent. */
static const char *
journal_str (json_object *o, const char *key)
{
  json_object *f;

  if (json_object_object_get_ex (o, key, &f) &&
      json_object_is_type (f, json_type_string))
    return json_object_get_string (f);
  return "";
}

/* Read CACHE_DIR's journal into *J for export EXPORT_ID.  1 if there is
 * one, 0 if there is none or it is unreadable (it is of no use then),
 * -1 on error.
 */
static int
journal_read (const char *cache_dir, const char *export_id,
              struct journal *j)
{
  CLEANUP_FREE char *path = str_printf ("%s/" JOURNAL, cache_dir);
  CLEANUP_FREE char *text = NULL;
  json_object *o, *gen, *pieces;
  int r = 0;

  if (path == NULL)
    return -1;
  if (file_read_all (path, JOURNAL_MAX, &text, NULL) == -1)
    return errno == ENOENT ? 0 : -1;
  memset (j, 0, sizeof *j);
  o = json_tokener_parse (text);
  if (o && id_snapshot_valid (journal_str (o, "snapshot_id"))) {
    snprintf (j->export_id, sizeof j->export_id, "%s", export_id);
    snprintf (j->snapshot_id, sizeof j->snapshot_id, "%s",
              journal_str (o, "snapshot_id"));
    j->kind = strcmp (journal_str (o, "kind"), "base") == 0
      ? MANIFEST_BASE : MANIFEST_DELTA;
    if (json_object_object_get_ex (o, "generation", &gen) &&
        json_object_is_type (gen, json_type_int))
      j->generation = json_object_get_uint64 (gen);
    /* Written before blobs were split: one piece. */
    j->pieces = 1;
    if (json_object_object_get_ex (o, "pieces", &pieces) &&
        json_object_is_type (pieces, json_type_int) &&
        json_object_get_uint64 (pieces) >= 1 &&
        json_object_get_uint64 (pieces) <= BLOB_PIECES_MAX)
      j->pieces = json_object_get_uint64 (pieces);
    snprintf (j->upload_id, sizeof j->upload_id, "%s",
              journal_str (o, "upload_id"));
    r = 1;
  }
  else
    log_warn ("%s: unreadable journal %s removed", export_id, path);
  json_object_put (o);
  return r;
}

int
journal_pending (const char *cache_dir, const char *export_id,
                 char snapshot_id[SNAPSHOT_ID_LEN + 1])
{
  struct journal j;
  int r = journal_read (cache_dir, export_id, &j);

  snapshot_id[0] = '\0';
  if (r == 1)
    memcpy (snapshot_id, j.snapshot_id, SNAPSHOT_ID_LEN + 1);
  return r;
}

/* Did journaled snapshot J land before head HEAD moved past it?  Walks
 * HEAD's parents back to J's generation.  1 yes, 0 no, -1 cannot tell.
 */
static int
landed_under (struct volume_env *env, const struct volume_head *head,
              const struct journal *j)
{
  char sid[SNAPSHOT_ID_LEN + 1];

  snprintf (sid, sizeof sid, "%s", head->snapshot_id);
  for (unsigned steps = 0; steps < CHAIN_MAX && id_snapshot_valid (sid);
       steps++) {
    struct manifest *m = remote_fetch_manifest (env, head->export_id, sid, 0);
    uint64_t gen;

    if (m == NULL) {
      log_warn ("%s", err_msg ());
      return -1;
    }
    gen = m->generation;
    if (gen > j->generation)
      snprintf (sid, sizeof sid, "%s", m->parent);
    manifest_free (m);
    if (gen == j->generation)
      return strcmp (sid, j->snapshot_id) == 0;
    if (gen < j->generation)
      return 0;                 /* the chain skips G: S is not in it */
  }
  return -1;
}

/* Remove the journal's temporary files and the staging file a crashed
 * process left in CACHE_DIR (whose lock we hold).
 */
static void
remove_leftovers (const char *cache_dir)
{
  static const char tmp_prefix[] = JOURNAL ".tmp.";
  CLEANUP_FREE char *staging = str_printf ("%s/" STAGING, cache_dir);
  DIR *d = opendir (cache_dir);
  struct dirent *e;

  if (staging)
    unlink (staging);
  if (d == NULL)
    return;
  while ((e = readdir (d)) != NULL)
    if (strncmp (e->d_name, tmp_prefix, sizeof tmp_prefix - 1) == 0 &&
        unlinkat (dirfd (d), e->d_name, 0) == 0)
      log_info ("%s: removed %s, left by a crash", cache_dir, e->d_name);
  closedir (d);
}

int
journal_recover (struct volume_env *env, const struct volume_head *head,
                 const char *cache_dir, char *landed_id)
{
  struct journal j;
  int r, landed;

  if (landed_id)
    landed_id[0] = '\0';
  remove_leftovers (cache_dir);
  r = journal_read (cache_dir, head->export_id, &j);
  if (r == -1)
    return -1;
  if (r == 0)
    goto done;
  if (strcmp (j.snapshot_id, head->snapshot_id) == 0) {
    /* Its chunks stay dirty and will be published again. */
    log_info ("%s: snapshot %s was published before a crash",
              head->export_id, j.snapshot_id);
    if (landed_id)
      memcpy (landed_id, j.snapshot_id, SNAPSHOT_ID_LEN + 1);
    remote_put_refs (env, head);
    goto done;
  }
  landed = head->generation < j.generation ? 0
    : j.generation == 0 ? -1 : landed_under (env, head, &j);
  if (landed == 1) {
    log_warn ("%s: snapshot %s was published before a crash, and the head "
              "has moved on to generation %ju since; its objects stay",
              head->export_id, j.snapshot_id, (uintmax_t) head->generation);
    if (landed_id)
      memcpy (landed_id, j.snapshot_id, SNAPSHOT_ID_LEN + 1);
  }
  else if (landed == -1)
    log_warn ("%s: cannot tell whether snapshot %s of an interrupted "
              "publish was ever the head (now generation %ju); its objects "
              "are kept", head->export_id, j.snapshot_id,
              (uintmax_t) head->generation);
  else {
    log_warn ("%s: a publish of snapshot %s was interrupted; the head is "
              "%s and the dirty chunks stay dirty", head->export_id,
              j.snapshot_id, head->snapshot_id[0] ? head->snapshot_id
              : "empty");
    if (!journal_discard (env, &j)) {
      journal_sweep (env, head->export_id);
      return 0;                 /* the journal stays: tried again later */
    }
    CRASH_POINT ("recover.after_discard");
  }
 done:
  journal_remove (cache_dir);
  journal_sweep (env, head->export_id);
  return 0;
}
