#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Deleting a snapshot while the store fails to give a later snapshot of
# the export, which may name the blob (store-proxy's "set match"):
# whether it does is unknown, so the delete keeps the blob and fails
# saying why (502).  It used to count the unreadable snapshot as a user
# and answer "blob_kept": true -- another snapshot uses it -- for a blob
# nobody named, kept for good; the same check decides whether an
# interrupted publish's blob is removed (journal.c), which now keeps its
# journal and tries again.  A manifest that cannot be parsed (of a
# snapshot without a summary) still counts as naming the blob.
LAZYVOL_TEST_BACKEND=s3
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io
tmp=$(make_tmpdir)
start_store "$tmp"
start_store_proxy "$tmp/proxy"
store_via_proxy retries=1 timeout=10
start_lazyvold "$tmp/d"
objects () { store_tool list exports/e/snapshots/; }

api POST /v1/exports/create '{"export_id":"e","size":2097152,"chunk_size":1048576}' >/dev/null
# It is this host's (if taking ownership had failed, say how).
api GET /v1/exports/e/status | jq -e .writable >/dev/null ||
    fail "e was created read-only: $(api GET /v1/exports/e/status |
        jq -c '{writable, notice, last_error, owner}')"
qemu-io -f raw -c 'write -P 1 0 1M' "$(uri e)" >/dev/null
s1=$(api POST /v1/exports/e/snapshot | jq -r .snapshot_id)
qemu-io -f raw -c 'write -P 2 0 1M' "$(uri e)" >/dev/null
s2=$(api POST /v1/exports/e/snapshot | jq -r .snapshot_id)
qemu-io -f raw -c 'write -P 3 1M 1M' "$(uri e)" >/dev/null
s4=$(api POST /v1/exports/e/snapshot | jq -r .snapshot_id)
# s2 rewrote chunk 0: s1's blob is named by s1's manifest alone.
objects | matches "$s1/delta.blob"

# s2's summary cannot be read: the delete cannot tell.
proxy_ctl set match "/exports/e/snapshots/$s2/" >/dev/null
proxy_ctl set error 1 >/dev/null
r=$(api_expect 502 DELETE "/v1/exports/e/snapshots/$s1")
proxy_ctl clear >/dev/null
matches "cannot tell whether snapshot $s2 of e names e/snapshots/$s1/delta.blob: .*exports/e/snapshots/$s2/summary.json" <<<"$r"
matches 'its blob was kept' <<<"$r"
objects | matches "$s1/delta.blob"
! objects | grep -q "$s1/manifest.json" || fail "the manifest is still there"
[ "$(proxy_stat error)" -ge 1 ] || fail "no fault was injected"

# A manifest that does not parse counts as a user: the blob is kept, and
# the reply says so.  s5 rewrites both chunks, so that it names no blob
# of s4's; its summary is gone, as if written before summaries (a
# summary is read first).
qemu-io -f raw -c 'write -P 4 0 2M' "$(uri e)" >/dev/null
s5=$(api POST /v1/exports/e/snapshot | jq -r .snapshot_id)
store_tool delete "exports/e/snapshots/$s5/summary.json"
printf '{"format": 1,' > "$tmp/junk"
store_tool put "exports/e/snapshots/$s5/manifest.json" "$tmp/junk" >/dev/null
r=$(api DELETE "/v1/exports/e/snapshots/$s4")
[ "$(jq .blob_kept <<<"$r")" = true ] || fail "$r"
objects | matches "$s4/delta.blob"
matches "keeping the blob it may use" "$tmp/d/lazyvold.log" ||
    matches "keeping the blob it may use" "$tmp/d/cache/.lazyvold/nbdkit.log"
echo OK
