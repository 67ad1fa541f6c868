#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# TRIM and WRITE_ZEROES: whole chunks become holes (reported as hole,zero
# by BLOCK_STATUS and deallocated in cache.raw), partial ranges read back
# as zeros, zeroing a chunk the manifest does not list is free, a FAST_ZERO
# that would need a fetch fails with ENOTSUP (and changes nothing), and
# CACHE prefetches chunks without reading them.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy nbdinfo qemu-io jq cmp dd /usr/bin/python3
/usr/bin/python3 -c 'import nbd' || fail "python3-libnbd is not installed"
tmp=$(make_tmpdir)
start_store "$tmp"
MiB=1048576

dd if=/dev/urandom of="$tmp/image" bs=1M count=8 status=none
mkdir "$tmp/w" "$tmp/r"
start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"t","size":8388608,"chunk_size":1048576}' >/dev/null
nbdcopy "$tmp/image" "$(uri t)"
ctl '{"cmd":"snapshot","export_id":"t"}' >/dev/null
stop_lazyvol

start_lazyvol "$tmp/r"
cp "$tmp/image" "$tmp/expect"

# A FAST_ZERO of part of a chunk that is not cached would need a fetch.
/usr/bin/python3 - "$(uri t)" <<'PY'
import errno, sys, nbd
h = nbd.NBD(); h.connect_uri(sys.argv[1])
try:
    h.zero(4096, 5 * 1048576 + 4096, nbd.CMD_FLAG_FAST_ZERO)
    sys.exit("fast zero of a partial uncached chunk succeeded")
except nbd.Error as e:
    assert e.errnum == errno.ENOTSUP, e
# CACHE: prefetch chunk 7 without reading it.
h.cache(1048576, 7 * 1048576)
h.shutdown()
PY
r=$(ctl '{"cmd":"status","export_id":"t"}')
[ "$(field "$r" resident_chunks)" = 1 ]
[ "$(field "$r" dirty_chunks)" = 0 ]

# Trim whole chunk 1 and zero whole chunk 2: holes, no fetch.
qemu-io -f raw -c "discard 1M 1M" -c "write -z -u 2M 1M" "$(uri t)" >/dev/null
dd if=/dev/zero of="$tmp/expect" bs=1M seek=1 count=2 conv=notrunc status=none
[ "$(field "$(ctl '{"cmd":"metrics"}')" 'exports[0].fills')" = 1 ]
nbdinfo --map "$(uri t)" > "$tmp/map"
cat "$tmp/map"
grep -Eq "^ +$MiB +$((2*MiB)) +3 +hole,zero" "$tmp/map"

# A trim of part of a chunk is advice: it may leave the data.  Zeroing part
# of a chunk must zero exactly that part (fetching the chunk first).
qemu-io -f raw -c "write -z $((4*MiB+1000)) 3000" "$(uri t)" >/dev/null
dd if=/dev/zero of="$tmp/expect" bs=1 seek=$((4*MiB+1000)) count=3000 conv=notrunc status=none
nbdcopy "$(uri t)" "$tmp/got"
cmp "$tmp/expect" "$tmp/got"

# The holes are real: cache.raw has no blocks allocated for chunks 1-2.
/usr/bin/python3 - "$tmp/r/cache/t/cache.raw" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
data = os.lseek(fd, 1048576, os.SEEK_DATA)
assert data >= 3 * 1048576, "chunks 1-2 are not holes (data at %d)" % data
PY
echo OK
