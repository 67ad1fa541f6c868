/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: references between snapshots (see refs.h, and
 * lazyvol-format(5), REFERENCES).
 *
 * A delete (gc, and the clean-up of a publish that did not land, too)
 * removes a piece of the blob snapshot X of export E wrote only if no
 * snapshot names it.  Reading every manifest under the root to know
 * costs every snapshot of every export; but only two kinds of snapshot
 * can name X's pieces:
 *
 *  (a) snapshots of E made after X.  A delta names its own blob and the
 *      blobs its parent's manifest names, a compact only its own base,
 *      and a snapshot's id sorts after its parent's (util.h,
 *      id_snapshot_new_after): they are the snapshots listed under
 *      R/E/snapshots/ with an id greater than X's -- and any manifest
 *      of a publish that died, which only costs a read.
 *  (b) snapshots of the exports F that have a marker R/.refs/E/X/F.  A
 *      manifest comes to name another export's blob only at a clone,
 *      which writes, before its manifest, one marker for each distinct
 *      writer E@X of the blobs it names: keyed by the blob's writer, not
 *      by the snapshot cloned, as a clone of a clone names the first
 *      owner's blobs.  Every later snapshot of F may inherit them.
 *
 * A reference that (a) does not cover and is not a clone's -- to a blob
 * of a later snapshot of the same export, which only a lazyvol from
 * before ordered ids could write, its clock set back -- needs a marker
 * too (refs_covered says which need one), to itself: the rule is that
 * every reference (a) does not cover has its marker.
 *
 * The scan lists R/E/snapshots/ and reads the candidates of (a), oldest
 * first (the snapshot after X is the likeliest user); then, if a piece
 * is still unnamed, lists R/.refs/E/X/ for every X of the set, and the
 * snapshots of each export the markers name, and reads them.  In that
 * order: (a) is listed before the markers (snapshots.c says why).  A
 * candidate's blobs are read from its summary, or its manifest if it has
 * none (written before summaries) or one that does not read; a manifest
 * that does not parse names everything; a store failure stops the scan,
 * which then cannot tell (the caller deletes nothing).  Reading stops as
 * soon as every piece of the set is named.  A candidate gone by the time
 * it is read (a delete of it ran) makes the scan start over, as a clone
 * of it may have been listed too late; after SCAN_TRIES scans the caller
 * cannot tell.  A summary is written by the owner beside its manifest,
 * after it, and says the same blobs (fsck checks that it does): one that
 * lied could have a blob deleted, but whoever can write a summary into
 * the bucket can delete the blob itself.
 *
 * Markers are never removed: one left after F stopped naming X's blobs
 * (F compacted, or was deleted) only costs a delete of X a listing of
 * F's snapshots and reads of their summaries; fsck reports it.
 *
 * Old roots.  A lazyvol from before markers made clones without them.
 * R/.refs/index.json says that every reference that needs a marker has
 * one.  Without it the scan reads every snapshot of every export (its
 * summary), writes the markers missing for what it read, then the index
 * -- not if a manifest did not parse, as what it names is unknown.  The
 * root in which this lazyvol creates the first export is indexed at
 * once.  Every host sharing a root must write markers before any
 * snapshot is deleted there (lazyvol-format(5), COMPATIBILITY).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "refs.h"
#include "volume-impl.h"

/* Scans when candidates keep vanishing under one (deletes running). */
#define SCAN_TRIES 4

bool
refs_covered (const char *user, const char *user_snapshot,
              const char *writer, const char *snapshot)
{
  return strcmp (user, writer) == 0 && strcmp (snapshot, user_snapshot) <= 0;
}

bool
ref_list_has (const struct ref_list *l, const struct ref *r)
{
  for (size_t i = 0; i < l->n; i++)
    if (strcmp (l->r[i].writer, r->writer) == 0 &&
        strcmp (l->r[i].snapshot, r->snapshot) == 0 &&
        strcmp (l->r[i].user, r->user) == 0)
      return true;
  return false;
}

/* Append R to L.  0 or -1 (ENOMEM). */
static int
ref_list_push (struct ref_list *l, const struct ref *r)
{
  struct ref *a = reallocarray (l->r, l->n + 1, sizeof *a);

  if (a == NULL)
    return err_set (ENOMEM, "references: out of memory");
  l->r = a;
  l->r[l->n++] = *r;
  return 0;
}

int
ref_list_add (struct ref_list *l, const struct ref *r)
{
  return ref_list_has (l, r) ? 0 : ref_list_push (l, r);
}

void
ref_list_free (struct ref_list *l)
{
  free (l->r);
  memset (l, 0, sizeof *l);
}

int
refs_needed (const struct manifest *m, struct ref_list *l)
{
  struct ref r;

  snprintf (r.user, sizeof r.user, "%s", m->export_id);
  for (size_t i = 0; i < m->nblobs; i++)
    if (key_blob_writer (m->blobs[i].key, r.writer, r.snapshot) &&
        !refs_covered (m->export_id, m->snapshot_id, r.writer, r.snapshot) &&
        ref_list_add (l, &r) == -1)
      return -1;
  return 0;
}

/* What a listing of markers collects. */
struct marker_listing {
  size_t plen;                  /* of the prefix: "<root>/.refs/" */
  struct ref_list *l;
};

/* store_list callback under "<root>/.refs/": keep the markers (each
 * key is listed once).
 */
static int
collect_marker (void *opaque, const char *key, uint64_t size, bool is_prefix)
{
  struct marker_listing *ml = opaque;
  struct ref r;

  if (!key_ref_parse (key + ml->plen, r.writer, r.snapshot, r.user))
    return 0;
  return ref_list_push (ml->l, &r);
}

int
refs_list (struct volume_env *env, struct ref_list *l)
{
  CLEANUP_FREE char *prefix = key_refs_prefix (env->root, NULL, NULL);
  struct marker_listing ml = { .l = l };

  if (prefix == NULL)
    return -1;
  ml.plen = strlen (prefix);
  if (store_list (env->st, prefix, NULL, collect_marker, &ml) != 0)
    return err_prefix ("list the reference markers");
  return 0;
}

int
refs_put (struct volume_env *env, const struct ref *r)
{
  CLEANUP_FREE char *key = key_ref (env->root, r->writer, r->snapshot,
                                    r->user);
  CLEANUP_FREE char *json = NULL;
  char now[32];

  time_now_iso8601 (now);
  if (key == NULL || (json = ref_format (r->user, now)) == NULL)
    return err_set (ENOMEM, "reference marker: out of memory");
  return store_put (env->st, key, json, strlen (json), STORE_PUT_ANY, NULL,
                    NULL);
}

int
refs_mark (struct volume_env *env, const struct manifest *m)
{
  struct ref_list l = { 0 };
  int r = refs_needed (m, &l);

  for (size_t i = 0; r == 0 && i < l.n; i++)
    r = refs_put (env, &l.r[i]);
  ref_list_free (&l);
  return r;
}

/* A snapshot that may name pieces of the set. */
struct candidate {
  char export_id[EXPORT_ID_MAX + 1];
  char id[SNAPSHOT_ID_LEN + 1];
  bool summary;                 /* listed with a summary.json */
};

/* The state of one refs_blobs_used. */
struct scan {
  struct volume_env *env;
  struct publish_blobs *set;
  size_t unused;                /* pieces of the set nothing names yet */
  char writer[EXPORT_ID_MAX + 1];       /* the export that wrote them */
  char (*xs)[SNAPSHOT_ID_LEN + 1];      /* its snapshots that did, sorted */
  size_t nx;
  bool vanished;                /* a listed candidate was gone when read */
  /* Indexing an old root: every snapshot is read, and the markers what
   * it names needs are collected.
   */
  bool indexing;
  bool unknown;                 /* a manifest did not parse */
  struct ref_list need;
  /* The listing of candidates. */
  size_t plen;                  /* of "<root>/" */
  const char *only;             /* only this export's snapshots (or all) */
  const char *after;            /* only those after this one (or all) */
  struct candidate *c;
  size_t n;
  /* The exports the markers of the set's snapshots name. */
  char (*users)[EXPORT_ID_MAX + 1];
  size_t nusers;
  size_t users_plen;            /* of the listing's "<root>/.refs/E/X/" */
};

/* store_list callback: keep the snapshots (their manifests) that S's
 * filters let through, and note which have a summary.
 */
static int
collect_candidate (void *opaque, const char *key, uint64_t size,
                   bool is_prefix)
{
  struct scan *s = opaque;
  char export_id[EXPORT_ID_MAX + 1], sid[SNAPSHOT_ID_LEN + 1];
  struct candidate *c;
  const char *name;

  if (!key_snapshot_parse (key + s->plen, export_id, sid, &name) ||
      (s->only && strcmp (export_id, s->only) != 0) ||
      (s->after && strcmp (sid, s->after) <= 0))
    return 0;
  /* Keys are listed in order: a summary after its manifest. */
  if (strcmp (name, PUBLISH_SUMMARY_NAME) == 0) {
    c = s->n ? &s->c[s->n - 1] : NULL;
    if (c && strcmp (c->export_id, export_id) == 0 &&
        strcmp (c->id, sid) == 0)
      c->summary = true;
    return 0;
  }
  if (strcmp (name, PUBLISH_MANIFEST_NAME) != 0)
    return 0;
  c = reallocarray (s->c, s->n + 1, sizeof *c);
  if (c == NULL)
    return err_set (ENOMEM, "references: out of memory");
  s->c = c;
  c = &s->c[s->n++];
  memcpy (c->export_id, export_id, sizeof c->export_id);
  memcpy (c->id, sid, sizeof c->id);
  c->summary = false;
  return 0;
}

/* List the candidates under PREFIX: the snapshots of export ONLY (NULL:
 * of every export) after snapshot AFTER (NULL: all of them).  0 or -1.
 */
static int
list_candidates (struct scan *s, const char *prefix, const char *only,
                 const char *after)
{
  s->n = 0;
  s->only = only;
  s->after = after;
  if (store_list (s->env->st, prefix, NULL, collect_candidate, s) != 0)
    return err_prefix ("list the snapshots that may name %s",
                       s->set->rels[0]);
  return 0;
}

/* The candidates among the snapshots of export ONLY after AFTER. */
static int
list_export (struct scan *s, const char *only, const char *after)
{
  CLEANUP_FREE char *prefix = key_snapshots_prefix (s->env->root, only);

  return prefix ? list_candidates (s, prefix, only, after) : -1;
}

/* Read candidate C's blobs and mark the pieces of the set it names. */
static int
read_candidate (struct scan *s, const struct candidate *c)
{
  struct publish_blobs *set = s->set;
  struct manifest *m = publish_read_summary (s->env, c->export_id, c->id,
                                             c->summary);
  int r;

  if (m == NULL && err_errno () == ENOENT) {
    /* Deleted since the listing.  A clone of it made meanwhile wrote its
     * markers and manifest before the removal (snapshots.c), maybe after
     * the listing: the scan starts over.
     */
    s->vanished = true;
    return 0;
  }
  if (m == NULL && err_errno () == EBADMSG) {
    /* It will not read better later: keep what it may name. */
    log_warn ("%s; keeping the blob it may use", err_msg ());
    for (size_t i = 0; i < set->n; i++)
      set->used[i] = true;
    s->unused = 0;
    s->unknown = true;
    return 0;
  }
  /* The store failed: nobody knows yet.  Counting it as a user would
   * orphan the pieces for good, since nothing looks again; the caller
   * keeps them and says why (a journal kept retries at the next start).
   */
  if (m == NULL)
    return err_prefix ("cannot tell whether snapshot %s of %s names %s%s",
                       c->id, c->export_id, set->rels[0],
                       set->n > 1 ? " (or the others)" : "");
  for (size_t i = 0; i < m->nblobs; i++)
    for (size_t j = 0; j < set->n; j++)
      if (!set->used[j] && strcmp (m->blobs[i].key, set->rels[j]) == 0) {
        set->used[j] = true;
        s->unused--;
      }
  r = s->indexing ? refs_needed (m, &s->need) : 0;
  manifest_free (m);
  return r;
}

/* Read the candidates listed, until every piece is named (all of them
 * when indexing).
 */
static int
read_candidates (struct scan *s)
{
  for (size_t i = 0; i < s->n && (s->indexing || s->unused > 0); i++)
    if (read_candidate (s, &s->c[i]) == -1)
      return -1;
  return 0;
}

/* store_list callback under "<root>/.refs/E/X/": keep each export
 * named, once.
 */
static int
collect_user (void *opaque, const char *key, uint64_t size, bool is_prefix)
{
  struct scan *s = opaque;
  const char *user = key + s->users_plen;
  void *p;

  if (!id_export_valid (user))
    return 0;
  for (size_t i = 0; i < s->nusers; i++)
    if (strcmp (s->users[i], user) == 0)
      return 0;
  p = reallocarray (s->users, s->nusers + 1, sizeof *s->users);
  if (p == NULL)
    return err_set (ENOMEM, "references: out of memory");
  s->users = p;
  snprintf (s->users[s->nusers++], sizeof *s->users, "%s", user);
  return 0;
}

/* Rule (b): the snapshots of the exports that have a marker of one of
 * the set's snapshots.
 */
static int
scan_users (struct scan *s)
{
  s->nusers = 0;
  for (size_t i = 0; i < s->nx; i++) {
    CLEANUP_FREE char *prefix = key_refs_prefix (s->env->root, s->writer,
                                                 s->xs[i]);

    if (prefix == NULL)
      return -1;
    s->users_plen = strlen (prefix);
    if (store_list (s->env->st, prefix, NULL, collect_user, s) != 0)
      return err_prefix ("list the exports that may name %s",
                         s->set->rels[0]);
  }
  for (size_t i = 0; i < s->nusers && s->unused > 0; i++)
    if (list_export (s, s->users[i], NULL) == -1 || read_candidates (s) == -1)
      return -1;
  return 0;
}

/* Scan again after a candidate vanished, unless that was the last try
 * (TRIES of them so far).  0 to go on, or -1.
 */
static int
again (struct scan *s, unsigned tries)
{
  if (tries < SCAN_TRIES)
    return 0;
  return err_set (EAGAIN, "cannot tell whether %s is used: snapshots were "
                  "deleted during %d scans", s->set->rels[0], SCAN_TRIES);
}

/* Rules (a) then (b), under an indexed root. */
static int
scan_refs (struct scan *s)
{
  for (unsigned tries = 1; ; tries++) {
    s->vanished = false;
    if (list_export (s, s->writer, s->xs[0]) == -1 ||
        read_candidates (s) == -1 ||
        (s->unused > 0 && scan_users (s) == -1))
      return -1;
    if (!s->vanished || s->unused == 0)
      return 0;
    if (again (s, tries) == -1)
      return -1;
  }
}

/* Write the markers the scan found missing, then the index (unless a
 * manifest did not parse, or a marker could not be written).  Failures
 * are logged: the next scan reads everything again.
 */
static void
write_index (struct scan *s)
{
  CLEANUP_FREE char *key = key_refs_index (s->env->root);
  CLEANUP_FREE char *json = NULL;
  struct ref_list have = { 0 };
  bool whole = !s->unknown;
  char now[32];

  if (refs_list (s->env, &have) == -1) {
    log_warn ("%s", err_msg ());
    return;
  }
  for (size_t i = 0; i < s->need.n; i++) {
    const struct ref *r = &s->need.r[i];

    if (ref_list_has (&have, r))
      continue;
    if (refs_put (s->env, r) == -1) {
      log_warn ("%s", err_msg ());
      whole = false;
    }
    else
      log_info ("reference marker written: %s names blobs of %s@%s",
                r->user, r->writer, r->snapshot);
  }
  ref_list_free (&have);
  time_now_iso8601 (now);
  if (!whole)
    log_warn ("the export root stays without a reference index: deletes "
              "go on reading every export's snapshots");
  else if (key == NULL || (json = refs_index_format (now)) == NULL ||
           store_put (s->env->st, key, json, strlen (json), STORE_PUT_ANY,
                      NULL, NULL) == -1)
    log_warn ("%s", err_msg ());
  else
    log_info ("the export root has a reference index now: deletes read "
              "only the snapshots that may name a blob");
}

/* Every snapshot of every export: under a root without an index (which
 * is written with the markers missing if INDEX).
 */
static int
scan_all (struct scan *s, bool index)
{
  CLEANUP_FREE char *prefix = s->env->root[0]
    ? str_printf ("%s/", s->env->root) : strdup ("");

  if (prefix == NULL)
    return err_set (ENOMEM, "out of memory");
  s->indexing = index;
  for (unsigned tries = 1; ; tries++) {
    s->vanished = false;
    if (list_candidates (s, prefix, NULL, NULL) == -1 ||
        read_candidates (s) == -1)
      return -1;
    if (!s->vanished || (!index && s->unused == 0))
      break;
    if (again (s, tries) == -1)
      return -1;
  }
  if (index)
    write_index (s);
  return 0;
}

/* Compare two snapshot ids (qsort). */
static int
compare_ids (const void *a, const void *b)
{
  return strcmp (a, b);
}

/* The export and the snapshots that wrote the pieces of S's set. */
static int
writers (struct scan *s)
{
  struct publish_blobs *set = s->set;
  char writer[EXPORT_ID_MAX + 1], x[SNAPSHOT_ID_LEN + 1];

  for (size_t i = 0; i < set->n; i++) {
    bool known = false;
    void *p;

    /* The rules are for the pieces of one export's snapshots. */
    if (!key_blob_writer (set->rels[i], writer, x) ||
        (i > 0 && strcmp (writer, s->writer) != 0))
      return err_set (EINVAL, "%s is not a blob of %s", set->rels[i],
                      i > 0 ? s->writer : "an export");
    memcpy (s->writer, writer, sizeof s->writer);
    for (size_t j = 0; j < s->nx && !known; j++)
      known = strcmp (s->xs[j], x) == 0;
    if (known)
      continue;
    if ((p = reallocarray (s->xs, s->nx + 1, sizeof *s->xs)) == NULL)
      return err_set (ENOMEM, "references: out of memory");
    s->xs = p;
    memcpy (s->xs[s->nx++], x, sizeof x);
  }
  qsort (s->xs, s->nx, sizeof *s->xs, compare_ids);
  return 0;
}

enum index_state { INDEX_ABSENT, INDEX_PRESENT, INDEX_UNREADABLE };

/* Has the root a reference index?  An index_state, or -1 (the store
 * failed).
 */
static int
index_state (struct volume_env *env)
{
  CLEANUP_FREE char *key = key_refs_index (env->root);
  CLEANUP_FREE char *json = NULL;
  size_t len;

  if (key == NULL)
    return -1;
  if (store_get (env->st, key, VOLUME_JSON_MAX, &json, &len, NULL) == -1) {
    if (err_errno () == ENOENT)
      return INDEX_ABSENT;
    if (err_errno () != EFBIG)
      return err_prefix ("cannot tell whether the export root has a "
                         "reference index");
  }
  if (json == NULL || refs_index_parse (json, len) == -1) {
    log_warn ("%s; reading every export's snapshots instead", err_msg ());
    return INDEX_UNREADABLE;
  }
  return INDEX_PRESENT;
}

int
refs_blobs_used (struct volume_env *env, struct publish_blobs *set)
{
  struct scan s = { .env = env, .set = set, .unused = set->n };
  int state, r = -1;

  for (size_t i = 0; i < set->n; i++)
    set->used[i] = false;
  if (set->n == 0)
    return 0;
  s.plen = env->root[0] ? strlen (env->root) + 1 : 0;
  if (writers (&s) == -1 || (state = index_state (env)) == -1)
    goto out;
  if (state == INDEX_PRESENT)
    r = scan_refs (&s);
  else {
    log_info ("no reference index under the export root: reading every "
              "export's snapshots to tell whether %s is used",
              set->rels[0]);
    r = scan_all (&s, state == INDEX_ABSENT);
  }
 out:
  free (s.xs);
  free (s.c);
  free (s.users);
  ref_list_free (&s.need);
  return r;
}

/* What refs_index_new_root's listing looks for. */
struct others {
  size_t plen;                  /* of "<root>/" */
  const char *export_id;
};

/* store_list callback over "<root>/" by folder: stop (1) at a folder
 * that is not EXPORT_ID's and could be an export's.
 */
static int
other_export (void *opaque, const char *key, uint64_t size, bool is_prefix)
{
  const struct others *o = opaque;
  const char *name = key + o->plen;
  size_t n = strlen (name);

  if (!is_prefix || name[0] == '.')
    return 0;
  return n != strlen (o->export_id) + 1 ||
    strncmp (name, o->export_id, n - 1) != 0;
}

void
refs_index_new_root (struct volume_env *env, const char *export_id)
{
  CLEANUP_FREE char *root = env->root[0] ? str_printf ("%s/", env->root)
    : strdup ("");
  CLEANUP_FREE char *key = key_refs_index (env->root);
  CLEANUP_FREE char *json = NULL;
  struct others o = { .export_id = export_id };
  struct store_obj obj;
  char now[32];
  int r;

  if (root == NULL || key == NULL) {
    log_warn ("%s", err_msg ());
    return;
  }
  if (store_head (env->st, key, &obj) == 0)
    return;
  if (err_errno () != ENOENT) {
    log_warn ("%s", err_msg ());
    return;
  }
  o.plen = strlen (root);
  r = store_list (env->st, root, "/", other_export, &o);
  if (r == 1)
    return;                     /* an older root: its first delete indexes */
  time_now_iso8601 (now);
  if (r != 0 || (json = refs_index_format (now)) == NULL ||
      store_put (env->st, key, json, strlen (json), STORE_PUT_ANY, NULL,
                 NULL) == -1)
    log_warn ("%s", err_msg ());
  else
    log_info ("%s is the first export under the export root: the root has "
              "a reference index", export_id);
}
