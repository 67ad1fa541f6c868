#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A rollback to snapshot S publishes a new snapshot R whose image is
# exactly S's (read back byte for byte over NBD, no stale resident chunk
# of the old head served), with parent the old head and the next
# generation, and deletes nothing.  It is refused with unpublished
# writes unless discard_local, which drops them.  R names S's blobs, so
# deleting S afterwards keeps them and R still reads.  A crash at every
# point of the rollback leaves the old head or R, both readable, and a
# rollback again works; what did not land is removed (fsck and gc find
# nothing), and a rollback snapshot deletes like any other.  Labels (snapshot, compact, rollback) are kept in
# the manifest and summary and listed; a bad label is refused.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq
requires_crash_points
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvol "$tmp/w"
status () { ctl '{"cmd":"status","export_id":"v"}'; }
snap () { field "$(ctl "{\"cmd\":\"snapshot\",\"export_id\":\"v\"${1:-}}")" snapshot_id; }
rollback () { ctl "{\"cmd\":\"rollback\",\"export_id\":\"v\",\"snapshot_id\":\"$1\"${2:-}}"; }
rd () { qemu-io -f raw -c "read -P $1 $2 $3" "$(uri v)" >/dev/null || fail "v [$2+$3] is not $1"; }
wr () { qemu-io -f raw -c "write -P $1 $2 $3" -c flush "$(uri v)" >/dev/null; }

ctl '{"cmd":"create","export_id":"v","size":4194304,"chunk_size":1048576}' >/dev/null
wr 0x11 0 2M
s1=$(snap ',"label":"first ✓"')
wr 0x22 1M 2M
s2=$(snap)
rd 0x11 0 1M; rd 0x22 1M 2M; rd 0 3M 1M      # chunks 0-2 resident now

# Labels: in the manifest, the summary and the list; bad ones refused.
store_tool get "exports/v/snapshots/$s1/manifest.json" | jq -e '.label == "first ✓"' >/dev/null
store_tool get "exports/v/snapshots/$s1/summary.json" | jq -e '.label == "first ✓"' >/dev/null
store_tool get "exports/v/snapshots/$s2/summary.json" | jq -e 'has("label") | not' >/dev/null
for bad in '"a\u0007b"' '"\u0085"' "\"$(head -c 129 /dev/zero | tr '\0' x)\"" '"a\u0000b"' 7; do
    r=$(ctl "{\"cmd\":\"snapshot\",\"export_id\":\"v\",\"label\":$bad}") &&
        fail "label $bad was taken: $r"
    [ "$(field "$r" code)" = bad_request ] || fail "label $bad: $r"
done
ok128=$(head -c 128 /dev/zero | tr '\0' y)

# Unpublished writes: refused, nothing changes.
wr 0x33 3M 1M
r=$(rollback "$s1") && fail "rollback over dirty writes: $r"
[ "$(field "$r" code)" = busy ] || fail "dirty rollback: $r"
[ "$(field "$(status)" snapshot_id)" = "$s2" ]
rd 0x33 3M 1M
[ "$(field "$(status)" dirty_chunks)" = 1 ]

# With discard_local: S's image exactly, a new snapshot on top.
r=$(rollback "$s1" ",\"discard_local\":true,\"label\":\"$ok128\"")
r1=$(field "$r" snapshot_id)
[ "$(field "$r" generation)" = 3 ] || fail "rollback: $r"
[ "$(field "$r" rolled_back_to)" = "$s1" ]
rd 0x11 0 2M; rd 0 2M 2M
st=$(status)
[ "$(field "$st" dirty_chunks)" = 0 ] && [ "$(field "$st" snapshot_id)" = "$r1" ] ||
    fail "status after rollback: $st"
store_tool get "exports/v/snapshots/$r1/manifest.json" > "$tmp/m"
store_tool get "exports/v/snapshots/$s1/manifest.json" > "$tmp/m1"
jq -e --slurpfile s "$tmp/m1" --arg p "$s2" --arg l "$ok128" '
    .parent == $p and .kind == "delta" and .generation == 3 and .label == $l and
    .blobs == $s[0].blobs and .extents == $s[0].extents' "$tmp/m" >/dev/null ||
    fail "rollback manifest: $(cat "$tmp/m")"
ctl '{"cmd":"snapshots","export_id":"v"}' | jq -e --arg l "$ok128" \
    '[.snapshots[] | .label] == ["first ✓", null, $l] and
     [.snapshots[] | .current] == [false, false, true]' >/dev/null

# Deleting S keeps the blob R names; R reads after a restart.
r=$(ctl "{\"cmd\":\"delete_snapshot\",\"export_id\":\"v\",\"snapshot_id\":\"$s1\"}")
[ "$(field "$r" blob_kept)" = true ] || fail "delete of s1: $r"
store_tool head "exports/v/snapshots/$s1/delta.blob" >/dev/null
stop_lazyvol
start_lazyvol "$tmp/w"
rd 0x11 0 2M; rd 0 2M 2M

# A compact with a label; then back to s2 (older than r1, after s1).
c=$(field "$(ctl '{"cmd":"compact","export_id":"v","label":"compacted"}')" snapshot_id)
store_tool get "exports/v/snapshots/$c/summary.json" | jq -e '.label == "compacted"' >/dev/null

# Crash points: each leaves the head at the old snapshot or the new one,
# the image whole, and a later rollback works.
for point in rollback.after_journal rollback.after_manifest \
             rollback.after_summary publish.after_head rollback.after_refs; do
    stop_lazyvol
    crash_at $point start_lazyvol "$tmp/w"
    before=$(field "$(status)" snapshot_id)
    rd 0x11 0 2M
    if r=$(rollback "$s2"); then fail "$point: rollback survived: $r"; fi
    wait_for 30 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" || fail "nbdkit lives"
    start_lazyvol "$tmp/w"
    head=$(store_tool get exports/v/volume.json | jq -r .snapshot_id)
    case $point in
        publish.after_head|rollback.after_refs)
            [ "$head" != "$before" ] || fail "$point: the head did not move"
            rd 0x11 0 1M; rd 0x22 1M 2M; rd 0 3M 1M ;;
        *)
            [ "$head" = "$before" ] || fail "$point: the head moved"
            # Nothing of the interrupted rollback is left listed.
            ctl '{"cmd":"snapshots","export_id":"v"}' |
                jq -e --arg h "$head" '.snapshots[-1].snapshot_id == $h' >/dev/null ||
                fail "$point: an unpublished snapshot is listed"
            rd 0x11 0 2M; rd 0 2M 2M ;;
    esac
    [ "$(field "$(status)" snapshot_id)" = "$head" ]
    rollback "$c" >/dev/null
    rd 0x11 0 2M; rd 0 2M 2M
done

# The store is consistent: fsck finds no problem, gc nothing to take
# (the interrupted rollbacks left no object), and a rollback snapshot
# that is not current deletes (it wrote no blob) without touching the
# blobs it named.
r=$(ctl '{"cmd":"fsck","export_id":"v"}')
[ "$(field "$r" problems)" = 0 ] || fail "fsck: $r"
r=$(ctl '{"cmd":"gc","export_id":"v","grace_s":0}')
jq -e '.objects == [] and .uploads == []' <<<"$r" >/dev/null || fail "gc: $r"
r=$(ctl "{\"cmd\":\"delete_snapshot\",\"export_id\":\"v\",\"snapshot_id\":\"$r1\"}")
[ "$(field "$r" blob_kept)" = false ] || fail "delete of r1: $r"
store_tool head "exports/v/snapshots/$s1/delta.blob" >/dev/null
stop_lazyvol
start_lazyvol "$tmp/w"
rd 0x11 0 2M; rd 0 2M 2M
r=$(ctl '{"cmd":"fsck","export_id":"v"}')
[ "$(field "$r" problems)" = 0 ] || fail "fsck after the delete: $r"

# A view is read-only: no rollback of it; an unknown snapshot: not found.
r=$(ctl "{\"cmd\":\"rollback\",\"export_id\":\"v@$c\",\"snapshot_id\":\"$s2\"}") &&
    fail "rollback of a view: $r"
r=$(rollback 0180000000007000800000000000cafe) && fail "unknown snapshot: $r"
[ "$(field "$r" code)" = not_found ] || fail "unknown snapshot: $r"
# On S3, an independent client checks every head, manifest and hash.
if [ "${LAZYVOL_TEST_BACKEND:-file}" = s3 ]; then
    /usr/bin/python3 "$srcdir/check_layout.py" "$S3_ENDPOINT" "$S3_BUCKET" exports
fi
stop_lazyvol
