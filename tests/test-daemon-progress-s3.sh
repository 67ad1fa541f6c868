#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Progress and outcome of long operations in status, and "wait": false.
# lazyvold reaches a local S3 store through tests/store-proxy, which holds
# every request 150 ms, so that a snapshot of 24 chunks takes seconds.
# - POST snapshot {"wait": false} answers 202 at once with the export's
#   status, the snapshot already running; a second one is refused (409);
# - operation_progress counts chunks and bytes, with started_at, elapsed_s
#   and a rate; last_operation says how it ended (kind, result, snapshot
#   id, generation, times) and agrees with the snapshot list;
# - a compact in the background refuses a close (409) while it runs;
# - a publish that fails in the background leaves result "failed" and its
#   error in last_operation; a hydrate's outcome has every byte done;
# - bodies are checked: "wait" must be a boolean, no unknown field, and
#   no body at all is still the blocking request of the seed;
# - SIGUSR2 during a blocking snapshot: lazyvold exits without waiting
#   for it (its client loses the connection), nbdkit finishes it, and the
#   next lazyvold adopts nbdkit and shows how it ended;
# - lazyvold stopped by Ctrl-C during a background snapshot: nbdkit
#   finishes it before it exits, so the snapshot is the head after a
#   restart; a second Ctrl-C meanwhile is logged as such, not as a second
#   "shutting down".
LAZYVOL_TEST_BACKEND=s3
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io
tmp=$(make_tmpdir)
start_store "$tmp"
start_store_proxy "$tmp/proxy" --command "set delay-ms 150" \
    --command "set delay 1"
store_via_proxy timeout=60 retries=2
start_lazyvold "$tmp/d"
MiB=1048576
status () { api GET /v1/exports/big/status; }

api_expect 201 POST /v1/exports/create \
    '{"export_id":"big","size":33554432,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 7 0 24M' "$(uri big)" >/dev/null

# Nothing has run yet: no last operation, an idle progress.
st=$(status)
[ "$(jq -c .last_operation <<<"$st")" = null ] || fail "$st"
[ "$(jq -c '.operation_progress | [.done, .total, .started_at, .elapsed_s]' \
    <<<"$st")" = '[0,0,null,null]' ] || fail "$st"

# A snapshot in the background.
r=$(api_expect 202 POST /v1/exports/big/snapshot '{"wait": false}')
[ "$(jq -r .operation_state <<<"$r")" = snapshotting ] || fail "$r"
jq -e '.operation_progress.started_at | test("^[0-9-]+T[0-9:]+Z$")' \
    <<<"$r" >/dev/null || fail "$r"
r=$(api_expect 409 POST /v1/exports/big/snapshot)
[ "$(jq -r .code <<<"$r")" = busy ] || fail "$r"

# Its progress moves, with a rate, while it runs.
seen=0
while st=$(status); [ "$(jq -r .operation_state <<<"$st")" = snapshotting ]
do
    p=$(jq -c .operation_progress <<<"$st")
    done_=$(jq .done <<<"$p")
    # Counted once the chunks to publish are frozen.
    [ "$done_" = 0 ] ||
        jq -e ".total == 24 and .total_bytes == $((24 * MiB))" <<<"$p" \
            >/dev/null || fail "$p"
    bytes=$(jq .done_bytes <<<"$p")
    [ "$bytes" = $((done_ * MiB)) ] || fail "bytes do not follow chunks: $p"
    if [ "$done_" -gt 0 ]; then
        jq -e '.bytes_per_s > 0 and .elapsed_s > 0' <<<"$p" >/dev/null ||
            fail "no rate: $p"
        seen=$((seen + 1))
    fi
    sleep 0.2
done
[ $seen -gt 0 ] || fail "never saw the snapshot's progress"
l=$(jq -c .last_operation <<<"$st")
jq -e '.kind == "snapshot" and .result == "done" and .error == null and
    .snapshot_created and .generation == 1 and .duration_s > 0 and
    .finished_at >= .started_at' <<<"$l" >/dev/null || fail "$l"
sid=$(jq -r .snapshot_id <<<"$l")
[ "$(api GET /v1/exports/big/snapshots |
    jq -r '.snapshots[] | select(.current) | .snapshot_id')" = "$sid" ] ||
    fail "last_operation names $sid, not the current snapshot"
[ "$(jq .dirty_chunks <<<"$st")" = 0 ] || fail "$st"

# No body: the blocking snapshot of the seed (nothing to publish now).
r=$(api_expect 200 POST /v1/exports/big/snapshot)
[ "$(jq -c '[.snapshot_created, .snapshot_id]' <<<"$r")" = "[false,\"$sid\"]" ] ||
    fail "$r"
api_expect 200 POST /v1/exports/big/snapshot $' \n' >/dev/null  # no body
r=$(api_expect 200 POST /v1/exports/big/snapshot '{"wait": true}')
[ "$(jq .snapshot_created <<<"$r")" = false ] || fail "$r"
# Bad bodies.
r=$(api_expect 400 POST /v1/exports/big/snapshot '{"wait": "no"}')
matches '"wait\\" must be true or false' <<<"$r"
r=$(api_expect 400 POST /v1/exports/big/compact '{"wiat": false}')
matches 'unknown field' <<<"$r"
api_expect 400 POST /v1/exports/big/snapshot '[false]' >/dev/null

# A compact in the background: a close meanwhile is refused.
r=$(api_expect 202 POST /v1/exports/big/compact '{"wait": false}')
[ "$(jq -r .operation_state <<<"$r")" = compacting ] || fail "$r"
r=$(api_expect 409 POST /v1/exports/big/close)
matches 'busy compacting' <<<"$r"
wait_for 60 sh -c "[ \"\$(curl -sS --unix-socket $admin \
    http://localhost/v1/exports/big/status | jq -r .operation_state)\" = idle ]" ||
    fail "the compact did not end"
l=$(status | jq -c .last_operation)
jq -e '.kind == "compact" and .result == "done" and .generation == 2 and
    .snapshot_created' <<<"$l" >/dev/null || fail "$l"

# A publish that fails in the background: the store refuses everything.
qemu-io -f raw -c 'write -P 8 0 1M' "$(uri big)" >/dev/null
proxy_ctl set delay 0 >/dev/null
proxy_ctl set error-status 403 >/dev/null
proxy_ctl set error 1 >/dev/null
api_expect 202 POST /v1/exports/big/snapshot '{"wait": false}' >/dev/null
wait_for 60 sh -c "[ \"\$(curl -sS --unix-socket $admin \
    http://localhost/v1/exports/big/status | jq -r .operation_state)\" = idle ]" ||
    fail "the failing snapshot did not end"
proxy_ctl clear >/dev/null
st=$(status)
l=$(jq -c .last_operation <<<"$st")
jq -e '.kind == "snapshot" and .result == "failed" and
    (.error | test("403"))' <<<"$l" >/dev/null || fail "$l"
jq -e '.last_error | startswith("snapshotting: ")' <<<"$st" >/dev/null ||
    fail "$st"
[ "$(jq .dirty_chunks <<<"$st")" = 1 ] || fail "the write was lost: $st"
matches 'snapshot big: .*403' "$tmp/d/lazyvold.log"

# A hydrate's outcome.
wait_for 30 api_no_clients big
api POST /v1/exports/big/cache/reset >/dev/null
api_expect 202 POST /v1/exports/big/hydrate >/dev/null
wait_for 60 sh -c "[ \"\$(curl -sS --unix-socket $admin \
    http://localhost/v1/exports/big/status | jq -r .operation_state)\" = idle ]" ||
    fail "the hydrate did not end"
st=$(status)
jq -e '(.last_operation | .kind == "hydrate" and .result == "done" and
    (has("snapshot_id") | not)) and (.operation_progress |
    .done == 24 and .done_bytes == .total_bytes)' <<<"$st" >/dev/null ||
    fail "$st"
[ "$(jq .resident_chunks <<<"$st")" = 24 ] || fail "$st"

# running: the snapshot is under way (some chunks done).
running ()
{
    wait_for 30 sh -c "curl -sS --unix-socket $admin \
        http://localhost/v1/exports/big/status |
        jq -e '.operation_state == \"snapshotting\" and
            .operation_progress.done > 0' >/dev/null" ||
        fail "the snapshot did not start"
}

# SIGUSR2 leaves a blocking snapshot to nbdkit.
qemu-io -f raw -c 'write -P 6 0 8M' "$(uri big)" >/dev/null
proxy_ctl set delay-ms 300 >/dev/null
proxy_ctl set delay 1 >/dev/null
s=0
curl -sS --unix-socket "$admin" -X POST -o "$tmp/usr2.body" \
    http://localhost/v1/exports/big/snapshot 2> "$tmp/usr2.err" &
curl_pid=$!
running
nbdkit=$(nbdkit_pid_of "$tmp/d")
stop_lazyvold USR2
[ "$lazyvold_status" = 0 ] || fail "lazyvold exited $lazyvold_status"
wait "$curl_pid" || s=$?
[ "$s" != 0 ] || fail "the snapshot's reply came before lazyvold exited"
kill -0 "$nbdkit" || fail "nbdkit did not keep serving"
start_lazyvold "$tmp/d"
matches "adopted running nbdkit pid $nbdkit" "$tmp/d/lazyvold.log"
wait_for 60 sh -c "[ \"\$(curl -sS --unix-socket $admin \
    http://localhost/v1/exports/big/status | jq -r .operation_state)\" = idle ]" ||
    fail "the snapshot did not end"
l=$(status | jq -c .last_operation)
jq -e '.kind == "snapshot" and .result == "done" and .generation == 3' \
    <<<"$l" >/dev/null || fail "$l"

# Ctrl-C, twice, during a background snapshot: it still lands.
qemu-io -f raw -c 'write -P 9 0 16M' "$(uri big)" >/dev/null
api_expect 202 POST /v1/exports/big/snapshot '{"wait": false}' >/dev/null
running
nbdkit=$(nbdkit_pid_of "$tmp/d")
kill -INT "$lazyvold_pid"
wait_for 30 matches 'Interrupt: shutting down' "$tmp/d/lazyvold.log" ||
    fail "no shutdown"
kill -0 "$nbdkit" || fail "nbdkit did not wait for the snapshot"
stop_lazyvold INT
[ "$lazyvold_status" = 0 ] || fail "lazyvold exited $lazyvold_status"
[ "$(grep -c 'shutting down' "$tmp/d/lazyvold.log")" = 2 ] &&
    [ "$(grep -c 'Interrupt: still shutting down: nbdkit is finishing' \
        "$tmp/d/lazyvold.log")" = 1 ] ||
    fail "$(grep 'shutting down' "$tmp/d/lazyvold.log")"
wait_for 60 sh -c "! kill -0 $nbdkit 2>/dev/null" || fail "nbdkit did not exit"
proxy_ctl clear >/dev/null
start_lazyvold "$tmp/d"
st=$(status)
[ "$(jq .snapshot_generation <<<"$st")" = 4 ] ||
    fail "the background snapshot did not land: $st"
[ "$(jq .dirty_chunks <<<"$st")" = 0 ] || fail "$st"
qemu-io -f raw -c 'read -P 9 0 16M' -c 'read -P 7 16M 8M' "$(uri big)" \
    >/dev/null || fail "wrong data after the restart"
