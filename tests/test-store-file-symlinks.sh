#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The file store never follows a symbolic link inside its bucket: anyone
# who can write there could otherwise make lazyvol serve, parse or
# overwrite files outside it.  A key whose path meets a link is refused
# ("a component is a symbolic link", code bad_remote_data) by get, head,
# ranged get, streamed get, put, upload, delete and list, with the
# kernel's openat2 and with the fallback walk used where openat2 is
# missing; listings skip links; nothing outside the bucket is read or
# written.  End to end: a blob replaced by a link to a file with the very
# same bytes fails the read with EIO; an export whose manifest.json is a
# link does not open; a snapshot into a linked snapshots/ directory fails
# and writes nothing there; an export directory that is a link is not
# discovered.  A bucket given as a link to a directory works normally.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq cmp timeout mkfifo /usr/bin/python3
tmp=$(make_tmpdir)

refused ()
{
    grep -q 'refused: a component is a symbolic link' "$1" ||
        fail "no refusal in: $(cat "$1")"
    grep -q '\[bad_remote_data\]' "$1" || fail "wrong code in: $(cat "$1")"
}

# store_checks NAME [RUNNER]: the store-tool checks on a fresh bucket,
# with store-tool run under RUNNER (no-openat2) if given.
store_checks ()
{
    local b=$tmp/$1/bucket out=$tmp/$1/outside
    local run=("${@:2}")
    st () { ${run[@]+"${run[@]}"} "$STORE_TOOL" --bucket "$b" "$@"; }
    mkdir -p "$out/dir"
    echo secret > "$out/secret"
    echo inside > "$out/dir/o"
    echo data > "$tmp/$1/data"
    st put d/obj "$tmp/$1/data" >/dev/null
    st put d/sub/obj2 "$tmp/$1/data" >/dev/null
    ln -s "$out/secret" "$b/d/link"
    ln -s "$out/dir" "$b/d/ldir"
    mkdir "$b/e"
    ln -s "$out/secret" "$b/e/only-a-link"
    mkfifo "$b/d/fifo"

    # Reads: refused, and not a byte of the target on stdout.
    for cmd in "get d/link" "head d/link" "get-range d/link 0 3" \
               "get-stream d/link" "get d/ldir/o" "head d/ldir/o" \
               "get-stream d/ldir/o"; do
        if st $cmd > "$tmp/$1/out" 2> "$tmp/$1/err"; then
            fail "$cmd followed a link"
        fi
        refused "$tmp/$1/err"
        [ ! -s "$tmp/$1/out" ] || fail "$cmd printed $(cat "$tmp/$1/out")"
    done
    # A FIFO is not an object, and reading it does not hang.
    for get in get get-stream; do
        if timeout 10 "$STORE_TOOL" --bucket "$b" $get d/fifo \
                   2> "$tmp/$1/err"; then
            fail "a FIFO was read"
        fi
        grep -q 'not an object' "$tmp/$1/err"
    done

    # Writes through a linked directory, or onto a link, change nothing.
    for cmd in "put d/ldir/new $tmp/$1/data" "put d/link $tmp/$1/data" \
               "upload d/ldir/big $tmp/$1/data 5M" "begin-upload d/ldir/u" \
               "delete d/ldir/o" "delete d/link" \
               "abort-upload d/ldir/u .tmp.u.upload.AAAAAA"; do
        if st $cmd 2> "$tmp/$1/err"; then fail "$cmd followed a link"; fi
        refused "$tmp/$1/err"
    done
    [ "$(cd "$out" && find . | sort | tr '\n' ' ')" = ". ./dir ./dir/o ./secret " ]
    [ "$(cat "$out/secret")" = secret ]
    [ "$(cat "$out/dir/o")" = inside ]
    [ -L "$b/d/link" ]

    # Listings skip links, and a directory holding only a link is no
    # prefix; listing through a linked directory is refused.
    [ "$(st list "" | tr '\n' ' ')" = "d/obj 5 d/sub/obj2 5 " ]
    [ "$(st list "" / | tr '\n' ' ')" = "d/ - " ]
    [ "$(st list d/ / | tr '\n' ' ')" = "d/obj 5 d/sub/ - " ]
    if st list d/ldir/ 2> "$tmp/$1/err"; then fail "listed through a link"; fi
    refused "$tmp/$1/err"

    # The bucket itself may be a link: it is resolved once, at open.
    ln -s bucket "$tmp/$1/bucket-link"
    "$STORE_TOOL" --bucket "$tmp/$1/bucket-link" get d/obj > "$tmp/$1/got"
    cmp "$tmp/$1/data" "$tmp/$1/got"
}
store_checks kernel
store_checks fallback "$NO_OPENAT2"

# End to end, through a bucket that is a link to the real directory.
real=$tmp/real out=$tmp/outside
mkdir "$real" "$out"
ln -s real "$tmp/bucket"
STORE_ARGS=(storage-backend=file "bucket=$tmp/bucket")
start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"v","size":4194304,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 0x5a 0 1M' "$(uri v)" >/dev/null
[ "$(field "$(ctl '{"cmd":"snapshot","export_id":"v"}')" snapshot_created)" = true ]
stop_lazyvol
[ "$(jq .generation "$real/exports/v/volume.json")" = 1 ]

# (a) The blob becomes a link to a file outside with the same bytes.
blob=$(echo "$real"/exports/v/snapshots/*/delta.blob)
mv "$blob" "$out/delta.blob"
ln -s "$out/delta.blob" "$blob"
# (e) An export directory that is a link (even within the bucket).
ln -s v "$real/exports/evil"
start_lazyvol "$tmp/r" 2> "$tmp/r.log"
[ "$(ctl '{"cmd":"list"}' | jq -r '[.exports[].export_id] | join(" ")')" = v ]
/usr/bin/python3 -c 'import nbd, sys, errno
h = nbd.NBD(); h.connect_uri(sys.argv[1])
try:
    h.pread(4096, 0)
except nbd.Error as e:
    sys.exit(0 if e.errnum == errno.EIO else 3)
sys.exit(4)' "$(uri v)" || fail "the linked blob was served (or not as EIO)"
grep -q 'delta.blob: refused: a component is a symbolic link' "$tmp/r.log"
[ "$(field "$(ctl '{"cmd":"status","export_id":"v"}')" resident_chunks)" = 0 ]
stop_lazyvol
rm "$blob" "$real/exports/evil"
mv "$out/delta.blob" "$blob"

# (b) manifest.json becomes a link to an identical copy outside.
manifest=$(echo "$real"/exports/v/snapshots/*/manifest.json)
cp "$manifest" "$out/manifest.json"
ln -sf "$out/manifest.json" "$manifest"
start_lazyvol "$tmp/r2" discover=false
r=$(ctl '{"cmd":"open","export_id":"v"}') && fail "opened with a linked manifest"
[ "$(field "$r" code)" = bad_remote_data ]
field "$r" error | grep -q 'manifest.json: refused: a component is a symbolic link'
stop_lazyvol
cp --remove-destination "$out/manifest.json" "$manifest"
rm "$out/manifest.json"

# (c) snapshots/ becomes a link to a directory outside, under a loaded
# export: the snapshot fails, and writes nothing there.
start_lazyvol "$tmp/r3" discover=false
ctl '{"cmd":"open","export_id":"v"}' >/dev/null
mv "$real/exports/v/snapshots" "$out/snapshots"
ln -s "$out/snapshots" "$real/exports/v/snapshots"
(cd "$out" && find . -printf '%p %s %T@\n' | sort) > "$tmp/before"
qemu-io -f raw -c 'write -P 0x6b 1M 1M' "$(uri v)" >/dev/null
r=$(ctl '{"cmd":"snapshot","export_id":"v"}') && fail "snapshot wrote through a link"
field "$r" error | grep -q 'refused: a component is a symbolic link'
(cd "$out" && find . -printf '%p %s %T@\n' | sort) > "$tmp/after"
cmp "$tmp/before" "$tmp/after"
[ "$(jq .generation "$real/exports/v/volume.json")" = 1 ]
[ "$(field "$(ctl '{"cmd":"status","export_id":"v"}')" dirty_chunks)" = 1 ]
echo OK
