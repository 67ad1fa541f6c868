/* lazyvold: relays to the plugin's control socket (see relay.h).
 *
 * Each relay owns one bufferevent on a non-blocking Unix socket and lives
 * on the list of pending relays until its reply line arrives or the
 * connection fails; then it is unlinked and freed before the callback
 * runs, so a callback may start new relays.  The daemon has one thread, so
 * the list needs no lock.
 *
 * The connect is made directly (unixsock_connect): connecting to a
 * listening Unix socket succeeds or fails at once (ENOENT, ECONNREFUSED
 * while nbdkit is down), so there is no connect state to wait for.
 *
 * The plugin answers every request line with exactly one line.  A reply
 * longer than REPLY_MAX is refused, so a confused peer cannot make the
 * daemon buffer without bound.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "err.h"
#include "relay.h"
#include "unixsock.h"

#define REPLY_MAX (64 * 1024 * 1024)

struct relay {
  struct relay *next, **prevp;  /* the pending list */
  struct bufferevent *bev;
  const char *path;             /* the control socket, for messages */
  relay_reply_fn fn;
  void *opaque;
};

static struct relay *pending;

static void
relay_free (struct relay *r)
{
  if (r->next)
    r->next->prevp = r->prevp;
  *r->prevp = r->next;
  bufferevent_free (r->bev);
  free (r);
}

/* Free R, then hand REPLY (or NULL and the recorded error) to its owner. */
static void
relay_finish (struct relay *r, json_object *reply)
{
  relay_reply_fn fn = r->fn;
  void *opaque = r->opaque;

  relay_free (r);
  fn (reply, opaque);
  json_object_put (reply);
}

static json_object *
parse_reply (const char *path, const char *line, size_t len)
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
relay_read (struct bufferevent *bev, void *arg)
{
  struct relay *r = arg;
  struct evbuffer *in = bufferevent_get_input (bev);
  size_t len;
  char *line = evbuffer_readln (in, &len, EVBUFFER_EOL_LF);
  json_object *reply;

  if (line == NULL) {
    if (evbuffer_get_length (in) > REPLY_MAX) {
      err_set (EMSGSIZE, "control socket %s: reply longer than %d bytes",
               r->path, REPLY_MAX);
      relay_finish (r, NULL);
    }
    return;
  }
  reply = parse_reply (r->path, line, len);
  free (line);
  relay_finish (r, reply);
}

static void
relay_event (struct bufferevent *bev, short what, void *arg)
{
  struct relay *r = arg;

  if (what & BEV_EVENT_EOF)
    err_set (EPIPE, "control socket %s: nbdkit closed the connection "
             "without replying", r->path);
  else
    err_set (EVUTIL_SOCKET_ERROR (), "control socket %s: %m", r->path);
  relay_finish (r, NULL);
}

int
relay_send (struct event_base *base, const char *path, json_object *req,
            relay_reply_fn fn, void *opaque)
{
  const char *line = json_object_to_json_string_ext (req,
                                                     JSON_C_TO_STRING_PLAIN);
  struct relay *r;
  int fd = unixsock_connect (path);

  if (fd == -1)
    return -1;
  r = calloc (1, sizeof *r);
  if (r == NULL ||
      (r->bev = bufferevent_socket_new (base, fd,
                                        BEV_OPT_CLOSE_ON_FREE)) == NULL) {
    free (r);
    close (fd);
    return err_set (ENOMEM, "out of memory");
  }
  r->path = path;
  r->fn = fn;
  r->opaque = opaque;
  r->next = pending;
  if (pending)
    pending->prevp = &r->next;
  r->prevp = &pending;
  pending = r;
  bufferevent_setcb (r->bev, relay_read, NULL, relay_event, r);
  if (bufferevent_write (r->bev, line, strlen (line)) == -1 ||
      bufferevent_write (r->bev, "\n", 1) == -1 ||
      bufferevent_enable (r->bev, EV_READ) == -1) {
    relay_free (r);
    return err_set (ENOMEM, "control socket %s: cannot queue the request",
                    path);
  }
  return 0;
}

void
relay_shutdown (void)
{
  while (pending)
    relay_free (pending);
}
