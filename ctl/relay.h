/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: the client side of the plugin's control socket.
 *
 * Each request line goes out on a connection of its own (from a small
 * pool) and its one reply line is awaited without blocking the event
 * loop, so many requests (a compact that takes minutes next to a status
 * that takes a millisecond) are in flight at once; the plugin runs each
 * connection in its own thread.
 */
#ifndef LAZYVOLD_RELAY_H
#define LAZYVOLD_RELAY_H

#include <event2/event.h>
#include <json-c/json.h>

/* Called once per relay: REPLY is the reply object (freed after the call
 * returns), or NULL with err_msg() saying why there is none.
 */
typedef void (*relay_reply_fn) (json_object *reply, void *opaque);
/* Called instead with a success reply's text, as the plugin sent it: LEN
 * bytes at LINE, without the newline; the text may be changed in place,
 * and is freed after the call returns.
 */
typedef void (*relay_text_fn) (char *line, size_t len, void *opaque);

/* Send the requests of relay_send to control socket PATH (which must
 * outlive the relays), from loop BASE.  0, or -1 with err_set (ENOMEM).
 */
int relay_init (struct event_base *base, const char *path)
  __attribute__ ((__nonnull__));

/* Send REQ (not consumed) to the control socket.  FN gets the reply, or
 * NULL if the socket cannot be reached or closes first (or memory runs
 * out: then err_errno () is ENOMEM), always later, from the loop.  0, or
 * -1 with err_set (ENOMEM) if out of memory (then FN is never called).
 */
int relay_send (json_object *req, relay_reply_fn fn, void *opaque)
  __attribute__ ((__nonnull__ (1, 2)));
/* The same, except that a success reply (PROTOCOL_REPLY_OK) goes to
 * TEXT_FN, unparsed, for a large reply that is passed on as it is.
 */
int relay_send_text (json_object *req, relay_text_fn text_fn,
                     relay_reply_fn fn, void *opaque)
  __attribute__ ((__nonnull__ (1, 3)));

/* Drop every request and connection, without calling back (at exit). */
void relay_shutdown (void);

#endif /* LAZYVOLD_RELAY_H */
