/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: a local directory as the object store ("file" backend).
 *
 * Object key K is the file DIR/K, so the layout can be read with ls and
 * cat.  Puts are atomic and durable: the bytes go to a temporary file in
 * the same directory (named ".tmp.*", which listings skip), are fsynced,
 * renamed over K, and the directory is fsynced.  A directory a put
 * creates on the way is fsynced into its parent first.  A reader never
 * sees half an object; after a crash there is the old object or the new
 * one, and perhaps an orphaned temporary file (see below).
 *
 * Hostile contents.  Anyone who can write to DIR can plant a symbolic
 * link where a blob, a manifest or a directory of keys belongs.  The
 * store never follows one: DIR is resolved once, at open (it may itself
 * be a link; its real path is what is used), and every object is opened
 * relative to that directory fd with beneath_open() (openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or a walk with O_NOFOLLOW), for
 * reads, writes, uploads and deletes alike.  A key whose path meets a
 * link fails with ELOOP and says so; a read never returns the bytes of
 * the link's target.  Renames and unlinks are done relative to the fd of
 * the key's directory opened that way.  Listings and sweeps do not
 * descend into links and report only regular files.  Objects are opened
 * O_NONBLOCK, so a FIFO planted as an object cannot hang a reader.
 *
 * Modes.  New objects get the configured file mode (default 0600: disk
 * images are nobody else's business), new directories the same bits plus
 * x wherever r is set (0700; 0750 for 0640), whatever the umask.
 * Existing files and directories are not changed.
 *
 * A multipart upload writes each part at its offset in one temporary
 * file; complete fsyncs it and renames it to its key as a put does.  A
 * part whose memory, offset and length are DIRECT_ALIGN-aligned (every
 * part of a publish but perhaps the last) is written with O_DIRECT,
 * through a second descriptor of the same file: a blob is written once
 * and read back rarely (by fills of chunks that no cache holds), so it
 * gains little from the page cache but pushes pages of cache.raw out of
 * it, and the copy into it can cost more CPU than hashing the bytes did
 * (below).  Measured for 256 MiB in 8 MiB parts from 4 threads, each
 * part read, hashed and written, on ext4 in a virtual machine, medians
 * of 8 runs: O_DIRECT 0.64 s (0.24-0.78) and 0.26 CPU-seconds
 * (0.25-0.27); buffered 1.2 s (0.48-2.4) and 0.50 (0.32-0.76);
 * copy_file_range from the source plus a read to hash 0.80 s (0.59-1.07)
 * and 0.35 (0.35-0.36).  Where O_DIRECT is refused (a file system
 * without it: EINVAL) parts are written through the page cache, their
 * writeback started at once (sync_file_range) so that the fsync at
 * complete mostly waits for writes already under way.  The file's name
 * (".tmp.BASE.upload.XXXXXX", in the key's directory) is the upload's
 * id, so an upload can be aborted by key and id, and listed: the uploads
 * in progress are the files named so, their writers alive or not, and
 * one was initiated no later than the file's mtime.
 *
 * Temporary files.  Their writer holds an exclusive flock on each one for
 * its whole life: a put from creation until the rename, an upload until
 * complete or abort.  A crash leaves the file behind, unlocked (the
 * kernel drops the lock with the last fd).  store_sweep_temps removes a
 * temporary file only if it can take the flock without waiting AND the
 * file was last modified more than TEMP_GRACE seconds ago: the grace
 * covers the instant between a writer creating its file and locking it.
 * flock locks belong to open files, not processes, so this holds within
 * one process too (on NFS, where Linux emulates flock with POSIX locks
 * owned by the process, a sweep must not run in a process whose uploads
 * are older than the grace).
 *
 * Conditional puts are a compare-and-swap: the new object is written and
 * synced first, then, holding an exclusive flock on DIR/.lock (which also
 * excludes other processes), the current etag is checked and the rename
 * done.  Every put takes the lock for its rename, so a plain put cannot
 * slip between another's check and rename.
 *
 * Etags: objects up to ETAG_HASH_MAX bytes get a content hash (like S3's
 * MD5 etag for simple puts: same bytes, same etag); larger ones, which are
 * never the target of a conditional put, get size, mtime and inode.
 *
 * Deleting a key removes the directories it leaves empty, so a listing
 * with a delimiter only shows prefixes that hold objects, as S3 does.  A
 * put that loses a race with such an rmdir recreates the directory and
 * tries again.
 *
 * A full disk is ENOSPC, from the write, fsync or mkdir that met it.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "beneath.h"
#include "err.h"
#include "store-impl.h"
#include "util.h"

#define TMP_PREFIX ".tmp."
#define UPLOAD_SUFFIX_LEN (8 + 6)       /* ".upload.XXXXXX" */
#define ETAG_HASH_MAX (1024 * 1024)
#define TEMP_GRACE (10 * 60)    /* seconds before an unlocked temp is swept */
/* O_DIRECT's alignment of memory, offset and length: enough for every
 * logical block size up to a page.
 */
#define DIRECT_ALIGN 4096

struct file_store {
  struct store s;
  int root;                     /* the bucket directory */
  mode_t file_mode, dir_mode;   /* of new objects and directories */
};

struct file_upload {
  struct store_upload u;        /* u.id is the temporary file's name */
  int dir;                      /* the key's directory */
  int fd;                       /* the temporary file, flocked */
  int direct;                   /* the same file, O_DIRECT; or -1 */
};

/* Report that OP on KEY failed with errno; a link met on the way is
 * refused in so many words.
 */
static int
key_error (const char *op, const char *key)
{
  if (errno == ELOOP)
    return err_set (ELOOP, "%s %s: refused: a component is a symbolic link "
                    "(the file store never follows links)", op, key);
  return err_set (errno, "%s %s: %m", op, key);
}

/* Open the directory holding KEY, creating it with CREATE; *BASE is set
 * to KEY's last component.  An fd, or -1 with errno (no err_set).
 */
static int
open_dir_of (struct file_store *fs, const char *key, bool create,
             const char **base)
{
  const char *slash = strrchr (key, '/');
  CLEANUP_FREE char *dir = NULL;

  *base = slash ? slash + 1 : key;
  dir = strndup (key, slash ? slash - key : 0);
  if (dir == NULL)
    return -1;
  return create ? beneath_mkdirs (fs->root, dir, fs->dir_mode)
    : beneath_open (fs->root, dir, O_RDONLY | O_DIRECTORY, 0);
}

/* -1 with ELOOP if NAME in DIR is a symbolic link.  Renaming over it or
 * unlinking it would not follow it, but a key that is a link is refused
 * by every operation, as a read of it is.
 */
static int
refuse_link (int dir, const char *name)
{
  struct stat st;

  if (fstatat (dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISLNK (st.st_mode)) {
    errno = ELOOP;
    return -1;
  }
  return 0;
}

static int
etag_of (int fd, const struct stat *st, const char *what, char *etag)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen;
  CLEANUP_FREE char *buf = NULL;

  if (st->st_size > ETAG_HASH_MAX) {
    snprintf (etag, 128, "s%jx-%jx.%lx-%jx", (intmax_t) st->st_size,
              (intmax_t) st->st_mtim.tv_sec, (long) st->st_mtim.tv_nsec,
              (intmax_t) st->st_ino);
    return 0;
  }
  buf = malloc (st->st_size + 1);
  if (buf == NULL)
    return err_set (errno, "malloc: %m");
  if (full_pread (fd, buf, st->st_size, 0, what) == -1)
    return -1;
  if (!EVP_Digest (buf, st->st_size, md, &mdlen, EVP_sha256 (), NULL))
    return err_set (EIO, "%s: SHA-256 failed", what);
  hex_encode (md, 16, etag);
  return 0;
}

/* Open object KEY for reading (for OP, named in errors) and fill INFO.
 * -1 with ENOENT if missing, ELOOP if a link is in the way, EFBIG if it
 * is larger than MAX bytes.
 */
static int
open_object (struct file_store *fs, const char *op, const char *key,
             size_t max, struct store_obj *info, bool want_etag)
{
  struct stat st;
  CLEANUP_CLOSE int fd =
    beneath_open (fs->root, key, O_RDONLY | O_NONBLOCK, 0);
  int r;

  if (fd == -1) {
    if (errno == ENOTDIR)       /* a component is an object */
      errno = ENOENT;
    return key_error (op, key);
  }
  if (fstat (fd, &st) == -1)
    return key_error (op, key);
  if (!S_ISREG (st.st_mode))
    return err_set (ENOENT, "%s %s: not an object", op, key);
  if ((uintmax_t) st.st_size > max)
    return err_set (EFBIG, "%s %s: %ju bytes is larger than the limit of %zu",
                    op, key, (uintmax_t) st.st_size, max);
  if (info) {
    info->size = st.st_size;
    info->etag[0] = '\0';
    if (want_etag && etag_of (fd, &st, key, info->etag) == -1)
      return -1;
  }
  r = fd;
  fd = -1;
  return r;
}

static int
file_get (struct store *s, const char *key, size_t max,
          char **data, size_t *len, struct store_obj *info)
{
  struct file_store *fs = (struct file_store *) s;
  struct store_obj obj;
  char *buf;
  CLEANUP_CLOSE int fd = open_object (fs, "get", key, max, &obj,
                                      info != NULL);

  if (fd == -1)
    goto err;
  buf = malloc (obj.size + 1);
  if (buf == NULL) {
    err_set (errno, "get %s: malloc: %m", key);
    goto err;
  }
  if (full_pread (fd, buf, obj.size, 0, key) == -1) {
    free (buf);
    goto err;
  }
  buf[obj.size] = '\0';
  *data = buf;
  *len = obj.size;
  if (info)
    *info = obj;
  store_count (s, 1, obj.size, 0);
  return 0;
 err:
  store_count (s, 1, 0, 0);
  return -1;
}

/* Hand LEN bytes at OFFSET of open object FD (KEY) to FN, read in pieces
 * of STORE_STREAM_PIECE bytes into one buffer.  0, -1, or FN's return.
 */
static int
stream_fd (struct store *s, int fd, const char *key, uint64_t offset,
           uint64_t len, store_stream_fn fn, void *opaque)
{
  CLEANUP_FREE char *buf =
    malloc (len < STORE_STREAM_PIECE ? len + 1 : STORE_STREAM_PIECE);
  uint64_t done = 0;
  int r = 0;

  if (buf == NULL)
    r = err_set (errno, "get %s: malloc: %m", key);
  while (r == 0 && done < len) {
    size_t n = len - done < STORE_STREAM_PIECE ? len - done
      : STORE_STREAM_PIECE;

    if (full_pread (fd, buf, n, offset + done, key) == -1)
      r = -1;
    else {
      done += n;
      r = fn (opaque, buf, n);
    }
  }
  store_count (s, 1, done, 0);
  return r;
}

/* The object is read up to the size it had when it was opened: a file
 * that grows meanwhile gives no more, one that shrinks is a short read
 * (EIO).
 */
static int
file_get_stream (struct store *s, const char *key, size_t max,
                 store_stream_fn fn, void *opaque, struct store_obj *info)
{
  struct file_store *fs = (struct file_store *) s;
  struct store_obj obj;
  CLEANUP_CLOSE int fd = open_object (fs, "get", key, max, &obj,
                                      info != NULL);
  int r;

  if (fd == -1) {
    store_count (s, 1, 0, 0);
    return -1;
  }
  r = stream_fd (s, fd, key, 0, obj.size, fn, opaque);
  if (r == 0 && info)
    *info = obj;
  return r;
}

static int
file_get_range_stream (struct store *s, const char *key,
                       uint64_t offset, size_t len,
                       store_stream_fn fn, void *opaque)
{
  struct file_store *fs = (struct file_store *) s;
  struct store_obj obj;
  CLEANUP_CLOSE int fd = open_object (fs, "get", key, SIZE_MAX, &obj, false);
  bool inside = fd >= 0 && offset <= obj.size && len <= obj.size - offset;

  if (fd >= 0 && !inside)
    err_set (EBADMSG, "get %s [%ju+%zu]: object has only %ju bytes",
             key, (uintmax_t) offset, len, (uintmax_t) obj.size);
  if (!inside) {
    store_count (s, 1, 0, 0);
    return -1;
  }
  return stream_fd (s, fd, key, offset, len, fn, opaque);
}

static int
file_head (struct store *s, const char *key, struct store_obj *info)
{
  struct file_store *fs = (struct file_store *) s;
  CLEANUP_CLOSE int fd = open_object (fs, "head", key, SIZE_MAX, info, true);

  store_count (s, 1, 0, 0);
  return fd == -1 ? -1 : 0;
}

/* The length of the key's last component in NAME, if NAME is the
 * temporary file of an upload (TMP_PREFIX, the component, ".upload."
 * and six characters, as make_temp names it); else 0.
 */
static size_t
upload_base_len (const char *name)
{
  size_t n = strlen (name), fixed = strlen (TMP_PREFIX) + UPLOAD_SUFFIX_LEN;

  if (n <= fixed || strncmp (name, TMP_PREFIX, strlen (TMP_PREFIX)) != 0 ||
      strncmp (name + n - UPLOAD_SUFFIX_LEN, ".upload.", 8) != 0 ||
      strchr (name, '/'))
    return 0;
  return n - fixed;
}

/* Create and flock a temporary file for OP ("put" or "upload") of KEY,
 * named TMP_PREFIX, KEY's last component, ".", OP, "." and six random
 * characters, in KEY's directory, creating the directories on the way.
 * Returns the fd, with the directory's fd in *DIR and the file's name in
 * *NAME; or -1.
 */
static int
make_temp (struct file_store *fs, const char *op, const char *key,
           int *dir, char **name)
{
  for (int tries = 0; tries < 5; tries++) {
    const char *base;
    CLEANUP_CLOSE int d = open_dir_of (fs, key, true, &base);
    int fd;

    if (d == -1)
      return key_error (op, key);
    *name = str_printf (TMP_PREFIX "%s.%s.XXXXXX", base, op);
    if (*name == NULL)
      return -1;
    fd = beneath_mkstemp (d, *name, fs->file_mode);
    if (fd >= 0) {
      /* A sweep leaves new files alone, so this does not wait. */
      if (flock (fd, LOCK_EX) == -1) {
        err_set (errno, "%s %s: lock %s: %m", op, key, *name);
        unlinkat (d, *name, 0);
        close (fd);
        goto err;
      }
      *dir = d;
      d = -1;
      return fd;
    }
    /* ENOENT: a delete removed the directory since we opened it. */
    if (errno != ENOENT) {
      err_set (errno, "%s %s: create a temporary file: %m", op, key);
      goto err;
    }
    free (*name);
    *name = NULL;
  }
  err_set (ENOENT, "%s %s: its directory keeps disappearing", op, key);
 err:
  free (*name);
  *name = NULL;
  return -1;
}

/* Rename the temporary file NAME in directory DIR over KEY holding the
 * bucket lock, after checking COND.  Ensures the rename is durable.
 */
static int
commit_temp (struct file_store *fs, int dir, const char *name,
             const char *key, enum store_cond cond, const char *etag)
{
  const char *slash = strrchr (key, '/');
  const char *base = slash ? slash + 1 : key;
  CLEANUP_CLOSE int lockfd =
    beneath_open (fs->root, ".lock", O_RDWR | O_CREAT, 0600);

  if (lockfd == -1)
    return err_set (errno, "put %s: open .lock: %m", key);
  if (flock (lockfd, LOCK_EX) == -1)
    return err_set (errno, "put %s: lock .lock: %m", key);
  if (refuse_link (dir, base) == -1)
    return key_error ("put", key);
  if (cond != STORE_PUT_ANY) {
    struct store_obj cur;
    CLEANUP_CLOSE int fd =
      open_object (fs, "put", key, SIZE_MAX, &cur,
                   cond == STORE_PUT_IF_MATCH);

    if (fd == -1 && err_errno () != ENOENT)
      return -1;
    if (cond == STORE_PUT_IF_ABSENT && fd >= 0)
      return err_set (ESTALE, "put %s: the object already exists", key);
    if (cond == STORE_PUT_IF_MATCH && (fd < 0 || strcmp (cur.etag, etag)))
      return err_set (ESTALE, "put %s: the object changed (expected etag %s)",
                      key, etag);
  }
  if (renameat (dir, name, dir, base) == -1)
    return err_set (errno, "put %s: rename %s: %m", key, name);
  if (fsync (dir) == -1)
    return err_set (errno, "put %s: fsync its directory: %m", key);
  return 0;                     /* closing LOCKFD releases the flock */
}

static int
file_put (struct store *s, const char *key, const void *data, size_t len,
          enum store_cond cond, const char *etag, struct store_obj *info)
{
  struct file_store *fs = (struct file_store *) s;
  CLEANUP_CLOSE int dir = -1;
  CLEANUP_FREE char *name = NULL;
  /* Closed (unlocked) last, after the rename or unlink. */
  CLEANUP_CLOSE int fd = make_temp (fs, "put", key, &dir, &name);
  struct stat st;

  if (fd == -1)
    goto err;
  if (full_pwrite (fd, data, len, 0, key) == -1 ||
      (fsync (fd) == -1 && err_set (errno, "put %s: fsync: %m", key)) ||
      (info && ((fstat (fd, &st) == -1 &&
                 err_set (errno, "put %s: fstat: %m", key)) ||
                etag_of (fd, &st, key, info->etag) == -1)) ||
      commit_temp (fs, dir, name, key, cond, etag) == -1) {
    unlinkat (dir, name, 0);
    goto err;
  }
  if (info)
    info->size = len;
  store_count (s, 1, 0, len);
  return 0;

 err:
  store_count (s, 1, 0, 0);
  return -1;
}

/* Remove the directories that deleting KEY left empty, deepest first,
 * stopping at the first that is not empty (or cannot be removed).
 */
static void
remove_empty_dirs (struct file_store *fs, const char *key)
{
  CLEANUP_FREE char *path = strdup (key);
  char *slash;

  while (path && (slash = strrchr (path, '/')) != NULL) {
    const char *base;
    CLEANUP_CLOSE int dir = -1;

    *slash = '\0';
    dir = open_dir_of (fs, path, false, &base);
    if (dir == -1 || unlinkat (dir, base, AT_REMOVEDIR) == -1)
      break;
  }
}

static int
file_delete (struct store *s, const char *key)
{
  struct file_store *fs = (struct file_store *) s;
  const char *base;
  CLEANUP_CLOSE int dir = open_dir_of (fs, key, false, &base);

  if (dir == -1 && errno != ENOENT && errno != ENOTDIR)
    goto err;
  if (dir >= 0) {
    if (refuse_link (dir, base) == -1 ||
        (unlinkat (dir, base, 0) == -1 && errno != ENOENT))
      goto err;
    remove_empty_dirs (fs, key);
  }
  store_count (s, 1, 0, 0);
  return 0;
 err:
  store_count (s, 1, 0, 0);
  return key_error ("delete", key);
}

/* Listing: collect matching keys (and common prefixes), sort, report. */
struct listing {
  char **names;
  uint64_t *sizes;
  bool *is_prefix;
  size_t n, cap;
};

static int
listing_add (struct listing *l, char *name, uint64_t size, bool is_prefix)
{
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    char **names = realloc (l->names, cap * sizeof *names);
    uint64_t *sizes = names ? realloc (l->sizes, cap * sizeof *sizes) : NULL;
    bool *isp = sizes ? realloc (l->is_prefix, cap * sizeof *isp) : NULL;

    if (names) l->names = names;
    if (sizes) l->sizes = sizes;
    if (isp) l->is_prefix = isp;
    if (!isp) {
      free (name);
      return err_set (ENOMEM, "list: out of memory");
    }
    l->cap = cap;
  }
  l->names[l->n] = name;
  l->sizes[l->n] = size;
  l->is_prefix[l->n] = is_prefix;
  l->n++;
  return 0;
}

/* What a walk visits: objects, temporary files, or the temporary files
 * of uploads, each under the key of the object it will become.
 */
enum walk_files { WALK_OBJECTS, WALK_TEMPS, WALK_UPLOADS };

/* A walk of the bucket's files whose keys start with PREFIX, for a
 * listing or a sweep.  Each directory is opened beneath its parent's fd;
 * links are neither followed nor reported, and only regular files are
 * visited, as FILES says.  With DELIM, a directory past the prefix is
 * visited as a common prefix (IS_PREFIX) if it holds an object, and not
 * entered.  VISIT's non-zero return stops the walk and is returned.
 */
struct walk {
  const char *op;               /* "list", "list uploads" or "sweep" */
  const char *prefix;
  bool delim;
  enum walk_files files;
  int (*visit) (const struct walk *w, int dir, const char *name,
                const char *key, const struct stat *st, bool is_prefix);
  void *opaque;
};

static int walk_dir (const struct walk *w, int parent, const char *path,
                     const char *keydir);

static int
found_object (const struct walk *w, int dir, const char *name,
              const char *key, const struct stat *st, bool is_prefix)
{
  return 1;
}

/* A directory KEY (without the '/') met by a walk, NAME in DIR: walk it,
 * or with a delimiter past the prefix visit it as a common prefix.
 */
static int
walk_subdir (const struct walk *w, int dir, const char *name,
             const char *key, const struct stat *st)
{
  CLEANUP_FREE char *sub = str_printf ("%s/", key);
  struct walk probe = { .op = w->op, .prefix = sub, .visit = found_object };
  int r;

  if (sub == NULL)
    return -1;
  if (!w->delim || strlen (sub) <= strlen (w->prefix))
    return walk_dir (w, dir, name, sub);
  r = walk_dir (&probe, dir, name, sub);
  return r == 1 ? w->visit (w, dir, name, sub, st, true) : r;
}

/* Walk directory PATH beneath PARENT, whose keys start with KEYDIR (""
 * or ending in '/').
 */
static int
walk_dir (const struct walk *w, int parent, const char *path,
          const char *keydir)
{
  size_t plen = strlen (w->prefix);
  int fd = beneath_open (parent, path, O_RDONLY | O_DIRECTORY, 0);
  struct dirent *e;
  DIR *d;
  int r = 0;

  if (fd == -1)
    return errno == ENOENT || errno == ENOTDIR ? 0
      : key_error (w->op, w->prefix);
  d = fdopendir (fd);
  if (d == NULL) {
    err_set (errno, "%s %s: %m", w->op, w->prefix);
    close (fd);
    return -1;
  }
  while (r == 0 && (errno = 0, e = readdir (d)) != NULL) {
    bool temp = strncmp (e->d_name, TMP_PREFIX, strlen (TMP_PREFIX)) == 0;
    size_t base = temp ? upload_base_len (e->d_name) : 0;
    CLEANUP_FREE char *key = NULL;
    size_t klen;
    struct stat st;

    /* ".", "..", ".lock" and temporary files are not objects; a put's
     * temporary file is no upload.
     */
    if ((e->d_name[0] == '.' && !(w->files != WALK_OBJECTS && temp)) ||
        (w->files == WALK_UPLOADS && temp && base == 0))
      continue;
    /* An upload's file goes by the key it is for. */
    key = w->files == WALK_UPLOADS && temp
      ? str_printf ("%s%.*s", keydir, (int) base,
                    e->d_name + strlen (TMP_PREFIX))
      : str_printf ("%s%s", keydir, e->d_name);
    if (key == NULL) {
      r = -1;
      break;
    }
    /* Skip names that cannot match: PREFIX must be a prefix of KEY, or
     * (for a directory) KEY/ a prefix of PREFIX.  A name that vanished
     * since readdir is skipped too.
     */
    klen = strlen (key);
    if (strncmp (key, w->prefix, klen < plen ? klen : plen) != 0 ||
        fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
      continue;
    if (S_ISDIR (st.st_mode) && !temp)
      r = walk_subdir (w, dirfd (d), e->d_name, key, &st);
    else if (S_ISREG (st.st_mode) && temp == (w->files != WALK_OBJECTS) &&
             klen >= plen)
      r = w->visit (w, dirfd (d), e->d_name, key, &st, false);
    /* Anything else, a link above all, is not an object. */
  }
  if (r == 0 && errno != 0)
    r = err_set (errno, "%s %s: %m", w->op, w->prefix);
  closedir (d);
  return r;
}

/* Walk from the directory part of W's prefix. */
static int
walk_prefix (struct file_store *fs, const struct walk *w)
{
  const char *slash = strrchr (w->prefix, '/');
  size_t n = slash ? slash - w->prefix : 0;
  CLEANUP_FREE char *path = strndup (w->prefix, n);
  CLEANUP_FREE char *keydir = strndup (w->prefix, slash ? n + 1 : 0);

  if (path == NULL || keydir == NULL)
    return err_set (ENOMEM, "%s %s: out of memory", w->op, w->prefix);
  return walk_dir (w, fs->root, path, keydir);
}

static int
list_visit (const struct walk *w, int dir, const char *name,
            const char *key, const struct stat *st, bool is_prefix)
{
  char *copy = strdup (key);

  if (copy == NULL)
    return err_set (ENOMEM, "list: out of memory");
  return listing_add (w->opaque, copy, is_prefix ? 0 : st->st_size,
                      is_prefix);
}

static int
compare_names (const void *a, const void *b, void *names)
{
  char **n = names;

  return strcmp (n[*(const size_t *) a], n[*(const size_t *) b]);
}

static int
file_list (struct store *s, const char *prefix, const char *delimiter,
           store_list_fn fn, void *opaque)
{
  struct file_store *fs = (struct file_store *) s;
  struct listing l = { 0 };
  struct walk w = { .op = "list", .prefix = prefix,
                    .delim = delimiter != NULL, .visit = list_visit,
                    .opaque = &l };
  CLEANUP_FREE size_t *order = NULL;
  int r = walk_prefix (fs, &w);

  if (r == 0 && l.n > 0) {
    order = malloc (l.n * sizeof *order);
    if (order == NULL)
      r = err_set (errno, "malloc: %m");
  }
  if (r == 0 && l.n > 0) {
    for (size_t i = 0; i < l.n; i++)
      order[i] = i;
    qsort_r (order, l.n, sizeof *order, compare_names, l.names);
    for (size_t i = 0; r == 0 && i < l.n; i++)
      r = fn (opaque, l.names[order[i]], l.sizes[order[i]],
              l.is_prefix[order[i]]);
  }
  for (size_t i = 0; i < l.n; i++)
    free (l.names[i]);
  free (l.names);
  free (l.sizes);
  free (l.is_prefix);
  store_count (s, 1, 0, 0);
  return r;
}

/* Remove temporary file NAME in DIR if its writer is gone: it is older
 * than the grace (*W->opaque is the cutoff) and nobody holds its flock.
 */
static int
sweep_visit (const struct walk *w, int dir, const char *name,
             const char *key, const struct stat *st, bool is_prefix)
{
  const time_t *cutoff = w->opaque;
  CLEANUP_CLOSE int fd = -1;
  struct stat now;

  if (st->st_mtime > *cutoff)
    return 0;
  fd = openat (dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd == -1)
    return errno == ENOENT ? 0 : key_error ("sweep", key);
  if (flock (fd, LOCK_EX | LOCK_NB) == -1)
    return errno == EWOULDBLOCK ? 0 : key_error ("sweep", key);
  if (fstat (fd, &now) == -1)
    return key_error ("sweep", key);
  /* Another file by that name since the walk saw it: not the old one. */
  if (now.st_ino != st->st_ino || now.st_dev != st->st_dev)
    return 0;
  if (unlinkat (dir, name, 0) == -1 && errno != ENOENT)
    return key_error ("sweep", key);
  log_info ("file store: removed %s, left by a writer that is gone", key);
  return 0;
}

static int
file_sweep_temps (struct store *s, const char *prefix)
{
  struct file_store *fs = (struct file_store *) s;
  time_t cutoff = time (NULL) - TEMP_GRACE;
  struct walk w = { .op = "sweep", .prefix = prefix, .files = WALK_TEMPS,
                    .visit = sweep_visit, .opaque = &cutoff };
  int r = walk_prefix (fs, &w);

  store_count (s, 1, 0, 0);
  return r;
}

static void
upload_free (struct file_upload *fu)
{
  if (fu->direct >= 0)
    close (fu->direct);
  if (fu->fd >= 0)
    close (fu->fd);
  if (fu->dir >= 0)
    close (fu->dir);
  free (fu->u.key);
  free (fu->u.id);
  free (fu);
}

/* A second descriptor of the file open as FD, written with O_DIRECT; or
 * -1 if the file system refuses it (no error: parts then go through the
 * page cache).  Reopened through /proc, so that it is FD's file whatever
 * has happened to its name since.
 */
static int
reopen_direct (int fd)
{
  char path[64];

  snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
  return open (path, O_WRONLY | O_DIRECT | O_CLOEXEC);
}

static struct store_upload *
file_upload_begin (struct store *s, const char *key)
{
  struct file_store *fs = (struct file_store *) s;
  struct file_upload *fu = calloc (1, sizeof *fu);

  if (fu == NULL) {
    err_set (errno, "upload %s: calloc: %m", key);
    return NULL;
  }
  fu->u.st = s;
  fu->dir = fu->fd = fu->direct = -1;
  fu->u.key = strdup (key);
  if (fu->u.key == NULL)
    err_set (ENOMEM, "upload %s: out of memory", key);
  else
    fu->fd = make_temp (fs, "upload", key, &fu->dir, &fu->u.id);
  if (fu->fd == -1) {
    upload_free (fu);
    return NULL;
  }
  fu->direct = reopen_direct (fu->fd);
  return &fu->u;
}

static int
file_upload_part (struct store_upload *u, unsigned partno,
                  uint64_t offset, const void *data, size_t len,
                  const unsigned char *sha256 __attribute__ ((__unused__)))
{
  struct file_upload *fu = (struct file_upload *) u;
  bool direct = fu->direct >= 0 &&
    ((uintptr_t) data | offset | len) % DIRECT_ALIGN == 0;
  int r = full_pwrite (direct ? fu->direct : fu->fd, data, len, offset,
                       u->key);

  /* A file system may take O_DIRECT at open and refuse it on write. */
  if (r == -1 && direct && errno == EINVAL) {
    direct = false;
    r = full_pwrite (fu->fd, data, len, offset, u->key);
  }
  /* Start writing the part back now, so that the fsync at complete has
   * little left to wait for.  Only a hint: that fsync reports errors.
   */
  if (r == 0 && !direct)
    (void) sync_file_range (fu->fd, offset, len, SYNC_FILE_RANGE_WRITE);

  store_count (u->st, 1, 0, r == 0 ? len : 0);
  return r;
}

static void
file_upload_abort (struct store_upload *u)
{
  struct file_upload *fu = (struct file_upload *) u;

  unlinkat (fu->dir, u->id, 0);
  upload_free (fu);
}

static int
file_upload_complete (struct store_upload *u)
{
  struct file_upload *fu = (struct file_upload *) u;
  struct file_store *fs = (struct file_store *) u->st;

  if (fsync (fu->fd) == -1) {
    err_set (errno, "complete upload of %s: fsync: %m", u->key);
    goto err;
  }
  if (commit_temp (fs, fu->dir, u->id, u->key, STORE_PUT_ANY, NULL) == -1)
    goto err;
  store_count (u->st, 1, 0, 0);
  upload_free (fu);
  return 0;
 err:
  store_count (u->st, 1, 0, 0);
  file_upload_abort (u);
  return -1;
}

static int
file_upload_abort_id (struct store *s, const char *key, const char *id)
{
  struct file_store *fs = (struct file_store *) s;
  const char *base;
  CLEANUP_CLOSE int dir = open_dir_of (fs, key, false, &base);
  size_t blen = strlen (base);

  /* The id is the temporary file's name: TMP_PREFIX base ".upload.XXXXXX". */
  if (upload_base_len (id) != blen ||
      strncmp (id + strlen (TMP_PREFIX), base, blen) != 0)
    return err_set (EINVAL, "abort upload of %s: invalid upload id", key);
  if (dir == -1)
    return errno == ENOENT || errno == ENOTDIR ? 0
      : key_error ("abort upload of", key);
  if (unlinkat (dir, id, 0) == -1 && errno != ENOENT)
    return key_error ("abort upload of", key);
  return 0;
}

/* Where file_list_uploads reports. */
struct uploads_walk {
  store_uploads_fn fn;
  void *opaque;
};

/* Report the upload of KEY whose temporary file is NAME (its id). */
static int
uploads_visit (const struct walk *w, int dir, const char *name,
               const char *key, const struct stat *st, bool is_prefix)
{
  const struct uploads_walk *u = w->opaque;

  return u->fn (u->opaque, key, name, (uint64_t) st->st_mtim.tv_sec * 1000 +
                st->st_mtim.tv_nsec / 1000000);
}

/* An upload in progress is its temporary file, of its writer or left by
 * one that died; its mtime is the last part written.
 */
static int
file_list_uploads (struct store *s, const char *prefix,
                   store_uploads_fn fn, void *opaque)
{
  struct file_store *fs = (struct file_store *) s;
  struct uploads_walk u = { .fn = fn, .opaque = opaque };
  struct walk w = { .op = "list uploads", .prefix = prefix,
                    .files = WALK_UPLOADS, .visit = uploads_visit,
                    .opaque = &u };
  int r = walk_prefix (fs, &w);

  store_count (s, 1, 0, 0);
  return r;
}

static void
file_close (struct store *s)
{
  struct file_store *fs = (struct file_store *) s;

  close (fs->root);
  free (fs->s.describe);
  free (fs);
}

static const struct store_ops file_ops = {
  .get = file_get,
  .get_stream = file_get_stream,
  .get_range_stream = file_get_range_stream,
  .head = file_head,
  .put = file_put,
  .delete = file_delete,
  .list = file_list,
  .sweep_temps = file_sweep_temps,
  .upload_begin = file_upload_begin,
  .upload_part = file_upload_part,
  .upload_complete = file_upload_complete,
  .upload_abort = file_upload_abort,
  .upload_abort_id = file_upload_abort_id,
  .list_uploads = file_list_uploads,
  .close = file_close,
};

struct store *
store_file_open (const struct store_config *cfg)
{
  mode_t file_mode = cfg->file_mode;
  mode_t dir_mode = file_mode | (file_mode & 0444) >> 2; /* x where r is */
  CLEANUP_FREE char *real = NULL;
  struct file_store *fs;

  if (cfg->bucket[0] != '/') {
    err_set (EINVAL, "file store: bucket %s must be an absolute directory",
             cfg->bucket);
    return NULL;
  }
  if ((file_mode & ~0777) != 0 || (file_mode & 0600) != 0600) {
    err_set (EINVAL, "file store: file mode %04o must give the owner read "
             "and write, and set no bits beyond 0777", (unsigned) file_mode);
    return NULL;
  }
  if (mkdir_p (cfg->bucket, dir_mode) == -1)
    return NULL;
  real = realpath (cfg->bucket, NULL);
  if (real == NULL) {
    err_set (errno, "file store: %s: %m", cfg->bucket);
    return NULL;
  }
  fs = calloc (1, sizeof *fs);
  if (fs == NULL) {
    err_set (ENOMEM, "file store: out of memory");
    return NULL;
  }
  fs->s.ops = &file_ops;
  fs->file_mode = file_mode;
  fs->dir_mode = dir_mode;
  fs->root = open (real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fs->root == -1) {
    err_set (errno, "file store: open %s: %m", real);
    free (fs);
    return NULL;
  }
  fs->s.describe = str_printf ("file://%s", real);
  if (fs->s.describe == NULL) {
    file_close (&fs->s);
    return NULL;
  }
  return &fs->s;
}
