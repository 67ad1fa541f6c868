#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Local durability.  After FLUSH, and after a write with FUA, the data and
# its dirty bits survive kill -9: nothing acknowledged as durable is lost,
# and the chunks stay dirty (authoritative) without the object store.
# After a clean shutdown resident chunks are kept; after kill -9 clean
# resident chunks are dropped (they are only cache) and dirty ones kept.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy qemu-io jq cmp dd
tmp=$(make_tmpdir)
start_store "$tmp"
status () { field "$(ctl '{"cmd":"status","export_id":"f"}')" "$1"; }

start_lazyvol "$tmp"
ctl '{"cmd":"create","export_id":"f","size":33554432,"chunk_size":1048576}' >/dev/null
dd if=/dev/urandom of="$tmp/base" bs=1M count=32 status=none
nbdcopy "$tmp/base" "$(uri f)"
ctl '{"cmd":"snapshot","export_id":"f"}' >/dev/null
[ "$(status dirty_chunks)" = 0 ]

# Clean shutdown: the 32 resident chunks survive.
stop_lazyvol
start_lazyvol "$tmp"
[ "$(status resident_chunks)" = 32 ]

# Write + FLUSH to chunk 3; write with FUA (and no flush) to chunk 9.
qemu-io -f raw -c 'write -P 0x5a 3M 64k' -c flush "$(uri f)" >/dev/null
qemu-io -f raw -c 'write -f -P 0xa5 9M 4k' "$(uri f)" >/dev/null
[ "$(status dirty_chunks)" = 2 ]
stop_lazyvol KILL

# Unclean restart: the two dirty chunks are kept, the other resident
# chunks dropped.
start_lazyvol "$tmp"
[ "$(status dirty_chunks)" = 2 ]
[ "$(status resident_chunks)" = 2 ]
qemu-io -f raw -c 'read -P 0x5a 3M 64k' -c 'read -P 0xa5 9M 4k' "$(uri f)" \
    >/dev/null
# The rest of those chunks and every other chunk: the published bytes.
printf '\x5a%.0s' $(seq 65536) | dd of="$tmp/base" bs=1 seek=$((3*1048576)) conv=notrunc status=none
printf '\xa5%.0s' $(seq 4096) | dd of="$tmp/base" bs=1 seek=$((9*1048576)) conv=notrunc status=none
nbdcopy "$(uri f)" "$tmp/got"
cmp "$tmp/base" "$tmp/got"
echo OK
