#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# lazyvold restarts alone without cutting NBD clients.  One client holds
# one connection and writes, flushes and reads back throughout.  SIGUSR2
# makes lazyvold exit 0, remove its admin socket and leave nbdkit serving;
# the next lazyvold adopts the running nbdkit (and says so) and serves the
# API; lazyvold killed with SIGKILL also leaves nbdkit serving and is
# adopted again.  The client's I/O works before, between and after, on the
# same connection.  SIGTERM then stops the adopted nbdkit too.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq /usr/bin/python3
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvold "$tmp"
api POST /v1/exports/create '{"export_id":"v","size":8388608,"chunk_size":1048576}' >/dev/null
n=$(nbdkit_pid_of "$tmp")

/usr/bin/python3 - "$(uri v)" "$tmp" <<'PY' &
import nbd, os, sys, time
uri, d = sys.argv[1], sys.argv[2]
h = nbd.NBD(); h.connect_uri(uri)
for step in range(1, 6):
    deadline = time.time() + 120
    while not os.path.exists("%s/go.%d" % (d, step)):
        assert time.time() < deadline, "no go for step %d" % step
        time.sleep(0.02)
    h.pwrite(bytes([step]) * 65536, step * 65536)
    h.flush()
    for k in range(1, step + 1):
        assert h.pread(65536, k * 65536) == bytes([k]) * 65536, k
    open("%s/done.%d" % (d, step), "w").close()
h.shutdown()
PY
client=$!
step () { touch "$tmp/go.$1"; wait_for 30 test -e "$tmp/done.$1" || fail "client step $1"; }

step 1
stop_lazyvold USR2
[ "$lazyvold_status" = 0 ]
[ ! -e "$admin" ]
kill -0 "$n"
grep -q "SIGUSR2: exiting; nbdkit pid $n keeps serving" "$tmp/lazyvold.log"
step 2

start_lazyvold "$tmp"
grep -q "adopted running nbdkit pid $n" "$tmp/lazyvold.log"
api GET /v1/health | jq -e --argjson n "$n" '.adopted and .nbdkit_pid == $n'
api GET /v1/exports/v/status | jq -e '.connections == 1'
step 3

stop_lazyvold KILL
kill -0 "$n"
step 4

start_lazyvold "$tmp"
[ "$(grep -c "adopted running nbdkit pid $n" "$tmp/lazyvold.log")" = 2 ]
api GET /v1/exports/v/status | jq -e '.connections == 1 and .dirty_chunks == 1'
step 5
wait "$client"

stop_lazyvold TERM
[ "$lazyvold_status" = 0 ]
# lazyvold saw it exit; its keeper reaps it.
wait_for 30 sh -c "! kill -0 $n 2>/dev/null" || fail "adopted nbdkit $n still runs"
echo OK
