#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The user's own sequence (seed 000), through lazyvold with the curl
# commands of its README as written: create, write with an NBD client,
# snapshot, snapshot with nothing dirty (snapshot_created false), write,
# snapshot, compact, clone a published snapshot and read the clone back
# equal, byte for byte, to that snapshot; the status fields; cache/reset
# dropping local state so the export reads as its published image.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io nbdcopy cmp
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvold "$tmp"
sock=$admin

curl --unix-socket "$sock" http://localhost/v1/exports | jq -e '.exports == []'

r=$(curl -X POST --unix-socket "$sock" \
  -H 'content-type: application/json' \
  -d '{"export_id":"vm01","size":1073741824}' \
  http://localhost/v1/exports/create)
jq -e '.export_id == "vm01" and .image_size == 1073741824 and
       .chunk_size == 4194304 and .chunk_count == 256 and
       .resident_chunks == 0 and .dirty_chunks == 0 and
       .snapshot_generation == 0 and .remote_head_generation == 0 and
       .operation_state == "idle"' <<<"$r"

qemu-io -f raw -c 'write -P 1 0 1M' -c 'write -P 2 40M 4M' "$(uri vm01)" >/dev/null
r=$(curl --unix-socket "$sock" http://localhost/v1/exports/vm01/status)
jq -e '.dirty_chunks == 2 and .resident_chunks == 2' <<<"$r"

r=$(curl -X POST --unix-socket "$sock" \
  http://localhost/v1/exports/vm01/snapshot)
jq -e '.snapshot_created == true and .generation == 1 and
       (.snapshot_id | test("^[0-9a-f]{32}$")) and (has("ok") | not)' <<<"$r"
s1=$(jq -r .snapshot_id <<<"$r")

# Nothing dirty: nothing published.
r=$(curl -X POST --unix-socket "$sock" \
  http://localhost/v1/exports/vm01/snapshot)
jq -e --arg s1 "$s1" '.snapshot_created == false and .generation == 1 and
       .snapshot_id == $s1' <<<"$r"

qemu-io -f raw -c 'write -P 3 40M 1M' -c 'write -P 4 900M 4k' "$(uri vm01)" >/dev/null
r=$(api_expect 200 POST /v1/exports/vm01/snapshot)
jq -e '.snapshot_created == true and .generation == 2' <<<"$r"
s2=$(jq -r .snapshot_id <<<"$r")
nbdcopy "$(uri vm01)" "$tmp/s2.img"

r=$(curl --unix-socket "$sock" http://localhost/v1/exports/vm01/status)
jq -e '.export_id == "vm01" and .dirty_chunks == 0 and
       .resident_chunks == 3 and .snapshot_generation == 2 and
       .remote_head_generation == 2 and .operation_state == "idle" and
       .operation_progress.done >= 0 and .operation_progress.total >= 0' <<<"$r"

# The export moves on; compact publishes its current image.
qemu-io -f raw -c 'write -P 5 0 4k' "$(uri vm01)" >/dev/null
r=$(curl -X POST --unix-socket "$sock" \
  http://localhost/v1/exports/vm01/compact)
jq -e '.generation == 3 and (.snapshot_id | test("^[0-9a-f]{32}$"))' <<<"$r"
nbdcopy "$(uri vm01)" "$tmp/s3.img"

# Clone the middle snapshot: equal to it, byte for byte, and to the
# read-only view of the source snapshot.
r=$(curl -X POST --unix-socket "$sock" \
  -H 'content-type: application/json' \
  -d '{"export_id":"vm02","source_export_id":"vm01","source_snapshot_id":"'"$s2"'"}' \
  http://localhost/v1/exports/clone)
jq -e '.export_id == "vm02" and .image_size == 1073741824 and
       .dirty_chunks == 0' <<<"$r"
nbdcopy "$(uri vm02)" "$tmp/vm02.img"
cmp "$tmp/s2.img" "$tmp/vm02.img"
nbdcopy "$(uri "vm01@$s2")" "$tmp/view.img"
cmp "$tmp/s2.img" "$tmp/view.img"
# Without a snapshot id: the source's current (compacted) snapshot.
r=$(api_expect 201 POST /v1/exports/clone \
    '{"export_id":"vm03","source_export_id":"vm01"}')
nbdcopy "$(uri vm03)" "$tmp/vm03.img"
cmp "$tmp/s3.img" "$tmp/vm03.img"

# Every loaded export, the snapshot view read above included.
api GET /v1/exports | jq -e --arg view "vm01@$s2" \
    '[.exports[] | [.export_id, .readonly]] | sort ==
     [["vm01", false], [$view, true], ["vm02", false], ["vm03", false]]'

# cache/reset: local state gone; the export reads as its published head.
qemu-io -f raw -c 'write -P 6 100M 4k' "$(uri vm01)" >/dev/null
wait_for 30 api_no_clients vm01
r=$(curl -X POST --unix-socket "$sock" \
  http://localhost/v1/exports/vm01/cache/reset)
jq -e '.export_id == "vm01" and .resident_chunks == 0 and
       .dirty_chunks == 0 and .snapshot_generation == 3' <<<"$r"
nbdcopy "$(uri vm01)" "$tmp/after-reset.img"
cmp "$tmp/s3.img" "$tmp/after-reset.img"
echo OK
