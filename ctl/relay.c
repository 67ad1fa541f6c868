/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: relays to the plugin's control socket (see relay.h).
 *
 * Requests travel over a pool of at most POOL_MAX connections, each
 * carrying one request at a time: the plugin runs each connection in its
 * own thread and answers every request line with exactly one line, so a
 * compact occupies one connection while the others go on serving.  A
 * request that finds no idle connection opens one, or, with POOL_MAX
 * open, waits its turn in a queue.  The pool exists because the plugin
 * serves at most 64 control connections and refuses more: opening one
 * connection per request, a burst of requests outran the plugin's
 * noticing of closed ones and got refused.
 *
 * A connection is: connecting (only while a connect that found the
 * plugin's listen backlog full, EAGAIN, waits to be tried again after
 * 1 ms, doubling, up to CONNECT_TRIES times), busy with one request, or
 * idle.  Otherwise connecting to a Unix socket succeeds or fails at once
 * (ENOENT or ECONNREFUSED while nbdkit is down).  Idle connections are
 * read too, so that when nbdkit exits their EOF frees them.
 *
 * Every outcome reaches the callback from the event loop, never from
 * relay_send itself: a failure found at once is reported through the
 * connection's timer with a zero delay, or, for a request that cannot
 * have a connection because memory ran out, through the relay's own
 * timer (made at relay_init, so that failing needs no memory).  The
 * request is unlinked before its callback runs, so a callback may send
 * more.  One thread: no locks.
 *
 * A reply longer than REPLY_MAX is refused, so a confused peer cannot make
 * the daemon buffer without bound.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "err.h"
#include "protocol.h"
#include "relay.h"
#include "unixsock.h"
#include "util.h"

#define POOL_MAX 32
#define CONNECT_TRIES 10
#define REPLY_MAX (64 * 1024 * 1024)
#define READ_MAX (64 * 1024)

struct relay {
  struct relay *next;           /* in the queue */
  char *line;                   /* the request, newline included */
  relay_reply_fn fn;
  relay_text_fn text_fn;        /* success replies unparsed, if not NULL */
  void *opaque;
};

struct conn {
  struct conn *next, **prevp;   /* the pool */
  struct bufferevent *bev;      /* NULL until connected */
  struct event *timer;          /* a connect retry, or a failure to report */
  unsigned tries;               /* connects that found the backlog full */
  struct err_saved failure;     /* that failure (errnum 0: none) */
  struct relay *relay;          /* the request on it; NULL when idle */
  size_t scanned;               /* input searched for the newline so far */
};

static struct event_base *base;
static const char *path;
static struct relay *queue, **queue_tail = &queue;
static struct relay *unsent;    /* could not get a connection: out of memory */
static struct event *unsent_timer;      /* fails the unsent from the loop */
static struct conn *pool;
static unsigned pool_size;

static void
relay_free (struct relay *r)
{
  free (r->line);
  free (r);
}

/* Free the requests of *LIST, without calling back. */
static void
relay_free_all (struct relay **list)
{
  while (*list) {
    struct relay *r = *list;
    *list = r->next;
    relay_free (r);
  }
}

static void
conn_free (struct conn *c)
{
  if (c->next)
    c->next->prevp = c->prevp;
  *c->prevp = c->next;
  pool_size--;
  if (c->bev)
    bufferevent_free (c->bev);
  event_free (c->timer);
  if (c->relay)
    relay_free (c->relay);
  free (c);
}

/* Hand REPLY (or NULL and the recorded error) to R's owner; free R. */
static void
finish (struct relay *r, json_object *reply)
{
  r->fn (reply, r->opaque);
  relay_free (r);
}

static void dispatch (void);

/* C failed with the recorded error: drop C, fail its request, go on.  C
 * goes first, so that the callback cannot hand a new request to it.
 */
static void
conn_failed (struct conn *c)
{
  struct relay *r = c->relay;

  c->relay = NULL;
  conn_free (c);
  if (r)
    finish (r, NULL);
  dispatch ();
}

/* Report the recorded error for C from the loop. */
static void
fail_later (struct conn *c)
{
  struct timeval now = { 0, 0 };

  err_save (&c->failure);
  evtimer_add (c->timer, &now);
}

static json_object *
parse_reply (const char *line, size_t len)
{
  json_tokener *tok = json_tokener_new ();
  json_object *o = tok ? json_tokener_parse_ex (tok, line, len) : NULL;

  if (o == NULL || json_tokener_get_parse_end (tok) != len ||
      !json_object_is_type (o, json_type_object)) {
    json_object_put (o);
    o = NULL;
    err_set (EBADMSG, "control socket %s: the reply is not a JSON object",
             path);
  }
  if (tok)
    json_tokener_free (tok);
  return o;
}

static void
conn_read (struct bufferevent *bev, void *arg)
{
  struct conn *c = arg;
  struct evbuffer *in = bufferevent_get_input (bev);
  struct relay *r = c->relay;
  struct evbuffer_ptr from, eol;
  size_t len;
  char *line;
  json_object *reply;

  /* A large reply arrives in many reads: the newline is searched for in
   * the new bytes only, not in the whole reply every time.
   */
  evbuffer_ptr_set (in, &from, c->scanned, EVBUFFER_PTR_SET);
  eol = evbuffer_search_eol (in, &from, NULL, EVBUFFER_EOL_LF);
  if (eol.pos == -1) {
    c->scanned = evbuffer_get_length (in);
    if (c->scanned > REPLY_MAX) {
      err_set (EMSGSIZE, "control socket %s: a reply over %d bytes", path,
               REPLY_MAX);
      conn_failed (c);
    }
    return;
  }
  c->scanned = 0;
  if ((line = evbuffer_readln (in, &len, EVBUFFER_EOL_LF)) == NULL) {
    err_set (ENOMEM, "control socket %s: out of memory for a reply", path);
    conn_failed (c);
    return;
  }
  if (r && r->text_fn && len >= strlen (PROTOCOL_REPLY_OK) &&
      memcmp (line, PROTOCOL_REPLY_OK, strlen (PROTOCOL_REPLY_OK)) == 0) {
    c->relay = NULL;
    r->text_fn (line, len, r->opaque);
    free (line);
    relay_free (r);
    dispatch ();
    return;
  }
  reply = r ? parse_reply (line, len) : NULL;
  free (line);
  if (reply == NULL) {
    if (r == NULL)
      err_set (EBADMSG, "control socket %s: a reply to no request", path);
    conn_failed (c);
    return;
  }
  c->relay = NULL;              /* idle: the callback may reuse it */
  finish (r, reply);
  json_object_put (reply);
  dispatch ();
}

static void
conn_event (struct bufferevent *bev, short what, void *arg)
{
  struct conn *c = arg;

  if (what & BEV_EVENT_EOF)
    err_set (EPIPE, "control socket %s: nbdkit closed the connection "
             "without replying", path);
  else
    err_set (EVUTIL_SOCKET_ERROR (), "control socket %s: %m", path);
  conn_failed (c);
}

/* Connect C and send its request; a failure is reported later. */
static void
conn_connect (struct conn *c)
{
  struct timeval delay = { 0, 1000 << c->tries };
  int fd = unixsock_connect (path);

  if (fd == -1 && errno == EAGAIN && ++c->tries < CONNECT_TRIES) {
    evtimer_add (c->timer, &delay);     /* the backlog is full */
    return;
  }
  if (fd == -1) {
    err_prefix ("control socket");
    fail_later (c);
    return;
  }
  c->bev = bufferevent_socket_new (base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (c->bev == NULL) {
    close (fd);
    err_set (ENOMEM, "out of memory");
    fail_later (c);
    return;
  }
  bufferevent_setcb (c->bev, conn_read, NULL, conn_event, c);
  /* A megabyte of list in 16 reads rather than libevent's 64. */
  bufferevent_set_max_single_read (c->bev, READ_MAX);
  if (bufferevent_write (c->bev, c->relay->line,
                         strlen (c->relay->line)) == -1 ||
      bufferevent_enable (c->bev, EV_READ) == -1) {
    err_set (ENOMEM, "control socket %s: cannot queue the request", path);
    fail_later (c);
  }
}

static void
on_timer (evutil_socket_t fd, short what, void *arg)
{
  struct conn *c = arg;

  if (c->failure.errnum) {
    err_restore (&c->failure);
    conn_failed (c);
  }
  else
    conn_connect (c);
}

/* A new connection carrying R, or NULL if out of memory. */
static struct conn *
conn_new (struct relay *r)
{
  struct conn *c = calloc (1, sizeof *c);

  if (c == NULL || (c->timer = evtimer_new (base, on_timer, c)) == NULL) {
    free (c);
    return NULL;
  }
  c->relay = r;
  c->next = pool;
  if (pool)
    pool->prevp = &c->next;
  c->prevp = &pool;
  pool = c;
  pool_size++;
  conn_connect (c);
  return c;
}

/* Give queued requests, oldest first, to idle or new connections. */
static void
dispatch (void)
{
  while (queue) {
    struct relay *r = queue;
    struct conn *c;

    for (c = pool; c && c->relay; c = c->next)
      ;
    if (c == NULL && pool_size == POOL_MAX)
      return;
    queue = r->next;
    if (queue == NULL)
      queue_tail = &queue;
    if (c == NULL) {
      if (conn_new (r) == NULL) {
        struct timeval now = { 0, 0 };
        r->next = unsent;
        unsent = r;
        evtimer_add (unsent_timer, &now);
      }
      continue;
    }
    c->relay = r;
    if (bufferevent_write (c->bev, r->line, strlen (r->line)) == -1) {
      err_set (ENOMEM, "control socket %s: cannot queue the request", path);
      fail_later (c);
    }
  }
}

static void
on_unsent (evutil_socket_t fd, short what, void *arg)
{
  struct relay *list = unsent;  /* a callback may send, and fail, more */

  unsent = NULL;
  while (list) {
    struct relay *r = list;
    list = r->next;
    err_set (ENOMEM, "control socket %s: out of memory for a connection",
             path);
    finish (r, NULL);
  }
}

int
relay_init (struct event_base *b, const char *control)
{
  base = b;
  path = control;
  unsent_timer = evtimer_new (base, on_unsent, NULL);
  if (unsent_timer == NULL)
    return err_set (ENOMEM, "control socket %s: out of memory", path);
  return 0;
}

int
relay_send (json_object *req, relay_reply_fn fn, void *opaque)
{
  return relay_send_text (req, NULL, fn, opaque);
}

int
relay_send_text (json_object *req, relay_text_fn text_fn, relay_reply_fn fn,
                 void *opaque)
{
  struct relay *r = calloc (1, sizeof *r);

  if (r == NULL ||
      (r->line = str_printf ("%s\n", json_object_to_json_string_ext
                             (req, JSON_C_TO_STRING_PLAIN))) == NULL) {
    free (r);
    return err_set (ENOMEM, "control socket %s: out of memory", path);
  }
  r->fn = fn;
  r->text_fn = text_fn;
  r->opaque = opaque;
  *queue_tail = r;
  queue_tail = &r->next;
  dispatch ();
  return 0;
}

void
relay_shutdown (void)
{
  while (pool)
    conn_free (pool);
  relay_free_all (&queue);
  queue_tail = &queue;
  relay_free_all (&unsent);
  if (unsent_timer)
    event_free (unsent_timer);
  unsent_timer = NULL;
}
