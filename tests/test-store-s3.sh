#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The S3 backend keeps the file backend's promises against a real,
# signature-checking S3 store (Swift with s3api on loopback): what it puts
# reads back exactly, through lazyvol and through an independent client
# (boto3), and what boto3 puts reads back through lazyvol; keys that need
# URI encoding name the same object for both; ranged gets return exact
# bytes and a range past the end is an error; missing objects are
# not_found; etags keep the store's quotes and match head; listings are
# sorted, honour the "/" delimiter, and follow continuation tokens across
# pages (1005 keys: two pages of the store's 1000, and 336 pages of 3);
# deletes are idempotent; a get never takes more than its limit; a
# multipart upload of five parts sent from four threads assembles byte
# for byte, also with each part's SHA-256 given by the caller (what is
# signed as x-amz-content-sha256: the store checks it, so a wrong one
# fails the part and the upload is aborted); one the store refuses to
# complete is aborted, as is one left open, by its id.  Uploads left open are listed by key prefix, with the
# ids boto3 sees and the time they began, in pages of 1 and 2 too (Swift
# names no next marker on a page of one: the listing goes on after the
# page's last upload).  Sweeping temporary objects is a no-op that sends
# no request: an unfinished put leaves nothing on S3.
. "$srcdir/functions.sh"
requires cmp head md5sum sort /usr/bin/python3
start_s3

tmp=$(make_tmpdir)
st () { "$STORE_TOOL" --backend s3 --endpoint-url "$S3_ENDPOINT" \
                      --bucket "$S3_BUCKET" "$@"; }

# boto get KEY FILE | put KEY FILE | put-many PREFIX N | uploads:
# the same store through boto3 (put-many: N empty objects PREFIX0000...;
# uploads: "KEY ID" of each multipart upload in progress).
boto ()
{
    /usr/bin/python3 - "$@" <<'EOF'
import os, sys
from concurrent.futures import ThreadPoolExecutor
import boto3
from botocore.config import Config
s3 = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'],
                  region_name=os.environ['S3_REGION'],
                  config=Config(s3={'addressing_style': 'path'},
                                max_pool_connections=16))
bucket = os.environ['S3_BUCKET']
op, key, arg = (sys.argv[1:] + ['', ''])[:3]
if op == 'uploads':
    for u in s3.list_multipart_uploads(Bucket=bucket).get('Uploads', []):
        print(u['Key'], u['UploadId'])
elif op == 'get':
    with open(arg, 'wb') as f:
        f.write(s3.get_object(Bucket=bucket, Key=key)['Body'].read())
elif op == 'put':
    with open(arg, 'rb') as f:
        s3.put_object(Bucket=bucket, Key=key, Body=f.read())
else:
    names = ['%s%04d' % (key, i) for i in range(int(arg))]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k), names))
EOF
}

# Put, get, and the same bytes through boto3; the etag is the store's.
head -c 100000 /dev/urandom > "$tmp/obj"
etag=$(st put a/b/obj "$tmp/obj")
[ "$etag" = "\"$(md5sum < "$tmp/obj" | cut -d' ' -f1)\"" ]
[ "$(st head a/b/obj)" = "100000 $etag" ]
st get a/b/obj > "$tmp/got"
cmp "$tmp/obj" "$tmp/got"
boto get a/b/obj "$tmp/boto"
cmp "$tmp/obj" "$tmp/boto"

# A get never takes more than its limit.
st get a/b/obj 100000 | cmp - "$tmp/obj"
if st get a/b/obj 99999 2>"$tmp/err"; then fail "limit ignored"; fi
grep -q 'larger than the limit of 99999 bytes \[too_large\]$' "$tmp/err"

# A key with characters that must be URI-encoded is one object for both.
odd="odd/a+b=c&d;e,f@g\$h!~'(x)*%20.bin"
st put "$odd" "$tmp/obj" >/dev/null
boto get "$odd" "$tmp/boto"
cmp "$tmp/obj" "$tmp/boto"
[ "$(st list odd/)" = "$odd 100000" ]

# Ranged get: exact bytes; the whole object; a range past the end fails.
st get-range a/b/obj 1000 5000 > "$tmp/range"
cmp "$tmp/range" <(tail -c +1001 "$tmp/obj" | head -c 5000)
st get-range a/b/obj 0 100000 | cmp - "$tmp/obj"
for r in "99000 5000" "100000 1" "200000 10"; do
    if st get-range a/b/obj $r 2>"$tmp/err"; then fail "range $r accepted"; fi
    grep -q 'bad_remote_data' "$tmp/err"
done

# Missing objects are not_found.
for cmd in "get nope" "head nope" "get-range nope 0 1"; do
    if st $cmd 2>"$tmp/err"; then fail "$cmd succeeded"; fi
    grep -q 'NoSuchKey\|HTTP 404' "$tmp/err"
    grep -q '\[not_found\]' "$tmp/err"
done

# What boto3 stores, lazyvol reads, whole and in part.
head -c 3000000 /dev/urandom > "$tmp/b3"
boto put from/boto "$tmp/b3"
st get from/boto | cmp - "$tmp/b3"
st get-range from/boto 2999000 1000 | cmp - <(tail -c 1000 "$tmp/b3")

# Listing: sorted, with and without the delimiter.
: > "$tmp/empty"
for k in x/2 x/1 x/sub/3 x-y/4; do st put "$k" "$tmp/empty" >/dev/null; done
[ "$(st list x/ | cut -d' ' -f1 | tr '\n' ' ')" = "x/1 x/2 x/sub/3 " ]
[ "$(st list x/ / | cut -d' ' -f1 | tr '\n' ' ')" = "x/1 x/2 x/sub/ " ]
[ "$(st list x | cut -d' ' -f1 | tr '\n' ' ')" = "x-y/4 x/1 x/2 x/sub/3 " ]
[ "$(st list x/ | cut -d' ' -f2 | tr '\n' ' ')" = "0 0 0 " ]

# Pagination: 1005 keys, then pages of 3 mixing keys and prefixes.
boto put-many p/k 1005
for k in p/d/1 p/d/2 p/e/1 p/z; do st put "$k" "$tmp/empty" >/dev/null; done
{ seq -f 'p/k%04g' 0 1004; echo p/d/1; echo p/d/2; echo p/e/1; echo p/z; } |
    sort > "$tmp/want"
st list p/ | cut -d' ' -f1 > "$tmp/list"
cmp "$tmp/want" "$tmp/list"
LAZYVOL_S3_MAX_KEYS=3 st --stats list p/ 2>"$tmp/stats" |
    cut -d' ' -f1 > "$tmp/list"
cmp "$tmp/want" "$tmp/list"
grep -q '^requests=337 ' "$tmp/stats"
{ seq -f 'p/k%04g' 0 1004; echo p/d/; echo p/e/; echo p/z; } |
    sort > "$tmp/want"
LAZYVOL_S3_MAX_KEYS=3 st list p/ / | cut -d' ' -f1 > "$tmp/list"
cmp "$tmp/want" "$tmp/list"

# Delete: missing keys are fine; deleted keys leave the listing.
st delete x/sub/3
st delete x/sub/3
[ "$(st list x/ / | cut -d' ' -f1 | tr '\n' ' ')" = "x/1 x/2 " ]
if st get x/sub/3 2>/dev/null; then fail "deleted object still there"; fi

# Multipart: five parts (the last uneven) from four threads, read back by
# lazyvol and by boto3.
head -c 23000000 /dev/urandom > "$tmp/big"
st --stats upload big/blob "$tmp/big" 5M 2>"$tmp/stats"
grep -q '^requests=7 errors=0 retries=0 in=[0-9]* out=23000' "$tmp/stats"
st get big/blob | cmp - "$tmp/big"
boto get big/blob "$tmp/boto"
cmp "$tmp/big" "$tmp/boto"
[ "$(st list big/)" = "big/blob 23000000" ]

# The same with the parts' hashes computed by the caller, as a publish
# does; a wrong hash is refused by the store (Swift: 422, BadDigest),
# tried again as a damaged body is, and fails the upload, which leaves
# neither object nor parts.
st --stats upload big/hashed "$tmp/big" 5M sha256 2>"$tmp/stats"
grep -q '^requests=7 errors=0 retries=0 in=[0-9]* out=23000' "$tmp/stats" ||
    fail "$(cat "$tmp/stats")"
st get big/hashed | cmp - "$tmp/big"
if st --retries 1 upload big/wrong "$tmp/big" 5M wrong-sha256 2>"$tmp/err"
then
    fail "parts with a wrong SHA-256 accepted"
fi
matches '^store-tool: upload big/wrong part [1-5] \[[0-9]*+[0-9]*\]: HTTP 400 after 2 tries (BadDigest' "$tmp/err"
[ -z "$(boto uploads)" ]
[ "$(st list big/)" = "big/blob 23000000
big/hashed 23000000" ]

# Parts below the store's 5 MiB minimum: complete fails, naming why, and
# the upload is aborted, leaving neither object nor parts.
head -c 3000000 /dev/urandom > "$tmp/small"
if st upload small/blob "$tmp/small" 1M 2>"$tmp/err"; then
    fail "parts under 5 MiB accepted"
fi
grep -q 'complete upload of small/blob: HTTP 400 (EntityTooSmall' "$tmp/err"
[ -z "$(boto uploads)" ]
[ -z "$(st list small/)" ]

# An upload left open (as by a crash) is aborted by its id, twice.
id=$(st begin-upload left/open)
[ "$(boto uploads)" = "left/open $id" ]
st abort-upload left/open "$id"
[ -z "$(boto uploads)" ]
st abort-upload left/open "$id"

# Uploads left open, listed: all pages, by prefix.
t0=$(date +%s%3N)
for k in up/d/delta.blob up/d/delta.blob up/manifest.json up-x/k; do
    st begin-upload "$k" >/dev/null
done
t1=$(date +%s%3N)
boto uploads | grep '^up/' | sort > "$tmp/want"
[ "$(wc -l < "$tmp/want")" = 3 ]
st list-uploads up/ > "$tmp/uploads"
cut -d' ' -f1,2 "$tmp/uploads" | sort | cmp - "$tmp/want"
# Swift gives the time rounded up to a second.
while read -r k i ms; do
    [ "$ms" -ge $((t0 - 1000)) ] && [ "$ms" -le $((t1 + 1000)) ] ||
        fail "upload $i of $k initiated at $ms, not in [$t0, $t1]"
done < "$tmp/uploads"
for n in 1 2; do
    LAZYVOL_S3_MAX_KEYS=$n st --stats list-uploads up/ 2>"$tmp/stats" |
        cut -d' ' -f1,2 | sort | cmp - "$tmp/want"
    grep -q "^requests=$((n == 1 ? 4 : 2)) errors=0 " "$tmp/stats"
done
[ "$(st list-uploads up/d/ | wc -l)" = 2 ]
[ -z "$(st list-uploads nope/)" ]
while read -r k i; do st abort-upload "$k" "$i"; done < "$tmp/want"
[ -z "$(st list-uploads up/)" ]
[ "$(st list-uploads "" | cut -d' ' -f1)" = up-x/k ]

st --stats sweep-temps "" 2>"$tmp/stats"
grep -q '^requests=0 errors=0 ' "$tmp/stats"

# Keys that could escape the bucket are refused before any request.
for k in ../evil /abs a//b a/./b 'a/../b'; do
    if st put "$k" "$tmp/obj" 2>"$tmp/err"; then fail "key $k accepted"; fi
    grep -q '\[bad_request\]' "$tmp/err"
done
echo OK
