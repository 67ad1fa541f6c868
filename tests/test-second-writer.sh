#!/usr/bin/env bash
# One writer per export.  Two processes can never share a cache directory
# (the second cannot load the export), and two processes with their own
# caches cannot both publish one export: after one moves the head, the
# other's snapshot is refused with a clear error and publishes nothing.
# (Run against stores with and without conditional puts.)
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
field "$r" error | matches 'in use by another process'

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
field "$r" error | matches 'another writer'
[ "$(store_tool get exports/w/volume.json | jq .generation)" = 2 ]
[ "$(store_tool list exports/w/snapshots/ | grep -c manifest.json)" = 2 ]
# Its local writes are not lost: still dirty.
[ "$(field "$(ctl '{"cmd":"status","export_id":"w"}')" dirty_chunks)" = 1 ]
stop_lazyvol

# The race itself: C passes the check, then waits before moving the head;
# meanwhile the first process publishes.  C's head move must fail (the
# conditional put, or the re-read where the store has none), and C's
# objects are removed.
NBDKIT_OPTS=(-D lazyvol.publish_delay=4000)
start_lazyvol "$tmp/c"
NBDKIT_OPTS=()
qemu-io -f raw -c 'write -P 4 6M 1M' "$(uri w)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"w"}' > "$tmp/c.reply" &
cpid=$!
# Wait until C has written its manifest (the third) and is waiting.
manifests () { store_tool list exports/w/snapshots/ | grep -c manifest.json; }
c_waiting () { [ "$(manifests)" = 3 ]; }
wait_for 30 c_waiting
nbd=$first_nbd ctlsock=$first_ctl
qemu-io -f raw -c 'write -P 5 7M 1M' "$(uri w)" >/dev/null
[ "$(field "$(ctl '{"cmd":"snapshot","export_id":"w"}')" generation)" = 3 ]
wait $cpid && fail "the delayed writer moved the head"
[ "$(jq -r .code "$tmp/c.reply")" = conflict ]
jq -r .error "$tmp/c.reply" | matches 'changed during the publish'
[ "$(store_tool get exports/w/volume.json | jq .generation)" = 3 ]
[ "$(manifests)" = 3 ]
[ "$(store_tool list exports/w/snapshots/ | grep -c '\.blob ')" = 3 ]
echo OK
