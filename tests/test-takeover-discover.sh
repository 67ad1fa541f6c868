#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Failover of a whole host at start: host A owns three exports and dies;
# host B starts with takeover=true and takes all three once A's lease has
# expired, waiting for that once (1.5 L), not once per export.  With no
# takeover, a third host finds them B's and loads them read-only; so does
# a fourth with takeover=true, which sees B renew its lease while it
# waits (a live owner keeps its exports, and the others still see them).
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq
tmp=$(make_tmpdir)
start_store "$tmp"
L=3

start_lazyvol "$tmp/a" host-id=hosta lease=$L
for e in e1 e2 e3; do
    ctl "{\"cmd\":\"create\",\"export_id\":\"$e\",\"size\":4194304,\"chunk_size\":1048576}" >/dev/null
    qemu-io -f raw -c 'write -P 7 0 1M' "$(uri $e)" >/dev/null
done
stop_lazyvol KILL

t0=$(date +%s%N)
start_lazyvol "$tmp/b" host-id=hostb lease=$L takeover=true
took=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "B started in $took ms"
for e in e1 e2 e3; do
    s=$(ctl "{\"cmd\":\"status\",\"export_id\":\"$e\"}")
    [ "$(field "$s" owner.host_id)" = hostb ]
    [ "$(field "$s" writable)" = true ]
done
[ "$took" -ge $((L * 1000)) ] || fail "took A's exports before its lease expired"
[ "$took" -lt $((L * 1000 * 3)) ] || fail "waited for A's lease once per export"

b_pid=$nbdkit_pid
start_lazyvol "$tmp/c" host-id=hostc lease=$L
c_ctl=$ctlsock
for e in e1 e2 e3; do
    s=$(ctl "{\"cmd\":\"status\",\"export_id\":\"$e\"}")
    [ "$(field "$s" owner.host_id)" = hostb ]
    [ "$(field "$s" writable)" = false ]
done
# A takeover of one loaded read-only: B is alive, so 409 owned, and it
# stays loaded read-only.
r=$(ctl '{"cmd":"open","export_id":"e1","takeover":true}') &&
    fail "took e1 from a live owner"
[ "$(field "$r" code)" = owned ]
[ "$(field "$(ctl '{"cmd":"status","export_id":"e1"}')" writable)" = false ]

start_lazyvol "$tmp/d" host-id=hostd lease=$L takeover=true 2>"$tmp/d.log"
for e in e1 e2 e3; do
    s=$(ctl "{\"cmd\":\"status\",\"export_id\":\"$e\"}")
    [ "$(field "$s" owner.host_id)" = hostb ]
    [ "$(field "$s" writable)" = false ]
done
matches 'its owner, host hostb, is alive.*loaded read-only' < "$tmp/d.log"

# B dies: C takes e1 it had loaded read-only, without closing it first.
kill -9 "$b_pid"
s=$(ctlsock=$c_ctl ctl '{"cmd":"open","export_id":"e1","takeover":true}')
[ "$(field "$s" owner.host_id)" = hostc ]
[ "$(field "$s" writable)" = true ]
echo OK
