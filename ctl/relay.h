/* lazyvold: the client side of the plugin's control socket.
 *
 * A relay sends one request line over a fresh Unix connection and waits
 * for the one reply line without blocking the event loop, so any number
 * of requests (a compact that takes minutes next to a status that takes a
 * millisecond) are in flight at once; the plugin runs each connection in
 * its own thread.
 */
#ifndef LAZYVOLD_RELAY_H
#define LAZYVOLD_RELAY_H

#include <event2/event.h>
#include <json-c/json.h>

/* Called once per relay: REPLY is the reply object (freed after the call
 * returns), or NULL with err_msg() saying why there is none.
 */
typedef void (*relay_reply_fn) (json_object *reply, void *opaque);

/* Connect to control socket PATH and send REQ (not consumed); FN gets
 * the reply later, never before relay_send returns.  0, or -1 with
 * err_set if the socket cannot be reached (then FN is not called).
 */
int relay_send (struct event_base *base, const char *path, json_object *req,
                relay_reply_fn fn, void *opaque)
  __attribute__ ((__nonnull__ (1, 2, 3, 4)));

/* Drop every relay still waiting, without calling back (at exit). */
void relay_shutdown (void);

#endif /* LAZYVOLD_RELAY_H */
