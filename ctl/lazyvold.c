/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvold: the control plane of lazyvol.  See lazyvold(8).
 *
 * lazyvold is a thin front: it never touches the object store or the
 * cache.  nbdkit with the lazyvol plugin serves NBD and does all the work;
 * lazyvold serves the admin API and turns each request into a command on
 * the plugin's control socket, and in spawn mode opens the exports the
 * plugin lists in the store once nbdkit is up (discover.c), so that
 * nbdkit serves from its first second whatever the size of the bucket.
 * It either spawns and supervises that nbdkit (supervise.c) or attaches
 * to the control socket of one the user runs (--control).
 *
 * Direct mode (--cache-dir DIR --remote-prefix ROOT/ID) spawns an nbdkit
 * in the plugin's direct mode: one export, whose cache directory DIR
 * stands for the cache root here too (the run directory is DIR/.lazyvold).
 *
 * This file owns the command line, the run directory, logging, signals
 * and daemonizing.  State on disk, for spawn mode, in RUN_DIR =
 * <cache-root>/.lazyvold (mode 0700):
 *
 *   lazyvold.lock  flock'ed while a lazyvold serves this cache root, so
 *                  two cannot supervise one nbdkit
 *   nbdkit.pid     written by nbdkit; names the process to adopt
 *   control.sock   the plugin's control socket
 *
 * NBD over TLS (--tls ...) is nbdkit's: lazyvold checks the options and
 * that nbdkit will find its files, and passes them on.  TLS is off unless
 * asked for, so that certificates nbdkit would find in its default
 * directory never turn it on behind the user's back.
 *
 * The admin API listens on --admin-sock, by default on the socket
 * lazyvolctl looks for (adminsock.h), whose directory is created if
 * missing.
 *
 * Signals: TERM and INT stop nbdkit (it flushes every export) and exit;
 * USR2 exits at once, leaving nbdkit serving for the next lazyvold to
 * adopt.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "adminsock.h"
#include "api.h"
#include "discover.h"
#include "dump.h"
#include "err.h"
#include "format.h"
#include "keeper.h"
#include "relay.h"
#include "sdnotify.h"
#include "supervise.h"
#include "unixsock.h"
#include "util.h"

#define DEFAULT_LISTEN "127.0.0.1:10809"
#define RUN_DIR_NAME ".lazyvold"
/* nbdkit's threads per connection (its own default is 16): a client such
 * as qemu or nbdcopy keeps 32 or more requests in flight on one
 * connection, and with a cold cache each may wait for a fetch.
 */
#define THREADS_DEFAULT 64

/* nbdkit's --tls modes, and how the log says each.  TLS_UNSET: no --tls
 * given yet (check_tls settles it).
 */
enum tls_mode { TLS_OFF, TLS_ON, TLS_REQUIRE, TLS_UNSET };
static const struct {
  const char *name, *text;
} tls_modes[] = {
  [TLS_OFF] = { "off", "no TLS" },
  [TLS_ON] = { "on", "TLS optional" },
  [TLS_REQUIRE] = { "require", "TLS required" },
};

/* The serve command line. */
static struct {
  char *cache_root, *admin_sock, *control, *pidfile, *plugin;
  const char *export_root, *bucket, *listen, *nbdkit, *admin_group;
  const char *remote_prefix;    /* direct mode; cache_root is its DIR */
  bool direct;
  const char *listen_group;
  enum tls_mode tls;
  char *tls_certificates, *tls_psk;
  bool tls_verify_peer;
  const char *host_id, *lease, *takeover, *cache_max_size;
  bool unconditional;
  unsigned admin_timeout;
  unsigned metrics_exports;
  unsigned threads;             /* nbdkit's per connection */
  const char *storage_backend, *endpoint_url, *region, *r2_account_id;
  const char **filters, **params;
  size_t nfilters, nparams;
  bool foreground, admin_sock_default;
  int log_level;
} opt = {
  .export_root = "exports", .listen = DEFAULT_LISTEN,
  .nbdkit = NBDKIT_PATH, .log_level = LOG_LV_INFO, .admin_timeout = 30,
  .metrics_exports = METRICS_EXPORTS_DEFAULT, .threads = THREADS_DEFAULT,
  .tls = TLS_UNSET,
};

static struct event_base *base;
static int exit_status;
static int notify_fd = -1;      /* daemon mode: the waiting parent */

static void
usage (FILE *f)
{
  fprintf (f,
"Usage: lazyvold serve --cache-root DIR [OPTIONS]\n"
"       lazyvold serve --cache-dir DIR --remote-prefix ROOT/ID [OPTIONS]\n"
"       lazyvold serve --control SOCKET [OPTIONS]\n"
"       lazyvold dump-dirty --cache-root DIR EXPORT FILE\n"
"       lazyvold --help | --version\n"
"\n"
"Serve lazyvol exports over NBD (nbdkit with the lazyvol plugin) and an\n"
"HTTP admin API on a Unix socket.  See lazyvold(8).\n"
"\n"
"Spawn mode (lazyvold runs and supervises nbdkit):\n"
"  --cache-root DIR         local cache of every export (required)\n"
"  --cache-max-size SIZE    bytes all the caches may take together (K, M,\n"
"                           G, T); clean chunks are evicted (no limit)\n"
"  --export-root PREFIX     prefix of the exports in the bucket (exports)\n"
"  --cache-dir DIR --remote-prefix ROOT/ID  direct mode: serve export ID\n"
"                           of ROOT alone, its cache in DIR (instead of\n"
"                           --cache-root and --export-root)\n"
"  --bucket BUCKET          bucket; alone, it means --storage-backend s3\n"
"  --storage-backend file|s3|r2  object store (default: file under\n"
"                           DIR/.store if no --bucket, else s3)\n"
"  --endpoint-url URL       S3-compatible endpoint\n"
"  --region REGION          S3 region (us-east-1; auto for r2)\n"
"  --r2-account-id ID       Cloudflare account id for r2\n"
"  --host-id ID             this host's name in owner records (host name)\n"
"  --lease SECS             lease period: a host that loses an export\n"
"                           stops writing to it within SECS (30)\n"
"  --takeover[=force]       take exports from hosts whose lease expired;\n"
"                           =force: at once (only if they are dead)\n"
"  --unsafe-no-conditional-puts  own exports on a store that cannot\n"
"                           evaluate conditional puts (two hosts may write)\n"
"  --listen HOST:PORT|PATH  NBD listener: TCP ([v6]:port too) or an\n"
"                           absolute Unix socket path (" DEFAULT_LISTEN ");\n"
"                           any local user can use a TCP listener,\n"
"                           unless --tls=require with --tls-psk or\n"
"                           --tls-verify-peer\n"
"  --listen-group GROUP     make the NBD Unix socket 0660 for GROUP (0600)\n"
"  --tls off|on|require     NBD over TLS: none, optional or required (off;\n"
"                           require if a PSK file or certificates are given)\n"
"  --tls-psk FILE           TLS pre-shared keys, made with psktool\n"
"  --tls-certificates DIR   X.509: DIR holds ca-cert.pem, server-cert.pem\n"
"                           and server-key.pem\n"
"  --tls-verify-peer        admit only clients showing a certificate signed\n"
"                           by DIR's CA\n"
"  --filter NAME            add an nbdkit filter (repeatable, in order)\n"
"  --param KEY=VALUE        extra nbdkit parameter for a filter or the\n"
"                           plugin, e.g. statsfile=FILE (repeatable)\n"
"  --threads N              nbdkit's threads per NBD connection: requests\n"
"                           in flight on one connection (64)\n"
"  --nbdkit PATH            nbdkit binary (" NBDKIT_PATH ")\n"
"  --plugin PATH            lazyvol plugin (" PLUGINDIR
"/nbdkit-lazyvol-plugin.so)\n"
"\n"
"Attach mode (you run nbdkit):\n"
"  --control SOCKET         the plugin's control= socket; spawn-mode\n"
"                           options are refused\n"
"\n"
"Both:\n"
"  --admin-sock PATH        admin API socket (" ADMINSOCK_ROOT_DIR "/"
ADMINSOCK_NAME " for root,\n"
"                           else $XDG_RUNTIME_DIR/lazyvol/" ADMINSOCK_NAME
")\n"
"  --admin-group GROUP      make the admin socket 0660 for GROUP (0600)\n"
"  --admin-timeout SECS     drop an admin connection on which nothing\n"
"                           arrives for SECS (30)\n"
"  --metrics-exports N      per-export metrics for N exports at most (256)\n"
"  --foreground             do not daemonize\n"
"  --pidfile FILE           write lazyvold's pid to FILE once ready\n"
"  --log-level error|warn|info|debug  (info; debug also runs nbdkit -v)\n"
"  --help, --version\n"
"\n"
"Credentials come only from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and\n"
"AWS_SESSION_TOKEN in the environment.  SIGTERM/SIGINT stop nbdkit and\n"
"exit; SIGUSR2 exits and leaves nbdkit serving for the next lazyvold.\n");
}

static void
log_to_stderr (enum log_level level, const char *msg)
{
  static const char *names[] = { "error", "warning", "info", "debug" };
  struct timespec ts;
  struct tm tm;
  char when[32];

  clock_gettime (CLOCK_REALTIME, &ts);
  gmtime_r (&ts.tv_sec, &tm);
  strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf (stderr, "%s.%03ldZ lazyvold[%d]: %s: %s\n", when,
           ts.tv_nsec / 1000000, (int) getpid (), names[level], msg);
}

static void
log_to_syslog (enum log_level level, const char *msg)
{
  static const int priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO,
                                    LOG_DEBUG };

  syslog (priorities[level], "%s", msg);
}

/* Print "lazyvold: MESSAGE" and exit with status 2 (a usage error). */
static void __attribute__ ((__noreturn__, __format__ (__printf__, 1, 2)))
usage_error (const char *fmt, ...)
{
  va_list ap;

  fputs ("lazyvold: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputs ("\n", stderr);
  exit (2);
}

/* PATH made absolute against the current directory (daemons chdir /). */
static char *
absolute (const char *path)
{
  CLEANUP_FREE char *cwd = NULL;

  if (path[0] == '/')
    return xasprintf ("%s", path);
  if ((cwd = getcwd (NULL, 0)) == NULL)
    usage_error ("getcwd: %m");
  return xasprintf ("%s/%s", cwd, path);
}

/* The id of group NAME, for FLAG; exits on a usage error. */
static gid_t
group_id (const char *flag, const char *name)
{
  struct group *g = getgrnam (name);

  if (g == NULL)
    usage_error ("%s: no group named %s", flag, name);
  return g->gr_gid;
}

/* Parse WHAT ("a number of seconds") from MIN to MAX for FLAG; exits if
 * it is bad.
 */
static unsigned
parse_number (const char *flag, const char *s, unsigned min, unsigned max,
              const char *what)
{
  char *end;
  unsigned long n;

  errno = 0;
  n = strtoul (s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || n < min || n > max)
    usage_error ("%s wants %s from %u to %u, not \"%s\"", flag, what, min,
                 max, s);
  return n;
}

/* Parse a number of seconds (1 to 3600) for FLAG; exits if it is bad. */
static unsigned
parse_seconds (const char *flag, const char *s)
{
  return parse_number (flag, s, 1, 3600, "a number of seconds");
}

/* S, if it is a size (a number of bytes, 1G, 512M ...) for FLAG; exits
 * if it is not.
 */
static const char *
check_size (const char *flag, const char *s)
{
  uint64_t n;

  if (size_check (flag, s, &n) == -1)
    usage_error ("%s", err_msg ());
  return s;
}

static void
append (const char ***list, size_t *n, const char *s)
{
  *list = realloc (*list, (*n + 1) * sizeof **list);
  if (*list == NULL)
    abort ();
  (*list)[(*n)++] = s;
}

/* The nbdkit parameters lazyvold sets itself, and the flag for each. */
static const char *const owned_params[][2] = {
  { "cache-root", "--cache-root" }, { "export-root", "--export-root" },
  { "cache-dir", "--cache-dir" }, { "remote-prefix", "--remote-prefix" },
  { "cache-max-size", "--cache-max-size" },
  { "bucket", "--bucket" }, { "storage-backend", "--storage-backend" },
  { "endpoint-url", "--endpoint-url" }, { "region", "--region" },
  { "r2-account-id", "--r2-account-id" }, { "control", "--control" },
  { "host-id", "--host-id" }, { "lease", "--lease" },
  { "takeover", "--takeover" },
  { "unsafe-no-conditional-puts", "--unsafe-no-conditional-puts" },
  { "discover", "lazyvold opens the exports of the store itself" },
};

static void
check_param (const char *param)
{
  const char *eq = strchr (param, '=');

  if (eq == NULL || eq == param)
    usage_error ("--param wants KEY=VALUE, not \"%s\"", param);
  for (size_t i = 0; i < sizeof owned_params / sizeof owned_params[0]; i++)
    if (strlen (owned_params[i][0]) == (size_t) (eq - param) &&
        strncmp (param, owned_params[i][0], eq - param) == 0)
      usage_error (strncmp (owned_params[i][1], "--", 2) == 0
                   ? "--param %s: use %s instead" : "--param %s: %s", param,
                   owned_params[i][1]);
}

enum {
  OPT_CACHE_ROOT = 256, OPT_EXPORT_ROOT, OPT_BUCKET, OPT_LISTEN,
  OPT_ADMIN_SOCK, OPT_STORAGE_BACKEND, OPT_ENDPOINT_URL, OPT_REGION,
  OPT_R2_ACCOUNT_ID, OPT_FILTER, OPT_PARAM, OPT_NBDKIT, OPT_PLUGIN,
  OPT_CONTROL, OPT_ADMIN_GROUP, OPT_FOREGROUND, OPT_PIDFILE, OPT_LOG_LEVEL,
  OPT_LISTEN_GROUP, OPT_ADMIN_TIMEOUT, OPT_METRICS_EXPORTS, OPT_THREADS, OPT_HOST_ID, OPT_LEASE, OPT_TAKEOVER,
  OPT_UNCONDITIONAL, OPT_TLS, OPT_TLS_CERTIFICATES, OPT_TLS_PSK,
  OPT_TLS_VERIFY_PEER, OPT_CACHE_MAX_SIZE, OPT_CACHE_DIR, OPT_REMOTE_PREFIX,
  OPT_HELP,
};

static const struct option long_options[] = {
  { "cache-root", required_argument, NULL, OPT_CACHE_ROOT },
  { "cache-max-size", required_argument, NULL, OPT_CACHE_MAX_SIZE },
  { "export-root", required_argument, NULL, OPT_EXPORT_ROOT },
  { "cache-dir", required_argument, NULL, OPT_CACHE_DIR },
  { "remote-prefix", required_argument, NULL, OPT_REMOTE_PREFIX },
  { "bucket", required_argument, NULL, OPT_BUCKET },
  { "listen", required_argument, NULL, OPT_LISTEN },
  { "admin-sock", required_argument, NULL, OPT_ADMIN_SOCK },
  { "storage-backend", required_argument, NULL, OPT_STORAGE_BACKEND },
  { "endpoint-url", required_argument, NULL, OPT_ENDPOINT_URL },
  { "region", required_argument, NULL, OPT_REGION },
  { "r2-account-id", required_argument, NULL, OPT_R2_ACCOUNT_ID },
  { "filter", required_argument, NULL, OPT_FILTER },
  { "param", required_argument, NULL, OPT_PARAM },
  { "nbdkit", required_argument, NULL, OPT_NBDKIT },
  { "plugin", required_argument, NULL, OPT_PLUGIN },
  { "control", required_argument, NULL, OPT_CONTROL },
  { "admin-group", required_argument, NULL, OPT_ADMIN_GROUP },
  { "admin-timeout", required_argument, NULL, OPT_ADMIN_TIMEOUT },
  { "metrics-exports", required_argument, NULL, OPT_METRICS_EXPORTS },
  { "threads", required_argument, NULL, OPT_THREADS },
  { "listen-group", required_argument, NULL, OPT_LISTEN_GROUP },
  { "foreground", no_argument, NULL, OPT_FOREGROUND },
  { "pidfile", required_argument, NULL, OPT_PIDFILE },
  { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
  { "host-id", required_argument, NULL, OPT_HOST_ID },
  { "lease", required_argument, NULL, OPT_LEASE },
  { "takeover", optional_argument, NULL, OPT_TAKEOVER },
  { "unsafe-no-conditional-puts", no_argument, NULL, OPT_UNCONDITIONAL },
  { "tls", required_argument, NULL, OPT_TLS },
  { "tls-certificates", required_argument, NULL, OPT_TLS_CERTIFICATES },
  { "tls-psk", required_argument, NULL, OPT_TLS_PSK },
  { "tls-verify-peer", no_argument, NULL, OPT_TLS_VERIFY_PEER },
  { "help", no_argument, NULL, OPT_HELP },
  { NULL },
};

/* Without --admin-sock, listen where lazyvolctl looks; exits if there is
 * no such place for this user.
 */
static void
default_admin_sock (void)
{
  if (opt.admin_sock)
    return;
  if ((opt.admin_sock = adminsock_default ()) == NULL)
    usage_error ("%s: give --admin-sock PATH", err_msg ());
  opt.admin_sock_default = true;
}

/* The --tls mode named S; exits if there is none. */
static enum tls_mode
parse_tls (const char *s)
{
  for (enum tls_mode m = TLS_OFF; m < TLS_UNSET; m++)
    if (strcmp (s, tls_modes[m].name) == 0)
      return m;
  usage_error ("--tls must be off, on or require, not \"%s\"", s);
}

/* Check that nbdkit can read FILE, given with FLAG (it would fail only
 * once spawned, and less clearly), and warn if FILE holds a SECRET that
 * users other than its owner may read.  Exits on a usage error.
 */
static void
check_tls_file (const char *flag, const char *file, bool secret)
{
  struct stat st;
  int fd = open (file, O_RDONLY | O_CLOEXEC);

  if (fd == -1 || fstat (fd, &st) == -1)
    usage_error ("%s: %s: %m", flag, file);
  close (fd);
  if (!S_ISREG (st.st_mode))
    usage_error ("%s: %s is not a regular file", flag, file);
  if (secret && (st.st_mode & 077))
    log_warn ("%s: %s is mode %04o: other users may read the secret key "
              "in it (chmod 0600 it)", flag, file,
              (unsigned) (st.st_mode & 07777));
}

/* Settle opt.tls from the TLS options and check them; exits on a usage
 * error.  A PSK file or certificates alone mean --tls=require: whoever
 * gives keys wants them asked for.
 */
static void
check_tls (void)
{
  static const char *const cert_files[] = {
    "ca-cert.pem", "server-cert.pem", "server-key.pem",
  };
  bool keys = opt.tls_certificates || opt.tls_psk;

  /* nbdkit would take the PSK file and ignore the certificates. */
  if (opt.tls_certificates && opt.tls_psk)
    usage_error ("--tls-certificates and --tls-psk exclude each other");
  if (opt.tls_verify_peer && !opt.tls_certificates)
    usage_error ("--tls-verify-peer checks X.509 client certificates: it "
                 "needs --tls-certificates DIR");
  if (opt.tls == TLS_UNSET)
    opt.tls = keys ? TLS_REQUIRE : TLS_OFF;
  if (opt.tls == TLS_OFF) {
    if (keys)
      usage_error ("--tls=off with %s: drop one of them",
                   opt.tls_psk ? "--tls-psk" : "--tls-certificates");
    return;
  }
  /* Else nbdkit would look in a default directory of its own. */
  if (!keys)
    usage_error ("--tls=%s needs --tls-certificates DIR or --tls-psk FILE",
                 tls_modes[opt.tls].name);
  if (opt.tls_psk) {
    check_tls_file ("--tls-psk", opt.tls_psk, true);
    return;
  }
  for (size_t i = 0; i < sizeof cert_files / sizeof cert_files[0]; i++) {
    CLEANUP_FREE char *path = xasprintf ("%s/%s", opt.tls_certificates,
                                         cert_files[i]);
    check_tls_file ("--tls-certificates", path,
                    strcmp (cert_files[i], "server-key.pem") == 0);
  }
}

/* Parse "serve ARGS..."; exits on a usage error. */
static void
parse_serve (int argc, char **argv)
{
  bool spawn_flags = false;     /* a flag only spawn mode uses */
  bool export_root_given = false;
  char *cache_dir = NULL, *prefix;
  int c;

  while ((c = getopt_long (argc, argv, "", long_options, NULL)) != -1) {
    spawn_flags |= c != OPT_ADMIN_SOCK && c != OPT_CONTROL &&
      c != OPT_ADMIN_GROUP && c != OPT_ADMIN_TIMEOUT &&
      c != OPT_METRICS_EXPORTS && c != OPT_FOREGROUND &&
      c != OPT_PIDFILE && c != OPT_LOG_LEVEL;
    switch (c) {
    case OPT_CACHE_ROOT: opt.cache_root = absolute (optarg); break;
    case OPT_CACHE_MAX_SIZE:
      opt.cache_max_size = check_size ("--cache-max-size", optarg);
      break;
    case OPT_EXPORT_ROOT:
      opt.export_root = optarg;
      export_root_given = true;
      break;
    case OPT_CACHE_DIR: cache_dir = absolute (optarg); break;
    case OPT_REMOTE_PREFIX: opt.remote_prefix = optarg; break;
    case OPT_BUCKET: opt.bucket = optarg; break;
    case OPT_LISTEN: opt.listen = optarg; break;
    case OPT_ADMIN_SOCK: opt.admin_sock = absolute (optarg); break;
    case OPT_STORAGE_BACKEND: opt.storage_backend = optarg; break;
    case OPT_ENDPOINT_URL: opt.endpoint_url = optarg; break;
    case OPT_REGION: opt.region = optarg; break;
    case OPT_R2_ACCOUNT_ID: opt.r2_account_id = optarg; break;
    case OPT_FILTER: append (&opt.filters, &opt.nfilters, optarg); break;
    case OPT_PARAM:
      check_param (optarg);
      append (&opt.params, &opt.nparams, optarg);
      break;
    case OPT_NBDKIT:                    /* a path, or a name to look up */
      opt.nbdkit = strchr (optarg, '/') ? absolute (optarg) : optarg;
      break;
    case OPT_PLUGIN: opt.plugin = absolute (optarg); break;
    case OPT_CONTROL: opt.control = absolute (optarg); break;
    case OPT_ADMIN_GROUP: opt.admin_group = optarg; break;
    case OPT_LISTEN_GROUP: opt.listen_group = optarg; break;
    case OPT_ADMIN_TIMEOUT:
      opt.admin_timeout = parse_seconds ("--admin-timeout", optarg);
      break;
    case OPT_METRICS_EXPORTS:
      opt.metrics_exports = parse_number ("--metrics-exports", optarg, 0,
                                          1000000, "a number");
      break;
    case OPT_THREADS:
      opt.threads = parse_number ("--threads", optarg, 1, 1024, "a number");
      break;
    case OPT_HOST_ID:
      if (!host_id_valid (optarg))
        usage_error ("--host-id must be 1 to %d letters, digits, '.', '_' "
                     "or '-', starting with a letter or digit, not \"%s\"",
                     HOST_ID_MAX, optarg);
      opt.host_id = optarg;
      break;
    case OPT_LEASE:
      parse_number ("--lease", optarg, 3, 3600, "a number of seconds");
      opt.lease = optarg;
      break;
    case OPT_TAKEOVER:
      if (optarg && strcmp (optarg, "force") != 0)
        usage_error ("--takeover takes no value, or =force");
      opt.takeover = optarg ? "force" : "true";
      break;
    case OPT_UNCONDITIONAL: opt.unconditional = true; break;
    case OPT_TLS: opt.tls = parse_tls (optarg); break;
    case OPT_TLS_CERTIFICATES:
      opt.tls_certificates = absolute (optarg);
      break;
    case OPT_TLS_PSK: opt.tls_psk = absolute (optarg); break;
    case OPT_TLS_VERIFY_PEER: opt.tls_verify_peer = true; break;
    case OPT_FOREGROUND: opt.foreground = true; break;
    case OPT_PIDFILE: opt.pidfile = absolute (optarg); break;
    case OPT_LOG_LEVEL:
      if ((opt.log_level = log_parse_level (optarg)) == -1)
        usage_error ("--log-level must be error, warn, info or debug");
      break;
    case OPT_HELP: usage (stdout); exit (0);
    default: usage (stderr); exit (2);
    }
  }
  if (optind < argc)
    usage_error ("unexpected argument \"%s\" (try --help)", argv[optind]);
  if (opt.control) {
    if (spawn_flags)
      usage_error ("with --control, lazyvold runs no nbdkit: give the "
                   "storage, --listen, --tls, --filter and plugin options "
                   "to your nbdkit instead");
    default_admin_sock ();
    return;
  }
  if (cache_dir || opt.remote_prefix) {
    if (cache_dir == NULL || opt.remote_prefix == NULL)
      usage_error ("direct mode needs both --cache-dir DIR and "
                   "--remote-prefix ROOT/ID");
    if (opt.cache_root || export_root_given)
      usage_error ("--cache-dir and --remote-prefix (direct mode) replace "
                   "--cache-root and --export-root; give one pair");
    /* Checked here as the plugin checks it: a bad prefix is a usage
     * error (exit 2, which a service manager does not restart).
     */
    prefix = strndup (opt.remote_prefix, strlen (opt.remote_prefix));
    if (prefix == NULL)
      usage_error ("out of memory");
    for (size_t n = strlen (prefix); n > 0 && prefix[n - 1] == '/'; n--)
      prefix[n - 1] = '\0';
    if (id_prefix_split (prefix) == -1)
      usage_error ("--remote-prefix must be an export root and an export id "
                   "([A-Za-z0-9][A-Za-z0-9._-]{0,127}), as in exports/vm01, "
                   "or the id alone, not \"%.200s\"", opt.remote_prefix);
    free (prefix);
    opt.cache_root = cache_dir;
    opt.direct = true;
  }
  if (opt.cache_root == NULL)
    usage_error ("--cache-root DIR is required (or, for direct mode, "
                 "--cache-dir DIR --remote-prefix ROOT/ID; try --help)");
  if (opt.listen_group && opt.listen[0] != '/')
    usage_error ("--listen-group needs a Unix socket --listen PATH: any "
                 "local user can connect to a TCP listener");
  check_tls ();
  /* The file store's bucket is a directory; nbdkit may run in /. */
  if (opt.bucket && opt.storage_backend &&
      strcmp (opt.storage_backend, "file") == 0)
    opt.bucket = absolute (opt.bucket);
  default_admin_sock ();
  if (opt.plugin == NULL)
    opt.plugin = xasprintf ("%s", PLUGINDIR "/nbdkit-lazyvol-plugin.so");
}

/* Append nbdkit's listener options for --listen to ARGV. */
static void
listen_args (const char ***argv, size_t *n)
{
  const char *s = opt.listen, *colon, *host_end;
  char *end;
  long port;

  if (s[0] == '/') {
    append (argv, n, "-U");
    append (argv, n, s);
    return;
  }
  if (s[0] == '[') {                    /* [v6]:port */
    host_end = strchr (s, ']');
    colon = host_end && host_end[1] == ':' ? host_end + 1 : NULL;
    s++;
  }
  else {
    colon = strrchr (s, ':');
    host_end = colon;
  }
  if (colon == NULL)
    usage_error ("--listen wants HOST:PORT, [V6ADDR]:PORT or an absolute "
                 "Unix socket path, not \"%s\"", opt.listen);
  errno = 0;
  port = strtol (colon + 1, &end, 10);
  if (errno || *end || end == colon + 1 || port < 1 || port > 65535)
    usage_error ("--listen %s: bad port", opt.listen);
  if (host_end > s) {
    append (argv, n, "-i");
    append (argv, n, xasprintf ("%.*s", (int) (host_end - s), s));
  }
  append (argv, n, "-p");
  append (argv, n, colon + 1);
}

/* Append "KEY=VALUE" to ARGV if VALUE is set. */
static void
param (const char ***argv, size_t *n, const char *key, const char *value)
{
  if (value)
    append (argv, n, xasprintf ("%s=%s", key, value));
}

/* The nbdkit command for spawn mode, NULL-terminated. */
static char **
nbdkit_argv (const char *pidfile, const char *control)
{
  const char **argv = NULL;
  size_t n = 0;

  append (&argv, &n, opt.nbdkit);
  append (&argv, &n, "-f");
  append (&argv, &n, xasprintf ("--threads=%u", opt.threads));
  append (&argv, &n, "--pidfile");
  append (&argv, &n, pidfile);
  if (opt.log_level == LOG_LV_DEBUG)
    append (&argv, &n, "-v");
  listen_args (&argv, &n);
  append (&argv, &n, xasprintf ("--tls=%s", tls_modes[opt.tls].name));
  param (&argv, &n, "--tls-certificates", opt.tls_certificates);
  param (&argv, &n, "--tls-psk", opt.tls_psk);
  if (opt.tls_verify_peer)
    append (&argv, &n, "--tls-verify-peer");
  for (size_t i = 0; i < opt.nfilters; i++)
    append (&argv, &n, xasprintf ("--filter=%s", opt.filters[i]));
  append (&argv, &n, opt.plugin);
  if (opt.direct) {
    /* The plugin opens its one export at start, with --takeover. */
    param (&argv, &n, "cache-dir", opt.cache_root);
    param (&argv, &n, "remote-prefix", opt.remote_prefix);
    param (&argv, &n, "takeover", opt.takeover);
  }
  else {
    param (&argv, &n, "cache-root", opt.cache_root);
    param (&argv, &n, "export-root", opt.export_root);
    param (&argv, &n, "discover", "false");     /* discover.c does */
  }
  param (&argv, &n, "cache-max-size", opt.cache_max_size);
  param (&argv, &n, "bucket", opt.bucket);
  param (&argv, &n, "storage-backend", opt.storage_backend);
  param (&argv, &n, "endpoint-url", opt.endpoint_url);
  param (&argv, &n, "region", opt.region);
  param (&argv, &n, "r2-account-id", opt.r2_account_id);
  param (&argv, &n, "control", control);
  param (&argv, &n, "host-id", opt.host_id);
  param (&argv, &n, "lease", opt.lease);
  param (&argv, &n, "unsafe-no-conditional-puts",
         opt.unconditional ? "true" : NULL);
  for (size_t i = 0; i < opt.nparams; i++)
    append (&argv, &n, opt.params[i]);
  append (&argv, &n, NULL);
  return (char **) argv;
}

/* Fork into the background.  The parent waits for the child's word on
 * a pipe: one NUL byte when it is ready (exit 0), else an error message
 * to print (exit 1).  The child logs to syslog from here on and keeps
 * the pipe's write end in notify_fd.
 */
static void
daemonize (void)
{
  char buf[1024];
  ssize_t n, got = 0;
  int p[2];
  pid_t pid;

  if (pipe2 (p, O_CLOEXEC) == -1 || (pid = fork ()) == -1)
    usage_error ("cannot daemonize: %m");
  if (pid > 0) {
    close (p[1]);
    while ((n = read (p[0], buf + got, sizeof buf - 1 - got)) > 0)
      got += n;
    if (got == 1 && buf[0] == '\0') {
      sdnotify ("READY=1\nMAINPID=%d", (int) pid);  /* the child serves */
      exit (0);
    }
    buf[got] = '\0';
    fprintf (stderr, "lazyvold: %s\n",
             got ? buf : "the daemon exited while starting (see syslog)");
    exit (1);
  }
  close (p[0]);
  notify_fd = p[1];
  setsid ();
  if (chdir ("/") == -1)
    abort ();
  openlog ("lazyvold", LOG_PID, LOG_DAEMON);
  log_set_sink (log_to_syslog);
  n = open ("/dev/null", O_RDWR);
  if (n == -1 || dup2 (n, 0) == -1 || dup2 (n, 1) == -1 || dup2 (n, 2) == -1)
    abort ();
  if (n > 2)
    close (n);
}

/* Tell a waiting parent that startup ended: MESSAGE, or NULL for ready. */
static void
notify_parent (const char *message)
{
  size_t len = message ? strlen (message) : 1;   /* ready: one NUL byte */

  if (notify_fd == -1)
    return;
  if (write (notify_fd, message ? message : "", len) == -1)
    log_warn ("cannot tell the parent process: %m");
  close (notify_fd);
  notify_fd = -1;
}

/* Startup failed with the recorded error: report it and end the loop. */
static void
startup_failed (void)
{
  log_error ("%s", err_msg ());
  sdnotify ("STATUS=startup failed: %s", err_msg ());
  notify_parent (err_msg ());
  exit_status = 1;
  api_stop ();
  event_base_loopexit (base, NULL);
}

/* Take the run directory's lock, so one lazyvold serves a cache root. */
static int
lock_run_dir (const char *run_dir)
{
  CLEANUP_FREE char *path = xasprintf ("%s/lazyvold.lock", run_dir);
  int fd;

  if (mkdir_p (run_dir, 0700) == -1)
    return -1;
  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1)
    return err_set (errno, "%s: %m", path);
  if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK)
      err_set (EBUSY, "another lazyvold is serving cache root %s",
               opt.cache_root);
    else
      err_set (errno, "lock %s: %m", path);
    close (fd);
    return -1;
  }
  return 0;                     /* the lock lives as long as we do */
}

static void
on_ready (bool ok)
{
  CLEANUP_FREE char *pid = NULL, *what = NULL;

  if (!ok) {
    startup_failed ();
    return;
  }
  if (opt.pidfile) {
    pid = xasprintf ("%d\n", (int) getpid ());
    if (file_write_atomic (opt.pidfile, pid, strlen (pid)) == -1) {
      startup_failed ();
      return;
    }
  }
  if (opt.control)
    what = xasprintf ("admin API on %s for nbdkit's control socket %s",
                      opt.admin_sock, opt.control);
  else
    what = xasprintf ("NBD on %s (%s%s), admin API on %s", opt.listen,
                      tls_modes[opt.tls].text,
                      opt.tls_verify_peer ? ", client certificates verified"
                      : "", opt.admin_sock);
  log_info ("ready: %s", what);
  if (notify_fd == -1)          /* else the parent tells systemd */
    sdnotify ("READY=1\nSTATUS=ready: %s", what);
  notify_parent (NULL);
}

/* Attach mode: ready if someone answers on the control socket.  (A
 * mistyped path would otherwise give a daemon whose health says 503.)
 */
static void
attach_ready (void)
{
  int fd = unixsock_connect (opt.control);

  if (fd == -1) {
    err_prefix ("--control %s: no nbdkit answers there (start nbdkit with "
                "the lazyvol plugin's control=%s first)", opt.control,
                opt.control);
    startup_failed ();
    return;
  }
  close (fd);
  on_ready (true);
}

/* The warning for a filter of the stack that buffers writes in nbdkit,
 * out of the plugin's sight -- so that snapshots miss them -- or NULL.
 * cow never passes writes on; cache does when a client flushes, unless
 * cache=writethrough (its default is writeback).
 */
static const char *
buffering_filter_warning (void)
{
  static char msg[256];

  for (size_t i = 0; i < opt.nfilters; i++) {
    const char *f = strrchr (opt.filters[i], '/');
    bool writethrough = false;

    f = f ? f + 1 : opt.filters[i];
    if (strcmp (f, "cow") == 0 || strcmp (f, "nbdkit-cow-filter.so") == 0) {
      snprintf (msg, sizeof msg, "--filter %s keeps every write in nbdkit: "
                "no write reaches lazyvol, so snapshots never contain them",
                opt.filters[i]);
      return msg;
    }
    if (strcmp (f, "cache") != 0 && strcmp (f, "nbdkit-cache-filter.so") != 0)
      continue;
    for (size_t p = 0; p < opt.nparams; p++)
      writethrough |= strcmp (opt.params[p], "cache=writethrough") == 0;
    if (!writethrough) {
      snprintf (msg, sizeof msg, "--filter %s buffers writes in nbdkit until "
                "a client flushes: a snapshot misses those not yet flushed "
                "(--param cache=writethrough passes every write on)",
                opt.filters[i]);
      return msg;
    }
  }
  return NULL;
}

static void
on_stopped (void)
{
  event_base_loopexit (base, NULL);
}

static void
on_signal (evutil_socket_t sig, short what, void *arg)
{
  static bool stopping;

  api_stop ();
  if (sig == SIGUSR2) {
    pid_t pid = supervise_detach ();

    sdnotify ("STOPPING=1\nSTATUS=SIGUSR2: exiting; nbdkit keeps serving");
    if (pid)
      log_info ("SIGUSR2: exiting; nbdkit pid %d keeps serving", (int) pid);
    else
      log_info ("SIGUSR2: exiting");
    event_base_loopexit (base, NULL);
    return;
  }
  /* A second Ctrl-C while nbdkit finishes its work changes nothing. */
  if (stopping) {
    log_info ("%s: still shutting down: nbdkit is finishing its requests",
              strsignal (sig));
    return;
  }
  stopping = true;
  log_info ("%s: shutting down", strsignal (sig));
  sdnotify ("STOPPING=1\nSTATUS=%s: shutting down", strsignal (sig));
  discover_stop ();
  supervise_stop (on_stopped);
}

int
main (int argc, char **argv)
{
  static const int signals[] = { SIGTERM, SIGINT, SIGUSR2 };
  struct event *sigev[3] = { NULL };
  struct supervise_config cfg = { NULL };
  CLEANUP_FREE char *run_dir = NULL;
  const char *warning;
  gid_t gid = (gid_t) -1;

  log_set_sink (log_to_stderr);
  if (argc == 2 && strcmp (argv[1], "--help") == 0) {
    usage (stdout);
    return 0;
  }
  if (argc == 2 && strcmp (argv[1], "--version") == 0) {
    printf ("lazyvold %s\n", VERSION);
    return 0;
  }
  if (argc >= 3 && strcmp (argv[1], "keep") == 0)
    return keeper_main (argv + 2);
  if (argc >= 2 && strcmp (argv[1], "dump-dirty") == 0)
    return dump_dirty_main (argc - 1, argv + 1);
  if (argc < 2 || strcmp (argv[1], "serve") != 0)
    usage_error ("expected a command: serve or dump-dirty (try --help)");
  parse_serve (argc - 1, argv + 1);
  log_set_level (opt.log_level);
  sdnotify_init ();
  if (opt.admin_group)
    gid = group_id ("--admin-group", opt.admin_group);
  cfg.nbd_socket_gid = opt.listen_group
    ? group_id ("--listen-group", opt.listen_group) : (gid_t) -1;
  if (opt.control)
    supervise_attach ();
  else {
    run_dir = xasprintf ("%s/" RUN_DIR_NAME, opt.cache_root);
    cfg.pidfile = xasprintf ("%s/nbdkit.pid", run_dir);
    if (!opt.foreground)
      cfg.log_file = xasprintf ("%s/nbdkit.log", run_dir);
    cfg.control = xasprintf ("%s/control.sock", run_dir);
    cfg.nbd_socket = opt.listen[0] == '/' ? opt.listen : NULL;
    cfg.argv = nbdkit_argv (cfg.pidfile, cfg.control);
  }
  if (!opt.foreground)
    daemonize ();
  signal (SIGPIPE, SIG_IGN);

  base = event_base_new ();
  if (base == NULL) {
    notify_parent ("cannot create the event loop");
    return 1;
  }
  for (int i = 0; i < 3; i++) {
    sigev[i] = evsignal_new (base, signals[i], on_signal, NULL);
    if (sigev[i] == NULL || event_add (sigev[i], NULL) == -1)
      abort ();
  }
  api_metrics_exports (opt.metrics_exports);
  if ((warning = buffering_filter_warning ()) != NULL) {
    log_warn ("%s", warning);
    api_warn_publishes (warning);
  }
  if (!opt.control)
    cfg.up = discover_start;
  if (relay_init (base, opt.control ? opt.control : cfg.control) == -1 ||
      discover_init (base, opt.takeover,
                     getenv ("LAZYVOLD_TEST_HOLD_DISCOVERY")) == -1 ||
      (run_dir && lock_run_dir (run_dir) == -1) ||
      (opt.admin_sock_default && adminsock_make_dir (opt.admin_sock) == -1) ||
      api_start (base, opt.admin_sock, gid, opt.admin_timeout) == -1)
    startup_failed ();
  else if (opt.control)
    attach_ready ();
  else if (supervise_start (base, &cfg, on_ready) == -1)
    startup_failed ();
  event_base_dispatch (base);

  relay_shutdown ();
  discover_free ();
  api_free ();
  supervise_detach ();
  for (int i = 0; i < 3; i++)
    event_free (sigev[i]);
  event_base_free (base);
  if (opt.pidfile && exit_status == 0)
    unlink (opt.pidfile);
  return exit_status;
}
