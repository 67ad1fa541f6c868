#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# nbdkit killed under lazyvold (SIGKILL) is restarted.  lazyvold logs how
# it died; while it is down the API answers 503 with the reason (metrics
# still answer, with lazyvold_nbdkit_up 0); a restart that fails (here
# the plugin file is gone) is retried with backoff until one works; then
# the API is back with every export and every flushed write intact.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq nbdcopy cmp dd /usr/bin/python3
tmp=$(make_tmpdir)
start_store "$tmp"
cp "$LAZYVOL_PLUGIN" "$tmp/plugin.so"
start_lazyvold "$tmp" --plugin "$tmp/plugin.so"

dd if=/dev/urandom of="$tmp/v.img" bs=1M count=8 status=none
api POST /v1/exports/create '{"export_id":"v","size":8388608,"chunk_size":1048576}' >/dev/null
nbd_put "$(uri v)" "$tmp/v.img" 0 4194304
api POST /v1/exports/v/snapshot >/dev/null
nbd_put "$(uri v)" "$tmp/v.img" 4194304 4194304

mv "$tmp/plugin.so" "$tmp/plugin.away"
old=$(nbdkit_pid_of "$tmp")
kill -9 "$old"

# The first 503 may come from a relay that found the socket gone before
# the supervisor learnt why: wait for the reason.
down ()
{
    [ "$(api_call GET /v1/exports)" = 503 ] &&
        jq -e '.code == "unavailable" and (.error | test("killed by signal 9"))' \
           "$api_body" >/dev/null
}
wait_for 30 down
api_expect 503 GET /v1/health | jq -e '.code == "unavailable"'
api_expect 503 POST /v1/exports/v/snapshot >/dev/null
api GET /v1/metrics | grep -x 'lazyvold_nbdkit_up 0'
grep -q "nbdkit pid $old was killed by signal 9" "$tmp/lazyvold.log"
# Restarts fail while the plugin is missing, and are retried.
wait_for 30 grep -q 'exited with status 1 before it was ready; restarting it in' "$tmp/lazyvold.log"

mv "$tmp/plugin.away" "$tmp/plugin.so"
wait_for 60 api_ready
api GET /v1/health | jq -e --argjson old "$old" \
    '.nbdkit_pid != $old and .nbdkit_restarts >= 2 and .adopted == false'
api GET /v1/metrics | grep -Ex 'lazyvold_nbdkit_restarts_total [2-9][0-9]*'
api GET /v1/metrics | grep -x 'lazyvold_nbdkit_up 1'
api GET /v1/exports/v/status | jq -e '.snapshot_generation == 1 and .dirty_chunks == 4'
nbdcopy "$(uri v)" "$tmp/v.out"
cmp "$tmp/v.img" "$tmp/v.out"
echo OK
