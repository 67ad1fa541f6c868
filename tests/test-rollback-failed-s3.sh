#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A rollback with discard_local that fails after dropping the local
# writes (here: the store refuses the new manifest) leaves the export as
# its head's image, readable and publishable, even when a resize was
# pending: the resize had made the old short last chunk dirty and whole,
# and the discard drops the pending size with the writes (as a reset
# does), so the old last chunk is read at its stored, short length and
# not fetched whole from a blob that holds less.  With a client
# connected (which knows the larger size) such a discard is refused and
# drops nothing.
LAZYVOL_TEST_BACKEND=s3
. "$srcdir/functions.sh"
requires "$LAZYVOLD" "$LAZYVOLCTL" nbdkit curl jq qemu-io
tmp=$(make_tmpdir)
start_store "$tmp"
start_store_proxy "$tmp/proxy"
store_via_proxy retries=1 timeout=30
start_lazyvold "$tmp/d"
lv () { "$LAZYVOLCTL" --socket "$admin" "$@"; }
rd () { qemu-io -f raw -r -c "read -P $1 $2 $3" "$(uri rb)" >/dev/null ||
            fail "rb [$2+$3] is not $1"; }
wr () { qemu-io -f raw -c "write -P $1 $2 $3" -c flush "$(uri rb)" >/dev/null; }

# 10,000,000 bytes in chunks of 1 MiB: the last, chunk 9, is 562,816.
lv create rb 10000000 --chunk-size 1M >/dev/null
wr 0x77 9437184 562816
s1=$(lv --json snapshot rb | jq -r .snapshot_id)
wr 0x55 0 4096
lv resize rb 12M >/dev/null
lv --json status rb | jq -e '.pending_image_size == 12582912' >/dev/null ||
    fail "no pending resize: $(lv --json status rb)"

# With a client connected: refused, nothing dropped.
qemu-io -f raw -c 'sleep 5000' "$(uri rb)" & client=$!
cleanup_fn kill_wait "$client"
wait_for 10 sh -c "[ \"\$('$LAZYVOLCTL' --socket '$admin' --json status rb |
    jq .connections)\" = 1 ]" || fail "the client did not connect"
rc=0; lv rollback rb "$s1" --discard-local > "$tmp/out" 2>&1 || rc=$?
[ $rc = 4 ] || fail "rollback with a client: exit $rc: $(cat "$tmp/out")"
matches 'connected' "$tmp/out"
lv --json status rb | jq -e '.dirty_chunks > 0 and .pending_image_size == 12582912' \
    >/dev/null || fail "the refused discard dropped something"
kill_wait "$client"
wait_for 10 sh -c "[ \"\$('$LAZYVOLCTL' --socket '$admin' --json status rb |
    jq .connections)\" = 0 ]" || fail "the client did not go"

# The store refuses every put: the rollback fails after the discard.
proxy_ctl set match 'PUT ' >/dev/null
proxy_ctl next 1000 403 >/dev/null
rc=0; lv rollback rb "$s1" --discard-local > "$tmp/out" 2>&1 || rc=$?
proxy_ctl clear >/dev/null
[ $rc != 0 ] || fail "the rollback worked through a store refusing puts"
st=$(lv --json status rb)
jq -e --arg s "$s1" '.snapshot_id == $s and .image_size == 10000000 and
    .pending_image_size == null and .dirty_chunks == 0' <<<"$st" >/dev/null ||
    fail "after the failed rollback: $st"
rd 0x77 9437184 562816
rd 0 0 4096
r=$(lv --json snapshot rb) || fail "snapshot after the failed rollback: $r"
wr 0x66 0 4096
lv snapshot rb >/dev/null || fail "snapshot of a write after the failed rollback"
rd 0x66 0 4096
rd 0x77 9437184 562816
echo OK
