#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The head move can reach the store although its reply is lost; the
# client's retry of the conditional put then fails against its own write.
# A publish must find out by re-reading volume.json instead of deleting
# objects the head now names:
#   - reply lost once: the snapshot is published and reported as such;
#   - reply lost and the store down right after: the outcome is unknown, so
#     the objects and the journal stay; once the store is back, the next
#     snapshot adopts the landed one and publishes on top of it.
# A fresh process then reads the head, and the layout is consistent.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy qemu-io jq cmp dd /usr/bin/python3
/usr/bin/python3 -c 'import boto3' || fail "python3-boto3 is not installed"
tmp=$(make_tmpdir)
LAZYVOL_TEST_BACKEND=s3
start_store "$tmp"
real=$S3_ENDPOINT

# All of lazyvol's requests go through the fault proxy: while $tmp/lose
# exists, the reply of the next conditional put of a volume.json is lost.
start_store_proxy "$tmp/proxy" --lose-suffix volume.json \
    --lose-file "$tmp/lose" --down-file "$tmp/down"
STORE_ARGS=(storage-backend=s3 "bucket=$S3_BUCKET"
            "endpoint-url=$proxy_url" retries=2 timeout=10)
start_lazyvol "$tmp/w" 2> "$tmp/log"
status () { ctl '{"cmd":"status","export_id":"lr"}'; }
head_gen () { store_tool get exports/lr/volume.json | jq .generation; }
manifests () { store_tool list exports/lr/snapshots/ | grep -c manifest.json; }

ctl '{"cmd":"create","export_id":"lr","size":16777216,"chunk_size":1048576}' >/dev/null
dd if=/dev/urandom of="$tmp/image" bs=1M count=16 status=none
nbdcopy "$tmp/image" "$(uri lr)"

# Reply lost once.
echo once > "$tmp/lose"
r=$(ctl '{"cmd":"snapshot","export_id":"lr"}')
[ ! -e "$tmp/lose" ]                  # the fault did happen
[ "$(proxy_stat lost-reply)" = 1 ]
[ "$(field "$r" snapshot_created)" = true ]
[ "$(field "$r" generation)" = 1 ]
[ "$(head_gen)" = 1 ] && [ "$(manifests)" = 1 ]
[ "$(field "$(status)" dirty_chunks)" = 0 ]

# Reply lost, then the store down: unknown outcome.
qemu-io -f raw -c 'write -P 8 3M 2M' "$(uri lr)" >/dev/null
dd if=/dev/zero bs=1M count=2 status=none | tr '\0' '\10' |
    dd of="$tmp/image" bs=1M seek=3 conv=notrunc status=none
echo then-down > "$tmp/lose"
r=$(ctl '{"cmd":"snapshot","export_id":"lr"}') && fail "published blind"
[ -e "$tmp/down" ]
# A store error that says so, not a conflict with "another writer".
field "$r" code | matches -E '^store_(unavailable|error)$'
field "$r" error | matches 'maybe after it landed, and it cannot be read again'
grep -q 'cannot tell whether volume.json now names snapshot' "$tmp/log"
[ -e "$tmp/w/cache/lr/snapshot.journal.json" ]
[ "$(head_gen)" = 2 ]                  # it did land...
[ "$(manifests)" = 2 ]                 # ...and its objects were kept
[ "$(field "$(status)" dirty_chunks)" = 2 ]

# The store is back: the next snapshot adopts generation 2, then
# publishes the still-dirty chunks as generation 3.
rm "$tmp/down"
qemu-io -f raw -c 'write -P 9 10M 1M' "$(uri lr)" >/dev/null
dd if=/dev/zero bs=1M count=1 status=none | tr '\0' '\11' |
    dd of="$tmp/image" bs=1M seek=10 conv=notrunc status=none
r=$(ctl '{"cmd":"snapshot","export_id":"lr"}')
[ "$(field "$r" generation)" = 3 ]
[ ! -e "$tmp/w/cache/lr/snapshot.journal.json" ]
[ "$(head_gen)" = 3 ] && [ "$(manifests)" = 3 ]
stop_lazyvol

/usr/bin/python3 "$abs_top_srcdir/tests/check_layout.py" "$real" \
    "$S3_BUCKET" exports >/dev/null
start_lazyvol "$tmp/r"
nbdcopy "$(uri lr)" "$tmp/got"
cmp "$tmp/image" "$tmp/got"
echo OK
