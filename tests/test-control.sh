#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The control socket: created mode 0600; every malformed or hostile
# request gets a JSON error with a fitting code and the connection and
# the server keep going; ids are validated before they touch a path;
# create/open/close conflicts are reported; the NBD side lists exports and
# refuses unknown names.
. "$srcdir/functions.sh"
requires nbdkit nbdinfo jq stat /usr/bin/python3
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvol "$tmp"

[ "$(stat -c %a "$ctlsock")" = 600 ]

# expect CODE JSON: the request fails with error code CODE.
expect ()
{
    local r
    if r=$(ctl "$2"); then fail "accepted: $2"; fi
    [ "$(field "$r" code)" = "$1" ] || fail "wanted $1, got: $r"
}
expect bad_request 'not json'
expect bad_request '[1,2]'
expect bad_request '{"export_id":"x"}'
expect bad_request '{"cmd":"frobnicate"}'
expect bad_request '{"cmd":7}'
expect bad_request '{"cmd":"create","export_id":"../etc","size":1048576}'
expect bad_request '{"cmd":"create","export_id":"a/b","size":1048576}'
expect bad_request '{"cmd":"create","export_id":".hidden","size":1048576}'
expect bad_request "{\"cmd\":\"create\",\"export_id\":\"$(printf 'x%.0s' $(seq 129))\",\"size\":1048576}"
expect bad_request '{"cmd":"create","export_id":"v","size":-1}'
expect bad_request '{"cmd":"create","export_id":"v","size":1.5}'
expect bad_request '{"cmd":"create","export_id":"v","size":"1G"}'
expect bad_request '{"cmd":"create","export_id":"v","size":0}'
expect bad_request '{"cmd":"create","export_id":"v","size":1048576,"chunk_size":1000000}'
expect bad_request '{"cmd":"create","export_id":"v","size":1048576,"chunk_size":32768}'
expect bad_request '{"cmd":"create","export_id":"v","size":99999999999999999999}'
expect bad_request '{"cmd":"status","export_id":"v@nothex"}'
expect bad_request '{"cmd":"clone","export_id":"c","source_export_id":"v","source_snapshot_id":"../../x"}'
expect not_found '{"cmd":"status","export_id":"nosuch"}'
expect not_found '{"cmd":"open","export_id":"nosuch"}'
# Nothing was created by any of that.
[ ! -e "$tmp/bucket/etc" ] && [ ! -e "$tmp/cache/v" ]
[ "$(ctl '{"cmd":"list"}' | jq '.exports | length')" = 0 ]

# A request line over 1 MiB is refused and skipped; the same connection
# goes on working.
/usr/bin/python3 - "$ctlsock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b'{"cmd":"ping","pad":"' + b"x" * (3 << 20) + b'"}\n')
s.sendall(b'{"cmd":"ping"}\n')
f = s.makefile("rb")
reply = json.loads(f.readline())
assert reply["code"] == "too_large", reply
assert json.loads(f.readline())["ok"]
PY
ctl '{"cmd":"ping"}' >/dev/null

# Conflicts.
ctl '{"cmd":"create","export_id":"v","size":4194304}' >/dev/null
expect already_exists '{"cmd":"create","export_id":"v","size":4194304}'
expect already_exists '{"cmd":"open","export_id":"v"}'
# Several requests on one connection; close refused while a client is on.
/usr/bin/python3 - "$ctlsock" "$(uri v)" <<'PY'
import json, socket, sys, nbd
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
def req(o):
    f.write(json.dumps(o).encode() + b"\n"); f.flush()
    return json.loads(f.readline())
assert req({"cmd": "ping"})["ok"]
h = nbd.NBD(); h.connect_uri(sys.argv[2])
r = req({"cmd": "close", "export_id": "v"})
assert r["code"] == "busy" and "connected" in r["error"], r
r = req({"cmd": "reset", "export_id": "v"})
assert r["code"] == "busy", r
assert req({"cmd": "status", "export_id": "v"})["connections"] == 1
h.shutdown()
PY
wait_for 30 no_clients v
ctl '{"cmd":"close","export_id":"v"}' >/dev/null
expect not_found '{"cmd":"status","export_id":"v"}'
ctl '{"cmd":"open","export_id":"v"}' >/dev/null

# NBD: listed; unknown names refused; a single export is the default.
nbdinfo --list "nbd+unix:///?socket=$nbd" | matches '^export="v"'
if nbdinfo "$(uri nosuch)" 2>/dev/null; then fail "unknown export served"; fi
nbdinfo --size "nbd+unix:///?socket=$nbd" | matches -x 4194304
echo OK
