#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A long operation holds only its own request.  The S3 store is paused
# (SIGSTOP) so that a compact stays in progress for as long as the test
# needs: meanwhile GET /v1/exports, GET .../status, health and metrics
# answer, showing the export "compacting"; a second long operation on it
# (snapshot, compact, hydrate) gets 409 busy at once; once the store
# resumes, the compact's own request, open all along, gets its result.
LAZYVOL_TEST_BACKEND=s3
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvold "$tmp" --param timeout=300

api POST /v1/exports/create '{"export_id":"big","size":67108864}' >/dev/null
qemu-io -f raw -c 'write -P 7 0 64M' "$(uri big)" >/dev/null

proxy=$(cat "${S3_STOP##* }/run/proxy.pid")
kill -STOP "$proxy"
cleanup_fn kill -CONT "$proxy"
curl -sS --unix-socket "$admin" -X POST -o "$tmp/compact.json" \
     -w '%{http_code}' http://localhost/v1/exports/big/compact > "$tmp/compact.status" &
compact=$!

compacting () {
    api GET /v1/exports | jq -e '.exports[0].operation_state == "compacting"' >/dev/null
}
wait_for 30 compacting
api GET /v1/exports/big/status | jq -e '.operation_state == "compacting"'
api GET /v1/health | jq -e '.status == "ok"'
api GET /v1/metrics | grep -x 'lazyvold_nbdkit_up 1'
for op in snapshot compact hydrate; do
    api_expect 409 POST "/v1/exports/big/$op" | jq -e '.code == "busy"'
done
kill -0 "$compact"
[ ! -s "$tmp/compact.status" ]

kill -CONT "$proxy"
wait "$compact"
[ "$(cat "$tmp/compact.status")" = 200 ]
jq -e '.generation == 1 and (.snapshot_id | test("^[0-9a-f]{32}$"))' "$tmp/compact.json"
api GET /v1/exports/big/status | jq -e '.operation_state == "idle" and
    .dirty_chunks == 0 and .snapshot_generation == 1'
echo OK
