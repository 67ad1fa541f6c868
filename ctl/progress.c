/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvolctl: progress of a long operation (see progress.h).
 *
 * lazyvold's blocking POST says nothing until the operation is over, but
 * the export's status counts its chunks and bytes as they go, with the
 * operation's rate so far (operation_progress).  So while the POST is in
 * flight, a status request runs beside it on a connection of its own,
 * one at a time, a new one 200 ms after the last reply; both move on in
 * client_run.  A status that shows another state (the operation has not
 * begun yet, or is already over) shows nothing.  The ETA is the bytes
 * left at that rate.
 *
 * Ctrl-C detaches.  SIGINT only sets a flag (installed without
 * SA_RESTART, so the wait returns at once); the loop then leaves the
 * requests unfinished and says where the operation goes on.  lazyvold
 * never cancels an operation whose client hung up (lazyvold(8)), so
 * detaching is the same as closing the connection.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "progress.h"
#include "show.h"
#include "util.h"

#define POLL_MS 200
#define PLAIN_EVERY_NS 1000000000ull     /* a plain line at most per second */
#define BAR_WIDTH 24

static volatile sig_atomic_t interrupted;

static void
on_sigint (int sig)
{
  interrupted = 1;
}

/* What the display knows. */
struct view {
  const struct progress_op *op;
  bool tty, drawn;              /* a bar is on the terminal's last line */
  uint64_t last_line_ns, last_done;
};

/* Show STATUS, a status reply of the export, if it shows the operation. */
static void
view_update (struct view *v, json_object *status)
{
  json_object *p = NULL;
  uint64_t now = time_mono_ns (), done, total, done_b, total_b, rate;
  const char *state = show_str (status, "operation_state");
  char d[SHOW_BUF], t[SHOW_BUF], rate_s[SHOW_BUF], eta_s[SHOW_BUF];
  int pct, fill;

  json_object_object_get_ex (status, "operation_progress", &p);
  done = show_u64 (p, "done");
  total = show_u64 (p, "total");
  done_b = show_u64 (p, "done_bytes");
  total_b = show_u64 (p, "total_bytes");
  rate = show_u64 (p, "bytes_per_s");
  if (v->op->quiet || state == NULL || strcmp (state, v->op->state) != 0 ||
      total == 0)
    return;
  pct = done >= total ? 100 : (int) (100 * done / total);
  show_bytes (done_b, d);
  show_bytes (total_b, t);
  if (rate > 0 && done > 0) {
    show_bytes (rate, rate_s);
    strcat (rate_s, "/s");
    show_duration ((double) (total_b > done_b ? total_b - done_b : 0) / rate,
                   eta_s);
  }
  else {
    strcpy (rate_s, "-");
    strcpy (eta_s, "-");
  }
  if (v->tty) {
    char bar[BAR_WIDTH + 1];

    fill = pct * BAR_WIDTH / 100;
    memset (bar, '#', fill);
    memset (bar + fill, '.', BAR_WIDTH - fill);
    bar[BAR_WIDTH] = '\0';
    fprintf (stderr, "\r%s %s [%s] %" PRIu64 "/%" PRIu64 " chunks, %s/%s "
             "%3d%%  %s  ETA %s\033[K", v->op->verb, v->op->export_id, bar,
             done, total, d, t, pct, rate_s, eta_s);
    v->drawn = true;
  }
  else if (done != v->last_done && now - v->last_line_ns >= PLAIN_EVERY_NS) {
    fprintf (stderr, "%s %s: %" PRIu64 "/%" PRIu64 " chunks (%s of %s), "
             "%d%%, %s, ETA %s\n", v->op->verb, v->op->export_id, done,
             total, d, t, pct, rate_s, eta_s);
    v->last_line_ns = now;
    v->last_done = done;
  }
}

/* Take the bar off the terminal. */
static void
view_clear (struct view *v)
{
  if (v->drawn)
    fputs ("\r\033[K", stderr);
  v->drawn = false;
}

/* End CALL, finished or not, and forget its reply. */
static void
drop (struct client_call *call)
{
  struct client_reply r;

  if (client_finish (call, &r) == 0)
    client_reply_free (&r);
}

/* Is the status reply R one in which the operation is over? */
static bool
op_over (const struct progress_op *op, const struct client_reply *r)
{
  const char *state = show_str (r->json, "operation_state");

  return !client_reply_ok (r) || state == NULL ||
    strcmp (state, op->state) != 0;
}

int
progress_wait (const struct progress_op *op, struct client_call *call,
               struct client_reply *reply)
{
  CLEANUP_FREE char *path = xasprintf ("/v1/exports/%s/status",
                                       op->export_id);
  struct view v = { .op = op, .tty = isatty (2) };
  struct sigaction sa = { .sa_handler = on_sigint }, old;
  struct client_call *poll = NULL;
  uint64_t next_poll = 0;
  bool detached = false;
  int r = -1;

  memset (reply, 0, sizeof *reply);
  interrupted = 0;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, &old);
  for (;;) {
    if ((detached = interrupted))
      break;
    if (call && client_done (call)) {
      r = client_finish (call, reply);
      call = NULL;
      break;
    }
    if (poll == NULL && time_mono_ns () >= next_poll &&
        (poll = client_start (op->sock, "GET", path, NULL)) == NULL)
      break;
    client_run (POLL_MS);
    if (poll && client_done (poll)) {
      struct client_reply st;
      int e = client_finish (poll, &st);

      poll = NULL;
      next_poll = time_mono_ns () + POLL_MS * 1000000ull;
      if (e == -1 && call == NULL)
        break;
      if (e == 0) {
        view_update (&v, st.json);
        if (call == NULL && op_over (op, &st)) {
          *reply = st;
          r = 0;
          break;
        }
        client_reply_free (&st);
      }
    }
  }
  sigaction (SIGINT, &old, NULL);
  view_clear (&v);
  if (poll)
    drop (poll);
  if (call)
    drop (call);
  if (detached) {
    err_clear ();
    fprintf (stderr, "lazyvolctl: detached: the %s goes on in lazyvold; "
             "follow it with lazyvolctl status %s\n", op->verb,
             op->export_id);
    return 1;
  }
  return r;
}
