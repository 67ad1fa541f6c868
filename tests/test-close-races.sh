#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Closing and resetting an export while other commands run.
#  - list and metrics (what a Prometheus scrape or nbdinfo --list does)
#    run in a loop while the export is closed and opened again and again:
#    nbdkit survives, and every reply is complete;
#  - a reset or close asked for while a snapshot runs is refused at once
#    (busy), and the export's status keeps answering meanwhile.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq /usr/bin/python3
tmp=$(make_tmpdir)
start_store "$tmp"

NBDKIT_OPTS=(-D lazyvol.publish_delay=3000)
start_lazyvol "$tmp/w"
NBDKIT_OPTS=()
ctl '{"cmd":"create","export_id":"c","size":4194304,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 1M' -c flush "$(uri c)" >/dev/null

/usr/bin/python3 - "$ctlsock" <<'PY'
import json, socket, sys, threading, time
path, end, errors = sys.argv[1], time.time() + 5, []

def session():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s, s.makefile("rb")

def call(conn, req):
    s, f = conn
    s.sendall(json.dumps(req).encode() + b"\n")
    line = f.readline()
    if not line:
        raise RuntimeError("no reply to %s" % req)
    return json.loads(line)

def lister(cmd):
    try:
        conn = session()
        while time.time() < end:
            call(conn, {"cmd": cmd})
    except Exception as e:
        errors.append(repr(e))

threads = [threading.Thread(target=lister, args=(c,))
           for c in ("list", "metrics", "list", "metrics")]
for t in threads:
    t.start()
conn, cycles = session(), 0
while time.time() < end:
    for cmd in ("close", "open"):
        r = call(conn, {"cmd": cmd, "export_id": "c"})
        assert r["ok"] or r["code"] == "busy", r
    cycles += 1
for t in threads:
    t.join()
assert not errors, errors
assert call(conn, {"cmd": "ping"})["ok"]
print("%d close/open cycles" % cycles)
PY

# Reset and close during a snapshot: busy at once; status answers.
ctl '{"cmd":"open","export_id":"c"}' >/dev/null 2>&1 || true
qemu-io -f raw -c 'write -P 2 1M 1M' -c flush "$(uri c)" >/dev/null
wait_for 30 no_clients c
ctl '{"cmd":"snapshot","export_id":"c"}' > "$tmp/snap" &
snap=$!
wait_for 10 sh -c "[ \"\$($abs_top_srcdir/tests/ctl.py $ctlsock \
    '{\"cmd\":\"status\",\"export_id\":\"c\"}' | jq -r .operation_state)\" \
    = snapshotting ]" || fail "the snapshot did not start"
for cmd in reset close; do
    start=$(date +%s%N)
    r=$(ctl "{\"cmd\":\"$cmd\",\"export_id\":\"c\"}") &&
        fail "$cmd ran during a snapshot"
    [ "$(field "$r" code)" = busy ] || fail "$cmd: not busy: $r"
    [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 1500 ] ||
        fail "$cmd waited for the snapshot"
done
ctl '{"cmd":"status","export_id":"c"}' >/dev/null
wait "$snap"
[ "$(jq -r .snapshot_created "$tmp/snap")" = true ]
echo OK
