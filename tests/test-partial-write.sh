#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Writes to chunks that are not cached: a partial write first materializes
# the chunk from the remote image and merges (the rest of the chunk keeps
# its published bytes), a write covering a whole chunk needs no fetch, and
# a partial write to a chunk the manifest does not list leaves zeros
# around it.  The result equals the same writes applied to a local copy.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy qemu-io jq cmp dd
tmp=$(make_tmpdir)
start_store "$tmp"

# 8 MiB of random data over 1 MiB chunks, published; chunks 6-7 zero.
truncate -s 8M "$tmp/expect"
dd if=/dev/urandom of="$tmp/expect" bs=1M count=6 conv=notrunc status=none
mkdir "$tmp/w" "$tmp/r"
start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"d","size":8388608,"chunk_size":1048576}' >/dev/null
nbdcopy "$tmp/expect" "$(uri d)"
ctl '{"cmd":"snapshot","export_id":"d"}' >/dev/null
stop_lazyvol

start_lazyvol "$tmp/r"
fills () { field "$(ctl '{"cmd":"metrics"}')" 'exports[0].fills'; }

# Partial write in the middle of chunk 1 (not cached): one fetch.
head -c 5000 /dev/urandom > "$tmp/p1"
qemu-io -f raw -c "write -s $tmp/p1 1048676 5000" "$(uri d)" >/dev/null
dd if="$tmp/p1" of="$tmp/expect" bs=1 seek=1048676 conv=notrunc status=none
[ "$(fills)" = 1 ]

# A whole chunk (2): no fetch.
head -c 1M /dev/urandom > "$tmp/p2"
qemu-io -f raw -c "write -s $tmp/p2 2M 1M" "$(uri d)" >/dev/null
dd if="$tmp/p2" of="$tmp/expect" bs=1M seek=2 conv=notrunc status=none
[ "$(fills)" = 1 ]

# Across the boundary of chunks 3 and 4 (both not cached): two fetches.
head -c 8192 /dev/urandom > "$tmp/p3"
qemu-io -f raw -c "write -s $tmp/p3 $((4*1048576-4096)) 8192" "$(uri d)" >/dev/null
dd if="$tmp/p3" of="$tmp/expect" bs=4096 seek=$((4*256-1)) conv=notrunc status=none
[ "$(fills)" = 3 ]

# Into chunk 6, which the manifest does not list: zeros around, no fetch.
qemu-io -f raw -c "write -s $tmp/p1 $((6*1048576+12345)) 5000" "$(uri d)" >/dev/null
dd if="$tmp/p1" of="$tmp/expect" bs=1 seek=$((6*1048576+12345)) conv=notrunc status=none
[ "$(fills)" = 3 ]

r=$(ctl '{"cmd":"status","export_id":"d"}')
[ "$(field "$r" dirty_chunks)" = 5 ]
nbdcopy "$(uri d)" "$tmp/got"
cmp "$tmp/expect" "$tmp/got"
echo OK
