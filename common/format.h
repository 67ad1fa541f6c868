/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the remote format — volume.json (the head) and manifest.json
 * (the map of one snapshot), and the object keys derived from ids.
 * Documented for users in lazyvol-format(5).  The small documents are
 * format.c, the keys keys.c; a manifest in memory is manifest.c, its
 * reader manifest-read.c (streaming: a manifest grows with the image),
 * its writer manifest-write.c.  Reading and writing them in the store is
 * remote.c.
 *
 * Layout under the export root R of the bucket, for export E:
 *   R/E/volume.json                         the head: current snapshot
 *   R/E/refs/current.json                   a copy of the head
 *   R/E/snapshots/S/manifest.json           snapshot S: chunk -> blob map
 *   R/E/snapshots/S/delta.blob              chunks dirtied since the parent
 *   R/E/snapshots/S/base.blob               the whole image (compact)
 *   R/E/snapshots/S/summary.json            the manifest but its extents
 *   R/.refs/E/S/F                           export F names blobs of E@S
 *   R/.refs/index.json                      every such F has its marker
 *
 * A manifest lists every chunk that is not all zeros, as extents: runs of
 * consecutive chunks stored back to back in one blob, each chunk with its
 * SHA-256.  Its size is O(extents + listed chunks), never O(image size).
 * Blob references are keys relative to the export root and must match
 * "E/snapshots/S/(delta|base).blob" with valid ids, so a manifest cannot
 * name an arbitrary object (clones reference their source's blobs).
 *
 * Parsing is defensive: sizes are capped, every field is type- and
 * range-checked, extents must be sorted, disjoint and inside their blobs.
 * A bad document is EBADMSG with a message naming the problem.  The
 * checks of the manifest are listed in manifest-read.c.
 */
#ifndef LAZYVOL_FORMAT_H
#define LAZYVOL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util.h"

/* The versions this code writes, and the newest it reads.  volume.json
 * 2 added the owner's epoch; manifest.json 2 writes hashes in base64
 * instead of hex.  Every older version stays readable.
 */
#define VOLUME_FORMAT_VERSION 2
#define MANIFEST_FORMAT_VERSION 2
#define OWNER_FORMAT_VERSION 1
#define LEASE_FORMAT_VERSION 1
#define SUMMARY_FORMAT_VERSION 1
#define REF_FORMAT_VERSION 1
#define REFS_INDEX_FORMAT_VERSION 1
#define CHUNK_SIZE_MIN (64 * 1024)
#define CHUNK_SIZE_MAX (64 * 1024 * 1024)
#define CHUNK_SIZE_DEFAULT (4 * 1024 * 1024)
#define IMAGE_SIZE_MAX (UINT64_C (1) << 62)
#define VOLUME_JSON_MAX (64 * 1024)

/* Is CHUNK_SIZE a power of two in [CHUNK_SIZE_MIN, CHUNK_SIZE_MAX]? */
bool chunk_size_valid (uint64_t chunk_size);

/* volume.json: the authoritative head of an export. */
struct volume_head {
  char export_id[EXPORT_ID_MAX + 1];
  uint64_t image_size;
  uint32_t chunk_size;
  uint64_t generation;          /* 0 before the first publish */
  char snapshot_id[SNAPSHOT_ID_LEN + 1]; /* "" before the first publish */
  uint64_t epoch;               /* of the owner that last wrote it (0: v1) */
  char updated[32];             /* ISO 8601 UTC of the last change */
};

/* Parse volume.json; EXPORT_ID, if not NULL, must match the document's.
 * 0, or -1 with EBADMSG.
 */
int volume_parse (const char *json, size_t len, const char *export_id,
                  struct volume_head *out);
/* Serialize a head as pretty JSON (malloc'd, NUL-terminated); NULL on
 * out-of-memory.
 */
char *volume_format (const struct volume_head *head);
/* Write a JSON string, escaped as RFC 8259 says (S must be UTF-8). */
void format_write_string (FILE *f, const char *s) __attribute__ ((__nonnull__));

/* owner.json: which host owns an export (see owner.c). */
#define HOST_ID_MAX 64          /* like an export id, at most 64 bytes */
struct owner_record {
  char export_id[EXPORT_ID_MAX + 1];
  char host_id[HOST_ID_MAX + 1];          /* "" if nobody owns it now */
  char cache_id[SNAPSHOT_ID_LEN + 1];     /* the owner's cache root */
  uint64_t epoch;                         /* grows at every take */
  char since[32];
};

/* Parse owner.json; EXPORT_ID (if not NULL) must match.  0 or -1 with
 * EBADMSG.
 */
int owner_parse (const char *json, size_t len, const char *export_id,
                 struct owner_record *out);
/* Serialize an owner record (malloc'd); NULL with ENOMEM. */
char *owner_format (const struct owner_record *o);

/* A host's lease record, .hosts/HOST.json (see lease.c): renewed every
 * third of the lease period; other hosts write revocations into it.
 */
#define LEASE_REVOKED_MAX 64
#define LEASE_PERIOD_MAX_MS 3600000   /* an hour */
struct lease_revocation {
  char export_id[EXPORT_ID_MAX + 1];
  uint64_t epoch;
};
struct lease_record {
  char host_id[HOST_ID_MAX + 1];
  char cache_id[SNAPSHOT_ID_LEN + 1];
  uint64_t count;                         /* renewals; changes the etag */
  uint64_t period_ms;                     /* the lease period it keeps */
  char renewed[32];
  struct lease_revocation revoked[LEASE_REVOKED_MAX];
  size_t nrevoked;
  bool overflow;                /* revocations were dropped: check all */
};

/* Is S a valid host id ([A-Za-z0-9][A-Za-z0-9._-]{0,63})? */
bool host_id_valid (const char *s);
/* Parse a lease record; HOST_ID (if not NULL) must match.  0 or -1. */
int lease_parse (const char *json, size_t len, const char *host_id,
                 struct lease_record *out);
/* Serialize a lease record (malloc'd); NULL with ENOMEM. */
char *lease_format (const struct lease_record *l);

enum manifest_kind { MANIFEST_DELTA, MANIFEST_BASE, MANIFEST_CLONE };

struct manifest_blob {
  char *key;                    /* relative to the export root */
  uint64_t size;
};

struct manifest_extent {
  uint64_t chunk;               /* first chunk of the run */
  uint64_t count;               /* chunks in the run, >= 1 */
  uint32_t blob;                /* index into blobs[] */
  uint64_t offset;              /* byte offset of the first chunk in the blob */
  uint64_t hash;                /* index into sha[] of the first chunk */
};

struct manifest {
  char export_id[EXPORT_ID_MAX + 1];
  char snapshot_id[SNAPSHOT_ID_LEN + 1];
  char parent[SNAPSHOT_ID_LEN + 1];     /* "" for the first snapshot */
  enum manifest_kind kind;
  uint64_t generation;
  uint64_t image_size;
  uint32_t chunk_size;
  char created[32];
  char *base_ref;               /* key of the base blob it builds on, or NULL */
  char cloned_export[EXPORT_ID_MAX + 1];        /* "" unless a clone */
  char cloned_snapshot[SNAPSHOT_ID_LEN + 1];
  char label[LABEL_MAX + 1];    /* "" if none (id_label_valid) */
  struct manifest_blob *blobs;
  size_t nblobs;
  struct manifest_extent *extents;
  size_t nextents;
  unsigned char (*sha)[32];     /* one per listed chunk, in extent order */
  size_t nsha;
  size_t blobs_cap, extents_cap, sha_cap;       /* allocated (manifest.c) */
  /* Read from a summary (summary_parse), which has no extents: the
   * manifest's listed chunks and its own blob's bytes.
   */
  uint64_t summary_chunks, summary_bytes;
};

/* Largest manifest.json accepted for an image of CHUNK_COUNT chunks. */
size_t manifest_max_size (uint64_t chunk_count);

/* A reader of one manifest.json, fed its bytes as they arrive. */
struct manifest_reader;

/* A reader for the manifest of EXPORT_ID's snapshot SNAPSHOT_ID; each, if
 * not NULL, must match the document's, and must outlive the reader.  NULL
 * with ENOMEM.
 */
struct manifest_reader *manifest_reader_new (const char *export_id,
                                             const char *snapshot_id);
/* Read the next LEN bytes of the document (pieces of any size).  0, or
 * -1 with EBADMSG (ENOMEM) as soon as the document is known to be no
 * valid manifest; after a failure only manifest_reader_free may follow.
 */
int manifest_reader_feed (struct manifest_reader *r, const void *buf,
                          size_t len) __attribute__ ((__nonnull__ (1)));
/* The document has ended: the manifest (the caller's, to free with
 * manifest_free), or NULL with EBADMSG (ENOMEM).  Then only
 * manifest_reader_free may follow.
 */
struct manifest *manifest_reader_finish (struct manifest_reader *r)
  __attribute__ ((__nonnull__));
/* Free R (and the manifest it was building, if any); NULL is allowed. */
void manifest_reader_free (struct manifest_reader *r);
/* Parse a whole manifest.json (a reader fed once).  NULL with EBADMSG if
 * the document is not a valid manifest; EXPORT_ID and SNAPSHOT_ID, if
 * not NULL, must match it.
 */
struct manifest *manifest_parse (const char *json, size_t len,
                                 const char *export_id,
                                 const char *snapshot_id);
/* Serialize a manifest as human-readable JSON (malloc'd); NULL on
 * out-of-memory.
 */
char *manifest_format (const struct manifest *m);

/* A manifest being built from another one borrows its hashes instead of
 * copying them (a publish changes a few chunks of a large manifest):
 * an extent in a blob the new snapshot wrote (OWN[blob]) has its hashes
 * from OWN_SHA (OPAQUE, extent.hash + j), any other extent's are
 * FROM's, FROM->sha[extent.hash + j].  manifest_add_run builds such a
 * manifest, manifest_write writes it, manifest_take_hashes makes it
 * whole.
 */
struct manifest_hashes {
  const struct manifest *from;          /* NULL: every extent is own */
  const bool *own;                      /* [nblobs] */
  const unsigned char *(*own_sha) (void *opaque, uint64_t i);
  void *opaque;
};

/* Write manifest M to F as manifest_format does, its hashes from H (M's
 * own if H is NULL), as it goes: nothing is held but F's buffer.  0, or
 * -1 if F failed.
 */
int manifest_write (FILE *f, const struct manifest *m,
                    const struct manifest_hashes *h)
  __attribute__ ((__nonnull__ (1, 2)));
/* summary.json: what lists need of snapshot M -- every
 * member of its manifest but the extents, with "chunks" (listed) and
 * "bytes" (of its own blob, every piece) -- as JSON (malloc'd); NULL on
 * out-of-memory.  See lazyvol-format(5), SUMMARY.JSON.
 */
char *manifest_summary_format (const struct manifest *m);
/* Parse summary.json into a manifest without extents, with
 * summary_chunks and summary_bytes; the ids as for manifest_parse.  NULL
 * with EBADMSG if it is not a valid summary.
 */
struct manifest *summary_parse (const char *json, size_t len,
                                const char *export_id,
                                const char *snapshot_id);
/* Does summary S (summary_parse) say what manifest M's summary would:
 * the same members, blobs in the same order, chunks and bytes?
 */
bool manifest_summary_agrees (const struct manifest *m,
                              const struct manifest *s)
  __attribute__ ((__nonnull__));
/* A reader of one summary.json, used as a manifest_reader. */
struct manifest_reader *summary_reader_new (const char *export_id,
                                            const char *snapshot_id);
/* Bytes of the blob snapshot M wrote itself, every piece (0 for a
 * clone); saturates on hostile sizes.
 */
uint64_t manifest_own_bytes (const struct manifest *m)
  __attribute__ ((__nonnull__));
/* Free a manifest; NULL is allowed. */
void manifest_free (struct manifest *m);

/* A new empty manifest with the given identity (blobs/extents added with
 * manifest_add_*).  NULL on out-of-memory.
 */
struct manifest *manifest_new (const char *export_id, const char *snapshot_id,
                               enum manifest_kind kind, uint64_t generation,
                               uint64_t image_size, uint32_t chunk_size);
/* Append a blob; returns its index, or -1 on out-of-memory or with EINVAL
 * if KEY is not "E/snapshots/S/(delta|base).blob".
 */
int manifest_add_blob (struct manifest *m, const char *key, uint64_t size);
/* Append CHUNK (greater than every chunk added so far), stored in BLOB at
 * OFFSET with hash SHA; merges into the previous extent when contiguous.
 * 0, or -1 with EINVAL if CHUNK is out of order or outside the image, or
 * its bytes are outside BLOB (add the blob with its final size first).
 */
int manifest_add_chunk (struct manifest *m, uint64_t chunk, uint32_t blob,
                        uint64_t offset, const unsigned char sha[32]);
/* Append the run of COUNT chunks from CHUNK, back to back in BLOB from
 * OFFSET, whose hashes are borrowed (struct manifest_hashes) from index
 * HASH on; merged into the last extent when it continues it.  The
 * checks and errors of manifest_add_chunk.  M has no hashes of its own
 * until manifest_take_hashes.
 */
int manifest_add_run (struct manifest *m, uint64_t chunk, uint64_t count,
                      uint32_t blob, uint64_t offset, uint64_t hash)
  __attribute__ ((__nonnull__));
/* For each blob of M, whether M's snapshot wrote it (malloc'd), or NULL
 * with ENOMEM.
 */
bool *manifest_own_blobs (const struct manifest *m)
  __attribute__ ((__nonnull__));
/* Hash J of extent E of M, which borrows from H (or has its own if H is
 * NULL).
 */
const unsigned char *manifest_hash (const struct manifest *m,
                                    const struct manifest_hashes *h,
                                    const struct manifest_extent *e,
                                    uint64_t j)
  __attribute__ ((__nonnull__ (1, 3)));
/* Make room for N hashes in M's array (which may move: no reader may
 * look meanwhile), so that manifest_take_hashes cannot fail.  0, or -1
 * with ENOMEM.
 */
int manifest_reserve_hashes (struct manifest *m, size_t n)
  __attribute__ ((__nonnull__));
/* M, which borrows its hashes from H, takes them for good: they are
 * moved, in place, into the array of FROM (H->from, which M was built
 * from; NULL if none), which M takes over, and FROM is left without
 * hashes (only to be freed).  The array needs room for M's hashes
 * (manifest_reserve_hashes on FROM, or on M if FROM is NULL).  Nobody
 * may read FROM or M meanwhile.  Cannot fail.
 */
void manifest_take_hashes (struct manifest *m, struct manifest *from,
                           const struct manifest_hashes *h)
  __attribute__ ((__nonnull__ (1, 3)));

/* Where chunk CHUNK lives: false if the manifest does not list it (the
 * chunk is all zeros).  Otherwise sets the blob key (relative to the export
 * root), the byte offset in that blob and the expected SHA-256.
 * O(log extents).
 */
bool manifest_find (const struct manifest *m, uint64_t chunk,
                    const char **blob_key, uint64_t *offset,
                    const unsigned char **sha);
/* manifest_find, and the number of chunks from CHUNK on stored back to
 * back after it in the same blob (*COUNT >= 1), whose hashes follow
 * *SHA.
 */
bool manifest_find_run (const struct manifest *m, uint64_t chunk,
                        const char **blob_key, uint64_t *offset,
                        const unsigned char **sha, uint64_t *count)
  __attribute__ ((__nonnull__));
/* Bytes of chunk CHUNK in an image (the last chunk may be short). */
uint32_t chunk_len (uint64_t image_size, uint32_t chunk_size, uint64_t chunk);
/* Number of chunks of an image. */
uint64_t chunk_count (uint64_t image_size, uint32_t chunk_size);

/* Object keys.  ROOT is the export root ("" for the bucket's top); ids
 * must already be valid.  All return malloc'd strings, or NULL with
 * err_set (ENOMEM).
 */
char *key_volume (const char *root, const char *export_id);
char *key_owner (const char *root, const char *export_id);
/* The lease record of host HOST_ID's cache root CACHE_ID. */
char *key_lease (const char *root, const char *host_id, const char *cache_id);
char *key_refs_current (const char *root, const char *export_id);
char *key_snapshots_prefix (const char *root, const char *export_id);
char *key_manifest (const char *root, const char *export_id,
                    const char *snapshot_id);
char *key_summary (const char *root, const char *export_id,
                   const char *snapshot_id);
/* Relative blob key as stored in manifests: "E/snapshots/S/KIND.blob". */
char *key_blob_rel (const char *export_id, const char *snapshot_id,
                    enum manifest_kind kind);
/* A snapshot's blob is one object unless it would be larger than the
 * store takes (store_object_max): then it is split into pieces,
 * "KIND.blob", "KIND.1.blob", "KIND.2.blob" ..., each holding whole
 * chunks.  The relative key of piece PIECE (< BLOB_PIECES_MAX).
 */
#define BLOB_PIECES_MAX 1000000
char *key_blob_piece_rel (const char *export_id, const char *snapshot_id,
                          enum manifest_kind kind, unsigned piece);
/* Is KEY a blob (piece) that snapshot SNAPSHOT_ID of EXPORT_ID wrote? */
bool key_blob_is_own (const char *key, const char *export_id,
                      const char *snapshot_id)
  __attribute__ ((__nonnull__));
/* Full key of a relative key REL under ROOT. */
char *key_join (const char *root, const char *rel);
/* Which snapshot wrote blob KEY (relative, as manifests name blobs):
 * its export and snapshot ids into WRITER and SNAPSHOT.  False if KEY
 * is not a blob key (manifest_blob_kind).
 */
bool key_blob_writer (const char *key, char writer[EXPORT_ID_MAX + 1],
                      char snapshot[SNAPSHOT_ID_LEN + 1])
  __attribute__ ((__nonnull__));
/* A snapshot's object KEY relative to the export root,
 * "E/snapshots/S/NAME": E and S into EXPORT_ID and SNAPSHOT_ID (valid
 * ids), and *NAME pointing into KEY.  False for any other key.
 */
bool key_snapshot_parse (const char *key, char export_id[EXPORT_ID_MAX + 1],
                         char snapshot_id[SNAPSHOT_ID_LEN + 1],
                         const char **name)
  __attribute__ ((__nonnull__));

/* Reference markers (see refs.c and lazyvol-format(5), REFERENCES).
 * ROOT/.refs/W/S/U says that export USER names blobs that snapshot S of
 * export W wrote; ".refs" can never be an export id (no leading dot).
 */
char *key_ref (const char *root, const char *writer, const char *snapshot,
               const char *user) __attribute__ ((__nonnull__));
/* The prefix of the markers of W@S's blobs, ROOT/.refs/W/S/; with
 * WRITER and SNAPSHOT NULL, of every marker, ROOT/.refs/.
 */
char *key_refs_prefix (const char *root, const char *writer,
                       const char *snapshot) __attribute__ ((__nonnull__ (1)));
/* A marker's key relative to ROOT/.refs/, "W/S/U": W, S and U (valid
 * ids) into WRITER, SNAPSHOT and USER.  False for any other key.
 */
bool key_ref_parse (const char *rel, char writer[EXPORT_ID_MAX + 1],
                    char snapshot[SNAPSHOT_ID_LEN + 1],
                    char user[EXPORT_ID_MAX + 1])
  __attribute__ ((__nonnull__));
/* ROOT/.refs/index.json: every reference that needs a marker has one. */
char *key_refs_index (const char *root) __attribute__ ((__nonnull__));
/* A marker's text, for people: the export USER that names the blobs,
 * and when (malloc'd); NULL with ENOMEM.  Nothing reads it back: the
 * key says it all.
 */
char *ref_format (const char *user, const char *created)
  __attribute__ ((__nonnull__));
/* The text of index.json (malloc'd); NULL with ENOMEM. */
char *refs_index_format (const char *created) __attribute__ ((__nonnull__));
/* Parse index.json.  0, or -1 with EBADMSG (a newer version too). */
int refs_index_parse (const char *json, size_t len)
  __attribute__ ((__nonnull__));

#endif /* LAZYVOL_FORMAT_H */
