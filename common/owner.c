/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: one owner per export across hosts (see owner.h).
 *
 * The guarantee: only the owner of an export can move its head; a host
 * that loses ownership stops acknowledging writes to that export within
 * one lease period L; and its unpublished writes are kept and reported,
 * never published over a head that moved (cache-open.c, stale caches).
 *
 * R/E/owner.json names the owner (host id, cache-root id) and an epoch
 * that grows at every take.  It is only ever replaced with a conditional
 * put on the etag read just before, so of two hosts that race to take an
 * export, one wins and the other sees the winner.  A host takes an export
 * that nobody owns (no record, or a released one) at once; one another
 * host owns only on request: after that host's lease expired (lease.c:
 * its record unchanged for 1.5 L on our clock), or by force, which also
 * writes a revocation into that host's lease record.
 *
 * Fencing.  On taking an export at a new epoch, the taker rewrites the
 * head (volume.json) with that epoch, a conditional put like every head
 * move.  A publish of the previous owner then fails: if it read the head
 * before, its conditional put on the old etag fails; if after, it sees
 * an epoch not its own (publish.c, check_head).  If the previous owner's
 * publish landed first, the taker's fence fails its condition, and the
 * taker reads the new head and fences that.  So two hosts never both move
 * the head, whatever the timing.
 *
 * Stores that cannot evaluate conditional puts (stock Swift answers 501)
 * cannot give this guarantee: an export on one is loaded read-only unless
 * the admin accepts the risk (env->unconditional), and then every put is
 * a plain one after a read.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "crash.h"
#include "err.h"
#include "lease.h"
#include "owner.h"
#include "volume-impl.h"

#define TRIES 5

int
owner_parse_takeover (const char *s, enum owner_takeover *out)
{
  if (strcmp (s, "false") == 0 || strcmp (s, "no") == 0)
    *out = OWNER_TAKEOVER_NO;
  else if (strcmp (s, "true") == 0 || strcmp (s, "yes") == 0 ||
           strcmp (s, "wait") == 0)
    *out = OWNER_TAKEOVER_WAIT;
  else if (strcmp (s, "force") == 0)
    *out = OWNER_TAKEOVER_FORCE;
  else
    return err_set (EINVAL, "takeover must be false, true or force, not "
                    "\"%.40s\"", s);
  return 0;
}

int
owner_cache_id (const char *cache_root, char out[SNAPSHOT_ID_LEN + 1])
{
  CLEANUP_FREE char *path = str_printf ("%s/.cache-id", cache_root);
  CLEANUP_FREE char *text = NULL;
  unsigned char b[SNAPSHOT_ID_LEN / 2];
  size_t len;

  if (path == NULL)
    return -1;
  if (file_read_all (path, 64, &text, &len) == 0) {
    if (len >= SNAPSHOT_ID_LEN) {
      memcpy (out, text, SNAPSHOT_ID_LEN);
      out[SNAPSHOT_ID_LEN] = '\0';
      if (id_snapshot_valid (out))
        return 0;
    }
    return err_set (EBADMSG, "%s: not a cache id (32 hex digits)", path);
  }
  if (errno != ENOENT)
    return -1;
  if (getrandom (b, sizeof b, 0) != sizeof b)
    return err_set (errno, "getrandom: %m");
  hex_encode (b, sizeof b, out);
  {
    CLEANUP_FREE char *line = str_printf ("%s\n", out);
    if (line == NULL || file_write_atomic (path, line, strlen (line)) == -1)
      return -1;
  }
  return 0;
}

void
owner_default_host_id (char out[HOST_ID_MAX + 1])
{
  char name[256] = "";
  size_t n;

  if (gethostname (name, sizeof name - 1) == -1 || name[0] == '\0')
    strcpy (name, "host");
  n = strlen (name) < HOST_ID_MAX ? strlen (name) : HOST_ID_MAX;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
      (c >= '0' && c <= '9') || (i > 0 && (c == '.' || c == '_' || c == '-'));
    out[i] = ok ? c : i == 0 ? 'h' : '-';
  }
  out[n] = '\0';
}

/* GET EXPORT_ID's owner.json into *REC and ETAG.  0, 1 if there is none,
 * or -1.
 */
static int
get_owner (struct volume_env *env, const char *key, const char *export_id,
           struct owner_record *rec, char etag[128])
{
  CLEANUP_FREE char *json = NULL;
  struct store_obj obj;
  size_t len;

  if (store_get (env->st, key, VOLUME_JSON_MAX, &json, &len, &obj) == -1)
    return errno == ENOENT ? 1 : -1;
  if (owner_parse (json, len, export_id, rec) == -1)
    return err_prefix ("%s", key);
  memcpy (etag, obj.etag, 128);
  return 0;
}

/* The store cannot make any host the only writer. */
static int
refuse_unconditional (struct volume_env *env)
{
  return err_set (ENOTSUP, "%s does not evaluate conditional puts, so no "
                  "host can be made the only writer of an export: exports "
                  "load read-only (see unsafe-no-conditional-puts in "
                  "nbdkit-lazyvol-plugin(1))", store_describe (env->st));
}

/* Replace KEY with JSON if its etag is still ETAG ("": if it is absent). */
static int
put_if (struct volume_env *env, const char *key, const char *json,
        const char *etag, struct store_obj *obj)
{
  enum store_cond cond = env->unconditional ? STORE_PUT_ANY
    : etag[0] ? STORE_PUT_IF_MATCH : STORE_PUT_IF_ABSENT;
  int r = store_put (env->st, key, json, strlen (json), cond,
                     cond == STORE_PUT_IF_MATCH ? etag : NULL, obj);

  if (r == -1 && errno == ENOTSUP)
    return refuse_unconditional (env);
  return r;
}

static bool
is_mine (struct volume_env *env, const struct owner_record *rec)
{
  return strcmp (rec->host_id, env->host_id) == 0 &&
    strcmp (rec->cache_id, env->cache_id) == 0;
}

/* Rewrite *HEAD with EPOCH, following a head that moved meanwhile. */
static int
fence_head (struct volume_env *env, struct volume_head *head,
            char head_etag[128], uint64_t epoch)
{
  CLEANUP_FREE char *key = key_volume (env->root, head->export_id);

  if (key == NULL)
    return -1;
  for (int tries = 0; tries < TRIES; tries++) {
    struct volume_head h = *head;
    CLEANUP_FREE char *json = NULL;
    struct store_obj obj;

    if (head->epoch == epoch)
      return 0;
    h.epoch = epoch;
    time_now_iso8601 (h.updated);
    if ((json = volume_format (&h)) == NULL)
      return -1;
    if (put_if (env, key, json, head_etag, &obj) == 0) {
      *head = h;
      memcpy (head_etag, obj.etag, 128);
      remote_put_refs (env, head);
      return 0;
    }
    /* The previous owner's publish landed first: fence the new head. */
    if (errno != ESTALE ||
        remote_fetch_head (env, head->export_id, head, head_etag) == -1)
      return -1;
  }
  return err_set (ESTALE, "export %s: the head keeps moving under its new "
                  "owner", head->export_id);
}

/* A take that could not be completed: give it back, keeping the error. */
static void
undo_take (struct volume_env *env, const char *export_id, uint64_t epoch)
{
  struct err_saved why;

  err_save (&why);
  if (owner_release (env, export_id, epoch) == -1)
    log_warn ("%s", err_msg ());
  err_restore (&why);
}

/* Tell the owner in REC that it lost the export, if there is one. */
static void
owner_revoke_old (struct volume_env *env, const struct owner_record *rec)
{
  if (rec->host_id[0] &&
      lease_revoke (env->lease, rec->host_id, rec->cache_id, rec->export_id,
                    rec->epoch) == -1)
    log_warn ("export %s: could not tell host %s that it lost it: %s (it "
              "stops writing when its lease lapses)", rec->export_id,
              rec->host_id, err_msg ());
}

/* Another host owns the export: may we take it?  0 yes, 1 no, -1 error. */
static int
may_take (struct volume_env *env, const struct owner_record *rec,
          enum owner_takeover takeover)
{
  int dead;

  switch (takeover) {
  case OWNER_TAKEOVER_NO:
    return 1;
  case OWNER_TAKEOVER_WAIT:
    log_info ("export %s: waiting for the lease of host %s to expire",
              rec->export_id, rec->host_id);
    dead = lease_wait_dead (env->lease, rec->host_id, rec->cache_id);
    if (dead == 0)
      return err_set (EUSERS, "export %s: its owner, host %s, is alive (it "
                      "renewed its lease while we waited); take it over by "
                      "force only if you know that host is not writing",
                      rec->export_id, rec->host_id);
    return dead == 1 ? 0 : -1;
  case OWNER_TAKEOVER_FORCE:
    log_warn ("export %s: taking it over from host %s by force",
              rec->export_id, rec->host_id);
    return 0;
  }
  abort ();
}

int
owner_acquire (struct volume_env *env, struct volume_head *head,
               char head_etag[128], enum owner_takeover takeover,
               _Atomic bool *lost, bool *owned, struct owner_record *rec,
               char why[256])
{
  CLEANUP_FREE char *key = key_owner (env->root, head->export_id);

  *owned = false;
  why[0] = '\0';
  if (key == NULL)
    return -1;
  /* Without a lease this host could not tell when it lost the export:
   * read-only, until it is opened again with the lease held.
   */
  if (lease_check (env->lease) == -1) {
    if (errno == ENOTSUP)
      return refuse_unconditional (env);
    snprintf (why, 256, "%s; close and open it again once the lease is "
              "held", err_msg ());
    log_warn ("export %s: loaded read-only: %s", head->export_id, why);
    return 0;
  }
  for (int tries = 0; tries < TRIES; tries++) {
    struct owner_record cur = { .epoch = 0 };
    CLEANUP_FREE char *json = NULL;
    char etag[128] = "";
    int r = get_owner (env, key, head->export_id, &cur, etag);
    bool took = false;

    if (r == -1)
      return -1;
    if (r == 0 && cur.host_id[0] && !is_mine (env, &cur)) {
      r = may_take (env, &cur, takeover);
      if (r == -1)
        return -1;
      if (r == 1) {
        *rec = cur;
        snprintf (why, 256, "owned by host %s (epoch %ju, since %s)",
                  cur.host_id, (uintmax_t) cur.epoch, cur.since);
        return 0;
      }
    }
    if (r == 0 && is_mine (env, &cur))
      *rec = cur;               /* ours already: a restart */
    else {
      *rec = cur;
      snprintf (rec->export_id, sizeof rec->export_id, "%s",
                head->export_id);
      snprintf (rec->host_id, sizeof rec->host_id, "%s", env->host_id);
      snprintf (rec->cache_id, sizeof rec->cache_id, "%s", env->cache_id);
      rec->epoch = (cur.epoch > head->epoch ? cur.epoch : head->epoch) + 1;
      time_now_iso8601 (rec->since);
      if ((json = owner_format (rec)) == NULL)
        return -1;
      /* Tell the previous owner first, in case it is alive after all: its
       * next renewal finds the revocation, and it stops writing, even if
       * this host dies before its fence.  (Should the take below fail,
       * the revocation names an epoch that is over anyway.)  And again
       * after the put: a previous owner that was loading the export may
       * have dropped the first, as it did not hold it yet (lease.c).
       */
      owner_revoke_old (env, &cur);
      if (put_if (env, key, json, etag, NULL) == -1) {
        if (errno == ESTALE)
          continue;             /* another host took it: look again */
        return -1;
      }
      owner_revoke_old (env, &cur);
      CRASH_POINT ("takeover.after_owner");
      log_info ("export %s: owned by this host (%s) at epoch %ju",
                head->export_id, env->host_id, (uintmax_t) rec->epoch);
      took = true;
    }
    if (lease_hold (env->lease, head->export_id, rec->epoch, lost) == -1)
      goto err;
    /* Held now, so a revocation from here on is applied; one written
     * before, which the renewal may have dropped, came with a taker's
     * owner.json, which this read sees (see lease.c).
     */
    r = get_owner (env, key, head->export_id, &cur, etag);
    if (r == -1)
      goto err;
    if (r == 1 || !is_mine (env, &cur) || cur.epoch != rec->epoch) {
      log_info ("export %s: taken by another host meanwhile: looking again",
                head->export_id);
      lease_drop (env->lease, head->export_id);
      continue;
    }
    if (fence_head (env, head, head_etag, rec->epoch) == -1)
      goto err;
    CRASH_POINT ("takeover.after_fence");
    *owned = true;
    return took;

  err:
    lease_drop (env->lease, head->export_id);
    if (took)
      undo_take (env, head->export_id, rec->epoch);
    return -1;
  }
  return err_set (ESTALE, "export %s: owner.json keeps changing",
                  head->export_id);
}

int
owner_read (struct volume_env *env, const char *export_id,
            struct owner_record *rec)
{
  CLEANUP_FREE char *key = key_owner (env->root, export_id);
  char etag[128];

  return key == NULL ? -1 : get_owner (env, key, export_id, rec, etag);
}

int
owner_release (struct volume_env *env, const char *export_id, uint64_t epoch)
{
  CLEANUP_FREE char *key = key_owner (env->root, export_id);
  CLEANUP_FREE char *json = NULL;
  struct owner_record cur;
  char etag[128];
  int r;

  lease_drop (env->lease, export_id);
  if (key == NULL)
    return -1;
  r = get_owner (env, key, export_id, &cur, etag);
  if (r != 0)
    return r == 1 ? 0 : -1;
  if (!is_mine (env, &cur) || cur.epoch != epoch)
    return 0;                   /* someone took it since: nothing to give */
  cur.host_id[0] = cur.cache_id[0] = '\0';
  time_now_iso8601 (cur.since);
  if ((json = owner_format (&cur)) == NULL ||
      put_if (env, key, json, etag, NULL) == -1)
    return -1;
  log_info ("export %s: released by this host", export_id);
  return 0;
}
