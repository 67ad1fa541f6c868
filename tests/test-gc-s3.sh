#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# gc of multipart uploads never completed, on S3 (a local Swift, which
# keeps an upload's parts until it is aborted, as AWS bills them), reached
# through tests/store-proxy:
#  - uploads left open (as a crash leaves them) of a never-published
#    snapshot's blob and of a manifest are listed by POST .../gc with
#    their ids and the time they began (Swift's, in whole seconds): young
#    within the day's grace, taken with grace 0; "delete" aborts them and
#    the store lists them no more; an upload of a key lazyvol does not
#    write is unexpected and stays, and one outside the snapshots folder
#    is none of gc's business;
#  - a store that cannot list uploads (501) still gets its objects
#    collected, and the log says the uploads were not;
#  - the journal's upload: a snapshot killed during its blob's upload
#    (crash point publish.during_upload), then a start whose recovery
#    cannot abort it (the store refuses), keeps the journal, which names
#    the upload: gc (grace 0, "delete") counts it busy and leaves it; the
#    next snapshot settles the journal, aborting the upload, and
#    publishes.
LAZYVOL_TEST_BACKEND=s3
. "$srcdir/functions.sh"
requires "$LAZYVOLD" "$LAZYVOLCTL" nbdkit curl jq qemu-io
requires_crash_points
tmp=$(make_tmpdir)
start_store "$tmp"
start_store_proxy "$tmp/proxy"
store_via_proxy retries=1 timeout=30
start_lazyvold "$tmp/d"
lv () { "$LAZYVOLCTL" --socket "$admin" "$@"; }
uploads () { store_tool list-uploads "$1" | cut -d' ' -f1,2 | sort; }

lv create e 32M --chunk-size 1M >/dev/null
qemu-io -f raw -c 'write -P 1 0 1M' "$(uri e)" >/dev/null
lv snapshot e >/dev/null

old=0180000000007000800000000000beef
mid=0190000000007000800000000000cafe
u_old=$(store_tool begin-upload "exports/e/snapshots/$old/delta.blob")
u_mid=$(store_tool begin-upload "exports/e/snapshots/$mid/manifest.json")
u_odd=$(store_tool begin-upload "exports/e/snapshots/$old/notes.txt")
u_out=$(store_tool begin-upload exports/e/elsewhere.bin)

# A day's grace keeps them.
r=$(api POST /v1/exports/e/gc)
[ "$(jq '.uploads | length' <<<"$r")" = 0 ] || fail "$r"
[ "$(jq .young <<<"$r")" = 2 ] || fail "$r"
[ "$(jq .unexpected <<<"$r")" = 1 ] || fail "$r"
# Grace 0 takes them, once Swift's time, rounded up to a second, is past.
taken () {
    r=$(api POST /v1/exports/e/gc '{"grace_s": 0}')
    [ "$(jq '.uploads | length' <<<"$r")" = 2 ]
}
wait_for 5 taken || fail "gc with no grace did not take the uploads: $r"
jq -e --arg a "e/snapshots/$old/delta.blob" --arg i "$u_old" \
    --arg b "e/snapshots/$mid/manifest.json" --arg j "$u_mid" \
    '[.uploads[] | [.key, .upload_id, .deleted]] ==
     [[$a, $i, false], [$b, $j, false]] and
     all(.uploads[]; .initiated | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$"))' \
    <<<"$r" >/dev/null || fail "gc found: $r"
[ "$(jq .unexpected <<<"$r")" = 1 ] || fail "$r"
[ "$(uploads exports/ | wc -l)" = 4 ]
lv gc e --grace 0 --delete > "$tmp/gc.out"
cat "$tmp/gc.out"
matches "^e/snapshots/$old/delta.blob  upload $u_old, begun .*  aborted$" "$tmp/gc.out"
matches "^e/snapshots/$mid/manifest.json  upload $u_mid, begun .*  aborted$" "$tmp/gc.out"
matches '^2 unfinished uploads$' "$tmp/gc.out"
printf '%s\n' "exports/e/elsewhere.bin $u_out" \
    "exports/e/snapshots/$old/notes.txt $u_odd" | sort | cmp - <(uploads exports/)

# A store that cannot list uploads: the objects are collected all the same.
store_tool put "exports/e/snapshots/$old/delta.blob" /dev/null >/dev/null
proxy_ctl set match uploads= >/dev/null
proxy_ctl next 1 501 >/dev/null
r=$(api POST /v1/exports/e/gc '{"grace_s": 0}')
proxy_ctl clear >/dev/null
[ "$(jq -c '[.objects[].key]' <<<"$r")" = "[\"e/snapshots/$old/delta.blob\"]" ] ||
    fail "$r"
[ "$(jq '.uploads | length' <<<"$r")" = 0 ] || fail "$r"
matches 'gc: list uploads exports/e/snapshots/: .*501.*; unfinished uploads are not collected' \
    "$tmp/d/lazyvold.log"

# A snapshot killed during its upload (10 MiB: two parts), and a start
# whose recovery the store refuses: the journal stays.
stop_lazyvold
crash_at publish.during_upload start_lazyvol "$tmp/d"
qemu-io -f raw -c 'write -P 2 0 10M' "$(uri e)" >/dev/null
if ctl '{"cmd":"snapshot","export_id":"e"}'; then
    fail "the snapshot survived its crash point"
fi
wait_for 30 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" || fail "nbdkit lives"
journal=$tmp/d/cache/e/snapshot.journal.json
sid=$(jq -r .snapshot_id "$journal")
id=$(jq -r .upload_id "$journal")
[ "$(uploads exports/e/snapshots/$sid/)" = "exports/e/snapshots/$sid/delta.blob $id" ]
proxy_ctl set match "/snapshots/$sid/" >/dev/null
proxy_ctl next 1000 503 >/dev/null
start_lazyvol "$tmp/d"
ctl '{"cmd":"status","export_id":"e"}' >/dev/null
proxy_ctl clear >/dev/null
[ "$(jq -r .upload_id "$journal")" = "$id" ]
r=$(ctl '{"cmd":"gc","export_id":"e","grace_s":0,"delete":true}')
[ "$(field "$r" 'uploads | length')" = 0 ] || fail "$r"
[ "$(field "$r" busy)" = 1 ] || fail "$r"
[ "$(uploads exports/e/snapshots/$sid/)" = "exports/e/snapshots/$sid/delta.blob $id" ]
# The next snapshot settles the journal first.
ctl '{"cmd":"snapshot","export_id":"e"}' >/dev/null
[ ! -e "$journal" ]
[ "$(uploads exports/e/snapshots/)" = "exports/e/snapshots/$old/notes.txt $u_odd" ]
qemu-io -f raw -c 'read -P 2 0 10M' "$(uri e)" >/dev/null
echo OK
