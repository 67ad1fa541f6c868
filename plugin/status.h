/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: an export's status as the control protocol shows it
 * (every field is in nbdkit-lazyvol-plugin(1), CONTROL PROTOCOL).
 */
#ifndef LAZYVOL_STATUS_H
#define LAZYVOL_STATUS_H

#include <json-c/json.h>

#include "volume.h"

/* Add the members of V's status to RES.  0, or -1 with err_set (ENOMEM). */
int status_add (json_object *res, struct volume *v, const struct volume_env *e)
  __attribute__ ((__nonnull__));
/* The status of every loaded export, in load order: an array that
 * prints as the text made now.  NULL with err_set (ENOMEM).
 */
json_object *status_list (const struct volume_env *e)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOL_STATUS_H */
