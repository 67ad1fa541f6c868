/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: this host's lease, the liveness half of ownership (owner.c is
 * the other half).  See lease.c for the protocol and its timing rules.
 */
#ifndef LAZYVOL_LEASE_H
#define LAZYVOL_LEASE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "format.h"
#include "store.h"

struct lease;

/* Who this host is, and how it keeps its lease. */
struct lease_config {
  const char *root;             /* export root in the bucket */
  const char *host_id;
  const char *cache_id;         /* of this cache root: 32 hex digits */
  unsigned period_ms;           /* the lease period L */
  bool unconditional;           /* the store has no conditional puts and
                                   the admin accepted the risk */
};

/* Write this host's lease record and keep renewing it every L/3 in a
 * thread of its own (a first renewal that fails is retried there).
 * CFG's strings must outlive the lease.  NULL with err_set.
 */
struct lease *lease_start (struct store *st, const struct lease_config *cfg)
  __attribute__ ((__nonnull__));
/* Stop renewing (the record is left: it expires on its own). */
void lease_stop (struct lease *l);

/* Milliseconds the lease stays valid from now: 0 if it has lapsed (no
 * renewal for a period).  Cheap: for the write path.
 */
uint64_t lease_remaining_ms (struct lease *l) __attribute__ ((__nonnull__));
/* 0 if the lease is valid now, else -1 with err_set saying why (the
 * errno of the last renewal: ENOTSUP if the store cannot do it).
 */
int lease_check (struct lease *l) __attribute__ ((__nonnull__));
/* Milliseconds since the last renewal that succeeded (UINT64_MAX if
 * none has).
 */
uint64_t lease_age_ms (struct lease *l) __attribute__ ((__nonnull__));
/* The lease period in milliseconds. */
unsigned lease_period_ms (const struct lease *l) __attribute__ ((__nonnull__));

/* This host owns EXPORT_ID at EPOCH: *LOST becomes true when another
 * host revokes it, or when a lapse of the lease is followed by the
 * discovery that owner.json names someone else.  0 or -1.
 */
int lease_hold (struct lease *l, const char *export_id, uint64_t epoch,
                _Atomic bool *lost) __attribute__ ((__nonnull__));
/* Forget a hold (the export was released or unloaded). */
void lease_drop (struct lease *l, const char *export_id)
  __attribute__ ((__nonnull__));

/* Wait until host HOST_ID (cache CACHE_ID)'s lease record has not changed
 * for one and a half of its lease periods, as seen on this host's
 * monotonic clock (no clock of the two hosts is compared).  1 if it is
 * dead by that rule, 0 if it changed meanwhile (the host is alive), -1
 * on error.
 */
int lease_wait_dead (struct lease *l, const char *host_id,
                     const char *cache_id) __attribute__ ((__nonnull__));
/* Tell host HOST_ID (cache CACHE_ID) that it lost EXPORT_ID at EPOCH:
 * a revocation in its lease record, which its next renewal finds.  0 or
 * -1 (a host whose record is gone needs no telling: 0).
 */
int lease_revoke (struct lease *l, const char *host_id, const char *cache_id,
                  const char *export_id, uint64_t epoch)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOL_LEASE_H */
