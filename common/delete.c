/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: deleting an export from the store (see delete.h, and
 * lazyvol-format(5), DELETING AN EXPORT).
 *
 * The order, each step after the previous one has landed:
 *
 *  1. the head: volume.json, then refs/current.json (delete_head).  From
 *     here the export cannot be loaded, opened, cloned by its current
 *     snapshot, nor published (a publish reads the head first and fails),
 *     on any host.  The owner does it, holding the export exclusively.
 *  2. every snapshot's manifest.json and summary.json, newest first.
 *  3. every object left in E/snapshots/ that no snapshot names, found as
 *     gc finds them (gc_deleted: the scan of refs.c, through the markers
 *     R/.refs/E/X/F of the clones F), and every unfinished upload there.
 *     A blob a clone names stays; so do the markers, which keep it.
 *  4. owner.json.
 *
 * A crash (or a store failure) at any point leaves a head-less folder:
 * never a head naming a missing manifest, nor a manifest naming a missing
 * blob that a reachable manifest needs.  The same delete run again on an
 * export not loaded (delete_check_resume: no head) does steps 2 to 4 over
 * whatever is left; every step is idempotent.  Step 3 run again later also
 * removes the blobs that clones kept and have stopped naming since.
 *
 * A clone racing step 2 is the race of snapshots.c: the manifest is
 * removed before the scan of step 3 lists the markers, so either the
 * clone sees its source gone and fails, or its markers keep the blobs.
 *
 * Not fenced: a create (or clone) of the same id, here or on another
 * host, once the head is gone and while steps 2 to 4 run.  Step 3 may
 * then take the new export's first blob and manifest (no grace), leaving
 * its head naming a missing manifest.  Only a delete finishing after a
 * crash, on an id an admin reuses at once, can meet it; reusing an id
 * is safe once its delete has answered.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"
#include "delete.h"
#include "err.h"
#include "owner.h"
#include "publish.h"
#include "remote.h"

int
delete_head (struct volume_env *env, const char *export_id)
{
  CLEANUP_FREE char *head = key_volume (env->root, export_id);
  CLEANUP_FREE char *copy = key_refs_current (env->root, export_id);

  if (head == NULL || copy == NULL)
    return err_set (ENOMEM, "delete %s: out of memory", export_id);
  if (store_delete (env->st, head) == -1)
    return err_prefix ("delete %s", export_id);
  log_info ("%s: deleted the head %s", export_id, head);
  CRASH_POINT ("delete.after_head");
  if (store_delete (env->st, copy) == -1)
    return err_prefix ("delete %s", export_id);
  return 0;
}

int
delete_check_resume (struct volume_env *env, const char *export_id)
{
  struct volume_head head;
  struct owner_record rec;
  int r;

  if (remote_fetch_head (env, export_id, &head, NULL) == 0)
    return err_set (ENOENT, "export %s is not loaded here: open it, then "
                    "delete it", export_id);
  if (err_errno () != ENOENT)
    return -1;
  if ((r = owner_read (env, export_id, &rec)) == -1)
    return -1;
  if (r == 0 && rec.host_id[0] &&
      (strcmp (rec.host_id, env->host_id) != 0 ||
       strcmp (rec.cache_id, env->cache_id) != 0))
    return err_set (EUSERS, "export %s: its head is gone, but host %s owns "
                    "it: finish the delete there", export_id, rec.host_id);
  return 0;
}

/* Step 2: delete every snapshot's manifest, newest first, then its
 * summary.  0 or -1.
 */
static int
delete_manifests (struct volume_env *env, const char *export_id,
                  struct delete_report *r)
{
  char (*ids)[SNAPSHOT_ID_LEN + 1] = NULL;
  size_t n;
  int ret = 0;

  if (publish_snapshot_ids (env, export_id, &ids, &n) == -1)
    return -1;
  for (size_t i = n; i-- > 0 && ret == 0;) {
    CLEANUP_FREE char *manifest = key_manifest (env->root, export_id, ids[i]);
    CLEANUP_FREE char *summary = key_summary (env->root, export_id, ids[i]);

    if (manifest == NULL || summary == NULL)
      ret = err_set (ENOMEM, "delete %s: out of memory", export_id);
    else if (store_delete (env->st, manifest) == -1 ||
             store_delete (env->st, summary) == -1)
      ret = -1;
    else {
      r->snapshots++;
      CRASH_POINT ("delete.after_manifest");
    }
  }
  free (ids);
  return ret;
}

int
delete_rest (struct volume_env *env, const char *export_id,
             struct delete_report *r)
{
  CLEANUP_FREE char *owner = key_owner (env->root, export_id);
  struct owner_record rec;
  int had_owner;

  memset (r, 0, sizeof *r);
  if (owner == NULL)
    return err_set (ENOMEM, "delete %s: out of memory", export_id);
  if ((had_owner = owner_read (env, export_id, &rec)) == -1 ||
      delete_manifests (env, export_id, r) == -1 ||
      gc_deleted (env, export_id, &r->gc) == -1)
    return err_prefix ("delete %s (its head is gone: delete it again to "
                       "finish)", export_id);
  CRASH_POINT ("delete.before_owner");
  if (store_delete (env->st, owner) == -1)
    return err_prefix ("delete %s (its head is gone: delete it again to "
                       "finish)", export_id);
  r->found = had_owner == 0 || r->snapshots > 0 || r->gc.n > 0 ||
    r->gc.nuploads > 0 || r->gc.used > 0;
  log_info ("%s: deleted from the store: %zu snapshot%s, %zu object%s; %zu "
            "blob%s kept, named by other exports", export_id, r->snapshots,
            r->snapshots == 1 ? "" : "s", r->gc.n, r->gc.n == 1 ? "" : "s",
            r->gc.used, r->gc.used == 1 ? "" : "s");
  return 0;
}

void
delete_report_free (struct delete_report *r)
{
  gc_report_free (&r->gc);
}
