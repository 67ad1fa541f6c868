/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: what the files of the format module share (private to
 * format.c, manifest.c, manifest-read.c and manifest-write.c).
 *
 * The checks of a field are written once, here, so that a message reads
 * the same whether json-c read the document (volume.json, owner and
 * lease records, in format.c) or the streaming reader did (manifest.json,
 * manifest-read.c); the writers share the helpers that print members.
 */
#ifndef LAZYVOL_FORMAT_IMPL_H
#define LAZYVOL_FORMAT_IMPL_H

#include <stdarg.h>
#include <stdio.h>

#include "format.h"

/* A document being parsed: what to call it in messages, and the element
 * the checks are in ("extents[3]", or "" at the top level).
 */
struct format_doc {
  char name[EXPORT_ID_MAX + SNAPSHOT_ID_LEN + 32];
  char at[64];
};

/* Record "NAME: AT: what is wrong" as EBADMSG.  Returns -1. */
int format_bad (const struct format_doc *d, const char *fmt, ...)
  __attribute__ ((__format__ (__printf__, 2, 3), __nonnull__ (1, 2)));
/* The same with a va_list. */
int format_vbad (const struct format_doc *d, const char *fmt, va_list ap)
  __attribute__ ((__format__ (__printf__, 2, 0), __nonnull__ (1, 2)));
/* S, shortened and with quotes, backslashes and control characters
 * replaced by '?', so that a hostile string is safe in a message.
 */
const char *format_printable (const char *s, char out[72])
  __attribute__ ((__nonnull__));
/* Integer field NAME, written with a minus sign (NEGATIVE, for a value
 * other than 0) or as VALUE (UINT64_MAX if it did not fit), must be in
 * [MIN, MAX] (MAX <= INT64_MAX).  0 or -1 with EBADMSG.
 */
int format_check_u64 (const struct format_doc *d, const char *name,
                      bool negative, uint64_t value, uint64_t min,
                      uint64_t max) __attribute__ ((__nonnull__));
/* Id field NAME holds S, which VALID must accept, or is null (S NULL,
 * where the caller allows it); if EXPECT is not NULL, S (null: "") must
 * equal it.  0 or -1 with EBADMSG.
 */
int format_check_id (const struct format_doc *d, const char *name,
                     const char *s, bool (*valid) (const char *),
                     const char *expect)
  __attribute__ ((__nonnull__ (1, 2, 4)));
/* Time field NAME holds S, which must be like 2026-11-21T10:00:00Z.  0 or
 * -1 with EBADMSG.
 */
int format_check_time (const struct format_doc *d, const char *name,
                       const char *s) __attribute__ ((__nonnull__));
/* The document's "format", S, must be FORMAT.  0 or -1 with EBADMSG. */
int format_check_format (const struct format_doc *d, const char *format,
                         const char *s) __attribute__ ((__nonnull__));
/* The document's version (already in [1, INT64_MAX]) must be at most
 * NEWEST, the newest this code reads.  0 or -1 with EBADMSG.
 */
int format_check_version (const struct format_doc *d, uint64_t version,
                          uint64_t newest) __attribute__ ((__nonnull__));
/* chunk_size (already in range) must be a power of two.  0 or -1. */
int format_check_chunk_size (const struct format_doc *d, uint64_t cs)
  __attribute__ ((__nonnull__));

/* A top-level member with a string value, or null if S is NULL. */
void format_write_str (FILE *f, const char *key, const char *s)
  __attribute__ ((__nonnull__ (1, 2)));
/* A top-level member with an integer value. */
void format_write_u64 (FILE *f, const char *key, uint64_t v)
  __attribute__ ((__nonnull__));
/* image_size and chunk_size. */
void format_write_geometry (FILE *f, uint64_t image_size, uint32_t chunk_size)
  __attribute__ ((__nonnull__));
/* Open a document: the brace, its "format" and "version". */
void format_write_open (FILE *f, const char *format, unsigned version)
  __attribute__ ((__nonnull__));
/* What WRITE writes of ARG, as text (malloc'd), or NULL with ENOMEM. */
char *format_text (void (*write) (FILE *f, const void *arg), const void *arg)
  __attribute__ ((__nonnull__ (1)));
/* A document: its "format" and "version", the members BODY writes for
 * ARG, then the closing brace.  The text (malloc'd), or NULL with ENOMEM.
 */
char *format_write_document (const char *format, unsigned version,
                             void (*body) (FILE *f, const void *arg),
                             const void *arg)
  __attribute__ ((__nonnull__ (1, 3)));

/* The name of a kind ("delta", "base", "clone"). */
const char *manifest_kind_name (enum manifest_kind kind);
/* The longest blob key, NUL included: "E/snapshots/S/delta.N.blob". */
#define MANIFEST_BLOB_KEY_MAX (EXPORT_ID_MAX + SNAPSHOT_ID_LEN + \
                               sizeof "/snapshots//delta.999999.blob")
/* The kind of blob KEY names, if it is "E/snapshots/S/delta.blob" or
 * "E/snapshots/S/base.blob", or a further piece ("delta.N.blob"), with
 * valid ids: MANIFEST_DELTA or MANIFEST_BASE, and the piece number in
 * *PIECE (if not NULL).  -1 for anything else.
 */
int manifest_blob_kind (const char *key, unsigned *piece)
  __attribute__ ((__nonnull__ (1)));
/* Bytes of the run of COUNT (>= 1) chunks from CHUNK, packed back to
 * back: only the image's last chunk can be short.
 */
uint64_t manifest_run_bytes (const struct manifest *m, uint64_t chunk,
                             uint64_t count) __attribute__ ((__nonnull__));
/* Append extent E (its hash index included, checked by the caller) or
 * hash SHA.  0, or -1 with ENOMEM.
 */
int manifest_append_extent (struct manifest *m,
                            const struct manifest_extent *e)
  __attribute__ ((__nonnull__));
int manifest_append_sha (struct manifest *m, const unsigned char sha[32])
  __attribute__ ((__nonnull__));
/* Give back the memory the arrays hold beyond their elements.  0, or -1
 * with ENOMEM (M unchanged).
 */
int manifest_shrink (struct manifest *m) __attribute__ ((__nonnull__));

#endif /* LAZYVOL_FORMAT_IMPL_H */
