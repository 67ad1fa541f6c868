/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* The SigV4 signer must produce, stage by stage, what AWS publishes: the
 * Signature Version 4 test suite (credentials AKIDEXAMPLE, 20150830T123600Z,
 * us-east-1, service "service") and the worked examples of the S3
 * documentation (examplebucket, 20130524T000000Z).  A store answers every
 * signing mistake with the same SignatureDoesNotMatch; comparing the
 * canonical request and the string to sign says where the mistake is.
 *
 * The list-objects example is given with its query out of order, as
 * ListObjectsV2 sends list-type, prefix and continuation-token: the
 * canonical query must be sorted whatever order the caller used.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

#define EMPTY_SHA256 \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define UNRESERVED \
  "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#define SUITE_HOST { "Host", "example.amazonaws.com" }
#define SUITE_DATE { "X-Amz-Date", "20150830T123600Z" }
#define SUITE_CRED "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/" \
  "us-east-1/service/aws4_request, "
#define SUITE_STS "AWS4-HMAC-SHA256\n20150830T123600Z\n" \
  "20150830/us-east-1/service/aws4_request\n"
#define S3_HOST { "Host", "examplebucket.s3.amazonaws.com" }
#define S3_DATE { "x-amz-date", "20130524T000000Z" }
#define S3_CRED "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/" \
  "us-east-1/s3/aws4_request, "
#define STS_TOKEN "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4H" \
  "IZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpK" \
  "Pi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp" \
  "75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz" \
  "+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

static const struct sigv4_key suite_key = {
  "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  "us-east-1", "service"
};
static const struct sigv4_key s3_key = {
  "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  "us-east-1", "s3"
};

/* One published vector; lists end with a { NULL } entry.  A NULL
 * canonical request or string to sign was not published.
 */
struct vector {
  const char *name;
  const struct sigv4_key *key;
  const char *method, *path;
  struct sigv4_pair query[4], headers[6];
  const char *body;
  const char *canonical_request, *string_to_sign, *authorization;
};

static const struct vector vectors[] = {
  { "get-vanilla", &suite_key, "GET", "/", { { NULL } },
    { SUITE_HOST, SUITE_DATE, { NULL } }, "",
    "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
    "host;x-amz-date\n" EMPTY_SHA256,
    SUITE_STS "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
    SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
  { "get-vanilla-query", &suite_key, "GET", "/", { { NULL } },
    { SUITE_HOST, SUITE_DATE, { NULL } }, "", NULL, NULL,
    SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
  { "get-vanilla-query-order-key-case", &suite_key, "GET", "/",
    { { "Param2", "value2" }, { "Param1", "value1" }, { NULL } },
    { SUITE_HOST, SUITE_DATE, { NULL } }, "",
    "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
    "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA256,
    SUITE_STS "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
    SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
    "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" },
  { "get-vanilla-query-order-value", &suite_key, "GET", "/",
    { { "Param1", "value2" }, { "Param1", "value1" }, { NULL } },
    { SUITE_HOST, SUITE_DATE, { NULL } }, "",
    "GET\n/\nParam1=value1&Param1=value2\nhost:example.amazonaws.com\n"
    "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA256,
    SUITE_STS "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
    SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
    "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694" },
  { "get-vanilla-query-unreserved", &suite_key, "GET", "/",
    { { UNRESERVED, UNRESERVED }, { NULL } },
    { SUITE_HOST, SUITE_DATE, { NULL } }, "",
    "GET\n/\n" UNRESERVED "=" UNRESERVED "\nhost:example.amazonaws.com\n"
    "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA256,
    SUITE_STS "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
    SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
    "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197" },
  { "get-vanilla-utf8-query", &suite_key, "GET", "/",
    { { "\xe1\x88\xb4", "bar" }, { NULL } },
    { SUITE_HOST, SUITE_DATE, { NULL } }, "",
    "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\n"
    "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA256,
    SUITE_STS "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
    SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
    "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04" },
  { "get-unreserved", &suite_key, "GET", "/" UNRESERVED, { { NULL } },
    { SUITE_HOST, SUITE_DATE, { NULL } }, "",
    "GET\n/" UNRESERVED "\n\nhost:example.amazonaws.com\n"
    "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA256,
    SUITE_STS "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
    SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
    "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f" },
  { "get-utf8", &suite_key, "GET", "/\xe1\x88\xb4", { { NULL } },
    { SUITE_HOST, SUITE_DATE, { NULL } }, "",
    "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\n"
    "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA256,
    SUITE_STS "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
    SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
    "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85" },
  { "get-space", &suite_key, "GET", "/example space/", { { NULL } },
    { SUITE_HOST, SUITE_DATE, { NULL } }, "",
    "GET\n/example%20space/\n\nhost:example.amazonaws.com\n"
    "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA256,
    SUITE_STS "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
    SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
    "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741" },
  { "get-header-key-duplicate", &suite_key, "GET", "/", { { NULL } },
    { SUITE_HOST, { "My-Header1", "value2" }, { "My-Header1", "value2" },
      { "My-Header1", "value1" }, SUITE_DATE, { NULL } }, "",
    "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n"
    "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n"
    EMPTY_SHA256,
    SUITE_STS "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
    SUITE_CRED "SignedHeaders=host;my-header1;x-amz-date, Signature="
    "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea" },
  { "get-header-value-trim", &suite_key, "GET", "/", { { NULL } },
    { SUITE_HOST, { "My-Header1", " value1" },
      { "My-Header2", " \"a   b   c\"" }, SUITE_DATE, { NULL } }, "",
    "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
    "my-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n"
    "host;my-header1;my-header2;x-amz-date\n" EMPTY_SHA256,
    SUITE_STS "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
    SUITE_CRED "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
    "Signature="
    "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736" },
  { "post-vanilla", &suite_key, "POST", "/", { { NULL } },
    { SUITE_HOST, SUITE_DATE, { NULL } }, "",
    "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
    "host;x-amz-date\n" EMPTY_SHA256,
    SUITE_STS "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
    SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
    "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },
  { "post-header-key-sort", &suite_key, "POST", "/", { { NULL } },
    { SUITE_HOST, { "My-Header1", "value1" }, SUITE_DATE, { NULL } }, "",
    "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
    "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n"
    EMPTY_SHA256,
    SUITE_STS "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
    SUITE_CRED "SignedHeaders=host;my-header1;x-amz-date, Signature="
    "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c" },
  { "post-x-www-form-urlencoded", &suite_key, "POST", "/", { { NULL } },
    { { "Content-Type", "application/x-www-form-urlencoded" }, SUITE_HOST,
      SUITE_DATE, { NULL } }, "Param1=value1",
    "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n"
    "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
    "content-type;host;x-amz-date\n"
    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
    SUITE_STS "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
    SUITE_CRED "SignedHeaders=content-type;host;x-amz-date, Signature="
    "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a" },
  { "post-sts-header-before", &suite_key, "POST", "/", { { NULL } },
    { SUITE_HOST, SUITE_DATE, { "X-Amz-Security-Token", STS_TOKEN },
      { NULL } }, "",
    "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
    "x-amz-security-token:" STS_TOKEN "\n\n"
    "host;x-amz-date;x-amz-security-token\n" EMPTY_SHA256,
    SUITE_STS "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
    SUITE_CRED "SignedHeaders=host;x-amz-date;x-amz-security-token, "
    "Signature="
    "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead" },
  { "s3 GetObject with Range", &s3_key, "GET", "/test.txt", { { NULL } },
    { S3_HOST, { "Range", "bytes=0-9" },
      { "x-amz-content-sha256", EMPTY_SHA256 }, S3_DATE, { NULL } }, "",
    "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
    "range:bytes=0-9\nx-amz-content-sha256:" EMPTY_SHA256 "\n"
    "x-amz-date:20130524T000000Z\n\n"
    "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256,
    "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
    "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
    S3_CRED "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
    "Signature="
    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41" },
  { "s3 PutObject", &s3_key, "PUT", "/test$file.text", { { NULL } },
    { S3_HOST, { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
      { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
      { "x-amz-content-sha256",
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072" },
      S3_DATE, { NULL } }, "Welcome to Amazon S3.",
    NULL, NULL,
    S3_CRED "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-storage-class, Signature="
    "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd" },
  { "s3 GetBucketLifecycle", &s3_key, "GET", "/",
    { { "lifecycle", "" }, { NULL } },
    { S3_HOST, { "x-amz-content-sha256", EMPTY_SHA256 }, S3_DATE, { NULL } },
    "", NULL, NULL,
    S3_CRED "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
    "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543" },
  { "s3 ListObjects, query out of order", &s3_key, "GET", "/",
    { { "prefix", "J" }, { "max-keys", "2" }, { NULL } },
    { S3_HOST, { "x-amz-content-sha256", EMPTY_SHA256 }, S3_DATE, { NULL } },
    "",
    "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n"
    "x-amz-content-sha256:" EMPTY_SHA256 "\nx-amz-date:20130524T000000Z\n\n"
    "host;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256,
    NULL,
    S3_CRED "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
    "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7" },
};

static int failures;

static void
expect_str (const char *what, const char *stage, const char *got,
            const char *want)
{
  if (want == NULL || (got && strcmp (got, want) == 0))
    return;
  printf ("FAIL %s: %s\n--- expected\n%s\n--- got\n%s\n---\n",
          what, stage, want, got ? got : "(null)");
  failures++;
}

static size_t
count (const struct sigv4_pair *p)
{
  size_t n = 0;

  while (p[n].name)
    n++;
  return n;
}

static void
check_vector (const struct vector *v)
{
  struct sigv4_request req = {
    .method = v->method, .path = v->path,
    .query = v->query, .nquery = count (v->query),
    .headers = v->headers, .nheaders = count (v->headers),
  };
  struct sigv4_signature sig;
  char hash[65];

  sigv4_sha256_hex (v->body, strlen (v->body), hash);
  /* Where the request carries x-amz-content-sha256, it is the body's. */
  for (size_t i = 0; i < req.nheaders; i++)
    if (strcmp (v->headers[i].name, "x-amz-content-sha256") == 0)
      expect_str (v->name, "payload hash", hash, v->headers[i].value);
  req.payload_hash = hash;
  if (sigv4_sign (&req, v->key, &sig) == -1) {
    printf ("FAIL %s: sigv4_sign returned -1\n", v->name);
    failures++;
    return;
  }
  expect_str (v->name, "canonical request", sig.canonical_request,
              v->canonical_request);
  expect_str (v->name, "string to sign", sig.string_to_sign,
              v->string_to_sign);
  expect_str (v->name, "authorization", sig.authorization,
              v->authorization);
  sigv4_signature_free (&sig);
}

static void
check_encoding (void)
{
  static const struct { const char *in; bool slash; const char *out; } enc[] = {
    { "exports/vm01/snapshots/a b+c", true, "exports/vm01/snapshots/a%20b%2Bc" },
    { "a/b", false, "a%2Fb" },
    { "100%", true, "100%25" },           /* encoded once, never twice */
    { "%20", true, "%2520" },
    { "!'()*$&=,;:@", true, "%21%27%28%29%2A%24%26%3D%2C%3B%3A%40" },
    { "\xc3\xa9", true, "%C3%A9" },
    { "", true, "" },
  };
  /* A listing request; "a" sorts before "a-b" although "a=" > "a-". */
  static const struct sigv4_pair list[] = {
    { "prefix", "exports/vm 01/" }, { "list-type", "2" },
    { "continuation-token", "1/a+b=" }, { "delimiter", "/" },
    { "a-b", "1" }, { "a", "2" }, { "uploads", NULL },
  };
  char *s, date[17];

  for (size_t i = 0; i < sizeof enc / sizeof enc[0]; i++) {
    s = sigv4_uri_encode (enc[i].in, enc[i].slash);
    expect_str (enc[i].in, "sigv4_uri_encode", s, enc[i].out);
    free (s);
  }
  s = sigv4_canonical_query (list, sizeof list / sizeof list[0]);
  expect_str ("listing query", "sigv4_canonical_query", s,
              "a=2&a-b=1&continuation-token=1%2Fa%2Bb%3D&delimiter=%2F&"
              "list-type=2&prefix=exports%2Fvm%2001%2F&uploads=");
  free (s);
  s = sigv4_canonical_query (NULL, 0);
  expect_str ("no query", "sigv4_canonical_query", s, "");
  free (s);
  sigv4_amz_date (1440938160, date);
  expect_str ("1440938160", "sigv4_amz_date", date, "20150830T123600Z");
}

/* Headers that would split the request, or no date, are refused. */
static void
check_refusals (void)
{
  static const struct sigv4_pair bad[][3] = {
    { SUITE_HOST, SUITE_DATE, { "X-Evil", "a\r\nInjected: 1" } },
    { SUITE_HOST, SUITE_DATE, { "Bad Name", "v" } },
    { SUITE_HOST, SUITE_DATE, { "", "v" } },
    { SUITE_HOST, { "X-Amz-Date", "yesterday" }, { "A", "b" } },
    { SUITE_HOST, { "A", "b" }, { "C", "d" } },
  };
  struct sigv4_signature sig;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct sigv4_request req = {
      .method = "GET", .path = "/", .headers = bad[i], .nheaders = 3,
      .payload_hash = EMPTY_SHA256,
    };
    if (sigv4_sign (&req, &suite_key, &sig) != -1 || errno != EINVAL) {
      printf ("FAIL refusal %zu: a bad request was signed\n", i);
      failures++;
    }
  }
}

int
main (void)
{
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++)
    check_vector (&vectors[i]);
  check_encoding ();
  check_refusals ();
  if (failures) {
    printf ("%d failures\n", failures);
    return 1;
  }
  printf ("OK: %zu vectors\n", sizeof vectors / sizeof vectors[0]);
  return 0;
}
