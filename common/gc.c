/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: garbage collection of an export's folder (see gc.h).
 *
 * What a publish leaves when it dies before its head moves is removed
 * by its journal (journal.c), and a delete removes what it can; gc finds
 * the rest: blobs (every piece) of snapshots that have no manifest any
 * more -- deleted while a clone used them, the clone gone since; or never
 * published, their journal lost with the host -- that no manifest under
 * the export root names; and the summaries of snapshots without a
 * manifest, which nothing reads.
 *
 * Only the owner writes into an export's folder, so gc runs in the
 * process that owns the export, claiming it as a long operation: no
 * publish of this export can start, and one that was interrupted is
 * named by the journal, whose snapshot is left alone.  Other hosts never
 * write here.  A snapshot's objects are considered only once its id --
 * a UUIDv7, whose first 48 bits are the time it was made -- is older
 * than the grace period, so that a clock set wrong, or a publish gc
 * cannot see, has a day to finish.  A blob stays if any snapshot under
 * the root names it: the scan is the one delete uses (refs.c: the later
 * snapshots of the export, and those of the exports its reference
 * markers name), where a manifest that cannot be parsed names everything
 * and a store failure stops everything.  A clone that names a blob of a
 * snapshot deleted while it was cloned does not exist (the rule in
 * snapshots.c).
 *
 * Uploads.  A multipart upload that was never completed is no object,
 * but the store keeps its parts (and S3 bills them) until it is aborted:
 * a publish's blob piece whose journal was lost with the host, or a
 * manifest being written when the process died (manifests are not
 * journaled).  gc lists the uploads under the snapshots folder and takes
 * those initiated longer than the grace period ago (by the store's
 * clock; the file store's is the last write of its temporary file),
 * except under the journal's snapshot: that publish may still finish or
 * be undone by its journal, which aborts its upload itself.  Aborting an
 * upload never touches an object, not even one of its key.
 *
 * gc looks at the snapshots folder only (E/snapshots/): anything there
 * that is neither a manifest, a summary nor a blob piece is not
 * lazyvol's, and is counted and logged, never deleted, nor is an upload
 * of such a key aborted.  The owner is checked at the start and again
 * before the first delete, as the scan may outlast the lease.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gc.h"
#include "journal.h"
#include "publish.h"
#include "refs.h"
#include "volume-impl.h"

/* One snapshot folder, as listed. */
struct gc_snapshot {
  char id[SNAPSHOT_ID_LEN + 1];
  bool manifest;
  bool summary;                 /* summary.json is there too */
  uint64_t summary_size;
  bool take_summary;            /* its summary is garbage */
  char **blobs;                 /* relative keys of its blob pieces */
  uint64_t *sizes;
  size_t nblobs;
};

struct gc_listing {
  struct volume_env *env;
  const char *export_id;
  size_t plen;                  /* length of "<root>/<E>/snapshots/" */
  struct gc_snapshot *snaps;    /* in listing (id) order */
  size_t nsnaps;
  struct gc_report *r;
  const char *busy;             /* the journal's snapshot, or "" */
  uint64_t now_ms, grace_ms;
};

/* What a key under the snapshots folder is. */
enum gc_kind { GC_STRANGER, GC_MANIFEST, GC_SUMMARY, GC_BLOB };

/* The folder of snapshot ID in L, added if new (ids come sorted). */
static struct gc_snapshot *
snapshot_of (struct gc_listing *l, const char *id)
{
  struct gc_snapshot *s;

  if (l->nsnaps && strcmp (l->snaps[l->nsnaps - 1].id, id) == 0)
    return &l->snaps[l->nsnaps - 1];
  s = reallocarray (l->snaps, l->nsnaps + 1, sizeof *s);
  if (s == NULL) {
    err_set (ENOMEM, "gc: out of memory");
    return NULL;
  }
  l->snaps = s;
  s = &l->snaps[l->nsnaps++];
  memset (s, 0, sizeof *s);
  memcpy (s->id, id, sizeof s->id);
  return s;
}

static int
add_blob (struct gc_snapshot *s, const char *rel, uint64_t size)
{
  char **blobs = reallocarray (s->blobs, s->nblobs + 1, sizeof *blobs);
  uint64_t *sizes = blobs ? reallocarray (s->sizes, s->nblobs + 1,
                                          sizeof *sizes) : NULL;

  if (blobs)
    s->blobs = blobs;
  if (sizes)
    s->sizes = sizes;
  if (sizes == NULL || (s->blobs[s->nblobs] = strdup (rel)) == NULL)
    return err_set (ENOMEM, "gc: out of memory");
  s->sizes[s->nblobs++] = size;
  return 0;
}

/* What KEY, listed under L's snapshots folder, names; for one of
 * lazyvol's objects, its snapshot's id into ID and its key relative to
 * the root into *REL (malloc'd).  -1 if out of memory.
 */
static int
classify (const struct gc_listing *l, const char *key,
          char id[SNAPSHOT_ID_LEN + 1], char **rel)
{
  const char *rest = key + l->plen, *name = rest + SNAPSHOT_ID_LEN + 1;
  enum gc_kind kind = GC_BLOB;

  if (strlen (rest) <= SNAPSHOT_ID_LEN + 1 || rest[SNAPSHOT_ID_LEN] != '/')
    return GC_STRANGER;
  memcpy (id, rest, SNAPSHOT_ID_LEN);
  id[SNAPSHOT_ID_LEN] = '\0';
  if (!id_snapshot_valid (id))
    return GC_STRANGER;
  if (strcmp (name, PUBLISH_MANIFEST_NAME) == 0)
    kind = GC_MANIFEST;
  else if (strcmp (name, PUBLISH_SUMMARY_NAME) == 0)
    kind = GC_SUMMARY;
  *rel = str_printf ("%s/snapshots/%s", l->export_id, rest);
  if (*rel == NULL)
    return -1;
  if (kind == GC_BLOB && !key_blob_is_own (*rel, l->export_id, id)) {
    free (*rel);
    *rel = NULL;
    return GC_STRANGER;
  }
  return kind;
}

/* store_list callback over "<root>/<E>/snapshots/": sort each key into
 * its snapshot's folder, or count it as unexpected.
 */
static int
list_key (void *opaque, const char *key, uint64_t size, bool is_prefix)
{
  struct gc_listing *l = opaque;
  char id[SNAPSHOT_ID_LEN + 1];
  CLEANUP_FREE char *rel = NULL;
  int kind = classify (l, key, id, &rel);
  struct gc_snapshot *s;

  if (kind == -1)
    return -1;
  if (kind == GC_STRANGER) {
    log_warn ("%s: gc: %s is not an object lazyvol writes; left as it is",
              l->export_id, key);
    l->r->unexpected++;
    return 0;
  }
  if ((s = snapshot_of (l, id)) == NULL)
    return -1;
  if (kind == GC_BLOB)
    return add_blob (s, rel, size);
  if (kind == GC_MANIFEST)
    s->manifest = true;
  else {
    s->summary = true;
    s->summary_size = size;
  }
  return 0;
}

/* Is time MS (a snapshot id's, or an upload's start) inside the grace
 * period?  A time from the future (a clock set wrong) is too.
 */
static bool
young (const struct gc_listing *l, uint64_t ms)
{
  return ms > l->now_ms || l->now_ms - ms < l->grace_ms;
}

/* store_list_uploads callback over "<root>/<E>/snapshots/": an upload of
 * one of lazyvol's objects, not the journal's and older than the grace
 * period, joins the report; the others are counted.
 */
static int
list_upload (void *opaque, const char *key, const char *id,
             uint64_t initiated_ms)
{
  struct gc_listing *l = opaque;
  struct gc_report *r = l->r;
  char sid[SNAPSHOT_ID_LEN + 1];
  CLEANUP_FREE char *rel = NULL;
  int kind = classify (l, key, sid, &rel);
  struct gc_upload *u;

  if (kind == -1)
    return -1;
  if (kind == GC_STRANGER) {
    log_warn ("%s: gc: the upload %s of %s is not of an object lazyvol "
              "writes; left as it is", l->export_id, id, key);
    r->unexpected++;
    return 0;
  }
  if (strcmp (sid, l->busy) == 0) {
    r->busy++;
    return 0;
  }
  if (young (l, initiated_ms)) {
    r->young++;
    return 0;
  }
  u = reallocarray (r->uploads, r->nuploads + 1, sizeof *u);
  if (u == NULL)
    return err_set (ENOMEM, "gc: out of memory");
  r->uploads = u;
  u = &r->uploads[r->nuploads];
  *u = (struct gc_upload) { .key = rel, .id = strdup (id),
                            .initiated_ms = initiated_ms };
  if (u->id == NULL)
    return err_set (ENOMEM, "gc: out of memory");
  rel = NULL;
  r->nuploads++;
  return 0;
}

/* Uploads in key order, a key's by id. */
static int
compare_uploads (const void *a, const void *b)
{
  const struct gc_upload *x = a, *y = b;
  int c = strcmp (x->key, y->key);

  return c ? c : strcmp (x->id, y->id);
}

/* The blobs of L's snapshots with no manifest that gc may take, into
 * SET: not the journal's snapshot, not inside the grace period.
 */
static int
candidates (struct gc_listing *l, struct publish_blobs *set)
{
  for (size_t i = 0; i < l->nsnaps; i++) {
    struct gc_snapshot *s = &l->snaps[i];
    size_t n = s->nblobs + s->summary;

    if (s->manifest || n == 0)
      continue;
    if (strcmp (s->id, l->busy) == 0) {
      l->r->busy += n;
      continue;
    }
    if (young (l, id_snapshot_ms (s->id))) {
      l->r->young += n;
      continue;
    }
    /* A summary names nothing anybody reads: without its manifest it is
     * garbage, whoever names its blobs.
     */
    s->take_summary = s->summary;
    for (size_t b = 0; b < s->nblobs; b++)
      if (publish_blobs_add (set, l->env, s->blobs[b]) == -1)
        return -1;
  }
  return 0;
}

/* The size of blob REL as listed. */
static uint64_t
listed_size (const struct gc_listing *l, const char *rel)
{
  for (size_t i = 0; i < l->nsnaps; i++)
    for (size_t b = 0; b < l->snaps[i].nblobs; b++)
      if (strcmp (l->snaps[i].blobs[b], rel) == 0)
        return l->snaps[i].sizes[b];
  return 0;
}

/* Report object REL (full key KEY) of SIZE bytes, and delete it if
 * DELETE.  Takes REL.  0 or -1 (a failed delete, logged).
 */
static int
take (struct gc_listing *l, char *rel, const char *key, uint64_t size,
      bool delete)
{
  struct gc_object *o = &l->r->objects[l->r->n++];

  o->key = rel;
  o->size = size;
  l->r->bytes += size;
  if (!delete)
    return 0;
  if (store_delete (l->env->st, key) == -1) {
    log_warn ("%s: gc: %s", l->export_id, err_msg ());
    return -1;
  }
  o->deleted = true;
  log_info ("%s: gc: deleted %s (%" PRIu64 " bytes), which nothing names",
            l->export_id, rel, size);
  return 0;
}

/* Abort the uploads of L's report.  0 or -1 (a failed abort, logged). */
static int
abort_uploads (struct gc_listing *l)
{
  int ret = 0;

  for (size_t i = 0; i < l->r->nuploads; i++) {
    struct gc_upload *u = &l->r->uploads[i];
    CLEANUP_FREE char *key = key_join (l->env->root, u->key);

    if (key == NULL)
      return err_set (ENOMEM, "gc: out of memory");
    if (store_upload_abort_id (l->env->st, key, u->id) == -1) {
      log_warn ("%s: gc: %s", l->export_id, err_msg ());
      ret = -1;
      continue;
    }
    u->deleted = true;
    log_info ("%s: gc: aborted the upload %s of %s, begun %" PRIu64
              " s ago and never completed", l->export_id, u->id, u->key,
              (l->now_ms - u->initiated_ms) / 1000);
  }
  return ret;
}

/* Report the unused blobs of SET and the summaries without a manifest,
 * and delete them and abort the uploads if DELETE.
 */
static int
collect (struct gc_listing *l, struct publish_blobs *set, bool delete)
{
  struct gc_report *r = l->r;
  size_t max = set->n;
  int ret = 0;

  for (size_t i = 0; i < l->nsnaps; i++)
    max += l->snaps[i].take_summary;
  r->objects = calloc (max ? max : 1, sizeof *r->objects);
  if (r->objects == NULL)
    return err_set (ENOMEM, "gc: out of memory");
  for (size_t i = 0; i < set->n; i++) {
    if (set->used[i]) {
      r->used++;
      continue;
    }
    if (take (l, set->rels[i], set->keys[i],
              listed_size (l, set->rels[i]), delete) == -1)
      ret = -1;
    set->rels[i] = NULL;
  }
  for (size_t i = 0; i < l->nsnaps; i++) {
    struct gc_snapshot *s = &l->snaps[i];
    CLEANUP_FREE char *key = NULL;
    char *rel;

    if (!s->take_summary)
      continue;
    rel = str_printf ("%s/snapshots/%s/" PUBLISH_SUMMARY_NAME,
                      l->export_id, s->id);
    key = rel ? key_join (l->env->root, rel) : NULL;
    if (key == NULL) {
      free (rel);
      return err_set (ENOMEM, "gc: out of memory");
    }
    if (take (l, rel, key, s->summary_size, delete) == -1)
      ret = -1;
  }
  if (delete && abort_uploads (l) == -1)
    ret = -1;
  if (ret == -1)
    err_set (EIO, "some deletes or aborts failed (see the log)");
  return ret;
}

/* List the uploads under PREFIX into L's report.  A store that cannot
 * list them (501) leaves them out, and says so in the log.
 */
static int
list_uploads (struct gc_listing *l, const char *prefix)
{
  if (store_list_uploads (l->env->st, prefix, list_upload, l) == 0) {
    if (l->r->nuploads > 1)
      qsort (l->r->uploads, l->r->nuploads, sizeof *l->r->uploads,
             compare_uploads);
    return 0;
  }
  if (err_errno () != ENOTSUP)
    return -1;
  log_warn ("%s: gc: %s; unfinished uploads are not collected",
            l->export_id, err_msg ());
  return 0;
}

/* gc_run and gc_deleted: collect EXPORT_ID's folder, leaving BUSY's
 * snapshot alone; V, if not NULL, must own the export at the start and
 * before the first delete.
 */
static int
gc_folder (struct volume_env *env, const char *export_id, struct volume *v,
           const char *busy, bool delete, uint64_t grace_s,
           struct gc_report *r)
{
  CLEANUP_FREE char *prefix = key_snapshots_prefix (env->root, export_id);
  struct gc_listing l = {
    .env = env, .export_id = export_id, .r = r, .busy = busy,
    .now_ms = time_real_ms (),
    .grace_ms = grace_s > UINT64_MAX / 1000 ? UINT64_MAX : grace_s * 1000,
  };
  struct publish_blobs set = { 0 };
  int ret = -1;

  memset (r, 0, sizeof *r);
  if (prefix == NULL)
    return err_set (ENOMEM, "gc: out of memory");
  l.plen = strlen (prefix);
  if ((v && volume_check_owner (v) == -1) ||
      store_list (env->st, prefix, NULL, list_key, &l) != 0 ||
      list_uploads (&l, prefix) == -1 ||
      candidates (&l, &set) == -1 ||
      refs_blobs_used (env, &set) == -1 ||
      (v && delete && volume_check_owner (v) == -1))
    goto out;
  ret = collect (&l, &set, delete);
 out:
  if (ret == -1)
    err_prefix ("gc %s", export_id);
  for (size_t i = 0; i < l.nsnaps; i++) {
    for (size_t b = 0; b < l.snaps[i].nblobs; b++)
      free (l.snaps[i].blobs[b]);
    free (l.snaps[i].blobs);
    free (l.snaps[i].sizes);
  }
  free (l.snaps);
  publish_blobs_free (&set);
  return ret;
}

int
gc_run (struct volume *v, bool delete, uint64_t grace_s, struct gc_report *r)
{
  char busy[SNAPSHOT_ID_LEN + 1] = "";

  assert (volume_current_op (v) == VOLUME_GC ||
          (volume_current_op (v) == VOLUME_FSCK && !delete));
  memset (r, 0, sizeof *r);
  if (journal_pending (v->cache_dir, v->export_id, busy) == -1)
    return err_prefix ("gc %s", v->name);
  return gc_folder (v->env, v->export_id, v, busy, delete, grace_s, r);
}

int
gc_deleted (struct volume_env *env, const char *export_id,
            struct gc_report *r)
{
  return gc_folder (env, export_id, NULL, "", true, 0, r);
}

void
gc_report_free (struct gc_report *r)
{
  for (size_t i = 0; i < r->n; i++)
    free (r->objects[i].key);
  free (r->objects);
  for (size_t i = 0; i < r->nuploads; i++) {
    free (r->uploads[i].key);
    free (r->uploads[i].id);
  }
  free (r->uploads);
  memset (r, 0, sizeof *r);
}
