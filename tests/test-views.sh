#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Snapshot views on demand:
# - listing the exports and asking their sizes (nbdinfo --list, which
#   opens every view for NBD_OPT_INFO) loads no view and makes no cache
#   directory; a view's size comes from its summary, or its manifest for
#   a snapshot without one;
# - a view is loaded at its first read, and stays loaded, idle, once its
#   client has gone, but only the idle-views most recently used do: the
#   next one to become idle unloads the least recently used, whose cache
#   directory goes with it;
# - a view with a client connected, or opened by the control command
#   open (also when a client had loaded it), is never unloaded that way;
# - a view of a snapshot that does not exist is refused at open.
. "$srcdir/functions.sh"
requires nbdkit nbdinfo qemu-io jq /usr/bin/python3
set -o pipefail
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvol "$tmp/d" idle-views=2
cache=$tmp/d/cache

# Four snapshots of an 8 MiB export; snapshot K has byte K in chunk 0.
ctl '{"cmd":"create","export_id":"disk","size":8388608,"chunk_size":1048576}' >/dev/null
sids=()
for k in 1 2 3 4; do
    qemu-io -f raw -c "write -P $k 0 1M" "$(uri disk)" >/dev/null
    sids+=("$(field "$(ctl '{"cmd":"snapshot","export_id":"disk"}')" snapshot_id)")
done
view () { echo "disk@${sids[$1]}"; }
loaded () { ctl '{"cmd":"list"}' | jq -r '.exports[].export_id' | sort; }
is_loaded () { loaded | grep -qxF "$1"; }
not_loaded () { ! is_loaded "$1"; }

# Listing: every view named, sizes right, nothing loaded.
nbdinfo --list --json "nbd+unix:///?socket=$nbd" > "$tmp/list"
[ "$(jq '.exports | length' "$tmp/list")" = 5 ]
[ "$(jq '[.exports[] | select(."export-name" | contains("@")) | ."export-size"] | unique' -c "$tmp/list")" = '[8388608]' ]
[ "$(loaded)" = disk ]
[ -z "$(find "$cache" -maxdepth 1 -name 'disk@*' -print -quit)" ] ||
    fail "nbdinfo --list made cache directories: $(ls "$cache")"

# Without a summary the manifest gives the size.
rm "$tmp/bucket/exports/disk/snapshots/${sids[0]}/summary.json"
[ "$(nbdinfo --size "$(uri "$(view 0)")")" = 8388608 ]
[ "$(loaded)" = disk ]

# A view that does not exist is refused at open.
nosuch=disk@${sids[0]:0:28}0000
[ "$nosuch" != "$(view 0)" ]
if nbdinfo --size "$(uri "$nosuch")"; then
    fail "a view of no snapshot opened"
fi
[ "$(loaded)" = disk ]

# A read loads the view; idle afterwards, it stays (2 may).
qemu-io -r -f raw -c 'read -P 1 0 1M' "$(uri "$(view 0)")" >/dev/null
qemu-io -r -f raw -c 'read -P 2 0 1M' "$(uri "$(view 1)")" >/dev/null
wait_for 10 is_loaded "$(view 1)"
is_loaded "$(view 0)"
[ -d "$cache/$(view 0)" ]

# A third idle view unloads the least recently used, and its cache.
qemu-io -r -f raw -c 'read -P 3 0 1M' "$(uri "$(view 2)")" >/dev/null
wait_for 10 not_loaded "$(view 0)" ||
    fail "the least recently used idle view stayed: $(loaded)"
is_loaded "$(view 1)"
is_loaded "$(view 2)"
[ ! -e "$cache/$(view 0)" ] || fail "its cache directory stayed"

# A view with a client stays, however many others come and go; it reads
# right all along.
/usr/bin/python3 - "$(uri "$(view 0)")" "$(uri "$(view 3)")" \
    "$(uri "$(view 1)")" "$(uri "$(view 2)")" "$ctlsock" <<'EOF'
import json, socket, subprocess, sys
import nbd

def loaded(ctl):
    s = socket.socket(socket.AF_UNIX)
    s.connect(ctl)
    s.sendall(b'{"cmd":"list"}\n')
    r = json.loads(s.makefile().readline())
    return {e["export_id"] for e in r["exports"]}

held = nbd.NBD()
held.connect_uri(sys.argv[1])
assert held.pread(4096, 0) == b"\x01" * 4096
for uri in sys.argv[2:5]:
    subprocess.run(["qemu-io", "-r", "-f", "raw", "-c", "read 0 1M", uri],
                   check=True, stdout=subprocess.DEVNULL)
    assert held.pread(4096, 0) == b"\x01" * 4096
name = sys.argv[1].split("/")[3].split("?")[0]
assert name in loaded(sys.argv[5]), "a view with a client was unloaded"
held.shutdown()
EOF

# open keeps a view a client loaded, past the idle limit.
v3=$(view 3)
ctl "{\"cmd\":\"open\",\"export_id\":\"$v3\"}" >/dev/null
for k in 0 1 2; do
    qemu-io -r -f raw -c "read -P $((k + 1)) 0 1M" "$(uri "$(view $k)")" >/dev/null
done
sleep 1
is_loaded "$v3" || fail "an opened view was unloaded as idle: $(loaded)"
ctl "{\"cmd\":\"close\",\"export_id\":\"$v3\"}" >/dev/null
[ ! -e "$cache/$v3" ] || fail "a closed view kept its cache directory"
echo OK
