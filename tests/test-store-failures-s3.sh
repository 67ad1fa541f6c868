#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Object-store failures reach the user as clear errors and lose nothing.
# With a wrong secret the exports cannot load: the error names the
# store's refusal, nbdkit keeps running, and the secret never appears in
# any output.  With the store down, resident chunks still read, a missing
# chunk fails with EIO in bounded time, status answers at once, and a
# snapshot fails with store_unavailable while the dirty chunks stay
# dirty.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq timeout
tmp=$(make_tmpdir)
LAZYVOL_TEST_BACKEND=s3
start_store "$tmp"
secret=$AWS_SECRET_ACCESS_KEY

start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"s","size":8388608,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 9 0 8M' "$(uri s)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"s"}' >/dev/null
stop_lazyvol

# Wrong secret.
wrong=Wr0ngS3cretValue-do-not-print
AWS_SECRET_ACCESS_KEY=$wrong start_lazyvol "$tmp/r1" 2> "$tmp/log1"
[ "$(ctl '{"cmd":"list"}' | jq '.exports | length')" = 0 ]
r=$(ctl '{"cmd":"open","export_id":"s"}') && fail "loaded with a wrong secret"
[ "$(field "$r" code)" = store_denied ]
field "$r" error | grep -Eiq 'signature|denied|refused|credentials'
stop_lazyvol
! grep -rq "$wrong" "$tmp/log1" "$tmp/r1" || fail "the secret was printed"
! grep -q "$secret" "$tmp/log1" || fail "the secret was printed"

# The store goes down under a running export.
# No readahead: chunk 5 must still be missing when the store goes down.
start_lazyvol "$tmp/r2" readahead=0 2> "$tmp/log2"
qemu-io -f raw -c 'read -P 9 0 1M' "$(uri s)" >/dev/null
qemu-io -f raw -c 'write -P 7 2M 4k' -c flush "$(uri s)" >/dev/null
$S3_STOP >/dev/null 2>&1
qemu-io -f raw -c 'read -P 9 0 1M' "$(uri s)" >/dev/null
start=$(date +%s)
out=$(timeout 120 qemu-io -f raw -c 'read 5M 4k' "$(uri s)" 2>&1) || true
echo "$out" | matches 'Input/output error'
[ $(( $(date +%s) - start )) -lt 60 ]
[ "$(field "$(ctl '{"cmd":"status","export_id":"s"}')" dirty_chunks)" = 1 ]
r=$(ctl '{"cmd":"snapshot","export_id":"s"}') && fail "published to a dead store"
[ "$(field "$r" code)" = store_unavailable ]
r=$(ctl '{"cmd":"status","export_id":"s"}')
[ "$(field "$r" dirty_chunks)" = 1 ]
[ "$(field "$r" operation_state)" = idle ]
field "$r" last_error | matches snapshot
grep -q 's: chunk 5' "$tmp/log2"
echo OK
