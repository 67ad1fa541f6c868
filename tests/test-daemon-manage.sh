#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The endpoints that manage exports, beyond the seed's sequence: the
# snapshot list (kinds, generations, which is current) and deleting a
# snapshot (200 with blob_kept; 404 once gone); close then open (the
# export comes back from the store with its published image); a
# read-only snapshot view opened, read and closed by name E@S; hydrate
# (202 at once, then every published chunk resident, progress done ==
# total, fetched once); health.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io nbdcopy cmp
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvold "$tmp"

api_expect 201 POST /v1/exports/create \
    '{"export_id":"vm01","size":16777216,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 2M' "$(uri vm01)" >/dev/null
s1=$(api POST /v1/exports/vm01/snapshot | jq -r .snapshot_id)
nbdcopy "$(uri vm01)" "$tmp/s1.img"
qemu-io -f raw -c 'write -P 2 4M 1M' "$(uri vm01)" >/dev/null
s2=$(api POST /v1/exports/vm01/snapshot | jq -r .snapshot_id)
qemu-io -f raw -c 'write -P 3 8M 3M' "$(uri vm01)" >/dev/null
s3=$(api POST /v1/exports/vm01/compact | jq -r .snapshot_id)
nbdcopy "$(uri vm01)" "$tmp/s3.img"

api GET /v1/exports/vm01/snapshots | jq -e --arg s1 "$s1" --arg s2 "$s2" --arg s3 "$s3" '
    [.snapshots[] | [.snapshot_id, .generation, .kind, .current]] ==
    [[$s1, 1, "delta", false], [$s2, 2, "delta", false],
     [$s3, 3, "base", true]]'

api_expect 200 DELETE "/v1/exports/vm01/snapshots/$s2" | jq -e '.blob_kept | type == "boolean"'
api_expect 404 DELETE "/v1/exports/vm01/snapshots/$s2" | jq -e '.code == "not_found"'
api GET /v1/exports/vm01/snapshots | jq -e '[.snapshots[].snapshot_id] == [$s1, $s3]' \
    --arg s1 "$s1" --arg s3 "$s3"

# A read-only view of s1, by name.
api POST /v1/exports/open "{\"export_id\":\"vm01@$s1\"}" |
    jq -e --arg s1 "$s1" '.readonly == true and .snapshot_id == $s1'
nbdcopy "$(uri "vm01@$s1")" "$tmp/view.img"
cmp "$tmp/s1.img" "$tmp/view.img"
api GET "/v1/exports/vm01@$s1/status" | jq -e '.readonly == true'
wait_for 30 api_no_clients "vm01@$s1"
api POST "/v1/exports/vm01@$s1/close" | jq -e '. == {}'
api_expect 404 GET "/v1/exports/vm01@$s1/status" >/dev/null

# close, then open: back from the store.
wait_for 30 api_no_clients vm01
api POST /v1/exports/vm01/close | jq -e '. == {}'
api_expect 404 GET /v1/exports/vm01/status >/dev/null
api GET /v1/exports | jq -e '.exports == []'
api_expect 200 POST /v1/exports/open '{"export_id":"vm01"}' |
    jq -e --arg s3 "$s3" '.export_id == "vm01" and .snapshot_id == $s3 and
        .snapshot_generation == 3 and .chunk_count == 16'

# Hydrate an empty cache: every chunk of the image that is not a hole.
wait_for 30 api_no_clients vm01
api POST /v1/exports/vm01/cache/reset | jq -e '.resident_chunks == 0'
api_expect 202 POST /v1/exports/vm01/hydrate |
    jq -e '.export_id == "vm01" and
           (.operation_state == "hydrating" or .operation_state == "idle")'
hydrated () {
    api GET /v1/exports/vm01/status | jq -e '.operation_state == "idle" and
        .resident_chunks == 6 and .operation_progress.done == 6 and
        .operation_progress.total == 6' >/dev/null
}
wait_for 60 hydrated
api GET /v1/metrics | matches -x 'lazyvol_export_fills_total{export="vm01"} 6'
nbdcopy "$(uri vm01)" "$tmp/after.img"
cmp "$tmp/s3.img" "$tmp/after.img"
api GET /v1/metrics | matches -x 'lazyvol_export_fills_total{export="vm01"} 6'

api GET /v1/health | jq -e --argjson pid "$(nbdkit_pid_of "$tmp")" '
    .status == "ok" and .nbdkit_pid == $pid and .mode == "spawn" and
    .adopted == false and .nbdkit_restarts == 0 and .uptime_s >= 0'
echo OK
