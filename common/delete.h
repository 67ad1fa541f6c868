/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: deleting an export from the store, in an order a crash at
 * any point leaves usable and a later delete finishes (see delete.c).
 */
#ifndef LAZYVOL_DELETE_H
#define LAZYVOL_DELETE_H

#include <stdbool.h>
#include <stddef.h>

#include "gc.h"
#include "volume.h"

/* What a remote delete did. */
struct delete_report {
  size_t snapshots;             /* manifests deleted */
  struct gc_report gc;          /* the objects deleted, and kept (used) */
  bool found;                   /* there was anything of the export */
};

/* The first step: remove EXPORT_ID's head, volume.json then its copy
 * refs/current.json.  Only the export's owner may call it.  A head
 * already gone is success.  0 or -1.
 */
int delete_head (struct volume_env *env, const char *export_id)
  __attribute__ ((__nonnull__));
/* May this host finish the delete of EXPORT_ID, not loaded here?  Its
 * head must be gone (else ENOENT: open it first) and owner.json must not
 * name another host (EUSERS).  0 or -1.
 */
int delete_check_resume (struct volume_env *env, const char *export_id)
  __attribute__ ((__nonnull__));
/* The rest, once the head is gone: every snapshot's manifest and
 * summary, then every object of the export that no snapshot of another
 * export names (gc_deleted), then owner.json.  *R is filled in either
 * way; free it with delete_report_free.  0 or -1.
 */
int delete_rest (struct volume_env *env, const char *export_id,
                 struct delete_report *r) __attribute__ ((__nonnull__));
/* Free what *R holds. */
void delete_report_free (struct delete_report *r)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOL_DELETE_H */
