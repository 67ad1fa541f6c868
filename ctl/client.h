/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvolctl: requests to lazyvold's admin API, HTTP/1.1 with JSON
 * bodies on its Unix socket (libcurl, CURLOPT_UNIX_SOCKET_PATH).
 *
 * Several requests may be in flight at once (a snapshot's POST and the
 * status polls that show its progress); client_run drives them all.
 */
#ifndef LAZYVOLCTL_CLIENT_H
#define LAZYVOLCTL_CLIENT_H

#include <stdbool.h>

#include <json-c/json.h>

/* lazyvolctl's exit codes, documented in lazyvolctl(8). */
enum {
  CLIENT_EXIT_OK = 0,
  CLIENT_EXIT_ERROR = 1,        /* any other error */
  CLIENT_EXIT_USAGE = 2,        /* bad command line */
  CLIENT_EXIT_NOT_FOUND = 3,    /* HTTP 404 */
  CLIENT_EXIT_CONFLICT = 4,     /* HTTP 409 */
  CLIENT_EXIT_STORE = 5,        /* the object store failed */
  CLIENT_EXIT_DETACHED = 130,   /* Ctrl-C: the operation goes on */
};

/* A reply of lazyvold. */
struct client_reply {
  long status;                  /* HTTP status */
  json_object *json;            /* the body, NULL if it is not JSON */
  char *body;                   /* the body as received, NUL-terminated */
};

/* A request in flight. */
struct client_call;

/* Set up libcurl; 0 or -1 with err_set.  Once, before any request. */
int client_init (void);
/* Start METHOD PATH ("/v1/exports") with BODY (NULL: no body) on
 * lazyvold's socket SOCK, or NULL with err_set.
 */
struct client_call *client_start (const char *sock, const char *method,
                                  const char *path, json_object *body)
  __attribute__ ((__nonnull__ (1, 2, 3)));
/* Move every request in flight on for at most TIMEOUT_MS, returning
 * earlier when one finishes or a signal arrives.
 */
void client_run (int timeout_ms);
/* Has CALL finished (its reply is all in, or it failed)? */
bool client_done (const struct client_call *call) __attribute__ ((__nonnull__));
/* End CALL (finished or not) and free it.  0 with its reply in *REPLY,
 * or -1 with err_set if there is none: lazyvold does not answer on the
 * socket (the message names it and says what to do), the connection
 * broke, or CALL was not finished.
 */
int client_finish (struct client_call *call, struct client_reply *reply)
  __attribute__ ((__nonnull__));
/* client_start, client_run until it is done, client_finish. */
int client_request (const char *sock, const char *method, const char *path,
                    json_object *body, struct client_reply *reply)
  __attribute__ ((__nonnull__ (1, 2, 3, 5)));
/* Free what *REPLY holds. */
void client_reply_free (struct client_reply *reply)
  __attribute__ ((__nonnull__));
/* Is REPLY a success (2xx with a JSON body)? */
bool client_reply_ok (const struct client_reply *reply)
  __attribute__ ((__nonnull__));
/* The exit code of a failed REPLY: 3 for 404, 4 for 409, 5 for an
 * object-store failure, else 1.
 */
int client_exit_code (const struct client_reply *reply)
  __attribute__ ((__nonnull__));
/* The message of a failed REPLY: lazyvold's "error", else the status. */
const char *client_error (const struct client_reply *reply)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOLCTL_CLIENT_H */
