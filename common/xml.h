/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: just enough XML to read S3's replies (no XML library).
 *
 * A reply is walked as spans of the original buffer: find a child
 * element by name inside a parent's content, iterate over repeated
 * children, and decode an element's text.  Nothing is copied until
 * xml_text.  Every function stays inside the span it is given, so a
 * truncated or hostile reply is an error (-1 / NULL), never an overread.
 */
#ifndef LAZYVOL_XML_H
#define LAZYVOL_XML_H

#include <stddef.h>

/* A piece of a document (not NUL-terminated). */
struct xml_span {
  const char *p;
  size_t len;
};

/* Find the next element named NAME that is a direct child of the content
 * IN, scanning from offset *POS (0 to start).  Sets *CONTENT to what is
 * between its tags and moves *POS past it.  1 if found, 0 if there is no
 * more, -1 if IN is malformed (or holds a DTD).
 */
int xml_next (struct xml_span in, const char *name, size_t *pos,
              struct xml_span *content)
  __attribute__ ((__nonnull__ (2, 3, 4)));
/* The text of S with the five entities and numeric character references
 * decoded, malloc'd and NUL-terminated.  NULL with errno EBADMSG if S
 * holds markup, a NUL, an unknown entity or an invalid character
 * reference; ENOMEM if out of memory.
 */
char *xml_text (struct xml_span s);
/* The decoded text of the first child NAME of IN (malloc'd), or NULL
 * with errno ENOENT if there is none, EBADMSG if malformed, ENOMEM if out
 * of memory.
 */
char *xml_child_text (struct xml_span in, const char *name)
  __attribute__ ((__nonnull__ (2)));
/* S with & < > " ' escaped, for element content: malloc'd, or NULL with
 * errno ENOMEM.
 */
char *xml_escape (const char *s)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOL_XML_H */
