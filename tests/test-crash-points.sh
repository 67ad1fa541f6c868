#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Crashes inside clone and reset (named crash points) leave a usable state.
#  - clone.after_manifest, clone.after_summary: the clone does not exist
#    (no head; its summary is written at the second, not yet at the
#    first); the source is untouched; cloning again works.
#  - clone.after_head: the clone exists after the restart and reads as
#    its source's snapshot.
#  - reset.after_meta: the cleared state is on disk, cache.raw not yet
#    punched: after the restart nothing is dirty and every chunk reads as
#    the published image (the stale bytes left in cache.raw are never
#    served).
#  - takeover.after_owner: host B dies having revoked the export from a
#    live owner A and written owner.json, before fencing the head: A
#    stops accepting writes within its lease period and cannot publish;
#    B's restart finds the export its own, fences the head and publishes.
#  - fork.after_create: the new export exists as a plain clone, the
#    local writes are still the old export's (stale), and a fork to
#    another name keeps them.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq
requires_crash_points
tmp=$(make_tmpdir)
start_store "$tmp"
status () { ctl "{\"cmd\":\"status\",\"export_id\":\"$1\"}"; }

start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"s","size":8388608,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 0x51 0 4M' -c flush "$(uri s)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"s"}' >/dev/null
stop_lazyvol

# die ARGS: the command dies with nbdkit.
die ()
{
    if ctl "$1"; then fail "$1 survived its crash point"; fi
    wait_for 30 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" || fail "nbdkit lives"
}

summaries () { store_tool list "exports/$1/" | grep -c 'summary\.json' || :; }
for point in clone.after_manifest clone.after_summary; do
    c=c-${point#clone.}
    crash_at $point start_lazyvol "$tmp/w"
    die "{\"cmd\":\"clone\",\"export_id\":\"$c\",\"source_export_id\":\"s\"}"
    [ "$(summaries $c)" = "$([ $point = clone.after_summary ] && echo 1 || echo 0)" ]
    start_lazyvol "$tmp/w"
    r=$(status $c) && fail "$point: a clone without a head was loaded"
    store_tool head exports/$c/volume.json 2>/dev/null && fail "$c has a head"
    qemu-io -f raw -c 'read -P 0x51 0 4M' "$(uri s)" >/dev/null
    ctl "{\"cmd\":\"clone\",\"export_id\":\"$c\",\"source_export_id\":\"s\"}" >/dev/null
    qemu-io -f raw -c 'read -P 0x51 0 4M' "$(uri $c)" >/dev/null
    stop_lazyvol
done

crash_at clone.after_head start_lazyvol "$tmp/w"
die '{"cmd":"clone","export_id":"c2","source_export_id":"s"}'
start_lazyvol "$tmp/w"
[ "$(field "$(status c2)" remote_head_generation)" = 1 ]
qemu-io -f raw -c 'read -P 0x51 0 4M' "$(uri c2)" >/dev/null
stop_lazyvol

# A reset that dies after writing its cleared state.
start_lazyvol "$tmp/w"
qemu-io -f raw -c 'write -P 0x77 0 2M' -c flush "$(uri s)" >/dev/null
stop_lazyvol
crash_at reset.after_meta start_lazyvol "$tmp/w"
die '{"cmd":"reset","export_id":"s"}'
start_lazyvol "$tmp/w"
r=$(status s)
[ "$(field "$r" dirty_chunks)" = 0 ] && [ "$(field "$r" resident_chunks)" = 0 ]
qemu-io -f raw -c 'read -P 0x51 0 4M' -c 'read -P 0 4M 4M' "$(uri s)" >/dev/null
stop_lazyvol

# A takeover that dies between owner.json and the fence.
start_lazyvol "$tmp/w" host-id=hosta lease=3
a_ctl=$ctlsock a_nbd=$nbd a_pid=$nbdkit_pid
qemu-io -f raw -c 'write -P 0x61 0 1M' "$(uri s)" >/dev/null
crash_at takeover.after_owner start_lazyvol "$tmp/b" host-id=hostb lease=3 \
    discover=false
die '{"cmd":"open","export_id":"s","takeover":"force"}'
[ "$(store_tool get exports/s/owner.json | jq -r .host_id)" = hostb ]
nbd=$a_nbd ctlsock=$a_ctl
a_refuses () { [ "$(field "$(status s)" writable)" = false ]; }
wait_for 3 a_refuses || fail "the old owner still accepts writes"
r=$(ctl '{"cmd":"snapshot","export_id":"s"}') && fail "the old owner published"
nbdkit_pid=$a_pid stop_lazyvol
start_lazyvol "$tmp/b" host-id=hostb lease=3
r=$(status s)
[ "$(field "$r" owner.host_id)" = hostb ] && [ "$(field "$r" writable)" = true ]
[ "$(store_tool get exports/s/volume.json | jq .epoch)" = "$(field "$r" owner.epoch)" ]
qemu-io -f raw -c 'write -P 0x62 1M 1M' "$(uri s)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"s"}' >/dev/null
stop_lazyvol

# A fork that dies after creating the new export.  (Host A wrote chunk 0
# and lost the export: its write is kept, and stale since B published.)
crash_at fork.after_create start_lazyvol "$tmp/w" host-id=hosta lease=3
[ "$(field "$(status s)" stale)" = true ]
die '{"cmd":"fork","export_id":"s","new_export_id":"f1"}'
start_lazyvol "$tmp/w" host-id=hosta lease=3
[ "$(field "$(status f1)" dirty_chunks)" = 0 ]
[ "$(field "$(status s)" stale)" = true ]
r=$(ctl '{"cmd":"fork","export_id":"s","new_export_id":"f2"}')
[ "$(field "$r" dirty_chunks)" = 1 ] && [ "$(field "$r" writable)" = true ]
qemu-io -r -f raw -c 'read -P 0x61 0 1M' -c 'read -P 0x51 1M 1M' "$(uri f2)" >/dev/null
echo OK
