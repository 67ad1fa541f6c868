/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: publishes that run in the background ("wait": false),
 * each in a thread of its own, so that the control command answers at
 * once and its progress and outcome are read from the export's status.
 */
#ifndef LAZYVOL_JOBS_H
#define LAZYVOL_JOBS_H

#include <stdbool.h>

#include "volume.h"

/* Run the publish already claimed on V (publish_begin; COMPACT as given
 * there; LABEL, copied, as for publish_run) in a new thread, which takes over the caller's registry
 * reference to V and releases it when done.  0, or -1 with err_set if no
 * thread could start: then the operation has ended as failed and the
 * reference is the caller's still.
 */
int jobs_publish (struct volume *v, bool compact, const char *label)
  __attribute__ ((__nonnull__ (1)));
/* Wait until every background publish has ended (at unload). */
void jobs_wait (void);

#endif /* LAZYVOL_JOBS_H */
