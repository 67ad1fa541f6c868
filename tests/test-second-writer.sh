#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# One owner per export (lazyvold(8), OWNERSHIP).
#  - Two processes never share a cache directory.
#  - A second host (its own cache root) gets the export read-only: NBD
#    clients see a read-only export, snapshots are refused, and status
#    names the owner.  (Before owners existed it acknowledged writes it
#    could never publish.)
#  - Taking over from a live owner by waiting for its lease is refused
#    with 409 "owned".
#  - A forced takeover while the owner's publish is in flight: the
#    taker fences the head with its epoch, so the owner's head move fails
#    and two hosts never both move the head; the old owner stops
#    accepting writes and keeps its unpublished ones.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq
tmp=$(make_tmpdir)
start_store "$tmp"
OWN=(lease=3)

start_lazyvol "$tmp/a" host-id=hosta "${OWN[@]}"
a_pid=$nbdkit_pid a_ctl=$ctlsock a_nbd=$nbd
ctl '{"cmd":"create","export_id":"w","size":8388608,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 1M' "$(uri w)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"w"}' >/dev/null
s=$(ctl '{"cmd":"status","export_id":"w"}')
[ "$(field "$s" writable)" = true ]
[ "$(field "$s" owner.host_id)" = hosta ]
[ "$(field "$s" owner.this_host)" = true ]
[ "$(field "$s" epoch)" = "$(field "$s" owner.epoch)" ]
[ "$(field "$s" lease.valid)" = true ]
[ "$(field "$s" lease.period_ms)" = 3000 ]

# Same cache root: the export is in use.
mkdir -p "$tmp/a2"
nbd=$tmp/a2/nbd.sock ctlsock=$tmp/a2/ctl.sock
start_nbdkit "$nbd" "cache-root=$tmp/a/cache" "control=$ctlsock" \
    "${STORE_ARGS[@]}" host-id=hosta "${OWN[@]}" 2> "$tmp/log2"
wait_for 30 test -S "$ctlsock"
r=$(ctl '{"cmd":"open","export_id":"w"}') && fail "two processes share a cache"
[ "$(field "$r" code)" = busy ]
field "$r" error | matches 'in use by another process'

# Another host: read-only, and says whose it is.
start_lazyvol "$tmp/b" host-id=hostb "${OWN[@]}"
b_ctl=$ctlsock b_nbd=$nbd
s=$(ctl '{"cmd":"status","export_id":"w"}')
[ "$(field "$s" writable)" = false ]
[ "$(field "$s" owner.host_id)" = hosta ]
[ "$(field "$s" owner.this_host)" = false ]
field "$s" notice | matches 'owned by host hosta'
if qemu-io -f raw -c 'write -P 2 2M 1M' "$(uri w)" 2> "$tmp/b.err"; then
    fail "a second host accepted a write"
fi
matches -E 'Permission denied|read-only' < "$tmp/b.err"
qemu-io -r -f raw -c 'read -P 1 0 1M' "$(uri w)" >/dev/null
r=$(ctl '{"cmd":"snapshot","export_id":"w"}') && fail "a second host published"
[ "$(field "$r" code)" = read_only ]
[ "$(field "$(ctl '{"cmd":"status","export_id":"w"}')" dirty_chunks)" = 0 ]

# Waiting for a live owner's lease to expire: it does not.
ctl '{"cmd":"close","export_id":"w"}' >/dev/null
r=$(ctl '{"cmd":"open","export_id":"w","takeover":true}') &&
    fail "took the export of a live owner"
[ "$(field "$r" code)" = owned ]
field "$r" error | matches 'host hosta, is alive'
nbd=$a_nbd ctlsock=$a_ctl
[ "$(field "$(ctl '{"cmd":"status","export_id":"w"}')" writable)" = true ]

# The race: A passes its checks, then waits before moving the head; B
# takes the export by force meanwhile.
nbdkit_pid=$a_pid stop_lazyvol
NBDKIT_OPTS=(-D lazyvol.publish_delay=4000)
start_lazyvol "$tmp/a" host-id=hosta "${OWN[@]}"
NBDKIT_OPTS=()
a_ctl=$ctlsock a_nbd=$nbd
qemu-io -f raw -c 'write -P 4 6M 1M' "$(uri w)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"w"}' > "$tmp/a.reply" &
apid=$!
manifests () { store_tool list exports/w/snapshots/ | grep -c manifest.json; }
a_waiting () { [ "$(manifests)" = 2 ]; }
wait_for 30 a_waiting
epoch=$(store_tool get exports/w/owner.json | jq .epoch)
nbd=$b_nbd ctlsock=$b_ctl
s=$(ctl '{"cmd":"open","export_id":"w","takeover":"force"}')
[ "$(field "$s" writable)" = true ]
[ "$(field "$s" owner.host_id)" = hostb ]
[ "$(field "$s" owner.epoch)" = $((epoch + 1)) ]
[ "$(store_tool get exports/w/volume.json | jq .epoch)" = $((epoch + 1)) ]
wait $apid && fail "the old owner moved the head after a takeover"
jq -r .code "$tmp/a.reply" | matches -E '^(conflict|read_only)$'
jq -r .error "$tmp/a.reply" | matches -E 'taken (it|the export) over|changed during the publish'
[ "$(store_tool get exports/w/volume.json | jq .generation)" = 1 ]
[ "$(manifests)" = 1 ]
qemu-io -f raw -c 'write -P 5 7M 1M' "$(uri w)" >/dev/null
[ "$(field "$(ctl '{"cmd":"snapshot","export_id":"w"}')" generation)" = 2 ]
[ "$(store_tool get exports/w/volume.json | jq .epoch)" = $((epoch + 1)) ]

# The old owner: writes refused (within its lease period: its next
# renewal finds the revocation), its unpublished write kept.
nbd=$a_nbd ctlsock=$a_ctl
a_refuses () { [ "$(field "$(ctl '{"cmd":"status","export_id":"w"}')" writable)" = false ]; }
wait_for 3 a_refuses || fail "the old owner still accepts writes after L"
s=$(ctl '{"cmd":"status","export_id":"w"}')
field "$s" notice | matches 'another host has taken it over'
[ "$(field "$s" dirty_chunks)" = 1 ]
# Its status names the new owner, as owner.json does now.
[ "$(field "$s" owner.host_id)" = hostb ] && [ "$(field "$s" owner.this_host)" = false ]
[ "$(field "$s" owner.epoch)" = $((epoch + 1)) ]
qemu-io -f raw -c 'write -P 6 5M 1M' "$(uri w)" 2>/dev/null &&
    fail "the old owner accepted a write"
qemu-io -r -f raw -c 'read -P 4 6M 1M' "$(uri w)" >/dev/null
echo OK
