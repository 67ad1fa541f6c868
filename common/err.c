/* lazyvol: thread-local error messages and the log sink (see err.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

static __thread char err_buf[1024];
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

const char *
err_code (int errnum)
{
  switch (errnum) {
  case EINVAL: case ERANGE: case ENAMETOOLONG: case EDOM:
    return "bad_request";
  case ENOENT:
    return "not_found";
  case EEXIST:
    return "already_exists";
  case EBUSY:
    return "busy";
  case ESTALE:
    return "conflict";
  case EFBIG: case EMSGSIZE:
    return "too_large";
  case ENOTSUP:
    return "not_supported";
  case EROFS:
    return "read_only";
  case EACCES: case EPERM:
    return "store_denied";
  case ECONNREFUSED: case EHOSTUNREACH: case ETIMEDOUT: case ENETUNREACH:
  case EAGAIN:
    return "store_unavailable";
  case EBADMSG: case ELOOP:
    return "bad_remote_data";
  case ENOSPC:
    return "no_space";
  case EIO:
    return "store_error";
  default:
    return "internal";
  }
}
