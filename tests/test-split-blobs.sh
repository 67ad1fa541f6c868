#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A blob larger than the store's object limit is split into pieces of
# whole chunks (KIND.blob, KIND.1.blob, ...).  LAZYVOL_TEST_OBJECT_MAX
# lowers the limit to three chunks, so that a snapshot of nine written
# chunks and a zero one makes three pieces and a compact of eleven four:
#  - every piece holds at most three chunks and the manifest names them
#    all with their sizes; lazyvol-format(5)'s rules hold (check_layout);
#  - a clone read from a fresh cache (every chunk fetched from the
#    pieces) reads the same bytes;
#  - deleting the snapshot after the compact removes all its pieces, and
#    deleting a snapshot whose pieces a clone uses keeps them;
#  - a crash between two pieces (crash point publish.between_pieces)
#    leaves the old head, and the restart removes the pieces written;
#  - pieces larger than a part (20 MiB, parts of 8 MiB) are multipart
#    uploads: a crash inside the second one's upload leaves the old head,
#    and the restart removes the first piece and abandons the upload;
#    then a snapshot of 44 MiB makes pieces of 20, 20 and 4 MiB that read
#    back through a clone from a fresh cache.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy qemu-io qemu-img jq cmp
requires_crash_points
tmp=$(make_tmpdir)
start_store "$tmp"
export LAZYVOL_TEST_OBJECT_MAX=192K
objects () { store_tool list exports/ | cut -d' ' -f1 | sed '/^exports\/\.refs\//d'; }
snap () { field "$(ctl "{\"cmd\":\"$2\",\"export_id\":\"$1\"}")" snapshot_id; }
manifest () { store_tool get "exports/$1/snapshots/$2/manifest.json"; }

start_lazyvol "$tmp/a"
ctl '{"cmd":"create","export_id":"v","size":1048576,"chunk_size":65536}' >/dev/null
# Chunks 0-9 written, chunk 4 with zeros (not stored).
head -c 655360 /dev/urandom > "$tmp/data"
dd if=/dev/zero of="$tmp/data" bs=64K seek=4 count=1 conv=notrunc status=none
qemu-io -f raw -c "write -P 0 0 1M" "$(uri v)" >/dev/null
nbdcopy "$tmp/data" "$(uri v)"
s1=$(snap v snapshot)
manifest v "$s1" > "$tmp/m1"
jq -e --arg p "v/snapshots/$s1/" '[.blobs[].key] ==
    [$p + "delta.blob", $p + "delta.1.blob", $p + "delta.2.blob"]' "$tmp/m1" >/dev/null ||
    fail "not three pieces: $(jq -c '.blobs' "$tmp/m1")"
jq -e '[.blobs[].size] == [196608, 196608, 196608]' "$tmp/m1" >/dev/null
objects > "$tmp/objects"
[ "$(grep -c "$s1/delta\(\.[0-9]*\)\?\.blob" "$tmp/objects")" = 3 ]

# A clone from a fresh cache: every chunk comes from the pieces.
ctl "{\"cmd\":\"clone\",\"export_id\":\"c\",\"source_export_id\":\"v\"}" >/dev/null
qemu-io -f raw -c 'write -P 9 640K 64K' "$(uri v)" >/dev/null   # chunk 10
s2=$(snap v compact)
manifest v "$s2" > "$tmp/m2"
jq -e '.kind == "base" and (.blobs | length) == 4' "$tmp/m2" >/dev/null ||
    fail "compact: $(jq -c '.blobs' "$tmp/m2")"
stop_lazyvol
start_lazyvol "$tmp/b"
nbdcopy "$(uri c)" "$tmp/c.img"
head -c 655360 "$tmp/c.img" | cmp - "$tmp/data"
nbdcopy "$(uri v)" "$tmp/v.img"
head -c 655360 "$tmp/v.img" | cmp - "$tmp/data"
qemu-io -f raw -c 'read -P 9 640K 64K' "$(uri v)" | matches 'read 65536/65536'
if [ "${LAZYVOL_TEST_BACKEND:-file}" = s3 ]; then
    python3 "$srcdir/check_layout.py" "$S3_ENDPOINT" "$S3_BUCKET" exports
fi

# s1's pieces are the clone's: kept.  Once the clone is gone, they go.
r=$(ctl "{\"cmd\":\"delete_snapshot\",\"export_id\":\"v\",\"snapshot_id\":\"$s1\"}")
[ "$(field "$r" blob_kept)" = true ]
[ "$(objects | grep -c "$s1/delta")" = 3 ]
cs=$(field "$(ctl '{"cmd":"status","export_id":"c"}')" snapshot_id)
ctl '{"cmd":"close","export_id":"c"}' >/dev/null
store_tool delete "exports/c/snapshots/$cs/manifest.json"
store_tool put "exports/v/snapshots/$s1/manifest.json" "$tmp/m1" >/dev/null
r=$(ctl "{\"cmd\":\"delete_snapshot\",\"export_id\":\"v\",\"snapshot_id\":\"$s1\"}")
[ "$(field "$r" blob_kept)" = false ]
! objects | grep -q "$s1/" || fail "s1's pieces are left: $(objects | grep "$s1/")"

# A crash between pieces: the restart removes what was written.
qemu-io -f raw -c 'write -P 7 0 640K' -c flush "$(uri v)" >/dev/null
stop_lazyvol
crash_at publish.between_pieces start_lazyvol "$tmp/b"
if ctl '{"cmd":"snapshot","export_id":"v"}' >/dev/null; then
    fail "the snapshot survived its crash point"
fi
wait_for 30 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" || fail "nbdkit lives"
objects > "$tmp/objects"
new=$(grep '/delta\.blob$' "$tmp/objects" | grep -v "$s1" | cut -d/ -f4 || true)
[ -n "$new" ] || fail "no piece was written before the crash"
start_lazyvol "$tmp/b"
ctl '{"cmd":"status","export_id":"v"}' | jq -e --arg s "$s2" '.snapshot_id == $s' >/dev/null
objects > "$tmp/objects"
! grep -q "$new/" "$tmp/objects" || fail "pieces left: $(grep "$new/" "$tmp/objects")"
# The writes are still dirty, and publish.
s3=$(snap v snapshot)
manifest v "$s3" | jq -e '(.blobs | map(select(.key | contains("delta"))) | length) == 4' >/dev/null
qemu-io -f raw -c 'read -P 7 0 640K' "$(uri v)" | matches 'read 655360/655360'

# Multipart pieces.
stop_lazyvol
export LAZYVOL_TEST_OBJECT_MAX=20M
start_lazyvol "$tmp/b"
ctl '{"cmd":"create","export_id":"big","size":67108864,"chunk_size":1048576}' >/dev/null
head -c 46137344 /dev/urandom > "$tmp/big"
nbdcopy "$tmp/big" "$(uri big)"
stop_lazyvol
# The 14th chunk past 8 MiB into a piece: the second piece's, at 9 MiB.
crash_at publish.during_upload:14 start_lazyvol "$tmp/b"
if ctl '{"cmd":"snapshot","export_id":"big"}' >/dev/null; then
    fail "the snapshot survived its crash point"
fi
wait_for 30 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" || fail "nbdkit lives"
objects > "$tmp/objects"
matches '^exports/big/snapshots/.*/delta\.blob$' "$tmp/objects" ||
    fail "the first piece was not written before the crash"
! grep -q '^exports/big/snapshots/.*/delta\.1\.blob$' "$tmp/objects" ||
    fail "the second piece is complete"
start_lazyvol "$tmp/b"
! objects | grep -q '^exports/big/snapshots/' ||
    fail "objects left: $(objects | grep '^exports/big/')"
s4=$(snap big snapshot)
manifest big "$s4" > "$tmp/m4"
jq -e '[.blobs[].size] == [20971520, 20971520, 4194304]' "$tmp/m4" >/dev/null ||
    fail "pieces: $(jq -c '.blobs' "$tmp/m4")"
ctl "{\"cmd\":\"clone\",\"export_id\":\"bc\",\"source_export_id\":\"big\"}" >/dev/null
stop_lazyvol
start_lazyvol "$tmp/c"
nbdcopy "$(uri bc)" "$tmp/bc.img"
head -c 46137344 "$tmp/bc.img" | cmp - "$tmp/big"
echo OK
