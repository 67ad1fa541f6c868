#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Deleting a snapshot while the store fails to give another export's
# manifest (store-proxy's "set match"): whether that manifest names the
# blob is unknown, so the delete keeps the blob and fails saying why (502).
# It used to count the unreadable manifest as a user and answer
# "blob_kept": true -- another snapshot uses it -- for a blob nobody
# named, kept for good; the same check decides whether an interrupted
# publish's blob is removed (journal.c), which now keeps its journal and
# tries again.  A manifest that cannot be parsed still counts as naming
# the blob.
LAZYVOL_TEST_BACKEND=s3
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io
tmp=$(make_tmpdir)
start_store "$tmp"
start_store_proxy "$tmp/proxy"
STORE_ARGS=(storage-backend=s3 "bucket=$S3_BUCKET" "endpoint-url=$proxy_url"
            retries=1 timeout=10)
start_lazyvold "$tmp/d"
objects () { store_tool list exports/e/snapshots/; }

api POST /v1/exports/create '{"export_id":"e","size":2097152,"chunk_size":1048576}' >/dev/null
api POST /v1/exports/create '{"export_id":"f","size":1048576,"chunk_size":1048576}' >/dev/null
# Both are this host's (if taking ownership had failed, say how).
for x in e f; do
    api GET "/v1/exports/$x/status" | jq -e .writable >/dev/null ||
        fail "$x was created read-only: $(api GET "/v1/exports/$x/status" |
            jq -c '{writable, notice, last_error, owner}')"
done
qemu-io -f raw -c 'write -P 1 0 1M' "$(uri f)" >/dev/null
api POST /v1/exports/f/snapshot >/dev/null
qemu-io -f raw -c 'write -P 1 0 1M' "$(uri e)" >/dev/null
s1=$(api POST /v1/exports/e/snapshot | jq -r .snapshot_id)
qemu-io -f raw -c 'write -P 2 0 1M' "$(uri e)" >/dev/null
api POST /v1/exports/e/snapshot >/dev/null
# s2 rewrote chunk 0: s1's blob is named by s1's manifest alone.
objects | matches "$s1/delta.blob"

# f's manifest cannot be read: the delete cannot tell.
proxy_ctl set match /exports/f/snapshots/ >/dev/null
proxy_ctl set error 1 >/dev/null
r=$(api_expect 502 DELETE "/v1/exports/e/snapshots/$s1")
proxy_ctl clear >/dev/null
matches "cannot tell whether .*exports/f/snapshots/.*manifest.json names e/snapshots/$s1/delta.blob" <<<"$r"
matches 'its blob was kept' <<<"$r"
objects | matches "$s1/delta.blob"
! objects | grep -q "$s1/manifest.json" || fail "the manifest is still there"
[ "$(proxy_stat error)" -ge 1 ] || fail "no fault was injected"

# A manifest that does not parse counts as a user: the blob is kept, and
# the reply says so.
qemu-io -f raw -c 'write -P 3 0 1M' "$(uri e)" >/dev/null
s3=$(api POST /v1/exports/e/snapshot | jq -r .snapshot_id)
qemu-io -f raw -c 'write -P 4 0 1M' "$(uri e)" >/dev/null
api POST /v1/exports/e/snapshot >/dev/null
fsid=$(api GET /v1/exports/f/snapshots | jq -r '.snapshots[0].snapshot_id')
printf '{"format": 1,' > "$tmp/junk"
store_tool put "exports/f/snapshots/$fsid/manifest.json" "$tmp/junk" >/dev/null
r=$(api DELETE "/v1/exports/e/snapshots/$s3")
[ "$(jq .blob_kept <<<"$r")" = true ] || fail "$r"
objects | matches "$s3/delta.blob"
matches "keeping the blob it may use" "$tmp/d/lazyvold.log" ||
    matches "keeping the blob it may use" "$tmp/d/cache/.lazyvold/nbdkit.log"
echo OK
