/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* store-tool: drive the object-store interface (common/store.h) from the
 * shell, so tests can exercise every backend the same way.
 *
 *   store-tool [--backend file|s3|r2] --bucket B [--endpoint-url URL]
 *              [--region R] [--r2-account-id ID] [--addressing path|virtual]
 *              [--retries N] [--timeout SECS|Ns|Nms] COMMAND ARGS...
 *
 *   get KEY [MAX]               object (of at most MAX bytes) to stdout
 *   get-stream KEY [MAX]        the same, received piece by piece; each
 *                               time the store starts over, "restart
 *                               after N bytes" on stderr
 *   get-range KEY OFFSET LEN    bytes to stdout
 *   head KEY                    "SIZE ETAG"
 *   put KEY FILE [if-absent | if-match ETAG]   prints the new etag
 *   delete KEY
 *   list PREFIX [/]             "KEY SIZE" or "PREFIX/ -" per line
 *   upload KEY FILE PARTSIZE [sha256 | wrong-sha256]
 *                               multipart upload, parts in parallel; with
 *                               sha256 each part's hash is computed here
 *                               and given to the store, wrong-sha256
 *                               gives it a wrong one
 *   begin-upload KEY            start an upload, print its id, leave it
 *   abort-upload KEY ID         abort an upload known by its id
 *   list-uploads PREFIX         "KEY ID INITIATED-MS" per upload in progress
 *   sweep-temps PREFIX          remove temporary files whose writer is gone
 *   --stats                     after the command, the counters: one line
 *                               "requests=N errors=N retries=N in=N out=N",
 *                               then "error|retry OP REASON N" per cell
 * On failure prints "store-tool: <message> [code]" and exits 1.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sigv4.h"
#include "store.h"
#include "util.h"

static struct store *st;

static int
fail (void)
{
  fprintf (stderr, "store-tool: %s [%s]\n", err_msg (), err_code (err_errno ()));
  return 1;
}

static int
print_entry (void *opaque, const char *key, uint64_t size, bool is_prefix)
{
  if (is_prefix)
    printf ("%s -\n", key);
  else
    printf ("%s %ju\n", key, (uintmax_t) size);
  return 0;
}

static int
print_upload (void *opaque, const char *key, const char *id,
              uint64_t initiated_ms)
{
  printf ("%s %s %" PRIu64 "\n", key, id, initiated_ms);
  return 0;
}

/* The body of a get-stream so far. */
struct body {
  char *data;
  size_t len, cap;
};

static int
on_piece (void *opaque, const void *buf, size_t len)
{
  struct body *b = opaque;

  if (buf == NULL) {
    fprintf (stderr, "restart after %zu bytes\n", b->len);
    b->len = 0;
    return 0;
  }
  if (b->len + len > b->cap) {
    size_t cap = 2 * (b->len + len);
    char *p = realloc (b->data, cap);
    if (p == NULL)
      return err_set (ENOMEM, "get-stream: out of memory"), 1;
    b->data = p;
    b->cap = cap;
  }
  memcpy (b->data + b->len, buf, len);
  b->len += len;
  return 0;
}

enum part_hash { HASH_NONE, HASH_RIGHT, HASH_WRONG };

struct upload_job {
  struct store_upload *up;
  const char *data;
  size_t len, partsize;
  enum part_hash hash;
  unsigned next, nparts;
  pthread_mutex_t lock;
  int failed;
};

/* The hash J gives the store for LEN bytes at DATA, into SHA: NULL for
 * none (then the store computes one), else the right one or a wrong one.
 */
static const unsigned char *
part_sha256 (const struct upload_job *j, const char *data, size_t len,
             unsigned char sha[32])
{
  char hex[65];

  if (j->hash == HASH_NONE)
    return NULL;
  if (sigv4_sha256_hex (data, len, hex) == -1 || !hex_decode (hex, sha, 32))
    return NULL;
  if (j->hash == HASH_WRONG)
    sha[31] ^= 1;
  return sha;
}

static void *
upload_worker (void *arg)
{
  struct upload_job *j = arg;

  for (;;) {
    unsigned char sha[32];
    unsigned part;
    size_t off, len;

    pthread_mutex_lock (&j->lock);
    part = j->next < j->nparts && !j->failed ? ++j->next : 0;
    pthread_mutex_unlock (&j->lock);
    if (part == 0)
      return NULL;
    off = (size_t) (part - 1) * j->partsize;
    len = j->len - off < j->partsize ? j->len - off : j->partsize;
    if (store_upload_part (j->up, part, off, j->data + off, len,
                           part_sha256 (j, j->data + off, len, sha)) == -1) {
      fail ();
      pthread_mutex_lock (&j->lock);
      j->failed = 1;
      pthread_mutex_unlock (&j->lock);
    }
  }
}

static int
do_upload (const char *key, const char *file, const char *partsize_s,
           const char *hash)
{
  struct upload_job j = { .lock = PTHREAD_MUTEX_INITIALIZER };
  CLEANUP_FREE char *data = NULL;
  pthread_t th[4];
  uint64_t ps;

  if (!parse_size (partsize_s, &ps) || ps == 0)
    return err_set (EINVAL, "bad part size %s", partsize_s), fail ();
  if (hash == NULL)
    j.hash = HASH_NONE;
  else if (strcmp (hash, "sha256") == 0)
    j.hash = HASH_RIGHT;
  else if (strcmp (hash, "wrong-sha256") == 0)
    j.hash = HASH_WRONG;
  else
    return err_set (EINVAL, "upload: bad hash option %s", hash), fail ();
  if (file_read_all (file, SIZE_MAX / 2, &data, &j.len) == -1)
    return fail ();
  j.data = data;
  j.partsize = ps;
  j.nparts = j.len ? (j.len + ps - 1) / ps : 1;
  j.up = store_upload_begin (st, key);
  if (j.up == NULL)
    return fail ();
  for (int i = 0; i < 4; i++)
    pthread_create (&th[i], NULL, upload_worker, &j);
  for (int i = 0; i < 4; i++)
    pthread_join (th[i], NULL);
  if (j.failed) {
    store_upload_abort (j.up);
    return 1;
  }
  if (store_upload_complete (j.up) == -1)
    return fail ();
  return 0;
}

static int
run (int argc, char **argv)
{
  const char *cmd = argv[0];

  if ((strcmp (cmd, "get") == 0 || strcmp (cmd, "get-stream") == 0) &&
      (argc == 2 || argc == 3)) {
    struct body b = { NULL };
    CLEANUP_FREE char *data = NULL;
    uint64_t max = SIZE_MAX / 2;
    if (argc == 3 && !parse_size (argv[2], &max))
      return err_set (EINVAL, "bad size %s", argv[2]), fail ();
    if (strcmp (cmd, "get") == 0
        ? store_get (st, argv[1], max, &data, &b.len, NULL) == -1
        : store_get_stream (st, argv[1], max, on_piece, &b, NULL) != 0)
      return free (b.data), fail ();
    fwrite (data ? data : b.data, 1, b.len, stdout);
    free (b.data);
    return 0;
  }
  if (strcmp (cmd, "get-range") == 0 && argc == 4) {
    uint64_t off, len;
    CLEANUP_FREE char *buf = NULL;
    if (!parse_size (argv[2], &off) || !parse_size (argv[3], &len))
      return err_set (EINVAL, "bad offset or length"), fail ();
    buf = malloc (len ? len : 1);
    if (store_get_range (st, argv[1], off, len, buf) == -1)
      return fail ();
    fwrite (buf, 1, len, stdout);
    return 0;
  }
  if (strcmp (cmd, "head") == 0 && argc == 2) {
    struct store_obj obj;
    if (store_head (st, argv[1], &obj) == -1)
      return fail ();
    printf ("%ju %s\n", (uintmax_t) obj.size, obj.etag);
    return 0;
  }
  if (strcmp (cmd, "put") == 0 && argc >= 3 && argc <= 5) {
    CLEANUP_FREE char *data = NULL;
    enum store_cond cond = STORE_PUT_ANY;
    const char *etag = NULL;
    struct store_obj obj;
    size_t len;
    if (argc >= 4 && strcmp (argv[3], "if-absent") == 0)
      cond = STORE_PUT_IF_ABSENT;
    else if (argc == 5 && strcmp (argv[3], "if-match") == 0) {
      cond = STORE_PUT_IF_MATCH;
      etag = argv[4];
    }
    else if (argc != 3)
      return err_set (EINVAL, "put: bad condition"), fail ();
    if (file_read_all (argv[2], SIZE_MAX / 2, &data, &len) == -1 ||
        store_put (st, argv[1], data, len, cond, etag, &obj) == -1)
      return fail ();
    printf ("%s\n", obj.etag);
    return 0;
  }
  if (strcmp (cmd, "delete") == 0 && argc == 2)
    return store_delete (st, argv[1]) == -1 ? fail () : 0;
  if (strcmp (cmd, "list") == 0 && (argc == 2 || argc == 3))
    return store_list (st, argv[1], argc == 3 ? argv[2] : NULL,
                       print_entry, NULL) == -1 ? fail () : 0;
  if (strcmp (cmd, "upload") == 0 && (argc == 4 || argc == 5))
    return do_upload (argv[1], argv[2], argv[3], argc == 5 ? argv[4] : NULL);
  if (strcmp (cmd, "begin-upload") == 0 && argc == 2) {
    /* Left open on purpose, as a crash would leave it. */
    struct store_upload *up = store_upload_begin (st, argv[1]);
    if (up == NULL)
      return fail ();
    printf ("%s\n", store_upload_id (up));
    return 0;
  }
  if (strcmp (cmd, "abort-upload") == 0 && argc == 3)
    return store_upload_abort_id (st, argv[1], argv[2]) == -1 ? fail () : 0;
  if (strcmp (cmd, "list-uploads") == 0 && argc == 2)
    return store_list_uploads (st, argv[1], print_upload, NULL) == -1
      ? fail () : 0;
  if (strcmp (cmd, "sweep-temps") == 0 && argc == 2)
    return store_sweep_temps (st, argv[1]) == -1 ? fail () : 0;
  fprintf (stderr, "store-tool: unknown command or wrong arguments: %s\n",
           cmd);
  return 2;
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "backend", required_argument, NULL, 'b' },
    { "bucket", required_argument, NULL, 'B' },
    { "endpoint-url", required_argument, NULL, 'e' },
    { "region", required_argument, NULL, 'r' },
    { "r2-account-id", required_argument, NULL, 'a' },
    { "addressing", required_argument, NULL, 'A' },
    { "retries", required_argument, NULL, 'R' },
    { "timeout", required_argument, NULL, 't' },
    { "stats", no_argument, NULL, 's' },
    { NULL, 0, NULL, 0 }
  };
  struct store_config cfg = { .backend = STORE_FILE, .retries = 5,
                              .timeout_ms = 30000, .file_mode = 0600 };
  bool stats = false;
  int c, r;

  while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'b':
      if ((r = store_parse_backend (optarg)) == -1) {
        fprintf (stderr, "store-tool: unknown backend %s\n", optarg);
        return 2;
      }
      cfg.backend = r;
      break;
    case 'B': cfg.bucket = optarg; break;
    case 'e': cfg.endpoint_url = optarg; break;
    case 'r': cfg.region = optarg; break;
    case 'a': cfg.r2_account_id = optarg; break;
    case 'A':
      cfg.addressing = strcmp (optarg, "path") == 0 ? STORE_ADDR_PATH
        : strcmp (optarg, "virtual") == 0 ? STORE_ADDR_VIRTUAL
        : STORE_ADDR_AUTO;
      break;
    case 'R': cfg.retries = atoi (optarg); break;
    case 't':
      if (!store_parse_timeout (optarg, &cfg.timeout_ms)) {
        fprintf (stderr, "store-tool: bad --timeout %s\n", optarg);
        return 2;
      }
      break;
    case 's': stats = true; break;
    default: return 2;
    }
  }
  if (optind >= argc) {
    fprintf (stderr, "usage: store-tool [OPTIONS] COMMAND ARGS...\n");
    return 2;
  }
  st = store_open (&cfg);
  if (st == NULL)
    return fail ();
  r = run (argc - optind, argv + optind);
  if (stats) {
    struct store_stats s;
    uintmax_t errors = 0, retries = 0;

    store_get_stats (st, &s);
    for (int op = 0; op < STORE_OPS; op++)
      for (int why = 0; why < STORE_WHYS; why++) {
        errors += s.errors[op][why];
        retries += s.retries[op][why];
      }
    fprintf (stderr, "requests=%ju errors=%ju retries=%ju in=%ju out=%ju\n",
             (uintmax_t) s.requests, errors, retries,
             (uintmax_t) s.bytes_in, (uintmax_t) s.bytes_out);
    for (int op = 0; op < STORE_OPS; op++)
      for (int why = 0; why < STORE_WHYS; why++) {
        if (s.errors[op][why])
          fprintf (stderr, "error %s %s %ju\n", store_op_name (op),
                   store_why_name (why), (uintmax_t) s.errors[op][why]);
        if (s.retries[op][why])
          fprintf (stderr, "retry %s %s %ju\n", store_op_name (op),
                   store_why_name (why), (uintmax_t) s.retries[op][why]);
      }
  }
  store_close (st);
  return r;
}
