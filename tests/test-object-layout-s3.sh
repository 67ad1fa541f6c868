#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# The bucket, read by an independent S3 client (boto3), is what
# lazyvol-format(5) says: heads naming existing manifests, manifests
# naming only existing blobs with correct sizes and per-chunk SHA-256,
# and delta blobs holding exactly the chunks dirtied since the previous
# snapshot (nothing else, no zero chunk).
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq /usr/bin/python3
/usr/bin/python3 -c 'import boto3' || fail "python3-boto3 is not installed"
tmp=$(make_tmpdir)
LAZYVOL_TEST_BACKEND=s3
start_store "$tmp"
start_lazyvol "$tmp"
snap () { ctl "{\"cmd\":\"snapshot\",\"export_id\":\"$1\"}" | jq -r .snapshot_id; }

ctl '{"cmd":"create","export_id":"lay","size":67108864,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 4M' -c 'write -P 2 10M 1M' \
    -c 'write -z 2M 1M' "$(uri lay)" >/dev/null
s1=$(snap lay)
qemu-io -f raw -c 'write -P 3 3M 4k' -c 'write -P 4 20M 1M' "$(uri lay)" >/dev/null
s2=$(snap lay)
ctl '{"cmd":"compact","export_id":"lay"}' >/dev/null
ctl "{\"cmd\":\"clone\",\"export_id\":\"lay2\",\"source_export_id\":\"lay\",\"source_snapshot_id\":\"$s1\"}" >/dev/null

/usr/bin/python3 "$abs_top_srcdir/tests/check_layout.py" "$S3_ENDPOINT" \
    "$S3_BUCKET" exports | tee "$tmp/out"
# First snapshot: chunks 0,1,3 and 10 (chunk 2 was zeroed: not stored).
grep -q "$s1/manifest.json: delta, generation 1, 4 chunks" "$tmp/out"
# Second: only the two chunks written since (3 and 20).
grep -q "$s2/manifest.json: delta, generation 2, 2 chunks" "$tmp/out"
grep -q "base, generation 3, 5 chunks" "$tmp/out"
grep -q "lay2/snapshots/.*clone, generation 1, 0 chunks" "$tmp/out"
echo OK
