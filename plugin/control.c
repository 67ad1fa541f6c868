/* lazyvol plugin: the control socket (see control.h).
 *
 * One accept thread; one thread per client connection (at most
 * MAX_CLIENTS; more get a "busy" reply and are closed), which reads a
 * line, runs the command and writes the reply line.  Commands that take
 * long (snapshot, compact) block only their own connection; status and
 * list stay fast on others.  A command works on a registry reference, so
 * an export cannot be unloaded under it.
 *
 * Requests are untrusted: lines are capped at LINE_MAX_BYTES, JSON depth
 * is limited, every argument is type-checked and every id validated
 * before it reaches a path or an object key.  A bad request gets an error
 * reply and the connection stays usable (an oversized line is refused
 * and skipped up to its newline).
 *
 * Shutdown (control_stop) closes the listener, shuts the clients' sockets
 * for reading so they finish the command they are running (a snapshot in
 * progress completes), and waits for them.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "control.h"
#include "err.h"
#include "format.h"
#include "publish.h"
#include "registry.h"
#include "store.h"

#define MAX_CLIENTS 64
#define LINE_MAX_BYTES (1024 * 1024)
#define JSON_DEPTH 8

static struct volume_env *env;
static int listen_fd = -1;
static int stop_pipe[2] = { -1, -1 };
static char *sock_path;
static pthread_t accept_thread;

static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t clients_gone = PTHREAD_COND_INITIALIZER;
static int client_fds[MAX_CLIENTS];
static unsigned nclients;

/* Arguments. */

static int
arg_string (json_object *req, const char *key, bool required,
            const char **out)
{
  json_object *o;

  *out = NULL;
  if (!json_object_object_get_ex (req, key, &o) ||
      json_object_is_type (o, json_type_null)) {
    if (required)
      return err_set (EINVAL, "missing \"%s\"", key);
    return 0;
  }
  if (!json_object_is_type (o, json_type_string))
    return err_set (EINVAL, "\"%s\" must be a string", key);
  *out = json_object_get_string (o);
  return 0;
}

static int
arg_export_id (json_object *req, const char *key, const char **out)
{
  if (arg_string (req, key, true, out) == -1)
    return -1;
  if (!id_export_valid (*out))
    return err_set (EINVAL, "invalid %s \"%.140s\" (want "
                    "[A-Za-z0-9][A-Za-z0-9._-]{0,127})", key, *out);
  return 0;
}

/* The export name for status-like commands: an export id, or E@S. */
static int
arg_name (json_object *req, const char **out)
{
  const char *at;

  if (arg_string (req, "export_id", true, out) == -1)
    return -1;
  at = strchr (*out, '@');
  if (strlen (*out) > EXPORT_ID_MAX + 1 + SNAPSHOT_ID_LEN ||
      (at && !id_snapshot_valid (at + 1)))
    return err_set (EINVAL, "invalid export_id \"%.200s\"", *out);
  return 0;
}

static int
arg_snapshot_id (json_object *req, const char *key, bool required,
                 const char **out)
{
  if (arg_string (req, key, required, out) == -1)
    return -1;
  if (*out && !id_snapshot_valid (*out))
    return err_set (EINVAL, "invalid %s \"%.40s\" (want 32 lowercase hex "
                    "digits)", key, *out);
  return 0;
}

static int
arg_u64 (json_object *req, const char *key, bool required, uint64_t *out)
{
  json_object *o;
  int64_t i;

  if (!json_object_object_get_ex (req, key, &o)) {
    if (required)
      return err_set (EINVAL, "missing \"%s\"", key);
    return 0;
  }
  if (!json_object_is_type (o, json_type_int))
    return err_set (EINVAL, "\"%s\" must be an integer", key);
  errno = 0;
  i = json_object_get_int64 (o);
  if (i < 0 || errno == ERANGE ||
      (i == INT64_MAX && json_object_get_uint64 (o) != (uint64_t) i))
    return err_set (EINVAL, "\"%s\" is out of range", key);
  *out = i;
  return 0;
}

/* Replies. */

static void
add_u64 (json_object *o, const char *key, uint64_t v)
{
  json_object_object_add (o, key, json_object_new_uint64 (v));
}

static void
add_str (json_object *o, const char *key, const char *s)
{
  json_object_object_add (o, key, s && s[0] ? json_object_new_string (s)
                                             : NULL);
}

static void
add_status (json_object *o, struct volume *v)
{
  struct volume_status s;
  json_object *progress = json_object_new_object ();

  volume_status (v, &s);
  json_object_object_add (o, "export_id",
                          json_object_new_string (volume_name (v)));
  add_str (o, "snapshot_id", s.snapshot_id);
  json_object_object_add (o, "readonly", json_object_new_boolean (s.readonly));
  add_u64 (o, "image_size", s.image_size);
  add_u64 (o, "chunk_size", s.chunk_size);
  add_u64 (o, "chunk_count", s.cache.chunks);
  add_u64 (o, "resident_chunks", s.cache.resident);
  add_u64 (o, "dirty_chunks", s.cache.dirty);
  add_u64 (o, "snapshot_generation", s.snapshot_generation);
  add_u64 (o, "remote_head_generation", s.remote_head_generation);
  json_object_object_add (o, "operation_state",
                          json_object_new_string (volume_op_name (s.op)));
  add_u64 (progress, "done", s.op_done);
  add_u64 (progress, "total", s.op_total);
  json_object_object_add (o, "operation_progress", progress);
  add_u64 (o, "connections", registry_connections (volume_name (v)));
  add_str (o, "last_error", s.last_error);
}

static int
status_array_add (void *opaque, struct volume *v)
{
  json_object *item = json_object_new_object ();

  add_status (item, v);
  json_object_array_add (opaque, item);
  return 0;
}

/* Commands: each fills RES and returns 0, or returns -1 with err_set. */

static int
cmd_ping (json_object *req, json_object *res)
{
  json_object_object_add (res, "version", json_object_new_string (VERSION));
  add_u64 (res, "pid", getpid ());
  return 0;
}

static int
cmd_list (json_object *req, json_object *res)
{
  json_object *a = json_object_new_array ();

  json_object_object_add (res, "exports", a);
  return registry_foreach (status_array_add, a);
}

/* Reply with the status of loaded export NAME. */
static int
reply_status (json_object *res, const char *name)
{
  struct volume *v = registry_get (name, false, false);

  if (v == NULL)
    return -1;
  add_status (res, v);
  registry_put (v, false);
  return 0;
}

static int
cmd_create (json_object *req, json_object *res)
{
  const char *id;
  uint64_t size, chunk_size = CHUNK_SIZE_DEFAULT;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      arg_u64 (req, "size", true, &size) == -1 ||
      arg_u64 (req, "chunk_size", false, &chunk_size) == -1)
    return -1;
  if (chunk_size > UINT32_MAX)
    return err_set (EINVAL, "invalid chunk size %ju", (uintmax_t) chunk_size);
  if (volume_create (env, id, size, chunk_size) == -1 ||
      registry_load (id) == -1)
    return -1;
  log_info ("created export %s (%ju bytes, %ju-byte chunks)", id,
            (uintmax_t) size, (uintmax_t) chunk_size);
  return reply_status (res, id);
}

static int
cmd_open (json_object *req, json_object *res)
{
  const char *name;

  if (arg_name (req, &name) == -1 || registry_load (name) == -1)
    return -1;
  return reply_status (res, name);
}

static int
cmd_close (json_object *req, json_object *res)
{
  const char *name;

  if (arg_name (req, &name) == -1)
    return -1;
  return registry_unload (name);
}

static int
cmd_status (json_object *req, json_object *res)
{
  const char *name;

  if (arg_name (req, &name) == -1)
    return -1;
  return reply_status (res, name);
}

/* Run FN (publish_snapshot or publish_compact) on the export named in
 * REQ and reply with the new generation and snapshot id.
 */
static int
run_publish (json_object *req, json_object *res,
             int (*fn) (struct volume *, struct publish_result *))
{
  struct publish_result pr;
  struct volume *v;
  const char *id;
  int r;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      (v = registry_get (id, false, false)) == NULL)
    return -1;
  r = fn (v, &pr);
  registry_put (v, false);
  if (r == -1)
    return -1;
  add_u64 (res, "generation", pr.generation);
  add_str (res, "snapshot_id", pr.snapshot_id);
  if (pr.created)
    registry_refresh_snapshots (id);
  return pr.created;
}

static int
cmd_snapshot (json_object *req, json_object *res)
{
  int created = run_publish (req, res, publish_snapshot);

  if (created == -1)
    return -1;
  json_object_object_add (res, "snapshot_created",
                          json_object_new_boolean (created));
  return 0;
}

static int
cmd_compact (json_object *req, json_object *res)
{
  return run_publish (req, res, publish_compact) == -1 ? -1 : 0;
}

static int
cmd_clone (json_object *req, json_object *res)
{
  struct publish_result pr;
  const char *id, *src, *snap;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      arg_export_id (req, "source_export_id", &src) == -1 ||
      arg_snapshot_id (req, "source_snapshot_id", false, &snap) == -1)
    return -1;
  if (publish_clone (env, id, src, snap, &pr) == -1 ||
      registry_load (id) == -1)
    return -1;
  return reply_status (res, id);
}

static const char *
kind_name (enum manifest_kind kind)
{
  return kind == MANIFEST_BASE ? "base"
    : kind == MANIFEST_CLONE ? "clone" : "delta";
}

static int
cmd_snapshots (json_object *req, json_object *res)
{
  CLEANUP_FREE struct snapshot_info *list = NULL;
  json_object *a;
  const char *id;
  size_t n;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      publish_list (env, id, &list, &n) == -1)
    return -1;
  a = json_object_new_array ();
  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_new_object ();
    add_str (o, "snapshot_id", list[i].snapshot_id);
    add_u64 (o, "generation", list[i].generation);
    add_str (o, "created", list[i].created);
    json_object_object_add (o, "kind",
                            json_object_new_string (kind_name (list[i].kind)));
    add_str (o, "parent", list[i].parent);
    add_u64 (o, "blob_size", list[i].blob_size);
    add_u64 (o, "chunks", list[i].chunks);
    json_object_object_add (o, "current",
                            json_object_new_boolean (list[i].current));
    json_object_array_add (a, o);
  }
  json_object_object_add (res, "snapshots", a);
  return 0;
}

static int
cmd_delete_snapshot (json_object *req, json_object *res)
{
  char view[EXPORT_ID_MAX + 2 + SNAPSHOT_ID_LEN];
  const char *id, *snap;
  bool kept;

  if (arg_export_id (req, "export_id", &id) == -1 ||
      arg_snapshot_id (req, "snapshot_id", true, &snap) == -1)
    return -1;
  /* A loaded read-only view of the snapshot goes first (not while a
   * client uses it).
   */
  snprintf (view, sizeof view, "%s@%s", id, snap);
  if (registry_unload (view) == -1 && errno != ENOENT)
    return -1;
  if (publish_delete (env, id, snap, &kept) == -1)
    return -1;
  json_object_object_add (res, "blob_kept", json_object_new_boolean (kept));
  registry_refresh_snapshots (id);
  return 0;
}

static int
cmd_reset (json_object *req, json_object *res)
{
  struct volume *v;
  const char *id;
  unsigned conns;
  int r;

  if (arg_export_id (req, "export_id", &id) == -1)
    return -1;
  conns = registry_connections (id);
  if (conns > 0)
    return err_set (EBUSY, "export %s has %u connected client%s; "
                    "disconnect them before a reset", id, conns,
                    conns == 1 ? "" : "s");
  if ((v = registry_get (id, false, false)) == NULL)
    return -1;
  r = volume_reset (v);
  registry_put (v, false);
  return r == -1 ? -1 : reply_status (res, id);
}

static int
cmd_hydrate (json_object *req, json_object *res)
{
  struct volume *v;
  const char *name;
  int r;

  if (arg_name (req, &name) == -1 ||
      (v = registry_get (name, false, false)) == NULL)
    return -1;
  r = volume_hydrate (v);
  if (r == 0)
    add_status (res, v);
  registry_put (v, false);
  return r;
}

static int
metrics_add (void *opaque, struct volume *v)
{
  json_object *o = json_object_new_object ();
  struct volume_status s;

  volume_status (v, &s);
  json_object_object_add (o, "export_id",
                          json_object_new_string (volume_name (v)));
  add_u64 (o, "resident_chunks", s.cache.resident);
  add_u64 (o, "dirty_chunks", s.cache.dirty);
  add_u64 (o, "read_hits", s.cache.read_hits);
  add_u64 (o, "read_misses", s.cache.read_misses);
  add_u64 (o, "fills", s.cache.fills);
  add_u64 (o, "fill_bytes", s.cache.fill_bytes);
  add_u64 (o, "fill_errors", s.cache.fill_errors);
  add_u64 (o, "publishes", s.publishes);
  add_u64 (o, "publish_ns", s.publish_ns);
  add_u64 (o, "last_publish_ns", s.last_publish_ns);
  add_u64 (o, "connections", registry_connections (volume_name (v)));
  json_object_array_add (opaque, o);
  return 0;
}

static int
cmd_metrics (json_object *req, json_object *res)
{
  json_object *st = json_object_new_object ();
  json_object *a = json_object_new_array ();
  struct store_stats ss;

  store_get_stats (env->st, &ss);
  add_u64 (st, "requests", ss.requests);
  add_u64 (st, "errors", ss.errors);
  add_u64 (st, "retries", ss.retries);
  add_u64 (st, "bytes_in", ss.bytes_in);
  add_u64 (st, "bytes_out", ss.bytes_out);
  add_u64 (st, "range_gets", ss.range_gets);
  add_u64 (st, "range_get_ns", ss.range_get_ns);
  json_object_object_add (res, "store", st);
  json_object_object_add (res, "exports", a);
  return registry_foreach (metrics_add, a);
}

static const struct {
  const char *name;
  int (*fn) (json_object *req, json_object *res);
} commands[] = {
  { "ping", cmd_ping },
  { "list", cmd_list },
  { "create", cmd_create },
  { "open", cmd_open },
  { "close", cmd_close },
  { "status", cmd_status },
  { "snapshot", cmd_snapshot },
  { "compact", cmd_compact },
  { "clone", cmd_clone },
  { "snapshots", cmd_snapshots },
  { "delete_snapshot", cmd_delete_snapshot },
  { "reset", cmd_reset },
  { "hydrate", cmd_hydrate },
  { "metrics", cmd_metrics },
};

/* The reply for this thread's recorded error. */
static json_object *
error_reply (void)
{
  json_object *res = json_object_new_object ();

  json_object_object_add (res, "ok", json_object_new_boolean (false));
  json_object_object_add (res, "error", json_object_new_string (err_msg ()));
  json_object_object_add (res, "code",
                          json_object_new_string (err_code (err_errno ())));
  return res;
}

/* Run one request line; returns the reply object. */
static json_object *
run_line (const char *line, size_t len)
{
  json_tokener *tok = json_tokener_new_ex (JSON_DEPTH);
  json_object *req = NULL, *res = json_object_new_object ();
  const char *cmd;
  int r = -1;

  err_clear ();
  if (tok == NULL) {
    err_set (ENOMEM, "out of memory");
    goto reply;
  }
  req = json_tokener_parse_ex (tok, line, len);
  if (req == NULL || json_tokener_get_parse_end (tok) != len) {
    err_set (EINVAL, "malformed JSON request: %s",
             req ? "trailing data"
             : json_tokener_error_desc (json_tokener_get_error (tok)));
    goto reply;
  }
  if (!json_object_is_type (req, json_type_object)) {
    err_set (EINVAL, "a request must be a JSON object");
    goto reply;
  }
  if (arg_string (req, "cmd", true, &cmd) == -1)
    goto reply;
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp (cmd, commands[i].name) == 0) {
      r = commands[i].fn (req, res);
      goto reply;
    }
  err_set (EINVAL, "unknown command \"%.40s\"", cmd);

 reply:
  if (r == -1) {
    json_object_put (res);
    res = error_reply ();
  }
  else
    json_object_object_add (res, "ok", json_object_new_boolean (true));
  json_object_put (req);
  if (tok)
    json_tokener_free (tok);
  return res;
}

static int
write_reply (int fd, json_object *res)
{
  const char *s = json_object_to_json_string_ext (res, JSON_C_TO_STRING_PLAIN);
  size_t len = strlen (s);
  CLEANUP_FREE char *line = malloc (len + 1);

  if (line == NULL)
    return -1;
  memcpy (line, s, len);
  line[len] = '\n';
  for (size_t done = 0; done <= len; ) {
    ssize_t n = send (fd, line + done, len + 1 - done, MSG_NOSIGNAL);
    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    done += n;
  }
  return 0;
}

static void
client_done (int fd)
{
  pthread_mutex_lock (&clients_lock);
  for (unsigned i = 0; i < nclients; i++)
    if (client_fds[i] == fd) {
      client_fds[i] = client_fds[--nclients];
      break;
    }
  pthread_cond_broadcast (&clients_gone);
  pthread_mutex_unlock (&clients_lock);
  close (fd);
}

static void *
serve_client (void *arg)
{
  int fd = (intptr_t) arg;
  CLEANUP_FREE char *buf = malloc (LINE_MAX_BYTES + 1);
  size_t have = 0;
  bool discarding = false;      /* skipping the rest of an oversized line */

  while (buf) {
    char *nl = memchr (buf, '\n', have);
    json_object *res = NULL;
    ssize_t n;

    if (nl && discarding) {
      discarding = false;
    }
    else if (nl) {
      res = run_line (buf, nl - buf);
    }
    else if (have == LINE_MAX_BYTES) {
      /* Refuse the line, drop it, and keep the connection usable. */
      err_set (EMSGSIZE, "request longer than %d bytes", LINE_MAX_BYTES);
      res = discarding ? NULL : error_reply ();
      discarding = true;
      have = 0;
    }
    if (nl) {
      have -= nl + 1 - buf;
      memmove (buf, nl + 1, have);
    }
    if (res) {
      int w = write_reply (fd, res);
      json_object_put (res);
      if (w == -1)
        break;
    }
    if (nl)
      continue;
    n = recv (fd, buf + have, LINE_MAX_BYTES - have, 0);
    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    have += n;
  }
  client_done (fd);
  return NULL;
}

static void *
accept_loop (void *arg)
{
  struct pollfd fds[2] = {
    { listen_fd, POLLIN, 0 }, { stop_pipe[0], POLLIN, 0 },
  };

  for (;;) {
    pthread_t th;
    int fd;

    if (poll (fds, 2, -1) == -1) {
      if (errno == EINTR)
        continue;
      log_error ("control socket: poll: %m");
      return NULL;
    }
    if (fds[1].revents)
      return NULL;
    fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd == -1)
      continue;
    pthread_mutex_lock (&clients_lock);
    if (nclients == MAX_CLIENTS) {
      json_object *res;

      pthread_mutex_unlock (&clients_lock);
      /* Say why, rather than close silently. */
      err_set (EBUSY, "too many control connections (%d); try again",
               MAX_CLIENTS);
      res = error_reply ();
      write_reply (fd, res);
      json_object_put (res);
      close (fd);
      continue;
    }
    client_fds[nclients++] = fd;
    pthread_mutex_unlock (&clients_lock);
    if (pthread_create (&th, NULL, serve_client, (void *) (intptr_t) fd)) {
      client_done (fd);
      continue;
    }
    pthread_detach (th);
  }
}

/* Is something listening on PATH? */
static bool
socket_in_use (const char *path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool used;

  strcpy (sun.sun_path, path);
  used = fd >= 0 && connect (fd, (struct sockaddr *) &sun, sizeof sun) == 0;
  if (fd >= 0)
    close (fd);
  return used;
}

int
control_start (const char *path, struct volume_env *e)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  mode_t old;
  int r;

  env = e;
  if (strlen (path) >= sizeof sun.sun_path)
    return err_set (ENAMETOOLONG, "control socket path %s is too long", path);
  if (socket_in_use (path))
    return err_set (EADDRINUSE, "control socket %s is in use by another "
                    "process", path);
  unlink (path);                /* a stale socket from a crash */
  strcpy (sun.sun_path, path);
  listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd == -1)
    return err_set (errno, "control socket: %m");
  old = umask (0177);           /* the socket is created 0600 */
  r = bind (listen_fd, (struct sockaddr *) &sun, sizeof sun);
  umask (old);
  if (r == -1 || listen (listen_fd, SOMAXCONN) == -1) {
    err_set (errno, "control socket %s: %m", path);
    goto err;
  }
  if (pipe2 (stop_pipe, O_CLOEXEC) == -1) {
    err_set (errno, "pipe: %m");
    goto err;
  }
  sock_path = strdup (path);
  if ((r = pthread_create (&accept_thread, NULL, accept_loop, NULL)) != 0) {
    err_set (r, "control socket: pthread_create: %m");
    goto err;
  }
  log_info ("control socket listening on %s", path);
  return 0;

 err:
  close (listen_fd);
  listen_fd = -1;
  unlink (path);
  return -1;
}

void
control_stop (void)
{
  if (listen_fd == -1)
    return;
  if (write (stop_pipe[1], "x", 1) == 1)
    pthread_join (accept_thread, NULL);
  close (listen_fd);
  listen_fd = -1;
  unlink (sock_path);
  free (sock_path);
  /* Let clients finish the command they run, then wait for them. */
  pthread_mutex_lock (&clients_lock);
  for (unsigned i = 0; i < nclients; i++)
    shutdown (client_fds[i], SHUT_RD);
  while (nclients > 0)
    pthread_cond_wait (&clients_gone, &clients_lock);
  pthread_mutex_unlock (&clients_lock);
  close (stop_pipe[0]);
  close (stop_pipe[1]);
}
