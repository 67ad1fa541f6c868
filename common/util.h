/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: small helpers used everywhere: id validation, files that must
 * reach the disk atomically, full reads and writes, time, hex and base64.
 *
 * Every export or snapshot id goes through id_export_valid() or
 * id_snapshot_valid() before it becomes part of a path or an object key:
 * the allowed alphabets cannot express "..", "/" or control characters.
 */
#ifndef LAZYVOL_UTIL_H
#define LAZYVOL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#define EXPORT_ID_MAX 128       /* ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ */
#define SNAPSHOT_ID_LEN 32      /* 32 lowercase hex, UUIDv7 without dashes */

/* Free the pointer a variable holds when it goes out of scope. */
#define CLEANUP_FREE __attribute__ ((__cleanup__ (cleanup_free)))
/* Free helper behind CLEANUP_FREE. */
void cleanup_free (void *ptr);
/* Close the fd an int variable holds (unless it is -1) when it goes out
 * of scope, leaving errno alone.
 */
#define CLEANUP_CLOSE __attribute__ ((__cleanup__ (cleanup_close)))
/* Close helper behind CLEANUP_CLOSE. */
void cleanup_close (int *fd);

/* Does S match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ ? */
bool id_export_valid (const char *s);
/* Is S 32 lowercase hex digits? */
bool id_snapshot_valid (const char *s);
/* Is NAME an export id, or "<export_id>@<snapshot_id>" (a read-only
 * view of a snapshot)?  If so, copy the export id to EXPORT_ID and point
 * *SNAPSHOT_ID into NAME after the "@" (NULL for a plain export id).
 * EXPORT_ID and SNAPSHOT_ID may be NULL.  The one definition of the rule.
 */
bool id_name_parse (const char *name, char *export_id,
                    const char **snapshot_id) __attribute__ ((__nonnull__ (1)));
#define NAME_MAX_LEN (EXPORT_ID_MAX + 1 + SNAPSHOT_ID_LEN)
/* 0 if S is a valid export id (snapshot id; export name as above), else
 * -1 with err_set (EINVAL) saying that WHAT ("source_export_id") is not
 * and what it should be.
 */
int id_export_check (const char *what, const char *s)
  __attribute__ ((__nonnull__));
int id_snapshot_check (const char *what, const char *s)
  __attribute__ ((__nonnull__));
int id_name_check (const char *what, const char *s)
  __attribute__ ((__nonnull__));
/* Remote prefix PREFIX of the direct mode, "ROOT/ID" or "ID" (trailing
 * slashes dropped by the caller): the offset of its export id, or -1 if
 * that is not a valid export id, or the prefix starts with "/" or has an
 * empty component.
 */
int id_prefix_split (const char *prefix) __attribute__ ((__nonnull__));
/* A snapshot's label: at most LABEL_MAX bytes of valid UTF-8 without a
 * control character (C0, DEL or C1); display only, never an address.
 */
#define LABEL_MAX 128
/* Is S a valid label? */
bool id_label_valid (const char *s) __attribute__ ((__nonnull__));
/* 0 if S is a valid label, else -1 with err_set (EINVAL) naming WHAT
 * and the first thing wrong.
 */
int id_label_check (const char *what, const char *s)
  __attribute__ ((__nonnull__));
/* Write a new time-ordered snapshot id (UUIDv7, 32 hex + NUL) to OUT. */
void id_snapshot_new (char out[SNAPSHOT_ID_LEN + 1]);
/* The same, but greater than FLOOR (a valid snapshot id; NULL or "": no
 * floor) even if this host's clock is behind the one that made FLOOR:
 * then it is FLOOR's time with a higher sequence, or the millisecond
 * after.  Unique and a valid UUIDv7 either way.
 */
void id_snapshot_new_after (char out[SNAPSHOT_ID_LEN + 1], const char *floor);
/* The last millisecond a snapshot id can hold (48 bits). */
#define ID_MS_MAX ((UINT64_C (1) << 48) - 1)
/* When the valid snapshot id S was made, in ms since the epoch (its
 * first 48 bits).
 */
uint64_t id_snapshot_ms (const char *s) __attribute__ ((__nonnull__));

/* printf into a new string, or NULL with err_set (ENOMEM).  Everything
 * that runs while serving uses this and unwinds: inside nbdkit an
 * allocation failure is one failed request, never a dead server.
 */
char *str_printf (const char *fmt, ...)
  __attribute__ ((__format__ (__printf__, 1, 2)));
/* The same, but aborts on out-of-memory: only for lazyvold's start-up
 * (argument parsing, before anything is served).
 */
char *xasprintf (const char *fmt, ...)
  __attribute__ ((__format__ (__printf__, 1, 2)));

/* open_memstream, or NULL with err_set (ENOMEM). */
FILE *memstream_open (char **buf, size_t *len) __attribute__ ((__nonnull__));
/* Close F, a stream from memstream_open writing *BUF.  0, or -1 with
 * err_set (ENOMEM) if memory ran out writing it: then *BUF is freed and
 * NULL.
 */
int memstream_close (FILE *f, char **buf) __attribute__ ((__nonnull__));

/* pread exactly N bytes; a short file is EIO.  0 or -1 with err_set. */
int full_pread (int fd, void *buf, size_t n, off_t offset, const char *what);
/* pwrite exactly N bytes.  0 or -1 with err_set. */
int full_pwrite (int fd, const void *buf, size_t n, off_t offset,
                 const char *what);
/* fsync the directory DIR so that renames/creates in it are durable. */
int fsync_dir (const char *dir);
/* Replace PATH with DATA atomically and durably: temporary file, fsync,
 * rename, fsync of the directory.  A reader sees the old or the new file.
 * The file is mode 0600, as mkostemp creates it (the publish journal is
 * for lazyvol's eyes only).
 */
int file_write_atomic (const char *path, const void *data, size_t len);
/* Read a whole file of at most MAX bytes into a NUL-terminated malloc'd
 * buffer.  ENOENT if missing, EFBIG if larger than MAX.
 */
int file_read_all (const char *path, size_t max, char **data, size_t *len);
/* Remove directory DIR and the files in it (not below: a directory in it
 * makes it fail), following no symbolic link.  0, or -1 with err_set.
 */
int dir_remove (const char *dir) __attribute__ ((__nonnull__));
/* mkdir -p with MODE, fsyncing the parent of each directory it creates
 * so that the new directories survive a crash; 0 or -1 with err_set.
 */
int mkdir_p (const char *path, mode_t mode);

/* Replace every byte of S that is not part of valid UTF-8 with '?', so
 * that S can go into JSON (messages may quote untrusted input, or cut a
 * character in two where they truncate).
 */
void utf8_sanitize (char *s) __attribute__ ((__nonnull__));

/* Is the buffer all zero bytes? */
bool is_zero (const void *buf, size_t len);
/* Lowercase hex of LEN bytes into OUT (2*LEN+1 bytes). */
void hex_encode (const unsigned char *in, size_t len, char *out);
/* The value of hex digit C (either case), or -1. */
int hex_value (char c);
/* Parse exactly 2*LEN hex digits; false if malformed. */
bool hex_decode (const char *in, unsigned char *out, size_t len);
/* Standard base64 (RFC 4648, with '=' padding) of LEN bytes into OUT
 * (4 * ((LEN + 2) / 3) + 1 bytes).
 */
void base64_encode (const unsigned char *in, size_t len, char *out)
  __attribute__ ((__nonnull__));
/* Parse the base64 of exactly LEN bytes, as base64_encode writes it and
 * nothing else: padded, no white space, the unused bits of the last
 * digit 0.  False if IN is anything else.
 */
bool base64_decode (const char *in, unsigned char *out, size_t len)
  __attribute__ ((__nonnull__));

/* Current UTC time as "2026-11-21T10:00:00Z" into OUT. */
void time_now_iso8601 (char out[32]);
/* The UTC time MS (milliseconds since the epoch) likewise, in seconds. */
void time_iso8601 (uint64_t ms, char out[32]);
/* Monotonic clock in nanoseconds. */
uint64_t time_mono_ns (void);
/* The real-time clock in milliseconds since the epoch. */
uint64_t time_real_ms (void);

/* Parse a size like "1G", "4MiB", "1073741824" into *OUT (K, M, G, T, P
 * with an optional "iB" are powers of 1024); false if bad.
 */
bool parse_size (const char *s, uint64_t *out);
/* parse_size for a size WHAT ("--chunk-size") that must not be 0: 0, or
 * -1 with err_set (EINVAL) saying what a size is.
 */
int size_check (const char *what, const char *s, uint64_t *out)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOL_UTIL_H */
