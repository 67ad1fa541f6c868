#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Revocations reach a live owner however many there are, and a lease
# record that someone deleted is written again.
#  - Host A owns 70 exports; host B takes all of them by force at once.
#    A's record holds at most 64 revocations, so B drops the oldest and
#    sets "overflow"; A then checks every export it holds against
#    owner.json, and within the lease period L refuses writes to all 70.
#    (Before, the six oldest revocations were dropped silently and A
#    went on acknowledging writes to those exports.)
#  - B's lease record is deleted: B writes it again and keeps its
#    exports writable, after checking them.  (Before, B retried a
#    conditional put that could never succeed, and its lease lapsed for
#    good.)
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq
tmp=$(make_tmpdir)
start_store "$tmp"
L=3
N=70
ids=$(seq -f 'e%02g' 1 $N)

start_lazyvol "$tmp/a" host-id=hosta lease=$L
a_ctl=$ctlsock a_nbd=$nbd
for e in $ids; do
    ctl "{\"cmd\":\"create\",\"export_id\":\"$e\",\"size\":1048576}" >/dev/null
done
qemu-io -f raw -c 'write -P 1 0 4k' "$(uri e01)" >/dev/null

start_lazyvol "$tmp/b" host-id=hostb lease=$L takeover=force
t0=$(date +%s%N)
for e in $ids; do
    s=$(ctl "{\"cmd\":\"status\",\"export_id\":\"$e\"}")
    [ "$(field "$s" owner.host_id)" = hostb ] || fail "B did not take $e"
done
rec=$(find "$tmp/bucket" -path '*/.hosts/hosta.*.json')

# Within L, A refuses writes to every one of them.
sleep $L
for e in $ids; do
    s=$(ctlsock=$a_ctl ctl "{\"cmd\":\"status\",\"export_id\":\"$e\"}")
    [ "$(field "$s" writable)" = false ] ||
        fail "A still takes writes to $e $(( ($(date +%s%N) - t0) / 1000000 )) ms after B took it"
done
qemu-io -f raw -c 'write -P 2 0 4k' "nbd+unix:///e01?socket=$a_nbd" \
    >/dev/null 2>&1 && fail "A acknowledged a write to e01"
jq -e '(.overflow // false) == false' "$rec" >/dev/null ||
    fail "A did not clear the overflow: $(cat "$rec")"

# B's record deleted: written again, B keeps its exports.
rec=$(find "$tmp/bucket" -path '*/.hosts/hostb.*.json')
rm "$rec"
wait_for $((2 * L)) test -f "$rec" || fail "B did not write its lease record again"
s=$(ctl '{"cmd":"status","export_id":"e02"}')
[ "$(field "$s" writable)" = true ]
[ "$(field "$s" lease.valid)" = true ]
qemu-io -f raw -c 'write -P 3 0 4k' "$(uri e02)" >/dev/null
echo OK
