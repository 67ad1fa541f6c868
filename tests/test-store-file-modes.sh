#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The file store is private by default, so that other local users cannot
# read disk images: objects are created mode 0600 and directories 0700
# whatever the umask, the bucket directory too when the store creates
# it, and so is the local publish journal (0600).  file-mode=0640, given
# to the plugin or passed by lazyvold --param, widens new objects to 0640
# and new directories to 0750 (x where r is set), even under umask 077;
# what exists keeps its mode.  A mode that locks the owner out, or is not
# octal, is refused at start.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq stat find curl "$LAZYVOLD"
tmp=$(make_tmpdir)
umask 022

# modes_of DIR: "MODE PATH" for everything below DIR, by path.
modes_of ()
{
    (cd "$1" && find . -mindepth 1 -printf '%m %p\n') | sort -k2 | tr '\n' ' '
}

# store-tool: a put and an upload, with the directories on the way.
b=$tmp/st-bucket
echo x > "$tmp/x"
"$STORE_TOOL" --bucket "$b" put a/b/obj "$tmp/x" >/dev/null
"$STORE_TOOL" --bucket "$b" upload a/c/big "$tmp/x" 5M
[ "$(stat -c %a "$b")" = 700 ]
want="600 ./.lock 700 ./a 700 ./a/b 600 ./a/b/obj 700 ./a/c 600 ./a/c/big "
[ "$(modes_of "$b")" = "$want" ]

# The plugin: every object and directory of a publish, and the journal
# while the publish waits before moving the head.
STORE_ARGS=(storage-backend=file "bucket=$tmp/bucket")
NBDKIT_OPTS=(-D lazyvol.publish_delay=3000)
start_lazyvol "$tmp/a"
NBDKIT_OPTS=()
ctl '{"cmd":"create","export_id":"v","size":4194304,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 1M' "$(uri v)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"v"}' > "$tmp/snap1.json" &
snap=$!
journal=$tmp/a/cache/v/snapshot.journal.json
wait_for 30 test -f "$journal" || fail "no journal during the publish"
[ "$(stat -c %a "$journal")" = 600 ]
wait $snap
s1=$(jq -r .snapshot_id "$tmp/snap1.json")
stop_lazyvol
[ "$(stat -c %a "$tmp/bucket")" = 700 ]
bad=$(find "$tmp/bucket" -mindepth 1 \
          \( -type f ! -perm 600 \) -o \( -type d ! -perm 700 \))
[ -z "$bad" ] || fail "not private: $bad"
[ -f "$tmp/bucket/exports/v/snapshots/$s1/delta.blob" ]

# file-mode=0640 under umask 077: new objects 0640, new directories 0750;
# the first snapshot's objects and the directories that existed stay.
umask 077
start_lazyvol "$tmp/b" file-mode=0640
umask 022
qemu-io -f raw -c 'write -P 2 1M 1M' "$(uri v)" >/dev/null
s2=$(field "$(ctl '{"cmd":"snapshot","export_id":"v"}')" snapshot_id)
stop_lazyvol
e=$tmp/bucket/exports/v
want="700 ./$s1 600 ./$s1/delta.blob 600 ./$s1/manifest.json 600 ./$s1/summary.json"
want+=" 750 ./$s2 640 ./$s2/delta.blob 640 ./$s2/manifest.json 640 ./$s2/summary.json "
[ "$(modes_of "$e/snapshots")" = "$want" ]
[ "$(stat -c %a "$e/volume.json")" = 640 ]   # replaced: a new file
[ "$(stat -c %a "$e")" = 700 ]

# lazyvold passes file-mode through --param.
STORE_ARGS=(storage-backend=file "bucket=$tmp/d-bucket" file-mode=0640)
start_lazyvold "$tmp/d"
api_expect 201 POST /v1/exports/create \
    '{"export_id":"w","size":1048576,"chunk_size":1048576}' >/dev/null
[ "$(stat -c %a "$tmp/d-bucket/exports/w/volume.json")" = 640 ]
[ "$(stat -c %a "$tmp/d-bucket/exports/w")" = 750 ]
stop_lazyvold

# Modes the plugin refuses: no owner write, bits beyond 0777, not octal.
for m in 0400 01640 0x1ff 0648 ''; do
    if nbdkit -U - "$LAZYVOL_PLUGIN" "cache-root=$tmp/c" storage-backend=file \
            "bucket=$tmp/c-bucket" "file-mode=$m" --run true 2> "$tmp/bad.log"
    then
        fail "file-mode=$m accepted"
    fi
    grep -q 'file.mode' "$tmp/bad.log" || fail "no reason given: $(cat "$tmp/bad.log")"
done
echo OK
