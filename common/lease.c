/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: this host's lease (see lease.h).
 *
 * Ownership of an export (owner.c) names a host; whether that host is
 * alive is told by one record per host, R/.hosts/HOST.CACHE.json, which
 * the host rewrites every L/3 (L: its lease period) with a conditional
 * put on the etag it last wrote: one request per host, however many
 * exports it owns.  The rules, with no clock shared between hosts:
 *
 *   - A host's lease is valid for L from the moment it *sent* its last
 *     renewal that succeeded, on its own monotonic clock.  Once that has
 *     passed, it refuses writes to every export it owns until a renewal
 *     succeeds again and owner.json still names it (volume.c asks
 *     lease_remaining_ms on every write).
 *   - Another host considers it dead when its record has kept one etag
 *     for 1.5 L (the L the record states) on the watcher's monotonic
 *     clock.  The watcher first saw that etag no earlier than the renewal
 *     was sent, so the owner stopped writing at least L/2 before: that
 *     half period absorbs clock rates and the watcher's polling.
 *   - A host that takes an export by force (the admin says the owner is
 *     dead, or does not care) writes a revocation into the owner's record.
 *     That changes its etag, so the owner's next renewal fails its
 *     condition; the owner reads the record, gives up the revoked
 *     exports (their *lost flags), and writes the record back without
 *     them.  A live owner so stops writing within L/3 plus a request.
 *     The taker revokes before its put of owner.json (so that a taker
 *     dying before its fence still stops the owner) and again after it;
 *     the owner, on loading an export, re-reads owner.json after it has
 *     registered its hold.  Revocations of exports not held are dropped
 *     at renewal, so without those two steps a revocation written while
 *     the owner was between reading owner.json and holding the export
 *     would be lost.  Now either the re-read sees the taker's owner.json,
 *     or the hold came before the taker's put, and so before the second
 *     revocation, which the next renewal then applies.
 *   - A record holds at most LEASE_REVOKED_MAX revocations.  A taker
 *     that finds it full drops the oldest and sets "overflow"; the
 *     owner then checks every export it holds against owner.json before
 *     it writes its record back without the flag.  A record that someone
 *     deleted is written afresh, after the same check.
 *
 * The renewal thread holds l->lock only for bookkeeping; requests are made
 * without it.  valid_until is atomic, read lock-free by the data path.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "lease.h"
#include "lock.h"
#include "util.h"

#define HOLDS_MAX 4096
#define POLL_MIN_MS 100
#define DEAD_MAX 16

struct hold {
  char export_id[EXPORT_ID_MAX + 1];
  uint64_t epoch;
  _Atomic bool *lost;
};

struct lease {
  struct store *st;
  struct lease_config cfg;
  char *key;                    /* of this host's record */
  pthread_t thread;
  bool started;

  /* Protects everything below but valid_until and renewed_ns. */
  pthread_mutex_t lock;
  pthread_cond_t wake;          /* stop, or a renewal is due */
  bool stop;
  struct lease_record rec;      /* as last written */
  char etag[128];               /* of rec */
  bool lapsed;                  /* renewals failed past the period */
  /* Hosts found dead, and the etags their records had: another of their
   * exports need not wait again while a record stays that way.
   */
  struct {
    char key[256], etag[128];
  } dead[DEAD_MAX];
  unsigned ndead;               /* entries used; the next goes at ndead % */
  int error;                    /* of the last renewal, if it failed */
  char why[256];
  struct hold *holds;
  size_t nholds;

  _Atomic uint64_t valid_until_ns;      /* monotonic; 0: never valid */
  _Atomic uint64_t renewed_ns;          /* when the last good renewal began */
};

static uint64_t
ms_to_ns (uint64_t ms)
{
  return ms * 1000000;
}

/* Put REC as this host's record: conditional on the etag last written
 * (or that there is none, the first time), unless the store cannot do
 * that.  0, or -1 with err_set (ESTALE: someone else wrote it).
 */
static int
put_record (struct lease *l, const struct lease_record *rec, const char *etag)
{
  CLEANUP_FREE char *json = lease_format (rec);
  struct store_obj obj;
  enum store_cond cond = l->cfg.unconditional ? STORE_PUT_ANY
    : etag[0] ? STORE_PUT_IF_MATCH : STORE_PUT_IF_ABSENT;

  if (json == NULL)
    return -1;
  if (store_put (l->st, l->key, json, strlen (json), cond,
                 cond == STORE_PUT_IF_MATCH ? etag : NULL, &obj) == -1)
    return -1;
  memcpy (l->etag, obj.etag, sizeof l->etag);
  l->rec = *rec;
  return 0;
}

/* GET the record at KEY.  0, or -1 with err_set (ENOENT if none). */
static int
get_record (struct lease *l, const char *key, const char *host_id,
            struct lease_record *rec, char etag[128])
{
  CLEANUP_FREE char *json = NULL;
  struct store_obj obj;
  size_t len;

  if (store_get (l->st, key, VOLUME_JSON_MAX, &json, &len, &obj) == -1)
    return -1;
  if (lease_parse (json, len, host_id, rec) == -1)
    return err_prefix ("%s", key);
  memcpy (etag, obj.etag, 128);
  return 0;
}

/* Mark the holds REC revokes lost, and forget them.  With l->lock. */
static void
apply_revocations (struct lease *l, const struct lease_record *rec)
{
  for (size_t r = 0; r < rec->nrevoked; r++)
    for (size_t i = 0; i < l->nholds; i++) {
      struct hold *h = &l->holds[i];

      if (strcmp (h->export_id, rec->revoked[r].export_id) != 0 ||
          h->epoch > rec->revoked[r].epoch)
        continue;
      log_warn ("export %s: another host took it over from this one (which "
                "owned it at epoch %ju): writes are refused from now on; "
                "unpublished writes are kept",
                h->export_id, (uintmax_t) h->epoch);
      atomic_store (h->lost, true);
      l->holds[i--] = l->holds[--l->nholds];
    }
}

/* Is export H still ours by owner.json?  1 yes, 0 no, -1 unknown. */
static int
still_ours (struct lease *l, const struct hold *h)
{
  CLEANUP_FREE char *key = key_owner (l->cfg.root, h->export_id);
  CLEANUP_FREE char *json = NULL;
  struct owner_record o;
  size_t len;

  if (key == NULL)
    return -1;
  if (store_get (l->st, key, VOLUME_JSON_MAX, &json, &len, NULL) == -1)
    return errno == ENOENT ? 0 : -1;
  if (owner_parse (json, len, h->export_id, &o) == -1)
    return 0;
  return strcmp (o.host_id, l->cfg.host_id) == 0 &&
    strcmp (o.cache_id, l->cfg.cache_id) == 0 && o.epoch == h->epoch;
}

/* After a lapse: keep only the holds owner.json still gives us.  Called
 * with l->lock held; drops it around the requests, working on a copy of
 * the holds (they may change meanwhile).  0, or -1 if some could not be
 * checked: the lease stays lapsed.
 */
static int
verify_holds (struct lease *l)
{
  size_t n = l->nholds;
  CLEANUP_FREE struct hold *copy = malloc ((n ? n : 1) * sizeof *copy);
  CLEANUP_FREE signed char *ours = malloc (n ? n : 1);
  int r = 0;

  if (copy == NULL || ours == NULL)
    return err_set (ENOMEM, "out of memory");
  memcpy (copy, l->holds, n * sizeof *copy);
  pthread_mutex_unlock (&l->lock);
  for (size_t i = 0; i < n; i++)
    if ((ours[i] = still_ours (l, &copy[i])) == -1)
      r = -1;
  pthread_mutex_lock (&l->lock);
  for (size_t i = 0; i < n; i++) {
    if (ours[i] != 0)
      continue;
    for (size_t k = 0; k < l->nholds; k++) {
      struct hold *h = &l->holds[k];

      if (strcmp (h->export_id, copy[i].export_id) != 0 ||
          h->epoch != copy[i].epoch)
        continue;
      log_warn ("export %s: this host's lease lapsed and owner.json no "
                "longer names it: writes stay refused; unpublished writes "
                "are kept", h->export_id);
      atomic_store (h->lost, true);
      l->holds[k] = l->holds[--l->nholds];
      break;
    }
  }
  return r;
}

/* After a failed renewal, the next comes sooner than L/3: a burst of
 * errors on the link must not cost a third of the lease each time.
 */
static unsigned
retry_ms (const struct lease *l)
{
  unsigned ms = l->cfg.period_ms / 12;

  return ms > POLL_MIN_MS ? ms : POLL_MIN_MS;
}

/* Renew once.  Called with l->lock held; drops it around requests. */
static int
renew (struct lease *l)
{
  struct lease_record rec = l->rec;
  char etag[128];
  uint64_t sent = time_mono_ns ();
  int r;

  memcpy (etag, l->etag, sizeof etag);
  rec.count++;
  rec.nrevoked = 0;
  rec.overflow = false;
  time_now_iso8601 (rec.renewed);
  pthread_mutex_unlock (&l->lock);
  r = put_record (l, &rec, etag);
  if (r == -1 && (errno == ESTALE || errno == ENOENT)) {
    /* Someone wrote our record (revocations: read, obey, write back), or
     * deleted it (write it afresh).  Where revocations may have been
     * lost, check every hold first.
     */
    struct lease_record cur = { .nrevoked = 0 };
    bool check = false;

    if (get_record (l, l->key, l->cfg.host_id, &cur, etag) == 0) {
      check = cur.overflow;
      rec.count = cur.count + 1;
      r = 0;
    }
    else if (errno == ENOENT) {
      log_warn ("this host's lease record is gone: writing it again");
      etag[0] = '\0';
      check = true;
      r = 0;
    }
    if (r == 0) {
      pthread_mutex_lock (&l->lock);
      apply_revocations (l, &cur);
      if (check && verify_holds (l) == -1)
        r = err_prefix ("revocations may have been lost, and the exports "
                        "this host holds could not be checked");
      pthread_mutex_unlock (&l->lock);
    }
    if (r == 0)
      r = put_record (l, &rec, etag);
  }
  pthread_mutex_lock (&l->lock);
  if (r == -1) {
    if (l->error == 0 && err_errno () != ENOTSUP)
      log_warn ("renew this host's lease: %s (retrying every %u ms)",
                err_msg (), retry_ms (l));
    l->error = err_errno ();
    snprintf (l->why, sizeof l->why, "%s", err_msg ());
    if (time_mono_ns () > atomic_load (&l->valid_until_ns) && !l->lapsed &&
        atomic_load (&l->valid_until_ns) > 0) {
      log_error ("this host's lease lapsed (%s): writes to the exports it "
                 "owns are refused until it is renewed", l->why);
      l->lapsed = true;
    }
    return -1;
  }
  l->error = 0;
  if (l->lapsed) {
    /* While we could not renew, someone may have taken our exports. */
    if (verify_holds (l) == -1) {
      log_warn ("this host's lease is renewed, but its exports could not be "
                "checked (%s): writes stay refused", err_msg ());
      return -1;
    }
    l->lapsed = false;
    log_info ("this host's lease is renewed again");
  }
  atomic_store (&l->renewed_ns, sent);
  atomic_store (&l->valid_until_ns, sent + ms_to_ns (l->cfg.period_ms));
  return 0;
}

static void *
renewer (void *arg)
{
  struct lease *l = arg;
  LOCK_FOR_SCOPE (&l->lock);

  while (!l->stop) {
    struct timespec ts;
    uint64_t ns;

    clock_gettime (CLOCK_MONOTONIC, &ts);
    ns = ts.tv_nsec + ms_to_ns (l->error ? retry_ms (l)
                                : l->cfg.period_ms / 3);
    ts.tv_sec += ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_cond_timedwait (&l->wake, &l->lock, &ts);
    if (!l->stop)
      renew (l);
  }
  return NULL;
}

static void
lease_free (struct lease *l)
{
  pthread_mutex_destroy (&l->lock);
  pthread_cond_destroy (&l->wake);
  free (l->holds);
  free (l->key);
  free (l);
}

struct lease *
lease_start (struct store *st, const struct lease_config *cfg)
{
  struct lease *l = calloc (1, sizeof *l);
  struct lease_record old;
  int e;

  if (l == NULL) {
    err_set (ENOMEM, "lease: out of memory");
    return NULL;
  }
  l->st = st;
  l->cfg = *cfg;
  pthread_mutex_init (&l->lock, NULL);
  {
    pthread_condattr_t attr;

    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&l->wake, &attr);
    pthread_condattr_destroy (&attr);
  }
  l->key = key_lease (cfg->root, cfg->host_id, cfg->cache_id);
  l->holds = calloc (HOLDS_MAX, sizeof *l->holds);
  if (l->key == NULL || l->holds == NULL)
    goto err;
  snprintf (l->rec.host_id, sizeof l->rec.host_id, "%s", cfg->host_id);
  snprintf (l->rec.cache_id, sizeof l->rec.cache_id, "%s", cfg->cache_id);
  l->rec.period_ms = cfg->period_ms;
  /* A record from an earlier run of this cache root: go on from it (its
   * revocations are of exports this process does not hold yet).
   */
  if (get_record (l, l->key, cfg->host_id, &old, l->etag) == 0)
    l->rec.count = old.count;
  else
    l->etag[0] = '\0';
  {
    /* A store that is down now must not stop the host: the thread keeps
     * trying, and the exports loaded meanwhile are read-only (owner.c).
     */
    LOCK_FOR_SCOPE (&l->lock);
    if (renew (l) == -1 && l->error == ENOTSUP) {
      /* A store without conditional puts will not grow them. */
      log_warn ("%s: this host holds no lease, so it owns no export",
                l->why);
      return l;
    }
  }
  if ((e = pthread_create (&l->thread, NULL, renewer, l)) != 0) {
    err_set (e, "lease: pthread_create: %m");
    goto err;
  }
  l->started = true;
  log_info ("lease of host %s (cache %s): period %u ms%s", cfg->host_id,
            cfg->cache_id, cfg->period_ms,
            lease_remaining_ms (l) > 0 ? ", held" : ", not held yet");
  return l;

 err:
  err_prefix ("take the lease of host %s", cfg->host_id);
  lease_free (l);
  return NULL;
}

void
lease_stop (struct lease *l)
{
  if (l == NULL)
    return;
  if (l->started) {
    {
      LOCK_FOR_SCOPE (&l->lock);
      l->stop = true;
      pthread_cond_broadcast (&l->wake);
    }
    pthread_join (l->thread, NULL);
  }
  lease_free (l);
}

uint64_t
lease_remaining_ms (struct lease *l)
{
  uint64_t until = atomic_load_explicit (&l->valid_until_ns,
                                         memory_order_relaxed);
  uint64_t now = time_mono_ns ();

  return until > now ? (until - now) / 1000000 : 0;
}

int
lease_check (struct lease *l)
{
  LOCK_FOR_SCOPE (&l->lock);

  if (lease_remaining_ms (l) > 0)
    return 0;
  return err_set (l->error ? l->error : EAGAIN, "this host's lease is not "
                  "held: %s", l->error ? l->why : "its renewal is late");
}

uint64_t
lease_age_ms (struct lease *l)
{
  uint64_t renewed = atomic_load (&l->renewed_ns);

  return renewed ? (time_mono_ns () - renewed) / 1000000 : UINT64_MAX;
}

unsigned
lease_period_ms (const struct lease *l)
{
  return l->cfg.period_ms;
}

int
lease_hold (struct lease *l, const char *export_id, uint64_t epoch,
            _Atomic bool *lost)
{
  LOCK_FOR_SCOPE (&l->lock);

  for (size_t i = 0; i < l->nholds; i++)
    if (strcmp (l->holds[i].export_id, export_id) == 0) {
      l->holds[i].epoch = epoch;
      l->holds[i].lost = lost;
      return 0;
    }
  if (l->nholds == HOLDS_MAX)
    return err_set (EMFILE, "this host owns %d exports, the most it can",
                    HOLDS_MAX);
  snprintf (l->holds[l->nholds].export_id, EXPORT_ID_MAX + 1, "%s",
            export_id);
  l->holds[l->nholds].epoch = epoch;
  l->holds[l->nholds].lost = lost;
  l->nholds++;
  return 0;
}

void
lease_drop (struct lease *l, const char *export_id)
{
  LOCK_FOR_SCOPE (&l->lock);

  for (size_t i = 0; i < l->nholds; i++)
    if (strcmp (l->holds[i].export_id, export_id) == 0) {
      l->holds[i] = l->holds[--l->nholds];
      return;
    }
}

/* The entry of dead host KEY, or NULL.  With l->lock. */
static unsigned
dead_index (struct lease *l, const char *key)
{
  for (unsigned i = 0; i < l->ndead && i < DEAD_MAX; i++)
    if (strcmp (key, l->dead[i].key) == 0)
      return i;
  return DEAD_MAX;
}

/* Was host KEY found dead, with its record at ETAG since? */
static bool
dead_find (struct lease *l, const char *key, const char *etag)
{
  LOCK_FOR_SCOPE (&l->lock);
  unsigned i = dead_index (l, key);

  return i < DEAD_MAX && strcmp (etag, l->dead[i].etag) == 0;
}

/* We rewrote dead host KEY's record from ETAG to NEW_ETAG (a revocation):
 * our own write does not make it alive.
 */
static void
dead_rewritten (struct lease *l, const char *key, const char *etag,
                const char *new_etag)
{
  LOCK_FOR_SCOPE (&l->lock);
  unsigned i = dead_index (l, key);

  if (i < DEAD_MAX && strcmp (etag, l->dead[i].etag) == 0)
    snprintf (l->dead[i].etag, sizeof l->dead[i].etag, "%s", new_etag);
}

/* Remember host KEY as dead while its record has ETAG. */
static void
dead_add (struct lease *l, const char *key, const char *etag)
{
  LOCK_FOR_SCOPE (&l->lock);
  unsigned i = dead_index (l, key);

  if (i == DEAD_MAX)
    i = l->ndead++ % DEAD_MAX;
  snprintf (l->dead[i].key, sizeof l->dead[i].key, "%s", key);
  snprintf (l->dead[i].etag, sizeof l->dead[i].etag, "%s", etag);
}

/* Sleep MS milliseconds. */
static void
sleep_ms (uint64_t ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

int
lease_wait_dead (struct lease *l, const char *host_id, const char *cache_id)
{
  CLEANUP_FREE char *key = key_lease (l->cfg.root, host_id, cache_id);
  char etag[128] = "", seen[128] = "";
  uint64_t period = l->cfg.period_ms, since = time_mono_ns ();
  bool first = true;

  if (key == NULL)
    return -1;
  for (;;) {
    struct lease_record rec;

    if (get_record (l, key, host_id, &rec, etag) == 0)
      period = rec.period_ms;
    else if (errno == ENOENT)
      etag[0] = '\0';           /* no record: unchanged, as absent */
    else
      return -1;
    if (first && dead_find (l, key, etag))
      return 1;                 /* found dead before, and still silent */
    if (!first && strcmp (etag, seen) != 0) {
      log_info ("host %s renewed its lease during the wait: it is alive",
                host_id);
      return 0;
    }
    first = false;
    memcpy (seen, etag, sizeof seen);
    if (time_mono_ns () - since >= ms_to_ns (period * 3 / 2)) {
      dead_add (l, key, etag);
      return 1;
    }
    sleep_ms (period / 6 > POLL_MIN_MS ? period / 6 : POLL_MIN_MS);
  }
}

int
lease_revoke (struct lease *l, const char *host_id, const char *cache_id,
              const char *export_id, uint64_t epoch)
{
  CLEANUP_FREE char *key = key_lease (l->cfg.root, host_id, cache_id);
  CLEANUP_FREE char *json = NULL;

  if (key == NULL)
    return -1;
  for (int tries = 0; tries < 5; tries++) {
    struct lease_record rec;
    struct store_obj obj;
    char etag[128];

    if (get_record (l, key, host_id, &rec, etag) == -1)
      return errno == ENOENT ? 0 : -1;
    if (rec.nrevoked == LEASE_REVOKED_MAX) {
      /* The oldest goes, and the flag makes the owner check them all. */
      memmove (&rec.revoked[0], &rec.revoked[1],
               --rec.nrevoked * sizeof rec.revoked[0]);
      rec.overflow = true;
    }
    snprintf (rec.revoked[rec.nrevoked].export_id, EXPORT_ID_MAX + 1, "%s",
              export_id);
    rec.revoked[rec.nrevoked++].epoch = epoch;
    free (json);
    if ((json = lease_format (&rec)) == NULL)
      return -1;
    if (store_put (l->st, key, json, strlen (json),
                   l->cfg.unconditional ? STORE_PUT_ANY : STORE_PUT_IF_MATCH,
                   l->cfg.unconditional ? NULL : etag, &obj) == 0) {
      dead_rewritten (l, key, etag, obj.etag);
      return 0;
    }
    if (errno != ESTALE)
      return -1;
  }
  return err_set (ESTALE, "revoke %s from host %s: its lease record keeps "
                  "changing", export_id, host_id);
}
