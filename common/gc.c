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
 * gc looks at the snapshots folder only (E/snapshots/): anything there
 * that is neither a manifest nor a blob piece is not lazyvol's, and is
 * counted and logged, never deleted.  The owner is checked at the start
 * and again before the first delete, as the scan may outlast the lease.
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
  struct volume *v;
  size_t plen;                  /* length of "<root>/<E>/snapshots/" */
  struct gc_snapshot *snaps;    /* in listing (id) order */
  size_t nsnaps;
  struct gc_report *r;
};

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

/* store_list callback over "<root>/<E>/snapshots/": sort each key into
 * its snapshot's folder, or count it as unexpected.
 */
static int
list_key (void *opaque, const char *key, uint64_t size, bool is_prefix)
{
  struct gc_listing *l = opaque;
  const char *rest = key + l->plen, *name = rest + SNAPSHOT_ID_LEN + 1;
  char id[SNAPSHOT_ID_LEN + 1];
  CLEANUP_FREE char *rel = NULL;
  struct gc_snapshot *s;

  if (strlen (rest) <= SNAPSHOT_ID_LEN + 1 || rest[SNAPSHOT_ID_LEN] != '/')
    goto unexpected;
  memcpy (id, rest, SNAPSHOT_ID_LEN);
  id[SNAPSHOT_ID_LEN] = '\0';
  if (!id_snapshot_valid (id))
    goto unexpected;
  if ((s = snapshot_of (l, id)) == NULL)
    return -1;
  if (strcmp (name, PUBLISH_MANIFEST_NAME) == 0) {
    s->manifest = true;
    return 0;
  }
  if (strcmp (name, PUBLISH_SUMMARY_NAME) == 0) {
    s->summary = true;
    s->summary_size = size;
    return 0;
  }
  rel = str_printf ("%s/snapshots/%s", l->v->export_id, rest);
  if (rel == NULL)
    return -1;
  if (key_blob_is_own (rel, l->v->export_id, id))
    return add_blob (s, rel, size);
 unexpected:
  log_warn ("%s: gc: %s is not an object lazyvol writes; left as it is",
            l->v->name, key);
  l->r->unexpected++;
  return 0;
}

/* The blobs of L's snapshots with no manifest that gc may take, into
 * SET: not the journal's snapshot BUSY, not younger than GRACE_S.
 */
static int
candidates (struct gc_listing *l, const char *busy, uint64_t grace_s,
            struct publish_blobs *set)
{
  uint64_t now_ms = time_real_ms ();
  uint64_t grace_ms = grace_s > UINT64_MAX / 1000 ? UINT64_MAX
    : grace_s * 1000;

  for (size_t i = 0; i < l->nsnaps; i++) {
    struct gc_snapshot *s = &l->snaps[i];

    size_t n = s->nblobs + s->summary;

    if (s->manifest || n == 0)
      continue;
    if (strcmp (s->id, busy) == 0) {
      l->r->busy += n;
      continue;
    }
    /* An id from the future (a clock set wrong) is young too. */
    if (id_snapshot_ms (s->id) > now_ms ||
        now_ms - id_snapshot_ms (s->id) < grace_ms) {
      l->r->young += n;
      continue;
    }
    /* A summary names nothing anybody reads: without its manifest it is
     * garbage, whoever names its blobs.
     */
    s->take_summary = s->summary;
    for (size_t b = 0; b < s->nblobs; b++)
      if (publish_blobs_add (set, l->v->env, s->blobs[b]) == -1)
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
  if (store_delete (l->v->env->st, key) == -1) {
    log_warn ("%s: gc: %s", l->v->name, err_msg ());
    return -1;
  }
  o->deleted = true;
  log_info ("%s: gc: deleted %s (%" PRIu64 " bytes), which nothing names",
            l->v->name, rel, size);
  return 0;
}

/* Report the unused blobs of SET and the summaries without a manifest,
 * and delete them if DELETE.
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
    if (set->used[i])
      continue;
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
                      l->v->export_id, s->id);
    key = rel ? key_join (l->v->env->root, rel) : NULL;
    if (key == NULL) {
      free (rel);
      return err_set (ENOMEM, "gc: out of memory");
    }
    if (take (l, rel, key, s->summary_size, delete) == -1)
      ret = -1;
  }
  if (ret == -1)
    err_set (EIO, "some deletes failed (see the log)");
  return ret;
}

int
gc_run (struct volume *v, bool delete, uint64_t grace_s, struct gc_report *r)
{
  CLEANUP_FREE char *prefix = key_snapshots_prefix (v->env->root,
                                                    v->export_id);
  struct gc_listing l = { .v = v, .r = r };
  struct publish_blobs set = { 0 };
  char busy[SNAPSHOT_ID_LEN + 1] = "";
  int ret = -1;

  assert (volume_current_op (v) == VOLUME_GC ||
          (volume_current_op (v) == VOLUME_FSCK && !delete));
  memset (r, 0, sizeof *r);
  if (prefix == NULL)
    return err_set (ENOMEM, "gc: out of memory");
  l.plen = strlen (prefix);
  if (volume_check_owner (v) == -1 ||
      journal_pending (v->cache_dir, v->export_id, busy) == -1 ||
      store_list (v->env->st, prefix, NULL, list_key, &l) != 0 ||
      candidates (&l, busy, grace_s, &set) == -1 ||
      refs_blobs_used (v->env, &set) == -1 ||
      (delete && volume_check_owner (v) == -1))
    goto out;
  ret = collect (&l, &set, delete);
 out:
  if (ret == -1)
    err_prefix ("gc %s", v->name);
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

void
gc_report_free (struct gc_report *r)
{
  for (size_t i = 0; i < r->n; i++)
    free (r->objects[i].key);
  free (r->objects);
  memset (r, 0, sizeof *r);
}
