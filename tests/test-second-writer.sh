#!/usr/bin/env bash
# One writer per export.  Two processes can never share a cache directory
# (the second cannot load the export), and two processes with their own
# caches cannot both publish one export: after one moves the head, the
# other's snapshot is refused with a clear error and publishes nothing.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq
tmp=$(make_tmpdir)
start_store "$tmp"

start_lazyvol "$tmp/a"
first_pid=$nbdkit_pid first_ctl=$ctlsock first_nbd=$nbd
ctl '{"cmd":"create","export_id":"w","size":8388608,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 1M' "$(uri w)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"w"}' >/dev/null

# Same cache root: the export is in use.
mkdir -p "$tmp/a2"
nbd=$tmp/a2/nbd.sock ctlsock=$tmp/a2/ctl.sock
start_nbdkit "$nbd" "cache-root=$tmp/a/cache" "control=$ctlsock" "${STORE_ARGS[@]}" 2> "$tmp/log2"
wait_for 30 test -S "$ctlsock"
r=$(ctl '{"cmd":"open","export_id":"w"}') && fail "two processes share a cache"
[ "$(field "$r" code)" = busy ]
field "$r" error | grep -q 'in use by another process'

# Another cache: loads, but once the first process publishes, its own
# snapshot is refused.
start_lazyvol "$tmp/b"
qemu-io -f raw -c 'write -P 2 2M 1M' "$(uri w)" >/dev/null
nbd=$first_nbd ctlsock=$first_ctl
qemu-io -f raw -c 'write -P 3 4M 1M' "$(uri w)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"w"}' >/dev/null
gen=$(store_tool get exports/w/volume.json | jq .generation)
[ "$gen" = 2 ]
nbd=$tmp/b/nbd.sock ctlsock=$tmp/b/ctl.sock
r=$(ctl '{"cmd":"snapshot","export_id":"w"}') && fail "second writer published"
[ "$(field "$r" code)" = conflict ]
field "$r" error | grep -q 'another writer'
[ "$(store_tool get exports/w/volume.json | jq .generation)" = 2 ]
[ "$(store_tool list exports/w/snapshots/ | grep -c manifest.json)" = 2 ]
# Its local writes are not lost: still dirty.
[ "$(field "$(ctl '{"cmd":"status","export_id":"w"}')" dirty_chunks)" = 1 ]
echo OK
