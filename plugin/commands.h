/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol plugin: the commands of the control socket, one JSON request
 * in, one JSON reply out (the protocol is in nbdkit-lazyvol-plugin(1),
 * CONTROL PROTOCOL; its vocabulary in protocol.h).  control.c serves
 * them on the socket.
 */
#ifndef LAZYVOL_COMMANDS_H
#define LAZYVOL_COMMANDS_H

#include <stddef.h>

#include <json-c/json.h>

#include "volume.h"

/* Run commands on ENV's exports (ENV must outlive every command). */
void commands_init (struct volume_env *env) __attribute__ ((__nonnull__));
/* Run request LINE (LEN bytes, no newline): the reply object, with "ok"
 * true and the command's fields, or "ok" false, "error" and "code".
 */
json_object *commands_run (const char *line, size_t len)
  __attribute__ ((__nonnull__));
/* The error reply for this thread's recorded error. */
json_object *commands_error_reply (void);

#endif /* LAZYVOL_COMMANDS_H */
