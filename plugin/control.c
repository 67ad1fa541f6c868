/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: the control socket server (see control.h; the commands
 * are in commands.c).
 *
 * One accept thread; one thread per client connection (at most
 * MAX_CLIENTS; more get a "busy" reply and are closed), which reads a
 * line, runs the command and writes the reply line.  Commands that take
 * long (snapshot, compact) block only their own connection; status and
 * list stay fast on others.
 *
 * Lines are capped at LINE_MAX_BYTES: an oversized one is refused and
 * skipped up to its newline, and the connection stays usable.  Replies
 * are sent with a send timeout (SEND_TIMEOUT_S): a client that stops
 * reading loses its connection instead of holding a thread, and with it
 * control_stop, forever.
 *
 * The socket file is created 0600 by unixsock_listen.  What is at the
 * path already is replaced only if it is a socket nobody listens on
 * (left by a crash); anything else — a live socket, a regular file from
 * a mistyped path — is an error, never deleted.
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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "commands.h"
#include "control.h"
#include "err.h"
#include "lock.h"
#include "unixsock.h"

#define MAX_CLIENTS 64
#define LINE_MAX_BYTES (1024 * 1024)
#define SEND_TIMEOUT_S 10

static int listen_fd = -1;
static int stop_pipe[2] = { -1, -1 };
static char *sock_path;
static pthread_t accept_thread;

/* Protects client_fds and nclients. */
static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t clients_gone = PTHREAD_COND_INITIALIZER;
static int client_fds[MAX_CLIENTS];
static unsigned nclients;

/* Send LEN bytes at BUF.  0, or -1 if the client is gone or too slow. */
static int
send_all (int fd, const char *buf, size_t len)
{
  for (size_t done = 0; done < len; ) {
    ssize_t n = send (fd, buf + done, len - done, MSG_NOSIGNAL);
    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;                /* EAGAIN: the send timeout expired */
    done += n;
  }
  return 0;
}

/* Send RES as one line (a status list can be a megabyte: not copied).
 * 0, or -1 if the client is gone or too slow.
 */
static int
write_reply (int fd, json_object *res)
{
  size_t len;
  const char *s = json_object_to_json_string_length (res,
                                                     JSON_C_TO_STRING_PLAIN,
                                                     &len);

  if (s == NULL)
    return -1;
  return send_all (fd, s, len) == -1 || send_all (fd, "\n", 1) == -1 ? -1 : 0;
}

/* Reply with this thread's recorded error. */
static int
write_error (int fd)
{
  json_object *res = commands_error_reply ();
  int r = write_reply (fd, res);

  json_object_put (res);
  return r;
}

static void
client_done (int fd)
{
  {
    LOCK_FOR_SCOPE (&clients_lock);
    for (unsigned i = 0; i < nclients; i++)
      if (client_fds[i] == fd) {
        client_fds[i] = client_fds[--nclients];
        break;
      }
    pthread_cond_broadcast (&clients_gone);
  }
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
      res = commands_run (buf, nl - buf);
    }
    else if (have == LINE_MAX_BYTES) {
      /* Refuse the line, drop it, and keep the connection usable. */
      err_set (EMSGSIZE, "request longer than %d bytes", LINE_MAX_BYTES);
      res = discarding ? NULL : commands_error_reply ();
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

/* Start serving accepted connection FD, or refuse it if there are too
 * many.
 */
static void
admit (int fd)
{
  struct timeval tv = { .tv_sec = SEND_TIMEOUT_S };
  bool room;
  pthread_t th;

  {
    LOCK_FOR_SCOPE (&clients_lock);
    room = nclients < MAX_CLIENTS;
    if (room)
      client_fds[nclients++] = fd;
  }
  if (!room) {
    /* Say why, rather than close silently. */
    err_set (EBUSY, "too many control connections (%d); try again",
             MAX_CLIENTS);
    write_error (fd);
    close (fd);
    return;
  }
  if (setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == -1 ||
      pthread_create (&th, NULL, serve_client, (void *) (intptr_t) fd)) {
    client_done (fd);
    return;
  }
  pthread_detach (th);
}

static void *
accept_loop (void *arg)
{
  struct pollfd fds[2] = {
    { listen_fd, POLLIN, 0 }, { stop_pipe[0], POLLIN, 0 },
  };

  for (;;) {
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
    if (fd >= 0)
      admit (fd);
  }
}

int
control_start (const char *path)
{
  int r;

  if (unixsock_clear_stale (path) == -1)
    return err_prefix ("control socket");
  if ((listen_fd = unixsock_listen (path, (gid_t) -1)) == -1)
    return err_prefix ("control socket");
  if (pipe2 (stop_pipe, O_CLOEXEC) == -1) {
    err_set (errno, "pipe: %m");
    goto err;
  }
  if ((sock_path = strdup (path)) == NULL) {
    err_set (ENOMEM, "control socket: out of memory");
    goto err;
  }
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
  {
    LOCK_FOR_SCOPE (&clients_lock);
    for (unsigned i = 0; i < nclients; i++)
      shutdown (client_fds[i], SHUT_RD);
    while (nclients > 0)
      pthread_cond_wait (&clients_gone, &clients_lock);
  }
  close (stop_pipe[0]);
  close (stop_pipe[1]);
}
