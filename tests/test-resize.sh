#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A resize grows an export at once for new NBD connections (status shows
# the size pending) while a connection already open keeps its size and
# cannot go past it; the next snapshot publishes the size.  The old last
# chunk, short, is zero-extended and made dirty (fetched first if it was
# not cached), so that the published image has no short chunk inside it:
# the new snapshot stores it whole.  The pending size survives a restart,
# a reset undoes it, and a crash at resize.after_dirty leaves the old
# size with the chunk dirty.  Shrinking, a view, a size the cache
# cannot hold, a host that does not own the export and a resize while a
# publish runs are refused.  A clone of a snapshot from before the resize
# has the old size, and a rollback to it takes the old size back
# (refused while a client is connected).  Exact bytes are read over NBD.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq /usr/bin/python3
requires_crash_points
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvol "$tmp/w"
M=1048576
status () { ctl "{\"cmd\":\"status\",\"export_id\":\"$1\"}"; }
resize () { ctl "{\"cmd\":\"resize\",\"export_id\":\"$1\",\"size\":$2}"; }
snap () { field "$(ctl "{\"cmd\":\"snapshot\",\"export_id\":\"$1\"}")" snapshot_id; }
rd () { qemu-io -f raw -c "read -P $2 $3 $4" "$(uri $1)" >/dev/null || fail "$1 [$3+$4] is not $2"; }
size_of () { /usr/bin/python3 -c 'import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); print(h.get_size())' "$(uri $1)"; }
has_clients () { ! no_clients "$1"; }
refused () {                    # CODE JSON
    local r
    r=$(ctl "$2") && fail "$2 was taken: $r"
    [ "$(field "$r" code)" = "$1" ] || fail "$2: $r"
}

ctl "{\"cmd\":\"create\",\"export_id\":\"v\",\"size\":$((3 * M / 2)),\"chunk_size\":$M}" >/dev/null
qemu-io -f raw -c "write -P 0x11 0 $((3 * M / 2))" "$(uri v)" >/dev/null
s1=$(snap v)
# Chunk 1, short, is not cached now: the resize fetches it.
wait_for 30 no_clients v
ctl '{"cmd":"reset","export_id":"v"}' >/dev/null
[ "$(field "$(status v)" resident_chunks)" = 0 ]

# A connection open across the resize keeps its size and its bounds.
mkfifo "$tmp/go" "$tmp/done"
/usr/bin/python3 - "$(uri v)" "$tmp/go" "$tmp/done" > "$tmp/old-conn" <<'PY' &
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
print(h.get_size())
open(sys.argv[2]).read()                        # the resize is done
print(h.get_size())
try:
    h.pread(4096, 2 * 1048576)
    print("read past the end")
except nbd.Error:
    print("refused")
print(h.pread(4, 1572860) == b"\x11" * 4)
h.shutdown()
open(sys.argv[3], "w").close()
PY
old_pid=$!
wait_for 30 sh -c "[ -s '$tmp/old-conn' ]"
r=$(resize v $((7 * M / 2)))
[ "$(field "$r" image_size)" = $((7 * M / 2)) ] &&
    [ "$(field "$r" pending_image_size)" = $((7 * M / 2)) ] &&
    [ "$(field "$r" chunk_count)" = 4 ] && [ "$(field "$r" dirty_chunks)" = 1 ] ||
    fail "resize: $r"
echo > "$tmp/go"
cat "$tmp/done"
wait $old_pid
[ "$(cat "$tmp/old-conn")" = "$(printf '%s\n' 1572864 1572864 refused True)" ] ||
    fail "the open connection: $(cat "$tmp/old-conn")"
[ "$(size_of v)" = $((7 * M / 2)) ]
rd v 0x11 0 $((3 * M / 2)); rd v 0 $((3 * M / 2)) $((2 * M))
# The head is unchanged until a snapshot.
store_tool get exports/v/volume.json | jq -e ".image_size == $((3 * M / 2))" >/dev/null

# Refused: shrinking, the same size, a view, more than the cache holds.
refused bad_request "{\"cmd\":\"resize\",\"export_id\":\"v\",\"size\":$M}"
refused bad_request "{\"cmd\":\"resize\",\"export_id\":\"v\",\"size\":$((7 * M / 2))}"
refused bad_request "{\"cmd\":\"resize\",\"export_id\":\"v@$s1\",\"size\":$((8 * M))}"
refused too_large "{\"cmd\":\"resize\",\"export_id\":\"v\",\"size\":$((64 * 1024 * M))}"
refused bad_request '{"cmd":"resize","export_id":"v","size":-1}'
refused bad_request '{"cmd":"resize","export_id":"v"}'

# The pending size survives a restart.
stop_lazyvol
start_lazyvol "$tmp/w"
st=$(status v)
[ "$(field "$st" pending_image_size)" = $((7 * M / 2)) ] &&
    [ "$(field "$st" dirty_chunks)" = 1 ] || fail "after restart: $st"
rd v 0x11 0 $((3 * M / 2)); rd v 0 $((3 * M / 2)) $((2 * M))

# A write past the old end, then a snapshot publishes the size; chunk 1
# is whole in the new blob.
qemu-io -f raw -c "write -P 0x22 $((3 * M)) $((M / 2))" "$(uri v)" >/dev/null
s2=$(snap v)
store_tool get exports/v/volume.json | jq -e ".image_size == $((7 * M / 2))" >/dev/null
store_tool get "exports/v/snapshots/$s2/manifest.json" | jq -e --arg b "v/snapshots/$s2/delta.blob" "
    .image_size == $((7 * M / 2)) and
    (.blobs | map(.key) | index(\$b)) as \$own |
    ([.extents[] | select(.blob == \$own) | .chunk] == [1, 3]) and
    (.blobs[\$own].size == $((M + M / 2)))" >/dev/null ||
    fail "s2: $(store_tool get "exports/v/snapshots/$s2/manifest.json")"
[ "$(field "$(status v)" pending_image_size)" = null ]
wait_for 30 no_clients v
ctl '{"cmd":"reset","export_id":"v"}' >/dev/null
rd v 0x11 0 $((3 * M / 2)); rd v 0 $((3 * M / 2)) $((3 * M / 2)); rd v 0x22 $((3 * M)) $((M / 2))

# A clone of the snapshot before the resize has the old size.
ctl "{\"cmd\":\"clone\",\"export_id\":\"c\",\"source_export_id\":\"v\",\"source_snapshot_id\":\"$s1\"}" >/dev/null
[ "$(field "$(status c)" image_size)" = $((3 * M / 2)) ] && [ "$(size_of c)" = $((3 * M / 2)) ]
rd c 0x11 0 $((3 * M / 2))

# Rollback to s1: smaller, so refused while a client is connected.
/usr/bin/python3 - "$(uri v)" "$tmp/go" <<'PY' &
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
open(sys.argv[2]).read()
h.shutdown()
PY
holder=$!
wait_for 30 has_clients v
refused busy "{\"cmd\":\"rollback\",\"export_id\":\"v\",\"snapshot_id\":\"$s1\"}"
echo > "$tmp/go"
wait $holder
wait_for 30 no_clients v
r=$(ctl "{\"cmd\":\"rollback\",\"export_id\":\"v\",\"snapshot_id\":\"$s1\"}")
store_tool get exports/v/volume.json | jq -e ".image_size == $((3 * M / 2))" >/dev/null
st=$(status v)
[ "$(field "$st" image_size)" = $((3 * M / 2)) ] && [ "$(field "$st" pending_image_size)" = null ] ||
    fail "after the rollback: $st"
[ "$(size_of v)" = $((3 * M / 2)) ]
rd v 0x11 0 $((3 * M / 2))
# ... and back to s2, larger: allowed with clients.
ctl "{\"cmd\":\"rollback\",\"export_id\":\"v\",\"snapshot_id\":\"$s2\"}" >/dev/null
[ "$(size_of v)" = $((7 * M / 2)) ]
rd v 0x11 0 $((3 * M / 2)); rd v 0x22 $((3 * M)) $((M / 2))

# A never-published export: nothing to fetch; a reset undoes a resize.
ctl "{\"cmd\":\"create\",\"export_id\":\"n\",\"size\":$((M + 4096)),\"chunk_size\":$M}" >/dev/null
r=$(resize n $((2 * M)))
[ "$(field "$r" dirty_chunks)" = 0 ] || fail "resize n: $r"
rd n 0 0 $((2 * M))
r=$(resize n $((3 * M)))
wait_for 30 no_clients n
r=$(ctl '{"cmd":"reset","export_id":"n"}')
[ "$(field "$r" image_size)" = $((M + 4096)) ] && [ "$(field "$r" pending_image_size)" = null ] ||
    fail "reset of n: $r"
[ "$(size_of n)" = $((M + 4096)) ]
resize n $((2 * M)) >/dev/null
qemu-io -f raw -c "write -P 0x33 $M $M" "$(uri n)" >/dev/null
snap n >/dev/null
store_tool get exports/n/volume.json | jq -e ".image_size == $((2 * M)) and .generation == 1" >/dev/null
# A resize to whole chunks dirties nothing, but is unpublished: a close
# keeps the export this host's (another host could publish over it and
# the resize would be lost), and an open finds it pending still.
resize n $((4 * M)) >/dev/null
wait_for 30 no_clients n
ctl '{"cmd":"close","export_id":"n"}' >/dev/null
store_tool get exports/n/owner.json | jq -e '.host_id != null' >/dev/null ||
    fail "n was released with a resize pending: $(store_tool get exports/n/owner.json)"
r=$(ctl '{"cmd":"open","export_id":"n"}')
[ "$(field "$r" pending_image_size)" = $((4 * M)) ] || fail "open of n: $r"

# A crash after the dirty bit, before the size: the old size, chunk 1
# dirty with its bytes; the resize then works.
ctl "{\"cmd\":\"create\",\"export_id\":\"k\",\"size\":$((3 * M / 2)),\"chunk_size\":$M}" >/dev/null
qemu-io -f raw -c "write -P 0x44 0 $((3 * M / 2))" "$(uri k)" >/dev/null
snap k >/dev/null
stop_lazyvol
crash_at resize.after_dirty start_lazyvol "$tmp/w"
if r=$(resize k $((2 * M))); then fail "resize survived its crash point: $r"; fi
wait_for 30 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" || fail "nbdkit lives"
start_lazyvol "$tmp/w"
st=$(status k)
[ "$(field "$st" image_size)" = $((3 * M / 2)) ] && [ "$(field "$st" dirty_chunks)" = 1 ] ||
    fail "after the crash: $st"
rd k 0x44 0 $((3 * M / 2))
resize k $((2 * M)) >/dev/null
rd k 0x44 0 $((3 * M / 2)); rd k 0 $((3 * M / 2)) $((M / 2))
snap k >/dev/null
wait_for 30 no_clients k
ctl '{"cmd":"reset","export_id":"k"}' >/dev/null
rd k 0x44 0 $((3 * M / 2)); rd k 0 $((3 * M / 2)) $((M / 2))

# A resize racing a publish: refused while the publish runs (both are
# operations of the export), then done; the publish keeps its size.
stop_lazyvol
NBDKIT_OPTS=(-D lazyvol.publish_delay=3000)
start_lazyvol "$tmp/w"
NBDKIT_OPTS=()
qemu-io -f raw -c "write -P 0x55 0 $M" "$(uri k)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"k","wait":false}' >/dev/null
refused busy "{\"cmd\":\"resize\",\"export_id\":\"k\",\"size\":$((4 * M))}"
idle () { [ "$(field "$(status k)" operation_state)" = idle ]; }
wait_for 60 idle || fail "the snapshot did not end"
store_tool get exports/k/volume.json | jq -e ".image_size == $((2 * M)) and .generation == 3" >/dev/null
resize k $((4 * M)) >/dev/null
rd k 0x55 0 $M; rd k 0x44 $M $((M / 2)); rd k 0 $((3 * M / 2)) $((5 * M / 2))

# Another host has v loaded read-only: no resize, no rollback there.
a_pid=$nbdkit_pid a_ctl=$ctlsock a_nbd=$nbd
start_lazyvol "$tmp/b" host-id=otherhost
[ "$(field "$(status v)" writable)" = false ]
refused read_only "{\"cmd\":\"resize\",\"export_id\":\"v\",\"size\":$((8 * M))}"
refused read_only "{\"cmd\":\"rollback\",\"export_id\":\"v\",\"snapshot_id\":\"$s1\"}"
stop_lazyvol
nbdkit_pid=$a_pid ctlsock=$a_ctl nbd=$a_nbd
[ "$(size_of v)" = $((7 * M / 2)) ]
# On S3, an independent client checks every head, manifest and hash.
if [ "${LAZYVOL_TEST_BACKEND:-file}" = s3 ]; then
    /usr/bin/python3 "$srcdir/check_layout.py" "$S3_ENDPOINT" "$S3_BUCKET" exports
fi
stop_lazyvol
