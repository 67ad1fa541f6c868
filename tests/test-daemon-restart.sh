#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A full restart of lazyvold loses nothing.  SIGTERM makes lazyvold stop
# its nbdkit (which flushes every export and marks its cache cleanly
# shut down), remove the admin socket and exit 0.  The next "lazyvold
# serve" on the same cache root starts a new nbdkit that rediscovers every
# export from the store; published data and flushed unpublished writes
# read back byte for byte, dirty chunks are still dirty, the resident
# cache is kept, and generations go on from where they were.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq nbdcopy cmp dd /usr/bin/python3
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvold "$tmp"

dd if=/dev/urandom of="$tmp/a.img" bs=1M count=8 status=none
dd if=/dev/urandom of="$tmp/b.img" bs=1M count=4 status=none
api POST /v1/exports/create '{"export_id":"a","size":8388608,"chunk_size":1048576}' >/dev/null
api POST /v1/exports/create '{"export_id":"b","size":4194304,"chunk_size":1048576}' >/dev/null
nbdcopy --flush "$tmp/a.img" "$(uri a)"
api POST /v1/exports/a/snapshot | jq -e '.generation == 1'
# Unpublished, flushed writes: 2 chunks of a, all of b.
dd if=/dev/urandom of="$tmp/a.img" bs=1M seek=2 count=2 conv=notrunc status=none
nbd_put "$(uri a)" "$tmp/a.img" 2097152 2097152
nbdcopy --flush "$tmp/b.img" "$(uri b)"
api GET /v1/exports/a/status | jq -e '.dirty_chunks == 2 and .resident_chunks == 8'

old=$(nbdkit_pid_of "$tmp")
stop_lazyvold TERM
[ "$lazyvold_status" = 0 ]
! kill -0 "$old" 2>/dev/null || fail "nbdkit $old still runs"
[ ! -e "$admin" ]
grep -q "nbdkit pid $old exited with status 0" "$tmp/lazyvold.log"

start_lazyvold "$tmp"
[ "$(nbdkit_pid_of "$tmp")" != "$old" ]
api GET /v1/health | jq -e '.adopted == false'
api GET /v1/exports | jq -e '[.exports[].export_id] | sort == ["a","b"]'
api GET /v1/exports/a/status | jq -e '.dirty_chunks == 2 and
    .resident_chunks == 8 and .snapshot_generation == 1'
api GET /v1/exports/b/status | jq -e '.dirty_chunks == 4 and .snapshot_generation == 0'
nbdcopy "$(uri a)" "$tmp/a.out"
cmp "$tmp/a.img" "$tmp/a.out"
nbdcopy "$(uri b)" "$tmp/b.out"
cmp "$tmp/b.img" "$tmp/b.out"
api POST /v1/exports/a/snapshot | jq -e '.snapshot_created and .generation == 2'
api POST /v1/exports/b/snapshot | jq -e '.snapshot_created and .generation == 1'
echo OK
