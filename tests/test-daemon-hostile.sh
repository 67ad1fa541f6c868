#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The admin API under hostile or slow clients.
#  - A body that is not UTF-8, and ids whose error message would cut a
#    character in two, get a 400 whose body is valid JSON.
#  - Connections that send a partial request and stall (slowloris) are
#    closed after --admin-timeout; the API keeps answering others.
#  - A request whose reply takes longer than the timeout (a snapshot held
#    by -D lazyvol.publish_delay) still gets its reply.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io /usr/bin/python3 nbdkit
tmp=$(make_tmpdir)
start_store "$tmp"
cat > "$tmp/nbdkit" <<EOF
#!/bin/sh
exec nbdkit -D lazyvol.publish_delay=4000 "\$@"
EOF
chmod +x "$tmp/nbdkit"
start_lazyvold "$tmp/d" --admin-timeout 2 --nbdkit "$tmp/nbdkit"

# strict_json FILE: FILE is valid UTF-8 JSON with a "code".
strict_json ()
{
    /usr/bin/python3 -c 'import json, sys
d = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
assert d["code"] == "bad_request", d' "$1"
}
printf '{"export_id":"\xff\xfe","size":1}' > "$tmp/bad.json"
[ "$(curl -sS --unix-socket "$admin" -o "$tmp/r" -w '%{http_code}' \
       -H 'Content-Type: application/json' --data-binary @"$tmp/bad.json" \
       http://localhost/v1/exports/create)" = 400 ]
strict_json "$tmp/r"
long=a$(printf 'é%.0s' $(seq 100))
[ "$(curl -sS --unix-socket "$admin" -o "$tmp/r" -w '%{http_code}' \
       "http://localhost/v1/exports/$long/status")" = 400 ]
strict_json "$tmp/r"

# 61 stalled connections are closed after the timeout.
/usr/bin/python3 - "$admin" <<'PY'
import socket, sys, time
conns = []
for i in range(61):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")   # never finished
    conns.append(s)
t0 = time.monotonic()
for s in conns:
    s.settimeout(30)
    assert s.recv(1) == b"", "a stalled connection got data"
took = time.monotonic() - t0
assert took < 10, "stalled connections lived %.1f s" % took
print("closed after %.1f s" % took)
PY
api GET /v1/health >/dev/null

# A reply that takes longer than the timeout is not cut off.
api POST /v1/exports/create '{"export_id":"s","size":4194304,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 1M' -c flush "$(uri s)" >/dev/null
r=$(api POST /v1/exports/s/snapshot)
[ "$(field "$r" snapshot_created)" = true ]
echo OK
