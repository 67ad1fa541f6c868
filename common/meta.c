/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: cache.meta reading and writing (see meta.h for the layout and
 * the crash rules).
 */
#include <config.h>

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bitmap.h"
#include "err.h"
#include "format.h"
#include "meta.h"

#define META_MAGIC "LZVOLMET"
#define META_VERSION 2           /* 1: no base generation and epoch */

/* The on-disk header (packed by construction: every field is naturally
 * aligned).  The checksum covers every byte before it.
 */
struct meta_disk {
  char magic[8];
  uint32_t version;
  uint32_t flags;
  uint32_t chunk_size;
  uint32_t reserved;
  uint64_t image_size;
  uint64_t chunk_count;
  char snapshot_id[SNAPSHOT_ID_LEN + 1];  /* the base's */
  char pad1[40 - SNAPSHOT_ID_LEN - 1];
  uint64_t base_generation;     /* version 2; zeros (pad) in version 1 */
  uint64_t base_epoch;
  char pad2[8];
  unsigned char sha256[32];
};
_Static_assert (offsetof (struct meta_disk, sha256) == 104,
                "version 1 and 2 headers have the same layout");
_Static_assert (sizeof (struct meta_disk) <= 512, "header fits a sector");

struct meta {
  int fd;
  char *path;
  uint64_t chunks;
  uint64_t bitmap_bytes;        /* each bitmap on disk, page-rounded */
  struct meta_disk hdr;         /* host byte order */
  unsigned open_flags;          /* hdr.flags as found at open */
  struct meta_base base;
};

static void
header_checksum (const struct meta_disk *d, unsigned char out[32])
{
  EVP_Digest (d, offsetof (struct meta_disk, sha256), out, NULL,
              EVP_sha256 (), NULL);
}

static int
write_header (struct meta *m)
{
  struct meta_disk d = m->hdr;

  d.version = htole32 (d.version);
  d.flags = htole32 (d.flags);
  d.chunk_size = htole32 (d.chunk_size);
  d.image_size = htole64 (d.image_size);
  d.chunk_count = htole64 (d.chunk_count);
  d.base_generation = htole64 (d.base_generation);
  d.base_epoch = htole64 (d.base_epoch);
  header_checksum (&d, d.sha256);
  return full_pwrite (m->fd, &d, sizeof d, 0, m->path);
}

static int
read_header (struct meta *m)
{
  struct meta_disk d;
  unsigned char sum[32];

  if (full_pread (m->fd, &d, sizeof d, 0, m->path) == -1)
    return -1;
  header_checksum (&d, sum);
  if (memcmp (d.magic, META_MAGIC, 8) != 0 || memcmp (sum, d.sha256, 32))
    return err_set (EBADMSG, "%s: not a lazyvol cache header (bad magic "
                    "or checksum)", m->path);
  d.version = le32toh (d.version);
  d.flags = le32toh (d.flags);
  d.chunk_size = le32toh (d.chunk_size);
  d.image_size = le64toh (d.image_size);
  d.chunk_count = le64toh (d.chunk_count);
  d.base_generation = le64toh (d.base_generation);
  d.base_epoch = le64toh (d.base_epoch);
  if (d.version < 1 || d.version > META_VERSION)
    return err_set (EBADMSG, "%s: cache format version %u is not one this "
                    "lazyvol reads (1 to %d)", m->path, d.version,
                    META_VERSION);
  d.snapshot_id[SNAPSHOT_ID_LEN] = '\0';
  m->hdr = d;
  memcpy (m->base.snapshot_id, d.snapshot_id, sizeof m->base.snapshot_id);
  m->base.generation = d.base_generation;
  m->base.epoch = d.base_epoch;
  m->base.legacy = d.version == 1;
  return 0;
}

/* Sync cache.meta and drop its page cache.  0 or -1. */
static int
drop_page_cache (struct meta *m)
{
  int e;

  if (meta_sync (m) == -1)
    return -1;
  e = posix_fadvise (m->fd, 0, 0, POSIX_FADV_DONTNEED);
  if (e)
    return err_set (e, "drop the page cache of %s: %m", m->path);
  return 0;
}

/* The bytes of each bitmap of an image of CHUNKS chunks: whole pages. */
static uint64_t
bitmap_bytes (uint64_t chunks)
{
  return (bitmap_words (chunks) * 8 + META_PAGE - 1) / META_PAGE * META_PAGE;
}

uint64_t
meta_file_size (uint64_t chunks)
{
  return META_PAGE + 2 * bitmap_bytes (chunks);
}

/* Allocate the whole file, so that no later write of a bitmap page (a
 * flush, on a full disk) can fail for lack of space.
 */
static int
allocate (struct meta *m)
{
  int e = posix_fallocate (m->fd, 0, meta_file_size (m->chunks));

  if (e)
    return err_set (e, "allocate %s: %m", m->path);
  return 0;
}

struct meta *
meta_open (const char *dir, uint64_t image_size, uint32_t chunk_size,
           bool create, bool grown)
{
  struct meta *m = calloc (1, sizeof *m);
  struct stat st;

  if (m == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  m->fd = -1;
  if ((m->path = str_printf ("%s/cache.meta", dir)) == NULL)
    goto err;
  assert (image_size > 0 || !create);
  if (image_size > 0) {
    m->chunks = (image_size + chunk_size - 1) / chunk_size;
    m->bitmap_bytes = bitmap_bytes (m->chunks);
  }
  m->fd = open (m->path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
  if (m->fd == -1) {
    err_set (errno, "open %s: %m", m->path);
    goto err;
  }
  if (flock (m->fd, LOCK_EX | LOCK_NB) == -1) {
    err_set (errno == EWOULDBLOCK ? EBUSY : errno,
             "%s is in use by another process", dir);
    goto err;
  }
  if (fstat (m->fd, &st) == -1) {
    err_set (errno, "stat %s: %m", m->path);
    goto err;
  }
  if (st.st_size == 0) {
    /* New cache: empty bitmaps, clean, no snapshot. */
    memcpy (m->hdr.magic, META_MAGIC, 8);
    m->hdr.version = META_VERSION;
    m->hdr.flags = m->open_flags = META_CLEAN;
    m->hdr.chunk_size = chunk_size;
    m->hdr.image_size = image_size;
    m->hdr.chunk_count = m->chunks;
    if (allocate (m) == -1)
      goto err;
    if (write_header (m) == -1 || meta_sync (m) == -1)
      goto err;
    return m;
  }
  /* Read what the disk holds, not pages of a session that failed stop
   * after a write-back error (see cache-open.c): sync, then drop them.
   */
  if (drop_page_cache (m) == -1 || read_header (m) == -1)
    goto err;
  m->open_flags = m->hdr.flags;
  if (image_size == 0 || (grown && m->hdr.chunk_size == chunk_size)) {
    /* Whatever geometry the header states (an existing cache only). */
    image_size = m->hdr.image_size;
    chunk_size = m->hdr.chunk_size;
    if (!chunk_size_valid (chunk_size) || image_size == 0 ||
        image_size > IMAGE_SIZE_MAX) {
      err_set (EBADMSG, "%s: a header with no valid geometry", m->path);
      goto err;
    }
    m->chunks = (image_size + chunk_size - 1) / chunk_size;
    m->bitmap_bytes = bitmap_bytes (m->chunks);
  }
  if (m->hdr.image_size != image_size || m->hdr.chunk_size != chunk_size ||
      m->hdr.chunk_count != m->chunks ||
      (uint64_t) st.st_size < META_PAGE + 2 * m->bitmap_bytes) {
    err_set (EINVAL, "%s describes a %ju-byte image with %u-byte chunks, "
             "not %ju bytes with %u-byte chunks (reset the cache)",
             m->path, (uintmax_t) m->hdr.image_size, m->hdr.chunk_size,
             (uintmax_t) image_size, chunk_size);
    goto err;
  }
  /* Caches from before allocation was done at create are allocated now. */
  if (allocate (m) == -1)
    goto err;
  return m;

 err:
  meta_close (m);
  return NULL;
}

bool
meta_size_fits (const struct meta *m, uint64_t image_size)
{
  uint32_t cs = m->hdr.chunk_size;

  return image_size > 0 && image_size <= IMAGE_SIZE_MAX &&
    bitmap_bytes ((image_size + cs - 1) / cs) == m->bitmap_bytes;
}

void
meta_set_size (struct meta *m, uint64_t image_size)
{
  assert (meta_size_fits (m, image_size));
  m->chunks = (image_size + m->hdr.chunk_size - 1) / m->hdr.chunk_size;
  m->hdr.image_size = image_size;
  m->hdr.chunk_count = m->chunks;
}

uint64_t
meta_image_size (const struct meta *m)
{
  return m->hdr.image_size;
}

uint32_t
meta_chunk_size (const struct meta *m)
{
  return m->hdr.chunk_size;
}

unsigned
meta_flags (const struct meta *m)
{
  return m->open_flags;
}

const struct meta_base *
meta_base (const struct meta *m)
{
  return &m->base;
}

static int
read_bitmap (struct meta *m, uint64_t *w, off_t offset)
{
  uint64_t n = bitmap_words (m->chunks);

  if (full_pread (m->fd, w, n * 8, offset, m->path) == -1)
    return -1;
  for (uint64_t i = 0; i < n; i++)
    w[i] = le64toh (w[i]);
  /* Bits past the last chunk must stay clear for counting. */
  if (m->chunks % 64)
    w[n - 1] &= (UINT64_C (1) << (m->chunks % 64)) - 1;
  return 0;
}

int
meta_load (struct meta *m, uint64_t *resident, uint64_t *dirty)
{
  if (read_bitmap (m, resident, META_PAGE) == -1 ||
      read_bitmap (m, dirty, META_PAGE + m->bitmap_bytes) == -1)
    return -1;
  return 0;
}

int
meta_set_header (struct meta *m, unsigned flags, const struct meta_base *base)
{
  m->hdr.version = META_VERSION;
  m->hdr.flags = flags;
  memcpy (m->hdr.snapshot_id, base->snapshot_id, sizeof m->hdr.snapshot_id);
  m->hdr.base_generation = base->generation;
  m->hdr.base_epoch = base->epoch;
  m->base = *base;
  m->base.legacy = false;
  if (write_header (m) == -1)
    return -1;
  return meta_sync (m);
}

/* Write N bytes of host-order words W to OFFSET in little-endian. */
static int
write_words (struct meta *m, const uint64_t *w, uint64_t bytes, off_t offset)
{
#if __BYTE_ORDER == __LITTLE_ENDIAN
  return full_pwrite (m->fd, w, bytes, offset, m->path);
#else
  CLEANUP_FREE uint64_t *le = malloc (bytes);
  if (le == NULL)
    return err_set (errno, "malloc: %m");
  for (uint64_t i = 0; i < bytes / 8; i++)
    le[i] = htole64 (w[i]);
  return full_pwrite (m->fd, le, bytes, offset, m->path);
#endif
}

int
meta_write_dirty_page (struct meta *m, uint64_t page, const void *bits)
{
  if (page * META_PAGE >= m->bitmap_bytes)
    return err_set (EINVAL, "%s: dirty page %ju out of range",
                    m->path, (uintmax_t) page);
  return write_words (m, bits, META_PAGE,
                      META_PAGE + m->bitmap_bytes + page * META_PAGE);
}

int
meta_write_bitmaps (struct meta *m, const uint64_t *resident,
                    const uint64_t *dirty)
{
  if (write_words (m, resident, m->bitmap_bytes, META_PAGE) == -1 ||
      write_words (m, dirty, m->bitmap_bytes,
                   META_PAGE + m->bitmap_bytes) == -1)
    return -1;
  return 0;
}

int
meta_sync (struct meta *m)
{
  if (fdatasync (m->fd) == -1)
    return err_set (errno, "fdatasync %s: %m", m->path);
  return 0;
}

void
meta_close (struct meta *m)
{
  if (m == NULL)
    return;
  if (m->fd >= 0)
    close (m->fd);
  free (m->path);
  free (m);
}
