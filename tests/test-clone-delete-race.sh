#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A clone racing the delete of its source snapshot (the rule at the top
# of common/snapshots.c): the clone has read the source's manifest, then
# the snapshot is deleted -- its blob too, since no manifest names it
# yet -- and only then does the clone write its manifest.  The clone
# must fail, saying why, and leave nothing behind: it would otherwise
# name a blob that is gone.  (-D lazyvol.clone_delay holds the clone in
# that window.)  A clone of a snapshot deleted before it starts is
# refused as not found.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq
tmp=$(make_tmpdir)
start_store "$tmp"
objects () { store_tool list exports/ | cut -d' ' -f1; }
NBDKIT_OPTS=(-D lazyvol.clone_delay=3000)
# A long lease: no renewal counts as a store request below.
start_lazyvol "$tmp/a" lease=600
requests () { ctl '{"cmd":"metrics"}' | jq .store.requests; }

ctl '{"cmd":"create","export_id":"src","size":4194304,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 1M' "$(uri src)" >/dev/null
s1=$(field "$(ctl '{"cmd":"snapshot","export_id":"src"}')" snapshot_id)
# After a compact no other manifest of src names s1's blob.
ctl '{"cmd":"compact","export_id":"src"}' >/dev/null
objects | matches "$s1/delta.blob"

before=$(requests)
ctl "{\"cmd\":\"clone\",\"export_id\":\"cl\",\"source_export_id\":\"src\",\"source_snapshot_id\":\"$s1\"}" \
    > "$tmp/clone.out" 2>&1 &
clone=$!
# The clone's one request before its delay reads s1's manifest.
clone_has_read () { [ "$(requests)" -gt "$before" ]; }
wait_for 10 clone_has_read || fail "the clone did not read the manifest"
r=$(ctl "{\"cmd\":\"delete_snapshot\",\"export_id\":\"src\",\"snapshot_id\":\"$s1\"}")
[ "$(field "$r" blob_kept)" = false ]
! objects | grep -q "$s1/" || fail "s1's objects are left"
s=0
wait "$clone" || s=$?
cat "$tmp/clone.out"
[ "$s" != 0 ] || fail "the clone of a deleted snapshot succeeded"
matches "snapshot $s1 of src was deleted while it was being cloned" "$tmp/clone.out"
! objects | grep -q '^exports/cl/' || fail "the clone left: $(objects | grep '^exports/cl/')"
if ctl '{"cmd":"status","export_id":"cl"}' >/dev/null 2>&1; then
    fail "the failed clone is loaded"
fi

# Deleted before the clone starts: not found.
if r=$(ctl "{\"cmd\":\"clone\",\"export_id\":\"cl\",\"source_export_id\":\"src\",\"source_snapshot_id\":\"$s1\"}"); then
    fail "cloned a deleted snapshot"
fi
[ "$(field "$r" code)" = not_found ]
echo OK
