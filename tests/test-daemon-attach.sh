#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Attach mode: the user runs nbdkit (here under a filter stack, with the
# plugin's control socket) and "lazyvold serve --control SOCKET" serves
# the admin API for it, running and signalling nothing.  Requests work and
# NBD clients go through the filters (noextents: the whole export reads
# as data); health says mode "attach"; with nbdkit stopped the API answers
# 503 (metrics: lazyvold_nbdkit_up 0) and comes back when the user starts
# nbdkit again; SIGTERM stops lazyvold only.  Flags that configure a
# spawned nbdkit are refused with --control, and so is a control socket
# nobody answers on.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" nbdkit curl jq nbdinfo qemu-io
tmp=$(make_tmpdir)
start_store "$tmp"
NBDKIT_OPTS=(--filter=retry --filter=noextents)
start_lazyvol "$tmp"
user_nbdkit=$nbdkit_pid

if "$LAZYVOLD" serve --control "$ctlsock" --admin-sock "$tmp/x.sock" \
       --listen 127.0.0.1:1 2> "$tmp/err"; then
    fail "--listen accepted with --control"
fi
grep -q 'with --control, lazyvold runs no nbdkit' "$tmp/err"

# A control socket nobody answers on is an error at start, in the
# parent of the daemon too (it exited 0, and health then said 503).
if "$LAZYVOLD" serve --control "$tmp/nonexistent.sock" \
    --admin-sock "$tmp/y.sock" 2>"$tmp/err"; then
    fail "lazyvold started on a control socket nobody answers"
fi
grep -q "control $tmp/nonexistent.sock: no nbdkit answers there" "$tmp/err"

admin=$tmp/admin.sock api_body=$tmp/api.body
"$LAZYVOLD" serve --foreground --control "$ctlsock" --admin-sock "$admin" \
    >>"$tmp/lazyvold.log" 2>&1 &
lazyvold_pid=$!
cleanup_fn kill_wait "$lazyvold_pid"
wait_for 30 api_ready

api GET /v1/health | jq -e --argjson pid "$user_nbdkit" \
    '.mode == "attach" and .nbdkit_pid == $pid and .adopted == false'
api_expect 201 POST /v1/exports/create '{"export_id":"vm01","size":8388608}' |
    jq -e '.export_id == "vm01"'
qemu-io -f raw -c 'write -P 9 0 4k' "$(uri vm01)" >/dev/null
api POST /v1/exports/vm01/snapshot | jq -e '.snapshot_created and .generation == 1'
# Without the filter, the unwritten rest would be a hole.
nbdinfo --map "$(uri vm01)" | grep -Eq '^ +0 +8388608 +0 +data$'

stop_lazyvol
api_expect 503 GET /v1/exports | jq -e '.code == "unavailable"'
api_expect 503 GET /v1/health >/dev/null
api GET /v1/metrics | grep -x 'lazyvold_nbdkit_up 0'

start_lazyvol "$tmp"
wait_for 30 api_ready
api GET /v1/exports | jq -e '[.exports[].export_id] == ["vm01"]'

stop_lazyvold TERM
[ "$lazyvold_status" = 0 ]
kill -0 "$nbdkit_pid"
[ ! -e "$admin" ]
echo OK
