#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The plugin's control socket under hostile or careless use.
#  - control= naming a file that is not a socket is an error at start,
#    and the file is left as it was (a mistyped path deletes nothing);
#  - a request that is not UTF-8, or whose error message would cut a
#    character in two, still gets a reply that is valid JSON;
#  - a client that sends requests and never reads the replies loses its
#    connection after the send timeout instead of holding nbdkit's
#    shutdown forever;
#  - create refuses an image whose local cache could never exist (2^62
#    bytes in 64 KiB chunks: 8 TiB of chunk state per bitmap), before
#    anything is written.
. "$srcdir/functions.sh"
requires nbdkit jq /usr/bin/python3
tmp=$(make_tmpdir)
start_store "$tmp"

echo precious > "$tmp/notes.txt"
if nbdkit -f -U "$tmp/x.sock" "$LAZYVOL_PLUGIN" "cache-root=$tmp/x" \
       "control=$tmp/notes.txt" ${STORE_ARGS[@]+"${STORE_ARGS[@]}"} \
       2>"$tmp/err"; then
    fail "nbdkit started with a regular file as its control socket"
fi
matches 'is not a socket' "$tmp/err" || fail "no reason: $(cat "$tmp/err")"
[ "$(cat "$tmp/notes.txt")" = precious ] || fail "the file was changed"

start_lazyvol "$tmp/w"
# raw BYTES: send BYTES (Python bytes syntax) and check that the reply
# line is JSON with "ok" false and CODE; prints the error message.
raw ()
{
    /usr/bin/python3 - "$ctlsock" "$1" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(eval(sys.argv[2]) + b"\n")
line = s.makefile("rb").readline()
reply = json.loads(line.decode("utf-8"))       # strict: valid UTF-8 JSON
assert reply["ok"] is False and reply["code"] == sys.argv[3], reply
print(reply["error"])
PY
}
raw "b'{\"cmd\":\"\\xff\\xfe\"}'" bad_request | matches 'malformed JSON'
raw "('{\"cmd\":\"a' + 'é' * 30 + '\"}').encode()" bad_request |
    matches 'unknown command'
raw "('{\"cmd\":\"status\",\"export_id\":\"a' + 'é' * 120 + '\"}').encode()" \
    bad_request | matches 'invalid export_id'

# Too large to cache: refused, and nothing written remotely.
r=$(ctl '{"cmd":"create","export_id":"huge","size":4611686018427387904,"chunk_size":65536}') &&
    fail "an export whose cache cannot exist was created"
[ "$(field "$r" code)" = too_large ] || fail "not too_large: $r"
field "$r" error | matches 'memory for its cache state'
store_tool list exports/huge/ > "$tmp/huge"
! matches volume.json "$tmp/huge" || fail "its volume.json was written"

# A client that never reads: 20000 pings fill the socket buffers; the
# plugin's thread gives up on it, and nbdkit stops in bounded time.
/usr/bin/python3 - "$ctlsock" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.setblocking(False)
req = b'{"cmd":"ping"}\n' * 20000
sent = 0
end = time.time() + 20
while sent < len(req) and time.time() < end:
    try:
        sent += s.send(req[sent:])
    except BlockingIOError:
        time.sleep(0.05)
time.sleep(60)                  # hold the connection, never read
PY
reader=$!
cleanup_fn kill "$reader"
sleep 3
start=$(date +%s)
kill "$nbdkit_pid"
wait_for 40 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" ||
    fail "nbdkit did not stop with a client that does not read"
echo "stopped in $(( $(date +%s) - start )) s"
echo OK
