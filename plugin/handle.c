/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: NBD connection handles (see handle.h).
 *
 * A client that lists the exports and asks for their sizes opens and
 * closes every one in turn: nbdinfo --list does that for each name the
 * list gives, and the list names every snapshot view.  An NBD_OPT_INFO
 * runs the plugin's open, get_size, the can_* callbacks and close, and
 * nothing else.  Loading a view fetches its whole manifest and makes a
 * cache, so a view is loaded only at the first request that needs its
 * data (handle_volume); until then its handle knows the sizes its summary
 * gives (a small read) and that it is read-only.  A listing of a
 * thousand views then costs a thousand small reads and leaves nothing
 * loaded.  A writable export, and a view that is loaded already, are
 * referenced at open as they always were.
 *
 * Locking: the volume pointer is set once, under h->lock, by the first
 * request that needs it, and read without the lock after that (an
 * atomic: nbdkit's PARALLEL model runs requests of one connection at
 * once).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "format.h"
#include "handle.h"
#include "lock.h"
#include "registry.h"

struct handle {
  char name[NAME_MAX_LEN + 1];
  uint64_t size;
  uint32_t chunk_size;
  pthread_mutex_t lock;         /* held while loading the view */
  _Atomic (struct volume *) v;  /* referenced; NULL until loaded */
};

struct handle *
handle_open (const char *name)
{
  struct handle *h;
  struct volume *v;

  if (strlen (name) > NAME_MAX_LEN) {
    err_set (ENOENT, "no export named \"%.200s\"", name);
    return NULL;
  }
  if ((h = calloc (1, sizeof *h)) == NULL) {
    err_set (ENOMEM, "out of memory");
    return NULL;
  }
  strcpy (h->name, name);
  pthread_mutex_init (&h->lock, NULL);
  v = registry_get (name, false, true);
  if (v != NULL) {
    h->size = volume_size (v);
    h->chunk_size = volume_chunk_size (v);
    atomic_store (&h->v, v);
    return h;
  }
  /* Not loaded: a view is looked up, an export must be loaded. */
  if (strchr (name, '@') == NULL ||
      registry_view_geometry (name, &h->size, &h->chunk_size) == -1) {
    pthread_mutex_destroy (&h->lock);
    free (h);
    return NULL;
  }
  return h;
}

void
handle_close (struct handle *h)
{
  struct volume *v = atomic_load (&h->v);

  if (v)
    registry_put (v, true);
  pthread_mutex_destroy (&h->lock);
  free (h);
}

struct volume *
handle_volume (struct handle *h)
{
  struct volume *v = atomic_load (&h->v);

  if (v)
    return v;
  {
    LOCK_FOR_SCOPE (&h->lock);

    if ((v = atomic_load (&h->v)) != NULL)
      return v;
    if ((v = registry_get (h->name, true, true)) == NULL)
      return NULL;
    /* A snapshot never changes, but its summary may lie. */
    if (volume_size (v) != h->size || volume_chunk_size (v) != h->chunk_size) {
      registry_put (v, true);
      err_set (EBADMSG, "%s: its manifest gives %ju bytes in chunks of %u, "
               "its summary said %ju and %u", h->name,
               (uintmax_t) volume_size (v), volume_chunk_size (v),
               (uintmax_t) h->size, h->chunk_size);
      return NULL;
    }
    atomic_store (&h->v, v);
  }
  return v;
}

uint64_t
handle_size (const struct handle *h)
{
  return h->size;
}

uint32_t
handle_chunk_size (const struct handle *h)
{
  return h->chunk_size;
}

bool
handle_writable (struct handle *h)
{
  struct volume *v = atomic_load (&h->v);

  return v && volume_writable (v);
}
