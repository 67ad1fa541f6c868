/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: small helpers (see util.h). */
#include <config.h>

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "lock.h"
#include "util.h"

void
cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}

void
cleanup_close (int *fd)
{
  int saved = errno;

  if (*fd >= 0)
    close (*fd);
  errno = saved;
}

bool
id_export_valid (const char *s)
{
  size_t i;

  if (s == NULL || !((s[0] >= 'A' && s[0] <= 'Z') ||
                     (s[0] >= 'a' && s[0] <= 'z') ||
                     (s[0] >= '0' && s[0] <= '9')))
    return false;
  for (i = 1; s[i]; i++) {
    char c = s[i];
    if (i >= EXPORT_ID_MAX)
      return false;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

int
id_prefix_split (const char *prefix)
{
  const char *slash = strrchr (prefix, '/');
  const char *id = slash ? slash + 1 : prefix;

  return id_export_valid (id) && prefix[0] != '/' &&
    strstr (prefix, "//") == NULL ? id - prefix : -1;
}

bool
id_snapshot_valid (const char *s)
{
  size_t i;

  if (s == NULL)
    return false;
  for (i = 0; i < SNAPSHOT_ID_LEN; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return s[i] == '\0';
}

uint64_t
id_snapshot_ms (const char *s)
{
  uint64_t ms = 0;

  assert (id_snapshot_valid (s));
  for (int i = 0; i < 12; i++)          /* 48 bits of milliseconds */
    ms = ms * 16 + (s[i] <= '9' ? s[i] - '0' : s[i] - 'a' + 10);
  return ms;
}

uint64_t
time_real_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
id_name_parse (const char *name, char *export_id, const char **snapshot_id)
{
  const char *at = strchr (name, '@');
  size_t n = at ? (size_t) (at - name) : strlen (name);
  char id[EXPORT_ID_MAX + 1];

  if (n > EXPORT_ID_MAX || (at && !id_snapshot_valid (at + 1)))
    return false;
  memcpy (id, name, n);
  id[n] = '\0';
  if (!id_export_valid (id))
    return false;
  if (export_id)
    memcpy (export_id, id, n + 1);
  if (snapshot_id)
    *snapshot_id = at ? at + 1 : NULL;
  return true;
}

int
id_export_check (const char *what, const char *s)
{
  if (id_export_valid (s))
    return 0;
  return err_set (EINVAL, "invalid %s \"%.140s\" (want "
                  "[A-Za-z0-9][A-Za-z0-9._-]{0,127})", what, s);
}

int
id_snapshot_check (const char *what, const char *s)
{
  if (id_snapshot_valid (s))
    return 0;
  return err_set (EINVAL, "invalid %s \"%.40s\" (want 32 lowercase hex "
                  "digits)", what, s);
}

int
id_name_check (const char *what, const char *s)
{
  if (id_name_parse (s, NULL, NULL))
    return 0;
  return err_set (EINVAL, "invalid %s \"%.180s\" (want an export id, or "
                  "EXPORT_ID@SNAPSHOT_ID for a snapshot view)", what, s);
}

/* UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, version 7, 12 bits of
 * sub-millisecond sequence, variant 10, 62 random bits.  The sequence makes
 * ids created in the same millisecond by this process still sort in
 * creation order.  A floor raises the time and sequence the next id
 * counts from to the floor's, so that the id sorts after it whatever
 * this host's clock says (the hex text sorts as the bytes do); later ids
 * of the process follow it, as they must to stay in order.
 */
void
id_snapshot_new_after (char out[SNAPSHOT_ID_LEN + 1], const char *floor)
{
  /* lock protects last_ms and seq: the time and sequence of the last id
   * (seq -1: none in last_ms, only a floor that any id of it follows).
   */
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static uint64_t last_ms;
  static int seq;
  uint64_t floor_ms = 0;
  int floor_seq = -1;
  unsigned char b[16];
  struct timespec ts;
  uint64_t ms;
  int sq;

  if (floor && floor[0]) {
    int version;

    assert (id_snapshot_valid (floor));
    floor_ms = id_snapshot_ms (floor);
    /* Its version and sequence: an id of another version than 7 sorts
     * before every one of that millisecond (below 7) or after (above).
     */
    version = hex_value (floor[12]);
    if (version == 7)
      floor_seq = hex_value (floor[13]) << 8 | hex_value (floor[14]) << 4 |
        hex_value (floor[15]);
    else if (version > 7)
      floor_seq = 0xfff;
  }
  if (getrandom (b, sizeof b, 0) != sizeof b) {
    /* getrandom cannot fail for 16 bytes once the pool is ready; fall
     * back to the clock so an id is still unique in practice.
     */
    clock_gettime (CLOCK_MONOTONIC, &ts);
    memcpy (b, &ts, sizeof ts < sizeof b ? sizeof ts : sizeof b);
  }
  ms = time_real_ms ();

  {
    LOCK_FOR_SCOPE (&lock);
    /* A floor in the last millisecond of 48 bits (the year 10889) could
     * not be followed for long: it is not one lazyvol wrote.
     */
    if (floor_ms < ID_MS_MAX &&
        (floor_ms > last_ms || (floor_ms == last_ms && floor_seq > seq))) {
      last_ms = floor_ms;
      seq = floor_seq;
    }
    if (ms <= last_ms) {
      ms = last_ms;
      if (++seq > 0xfff) {      /* sequence exhausted: borrow the next ms */
        ms = ++last_ms;
        seq = 0;
      }
    }
    else {
      last_ms = ms;
      seq = 0;
    }
    sq = seq;                   /* another id may move seq once we let go */
  }

  for (int i = 0; i < 6; i++)
    b[i] = ms >> (40 - 8 * i);
  b[6] = 0x70 | ((sq >> 8) & 0x0f);
  b[7] = sq & 0xff;
  b[8] = 0x80 | (b[8] & 0x3f);
  hex_encode (b, sizeof b, out);
}

void
id_snapshot_new (char out[SNAPSHOT_ID_LEN + 1])
{
  id_snapshot_new_after (out, NULL);
}

char *
str_printf (const char *fmt, ...)
{
  va_list ap;
  char *s;
  int r;

  va_start (ap, fmt);
  r = vasprintf (&s, fmt, ap);
  va_end (ap);
  if (r == -1) {
    err_set (ENOMEM, "out of memory");
    return NULL;
  }
  return s;
}

char *
xasprintf (const char *fmt, ...)
{
  va_list ap;
  char *s;

  va_start (ap, fmt);
  if (vasprintf (&s, fmt, ap) == -1)
    abort ();
  va_end (ap);
  return s;
}

FILE *
memstream_open (char **buf, size_t *len)
{
  FILE *f = open_memstream (buf, len);

  if (f == NULL)
    err_set (ENOMEM, "out of memory");
  return f;
}

int
memstream_close (FILE *f, char **buf)
{
  bool failed = ferror (f);

  /* glibc's fclose of a memory stream returns 0 even when it cannot
   * allocate the final buffer: it leaves *BUF NULL.
   */
  if (fclose (f) == EOF || failed || *buf == NULL) {
    free (*buf);
    *buf = NULL;
    return err_set (ENOMEM, "out of memory");
  }
  return 0;
}

int
full_pread (int fd, void *buf, size_t n, off_t offset, const char *what)
{
  char *p = buf;

  while (n > 0) {
    ssize_t r = pread (fd, p, n, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return err_set (errno, "read %s at %jd: %m", what, (intmax_t) offset);
    }
    if (r == 0)
      return err_set (EIO, "read %s at %jd: unexpected end of file",
                      what, (intmax_t) offset);
    p += r;
    n -= r;
    offset += r;
  }
  return 0;
}

int
full_pwrite (int fd, const void *buf, size_t n, off_t offset,
             const char *what)
{
  const char *p = buf;

  while (n > 0) {
    ssize_t r = pwrite (fd, p, n, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return err_set (errno, "write %s at %jd: %m", what, (intmax_t) offset);
    }
    p += r;
    n -= r;
    offset += r;
  }
  return 0;
}

int
fsync_dir (const char *dir)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd == -1)
    return err_set (errno, "open directory %s: %m", dir);
  if (fsync (fd) == -1) {
    int e = errno;
    close (fd);
    return err_set (e, "fsync directory %s: %m", dir);
  }
  close (fd);
  return 0;
}

int
file_write_atomic (const char *path, const void *data, size_t len)
{
  CLEANUP_FREE char *tmp = str_printf ("%s.tmp.XXXXXX", path);
  CLEANUP_FREE char *dir = strdup (path);
  char *slash;
  int fd;

  if (tmp == NULL || dir == NULL)
    return err_set (ENOMEM, "write %s: out of memory", path);
  fd = mkostemp (tmp, O_CLOEXEC);
  if (fd == -1)
    return err_set (errno, "create %s: %m", tmp);
  if (full_pwrite (fd, data, len, 0, tmp) == -1)
    goto err;
  if (fsync (fd) == -1) {
    err_set (errno, "fsync %s: %m", tmp);
    goto err;
  }
  if (close (fd) == -1) {
    fd = -1;
    err_set (errno, "close %s: %m", tmp);
    goto err;
  }
  fd = -1;
  if (rename (tmp, path) == -1) {
    err_set (errno, "rename %s to %s: %m", tmp, path);
    goto err;
  }
  slash = strrchr (dir, '/');
  if (slash)
    *(slash == dir ? slash + 1 : slash) = '\0';
  return fsync_dir (slash ? dir : ".");

 err:
  if (fd >= 0)
    close (fd);
  unlink (tmp);
  return -1;
}

int
file_read_all (const char *path, size_t max, char **data, size_t *len)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  char *buf;

  if (fd == -1)
    return err_set (errno, "open %s: %m", path);
  if (fstat (fd, &st) == -1) {
    err_set (errno, "stat %s: %m", path);
    goto err;
  }
  if ((uint64_t) st.st_size > max) {
    err_set (EFBIG, "%s: %jd bytes is larger than the limit of %zu",
             path, (intmax_t) st.st_size, max);
    goto err;
  }
  buf = malloc (st.st_size + 1);
  if (buf == NULL) {
    err_set (errno, "malloc: %m");
    goto err;
  }
  if (full_pread (fd, buf, st.st_size, 0, path) == -1) {
    free (buf);
    goto err;
  }
  close (fd);
  buf[st.st_size] = '\0';
  *data = buf;
  if (len)
    *len = st.st_size;
  return 0;

 err:
  close (fd);
  return -1;
}

int
dir_remove (const char *dir)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
  struct dirent *ent;
  int r = 0;

  if (d == NULL) {
    err_set (errno, "%s: %m", dir);
    if (fd >= 0)
      close (fd);
    return -1;
  }
  while (r == 0 && (errno = 0, ent = readdir (d)) != NULL)
    if (strcmp (ent->d_name, ".") != 0 && strcmp (ent->d_name, "..") != 0 &&
        unlinkat (fd, ent->d_name, 0) == -1)
      r = err_set (errno, "%s/%s: %m", dir, ent->d_name);
  if (r == 0 && errno != 0)
    r = err_set (errno, "%s: readdir: %m", dir);
  closedir (d);
  if (r == 0 && rmdir (dir) == -1)
    r = err_set (errno, "%s: %m", dir);
  return r;
}

int
mkdir_p (const char *path, mode_t mode)
{
  CLEANUP_FREE char *p = strdup (path);
  char *s, *parent_end = NULL;  /* the '/' that ends P's parent, if any */

  if (p == NULL)
    return err_set (errno, "strdup: %m");
  for (s = p + 1; ; s++) {
    if (*s == '/' || *s == '\0') {
      char c = *s;
      *s = '\0';
      if (mkdir (p, mode) == 0) {
        int r;
        if (parent_end)
          *parent_end = '\0';
        r = fsync_dir (parent_end ? p : p[0] == '/' ? "/" : ".");
        if (parent_end)
          *parent_end = '/';
        if (r == -1)
          return -1;
      }
      else if (errno != EEXIST)
        return err_set (errno, "mkdir %s: %m", p);
      *s = c;
      if (c == '\0')
        break;
      parent_end = s;
    }
  }
  return 0;
}

/* Length of the valid UTF-8 sequence at S (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF), or 0 if there is none.
 */
static size_t
utf8_char_len (const unsigned char *s)
{
  size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
    : s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;

  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) ||        /* overlong */
      (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||       /* surrogate */
      (n == 4 && s[0] == 0xf0 && s[1] < 0x90) ||        /* overlong */
      (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))         /* > U+10FFFF */
    return 0;
  return n;
}

void
utf8_sanitize (char *s)
{
  unsigned char *p = (unsigned char *) s;

  while (*p) {
    size_t n = utf8_char_len (p);
    if (n == 0)
      *p++ = '?';
    else
      p += n;
  }
}

/* What is wrong with label S, or NULL if nothing. */
static const char *
label_problem (const char *s)
{
  const unsigned char *p = (const unsigned char *) s;

  if (strlen (s) > LABEL_MAX)
    return "longer than 128 bytes";
  while (*p) {
    size_t n = utf8_char_len (p);

    if (n == 0)
      return "not valid UTF-8";
    /* C0 controls and DEL; C1 controls are U+0080..U+009F (0xc2 0x80..) */
    if (*p < 0x20 || *p == 0x7f || (n == 2 && p[0] == 0xc2 && p[1] < 0xa0))
      return "contains a control character";
    p += n;
  }
  return NULL;
}

bool
id_label_valid (const char *s)
{
  return label_problem (s) == NULL;
}

int
id_label_check (const char *what, const char *s)
{
  const char *why = label_problem (s);

  if (why == NULL)
    return 0;
  return err_set (EINVAL, "invalid %s: %s (want at most %d bytes of "
                  "UTF-8 without control characters)", what, why, LABEL_MAX);
}

bool
is_zero (const void *buf, size_t len)
{
  const unsigned char *p = buf;

  /* Check the first 16 bytes one by one, then compare the buffer with
   * itself shifted by 16: memcmp is vectorised and this needs no zero page.
   */
  for (size_t i = 0; i < 16; i++) {
    if (i == len)
      return true;
    if (p[i])
      return false;
  }
  return memcmp (p, p + 16, len - 16) == 0;
}

void
hex_encode (const unsigned char *in, size_t len, char *out)
{
  static const char digits[] = "0123456789abcdef";

  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * len] = '\0';
}

int
hex_value (char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool
hex_decode (const char *in, unsigned char *out, size_t len)
{
  for (size_t i = 0; i < len; i++) {
    int hi = hex_value (in[2 * i]), lo;
    if (hi < 0)
      return false;
    lo = hex_value (in[2 * i + 1]);
    if (lo < 0)
      return false;
    out[i] = hi << 4 | lo;
  }
  return in[2 * len] == '\0';
}

static const char base64_digits[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
base64_encode (const unsigned char *in, size_t len, char *out)
{
  for (; len >= 3; in += 3, len -= 3, out += 4) {
    out[0] = base64_digits[in[0] >> 2];
    out[1] = base64_digits[(in[0] & 3) << 4 | in[1] >> 4];
    out[2] = base64_digits[(in[1] & 15) << 2 | in[2] >> 6];
    out[3] = base64_digits[in[2] & 63];
  }
  if (len > 0) {
    unsigned b = len > 1 ? in[1] : 0;
    out[0] = base64_digits[in[0] >> 2];
    out[1] = base64_digits[(in[0] & 3) << 4 | b >> 4];
    out[2] = len > 1 ? base64_digits[(b & 15) << 2] : '=';
    out[3] = '=';
    out += 4;
  }
  *out = '\0';
}

/* The value of base64 digit C, or -1. */
static int
base64_value (char c)
{
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool
base64_decode (const char *in, unsigned char *out, size_t len)
{
  for (; len > 0; in += 4) {
    int v[4];
    size_t n = len < 3 ? len : 3;

    /* N bytes need N + 1 digits, then '=' up to a group of 4.  Each test
     * stops at a NUL, so IN is never read past its end.
     */
    for (size_t i = 0; i < 4; i++) {
      v[i] = i <= n ? base64_value (in[i]) : 0;
      if (v[i] < 0 || (i > n && in[i] != '='))
        return false;
    }
    /* The unused low bits of the last digit must be 0: one text only. */
    if ((n == 1 && (v[1] & 15)) || (n == 2 && (v[2] & 3)))
      return false;
    out[0] = v[0] << 2 | v[1] >> 4;
    if (n > 1)
      out[1] = (v[1] & 15) << 4 | v[2] >> 2;
    if (n > 2)
      out[2] = (v[2] & 3) << 6 | v[3];
    out += n;
    len -= n;
  }
  return *in == '\0';
}

void
time_iso8601 (uint64_t ms, char out[32])
{
  time_t t = ms / 1000;
  struct tm tm;

  gmtime_r (&t, &tm);
  strftime (out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
time_now_iso8601 (char out[32])
{
  time_iso8601 (time_real_ms (), out);
}

uint64_t
time_mono_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool
parse_size (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;
  unsigned shift = 0;

  if (s == NULL || *s < '0' || *s > '9')
    return false;
  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno)
    return false;
  switch (*end) {
  case '\0': break;
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  case 't': case 'T': shift = 40; end++; break;
  case 'p': case 'P': shift = 50; end++; break;
  default: return false;
  }
  if (shift && end[0] == 'i' && end[1] == 'B')
    end += 2;                   /* "KiB": the same powers of 1024 */
  if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
    return false;
  *out = (uint64_t) v << shift;
  return true;
}

int
size_check (const char *what, const char *s, uint64_t *out)
{
  if (!parse_size (s, out) || *out == 0)
    return err_set (EINVAL, "%s must be a number of bytes with an optional "
                    "K, M, G, T (or KiB, MiB ...) suffix, not \"%.40s\"",
                    what, s);
  return 0;
}
