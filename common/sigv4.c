/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: AWS Signature Version 4 (see sigv4.h).
 *
 * Why by hand: libcurl's CURLOPT_AWS_SIGV4 in the curl our distributions
 * ship (7.88) signs the query string in the order given instead of
 * sorted, so any request with two parameters (ListObjectsV2, UploadPart)
 * is refused.  Signing is a few string transformations and an HMAC chain;
 * doing it here also lets the unit test check each stage against AWS's
 * published vectors.
 *
 * The four stages, as AWS names them:
 *   canonical request  METHOD \n URI \n QUERY \n HEADERS \n SIGNED \n HASH
 *   string to sign     "AWS4-HMAC-SHA256" \n DATE \n SCOPE \n hex(sha256(CR))
 *   signing key        HMAC chain "AWS4"+secret -> day -> region -> service
 *                      -> "aws4_request"
 *   signature          hex(HMAC(signing key, string to sign))
 * S3 encodes the path once (no normalisation, "/" kept), which is what
 * sigv4_uri_encode does; the other services' double encoding is not used.
 *
 * Everything here is pure and thread-safe.  The secret and the keys
 * derived from it are wiped from memory once used; none is ever part of a
 * returned string or an error message.  Out of memory is an error like
 * any other: NULL or -1 with err_set (ENOMEM), nothing left allocated.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "err.h"
#include "sigv4.h"
#include "util.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define AMZ_DATE_LEN 16                 /* 20150830T123600Z */

static bool
is_unreserved (unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

char *
sigv4_uri_encode (const char *s, bool keep_slash)
{
  static const char digits[] = "0123456789ABCDEF";
  char *out = malloc (3 * strlen (s) + 1), *p = out;

  if (out == NULL) {
    err_set (ENOMEM, "out of memory");
    return NULL;
  }
  for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
    if (is_unreserved (*c) || (keep_slash && *c == '/'))
      *p++ = *c;
    else {
      *p++ = '%';
      *p++ = digits[*c >> 4];
      *p++ = digits[*c & 15];
    }
  }
  *p = '\0';
  return out;
}

static int
compare_pairs (const void *a, const void *b)
{
  const struct sigv4_pair *x = a, *y = b;
  int c = strcmp (x->name, y->name);

  return c ? c : strcmp (x->value, y->value);
}

char *
sigv4_canonical_query (const struct sigv4_pair *query, size_t n)
{
  struct sigv4_pair *enc = calloc (n + 1, sizeof *enc);
  char *str = NULL;
  size_t len, i;
  FILE *f;

  if (enc == NULL) {
    err_set (ENOMEM, "out of memory");
    return NULL;
  }
  for (i = 0; i < n; i++) {
    enc[i].name = sigv4_uri_encode (query[i].name, false);
    enc[i].value = enc[i].name
      ? sigv4_uri_encode (query[i].value ? query[i].value : "", false) : NULL;
    if (enc[i].value == NULL)
      goto out;
  }
  /* Sort on the encoded forms, names first: "a-b" sorts before "a=". */
  qsort (enc, n, sizeof *enc, compare_pairs);
  if ((f = memstream_open (&str, &len)) == NULL)
    goto out;
  for (i = 0; i < n; i++)
    fprintf (f, "%s%s=%s", i ? "&" : "", enc[i].name, enc[i].value);
  memstream_close (f, &str);
 out:
  /* Pairs after a failed one are still NULL (calloc). */
  for (i = 0; i < n; i++) {
    free ((char *) enc[i].name);
    free ((char *) enc[i].value);
  }
  free (enc);
  return str;
}

/* A header ready for the canonical request. */
struct canon_header {
  char *name;                   /* lowercase */
  char *value;                  /* trimmed, inner runs of blanks collapsed */
  size_t index;                 /* position in the request, to keep order */
};

static int
compare_headers (const void *a, const void *b)
{
  const struct canon_header *x = a, *y = b;
  int c = strcmp (x->name, y->name);

  return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* -1 with err_set (EINVAL) for the malformed header IN. */
static int
malformed (const struct sigv4_pair *in)
{
  return err_set (EINVAL, "sigv4: malformed header \"%.64s\"", in->name);
}

/* Fill H from header NAME: VALUE.  -1 with err_set: EINVAL if the name
 * is not an HTTP token or the value holds a control character (it would
 * split the header), ENOMEM if out of memory.
 */
static int
canon_header (const struct sigv4_pair *in, size_t index,
              struct canon_header *h)
{
  char *p;
  const char *v;

  h->index = index;
  h->name = strdup (in->name);
  h->value = malloc (strlen (in->value) + 1);
  if (h->name == NULL || h->value == NULL)
    return err_set (ENOMEM, "out of memory");
  if (h->name[0] == '\0')
    return malformed (in);
  for (p = h->name; *p; p++) {
    if (*p <= ' ' || *p >= 0x7f || *p == ':')
      return malformed (in);
    if (*p >= 'A' && *p <= 'Z')
      *p += 'a' - 'A';
  }
  p = h->value;
  for (v = in->value; *v; v++) {
    bool blank = *v == ' ' || *v == '\t';
    if (!blank && ((unsigned char) *v < ' ' || *v == 0x7f))
      return malformed (in);
    if (!blank)
      *p++ = *v;
    else if (p > h->value && p[-1] != ' ')
      *p++ = ' ';
  }
  /* A run of blanks at the end left at most one space behind. */
  if (p > h->value && p[-1] == ' ')
    p--;
  *p = '\0';
  return 0;
}

/* The canonical headers ("name:v1,v2\n" each, sorted) into *CANON, the
 * signed header list into *SIGNED, and a pointer to the X-Amz-Date value
 * (inside H) into *DATE.  -1 with err_set if a header is malformed.
 */
static int
canonical_headers (const struct sigv4_request *req, struct canon_header *h,
                   char **canon, char **signed_list, const char **date)
{
  size_t clen, slen;
  FILE *cf, *sf;
  int r;

  *date = NULL;
  for (size_t i = 0; i < req->nheaders; i++)
    if (canon_header (&req->headers[i], i, &h[i]) == -1)
      return -1;
  qsort (h, req->nheaders, sizeof *h, compare_headers);
  if ((cf = memstream_open (canon, &clen)) == NULL)
    return -1;
  if ((sf = memstream_open (signed_list, &slen)) == NULL) {
    fclose (cf);
    return -1;
  }
  for (size_t i = 0; i < req->nheaders; i++) {
    bool first = i == 0 || strcmp (h[i].name, h[i - 1].name) != 0;
    bool last = i + 1 == req->nheaders || strcmp (h[i].name, h[i + 1].name);
    /* Repeated names become one line, values in request order. */
    if (first)
      fprintf (cf, "%s:", h[i].name);
    fprintf (cf, "%s%s", h[i].value, last ? "\n" : ",");
    if (first)
      fprintf (sf, "%s%s", i ? ";" : "", h[i].name);
    if (strcmp (h[i].name, "x-amz-date") == 0)
      *date = h[i].value;
  }
  r = memstream_close (cf, canon);
  if (memstream_close (sf, signed_list) == -1 || r == -1)
    return -1;
  if (*date == NULL || strlen (*date) != AMZ_DATE_LEN ||
      (*date)[8] != 'T' || (*date)[15] != 'Z')
    return err_set (EINVAL, "sigv4: missing or malformed X-Amz-Date");
  return 0;
}

static bool
hmac (const void *key, size_t keylen, const char *msg, unsigned char out[32])
{
  unsigned len;

  return HMAC (EVP_sha256 (), key, keylen, (const unsigned char *) msg,
               strlen (msg), out, &len) != NULL && len == 32;
}

/* The hex signature of STS: HMAC with the key derived for DAY and KEY's
 * scope.  The secret and every derived key are wiped before returning.
 */
static int
signature_hex (const struct sigv4_key *key, const char *day, const char *sts,
               char out[65])
{
  char *k0 = str_printf ("AWS4%s", key->secret_key);
  unsigned char k[32], sig[32];
  bool ok;

  if (k0 == NULL)
    return -1;
  ok = hmac (k0, strlen (k0), day, k) &&
    hmac (k, 32, key->region, k) &&
    hmac (k, 32, key->service, k) &&
    hmac (k, 32, "aws4_request", k) &&
    hmac (k, 32, sts, sig);
  OPENSSL_cleanse (k0, strlen (k0));
  free (k0);
  OPENSSL_cleanse (k, sizeof k);
  /* Like EVP_Digest (sigv4_sha256_hex), HMAC fails only when it cannot
   * allocate its context.
   */
  if (!ok)
    return err_set (ENOMEM, "sigv4: HMAC-SHA256 failed: out of memory");
  hex_encode (sig, 32, out);
  return 0;
}

int
sigv4_sign (const struct sigv4_request *req, const struct sigv4_key *key,
            struct sigv4_signature *out)
{
  struct canon_header *h = calloc (req->nheaders + 1, sizeof *h);
  CLEANUP_FREE char *uri = NULL, *query = NULL, *canon = NULL;
  CLEANUP_FREE char *signed_list = NULL, *scope = NULL;
  char day[9], creq_hash[65], sig[65];
  const char *date;
  int r = -1;

  memset (out, 0, sizeof *out);
  if (h == NULL) {
    err_set (ENOMEM, "out of memory");
    return -1;
  }
  if (canonical_headers (req, h, &canon, &signed_list, &date) == -1)
    goto out;
  memcpy (day, date, 8);
  day[8] = '\0';
  /* The stages of the top comment, each of which may run out of memory. */
  if ((uri = sigv4_uri_encode (req->path, true)) == NULL ||
      (query = sigv4_canonical_query (req->query, req->nquery)) == NULL ||
      (out->canonical_request =
       str_printf ("%s\n%s\n%s\n%s\n%s\n%s", req->method, uri, query, canon,
                   signed_list, req->payload_hash)) == NULL ||
      sigv4_sha256_hex (out->canonical_request,
                        strlen (out->canonical_request), creq_hash) == -1 ||
      (scope = str_printf ("%s/%s/%s/aws4_request", day, key->region,
                           key->service)) == NULL ||
      (out->string_to_sign = str_printf (ALGORITHM "\n%s\n%s\n%s",
                                         date, scope, creq_hash)) == NULL ||
      signature_hex (key, day, out->string_to_sign, sig) == -1 ||
      (out->authorization =
       str_printf (ALGORITHM " Credential=%s/%s, SignedHeaders=%s, "
                   "Signature=%s", key->access_key, scope, signed_list,
                   sig)) == NULL)
    goto out;
  r = 0;
 out:
  for (size_t i = 0; i < req->nheaders; i++) {
    free (h[i].name);
    free (h[i].value);
  }
  free (h);
  if (r == -1)
    sigv4_signature_free (out);
  return r;
}

void
sigv4_signature_free (struct sigv4_signature *sig)
{
  free (sig->canonical_request);
  free (sig->string_to_sign);
  free (sig->authorization);
  memset (sig, 0, sizeof *sig);
}

int
sigv4_sha256_hex (const void *data, size_t len, char out[65])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen;

  /* EVP_Digest of memory with a built-in algorithm fails only when it
   * cannot allocate its context (or with a broken libcrypto).
   */
  if (!EVP_Digest (data, len, md, &mdlen, EVP_sha256 (), NULL) || mdlen != 32)
    return err_set (ENOMEM, "sigv4: SHA-256 failed: out of memory");
  hex_encode (md, 32, out);
  return 0;
}

void
sigv4_amz_date (time_t t, char out[17])
{
  struct tm tm;

  gmtime_r (&t, &tm);
  strftime (out, 17, "%Y%m%dT%H%M%SZ", &tm);
}
