/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvolctl: requests to lazyvold's admin API (see client.h).
 *
 * Every request is a libcurl easy handle in one multi handle, so that a
 * long POST and the status polls beside it move on together in one
 * thread: client_run is the only place that waits.  A request has no
 * overall timeout (a snapshot of many gigabytes takes minutes), only a
 * connect timeout: lazyvold answers its socket at once or not at all.
 *
 * Failing to connect is the error a user meets first ("is lazyvold
 * running?"), so it is reported with the socket's path and whether
 * anything is there; every other failure of the transfer is libcurl's
 * message.  A reply that arrives is always a reply, whatever its status:
 * the caller decides what an error status means (client_exit_code).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "client.h"
#include "err.h"
#include "util.h"

#define CONNECT_TIMEOUT_MS 5000

struct client_call {
  CURL *curl;
  struct curl_slist *headers;
  char *request_body;
  FILE *out;                    /* the reply body, into body/len */
  char *body;
  size_t len;
  char *sock;
  bool done;
  CURLcode result;
  char errbuf[CURL_ERROR_SIZE];
};

static CURLM *multi;

int
client_init (void)
{
  if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK ||
      (multi = curl_multi_init ()) == NULL)
    return err_set (ENOMEM, "cannot initialize libcurl");
  return 0;
}

static size_t
on_data (char *ptr, size_t size, size_t n, void *opaque)
{
  struct client_call *c = opaque;

  return fwrite (ptr, size, n, c->out) * size;
}

static void
call_free (struct client_call *c)
{
  if (c->curl) {
    curl_multi_remove_handle (multi, c->curl);
    curl_easy_cleanup (c->curl);
  }
  curl_slist_free_all (c->headers);
  if (c->out)
    fclose (c->out);
  free (c->body);
  free (c->request_body);
  free (c->sock);
  free (c);
}

struct client_call *
client_start (const char *sock, const char *method, const char *path,
              json_object *body)
{
  struct client_call *c = calloc (1, sizeof *c);
  CLEANUP_FREE char *url = NULL;

  if (c == NULL || (c->sock = strdup (sock)) == NULL ||
      (url = str_printf ("http://localhost%s", path)) == NULL ||
      (c->out = memstream_open (&c->body, &c->len)) == NULL ||
      (c->curl = curl_easy_init ()) == NULL)
    goto nomem;
  curl_easy_setopt (c->curl, CURLOPT_UNIX_SOCKET_PATH, sock);
  curl_easy_setopt (c->curl, CURLOPT_URL, url);
  curl_easy_setopt (c->curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt (c->curl, CURLOPT_CONNECTTIMEOUT_MS,
                    (long) CONNECT_TIMEOUT_MS);
  curl_easy_setopt (c->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c->curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt (c->curl, CURLOPT_WRITEDATA, c);
  curl_easy_setopt (c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt (c->curl, CURLOPT_PRIVATE, c);
  if (body) {
    if ((c->request_body = strdup (json_object_to_json_string (body))) ==
        NULL ||
        (c->headers = curl_slist_append
         (NULL, "Content-Type: application/json")) == NULL)
      goto nomem;
    curl_easy_setopt (c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt (c->curl, CURLOPT_POSTFIELDS, c->request_body);
  }
  else if (strcmp (method, "POST") == 0)
    curl_easy_setopt (c->curl, CURLOPT_POSTFIELDSIZE, 0L);
  if (curl_multi_add_handle (multi, c->curl) != CURLM_OK)
    goto nomem;
  return c;

 nomem:
  err_set (ENOMEM, "%s %s: out of memory", method, path);
  if (c)
    call_free (c);
  return NULL;
}

void
client_run (int timeout_ms)
{
  CURLMsg *msg;
  int running, left;

  curl_multi_perform (multi, &running);
  if (running)
    curl_multi_poll (multi, NULL, 0, timeout_ms, NULL);
  curl_multi_perform (multi, &running);
  while ((msg = curl_multi_info_read (multi, &left)) != NULL) {
    struct client_call *c;

    if (msg->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &c);
    c->done = true;
    c->result = msg->data.result;
  }
}

bool
client_done (const struct client_call *call)
{
  return call->done;
}

/* Record why CALL got no reply. */
static void
set_transfer_error (const struct client_call *c)
{
  struct stat st;

  if (c->result != CURLE_COULDNT_CONNECT)
    err_set (EIO, "lazyvold on %s: %s", c->sock,
             c->errbuf[0] ? c->errbuf : curl_easy_strerror (c->result));
  else if (access (c->sock, R_OK | W_OK) == -1 && errno == EACCES)
    err_set (EACCES, "cannot connect to lazyvold on %s: permission denied; "
             "it admits its own user and the group of --admin-group "
             "(lazyvold.service's: lazyvol)", c->sock);
  else if (stat (c->sock, &st) == -1)
    err_set (ENOENT, "cannot connect to lazyvold: no socket %s (%m); is "
             "lazyvold running?  Name its socket with --socket PATH or "
             "$LAZYVOL_SOCKET", c->sock);
  else
    err_set (ECONNREFUSED, "cannot connect to lazyvold on %s: %s; is "
             "lazyvold running?  Name its socket with --socket PATH or "
             "$LAZYVOL_SOCKET", c->sock,
             c->errbuf[0] ? c->errbuf : curl_easy_strerror (c->result));
}

int
client_finish (struct client_call *call, struct client_reply *reply)
{
  int r = -1;

  memset (reply, 0, sizeof *reply);
  if (!call->done)
    err_set (EINTR, "the request to lazyvold on %s was interrupted",
             call->sock);
  else if (call->result != CURLE_OK)
    set_transfer_error (call);
  else if (memstream_close (call->out, &call->body) == 0) {
    call->out = NULL;
    curl_easy_getinfo (call->curl, CURLINFO_RESPONSE_CODE, &reply->status);
    reply->body = call->body;
    reply->json = json_tokener_parse (call->body);
    call->body = NULL;
    r = 0;
  }
  else
    call->out = NULL;           /* memstream_close freed it */
  call_free (call);
  return r;
}

int
client_request (const char *sock, const char *method, const char *path,
                json_object *body, struct client_reply *reply)
{
  struct client_call *c = client_start (sock, method, path, body);

  if (c == NULL)
    return -1;
  while (!client_done (c))
    client_run (1000);
  return client_finish (c, reply);
}

void
client_reply_free (struct client_reply *reply)
{
  json_object_put (reply->json);
  free (reply->body);
  memset (reply, 0, sizeof *reply);
}

bool
client_reply_ok (const struct client_reply *reply)
{
  return reply->status >= 200 && reply->status < 300 && reply->json;
}

/* The "code" of an error reply, or "". */
static const char *
error_code (const struct client_reply *reply)
{
  json_object *code;

  if (reply->json && json_object_object_get_ex (reply->json, "code", &code))
    return json_object_get_string (code);
  return "";
}

int
client_exit_code (const struct client_reply *reply)
{
  static const char *const store_codes[] = {
    "store_error", "store_unavailable", "store_denied", "bad_remote_data",
  };
  const char *code = error_code (reply);

  for (size_t i = 0; i < sizeof store_codes / sizeof store_codes[0]; i++)
    if (strcmp (code, store_codes[i]) == 0)
      return CLIENT_EXIT_STORE;
  if (reply->status == 404)
    return CLIENT_EXIT_NOT_FOUND;
  if (reply->status == 409)
    return CLIENT_EXIT_CONFLICT;
  /* A gateway status without a store code is the store's too; 503
   * "unavailable" is lazyvold's own: nbdkit is not running.
   */
  if (reply->status >= 502 && reply->status <= 504 &&
      strcmp (code, "unavailable") != 0)
    return CLIENT_EXIT_STORE;
  return CLIENT_EXIT_ERROR;
}

const char *
client_error (const struct client_reply *reply)
{
  static char msg[256];
  json_object *e;

  if (reply->json && json_object_object_get_ex (reply->json, "error", &e) &&
      json_object_is_type (e, json_type_string))
    return json_object_get_string (e);
  if (reply->status >= 200 && reply->status < 300)
    snprintf (msg, sizeof msg, "lazyvold's reply is not JSON");
  else
    snprintf (msg, sizeof msg, "lazyvold answered HTTP %ld", reply->status);
  return msg;
}
