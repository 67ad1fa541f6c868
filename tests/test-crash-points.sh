#!/usr/bin/env bash
# Crashes inside clone and reset (named crash points) leave a usable state.
#  - clone.after_manifest: the clone does not exist (no head); the source
#    is untouched; cloning again works.
#  - clone.after_head: the clone exists after the restart and reads as
#    its source's snapshot.
#  - reset.after_meta: the cleared state is on disk, cache.raw not yet
#    punched: after the restart nothing is dirty and every chunk reads as
#    the published image (the stale bytes left in cache.raw are never
#    served).
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

crash_at clone.after_manifest start_lazyvol "$tmp/w"
die '{"cmd":"clone","export_id":"c1","source_export_id":"s"}'
start_lazyvol "$tmp/w"
r=$(status c1) && fail "a clone without a head was loaded"
store_tool head exports/c1/volume.json 2>/dev/null && fail "c1 has a head"
qemu-io -f raw -c 'read -P 0x51 0 4M' "$(uri s)" >/dev/null
ctl '{"cmd":"clone","export_id":"c1","source_export_id":"s"}' >/dev/null
qemu-io -f raw -c 'read -P 0x51 0 4M' "$(uri c1)" >/dev/null
stop_lazyvol

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
echo OK
