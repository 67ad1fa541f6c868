/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: thread-local error messages and the log sink (see err.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

static __thread char err_buf[ERR_MSG_MAX];
static __thread int err_num;

static void
log_stderr (enum log_level level, const char *msg)
{
  static const char *names[] = { "error", "warning", "info", "debug" };

  fprintf (stderr, "lazyvol: %s: %s\n", names[level], msg);
}

static log_sink_fn sink = log_stderr;
static enum log_level max_level = LOG_LV_INFO;

void
log_set_sink (log_sink_fn s)
{
  sink = s ? s : log_stderr;
}

void
log_set_level (enum log_level level)
{
  max_level = level;
}

int
log_parse_level (const char *name)
{
  static const char *names[] = { "error", "warn", "info", "debug" };

  for (int i = 0; i < 4; i++)
    if (strcasecmp (name, names[i]) == 0)
      return i;
  return -1;
}

void
log_msg (enum log_level level, const char *fmt, ...)
{
  char buf[2048];
  va_list ap;
  int saved = errno;

  if (level > max_level)
    return;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  sink (level, buf);
  errno = saved;
}

int
err_set (int errnum, const char *fmt, ...)
{
  va_list ap;

  errno = errnum;               /* so that %m in FMT names the cause */
  va_start (ap, fmt);
  vsnprintf (err_buf, sizeof err_buf, fmt, ap);
  va_end (ap);
  err_num = errnum;
  errno = errnum;
  return -1;
}

int
err_prefix (const char *fmt, ...)
{
  char prefix[512], old[sizeof err_buf];
  va_list ap;
  int n;

  va_start (ap, fmt);
  vsnprintf (prefix, sizeof prefix, fmt, ap);
  va_end (ap);
  memcpy (old, err_buf, sizeof old);
  /* Prefix, then as much of the old message as fits. */
  n = snprintf (err_buf, sizeof err_buf, "%s: ", prefix);
  if (n >= 0 && (size_t) n < sizeof err_buf)
    strncat (err_buf, old, sizeof err_buf - n - 1);
  errno = err_num;
  return -1;
}

void
err_save (struct err_saved *s)
{
  s->errnum = err_num;
  memcpy (s->msg, err_buf, sizeof s->msg);
}

int
err_restore (const struct err_saved *s)
{
  memcpy (err_buf, s->msg, sizeof err_buf);
  err_num = s->errnum;
  errno = s->errnum;
  return -1;
}

const char *
err_msg (void)
{
  return err_buf[0] ? err_buf : "unknown error";
}

int
err_errno (void)
{
  return err_num;
}

void
err_clear (void)
{
  err_buf[0] = '\0';
  err_num = 0;
}

/* Every error code of the control protocol and the admin API: the
 * errnos it stands for and the HTTP status lazyvold answers with.  An
 * errno not listed is "internal" (500).
 */
static const struct {
  const char *code;
  int status;
  int errnos[6];                /* up to a 0 */
} codes[] = {
  { "bad_request", 400, { EINVAL, ERANGE, ENAMETOOLONG, EDOM } },
  { "not_found", 404, { ENOENT } },
  { "already_exists", 409, { EEXIST } },
  { "busy", 409, { EBUSY } },
  { "owned", 409, { EUSERS } },
  { "conflict", 409, { ESTALE } },
  { "read_only", 409, { EROFS } },
  { "too_large", 413, { EFBIG, EMSGSIZE } },
  { "failed_stop", 500, { ENOTRECOVERABLE } },
  { "not_supported", 501, { ENOTSUP } },
  { "store_denied", 502, { EACCES, EPERM } },
  { "bad_remote_data", 502, { EBADMSG, ELOOP } },
  { "store_error", 502, { EIO } },
  { "store_unavailable", 503,
    { ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT, ENETUNREACH, EAGAIN } },
  { "no_space", 507, { ENOSPC, EDQUOT } },
};

const char *
err_code (int errnum)
{
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    for (size_t k = 0; k < 6 && codes[i].errnos[k]; k++)
      if (codes[i].errnos[k] == errnum)
        return codes[i].code;
  return "internal";
}

int
err_code_status (const char *code)
{
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    if (strcmp (codes[i].code, code) == 0)
      return codes[i].status;
  return 500;
}
