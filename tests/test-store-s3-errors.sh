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
ms () { echo $(( $(date +%s%N) / 1000000 )); }

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
