#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A snapshot is one point in time: it holds every write acknowledged
# before the request and no torn or later state, while writers keep
# running during the whole upload (they are not paused longer than a
# flush).  Chunks rewritten during the publish stay dirty for the next
# snapshot; the others become clean.
. "$srcdir/functions.sh"
requires nbdkit jq /usr/bin/python3
/usr/bin/python3 -c 'import nbd' || fail "python3-libnbd is not installed"
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvol "$tmp"
ctl '{"cmd":"create","export_id":"pit","size":536870912,"chunk_size":1048576}' >/dev/null

/usr/bin/python3 "$abs_top_srcdir/tests/point_in_time.py" \
    "nbd+unix:///?socket=$nbd" "$ctlsock" pit 256 | tee "$tmp/out"
writes=$(sed -n 's/.* \([0-9]*\) writes.*/\1/p' "$tmp/out")
[ "$writes" -gt 100 ]

# The writers (first 128 MiB only) kept going after the snapshot: those
# chunks are dirty; the other 128 published chunks became clean.  A
# second snapshot publishes the dirty ones.
d=$(field "$(ctl '{"cmd":"status","export_id":"pit"}')" dirty_chunks)
[ "$d" -gt 0 ] && [ "$d" -le 128 ]
r=$(ctl '{"cmd":"snapshot","export_id":"pit"}')
[ "$(field "$r" snapshot_created)" = true ]
[ "$(field "$(ctl '{"cmd":"status","export_id":"pit"}')" dirty_chunks)" = 0 ]
echo OK
