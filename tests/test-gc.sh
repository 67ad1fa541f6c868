#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# gc (POST /v1/exports/E/gc, lazyvolctl gc) finds the objects of an
# export's folder that no manifest or journal names:
#  - a blob kept for a clone when its snapshot was deleted is orphaned
#    for good once the clone is gone: gc lists it, every piece (blobs are
#    split at 1 MiB here), in a dry run by default and with no body, and
#    deletes it with "delete": true;
#  - a never-published snapshot's blob is found too; a snapshot younger
#    than the grace period (a day by default) is left, counted "young";
#  - an object lazyvol does not write (delta.01.blob is not a piece's
#    name) is counted "unexpected" and left; a grace period too large to
#    count in milliseconds keeps everything;
#  - uploads never completed (as a crash leaves them) of a blob piece and
#    of a manifest are listed, with their ids and when they began (the
#    file store's upload is its temporary file, its time the file's
#    mtime): one begun two days ago is taken within the day's grace, one
#    just begun is young; "delete" aborts them; an upload of a key
#    lazyvol does not write is unexpected, and stays;
#  - blobs that manifests name are never touched: the export reads the
#    same from a fresh cache afterwards;
#  - gc claims the export like a publish: while one runs, gc is 409, and
#    a read-only view, an export not loaded, and an export another host
#    owns (loaded read-only) are refused.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" "$LAZYVOLCTL" curl jq qemu-io nbdcopy cmp
tmp=$(make_tmpdir)
start_store "$tmp"
objects () { store_tool list exports/ | cut -d' ' -f1; }
# Publishes wait 2 s before moving the head, so that one is under way
# when gc asks.
printf '#!/bin/sh\nexec nbdkit -D lazyvol.publish_delay=2000 "$@"\n' > "$tmp/nbdkit"
chmod +x "$tmp/nbdkit"
export LAZYVOL_TEST_OBJECT_MAX=1M
start_lazyvold "$tmp/d" --nbdkit "$tmp/nbdkit"
lv () { "$LAZYVOLCTL" --socket "$admin" "$@"; }

lv create e 4M --chunk-size 1M >/dev/null
qemu-io -f raw -c 'write -P 1 0 2M' "$(uri e)" >/dev/null
s1=$(lv --json snapshot e | jq -r .snapshot_id)
lv clone c e >/dev/null
qemu-io -f raw -c 'write -P 2 0 2M' "$(uri e)" >/dev/null
lv snapshot e >/dev/null
lv delete-snapshot e "$s1" | matches 'blob is kept'
# The clone goes, as an admin would remove it: s1's blob is orphaned.
lv close c >/dev/null
for k in $(objects | grep '^exports/c/'); do store_tool delete "$k"; done
objects | matches "e/snapshots/$s1/delta.1.blob"

# A dry run, with no body: the blob is young (a day's grace).
r=$(api POST /v1/exports/e/gc)
[ "$(jq '.objects | length' <<<"$r")" = 0 ] && [ "$(jq .young <<<"$r")" = 2 ]
[ "$(jq .dry_run <<<"$r")" = true ]
# A never-published snapshot from long ago, and a stranger.
old=0180000000007000800000000000beef
printf 'x%.0s' $(seq 1000) > "$tmp/junk"
store_tool put "exports/e/snapshots/$old/delta.blob" "$tmp/junk" >/dev/null
store_tool put "exports/e/snapshots/$old/notes.txt" "$tmp/junk" >/dev/null
store_tool put "exports/e/snapshots/$old/delta.01.blob" "$tmp/junk" >/dev/null
# Uploads left open: of its second piece, begun two days ago; of the
# manifest of another, just now; of a stranger.
mid=0190000000007000800000000000cafe
bucket=${STORE_ARGS[1]#bucket=}
u_old=$(store_tool begin-upload "exports/e/snapshots/$old/delta.1.blob")
touch -d '2 days ago' "$bucket/exports/e/snapshots/$old/$u_old"
u_mid=$(store_tool begin-upload "exports/e/snapshots/$mid/manifest.json")
u_odd=$(store_tool begin-upload "exports/e/snapshots/$old/notes.txt")
# Within the day's grace: the old snapshot's blob and upload.
r=$(api POST /v1/exports/e/gc)
[ "$(jq -c '[.objects[].key]' <<<"$r")" = "[\"e/snapshots/$old/delta.blob\"]" ] ||
    fail "gc found: $r"
jq -e --arg k "e/snapshots/$old/delta.1.blob" --arg i "$u_old" \
    --arg t "$(date -u -d "@$(stat -c %Y "$bucket/exports/e/snapshots/$old/$u_old")" +%FT%TZ)" \
    '.uploads == [{"key": $k, "upload_id": $i, "initiated": $t,
                   "deleted": false}]' <<<"$r" >/dev/null || fail "gc found: $r"
[ "$(jq .young <<<"$r")" = 3 ] || fail "$r"
[ "$(jq .unexpected <<<"$r")" = 3 ] || fail "$r"
r=$(api POST /v1/exports/e/gc '{"grace_s": 0}')
p=e/snapshots/$s1/
jq -e --arg a "${p}delta.blob" --arg b "${p}delta.1.blob" \
    --arg c "e/snapshots/$old/delta.blob" \
    '[.objects[].key] | sort == ([$a, $b, $c] | sort)' <<<"$r" >/dev/null ||
    fail "gc found: $r"
[ "$(jq -c '[.uploads[].upload_id]' <<<"$r")" = "[\"$u_old\",\"$u_mid\"]" ] ||
    fail "gc found: $r"
[ "$(jq .bytes <<<"$r")" = $((2 * 1048576 + 1000)) ]
[ "$(jq .unexpected <<<"$r")" = 3 ]
[ "$(jq '[.objects[].deleted, .uploads[].deleted] | any' <<<"$r")" = false ]
objects | matches "e/snapshots/$s1/delta.blob"
[ "$(store_tool list-uploads exports/ | wc -l)" = 3 ]
lv gc e --grace 0 > "$tmp/gc.out"
matches '3 unused objects, 2.0 MiB (a dry run: --delete deletes them)' "$tmp/gc.out"
matches "^e/snapshots/$mid/manifest.json  upload $u_mid, begun just now$" "$tmp/gc.out"
matches '2 unfinished uploads (a dry run: --delete deletes them)' "$tmp/gc.out"
r=$(api POST /v1/exports/e/gc '{"grace_s": 9223372036854775807}')
[ "$(jq '.objects | length' <<<"$r")" = 0 ]
[ "$(jq '.uploads | length' <<<"$r")" = 0 ]
[ "$(jq .young <<<"$r")" = 5 ]

# Delete.
lv gc e --grace 0 --delete > "$tmp/gc.out"
cat "$tmp/gc.out"
matches "e/snapshots/$s1/delta.blob .* deleted" "$tmp/gc.out"
matches "e/snapshots/$old/delta.1.blob  upload $u_old, begun 2 days ago  aborted" "$tmp/gc.out"
matches "^2 unfinished uploads$" "$tmp/gc.out"
objects > "$tmp/objects"
! grep -q "$s1/\|$old/delta.blob" "$tmp/objects" || fail "left: $(cat "$tmp/objects")"
matches "$old/notes.txt" "$tmp/objects"
matches "$old/delta.01.blob" "$tmp/objects"
[ "$(store_tool list-uploads exports/ | cut -d' ' -f1,2)" = "exports/e/snapshots/$old/notes.txt $u_odd" ]
r=$(api POST /v1/exports/e/gc '{"grace_s": 0}')
[ "$(jq '.objects + .uploads | length' <<<"$r")" = 0 ] || fail "$r"
lv status e | matches 'last op'

# Named blobs stay: the export reads the same from a fresh cache.
nbdcopy "$(uri e)" "$tmp/before"
lv close e >/dev/null
rm -rf "$tmp/d/cache/e"
lv open e >/dev/null
nbdcopy "$(uri e)" "$tmp/after"
cmp "$tmp/before" "$tmp/after"
qemu-io -f raw -c 'read -P 2 0 2M' "$(uri e)" | matches 'read 2097152/2097152'

# Refused: during a publish (409), on a view, on an export not loaded.
qemu-io -f raw -c 'write -P 3 0 1M' "$(uri e)" >/dev/null
api_expect 202 POST /v1/exports/e/compact '{"wait": false}' >/dev/null
r=$(api_expect 409 POST /v1/exports/e/gc)
matches 'compacting' <<<"$r"
wait_for 60 sh -c "\"$LAZYVOLCTL\" --socket \"$admin\" status e | grep -q 'idle'"
s2=$(lv --json status e | jq -r .snapshot_id)
api_expect 409 POST "/v1/exports/e@$s2/gc" | matches 'read-only'
api_expect 404 POST /v1/exports/nope/gc >/dev/null
# Another host loads e read-only (it finds it at start): its gc is refused.
start_lazyvol "$tmp/other"
loaded_e () { ctl '{"cmd":"status","export_id":"e"}' >/dev/null 2>&1; }
wait_for 30 loaded_e || fail "the other host did not load e"
ctl '{"cmd":"status","export_id":"e"}' | jq -e '.writable == false' >/dev/null
if r=$(ctl '{"cmd":"gc","export_id":"e","grace_s":0}'); then
    fail "gc on a host that does not own e: $r"
fi
[ "$(field "$r" code)" = read_only ]
echo OK
