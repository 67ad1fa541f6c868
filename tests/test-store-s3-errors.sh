#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# How the S3 backend fails, and when it tries again.
#  - A wrong secret is store_denied, once (no retry), naming the store's
#    refusal (SignatureDoesNotMatch); no secret ever reaches stderr.
#    Missing credentials are refused at open.
#  - A store that is down is store_unavailable after --retries more tries,
#    in bounded time; one that never answers times out (--timeout).
#  - 503 and 429 answers are retried with backoff until the store
#    recovers, and the caller sees only success; 503 forever gives up with
#    "HTTP 503 after N tries"; a 4xx is final at once.  A fault injector
#    (tests/store-proxy in front of Swift) answers the next N requests
#    with a chosen status, checks every body against its signed SHA-256
#    (x-amz-content-sha256), and counts the requests and connections it
#    sees (requests in a row share one); store-tool --stats counts what
#    the client sent.
#  - TLS certificates are verified: a self-signed one is refused at once.
#  - A listing of uploads that is not what S3 sends (malformed XML, a
#    DTD, an upload outside the prefix, without a valid id or time, a
#    page truncated with nowhere to go on, pages that lead back to one
#    already listed) is bad_remote_data, after so many pages and no
#    more; a good one is followed by NextKeyMarker alone, or from the
#    last upload of a page that names no marker (as Swift sends a page
#    of one), and its times are read to the millisecond.
#  - Virtual-hosted addressing (BUCKET.localhost:PORT) works too.
. "$srcdir/functions.sh"
requires grep openssl /usr/bin/python3
start_s3

tmp=$(make_tmpdir)
st () { "$STORE_TOOL" --backend s3 --bucket "$S3_BUCKET" "$@"; }
s3port=${S3_ENDPOINT##*:}
head -c 300000 /dev/urandom > "$tmp/obj"
st --endpoint-url "$S3_ENDPOINT" put k "$tmp/obj" >/dev/null

# ms: milliseconds since the epoch.
ms () { now_ms; }

# --- credentials
AWS_SECRET_ACCESS_KEY=not-the-secret-4f2a \
    st --endpoint-url "$S3_ENDPOINT" --stats get k 2>"$tmp/err" &&
    fail "a wrong secret was accepted"
grep -q 'refused our credentials or signature: HTTP 403 (SignatureDoesNotMatch' "$tmp/err"
grep -q '\[store_denied\]$' "$tmp/err"
grep -q '^requests=1 errors=1 retries=0 ' "$tmp/err"
AWS_ACCESS_KEY_ID=nobody:nobody \
    st --endpoint-url "$S3_ENDPOINT" get k 2>"$tmp/err2" &&
    fail "an unknown access key was accepted"
grep -q 'refused our credentials or signature: HTTP 403 .*\[store_denied\]$' "$tmp/err2"
(unset AWS_SECRET_ACCESS_KEY; st --endpoint-url "$S3_ENDPOINT" get k) \
    2>"$tmp/err3" && fail "no secret, yet the store opened"
grep -q 'AWS_SECRET_ACCESS_KEY must be set.*\[bad_request\]$' "$tmp/err3"
if cat "$tmp"/err* | grep -F -e not-the-secret -e "$S3_SECRET_KEY"; then
    fail "a secret reached stderr"
fi

# --- a store that is down: nothing listens on the port.
down=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
t0=$(ms)
st --endpoint-url "http://127.0.0.1:$down" --retries 2 --stats get k \
   2>"$tmp/err" && fail "a store that is down answered"
[ $(( $(ms) - t0 )) -lt 10000 ]
grep -q 'get k: .*(gave up after 3 tries) \[store_unavailable\]$' "$tmp/err"
grep -q '^requests=3 errors=1 retries=2 ' "$tmp/err"

# --- the fault injector: inject [COMMAND] starts a fresh one in front of
# Swift that runs COMMAND ("next 3 503": the next 3 requests are answered
# 503 without reaching the store; "next 1000 hang": never answered); $inj
# is its endpoint, and proxy_stat counts what it saw.
inject ()
{
    start_store_proxy "$(make_tmpdir)" ${1+--command "$1"}
    inj=$proxy_url
}

# Every request carries the SHA-256 of its body (the injector checks it,
# as AWS does): puts, an empty-bodied one, and each step of an upload.
inject
: > "$tmp/empty"
head -c 11000000 /dev/urandom > "$tmp/big"
st --endpoint-url "$inj" put k3 "$tmp/obj" >/dev/null
st --endpoint-url "$inj" put k4 "$tmp/empty" >/dev/null
st --endpoint-url "$inj" upload big "$tmp/big" 5M
st --endpoint-url "$inj" get big | cmp - "$tmp/big"
[ "$(proxy_stat requests)" = 8 ]

# Requests one after another share one kept-alive connection: a listing
# in three pages of one key (k, k3, k4).
inject
[ "$(LAZYVOL_S3_MAX_KEYS=1 st --endpoint-url "$inj" list k | wc -l)" = 3 ]
[ "$(proxy_stat requests)" = 3 ]
[ "$(proxy_stat connections)" = 1 ]

# 503 three times, then the store recovers: the caller sees the object.
inject "next 3 503"
st --endpoint-url "$inj" --stats get k 2>"$tmp/err" | cmp - "$tmp/obj"
grep -q '^requests=4 errors=0 retries=3 in=300000 ' "$tmp/err"
[ "$(proxy_stat requests)" = 4 ]

# 429 (SlowDown) twice on a put: retried, the object is stored.
inject "next 2 429"
st --endpoint-url "$inj" --stats put k2 "$tmp/obj" 2>"$tmp/err" >/dev/null
grep -q '^requests=3 errors=0 retries=2 ' "$tmp/err"
st --endpoint-url "$S3_ENDPOINT" get k2 | cmp - "$tmp/obj"

# 503 for ever: gives up after the retries, saying so.
inject "next 1000 503"
st --endpoint-url "$inj" --retries 2 get k 2>"$tmp/err" &&
    fail "503 for ever succeeded"
grep -q 'get k: HTTP 503 after 3 tries (SlowDown: injected) \[store_error\]$' "$tmp/err"
[ "$(proxy_stat requests)" = 3 ]

# A 400 is final at once: one request only.
inject "next 1 400"
st --endpoint-url "$inj" --stats get k 2>"$tmp/err" && fail "400 succeeded"
grep -q 'HTTP 400 (InvalidRequest: injected)' "$tmp/err"
grep -q '^requests=1 errors=1 retries=0 ' "$tmp/err"
[ "$(proxy_stat requests)" = 1 ]

# A store that accepts but never answers times out, each try.
inject "next 1000 hang"
t0=$(ms)
st --endpoint-url "$inj" --timeout 1 --retries 1 get k 2>"$tmp/err" &&
    fail "a silent store answered"
[ $(( $(ms) - t0 )) -lt 15000 ]
grep -qi 'timed out.*\[store_unavailable\]$' "$tmp/err"
[ "$(proxy_stat requests)" = 2 ]

# --- TLS peers are verified: a self-signed certificate is refused, at
# once (no retry), and nothing is sent.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/key.pem" \
        -out "$tmp/cert.pem" 2>/dev/null
/usr/bin/python3 - "$tmp" <<'EOF' &
import http.server, os, ssl, sys
tmp = sys.argv[1]
server = http.server.HTTPServer(('127.0.0.1', 0),
                                http.server.BaseHTTPRequestHandler)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(tmp + '/cert.pem', tmp + '/key.pem')
server.socket = tls.wrap_socket(server.socket, server_side=True)
with open(tmp + '/tls.new', 'w') as f:
    f.write('%d\n' % server.server_address[1])
os.rename(tmp + '/tls.new', tmp + '/tls.port')
server.serve_forever()
EOF
cleanup_fn kill_wait $!
wait_for 10 test -s "$tmp/tls.port" || fail "the TLS server did not start"
st --endpoint-url "https://127.0.0.1:$(cat "$tmp/tls.port")" --stats get k \
   2>"$tmp/err" && fail "a self-signed certificate was accepted"
grep -q 'get k: SSL certificate problem: self.signed certificate \[store_error\]$' "$tmp/err"
grep -q '^requests=1 errors=1 retries=0 ' "$tmp/err"

# --- listings of uploads from a fake store: the page for markers K and
# I is the file $pages/K,I ('/' as '_'), the first $pages/, (each
# request's markers are logged to $pages.log).
pages=$tmp/pages
mkdir "$pages"
/usr/bin/python3 - "$pages" <<'EOF' &
import http.server, os, sys, urllib.parse
pages = sys.argv[1]
class Pages(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        name = '%s,%s' % (q.get('key-marker', [''])[0],
                          q.get('upload-id-marker', [''])[0])
        with open(pages + '.log', 'a') as f:
            f.write(name + '\n')
        try:
            with open(os.path.join(pages, name.replace('/', '_')), 'rb') as f:
                body = f.read()
        except FileNotFoundError:
            body = b'<Error><Code>NoSuchPage</Code></Error>'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(('127.0.0.1', 0), Pages)
with open(pages + '.new', 'w') as f:
    f.write('%d\n' % server.server_address[1])
os.rename(pages + '.new', pages + '.port')
server.serve_forever()
EOF
cleanup_fn kill_wait $!
wait_for 10 test -s "$pages.port" || fail "the fake store did not start"
fake () { st --endpoint-url "http://127.0.0.1:$(cat "$pages.port")" "$@"; }
# page NAME [IsTruncated [NextKeyMarker [NextUploadIdMarker]]] < UPLOADS
page ()
{
    { echo "<ListMultipartUploadsResult><IsTruncated>${2:-false}</IsTruncated>"
      [ -z "${3:-}" ] || echo "<NextKeyMarker>$3</NextKeyMarker>"
      [ -z "${4:-}" ] || echo "<NextUploadIdMarker>$4</NextUploadIdMarker>"
      cat
      echo "</ListMultipartUploadsResult>"
    } > "$pages/${1//\//_}"
}
# up KEY ID INITIATED: one Upload element.
up () { echo "<Upload><Key>$1</Key><UploadId>$2</UploadId><Initiated>$3</Initiated></Upload>"; }
t=2026-01-02T03:04:05.678Z
# refused WHY [PAGES]: the listing fails with WHY after PAGES requests (1).
refused ()
{
    : > "$pages.log"
    if fake list-uploads p/ >"$tmp/out" 2>"$tmp/err"; then
        fail "accepted: $(cat "$tmp/out")"
    fi
    grep -q "list uploads p/: .*$1.* \[bad_remote_data\]$" "$tmp/err" ||
        fail "not '$1': $(cat "$tmp/err")"
    [ "$(wc -l < "$pages.log")" = "${2:-1}" ]
}
bad_upload='an upload without a key in the prefix, a valid id, or the time'
echo '<ListMultipartUploadsResult><Upload></ListMultipartUploadsResult>' > "$pages/,"
refused 'malformed XML'
echo '<ListMultipartUploadsResult><Upload><Key>p/a</Key>' > "$pages/,"
refused 'malformed XML'
echo '<Error><Code>Oops</Code></Error>' > "$pages/,"
refused 'no ListMultipartUploadsResult'
up '&e;' 1 $t | page ,
sed -i '1i <!DOCTYPE x [<!ENTITY e "p/a">]>' "$pages/,"
refused 'malformed XML'
for u in "q/a 1 $t" "p/a '' $t" "'p/a' 'has space' $t" \
         "p/a 1 yesterday" "p/a 1 2026-13-02T03:04:05Z" \
         "p/a 1 2026-01-02T03:04:05" "p/a 1 2026-01-02T03:04:05.Z" \
         "p/a 1 ''" "p/a 1 ' 2026-01-02T03:04:05Z'"; do
    eval "up $u" | page ,
    refused "$bad_upload"
done
echo "<Upload><UploadId>1</UploadId><Initiated>$t</Initiated></Upload>" | page ,
refused "$bad_upload"
page , true < /dev/null
refused 'truncated without a marker'
up p/a 1 $t | page , true p/a 1
up p/b 2 $t | page p/a,1 true p/b 2
up p/c 3 $t | page p/b,2 true p/a 1
refused 'the store went back to a page it listed (after p/a)' 3
# Good pages: a marker without an upload id; a page of one without
# markers, followed from its upload; an entity.
up 'p/a&amp;b' 1 $t | page , true p/a
up p/b 2 2026-01-02T03:04:05Z | page p/a, true
up p/c 3 2026-01-02T03:04:05.5Z | page p/b,2
: > "$pages.log"
fake list-uploads p/ > "$tmp/out"
printf '%s\n' 'p/a&b 1 1767323045678' 'p/b 2 1767323045000' \
    'p/c 3 1767323045500' | cmp - "$tmp/out"
printf '%s\n' , p/a, p/b,2 | cmp - "$pages.log"

# --- virtual-hosted addressing: curl resolves test.localhost itself.
vh () { st --addressing virtual --endpoint-url "http://localhost:$s3port" "$@"; }
e=$(vh put vh/obj "$tmp/obj")
[ "$(vh head vh/obj)" = "300000 $e" ]
vh get vh/obj | cmp - "$tmp/obj"
[ "$(vh list vh/)" = "vh/obj 300000" ]
if vh --endpoint-url "$S3_ENDPOINT" get vh/obj 2>"$tmp/err"; then
    fail "virtual-hosted addressing on an IP address"
fi
grep -q 'needs a host name.*\[bad_request\]$' "$tmp/err"
echo OK
