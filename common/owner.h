/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: one owner per export across hosts.  See owner.c for the
 * protocol and the guarantee; lease.c for the liveness half.
 */
#ifndef LAZYVOL_OWNER_H
#define LAZYVOL_OWNER_H

#include <stdatomic.h>
#include <stdbool.h>

#include "format.h"
#include "volume.h"

/* What an open may do when another host owns the export. */
enum owner_takeover {
  OWNER_TAKEOVER_NO,            /* nothing: the export loads read-only */
  OWNER_TAKEOVER_WAIT,          /* take it once the owner's lease expired */
  OWNER_TAKEOVER_FORCE,         /* take it now (the owner is told) */
};

/* Parse "false"/"no", "true"/"yes"/"wait" or "force".  0 or -1. */
int owner_parse_takeover (const char *s, enum owner_takeover *out)
  __attribute__ ((__nonnull__));

/* This cache root's identity: a random id kept in CACHE_ROOT/.cache-id
 * (made on first use).  0 or -1.
 */
int owner_cache_id (const char *cache_root, char out[SNAPSHOT_ID_LEN + 1])
  __attribute__ ((__nonnull__));
/* A host id from the machine's host name (characters an id cannot hold
 * become '-').
 */
void owner_default_host_id (char out[HOST_ID_MAX + 1])
  __attribute__ ((__nonnull__));

/* Become the owner of the export whose head is *HEAD (with etag
 * HEAD_ETAG), as TAKEOVER allows.  Sets *OWNED and *REC (owner.json as
 * it is after the call).  When this host becomes the owner at a new
 * epoch, the head is rewritten with that epoch (*HEAD and HEAD_ETAG are
 * updated), so that a publish of the previous owner fails its condition;
 * the lease then watches the ownership, setting *LOST if it goes.  When
 * another host owns the export and TAKEOVER does not take it, or this
 * host's lease is not held, *OWNED is false and WHY says so.  1 if this host took the export now (at a new
 * epoch), 0 if it was its already or is another's, or -1 with err_set
 * (EUSERS: the owner is alive; ENOTSUP: the store cannot evaluate
 * conditional puts).
 */
int owner_acquire (struct volume_env *env, struct volume_head *head,
                   char head_etag[128], enum owner_takeover takeover,
                   _Atomic bool *lost, bool *owned,
                   struct owner_record *rec, char why[256])
  __attribute__ ((__nonnull__));
/* Read owner.json of EXPORT_ID into *REC.  0, 1 if there is none, or -1
 * with err_set.
 */
int owner_read (struct volume_env *env, const char *export_id,
                struct owner_record *rec)
  __attribute__ ((__nonnull__ (1, 2, 3)));

/* Give up the ownership of EXPORT_ID taken at EPOCH (owner.json keeps the
 * epoch, with no host).  0 or -1.
 */
int owner_release (struct volume_env *env, const char *export_id,
                   uint64_t epoch) __attribute__ ((__nonnull__));

#endif /* LAZYVOL_OWNER_H */
