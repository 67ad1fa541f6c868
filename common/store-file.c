/* lazyvol: a local directory as the object store ("file" backend).
 *
 * Object key K is the file DIR/K, so the layout can be read with ls and
 * cat.  Puts are atomic and durable: the bytes go to a temporary file in
 * the same directory (named ".tmp.*", which listings skip), are fsynced,
 * renamed over K, and the directory is fsynced.  A reader never sees half
 * an object; after a crash there is the old object or the new one.
 *
 * A multipart upload writes each part at its offset in one temporary
 * file and starts the part's writeback at once (sync_file_range), so the
 * fsync at complete mostly waits for writes already under way; complete
 * renames the file to its key as a put does.
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
#include <unistd.h>

#include <openssl/evp.h>

#include "err.h"
#include "store-impl.h"
#include "util.h"

#define TMP_PREFIX ".tmp."
#define ETAG_HASH_MAX (1024 * 1024)

struct file_store {
  struct store s;
  char *root;                   /* absolute directory, no trailing slash */
};

struct file_upload {
  struct store_upload u;
  int fd;
  char *tmp;                    /* full path of the temporary file */
};

static char *
path_of (struct file_store *fs, const char *key)
{
  return xasprintf ("%s/%s", fs->root, key);
}

/* The directory part of PATH (malloc'd). */
static char *
dir_of (const char *path)
{
  const char *slash = strrchr (path, '/');

  return strndup (path, slash - path);
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

/* Open KEY for reading and fill INFO.  -1 with ENOENT if missing. */
static int
open_object (struct file_store *fs, const char *key, struct store_obj *info,
             bool want_etag)
{
  CLEANUP_FREE char *path = path_of (fs, key);
  struct stat st;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd == -1) {
    if (errno == ENOTDIR)
      errno = ENOENT;
    return err_set (errno, "open %s: %m", path);
  }
  if (fstat (fd, &st) == -1 || !S_ISREG (st.st_mode)) {
    err_set (S_ISDIR (st.st_mode) ? ENOENT : errno, "open %s: %s", path,
             S_ISDIR (st.st_mode) ? "not an object" : strerror (errno));
    close (fd);
    return -1;
  }
  if (info) {
    info->size = st.st_size;
    info->etag[0] = '\0';
    if (want_etag && etag_of (fd, &st, path, info->etag) == -1) {
      close (fd);
      return -1;
    }
  }
  return fd;
}

static int
file_get (struct store *s, const char *key, size_t max,
          char **data, size_t *len, struct store_obj *info)
{
  struct file_store *fs = (struct file_store *) s;
  struct store_obj obj;
  char *buf;
  int fd = open_object (fs, key, &obj, info != NULL);

  if (fd == -1)
    goto err;
  if (obj.size > max) {
    close (fd);
    err_set (EFBIG, "get %s: %ju bytes is larger than the limit of %zu",
             key, (uintmax_t) obj.size, max);
    goto err;
  }
  buf = malloc (obj.size + 1);
  if (buf == NULL || full_pread (fd, buf, obj.size, 0, key) == -1) {
    if (buf == NULL)
      err_set (errno, "malloc: %m");
    free (buf);
    close (fd);
    goto err;
  }
  close (fd);
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

static int
file_get_range (struct store *s, const char *key,
                uint64_t offset, size_t len, void *buf)
{
  struct file_store *fs = (struct file_store *) s;
  struct store_obj obj;
  int fd = open_object (fs, key, &obj, false);
  int r = -1;

  if (fd == -1)
    goto out;
  if (offset > obj.size || len > obj.size - offset)
    err_set (EBADMSG, "get %s [%ju+%zu]: object has only %ju bytes",
             key, (uintmax_t) offset, len, (uintmax_t) obj.size);
  else
    r = full_pread (fd, buf, len, offset, key);
  close (fd);
 out:
  store_count (s, 1, r == 0 ? len : 0, 0);
  return r;
}

static int
file_head (struct store *s, const char *key, struct store_obj *info)
{
  struct file_store *fs = (struct file_store *) s;
  int fd = open_object (fs, key, info, true);

  store_count (s, 1, 0, 0);
  if (fd == -1)
    return -1;
  close (fd);
  return 0;
}

/* Create a temporary file next to PATH, creating the directories on the
 * way.  Returns the fd and sets *TMP, or -1.
 */
static int
make_temp (struct file_store *fs, const char *path, const char *tag,
           char **tmp)
{
  CLEANUP_FREE char *dir = dir_of (path);
  const char *base = strrchr (path, '/') + 1;

  for (int tries = 0; tries < 5; tries++) {
    int fd;

    *tmp = xasprintf ("%s/" TMP_PREFIX "%s.%sXXXXXX", dir, base, tag);
    fd = mkostemp (*tmp, O_CLOEXEC);
    if (fd >= 0) {
      fchmod (fd, 0644);
      return fd;
    }
    free (*tmp);
    *tmp = NULL;
    /* ENOENT: the directory is missing, or a delete just removed it. */
    if (errno != ENOENT)
      break;
    if (mkdir_p (dir, 0755) == -1)
      return -1;
  }
  return err_set (errno, "create temporary file in %s: %m", dir);
}

/* Rename TMP over PATH holding the bucket lock, after checking COND.
 * Ensures the rename is durable.
 */
static int
commit_temp (struct file_store *fs, const char *tmp, const char *path,
             const char *key, enum store_cond cond, const char *etag)
{
  CLEANUP_FREE char *lockpath = xasprintf ("%s/.lock", fs->root);
  CLEANUP_FREE char *dir = dir_of (path);
  int lockfd, r = -1;

  lockfd = open (lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lockfd == -1)
    return err_set (errno, "open %s: %m", lockpath);
  if (flock (lockfd, LOCK_EX) == -1) {
    err_set (errno, "lock %s: %m", lockpath);
    goto out;
  }
  if (cond != STORE_PUT_ANY) {
    struct store_obj cur;
    int fd = open_object (fs, key, &cur, cond == STORE_PUT_IF_MATCH);

    if (fd >= 0)
      close (fd);
    else if (errno != ENOENT)
      goto out;
    if (cond == STORE_PUT_IF_ABSENT && fd >= 0) {
      err_set (ESTALE, "put %s: the object already exists", key);
      goto out;
    }
    if (cond == STORE_PUT_IF_MATCH && (fd < 0 || strcmp (cur.etag, etag))) {
      err_set (ESTALE, "put %s: the object changed (expected etag %s)",
               key, etag);
      goto out;
    }
  }
  if (rename (tmp, path) == -1) {
    err_set (errno, "rename %s to %s: %m", tmp, path);
    goto out;
  }
  r = fsync_dir (dir);
 out:
  close (lockfd);               /* releases the flock */
  return r;
}

static int
file_put (struct store *s, const char *key, const void *data, size_t len,
          enum store_cond cond, const char *etag, struct store_obj *info)
{
  struct file_store *fs = (struct file_store *) s;
  CLEANUP_FREE char *path = path_of (fs, key);
  CLEANUP_FREE char *tmp = NULL;
  struct stat st;
  int fd = make_temp (fs, path, "", &tmp);

  if (fd == -1)
    goto err;
  if (full_pwrite (fd, data, len, 0, tmp) == -1 ||
      (fsync (fd) == -1 && err_set (errno, "fsync %s: %m", tmp)) ||
      (info && (fstat (fd, &st) == -1 ||
                etag_of (fd, &st, tmp, info->etag) == -1))) {
    close (fd);
    goto err_unlink;
  }
  close (fd);
  if (commit_temp (fs, tmp, path, key, cond, etag) == -1)
    goto err_unlink;
  if (info)
    info->size = len;
  store_count (s, 1, 0, len);
  return 0;

 err_unlink:
  unlink (tmp);
 err:
  store_count (s, 1, 0, 0);
  return -1;
}

static int
file_delete (struct store *s, const char *key)
{
  struct file_store *fs = (struct file_store *) s;
  CLEANUP_FREE char *path = path_of (fs, key);
  char *slash;

  if (unlink (path) == -1 && errno != ENOENT && errno != ENOTDIR) {
    store_count (s, 1, 0, 0);
    return err_set (errno, "delete %s: %m", path);
  }
  /* Remove the directories this leaves empty, up to the root. */
  while ((slash = strrchr (path, '/')) && slash > path + strlen (fs->root)) {
    *slash = '\0';
    if (rmdir (path) == -1)
      break;
  }
  store_count (s, 1, 0, 0);
  return 0;
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

/* Does directory PATH hold at least one object (recursively)? */
static bool
dir_has_objects (const char *path)
{
  DIR *d = opendir (path);
  struct dirent *e;
  bool found = false;

  if (d == NULL)
    return false;
  while (!found && (e = readdir (d)) != NULL) {
    CLEANUP_FREE char *sub = NULL;
    if (e->d_name[0] == '.')
      continue;
    sub = xasprintf ("%s/%s", path, e->d_name);
    if (e->d_type == DT_DIR)
      found = dir_has_objects (sub);
    else
      found = true;
  }
  closedir (d);
  return found;
}

/* Walk directory KEYDIR (a key prefix ending in '/' or ""), adding keys
 * that start with PREFIX.  With DELIM, subdirectories become prefixes.
 */
static int
walk (struct file_store *fs, const char *keydir, const char *prefix,
      bool delim, struct listing *l)
{
  CLEANUP_FREE char *path = xasprintf ("%s/%s", fs->root, keydir);
  size_t plen = strlen (prefix), klen = strlen (keydir);
  DIR *d = opendir (path);
  struct dirent *e;
  int r = 0;

  if (d == NULL) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 0;
    return err_set (errno, "list %s: %m", path);
  }
  while (r == 0 && (errno = 0, e = readdir (d)) != NULL) {
    char *key;
    struct stat st;

    if (e->d_name[0] == '.')    /* ., .., .lock and temporary files */
      continue;
    key = xasprintf ("%s%s", keydir, e->d_name);
    /* Skip names that cannot match: PREFIX must be a prefix of KEY, or
     * (for a directory) KEY/ a prefix of PREFIX.
     */
    if (strncmp (key, prefix, klen + strlen (e->d_name) < plen
                 ? klen + strlen (e->d_name) : plen) != 0 ||
        fstatat (dirfd (d), e->d_name, &st, 0) == -1) {
      free (key);
      continue;
    }
    if (S_ISDIR (st.st_mode)) {
      CLEANUP_FREE char *sub = xasprintf ("%s/", key);
      free (key);
      if (delim && strlen (sub) > plen) {
        CLEANUP_FREE char *full = xasprintf ("%s/%s", fs->root, sub);
        if (dir_has_objects (full)) {
          r = listing_add (l, sub, 0, true);
          sub = NULL;
        }
      }
      else
        r = walk (fs, sub, prefix, delim, l);
    }
    else if (S_ISREG (st.st_mode) && strlen (key) >= plen)
      r = listing_add (l, key, st.st_size, false);
    else
      free (key);
  }
  if (r == 0 && errno != 0)
    r = err_set (errno, "list %s: %m", path);
  closedir (d);
  return r;
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
  CLEANUP_FREE char *keydir = strdup (prefix);
  CLEANUP_FREE size_t *order = NULL;
  char *slash = keydir ? strrchr (keydir, '/') : NULL;
  int r;

  if (keydir == NULL)
    return err_set (errno, "strdup: %m");
  if (slash)
    slash[1] = '\0';
  else
    keydir[0] = '\0';
  r = walk (fs, keydir, prefix, delimiter != NULL, &l);
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

static void upload_free (struct file_upload *fu);

static struct store_upload *
file_upload_begin (struct store *s, const char *key)
{
  struct file_store *fs = (struct file_store *) s;
  CLEANUP_FREE char *path = path_of (fs, key);
  struct file_upload *fu = calloc (1, sizeof *fu);

  if (fu == NULL) {
    err_set (errno, "calloc: %m");
    return NULL;
  }
  fu->u.st = s;
  fu->fd = make_temp (fs, path, "upload.", &fu->tmp);
  if (fu->fd == -1) {
    upload_free (fu);
    return NULL;
  }
  fu->u.key = strdup (key);
  fu->u.id = strdup (strrchr (fu->tmp, '/') + 1);
  if (fu->u.key == NULL || fu->u.id == NULL) {
    err_set (ENOMEM, "upload %s: out of memory", key);
    unlink (fu->tmp);
    upload_free (fu);
    return NULL;
  }
  return &fu->u;
}

static int
file_upload_part (struct store_upload *u, unsigned partno,
                  uint64_t offset, const void *data, size_t len)
{
  struct file_upload *fu = (struct file_upload *) u;
  int r = full_pwrite (fu->fd, data, len, offset, fu->tmp);

  /* Start writing the part back now, so that the fsync at complete has
   * little left to wait for.  Only a hint: that fsync reports errors.
   */
  if (r == 0)
    (void) sync_file_range (fu->fd, offset, len, SYNC_FILE_RANGE_WRITE);

  store_count (u->st, 1, 0, r == 0 ? len : 0);
  return r;
}

static void
upload_free (struct file_upload *fu)
{
  if (fu->fd >= 0)
    close (fu->fd);
  free (fu->u.key);
  free (fu->u.id);
  free (fu->tmp);
  free (fu);
}

static void
file_upload_abort (struct store_upload *u)
{
  struct file_upload *fu = (struct file_upload *) u;

  unlink (fu->tmp);
  upload_free (fu);
}

static int
file_upload_complete (struct store_upload *u)
{
  struct file_upload *fu = (struct file_upload *) u;
  struct file_store *fs = (struct file_store *) u->st;
  CLEANUP_FREE char *path = path_of (fs, u->key);

  if (fsync (fu->fd) == -1) {
    err_set (errno, "fsync %s: %m", fu->tmp);
    goto err;
  }
  if (commit_temp (fs, fu->tmp, path, u->key, STORE_PUT_ANY, NULL) == -1)
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
  CLEANUP_FREE char *path = path_of (fs, key);
  CLEANUP_FREE char *dir = dir_of (path);
  CLEANUP_FREE char *tmp = NULL;
  const char *base = strrchr (path, '/') + 1;
  size_t blen = strlen (base);

  /* The id is the temporary file's name: TMP_PREFIX base ".upload.XXXXXX". */
  if (strncmp (id, TMP_PREFIX, strlen (TMP_PREFIX)) != 0 ||
      strncmp (id + strlen (TMP_PREFIX), base, blen) != 0 ||
      strncmp (id + strlen (TMP_PREFIX) + blen, ".upload.", 8) != 0 ||
      strlen (id + strlen (TMP_PREFIX) + blen + 8) != 6 || strchr (id, '/'))
    return err_set (EINVAL, "abort upload of %s: invalid upload id", key);
  tmp = xasprintf ("%s/%s", dir, id);
  if (unlink (tmp) == -1 && errno != ENOENT)
    return err_set (errno, "abort upload %s: %m", tmp);
  return 0;
}

static void
file_close (struct store *s)
{
  struct file_store *fs = (struct file_store *) s;

  free (fs->root);
  free (fs->s.describe);
  free (fs);
}

static const struct store_ops file_ops = {
  .get = file_get,
  .get_range = file_get_range,
  .head = file_head,
  .put = file_put,
  .delete = file_delete,
  .list = file_list,
  .upload_begin = file_upload_begin,
  .upload_part = file_upload_part,
  .upload_complete = file_upload_complete,
  .upload_abort = file_upload_abort,
  .upload_abort_id = file_upload_abort_id,
  .close = file_close,
};

struct store *
store_file_open (const struct store_config *cfg)
{
  struct file_store *fs;
  struct stat st;
  size_t n;

  if (cfg->bucket[0] != '/') {
    err_set (EINVAL, "file store: bucket %s must be an absolute directory",
             cfg->bucket);
    return NULL;
  }
  if (mkdir_p (cfg->bucket, 0755) == -1)
    return NULL;
  if (stat (cfg->bucket, &st) == -1 || !S_ISDIR (st.st_mode)) {
    err_set (ENOTDIR, "file store: %s is not a directory", cfg->bucket);
    return NULL;
  }
  fs = calloc (1, sizeof *fs);
  if (fs == NULL || (fs->root = strdup (cfg->bucket)) == NULL) {
    free (fs);
    err_set (ENOMEM, "file store: out of memory");
    return NULL;
  }
  n = strlen (fs->root);
  while (n > 1 && fs->root[n - 1] == '/')
    fs->root[--n] = '\0';
  fs->s.ops = &file_ops;
  fs->s.describe = xasprintf ("file://%s", fs->root);
  return &fs->s;
}
