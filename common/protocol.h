/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the vocabulary of the control protocol, defined once: the
 * plugin dispatches on these commands and lazyvold's routes name them.
 * Error codes and their HTTP statuses are in err.h (err_code).  The
 * protocol itself is described in nbdkit-lazyvol-plugin(1), CONTROL
 * PROTOCOL.
 */
#ifndef LAZYVOL_PROTOCOL_H
#define LAZYVOL_PROTOCOL_H

/* A reply is one JSON object on one line, and its first member is "ok",
 * written without spaces: a success begins with PROTOCOL_REPLY_OK.
 */
#define PROTOCOL_REPLY_OK "{\"ok\":true"

/* How deep a request may nest (a control line, an admin API body):
 * requests are shallow objects, and anything deeper is refused before
 * json-c builds it.
 */
#define PROTOCOL_JSON_DEPTH 8

/* Every command, in the order the man page lists them. */
#define PROTOCOL_COMMANDS(X) \
  X (ping) X (list) X (create) X (open) X (close) X (delete) X (status) \
  X (snapshot) X (compact) X (clone) X (snapshots) X (delete_snapshot) \
  X (rollback) X (resize) X (reset) X (hydrate) X (gc) X (fsck) X (metrics) \
  X (fork) X (discover)

enum protocol_cmd {
#define PROTOCOL_ENUM(name) CMD_##name,
  PROTOCOL_COMMANDS (PROTOCOL_ENUM)
#undef PROTOCOL_ENUM
  CMD_COUNT
};

/* The name of command CMD, as sent in "cmd". */
const char *protocol_cmd_name (enum protocol_cmd cmd);
/* The command named NAME, or -1 if there is none. */
int protocol_cmd_parse (const char *name) __attribute__ ((__nonnull__));

#endif /* LAZYVOL_PROTOCOL_H */
