#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The user's whole publishing sequence: create, write, snapshot (a sparse
# first manifest, one blob of only the dirty chunks), snapshot with
# nothing dirty (snapshot_created false, no new object), write, snapshot
# (a delta blob of only the newly dirty chunks, a complete manifest),
# compact (a base blob and a manifest with base_ref naming no older blob),
# clone (metadata only), and the clone read back equal, byte for byte, to
# the source snapshot it was made from — also after the source moves on.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy qemu-io qemu-img jq cmp dd
tmp=$(make_tmpdir)
start_store "$tmp"
MiB=1048576
start_lazyvol "$tmp"
# The objects of the exports (reference markers, in .refs/, are not the
# exports': the directory store does not list dot folders either).
objects () { store_tool list exports/ | cut -d' ' -f1 | grep -v '^exports/\.refs/'; }
manifest () { store_tool get "exports/$1/snapshots/$2/manifest.json"; }

r=$(ctl '{"cmd":"create","export_id":"vm01","size":1073741824}')
[ "$(field "$r" chunk_size)" = 4194304 ]
[ "$(field "$r" chunk_count)" = 256 ]
store_tool get exports/vm01/volume.json | jq -e '.generation == 0 and .snapshot_id == null' >/dev/null

# Write 3 chunks' worth: chunk 0 (partly), chunk 10, chunk 200.
qemu-io -f raw -c 'write -P 1 0 1M' -c 'write -P 2 40M 4M' \
    -c 'write -P 3 800M 4k' "$(uri vm01)" >/dev/null
s1=$(field "$(ctl '{"cmd":"snapshot","export_id":"vm01"}')" snapshot_id)
manifest vm01 "$s1" > "$tmp/m1"
jq -e '.kind == "delta" and .generation == 1 and .parent == null and
       (has("base_ref") | not) and (.blobs | length) == 1 and
       ([.extents[].count] | add) == 3' "$tmp/m1" >/dev/null
[ "$(store_tool head "exports/vm01/snapshots/$s1/delta.blob" | cut -d' ' -f1)" = $((3*4*MiB)) ]

# Nothing dirty: no snapshot, no object.
objects > "$tmp/before"
r=$(ctl '{"cmd":"snapshot","export_id":"vm01"}')
[ "$(field "$r" snapshot_created)" = false ]
[ "$(field "$r" generation)" = 1 ]
[ "$(field "$r" snapshot_id)" = "$s1" ]
objects | cmp - "$tmp/before"

# Second write: one new chunk (100) and one rewritten (10).
qemu-io -f raw -c 'write -P 4 400M 4M' -c 'write -P 5 41M 4k' "$(uri vm01)" >/dev/null
r=$(ctl '{"cmd":"snapshot","export_id":"vm01"}')
s2=$(field "$r" snapshot_id)
[ "$(field "$r" generation)" = 2 ]
[ "$(store_tool head "exports/vm01/snapshots/$s2/delta.blob" | cut -d' ' -f1)" = $((2*4*MiB)) ]
manifest vm01 "$s2" > "$tmp/m2"
# Complete: chunks 0 and 200 still from the first blob, 10 and 100 new.
jq -e --arg s1 "$s1" --arg s2 "$s2" '
  .parent == $s1 and ([.extents[].count] | add) == 4 and
  ([.blobs[].key] | sort) == (["vm01/snapshots/\($s1)/delta.blob",
                               "vm01/snapshots/\($s2)/delta.blob"] | sort)' \
    "$tmp/m2" >/dev/null
nbdcopy "$(uri vm01)" "$tmp/s2.img"

# Compact: a base blob with every non-zero chunk; no older blob needed.
r=$(ctl '{"cmd":"compact","export_id":"vm01"}')
s3=$(field "$r" snapshot_id)
[ "$(field "$r" generation)" = 3 ]
manifest vm01 "$s3" > "$tmp/m3"
jq -e --arg k "vm01/snapshots/$s3/base.blob" '
  .kind == "base" and .base_ref == $k and (.blobs | length) == 1 and
  .blobs[0].key == $k and ([.extents[].count] | add) == 4' "$tmp/m3" >/dev/null
[ "$(store_tool head "exports/vm01/snapshots/$s3/base.blob" | cut -d' ' -f1)" = $((4*4*MiB)) ]
# Older snapshots are kept.
objects | matches "$s1/delta.blob"
objects | matches "$s2/manifest.json"
st=$(ctl '{"cmd":"status","export_id":"vm01"}')
[ "$(field "$st" snapshot_generation)" = 3 ]
[ "$(field "$st" remote_head_generation)" = 3 ]
[ "$(field "$st" dirty_chunks)" = 0 ]

# Clone the second snapshot (metadata only), read it back.
n=$(objects | wc -l)
r=$(ctl "{\"cmd\":\"clone\",\"export_id\":\"vm02\",\"source_export_id\":\"vm01\",\"source_snapshot_id\":\"$s2\"}")
[ "$(field "$r" resident_chunks)" = 0 ]
[ "$(objects | grep -vc '^exports/vm02/')" = "$n" ]      # no data copied
# The clone's reference markers, one for each snapshot whose blob it names.
[ "$(store_tool list "exports/.refs/vm01/" | cut -d' ' -f1 | grep -c '/vm02$')" = 2 ]
[ "$(objects | grep -c '\.blob$' )" = 3 ]
# The source moves on; the clone does not.
qemu-io -f raw -c 'write -P 6 0 4M' "$(uri vm01)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"vm01"}' >/dev/null
ctl '{"cmd":"compact","export_id":"vm01"}' >/dev/null
qemu-img compare -f raw -F raw "$tmp/s2.img" "$(uri vm02)"
nbdcopy "nbd+unix:///vm01@$s2?socket=$nbd" "$tmp/view.img"
cmp "$tmp/s2.img" "$tmp/view.img"

# Cache reset drops local state, keeps the published image.
qemu-io -f raw -c 'write -P 7 8M 4M' "$(uri vm02)" >/dev/null
[ "$(field "$(ctl '{"cmd":"status","export_id":"vm02"}')" dirty_chunks)" = 1 ]
wait_for 30 no_clients vm02
r=$(ctl '{"cmd":"reset","export_id":"vm02"}')
[ "$(field "$r" dirty_chunks)" = 0 ]
[ "$(field "$r" resident_chunks)" = 0 ]
qemu-img compare -f raw -F raw "$tmp/s2.img" "$(uri vm02)"
echo OK
