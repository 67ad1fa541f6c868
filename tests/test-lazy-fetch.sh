#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Lazy fetch: an image written and published by one nbdkit process is read
# by a second process with an empty cache.  The second process fetches a
# chunk only when it is read, once; chunks the manifest does not list
# read as zeros with no fetch; extents are known before any fetch; and the
# bytes equal the original byte for byte.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy nbdinfo qemu-io jq cmp dd
tmp=$(make_tmpdir)
start_store "$tmp"

# 64 MiB, 1 MiB chunks: random data in chunks 0-9 and 40, zeros elsewhere.
truncate -s 64M "$tmp/image"
dd if=/dev/urandom of="$tmp/image" bs=1M count=10 conv=notrunc status=none
dd if=/dev/urandom of="$tmp/image" bs=1M seek=40 count=1 conv=notrunc status=none

mkdir "$tmp/w" "$tmp/r"
start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"disk","size":67108864,"chunk_size":1048576}' >/dev/null
nbdcopy "$tmp/image" "$(uri disk)"
r=$(ctl '{"cmd":"snapshot","export_id":"disk"}')
[ "$(field "$r" snapshot_created)" = true ]
stop_lazyvol

# A different process, an empty cache.
start_lazyvol "$tmp/r"
r=$(ctl '{"cmd":"status","export_id":"disk"}')
[ "$(field "$r" resident_chunks)" = 0 ]
[ "$(field "$r" snapshot_generation)" = 1 ]

# Extents come from the manifest: no fetch needed.
nbdinfo --map "$(uri disk)" > "$tmp/map"
cat "$tmp/map"
grep -Eq '^ +0 +10485760 +0 +data' "$tmp/map"
grep -Eq '^ +10485760 +31457280 +3 +hole,zero' "$tmp/map"
grep -Eq '^ +41943040 +1048576 +0 +data' "$tmp/map"
[ "$(field "$(ctl '{"cmd":"metrics"}')" 'exports[0].fills')" = 0 ]

# Reading one chunk (twice) fetches it once.
qemu-io -f raw -c 'read 40M 4k' -c 'read 40M 1M' "$(uri disk)" >/dev/null
r=$(ctl '{"cmd":"metrics"}')
[ "$(field "$r" 'exports[0].fills')" = 1 ]
[ "$(field "$(ctl '{"cmd":"status","export_id":"disk"}')" resident_chunks)" = 1 ]

# Everything, byte for byte; only the 11 listed chunks were fetched.
nbdcopy "$(uri disk)" "$tmp/copy"
cmp "$tmp/image" "$tmp/copy"
r=$(ctl '{"cmd":"metrics"}')
[ "$(field "$r" 'exports[0].fills')" = 11 ]
[ "$(field "$r" 'exports[0].fill_errors')" = 0 ]
echo OK
