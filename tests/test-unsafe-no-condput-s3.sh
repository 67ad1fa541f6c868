#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A store that cannot evaluate conditional puts (stock Swift answers 501)
# cannot make one host the only writer of an export.  There, exports load
# read-only and say why (a new one too); with
# unsafe-no-conditional-puts=true (the admin's
# explicit choice, shown in status) the host owns them, writes and
# publishes, with a read before every head move.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq
tmp=$(make_tmpdir)
LAZYVOL_TEST_BACKEND=s3 LAZYVOL_TEST_S3_STOCK=1
start_store "$tmp"

start_lazyvol "$tmp/a" 2> "$tmp/a.log"
r=$(ctl '{"cmd":"create","export_id":"u","size":4194304,"chunk_size":1048576}')
[ "$(field "$r" writable)" = false ]
field "$r" notice | matches 'does not evaluate conditional puts'
field "$r" notice | matches 'unsafe-no-conditional-puts'
[ "$(field "$r" unsafe_no_conditional_puts)" = false ]
[ "$(field "$r" lease.valid)" = false ]
if qemu-io -f raw -c 'write -P 1 0 1M' "$(uri u)" 2>/dev/null; then
    fail "wrote without being able to own the export"
fi
r=$(ctl '{"cmd":"snapshot","export_id":"u"}') && fail "published unowned"
[ "$(field "$r" code)" = read_only ]
store_tool get exports/u/owner.json 2>/dev/null && fail "an owner was recorded"
matches 'holds no lease' "$tmp/a.log"
stop_lazyvol

# The admin accepts the risk.
start_lazyvol "$tmp/a" unsafe-no-conditional-puts=true
s=$(ctl '{"cmd":"status","export_id":"u"}')
[ "$(field "$s" writable)" = true ]
[ "$(field "$s" unsafe_no_conditional_puts)" = true ]
[ "$(field "$s" owner.this_host)" = true ]
qemu-io -f raw -c 'write -P 1 0 1M' "$(uri u)" >/dev/null
[ "$(field "$(ctl '{"cmd":"snapshot","export_id":"u"}')" generation)" = 1 ]
store_tool get exports/u/volume.json | jq -e '.epoch == 1' >/dev/null
stop_lazyvol

# A fresh host reads it back, read-only without the flag.
start_lazyvol "$tmp/b"
[ "$(field "$(ctl '{"cmd":"status","export_id":"u"}')" writable)" = false ]
qemu-io -r -f raw -c 'read -P 1 0 1M' "$(uri u)" >/dev/null
echo OK
