#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Every snapshot, compact and clone writes summary.json beside its
# manifest (before the head moves): the manifest's members but the
# extents, with "chunks" and "bytes".  Listing snapshots reads the
# summaries, not the manifests: a snapshot whose manifest does not even
# parse still lists.  A snapshot without a summary (written before
# summaries existed) lists from its manifest, the same; so does one
# whose summary is wrong (another snapshot's ids, bytes its blobs do not
# add up to).  A delete removes the summary; a summary left without its
# manifest is gc's, and gc leaves live summaries alone.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvol "$tmp/a"
get () { store_tool get "exports/$1/snapshots/$2/$3"; }
snap () { field "$(ctl "{\"cmd\":\"$2\",\"export_id\":\"$1\"}")" snapshot_id; }
list () { ctl '{"cmd":"snapshots","export_id":"v"}' | jq -c '.snapshots'; }

ctl '{"cmd":"create","export_id":"v","size":8388608,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 3M' "$(uri v)" >/dev/null
s1=$(snap v snapshot)
ctl '{"cmd":"clone","export_id":"c","source_export_id":"v"}' >/dev/null
qemu-io -f raw -c 'write -P 2 2M 2M' "$(uri v)" >/dev/null
s2=$(snap v snapshot)
s3=$(snap v compact)
c1=$(field "$(ctl '{"cmd":"status","export_id":"c"}')" snapshot_id)

# Each summary says what its manifest does.
check () {                      # EXPORT SNAPSHOT
    get "$1" "$2" manifest.json > "$tmp/m"
    get "$1" "$2" summary.json > "$tmp/s"
    jq -e --slurpfile m "$tmp/m" --arg own "$1/snapshots/$2/" '
        $m[0] as $m | .format == "lazyvol-summary" and .version == 1 and
        ([.export_id, .snapshot_id, .parent, .kind, .generation, .created,
          .image_size, .chunk_size, .cloned_from, .blobs] ==
         [$m.export_id, $m.snapshot_id, $m.parent, $m.kind, $m.generation,
          $m.created, $m.image_size, $m.chunk_size, $m.cloned_from,
          $m.blobs]) and
        .chunks == ([$m.extents[].count] | add // 0) and
        .bytes == ([$m.blobs[] | select(.key | startswith($own)) | .size]
                   | add // 0) and (has("extents") | not)' "$tmp/s" >/dev/null ||
        fail "summary of $1@$2: $(cat "$tmp/s")"
}
check v "$s1"; check v "$s2"; check v "$s3"; check c "$c1"
get c "$c1" summary.json | jq -e '.kind == "clone" and .cloned_from.export_id == "v" and .bytes == 0' >/dev/null
list > "$tmp/list"
jq -e 'length == 3 and (map(.chunks) == [3, 4, 4]) and
       (map(.blob_size) == [3145728, 2097152, 4194304])' "$tmp/list" >/dev/null ||
    fail "list: $(cat "$tmp/list")"

# The list does not read manifests: s1's is junk now.
get v "$s1" manifest.json > "$tmp/m1"
printf '{"format": "lazyvol-manifest", "version": 2, "extents": [' > "$tmp/junk"
store_tool put "exports/v/snapshots/$s1/manifest.json" "$tmp/junk" >/dev/null
[ "$(list)" = "$(cat "$tmp/list")" ] || fail "list with a junk manifest: $(list)"
store_tool put "exports/v/snapshots/$s1/manifest.json" "$tmp/m1" >/dev/null

# No summary (an older snapshot): the manifest, the same fields.
store_tool delete "exports/v/snapshots/$s2/summary.json"
[ "$(list)" = "$(cat "$tmp/list")" ] || fail "list without a summary: $(list)"
# A wrong summary: the manifest.
get v "$s3" summary.json | jq '.snapshot_id = "'"$s1"'"' > "$tmp/wrong"
store_tool put "exports/v/snapshots/$s3/summary.json" "$tmp/wrong" >/dev/null
[ "$(list)" = "$(cat "$tmp/list")" ] || fail "list with a wrong summary: $(list)"
# A summary whose bytes its blobs do not add up to is refused, too.
jq '.bytes = 7' "$tmp/wrong" | jq '.snapshot_id = "'"$s3"'"' > "$tmp/wrong2"
store_tool put "exports/v/snapshots/$s3/summary.json" "$tmp/wrong2" >/dev/null
[ "$(list)" = "$(cat "$tmp/list")" ] || fail "list with wrong bytes: $(list)"

# A delete removes the summary; gc takes one left without a manifest.
ctl "{\"cmd\":\"delete_snapshot\",\"export_id\":\"v\",\"snapshot_id\":\"$s1\"}" >/dev/null
! store_tool list exports/v/ | grep -q "$s1/summary.json" || fail "s1's summary stayed"
old=0180000000007000800000000000cafe
store_tool put "exports/v/snapshots/$old/summary.json" "$tmp/wrong" >/dev/null
r=$(ctl '{"cmd":"gc","export_id":"v","grace_s":0,"delete":true}')
jq -e --arg k "v/snapshots/$old/summary.json" \
    '[.objects[] | select(.deleted) | .key] == [$k]' <<<"$r" >/dev/null ||
    fail "gc: $r"
! store_tool list exports/v/ | grep -q "$old/" || fail "the orphan summary stayed"
store_tool list exports/ > "$tmp/objects"
matches "v/snapshots/$s3/summary.json" "$tmp/objects" &&
    matches "c/snapshots/$c1/summary.json" "$tmp/objects" ||
    fail "gc took a live summary: $(cat "$tmp/objects")"
echo OK
