/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* manifest-scale: what a loaded manifest costs, by the number of chunks
 * it lists.
 *
 *   manifest-scale [--dir DIR] [N...]      (default N: 1k 64k 262k 1M)
 *
 * For each N and two layouts, "contiguous" (one extent of N chunks) and
 * "sparse" (every chunk an extent of its own, the worst case), the
 * manifest of an image of N 4 MiB chunks is built, formatted and put in a
 * file store under DIR (default: a new directory under $TMPDIR, removed
 * at the end).  Then a fresh process (this program again, so that no page
 * of the builder's is counted) loads it the way an export's open does,
 * with remote_fetch_manifest, and reports:
 *   disk     bytes of manifest.json per listed chunk
 *   open     seconds of the fastest of its 4 loads
 *   steady   RSS growth per chunk with the first load held
 *   reload   the same, held after 3 more loads and frees
 *   peak     growth of the peak RSS (ru_maxrss) per chunk
 * RSS is measured against the process before its first load, so it
 * counts what loading keeps, not the program.  Nothing is asserted.
 */
#include <config.h>

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "format.h"
#include "store.h"
#include "util.h"
#include "volume-impl.h"

#define EXPORT "vm01"
#define SNAP "0195d4f7a7c84b8d9a4cf59d1c4c7c9e"
#define ROOT "exports"
#define LOADS 4

static const char *const layouts[] = { "contiguous", "sparse" };

static struct store *
open_store (const char *dir)
{
  struct store_config cfg = { .backend = STORE_FILE, .bucket = dir,
                              .file_mode = 0600 };
  struct store *st = store_open (&cfg);

  if (st == NULL) {
    fprintf (stderr, "manifest-scale: %s\n", err_msg ());
    exit (EXIT_FAILURE);
  }
  return st;
}

/* The resident set of this process, in bytes. */
static uint64_t
rss_now (void)
{
  unsigned long size, resident;
  FILE *f = fopen ("/proc/self/statm", "r");

  if (f == NULL || fscanf (f, "%lu %lu", &size, &resident) != 2)
    abort ();
  fclose (f);
  return (uint64_t) resident * sysconf (_SC_PAGESIZE);
}

/* Put the manifest of N chunks in LAYOUT (0 contiguous, 1 sparse) in the
 * store; its size in bytes.
 */
static size_t
put_manifest (struct store *st, uint64_t n, int layout)
{
  struct manifest *m = manifest_new (EXPORT, SNAP, MANIFEST_DELTA, 1,
                                     n * CHUNK_SIZE_DEFAULT,
                                     CHUNK_SIZE_DEFAULT);
  CLEANUP_FREE char *key = key_manifest (ROOT, EXPORT, SNAP);
  CLEANUP_FREE char *text = NULL;
  unsigned char sha[32];
  size_t len;

  if (m == NULL || key == NULL ||
      manifest_add_blob (m, EXPORT "/snapshots/" SNAP "/delta.blob",
                         n * CHUNK_SIZE_DEFAULT) == -1)
    goto err;
  for (uint64_t c = 0; c < n; c++) {
    /* Sparse: chunks lie in the blob in reverse, so no two merge. */
    uint64_t slot = layout ? n - 1 - c : c;

    for (int i = 0; i < 32; i++)
      sha[i] = c * 31 + i * 7;
    if (manifest_add_chunk (m, c, 0, slot * CHUNK_SIZE_DEFAULT, sha) == -1)
      goto err;
  }
  text = manifest_format (m);
  if (text == NULL)
    goto err;
  len = strlen (text);
  if (store_put (st, key, text, len, STORE_PUT_ANY, NULL, NULL) == -1)
    goto err;
  manifest_free (m);
  return len;
 err:
  fprintf (stderr, "manifest-scale: %s\n", err_msg ());
  exit (EXIT_FAILURE);
}

/* The child: load the manifest of N chunks LOADS times and print
 * "seconds steady reload peak" (bytes of growth, not per chunk).
 */
static int
load (const char *dir, uint64_t n)
{
  struct volume_env env = { .st = open_store (dir), .root = ROOT };
  uint64_t base = rss_now (), steady = 0, best = UINT64_MAX;
  struct manifest *m = NULL;
  struct rusage ru;

  for (int i = 0; i < LOADS; i++) {
    uint64_t t0 = time_mono_ns ();

    m = remote_fetch_manifest (&env, EXPORT, SNAP, n);
    if (m == NULL) {
      fprintf (stderr, "manifest-scale: %s\n", err_msg ());
      return EXIT_FAILURE;
    }
    if (time_mono_ns () - t0 < best)
      best = time_mono_ns () - t0;
    if (m->nsha != n)
      abort ();
    if (i == 0)
      steady = rss_now () - base;
    if (i < LOADS - 1)
      manifest_free (m);
  }
  getrusage (RUSAGE_SELF, &ru);
  printf ("%.3f %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", best / 1e9, steady,
          rss_now () - base, (uint64_t) ru.ru_maxrss * 1024 - base);
  manifest_free (m);
  store_close (env.st);
  return EXIT_SUCCESS;
}

/* Run this program as "--load DIR N" and read its line. */
static void
measure (const char *dir, uint64_t n, double res[4])
{
  char arg[32], line[256];
  int fd[2];
  FILE *f;
  pid_t pid;
  int status;

  snprintf (arg, sizeof arg, "%" PRIu64, n);
  if (pipe (fd) == -1 || (pid = fork ()) == -1) {
    perror ("manifest-scale");
    exit (EXIT_FAILURE);
  }
  if (pid == 0) {
    dup2 (fd[1], STDOUT_FILENO);
    close (fd[0]);
    execl ("/proc/self/exe", "manifest-scale", "--load", dir, arg, NULL);
    _exit (127);
  }
  close (fd[1]);
  f = fdopen (fd[0], "r");
  if (fgets (line, sizeof line, f) == NULL ||
      sscanf (line, "%lf %lf %lf %lf", &res[0], &res[1], &res[2],
              &res[3]) != 4 ||
      waitpid (pid, &status, 0) == -1 || status != 0) {
    fprintf (stderr, "manifest-scale: the load of %" PRIu64 " chunks "
             "failed\n", n);
    exit (EXIT_FAILURE);
  }
  fclose (f);
}

/* nftw callback: remove every file and directory, depth first. */
static int
remove_one (const char *path, const struct stat *st, int flag,
            struct FTW *ftw)
{
  return remove (path);
}

int
main (int argc, char *argv[])
{
  static const char *const defaults[] = { "1024", "65536", "262144",
                                          "1048576" };
  const char *const *ns = defaults;
  size_t nn = sizeof defaults / sizeof defaults[0];
  char tmpl[4096], *dir = NULL;
  bool made = false;

  if (argc == 4 && strcmp (argv[1], "--load") == 0)
    return load (argv[2], strtoull (argv[3], NULL, 10));
  if (argc >= 3 && strcmp (argv[1], "--dir") == 0) {
    dir = argv[2];
    argc -= 2;
    argv += 2;
  }
  if (argc > 1) {
    ns = (const char *const *) argv + 1;
    nn = argc - 1;
  }
  if (dir == NULL) {
    snprintf (tmpl, sizeof tmpl, "%s/manifest-scale.XXXXXX",
              getenv ("TMPDIR") ? getenv ("TMPDIR") : "/tmp");
    if ((dir = mkdtemp (tmpl)) == NULL) {
      perror ("manifest-scale: mkdtemp");
      return EXIT_FAILURE;
    }
    made = true;
  }

  printf ("%-8s %-10s %8s %7s %8s %8s %8s\n", "chunks", "layout",
          "disk B/c", "open s", "steady", "reload", "peak");
  for (size_t i = 0; i < nn; i++) {
    uint64_t n = strtoull (ns[i], NULL, 10);

    for (int l = 0; l < 2; l++) {
      struct store *st = open_store (dir);
      size_t len = put_manifest (st, n, l);
      double r[4];

      store_close (st);
      measure (dir, n, r);
      printf ("%-8" PRIu64 " %-10s %8.1f %7.3f %8.1f %8.1f %8.1f\n", n,
              layouts[l], (double) len / n, r[0], r[1] / n, r[2] / n,
              r[3] / n);
      fflush (stdout);
    }
  }
  if (made && nftw (dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) == -1) {
    perror ("manifest-scale: remove the scratch directory");
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
