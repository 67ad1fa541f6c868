/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: the registry of loaded exports (see registry.h).
 *
 * A list in load order (what lists show) and a hash table by name (what
 * lookups use: a process may serve thousands of exports and views),
 * under one mutex ("lock", which protects both and every entry's
 * fields).  Loading does network I/O, so it is not done
 * under the mutex: a placeholder entry (v == NULL) is inserted first,
 * which makes a second load of the same name fail with EEXIST and makes
 * registry_get wait on "changed" until the placeholder is filled or
 * removed.  Every user of a volume holds a reference: NBD connections
 * and running control commands.
 *
 * Exclusive use.  Unloading an export and resetting its cache must not
 * overlap any request, nor let a new one start half-way (a view being
 * unloaded and opened again at once would find its own cache locked; a
 * client connecting during a reset would read a cache being punched).
 * So an entry marked exclusive is invisible to registry_get, which waits
 * on "changed" until the mark is gone (or the entry with it); the marker
 * first waits for the other references to drop.  Both refuse with EBUSY
 * while NBD clients are connected (unloading or resetting under a mounted
 * file system is never what the admin meant) and while a snapshot or
 * compact runs (it holds a reference for minutes; nobody should wait that
 * long, nor see status hang meanwhile).  registry_foreach still lists an
 * export being reset (its status is safe to read), not one being unloaded.
 *
 * Idle views.  A view an NBD client loaded (on demand, registry_get) is
 * unloaded again once unused, but not at once: the IDLE_VIEWS most
 * recently used stay loaded, so that a client that reconnects finds its
 * cache warm.  When one more becomes idle, the least recently used goes,
 * unloaded by the thread whose release made it one too many.  A view
 * loaded by a control command (open) stays until closed.  A view's
 * cache directory goes with it (volume_unload).
 *
 * Closed exports.  An export closed (or deleted locally only) on this
 * host stays unloaded across restarts: CACHE_ROOT/.closed/E records it
 * (an empty file, written and its directory fsynced before the reply),
 * discovery skips E, and an explicit open, create or clone of E removes
 * the record once E is loaded.  The record is this host's (its cache
 * root's); other hosts load E as they would.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "lock.h"
#include "owner.h"
#include "publish.h"
#include "registry.h"

struct entry {
  struct entry *next, *prev;    /* the list, in load order */
  struct entry *hnext;          /* the hash chain */
  char *name;
  char export_id[EXPORT_ID_MAX + 1];
  bool view;                    /* "E@S" */
  struct volume *v;             /* NULL while loading */
  unsigned refs, conns;
  bool exclusive;               /* being unloaded or reset */
  bool unloading;               /* being unloaded: v is going away */
  bool on_demand;               /* a view loaded by an NBD client */
  uint64_t used;                /* when its last reference went (tick) */
  char (*snaps)[SNAPSHOT_ID_LEN + 1];   /* known snapshot ids (writable) */
  size_t nsnaps;
};

static struct volume_env *env;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Broadcast when an entry is filled, removed, released from exclusive
 * use, or loses its last reference.
 */
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static struct entry *entries, *last;
static struct entry **table;    /* [nbuckets] hash chains */
static size_t nbuckets, nentries;
static uint64_t tick;           /* counts releases, for idle views' age */
static unsigned idle_views_max = IDLE_VIEWS_DEFAULT;

void
registry_init (struct volume_env *e, unsigned idle_views)
{
  env = e;
  idle_views_max = idle_views;
}

/* FNV-1a. */
static size_t
hash (const char *name)
{
  uint64_t h = UINT64_C (14695981039346656037);

  for (; *name; name++)
    h = (h ^ (unsigned char) *name) * UINT64_C (1099511628211);
  return h;
}

/* Called with lock held. */
static struct entry *
find (const char *name)
{
  if (nbuckets == 0)
    return NULL;
  for (struct entry *e = table[hash (name) % nbuckets]; e; e = e->hnext)
    if (strcmp (e->name, name) == 0)
      return e;
  return NULL;
}

/* Add E to the list and the table, which doubles when it averages two
 * entries a chain.  Called with lock held.  0, or -1 with ENOMEM.
 */
static int
link_entry (struct entry *e)
{
  size_t b;

  if (nentries >= 2 * nbuckets) {
    size_t n = nbuckets ? 2 * nbuckets : 64;
    struct entry **t = calloc (n, sizeof *t);

    if (t == NULL)
      return err_set (ENOMEM, "out of memory");
    for (struct entry *x = entries; x; x = x->next) {
      b = hash (x->name) % n;
      x->hnext = t[b];
      t[b] = x;
    }
    free (table);
    table = t;
    nbuckets = n;
  }
  b = hash (e->name) % nbuckets;
  e->hnext = table[b];
  table[b] = e;
  e->prev = last;
  e->next = NULL;
  *(last ? &last->next : &entries) = e;
  last = e;
  nentries++;
  return 0;
}

/* Called with lock held. */
static void
unlink_entry (struct entry *dead)
{
  struct entry **p = &table[hash (dead->name) % nbuckets];

  while (*p != dead)
    p = &(*p)->hnext;
  *p = dead->hnext;
  *(dead->prev ? &dead->prev->next : &entries) = dead->next;
  *(dead->next ? &dead->next->prev : &last) = dead->prev;
  nentries--;
}

static void
free_entry (struct entry *e)
{
  free (e->name);
  free (e->snaps);
  free (e);
}

int
registry_load (const char *name, int takeover)
{
  char id[EXPORT_ID_MAX + 1];
  const char *snap = NULL;
  struct entry *e;
  struct volume *v;

  if (!id_name_parse (name, id, &snap))
    return err_set (EINVAL, "invalid export name \"%.200s\" (want an export "
                    "id, or EXPORT_ID@SNAPSHOT_ID)", name);
  e = calloc (1, sizeof *e);
  if (e == NULL || (e->name = strdup (name)) == NULL) {
    free (e);
    return err_set (ENOMEM, "load %s: out of memory", name);
  }
  strcpy (e->export_id, id);
  e->view = snap != NULL;

  {
    LOCK_FOR_SCOPE (&lock);

    if (find (name)) {
      free_entry (e);
      return err_set (EEXIST, "export %s is already loaded", name);
    }
    if (link_entry (e) == -1) {
      free_entry (e);
      return err_prefix ("load %s", name);
    }
  }

  v = volume_load (env, id, snap, takeover);

  {
    LOCK_FOR_SCOPE (&lock);
    if (v == NULL)
      unlink_entry (e);
    else
      e->v = v;
    pthread_cond_broadcast (&changed);
  }
  if (v == NULL) {
    free_entry (e);
    return -1;
  }
  log_info ("loaded export %s", name);
  if (!e->view)
    registry_refresh_snapshots (id);
  return 0;
}

int
registry_view_geometry (const char *name, uint64_t *image_size,
                        uint32_t *chunk_size)
{
  char id[EXPORT_ID_MAX + 1];
  const char *snap = NULL;

  CLEANUP_FREE char *key = NULL;
  struct store_obj obj;
  struct manifest *m;

  if (!id_name_parse (name, id, &snap) || snap == NULL)
    return err_set (EINVAL, "\"%.200s\" is not the name of a snapshot view "
                    "(EXPORT_ID@SNAPSHOT_ID)", name);
  if ((key = key_manifest (env->root, id, snap)) == NULL)
    return -1;
  /* A summary outlives its manifest for a moment during a delete (and
   * for good after a crash there): the manifest must be there too.
   */
  m = publish_read_summary (env, id, snap, true);
  if (m == NULL || store_head (env->st, key, &obj) == -1) {
    manifest_free (m);
    return err_errno () == ENOENT
      ? err_set (ENOENT, "export %s has no snapshot %s", id, snap) : -1;
  }
  *image_size = m->image_size;
  *chunk_size = m->chunk_size;
  manifest_free (m);
  return 0;
}

/* Find NAME, waiting while it loads or is in exclusive use.  Called with
 * lock held.
 */
static struct entry *
find_loaded (const char *name)
{
  struct entry *e;

  while ((e = find (name)) != NULL && (e->v == NULL || e->exclusive))
    pthread_cond_wait (&changed, &lock);
  return e;
}

/* Find the entry of V.  Called with lock held. */
static struct entry *
find_volume (struct volume *v)
{
  struct entry *e = find (volume_name (v));

  assert (e && e->v == v);      /* a reference to a volume not loaded */
  return e;
}

/* Take a reference to loaded export NAME; NULL with ENOENT if it is not
 * loaded.
 */
static struct volume *
get_loaded (const char *name, bool connection)
{
  LOCK_FOR_SCOPE (&lock);
  struct entry *e = find_loaded (name);

  if (e == NULL) {
    err_set (ENOENT, "no export named \"%.200s\" is loaded", name);
    return NULL;
  }
  e->refs++;
  if (connection)
    e->conns++;
  return e->v;
}

struct volume *
registry_get (const char *name, bool load_view, bool connection)
{
  struct volume *v = get_loaded (name, connection);

  if (v == NULL && load_view && strchr (name, '@')) {
    if (registry_load (name, OWNER_TAKEOVER_NO) == 0) {
      LOCK_FOR_SCOPE (&lock);
      struct entry *e = find (name);

      if (e)
        e->on_demand = true;
    }
    else if (errno != EEXIST)
      return NULL;
    v = get_loaded (name, connection);
  }
  return v;
}

/* Drop one reference of E.  Called with lock held. */
static void
put_entry (struct entry *e, bool connection)
{
  assert (e->refs > 0 && (!connection || e->conns > 0));
  e->refs--;
  if (connection)
    e->conns--;
  if (e->refs == 0)
    pthread_cond_broadcast (&changed);
}

/* On-demand view E has just become idle: the name of the idle view to
 * unload (malloc'd), if there are more than idle_views_max, else NULL.
 * Called with lock held.
 */
static char *
idle_victim (struct entry *e)
{
  struct entry *oldest = NULL;
  unsigned idle = 0;

  e->used = ++tick;
  for (struct entry *x = entries; x; x = x->next)
    if (x->on_demand && x->v && x->refs == 0 && !x->exclusive) {
      idle++;
      if (oldest == NULL || x->used < oldest->used)
        oldest = x;
    }
  if (idle <= idle_views_max)
    return NULL;
  return strdup (oldest->name);         /* NULL: it stays, no harm */
}

void
registry_put (struct volume *v, bool connection)
{
  CLEANUP_FREE char *victim = NULL;

  {
    LOCK_FOR_SCOPE (&lock);
    struct entry *e = find_volume (v);

    put_entry (e, connection);
    if (e->refs == 0 && e->on_demand)
      victim = idle_victim (e);
  }
  /* Refused (EBUSY) if a client took it again meanwhile: then it stays. */
  if (victim && registry_unload (victim) == -1)
    log_debug ("idle view %s stays loaded: %s", victim, err_msg ());
}

/* Mark loaded export NAME exclusive (see the top of this file) for WHAT
 * ("reset"), waiting for the other references to drop.  Called with lock
 * held.  NULL with err_set (EBUSY while clients are connected).
 */
static struct entry *
take_exclusive (const char *name, const char *what)
{
  struct entry *e = find_loaded (name);

  if (e == NULL) {
    err_set (ENOENT, "no export named \"%.200s\" is loaded", name);
    return NULL;
  }
  if (e->conns > 0) {
    err_set (EBUSY, "export %s has %u connected client%s; disconnect %s "
             "before a %s", name, e->conns, e->conns == 1 ? "" : "s",
             e->conns == 1 ? "it" : "them", what);
    return NULL;
  }
  e->exclusive = true;
  while (e->refs > 0) {
    struct timespec ts;
    enum volume_op op = volume_current_op (e->v);

    if (op == VOLUME_SNAPSHOT || op == VOLUME_COMPACT) {
      e->exclusive = false;
      pthread_cond_broadcast (&changed);
      err_set (EBUSY, "%s is busy %s; try the %s when it is done", name,
               volume_op_name (op), what);
      return NULL;
    }
    /* A command that is about to start a publish holds a reference
     * before the operation shows: look again shortly.
     */
    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000 * 1000;
    if (ts.tv_nsec >= 1000 * 1000 * 1000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000 * 1000 * 1000;
    }
    pthread_cond_timedwait (&changed, &lock, &ts);
  }
  return e;
}

struct volume *
registry_get_exclusive (const char *name, const char *what)
{
  LOCK_FOR_SCOPE (&lock);
  struct entry *e = take_exclusive (name, what);

  if (e == NULL)
    return NULL;
  e->refs++;
  return e->v;
}

void
registry_put_exclusive (struct volume *v)
{
  LOCK_FOR_SCOPE (&lock);
  struct entry *e = find_volume (v);

  assert (e->exclusive);
  e->exclusive = false;
  put_entry (e, false);
  pthread_cond_broadcast (&changed);
}

int
registry_unload (const char *name)
{
  return registry_unload_then (name, "close", NULL, NULL, NULL);
}

int
registry_unload_then (const char *name, const char *what,
                      int (*before) (void *opaque, struct volume *v),
                      int (*after) (void *opaque), void *opaque)
{
  struct entry *e;
  int r;

  {
    LOCK_FOR_SCOPE (&lock);
    if ((e = take_exclusive (name, what)) == NULL)
      return -1;
    e->unloading = before == NULL;
  }
  if (before) {
    /* Exclusive: no other user, but status readers (registry_foreach)
     * may take references meanwhile; wait for them once unloading.
     */
    r = before (opaque, e->v);
    LOCK_FOR_SCOPE (&lock);
    if (r == -1) {
      e->exclusive = false;
      pthread_cond_broadcast (&changed);
      return -1;
    }
    e->unloading = true;
    while (e->refs > 0)
      pthread_cond_wait (&changed, &lock);
  }
  /* Still listed, so a new user waits instead of loading it again. */
  r = volume_unload (e->v);
  if (r == 0 && after)
    r = after (opaque);
  {
    LOCK_FOR_SCOPE (&lock);
    unlink_entry (e);
    pthread_cond_broadcast (&changed);
  }
  if (r == 0)
    log_info ("unloaded export %s", name);
  free_entry (e);
  return r;
}

bool
registry_keep_view (const char *name)
{
  LOCK_FOR_SCOPE (&lock);
  struct entry *e = find (name);

  if (e == NULL || !e->on_demand)
    return false;
  e->on_demand = false;
  return true;
}

bool
registry_loaded (const char *name)
{
  LOCK_FOR_SCOPE (&lock);
  return find (name) != NULL;
}

bool
registry_loaded_read_only (const char *name)
{
  LOCK_FOR_SCOPE (&lock);
  struct entry *e = find (name);

  return e && e->v && !e->view && !volume_writable (e->v);
}

unsigned
registry_connections (const char *name)
{
  LOCK_FOR_SCOPE (&lock);
  struct entry *e = find (name);

  return e ? e->conns : 0;
}

int
registry_foreach (registry_fn fn, void *opaque)
{
  CLEANUP_FREE struct volume **vs = NULL;
  size_t n = 0, i;
  int r = 0;

  /* Take a reference to every loaded export, then call FN without the
   * lock (it may be slow), then drop the references.  An export being
   * reset is listed too (status is safe during a reset); one being
   * unloaded is not: its volume is being freed.
   */
  {
    LOCK_FOR_SCOPE (&lock);
    for (struct entry *e = entries; e; e = e->next)
      n++;
    vs = calloc (n ? n : 1, sizeof *vs);
    n = 0;
    for (struct entry *e = entries; vs && e; e = e->next)
      if (e->v && !e->unloading) {
        e->refs++;
        vs[n++] = e->v;
      }
  }
  if (vs == NULL)
    return err_set (ENOMEM, "out of memory");

  for (i = 0; i < n && r == 0; i++)
    r = fn (opaque, vs[i]);
  for (i = 0; i < n; i++)
    registry_put (vs[i], false);
  return r;
}

void
registry_set_snapshots (const char *export_id,
                        char (*ids)[SNAPSHOT_ID_LEN + 1], size_t n)
{
  {
    LOCK_FOR_SCOPE (&lock);
    struct entry *e = find (export_id);

    if (e && !e->view) {
      free (e->snaps);
      e->snaps = ids;
      e->nsnaps = n;
      ids = NULL;
    }
  }
  free (ids);
}

void
registry_refresh_snapshots (const char *export_id)
{
  char (*ids)[SNAPSHOT_ID_LEN + 1];
  size_t n;

  if (publish_snapshot_ids (env, export_id, &ids, &n) == -1) {
    log_warn ("list snapshots of %s: %s", export_id, err_msg ());
    return;
  }
  registry_set_snapshots (export_id, ids, n);
}

void
registry_foreach_view_name (void (*fn) (void *opaque, const char *name),
                            void *opaque)
{
  LOCK_FOR_SCOPE (&lock);
  for (struct entry *e = entries; e; e = e->next)
    for (size_t i = 0; e->v && i < e->nsnaps; i++) {
      char name[NAME_MAX_LEN + 1];
      snprintf (name, sizeof name, "%s@%s", e->export_id, e->snaps[i]);
      if (find (name) == NULL)
        fn (opaque, name);
    }
}

bool
registry_default_name (char out[EXPORT_ID_MAX + 1])
{
  unsigned n = 0;
  LOCK_FOR_SCOPE (&lock);

  for (struct entry *e = entries; e; e = e->next)
    if (e->v && !e->view && n++ == 0)
      strcpy (out, e->name);
  return n == 1;
}

/* What registry_list_ids passes store_list. */
struct id_lister {
  registry_id_fn fn;
  void *opaque;
};

/* Called by store_list for each "<root>/<id>/" prefix. */
static int
list_one (void *opaque, const char *key, uint64_t size, bool is_prefix)
{
  struct id_lister *l = opaque;
  size_t rootlen = strlen (env->root);
  char id[EXPORT_ID_MAX + 2];
  const char *start = key + (rootlen ? rootlen + 1 : 0);
  size_t len = strlen (start);

  if (!is_prefix || len < 2 || len > EXPORT_ID_MAX + 1)
    return 0;
  memcpy (id, start, len - 1);  /* without the trailing "/" */
  id[len - 1] = '\0';
  return id_export_valid (id) ? l->fn (l->opaque, id) : 0;
}

int
registry_list_ids (registry_id_fn fn, void *opaque)
{
  CLEANUP_FREE char *prefix = str_printf ("%s%s", env->root,
                                         env->root[0] ? "/" : "");
  struct id_lister l = { .fn = fn, .opaque = opaque };

  /* Direct mode: the one export is all there is to find (a view alone
   * is loaded at start, and never by id).
   */
  if (env->direct)
    return env->direct_snapshot ? 0 : fn (opaque, env->direct);
  if (prefix == NULL)
    return err_set (ENOMEM, "list exports: out of memory");
  if (store_list (env->st, prefix, "/", list_one, &l) == -1)
    return err_prefix ("list exports under \"%s\"", prefix);
  return 0;
}

/* CACHE_ROOT/.closed, or with EXPORT_ID the record in it (malloc'd). */
static char *
closed_path (const char *export_id)
{
  return str_printf ("%s/.closed%s%s", env->cache_root,
                     export_id ? "/" : "", export_id ? export_id : "");
}

int
registry_set_closed (const char *export_id, bool closed)
{
  CLEANUP_FREE char *dir = closed_path (NULL);
  CLEANUP_FREE char *path = closed_path (export_id);

  if (dir == NULL || path == NULL)
    return err_set (ENOMEM, "record %s as closed: out of memory", export_id);
  if (closed)
    return mkdir_p (dir, 0700) == -1 || file_write_atomic (path, "", 0) == -1
      ? err_prefix ("record %s as closed", export_id) : 0;
  if (unlink (path) == -1)
    return errno == ENOENT ? 0
      : err_set (errno, "forget that %s was closed: unlink %s: %m",
                 export_id, path);
  return fsync_dir (dir);
}

bool
registry_skip_closed (const char *export_id)
{
  CLEANUP_FREE char *path = closed_path (export_id);

  if (path && access (path, F_OK) == -1)
    return false;
  log_info ("discover: %s was closed on this host: not loaded (open it to "
            "load it again)", export_id);
  return true;
}

struct discovery {
  int takeover;
  int loaded;
};

/* registry_id_fn: load export ID. */
static int
discover_one (void *opaque, const char *id)
{
  struct discovery *d = opaque;

  if (registry_skip_closed (id))
    return 0;
  if (registry_load (id, d->takeover) == 0)
    d->loaded++;
  else if (errno == EUSERS && d->takeover == OWNER_TAKEOVER_WAIT) {
    /* Its owner is alive: it keeps the export, which is served here
     * read-only, as without takeover.
     */
    log_warn ("discover: %s; loaded read-only", err_msg ());
    if (registry_load (id, OWNER_TAKEOVER_NO) == 0)
      d->loaded++;
    else
      log_error ("discover: export %s skipped: %s", id, err_msg ());
  }
  else if (errno == ENOENT)
    log_debug ("discover: %s has no volume.json, skipped", id);
  else
    log_error ("discover: export %s skipped: %s", id, err_msg ());
  return 0;
}

int
registry_discover (int takeover)
{
  struct discovery d = { .takeover = takeover };

  if (registry_list_ids (discover_one, &d) == -1)
    log_error ("discover: %s", err_msg ());
  log_info ("discovered %d export%s", d.loaded, d.loaded == 1 ? "" : "s");
  return d.loaded;
}

void
registry_shutdown (void)
{
  struct entry *e;

  for (;;) {
    {
      LOCK_FOR_SCOPE (&lock);
      e = entries;
      if (e)
        unlink_entry (e);
    }
    if (e == NULL)
      break;
    if (e->v && volume_unload (e->v) == -1)
      log_error ("%s", err_msg ());
    free_entry (e);
  }
}
