#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Recovery never deletes what a reachable manifest uses.  Host A crashes
# just after its head put of snapshot S1 (chunks 1 and 5) landed
# (crash point publish.after_head), and host B (its own cache root, same
# store) then publishes S2 on top of S1, rewriting chunk 5: S2's manifest
# reads chunk 1 from S1's blob.  When A restarts, its journal names S1
# and the head is S2; S1 landed (the head's parent chain passes through
# it), so its blob and manifest stay, and every chunk still reads.  A's
# chunks 1 and 5, left dirty by the crash, hold S1's bytes: they are
# clean now, and A reads B's chunk 5, not its own stale copy.  The
# opposite case is cleaned up: A crashes before moving the head
# (publish.after_manifest),
# B publishes S2' at the generation A wanted, and A's restart removes its
# orphaned S1' objects.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy qemu-io jq
requires_crash_points
tmp=$(make_tmpdir)
start_store "$tmp"
MiB=1048576
status () { ctl '{"cmd":"status","export_id":"r"}'; }
snapshot () { ctl '{"cmd":"snapshot","export_id":"r"}'; }
objects () { store_tool list exports/r/snapshots/; }
# crash_publish POINT OFFSET BYTE...: on host A, write 1 MiB of each BYTE
# at OFFSET, OFFSET + 4 MiB ... and snapshot, dying at crash point POINT.
crash_publish ()
{
    local point=$1 off=$2
    shift 2
    crash_at "$point" start_lazyvol "$tmp/a"
    for byte in "$@"; do
        qemu-io -f raw -c "write -P $byte $off 1M" -c flush "$(uri r)" >/dev/null
        off=$((off + 4*MiB))
    done
    if snapshot; then fail "the snapshot survived its crash"; fi
    wait_for 30 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" || fail "A did not die"
}

start_lazyvol "$tmp/a"
ctl '{"cmd":"create","export_id":"r","size":8388608,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 0x10 0 4M' -c flush "$(uri r)" >/dev/null
s0=$(field "$(snapshot)" snapshot_id)
stop_lazyvol

# A: S1 (chunks 1 and 5 = 0x11, 0x15) lands; A dies before its bookkeeping.
crash_publish publish.after_head $MiB 0x11 0x15
s1=$(store_tool get exports/r/volume.json | jq -r .snapshot_id)
[ "$s1" != "$s0" ]
[ -e "$tmp/a/cache/r/snapshot.journal.json" ]

# B (A is dead: B takes its export by force) publishes S2 on top of S1,
# writing chunk 2 and rewriting chunk 5.
start_lazyvol "$tmp/b" takeover=force
qemu-io -f raw -c "write -P 0x22 $((2*MiB)) 1M" \
    -c "write -P 0x55 $((5*MiB)) 1M" -c flush "$(uri r)" >/dev/null
s2=$(field "$(snapshot)" snapshot_id)
store_tool get "exports/r/snapshots/$s2/manifest.json" |
    matches "r/snapshots/$s1/delta.blob"
stop_lazyvol

# A restarts: its journal is settled without deleting S1.
start_lazyvol "$tmp/a" 2>"$tmp/a.log"
[ ! -e "$tmp/a/cache/r/snapshot.journal.json" ]
objects > "$tmp/objects"
matches "$s1/manifest.json" "$tmp/objects" || fail "S1's manifest was deleted"
matches "$s1/delta.blob" "$tmp/objects" || fail "S1's blob was deleted"
matches "snapshot $s1 was published before a crash, and the head has moved on" \
    "$tmp/a.log"
[ "$(field "$(status)" dirty_chunks)" = 0 ] || fail "S1's chunks stayed dirty"
qemu-io -f raw -c "read -P 0x11 $MiB 1M" -c "read -P 0x55 $((5*MiB)) 1M" \
    "$(uri r)" >/dev/null
[ "$(field "$(snapshot)" snapshot_created)" = false ]
stop_lazyvol

# A fresh host reads the head: every chunk, from three snapshots' blobs.
start_lazyvol "$tmp/c"
qemu-io -f raw -c 'read -P 0x10 0 1M' -c "read -P 0x11 $MiB 1M" \
    -c "read -P 0x22 $((2*MiB)) 1M" -c "read -P 0x10 $((3*MiB)) 1M" \
    -c "read -P 0x55 $((5*MiB)) 1M" "$(uri r)" >/dev/null
stop_lazyvol

# The other way round: A's S1' never lands (crash before the head moves),
# and B publishes at the generation A wanted.  A's restart removes S1'.
gen=$(store_tool get exports/r/volume.json | jq .generation)
rm -rf "$tmp/a/cache/r"          # A's stale dirty chunks are not the point
crash_publish publish.after_manifest $((3*MiB)) 0x33
orphan=$(jq -r .snapshot_id "$tmp/a/cache/r/snapshot.journal.json")
objects | matches "$orphan/manifest.json"
start_lazyvol "$tmp/b" takeover=force     # A is dead, B takes over
qemu-io -f raw -c "write -P 0x44 $((4*MiB)) 1M" -c flush "$(uri r)" >/dev/null
r=$(snapshot)
[ "$(field "$r" generation)" = $((gen + 1)) ]
stop_lazyvol
start_lazyvol "$tmp/a" 2>"$tmp/a2.log"
matches "a publish of snapshot $orphan was interrupted" "$tmp/a2.log"
objects > "$tmp/objects"
! matches "$orphan/" "$tmp/objects" || fail "the orphaned objects of $orphan stayed"
[ ! -e "$tmp/a/cache/r/snapshot.journal.json" ]
stop_lazyvol
echo OK
