#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A publish killed at any step (kill -9, simulated exactly with the crash
# points publish.after_journal ... publish.after_refs) loses nothing and
# leaves a usable state:
#   steps 1-5 (journal, blob under way, blob done, manifest, summary):
#     the head did not move; restart removes the unpublished objects
#     (the summary too), aborts the upload under way, and removes the
#     staging files;
#   steps 6-7 (volume.json, refs/current.json moved): the snapshot is
#     published; refs/current.json is repaired, and the chunks it
#     published, left dirty by the crash, are clean again (their bytes
#     are the head's).
# Either way the flushed data reads back, the next snapshot succeeds (and
# has nothing to publish after steps 6-7), and a fresh process reading
# the new head sees it.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy qemu-io jq cmp dd
requires_crash_points
tmp=$(make_tmpdir)
start_store "$tmp"
MiB=1048576
status () { ctl '{"cmd":"status","export_id":"p"}'; }

start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"p","size":67108864,"chunk_size":1048576}' >/dev/null
truncate -s 64M "$tmp/expect"
dd if=/dev/urandom of="$tmp/expect" bs=1M count=20 conv=notrunc status=none
nbdcopy "$tmp/expect" "$(uri p)"
ctl '{"cmd":"snapshot","export_id":"p"}' >/dev/null
gen=1

points=(publish.after_journal publish.during_upload publish.after_blob
        publish.after_manifest publish.after_summary publish.after_head
        publish.after_refs)
for step in 1 2 3 4 5 6 7; do
    stop_lazyvol
    crash_at "${points[step - 1]}" start_lazyvol "$tmp/w"
    # 12 MiB of new data (more than one 8 MiB upload part), flushed.
    dd if=/dev/urandom of="$tmp/new" bs=1M count=12 status=none
    qemu-io -f raw -c "write -s $tmp/new $((step*2*MiB)) 12M" -c flush \
        "$(uri p)" >/dev/null
    dd if="$tmp/new" of="$tmp/expect" bs=1M seek=$((step*2)) conv=notrunc status=none
    if ctl '{"cmd":"snapshot","export_id":"p"}'; then
        fail "step $step: the snapshot survived its crash"
    fi
    wait_for 30 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" ||
        fail "step $step: nbdkit did not die"

    start_lazyvol "$tmp/w"
    r=$(status)
    if [ $step -le 5 ]; then
        [ "$(field "$r" dirty_chunks)" -ge 12 ]
        [ "$(field "$r" remote_head_generation)" = $gen ]
    else
        gen=$((gen + 1))
        [ "$(field "$r" dirty_chunks)" = 0 ]
        [ "$(field "$r" remote_head_generation)" = $gen ]
    fi
    [ ! -e "$tmp/w/cache/p/snapshot.journal.json" ]
    [ ! -e "$tmp/w/cache/p/snapshot.staging" ]
    # Exactly one manifest per published generation; no stray objects.
    store_tool list exports/p/snapshots/ > "$tmp/objects"
    [ "$(grep -c 'manifest.json' "$tmp/objects")" = $gen ]
    [ "$(grep -c 'summary.json' "$tmp/objects")" = $gen ]
    [ "$(grep -c '\.blob ' "$tmp/objects")" = $gen ]
    ! matches '\.tmp\.' "$tmp/objects" || fail "step $step: temporary objects left"
    [ -z "$(store_tool list-uploads exports/)" ] ||
        fail "step $step: uploads left: $(store_tool list-uploads exports/)"
    store_tool get exports/p/refs/current.json | jq -e ".generation == $gen" >/dev/null
    nbdcopy "$(uri p)" "$tmp/got"
    cmp "$tmp/expect" "$tmp/got"

    r=$(ctl '{"cmd":"snapshot","export_id":"p"}')
    if [ $step -le 5 ]; then
        gen=$((gen + 1))
        [ "$(field "$r" snapshot_created)" = true ]
    else
        [ "$(field "$r" snapshot_created)" = false ]
    fi
    [ "$(field "$r" generation)" = $gen ]
    [ "$(field "$(status)" dirty_chunks)" = 0 ]
done
stop_lazyvol

# A fresh process with an empty cache reads the final head.
start_lazyvol "$tmp/r"
nbdcopy "$(uri p)" "$tmp/got"
cmp "$tmp/expect" "$tmp/got"
echo OK
