#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Deleting a snapshot removes its manifest; its blob goes only if no other
# manifest — of this export or of any clone — still uses it.  The current
# snapshot cannot be deleted.  A clone made from a deleted snapshot keeps
# reading its data.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy qemu-io qemu-img jq
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvol "$tmp/a"
objects () { store_tool list exports/ | cut -d' ' -f1; }
snap () { field "$(ctl "{\"cmd\":\"snapshot\",\"export_id\":\"$1\"}")" snapshot_id; }

ctl '{"cmd":"create","export_id":"src","size":16777216,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 2M' "$(uri src)" >/dev/null
s1=$(snap src)
nbdcopy "$(uri src)" "$tmp/s1.img"
ctl "{\"cmd\":\"clone\",\"export_id\":\"cl\",\"source_export_id\":\"src\",\"source_snapshot_id\":\"$s1\"}" >/dev/null
qemu-io -f raw -c 'write -P 2 4M 1M' "$(uri src)" >/dev/null
s2=$(snap src)
qemu-io -f raw -c 'write -P 3 8M 1M' "$(uri src)" >/dev/null
ctl '{"cmd":"compact","export_id":"src"}' >/dev/null
s4=$(field "$(ctl '{"cmd":"status","export_id":"src"}')" snapshot_id)

# The current snapshot is refused.
if r=$(ctl "{\"cmd\":\"delete_snapshot\",\"export_id\":\"src\",\"snapshot_id\":\"$s4\"}"); then
    fail "deleted the current snapshot"
fi
[ "$(field "$r" code)" = busy ]

# s1's blob is used by s2's manifest and by the clone: kept.
r=$(ctl "{\"cmd\":\"delete_snapshot\",\"export_id\":\"src\",\"snapshot_id\":\"$s1\"}")
[ "$(field "$r" blob_kept)" = true ]
objects > "$tmp/objects"
! matches "$s1/manifest.json" "$tmp/objects" || fail "s1 manifest still there"
objects | matches "$s1/delta.blob"

# s2 is used by no one once compacted: its blob goes.
r=$(ctl "{\"cmd\":\"delete_snapshot\",\"export_id\":\"src\",\"snapshot_id\":\"$s2\"}")
[ "$(field "$r" blob_kept)" = false ]
objects > "$tmp/objects"
! matches "$s2/" "$tmp/objects" || fail "s2 objects still there"
# Still listed: only the compacted snapshot; s1's blob stays for the clone.
ctl '{"cmd":"snapshots","export_id":"src"}' | jq -e '.snapshots | length == 1' >/dev/null
objects | matches "$s1/delta.blob"
if ctl "{\"cmd\":\"delete_snapshot\",\"export_id\":\"src\",\"snapshot_id\":\"$s1\"}" >/dev/null; then
    fail "deleted a missing snapshot"
fi

# The clone reads its data from a fresh cache in another process.
stop_lazyvol
start_lazyvol "$tmp/b"
qemu-img compare -f raw -F raw "$tmp/s1.img" "$(uri cl)"
echo OK
