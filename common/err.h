/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: errors and logging shared by the plugin and the daemon.
 *
 * An error is reported once, where its context is known: the failing
 * function calls err_set() with the object and the cause ("fetch
 * vm01/snapshots/…/delta.blob [0+4194304]: HTTP 503 after 5 tries") and
 * returns -1 (or NULL).  Callers unwind without adding messages; the
 * outermost layer (an nbdkit callback, a control-socket reply) prints or
 * returns err_msg().  The message and errno live in thread-local storage,
 * so concurrent requests never see each other's errors.
 *
 * Logging goes through a sink the program installs: the plugin routes it to
 * nbdkit_error/nbdkit_debug, the daemon to stderr or syslog.
 */
#ifndef LAZYVOL_ERR_H
#define LAZYVOL_ERR_H

#include <stdarg.h>

enum log_level { LOG_LV_ERROR, LOG_LV_WARN, LOG_LV_INFO, LOG_LV_DEBUG };

typedef void (*log_sink_fn) (enum log_level level, const char *msg);

/* Install the function that prints log lines (default: stderr). */
void log_set_sink (log_sink_fn sink);
/* Drop messages less important than LEVEL (default LOG_LV_INFO). */
void log_set_level (enum log_level level);
/* Parse "error", "warn", "info" or "debug"; -1 if unknown. */
int log_parse_level (const char *name);
/* Format and print one log line at LEVEL. */
void log_msg (enum log_level level, const char *fmt, ...)
  __attribute__ ((__format__ (__printf__, 2, 3)));

#define log_error(...) log_msg (LOG_LV_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg (LOG_LV_WARN, __VA_ARGS__)
#define log_info(...)  log_msg (LOG_LV_INFO, __VA_ARGS__)
#define log_debug(...) log_msg (LOG_LV_DEBUG, __VA_ARGS__)

/* Record this thread's error: errno becomes ERRNUM (so %m in FMT names it)
 * and the message is kept for err_msg().  Always returns -1.
 */
int err_set (int errnum, const char *fmt, ...)
  __attribute__ ((__format__ (__printf__, 2, 3)));
/* Put "CONTEXT: " in front of the recorded message, keeping its errno.
 * Returns -1.  For callers that add what the callee could not know.
 */
int err_prefix (const char *fmt, ...)
  __attribute__ ((__format__ (__printf__, 1, 2)));
/* The message of this thread's last err_set (never NULL). */
const char *err_msg (void);
/* The errno of this thread's last err_set (0 if none). */
int err_errno (void);
/* Forget this thread's recorded error. */
void err_clear (void);

/* This thread's recorded error, kept across clean-up that may record
 * errors of its own (ERR_MSG_MAX is the size of the message buffer).
 */
#define ERR_MSG_MAX 1024
struct err_saved {
  int errnum;
  char msg[ERR_MSG_MAX];
};
/* Copy this thread's recorded error into *S. */
void err_save (struct err_saved *s);
/* Make *S this thread's recorded error again.  Returns -1. */
int err_restore (const struct err_saved *s);

/* A stable machine-readable code for an errno, as used in the JSON error
 * replies of the control socket and the admin API ("not_found", ...;
 * "internal" for an errno without one).
 */
const char *err_code (int errnum);
/* The HTTP status the admin API answers error code CODE with (500 for
 * a code it does not know).
 */
int err_code_status (const char *code) __attribute__ ((__nonnull__));

#endif /* LAZYVOL_ERR_H */
