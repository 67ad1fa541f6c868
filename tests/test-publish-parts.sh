#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A blob uploaded in parts holds exactly its chunks' bytes, in chunk
# order, however each part is written: on the file store the page-aligned
# parts go with O_DIRECT and a last part of odd length through the page
# cache; on S3 each part is signed with the SHA-256 computed in the pass
# that hashes its chunks (the store checks it, so a wrong one fails the
# publish).  An image of 43 MiB + 1000 bytes in 1 MiB chunks, written
# whole: 44 chunks in 8 MiB parts, the last one 3 MiB + 1000 bytes.  The
# blob is byte for byte the image, and a fresh process with an empty
# cache reads the image back through the manifest's hashes.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy cmp head
tmp=$(make_tmpdir)
start_store "$tmp"
size=$((43 * 1048576 + 1000))

start_lazyvol "$tmp/w"
ctl "{\"cmd\":\"create\",\"export_id\":\"p\",\"size\":$size,\"chunk_size\":1048576}" >/dev/null
head -c "$size" /dev/urandom > "$tmp/image"
nbdcopy --flush "$tmp/image" "$(uri p)"
r=$(ctl '{"cmd":"snapshot","export_id":"p"}')
[ "$(field "$r" snapshot_created)" = true ] || fail "$r"
sid=$(field "$r" snapshot_id)
stop_lazyvol

store_tool get "exports/p/snapshots/$sid/delta.blob" > "$tmp/blob"
cmp "$tmp/image" "$tmp/blob"

start_lazyvol "$tmp/r"
nbdcopy "$(uri p)" "$tmp/got"
cmp "$tmp/image" "$tmp/got"
