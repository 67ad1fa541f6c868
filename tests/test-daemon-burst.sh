#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A burst of requests is served, not refused: 500 HTTP requests sent at
# once on 500 connections all get 200 with the export list.  (The plugin
# takes at most 64 control connections and answers more with "busy";
# lazyvold queues requests for its own pool of connections to it.)
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq /usr/bin/python3
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvold "$tmp"
api POST /v1/exports/create '{"export_id":"b","size":1048576}' >/dev/null

/usr/bin/python3 - "$admin" <<'PY'
import collections, json, socket, sys
socks = []
for i in range(500):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(b"GET /v1/exports HTTP/1.1\r\nHost: localhost\r\n"
              b"Connection: close\r\n\r\n")
    socks.append(s)
seen = collections.Counter()
for s in socks:
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    head, body = data.split(b"\r\n\r\n", 1)
    status = head.split(b" ")[1]
    seen[status] += 1
    if status == b"200":
        assert json.loads(body)["exports"][0]["export_id"] == "b"
    else:
        print(status, body[:200], file=sys.stderr)
assert seen == {b"200": 500}, seen
PY
echo OK
