#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The file store keeps object key K as the file DIR/K: puts are atomic
# (no temporary file is ever listed), streamed gets deliver an object of
# several pieces whole (and refuse one over their limit), ranged gets
# return exact bytes,
# conditional puts behave as compare-and-swap, listing is sorted and honours
# the "/" delimiter, deletes remove emptied directories, and multipart
# uploads assemble parts uploaded in parallel.  Uploads left open (as by a
# crash) are listed under the key they are for, with their ids (the
# temporary file's name) and their files' mtimes, by key prefix; a put's
# temporary file, a link and a misnamed file are not uploads; an aborted
# upload is gone.
. "$srcdir/functions.sh"
requires cmp head

tmp=$(make_tmpdir)
b=$tmp/bucket
st () { "$STORE_TOOL" --bucket "$b" "$@"; }

head -c 100000 /dev/urandom > "$tmp/obj"
st put a/b/obj "$tmp/obj" >/dev/null
cmp "$tmp/obj" "$b/a/b/obj"
st get a/b/obj > "$tmp/got"
cmp "$tmp/obj" "$tmp/got"

# Streamed get: pieces of 256 KiB, the object whole; an empty one; the
# limit.
head -c 600000 /dev/urandom > "$tmp/pieces"
st put s/pieces "$tmp/pieces" >/dev/null
st get-stream s/pieces | cmp - "$tmp/pieces"
st put s/empty /dev/null >/dev/null
[ "$(st get-stream s/empty | wc -c)" = 0 ]
if st get-stream s/pieces 599999 2>"$tmp/err"; then fail "limit ignored"; fi
grep -q '600000 bytes is larger than the limit of 599999 \[too_large\]' "$tmp/err"

# Ranged get: exact bytes, and a range past the end is an error.
st get-range a/b/obj 1000 5000 > "$tmp/range"
cmp "$tmp/range" <(tail -c +1001 "$tmp/obj" | head -c 5000)
if st get-range a/b/obj 99000 5000 2>"$tmp/err"; then fail "short range accepted"; fi
grep -q 'bad_remote_data' "$tmp/err"

# Missing objects are not_found.
if st get nope 2>"$tmp/err"; then fail "missing object read"; fi
grep -q '\[not_found\]' "$tmp/err"

# Conditional puts: if-absent refuses an existing key; if-match needs the
# current etag, and the etag changes with the content.
echo one > "$tmp/v1"; echo two > "$tmp/v2"
e1=$(st put k "$tmp/v1" if-absent)
if st put k "$tmp/v2" if-absent 2>"$tmp/err"; then fail "if-absent overwrote"; fi
grep -q '\[conflict\]' "$tmp/err"
[ "$(st head k)" = "4 $e1" ]
e2=$(st put k "$tmp/v2" if-match "$e1")
[ "$e1" != "$e2" ]
if st put k "$tmp/v1" if-match "$e1" 2>"$tmp/err"; then fail "stale if-match accepted"; fi
grep -q '\[conflict\]' "$tmp/err"
[ "$(st get k)" = two ]

# Listing: sorted, with and without the delimiter; no temporary files.
: > "$tmp/empty"
for k in x/2 x/1 x/sub/3 x-y/4; do st put "$k" "$tmp/empty" >/dev/null; done
touch "$b/x/.tmp.junk"
[ "$(st list x/ | cut -d' ' -f1 | tr '\n' ' ')" = "x/1 x/2 x/sub/3 " ]
[ "$(st list x/ / | cut -d' ' -f1 | tr '\n' ' ')" = "x/1 x/2 x/sub/ " ]
[ "$(st list x | cut -d' ' -f1 | tr '\n' ' ')" = "x-y/4 x/1 x/2 x/sub/3 " ]

# Delete: missing keys are fine; emptied directories disappear.
st delete x/sub/3
st delete x/sub/3
[ ! -e "$b/x/sub" ]
[ "$(st list x/ / | cut -d' ' -f1 | tr '\n' ' ')" = "x/1 x/2 " ]

# Multipart: 4 threads, uneven last part.
head -c 23000000 /dev/urandom > "$tmp/big"
st upload big/blob "$tmp/big" 5M
cmp "$tmp/big" "$b/big/blob"
ls -a "$b/big" > "$tmp/ls"
! matches '^\.tmp\.' "$tmp/ls" || fail "temporary file left"

# Uploads in progress: two of one key, one of another; not a put's
# temporary file, a link, or a name without a key.
u1=$(st begin-upload up/d/delta.blob)
u2=$(st begin-upload up/d/delta.blob)
u3=$(st begin-upload up/manifest.json)
touch "$b/up/d/.tmp.delta.blob.put.abcdef" "$b/up/d/.tmp..upload.abcdef"
ln -s "$u1" "$b/up/d/.tmp.link.upload.abcdef"
touch -d @1700000000.25 "$b/up/d/$u1"
st list-uploads up/ | sort > "$tmp/uploads"
printf '%s\n' "up/d/delta.blob $u1 1700000000250" \
    "up/d/delta.blob $u2 $(stat -c %.3Y "$b/up/d/$u2" | tr -d .)" \
    "up/manifest.json $u3 $(stat -c %.3Y "$b/up/$u3" | tr -d .)" |
    sort | cmp - "$tmp/uploads"
[ "$(st list-uploads up/d/del | wc -l)" = 2 ]
[ "$(st list-uploads up/m | cut -d' ' -f2)" = "$u3" ]
[ -z "$(st list-uploads up/d/x)" ]
[ -z "$(st list-uploads nope/)" ]
[ -z "$(st list up/)" ]
st abort-upload up/d/delta.blob "$u1"
[ "$(st list-uploads up/ | cut -d' ' -f2 | sort)" = "$(printf '%s\n' "$u2" "$u3" | sort)" ]

# Keys that could escape the bucket are refused before any file access.
for k in ../evil /abs a//b a/./b 'a/../b'; do
    if st put "$k" "$tmp/v1" 2>"$tmp/err"; then fail "key $k accepted"; fi
    grep -q '\[bad_request\]' "$tmp/err"
done
echo OK
