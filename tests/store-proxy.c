/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* store-proxy: an HTTP proxy that injects faults between an object-store
 * client and the test store (tests/s3-server.sh), on command.
 *
 *   store-proxy --upstream PORT --port-file FILE [--control SOCKET]
 *               [--stats FILE] [--log FILE] [--seed N]
 *               [--lose-suffix SUFFIX --lose-file FILE] [--down-file FILE]
 *               [--shape] [--first-byte-ms N] [--conn-rate RATE]
 *               [--total-rate RATE] [--command CMD]...
 *   store-proxy ctl SOCKET CMD...
 *
 * It listens on 127.0.0.1, on a port the kernel chooses and writes to
 * FILE (FILE.new, then renamed), and forwards to 127.0.0.1:PORT.  The
 * commands (from --command, or one per line on the control socket; "ctl"
 * sends one) are: set KIND P, set delay-ms N, set error-status N,
 * set match TEXT, set seed N, set first-byte-ms N, set conn-rate RATE,
 * set total-rate RATE, next N KIND|STATUS, once KIND|STATUS, clear,
 * stats.  The fault kinds, the link shaping, the counters and the file
 * triggers are described by --help (usage() below), the one reference.
 *
 * Why raw sockets and not evhttp: evhttp reads a whole request body
 * before its handler runs and frames replies itself, so it could neither
 * stream an object at link speed nor cut a body in the middle.  This is a
 * forwarding proxy on libevent bufferevents: bytes move between the two
 * sockets as they arrive (evbuffer chains are moved, not copied), and
 * only the HTTP/1.1 framing is parsed (http-frame.c): the request or
 * status line, the few headers it needs, and where the body ends
 * (Content-Length, chunked, or the close of the connection).  The bytes
 * forwarded are the bytes received, the Host header and everything else
 * the client signed included, but for the byte a "corrupt" fault flips.
 *
 * Each client connection gets its own connection to the store, opened at
 * its first forwarded request and kept while both ends keep it, so
 * requests in a row share one connection on both legs.  A connection
 * handles one request at a time; a pipelined next request waits in the
 * input buffer.  Reading one side pauses while more than HIGH_WATER bytes
 * wait to be written to the other, so memory stays bounded whatever the
 * size of an object.
 *
 * The SHA-256 check, as AWS makes it (Swift does not): a request body is
 * hashed as it is forwarded, but the bytes that would complete it (the
 * last byte, or a chunked body's last chunk) are held back until the
 * hash is known.  On a mismatch the connection to the store is closed
 * instead, so the store sees a body cut short and keeps nothing, and the
 * client gets 400 XAmzContentSHA256Mismatch.
 *
 * Faults are decided per request, numbered from 1 in arrival order:
 * request N takes fault K when a "next" count of K is pending, or else
 * when splitmix64 of (seed, N, K) falls under K's probability.  A draw is
 * a function of (seed, N, K) only, so the same seed and the same order of
 * requests give the same faults, whatever came before.
 *
 * Link shaping makes loopback look like a link to a remote store: the
 * first byte of each reply from the store is held first-byte-ms after
 * the request's last byte was forwarded (a timer; reading the store's
 * side is disabled meanwhile, so the bytes wait in the kernel), and the
 * bytes to and from the store are paced, per connection and for all
 * connections together.  The pacing is libevent's own token buckets:
 * bufferevent_set_rate_limit on each store-side bufferevent (a bucket of
 * its own in each direction: replies are paced as they are read from the
 * store, request bodies as they are written to it) and one
 * bufferevent_rate_limit_group holding all of them (the aggregate cap).
 * They fit exactly: the buckets are refilled by libevent's timers, a
 * bufferevent whose bucket is empty is suspended without touching its
 * enable flags (which the HIGH_WATER pausing owns), and a group shares
 * what it has fairly among its members.  Backpressure is TCP's: what the
 * store sends past the cap waits in its socket, and a paced upload fills
 * the store side's output up to HIGH_WATER, then pauses the client.  The
 * buckets tick every SHAPE_TICK_MS and hold SHAPE_BURST_TICKS ticks'
 * worth, so a transfer never goes faster than its cap by more than that
 * burst.  A change of a rate applies to the group at once and to each
 * connection from its next request (a connection owns its bucket's
 * configuration, which libevent does not copy).
 *
 * The counters are written to the stats file (FILE.new, then renamed)
 * when a connection is accepted, a request is decided or done, or a fault
 * happens: always before the reply that shows it is sent.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/evp.h>

#include "http-frame.h"
#include "util.h"

#define CONTROL_LINE_MAX 4096           /* a command */
#define HIGH_WATER (4 * 1024 * 1024)    /* queued bytes that pause reading */
#define IO_MAX (1024 * 1024)            /* bytes per read or write call */
#define SHAPE_TICK_MS 10                /* token buckets' refill period */
#define SHAPE_BURST_TICKS 4             /* ticks' worth a bucket holds */
#define RATE_MAX 1000000000000ULL       /* 1T: the largest cap, bytes/s */

static void
usage (FILE *f)
{
  fputs (
"usage: store-proxy --upstream PORT --port-file FILE [OPTIONS]\n"
"       store-proxy ctl SOCKET CMD...\n"
"\n"
"An HTTP proxy on 127.0.0.1 (a port the kernel chooses, written to FILE)\n"
"in front of the store on 127.0.0.1:PORT, injecting faults.\n"
"  --control SOCKET     take commands on this Unix socket, one per line\n"
"  --stats FILE         keep the counters in FILE, \"NAME VALUE\" per line\n"
"  --log FILE           append \"N KIND METHOD PATH\" per fault (request N;\n"
"                       a cut body adds \"at BYTE\", where it was cut)\n"
"  --seed N             seed of the random faults (default 1)\n"
"  --lose-suffix SUFFIX, --lose-file FILE\n"
"                       while FILE exists, the next PUT with If-Match of a\n"
"                       key ending in SUFFIX reaches the store, its reply is\n"
"                       replaced by a 503 and FILE is removed; if FILE said\n"
"                       \"then-down\", the down file is created then\n"
"  --down-file FILE     while FILE exists, every request is answered 503\n"
"  --shape              a realistic link to a remote store: the same as\n"
"                       --first-byte-ms 30 --conn-rate 100M --total-rate 400M\n"
"  --first-byte-ms N, --conn-rate RATE, --total-rate RATE\n"
"                       set first-byte-ms, conn-rate, total-rate (below)\n"
"  --command CMD        run CMD (below) at start; repeatable, in order\n"
"  store-proxy ctl SOCKET CMD...   send CMD, print its reply; exit 1 on\n"
"                       an error\n"
"\n"
"Commands (a reply's last line is \"ok\" or \"error: WHY\"):\n"
"  set KIND P           probability P (0 to 1) of fault KIND per request\n"
"  set delay-ms N       length of a delay (default 1000)\n"
"  set error-status N   status of an error fault, 400 to 599 (default 503)\n"
"  set seed N           seed of the random draws\n"
"  set match TEXT       faults only for requests whose request line (method,\n"
"                       path and query) contains TEXT\n"
"                       (\"-\": every request, the default)\n"
"  set first-byte-ms N  hold the first byte of each reply from the store N ms\n"
"                       after the request's last byte was forwarded (0: off,\n"
"                       the default; not a fault: every request, no match)\n"
"  set conn-rate RATE   pace each connection's bytes to and from the store\n"
"                       to RATE bytes/s in each direction (0: no cap, the\n"
"                       default)\n"
"  set total-rate RATE  pace all connections together to RATE bytes/s in\n"
"                       each direction (0: no cap, the default)\n"
"                       A RATE is a number of bytes/s, with k, M or G for\n"
"                       10^3, 10^6, 10^9 (\"32M\"); a new rate applies to the\n"
"                       total at once, to a connection from its next request\n"
"  next N KIND          the next N requests that KIND applies to take it\n"
"  next N STATUS        the next N requests are answered STATUS (400-599)\n"
"  once KIND|STATUS     next 1 KIND|STATUS\n"
"  clear                every probability 0, every pending next dropped,\n"
"                       no match (the link shaping stays)\n"
"  stats                the counters, \"NAME VALUE\" per line\n"
"\n"
"Fault kinds (a body fault needs a body of known length, Content-Length):\n"
"  error          answered with error-status, the store not reached\n"
"  hang           never answered\n"
"  delay          held delay-ms before it is forwarded or answered\n"
"  reset          the reply is cut by a reset (RST) at a random point of\n"
"                 its body; a reply without one is lost (reset before it)\n"
"  truncate       the reply's body stops at a random point, then the\n"
"                 connection closes\n"
"  corrupt-put    the first byte of the request body is flipped on its way\n"
"                 (so the SHA-256 check refuses it)\n"
"  corrupt-range  the first byte of a 2xx ranged GET reply is flipped\n"
"  corrupt-doc    the first byte of a 2xx whole-object GET reply is flipped\n"
"Every request's body is checked against x-amz-content-sha256 (unless that\n"
"is UNSIGNED-PAYLOAD) and refused with 400 XAmzContentSHA256Mismatch.\n"
"\n"
"Counters: the kinds above, sha256-mismatch, lost-reply, down (answered\n"
"503 for the down file), requests, connections, forwarded, bytes-up (to the\n"
"store), bytes-down (from the store).\n", f);
}

/* Fault kinds, and the counters: count[K] counts fault K. */
enum counter {
  K_ERROR, K_HANG, K_DELAY, K_RESET, K_TRUNCATE, K_CORRUPT_PUT,
  K_CORRUPT_RANGE, K_CORRUPT_DOC, KINDS,
  N_SHA_MISMATCH = KINDS, N_LOST_REPLY, N_DOWN, N_REQUESTS, N_CONNECTIONS,
  N_FORWARDED, N_BYTES_UP, N_BYTES_DOWN, COUNTERS
};
static const char *const counter_name[COUNTERS] = {
  "error", "hang", "delay", "reset", "truncate", "corrupt-put",
  "corrupt-range", "corrupt-doc", "sha256-mismatch", "lost-reply", "down",
  "requests", "connections", "forwarded", "bytes-up", "bytes-down",
};
#define DRAW_CUT KINDS          /* the draw that places a cut in a body */

static struct {
  struct event_base *base;
  struct sockaddr_in upstream;
  const char *stats_path, *lose_suffix, *lose_path, *down_path;
  FILE *log;
  /* Settings, changed by commands. */
  uint64_t seed;
  double p[KINDS];
  unsigned next[KINDS];
  int next_status;              /* of "next N STATUS"; 0: error_status */
  int error_status;
  unsigned delay_ms;
  char match[256];              /* faults only if the request line has it */
  unsigned first_byte_ms;       /* link shaping: a reply's first byte */
  uint64_t conn_rate, total_rate;       /* bytes/s each way; 0: no cap */
  unsigned shape_gen;           /* bumped when a rate changes */
  struct bufferevent_rate_limit_group *group;   /* of total_rate, made
                                                 * at its first use */
  uint64_t count[COUNTERS];
} px = { .seed = 1, .error_status = 503, .delay_ms = 1000, .shape_gen = 1 };

static void *
check_alloc (void *p)
{
  if (p == NULL) {
    fprintf (stderr, "store-proxy: out of memory\n");
    exit (1);
  }
  return p;
}

/* ---- Counters and random draws ---- */

static size_t
stats_text (char *buf, size_t size)
{
  size_t n = 0;

  for (int i = 0; i < COUNTERS; i++)
    n += snprintf (buf + n, size - n, "%s %" PRIu64 "\n", counter_name[i],
                   px.count[i]);
  return n;
}

static void
stats_write (void)
{
  char text[1024], tmp[4096];
  size_t n = stats_text (text, sizeof text);
  FILE *f;

  if (px.stats_path == NULL)
    return;
  snprintf (tmp, sizeof tmp, "%s.new", px.stats_path);
  f = fopen (tmp, "w");
  if (f == NULL || fwrite (text, 1, n, f) != n || fclose (f) == EOF ||
      rename (tmp, px.stats_path) == -1)
    fprintf (stderr, "store-proxy: %s: %m\n", px.stats_path);
}

static uint64_t
splitmix64 (uint64_t x)
{
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

/* The draw WHAT of request N: a function of the seed, N and WHAT only. */
static uint64_t
draw (uint64_t n, unsigned what)
{
  return splitmix64 (splitmix64 (px.seed ^ splitmix64 (n)) + what);
}

/* MS milliseconds, as a timeval. */
static struct timeval
ms_timeval (unsigned ms)
{
  return (struct timeval) { ms / 1000, ms % 1000 * 1000 };
}

/* ---- Connections ---- */

enum state {
  S_HEAD,                       /* waiting for a request head */
  S_DELAY,                      /* holding the request: a delay fault */
  S_BODY,                       /* passing or dropping the request body */
  S_WAIT,                       /* request done; the reply is coming */
  S_HANG,                       /* never answering; input is dropped */
  S_CLOSING,                    /* writing what is queued, then closing */
};
enum action { FORWARD, ANSWER, HANG };

struct conn {
  struct bufferevent *client, *store;
  struct event *timer;          /* ends a delay */
  struct event *hold;           /* ends the hold of a reply's first byte */
  struct ev_token_bucket_cfg *bucket;   /* the store side's conn-rate */
  unsigned shape_gen;           /* px.shape_gen the store side has; 0:
                                 * none (a new store side) */
  struct evbuffer *held;        /* the end of a body being checked */
  EVP_MD_CTX *sha;
  enum state state;
  /* The exchange in progress. */
  uint64_t n;                   /* the request's number */
  struct frame_head req, rep;
  struct frame_body rq, rp;
  enum action action;
  int status;                   /* ANSWER: with this status, */
  enum counter why;             /*   counted under this counter */
  bool check_sha;
  char sha_want[65];            /* the signed SHA-256, "" if not hex */
  bool delay, lose, lose_reply, reply_started, req_done, reply_done;
  bool holding;                 /* the store's reply is held (hold) */
  bool close_after;             /* close the client after this reply */
  bool store_closes;            /* close the store after this reply */
  bool rst;                     /* close the client with a reset */
  bool client_paused, store_paused;     /* reading paused: the other
                                         * side's output is full */
};

/* Does C's request take fault K?  Not if "set match" names what its
 * request line lacks; else a pending "next" first, else K's odds.
 */
static bool
take (struct conn *c, enum counter k)
{
  if (px.match[0] && memmem (c->req.head, strcspn (c->req.head, "\r"),
                             px.match, strlen (px.match)) == NULL)
    return false;
  if (px.next[k] > 0) {
    px.next[k]--;
    return true;
  }
  return px.p[k] > 0 && (double) (draw (c->n, k) >> 11) * 0x1p-53 < px.p[k];
}

static void client_read (struct bufferevent *bev, void *arg);
static void client_write (struct bufferevent *bev, void *arg);
static void client_event (struct bufferevent *bev, short what, void *arg);
static void store_read (struct bufferevent *bev, void *arg);
static void store_write (struct bufferevent *bev, void *arg);
static void store_event (struct bufferevent *bev, short what, void *arg);
static void request_body (struct conn *c);
static void reply_body (struct conn *c);
static void hold_done (evutil_socket_t fd, short what, void *arg);

static void
note (struct conn *c, enum counter what)
{
  bool cut = what == K_RESET || what == K_TRUNCATE;

  px.count[what]++;
  if (px.log && cut && c->rp.cut_at > 0)
    fprintf (px.log, "%" PRIu64 " %s %s %s at %" PRIu64 "\n", c->n,
             counter_name[what], c->req.method, c->req.path, c->rp.cut_at);
  else if (px.log)
    fprintf (px.log, "%" PRIu64 " %s %s %s\n", c->n, counter_name[what],
             c->req.method, c->req.path);
  stats_write ();
}

static void
bev_setup (struct bufferevent *bev, bufferevent_data_cb readcb,
           bufferevent_data_cb writecb, bufferevent_event_cb eventcb,
           struct conn *c)
{
  int one = 1;

  setsockopt (bufferevent_getfd (bev), IPPROTO_TCP, TCP_NODELAY, &one,
              sizeof one);
  bufferevent_setcb (bev, readcb, writecb, eventcb, c);
  bufferevent_setwatermark (bev, EV_READ, 0, HIGH_WATER);
  bufferevent_setwatermark (bev, EV_WRITE, HIGH_WATER / 2, 0);
  bufferevent_set_max_single_read (bev, IO_MAX);
  bufferevent_set_max_single_write (bev, IO_MAX);
  bufferevent_enable (bev, EV_READ | EV_WRITE);
}

static void
store_close (struct conn *c)
{
  if (c->store)
    bufferevent_free (c->store);   /* leaves the group, drops its bucket */
  c->store = NULL;
  c->store_paused = false;
  event_del (c->hold);
  c->holding = false;
  c->shape_gen = 0;
}

static void
conn_free (struct conn *c)
{
  if (c->rst) {
    struct linger l = { .l_onoff = 1, .l_linger = 0 };
    setsockopt (bufferevent_getfd (c->client), SOL_SOCKET, SO_LINGER, &l,
                sizeof l);
  }
  bufferevent_free (c->client);
  store_close (c);
  event_free (c->timer);
  event_free (c->hold);
  if (c->bucket)
    ev_token_bucket_cfg_free (c->bucket);
  evbuffer_free (c->held);
  EVP_MD_CTX_free (c->sha);
  frame_head_clear (&c->req);
  frame_head_clear (&c->rep);
  free (c);
}

/* Stop reading from the client, drop the store side, and close the
 * client once what is queued for it is written: with a reset if RST.
 * C may be freed: the caller returns.
 */
static void
conn_close (struct conn *c, bool rst)
{
  c->state = S_CLOSING;
  c->rst = rst;
  store_close (c);
  event_del (c->timer);
  bufferevent_disable (c->client, EV_READ);
  if (evbuffer_get_length (bufferevent_get_output (c->client)) == 0)
    conn_free (c);
  else
    bufferevent_setwatermark (c->client, EV_WRITE, 0, 0);
}

/* Both halves of the exchange are done: on to the next request. */
static void
exchange_done (struct conn *c)
{
  struct evbuffer *in = bufferevent_get_input (c->client);

  frame_head_clear (&c->req);
  frame_head_clear (&c->rep);
  c->delay = c->lose = c->lose_reply = c->reply_started = false;
  c->req_done = c->reply_done = c->check_sha = false;
  stats_write ();
  if (c->close_after) {
    conn_close (c, false);
    return;
  }
  c->state = S_HEAD;
  if (evbuffer_get_length (in) > 0)
    bufferevent_trigger (c->client, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

static const char *
s3_code (int status)
{
  switch (status) {
  case 403: return "AccessDenied";
  case 404: return "NoSuchKey";
  case 412: return "PreconditionFailed";
  case 429: case 503: return "SlowDown";
  case 501: return "NotImplemented";
  default: return status >= 500 ? "InternalError" : "InvalidRequest";
  }
}

/* Answer the request with STATUS and an S3 error document of CODE and
 * MESSAGE, in place of the store's reply.  C may be freed.
 */
static void
answer (struct conn *c, int status, const char *code, const char *message)
{
  struct evbuffer *out = bufferevent_get_output (c->client);
  char body[512];
  int n = snprintf (body, sizeof body,
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>"
                    "%s</Code><Message>%s</Message></Error>", code, message);

  evbuffer_add_printf (out, "HTTP/1.1 %d %s\r\nContent-Type: application/xml"
                       "\r\nContent-Length: %d\r\n%s\r\n", status, code, n,
                       c->close_after ? "Connection: close\r\n" : "");
  if (strcmp (c->req.method, "HEAD") != 0)
    evbuffer_add (out, body, n);
  c->reply_done = true;
  if (c->req_done)
    exchange_done (c);
}

static void
bad_request (struct conn *c)
{
  c->close_after = c->req_done = true;
  store_close (c);
  answer (c, 400, "InvalidRequest", "malformed request");
}

/* What to do with the request whose head was just read. */
static void
decide (struct conn *c)
{
  bool forced = px.next[K_ERROR] > 0;
  size_t len;
  const char *v;

  c->action = FORWARD;
  if (take (c, K_ERROR)) {
    c->action = ANSWER;
    c->why = K_ERROR;
    c->status = forced && px.next_status ? px.next_status : px.error_status;
  }
  else if (take (c, K_HANG))
    c->action = HANG;
  else if (px.down_path && access (px.down_path, F_OK) == 0) {
    c->action = ANSWER;
    c->why = N_DOWN;
    c->status = 503;
  }
  c->delay = c->action != HANG && take (c, K_DELAY);

  v = frame_header (&c->req, "x-amz-content-sha256", &len);
  c->check_sha = !(v && len == 16 && memcmp (v, "UNSIGNED-PAYLOAD", 16) == 0);
  snprintf (c->sha_want, sizeof c->sha_want, "%.*s", v && len == 64 ? 64 : 0,
            v ? v : "");

  len = px.lose_suffix ? strlen (px.lose_suffix) : 0;
  c->lose = px.lose_suffix && strcmp (c->req.method, "PUT") == 0 &&
    frame_header (&c->req, "If-Match", &(size_t) { 0 }) &&
    strlen (c->req.path) >= len &&
    strcmp (c->req.path + strlen (c->req.path) - len, px.lose_suffix) == 0;
  c->close_after = frame_has (&c->req, "Connection", "close") ||
    (c->req.minor == 0 && !frame_has (&c->req, "Connection", "keep-alive"));
}

/* ---- Link shaping ---- */

/* A token bucket of RATE bytes/s in each direction (see the top). */
static struct ev_token_bucket_cfg *
shape_bucket (uint64_t rate)
{
  const struct timeval tick = ms_timeval (SHAPE_TICK_MS);
  size_t per_tick = rate * SHAPE_TICK_MS / 1000;

  if (per_tick == 0)
    per_tick = 1;
  return check_alloc (ev_token_bucket_cfg_new (per_tick,
                                               per_tick * SHAPE_BURST_TICKS,
                                               per_tick,
                                               per_tick * SHAPE_BURST_TICKS,
                                               &tick));
}

/* Set *RATE, a cap of px, to V; the group takes a new total at once
 * (none: as good as no cap, until its members leave it).
 */
static void
shape_set (uint64_t *rate, uint64_t v)
{
  *rate = v;
  px.shape_gen++;
  if (px.group) {
    struct ev_token_bucket_cfg *cfg =
      shape_bucket (px.total_rate ? px.total_rate : RATE_MAX);
    bufferevent_rate_limit_group_set_cfg (px.group, cfg);    /* copied */
    ev_token_bucket_cfg_free (cfg);
  }
}

/* Give C's store side the caps of px, unless it has them already. */
static void
shape_apply (struct conn *c)
{
  struct ev_token_bucket_cfg *old = c->bucket;

  if (c->shape_gen == px.shape_gen)
    return;
  if (px.total_rate && px.group == NULL) {
    struct ev_token_bucket_cfg *cfg = shape_bucket (px.total_rate);
    px.group = check_alloc (bufferevent_rate_limit_group_new (px.base, cfg));
    ev_token_bucket_cfg_free (cfg);
  }
  c->bucket = px.conn_rate ? shape_bucket (px.conn_rate) : NULL;
  /* These fail only when out of memory. */
  if (bufferevent_set_rate_limit (c->store, c->bucket) == -1 ||
      (px.total_rate
       ? bufferevent_add_to_rate_limit_group (c->store, px.group)
       : bufferevent_remove_from_rate_limit_group (c->store)) == -1)
    check_alloc (NULL);
  if (old)
    ev_token_bucket_cfg_free (old);     /* no bufferevent uses it now */
  c->shape_gen = px.shape_gen;
}

/* The request was forwarded whole: hold the store's reply first-byte-ms.
 * Reading the store's side stays disabled until hold_done.
 */
static void
hold_start (struct conn *c)
{
  const struct timeval tv = ms_timeval (px.first_byte_ms);

  c->holding = true;
  bufferevent_disable (c->store, EV_READ);
  /* The timer counts from the loop's cached time, which is when this
   * round of callbacks began: without the update, it fires that early.
   */
  event_base_update_cache_time (px.base);
  evtimer_add (c->hold, &tv);
}

static void
hold_done (evutil_socket_t fd, short what, void *arg)
{
  struct conn *c = arg;

  assert (c->holding && c->store);      /* store_close deletes the timer */
  c->holding = false;
  bufferevent_enable (c->store, EV_READ);
  store_read (c->store, c);
}

/* ---- Exchanges ---- */

static int
store_open (struct conn *c)
{
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  if (fd == -1)
    return -1;
  c->store = check_alloc (bufferevent_socket_new (px.base, fd,
                                                  BEV_OPT_CLOSE_ON_FREE));
  bev_setup (c->store, store_read, store_write, store_event, c);
  if (bufferevent_socket_connect (c->store,
                                  (struct sockaddr *) &px.upstream,
                                  sizeof px.upstream) == -1) {
    store_close (c);
    return -1;
  }
  return 0;
}

/* Start on the request whose head was read (and held, for a delay). */
static void
request_start (struct conn *c)
{
  struct evbuffer *in = bufferevent_get_input (c->client);

  if (frame_body_start (&c->rq, &c->req, false) == -1) {
    bad_request (c);
    return;
  }
  if (c->check_sha) {
    EVP_DigestInit_ex (c->sha, EVP_sha256 (), NULL);
    c->rq.sha = c->sha;
  }
  if (c->action == FORWARD) {
    struct evbuffer *out;
    if (c->store == NULL && store_open (c) == -1) {
      conn_close (c, false);
      return;
    }
    shape_apply (c);
    out = bufferevent_get_output (c->store);
    if (c->check_sha)
      c->rq.held = c->held;
    if (c->rq.state == FRAME_B_LENGTH && take (c, K_CORRUPT_PUT)) {
      c->rq.flip_at = 0;
      note (c, K_CORRUPT_PUT);
    }
    px.count[N_FORWARDED]++;
    px.count[N_BYTES_UP] += c->req.len;
    evbuffer_remove_buffer (in, out, c->req.len);
  }
  else {
    evbuffer_drain (in, c->req.len);
    if (c->action == ANSWER && frame_has (&c->req, "Expect", "100-continue"))
      evbuffer_add_printf (bufferevent_get_output (c->client),
                           "HTTP/1.1 100 Continue\r\n\r\n");
  }
  c->state = S_BODY;
  request_body (c);
}

static void
delay_done (evutil_socket_t fd, short what, void *arg)
{
  request_start (arg);
}

static void
request_head (struct conn *c)
{
  int r = frame_head_take (&c->req, bufferevent_get_input (c->client), true);

  if (r == 0)
    return;
  if (r == -1) {
    bad_request (c);
    return;
  }
  c->n = ++px.count[N_REQUESTS];
  decide (c);
  stats_write ();
  if (c->delay) {
    const struct timeval tv = ms_timeval (px.delay_ms);
    note (c, K_DELAY);
    c->state = S_DELAY;
    evtimer_add (c->timer, &tv);
    return;
  }
  request_start (c);
}

/* The whole request body has been read: check it, then answer, release
 * it to the store, or hang.
 */
static void
request_done (struct conn *c)
{
  unsigned char md[32];
  char hex[65];

  c->req_done = true;
  c->state = S_WAIT;
  if (c->check_sha) {
    EVP_DigestFinal_ex (c->sha, md, NULL);
    hex_encode (md, sizeof md, hex);
    if (strcmp (hex, c->sha_want) != 0) {
      note (c, N_SHA_MISMATCH);
      if (c->action == FORWARD && c->reply_started) {
        conn_close (c, false);  /* the store answered early: cannot
                                 * answer again */
        return;
      }
      /* The store sees the body cut short, and keeps nothing. */
      store_close (c);
      evbuffer_drain (c->held, evbuffer_get_length (c->held));
      answer (c, 400, "XAmzContentSHA256Mismatch", "The provided "
              "'x-amz-content-sha256' header does not match what was "
              "computed.");
      return;
    }
  }
  switch (c->action) {
  case FORWARD:
    px.count[N_BYTES_UP] += evbuffer_get_length (c->held);
    evbuffer_add_buffer (bufferevent_get_output (c->store), c->held);
    if (c->reply_done)
      exchange_done (c);
    else if (!c->reply_started && px.first_byte_ms > 0)
      hold_start (c);
    return;
  case ANSWER:
    note (c, c->why);
    answer (c, c->status, s3_code (c->status), "injected");
    return;
  case HANG:
    note (c, K_HANG);
    c->state = S_HANG;
    client_read (c->client, c);
    return;
  }
}

/* Move what FROM has read of body B to OUT (NULL: drop it), counting
 * the bytes under COUNTER; while OUT holds more than HIGH_WATER bytes,
 * FROM is not read (*PAUSED, until OUT's side has written them).
 */
static enum frame_pump
pump (struct frame_body *b, struct bufferevent *from, struct evbuffer *out,
      enum counter counter, bool *paused)
{
  size_t before = out ? evbuffer_get_length (out) : 0;
  enum frame_pump r = frame_body_pump (b, bufferevent_get_input (from), out);

  if (out) {
    px.count[counter] += evbuffer_get_length (out) - before;
    if (r == FRAME_MORE && evbuffer_get_length (out) > HIGH_WATER) {
      bufferevent_disable (from, EV_READ);
      *paused = true;
    }
  }
  return r;
}

static void
request_body (struct conn *c)
{
  struct evbuffer *out = c->action == FORWARD
    ? bufferevent_get_output (c->store) : NULL;

  switch (pump (&c->rq, c->client, out, N_BYTES_UP, &c->client_paused)) {
  case FRAME_MORE:
    return;
  case FRAME_DONE:
    request_done (c);
    return;
  case FRAME_CUT:                /* requests are never cut */
  case FRAME_BAD:
    if (c->action == FORWARD)
      conn_close (c, false);
    else
      bad_request (c);
    return;
  }
}

static void
client_read (struct bufferevent *bev, void *arg)
{
  struct conn *c = arg;
  struct evbuffer *in = bufferevent_get_input (bev);

  switch (c->state) {
  case S_HEAD: request_head (c); return;
  case S_BODY: request_body (c); return;
  case S_HANG: evbuffer_drain (in, evbuffer_get_length (in)); return;
  case S_DELAY: case S_WAIT: case S_CLOSING: return;  /* bytes wait */
  }
}

static void
client_write (struct bufferevent *bev, void *arg)
{
  struct conn *c = arg;

  if (c->state == S_CLOSING) {
    if (evbuffer_get_length (bufferevent_get_output (bev)) == 0)
      conn_free (c);
    return;
  }
  if (c->store_paused) {
    c->store_paused = false;
    bufferevent_enable (c->store, EV_READ);
    reply_body (c);
  }
}

static void
client_event (struct bufferevent *bev, short what, void *arg)
{
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
    conn_free (arg);
}

/* Is the lose file there?  Then remove it, and if it said "then-down",
 * create the down file.
 */
static bool
lose_trigger (void)
{
  char said[32] = "";
  FILE *f = fopen (px.lose_path, "r");
  int fd;

  if (f == NULL)
    return false;
  if (fgets (said, sizeof said, f) == NULL)
    said[0] = '\0';
  fclose (f);
  unlink (px.lose_path);
  said[strcspn (said, " \t\r\n")] = '\0';
  if (strcmp (said, "then-down") == 0 && px.down_path &&
      (fd = open (px.down_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) >= 0)
    close (fd);
  return true;
}

/* The store's reply head was read: decide its faults and pass it on. */
static void
reply_start (struct conn *c)
{
  struct evbuffer *in = bufferevent_get_input (c->store);
  struct evbuffer *out = bufferevent_get_output (c->client);
  uint64_t length;

  c->reply_started = true;
  if (frame_body_start (&c->rp, &c->rep, strcmp (c->req.method, "HEAD") == 0)
      == -1) {
    conn_close (c, false);
    return;
  }
  c->close_after |= c->rp.state == FRAME_B_CLOSE;
  c->store_closes = c->rp.state == FRAME_B_CLOSE ||
    frame_has (&c->rep, "Connection", "close");
  if (c->lose && px.lose_path && lose_trigger ()) {
    c->lose_reply = true;
    note (c, N_LOST_REPLY);
    evbuffer_drain (in, c->rep.len);
    reply_body (c);
    return;
  }
  length = c->rp.state == FRAME_B_LENGTH ? c->rp.length : 0;
  if (take (c, K_RESET)) {
    c->rst = true;
    c->rp.cut_at = length ? draw (c->n, DRAW_CUT) % length : 0;
    note (c, K_RESET);
    if (c->rp.state == FRAME_B_DONE) {        /* no body: the reply is lost */
      conn_close (c, true);
      return;
    }
  }
  else if (length && take (c, K_TRUNCATE)) {
    c->rp.cut_at = draw (c->n, DRAW_CUT) % length;
    note (c, K_TRUNCATE);
  }
  if (length && c->rp.cut_at > 0 && c->rep.status / 100 == 2 &&
      strcmp (c->req.method, "GET") == 0) {
    enum counter k = frame_header (&c->req, "Range", &(size_t) { 0 })
      ? K_CORRUPT_RANGE : K_CORRUPT_DOC;
    if (take (c, k)) {
      c->rp.flip_at = 0;
      note (c, k);
    }
  }
  px.count[N_BYTES_DOWN] += c->rep.len;
  evbuffer_remove_buffer (in, out, c->rep.len);
  reply_body (c);
}

static void
reply_done (struct conn *c)
{
  c->reply_done = true;
  if (c->store_closes)
    store_close (c);
  if (c->store_closes && !c->req_done) {
    conn_close (c, false);      /* the rest of the request has nowhere to go */
    return;
  }
  if (c->lose_reply) {
    answer (c, 503, "SlowDown", "injected");
    return;
  }
  if (c->req_done)
    exchange_done (c);
}

static void
reply_body (struct conn *c)
{
  struct evbuffer *out = c->lose_reply ? NULL
    : bufferevent_get_output (c->client);

  switch (pump (&c->rp, c->store, out, N_BYTES_DOWN, &c->store_paused)) {
  case FRAME_MORE:
    return;
  case FRAME_DONE:
    reply_done (c);
    return;
  case FRAME_CUT:
    conn_close (c, c->rst);
    return;
  case FRAME_BAD:
    conn_close (c, false);
    return;
  }
}

/* Is a reply from the store expected now? */
static bool
awaiting_reply (const struct conn *c)
{
  return c->action == FORWARD && (c->state == S_BODY || c->state == S_WAIT)
    && !c->reply_done;
}

/* The store's side ended, or sent what nobody asked for.  If a request
 * is being forwarded (its body or its reply), the client is hung up on
 * too, as the store hung up on the proxy; else the next request opens a
 * new connection.  C may be freed.
 */
static void
store_gone (struct conn *c)
{
  if (awaiting_reply (c) || (c->action == FORWARD && c->state == S_BODY))
    conn_close (c, false);
  else
    store_close (c);
}

static void
store_read (struct bufferevent *bev, void *arg)
{
  struct conn *c = arg;
  struct evbuffer *in = bufferevent_get_input (bev);

  if (!awaiting_reply (c)) {
    store_gone (c);
    return;
  }
  while (!c->reply_started) {
    int r = frame_head_take (&c->rep, in, false);
    if (r == 0)
      return;
    if (r == -1) {
      conn_close (c, false);
      return;
    }
    if (c->rep.status / 100 != 1) {
      reply_start (c);
      return;
    }
    /* An interim reply (100 Continue) goes through as it is. */
    if (c->lose)
      evbuffer_drain (in, c->rep.len);
    else
      evbuffer_remove_buffer (in, bufferevent_get_output (c->client),
                              c->rep.len);
    frame_head_clear (&c->rep);
  }
  reply_body (c);
}

static void
store_write (struct bufferevent *bev, void *arg)
{
  struct conn *c = arg;

  if (c->client_paused) {
    c->client_paused = false;
    bufferevent_enable (c->client, EV_READ);
    request_body (c);
  }
}

static void
store_event (struct bufferevent *bev, short what, void *arg)
{
  struct conn *c = arg;

  if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
    return;
  if (awaiting_reply (c) && c->reply_started && c->rp.state == FRAME_B_CLOSE) {
    c->rp.eof = true;           /* the end of a body delimited by close */
    reply_body (c);
    return;
  }
  store_gone (c);
}

static void
on_accept (struct evconnlistener *l, evutil_socket_t fd,
           struct sockaddr *sa, int salen, void *arg)
{
  struct conn *c = check_alloc (calloc (1, sizeof *c));

  c->client = check_alloc (bufferevent_socket_new (px.base, fd,
                                                   BEV_OPT_CLOSE_ON_FREE));
  c->timer = check_alloc (evtimer_new (px.base, delay_done, c));
  c->hold = check_alloc (evtimer_new (px.base, hold_done, c));
  c->held = check_alloc (evbuffer_new ());
  c->sha = check_alloc (EVP_MD_CTX_new ());
  bev_setup (c->client, client_read, client_write, client_event, c);
  px.count[N_CONNECTIONS]++;
  stats_write ();
}

/* ---- Commands ---- */

static bool
parse_u64 (const char *s, uint64_t max, uint64_t *out)
{
  char *end;

  if (*s < '0' || *s > '9')
    return false;
  errno = 0;
  *out = strtoull (s, &end, 10);
  return errno == 0 && *end == '\0' && *out <= max;
}

/* A RATE of the commands: digits, then k, M or G for 10^3, 10^6, 10^9. */
static bool
parse_rate (const char *s, uint64_t *out)
{
  static const char units[] = "kMG";
  size_t n = strlen (s);
  const char *unit = n > 0 ? strchr (units, s[n - 1]) : NULL;
  uint64_t scale = 1;
  char digits[32];

  if (unit)
    for (const char *u = units; u <= unit; u++)
      scale *= 1000;
  if (n >= sizeof digits)
    return false;
  snprintf (digits, sizeof digits, "%.*s", (int) (n - (unit != NULL)), s);
  if (!parse_u64 (digits, RATE_MAX / scale, out))
    return false;
  *out *= scale;
  return true;
}

static int
kind_of (const char *name)
{
  for (int k = 0; k < KINDS; k++)
    if (strcmp (name, counter_name[k]) == 0)
      return k;
  return -1;
}

static int
cmd_set (const char *name, const char *value)
{
  int k = kind_of (name);
  uint64_t v;
  char *end;

  if (k >= 0) {
    double p = strtod (value, &end);
    if (end == value || *end || !(p >= 0 && p <= 1))
      return -1;
    px.p[k] = p;
  }
  else if (strcmp (name, "delay-ms") == 0 && parse_u64 (value, 3600000, &v))
    px.delay_ms = v;
  else if (strcmp (name, "error-status") == 0 &&
           parse_u64 (value, 599, &v) && v >= 400)
    px.error_status = v;
  else if (strcmp (name, "seed") == 0 && parse_u64 (value, UINT64_MAX, &v))
    px.seed = v;
  else if (strcmp (name, "first-byte-ms") == 0 &&
           parse_u64 (value, 3600000, &v))
    px.first_byte_ms = v;
  else if (strcmp (name, "conn-rate") == 0 && parse_rate (value, &v))
    shape_set (&px.conn_rate, v);
  else if (strcmp (name, "total-rate") == 0 && parse_rate (value, &v))
    shape_set (&px.total_rate, v);
  else if (strcmp (name, "match") == 0 && strlen (value) < sizeof px.match)
    snprintf (px.match, sizeof px.match, "%s", strcmp (value, "-") == 0
              ? "" : value);
  else
    return -1;
  return 0;
}

static int
cmd_next (const char *count, const char *what)
{
  int k = kind_of (what);
  uint64_t n, status = 0;

  if (!parse_u64 (count, UINT_MAX, &n) ||
      (k == -1 && (!parse_u64 (what, 599, &status) || status < 400)))
    return -1;
  if (k == -1 || k == K_ERROR) {
    k = K_ERROR;
    px.next_status = status;
  }
  px.next[k] = n;
  return 0;
}

/* Run command LINE; its reply, whose last line is "ok" or "error: ...",
 * goes to OUT.  0, or -1 if the command was refused.
 */
static int
command (char *line, struct evbuffer *out)
{
  char *w[4], *save = NULL;
  int n = 0, r = -1;

  for (char *t = strtok_r (line, " \t\r", &save); t;
       t = strtok_r (NULL, " \t\r", &save))
    w[n < 4 ? n++ : n] = t;
  if (n == 3 && strcmp (w[0], "set") == 0)
    r = cmd_set (w[1], w[2]);
  else if (n == 3 && strcmp (w[0], "next") == 0)
    r = cmd_next (w[1], w[2]);
  else if (n == 2 && strcmp (w[0], "once") == 0)
    r = cmd_next ("1", w[1]);
  else if (n == 1 && strcmp (w[0], "clear") == 0) {
    memset (px.p, 0, sizeof px.p);
    memset (px.next, 0, sizeof px.next);
    px.match[0] = '\0';
    r = 0;
  }
  else if (n == 1 && strcmp (w[0], "stats") == 0) {
    char text[1024];
    evbuffer_add (out, text, stats_text (text, sizeof text));
    r = 0;
  }
  evbuffer_add_printf (out, "%s\n", r == 0 ? "ok" :
                       "error: unknown command or bad value "
                       "(see store-proxy --help)");
  return r;
}

static void
control_read (struct bufferevent *bev, void *arg)
{
  struct evbuffer *in = bufferevent_get_input (bev);
  char *line;

  while ((line = evbuffer_readln (in, NULL, EVBUFFER_EOL_LF)) != NULL) {
    command (line, bufferevent_get_output (bev));
    free (line);
  }
  if (evbuffer_get_length (in) > CONTROL_LINE_MAX)
    bufferevent_free (bev);
}

static void
control_event (struct bufferevent *bev, short what, void *arg)
{
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
    bufferevent_free (bev);
}

static void
control_accept (struct evconnlistener *l, evutil_socket_t fd,
                struct sockaddr *sa, int salen, void *arg)
{
  struct bufferevent *bev =
    check_alloc (bufferevent_socket_new (px.base, fd, BEV_OPT_CLOSE_ON_FREE));

  bufferevent_setcb (bev, control_read, NULL, control_event, NULL);
  bufferevent_enable (bev, EV_READ | EV_WRITE);
}

/* store-proxy ctl SOCKET WORD...: one command, its reply to stdout (an
 * error to stderr, exit 1).
 */
static int
ctl_main (int argc, char **argv)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  char *line = NULL;
  size_t size = 0;
  FILE *f;
  int fd;

  if (argc < 2 || strlen (argv[0]) >= sizeof addr.sun_path) {
    usage (stderr);
    return 2;
  }
  strcpy (addr.sun_path, argv[0]);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1 || connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1 ||
      (f = fdopen (fd, "r+")) == NULL) {
    fprintf (stderr, "store-proxy ctl: %s: %m\n", argv[0]);
    return 1;
  }
  for (int i = 1; i < argc; i++)
    fprintf (f, "%s%c", argv[i], i + 1 < argc ? ' ' : '\n');
  fflush (f);
  while (getline (&line, &size, f) != -1) {
    if (strcmp (line, "ok\n") == 0)
      return 0;
    if (strncmp (line, "error:", 6) == 0) {
      fprintf (stderr, "store-proxy ctl: %s", line);
      return 1;
    }
    fputs (line, stdout);
  }
  fprintf (stderr, "store-proxy ctl: no reply\n");
  return 1;
}

/* ---- Start ---- */

static void
die (const char *what)
{
  fprintf (stderr, "store-proxy: %s: %m\n", what);
  exit (1);
}

static void
on_signal (evutil_socket_t sig, short what, void *arg)
{
  event_base_loopexit (px.base, NULL);
}

static void
write_port (const char *path, struct evconnlistener *l)
{
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  char tmp[4096];
  FILE *f;

  if (getsockname (evconnlistener_get_fd (l), (struct sockaddr *) &sin,
                   &len) == -1)
    die ("getsockname");
  snprintf (tmp, sizeof tmp, "%s.new", path);
  if ((f = fopen (tmp, "w")) == NULL ||
      fprintf (f, "%d\n", ntohs (sin.sin_port)) < 0 || fclose (f) == EOF ||
      rename (tmp, path) == -1)
    die (path);
}

static struct evconnlistener *
control_listen (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct stat sb;
  struct evconnlistener *l;

  if (strlen (path) >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    die (path);
  }
  strcpy (addr.sun_path, path);
  if (lstat (path, &sb) == 0 && S_ISSOCK (sb.st_mode))
    unlink (path);              /* left by a proxy that was killed */
  l = evconnlistener_new_bind (px.base, control_accept, NULL,
                               LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                               8, (struct sockaddr *) &addr, sizeof addr);
  if (l == NULL)
    die (path);
  return l;
}

int
main (int argc, char **argv)
{
  enum { OPT_UPSTREAM = 256, OPT_PORT_FILE, OPT_CONTROL, OPT_STATS, OPT_LOG,
         OPT_SEED, OPT_LOSE_SUFFIX, OPT_LOSE_FILE, OPT_DOWN_FILE,
         OPT_SHAPE, OPT_FIRST_BYTE_MS, OPT_CONN_RATE, OPT_TOTAL_RATE,
         OPT_COMMAND, OPT_HELP };
  static const struct option opts[] = {
    { "upstream", required_argument, NULL, OPT_UPSTREAM },
    { "port-file", required_argument, NULL, OPT_PORT_FILE },
    { "control", required_argument, NULL, OPT_CONTROL },
    { "stats", required_argument, NULL, OPT_STATS },
    { "log", required_argument, NULL, OPT_LOG },
    { "seed", required_argument, NULL, OPT_SEED },
    { "lose-suffix", required_argument, NULL, OPT_LOSE_SUFFIX },
    { "lose-file", required_argument, NULL, OPT_LOSE_FILE },
    { "down-file", required_argument, NULL, OPT_DOWN_FILE },
    { "shape", no_argument, NULL, OPT_SHAPE },
    /* These four are "set NAME VALUE" commands of the same name. */
    { "first-byte-ms", required_argument, NULL, OPT_FIRST_BYTE_MS },
    { "conn-rate", required_argument, NULL, OPT_CONN_RATE },
    { "total-rate", required_argument, NULL, OPT_TOTAL_RATE },
    { "command", required_argument, NULL, OPT_COMMAND },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 }
  };
  struct sockaddr_in sin = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  const char *port_file = NULL, *control_path = NULL;
  struct evconnlistener *listener;
  struct evbuffer *reply;
  struct event *sigs[2];
  uint64_t port = 0;
  char set_cmd[CONTROL_LINE_MAX];
  int c, i;

  if (argc >= 2 && strcmp (argv[1], "ctl") == 0)
    return ctl_main (argc - 2, argv + 2);
  signal (SIGPIPE, SIG_IGN);
  reply = check_alloc (evbuffer_new ());
  while ((c = getopt_long (argc, argv, "", opts, &i)) != -1) {
    char *cmd = NULL;
    switch (c) {
    case OPT_UPSTREAM:
      if (!parse_u64 (optarg, 65535, &port) || port == 0) {
        fprintf (stderr, "store-proxy: bad --upstream port %s\n", optarg);
        return 2;
      }
      break;
    case OPT_PORT_FILE: port_file = optarg; break;
    case OPT_CONTROL: control_path = optarg; break;
    case OPT_STATS: px.stats_path = optarg; break;
    case OPT_LOG:
      if ((px.log = fopen (optarg, "a")) == NULL)
        die (optarg);
      setvbuf (px.log, NULL, _IOLBF, 0);
      break;
    case OPT_SEED: case OPT_FIRST_BYTE_MS: case OPT_CONN_RATE:
    case OPT_TOTAL_RATE:
      snprintf (set_cmd, sizeof set_cmd, "set %s %s", opts[i].name, optarg);
      cmd = set_cmd;
      break;
    case OPT_SHAPE:             /* usage() says these values */
      px.first_byte_ms = 30;
      px.conn_rate = 100000000;
      px.total_rate = 400000000;
      break;
    case OPT_LOSE_SUFFIX: px.lose_suffix = optarg; break;
    case OPT_LOSE_FILE: px.lose_path = optarg; break;
    case OPT_DOWN_FILE: px.down_path = optarg; break;
    case OPT_COMMAND: cmd = optarg; break;
    case OPT_HELP: usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
    if (cmd && command (cmd, reply) == -1) {
      fprintf (stderr, "store-proxy: %s: bad command\n", optarg);
      return 2;
    }
  }
  if (port == 0 || port_file == NULL || optind != argc ||
      !px.lose_suffix != !px.lose_path) {
    usage (stderr);
    return 2;
  }
  evbuffer_free (reply);
  sin.sin_port = 0;
  px.upstream = sin;
  px.upstream.sin_port = htons (port);

  px.base = check_alloc (event_base_new ());
  listener = evconnlistener_new_bind (px.base, on_accept, NULL,
                                      LEV_OPT_CLOSE_ON_FREE |
                                      LEV_OPT_CLOSE_ON_EXEC |
                                      LEV_OPT_REUSEABLE, 128,
                                      (struct sockaddr *) &sin, sizeof sin);
  if (listener == NULL)
    die ("listen on 127.0.0.1");
  if (control_path)
    control_listen (control_path);
  sigs[0] = check_alloc (evsignal_new (px.base, SIGTERM, on_signal, NULL));
  sigs[1] = check_alloc (evsignal_new (px.base, SIGINT, on_signal, NULL));
  event_add (sigs[0], NULL);
  event_add (sigs[1], NULL);
  stats_write ();
  write_port (port_file, listener);

  event_base_dispatch (px.base);

  if (control_path)
    unlink (control_path);
  return 0;
}
