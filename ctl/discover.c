/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: discovery of the exports (see discover.h).
 *
 * A discovery is: held (the test hook's file exists; polled every
 * HOLD_POLL_MS), listing (the plugin's "discover" command lists the
 * store's export folders), opening (an "open" per id, at most
 * OPEN_PARALLEL in flight, so that admin requests still find free control
 * connections; one at a time with --takeover, whose opens wait out the
 * lease of a dead owner: a second take of the same owner's exports
 * meanwhile would fence its lease record, which the first would take for
 * a renewal -- an owner alive -- while the plugin, one at a time,
 * remembers the dead owner and waits for it once), then done -- or failed, if the listing failed, or
 * interrupted, if nbdkit stopped answering (it died, and its restart
 * discovers again; or lazyvold is shutting down).  An adopted nbdkit is
 * not discovered at all ("adopted"): its exports are as the admin left
 * them, and opening every export of the store again would load the ones
 * closed since and take over again the ones given up.  nbdkit
 * serves meanwhile: an NBD client that asks for an export not loaded yet
 * is refused as for an unknown export, and gets it once it is loaded.
 *
 * The outcome of each open: loaded; already loaded (an adopted nbdkit
 * keeps its exports) counts as loaded; a folder without volume.json is no
 * export and is not counted; with --takeover (not force), an export whose
 * owner is alive is opened again without takeover, read-only, as the
 * plugin's own discovery does; any other failure is counted and its
 * error kept (the first FAILURES_MAX), logged, and the next id is opened.
 *
 * Discovery and the admin API meet on the same exports.  A create, open
 * or clone of an id discovery then opens finds it loaded: counted as
 * loaded.  A close of an export discovery has not opened yet does not
 * keep it closed: discovery opens it afterwards -- a close during the
 * first seconds after a start is undone, as a restart of nbdkit undoes
 * every close (closes are not remembered; see lazyvold(8)).
 *
 * Every discover_start begins a new generation; a reply that carries an
 * older one (nbdkit restarted meanwhile) is dropped.  One thread, the
 * event loop's: no locks.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "discover.h"
#include "err.h"
#include "relay.h"
#include "util.h"

#define OPEN_PARALLEL 4
#define FAILURES_MAX 16
#define HOLD_POLL_MS 100

enum state { OFF, HELD, LISTING, OPENING, DONE, FAILED, INTERRUPTED,
             ADOPTED };
static const char *const state_names[] = {
  "off", "held", "listing", "opening", "done", "failed", "interrupted",
  "adopted",
};

static struct {
  const char *takeover, *hold_file;
  struct event *hold_timer;
  unsigned gen;                 /* of the discovery running */
  enum state state;
  char error[256];              /* FAILED: why */
  json_object *ids;             /* the ids listed, an array */
  size_t next, in_flight;
  unsigned discovered, loaded, failed;
  json_object *failures;        /* [{export_id, error}] */
} d;

/* An open in flight. */
struct open_call {
  unsigned gen;
  bool takeover;                /* with --takeover */
  char id[];
};

static void pump (void);
static void on_open (json_object *reply, void *opaque);

/* End the discovery in STATE (FAILED or INTERRUPTED), WHY saying why. */
static void
stop (enum state state, const char *why)
{
  d.state = state;
  d.gen++;                      /* replies still to come are dropped */
  snprintf (d.error, sizeof d.error, "%s", why);
  if (state == FAILED)
    log_error ("discovery failed: %s", why);
  else
    log_warn ("discovery interrupted: %s", why);
}

/* Open export ID, with TAKEOVER as lazyvold's --takeover says.  0, or -1
 * with err_set.
 */
static int
send_open (const char *id, bool takeover)
{
  struct open_call *c = malloc (sizeof *c + strlen (id) + 1);
  json_object *cmd = json_object_new_object ();

  if (c == NULL || cmd == NULL) {
    err_set (ENOMEM, "out of memory");
    goto err;
  }
  c->gen = d.gen;
  c->takeover = takeover;
  strcpy (c->id, id);
  json_object_object_add (cmd, "cmd", json_object_new_string ("open"));
  json_object_object_add (cmd, "export_id", json_object_new_string (id));
  if (takeover)
    json_object_object_add (cmd, "takeover",
                            strcmp (d.takeover, "force") == 0
                            ? json_object_new_string ("force")
                            : json_object_new_boolean (true));
  if (relay_send (cmd, on_open, c) == -1)
    goto err;
  json_object_put (cmd);
  d.in_flight++;
  return 0;

 err:
  json_object_put (cmd);
  free (c);
  return -1;
}

/* Count a failure to open ID for WHY. */
static void
failed (const char *id, const char *why)
{
  json_object *f;

  d.failed++;
  log_error ("discovery: export %s: %s", id, why);
  if (json_object_array_length (d.failures) >= FAILURES_MAX)
    return;
  f = json_object_new_object ();
  json_object_object_add (f, "export_id", json_object_new_string (id));
  json_object_object_add (f, "error", json_object_new_string (why));
  json_object_array_add (d.failures, f);
}

/* relay_reply_fn: the outcome of an open; then open the next. */
static void
on_open (json_object *reply, void *opaque)
{
  struct open_call *c = opaque;
  json_object *ok = NULL, *code = NULL, *error = NULL;
  const char *code_s;

  if (c->gen != d.gen) {
    free (c);
    return;
  }
  d.in_flight--;
  if (reply == NULL) {          /* nbdkit is gone: the others would fail too */
    stop (INTERRUPTED, err_msg ());
    free (c);
    return;
  }
  {
    json_object_object_get_ex (reply, "ok", &ok);
    json_object_object_get_ex (reply, "code", &code);
    json_object_object_get_ex (reply, "error", &error);
  }
  code_s = code ? json_object_get_string (code) : "";
  if (json_object_get_boolean (ok))
    d.loaded++;
  else if (strcmp (code_s, "already_exists") == 0)
    d.loaded++;
  else if (strcmp (code_s, "not_found") == 0) {
    d.discovered--;
    log_debug ("discovery: %s has no volume.json, skipped", c->id);
  }
  else if (c->takeover && strcmp (code_s, "owned") == 0 &&
           strcmp (d.takeover, "true") == 0) {
    log_warn ("discovery: %s; loading it read-only",
              error ? json_object_get_string (error) : c->id);
    if (send_open (c->id, false) == -1)
      failed (c->id, err_msg ());
  }
  else
    failed (c->id, error ? json_object_get_string (error) : "open failed");
  free (c);
  pump ();
}

/* Open the next ids, up to OPEN_PARALLEL at once; done when none is
 * left.
 */
static void
pump (void)
{
  size_t n = json_object_array_length (d.ids);

  while (d.in_flight < (d.takeover ? 1 : OPEN_PARALLEL) && d.next < n) {
    const char *id = json_object_get_string
      (json_object_array_get_idx (d.ids, d.next++));

    if (send_open (id, d.takeover != NULL) == -1)
      failed (id, err_msg ());
  }
  if (d.in_flight == 0 && d.next >= n) {
    d.state = DONE;
    log_info ("discovery: %u export%s loaded, %u failed", d.loaded,
              d.loaded == 1 ? "" : "s", d.failed);
  }
}

/* relay_reply_fn: the plugin's list of export ids; open them. */
static void
on_list (json_object *reply, void *opaque)
{
  json_object *ok = NULL, *ids = NULL, *error = NULL;

  if ((uintptr_t) opaque != d.gen)
    return;
  if (reply == NULL) {
    stop (INTERRUPTED, err_msg ());
    return;
  }
  json_object_object_get_ex (reply, "ok", &ok);
  json_object_object_get_ex (reply, "error", &error);
  if (!json_object_get_boolean (ok) ||
      !json_object_object_get_ex (reply, "export_ids", &ids) ||
      !json_object_is_type (ids, json_type_array)) {
    stop (FAILED, error ? json_object_get_string (error)
          : "the plugin's reply lists no export ids");
    return;
  }
  d.ids = json_object_get (ids);
  d.discovered = json_object_array_length (ids);
  d.state = OPENING;
  pump ();
}

/* Ask the plugin for the export ids of the store. */
static void
list (void)
{
  json_object *cmd = json_object_new_object ();

  d.state = LISTING;
  json_object_object_add (cmd, "cmd", json_object_new_string ("discover"));
  if (relay_send (cmd, on_list, (void *) (uintptr_t) d.gen) == -1)
    stop (FAILED, err_msg ());
  json_object_put (cmd);
}

/* Wait while the hold file exists, then list. */
static void
on_hold_timer (evutil_socket_t fd, short what, void *arg)
{
  static const struct timeval poll = { 0, HOLD_POLL_MS * 1000 };

  if (access (d.hold_file, F_OK) == 0)
    evtimer_add (d.hold_timer, &poll);
  else
    list ();
}

int
discover_init (struct event_base *base, const char *takeover,
               const char *hold_file)
{
  d.takeover = takeover;
  d.hold_file = hold_file;
  d.failures = json_object_new_array ();
  d.hold_timer = evtimer_new (base, on_hold_timer, NULL);
  if (d.failures == NULL || d.hold_timer == NULL)
    return err_set (ENOMEM, "discovery: out of memory");
  return 0;
}

void
discover_start (bool adopted)
{
  d.gen++;
  json_object_put (d.ids);
  d.ids = NULL;
  json_object_put (d.failures);
  d.failures = json_object_new_array ();
  d.next = d.in_flight = 0;
  d.discovered = d.loaded = d.failed = 0;
  d.error[0] = '\0';
  evtimer_del (d.hold_timer);
  if (adopted)
    d.state = ADOPTED;
  else if (d.hold_file && access (d.hold_file, F_OK) == 0) {
    d.state = HELD;
    log_info ("discovery: held while %s exists", d.hold_file);
    on_hold_timer (-1, 0, NULL);
  }
  else
    list ();
}

void
discover_stop (void)
{
  evtimer_del (d.hold_timer);
  if (d.state == HELD || d.state == LISTING || d.state == OPENING)
    stop (INTERRUPTED, "lazyvold is shutting down");
}

void
discover_add_health (json_object *o)
{
  json_object *h = json_object_new_object ();

  json_object_object_add (h, "state",
                          json_object_new_string (state_names[d.state]));
  json_object_object_add (h, "discovered",
                          json_object_new_int64 (d.discovered));
  json_object_object_add (h, "loaded", json_object_new_int64 (d.loaded));
  json_object_object_add (h, "failed", json_object_new_int64 (d.failed));
  json_object_object_add (h, "error", d.error[0]
                          ? json_object_new_string (d.error) : NULL);
  json_object_object_add (h, "failures", json_object_get (d.failures));
  json_object_object_add (o, "discovery", h);
}

void
discover_free (void)
{
  if (d.hold_timer)
    event_free (d.hold_timer);
  d.hold_timer = NULL;
  json_object_put (d.ids);
  json_object_put (d.failures);
  d.ids = d.failures = NULL;
}
