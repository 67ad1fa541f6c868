/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: supervising nbdkit (see supervise.h).
 *
 * One nbdkit at a time, in one of these states:
 *
 *   STARTING  spawned or adopted; pinged every PING_INTERVAL_MS until it
 *             answers as the process its pid file names (UP), or
 *             the ready timeout passes (READY_TIMEOUT_S, or longer when
 *             the start waits for dead owners' leases)
 *   UP        answering; commands are relayed to it
 *   DOWN      dead; a timer spawns the next one after the backoff
 *   STOPPING  sent SIGTERM by supervise_stop; waiting for it to exit
 *   ATTACHED  attach mode: someone else's nbdkit, never signalled
 *
 * The keeper (keeper.c): nbdkit dies with its parent, so its parent is
 * "lazyvold keep NBDKIT-ARGV...", in a session of its own, which exits
 * the way nbdkit exited.  Its parent is lazyvold, which so learns
 * nbdkit's exit status; if lazyvold goes away, the keeper stays with
 * nbdkit.  A first start that fails quotes nbdkit's last log lines.
 *
 * The process watched (sv.pid) is the keeper of a spawned nbdkit, or an
 * adopted nbdkit itself.  Its exit is learnt from a pidfd, which works for
 * a child and for a process that is not our child alike; a keeper is
 * reaped with waitpid for the status, an adopted nbdkit by its keeper.
 *
 * Adoption requires /proc/PID/comm to be "nbdkit" and, like every start,
 * a ping reply carrying the pid of the pid file, so a stale pid file
 * whose pid was reused by another process is never adopted nor signalled.
 *
 * Restarts back off from BACKOFF_MIN_MS doubling to BACKOFF_MAX_MS; an
 * nbdkit that stayed up BACKOFF_RESET_S resets the backoff.  The first
 * start is different: if the first nbdkit dies before answering, the
 * flags are wrong, and the failure goes to the caller instead.
 *
 * Every callback runs on the one event loop thread: no locks.  A ping
 * reply arriving after the state moved on is recognised by its
 * generation and ignored.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "err.h"
#include "keeper.h"
#include "relay.h"
#include "supervise.h"
#include "unixsock.h"
#include "util.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434      /* the same number on every architecture */
#endif

#define PING_INTERVAL_MS 100
#define READY_TIMEOUT_S 60
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define BACKOFF_RESET_S 60

enum state { STARTING, UP, DOWN, STOPPING, ATTACHED };

extern char **environ;

static struct {
  struct event_base *base;
  const struct supervise_config *cfg;
  char **keeper_argv;           /* "lazyvold keep" + cfg->argv */
  supervise_ready_fn ready;     /* until the first nbdkit answers or fails */
  enum state state;
  pid_t pid;                    /* watched: a keeper, or adopted nbdkit */
  bool adopted;
  pid_t nbdkit_pid;             /* as it answered; 0 before */
  int pidfd;
  struct event *exit_ev;        /* PIDFD readable: it exited */
  struct event *timer;          /* STARTING: next ping; DOWN: next spawn */
  uint64_t deadline_ns;         /* STARTING: give up then */
  uint64_t up_ns;               /* UP: since when */
  unsigned generation;          /* of the watched process, for pings */
  bool ping_pending;
  unsigned backoff_ms;          /* before the next restart */
  unsigned restarts;
  char failure[256];            /* why the last nbdkit is gone */
  void (*stopped) (void);
} sv = { .pidfd = -1, .backoff_ms = BACKOFF_MIN_MS, .state = ATTACHED };

static int spawn (void);

/* How long a start may take to answer. */
static unsigned
ready_timeout_s (void)
{
  return sv.cfg->ready_timeout_s ? sv.cfg->ready_timeout_s : READY_TIMEOUT_S;
}

static void
timer_in_ms (unsigned ms)
{
  struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

  evtimer_add (sv.timer, &tv);
}

/* Stop watching the process. */
static void
unwatch (void)
{
  if (sv.exit_ev) {
    event_free (sv.exit_ev);
    sv.exit_ev = NULL;
  }
  if (sv.pidfd >= 0)
    close (sv.pidfd);
  sv.pidfd = -1;
  sv.ping_pending = false;
  sv.generation++;
}

/* Reap a keeper, and say how nbdkit ended into HOW. */
static void
reap (char *how, size_t n)
{
  char who[32] = "nbdkit";
  int status;

  if (sv.nbdkit_pid)
    snprintf (who, sizeof who, "nbdkit pid %d", (int) sv.nbdkit_pid);
  if (sv.adopted)
    snprintf (how, n, "%s exited (it was adopted, so its exit status is "
              "unknown)", who);
  else if (waitpid (sv.pid, &status, WNOHANG) != sv.pid)
    snprintf (how, n, "%s exited (waitpid: %m)", who);
  else if (WIFSIGNALED (status))
    snprintf (how, n, "%s was killed by signal %d (%s)", who,
              WTERMSIG (status), strsignal (WTERMSIG (status)));
  else
    snprintf (how, n, "%s exited with status %d", who, WEXITSTATUS (status));
}

/* WHY, and what nbdkit said last (in daemon mode, where its output is
 * not on the terminal).  A static buffer: one failure at a time.
 */
static const char *
with_log_tail (const char *why)
{
  static char out[2048];
  char tail[1024];

  if (sv.cfg->log_file == NULL)
    return why;
  keeper_log_tail (sv.cfg->log_file, tail, sizeof tail);
  snprintf (out, sizeof out, "%s%s%s", why, tail[0] ? "; nbdkit said: " : "",
            tail);
  return out;
}

/* The first nbdkit failed because of WHY (NULL: the recorded error):
 * tell the caller, which exits.
 */
static void
fail_first (const char *why)
{
  supervise_ready_fn ready = sv.ready;

  sv.ready = NULL;
  sv.state = DOWN;
  if (why)
    err_set (ECHILD, "%s", why);
  ready (false);
}

/* sv.failure says why nbdkit is gone: spawn the next one after the
 * backoff, and back off further for the one after.
 */
static void
schedule_restart (void)
{
  sv.state = DOWN;
  log_error ("%s; restarting it in %.1f s", sv.failure,
             sv.backoff_ms / 1000.0);
  timer_in_ms (sv.backoff_ms);
  sv.backoff_ms = sv.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
    : sv.backoff_ms * 2;
}

static void
on_nbdkit_exit (evutil_socket_t fd, short what, void *arg)
{
  char how[sizeof sv.failure - 32];   /* room for " before it was ready" */

  evtimer_del (sv.timer);
  unwatch ();
  reap (how, sizeof how);
  if (sv.state != STARTING)
    snprintf (sv.failure, sizeof sv.failure, "%s", how);
  else if (sv.failure[0] == '\0')  /* else a timeout said it better */
    snprintf (sv.failure, sizeof sv.failure, "%s before it was ready", how);
  if (sv.state == STOPPING) {
    log_info ("%s", sv.failure);
    sv.state = DOWN;
    sv.stopped ();
    return;
  }
  if (sv.ready && sv.adopted) {
    /* Left by an earlier lazyvold, and perhaps shutting down. */
    log_warn ("%s; starting a new one", sv.failure);
    if (spawn () == -1)
      fail_first (NULL);
    return;
  }
  if (sv.ready) {
    fail_first (with_log_tail (sv.failure));
    return;
  }
  if (sv.state == UP &&
      time_mono_ns () - sv.up_ns >= BACKOFF_RESET_S * 1000000000ULL)
    sv.backoff_ms = BACKOFF_MIN_MS;
  schedule_restart ();
}

/* Watch PID for its exit and start pinging.  0 or -1 (ESRCH if gone). */
static int
watch (pid_t pid, bool adopted)
{
  int fd = syscall (SYS_pidfd_open, pid, 0);

  if (fd == -1)
    return err_set (errno, "pidfd_open %d: %m", (int) pid);
  sv.pid = pid;
  sv.adopted = adopted;
  sv.nbdkit_pid = 0;
  sv.pidfd = fd;
  sv.exit_ev = event_new (sv.base, fd, EV_READ, on_nbdkit_exit, NULL);
  if (sv.exit_ev == NULL || event_add (sv.exit_ev, NULL) == -1) {
    unwatch ();
    return err_set (ENOMEM, "cannot watch pid %d", (int) pid);
  }
  sv.state = STARTING;
  sv.failure[0] = '\0';
  sv.deadline_ns = time_mono_ns () + ready_timeout_s () * 1000000000ULL;
  timer_in_ms (0);
  return 0;
}

/* Create nbdkit's pid file empty and 0600 before nbdkit opens it: nbdkit
 * sets umask 022 and creates it 0644 otherwise, and opening an existing
 * file with O_TRUNC keeps its mode.
 */
static int
private_pidfile (void)
{
  int fd = open (sv.cfg->pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
                 O_NOFOLLOW, 0600);

  if (fd == -1 || fchmod (fd, 0600) == -1) {
    err_set (errno, "%s: %m", sv.cfg->pidfile);
    if (fd >= 0)
      close (fd);
    return -1;
  }
  close (fd);
  return 0;
}

/* Start a new nbdkit under a keeper.  0 or -1 with err_set. */
static int
spawn (void)
{
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none, defaults;
  pid_t pid;
  int r;

  /* A -U socket left by an nbdkit killed with SIGKILL blocks the bind. */
  if (sv.cfg->nbd_socket && unixsock_clear_stale (sv.cfg->nbd_socket) == -1)
    return -1;
  if (private_pidfile () == -1)
    return -1;
  sigemptyset (&none);
  sigemptyset (&defaults);
  sigaddset (&defaults, SIGPIPE);       /* ignored by lazyvold */
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_init (&attr);
  posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK
                            | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setsigmask (&attr, &none);
  posix_spawnattr_setsigdefault (&attr, &defaults);
  r = posix_spawn (&pid, "/proc/self/exe", &fa, &attr, sv.keeper_argv,
                   environ);
  posix_spawn_file_actions_destroy (&fa);
  posix_spawnattr_destroy (&attr);
  if (r != 0)
    return err_set (r, "cannot start the nbdkit keeper: %m");
  log_debug ("started keeper pid %d for %s", (int) pid, sv.cfg->argv[0]);
  if (watch (pid, false) == -1) {
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    return -1;
  }
  return 0;
}

/* The pid in nbdkit's pid file, or 0. */
static pid_t
pidfile_pid (void)
{
  CLEANUP_FREE char *text = NULL;
  size_t len;
  char *end;
  long pid;

  if (file_read_all (sv.cfg->pidfile, 64, &text, &len) == -1)
    return 0;
  errno = 0;
  pid = strtol (text, &end, 10);
  if (errno || pid <= 1 || pid > INT32_MAX || (*end && *end != '\n'))
    return 0;
  return pid;
}

/* The pid in the pid file if it is a running nbdkit, else 0. */
static pid_t
running_nbdkit (void)
{
  pid_t pid = pidfile_pid ();
  char path[32], comm[32] = "";
  FILE *f;

  if (pid == 0)
    return 0;
  snprintf (path, sizeof path, "/proc/%d/comm", (int) pid);
  if ((f = fopen (path, "re")) == NULL)
    return 0;
  if (fgets (comm, sizeof comm, f) == NULL)
    comm[0] = '\0';
  fclose (f);
  return strcmp (comm, "nbdkit\n") == 0 ? pid : 0;
}

static void
on_ping (json_object *reply, void *opaque)
{
  json_object *pid;

  if ((uintptr_t) opaque != sv.generation || sv.state != STARTING)
    return;
  sv.ping_pending = false;
  /* nbdkit writes its pid file before the plugin opens the socket. */
  if (reply == NULL || !json_object_object_get_ex (reply, "pid", &pid) ||
      json_object_get_int64 (pid) != pidfile_pid ())
    return;
  sv.nbdkit_pid = json_object_get_int64 (pid);
  /* nbdkit makes its socket 0755 (it sets umask 022): set the mode
   * lazyvold promises, each time nbdkit (re)starts.
   */
  if (sv.cfg->nbd_socket &&
      unixsock_set_access (sv.cfg->nbd_socket, sv.cfg->nbd_socket_gid) == -1)
    log_error ("NBD socket: %s", err_msg ());
  sv.state = UP;
  sv.up_ns = time_mono_ns ();
  if (sv.adopted)
    log_info ("adopted running nbdkit pid %d", (int) sv.nbdkit_pid);
  else
    log_info ("nbdkit pid %d is ready", (int) sv.nbdkit_pid);
  if (sv.cfg->up)
    sv.cfg->up (sv.adopted);
  if (sv.ready) {
    supervise_ready_fn ready = sv.ready;
    sv.ready = NULL;
    ready (true);
  }
}

static void
ping (void)
{
  json_object *req = json_object_new_object ();

  json_object_object_add (req, "cmd", json_object_new_string ("ping"));
  if (relay_send (req, on_ping, (void *) (uintptr_t) sv.generation) == 0)
    sv.ping_pending = true;
  json_object_put (req);
}

/* STARTING: nbdkit has not answered in time. */
static void
starting_timed_out (void)
{
  snprintf (sv.failure, sizeof sv.failure, "nbdkit did not answer on %s "
            "within %u s", sv.cfg->control, ready_timeout_s ());
  if (sv.adopted) {
    /* Not ours to kill: it may be serving clients. */
    char why[sizeof sv.failure + 128];
    snprintf (why, sizeof why, "%s (pid %d from %s: stop it, or remove the "
              "pid file if it is not lazyvol's)", sv.failure, (int) sv.pid,
              sv.cfg->pidfile);
    unwatch ();
    fail_first (why);
    return;
  }
  log_error ("%s; killing it", sv.failure);
  kill (sv.pid, SIGKILL);       /* its keeper: on_nbdkit_exit goes on */
}

static void
on_timer (evutil_socket_t fd, short what, void *arg)
{
  if (sv.state == DOWN) {
    sv.restarts++;
    if (spawn () == -1) {
      snprintf (sv.failure, sizeof sv.failure, "%s", err_msg ());
      schedule_restart ();
    }
    return;
  }
  if (sv.state != STARTING)
    return;
  if (time_mono_ns () >= sv.deadline_ns) {
    starting_timed_out ();
    return;
  }
  if (!sv.ping_pending)
    ping ();
  timer_in_ms (PING_INTERVAL_MS);
}

int
supervise_start (struct event_base *base, const struct supervise_config *cfg,
                 supervise_ready_fn ready)
{
  size_t n = 0;
  pid_t pid;

  sv.base = base;
  sv.cfg = cfg;
  sv.ready = ready;
  sv.timer = evtimer_new (base, on_timer, NULL);
  while (cfg->argv[n])
    n++;
  sv.keeper_argv = calloc (n + 5, sizeof *sv.keeper_argv);
  if (sv.timer == NULL || sv.keeper_argv == NULL)
    return err_set (ENOMEM, "out of memory");
  {
    size_t k = 0;

    sv.keeper_argv[k++] = (char *) "lazyvold";
    sv.keeper_argv[k++] = (char *) "keep";
    if (cfg->log_file) {
      sv.keeper_argv[k++] = (char *) "--log";
      sv.keeper_argv[k++] = (char *) cfg->log_file;
    }
    memcpy (sv.keeper_argv + k, cfg->argv, n * sizeof *cfg->argv);
  }
  pid = running_nbdkit ();
  if (pid > 0 && watch (pid, true) == 0) {
    log_info ("found nbdkit pid %d in %s; waiting for it to answer",
              (int) pid, cfg->pidfile);
    return 0;
  }
  return spawn ();
}

void
supervise_attach (void)
{
  sv.state = ATTACHED;
}

const char *
supervise_unavailable (void)
{
  static char why[sizeof sv.failure + 64];

  switch (sv.state) {
  case UP: case ATTACHED:
    return NULL;
  case STARTING:
    return "nbdkit is starting";
  case DOWN:
    snprintf (why, sizeof why, "nbdkit is not running: %s; restarting it",
              sv.failure);
    return why;
  case STOPPING:
    return "lazyvold is shutting down";
  }
  abort ();
}

bool
supervise_adopted (void)
{
  return sv.adopted;
}

const char *
supervise_mode (void)
{
  return sv.state == ATTACHED ? "attach" : "spawn";
}

unsigned
supervise_restarts (void)
{
  return sv.restarts;
}

void
supervise_stop (void (*done) (void))
{
  if (sv.state == STOPPING)
    return;
  if (sv.timer)
    evtimer_del (sv.timer);
  if (sv.state == ATTACHED || sv.state == DOWN) {
    done ();
    return;
  }
  sv.state = STOPPING;
  sv.stopped = done;
  log_info ("stopping nbdkit%s", sv.adopted ? " (adopted)" : "");
  kill (sv.pid, SIGTERM);       /* a keeper passes it on */
}

pid_t
supervise_detach (void)
{
  pid_t pid = sv.exit_ev ? sv.nbdkit_pid : 0;

  unwatch ();
  if (sv.timer)
    event_free (sv.timer);
  sv.timer = NULL;
  free (sv.keeper_argv);
  sv.keeper_argv = NULL;
  if (sv.state != ATTACHED)
    sv.state = DOWN;
  return pid;
}
