#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Who may name a snapshot's blob (lazyvol-format(5), REFERENCES): the
# later snapshots of its export, and the snapshots of the exports that
# have a reference marker .refs/E/X/F, which a clone writes before its
# manifest.  A delete reads nothing else:
#  - an unrelated export whose manifest does not parse is not read: the
#    deleted snapshot's unused blob goes, and the log never names it (a
#    scan of every export kept the blob, as that manifest "may name" it);
#  - a clone of E@Y keeps Y's blob and the blob of the older X that Y
#    names when X and Y are deleted, through the markers of X and Y; the
#    clone reads the same bytes from a fresh cache; once it compacted and
#    its first snapshot is deleted, gc of E takes both blobs;
#  - a clone of a clone names the first owner's blobs: its markers are
#    keyed by the blob's writer, not by the snapshot it cloned;
#  - a root the first export was created in is indexed (.refs/index.json);
#    an old root without .refs/ (an older lazyvol's) is scanned whole at
#    its first delete, which keeps what a clone needs, and writes the
#    missing markers and the index;
#  - fsck (lazyvolctl fsck) reports a missing and a wrong summary, a
#    missing marker, a stale one, a manifest that does not parse and an
#    unreferenced blob, and exits 1 while problems remain; --repair
#    writes the summaries and the marker again; once the bad manifest is
#    gone too, fsck is clean (stale markers and unused blobs are no
#    problems).
. "$srcdir/functions.sh"
requires "$LAZYVOLD" "$LAZYVOLCTL" jq qemu-io qemu-img nbdcopy
tmp=$(make_tmpdir)
start_store "$tmp"
objects () { store_tool list exports/ | cut -d' ' -f1 | sed '/^exports\/\.refs\//d'; }
refs () { store_tool list exports/.refs/ | cut -d' ' -f1 | sed 's|^exports/.refs/||'; }
# nbdkit -v: the plugin's info lines go to the log too.
printf '#!/bin/sh\nexec nbdkit -v "$@"\n' > "$tmp/nbdkit"
chmod +x "$tmp/nbdkit"
start_lazyvold "$tmp/d" --nbdkit "$tmp/nbdkit"
log=$tmp/d/lazyvold.log
lv () { "$LAZYVOLCTL" --socket "$admin" "$@"; }
snap () { lv --json snapshot "$1" | jq -r .snapshot_id; }
current () { lv --json status "$1" | jq -r .snapshot_id; }
put () { qemu-io -f raw -c "write -P $2 $3 $4" "$(uri "$1")" >/dev/null; }

# The root's first export indexes it.
lv create e 4M --chunk-size 1M >/dev/null
refs | matches -x index.json

# An unrelated export's manifest does not parse: a delete in e never
# reads it.
put e 1 0 1M
x=$(snap e)
put e 2 0 1M
snap e >/dev/null
lv create u 1M --chunk-size 1M >/dev/null
put u 3 0 1M
us=$(snap u)
store_tool get "exports/u/snapshots/$us/manifest.json" > "$tmp/u.json"
printf '{"format": 1,' > "$tmp/junk"
store_tool put "exports/u/snapshots/$us/manifest.json" "$tmp/junk" >/dev/null
lines=$(wc -l < "$log")
lv delete-snapshot e "$x" > "$tmp/out"
! matches 'kept' "$tmp/out" || fail "$(cat "$tmp/out")"
! objects | grep -q "$x/" || fail "left: $(objects | grep "$x/")"
tail -n +$((lines + 1)) "$log" > "$tmp/delete.log"
! grep -E 'exports/u/|(^|[^A-Za-z0-9._-])u/snapshots' "$tmp/delete.log" ||
    fail "the delete read export u"
store_tool put "exports/u/snapshots/$us/manifest.json" "$tmp/u.json" >/dev/null

# A clone keeps its source's blobs: s1 (chunks 0-1), s2 (chunk 1, and
# s1's chunk 0), cloned as f; after a compact of src only f names them.
lv create src 4M --chunk-size 1M >/dev/null
put src 4 0 2M
s1=$(snap src)
put src 5 1M 1M
s2=$(snap src)
nbdcopy "$(uri src)" "$tmp/s2.img"
lv clone f src --snapshot "$s2" >/dev/null
f1=$(current f)
refs > "$tmp/refs"
matches -x "src/$s1/f" "$tmp/refs" && matches -x "src/$s2/f" "$tmp/refs" ||
    fail "markers: $(cat "$tmp/refs")"
store_tool get "exports/.refs/src/$s1/f" |
    jq -e '.format == "lazyvol-ref" and .version == 1 and .export_id == "f"' >/dev/null
lv compact src >/dev/null
lv delete-snapshot src "$s2" | matches 'blob is kept'
lv delete-snapshot src "$s1" | matches 'blob is kept'
objects > "$tmp/objects"
matches "src/snapshots/$s1/delta.blob" "$tmp/objects" &&
    matches "src/snapshots/$s2/delta.blob" "$tmp/objects" ||
    fail "blobs gone: $(cat "$tmp/objects")"
! matches "$s1/manifest.json\|$s2/manifest.json" "$tmp/objects" ||
    fail "manifests stayed"
# f reads the same from a fresh cache.
lv close f >/dev/null
rm -rf "$tmp/d/cache/f"
lv open f >/dev/null
qemu-img compare -f raw -F raw "$tmp/s2.img" "$(uri f)"

# A clone of the clone: its markers name src's snapshots, not f's.
lv clone g f >/dev/null
refs > "$tmp/refs"
matches -x "src/$s1/g" "$tmp/refs" && matches -x "src/$s2/g" "$tmp/refs" ||
    fail "markers: $(cat "$tmp/refs")"
! matches '^f/' "$tmp/refs" || fail "a marker of f: $(cat "$tmp/refs")"
qemu-img compare -f raw -F raw "$tmp/s2.img" "$(uri g)"

# Once neither clone names them, gc of src takes s1's and s2's blobs.
for c in f g; do
    put $c 6 3M 1M
    lv compact $c >/dev/null
    lv delete-snapshot $c "$(lv snapshots $c -q | head -1)" >/dev/null
done
r=$(lv --json gc src --grace 0)
jq -e --arg a "src/snapshots/$s1/delta.blob" --arg b "src/snapshots/$s2/delta.blob" \
    '[.objects[].key] | sort == ([$a, $b] | sort)' <<<"$r" >/dev/null ||
    fail "gc found: $r"
lv gc src --grace 0 --delete >/dev/null
! objects | grep -q "$s1/\|$s2/" || fail "left: $(objects | grep "$s1/\|$s2/")"
# f reads from its own base: s2's image with chunk 3 written.
cp "$tmp/s2.img" "$tmp/f.img"
head -c 1M /dev/zero | tr '\0' '\6' |
    dd of="$tmp/f.img" bs=1M seek=3 conv=notrunc status=none
lv close f >/dev/null
rm -rf "$tmp/d/cache/f"
lv open f >/dev/null
qemu-img compare -f raw -F raw "$tmp/f.img" "$(uri f)"

# An old root: .refs/ as an older lazyvol left it, that is none.  A
# clone h of o@o1, o compacted: the delete of o1 reads every export,
# keeps o1's blob for h, and writes h's marker and the index.
lv create o 4M --chunk-size 1M >/dev/null
put o 7 0 1M
o1=$(snap o)
lv clone h o >/dev/null
lv compact o >/dev/null
for k in $(refs); do store_tool delete "exports/.refs/$k"; done
[ -z "$(refs)" ] || fail ".refs left: $(refs)"
lv delete-snapshot o "$o1" | matches 'blob is kept'
objects | matches "o/snapshots/$o1/delta.blob"
refs > "$tmp/refs"
matches -x index.json "$tmp/refs" && matches -x "o/$o1/h" "$tmp/refs" ||
    fail "markers: $(cat "$tmp/refs")"
matches 'no reference index under the export root' "$log"
matches "reference marker written: h names blobs of o@$o1" "$log"
qemu-io -f raw -c 'read -P 7 0 1M' "$(uri h)" | matches 'read 1048576/1048576'

# fsck of h, a clone of o@o1 with a delta on top: clean, then broken.
put h 8 1M 1M
h2=$(snap h)
h1=$(lv snapshots h -q | head -1)
lv fsck h | matches -x 'h: no problems'
store_tool delete "exports/h/snapshots/$h1/summary.json"
store_tool get "exports/h/snapshots/$h2/summary.json" | jq '.generation = 7' > "$tmp/wrong"
store_tool put "exports/h/snapshots/$h2/summary.json" "$tmp/wrong" >/dev/null
store_tool delete "exports/.refs/o/$o1/h"
store_tool put "exports/.refs/src/$s1/h" "$tmp/junk" >/dev/null
bad=0180000000007000800000000000beef
store_tool put "exports/h/snapshots/$bad/manifest.json" "$tmp/junk" >/dev/null
old=0180000000007000800000000000cafe
store_tool put "exports/h/snapshots/$old/delta.blob" "$tmp/junk" >/dev/null
s=0
lv fsck h > "$tmp/fsck" 2> "$tmp/fsck.err" || s=$?
cat "$tmp/fsck" "$tmp/fsck.err"
[ "$s" = 1 ] || fail "fsck exited $s"
matches -x '2 snapshots checked; bad manifests 1, summaries missing or wrong 2, markers missing 1, stale markers 1' "$tmp/fsck"
matches -x "manifest of snapshot $bad: does not parse (fsck cannot repair it)" "$tmp/fsck"
matches -x "summary of snapshot $h1: missing" "$tmp/fsck"
matches -x "summary of snapshot $h2: wrong" "$tmp/fsck"
matches -x "marker .refs/o/$o1/h: missing" "$tmp/fsck"
matches "^marker .refs/src/$s1/h: stale" "$tmp/fsck"
matches "^h/snapshots/$old/delta.blob  13 B$" "$tmp/fsck"
matches 'h: 4 problems left (--repair repairs summaries and markers)' "$tmp/fsck.err"
lv --json fsck h > "$tmp/fsck.json" || true
jq -e '.problems == 4 and .repair == false and (.summaries | length) == 2 and
       (.unreferenced.objects | length) == 1' "$tmp/fsck.json" >/dev/null ||
    fail "fsck: $(cat "$tmp/fsck.json")"
refs | matches -x "src/$s1/h"
! refs | grep -qx "o/$o1/h" || fail "a dry run wrote the marker"

# --repair: the summaries and the marker are written again; the bad
# manifest stays a problem.
s=0
lv fsck h --repair > "$tmp/fsck" 2> "$tmp/fsck.err" || s=$?
cat "$tmp/fsck" "$tmp/fsck.err"
[ "$s" = 1 ] || fail "fsck --repair exited $s"
matches -x "summary of snapshot $h1: missing (written again)" "$tmp/fsck"
matches -x "summary of snapshot $h2: wrong (written again)" "$tmp/fsck"
matches -x "marker .refs/o/$o1/h: missing (written)" "$tmp/fsck"
matches 'h: 1 problem left$' "$tmp/fsck.err"
refs | matches -x "o/$o1/h"
store_tool get "exports/h/snapshots/$h2/summary.json" | jq -e '.generation == 2' >/dev/null
store_tool get "exports/h/snapshots/$h1/summary.json" |
    jq -e '.kind == "clone" and .cloned_from.export_id == "o"' >/dev/null
store_tool delete "exports/h/snapshots/$bad/manifest.json"
lv fsck h > "$tmp/fsck"
cat "$tmp/fsck"
matches -x 'h: no problems' "$tmp/fsck"
matches "^marker .refs/src/$s1/h: stale" "$tmp/fsck"
matches "^h/snapshots/$old/delta.blob" "$tmp/fsck"
lv status h | matches 'last op.*fsck'
echo OK
