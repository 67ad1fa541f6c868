#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Local writes over a base the head has moved past are never published
# over it.  Host A publishes S1, writes chunk 2 and dies; host B takes the
# export over once A's lease has expired, and publishes S2.  When A comes
# back, its dirty chunk is based on S1: the export loads read-only and
# stale, serves S1 plus A's write (a consistent image, never B's chunks
# mixed with A's), refuses writes and snapshots, and leaves the head
# alone.  (Before, A's next snapshot published B's data plus A's chunk.)
# The two ways out: fork the writes into a new export made from S1, or
# reset the cache.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq
tmp=$(make_tmpdir)
start_store "$tmp"
MiB=1048576
OWN=(lease=3)
status () { ctl "{\"cmd\":\"status\",\"export_id\":\"$1\"}"; }
reads () { qemu-io -r -f raw -c "read -P $2 $3 1M" "$(uri "$1")" >/dev/null; }

# A: S1 = chunk 0; then chunk 2, flushed, not published; A dies.
a_dies_with_write ()
{
    start_lazyvol "$tmp/a" host-id=hosta "${OWN[@]}"
    [ -n "${1:-}" ] && "$@"
    qemu-io -f raw -c "write -P 0xa2 $((2*MiB)) 1M" -c flush "$(uri w)" >/dev/null
    stop_lazyvol KILL
}
# B: after A's lease expired, writes chunks 1 and 2 and publishes $s2.
b_takes_over_and_publishes ()
{
    start_lazyvol "$tmp/b" host-id=hostb "${OWN[@]}" discover=false
    s=$(ctl '{"cmd":"open","export_id":"w","takeover":true}')
    [ "$(field "$s" owner.host_id)" = hostb ]
    qemu-io -f raw -c "write -P 0xb1 $MiB 1M" -c "write -P 0xb2 $((2*MiB)) 1M" \
        "$(uri w)" >/dev/null
    s2=$(field "$(ctl '{"cmd":"snapshot","export_id":"w"}')" snapshot_id)
    stop_lazyvol
}
create_s1 ()
{
    ctl '{"cmd":"create","export_id":"w","size":8388608,"chunk_size":1048576}' >/dev/null
    qemu-io -f raw -c 'write -P 0x01 0 1M' "$(uri w)" >/dev/null
    s1=$(field "$(ctl '{"cmd":"snapshot","export_id":"w"}')" snapshot_id)
}

a_dies_with_write create_s1
b_takes_over_and_publishes
gen=$(store_tool get exports/w/volume.json | jq .generation)
[ "$gen" = 2 ]

start_lazyvol "$tmp/a" host-id=hosta "${OWN[@]}"
s=$(status w)
[ "$(field "$s" stale)" = true ]
[ "$(field "$s" writable)" = false ]
[ "$(field "$s" based_on.snapshot_id)" = "$s1" ]
[ "$(field "$s" snapshot_id)" = "$s2" ]
[ "$(field "$s" dirty_chunks)" = 1 ]
field "$s" notice | matches 'based on an older snapshot'
r=$(ctl '{"cmd":"snapshot","export_id":"w"}') && fail "published stale writes"
[ "$(field "$r" code)" = read_only ]
[ "$(store_tool get exports/w/volume.json | jq .generation)" = "$gen" ]
[ "$(store_tool get exports/w/volume.json | jq -r .snapshot_id)" = "$s2" ]
# S1 plus A's write: chunk 1 is S1's (zeros), not B's.
reads w 0x01 0 && reads w 0 $MiB && reads w 0xa2 $((2*MiB))
qemu-io -f raw -c 'write -P 9 0 1M' "$(uri w)" 2>/dev/null &&
    fail "a stale export accepted a write"

# Way out 1: fork the writes into export w-a, a clone of S1.
s=$(ctl '{"cmd":"fork","export_id":"w","new_export_id":"w-a"}')
[ "$(field "$s" export_id)" = w-a ]
[ "$(field "$s" writable)" = true ]
[ "$(field "$s" stale)" = false ]
[ "$(field "$s" dirty_chunks)" = 1 ]
reads w-a 0x01 0 && reads w-a 0 $MiB && reads w-a 0xa2 $((2*MiB))
[ "$(field "$(ctl '{"cmd":"snapshot","export_id":"w-a"}')" generation)" = 2 ]
store_tool get exports/w-a/volume.json | jq -e '.generation == 2' >/dev/null
# w itself is B's head again, with no local state.
s=$(status w)
[ "$(field "$s" stale)" = false ]
[ "$(field "$s" dirty_chunks)" = 0 ]
[ "$(field "$s" writable)" = true ]
reads w 0x01 0 && reads w 0xb1 $MiB && reads w 0xb2 $((2*MiB))
r=$(ctl '{"cmd":"fork","export_id":"w","new_export_id":"w-a"}') &&
    fail "forked onto an existing export"
[ "$(field "$r" code)" = already_exists ]
stop_lazyvol

# Way out 2: the same again, and a reset drops A's write.
a_dies_with_write
b_takes_over_and_publishes
start_lazyvol "$tmp/a" host-id=hosta "${OWN[@]}"
[ "$(field "$(status w)" stale)" = true ]
# A fork onto an id with a local cache directory already: refused before
# anything is made, and w stays loaded, stale, with its write.
mkdir -p "$tmp/a/cache/w-x" && touch "$tmp/a/cache/w-x/keep"
r=$(ctl '{"cmd":"fork","export_id":"w","new_export_id":"w-x"}') &&
    fail "forked onto an existing cache directory"
[ "$(field "$r" code)" = already_exists ]
store_tool get exports/w-x/volume.json >/dev/null 2>&1 &&
    fail "a failed fork created its export"
s=$(status w)
[ "$(field "$s" stale)" = true ] && [ "$(field "$s" dirty_chunks)" = 1 ]
s=$(ctl '{"cmd":"reset","export_id":"w"}')
[ "$(field "$s" stale)" = false ]
[ "$(field "$s" dirty_chunks)" = 0 ]
[ "$(field "$s" writable)" = true ]
reads w 0x01 0 && reads w 0xb1 $MiB && reads w 0xb2 $((2*MiB))
qemu-io -f raw -c "write -P 0x33 $((3*MiB)) 1M" "$(uri w)" >/dev/null
[ "$(field "$(ctl '{"cmd":"snapshot","export_id":"w"}')" generation)" = 4 ]
stop_lazyvol

# Way out 3: the base snapshot is deleted meanwhile.  Only A's chunk can
# be read, fork says why not, and dump-dirty saves the write to a file.
a_dies_with_write
s3=$(store_tool get exports/w/volume.json | jq -r .snapshot_id)
b_takes_over_and_publishes
start_lazyvol "$tmp/b" host-id=hostb "${OWN[@]}"
ctl "{\"cmd\":\"delete_snapshot\",\"export_id\":\"w\",\"snapshot_id\":\"$s3\"}" >/dev/null
stop_lazyvol
start_lazyvol "$tmp/a" host-id=hosta "${OWN[@]}"
s=$(status w)
[ "$(field "$s" stale)" = true ]
[ "$(field "$s" based_on.snapshot_id)" = "$s3" ]
field "$s" notice | matches 'dump-dirty'
reads w 0xa2 $((2*MiB))
if qemu-io -r -f raw -c "read 0 1M" "$(uri w)" >/dev/null 2>&1; then
    fail "served a chunk of a deleted snapshot"
fi
r=$(ctl '{"cmd":"fork","export_id":"w","new_export_id":"w-b"}') &&
    fail "forked from a deleted snapshot"
[ "$(field "$r" code)" = not_found ]
field "$r" error | matches 'dump-dirty'
ctl '{"cmd":"close","export_id":"w"}' >/dev/null
"$LAZYVOLD" dump-dirty --cache-root "$tmp/a/cache" w "$tmp/dump.raw" > "$tmp/dump.json"
[ "$(jq -c .ranges "$tmp/dump.json")" = "[{\"offset\":$((2*MiB)),\"length\":$MiB}]" ]
[ "$(jq -r .based_on.snapshot_id "$tmp/dump.json")" = "$s3" ]
[ "$(stat -c %s "$tmp/dump.raw")" = 8388608 ]
matches -F "\"$tmp/dump.raw\"" < "$tmp/dump.json"    # as written, no \/
qemu-io -r -f raw -c "read -P 0xa2 $((2*MiB)) 1M" "$tmp/dump.raw" >/dev/null
# It needs the export closed, and never overwrites a file.
if "$LAZYVOLD" dump-dirty --cache-root "$tmp/a/cache" w "$tmp/dump.raw" 2> "$tmp/err"; then
    fail "dump-dirty overwrote a file"
fi
matches 'File exists' "$tmp/err"
ctl '{"cmd":"open","export_id":"w"}' >/dev/null
if "$LAZYVOLD" dump-dirty --cache-root "$tmp/a/cache" w "$tmp/dump2.raw" 2> "$tmp/err"; then
    fail "dump-dirty read a cache in use"
fi
matches 'close the export first' "$tmp/err"
[ ! -e "$tmp/dump2.raw" ]
s=$(ctl '{"cmd":"reset","export_id":"w"}')
[ "$(field "$s" stale)" = false ]
reads w 0xb2 $((2*MiB))
echo OK
