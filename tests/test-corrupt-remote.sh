#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Bad remote data is an error for that export only.  With one export's
# volume.json truncated, another's oversized, a third's manifest hostile
# and a fourth's volume.json naming a generation its manifest does not
# have, nbdkit still starts and serves the healthy export; opening the
# broken ones fails with a clear error naming the object.  A blob whose
# bytes were altered fails the read of that chunk (EIO, the key logged)
# instead of returning bad data, and the other chunks still read.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy qemu-io jq dd
tmp=$(make_tmpdir)
start_store "$tmp"
b=$tmp/bucket/exports

start_lazyvol "$tmp/w"
for e in good trunc big hostile blob gen; do
    ctl "{\"cmd\":\"create\",\"export_id\":\"$e\",\"size\":4194304,\"chunk_size\":1048576}" >/dev/null
    qemu-io -f raw -c 'write -P 0x77 0 2M' "$(uri $e)" >/dev/null
    ctl "{\"cmd\":\"snapshot\",\"export_id\":\"$e\"}" >/dev/null
done
stop_lazyvol

truncate -s 40 "$b/trunc/volume.json"
head -c 100000 /dev/zero | tr '\0' ' ' >> "$b/big/volume.json"
m=$(ls "$b"/hostile/snapshots/*/manifest.json)
sed -i 's|"key": "hostile/|"key": "../../etc/|' "$m"
blob=$(ls "$b"/blob/snapshots/*/delta.blob)
printf 'X' | dd of="$blob" bs=1 seek=1048600 conv=notrunc status=none
jq '.generation = 7' "$b/gen/volume.json" > "$tmp/gen.json"
mv "$tmp/gen.json" "$b/gen/volume.json"

start_lazyvol "$tmp/r" 2> "$tmp/log"
# Only the healthy ones loaded; the broken ones were logged and skipped.
ctl '{"cmd":"list"}' | jq -r '.exports[].export_id' | sort > "$tmp/loaded"
[ "$(tr '\n' ' ' < "$tmp/loaded")" = "blob good " ]
grep -q 'trunc/volume.json' "$tmp/log" || grep -q 'export trunc skipped' "$tmp/log"

for e in trunc hostile gen; do
    if ctl "{\"cmd\":\"open\",\"export_id\":\"$e\"}" > "$tmp/r.json"; then
        fail "broken export $e opened"
    fi
    [ "$(field "$(cat "$tmp/r.json")" code)" = bad_remote_data ]
done
jq -r .error "$tmp/r.json" | matches 'generation 7.*disagrees with its snapshot.*generation 1'
ctl '{"cmd":"open","export_id":"big"}' > "$tmp/r.json" && fail "oversized volume.json accepted"
[ "$(field "$(cat "$tmp/r.json")" code)" = too_large ]
jq -r .error "$tmp/r.json" | matches 'exports/big/volume.json'

# The healthy export is untouched.
qemu-io -f raw -c 'read -P 0x77 0 2M' "$(uri good)" >/dev/null

# Altered blob: chunk 1 fails with EIO, chunk 0 reads.
if qemu-io -f raw -c 'read 1M 4k' "$(uri blob)" >/dev/null 2>&1; then
    fail "corrupt chunk was served"
fi
grep -q 'SHA-256 mismatch' "$tmp/log"
grep -q "blob/snapshots/.*/delta.blob" "$tmp/log"
qemu-io -f raw -c 'read -P 0x77 0 1M' "$(uri blob)" >/dev/null
echo OK
