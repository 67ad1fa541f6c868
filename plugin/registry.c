/* lazyvol plugin: the registry of loaded exports (see registry.h).
 *
 * A linked list under one mutex.  Loading does network I/O, so it is not
 * done under the mutex: a placeholder entry (v == NULL) is inserted first,
 * which makes a second load of the same name fail with EEXIST and makes
 * registry_get wait on "loaded" until the placeholder is filled or
 * removed.  An entry is unloaded only with no references: NBD connections
 * and running control commands each hold one.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "publish.h"
#include "registry.h"

struct entry {
  struct entry *next;
  char *name;
  char export_id[EXPORT_ID_MAX + 1];
  bool view;                    /* "E@S" */
  struct volume *v;             /* NULL while loading */
  unsigned refs, conns;
  char (*snaps)[SNAPSHOT_ID_LEN + 1];   /* known snapshot ids (writable) */
  size_t nsnaps;
};

static struct volume_env *env;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t load_done = PTHREAD_COND_INITIALIZER;
static struct entry *entries;

void
registry_init (struct volume_env *e)
{
  env = e;
}

/* Called with lock held. */
static struct entry *
find (const char *name)
{
  for (struct entry *e = entries; e; e = e->next)
    if (strcmp (e->name, name) == 0)
      return e;
  return NULL;
}

/* Called with lock held. */
static void
unlink_entry (struct entry *dead)
{
  struct entry **p = &entries;

  while (*p != dead)
    p = &(*p)->next;
  *p = dead->next;
}

static void
free_entry (struct entry *e)
{
  free (e->name);
  free (e->snaps);
  free (e);
}

/* Split NAME into an export id and an optional snapshot id, validating
 * both.  *SNAP points into SCRATCH.
 */
static int
parse_name (const char *name, char scratch[EXPORT_ID_MAX + 2 + SNAPSHOT_ID_LEN],
            const char **snap)
{
  char *at;

  if (strlen (name) > EXPORT_ID_MAX + 1 + SNAPSHOT_ID_LEN)
    return err_set (EINVAL, "export name too long");
  strcpy (scratch, name);
  at = strchr (scratch, '@');
  *snap = NULL;
  if (at) {
    *at = '\0';
    *snap = at + 1;
    if (!id_snapshot_valid (*snap))
      return err_set (EINVAL, "invalid snapshot id in export name "
                      "\"%.200s\"", name);
  }
  if (!id_export_valid (scratch))
    return err_set (EINVAL, "invalid export name \"%.200s\"", name);
  return 0;
}

int
registry_load (const char *name)
{
  char id[EXPORT_ID_MAX + 2 + SNAPSHOT_ID_LEN];
  const char *snap = NULL;
  struct entry *e;
  struct volume *v;

  if (parse_name (name, id, &snap) == -1)
    return -1;
  e = calloc (1, sizeof *e);
  if (e == NULL || (e->name = strdup (name)) == NULL) {
    free (e);
    return err_set (ENOMEM, "load %s: out of memory", name);
  }
  strcpy (e->export_id, id);
  e->view = snap != NULL;

  pthread_mutex_lock (&lock);
  if (find (name)) {
    pthread_mutex_unlock (&lock);
    free_entry (e);
    return err_set (EEXIST, "export %s is already loaded", name);
  }
  {
    struct entry **tail = &entries;
    while (*tail)
      tail = &(*tail)->next;
    *tail = e;
  }
  pthread_mutex_unlock (&lock);

  v = volume_load (env, id, snap);

  pthread_mutex_lock (&lock);
  if (v == NULL)
    unlink_entry (e);
  else
    e->v = v;
  pthread_cond_broadcast (&load_done);
  pthread_mutex_unlock (&lock);
  if (v == NULL) {
    free_entry (e);
    return -1;
  }
  log_info ("loaded export %s", name);
  if (!e->view)
    registry_refresh_snapshots (id);
  return 0;
}

/* Find NAME, waiting while it loads.  Called with lock held. */
static struct entry *
find_loaded (const char *name)
{
  struct entry *e;

  while ((e = find (name)) != NULL && e->v == NULL)
    pthread_cond_wait (&load_done, &lock);
  return e;
}

struct volume *
registry_get (const char *name, bool load_view, bool connection)
{
  struct entry *e;
  struct volume *v;

  pthread_mutex_lock (&lock);
  e = find_loaded (name);
  if (e == NULL && load_view && strchr (name, '@')) {
    pthread_mutex_unlock (&lock);
    if (registry_load (name) == -1 && errno != EEXIST)
      return NULL;
    pthread_mutex_lock (&lock);
    e = find_loaded (name);
  }
  if (e == NULL) {
    pthread_mutex_unlock (&lock);
    err_set (ENOENT, "no export named \"%.200s\" is loaded", name);
    return NULL;
  }
  e->refs++;
  if (connection)
    e->conns++;
  v = e->v;
  pthread_mutex_unlock (&lock);
  return v;
}

void
registry_put (struct volume *v, bool connection)
{
  pthread_mutex_lock (&lock);
  for (struct entry *e = entries; e; e = e->next)
    if (e->v == v) {
      e->refs--;
      if (connection)
        e->conns--;
      break;
    }
  pthread_mutex_unlock (&lock);
}

int
registry_unload (const char *name)
{
  struct entry *e;
  int r;

  pthread_mutex_lock (&lock);
  e = find_loaded (name);
  if (e == NULL) {
    pthread_mutex_unlock (&lock);
    return err_set (ENOENT, "no export named \"%.200s\" is loaded", name);
  }
  if (e->refs > 0) {
    unsigned conns = e->conns;
    pthread_mutex_unlock (&lock);
    return conns
      ? err_set (EBUSY, "export %s has %u connected client%s", name, conns,
                 conns == 1 ? "" : "s")
      : err_set (EBUSY, "export %s is in use by another command", name);
  }
  unlink_entry (e);
  pthread_mutex_unlock (&lock);

  r = volume_unload (e->v);
  if (r == 0)
    log_info ("unloaded export %s", name);
  free_entry (e);
  return r;
}

unsigned
registry_connections (const char *name)
{
  struct entry *e;
  unsigned n;

  pthread_mutex_lock (&lock);
  e = find (name);
  n = e ? e->conns : 0;
  pthread_mutex_unlock (&lock);
  return n;
}

int
registry_foreach (registry_fn fn, void *opaque)
{
  CLEANUP_FREE struct volume **vs = NULL;
  size_t n = 0, i;
  int r = 0;

  /* Take a reference to every loaded export, then call FN without the
   * lock (it may be slow), then drop the references.
   */
  pthread_mutex_lock (&lock);
  for (struct entry *e = entries; e; e = e->next)
    n++;
  vs = calloc (n ? n : 1, sizeof *vs);
  n = 0;
  for (struct entry *e = entries; vs && e; e = e->next)
    if (e->v) {
      e->refs++;
      vs[n++] = e->v;
    }
  pthread_mutex_unlock (&lock);
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
  struct entry *e;

  pthread_mutex_lock (&lock);
  e = find (export_id);
  if (e && !e->view) {
    free (e->snaps);
    e->snaps = ids;
    e->nsnaps = n;
    ids = NULL;
  }
  pthread_mutex_unlock (&lock);
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
  pthread_mutex_lock (&lock);
  for (struct entry *e = entries; e; e = e->next)
    for (size_t i = 0; e->v && i < e->nsnaps; i++) {
      char name[EXPORT_ID_MAX + 2 + SNAPSHOT_ID_LEN];
      snprintf (name, sizeof name, "%s@%s", e->export_id, e->snaps[i]);
      if (find (name) == NULL)
        fn (opaque, name);
    }
  pthread_mutex_unlock (&lock);
}

bool
registry_default_name (char out[EXPORT_ID_MAX + 1])
{
  unsigned n = 0;

  pthread_mutex_lock (&lock);
  for (struct entry *e = entries; e; e = e->next)
    if (e->v && !e->view && n++ == 0)
      strcpy (out, e->name);
  pthread_mutex_unlock (&lock);
  return n == 1;
}

/* Called by store_list for each "<root>/<id>/" prefix. */
static int
discover_one (void *opaque, const char *key, uint64_t size, bool is_prefix)
{
  int *loaded = opaque;
  size_t rootlen = strlen (env->root);
  char id[EXPORT_ID_MAX + 2];
  const char *start = key + (rootlen ? rootlen + 1 : 0);
  size_t len = strlen (start);

  if (!is_prefix || len < 2 || len > EXPORT_ID_MAX + 1)
    return 0;
  memcpy (id, start, len - 1);  /* without the trailing "/" */
  id[len - 1] = '\0';
  if (!id_export_valid (id))
    return 0;
  if (registry_load (id) == 0)
    (*loaded)++;
  else if (errno == ENOENT)
    log_debug ("discover: %s has no volume.json, skipped", key);
  else
    log_error ("discover: export %s skipped: %s", id, err_msg ());
  return 0;
}

int
registry_discover (void)
{
  CLEANUP_FREE char *prefix = env->root[0] ? xasprintf ("%s/", env->root)
    : xasprintf ("%s", "");
  int loaded = 0;

  if (store_list (env->st, prefix, "/", discover_one, &loaded) == -1)
    log_error ("discover exports under \"%s\": %s", prefix, err_msg ());
  log_info ("discovered %d export%s under \"%s\"", loaded,
            loaded == 1 ? "" : "s", prefix);
  return loaded;
}

void
registry_shutdown (void)
{
  struct entry *e;

  for (;;) {
    pthread_mutex_lock (&lock);
    e = entries;
    if (e)
      entries = e->next;
    pthread_mutex_unlock (&lock);
    if (e == NULL)
      break;
    if (e->v && volume_unload (e->v) == -1)
      log_error ("%s", err_msg ());
    free_entry (e);
  }
}
