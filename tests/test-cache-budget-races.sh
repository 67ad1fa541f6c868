#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Eviction racing reads and writes over NBD.  A published 64 MiB export
# (1 MiB chunks, random bytes) is served by a process with an empty cache
# and a budget of 8 chunks.  At once: chunk_hammer.py writes 4 KiB blocks
# of chunks 0-5 from four connections and reads them back (every read
# must show published bytes or a written value, and no write may be
# lost), while two more connections read chunks 8-63 in random orders,
# over and over, each read compared with the published bytes.  With six
# chunks dirty and two free, nearly every read of a clean chunk evicts
# another one, under the readers' and the writers' feet.  Afterwards the
# evictions are counted, cache.raw holds no more than the budget, and a
# snapshot publishes the writes: a process with no budget reads them.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy jq cmp stat head /usr/bin/python3
set -o pipefail
tmp=$(make_tmpdir)
start_store "$tmp"
MiB=1048576

head -c $((64 * MiB)) /dev/urandom > "$tmp/image"
start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"e","size":67108864,"chunk_size":1048576}' >/dev/null
nbdcopy "$tmp/image" "$(uri e)"
[ "$(field "$(ctl '{"cmd":"snapshot","export_id":"e"}')" snapshot_created)" = true ]
stop_lazyvol

start_lazyvol "$tmp/r" cache-max-size=8M readahead=0
# A reader: ROUNDS passes over chunks 8-63, in random order with reads of
# random sizes, or in order a whole chunk at a time.
cat > "$tmp/reader.py" <<'PY'
import random, sys, nbd
uri, image, order = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(image, "rb").read()
MiB = 1 << 20
h = nbd.NBD()
h.connect_uri(uri)
for rnd in range(6):
    chunks = list(range(8, 64))
    if order == "random":
        random.shuffle(chunks)
    for c in chunks:
        off, n = c * MiB, MiB
        if order == "random":
            off += random.randrange(0, MiB - 65536, 4096)
            n = random.choice((4096, 65536, (c + 1) * MiB - off))
        assert h.pread(n, off) == data[off:off + n], \
            "chunk %d at %d: wrong bytes" % (c, off)
h.shutdown()
PY
/usr/bin/python3 "$tmp/reader.py" "$(uri e)" "$tmp/image" random &
reader1=$!
/usr/bin/python3 "$tmp/reader.py" "$(uri e)" "$tmp/image" sequential &
reader2=$!
/usr/bin/python3 "$abs_top_srcdir/tests/chunk_hammer.py" "$(uri e)" \
    "$tmp/image" $MiB 6 4 || fail "chunk_hammer found a lost or torn write"
wait "$reader1" || fail "a random reader read wrong bytes"
wait "$reader2" || fail "a sequential reader read wrong bytes"

r=$(ctl '{"cmd":"status","export_id":"e"}')
evictions=$(printf '%s' "$r" | jq -r .cache_budget.evictions)
[ "$evictions" -gt 0 ] || fail "nothing was evicted: $r"
alloc=$(( $(stat -c %b "$tmp/r/cache/e/cache.raw") * $(stat -c %B "$tmp/r/cache/e/cache.raw") ))
[ "$alloc" -le $((8 * MiB)) ] || fail "cache.raw allocates $alloc bytes"
[ "$(field "$r" dirty_chunks)" = 6 ]

# The writes, published, read back by a process with no budget.
nbdcopy "$(uri e)" "$tmp/after"
[ "$(field "$(ctl '{"cmd":"snapshot","export_id":"e"}')" snapshot_created)" = true ]
stop_lazyvol
start_lazyvol "$tmp/z"
nbdcopy "$(uri e)" "$tmp/again"
cmp "$tmp/after" "$tmp/again"
cmp <(tail -c +$((6 * MiB + 1)) "$tmp/image") <(tail -c +$((6 * MiB + 1)) "$tmp/again")
echo "OK ($evictions evictions)"
