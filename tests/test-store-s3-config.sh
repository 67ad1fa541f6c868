#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# What the s3 and r2 backends accept as configuration.  A bad bucket
# name, region or endpoint URL, an ambiguous or missing R2 endpoint, and
# virtual-hosted R2 are refused at open with bad_request, before any
# request.  R2 is S3 path-style with region "auto": pointed at the local
# store (which wants its own region) it reads and writes; left at "auto"
# the store's complaint about the region reaches the message.  A session
# token (AWS_SESSION_TOKEN) is signed along and accepted.
. "$srcdir/functions.sh"
requires grep
start_s3

tmp=$(make_tmpdir)
echo hello > "$tmp/v"
st () { "$STORE_TOOL" "$@"; }

refused ()
{
    local why=$1
    shift
    if st "$@" get k 2>"$tmp/err"; then fail "accepted: $*"; fi
    grep -q "$why.*\[bad_request\]$" "$tmp/err" ||
        fail "$*: $(cat "$tmp/err")"
}
refused 'invalid bucket name' --backend s3 --bucket Bad_Bucket
refused 'invalid bucket name' --backend s3 --bucket 192.168.1.1
refused 'invalid bucket name' --backend s3 --bucket a..b
refused 'invalid region' --backend s3 --bucket b-1 --region 'us east'
refused 'is not http\[s\]://HOST\[:PORT\]' --backend s3 --bucket b-1 \
        --endpoint-url "$S3_ENDPOINT/path"
refused 'is not http\[s\]://HOST\[:PORT\]' --backend s3 --bucket b-1 \
        --endpoint-url ftp://example.com
refused 'is not http\[s\]://HOST\[:PORT\]' --backend s3 --bucket b-1 \
        --endpoint-url http://user:pw@example.com
refused 'one of them' --backend r2 --bucket b-1
refused 'one of them' --backend r2 --bucket b-1 --r2-account-id abc \
        --endpoint-url "$S3_ENDPOINT"
refused 'invalid account id' --backend r2 --bucket b-1 --r2-account-id a.b
refused 'path-style only' --backend r2 --bucket b-1 --r2-account-id abc \
        --addressing virtual

r2 () { st --backend r2 --endpoint-url "$S3_ENDPOINT" --bucket "$S3_BUCKET" "$@"; }
r2 --region "$S3_REGION" put r2/k "$tmp/v" >/dev/null
[ "$(r2 --region "$S3_REGION" get r2/k)" = hello ]
if r2 get r2/k 2>"$tmp/err"; then fail "region auto accepted by Swift"; fi
grep -q "AuthorizationHeaderMalformed.*region 'auto'" "$tmp/err"

[ "$(AWS_SESSION_TOKEN=session-token st --backend s3 \
       --endpoint-url "$S3_ENDPOINT" --bucket "$S3_BUCKET" get r2/k)" = hello ]
echo OK
