#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Conditional puts on S3.  A store that cannot evaluate them (stock Swift
# 2.30 answers HTTP 501) makes them fail with not_supported and a message
# saying so, and nothing is written.  A store that evaluates them (AWS S3;
# here Swift with the cond-put shim of s3-server.sh) gives the file
# store's compare-and-swap: if-absent refuses an existing key, if-match
# needs the current etag exactly as put and head report it; and the check
# is atomic: of 32 writers racing with the same etag (or all if-absent),
# exactly one wins.
. "$srcdir/functions.sh"
requires grep

tmp=$(make_tmpdir)
st () { "$STORE_TOOL" --backend s3 --endpoint-url "$S3_ENDPOINT" \
                      --bucket "$S3_BUCKET" "$@"; }
echo one > "$tmp/v1"
echo two > "$tmp/v2"

start_s3
if st put k "$tmp/v1" if-absent 2>"$tmp/err"; then
    fail "stock Swift accepted a conditional put"
fi
grep -q 'does not support this request: HTTP 501 (NotImplemented' "$tmp/err"
grep -q '\[not_supported\]$' "$tmp/err"
if st head k 2>/dev/null; then fail "the refused put wrote k"; fi
e0=$(st put k "$tmp/v1")
if st put k "$tmp/v2" if-match "$e0" 2>"$tmp/err"; then
    fail "stock Swift accepted If-Match"
fi
grep -q '\[not_supported\]$' "$tmp/err"
[ "$(st get k)" = one ]

start_s3 cond-put
e1=$(st put k "$tmp/v1" if-absent)
if st put k "$tmp/v2" if-absent 2>"$tmp/err"; then fail "if-absent overwrote"; fi
grep -q 'HTTP 412 (PreconditionFailed' "$tmp/err"
grep -q '\[conflict\]$' "$tmp/err"
[ "$(st head k)" = "4 $e1" ]
e2=$(st put k "$tmp/v2" if-match "$e1")
[ "$e1" != "$e2" ]
[ "$(st head k)" = "4 $e2" ]
if st put k "$tmp/v1" if-match "$e1" 2>"$tmp/err"; then
    fail "stale if-match accepted"
fi
grep -q '\[conflict\]$' "$tmp/err"
if st put gone "$tmp/v1" if-match "$e2" 2>"$tmp/err"; then
    fail "if-match created a missing key"
fi
grep -q '\[conflict\]$' "$tmp/err"
[ "$(st get k)" = two ]

# race COND [ETAG]: 32 concurrent puts to key r with the same condition,
# of bodies no earlier race wrote (a put of the same bytes keeps the
# etag, so If-Match would rightly pass twice); prints how many succeeded.
race ()
{
    local i pid wins=0 pids=()
    for i in $(seq 32); do
        echo "$1 writer $i" > "$tmp/w$i"
        st put r "$tmp/w$i" "$@" > /dev/null 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        if wait "$pid"; then wins=$((wins + 1)); fi
    done
    echo $wins
}
[ "$(race if-absent)" = 1 ] || fail "several if-absent puts of r won"
er=$(st head r | cut -d' ' -f2)
[ "$(race if-match "$er")" = 1 ] || fail "several if-match puts of r won"
echo OK
