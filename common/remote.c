/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: an export's documents in the store (see remote.h).
 *
 * volume.json is fetched whole (it is small, VOLUME_JSON_MAX); a
 * manifest, which grows with the image, goes through a manifest reader as
 * it arrives and is never held whole, nor is a summary (a retry of the
 * store starts a new reader).  A document that does not parse may have
 * been damaged on the way: it is fetched again, REMOTE_FETCH_TRIES times
 * in all, before it is called corrupt (a summary once: its reader reads
 * the manifest instead).  A new head is put only if none exists, and a
 * put whose reply was lost is recognised by reading the head back.
 *
 * The head and its copy.  volume.json is the head; refs/current.json
 * is a copy for direct-mode readers, written after it (publish.c), so a
 * crash between the two leaves the copy one head behind.  When they
 * disagree volume.json wins: it moved first, it carries the etag every
 * conditional head move and owner record is checked against, and the
 * copy is never read as a head.  The owner of an export rewrites a copy
 * that disagrees when it loads the export in direct mode
 * (remote_check_refs); a copy with no volume.json is reported, never
 * adopted.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "remote.h"
#include "util.h"

/* The document KEY did not parse at try TRIES (its error recorded): it
 * may have been damaged on the way.  True to fetch it again; false after
 * REMOTE_FETCH_TRIES tries, the failure counted as corrupt and the key
 * put in front of the error.
 */
static bool
fetch_again (struct volume_env *env, const char *key, unsigned tries)
{
  if (tries == REMOTE_FETCH_TRIES) {
    store_count_failure (env->st, STORE_OP_GET, STORE_WHY_CORRUPT);
    err_prefix ("%s", key);
    return false;
  }
  store_count_retry (env->st, STORE_OP_GET, STORE_WHY_CORRUPT);
  log_warn ("%s: %s; fetching it again", key, err_msg ());
  return true;
}

/* GET and parse KEY, export EXPORT_ID's head or its copy, with its etag
 * if ETAG.  -1 with err_set (ENOENT if there is no KEY).
 */
static int
fetch_head_key (struct volume_env *env, const char *key,
                const char *export_id, struct volume_head *head,
                char etag[128])
{
  struct store_obj obj;

  for (unsigned tries = 1; ; tries++) {
    CLEANUP_FREE char *json = NULL;
    size_t len;

    if (store_get (env->st, key, VOLUME_JSON_MAX, &json, &len, &obj) == -1)
      return -1;
    if (volume_parse (json, len, export_id, head) == 0)
      break;
    if (!fetch_again (env, key, tries))
      return -1;
  }
  if (etag)
    memcpy (etag, obj.etag, 128);
  return 0;
}

int
remote_fetch_head (struct volume_env *env, const char *export_id,
                   struct volume_head *head, char etag[128])
{
  CLEANUP_FREE char *key = key_volume (env->root, export_id);
  CLEANUP_FREE char *refs = key_refs_current (env->root, export_id);
  struct volume_head copy;

  if (key == NULL || refs == NULL)
    return err_set (ENOMEM, "%s: out of memory", export_id);
  if (fetch_head_key (env, key, export_id, head, etag) == 0)
    return 0;
  if (errno != ENOENT)
    return -1;
  /* No head.  Its copy is never written first, so one found alone was
   * left by another tool or by a removal of the export that stopped
   * half-way: loading it could bring back an export being deleted.
   */
  if (fetch_head_key (env, refs, export_id, &copy, NULL) == 0)
    return err_set (ENOENT, "export %s has no %s, but %s names snapshot %s "
                    "(generation %ju): it is not used, volume.json is the "
                    "head and is always written before this copy; if the "
                    "export is wanted, copy it to volume.json by hand",
                    export_id, key, refs,
                    copy.snapshot_id[0] ? copy.snapshot_id : "(none)",
                    (uintmax_t) copy.generation);
  return err_set (ENOENT, "export %s does not exist (no %s)", export_id, key);
}

/* A manifest being fetched: who it must be, and the reader its bytes go
 * to, which is replaced by a new one when the store starts over.
 */
struct manifest_fetch {
  const char *export_id, *snapshot_id;
  bool summary;                 /* summary.json, not the manifest */
  struct manifest_reader *r;
};

/* A new reader for F's document. */
static struct manifest_reader *
fetch_reader (const struct manifest_fetch *f)
{
  return f->summary ? summary_reader_new (f->export_id, f->snapshot_id)
    : manifest_reader_new (f->export_id, f->snapshot_id);
}

static int
manifest_bytes (void *opaque, const void *buf, size_t len)
{
  struct manifest_fetch *f = opaque;

  if (buf == NULL) {
    manifest_reader_free (f->r);
    f->r = fetch_reader (f);
    return f->r ? 0 : 1;
  }
  return manifest_reader_feed (f->r, buf, len) == 0 ? 0 : 1;
}

/* GET document KEY through a reader as it arrives (F says which): a
 * manifest grows with the image and is never held whole, a summary with
 * the blobs its manifest names.  A document that does not parse is
 * fetched again up to TRIES times in all.
 */
static struct manifest *
fetch_streamed (struct volume_env *env, const char *key,
                struct manifest_fetch *f, size_t max, unsigned tries)
{
  for (unsigned t = 1; ; t++) {
    struct manifest *m = NULL;
    int r;

    if ((f->r = fetch_reader (f)) == NULL)
      return NULL;
    r = store_get_stream (env->st, key, max, manifest_bytes, f, NULL);
    if (r == 0)
      m = manifest_reader_finish (f->r);
    manifest_reader_free (f->r);
    if (m)
      return m;
    if (r == -1) {
      if (errno == ENOENT)
        err_set (ENOENT, f->summary ? "snapshot %s of export %s has no "
                 "summary (no %s)" : "snapshot %s of export %s does not "
                 "exist (no %s)", f->snapshot_id, f->export_id, key);
      return NULL;
    }
    if (t == tries || !fetch_again (env, key, t))
      return NULL;
  }
}

struct manifest *
remote_fetch_manifest (struct volume_env *env, const char *export_id,
                       const char *snapshot_id, uint64_t chunks)
{
  CLEANUP_FREE char *key = key_manifest (env->root, export_id, snapshot_id);
  struct manifest_fetch f = { .export_id = export_id,
                              .snapshot_id = snapshot_id };
  uint64_t max_chunks = IMAGE_SIZE_MAX / CHUNK_SIZE_MIN;

  if (key == NULL)
    return NULL;
  return fetch_streamed (env, key, &f, manifest_max_size (chunks ? chunks
                                                          : max_chunks),
                         REMOTE_FETCH_TRIES);
}

struct manifest *
remote_fetch_summary (struct volume_env *env, const char *export_id,
                      const char *snapshot_id)
{
  CLEANUP_FREE char *key = key_summary (env->root, export_id, snapshot_id);
  struct manifest_fetch f = { .export_id = export_id,
                              .snapshot_id = snapshot_id, .summary = true };

  if (key == NULL)
    return NULL;
  /* Once: the caller reads the manifest instead of a bad summary. */
  return fetch_streamed (env, key, &f,
                         manifest_max_size (IMAGE_SIZE_MAX / CHUNK_SIZE_MIN),
                         1);
}

struct manifest *
remote_fetch_current (struct volume_env *env, const struct volume_head *head)
{
  struct manifest *m;

  m = remote_fetch_manifest (env, head->export_id, head->snapshot_id,
                             chunk_count (head->image_size, head->chunk_size));
  if (m == NULL)
    return NULL;
  if (m->image_size != head->image_size || m->chunk_size != head->chunk_size ||
      m->generation != head->generation) {
    err_set (EBADMSG, "export %s: volume.json (generation %ju, %ju bytes, "
             "%u-byte chunks) disagrees with its snapshot %s (generation "
             "%ju, %ju bytes, %u-byte chunks)", head->export_id,
             (uintmax_t) head->generation, (uintmax_t) head->image_size,
             head->chunk_size, head->snapshot_id, (uintmax_t) m->generation,
             (uintmax_t) m->image_size, m->chunk_size);
    manifest_free (m);
    return NULL;
  }
  return m;
}

static bool
head_equal (const struct volume_head *a, const struct volume_head *b)
{
  return strcmp (a->export_id, b->export_id) == 0 &&
    a->image_size == b->image_size && a->chunk_size == b->chunk_size &&
    a->generation == b->generation &&
    strcmp (a->snapshot_id, b->snapshot_id) == 0 &&
    strcmp (a->updated, b->updated) == 0;
}

void
remote_put_refs (struct volume_env *env, const struct volume_head *head)
{
  CLEANUP_FREE char *refs = key_refs_current (env->root, head->export_id);
  CLEANUP_FREE char *json = volume_format (head);

  if (refs == NULL || json == NULL ||
      store_put (env->st, refs, json, strlen (json), STORE_PUT_ANY, NULL,
                 NULL) == -1)
    log_warn ("%s: refs/current.json is stale until the next head move: %s",
              head->export_id, err_msg ());
}

void
remote_check_refs (struct volume_env *env, const struct volume_head *head,
                   bool repair)
{
  CLEANUP_FREE char *refs = key_refs_current (env->root, head->export_id);
  struct volume_head copy;
  const char *why = NULL;

  if (refs == NULL)
    return;
  if (fetch_head_key (env, refs, head->export_id, &copy, NULL) == -1)
    why = err_msg ();
  else if (!head_equal (&copy, head))
    why = "it names another head";
  if (why == NULL)
    return;
  if (!repair) {
    log_warn ("%s: %s disagrees with volume.json (%s); volume.json is the "
              "head", head->export_id, refs, why);
    return;
  }
  log_warn ("%s: %s disagrees with volume.json (%s): rewritten from "
            "volume.json, the head", head->export_id, refs, why);
  remote_put_refs (env, head);
}

int
remote_put_new_head (struct volume_env *env, const struct volume_head *head)
{
  CLEANUP_FREE char *key = key_volume (env->root, head->export_id);
  CLEANUP_FREE char *json = volume_format (head);
  int r;

  if (key == NULL || json == NULL)
    return err_set (ENOMEM, "create %s: out of memory", head->export_id);
  r = store_put (env->st, key, json, strlen (json), STORE_PUT_IF_ABSENT,
                 NULL, NULL);
  if (r == -1 && errno == ENOTSUP) {
    /* No conditional puts (stock Swift): check, then put.  Two creates
     * racing on such a store can both succeed; the second one wins.
     */
    struct store_obj obj;
    if (store_head (env->st, key, &obj) == 0)
      r = err_set (ESTALE, "exists");
    else if (errno == ENOENT)
      r = store_put (env->st, key, json, strlen (json), STORE_PUT_ANY,
                     NULL, NULL);
  }
  if (r == -1 && errno == ESTALE) {
    /* A put whose reply was lost makes its retry fail against itself:
     * the head we find may be the one we wrote.
     */
    struct volume_head cur;
    if (remote_fetch_head (env, head->export_id, &cur, NULL) == 0 &&
        head_equal (&cur, head))
      return 0;
    return err_set (EEXIST, "export %s already exists", head->export_id);
  }
  return r;
}
