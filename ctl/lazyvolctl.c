/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvolctl: the command line of lazyvol's admin API.  See lazyvolctl(8).
 *
 * One command, one request (two for hydrate, which answers at once and
 * is then followed), mapped to the endpoints of lazyvold(8) by the table
 * below.  The command line is checked here completely -- the command,
 * its arguments and options, every id with the rule the daemon uses
 * (util.h), sizes -- so that a typo is a usage error (exit 2) and never a
 * request.  Replies are printed for people by show.c, or as lazyvold sent
 * them with --json.  A failed request prints lazyvold's message once and
 * exits with a code that says what kind of failure it was (client.h).
 *
 * The socket: --socket, else $LAZYVOL_SOCKET, else the default that
 * lazyvold listens on (adminsock.h).
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "adminsock.h"
#include "client.h"
#include "err.h"
#include "progress.h"
#include "show.h"
#include "util.h"

/* Options, and which commands take them. */
enum {
  O_CHUNK_SIZE = 1 << 0, O_TAKEOVER = 1 << 1, O_FORCE = 1 << 2,
  O_SNAPSHOT = 1 << 3, O_QUIET = 1 << 4, O_NO_WAIT = 1 << 5,
  O_DELETE = 1 << 6, O_GRACE = 1 << 7, O_REPAIR = 1 << 8,
  O_CACHE_MAX = 1 << 9, O_LABEL = 1 << 10, O_DISCARD = 1 << 11,
  O_REMOTE = 1 << 12,
};

static struct {
  const char *socket;
  bool json, quiet, no_wait, delete, repair, discard, remote;
  const char *chunk_size, *snapshot, *grace, *cache_max_size, *label;
  const char *takeover;         /* NULL, "true" or "force" */
  unsigned given;               /* the O_* options seen */
} opt;

struct command {
  const char *name, *args;
  int nargs;                    /* positional arguments after the name */
  unsigned options;             /* the O_* it takes */
  int (*run) (char **args);
  const char *summary;          /* for --help */
  const char *help;             /* for help COMMAND */
};

static const struct command commands[];

/* Print "lazyvolctl: MESSAGE" and exit 2. */
static void __attribute__ ((__noreturn__, __format__ (__printf__, 1, 2)))
usage_error (const char *fmt, ...)
{
  va_list ap;

  fputs ("lazyvolctl: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputs ("\n", stderr);
  exit (CLIENT_EXIT_USAGE);
}

/* Print the recorded error and return 1. */
static int
failed (void)
{
  fprintf (stderr, "lazyvolctl: %s\n", err_msg ());
  return CLIENT_EXIT_ERROR;
}

/* Check ID, the argument WHAT, with CHECK (id_export_check ...). */
static const char *
checked (int (*check) (const char *, const char *), const char *what,
         const char *id)
{
  if (check (what, id) == -1)
    usage_error ("%s", err_msg ());
  return id;
}

/* Parse a size for WHAT ("SIZE", "--chunk-size"); exits if it is bad. */
static uint64_t
size_arg (const char *what, const char *s)
{
  uint64_t n;

  if (size_check (what, s, &n) == -1)
    usage_error ("%s", err_msg ());
  return n;
}

/* Parse a number of seconds for WHAT ("--grace"); exits if it is bad. */
static uint64_t
seconds_arg (const char *what, const char *s)
{
  unsigned long long n;
  char *end;

  errno = 0;
  n = strtoull (s, &end, 10);
  if (errno || end == s || *end || s[0] < '0' || s[0] > '9')
    usage_error ("%s must be a number of seconds, not \"%s\"", what, s);
  return n;
}

/* 0 if *REPLY is a success; else print lazyvold's message, free it and
 * return the exit code.
 */
static int
reply_result (struct client_reply *reply)
{
  int r;

  if (client_reply_ok (reply))
    return 0;
  r = client_exit_code (reply);
  fprintf (stderr, "lazyvolctl: %s\n", client_error (reply));
  client_reply_free (reply);
  return r;
}

/* Ask METHOD PATH with BODY (NULL: none; consumed).  0 with *REPLY, or
 * the exit code after printing why.
 */
static int
request (const char *method, const char *path, json_object *body,
         struct client_reply *reply)
{
  int r = client_request (opt.socket, method, path, body, reply);

  json_object_put (body);
  return r == -1 ? failed () : reply_result (reply);
}

/* With --json, print REPLY as lazyvold sent it; true if it did. */
static bool
printed_json (const struct client_reply *reply)
{
  if (opt.json)
    fputs (reply->body, stdout);
  return opt.json;
}

/* The body {"export_id": ID}. */
static json_object *
export_body (const char *id)
{
  json_object *o = json_object_new_object ();

  json_object_object_add (o, "export_id", json_object_new_string (id));
  return o;
}

/* Print the string FIELD of every element of the array KEY of REPLY. */
static void
print_ids (json_object *reply, const char *key, const char *field)
{
  json_object *a = NULL;

  json_object_object_get_ex (reply, key, &a);
  for (size_t i = 0; i < json_object_array_length (a); i++)
    puts (show_str (json_object_array_get_idx (a, i), field) ?: "-");
}

/* An operation with no body on one export: METHOD /v1/exports/ID/WHAT. */
static int
export_request (const char *method, const char *id, const char *what,
                struct client_reply *reply)
{
  CLEANUP_FREE char *path = xasprintf ("/v1/exports/%s/%s", id, what);

  return request (method, path, NULL, reply);
}

static int
cmd_list (char **args)
{
  struct client_reply r;
  int e = request ("GET", "/v1/exports", NULL, &r);

  if (e)
    return e;
  if (!printed_json (&r)) {
    if (opt.quiet)
      print_ids (r.json, "exports", "export_id");
    else
      show_list (r.json);
  }
  client_reply_free (&r);
  return 0;
}

static int
cmd_status (char **args)
{
  struct client_reply r;
  int e = export_request ("GET", checked (id_name_check, "ID", args[0]),
                          "status", &r);

  if (e)
    return e;
  if (!printed_json (&r))
    show_status (r.json);
  client_reply_free (&r);
  return 0;
}

/* "SIZE in N chunks of CHUNK" of a status into BUF. */
static const char *
geometry (json_object *st, char buf[3 * SHOW_BUF])
{
  char b1[SHOW_BUF], b2[SHOW_BUF];

  snprintf (buf, 3 * SHOW_BUF, "%s in %" PRIu64 " chunk%s of %s",
            show_bytes (show_u64 (st, "image_size"), b1),
            show_u64 (st, "chunk_count"),
            show_u64 (st, "chunk_count") == 1 ? "" : "s",
            show_bytes (show_u64 (st, "chunk_size"), b2));
  return buf;
}

/* Add --cache-max-size to BODY, if it was given ("none": 0, no limit of
 * the export's own).
 */
static void
add_cache_max (json_object *body)
{
  if (opt.cache_max_size)
    json_object_object_add (body, "cache_max_size", json_object_new_uint64
                            (strcmp (opt.cache_max_size, "none") == 0 ? 0
                             : size_arg ("--cache-max-size",
                                         opt.cache_max_size)));
}

static int
cmd_create (char **args)
{
  json_object *body = export_body (checked (id_export_check, "ID", args[0]));
  struct client_reply r;
  char g[3 * SHOW_BUF];
  int e;

  json_object_object_add (body, "size", json_object_new_uint64
                          (size_arg ("SIZE", args[1])));
  if (opt.chunk_size)
    json_object_object_add (body, "chunk_size", json_object_new_uint64
                            (size_arg ("--chunk-size", opt.chunk_size)));
  add_cache_max (body);
  if ((e = request ("POST", "/v1/exports/create", body, &r)) != 0)
    return e;
  if (!printed_json (&r))
    printf ("created %s: %s\n", args[0], geometry (r.json, g));
  client_reply_free (&r);
  return 0;
}

static int
cmd_resize (char **args)
{
  CLEANUP_FREE char *path =
    xasprintf ("/v1/exports/%s/resize", checked (id_export_check, "ID",
                                                 args[0]));
  json_object *body = json_object_new_object ();
  struct client_reply r;
  char g[3 * SHOW_BUF];
  int e;

  json_object_object_add (body, "size", json_object_new_uint64
                          (size_arg ("SIZE", args[1])));
  if ((e = request ("POST", path, body, &r)) != 0)
    return e;
  if (!printed_json (&r))
    printf ("resized %s: %s; the next snapshot publishes it\n", args[0],
            geometry (r.json, g));
  client_reply_free (&r);
  return 0;
}

static int
cmd_open (char **args)
{
  json_object *body = export_body (checked (id_name_check, "ID", args[0]));
  const char *snap;
  struct client_reply r;
  char g[3 * SHOW_BUF];
  int e;

  if (opt.takeover)
    json_object_object_add (body, "takeover", opt.takeover[0] == 't'
                            ? json_object_new_boolean (1)
                            : json_object_new_string ("force"));
  add_cache_max (body);
  if ((e = request ("POST", "/v1/exports/open", body, &r)) != 0)
    return e;
  if (!printed_json (&r)) {
    snap = show_str (r.json, "snapshot_id");
    printf ("opened %s: %s, ", args[0], geometry (r.json, g));
    if (snap)
      printf ("snapshot %s (generation %" PRIu64 ")\n", snap,
              show_u64 (r.json, "snapshot_generation"));
    else
      printf ("no snapshot yet\n");
    if (!show_bool (r.json, "writable") && !show_bool (r.json, "readonly"))
      printf ("read-only here: %s\n", show_str (r.json, "notice") ?: "-");
  }
  client_reply_free (&r);
  return 0;
}

static int
cmd_close (char **args)
{
  struct client_reply r;
  int e = export_request ("POST", checked (id_name_check, "ID", args[0]),
                          "close", &r);

  if (e)
    return e;
  if (!printed_json (&r))
    printf ("closed %s\n", args[0]);
  client_reply_free (&r);
  return 0;
}

/* delete asks nothing: what it removes is what the options say. */
static int
cmd_delete (char **args)
{
  CLEANUP_FREE char *path =
    xasprintf ("/v1/exports/%s/delete", checked (id_export_check, "ID",
                                                 args[0]));
  json_object *body = json_object_new_object ();
  json_object *store = NULL;
  struct client_reply r;
  int e;

  json_object_object_add (body, "remote", json_object_new_boolean
                          (opt.remote));
  json_object_object_add (body, "discard_local", json_object_new_boolean
                          (opt.discard));
  if ((e = request ("POST", path, body, &r)) != 0)
    return e;
  if (!printed_json (&r)) {
    bool cache = show_bool (r.json, "cache_removed");

    if (!json_object_object_get_ex (r.json, "store", &store)) {
      printf ("deleted %s of %s; it stays in the store, and is not loaded "
              "here until opened\n", cache ? "the local cache" : "nothing "
              "local (there was no cache)", args[0]);
    }
    else {
      printf ("deleted %s: %sits head and %" PRIu64 " snapshot%s from the "
              "store\n", args[0], cache ? "its local cache, " : "",
              show_u64 (store, "snapshots"),
              show_u64 (store, "snapshots") == 1 ? "" : "s");
      show_unused (store, "");
      if (show_u64 (store, "used"))
        printf ("%" PRIu64 " blob%s kept: other exports (clones) use them\n",
                show_u64 (store, "used"),
                show_u64 (store, "used") == 1 ? "" : "s");
    }
  }
  client_reply_free (&r);
  return 0;
}

static int
cmd_clone (char **args)
{
  json_object *body = export_body (checked (id_export_check, "ID", args[0]));
  struct client_reply r;
  int e;

  json_object_object_add (body, "source_export_id", json_object_new_string
                          (checked (id_export_check, "SOURCE", args[1])));
  if (opt.snapshot)
    json_object_object_add (body, "source_snapshot_id",
                            json_object_new_string
                            (checked (id_snapshot_check, "--snapshot",
                                      opt.snapshot)));
  add_cache_max (body);
  if ((e = request ("POST", "/v1/exports/clone", body, &r)) != 0)
    return e;
  if (!printed_json (&r))
    printf ("cloned %s from %s at snapshot %s: %s's first snapshot is %s\n",
            args[0], args[1], opt.snapshot ?: "(its current one)", args[0],
            show_str (r.json, "snapshot_id") ?: "-");
  client_reply_free (&r);
  return 0;
}

/* Show the "warning" of REPLY, if it has one (a filter that holds
 * writes back from snapshots), on stderr.
 */
static void
print_warning (const struct client_reply *reply)
{
  const char *w = show_str (reply->json, "warning");

  if (w)
    fprintf (stderr, "lazyvolctl: warning: %s\n", w);
}

/* POST /v1/exports/ID/WHAT, a long operation in operation_state STATE,
 * showing its progress.  0 with *REPLY, or the exit code.  With
 * --no-wait, only start it: 0 with *REPLY NULL, having said so.
 */
static int
long_request (const char *id, const char *what, const char *state,
              struct client_reply *reply)
{
  CLEANUP_FREE char *path = xasprintf ("/v1/exports/%s/%s", id, what);
  struct progress_op op = {
    .sock = opt.socket, .export_id = id, .verb = what, .state = state,
    .quiet = opt.json,
  };
  struct client_call *call;
  json_object *body = NULL;
  int r;

  if (opt.label) {
    body = json_object_new_object ();
    json_object_object_add (body, "label", json_object_new_string
                            (checked (id_label_check, "--label",
                                      opt.label)));
  }
  if (opt.no_wait) {
    if (body == NULL)
      body = json_object_new_object ();
    json_object_object_add (body, "wait", json_object_new_boolean (false));
    if ((r = request ("POST", path, body, reply)) != 0)
      return r;
    print_warning (reply);
    if (!printed_json (reply))
      printf ("started the %s of %s; follow it with lazyvolctl status %s\n",
              what, id, id);
    client_reply_free (reply);          /* so reply->json is NULL */
    return 0;
  }
  call = client_start (opt.socket, "POST", path, body);
  json_object_put (body);
  if (call == NULL)
    return failed ();
  r = progress_wait (&op, call, reply);
  if (r == 1)
    return CLIENT_EXIT_DETACHED;
  if (r == -1)
    return failed ();
  if ((r = reply_result (reply)) == 0)
    print_warning (reply);
  return r;
}

static int
cmd_snapshot (char **args)
{
  struct client_reply r;
  int e = long_request (checked (id_export_check, "ID", args[0]), "snapshot",
                        "snapshotting", &r);

  if (e || r.json == NULL)
    return e;
  if (printed_json (&r))
    ;
  else if (show_bool (r.json, "snapshot_created"))
    printf ("published snapshot %s of %s (generation %" PRIu64 ")\n",
            show_str (r.json, "snapshot_id") ?: "-", args[0],
            show_u64 (r.json, "generation"));
  else
    printf ("nothing to publish: %s has no writes since snapshot %s%s\n",
            args[0], show_str (r.json, "snapshot_id") ?: "-",
            opt.label ? " (no snapshot was made, so the label was not "
            "used)" : "");
  client_reply_free (&r);
  return 0;
}

static int
cmd_rollback (char **args)
{
  CLEANUP_FREE char *path =
    xasprintf ("/v1/exports/%s/rollback", checked (id_export_check, "ID",
                                                   args[0]));
  json_object *body = json_object_new_object ();
  struct client_reply r;
  int e;

  json_object_object_add (body, "snapshot_id", json_object_new_string
                          (checked (id_snapshot_check, "SID", args[1])));
  if (opt.discard)
    json_object_object_add (body, "discard_local",
                            json_object_new_boolean (true));
  if (opt.label)
    json_object_object_add (body, "label", json_object_new_string
                            (checked (id_label_check, "--label",
                                      opt.label)));
  if ((e = request ("POST", path, body, &r)) != 0)
    return e;
  if (!printed_json (&r))
    printf ("rolled %s back to snapshot %s: its new snapshot is %s "
            "(generation %" PRIu64 ")\n", args[0], args[1],
            show_str (r.json, "snapshot_id") ?: "-",
            show_u64 (r.json, "generation"));
  client_reply_free (&r);
  return 0;
}

static int
cmd_compact (char **args)
{
  struct client_reply r;
  int e = long_request (checked (id_export_check, "ID", args[0]), "compact",
                        "compacting", &r);

  if (e || r.json == NULL)
    return e;
  if (!printed_json (&r))
    printf ("compacted %s into snapshot %s (generation %" PRIu64 ")\n",
            args[0], show_str (r.json, "snapshot_id") ?: "-",
            show_u64 (r.json, "generation"));
  client_reply_free (&r);
  return 0;
}

/* Hydrate answers at once (202) and runs in the background: follow the
 * status until the export is no longer hydrating; its last_operation
 * then says whether it was done (with a warning if it stopped at the
 * cache budget), failed (and why) or was cancelled (by a reset or a
 * close).
 */
static int
cmd_hydrate (char **args)
{
  const char *id = checked (id_name_check, "ID", args[0]);
  struct progress_op op = {
    .sock = opt.socket, .export_id = id, .verb = "hydrate",
    .state = "hydrating", .quiet = opt.json,
  };
  struct client_reply r;
  json_object *last = NULL;
  const char *result;
  char b[SHOW_BUF];
  int e = export_request ("POST", id, "hydrate", &r);

  if (e)
    return e;
  client_reply_free (&r);
  if ((e = progress_wait (&op, NULL, &r)) == 1)
    return CLIENT_EXIT_DETACHED;
  if (e == -1)
    return failed ();
  if ((e = reply_result (&r)) != 0)
    return e;
  json_object_object_get_ex (r.json, "last_operation", &last);
  result = show_str (last, "result") ?: "-";
  if (strcmp (result, "done") != 0) {
    fprintf (stderr, "lazyvolctl: the hydrate of %s %s: %s\n", id,
             strcmp (result, "cancelled") == 0 ? "was cancelled"
             : "failed", show_str (last, "error")
             ?: "the export was unloaded");
    client_reply_free (&r);
    return CLIENT_EXIT_ERROR;
  }
  if (show_str (last, "warning"))
    fprintf (stderr, "lazyvolctl: warning: the hydrate of %s %s\n", id,
             show_str (last, "warning"));
  if (!printed_json (&r))
    printf ("hydrated %s: %" PRIu64 " of %" PRIu64 " chunks resident (%s)\n",
            id, show_u64 (r.json, "resident_chunks"),
            show_u64 (r.json, "chunk_count"),
            show_bytes (show_u64 (r.json, "resident_chunks") *
                        show_u64 (r.json, "chunk_size"), b));
  client_reply_free (&r);
  return 0;
}

static int
cmd_reset (char **args)
{
  struct client_reply r;
  int e = export_request ("POST", checked (id_export_check, "ID", args[0]),
                          "cache/reset", &r);

  if (e)
    return e;
  if (!printed_json (&r))
    printf ("reset %s: its local state is dropped; it reads as snapshot %s\n",
            args[0], show_str (r.json, "snapshot_id") ?: "(none: zeros)");
  client_reply_free (&r);
  return 0;
}

static int
cmd_snapshots (char **args)
{
  struct client_reply r;
  int e = export_request ("GET", checked (id_export_check, "ID", args[0]),
                          "snapshots", &r);

  if (e)
    return e;
  if (!printed_json (&r)) {
    if (opt.quiet)
      print_ids (r.json, "snapshots", "snapshot_id");
    else
      show_snapshots (r.json);
  }
  client_reply_free (&r);
  return 0;
}

static int
cmd_delete_snapshot (char **args)
{
  CLEANUP_FREE char *what =
    xasprintf ("snapshots/%s", checked (id_snapshot_check, "SID", args[1]));
  struct client_reply r;
  int e = export_request ("DELETE", checked (id_export_check, "ID", args[0]),
                          what, &r);

  if (e)
    return e;
  if (!printed_json (&r))
    printf ("deleted snapshot %s of %s%s\n", args[1], args[0],
            show_bool (r.json, "blob_kept")
            ? " (its blob is kept: another snapshot uses it)" : "");
  client_reply_free (&r);
  return 0;
}

static int
cmd_gc (char **args)
{
  CLEANUP_FREE char *path =
    xasprintf ("/v1/exports/%s/gc", checked (id_export_check, "ID", args[0]));
  json_object *body = json_object_new_object ();
  struct client_reply r;
  int e;

  json_object_object_add (body, "delete",
                          json_object_new_boolean (opt.delete));
  if (opt.grace)
    json_object_object_add (body, "grace_s", json_object_new_int64
                            (seconds_arg ("--grace", opt.grace)));
  if ((e = request ("POST", path, body, &r)) != 0)
    return e;
  if (!printed_json (&r))
    show_unused (r.json, opt.delete ? ""
                 : " (a dry run: --delete deletes them)");
  client_reply_free (&r);
  return 0;
}

/* fsck fails (exit 1) if problems remain after it: manifests that do not
 * parse, summaries and markers it did not repair.
 */
static int
cmd_fsck (char **args)
{
  CLEANUP_FREE char *path =
    xasprintf ("/v1/exports/%s/fsck", checked (id_export_check, "ID",
                                               args[0]));
  json_object *body = json_object_new_object ();
  struct client_reply r;
  uint64_t problems;
  int e;

  json_object_object_add (body, "repair",
                          json_object_new_boolean (opt.repair));
  if ((e = request ("POST", path, body, &r)) != 0)
    return e;
  if (!printed_json (&r))
    show_fsck (r.json);
  problems = show_u64 (r.json, "problems");
  client_reply_free (&r);
  if (problems == 0) {
    if (!opt.json)
      printf ("%s: no problems\n", args[0]);
    return 0;
  }
  fprintf (stderr, "lazyvolctl: %s: %" PRIu64 " problem%s left%s\n", args[0],
           problems, problems == 1 ? "" : "s",
           opt.repair ? "" : " (--repair repairs summaries and markers)");
  return CLIENT_EXIT_ERROR;
}

static int
cmd_fork (char **args)
{
  CLEANUP_FREE char *path =
    xasprintf ("/v1/exports/%s/fork", checked (id_export_check, "ID",
                                               args[0]));
  json_object *body = json_object_new_object ();
  struct client_reply r;
  int e;

  json_object_object_add (body, "new_export_id", json_object_new_string
                          (checked (id_export_check, "NEW", args[1])));
  if ((e = request ("POST", path, body, &r)) != 0)
    return e;
  if (!printed_json (&r))
    printf ("forked the local writes of %s into %s\n", args[0], args[1]);
  client_reply_free (&r);
  return 0;
}

static int
cmd_health (char **args)
{
  struct client_reply r;
  int e = request ("GET", "/v1/health", NULL, &r);

  if (e)
    return e;
  if (!printed_json (&r))
    show_health (r.json);
  client_reply_free (&r);
  return 0;
}

static int cmd_help (char **args);

static const struct command commands[] = {
  { "list", "[-q]", 0, O_QUIET, cmd_list,
    "the loaded exports",
    "List the loaded exports.\n"
    "With -q, print only their ids, one a line." },
  { "status", "ID", 1, 0, cmd_status,
    "an export's status",
    "Show an export's status: its snapshot, cached and unpublished chunks,\n"
    "the operation running on it, its owner and lease." },
  { "create", "ID SIZE [--chunk-size N] [--cache-max-size M]", 2,
    O_CHUNK_SIZE | O_CACHE_MAX, cmd_create,
    "create and load a new export",
    "Create a new export of SIZE bytes and load it.\n"
    "SIZE, N and M take a K, M, G or T suffix (or KiB, MiB ...: powers of\n"
    "1024).  N is a power of two from 64K to 64M (default 4M).  M limits\n"
    "the bytes the export's cache may take, within lazyvold's\n"
    "--cache-max-size, from now on (kept in its cache)." },
  { "open", "ID [--takeover|--force-takeover] [--cache-max-size M|none]", 1,
    O_TAKEOVER | O_FORCE | O_CACHE_MAX, cmd_open,
    "load an export from the store",
    "Load an export that exists in the store (or ID@SNAPSHOT, a read-only\n"
    "view of a snapshot).  One another host owns loads read-only, unless\n"
    "--takeover takes it once its owner's lease has expired, or\n"
    "--force-takeover takes it at once (only if that host is dead).\n"
    "--cache-max-size sets the limit of the export's own cache, as for\n"
    "create; none removes it." },
  { "close", "ID", 1, 0, cmd_close,
    "flush and unload an export",
    "Flush an export and unload it; its data stays in the store and the\n"
    "cache.  It stays unloaded across restarts of lazyvold until opened\n"
    "again, and this host gives up its ownership (unless writes are\n"
    "unpublished)." },
  { "delete", "ID [--remote] [--discard-local]", 1,
    O_REMOTE | O_DISCARD, cmd_delete,
    "delete an export (here, or everywhere)",
    "Unload export ID and delete its local cache; it is not loaded here\n"
    "again until opened.  With --remote, also delete it from the store:\n"
    "its head first, then its snapshots and every object no other export\n"
    "(a clone) uses.  Refused (exit 4) while clients are connected, while\n"
    "writes are unpublished (unless --discard-local, which loses them), or\n"
    "with --remote when another host owns it.  Asks nothing.  A remote\n"
    "delete that stopped half-way is finished by the same command." },
  { "clone", "ID SOURCE [--snapshot SID] [--cache-max-size M]", 2,
    O_SNAPSHOT | O_CACHE_MAX, cmd_clone,
    "a new export from a snapshot",
    "Create export ID from a published snapshot of SOURCE (its current\n"
    "one, or SID), sharing its data; --cache-max-size as for create." },
  { "snapshot", "ID [--label TEXT] [--no-wait]", 1, O_NO_WAIT | O_LABEL,
    cmd_snapshot,
    "publish the unpublished writes",
    "Publish the chunks written since the last snapshot, showing the\n"
    "progress.  Ctrl-C detaches: the snapshot goes on in lazyvold.\n"
    "--no-wait only starts it; status shows how it goes and ended.\n"
    "--label TEXT gives the snapshot a label (at most 128 bytes of UTF-8,\n"
    "no control characters), shown by snapshots; the id stays its name." },
  { "snapshots", "ID [-q]", 1, O_QUIET, cmd_snapshots,
    "the published snapshots",
    "List an export's published snapshots, oldest first.\n"
    "With -q, print only their ids." },
  { "resize", "ID SIZE", 2, 0, cmd_resize,
    "grow an export",
    "Grow export ID to SIZE bytes (K, M, G, T ... as for create): new\n"
    "connections see it at once, open ones keep their size, and the next\n"
    "snapshot publishes it.  Shrinking is refused." },
  { "rollback", "ID SID [--discard-local] [--label TEXT]", 2,
    O_DISCARD | O_LABEL, cmd_rollback,
    "roll an export back to a snapshot",
    "Publish a new snapshot of export ID whose image is snapshot SID's and\n"
    "make it the head; nothing is deleted.  Refused while ID has writes\n"
    "not published, unless --discard-local, which drops them.  Writes\n"
    "are refused while it runs." },
  { "delete-snapshot", "ID SID", 2, 0, cmd_delete_snapshot,
    "delete a snapshot",
    "Delete snapshot SID of export ID (not the current one); its blob is\n"
    "kept while another snapshot uses it." },
  { "compact", "ID [--label TEXT] [--no-wait]", 1, O_NO_WAIT | O_LABEL,
    cmd_compact,
    "rewrite the image into one base",
    "Rewrite an export's whole image into one new base snapshot, showing\n"
    "the progress.  Ctrl-C detaches: the compact goes on in lazyvold.\n"
    "--no-wait only starts it; status shows how it goes and ended." },
  { "hydrate", "ID", 1, 0, cmd_hydrate,
    "fetch every chunk into the cache",
    "Fetch every chunk of an export into the cache, showing the progress\n"
    "until it is done.  Ctrl-C detaches: the hydrate goes on in lazyvold." },
  { "gc", "ID [--delete] [--grace SECS]", 1, O_DELETE | O_GRACE, cmd_gc,
    "find (and delete) unused objects",
    "List the objects in export ID's folder that no manifest or journal\n"
    "names: blobs of deleted or never published snapshots; and the\n"
    "uploads there that were never completed, but the journal's.  A dry\n"
    "run unless --delete, which deletes the objects and aborts the\n"
    "uploads.  Objects of snapshots younger than --grace seconds (a day),\n"
    "and uploads begun since, are kept." },
  { "fsck", "ID [--repair]", 1, O_REPAIR, cmd_fsck,
    "check (and repair) an export's objects",
    "Check export ID's objects in the store: every manifest parses, every\n"
    "summary says what its manifest says, the reference markers of its\n"
    "clones' blobs are there; list stale markers and unused objects.\n"
    "With --repair, write the missing or wrong summaries and markers\n"
    "again.  Exit 1 if problems remain." },
  { "reset", "ID", 1, 0, cmd_reset,
    "drop the local state (writes are lost)",
    "Drop an export's local state: unpublished writes are LOST, and it\n"
    "reads as its current snapshot." },
  { "fork", "ID NEW", 2, 0, cmd_fork,
    "move stale writes into a new export",
    "Move an export's unpublished (stale) writes into new export NEW, a\n"
    "clone of the snapshot they were written over." },
  { "health", "", 0, 0, cmd_health,
    "is lazyvold up?",
    "Is lazyvold up, and nbdkit behind it?" },
  { "help", "[COMMAND]", -1, 0, cmd_help,
    "describe a command",
    "Describe a command, or list them all." },
  { NULL },
};

#define SUMMARY_INDENT "                                    "

static void
usage (FILE *f)
{
  fprintf (f,
"Usage: lazyvolctl [--socket PATH] [--json] COMMAND [ARGS]\n"
"       lazyvolctl help COMMAND | --help | --version\n"
"\n"
"Drive lazyvold, lazyvol's daemon, through its admin API.  See\n"
"lazyvolctl(8).\n"
"\n"
"Commands:\n");
  for (const struct command *c = commands; c->name; c++) {
    int n = fprintf (f, "  %s %s", c->name, c->args);

    fprintf (f, "%*s%s\n", n < 36 ? 36 - n : 0, n < 36 ? "" : "\n" SUMMARY_INDENT,
             c->summary);
  }
  fprintf (f,
"\n"
"Options:\n"
"  --socket PATH  lazyvold's admin socket (default: $" ADMINSOCK_ENV ", else\n"
"                 " ADMINSOCK_ROOT_DIR "/" ADMINSOCK_NAME " for root,\n"
"                 $XDG_RUNTIME_DIR/lazyvol/" ADMINSOCK_NAME " for others,\n"
"                 or the system service's if theirs is missing)\n"
"  --json         print lazyvold's JSON reply, and no progress\n"
"\n"
"Exit status: 0 ok, 1 error, 2 usage, 3 not found, 4 conflict,\n"
"5 object-store failure, 130 detached by Ctrl-C.\n");
}

static const struct command *
find_command (const char *name)
{
  for (const struct command *c = commands; c->name; c++)
    if (strcmp (c->name, name) == 0)
      return c;
  return NULL;
}

static int
cmd_help (char **args)
{
  const struct command *c;

  if (args[0] == NULL) {
    usage (stdout);
    return 0;
  }
  if (args[1])
    usage_error ("help takes one command");
  if ((c = find_command (args[0])) == NULL)
    usage_error ("no command \"%s\" (try lazyvolctl --help)", args[0]);
  printf ("Usage: lazyvolctl [--socket PATH] [--json] %s %s\n\n%s\n",
          c->name, c->args, c->help);
  return 0;
}

enum {
  OPT_SOCKET = 256, OPT_JSON, OPT_CHUNK_SIZE, OPT_TAKEOVER, OPT_FORCE,
  OPT_SNAPSHOT, OPT_NO_WAIT, OPT_DELETE, OPT_GRACE, OPT_REPAIR, OPT_CACHE_MAX,
  OPT_LABEL, OPT_DISCARD, OPT_REMOTE, OPT_HELP,
  OPT_VERSION,
};

static const struct option long_options[] = {
  { "socket", required_argument, NULL, OPT_SOCKET },
  { "admin-sock", required_argument, NULL, OPT_SOCKET },     /* lazyvold's */
  { "json", no_argument, NULL, OPT_JSON },
  { "chunk-size", required_argument, NULL, OPT_CHUNK_SIZE },
  { "takeover", no_argument, NULL, OPT_TAKEOVER },
  { "force-takeover", no_argument, NULL, OPT_FORCE },
  { "snapshot", required_argument, NULL, OPT_SNAPSHOT },
  { "no-wait", no_argument, NULL, OPT_NO_WAIT },
  { "delete", no_argument, NULL, OPT_DELETE },
  { "grace", required_argument, NULL, OPT_GRACE },
  { "repair", no_argument, NULL, OPT_REPAIR },
  { "cache-max-size", required_argument, NULL, OPT_CACHE_MAX },
  { "label", required_argument, NULL, OPT_LABEL },
  { "discard-local", no_argument, NULL, OPT_DISCARD },
  { "remote", no_argument, NULL, OPT_REMOTE },
  { "quiet", no_argument, NULL, 'q' },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, OPT_VERSION },
  { NULL },
};

/* Parse the command line (options anywhere); the command and its
 * arguments are left in ARGV from optind.
 */
static void
parse (int argc, char **argv)
{
  int c;

  while ((c = getopt_long (argc, argv, "q", long_options, NULL)) != -1) {
    switch (c) {
    case OPT_SOCKET: opt.socket = optarg; break;
    case OPT_JSON: opt.json = true; break;
    case OPT_CHUNK_SIZE: opt.chunk_size = optarg; opt.given |= O_CHUNK_SIZE;
      break;
    case OPT_TAKEOVER: opt.takeover = "true"; opt.given |= O_TAKEOVER; break;
    case OPT_FORCE: opt.takeover = "force"; opt.given |= O_FORCE; break;
    case OPT_SNAPSHOT: opt.snapshot = optarg; opt.given |= O_SNAPSHOT; break;
    case OPT_NO_WAIT: opt.no_wait = true; opt.given |= O_NO_WAIT; break;
    case OPT_DELETE: opt.delete = true; opt.given |= O_DELETE; break;
    case OPT_GRACE: opt.grace = optarg; opt.given |= O_GRACE; break;
    case OPT_REPAIR: opt.repair = true; opt.given |= O_REPAIR; break;
    case OPT_CACHE_MAX:
      opt.cache_max_size = optarg;
      opt.given |= O_CACHE_MAX;
      break;
    case OPT_LABEL: opt.label = optarg; opt.given |= O_LABEL; break;
    case OPT_DISCARD: opt.discard = true; opt.given |= O_DISCARD; break;
    case OPT_REMOTE: opt.remote = true; opt.given |= O_REMOTE; break;
    case 'q': opt.quiet = true; opt.given |= O_QUIET; break;
    case OPT_HELP: usage (stdout); exit (0);
    case OPT_VERSION: printf ("lazyvolctl %s\n", VERSION); exit (0);
    default: usage (stderr); exit (CLIENT_EXIT_USAGE);
    }
  }
}

int
main (int argc, char **argv)
{
  const struct command *c;
  char **args;
  int nargs;

  parse (argc, argv);
  if (optind >= argc)
    usage_error ("expected a command (try lazyvolctl --help)");
  if ((c = find_command (argv[optind])) == NULL)
    usage_error ("no command \"%s\" (try lazyvolctl --help)", argv[optind]);
  args = argv + optind + 1;
  nargs = argc - optind - 1;
  if (c->nargs >= 0 && nargs != c->nargs)
    usage_error ("%s wants %s (try lazyvolctl help %s)", c->name,
                 c->args[0] ? c->args : "no arguments", c->name);
  if (opt.given & ~c->options)
    usage_error ("%s takes no such option (try lazyvolctl help %s)",
                 c->name, c->name);
  if ((opt.given & O_TAKEOVER) && (opt.given & O_FORCE))
    usage_error ("open takes --takeover or --force-takeover, not both");
  if (c->run == cmd_help)
    return cmd_help (args);
  if (opt.socket == NULL && (opt.socket = getenv (ADMINSOCK_ENV)) != NULL &&
      opt.socket[0] == '\0')
    opt.socket = NULL;
  if (opt.socket == NULL &&
      (opt.socket = adminsock_find ()) == NULL)
    usage_error ("%s: name lazyvold's socket with --socket PATH or $"
                 ADMINSOCK_ENV, err_msg ());
  if (client_init () == -1)
    return failed ();
  return c->run (args);
}
