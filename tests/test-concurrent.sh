#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Concurrent writers and readers on the same chunks from several
# connections, while those chunks are being fetched: every read sees
# published or written bytes, never a half-filled chunk; no write is lost
# to a fill; a chunk is fetched once however many connections race for
# it; and after a flush and kill -9 every write is still there.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy jq cmp dd /usr/bin/python3
/usr/bin/python3 -c 'import nbd' || fail "python3-libnbd is not installed"
tmp=$(make_tmpdir)
start_store "$tmp"

dd if=/dev/urandom of="$tmp/image" bs=1M count=16 status=none
mkdir "$tmp/w" "$tmp/r"
start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"c","size":16777216,"chunk_size":4194304}' >/dev/null
nbdcopy "$tmp/image" "$(uri c)"
ctl '{"cmd":"snapshot","export_id":"c"}' >/dev/null
stop_lazyvol

# No readahead, so that the fetch count below is exact.
start_lazyvol "$tmp/r" readahead=0
/usr/bin/python3 "$abs_top_srcdir/tests/chunk_hammer.py" "$(uri c)" \
    "$tmp/image" 4194304 3 8
r=$(ctl '{"cmd":"metrics"}')
# Three chunks hammered, each fetched exactly once.
[ "$(field "$r" 'exports[0].fills')" = 3 ]
nbdcopy "$(uri c)" "$tmp/before"

# The final flush made everything durable: kill -9 loses nothing.
stop_lazyvol KILL
start_lazyvol "$tmp/r"
[ "$(field "$(ctl '{"cmd":"status","export_id":"c"}')" dirty_chunks)" = 3 ]
nbdcopy "$(uri c)" "$tmp/after"
cmp "$tmp/before" "$tmp/after"
echo OK
