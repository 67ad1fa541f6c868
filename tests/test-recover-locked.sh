#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A second process on the same cache root cannot disturb a live publish.
# While process A publishes (held before its head move with
# -D lazyvol.publish_delay), process B starts on the same cache root and
# tries to load the export: it must fail because A holds the cache, and
# must not run crash recovery first (which would delete A's journal,
# staging file, upload and objects).  A's snapshot then completes, and a
# fresh process reads it.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq
tmp=$(make_tmpdir)
start_store "$tmp"

NBDKIT_OPTS=(-D lazyvol.publish_delay=4000)
start_lazyvol "$tmp/a"
NBDKIT_OPTS=()
a_ctl=$ctlsock
ctl '{"cmd":"create","export_id":"k","size":8388608,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 0x5c 0 3M' -c flush "$(uri k)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"k"}' > "$tmp/snap.json" &
snap_pid=$!
wait_for 10 test -e "$tmp/a/cache/k/snapshot.journal.json" ||
    fail "the publish did not start"
sid=$(jq -r .snapshot_id "$tmp/a/cache/k/snapshot.journal.json")

# B: same cache root, its own sockets; it discovers k and cannot load it.
rm -f "$tmp/b.sock" "$tmp/b.ctl"
nbdkit -f -U "$tmp/b.sock" "$LAZYVOL_PLUGIN" "cache-root=$tmp/a/cache" \
    "control=$tmp/b.ctl" ${STORE_ARGS[@]+"${STORE_ARGS[@]}"} 2>"$tmp/b.log" &
b_pid=$!
cleanup_fn kill_wait "$b_pid"
wait_for 30 test -S "$tmp/b.ctl" || fail "B did not start"
ctlsock=$tmp/b.ctl
r=$(ctl '{"cmd":"open","export_id":"k"}') && fail "B loaded a cache A holds"
[ "$(field "$r" code)" = busy ]
kill_wait "$b_pid"
# A's publish is intact while it waits.
[ -e "$tmp/a/cache/k/snapshot.journal.json" ] || fail "B removed A's journal"
store_tool list exports/k/snapshots/ | matches "$sid/manifest.json" ||
    fail "B removed A's manifest"

wait "$snap_pid" || fail "A's snapshot failed: $(cat "$tmp/snap.json")"
[ "$(jq -r .snapshot_id "$tmp/snap.json")" = "$sid" ]
ctlsock=$a_ctl
stop_lazyvol
start_lazyvol "$tmp/c"
qemu-io -f raw -c 'read -P 0x5c 0 3M' "$(uri k)" >/dev/null
echo OK
