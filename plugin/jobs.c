/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: background publishes (see jobs.h).
 *
 * A background publish is the blocking one moved to a thread: the
 * command claims the export (publish_begin) before it answers, so a
 * status read right after the answer already shows the operation, and
 * two publishes can never both be accepted.  The thread holds the
 * command's registry reference, which keeps the export loaded (a close
 * or reset meanwhile is refused as busy, see registry.c), and drops it
 * when the publish is over.  Its outcome is the export's last_operation;
 * a failure is logged too, since nobody is waiting for the reply.
 *
 * The jobs are a list under "lock".  A thread marks its job done as its
 * last act; the next jobs_publish joins the done ones and frees them,
 * and jobs_wait joins them all, so that nbdkit never unloads the plugin
 * under a running publish, nor even under a thread that is returning.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jobs.h"
#include "lock.h"
#include "publish.h"
#include "registry.h"

struct job {
  struct job *next;
  pthread_t thread;
  bool done;                    /* the thread is returning */
  struct volume *v;
  bool compact;
  char export_id[EXPORT_ID_MAX + 1];
  char label[LABEL_MAX + 1];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct job *jobs;

/* Join and free the jobs that are done (their threads need the lock no
 * more).  Called with lock held.
 */
static void
reap (void)
{
  for (struct job **jp = &jobs; *jp; ) {
    struct job *j = *jp;

    if (!j->done) {
      jp = &j->next;
      continue;
    }
    *jp = j->next;
    pthread_join (j->thread, NULL);
    free (j);
  }
}

static void *
job_run (void *arg)
{
  struct job *j = arg;
  struct publish_result pr;

  if (publish_run (j->v, j->compact, j->label, &pr) == -1)
    log_error ("%s", err_msg ());
  else if (pr.created)
    registry_refresh_snapshots (j->export_id);
  registry_put (j->v, false);
  LOCK_FOR_SCOPE (&lock);
  j->done = true;
  return NULL;
}

int
jobs_publish (struct volume *v, bool compact, const char *label)
{
  struct job *j = calloc (1, sizeof *j);
  int e = ENOMEM;

  if (j != NULL) {
    LOCK_FOR_SCOPE (&lock);
    reap ();
    j->v = v;
    j->compact = compact;
    snprintf (j->label, sizeof j->label, "%s", label ? label : "");
    snprintf (j->export_id, sizeof j->export_id, "%s", volume_name (v));
    if ((e = pthread_create (&j->thread, NULL, job_run, j)) == 0) {
      j->next = jobs;
      jobs = j;
      return 0;
    }
  }
  free (j);
  err_set (e, "%s %s in the background: %m", compact ? "compact"
           : "snapshot", volume_name (v));
  volume_op_end (v, false);
  return -1;
}

void
jobs_wait (void)
{
  struct job *list;

  {
    LOCK_FOR_SCOPE (&lock);     /* not while joining: the threads take it */
    list = jobs;
    jobs = NULL;
  }
  while (list) {
    struct job *j = list;

    list = j->next;
    pthread_join (j->thread, NULL);
    free (j);
  }
}
