#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A cache budget bounds the local disk every export of a process takes,
# whatever the image size.  A 256 MiB export (random bytes, published)
# read whole by a process with an empty cache and cache-max-size=64M
# reads back byte for byte, while cache.raw never allocates much more
# than 64 MiB: clean chunks are evicted.  Unpublished writes are never
# evicted: once they fill the budget, a write to a new chunk fails with
# ENOSPC (the client sees the error, nothing is lost) and status says
# why, reads still work (served without being kept), and a snapshot
# makes room again.  A restart with a full cache and a smaller budget
# evicts down to it at open.  Two exports share the budget; an export's
# own cache_max_size (kept across restarts) binds it alone.  lazyvold's
# --cache-max-size reaches the plugin and its metrics.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy qemu-io jq cmp stat head
tmp=$(make_tmpdir)
start_store "$tmp"
MiB=1048576
budget=$((64 * MiB))

# Bytes cache.raw of export $2 under cache root $1 allocates.
allocated ()
{
    echo $(( $(stat -c %b "$1/cache/$2/cache.raw") * $(stat -c %B "$1/cache/$2/cache.raw") ))
}

# FIELD of the cache_budget of export $1's status.
budget_field ()
{
    ctl "{\"cmd\":\"status\",\"export_id\":\"$1\"}" | jq -r ".cache_budget.$2"
}

# Write and publish 256 MiB of random bytes, with no budget.
head -c $((256 * MiB)) /dev/urandom > "$tmp/data"
start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"e","size":268435456}' >/dev/null
nbdcopy "$tmp/data" "$(uri e)"
r=$(ctl '{"cmd":"snapshot","export_id":"e"}')
[ "$(field "$r" snapshot_created)" = true ]
stop_lazyvol

# Another process, an empty cache, a budget of 64 MiB: the whole image
# reads back, and the cache stays within the budget.
start_lazyvol "$tmp/r" cache-max-size=64M
[ "$(budget_field e max_bytes)" = $budget ]
nbdcopy "$(uri e)" "$tmp/copy"
cmp "$tmp/data" "$tmp/copy"
a=$(allocated "$tmp/r" e)
echo "allocated after reading 256 MiB under 64 MiB: $a bytes"
[ "$a" -le $((budget + 16 * MiB)) ] || fail "cache.raw allocates $a bytes"
[ "$(budget_field e used_bytes)" -le $budget ]
evictions=$(budget_field e export_evictions)
echo "evictions: $evictions"
[ "$evictions" -ge 48 ]
r=$(ctl '{"cmd":"metrics"}')
[ "$(field "$r" cache.budget_bytes)" = $budget ]
[ "$(field "$r" cache.evictions)" = "$evictions" ]
[ "$(field "$r" 'exports[0].evictions')" = "$evictions" ]

# Unpublished writes fill the budget: 64 MiB of them fit, the next chunk
# is refused with ENOSPC, and status says why.
qemu-io -f raw -c 'write -P 0x61 0 64M' -c flush "$(uri e)" >/dev/null
if qemu-io -f raw -c "write -P 0x62 64M 4k" "$(uri e)" > "$tmp/out" 2>&1
then
    fail "a write past a budget full of unpublished writes succeeded"
fi
matches 'No space left on device' "$tmp/out" ||
    fail "not ENOSPC: $(cat "$tmp/out")"
r=$(ctl '{"cmd":"status","export_id":"e"}')
[ "$(field "$r" dirty_chunks)" = 16 ]
[ "$(field "$r" failed_stop)" = false ]
[ "$(field "$r" cache_budget.full)" = true ]
[ "$(field "$r" cache_budget.refused_writes)" -ge 1 ]
field "$r" cache_budget.notice | matches 'full of unpublished writes'
# Reads of chunks not cached still work: served, not kept.
{ head -c $((64 * MiB)) /dev/zero | tr '\0' 'a'
  tail -c $((192 * MiB)) "$tmp/data"; } > "$tmp/expect"
nbdcopy "$(uri e)" "$tmp/copy"
cmp "$tmp/expect" "$tmp/copy"
[ "$(budget_field e bypass_reads)" -ge 48 ]
# A snapshot publishes them: there is room again.
r=$(ctl '{"cmd":"snapshot","export_id":"e"}')
[ "$(field "$r" snapshot_created)" = true ]
[ "$(budget_field e full)" = false ]
qemu-io -f raw -c "write -P 0x62 64M 4k" -c flush "$(uri e)" >/dev/null
r=$(ctl '{"cmd":"snapshot","export_id":"e"}')
[ "$(field "$r" snapshot_created)" = true ]
head -c 4096 /dev/zero | tr '\0' 'b' |
    dd of="$tmp/expect" bs=1M seek=64 conv=notrunc status=none
stop_lazyvol

# A restart over the same cache (a clean shutdown kept its chunks) with a
# smaller budget evicts down to it at open; the image is intact.
start_lazyvol "$tmp/r" cache-max-size=32M
a=$(allocated "$tmp/r" e)
[ "$a" -le $((32 * MiB + 16 * MiB)) ] ||
    fail "cache.raw allocates $a bytes after a restart under 32 MiB"
[ "$(budget_field e used_bytes)" -le $((32 * MiB)) ]
nbdcopy "$(uri e)" "$tmp/copy"
cmp "$tmp/expect" "$tmp/copy"
stop_lazyvol

# Two exports share the budget: dirty chunks of one stay while the other
# is read whole; an export's own limit binds it alone, and is kept.
start_lazyvol "$tmp/r" cache-max-size=64M
ctl '{"cmd":"create","export_id":"f","size":67108864,"cache_max_size":33554432}' >/dev/null
[ "$(budget_field f export_max_bytes)" = $((32 * MiB)) ]
qemu-io -f raw -c 'write -P 0x63 0 16M' -c flush "$(uri f)" >/dev/null
nbdcopy "$(uri e)" "$tmp/copy"
cmp "$tmp/expect" "$tmp/copy"
total=$(( $(allocated "$tmp/r" e) + $(allocated "$tmp/r" f) ))
[ "$total" -le $((budget + 16 * MiB)) ] ||
    fail "the two caches allocate $total bytes"
[ "$(budget_field f used_bytes)" -le $budget ]
qemu-io -f raw -c 'read -P 0x63 0 16M' "$(uri f)" >/dev/null
r=$(ctl '{"cmd":"snapshot","export_id":"f"}')
[ "$(field "$r" snapshot_created)" = true ]
nbdcopy "$(uri f)" null:
[ "$(budget_field f export_used_bytes)" -le $((32 * MiB)) ]
# A limit below one chunk is refused, and leaves the export unloaded.
r=$(ctl '{"cmd":"create","export_id":"g","size":67108864,"cache_max_size":1000}') &&
    fail "a limit below one chunk was taken: $r"
[ "$(field "$r" code)" = bad_request ]
wait_for 30 no_clients f
ctl '{"cmd":"close","export_id":"f"}' >/dev/null
r=$(ctl '{"cmd":"open","export_id":"f","cache_max_size":1000}') &&
    fail "a limit below one chunk was taken: $r"
[ "$(field "$r" code)" = bad_request ]
r=$(ctl '{"cmd":"status","export_id":"f"}') && fail "f is loaded: $r"
ctl '{"cmd":"open","export_id":"f"}' >/dev/null
stop_lazyvol
start_lazyvol "$tmp/r" cache-max-size=64M
[ "$(budget_field f export_max_bytes)" = $((32 * MiB)) ]
wait_for 30 no_clients f
ctl '{"cmd":"close","export_id":"f"}' >/dev/null
ctl '{"cmd":"open","export_id":"f","cache_max_size":0}' >/dev/null
[ "$(budget_field f export_max_bytes)" = null ]
qemu-io -f raw -c 'read -P 0x63 0 16M' "$(uri f)" >/dev/null
stop_lazyvol

# lazyvold: --cache-max-size reaches the plugin, and its metrics.
"$LAZYVOLD" serve --cache-root "$tmp/d" --param cache-max-size=1G \
    > "$tmp/out" 2>&1 && fail "--param cache-max-size was taken"
matches -e 'use --cache-max-size' "$tmp/out"
"$LAZYVOLD" serve --cache-root "$tmp/d" --cache-max-size 1Q \
    > "$tmp/out" 2>&1 && fail "--cache-max-size 1Q was taken"
start_lazyvold "$tmp/d" --cache-max-size 64M
[ "$(api GET /v1/exports/e/status | jq .cache_budget.max_bytes)" = $budget ]
api GET /v1/metrics | matches -x "lazyvol_cache_budget_bytes $budget"
api_expect 201 POST /v1/exports/create \
    '{"export_id":"h","size":67108864,"cache_max_size":8388608}' >/dev/null
[ "$(api GET /v1/exports/h/status | jq .cache_budget.export_max_bytes)" = 8388608 ]
echo OK
