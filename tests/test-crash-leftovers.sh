#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# What crashed writers leave is cleaned up, and only that.  A journal
# temporary file in the export's cache directory (its writer is gone:
# the cache's lock is free) and an old temporary object in the file store
# nobody holds are removed when the export is loaded again and after the
# next publish; a fresh temporary object (its writer may just be
# starting) and one a live process holds locked are kept.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq flock touch
tmp=$(make_tmpdir)
start_store "$tmp"
b=$tmp/bucket/exports/t

start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"t","size":4194304,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 1M' -c flush "$(uri t)" >/dev/null
sid=$(field "$(ctl '{"cmd":"snapshot","export_id":"t"}')" snapshot_id)
stop_lazyvol KILL

# What a crash mid-publish leaves: a journal temp file, temp objects.
echo '{"snapshot_id":' > "$tmp/w/cache/t/snapshot.journal.json.tmp.Ab12Cd"
d=$b/snapshots/$sid
echo partial > "$d/.tmp.delta.blob.upload.old111"
touch -d '1 hour ago' "$d/.tmp.delta.blob.upload.old111"
echo partial > "$d/.tmp.manifest.json.new222"
echo held > "$d/.tmp.manifest.json.held33"
touch -d '1 hour ago' "$d/.tmp.manifest.json.held33"
flock "$d/.tmp.manifest.json.held33" sleep 300 &
holder=$!
cleanup_fn kill "$holder"
wait_for 10 sh -c "! flock -n '$d/.tmp.manifest.json.held33' true" ||
    fail "the holder did not lock its file"

start_lazyvol "$tmp/w"
[ "$(field "$(ctl '{"cmd":"status","export_id":"t"}')" dirty_chunks)" = 0 ]
[ ! -e "$tmp/w/cache/t/snapshot.journal.json.tmp.Ab12Cd" ] ||
    fail "the journal's temporary file stayed"
[ ! -e "$d/.tmp.delta.blob.upload.old111" ] ||
    fail "an old unlocked temporary object stayed"
[ -e "$d/.tmp.manifest.json.new222" ] || fail "a fresh temporary object went"
[ -e "$d/.tmp.manifest.json.held33" ] || fail "a locked temporary object went"

# After a publish, too.
touch -d '1 hour ago' "$d/.tmp.manifest.json.new222"
qemu-io -f raw -c 'write -P 2 1M 1M' -c flush "$(uri t)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"t"}' >/dev/null
[ ! -e "$d/.tmp.manifest.json.new222" ] || fail "the publish left an old one"
[ -e "$d/.tmp.manifest.json.held33" ] || fail "a locked temporary object went"
echo OK
