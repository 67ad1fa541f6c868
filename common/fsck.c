/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: fsck, the check (and repair) of an export's objects in the
 * store (see fsck.h).
 *
 * Beyond the manifests, a delete trusts two things (refs.c): that a
 * summary names the blobs its manifest names, and that every reference
 * a later snapshot of the same export does not cover has its marker.
 * lazyvol writes both, in the order that makes them true, but a store
 * can lose an object, a person can remove one, and an older lazyvol
 * writes neither.  fsck reads every manifest of the export, one at a
 * time (a manifest grows with the image), and the summary beside it,
 * which must say what manifest_summary_format would write
 * (manifest_summary_agrees); then it lists the markers under .refs/,
 * where those the manifests need (refs_needed) must be.  With repair, a
 * summary that is missing or wrong is written again from its manifest,
 * and a missing marker is written.  Both are the owner's to write: the
 * summaries are in the export's folder, and the markers of its own
 * references, in .refs/, are written by nobody else.  A manifest that
 * does not parse is reported and never repaired: what it said is lost
 * (the snapshot can be deleted).
 *
 * Reported too, but no problems: the markers that name the export and
 * that no manifest of it needs (stale: left by a compact or a delete,
 * they cost a delete a listing and are never removed), and the objects
 * of its folder that nothing names, as gc's dry run finds them.
 *
 * fsck runs like gc, in the process that owns the export, which it
 * claims as a long operation (VOLUME_FSCK): no publish runs meanwhile.
 * Its progress counts snapshots.  A snapshot deleted while fsck runs is
 * skipped if its manifest is gone when read; a summary rewritten just
 * before such a delete removes it is left without a manifest, which gc
 * takes.  The owner is checked at the start and before each repair.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fsck.h"
#include "publish.h"
#include "volume-impl.h"

/* Append snapshot SID to the manifests that do not parse. */
static int
add_bad (struct fsck_report *r, const char *sid)
{
  void *p = reallocarray (r->bad_manifests, r->nbad + 1,
                          sizeof *r->bad_manifests);

  if (p == NULL)
    return err_set (ENOMEM, "fsck: out of memory");
  r->bad_manifests = p;
  memcpy (r->bad_manifests[r->nbad++], sid, SNAPSHOT_ID_LEN + 1);
  return 0;
}

/* Append F to the summaries found wrong or missing. */
static int
add_summary (struct fsck_report *r, const struct fsck_summary *f)
{
  struct fsck_summary *p = reallocarray (r->summaries, r->nsummaries + 1,
                                         sizeof *p);

  if (p == NULL)
    return err_set (ENOMEM, "fsck: out of memory");
  r->summaries = p;
  r->summaries[r->nsummaries++] = *f;
  return 0;
}

/* Check snapshot SID of V: its manifest parses, its summary agrees;
 * add the markers it needs to NEED.  With REPAIR, rewrite the summary.
 * 0, or -1 if the store failed.
 */
static int
check_snapshot (struct volume *v, const char *sid, bool repair,
                struct fsck_report *r, struct ref_list *need)
{
  struct manifest *m = remote_fetch_manifest (v->env, v->export_id, sid, 0);
  struct manifest *s = NULL;
  struct fsck_summary f = { .missing = false };
  int e, ret = -1;

  if (m == NULL && err_errno () == ENOENT)
    return 0;                   /* deleted since the listing */
  if (m == NULL && err_errno () == EBADMSG) {
    log_warn ("%s: fsck: %s", v->name, err_msg ());
    return add_bad (r, sid);
  }
  if (m == NULL)
    return -1;
  r->snapshots++;
  if (refs_needed (m, need) == -1)
    goto out;
  s = remote_fetch_summary (v->env, v->export_id, sid);
  e = s ? 0 : err_errno ();
  if (s == NULL && e != ENOENT && e != EBADMSG && e != EFBIG)
    goto out;                   /* the store failed */
  if (s && manifest_summary_agrees (m, s)) {
    ret = 0;
    goto out;
  }
  if (s)
    log_warn ("%s: fsck: the summary of snapshot %s does not say what its "
              "manifest says", v->name, sid);
  else if (e != ENOENT)
    log_warn ("%s: fsck: %s", v->name, err_msg ());
  memcpy (f.snapshot_id, sid, sizeof f.snapshot_id);
  f.missing = s == NULL && e == ENOENT;
  if (repair) {
    if (volume_check_owner (v) == 0 && publish_put_summary (v->env, m) == 0) {
      f.repaired = true;
      log_info ("%s: fsck: the summary of snapshot %s is written again from "
                "its manifest", v->name, sid);
    }
    else
      log_warn ("%s: fsck: %s", v->name, err_msg ());
  }
  ret = add_summary (r, &f);
 out:
  manifest_free (s);
  manifest_free (m);
  return ret;
}

/* The markers of NEED that HAVE lacks (written, with REPAIR), and those
 * of HAVE that name V but NEED does not hold.
 */
static int
check_markers (struct volume *v, bool repair, const struct ref_list *need,
               const struct ref_list *have, struct fsck_report *r)
{
  for (size_t i = 0; i < need->n; i++) {
    const struct ref *ref = &need->r[i];
    struct fsck_marker *p;

    if (ref_list_has (have, ref))
      continue;
    log_warn ("%s: fsck: the reference marker of %s@%s is missing", v->name,
              ref->writer, ref->snapshot);
    p = reallocarray (r->missing, r->nmissing + 1, sizeof *p);
    if (p == NULL)
      return err_set (ENOMEM, "fsck: out of memory");
    r->missing = p;
    p = &r->missing[r->nmissing++];
    p->ref = *ref;
    p->written = repair && volume_check_owner (v) == 0 &&
      refs_put (v->env, ref) == 0;
    if (repair && !p->written)
      log_warn ("%s: fsck: %s", v->name, err_msg ());
  }
  for (size_t i = 0; i < have->n; i++)
    if (strcmp (have->r[i].user, v->export_id) == 0 &&
        !ref_list_has (need, &have->r[i]) &&
        ref_list_add (&r->stale, &have->r[i]) == -1)
      return -1;
  return 0;
}

int
fsck_run (struct volume *v, bool repair, struct fsck_report *r)
{
  CLEANUP_FREE char (*ids)[SNAPSHOT_ID_LEN + 1] = NULL;
  struct ref_list need = { 0 }, have = { 0 };
  size_t n = 0;
  int ret = -1;

  assert (volume_current_op (v) == VOLUME_FSCK);
  memset (r, 0, sizeof *r);
  if (volume_check_owner (v) == -1 ||
      publish_snapshot_ids (v->env, v->export_id, &ids, &n) == -1)
    goto out;
  for (size_t i = 0; i < n; i++) {
    volume_op_progress (v, i, n, 0, 0);
    if (check_snapshot (v, ids[i], repair, r, &need) == -1)
      goto out;
  }
  volume_op_progress (v, n, n, 0, 0);
  if (refs_list (v->env, &have) == -1 ||
      check_markers (v, repair, &need, &have, r) == -1 ||
      gc_run (v, false, GC_GRACE_DEFAULT_S, &r->unreferenced) == -1)
    goto out;
  ret = 0;
 out:
  if (ret == -1)
    err_prefix ("fsck %s", v->name);
  ref_list_free (&need);
  ref_list_free (&have);
  return ret;
}

size_t
fsck_problems (const struct fsck_report *r)
{
  size_t n = r->nbad;

  for (size_t i = 0; i < r->nsummaries; i++)
    n += !r->summaries[i].repaired;
  for (size_t i = 0; i < r->nmissing; i++)
    n += !r->missing[i].written;
  return n;
}

void
fsck_report_free (struct fsck_report *r)
{
  free (r->bad_manifests);
  free (r->summaries);
  free (r->missing);
  ref_list_free (&r->stale);
  gc_report_free (&r->unreferenced);
  memset (r, 0, sizeof *r);
}
