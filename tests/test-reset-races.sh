#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A cache reset never overlaps I/O.  Clients connect, read a random chunk
# and disconnect in a tight loop while resets are requested in another:
# each reset either is refused (busy: a client is connected) or runs
# alone, with clients that arrive meanwhile waiting for it; and every
# read returns the published bytes — never the zeros of a chunk read
# while it was punched, or marked resident over a hole by a fill that
# landed during a reset.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy jq /usr/bin/python3
tmp=$(make_tmpdir)
start_store "$tmp"

start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"r","size":33554432,"chunk_size":1048576}' >/dev/null
head -c 32M /dev/urandom > "$tmp/image"
nbdcopy "$tmp/image" "$(uri r)"
ctl '{"cmd":"snapshot","export_id":"r"}' >/dev/null

/usr/bin/python3 - "$(uri r)" "$tmp/image" "$ctlsock" <<'PY'
import json, nbd, random, socket, sys, threading, time
uri, image, ctlsock = sys.argv[1], open(sys.argv[2], "rb").read(), sys.argv[3]
end = time.time() + 10
bad, connections = [], [0]

def reader(seed):
    rnd = random.Random(seed)
    while time.time() < end and not bad:
        h = nbd.NBD()
        h.connect_uri(uri)
        for _ in range(2):
            off = rnd.randrange(32) * 1048576 + rnd.randrange(1048576 - 65536)
            if h.pread(65536, off) != image[off:off + 65536]:
                bad.append(off)
        h.shutdown()
        connections[0] += 1

threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
# Resets as fast as one control connection can send them.
s = socket.socket(socket.AF_UNIX)
s.connect(ctlsock)
f = s.makefile("rb")
resets = refused = 0
while time.time() < end and not bad:
    s.sendall(b'{"cmd":"reset","export_id":"r"}\n')
    reply = json.loads(f.readline())
    if reply["ok"]:
        resets += 1
    else:
        assert reply["code"] == "busy", reply
        refused += 1
for t in threads:
    t.join()
print("%d connections, %d resets, %d refused" % (connections[0], resets,
                                                  refused))
assert not bad, "wrong bytes read at offsets %s" % bad[:5]
assert resets > 0
PY
nbdcopy "$(uri r)" "$tmp/got"
cmp "$tmp/image" "$tmp/got"
echo OK
