/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: the admin API (see api.h).
 *
 * The routes are one table: method, path pattern ("*" is one segment),
 * the control command, what the path's ids and the body's fields must
 * be, and the success status.  A request is checked completely here —
 * route, method, body size and JSON syntax, every id with the same
 * id_export_valid/id_snapshot_valid the plugin uses — and only then
 * relayed, so a malformed request costs the plugin nothing.  Other
 * fields (size, chunk_size, cache_max_size) are passed on as given and
 * checked by the plugin, which knows their rules.
 *
 * Nothing here blocks: a request waits for its relay's callback while
 * the loop serves others.  A client that hangs up during a long snapshot
 * does not cancel it (the plugin finishes it); libevent frees the orphaned
 * request when the reply is sent.  While nbdkit is down (see
 * supervise_unavailable) requests fail at once with 503, except metrics,
 * which then shows lazyvold's own counters with lazyvold_nbdkit_up 0.
 * A request that memory runs out for gets a 500 ("internal"), or a 500
 * without a body if even its reply cannot be built; the loop goes on.
 *
 * Bodies over BODY_MAX are refused by libevent from their Content-Length
 * (or as a chunked body grows past it) before they are stored, with 413
 * and libevent's own short HTML body: libevent 2.1 has no hook to send our
 * JSON there.  With lingering close, the rest of the body is read and
 * dropped, so that the client gets the 413 instead of a broken pipe.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <json-c/json.h>

#include "api.h"
#include "discover.h"
#include "err.h"
#include "metrics.h"
#include "pretty.h"
#include "protocol.h"
#include "relay.h"
#include "supervise.h"
#include "unixsock.h"
#include "util.h"

#define BODY_MAX (64 * 1024)
#define HEADERS_MAX (16 * 1024)

/* What an id in a path or a body must be. */
enum id_kind {
  ANY,                          /* not an id: the plugin checks it */
  EXPORT,                       /* an export id */
  WRITABLE,                     /* an export id, to change it: a snapshot
                                   view is refused as read-only */
  NAME,                         /* an export id, or "<export_id>@<snapshot>" */
  SNAPSHOT,                     /* a snapshot id */
};

struct field {
  const char *name;
  enum id_kind kind;
  bool required;
};

/* JSON: the reply parsed, and printed again (pretty); TEXT: the same,
 * for a large reply, but without a tree (see pretty.c); HEALTH and
 * METRICS: lazyvold's own documents, made from the reply.
 */
enum reply_kind { REPLY_JSON, REPLY_TEXT, REPLY_HEALTH, REPLY_METRICS };

struct route {
  enum evhttp_cmd_type method;
  const char *path;             /* "*" matches an export name (checked
                                   as PATH_ID), "**" a snapshot id */
  enum protocol_cmd cmd;
  enum id_kind path_id;
  const struct field *body;     /* NULL: any body is ignored */
  int status;                   /* on success */
  enum reply_kind reply;
};

static const struct field create_body[] = {
  { "export_id", EXPORT, true }, { "size", ANY, true },
  { "chunk_size", ANY, false }, { "cache_max_size", ANY, false },
  { NULL, ANY, false },
};
static const struct field open_body[] = {
  { "export_id", NAME, true }, { "takeover", ANY, false },
  { "cache_max_size", ANY, false }, { NULL, ANY, false },
};
static const struct field fork_body[] = {
  { "new_export_id", EXPORT, true }, { NULL, ANY, false },
};
/* "wait": false answers 202 at once, the publish going on. */
static const struct field publish_body[] = {
  { "wait", ANY, false }, { "label", ANY, false }, { NULL, ANY, false },
};
static const struct field resize_body[] = {
  { "size", ANY, true }, { NULL, ANY, false },
};
/* A rollback refuses unpublished writes unless "discard_local": true. */
static const struct field rollback_body[] = {
  { "snapshot_id", SNAPSHOT, true }, { "discard_local", ANY, false },
  { "label", ANY, false }, { NULL, ANY, false },
};
/* gc is a dry run unless "delete": true. */
static const struct field gc_body[] = {
  { "delete", ANY, false }, { "grace_s", ANY, false }, { NULL, ANY, false },
};
/* fsck only reports unless "repair": true. */
static const struct field fsck_body[] = {
  { "repair", ANY, false }, { NULL, ANY, false },
};
/* delete removes the local cache only unless "remote": true. */
static const struct field delete_body[] = {
  { "remote", ANY, false }, { "discard_local", ANY, false },
  { NULL, ANY, false },
};
static const struct field clone_body[] = {
  { "export_id", EXPORT, true }, { "source_export_id", EXPORT, true },
  { "source_snapshot_id", SNAPSHOT, false }, { "cache_max_size", ANY, false },
  { NULL, ANY, false },
};

#define GET EVHTTP_REQ_GET
#define POST EVHTTP_REQ_POST
#define DELETE EVHTTP_REQ_DELETE
static const struct route routes[] = {
  { GET, "/v1/exports", CMD_list, ANY, NULL, 200, REPLY_TEXT },
  { POST, "/v1/exports/create", CMD_create, ANY, create_body, 201,
    REPLY_JSON },
  { POST, "/v1/exports/open", CMD_open, ANY, open_body, 200, REPLY_JSON },
  { POST, "/v1/exports/clone", CMD_clone, ANY, clone_body, 201, REPLY_JSON },
  { GET, "/v1/exports/*/status", CMD_status, NAME, NULL, 200, REPLY_JSON },
  { POST, "/v1/exports/*/snapshot", CMD_snapshot, WRITABLE, publish_body,
    200, REPLY_JSON },
  { POST, "/v1/exports/*/compact", CMD_compact, WRITABLE, publish_body,
    200, REPLY_JSON },
  { POST, "/v1/exports/*/rollback", CMD_rollback, WRITABLE, rollback_body,
    200, REPLY_JSON },
  { POST, "/v1/exports/*/resize", CMD_resize, WRITABLE, resize_body, 200,
    REPLY_JSON },
  { POST, "/v1/exports/*/cache/reset", CMD_reset, WRITABLE, NULL, 200,
    REPLY_JSON },
  { GET, "/v1/exports/*/snapshots", CMD_snapshots, EXPORT, NULL, 200,
    REPLY_JSON },
  { DELETE, "/v1/exports/*/snapshots/**", CMD_delete_snapshot, WRITABLE,
    NULL, 200, REPLY_JSON },
  { POST, "/v1/exports/*/close", CMD_close, NAME, NULL, 200, REPLY_JSON },
  { POST, "/v1/exports/*/delete", CMD_delete, EXPORT, delete_body, 200,
    REPLY_JSON },
  { POST, "/v1/exports/*/fork", CMD_fork, WRITABLE, fork_body, 201,
    REPLY_JSON },
  { POST, "/v1/exports/*/hydrate", CMD_hydrate, NAME, NULL, 202,
    REPLY_JSON },
  { POST, "/v1/exports/*/gc", CMD_gc, WRITABLE, gc_body, 200, REPLY_JSON },
  { POST, "/v1/exports/*/fsck", CMD_fsck, WRITABLE, fsck_body, 200,
    REPLY_JSON },
  { GET, "/v1/health", CMD_ping, ANY, NULL, 200, REPLY_HEALTH },
  { GET, "/v1/metrics", CMD_metrics, ANY, NULL, 200, REPLY_METRICS },
};
#undef GET
#undef POST
#undef DELETE

/* A request waiting for its relay. */
struct call {
  struct evhttp_request *req;
  const struct route *route;
  int status;                   /* on success */
};

static struct evhttp *http;
static struct evhttp_bound_socket *bound;
static const char *publish_warning;
static unsigned metrics_exports = METRICS_EXPORTS_DEFAULT;
static char *sock_path;
static uint64_t start_ns;

static const char *
method_name (enum evhttp_cmd_type m)
{
  switch (m) {
  case EVHTTP_REQ_GET: return "GET";
  case EVHTTP_REQ_POST: return "POST";
  case EVHTTP_REQ_DELETE: return "DELETE";
  case EVHTTP_REQ_HEAD: return "HEAD";
  case EVHTTP_REQ_PUT: return "PUT";
  case EVHTTP_REQ_PATCH: return "PATCH";
  case EVHTTP_REQ_OPTIONS: return "OPTIONS";
  case EVHTTP_REQ_TRACE: return "TRACE";
  case EVHTTP_REQ_CONNECT: return "CONNECT";
  }
  return "?";
}

/* Send BODY (consumed) with STATUS and CONTENT_TYPE; a NULL BODY (out of
 * memory building it) is a 500 without a body.  Requests that may change
 * something are logged; reads (monitoring polls) only in debug.
 */
static void
respond (struct evhttp_request *req, int status, const char *content_type,
         struct evbuffer *body)
{
  enum evhttp_cmd_type method = evhttp_request_get_command (req);

  if (body == NULL) {
    log_error ("%s %s: out of memory for the reply: 500",
               method_name (method), evhttp_request_get_uri (req));
    evhttp_send_reply (req, 500, NULL, NULL);
    return;
  }
  log_msg (method == EVHTTP_REQ_GET ? LOG_LV_DEBUG : LOG_LV_INFO,
           "%s %s: %d", method_name (method), evhttp_request_get_uri (req),
           status);
  evhttp_add_header (evhttp_request_get_output_headers (req),
                     "Content-Type", content_type);
  evhttp_send_reply (req, status, NULL, body);
  evbuffer_free (body);
}

static void
respond_json (struct evhttp_request *req, int status, json_object *o)
{
  struct evbuffer *body = evbuffer_new ();
  size_t len;
  const char *s = json_object_to_json_string_length
    (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
     JSON_C_TO_STRING_NOSLASHESCAPE, &len);

  /* evbuffer_add_printf would measure and copy a large reply twice. */
  if (body && (s == NULL || evbuffer_add (body, s, len) == -1 ||
               evbuffer_add (body, "\n", 1) == -1)) {
    evbuffer_free (body);
    body = NULL;
  }
  respond (req, status, "application/json", body);
}

/* Reply {"error":MESSAGE,"code":CODE} with STATUS. */
static void
respond_error (struct evhttp_request *req, int status, const char *code,
               const char *message)
{
  json_object *o = json_object_new_object ();
  char msg[ERR_MSG_MAX];

  snprintf (msg, sizeof msg, "%s", message);
  utf8_sanitize (msg);          /* it may quote the request */
  json_object_object_add (o, "error", json_object_new_string (msg));
  json_object_object_add (o, "code", json_object_new_string (code));
  respond_json (req, status, o);
  json_object_put (o);
}

/* Check S, the id WHAT, against KIND.  0 or -1 with err_set (EINVAL). */
static int
check_id (enum id_kind kind, const char *what, const char *s)
{
  switch (kind) {
  case ANY: return 0;
  case EXPORT: return id_export_check (what, s);
  case WRITABLE:
    if (strchr (s, '@') && id_name_check (what, s) == 0)
      return err_set (EROFS, "%s is a snapshot view, which is read-only: "
                      "name the export itself", s);
    return id_export_check (what, s);
  case NAME: return id_name_check (what, s);
  case SNAPSHOT: return id_snapshot_check (what, s);
  }
  abort ();
}

/* Does PATH match the route pattern PAT?  The segments matched by "*"
 * and "**" are copied to EXPORT and SNAP.
 */
static bool
match (const char *pat, const char *path, char export[NAME_MAX_LEN + 2],
       char snap[NAME_MAX_LEN + 2])
{
  while (*pat && *path) {
    if (*pat == '*') {
      size_t len = strcspn (path, "/");
      char *dst = pat[1] == '*' ? snap : export;

      if (len == 0)
        return false;
      /* Longer than any valid id: keep enough to fail validation. */
      snprintf (dst, NAME_MAX_LEN + 2, "%.*s", (int) len, path);
      path += len;
      pat += pat[1] == '*' ? 2 : 1;
    }
    else if (*pat++ != *path++)
      return false;
  }
  return *pat == '\0' && *path == '\0';
}

/* Are the LEN bytes at S (not NUL-terminated) all white space? */
static bool
all_space (const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
      return false;
  return true;
}

/* The body of REQ as a JSON object, or NULL with err_set (EINVAL). */
static json_object *
parse_body (struct evhttp_request *req)
{
  struct evbuffer *in = evhttp_request_get_input_buffer (req);
  size_t len = evbuffer_get_length (in), end;
  const char *s = (const char *) evbuffer_pullup (in, -1);
  json_tokener *tok;
  json_object *o;

  if (len == 0) {
    err_set (EINVAL, "this request needs a JSON object as its body");
    return NULL;
  }
  tok = json_tokener_new_ex (PROTOCOL_JSON_DEPTH);
  if (tok == NULL) {
    err_set (ENOMEM, "out of memory");
    return NULL;
  }
  json_tokener_set_flags (tok, JSON_TOKENER_VALIDATE_UTF8);
  o = json_tokener_parse_ex (tok, s, len);
  end = json_tokener_get_parse_end (tok);
  if (o == NULL)
    err_set (EINVAL, "malformed JSON body: %s",
             json_tokener_error_desc (json_tokener_get_error (tok)));
  else if (!all_space (s + end, len - end)) {
    err_set (EINVAL, "malformed JSON body: data after the object");
    json_object_put (o);
    o = NULL;
  }
  else if (!json_object_is_type (o, json_type_object)) {
    err_set (EINVAL, "the body must be a JSON object");
    json_object_put (o);
    o = NULL;
  }
  json_tokener_free (tok);
  return o;
}

/* Copy the fields of BODY that ROUTE knows into CMD, checking them. */
static int
add_body (json_object *cmd, const struct route *route, json_object *body)
{
  const struct field *f;

  json_object_object_foreach (body, key, val) {
    for (f = route->body; f->name && strcmp (f->name, key) != 0; f++)
      ;
    if (f->name == NULL)
      return err_set (EINVAL, "unknown field \"%.40s\" for %s", key,
                      route->path);
    if (val == NULL)
      continue;                 /* null: as if absent */
    if (f->kind != ANY) {
      if (!json_object_is_type (val, json_type_string))
        return err_set (EINVAL, "\"%s\" must be a string", key);
      if (check_id (f->kind, key, json_object_get_string (val)) == -1)
        return -1;
    }
    json_object_object_add (cmd, key, json_object_get (val));
  }
  for (f = route->body; f->name; f++)
    if (f->required && !json_object_object_get_ex (cmd, f->name, NULL))
      return err_set (EINVAL, "missing \"%s\"", f->name);
  return 0;
}

/* Must ROUTE's requests have a body?  Not if all its fields are optional. */
static bool
body_required (const struct route *route)
{
  for (const struct field *f = route->body; f->name; f++)
    if (f->required)
      return true;
  return false;
}

/* Has REQ a body other than white space? */
static bool
body_present (struct evhttp_request *req)
{
  struct evbuffer *in = evhttp_request_get_input_buffer (req);
  size_t len = evbuffer_get_length (in);
  const char *s = (const char *) evbuffer_pullup (in, -1);

  return !all_space (s, len);
}

/* The status of a successful reply to CMD on ROUTE: 202 for a request
 * that asked not to wait.
 */
static int
success_status (const struct route *route, json_object *cmd)
{
  json_object *wait;

  if (json_object_object_get_ex (cmd, "wait", &wait) &&
      json_object_is_type (wait, json_type_boolean) &&
      !json_object_get_boolean (wait))
    return 202;
  return route->status;
}

/* The control command for REQ on ROUTE, or NULL with err_set. */
static json_object *
build_command (struct evhttp_request *req, const struct route *route,
               const char *export, const char *snap)
{
  json_object *cmd = json_object_new_object ();
  json_object *body = NULL;

  json_object_object_add (cmd, "cmd", json_object_new_string
                          (protocol_cmd_name (route->cmd)));
  if (route->path_id != ANY) {
    if (check_id (route->path_id, "export id", export) == -1)
      goto err;
    json_object_object_add (cmd, "export_id",
                            json_object_new_string (export));
  }
  if (snap[0]) {
    if (check_id (SNAPSHOT, "snapshot id", snap) == -1)
      goto err;
    json_object_object_add (cmd, "snapshot_id",
                            json_object_new_string (snap));
  }
  if (route->body && (body_required (route) || body_present (req))) {
    if ((body = parse_body (req)) == NULL ||
        add_body (cmd, route, body) == -1)
      goto err;
    json_object_put (body);
  }
  return cmd;

 err:
  json_object_put (body);
  json_object_put (cmd);
  return NULL;
}

static void
respond_metrics (struct evhttp_request *req, json_object *reply)
{
  struct evbuffer *body = evbuffer_new ();

  if (body && metrics_format (body, reply, supervise_restarts (),
                              metrics_exports) == -1) {
    evbuffer_free (body);
    body = NULL;
  }
  respond (req, 200, METRICS_CONTENT_TYPE, body);
}

static void
respond_health (struct evhttp_request *req, json_object *ping)
{
  json_object *o = json_object_new_object (), *pid;

  json_object_object_add (o, "status", json_object_new_string ("ok"));
  json_object_object_add (o, "version", json_object_new_string (VERSION));
  if (json_object_object_get_ex (ping, "pid", &pid))
    json_object_object_add (o, "nbdkit_pid", json_object_get (pid));
  json_object_object_add (o, "mode",
                          json_object_new_string (supervise_mode ()));
  json_object_object_add (o, "adopted",
                          json_object_new_boolean (supervise_adopted ()));
  json_object_object_add (o, "nbdkit_restarts",
                          json_object_new_int64 (supervise_restarts ()));
  json_object_object_add (o, "uptime_s", json_object_new_int64
                          ((time_mono_ns () - start_ns) / 1000000000));
  discover_add_health (o);
  respond_json (req, 200, o);
  json_object_put (o);
}

/* nbdkit cannot take REQ now, because of WHY. */
static void
respond_unavailable (struct evhttp_request *req, const struct route *route,
                     const char *why)
{
  if (route->reply == REPLY_METRICS)
    respond_metrics (req, NULL);
  else
    respond_error (req, 503, "unavailable", why);
}

static void
on_reply (json_object *reply, void *opaque)
{
  struct call *c = opaque;
  json_object *ok, *code;

  if (reply == NULL && (err_errno () == EBADMSG || err_errno () == EMSGSIZE ||
                        err_errno () == ENOMEM))
    respond_error (c->req, 500, "internal", err_msg ());
  else if (reply == NULL)
    respond_unavailable (c->req, c->route, err_msg ());
  else if (!json_object_object_get_ex (reply, "ok", &ok) ||
           !json_object_get_boolean (ok)) {
    json_object_object_del (reply, "ok");
    respond_json (c->req,
                  json_object_object_get_ex (reply, "code", &code)
                  ? err_code_status (json_object_get_string (code)) : 500,
                  reply);
  }
  else {
    json_object_object_del (reply, "ok");
    if (publish_warning && (c->route->cmd == CMD_snapshot ||
                            c->route->cmd == CMD_compact))
      json_object_object_add (reply, "warning",
                              json_object_new_string (publish_warning));
    switch (c->route->reply) {
    case REPLY_JSON:
    case REPLY_TEXT:                    /* not a success: parsed */
      respond_json (c->req, c->status, reply);
      break;
    case REPLY_HEALTH:
      respond_health (c->req, reply);
      break;
    case REPLY_METRICS:
      respond_metrics (c->req, reply);
      break;
    }
  }
  free (c);
}

/* A success reply of a REPLY_TEXT route: its text without the "ok"
 * member, indented.
 */
static void
on_text (char *line, size_t len, void *opaque)
{
  struct call *c = opaque;
  struct evbuffer *body = evbuffer_new ();
  char *rest = line + strlen (PROTOCOL_REPLY_OK);

  /* {"ok":true,"exports":[...]} becomes {"exports":[...]} in place. */
  if (*rest == ',')
    *rest = '{';
  else
    *--rest = '{';                      /* {"ok":true} becomes {} */
  if (body && pretty_json (body, rest, len - (rest - line),
                           "the plugin's reply") == -1) {
    evbuffer_free (body);
    respond_error (c->req, 500, "internal", err_msg ());
  }
  else
    respond (c->req, c->status, "application/json", body);
  free (c);
}

/* The route whose pattern PATH matches (each path has one, with one
 * method), or NULL.  Its ids go to EXPORT and SNAP.
 */
static const struct route *
find_route (const char *path, char export[NAME_MAX_LEN + 2],
            char snap[NAME_MAX_LEN + 2])
{
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    export[0] = snap[0] = '\0';
    if (match (routes[i].path, path, export, snap))
      return &routes[i];
  }
  return NULL;
}

static void
api_handle (struct evhttp_request *req, void *arg)
{
  const char *path = evhttp_uri_get_path (evhttp_request_get_evhttp_uri (req));
  char export[NAME_MAX_LEN + 2], snap[NAME_MAX_LEN + 2];
  const struct route *route = path ? find_route (path, export, snap) : NULL;
  enum evhttp_cmd_type method = evhttp_request_get_command (req);
  const char *why;
  json_object *cmd;
  struct call *c;
  char msg[256];

  err_clear ();
  if (route == NULL) {
    snprintf (msg, sizeof msg, "no such endpoint: %.200s", path ? path : "");
    respond_error (req, 404, "not_found", msg);
    return;
  }
  if (method != route->method) {
    snprintf (msg, sizeof msg, "%.200s takes %s, not %s", path,
              method_name (route->method), method_name (method));
    evhttp_add_header (evhttp_request_get_output_headers (req), "Allow",
                       method_name (route->method));
    respond_error (req, 405, "method_not_allowed", msg);
    return;
  }
  if ((cmd = build_command (req, route, export, snap)) == NULL) {
    const char *code = err_code (err_errno ());    /* bad_request mostly */

    respond_error (req, err_code_status (code), code, err_msg ());
    return;
  }
  if ((why = supervise_unavailable ()) != NULL) {
    respond_unavailable (req, route, why);
    json_object_put (cmd);
    return;
  }
  if ((c = malloc (sizeof *c)) == NULL) {
    respond_error (req, 500, "internal", "out of memory");
    json_object_put (cmd);
    return;
  }
  c->req = req;
  c->route = route;
  c->status = success_status (route, cmd);
  if ((route->reply == REPLY_TEXT ? relay_send_text (cmd, on_text, on_reply, c)
       : relay_send (cmd, on_reply, c)) == -1) {
    respond_error (req, 500, "internal", err_msg ());
    free (c);
  }
  json_object_put (cmd);
}

int
api_start (struct event_base *base, const char *path, gid_t gid,
           unsigned timeout)
{
  struct evconnlistener *listener;
  int fd;

  start_ns = time_mono_ns ();
  if ((sock_path = strdup (path)) == NULL)
    return err_set (ENOMEM, "admin socket %s: out of memory", path);
  if (unixsock_clear_stale (path) == -1)
    return err_prefix ("admin socket");
  if ((fd = unixsock_listen (path, gid)) == -1)
    return err_prefix ("admin socket");
  http = evhttp_new (base);
  listener = evconnlistener_new (base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE |
                                 LEV_OPT_CLOSE_ON_EXEC, -1, fd);
  if (http == NULL || listener == NULL ||
      (bound = evhttp_bind_listener (http, listener)) == NULL) {
    if (listener)
      evconnlistener_free (listener);
    else
      close (fd);
    if (http)
      evhttp_free (http);
    http = NULL;
    unlink (path);
    return err_set (ENOMEM, "admin socket %s: cannot serve HTTP on it", path);
  }
  /* Every method reaches api_handle, so a wrong one gets 405 and Allow. */
  evhttp_set_allowed_methods (http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                              EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                              EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                              EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
                              EVHTTP_REQ_PATCH);
  /* No slow client can hold a connection for good (a reply being
   * prepared is not under this timeout: see the top of this file).
   */
  evhttp_set_timeout (http, timeout);
  evhttp_set_max_body_size (http, BODY_MAX);
  evhttp_set_max_headers_size (http, HEADERS_MAX);
  evhttp_set_flags (http, EVHTTP_SERVER_LINGERING_CLOSE);
  evhttp_set_gencb (http, api_handle, NULL);
  log_info ("admin API listening on %s", path);
  return 0;
}

void
api_metrics_exports (unsigned max)
{
  metrics_exports = max;
}

void
api_warn_publishes (const char *warning)
{
  publish_warning = warning;
}

void
api_stop (void)
{
  if (bound == NULL)
    return;
  evhttp_del_accept_socket (http, bound);
  bound = NULL;
  unlink (sock_path);
}

void
api_free (void)
{
  api_stop ();
  if (http)
    evhttp_free (http);
  http = NULL;
  free (sock_path);
  sock_path = NULL;
}
