#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# lazyvolctl shows the progress of a long operation and Ctrl-C detaches
# from it without cancelling it.  lazyvold reaches a local S3 store
# through tests/store-proxy, which holds every request 250 ms (60 ms for
# the hydrate, whose fetches of one blob follow each other), so that a
# snapshot of 48 MiB and a hydrate of its 48 chunks take a few seconds.
# Without a terminal, progress comes as plain lines on stderr ("snapshot
# big: N/48 chunks (...), P%, ..."), stdout has the result alone, and
# --json shows no progress.  SIGINT during a hydrate or a snapshot makes
# lazyvolctl exit 130 at once saying where the operation goes on; the
# operation then completes in lazyvold: every chunk resident, the
# snapshot published.
LAZYVOL_TEST_BACKEND=s3
. "$srcdir/functions.sh"
requires "$LAZYVOLD" "$LAZYVOLCTL" curl jq qemu-io /usr/bin/python3
tmp=$(make_tmpdir)
start_store "$tmp"
start_store_proxy "$tmp/proxy" --command "set delay-ms 250" \
    --command "set delay 1"
store_via_proxy timeout=60
start_lazyvold "$tmp/d"
export LAZYVOL_SOCKET=$admin
MiB=1048576

"$LAZYVOLCTL" create big 64M --chunk-size 1M
qemu-io -f raw -c 'write -P 7 0 48M' "$(uri big)" >/dev/null

# Plain progress lines.
"$LAZYVOLCTL" snapshot big > "$tmp/out" 2> "$tmp/err"
cat "$tmp/err"
matches -Ex 'published snapshot [0-9a-f]{32} of big \(generation 1\)' "$tmp/out"
[ "$(wc -l < "$tmp/out")" = 1 ]
matches -Ex 'snapshot big: [0-9]+/48 chunks \([0-9.]+ [KMG]?i?B of 48 MiB\), [0-9]+%, (-|[0-9.]+ [KMG]?i?B/s), ETA (-|[0-9]+ s)' "$tmp/err"
matches -v '^snapshot big: ' "$tmp/err" && fail "other lines on stderr"

# detach OP: run lazyvolctl OP big, press Ctrl-C once its progress shows;
# it exits 130 at once, saying that the operation goes on.
detach ()
{
    local pid s=0
    "$LAZYVOLCTL" "$1" big > "$tmp/out" 2> "$tmp/err" &
    pid=$!
    wait_for 30 matches "^$1 big: " "$tmp/err" ||
        fail "no progress line: $(cat "$tmp/err")"
    kill -INT "$pid"
    wait "$pid" || s=$?
    [ "$s" = 130 ] || fail "lazyvolctl exited $s after SIGINT: $(cat "$tmp/err")"
    matches -x "lazyvolctl: detached: the $1 goes on in lazyvold; follow it with lazyvolctl status big" "$tmp/err"
    [ ! -s "$tmp/out" ]
}

# Detach from a hydrate: it goes on and fills every chunk with data.
wait_for 30 api_no_clients big
"$LAZYVOLCTL" reset big >/dev/null
proxy_ctl set delay-ms 60
detach hydrate
hydrated () {
    "$LAZYVOLCTL" --json status big | /usr/bin/python3 -c 'import json, sys
d = json.load(sys.stdin)
sys.exit(not (d["operation_state"] == "idle" and d["resident_chunks"] == 48))'
}
"$LAZYVOLCTL" --json status big | jq -e '.operation_state == "hydrating"' ||
    fail "the hydrate was over before the SIGINT"
wait_for 60 hydrated
proxy_ctl set delay-ms 250

# Detach from a snapshot: it is published all the same.
qemu-io -f raw -c 'write -P 8 0 32M' "$(uri big)" >/dev/null
detach snapshot
published () {
    [ "$("$LAZYVOLCTL" --json status big | jq '.snapshot_generation, .dirty_chunks' | tr '\n' ' ')" = "2 0 " ]
}
wait_for 60 published

# --json: the reply alone, no progress.
qemu-io -f raw -c 'write -P 9 0 16M' "$(uri big)" >/dev/null
"$LAZYVOLCTL" --json snapshot big > "$tmp/out" 2> "$tmp/err"
jq -e '.snapshot_created == true and .generation == 3' "$tmp/out"
[ ! -s "$tmp/err" ]
echo OK
