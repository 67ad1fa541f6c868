/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: the keeper, nbdkit's parent (see keeper.h).
 *
 * Why a keeper: nbdkit 1.32 sets PR_SET_PDEATHSIG(SIGTERM) even without
 * --exit-with-parent, so an nbdkit dies with its parent.  lazyvold must be
 * able to exit or crash while nbdkit serves on, so nbdkit's parent is
 * "lazyvold keep", in a session of its own (supervise.c): it runs nbdkit,
 * forwards SIGTERM and SIGINT to it, waits for it and exits the way it
 * exited.
 *
 * Why it reads nbdkit's output (daemon mode, --log FILE): the reason an
 * nbdkit cannot start (a port in use, a bad filter or parameter, missing
 * credentials) is in its own error lines.  Sent to syslog, they were lost
 * where no syslog daemon runs, and the terminal only heard "nbdkit exited
 * with status 1".  So nbdkit writes to a pipe; the keeper copies every
 * line to FILE (the current nbdkit's, the previous one's kept as FILE.1)
 * and to syslog, and lazyvold quotes the end of FILE when a start fails.
 * The keeper outlives lazyvold, so the pipe always has a reader.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keeper.h"

#define TAIL_BYTES 4096

static volatile pid_t kept_pid;

static void
forward_signal (int sig)
{
  kill (kept_pid, sig);
}

/* Open FILE afresh for this nbdkit, keeping the last one's as FILE.1. */
static int
open_log (const char *file)
{
  char old[4096];

  snprintf (old, sizeof old, "%s.1", file);
  if (rename (file, old) == -1 && errno != ENOENT)
    return -1;
  return open (file, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
               0600);
}

/* Copy nbdkit's output from FD to LOG and syslog, line by line, until
 * every writer has closed it.
 */
static void
copy_output (int fd, int log)
{
  char buf[4096], line[1024];
  size_t used = 0;
  ssize_t n;

  openlog ("nbdkit", LOG_PID, LOG_DAEMON);
  while ((n = read (fd, buf, sizeof buf)) != 0) {
    if (n == -1) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (log >= 0 && write (log, buf, n) != n)
      log = -1;                 /* a full disk: syslog goes on */
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != '\n' && used < sizeof line - 1) {
        line[used++] = buf[i];
        continue;
      }
      if (buf[i] != '\n')
        continue;               /* a line too long: its rest is dropped */
      line[used] = '\0';
      syslog (strstr (line, "error") ? LOG_ERR : LOG_INFO, "%s", line);
      used = 0;
    }
  }
}

int
keeper_main (char **argv)
{
  struct sigaction sa = { .sa_handler = forward_signal };
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t block, old;
  const char *log_file = NULL;
  int status, r, p[2] = { -1, -1 }, log = -1;
  pid_t pid;

  if (argv[0] && strcmp (argv[0], "--log") == 0 && argv[1]) {
    log_file = argv[1];
    argv += 2;
  }
  if (argv[0] == NULL) {
    fprintf (stderr, "lazyvold keep: no command\n");
    return 127;
  }
  if (log_file) {
    if (pipe2 (p, O_CLOEXEC) == -1) {
      fprintf (stderr, "lazyvold keep: pipe: %m\n");
      return 127;
    }
    if ((log = open_log (log_file)) == -1)
      fprintf (stderr, "lazyvold keep: %s: %m\n", log_file);
  }
  /* A signal arriving before nbdkit's pid is known waits until it is;
   * nbdkit itself starts with the mask the keeper was started with.
   */
  sigemptyset (&block);
  sigaddset (&block, SIGTERM);
  sigaddset (&block, SIGINT);
  sigprocmask (SIG_BLOCK, &block, &old);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  posix_spawn_file_actions_init (&fa);
  if (log_file) {
    posix_spawn_file_actions_adddup2 (&fa, p[1], 1);
    posix_spawn_file_actions_adddup2 (&fa, p[1], 2);
  }
  posix_spawnattr_init (&attr);
  posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setsigmask (&attr, &old);
  r = posix_spawnp (&pid, argv[0], &fa, &attr, argv, environ);
  posix_spawnattr_destroy (&attr);
  posix_spawn_file_actions_destroy (&fa);
  if (r != 0) {
    errno = r;
    fprintf (stderr, "lazyvold keep: cannot run %s: %m\n", argv[0]);
    return 127;
  }
  kept_pid = pid;
  sigprocmask (SIG_SETMASK, &old, NULL);
  if (log_file) {
    close (p[1]);
    copy_output (p[0], log);
  }
  while (waitpid (pid, &status, 0) == -1)
    if (errno != EINTR)
      return 127;
  if (WIFSIGNALED (status)) {
    /* End the same way, so lazyvold sees nbdkit's signal. */
    signal (WTERMSIG (status), SIG_DFL);
    raise (WTERMSIG (status));
  }
  return WEXITSTATUS (status);
}

void
keeper_log_tail (const char *file, char *out, size_t size)
{
  char buf[TAIL_BYTES + 1], *lines[3];
  size_t nlines = 0, len;
  ssize_t n;
  off_t end;
  int fd = open (file, O_RDONLY | O_CLOEXEC);

  out[0] = '\0';
  if (fd == -1)
    return;
  end = lseek (fd, 0, SEEK_END);
  n = end < 0 ? -1
    : pread (fd, buf, TAIL_BYTES, end > TAIL_BYTES ? end - TAIL_BYTES : 0);
  close (fd);
  if (n <= 0)
    return;
  buf[n] = '\0';
  /* The last lines, newest last (not the first, cut, of a window). */
  char *s = buf;
  if (end > TAIL_BYTES && (s = strchr (buf, '\n')) == NULL)
    return;
  for (s = strtok (s, "\n"); s; s = strtok (NULL, "\n")) {
    if (nlines == 3)
      memmove (lines, lines + 1, --nlines * sizeof lines[0]);
    lines[nlines++] = s;
  }
  for (size_t i = 0; i < nlines; i++) {
    len = strlen (out);
    snprintf (out + len, size - len, "%s%s", i ? "; " : "", lines[i]);
  }
}
